//! The staging directory's lifetime: created for a run's downloads and, if
//! the run fails before files move into place, removed again, so the target
//! directory is left as it was; and [`BlobDir`], the sharded layout staging
//! and the prefetched blobs share.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use atlas_proto::Sha256Digest;

use crate::error::SyncError;
use crate::local::Local;
use crate::safe_dir::SafeDir;
use crate::state::STAGING_DIR;

/// A directory of blobs at `<first hex digit>/<sha256 hex>` (staging, and
/// the prefetched blobs), reached through handles opened without following
/// links. Spreading blobs over 16 subdirectories keeps parallel downloads
/// from queueing on one directory's lock for every create and rename
/// (measured: a quarter of the fetcher's CPU time in a cold install went to
/// spinning on that lock); more shards cost more in `mkdir` than they save.
#[derive(Debug)]
pub(crate) struct BlobDir {
    root: SafeDir,
    /// Shard handles opened so far, by first hex digit.
    shards: Mutex<HashMap<u8, Arc<SafeDir>>>,
}

impl BlobDir {
    pub(crate) fn new(root: SafeDir) -> Self {
        Self {
            root,
            shards: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn root(&self) -> &SafeDir {
        &self.root
    }

    /// The file name of `blob` in its shard.
    pub(crate) fn name(blob: &Sha256Digest) -> String {
        blob.to_hex()
    }

    /// Where `blob` is (for messages).
    pub(crate) fn display(&self, blob: &Sha256Digest) -> PathBuf {
        let hex = blob.to_hex();
        self.root.path().join(&hex[..1]).join(hex)
    }

    /// The shard directory of `blob`; with `create`, made if missing
    /// (`None` only without it). A link there is refused.
    pub(crate) fn shard(&self, blob: &Sha256Digest, create: bool) -> Result<Option<Arc<SafeDir>>, SyncError> {
        let hex = blob.to_hex();
        let key = hex.as_bytes()[0];
        let mut shards = self
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = shards.get(&key) {
            return Ok(Some(Arc::clone(s)));
        }
        let name = &hex[..1];
        let dir = if create {
            Some(self.root.create_dir(name)?)
        } else {
            self.root.open_dir(name)?
        };
        Ok(dir.map(|d| {
            let d = Arc::new(d);
            shards.insert(key, Arc::clone(&d));
            d
        }))
    }

    /// The directory and name holding `blob`, if it is here: in its shard,
    /// or directly under the root where earlier fetchers staged blobs (read
    /// only, to finish or undo an apply such a version left interrupted).
    pub(crate) fn find(&self, blob: &Sha256Digest) -> Result<Option<(Arc<SafeDir>, String)>, SyncError> {
        let name = Self::name(blob);
        if let Some(shard) = self.shard(blob, false)?
            && shard.entry(&name)?.is_some()
        {
            return Ok(Some((shard, name)));
        }
        if self.root.entry(&name)?.is_some() {
            return Ok(Some((Arc::new(self.root.try_clone()?), name)));
        }
        Ok(None)
    }
}

/// Creates the staging directory and, unless committed, restores the
/// directory on drop: removes staging and puts back the modification times
/// of DIR and `.atlas/` (the lock removes `.atlas/` and DIR themselves if
/// this run created them).
#[derive(Debug)]
pub(crate) struct StagingGuard {
    state: SafeDir,
    dir: SafeDir,
    /// Times of `.atlas/` and DIR before this run.
    times: (Option<std::fs::FileTimes>, Option<std::fs::FileTimes>),
    armed: bool,
}

impl StagingGuard {
    /// Empties and opens `.atlas/staging/` (a stale one, or a link there, is
    /// removed, never followed).
    pub(crate) fn create(local: &Local) -> Result<(Self, BlobDir), SyncError> {
        let (state, dir) = (local.state()?.try_clone()?, local.dir()?.try_clone()?);
        let guard = Self {
            times: (state.times(), dir.times()),
            state,
            dir,
            armed: true,
        };
        guard.state.remove_all(STAGING_DIR)?;
        let staging = guard.state.create_dir(STAGING_DIR)?;
        Ok((guard, BlobDir::new(staging)))
    }

    /// Files are about to move into place: from now on, keep the state directory.
    pub(crate) fn commit(mut self) {
        self.armed = false;
    }

    fn restore(&self) {
        let _ = self.state.remove_all(STAGING_DIR);
        if let Some(t) = self.times.0 {
            self.state.set_times(t);
        }
        if let Some(t) = self.times.1 {
            self.dir.set_times(t);
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
