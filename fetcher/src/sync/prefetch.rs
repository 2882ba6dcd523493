//! Downloading a build's blobs ahead of its apply: a runner fetches and
//! verifies everything while the server still runs, so the apply after the
//! server stops only moves files (`.atlas/prefetch/`, same filesystem).

use atlas_proto::IoError;

use super::{Check, CheckStatus, Syncer};
use crate::cache::BlobCache;
use crate::download::{self, Transfer};
use crate::error::SyncError;
use crate::plan::Plan;
use crate::progress::{Phase, Progress};
use crate::state::StatePaths;

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
    /// plan moves them into staging instead of downloading them. Blobs already
    /// prefetched are kept, so an interrupted prefetch resumes. The apply
    /// deletes what is left once it succeeds. Takes no lock: it writes only
    /// under `.atlas/prefetch/`, which an apply reads by size and moves.
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
        let dir = &self.paths.prefetch;
        std::fs::create_dir_all(dir).map_err(IoError::at("creating the prefetch directory", dir))?;
        let downloads = plan.downloads();
        progress.phase(&Phase::Download {
            blobs: downloads.len(),
            bytes: plan.download_bytes(),
        });
        let cache = match &self.opts.cache {
            Some(c) => Some(BlobCache::open(c)?),
            None => None,
        };
        let partial = crate::partial::PartialDir::new(&self.paths.state_dir);
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

/// Deletes the prefetched blobs (after a successful apply used them).
pub(super) fn discard(paths: &StatePaths) {
    match std::fs::remove_dir_all(&paths.prefetch) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", paths.prefetch.display()),
    }
}
