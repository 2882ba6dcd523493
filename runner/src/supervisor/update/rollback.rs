//! Going back: a new build that failed its health window is rolled back
//! (previous install and world restored from the backup, the build marked
//! bad), and `atlas-runner rollback` returns to the build installed before.

use super::{InstallError, Timings};

use atlas_fetcher::{NoProgress, SyncError};

use crate::backup::BackupKind;
use crate::channel::{RunnerState, Updater, no_source};
use crate::error::{ActionError, ErrorKind};
use crate::state::{State, UpdateStep};
use crate::supervisor::Outcome;
use crate::supervisor::actor::Actor;
use crate::webhook::WebhookKind;

/// Why `rollback` cannot run, said once and without stopping anything.
fn rollback_refusal(e: SyncError) -> ActionError {
    match e {
        SyncError::Conflict { reason, .. } => {
            ActionError::new(ErrorKind::Local, format!("nothing to roll back to: {reason}"))
        }
        e => ActionError::from(e).context("cannot roll back"),
    }
}

/// Checks, without stopping anything, that `atlas-runner rollback` has a
/// build to go back to (a dry run of the fetcher's rollback).
pub(crate) async fn rollback_possible(u: &Updater) -> Result<(), ActionError> {
    let syncer = u.rollback_syncer().map_err(|e| e.context("cannot roll back"))?;
    syncer
        .rollback(true, &NoProgress)
        .await
        .map(drop)
        .map_err(rollback_refusal)
}

impl Actor {
    /// Restores the backup taken before the update, marks the build bad and
    /// starts the previous build again (unless the daemon is shutting down).
    pub(super) async fn roll_back(
        &mut self,
        backup: &str,
        restart: bool,
        why: &str,
        target: &str,
    ) -> Result<Timings, InstallError> {
        self.step(UpdateStep::RollingBack, why);
        if self.proc_.is_some() {
            self.stop_process().await;
        }
        if let Err(e) = self.backups.restore(backup).await {
            let msg = format!("{why}; restoring backup {backup} failed too: {e}");
            self.go(State::Failed, &msg);
            return Err(InstallError::Failed(ActionError::new(ErrorKind::Backup, msg)));
        }
        // The bad build's staged blobs must not linger (nor go into later backups).
        self.discard_prefetch();
        if !target.is_empty() {
            self.sup.inner.lock().bad_build = Some(target.to_owned());
            let state = RunnerState {
                bad_build: Some(target.to_owned()),
                bad_reason: Some(why.to_owned()),
            };
            if let Err(e) = state.save(&self.cfg.state_dir()) {
                tracing::warn!("cannot remember the bad build: {e}");
            }
        }
        self.refresh_build();
        self.sup.bus().event(
            "rollback",
            format!("{why}; restored backup {backup} and marked the build bad"),
            serde_json::json!({"build": target, "backup": backup, "reason": why}),
        );
        let rolled_back = || InstallError::RolledBack(ActionError::new(ErrorKind::Server, why));
        // `atlas-runner rollback` that failed (no target) did not roll anything back.
        let done = if target.is_empty() {
            "the rollback failed: the state before it is restored"
        } else {
            "rolled back"
        };
        if !restart || self.shutdown.is_requested() {
            self.go(State::Stopped, done);
            return Err(rolled_back());
        }
        self.step(UpdateStep::Starting, "previous build");
        match self.launch_and_wait_ready().await {
            Ok(()) => {
                self.go(State::Updating(UpdateStep::HealthCheck), "previous build");
                self.go(State::Running, done);
                Err(rolled_back())
            }
            Err(f) if f.shutting_down => {
                self.stop_process().await;
                self.go(
                    State::Stopped,
                    "rolled back; not started: the daemon is shutting down",
                );
                Err(rolled_back())
            }
            Err(f) => {
                let msg = format!("{why}; the previous build did not start either: {}", f.reason);
                self.go(State::Failed, &msg);
                Err(InstallError::Failed(ActionError::new(ErrorKind::Server, msg)))
            }
        }
    }

