//! The manifest codec: protobuf inside zstd, with size caps on decode and
//! full structural validation, so a client never acts on a manifest it has
//! not checked.

use std::io::Read as _;

use prost::Message as _;

use unicode_normalization::UnicodeNormalization as _;

use crate::digest::Sha256Digest;
use crate::layout;
use crate::path::{PathError, validate_path};
use crate::v1::{BlobEncoding, Manifest, Side};

/// Manifest format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// zstd level used for manifests. Fixed, so a build is byte-reproducible.
/// Level 9 rather than 19: on a 100,000-file manifest, 19 took 3.4 s for a
/// result 1 % smaller, and on the 5,000-file benchmark manifest 3 % smaller
/// (docs/BENCHMARKS.md, "Protocol codec"); most of an entry is its SHA-256,
/// which no level compresses.
pub const ZSTD_LEVEL: i32 = 9;

pub use crate::limits::ManifestLimits;

/// A manifest that could not be decoded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid zstd data: {0}")]
    Zstd(String),
    #[error("manifest decompresses to more than {limit} bytes; refusing it")]
    TooLarge { limit: u64 },
    #[error("manifest is not a valid protobuf message: {0}")]
    Protobuf(String),
    #[error("manifest format {0} is not supported by this client; upgrade it")]
    UnsupportedFormat(u32),
    #[error(
        "manifest is {total} bytes but its zstd frame ends at byte {frame}; a manifest is exactly one frame, refusing the trailing data"
    )]
    TrailingData { frame: u64, total: u64 },
    #[error("manifest lists {count} files, more than the limit of {limit}")]
    TooManyFiles { count: usize, limit: usize },
    #[error("manifest is for pack `{got}`, expected `{expected}`")]
    WrongPack { expected: String, got: String },
    #[error("manifest: {0}")]
    Path(#[from] PathError),
    #[error("manifest: file `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("manifest: {0}")]
    Id(#[from] layout::IdError),
}

/// Encodes a manifest: files sorted by path, protobuf, zstd at a fixed level.
/// Returns the bytes to store; their SHA-256 is the build id.
pub fn encode(manifest: &Manifest) -> Result<Vec<u8>, ManifestError> {
    let mut m = manifest.clone();
    m.files.sort_by(|a, b| a.path.cmp(&b.path));
    validate(&m)?;
    let raw = m.encode_to_vec();
    zstd::stream::encode_all(raw.as_slice(), ZSTD_LEVEL).map_err(|e| ManifestError::Zstd(e.to_string()))
}

/// The most bytes [`encode`] can store for a manifest whose protobuf
/// encoding is `encoded_len` bytes long (zstd's compression bound): a writer
/// that only checks a manifest against a stored-size cap compresses it only
/// when this bound exceeds the cap.
pub fn stored_len_bound(encoded_len: usize) -> usize {
    zstd::zstd_safe::compress_bound(encoded_len)
}

/// The build id of stored manifest bytes.
pub fn build_id(stored: &[u8]) -> Sha256Digest {
    Sha256Digest::of(stored)
}

/// Decodes and validates stored manifest bytes under `limits`.
pub fn decode(stored: &[u8], limits: &ManifestLimits) -> Result<Manifest, ManifestError> {
    // Exactly one zstd frame: a decoder reads concatenated frames as one
    // stream, so a second frame appended to a manifest would add files.
    match zstd::zstd_safe::find_frame_compressed_size(stored) {
        Ok(n) if n == stored.len() => {}
        Ok(n) => {
            return Err(ManifestError::TrailingData {
                frame: n as u64,
                total: stored.len() as u64,
            });
        }
        Err(code) => {
            return Err(ManifestError::Zstd(
                zstd::zstd_safe::get_error_name(code).to_owned(),
            ));
        }
    }
    let mut decoder =
        zstd::stream::read::Decoder::new(stored).map_err(|e| ManifestError::Zstd(e.to_string()))?;
    decoder
        .window_log_max(crate::limits::Limits::DEFAULT.manifest_window_log)
        .map_err(|e| ManifestError::Zstd(e.to_string()))?;
    let mut raw = Vec::new();
    decoder
        .take(limits.max_decoded_bytes.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|e| ManifestError::Zstd(e.to_string()))?;
    if raw.len() as u64 > limits.max_decoded_bytes {
        return Err(ManifestError::TooLarge {
            limit: limits.max_decoded_bytes,
        });
    }
    let m = Manifest::decode(raw.as_slice()).map_err(|e| ManifestError::Protobuf(e.to_string()))?;
    if m.files.len() > limits.max_files {
        return Err(ManifestError::TooManyFiles {
            count: m.files.len(),
            limit: limits.max_files,
        });
    }
    validate(&m)?;
    Ok(m)
}

/// Structural checks every manifest must pass, on write and on read.
pub fn validate(m: &Manifest) -> Result<(), ManifestError> {
    if m.format_version != FORMAT_VERSION {
        return Err(ManifestError::UnsupportedFormat(m.format_version));
    }
    layout::validate_pack_id(&m.pack_id)?;
    let mut prev: Option<&str> = None;
    for f in &m.files {
        validate_path(&f.path)?;
        let fail = |reason: &str| ManifestError::File {
            path: f.path.clone(),
            reason: reason.to_owned(),
        };
        if let Some(p) = prev {
            if p == f.path {
                return Err(fail("listed twice"));
            }
            if p > f.path.as_str() {
                return Err(fail("files are not sorted by path"));
            }
        }
        prev = Some(&f.path);
        if f.sha256.len() != 32 {
            return Err(fail("sha256 is not 32 bytes"));
        }
        match Side::try_from(f.side) {
            Ok(Side::Both | Side::Client | Side::Server) => {}
            _ => return Err(fail("side is not both, client or server")),
        }
        if BlobEncoding::try_from(f.encoding) != Ok(BlobEncoding::Identity) {
            return Err(fail(&format!(
                "blob encoding {} is not one this client knows (only IDENTITY); upgrade the client",
                f.encoding
            )));
        }
        if f.upstream_only && f.upstreams.is_empty() {
            return Err(fail("upstream-only file has no upstream URL"));
        }
    }
    // Paths equal but for Unicode normalization (NFC `café` and NFD `café`)
    // or case name one file on macOS and Windows file systems.
    let mut folded: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for f in &m.files {
        let nfc: String = f.path.nfc().collect();
        if let Some(other) = folded.insert(nfc.to_lowercase(), &f.path) {
            let how = if other.nfc().eq(nfc.chars()) {
                "Unicode normalization (NFC and NFD spellings of one name)"
            } else {
                "case"
            };
            return Err(ManifestError::File {
                path: f.path.clone(),
                reason: format!("differs from `{other}` only by {how}; they collide on macOS and Windows"),
            });
        }
    }
    // A file and a directory of the same name cannot both exist.
    let paths: std::collections::HashSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    for f in &m.files {
        for (i, _) in f.path.match_indices('/') {
            let parent = &f.path[..i];
            if paths.contains(parent) {
                return Err(ManifestError::File {
                    path: parent.to_owned(),
                    reason: format!("is both a file and the directory of `{}`", f.path),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_with_a_huge_window_are_refused() {
        // A zstd frame written by hand: magic, a header that declares a
        // 2^27-byte window (no content size), then one raw last block.
        let raw = b"tiny";
        let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, ((27 - 10) << 3) as u8];
        let block = ((raw.len() as u32) << 3) | 1;
        frame.extend_from_slice(&block.to_le_bytes()[..3]);
        frame.extend_from_slice(raw);
        let err = decode(&frame, &ManifestLimits::default()).expect_err("window too large");
        assert!(matches!(err, ManifestError::Zstd(_)), "{err}");
        // The same frame with an 8 MiB window decodes (and then fails as protobuf).
        frame[5] = ((23 - 10) << 3) as u8;
        let err = decode(&frame, &ManifestLimits::default()).expect_err("not a manifest");
        assert!(!matches!(err, ManifestError::Zstd(_)), "{err}");
    }

    use super::*;
    use crate::v1::{BuildSource, File, Loader, LoaderKind};

    pub(crate) fn sample(n: usize) -> Manifest {
        Manifest {
            format_version: 1,
            pack_id: "demo".into(),
            name: "Demo".into(),
            version: "1.0.0".into(),
            source: Some(BuildSource {
                repository: "r".into(),
                commit: "c".repeat(40),
                commit_time: 1,
                dirty: false,
                subdirectory: String::new(),
            }),
            builder_version: "0.1.0".into(),
            minecraft_version: "1.21.1".into(),
            loader: Some(Loader {
                kind: LoaderKind::Fabric as i32,
                version: "0.16.9".into(),
            }),
            files: (0..n)
                .rev()
                .map(|i| File {
                    path: format!("mods/mod-{i:05}.jar"),
                    size: i as u64,
                    sha256: Sha256Digest::of(&i.to_le_bytes()).0.to_vec(),
                    side: Side::Both as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_sorted_and_reproducible() {
        let m = sample(50);
        let a = encode(&m).expect("encode");
        let b = encode(&m).expect("encode");
        assert_eq!(a, b, "same manifest must give identical bytes");
        let d = decode(&a, &ManifestLimits::default()).expect("decode");
        assert_eq!(d.files.len(), 50);
        assert!(d.files.windows(2).all(|w| w[0].path < w[1].path));
    }

    #[test]
    fn decode_caps() {
        let bytes = encode(&sample(100)).expect("encode");
        let small = ManifestLimits {
            max_decoded_bytes: 100,
            max_files: 1000,
        };
        assert!(matches!(
            decode(&bytes, &small),
            Err(ManifestError::TooLarge { limit: 100 })
        ));
        let few = ManifestLimits {
            max_decoded_bytes: 1 << 20,
            max_files: 10,
        };
        assert!(matches!(
            decode(&bytes, &few),
            Err(ManifestError::TooManyFiles { .. })
        ));
        assert!(matches!(
            decode(b"garbage", &ManifestLimits::default()),
            Err(ManifestError::Zstd(_))
        ));
        let not_proto = zstd::stream::encode_all(&[0xffu8; 16][..], 1).expect("zstd");
        assert!(matches!(
            decode(&not_proto, &ManifestLimits::default()),
            Err(ManifestError::Protobuf(_))
        ));
    }

    #[test]
    fn rejects_invalid_content() {
        let mut m = sample(2);
        m.files[0].path = "../evil".into();
        assert!(matches!(encode(&m), Err(ManifestError::Path(_))));
        let mut m = sample(2);
        m.files[1].path = m.files[0].path.clone();
        assert!(encode(&m).is_err());
        let mut m = sample(1);
        m.files[0].sha256.pop();
        assert!(encode(&m).is_err());
        let mut m = sample(1);
        m.files[0].side = 0;
        assert!(encode(&m).is_err());
        let mut m = sample(1);
        m.format_version = 2;
        assert!(matches!(encode(&m), Err(ManifestError::UnsupportedFormat(2))));
        let mut m = sample(2);
        m.files[0].path = "mods".into();
        m.files[1].path = "mods/x.jar".into();
        assert!(encode(&m).is_err());
        let mut m = sample(2);
        m.files[0].path = "Mods/A.jar".into();
        m.files[1].path = "mods/a.jar".into();
        let e = encode(&m).expect_err("case collision");
        assert!(e.to_string().contains("only by case"), "{e}");
        let mut m = sample(3);
        m.files[0].path = "mods".into();
        m.files[1].path = "mods-a.jar".into();
        m.files[2].path = "mods/x.jar".into();
        assert!(encode(&m).is_err());
    }

    /// Stored bytes for a manifest that skips the writer's validation, as an
    /// attacker's manifest would.
    fn stored_unchecked(m: &Manifest) -> Vec<u8> {
        let mut m = m.clone();
        m.files.sort_by(|a, b| a.path.cmp(&b.path));
        zstd::stream::encode_all(m.encode_to_vec().as_slice(), 3).expect("zstd")
    }

    #[test]
    fn paths_equal_after_unicode_normalization_are_refused() {
        let mut m = sample(2);
        m.files[0].path = "config/caf\u{e9}.txt".into(); // NFC: é is one code point
        m.files[1].path = "config/cafe\u{301}.txt".into(); // NFD: e + combining acute
        m.files.sort_by(|a, b| a.path.cmp(&b.path));
        for err in [
            encode(&m).expect_err("writer refuses"),
            decode(&stored_unchecked(&m), &ManifestLimits::default()).expect_err("reader refuses"),
        ] {
            assert!(err.to_string().contains("only by Unicode normalization"), "{err}");
        }
        // Distinct names that merely use non-ASCII letters are fine.
        let mut m = sample(2);
        m.files[0].path = "config/caf\u{e9}.txt".into();
        m.files[1].path = "config/cafe.txt".into();
        m.files.sort_by(|a, b| a.path.cmp(&b.path));
        decode(&stored_unchecked(&m), &ManifestLimits::default()).expect("distinct names");
    }

    #[test]
    fn unknown_blob_encodings_are_refused() {
        let mut m = sample(2);
        m.files[1].encoding = 7;
        let err = decode(&stored_unchecked(&m), &ManifestLimits::default()).expect_err("unknown encoding");
        assert!(err.to_string().contains("blob encoding 7"), "{err}");
        assert!(encode(&m).is_err(), "the writer refuses it too");
    }

    #[test]
    fn a_second_zstd_frame_is_refused_not_read_as_more_files() {
        let first = encode(&sample(2)).expect("encode");
        let mut extra = sample(3);
        extra.files.retain(|f| f.path.ends_with("00002.jar"));
        let mut stored = first.clone();
        stored.extend_from_slice(&stored_unchecked(&extra));
        let err = decode(&stored, &ManifestLimits::default()).expect_err("two frames");
        assert!(
            matches!(err, ManifestError::TrailingData { frame, total }
                if frame == first.len() as u64 && total == stored.len() as u64),
            "{err}"
        );
        // Trailing garbage that is not a frame is refused the same way.
        let mut junk = first.clone();
        junk.push(0);
        assert!(matches!(
            decode(&junk, &ManifestLimits::default()),
            Err(ManifestError::TrailingData { .. })
        ));
        decode(&first, &ManifestLimits::default()).expect("one frame decodes");
    }
}
