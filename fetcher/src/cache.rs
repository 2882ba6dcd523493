//! A blob cache shared by the instances on one host (`--cache DIR`):
//! `DIR/sha256/<2 hex>/<64 hex>`. Mods, resource packs and shader packs
//! (`.jar` and `.zip` files: servers never edit them in place) are kept there
//! after a verified download and taken from there by later syncs of any
//! instance, hard-linked where the filesystem allows and copied otherwise.
//! A cached blob is re-hashed every time it is taken, through the descriptor
//! of the very file staged, and hard-linked only when no other user can
//! change it afterwards (else copied; see [`crate::verified`]); a bad one is
//! deleted and downloaded again. Nothing below the cache's root is reached
//! through a link.
//! `atlas-fetcher cache gc` bounds its size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atlas_proto::Sha256Digest;
use serde::Serialize;

use crate::error::SyncError;
use crate::safe_dir::SafeDir;
use crate::verified::{self, Take, Taken};

/// A host-wide blob cache directory. Everything below its root is opened
/// without following links ([`crate::safe_dir`]): the cache may be shared
/// with other users.
#[derive(Debug, Clone)]
pub struct BlobCache {
    root: Arc<SafeDir>,
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

const TOP: &str = "sha256";

impl BlobCache {
    /// Opens (creating if needed) a cache directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, SyncError> {
        Ok(Self {
            root: Arc::new(SafeDir::create_ambient(&root.into())?),
        })
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The shard of `d` (`sha256/<2 hex>`), opened without following links.
    fn shard(&self, d: &Sha256Digest, create: bool) -> Result<Option<SafeDir>, SyncError> {
        self.root.walk(&format!("{TOP}/{}", &d.to_hex()[..2]), create)
    }

    /// Whether files at `path` are shared through the cache: archives that
    /// servers and launchers never edit in place, so a hard link is safe.
    pub fn cacheable(path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        lower.ends_with(".jar") || lower.ends_with(".zip")
    }

