//! A store in a local directory: the default, and what the quickstart and
//! tests serve over HTTP. Writes go through a temporary file in the target
//! directory and an atomic link/rename, so readers never see partial objects;
//! blobs from the download cache are hard-linked when both are on one
//! filesystem (no copy), and made durable together by one `syncfs` before the
//! manifest ([`Store::sync_blobs`]; an fsync each off Linux). Objects are
//! world-readable (0644): the store is published as is, often by a web server
//! running as another user.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::api::{Body, Expected, Listed, Object, ObjectMeta, PutOutcome, Store, StoreError};

/// The writer's lock file at the store's root (not an object).
const LOCK_FILE: &str = ".atlas-store.lock";

/// A directory holding the static layout.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    /// Set when a blob was linked or renamed into place since the last
    /// [`Store::sync_blobs`].
    unsynced: Arc<AtomicBool>,
}

/// Whether linked blobs wait for one `syncfs` instead of an fsync each.
const SYNC_ONCE: bool = cfg!(target_os = "linux");

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            unsynced: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn err(&self, key: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            store: self.describe(),
            key: key.to_owned(),
            message: e.to_string(),
        }
    }

    /// Writes `body` to a temporary file beside `dest`, synced to disk.
    fn stage(&self, key: &str, dest: &Path, body: &Body) -> Result<tempfile::NamedTempFile, StoreError> {
        let parent = dest
            .parent()
            .ok_or_else(|| self.err(key, "key has no parent directory"))?;
        fs::create_dir_all(parent)
            .map_err(|e| self.err(key, format!("creating {}: {e}", parent.display())))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(parent)
            .map_err(|e| {
                self.err(
                    key,
                    format!("creating a temporary file in {}: {e}", parent.display()),
                )
            })?;
        match body {
            Body::Bytes(b) => tmp.write_all(b),
            // File to File: `io::copy` becomes copy_file_range (in-kernel, reflink where supported).
            Body::File(p) | Body::CachedFile(p) => {
                fs::File::open(p).and_then(|mut f| io::copy(&mut f, tmp.as_file_mut()).map(|_| ()))
            }
        }
        .and_then(|()| set_public(tmp.path()))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| self.err(key, format!("writing: {e}")))?;
        Ok(tmp)
    }

    /// Hard-links a cached blob at `dest`. `None` when linking is not
    /// possible here (another filesystem, no hard links): the caller copies.
    fn link(&self, key: &str, dest: &Path, cached: &Path) -> Result<Option<PutOutcome>, StoreError> {
        // A lookup first: `mkdir` of an existing directory still takes its parent's lock.
        if let Some(parent) = dest.parent().filter(|p| !p.is_dir()) {
            fs::create_dir_all(parent)
                .map_err(|e| self.err(key, format!("creating {}: {e}", parent.display())))?;
        }
        // Durable before the manifest names it: one syncfs for every blob
        // (`sync_blobs`) where there is one, else an fsync now.
        if !SYNC_ONCE {
            fs::File::open(cached)
                .and_then(|f| f.sync_data())
                .map_err(|e| self.err(key, format!("syncing {}: {e}", cached.display())))?;
        }
        match fs::hard_link(cached, dest) {
            Ok(()) => {
                self.unsynced.store(true, Ordering::Release);
                // The mode is the cache file's too (one inode).
                set_public(dest).map_err(|e| self.err(key, format!("setting the mode: {e}")))?;
                Ok(Some(PutOutcome::Created))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Some(PutOutcome::AlreadyExists)),
            Err(e) => {
                tracing::debug!(key, "hard link from {} failed ({e}); copying", cached.display());
                Ok(None)
            }
        }
    }

    fn etag_of(bytes: &[u8]) -> String {
        format!("\"{}\"", atlas_proto::Sha256Digest::of(bytes).to_hex())
    }

    fn read_capped(&self, key: &str, max_bytes: u64) -> Result<Option<Object>, StoreError> {
        let path = self.path(key);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(key, e)),
        };
        let mut buf = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| self.err(key, e))?;
        if buf.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                store: self.describe(),
                key: key.to_owned(),
                limit: max_bytes,
            });
        }
        let etag = Self::etag_of(&buf);
        Ok(Some(Object {
            bytes: Bytes::from(buf),
            etag,
        }))
    }
}

