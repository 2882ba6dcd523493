//! The bodies of Atlas's fuzz targets (one function per target in
//! `fuzz_targets/`), kept in a library so every target stays a one-liner and
//! the shared pieces (the fixed signing key, an in-memory packwiz pack) live
//! in one place. Nothing here touches the network; only the `mrpack` target
//! writes to disk, into a cache in the temporary directory, as the import
//! streams override files into the download cache.
//!
//! Each function feeds arbitrary bytes to a parser of untrusted input and
//! fails (panics) only when the parser itself panics or one of the properties
//! asserted here does not hold.

use std::collections::BTreeMap;
use std::io;
use std::sync::OnceLock;

use atlas_builder::pack::NativePack;
use atlas_builder::packwiz::{self, PackFiles, PackwizPack};
use atlas_builder::settings::{AtlasSettings, memory_bytes};
use atlas_proto::manifest::{self, ManifestLimits};
use atlas_proto::pointer::{self, Expectation, LastAccepted, PointerError, SignedPointer, VerifiedPointer};
use atlas_proto::v1::Manifest;
use atlas_proto::{PublicKey, SecretKey, Sha256Digest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message as _;

/// Seed of the key every fuzzed pointer is verified against. The seed
/// pointer in `corpus/pointer/` is signed with it, so the fuzzer starts from
/// an envelope whose signature verifies.
pub const FUZZ_KEY_SEED: [u8; 32] = [7; 32];
/// Pack and channel the seed pointer names.
pub const FUZZ_PACK: &str = "atlas-demo";
pub const FUZZ_CHANNEL: &str = "production";
/// "Now" for verification: after the seed pointer was issued, before it expires.
pub const FUZZ_NOW: u64 = 1_800_000_000;

fn expectation(last: Option<LastAccepted>) -> Expectation<'static> {
    Expectation {
        pack: FUZZ_PACK,
        channel: FUZZ_CHANNEL,
        now: FUZZ_NOW,
        last,
    }
}

/// A DSSE envelope around `payload`, signed by `key` (whose key id is
/// `key_id`) as the builder signs.
pub fn envelope(payload: &[u8], key: &SecretKey, key_id: &str) -> Vec<u8> {
    let signature = key.sign(&pointer::pae(pointer::PAYLOAD_TYPE, payload));
    serde_json::json!({
        "payload": B64.encode(payload),
        "payloadType": pointer::PAYLOAD_TYPE,
        "signatures": [{"keyid": key_id, "sig": B64.encode(signature)}],
    })
    .to_string()
    .into_bytes()
}

/// The fuzz key and its public half, made once (deriving them is most of
/// the cost of an iteration otherwise).
fn fuzz_key() -> &'static (SecretKey, PublicKey, String) {
    static KEY: OnceLock<(SecretKey, PublicKey, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SecretKey::from_seed(&FUZZ_KEY_SEED);
        let public = key.public();
        let id = public.key_id();
        (key, public, id)
    })
}

fn verify_all_ways(sp: &SignedPointer, trusted: &PublicKey) {
    let _ = sp.key_ids();
    let _ = sp.payload_unverified().map_err(|e| e.to_string());
    let trusted = std::slice::from_ref(trusted);
    let check = |result: Result<VerifiedPointer, PointerError>| match result {
        Ok(v) => {
            assert_eq!(v.payload.pack, FUZZ_PACK);
            assert_eq!(v.payload.channel, FUZZ_CHANNEL);
            assert!(v.payload.expires_at > FUZZ_NOW);
            assert_eq!(v.build.to_hex(), v.payload.build.to_ascii_lowercase());
            assert_eq!(v.payload_digest, Sha256Digest::of(&v.payload_bytes));
            true
        }
        Err(PointerError::Untrusted { .. }) => false,
        Err(e) => {
            drop(e.to_string());
            true
        }
    };
    if !check(sp.verify(trusted, 1, &expectation(None))) {
        return;
    }
    // Signed by the trusted key: the rollback checks, and a threshold one
    // key can never meet.
    let last = LastAccepted {
        version: 3,
        payload_digest: Sha256Digest::of(b"an earlier payload"),
    };
    check(sp.verify(trusted, 1, &expectation(Some(last))));
    assert!(matches!(
        sp.verify(trusted, 2, &expectation(None)),
        Err(PointerError::Untrusted {
            valid: 1,
            threshold: 2,
            ..
        })
    ));
}