    /// Puts the cached blob `d` of `size` bytes at `to/name` (in staging)
    /// if the cache has it intact, verified as [`verified::take`] does
    /// (hard-linked when only this user can change it, copied otherwise);
    /// `false` when it must be downloaded. A damaged entry is deleted; a
    /// link in the cache is never followed (a warning, then a download).
    pub fn take(&self, d: &Sha256Digest, size: u64, to: &SafeDir, name: &str) -> Result<bool, SyncError> {
        let taken = self.shard(d, false).and_then(|s| match s {
            Some(s) => verified::take(&s, &d.to_hex(), to, name, d, size, Take::Link),
            None => Ok(Taken::Missing),
        });
        match taken {
            Ok(t) => Ok(t == Taken::Verified),
            Err(e @ (SyncError::Link { .. } | SyncError::NotADirectory { .. })) => {
                tracing::warn!(blob = %d, "not using the blob cache: {e}");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps the verified staged blob `from/name` (best effort: a failure,
    /// a link in the cache included, only costs a later download).
    pub fn keep(&self, d: &Sha256Digest, from: &SafeDir, name: &str) {
        if let Err(e) = self.try_keep(d, from, name) {
            tracing::warn!(blob = %d, "cannot keep the blob in the cache {}: {e}", self.root.path().display());
        }
    }

    fn try_keep(&self, d: &Sha256Digest, from: &SafeDir, name: &str) -> Result<(), SyncError> {
        let hex = d.to_hex();
        let Some(shard) = self.shard(d, true)? else {
            return Ok(());
        };
        if shard.entry(&hex)?.is_some() {
            return Ok(());
        }
        match from.hard_link(name, &shard, &hex) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(_) => {} // another filesystem: copy
        }
        let Some(mut src) = from.open_read(name)? else {
            return Ok(());
        };
        let (tmp, mut out) = shard.create_temp()?;
        let copied = std::io::copy(&mut src, &mut out)
            .and_then(|_| out.sync_all())
            .map_err(|e| SyncError::from(atlas_proto::IoError::at("copying into", shard.join(&tmp))(e)))
            .and_then(|()| shard.rename(&tmp, &shard, &hex));
        if copied.is_err() {
            let _ = shard.remove_file(&tmp);
        }
        copied
    }

    /// Deletes the oldest blobs that only the cache holds until those take
    /// at most `max_bytes`. Blobs an instance still links to are kept:
    /// deleting the cache's name would free nothing. A link in the cache is
    /// refused, never followed.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, SyncError> {
        let mut only_here = Vec::new();
        let mut report = GcReport::default();
        let Some(top) = self.root.open_dir(TOP)? else {
            return Ok(report);
        };
        for (shard_name, m) in top.entries()? {
            if m.is_symlink() {
                return Err(SyncError::Link {
                    target: top
                        .read_link(&shard_name)
                        .map_or_else(|_| "?".into(), |t| t.display().to_string()),
                    link: top.join(&shard_name),
                });
            }
            if !m.is_dir() {
                continue;
            }
            let Some(shard) = top.open_dir(&shard_name)? else {
                continue;
            };
            for (name, m) in shard.entries()? {
                if !m.is_file() {
                    continue;
                }
                if links(&m) > 1 {
                    report.in_use += 1;
                    continue;
                }
                let when = m.modified().map_or(std::time::UNIX_EPOCH, |t| t.into_std());
                only_here.push((when, m.len(), shard_name.clone(), name));
            }
        }
        only_here.sort();
        let mut total: u64 = only_here.iter().map(|(_, len, _, _)| len).sum();
        for (_, len, shard_name, name) in only_here {
            if total <= max_bytes {
                break;
            }
            if let Some(shard) = top.open_dir(&shard_name)? {
                shard.remove_file(&name)?;
            }
            total -= len;
            report.removed += 1;
            report.freed_bytes += len;
        }
        report.cache_only_bytes = total;
        Ok(report)
    }
}

#[cfg(unix)]
fn links(m: &cap_std::fs::Metadata) -> u64 {
    use cap_std::fs::MetadataExt as _;
    m.nlink()
}

#[cfg(not(unix))]
fn links(_: &cap_std::fs::Metadata) -> u64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_take_verify_and_gc() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cache = BlobCache::open(tmp.path().join("cache")).expect("open");
        let staging = SafeDir::create_ambient(&tmp.path().join("staging")).expect("staging");
        let (a, b) = (b"jar a".as_slice(), b"jar b, longer".as_slice());
        let (da, db) = (Sha256Digest::of(a), Sha256Digest::of(b));
        for (d, bytes) in [(da, a), (db, b)] {
            std::fs::write(staging.join(&d.to_hex()), bytes).expect("write");
            cache.keep(&d, &staging, &d.to_hex());
            staging.remove_file(&d.to_hex()).expect("rm staged");
        }
        let entry = |d: &Sha256Digest| {
            let hex = d.to_hex();
            tmp.path().join("cache/sha256").join(&hex[..2]).join(hex)
        };
        assert!(cache.take(&da, a.len() as u64, &staging, "taken").expect("take"));
        assert_eq!(std::fs::read(staging.join("taken")).expect("read"), a);
        assert!(
            !cache
                .take(&da, 99, &staging, "x")
                .expect("size mismatch is a miss")
        );
        assert!(!entry(&da).exists(), "and the damaged entry is gone");

        // A damaged entry is a miss, and is deleted.
        std::fs::write(entry(&db), b"jar B, longer").expect("damage");
        assert!(!cache.take(&db, b.len() as u64, &staging, "y").expect("take"));
        assert!(!entry(&db).exists());

        // `taken` still links to a's content, kept again: in use, so gc keeps it.
        cache.keep(&da, &staging, "taken");
        let r = cache.gc(0).expect("gc");
        assert_eq!((r.removed, r.in_use), (0, 1));
        staging.remove_file("taken").expect("rm");
        let r = cache.gc(0).expect("gc");
        assert_eq!(
            (r.removed, r.freed_bytes, r.cache_only_bytes),
            (1, a.len() as u64, 0)
        );
        assert!(BlobCache::cacheable("mods/Sodium.JAR") && !BlobCache::cacheable("config/x.toml"));
    }
}