    /// After a failed backup: nothing changed, so start again if it ran
    /// (unless the daemon is shutting down).
    pub(super) async fn back_to_previous_state(&mut self, was_running: bool) {
        self.go(State::Updating(UpdateStep::Applying), "nothing applied");
        if !was_running || self.shutdown.is_requested() {
            self.go(State::Stopped, "");
            return;
        }
        self.go(State::Updating(UpdateStep::Starting), "previous build");
        match self.launch_and_wait_ready().await {
            Ok(()) => {
                self.go(State::Updating(UpdateStep::HealthCheck), "");
                self.go(State::Running, "");
            }
            Err(f) if f.shutting_down => {
                self.stop_process().await;
                self.go(State::Stopped, "not started: the daemon is shutting down");
            }
            Err(f) => self.go(State::Failed, &f.reason),
        }
    }

    /// `atlas-runner rollback`: back to the build installed before, with a
    /// backup first. A shutdown during the backup leaves the current build;
    /// after the rollback was applied, the previous build stays, stopped.
    pub(crate) async fn rollback(&mut self) -> Result<Outcome, ActionError> {
        let u = self.updater.clone().ok_or_else(|| no_source("roll back on"))?;
        // Nothing stops unless there is a build to go back to.
        rollback_possible(&u).await?;
        let syncer = u.rollback_syncer()?;
        let was_running = self.state() == State::Running;
        if was_running {
            self.go(State::Updating(UpdateStep::Announcing), "rollback");
            self.step(UpdateStep::Stopping, "rollback");
            self.stop_process().await;
        }
        self.step(UpdateStep::BackingUp, "before rollback");
        let backup = self
            .backups
            .create(BackupKind::Cold, "before rollback", None)
            .await;
        let backup = match (backup, self.shutdown.is_requested()) {
            (Ok(b), false) => b,
            (_, true) => {
                self.go(State::Stopped, "rollback cut short by the daemon's shutdown");
                return Err(ActionError::shutting_down(
                    "the rollback did not run; nothing changed",
                ));
            }
            (Err(e), false) => {
                self.back_to_previous_state(was_running).await;
                return Err(
                    ActionError::from(e).context("backup before the rollback failed, nothing changed")
                );
            }
        };
        self.step(UpdateStep::Applying, "previous build");
        let r = match syncer.rollback(false, &NoProgress).await {
            Ok(_) => u.provision().await,
            Err(e) => Err(self.explain_locked(e.into())),
        };
        if let Err(e) = r {
            let e = e.context("rollback failed");
            // Back to where it was; the error says what failed, once.
            let _ = self.roll_back(&backup.id, was_running, &e.message, "").await;
            return Err(e);
        }
        self.refresh_build();
        self.notify(
            WebhookKind::Rollback,
            "Rolled back",
            "back to the previous build on request",
        );
        if !was_running || self.shutdown.is_requested() {
            self.go(State::Stopped, "rolled back");
            return Ok(self.done("rolled back"));
        }
        self.step(UpdateStep::Starting, "previous build");
        match self.launch_and_wait_ready().await {
            Ok(()) => {
                self.go(State::Updating(UpdateStep::HealthCheck), "");
                self.go(State::Running, "rolled back");
                Ok(self.done("rolled back"))
            }
            Err(f) if f.shutting_down => {
                self.stop_process().await;
                self.go(
                    State::Stopped,
                    "rolled back; not started: the daemon is shutting down",
                );
                Ok(self.done("rolled back; not started: the daemon is shutting down"))
            }
            Err(f) => {
                self.go(State::Failed, &f.reason);
                Err(ActionError::new(ErrorKind::Server, f.reason))
            }
        }
    }

    /// Removes `.atlas/prefetch/` (the blobs of a build that was rolled back).
    pub(super) fn discard_prefetch(&self) {
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        // Through handles: a link in place of `.atlas` or `prefetch` is
        // never followed (the latter is removed as a link).
        match atlas_fetcher::local::Local::open(&paths) {
            Ok(local) => atlas_fetcher::sync::prefetch::discard(&local),
            Err(e) => tracing::warn!("cannot remove {}: {e}", paths.prefetch.display()),
        }
    }
}