/// Target `pointer`: the DSSE envelope parser and verification with a fixed
/// trusted key; then the same bytes as the payload of an envelope that key
/// signed, so the checks behind the signature see arbitrary payloads too.
pub fn pointer(data: &[u8]) {
    let (key, public, key_id) = fuzz_key();
    match SignedPointer::parse(data) {
        Ok(sp) => verify_all_ways(&sp, public),
        Err(e) => drop(e.to_string()),
    }
    match SignedPointer::parse(&envelope(data, key, key_id)) {
        Ok(sp) => verify_all_ways(&sp, public),
        Err(PointerError::TooLarge) => {}
        Err(e) => panic!("an envelope signed here must parse: {e}"),
    }
}

/// Target `keyset`: a root-of-trust file or keyset envelope
/// (`keyset::parse_root` for pack `p`, then as keyset 1 after an anchor of
/// the fuzz key); then the bytes as the payload of an envelope the fuzz key
/// signed. An accepted keyset is for pack `p`, meets its thresholds with
/// distinct keys, and never lists a revoked key as a pointer or root key.
pub fn keyset(data: &[u8]) {
    use atlas_proto::keyset::{self, Keyset, SignedKeyset};
    let (key, public, _) = fuzz_key();
    let check = |ks: &Keyset| {
        assert_eq!(ks.pack(), "p");
        for k in ks.pointer_keys().iter().chain(ks.root_keys().iter()) {
            assert!(!ks.is_revoked(&k.key_id()));
        }
        if ks.version() > 0 {
            assert!((1..=ks.pointer_keys().len()).contains(&ks.pointer_threshold()));
        }
    };
    if let Ok(ks) = keyset::parse_root(data, "p") {
        check(&ks);
    }
    let Ok(anchor) = Keyset::anchor("p", std::slice::from_ref(public), 1) else {
        panic!("a one-key anchor is always valid");
    };
    let signed = pointer::sign_envelope(keyset::KEYSET_PAYLOAD_TYPE, data, &[key]);
    for bytes in [data, signed.as_slice()] {
        if let Ok(sk) = SignedKeyset::parse(bytes) {
            let _ = sk.key_ids();
            if let Ok(ks) = anchor.verify_next(&sk) {
                assert_eq!(ks.version(), 1);
                check(&ks);
            }
            if let Ok(ks) = sk.verify_self("p") {
                check(&ks);
            }
        }
    }
}

/// Caps for fuzzing: small enough that a decompression bomb is refused
/// quickly, well under libFuzzer's memory limit.
pub const FUZZ_MANIFEST_LIMITS: ManifestLimits = ManifestLimits {
    max_decoded_bytes: 1 << 20,
    max_files: 10_000,
};

/// Target `manifest`: stored manifest bytes (zstd, protobuf, validation,
/// under caps); then the same bytes as a bare protobuf message, so the
/// fuzzer reaches validation without getting through zstd first. A message
/// that validates must survive compression and decoding unchanged.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = manifest::decode(data, &FUZZ_MANIFEST_LIMITS) {
        assert!(m.files.len() <= FUZZ_MANIFEST_LIMITS.max_files);
        assert!(manifest::validate(&m).is_ok());
    }
    let Ok(m) = Manifest::decode(data) else {
        return;
    };
    match manifest::validate(&m) {
        Err(e) => drop(e.to_string()),
        Ok(()) => {
            let raw = m.encode_to_vec();
            let stored = match zstd_level_1(&raw) {
                Ok(s) => s,
                Err(e) => panic!("zstd compression failed: {e}"),
            };
            match manifest::decode(&stored, &ManifestLimits::default()) {
                Ok(back) => assert_eq!(back, m, "a valid manifest changed through the codec"),
                Err(e) => panic!("a valid manifest was refused after encoding: {e}"),
            }
        }
    }
}

