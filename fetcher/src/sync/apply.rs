//! [`Syncer::apply`]: downloads what the plan needs into staging (from the
//! prefetched blobs, the shared cache or the store, each verified), backs up
//! the user's files the plan replaces, then hands the journaled apply
//! ([`crate::journal`]) to a blocking thread together with the directory's
//! lock, and writes `install.json` and `trust.json` with it.

use std::sync::Arc;

use atlas_proto::IoError;
use tokio::time::Instant;

use super::{BACKUPS_DIR, Check, CheckStatus, Syncer, keychain, prefetch};
use crate::download::{self, Transfer};
use crate::durable;
use crate::error::SyncError;
use crate::history;
use crate::journal::{self, Journal, Recovery};
use crate::lock::DirLock;
use crate::place;
use crate::plan::{FileAction, Plan, PlannedFile};
use crate::progress::{Phase, Progress};
use crate::report::{Outcome, Report};
use crate::staging::StagingGuard;
use crate::state::{self, InstallState, InstalledFile, PastBuild, Sha256Hex, TrustEntry, TrustState};

/// What `install.json` records for a planned file, before its download.
fn installed_entry(f: &PlannedFile) -> InstalledFile {
    if f.action == FileAction::Modified
        && let Some(prev) = &f.previous
    {
        // The installed content, and the mtime of the user's version.
        return InstalledFile {
            modified: true,
            mtime_ns: f.mtime_ns,
            ..prev.clone()
        };
    }
    InstalledFile {
        preserve: f.preserve,
        mtime_ns: if f.action == FileAction::Keep && !f.preserve {
            f.mtime_ns
        } else {
            None
        },
        ..InstalledFile::new(f.path.clone(), f.sha256, f.size)
    }
}

impl Syncer {
    /// The trust state to store after accepting `check`'s pointer, or `None` if unchanged.
    fn new_trust(&self, check: &Check) -> Option<TrustState> {
        let p = check.pointer.as_ref()?;
        let key = state::channel_key(&self.opts.pack, &self.opts.channel);
        let entry = TrustEntry {
            version: p.payload.version,
            payload_sha256: Sha256Hex(p.payload_digest),
            build: Sha256Hex(p.build),
            etag: check.etag.clone(),
            expires_at: p.payload.expires_at,
            trusted_keys: check.trusted_keys.clone(),
            fetched_at: Some(self.now()),
        };
        if let Some(prev) = check.trust.channels.get(&key) {
            // Only the time of the full fetch differs: worth a write when
            // it renews a validator the next run may send (docs/FORMAT.md
            // §5); a source without validators (a directory) or one still
            // fresh leaves the file, and the directory, as they were.
            let same = TrustEntry {
                fetched_at: prev.fetched_at,
                ..entry.clone()
            } == *prev;
            if same && (entry.etag.is_none() || super::check::validator_fresh(prev, self.now())) {
                return None;
            }
        }
        let mut t = check.trust.clone();
        t.format = state::STATE_FORMAT;
        t.last_time = Some(t.last_time.unwrap_or(0).max(self.now()));
        t.channels.insert(key, entry);
        Some(t)
    }

    /// Takes the directory's lock, downloads and applies `plan`, then writes
    /// `install.json` and `trust.json`.
    /// On any error before files are moved into place, the directory is left exactly as it was.
    ///
    /// Dropping the future while blobs download stops the downloads, removes
    /// staging and releases the lock: the directory is as it was. Once the
    /// journaled apply has started moving files (on a blocking thread), it
    /// runs to the end regardless, holding the lock until `install.json` is
    /// written: a run started meanwhile waits for the lock or fails with
    /// [`SyncError::Locked`], and the directory ends with exactly one build.
    /// Only the report is lost. [`SyncOptions::interrupt`](super::SyncOptions::interrupt)
    /// stops the run at its next step, up to the start of that apply.
    pub async fn apply(
        &self,
        check: &Check,
        plan: &Plan,
        progress: &dyn Progress,
    ) -> Result<Report, SyncError> {
        let (lock, recovered) = self.lock_and_recover()?;
        if recovered != Recovery::Clean {
            return Err(SyncError::Conflict {
                path: journal::JOURNAL_FILE.into(),
                reason: "an interrupted apply was just recovered, so this plan is stale: check again".into(),
            });
        }
        self.apply_by(lock, self.deadline(), check, plan, None, progress)
            .await
    }