impl DirStore {
    /// Every regular file under `prefix` (symbolic links are neither
    /// followed nor listed: they are no objects this store wrote).
    fn list_blocking(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let dir = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let mut out = Vec::new();
        let mut stack = vec![self.root.join(dir)];
        while let Some(d) = stack.pop() {
            let entries = match fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err(prefix, format!("listing {}: {e}", d.display()))),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.err(prefix, format!("listing {}: {e}", d.display())))?;
                let path = entry.path();
                // Not followed: a link's own metadata. An entry gone since
                // the directory was read (a writer's temporary file renamed
                // into place, an object deleted) is no longer listed.
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(self.err(prefix, format!("reading {}: {e}", path.display()))),
                };
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if meta.is_dir() {
                    if format!("{key}/").starts_with(prefix) {
                        stack.push(path);
                    }
                } else if meta.is_file() && key.starts_with(prefix) && key != LOCK_FILE {
                    let modified = meta
                        .modified()
                        .map_err(|e| self.err(&key, format!("reading the mtime: {e}")))?;
                    out.push(Listed {
                        key,
                        size: meta.len(),
                        modified,
                    });
                }
            }
        }
        Ok(out)
    }

    fn delete_blocking(&self, keys: &[String]) -> Result<(), StoreError> {
        for key in keys {
            let safe = !key.is_empty()
                && !key.starts_with('/')
                && key.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
            if !safe {
                return Err(self.err(key, "refusing to delete a key that is not a plain relative path"));
            }
            match fs::remove_file(self.path(key)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(key, format!("deleting: {e}"))),
            }
            // A build's folder goes with its last object (`packs/<pack>/builds/<id>/`);
            // other folders stay, as a writer may be about to put a file there.
            let segments: Vec<&str> = key.split('/').collect();
            if segments.len() == 5 && segments[0] == "packs" && segments[2] == "builds" {
                let _ = fs::remove_dir(self.path(&segments[..4].join("/")));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for DirStore {
    fn keeps_cached_files(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || match fs::symlink_metadata(this.path(&key)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(this.err(&key, e)),
        })
        .await
    }

    async fn put_immutable(
        &self,
        key: &str,
        body: Body,
        _meta: ObjectMeta,
    ) -> Result<PutOutcome, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            let dest = this.path(&key);
            if dest.exists() {
                return Ok(PutOutcome::AlreadyExists);
            }
            if let Body::CachedFile(cached) = &body
                && let Some(outcome) = this.link(&key, &dest, cached)?
            {
                return Ok(outcome);
            }
            let tmp = this.stage(&key, &dest, &body)?;
            match tmp.persist_noclobber(&dest) {
                Ok(_) => {
                    this.unsynced.store(true, Ordering::Release);
                    Ok(PutOutcome::Created)
                }
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
                Err(e) => Err(this.err(&key, e.error)),
            }
        })
        .await
    }

    async fn sync_blobs(&self) -> Result<(), StoreError> {
        if !SYNC_ONCE || !self.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let this = self.clone();
        blocking(move || {
            // Every linked blob, its directory entry and the cache file it
            // shares an inode with live on this filesystem (a hard link
            // cannot cross one).
            #[cfg(target_os = "linux")]
            fs::File::open(&this.root)
                .and_then(|d| nix::unistd::syncfs(&d).map_err(io::Error::from))
                .map_err(|e| {
                    this.err(
                        "",
                        format!("syncing the filesystem of {}: {e}", this.root.display()),
                    )
                })?;
            let _ = &this;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Object>, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.read_capped(&key, max_bytes)).await
    }

    async fn put_cas(
        &self,
        key: &str,
        bytes: Bytes,
        expected: Expected,
        _meta: ObjectMeta,
    ) -> Result<String, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            fs::create_dir_all(&this.root).map_err(|e| this.err(&key, e))?;
            // One writer at a time per store: an advisory lock makes the
            // compare and the swap a single step.
            let lock = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(this.root.join(LOCK_FILE))
                .map_err(|e| this.err(&key, format!("opening the store lock: {e}")))?;
            lock.lock()
                .map_err(|e| this.err(&key, format!("locking the store: {e}")))?;
            // Pointers, and the larger mutable objects (pages) written the same way.
            let current = this.read_capped(&key, atlas_proto::Limits::DEFAULT.export_object_bytes)?;
            let matches = match (&expected, &current) {
                (Expected::Absent, None) => true,
                (Expected::ETag(want), Some(obj)) => *want == obj.etag,
                _ => false,
            };
            if !matches {
                return Err(StoreError::Conflict {
                    store: this.describe(),
                    key,
                });
            }
            let dest = this.path(&key);
            let tmp = this.stage(&key, &dest, &Body::Bytes(bytes.clone()))?;
            tmp.persist(&dest).map_err(|e| this.err(&key, e.error))?;
            Ok(Self::etag_of(&bytes))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let this = self.clone();
        let prefix = prefix.to_owned();
        blocking(move || this.list_blocking(&prefix)).await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        let this = self.clone();
        let keys = keys.to_vec();
        blocking(move || this.delete_blocking(&keys)).await
    }
}

