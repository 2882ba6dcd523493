//! Making bytes durable on disk: hashing a file, atomic replacement (temp
//! file in the same directory, fsync, rename, fsync the directory), and the
//! batched alternatives on Linux (`syncfs` once for many files, write-back
//! started early). Everything the fetcher writes that must survive a crash
//! goes through here.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use atlas_proto::{IoError, Sha256Digest};
use serde::Serialize;

use crate::error::SyncError;

/// A file's modification time in nanoseconds since the Unix epoch, if known.
pub fn mtime_ns(meta: &std::fs::Metadata) -> Option<u64> {
    time_ns(meta.modified().ok()?)
}

/// [`mtime_ns`] of metadata read through a directory handle ([`crate::safe_dir`]).
pub fn cap_mtime_ns(meta: &cap_std::fs::Metadata) -> Option<u64> {
    time_ns(meta.modified().ok()?.into_std())
}

fn time_ns(t: std::time::SystemTime) -> Option<u64> {
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

/// SHA-256 of a file's content, read with a large buffer; `None` if unreadable.
pub fn hash_file(p: &Path) -> Option<Sha256Digest> {
    let f = std::fs::File::open(p).ok()?;
    hash_open(&f).ok().map(|(h, _)| h)
}

/// SHA-256 and length of what the open file `f` holds from its position,
/// read with a buffer sized to the file (8 KiB to 1 MiB): zeroing a 1 MiB
/// buffer for every 600-byte config file cost a tenth of `verify`'s time.
pub fn hash_open(mut f: &std::fs::File) -> std::io::Result<(Sha256Digest, u64)> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut h = sha2::Sha256::new();
    let len = f.metadata().map_or(1 << 20, |m| m.len());
    let mut buf = vec![0u8; usize::try_from(len).map_or(1 << 20, |n| n.clamp(8 << 10, 1 << 20))];
    let mut n = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let d = Sha256Digest::from_slice(&h.finalize()).map_err(std::io::Error::other)?;
    Ok((d, n))
}

/// Writes `value` as pretty JSON to `path` atomically (temp file in the same
/// directory, fsync, rename, fsync the directory).
pub fn write_atomic_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SyncError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| SyncError::Internal(e.to_string()))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Writes bytes to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    let dir = path
        .parent()
        .ok_or_else(|| SyncError::Internal(format!("{} has no parent directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(IoError::at("creating directory", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(IoError::at("creating a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(IoError::at("writing", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(IoError::at("syncing", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| IoError::at("replacing", path)(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Makes the renames into `dirs` durable (best effort, like [`sync_dir`]).
/// On Linux, several directories cost one `syncfs` on the filesystem of
/// `root` instead of an fsync (a journal commit) each.
pub fn sync_dirs(root: &Path, dirs: &std::collections::BTreeSet<PathBuf>) {
    if SYNC_ONCE && dirs.len() > 1 {
        if let Err(e) = sync_filesystem(root) {
            tracing::warn!("{e}");
        }
        return;
    }
    for d in dirs {
        sync_dir(d);
    }
}

/// Whether many files are made durable together by one `syncfs` (Linux)
/// rather than one fsync each.
pub(crate) const SYNC_ONCE: bool = cfg!(target_os = "linux");

/// Flushes everything written to the filesystem holding `dir` to disk and
/// waits for it (`syncfs(2)`; a no-op where [`SYNC_ONCE`] is false).
pub(crate) fn sync_filesystem(dir: &Path) -> Result<(), SyncError> {
    #[cfg(target_os = "linux")]
    {
        let d = std::fs::File::open(dir).map_err(IoError::at("opening directory", dir))?;
        nix::unistd::syncfs(&d)
            .map_err(|e| IoError::at("syncing the filesystem of", dir)(std::io::Error::from(e)))?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
    Ok(())
}

/// Starts writing `file`'s dirty pages to disk without waiting for them and
/// without a journal commit (`posix_fadvise(DONTNEED)`, which on Linux
/// queues write-back and drops only pages already clean). A later
/// [`sync_filesystem`] then has little left to wait for. Best effort; a
/// no-op where [`SYNC_ONCE`] is false (there every file is fsynced).
pub(crate) fn start_writeback(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        if let Err(e) = posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED) {
            tracing::debug!("starting write-back: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// fsyncs a directory so a rename in it is durable (best effort; unix only).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("s/x.json");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path().join("s")).expect("ls").collect();
        assert_eq!(names.len(), 1);
    }
}