    /// Applies `plan` under `lock`, which the blocking apply keeps until it
    /// is done. `rollback` carries the history and hold of a rollback
    /// (`None`: a normal update, which records the previous build in the history).
    pub(super) async fn apply_by(
        &self,
        lock: Arc<DirLock>,
        deadline: Option<Instant>,
        check: &Check,
        plan: &Plan,
        rollback: Option<(Vec<PastBuild>, Sha256Hex)>,
        progress: &dyn Progress,
    ) -> Result<Report, SyncError> {
        if let (Some(root), Some(ks), true) = (&self.opts.root, &check.keyset, check.keyset_changed) {
            // Verified from the root: safe to keep whatever happens next.
            keychain::save(&self.paths.state_dir, root, ks)?;
        }
        let trust = self.new_trust(check);
        if check.status != CheckStatus::Changed || check.manifest.is_none() {
            // Not modified, or same build intact: at most a trust update.
            if let Some(t) = &trust {
                durable::write_atomic_json(&self.paths.trust, t)?;
            }
            return Ok(self.report(check, Outcome::Current));
        }
        let (history, held) = match rollback {
            Some((history, held)) => (history, Some(held)),
            None => (history::after_update(check.install.as_ref(), &check.build), None),
        };
        let mut install = InstallState {
            format: state::STATE_FORMAT,
            pack: self.opts.pack.clone(),
            channel: self.opts.channel.clone(),
            build: Sha256Hex(check.build),
            version: check.version,
            side: self.opts.side,
            selection: self.opts.selection.clone(),
            files: plan.files.iter().map(installed_entry).collect(),
            history,
            held,
        };
        // Kept for a later rollback; written only once this run is sure to
        // install the build (a failed run leaves the directory as it was).
        let keep_manifest = || match &check.manifest_bytes {
            Some(bytes) => history::save(&self.paths, &check.build, bytes),
            None => Ok(()),
        };
        if plan.is_noop() {
            keep_manifest()?;
            if check.install.as_ref() != Some(&install) {
                durable::write_atomic_json(&self.paths.install, &install)?;
            }
            if let Some(t) = &trust {
                durable::write_atomic_json(&self.paths.trust, t)?;
            }
            return Ok(self.report(check, Outcome::Current).with_plan(plan));
        }

        place::preflight(&self.opts.dir, plan)?;
        let guard = StagingGuard::create(&self.paths)?;
        let downloads = plan.downloads();
        progress.phase(&Phase::Download {
            blobs: downloads.len(),
            bytes: plan.download_bytes(),
        });
        tracing::info!(
            blobs = downloads.len(),
            bytes = plan.download_bytes(),
            "downloading"
        );
        let cache = match &self.opts.cache {
            Some(dir) => Some(crate::cache::BlobCache::open(dir)?),
            None => None,
        };
        let partial = crate::partial::PartialDir::new(&self.paths.state_dir);
        let transfer = Transfer {
            parallelism: self.opts.parallelism,
            retry: &self.opts.retry,
            deadline,
            cache: cache.as_ref(),
            prefetched: Some(&self.paths.prefetch),
            interrupt: &self.opts.interrupt,
            partial: Some(&partial),
        };
        let staged = self
            .by(
                deadline,
                download::download_all(&self.source, plan, &self.paths.staging, transfer, progress),
            )
            .await?;
        // Every placement of a blob ends with the staged file's mtime (see
        // `place::copy_into_place`), so it can be recorded now.
        for (f, rec) in plan.files.iter().zip(install.files.iter_mut()) {
            if f.needs_download() {
                rec.mtime_ns = staged
                    .blobs
                    .get(&f.sha256)
                    .and_then(|b| std::fs::metadata(b).ok())
                    .and_then(|m| durable::mtime_ns(&m));
            }
        }
        // The last point where the run can stop with nothing changed.
        self.opts.interrupt.check()?;
        let backed_up = self.back_up(plan)?;
        keep_manifest()?;
        let kept = install.clone();

        progress.phase(&Phase::Apply {
            files: plan.files.iter().filter(|f| f.needs_download()).count(),
            removals: plan.remove.len(),
        });
        tracing::info!("applying");
        let journal = Journal::new(&self.opts.dir, plan, install, check.install.clone(), trust)?;
        journal.write(&self.paths)?;
        // From here on, the journal (not the staging guard) decides what happens to staging.
        guard.commit();
        let paths = self.paths.clone();
        // The task owns a share of the lock: if this future is dropped while
        // it runs, the directory stays locked until the files are in place
        // and the state written (then the leftovers are cleared, still locked).
        let applied = tokio::task::spawn_blocking(move || {
            let _lock = lock;
            let r = journal::forward(&paths, &journal);
            match &r {
                Ok(()) => {
                    history::prune(&paths, &kept);
                    prefetch::discard(&paths);
                }
                Err(e) => {
                    tracing::error!("apply failed, restoring the previous build: {e}");
                    if let Err(e2) = journal::backward(&paths, &journal) {
                        tracing::error!("restoring failed too; the next run finishes the recovery: {e2}");
                    }
                }
            }
            r
        })
        .await
        .map_err(|e| SyncError::Internal(format!("apply task failed: {e}")));
        applied.and_then(|r| r)?;
        progress.phase(&Phase::State);
        let mut report = self.report(check, Outcome::Updated).with_plan(plan);
        report.bytes_downloaded = staged.bytes;
        report.backup_dir = backed_up;
        Ok(report)
    }

    /// Copies the user's version of each file the plan replaces with a
    /// backup to `.atlas/backups/<unix-time>/<path>`. Copies only (the journal
    /// still moves the file itself), so a crash here changes nothing managed.
    fn back_up(&self, plan: &Plan) -> Result<Option<String>, SyncError> {
        let mut todo = plan.files.iter().filter(|f| f.backup).peekable();
        if todo.peek().is_none() {
            return Ok(None);
        }
        let rel = format!("{}/{}", BACKUPS_DIR, self.now());
        let root = self.paths.state_dir.join(&rel);
        for f in todo {
            let from = place::safe_dest(&self.opts.dir, &f.path)?;
            let to = place::safe_dest(&root, &f.path)?;
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(IoError::at("creating directory", parent))?;
            }
            std::fs::copy(&from, &to).map_err(IoError::at("backing up", &from))?;
            tracing::warn!(path = %f.path, backup = %to.display(), "backed up a file you changed before replacing it");
        }
        Ok(Some(format!("{}/{rel}", state::STATE_DIR)))
    }
}
