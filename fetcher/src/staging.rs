//! The staging directory's lifetime: created for a run's downloads and, if
//! the run fails before files move into place, removed again together with
//! anything else the run created, so the target directory is left as it was.

use std::path::{Path, PathBuf};

use atlas_proto::Sha256Digest;

use crate::error::SyncError;
use crate::state::StatePaths;
use atlas_proto::IoError;

/// Where a blob is staged (or prefetched) under `dir`: `<dir>/<first hex
/// digit>/<hex>`. Spreading blobs over 16 subdirectories keeps parallel
/// downloads from queueing on one directory's lock for every create and
/// rename (measured: a quarter of the fetcher's CPU time in a cold install
/// went to spinning on that lock); more shards cost more in `mkdir` than
/// they save.
pub(crate) fn blob_path(dir: &Path, blob: &Sha256Digest) -> PathBuf {
    let hex = blob.to_hex();
    dir.join(&hex[..1]).join(hex)
}

/// Where earlier fetchers staged a blob: directly under `dir`. Only read,
/// to finish or undo an apply such a version left interrupted.
pub(crate) fn legacy_blob_path(dir: &Path, blob: &Sha256Digest) -> PathBuf {
    dir.join(blob.to_hex())
}

/// Creates the staging directory and, unless committed, restores the
/// directory on drop: removes staging, and `.atlas/` and the target
/// directory themselves if this run created them, and puts back the
/// modification times of the directories it created entries in.
#[derive(Debug)]
pub(crate) struct StagingGuard {
    staging: PathBuf,
    remove_state_dir: Option<PathBuf>,
    remove_dir: Option<PathBuf>,
    /// Directories whose times to restore, with their times before this run.
    times: Vec<(PathBuf, std::fs::FileTimes)>,
    armed: bool,
}

fn times_of(p: &Path) -> Option<(PathBuf, std::fs::FileTimes)> {
    let m = std::fs::metadata(p).ok()?;
    let mut t = std::fs::FileTimes::new().set_modified(m.modified().ok()?);
    if let Ok(a) = m.accessed() {
        t = t.set_accessed(a);
    }
    Some((p.to_owned(), t))
}

impl StagingGuard {
    pub(crate) fn create(paths: &StatePaths) -> Result<Self, SyncError> {
        let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        let remove_dir = (!exists(&paths.dir)).then(|| paths.dir.clone());
        // The parent's times change only if this run creates the target directory.
        let parent = paths.dir.parent().filter(|_| remove_dir.is_some());
        let mut guard = Self {
            staging: paths.staging.clone(),
            remove_state_dir: (!exists(&paths.state_dir)).then(|| paths.state_dir.clone()),
            remove_dir,
            times: [parent, Some(paths.dir.as_path()), Some(paths.state_dir.as_path())]
                .into_iter()
                .flatten()
                .filter_map(times_of)
                .collect(),
            armed: true,
        };
        if exists(&paths.staging) {
            std::fs::remove_dir_all(&paths.staging)
                .map_err(IoError::at("removing a stale staging directory", &paths.staging))?;
        }
        if let Err(e) = std::fs::create_dir_all(&paths.staging) {
            guard.restore();
            guard.armed = false;
            return Err(IoError::at("creating staging directory", &paths.staging)(e).into());
        }
        Ok(guard)
    }

    /// Files are about to move into place: from now on, keep the state directory.
    pub(crate) fn commit(mut self) {
        self.armed = false;
    }

    fn restore(&self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        if let Some(d) = &self.remove_state_dir {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(d) = &self.remove_dir {
            let _ = std::fs::remove_dir(d);
        }
        for (dir, times) in &self.times {
            if let Ok(f) = std::fs::File::open(dir) {
                let _ = f.set_times(*times);
            }
        }
    }
}

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if self.armed {
            self.restore();
        }
    }
}
