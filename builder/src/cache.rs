//! The local download cache: file contents keyed by SHA-256
//! (`<cache>/sha256/<2>/<64>`), plus an index from upstream hashes
//! (`<cache>/index/<algo>/<hex>`, holding `<sha256 hex> <size>`) so that a
//! file named by its Modrinth sha512 or CurseForge sha1 is found without a
//! download (a `sha256:` upstream hash is the content address itself and
//! needs no entry), and from each blob to its SHA-1 and SHA-512
//! (`<cache>/digests/<2>/<sha256 hex>`, lines `<algo> <hex>`) so a cache hit
//! knows them without reading the blob. Every insert is a temporary file
//! (`<cache>/tmp/<0-f>/`) renamed into place, so a CI cache may save the
//! folder at any moment.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atlas_proto::Sha256Digest;

use crate::packwiz::{HashFormat, UpstreamHash};

/// The digests every download records besides its SHA-256, and the cache
/// keeps per blob: what a `.mrpack` `files[]` entry requires (`hashes.sha1`,
/// `hashes.sha512`).
pub const DIGESTS: [HashFormat; 2] = [HashFormat::Sha1, HashFormat::Sha512];

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "ATLAS_CACHE_DIR";

/// A file found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub path: PathBuf,
}

/// The download cache rooted at one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Picks the next temporary directory: parallel downloads spread their
    /// creates and renames over 16 directories instead of queueing on one
    /// directory's lock.
    next_tmp: Arc<AtomicUsize>,
}

/// How many temporary directories downloads are spread over.
const TMP_DIRS: usize = 16;

/// Creates `dir` unless it is already a directory (a lookup first: `mkdir`
/// of an existing directory still takes its parent's lock).
fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| io_at(dir, e))
}

/// The default cache directory: `$ATLAS_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/atlas`, else `~/.cache/atlas`.
pub fn default_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env(CACHE_DIR_ENV)
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("atlas")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("atlas")))
}