/// rw-r--r-- (unix; nothing elsewhere).
fn set_public(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Io {
        store: "local directory".into(),
        key: String::new(),
        message: format!("background task failed: {e}"),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_proto::layout::{CACHE_IMMUTABLE, CONTENT_TYPE_BLOB};

    const META: ObjectMeta = ObjectMeta {
        content_type: CONTENT_TYPE_BLOB,
        cache_control: CACHE_IMMUTABLE,
    };

    #[tokio::test]
    async fn immutable_objects_are_written_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirStore::new(dir.path());
        let key = "blobs/sha256/ab/abc";
        assert!(!store.exists(key).await.expect("exists"));
        let first = store
            .put_immutable(key, Body::Bytes(Bytes::from_static(b"one")), META)
            .await;
        assert_eq!(first.expect("put"), PutOutcome::Created);
        let second = store
            .put_immutable(key, Body::Bytes(Bytes::from_static(b"two")), META)
            .await;
        assert_eq!(second.expect("put"), PutOutcome::AlreadyExists);
        let got = store.get(key, 100).await.expect("get").expect("present");
        assert_eq!(&got.bytes[..], b"one");
        assert!(matches!(
            store.get(key, 2).await,
            Err(StoreError::TooLarge { .. })
        ));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256/ab"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temporary files left behind: {leftovers:?}"
        );
    }

    #[tokio::test]
    async fn cached_blobs_are_hard_linked_and_every_object_is_world_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cached = dir.path().join("cache-blob");
        fs::write(&cached, b"jar bytes").expect("write");
        let store = DirStore::new(dir.path().join("store"));
        let key = "blobs/sha256/cd/cde";
        let put = store
            .put_immutable(key, Body::CachedFile(cached.clone()), META)
            .await;
        assert_eq!(put.expect("put"), PutOutcome::Created);
        let again = store
            .put_immutable(key, Body::CachedFile(cached.clone()), META)
            .await;
        assert_eq!(again.expect("put"), PutOutcome::AlreadyExists);
        let copied = "blobs/sha256/ef/efg";
        let put = store
            .put_immutable(copied, Body::Bytes(Bytes::from_static(b"x")), META)
            .await;
        assert_eq!(put.expect("put"), PutOutcome::Created);
        assert_eq!(fs::read(store.path(key)).expect("read"), b"jar bytes");
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            let linked = fs::metadata(store.path(key)).expect("meta");
            let source = fs::metadata(&cached).expect("meta");
            assert_eq!(
                (linked.dev(), linked.ino()),
                (source.dev(), source.ino()),
                "a link, not a copy"
            );
            for k in [key, copied] {
                let mode = fs::metadata(store.path(k)).expect("meta").permissions().mode();
                assert_eq!(mode & 0o777, 0o644, "{k}");
            }
        }
    }

    #[tokio::test]
    async fn pointer_compare_and_swap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirStore::new(dir.path());
        let key = "packs/p/channels/dev.json";
        let e1 = store
            .put_cas(key, Bytes::from_static(b"v1"), Expected::Absent, META)
            .await
            .expect("create");
        let lost = store
            .put_cas(key, Bytes::from_static(b"v1b"), Expected::Absent, META)
            .await;
        assert!(matches!(lost, Err(StoreError::Conflict { .. })));
        let e2 = store
            .put_cas(key, Bytes::from_static(b"v2"), Expected::ETag(e1.clone()), META)
            .await
            .expect("swap");
        let stale = store
            .put_cas(key, Bytes::from_static(b"v3"), Expected::ETag(e1), META)
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict { .. })));
        let got = store.get(key, 100).await.expect("get").expect("present");
        assert_eq!((&got.bytes[..], got.etag), (&b"v2"[..], e2));
    }
}
