//! Downloading a build's blobs ahead of its apply: a runner fetches and
//! verifies everything while the server still runs, so the apply after the
//! server stops only moves files (`.atlas/prefetch/`, same filesystem).

use super::{Check, CheckStatus, Syncer};
use crate::cache::BlobCache;
use crate::download::{self, Transfer};
use crate::error::SyncError;
use crate::local::Local;
use crate::plan::Plan;
use crate::progress::{Phase, Progress};
use crate::staging::BlobDir;
use crate::state::PREFETCH_DIR;

/// What [`Syncer::prefetch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Prefetched {
    /// Distinct blobs ready for the apply.
    pub blobs: usize,
    /// Bytes downloaded by this call (blobs already prefetched cost nothing).
    pub bytes_downloaded: u64,
}

impl Syncer {
    /// Downloads and verifies every blob `plan` needs into `.atlas/prefetch/`
    /// without touching installed files; a later [`Syncer::apply`] of the same
    /// plan moves them into staging instead of downloading them, hashing
    /// each as it takes it (the directory is writable by the server's user;
    /// see [`crate::verified`]). Blobs already prefetched are hashed and
    /// kept, so an interrupted prefetch resumes. The apply deletes what is
    /// left once it succeeds. Takes no lock: it writes only under
    /// `.atlas/prefetch/`.
    ///
    /// Dropping the future stops the downloads; blobs already complete stay
    /// (a later prefetch or apply uses them), a partial one stays as a
    /// `.part` file that the next attempt overwrites. Nothing installed changes.
    pub async fn prefetch(
        &self,
        check: &Check,
        plan: &Plan,
        progress: &dyn Progress,
    ) -> Result<Prefetched, SyncError> {
        if check.status != CheckStatus::Changed || plan.downloads().is_empty() {
            return Ok(Prefetched::default());
        }
        // `.atlas/` and `prefetch/` are opened without following links: a
        // link there is refused.
        let local = Local::create(&self.paths)?;
        let dir = &BlobDir::new(local.state()?.create_dir(PREFETCH_DIR)?);
        let downloads = plan.downloads();
        progress.phase(&Phase::Download {
            blobs: downloads.len(),
            bytes: plan.download_bytes(),
        });
        let cache = match &self.opts.cache {
            Some(c) => Some(BlobCache::open(c)?),
            None => None,
        };
        let partial = crate::partial::PartialDir::new(std::sync::Arc::new(local.state()?.try_clone()?));
        let transfer = Transfer {
            parallelism: self.opts.parallelism,
            retry: &self.opts.retry,
            deadline: self.deadline(),
            cache: cache.as_ref(),
            // Blobs already here stay (a rename onto itself).
            prefetched: Some(dir),
            interrupt: &self.opts.interrupt,
            partial: Some(&partial),
        };
        let staged = self
            .by(
                self.deadline(),
                download::download_all(&self.source, plan, dir, transfer, progress),
            )
            .await?;
        Ok(Prefetched {
            blobs: staged.blobs.len(),
            bytes_downloaded: staged.bytes,
        })
    }
}

/// Deletes the prefetched blobs (after a successful apply used them; a
/// link in their place is removed, never followed).
pub fn discard(local: &Local) {
    let Some(state) = local.try_state() else {
        return; // no `.atlas/`: nothing prefetched
    };
    if let Err(e) = state.remove_all(PREFETCH_DIR) {
        tracing::warn!("cannot remove {}: {e}", local.paths.prefetch.display());
    }
}

/// The prefetched blobs, if any (a link in their place is refused).
pub(super) fn open(local: &Local) -> Result<Option<BlobDir>, SyncError> {
    Ok(local.state()?.open_dir(PREFETCH_DIR)?.map(BlobDir::new))
}
