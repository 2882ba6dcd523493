//! The directory lock: `DIR/.atlas/lock`, held with an OS advisory lock
//! (`flock` on unix, `LockFileEx` on Windows) for a whole run, so two runs on
//! one directory never overlap; the second fails at once with
//! [`SyncError::Locked`] (exit 8). The OS drops the lock when the process
//! dies, so a killed run never leaves a stale lock behind.
//!
//! A run that had to create `.atlas/` (or DIR itself) to hold the lock removes
//! them again on release when it wrote nothing else there, and puts back the
//! modification times it changed, so a failed first run leaves DIR as it was.

use std::fs::{File, FileTimes, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::SyncError;
use crate::state::StatePaths;
use atlas_proto::IoError;

/// Name of the lock file inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// A held directory lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: Option<File>,
    path: PathBuf,
    state_dir: PathBuf,
    /// `.atlas/` (and DIR, if also created) to remove on release if still unused.
    created: Vec<PathBuf>,
    /// Directory times to put back after removing what was created.
    times: Vec<(PathBuf, FileTimes)>,
}

fn times_of(p: &Path) -> Option<(PathBuf, FileTimes)> {
    let m = std::fs::metadata(p).ok()?;
    let mut t = FileTimes::new().set_modified(m.modified().ok()?);
    if let Ok(a) = m.accessed() {
        t = t.set_accessed(a);
    }
    Some((p.to_owned(), t))
}

/// How long a held lock is retried before the run gives up as locked.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl DirLock {
    /// Takes the lock of `paths.dir`, creating `.atlas/` if needed.
    pub fn acquire(paths: &StatePaths) -> Result<Self, SyncError> {
        let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        // Staging, journal and backups are written inside `.atlas/`: a link
        // there would send them (and the renames into place) elsewhere.
        if std::fs::symlink_metadata(&paths.state_dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(SyncError::Conflict {
                path: crate::state::STATE_DIR.to_owned(),
                reason: format!(
                    "{} is a symbolic link; Atlas keeps its state and staging there and never writes \
                     through links: replace it with a real directory",
                    paths.state_dir.display()
                ),
            });
        }
        let mut created = Vec::new();
        let mut times = Vec::new();
        if !exists(&paths.state_dir) {
            if !exists(&paths.dir) {
                times.extend(paths.dir.parent().and_then(times_of));
                created.push(paths.dir.clone());
            } else {
                times.extend(times_of(&paths.dir));
            }
            created.push(paths.state_dir.clone());
        }
        let path = paths.state_dir.join(LOCK_FILE);
        let mut lock = Self {
            file: None,
            path: path.clone(),
            state_dir: paths.state_dir.clone(),
            created,
            times,
        };
        // On any error below, dropping `lock` removes what was created.
        std::fs::create_dir_all(&paths.state_dir)
            .map_err(IoError::at("creating state directory", &paths.state_dir))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(IoError::at("opening lock file", &path))?;
        // A lock just released can look held for an instant: a process
        // forked in between (this one starting a server, say) shares the
        // lock until its exec closes the descriptor. A short grace period
        // tells that from another run really working on the directory.
        let mut waited = std::time::Duration::ZERO;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if waited < LOCK_GRACE => {
                    std::thread::sleep(LOCK_POLL);
                    waited += LOCK_POLL;
                }
                Err(TryLockError::WouldBlock) => return Err(SyncError::Locked { path }),
                Err(TryLockError::Error(e)) => return Err(IoError::at("locking", &path)(e).into()),
            }
        }
        crate::lock_owner::record(&mut file, &path);
        lock.file = Some(file);
        Ok(lock)
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock.
        drop(self.file.take());
        if self.created.is_empty() {
            return;
        }
        let only_lock = std::fs::read_dir(&self.state_dir)
            .is_ok_and(|entries| entries.filter_map(Result::ok).all(|e| e.file_name() == LOCK_FILE));
        if !only_lock {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        for d in self.created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        for (dir, times) in &self.times {
            if let Ok(f) = File::open(dir) {
                let _ = f.set_times(*times);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_and_created_dirs_go_away() {
        let root = tempfile::tempdir().expect("tmp");
        let dir = root.path().join("inst");
        let paths = StatePaths::new(&dir);
        let before = atlas_testkit_free_snapshot(root.path());
        let held = DirLock::acquire(&paths).expect("first");
        assert!(held.path().exists());
        let err = DirLock::acquire(&paths).expect_err("second");
        assert!(matches!(err, SyncError::Locked { .. }), "{err}");
        assert_eq!(err.exit_code(), crate::exit::LOCKED);
        assert!(
            held.path().exists(),
            "a refused lock leaves the holder's file alone"
        );
        drop(held);
        assert!(!dir.exists(), "the directory this lock created is gone");
        assert_eq!(atlas_testkit_free_snapshot(root.path()), before);
        // With other state present, the lock file stays.
        std::fs::create_dir_all(&paths.state_dir).expect("mkdir");
        std::fs::write(&paths.install, b"{}").expect("write");
        drop(DirLock::acquire(&paths).expect("again"));
        assert!(paths.state_dir.join(LOCK_FILE).exists());
    }

    fn atlas_testkit_free_snapshot(p: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
        let mut v = vec![];
        for e in std::fs::read_dir(p).expect("ls").filter_map(Result::ok) {
            v.push((e.path(), e.metadata().and_then(|m| m.modified()).expect("mtime")));
        }
        v.push((
            p.to_owned(),
            std::fs::metadata(p).and_then(|m| m.modified()).expect("mtime"),
        ));
        v
    }
}
