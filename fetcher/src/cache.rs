//! A blob cache shared by the instances on one host (`--cache DIR`):
//! `DIR/sha256/<2 hex>/<64 hex>`. Mods, resource packs and shader packs
//! (`.jar` and `.zip` files: servers never edit them in place) are kept there
//! after a verified download and taken from there by later syncs of any
//! instance, hard-linked where the filesystem allows and copied otherwise.
//! A cached blob is re-hashed every time it is taken (the cache may be shared
//! with other users), and a bad one is deleted and downloaded again.
//! `atlas-fetcher cache gc` bounds its size.

use std::path::{Path, PathBuf};

use atlas_proto::Sha256Digest;
use serde::Serialize;

use crate::error::SyncError;
use atlas_proto::IoError;

/// A host-wide blob cache directory.
#[derive(Debug, Clone)]
pub struct BlobCache {
    root: PathBuf,
}

/// What [`BlobCache::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs deleted (only ones no instance links to).
    pub removed: usize,
    pub freed_bytes: u64,
    /// Bytes held only by the cache after the collection.
    pub cache_only_bytes: u64,
    /// Blobs kept because an installed instance shares them (deleting the
    /// cache's name would free nothing).
    pub in_use: usize,
}

/// Hard-links `from` at `to`, or copies it when linking is not possible.
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => std::fs::copy(from, to).map(|_| ()),
    }
}

impl BlobCache {
    /// Opens (creating if needed) a cache directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, SyncError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(IoError::at("creating the blob cache", &root))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, d: &Sha256Digest) -> PathBuf {
        let hex = d.to_hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// Whether files at `path` are shared through the cache: archives that
    /// servers and launchers never edit in place, so a hard link is safe.
    pub fn cacheable(path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        lower.ends_with(".jar") || lower.ends_with(".zip")
    }

    /// Puts the cached blob `d` of `size` bytes at `dest` (in staging) if the
    /// cache has it intact; `false` when it must be downloaded.
    pub fn take(&self, d: &Sha256Digest, size: u64, dest: &Path) -> Result<bool, SyncError> {
        let src = self.path(d);
        match std::fs::metadata(&src) {
            Ok(m) if m.is_file() && m.len() == size => {}
            _ => return Ok(false),
        }
        let _ = std::fs::remove_file(dest);
        if let Err(e) = link_or_copy(&src, dest) {
            tracing::warn!(blob = %d, "cannot take {} from the cache: {e}", src.display());
            return Ok(false);
        }
        match crate::durable::hash_file(dest) {
            Some(h) if h == *d => Ok(true),
            _ => {
                tracing::warn!(blob = %d, "cached blob {} is damaged; deleting it and downloading", src.display());
                let _ = std::fs::remove_file(dest);
                let _ = std::fs::remove_file(&src);
                Ok(false)
            }
        }
    }

    /// Keeps a verified staged blob (best effort: a failure only costs a
    /// later download).
    pub fn keep(&self, d: &Sha256Digest, staged: &Path) {
        let dest = self.path(d);
        if dest.exists() {
            return;
        }
        let result = dest
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| match std::fs::hard_link(staged, &dest) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                // Another filesystem: copy to a temporary name, then rename.
                Err(_) => {
                    let tmp = dest.with_extension("tmp");
                    std::fs::copy(staged, &tmp).and_then(|_| std::fs::rename(&tmp, &dest))
                }
            });
        if let Err(e) = result {
            tracing::warn!(blob = %d, "cannot keep the blob in the cache {}: {e}", self.root.display());
        }
    }

    /// Deletes the oldest blobs that only the cache holds until those take
    /// at most `max_bytes`. Blobs an instance still links to are kept:
    /// deleting the cache's name would free nothing.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, SyncError> {
        let mut only_here = Vec::new();
        let mut report = GcReport::default();
        let top = self.root.join("sha256");
        let shards = match std::fs::read_dir(&top) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(IoError::at("reading the blob cache", &top)(e).into()),
        };
        for shard in shards.filter_map(Result::ok) {
            let Ok(entries) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let Ok(m) = e.metadata() else { continue };
                if !m.is_file() {
                    continue;
                }
                if links(&m) > 1 {
                    report.in_use += 1;
                    continue;
                }
                let when = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                only_here.push((when, m.len(), e.path()));
            }
        }
        only_here.sort();
        let mut total: u64 = only_here.iter().map(|(_, len, _)| len).sum();
        for (_, len, path) in only_here {
            if total <= max_bytes {
                break;
            }
            std::fs::remove_file(&path).map_err(IoError::at("removing a cached blob", &path))?;
            total -= len;
            report.removed += 1;
            report.freed_bytes += len;
        }
        report.cache_only_bytes = total;
        Ok(report)
    }
}

#[cfg(unix)]
fn links(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    m.nlink()
}

#[cfg(not(unix))]
fn links(_: &std::fs::Metadata) -> u64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_take_verify_and_gc() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cache = BlobCache::open(tmp.path().join("cache")).expect("open");
        let staging = tmp.path().join("staging");
        std::fs::create_dir_all(&staging).expect("mkdir");
        let (a, b) = (b"jar a".as_slice(), b"jar b, longer".as_slice());
        let (da, db) = (Sha256Digest::of(a), Sha256Digest::of(b));
        for (d, bytes) in [(da, a), (db, b)] {
            let p = staging.join(d.to_hex());
            std::fs::write(&p, bytes).expect("write");
            cache.keep(&d, &p);
            std::fs::remove_file(&p).expect("rm staged");
        }
        let dest = staging.join("taken");
        assert!(cache.take(&da, a.len() as u64, &dest).expect("take"));
        assert_eq!(std::fs::read(&dest).expect("read"), a);
        assert!(!cache.take(&da, 99, &dest).expect("size mismatch is a miss"));

        // A damaged entry is a miss, and is deleted.
        std::fs::write(cache.path(&db), b"jar B, longer").expect("damage");
        assert!(!cache.take(&db, b.len() as u64, &staging.join("x")).expect("take"));
        assert!(!cache.path(&db).exists());

        // `dest` still links to a's entry: in use, so gc keeps it.
        let r = cache.gc(0).expect("gc");
        assert_eq!((r.removed, r.in_use), (0, 1));
        std::fs::remove_file(&dest).expect("rm");
        let r = cache.gc(0).expect("gc");
        assert_eq!(
            (r.removed, r.freed_bytes, r.cache_only_bytes),
            (1, a.len() as u64, 0)
        );
        assert!(BlobCache::cacheable("mods/Sodium.JAR") && !BlobCache::cacheable("config/x.toml"));
    }
}