fn zstd_level_1(raw: &[u8]) -> io::Result<Vec<u8>> {
    zstd::stream::encode_all(raw, 1)
}

/// Bytes as text the way the builder reads TOML (UTF-8, BOM stripped).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data)
        .ok()
        .map(|t| t.trim_start_matches('\u{feff}'))
}

/// Target `native_pack`: Atlas's own `pack.toml`, and the check that tells it
/// from a packwiz one.
pub fn native_pack(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let _ = packwiz::is_packwiz_pack_toml(text);
    match NativePack::parse(text, "pack.toml") {
        Ok(p) => assert!(!p.id.is_empty()),
        Err(e) => drop(e.to_string()),
    }
}

/// Target `atlas_settings`: `atlas.toml`.
pub fn atlas_settings(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let _ = memory_bytes(text);
    match AtlasSettings::parse(text, "atlas.toml") {
        Ok(s) => {
            let _ = s.channels.expires_in();
            for v in [&s.server.memory.min, &s.server.memory.max].into_iter().flatten() {
                assert!(memory_bytes(v).is_some(), "validated memory size `{v}`");
            }
        }
        Err(e) => drop(e.to_string()),
    }
}

/// Target `packwiz_pack`: a packwiz `pack.toml`.
pub fn packwiz_pack(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let mut diags = Vec::new();
    let _ = packwiz::is_packwiz_pack_toml(text);
    let _ = packwiz::pack::parse("pack.toml", text, &mut diags);
    diags.iter().for_each(|d| drop(d.to_string()));
}

/// Target `packwiz_index`: a packwiz `index.toml` (in a subdirectory, so
/// paths are resolved against a base).
pub fn packwiz_index(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let mut diags = Vec::new();
    if let Ok(entries) = packwiz::index::parse("pack/index.toml", text, &mut diags) {
        for e in entries {
            assert!(
                e.path.starts_with("pack/") || !e.path.split('/').any(|s| s == ".."),
                "entry path `{}` escapes the pack",
                e.path
            );
        }
    }
    diags.iter().for_each(|d| drop(d.to_string()));
}

/// Target `packwiz_metafile`: a `*.pw.toml` metafile.
pub fn packwiz_metafile(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let mut diags = Vec::new();
    let _ = packwiz::metafile::parse("mods/x.pw.toml", text, &mut diags);
    diags.iter().for_each(|d| drop(d.to_string()));
}

/// An in-memory pack for [`PackwizPack::load`].
#[derive(Debug, Default)]
pub struct MemFiles(pub BTreeMap<String, Vec<u8>>);

impl PackFiles for MemFiles {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.0.get(path).cloned())
    }

    fn list(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// Splits fuzz input into a pack: parts separated by NUL bytes are
/// `pack.toml`, `index.toml`, then pairs of file path and content.
pub fn mem_pack(data: &[u8]) -> MemFiles {
    let mut parts = data.split(|b| *b == 0);
    let mut files = BTreeMap::new();
    files.insert("pack.toml".to_owned(), parts.next().unwrap_or_default().to_vec());
    if let Some(index) = parts.next() {
        files.insert("index.toml".to_owned(), index.to_vec());
    }
    while let (Some(path), Some(content)) = (parts.next(), parts.next()) {
        files.insert(String::from_utf8_lossy(path).into_owned(), content.to_vec());
    }
    MemFiles(files)
}

/// Target `packwiz_load`: a whole packwiz pack read from memory (pack.toml,
/// the index it names, every metafile, hash checks, collisions).
pub fn packwiz_load(data: &[u8]) {
    let files = mem_pack(data);
    match PackwizPack::load(&files) {
        Ok((pack, diags)) => {
            assert!(pack.metafiles.len() <= pack.entries.len());
            diags.iter().for_each(|d| drop(d.to_string()));
        }
        Err(e) => drop(e.to_string()),
    }
}

/// The download cache the `mrpack` target extracts overrides into: one
/// directory per fuzzing process, emptied when the process starts.
fn mrpack_cache() -> &'static atlas_builder::cache::Cache {
    static CACHE: OnceLock<atlas_builder::cache::Cache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("atlas-fuzz-mrpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        atlas_builder::cache::Cache::open(dir).expect("a cache in the temporary directory")
    })
}

