//! The directory lock: `DIR/.atlas/lock`, held with an OS advisory lock
//! (`flock` on unix, `LockFileEx` on Windows) for a whole run, so two runs on
//! one directory never overlap; the second fails at once with
//! [`SyncError::Locked`] (exit 8). The OS drops the lock when the process
//! dies, so a killed run never leaves a stale lock behind.
//!
//! A run that had to create `.atlas/` (or DIR itself) to hold the lock removes
//! them again on release when it wrote nothing else there, and puts back the
//! modification times it changed, so a failed first run leaves DIR as it was.
//!
//! `.atlas` and `lock` are opened without following links: a dangling
//! `.atlas/lock` link would otherwise create a file wherever it points.

use std::fs::{File, FileTimes, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::SyncError;
use crate::local::Local;
use crate::state::{STATE_DIR, StatePaths};
use atlas_proto::IoError;

/// Name of the lock file inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// A held directory lock; released on drop. It holds the run's
/// [`Local`] handles: everything the run writes goes through them.
#[derive(Debug)]
pub struct DirLock {
    file: Option<File>,
    path: PathBuf,
    local: Local,
    /// This run created `.atlas/` (and DIR itself): removed on release if still unused.
    created_state: bool,
    created_dir: bool,
    /// Times of DIR's parent (when DIR was created) and of DIR (when
    /// `.atlas/` was), to put back after removing what was created.
    parent_times: Option<(PathBuf, FileTimes)>,
    dir_times: Option<FileTimes>,
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
    /// Takes the lock of `paths.dir`, creating DIR and `.atlas/` if needed.
    /// `.atlas` and the lock file are opened without following links
    /// (staging, journal and backups live there): a link is refused.
    pub fn acquire(paths: &StatePaths) -> Result<Self, SyncError> {
        let created_dir = std::fs::symlink_metadata(&paths.dir).is_err();
        let parent_times = if created_dir {
            paths.dir.parent().and_then(times_of)
        } else {
            None
        };
        let dir = crate::safe_dir::SafeDir::create_ambient(&paths.dir)?;
        let created_state = dir.entry(STATE_DIR)?.is_none();
        let dir_times = if created_state { dir.times() } else { None };
        let path = paths.state_dir.join(LOCK_FILE);
        let mut lock = Self {
            file: None,
            path: path.clone(),
            local: Local::from_parts(paths, dir, None),
            created_state,
            created_dir,
            parent_times,
            dir_times,
        };
        // On any error below, dropping `lock` removes what was created.
        let state = lock.local.dir()?.create_dir(STATE_DIR)?;
        let file = state.open_or_create(LOCK_FILE);
        lock.local.set_state(state);
        let mut file = file?;
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

    /// The directories this lock holds, opened without following links.
    pub fn local(&self) -> &Local {
        &self.local
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock.
        drop(self.file.take());
        if !self.created_state {
            return;
        }
        let Some(dir) = self.local.try_dir() else {
            return;
        };
        if let Some(state) = self.local.try_state() {
            let only_lock = state
                .entries()
                .is_ok_and(|entries| entries.iter().all(|(name, _)| name == LOCK_FILE));
            if !only_lock {
                return;
            }
            let _ = state.remove_file(LOCK_FILE);
        }
        let _ = dir.remove_dir(STATE_DIR);
        if let Some(t) = self.dir_times {
            dir.set_times(t);
        }
        if self.created_dir {
            let _ = std::fs::remove_dir(&self.local.paths.dir);
        }
        if let Some((parent, times)) = &self.parent_times
            && let Ok(f) = File::open(parent)
        {
            let _ = f.set_times(*times);
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
