//! Test fixtures: a store built directly with atlas-proto (blobs, manifests,
//! signed pointers) in a temporary directory, directory snapshots, and a
//! helper to run a sync.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use atlas_fetcher::{InstallSide, NoProgress, Report, SyncError, SyncOptions, Syncer};
use atlas_proto::pointer::{self, PointerPayload};
use atlas_proto::v1::{File, Manifest, Side};
use atlas_proto::{PublicKey, SecretKey, Sha256Digest, layout, manifest};
use prost::Message as _;

pub const PACK: &str = "demo";
pub const CHANNEL: &str = "dev";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// One file of a fixture build.
#[derive(Debug, Clone)]
pub struct Spec {
    pub path: String,
    pub content: Vec<u8>,
    pub side: Side,
    pub executable: bool,
    pub optional: bool,
    pub default_enabled: bool,
}

pub fn f(path: &str, content: &[u8]) -> Spec {
    Spec {
        path: path.into(),
        content: content.to_vec(),
        side: Side::Both,
        executable: false,
        optional: false,
        default_enabled: false,
    }
}

pub fn sided(path: &str, content: &[u8], side: Side) -> Spec {
    Spec {
        side,
        ..f(path, content)
    }
}

/// A store on disk plus the signing key.
#[derive(Debug)]
pub struct Store {
    pub dir: tempfile::TempDir,
    pub key: SecretKey,
    pub version: u64,
}

impl Store {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tmp"),
            key: SecretKey::from_seed(&[7; 32]),
            version: 0,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    pub fn write(&self, key: &str, bytes: &[u8]) {
        let p = self.root().join(key);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write");
    }

    pub fn put_blob(&self, content: &[u8]) -> Sha256Digest {
        let d = Sha256Digest::of(content);
        self.write(&layout::blob_key(&d), content);
        d
    }

    pub fn manifest_for(&self, specs: &[Spec]) -> Manifest {
        Manifest {
            format_version: 1,
            pack_id: PACK.into(),
            name: "Demo".into(),
            version: "1".into(),
            files: specs
                .iter()
                .map(|s| File {
                    path: s.path.clone(),
                    size: s.content.len() as u64,
                    sha256: Sha256Digest::of(&s.content).0.to_vec(),
                    side: s.side as i32,
                    executable: s.executable,
                    optional: s.optional,
                    default_enabled: s.default_enabled,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Writes blobs and the manifest; returns (build id, manifest size).
    pub fn put_build(&self, specs: &[Spec]) -> (Sha256Digest, u64) {
        for s in specs {
            self.put_blob(&s.content);
        }
        let bytes = manifest::encode(&self.manifest_for(specs)).expect("encode");
        self.put_manifest_bytes(PACK, &bytes)
    }

    /// Stores manifest bytes as-is (for malicious manifests).
    pub fn put_manifest_bytes(&self, pack: &str, bytes: &[u8]) -> (Sha256Digest, u64) {
        let build = manifest::build_id(bytes);
        self.write(&layout::manifest_key(pack, &build), bytes);
        (build, bytes.len() as u64)
    }

    /// A raw (unvalidated) manifest: protobuf + zstd, bypassing `encode`'s checks.
    pub fn put_raw_manifest(&self, m: &Manifest) -> (Sha256Digest, u64) {
        let bytes = zstd::stream::encode_all(m.encode_to_vec().as_slice(), 3).expect("zstd");
        self.put_manifest_bytes(PACK, &bytes)
    }

    pub fn payload(&self, version: u64, build: Sha256Digest, size: u64) -> PointerPayload {
        PointerPayload {
            format: 1,
            pack: PACK.into(),
            channel: CHANNEL.into(),
            version,
            build: build.to_hex(),
            manifest_size: size,
            issued_at: now() - 10,
            expires_at: now() + 86_400,
            exports: Default::default(),
            tools: Default::default(),
        }
    }

    /// Signs `payload` with the store key and writes it as the channel pointer.
    pub fn put_pointer(&self, payload: &PointerPayload) -> Vec<u8> {
        let env = pointer::sign(payload, &[&self.key]);
        self.write(&layout::pointer_key(PACK, CHANNEL), &env);
        env
    }

    /// Publishes a build at the next version; returns its build id.
    pub fn publish(&mut self, specs: &[Spec]) -> Sha256Digest {
        let (build, size) = self.put_build(specs);
        self.version += 1;
        self.put_pointer(&self.payload(self.version, build, size));
        build
    }

    pub fn pointer_key() -> String {
        layout::pointer_key(PACK, CHANNEL)
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.root().display())
    }
}

/// Options for a test sync: retries back off in milliseconds, not seconds.
pub fn options(source: &str, dir: &Path, keys: Vec<PublicKey>) -> SyncOptions {
    let mut opts = SyncOptions::new(source, PACK, CHANNEL, keys, dir);
    opts.retry.base_delay = std::time::Duration::from_millis(1);
    opts.retry.max_delay = std::time::Duration::from_millis(20);
    opts
}

/// Runs a full sync.
pub async fn sync_with(
    source: &str,
    dir: &Path,
    keys: Vec<PublicKey>,
    side: InstallSide,
    dry_run: bool,
) -> Result<Report, SyncError> {
    let mut opts = options(source, dir, keys);
    opts.side = side;
    Syncer::new(opts)?.sync(dry_run, &NoProgress).await
}

pub async fn sync(source: &str, dir: &Path, key: &PublicKey) -> Result<Report, SyncError> {
    sync_with(source, dir, vec![key.clone()], InstallSide::Server, false).await
}

pub use atlas_testkit::fs::snapshot;

/// [`snapshot`] without what a failed run keeps on purpose: downloads cut
/// short, in `.atlas/partial/` (and so the times of `.atlas/` itself).
pub fn snapshot_but_partial(root: &Path) -> BTreeMap<std::path::PathBuf, atlas_testkit::fs::Entry> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".atlas/partial"))
        .map(|(p, mut e)| {
            if p == Path::new(".atlas") {
                e.mtime = UNIX_EPOCH;
            }
            (p, e)
        })
        .collect()
}

/// [`snapshot`] without the lock file's bytes and times: a run writes its
/// holder (program, pid) there for the runner's two-updaters check, so a
/// run of another process changes it even when it changes nothing else.
pub fn snapshot_but_lock(root: &Path) -> BTreeMap<std::path::PathBuf, atlas_testkit::fs::Entry> {
    snapshot(root)
        .into_iter()
        .map(|(p, mut e)| {
            if p == Path::new(".atlas/lock") {
                e.bytes.clear();
                e.mtime = UNIX_EPOCH;
            }
            (p, e)
        })
        .collect()
}

/// The names in `DIR/.atlas/partial/`, sorted.
pub fn partials(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(".atlas/partial"))
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Files (not directories) outside `.atlas/`, as path -> bytes.
pub fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .filter(|(p, e)| !e.dir && !p.starts_with(".atlas"))
        .map(|(p, e)| (p.to_string_lossy().replace('\\', "/"), e.bytes))
        .collect()
}

pub fn expected(specs: &[Spec]) -> BTreeMap<String, Vec<u8>> {
    specs
        .iter()
        .map(|s| (s.path.clone(), s.content.clone()))
        .collect()
}