/// Caps for the `mrpack` target: small, so an input cannot fill the disk.
pub const FUZZ_MRPACK_LIMITS: atlas_proto::Limits = atlas_proto::Limits {
    mrpack_index_bytes: 1 << 20,
    mrpack_entries: 1_000,
    mrpack_entry_bytes: 1 << 20,
    mrpack_total_bytes: 4 << 20,
    ..atlas_proto::Limits::DEFAULT
};

/// Target `mrpack`: a `.mrpack` archive as the import reads it
/// (`atlas_builder::mrpack::read`: zip, index with its warnings, overrides
/// streamed into a cache). What it accepts installs nowhere outside the
/// pack: every download and override path passes `validate_path`, and each
/// override's cached bytes have its size and SHA-256.
pub fn mrpack(data: &[u8]) {
    use sha2::Digest as _;
    let cache = mrpack_cache();
    match atlas_builder::mrpack::read(io::Cursor::new(data), "fuzz.mrpack", cache, &FUZZ_MRPACK_LIMITS) {
        Ok(pack) => {
            for f in &pack.index.files {
                assert!(atlas_proto::validate_path(&f.path).is_ok(), "download path `{}`", f.path);
            }
            for o in &pack.overrides {
                assert!(atlas_proto::validate_path(&o.path).is_ok(), "override path `{}`", o.path);
                let bytes = std::fs::read(&o.cached).expect("the cached override");
                assert_eq!(bytes.len() as u64, o.size, "override `{}` size", o.path);
                let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
                assert_eq!(Sha256Digest(sha), o.sha256, "override `{}` hash", o.path);
            }
            pack.warnings.iter().for_each(|w| drop(w.to_string()));
        }
        Err(e) => drop(e.to_string()),
    }
}

/// Target `ipc_frame`: bytes as atlas-runnerd reads them from its control
/// socket (length-delimited frames, 1 MiB cap), each frame decoded as a
/// request and as a reply; then the whole input as one message. A frame
/// never exceeds the cap, and a message that decodes (and for a request,
/// validates) survives encoding and decoding unchanged.
pub fn ipc_frame(data: &[u8]) {
    use atlas_runner::ipc;
    use tokio_util::codec::Decoder as _;

    fn message(bytes: &[u8]) {
        if let Ok(req) = ipc::decode_request(bytes) {
            let framed = ipc::encode_frame(&req).expect("a decoded request fits a frame");
            assert_eq!(
                ipc::decode_request(&framed[4..]).expect("re-decodes and validates"),
                req
            );
        }
        match ipc::decode_reply(bytes) {
            Ok(reply) => {
                let again = ipc::encode(&reply).expect("a decoded reply fits a frame");
                assert_eq!(ipc::decode_reply(&again).expect("re-decodes"), reply);
            }
            Err(e) => drop(e.to_string()),
        }
    }

    let mut buf = bytes::BytesMut::from(data);
    let mut codec = ipc::codec();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        assert!(frame.len() <= atlas_proto::Limits::DEFAULT.ipc_frame_bytes);
        message(&frame);
    }
    if data.len() <= atlas_proto::Limits::DEFAULT.ipc_frame_bytes {
        message(data);
    }
}
