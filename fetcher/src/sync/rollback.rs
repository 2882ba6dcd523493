//! `rollback`: re-install the build this directory had before the current
//! one, from its kept manifest (`.atlas/builds/`, checked against its build
//! id) and blobs from the store, through the same staged, journaled apply as
//! a sync. The build rolled back from is then held: syncs leave the
//! directory alone while the channel still points at it, and install the
//! next build it points to as usual.

use super::{Check, SyncOptions, Syncer};
use crate::error::SyncError;
use crate::history;
use crate::progress::Progress;
use crate::report::{Outcome, Report};
use crate::state;

impl Syncer {
    /// A syncer for `rollback` of `dir`: pack, channel, side and optional
    /// files are those of the install; no key is needed (no pointer is read).
    pub fn for_rollback(mut opts: SyncOptions) -> Result<Self, SyncError> {
        opts.follow_install("roll back")?;
        Self::with_keys_required(opts, false)
    }

    /// Re-installs the previous build (see the module docs). With `dry_run`,
    /// reports what would change and writes nothing.
    ///
    /// Dropping the future does what it does to [`Syncer::sync`]: before the
    /// apply starts, nothing changes; after, the apply finishes on its own.
    pub async fn rollback(&self, dry_run: bool, progress: &dyn Progress) -> Result<Report, SyncError> {
        let lock = if dry_run {
            None
        } else {
            Some(self.lock_and_recover()?.0)
        };
        let install = self.opts.recorded_install("roll back")?;
        let Some(target) = install.history.first().cloned() else {
            return Err(SyncError::Conflict {
                path: format!("{}/{}", state::STATE_DIR, state::INSTALL_FILE),
                reason: format!(
                    "no earlier build is kept here: rollback needs a build this directory installed \
                     before the current one (the last {} are kept)",
                    history::KEEP_BUILDS
                ),
            });
        };
        let local = crate::local::Local::open(&self.paths)?;
        let manifest = history::load(&local, &target.build.0, &self.opts.pack, &self.opts.limits)?;
        let check = Check::new_changed(
            target.build.0,
            install.version,
            manifest,
            local.load_trust()?,
            install.clone(),
        );
        let plan = self.plan(&check, progress)?;
        let Some(lock) = lock else {
            return Ok(self.dry_run_report(&check, &plan));
        };
        let rest = install.history.iter().skip(1).cloned().collect();
        let mut report = self
            .apply_by(
                lock,
                self.deadline(),
                &check,
                &plan,
                Some((rest, install.build)),
                progress,
            )
            .await?;
        if report.outcome == Outcome::Current {
            // Every file already matched the earlier build: only the state moved.
            report.outcome = Outcome::Updated;
        }
        Ok(report)
    }
}