fn io_at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Cache {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for sub in ["sha256", "index", "digests", "tmp"] {
            ensure_dir(&root.join(sub))?;
        }
        Ok(Self {
            root,
            next_tmp: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this SHA-256 lives (whether or not it exists).
    pub fn blob_path(&self, sha256: &Sha256Digest) -> PathBuf {
        let hex = sha256.to_hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    fn index_path(&self, hash: &UpstreamHash) -> PathBuf {
        self.root
            .join("index")
            .join(hash.format.name())
            .join(hex::encode(&hash.bytes))
    }

    /// The cached blob with this SHA-256, if present with the expected size.
    pub fn get(&self, sha256: &Sha256Digest, size: Option<u64>) -> Option<CacheEntry> {
        let path = self.blob_path(sha256);
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || size.is_some_and(|s| s != meta.len()) {
            return None;
        }
        Some(CacheEntry {
            sha256: *sha256,
            size: meta.len(),
            path,
        })
    }

    /// The cached blob an upstream hash maps to, if the index knows it and
    /// the blob is present with the recorded size.
    pub fn lookup(&self, hash: &UpstreamHash) -> Option<CacheEntry> {
        if hash.format == HashFormat::Sha256 {
            return self.get(&Sha256Digest::from_slice(&hash.bytes).ok()?, None);
        }
        let text = std::fs::read_to_string(self.index_path(hash)).ok()?;
        let (hex, size) = text.trim().split_once(' ')?;
        let sha256: Sha256Digest = hex.parse().ok()?;
        let size: u64 = size.parse().ok()?;
        self.get(&sha256, Some(size))
    }

    /// A new temporary file inside the cache (same filesystem as the blobs).
    pub fn temp_file(&self) -> io::Result<tempfile::NamedTempFile> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed) % TMP_DIRS;
        let dir = self.root.join("tmp").join(format!("{n:x}"));
        ensure_dir(&dir)?;
        tempfile::Builder::new()
            .prefix("dl-")
            .tempfile_in(&dir)
            .map_err(|e| io_at(&dir, e))
    }

    /// Moves a verified temporary file into the cache under its SHA-256 and
    /// records each upstream hash as naming it. Returns the blob's path.
    pub fn insert(
        &self,
        file: tempfile::TempPath,
        sha256: &Sha256Digest,
        size: u64,
        upstream: &[UpstreamHash],
    ) -> io::Result<PathBuf> {
        let path = self.blob_path(sha256);
        if let Some(parent) = path.parent() {
            ensure_dir(parent)?;
        }
        if self.get(sha256, Some(size)).is_some() {
            drop(file);
        } else {
            file.persist(&path).map_err(|e| io_at(&path, e.error))?;
        }
        for hash in upstream {
            self.record(hash, sha256, size)?;
        }
        Ok(path)
    }

    fn digests_path(&self, sha256: &Sha256Digest) -> PathBuf {
        let hex = sha256.to_hex();
        self.root.join("digests").join(&hex[..2]).join(hex)
    }

    /// Records the other digests of the blob `sha256` (see [`Cache::digests`]).
    pub fn record_digests(&self, sha256: &Sha256Digest, digests: &[UpstreamHash]) -> io::Result<()> {
        let path = self.digests_path(sha256);
        let text: String = digests
            .iter()
            .map(|d| format!("{} {}\n", d.format.name(), hex::encode(&d.bytes)))
            .collect();
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        ensure_dir(path.parent().unwrap_or(&self.root))?;
        let mut tmp = self.temp_file()?;
        io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.persist(&path).map_err(|e| io_at(&path, e.error))?;
        Ok(())
    }

    /// The SHA-1 and SHA-512 of the cached blob `sha256` (of `size` bytes),
    /// as recorded; a blob cached before they were recorded is hashed once
    /// now and recorded.
    pub fn digests(&self, sha256: &Sha256Digest, size: u64) -> io::Result<Vec<UpstreamHash>> {
        let formats = DIGESTS;
        let recorded: Option<Vec<UpstreamHash>> = std::fs::read_to_string(self.digests_path(sha256))
            .ok()
            .and_then(|text| {
                formats
                    .iter()
                    .map(|f| {
                        let hex = text
                            .lines()
                            .find_map(|l| l.strip_prefix(&format!("{} ", f.name())))?;
                        UpstreamHash::parse(*f, hex.trim()).ok()
                    })
                    .collect()
            });
        if let Some(d) = recorded {
            return Ok(d);
        }
        let blob = self.get(sha256, Some(size)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: not in the cache", sha256.to_hex()),
            )
        })?;
        let file = std::fs::File::open(&blob.path).map_err(|e| io_at(&blob.path, e))?;
        let digests = atlas_proto::upstream::hash_reader(&formats, file).map_err(|e| io_at(&blob.path, e))?;
        self.record_digests(sha256, &digests)?;
        Ok(digests)
    }

    /// Records that `hash` names the blob `sha256` of `size` bytes.
    pub fn record(&self, hash: &UpstreamHash, sha256: &Sha256Digest, size: u64) -> io::Result<()> {
        if hash.format == HashFormat::Sha256 {
            return Ok(()); // the content address itself; see `lookup`
        }
        let index = self.index_path(hash);
        let line = format!("{} {size}\n", sha256.to_hex());
        if std::fs::read_to_string(&index).is_ok_and(|t| t == line) {
            return Ok(());
        }
        let dir = index.parent().unwrap_or(&self.root).to_owned();
        ensure_dir(&dir)?;
        let mut tmp = self.temp_file()?;
        io::Write::write_all(&mut tmp, line.as_bytes())?;
        tmp.persist(&index).map_err(|e| io_at(&index, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cache: &Cache, data: &[u8], hashes: &[UpstreamHash]) -> PathBuf {
        let mut tmp = cache.temp_file().expect("tmp");
        io::Write::write_all(&mut tmp, data).expect("write");
        cache
            .insert(
                tmp.into_temp_path(),
                &Sha256Digest::of(data),
                data.len() as u64,
                hashes,
            )
            .expect("insert")
    }

    #[test]
    fn insert_then_hit_by_sha256_and_upstream_hash() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = Cache::open(dir.path()).expect("open");
        let data = b"a mod jar";
        let sha512 = UpstreamHash::of(HashFormat::Sha512, data);
        let sha1 = UpstreamHash::of(HashFormat::Sha1, data);
        assert_eq!(cache.lookup(&sha512), None);
        let path = put(&cache, data, &[sha512.clone(), sha1.clone()]);
        let hex = Sha256Digest::of(data).to_hex();
        assert!(path.ends_with(format!("sha256/{}/{hex}", &hex[..2])));
        assert_eq!(std::fs::read(&path).expect("read"), data);
        for h in [&sha512, &sha1] {
            let hit = cache.lookup(h).expect("hit");
            assert_eq!(
                (hit.size, hit.path.as_path()),
                (data.len() as u64, path.as_path())
            );
        }
        // Inserting again is harmless; the temp dirs hold nothing afterwards.
        put(&cache, data, std::slice::from_ref(&sha512));
        let left: usize = std::fs::read_dir(dir.path().join("tmp"))
            .expect("ls")
            .map(|d| std::fs::read_dir(d.expect("entry").path()).expect("ls").count())
            .sum();
        assert_eq!(left, 0);
        // A reopened cache (a restored CI cache) still hits.
        assert!(Cache::open(dir.path()).expect("reopen").lookup(&sha1).is_some());
    }

    #[test]
    fn a_sha256_upstream_hash_is_the_content_address_and_needs_no_index() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = Cache::open(dir.path()).expect("open");
        let data = b"a jar named by its sha256";
        let sha256 = UpstreamHash::of(HashFormat::Sha256, data);
        assert_eq!(cache.lookup(&sha256), None);
        let path = put(&cache, data, std::slice::from_ref(&sha256));
        let hit = cache.lookup(&sha256).expect("hit");
        assert_eq!((hit.size, hit.path), (data.len() as u64, path));
        assert!(
            !dir.path().join("index/sha256").exists(),
            "no index entry written"
        );
    }

    #[test]
    fn digests_are_recorded_or_computed_once_for_an_older_cache() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = Cache::open(dir.path()).expect("open");
        let data = b"a jar cached before digests were recorded";
        let sha256 = Sha256Digest::of(data);
        put(&cache, data, &[]);
        let want = vec![
            UpstreamHash::of(HashFormat::Sha1, data),
            UpstreamHash::of(HashFormat::Sha512, data),
        ];
        assert_eq!(cache.digests(&sha256, data.len() as u64).expect("computed"), want);
        let hex = sha256.to_hex();
        let recorded = dir.path().join("digests").join(&hex[..2]).join(&hex);
        assert!(recorded.is_file(), "recorded for the next hit");
        std::fs::write(cache.blob_path(&sha256), b"changed under the cache").expect("tamper");
        assert_eq!(
            cache.digests(&sha256, data.len() as u64).expect("recorded"),
            want,
            "read from the record, not the blob"
        );
    }

    #[test]
    fn size_mismatch_is_a_miss() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = Cache::open(dir.path()).expect("open");
        let data = b"0123456789";
        let md5 = UpstreamHash::of(HashFormat::Md5, data);
        let path = put(&cache, data, std::slice::from_ref(&md5));
        std::fs::write(&path, b"01234").expect("corrupt");
        assert_eq!(cache.lookup(&md5), None);
        assert_eq!(cache.get(&Sha256Digest::of(data), Some(10)), None);
    }
}
