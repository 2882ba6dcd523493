//! The actor's updates: check the channel, stage the new build while the
//! server runs, then announce, stop, back up, apply, start and watch a
//! health window; a new build that fails is rolled back (previous install
//! and world restored from the backup) and marked bad. Also `atlas-runner
//! rollback`, back to the build installed before.
//!
//! # A shutdown during an update
//! The daemon's shutdown is acted on inside the long steps, not only between
//! actions: the channel check, the download of the new build, the
//! announcement wait, the backup (its archive stops between entries), the
//! start and the health window end as soon as it is requested. The stop
//! runs its course (the shutdown stops the server anyway), and so does the
//! apply: the fetcher's journaled switch is never cut in the middle. What
//! the server directory holds afterwards:
//! - cut before the apply: the previous build and world, untouched; the
//!   blobs staged so far are kept for the next attempt;
//! - cut after the apply of a running server's update: the server is
//!   stopped and the backup taken before the update restored, so the
//!   previous build and world are back. The new build is not marked bad:
//!   the next poll tries it again;
//! - a stopped server's update that applied is complete (there is no health
//!   window to cut).
//!
//! Either way the update ends with an [`ErrorKind::ShuttingDown`] error, and
//! the machine in `running` (cut while announcing; the shutdown then stops
//! the server) or `stopped`.

use std::time::Instant;

use atlas_fetcher::{Check, CheckStatus, NoProgress, Syncer};

use super::actor::{Actor, PING_TIMEOUT};
use super::process::describe_exit;
use super::{Outcome, UpdateOutcome, UpdateReport};
use crate::backup::{BackupInfo, BackupKind};
use crate::channel::{RunnerState, Updater, ms, no_source};
use crate::error::{ActionError, ErrorKind};
use crate::state::{State, UpdateStep};
use crate::webhook::WebhookKind;

/// Durations of the update's steps, for events, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    pub stop_ms: u64,
    pub backup_ms: u64,
    pub apply_ms: u64,
    pub start_ms: u64,
}

/// Why an install did not end with the new build running.
#[derive(Debug)]
enum InstallError {
    /// The new build failed; the previous one is back and the build is marked bad.
    RolledBack(ActionError),
    /// Nothing was installed, or even the way back failed, or the daemon is
    /// shutting down (see the module docs for what is left).
    Failed(ActionError),
}

/// Why the new build is not up.
enum NotUp {
    Failed(String),
    ShuttingDown,
}

fn report(outcome: UpdateOutcome, check: &Check, current: &str, message: String) -> UpdateReport {
    UpdateReport {
        outcome,
        current_build: current.into(),
        target_build: check.build.to_hex(),
        target_version: check.version,
        message,
    }
}

impl Actor {
    fn updater(&self) -> Result<Updater, ActionError> {
        self.updater.clone().ok_or_else(|| no_source("update from"))
    }

    /// The installed build and version, as the fetcher recorded them.
    pub(crate) fn refresh_build(&self) {
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        let local = atlas_fetcher::local::Local::open(&paths);
        if let Ok(Some(i)) = local.and_then(|l| atlas_fetcher::state::load_install(&l)) {
            let mut s = self.sup.inner.lock();
            s.build = i.build.0.to_hex();
            s.version = i.version.to_string();
            drop(s);
            self.metrics
                .set_build(&i.build.0.to_hex(), &i.version.to_string());
        }
    }

    /// `update check` / `update apply` / the poll timer.
    pub(crate) async fn update(&mut self, auto: bool) -> Result<UpdateReport, ActionError> {
        let u = self.updater()?;
        let syncer = u.syncer()?;
        let current = self.sup.inner.lock().build.clone();
        let unchecked = || ActionError::shutting_down("the channel was not checked; nothing changed");
        let check = match self.shutdown.unless(syncer.check(&NoProgress)).await {
            None => return Err(unchecked()),
            // The fetcher's own interrupt (see `Updater::syncer`), or a failure it caused.
            Some(Err(_)) if self.shutdown.is_requested() => return Err(unchecked()),
            Some(r) => r?,
        };
        if check.status != CheckStatus::Changed || check.held {
            let msg = "the server is on the channel's build".to_owned();
            return Ok(report(UpdateOutcome::Current, &check, &current, msg));
        }
        let target = check.build.to_hex();
        if self.sup.inner.lock().bad_build.as_deref() == Some(target.as_str()) {
            let msg = format!("build {target} failed its health window before; waiting for a newer build");
            return Ok(report(UpdateOutcome::SkippedBad, &check, &current, msg));
        }
        if auto && !u.auto_apply() {
            self.sup.bus().event(
                "update",
                format!(
                    "build {target} (version {}) is available; `atlas-runner update apply` installs it",
                    check.version
                ),
                serde_json::json!({"build": target, "version": check.version}),
            );
            let msg = "auto_apply is off".to_owned();
            return Ok(report(UpdateOutcome::Available, &check, &current, msg));
        }
        let started = Instant::now();
        let result = self.install(&u, &syncer, &check).await;
        let (label, msg) = match &result {
            Ok(t) => (
                UpdateOutcome::Applied.as_str(),
                format!(
                    "build {target} (version {}) installed; downtime steps {t:?}",
                    check.version
                ),
            ),
            Err(InstallError::RolledBack(why)) => (UpdateOutcome::RolledBack.as_str(), why.message.clone()),
            Err(InstallError::Failed(e)) if e.kind == ErrorKind::ShuttingDown => {
                ("cancelled", e.message.clone())
            }
            Err(InstallError::Failed(e)) => ("failed", e.message.clone()),
        };
        self.metrics.observe_update(label, started.elapsed());
        self.refresh_build();
        match result {
            Ok(_) => {
                self.notify(WebhookKind::Update, "Server updated", &msg);
                Ok(report(UpdateOutcome::Applied, &check, &current, msg))
            }
            Err(InstallError::RolledBack(_)) => {
                self.notify(WebhookKind::Rollback, "Update rolled back", &msg);
                Ok(report(UpdateOutcome::RolledBack, &check, &current, msg))
            }
            Err(InstallError::Failed(e)) if e.kind == ErrorKind::ShuttingDown => Err(e),
            Err(InstallError::Failed(e)) => {
                self.notify(WebhookKind::Failed, "Update failed", &e.message);
                Err(e)
            }
        }
    }

    fn step(&self, step: UpdateStep, detail: &str) {
        self.go(State::Updating(step), detail);
        self.sup.bus().event(
            "update.step",
            format!(
                "update: {}{}",
                step.as_str(),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
            serde_json::json!({"step": step.as_str(), "detail": detail}),
        );
    }

    async fn install(
        &mut self,
        u: &Updater,
        syncer: &Syncer,
        check: &Check,
    ) -> Result<Timings, InstallError> {
        let target = check.build.to_hex();
        let shutdown = self.shutdown.clone();
        let untouched = || {
            InstallError::Failed(ActionError::shutting_down(format!(
                "the update to build {target} stopped before anything changed"
            )))
        };
        let mut t = Timings::default();
        // Download and verify while the server still runs (blobs staged so
        // far survive a drop: the next prefetch resumes).
        let plan = syncer
            .plan(check, &NoProgress)
            .map_err(|e| InstallError::Failed(e.into()))?;
        let pre = match shutdown.unless(syncer.prefetch(check, &plan, &NoProgress)).await {
            None => return Err(untouched()),
            Some(Err(_)) if shutdown.is_requested() => return Err(untouched()),
            Some(r) => r.map_err(|e| {
                InstallError::Failed(ActionError::from(e).context(format!("staging build {target}")))
            })?,
        };
        self.sup.bus().event(
            "update",
            format!(
                "build {target} staged ({} blobs, {} bytes downloaded)",
                pre.blobs, pre.bytes_downloaded
            ),
            serde_json::json!({"build": target, "blobs": pre.blobs, "bytes": pre.bytes_downloaded}),
        );
        let was_running = self.state() == State::Running;
        if was_running {
            self.step(UpdateStep::Announcing, &target);
            let wait = u.announce();
            let msg = format!(
                "say Restarting in {}s to update the modpack (version {})",
                wait.as_secs(),
                check.version
            );
            if let Err(e) = self.sup.console().send(&msg).await {
                tracing::warn!("announcing the update: {e}");
            }
            if shutdown.unless(tokio::time::sleep(wait)).await.is_none() {
                self.go(State::Running, "update cut short by the daemon's shutdown");
                return Err(untouched());
            }
            self.step(UpdateStep::Stopping, "");
            let s = Instant::now();
            self.stop_process().await;
            t.stop_ms = ms(s.elapsed());
        } else if self.state() == State::Crashed {
            return Err(InstallError::Failed(ActionError::new(
                ErrorKind::Server,
                "the server is restarting after a crash; try again later",
            )));
        }
        if shutdown.is_requested() {
            if was_running {
                self.go(State::Stopped, "update cut short by the daemon's shutdown");
            }
            return Err(untouched());
        }
        self.step(UpdateStep::BackingUp, "world and current install");
        let s = Instant::now();
        let label = format!("before build {target}");
        // Stops between entries when the daemon shuts down.
        let backup = self.backups.create(BackupKind::Cold, &label, None).await;
        let backup = match (backup, shutdown.is_requested()) {
            (Ok(b), false) => b,
            (_, true) => {
                self.go(State::Stopped, "update cut short by the daemon's shutdown");
                return Err(untouched());
            }
            (Err(e), false) => {
                self.back_to_previous_state(was_running).await;
                return Err(InstallError::Failed(
                    ActionError::from(e).context("backup before the update failed, nothing changed"),
                ));
            }
        };
        t.backup_ms = ms(s.elapsed());
        self.step(UpdateStep::Applying, &target);
        let s = Instant::now();
        // Never cut: the fetcher's apply is journaled, and dropping it
        // mid-way is not safe.
        let applied = async {
            // Re-plan: the stopped server may have written files since.
            let plan = syncer.plan(check, &NoProgress)?;
            syncer.apply(check, &plan, &NoProgress).await?;
            u.provision().await
        }
        .await;
        t.apply_ms = ms(s.elapsed());
        if shutdown.is_requested() && (was_running || applied.is_err()) {
            return self.undo_for_shutdown(&backup, &target).await;
        }
        if let Err(e) = applied {
            let why = format!("applying build {target} failed: {e}");
            return self.roll_back(&backup.id, was_running, &why, &target).await;
        }
        self.refresh_build();
        if !was_running {
            self.go(State::Stopped, "updated");
            return Ok(t);
        }
        self.step(UpdateStep::Starting, &target);
        let s = Instant::now();
        let started = self.launch_and_wait_ready().await;
        t.start_ms = ms(s.elapsed());
        let healthy = match started {
            Ok(()) => {
                self.step(UpdateStep::HealthCheck, "");
                self.health_window().await
            }
            Err(f) if f.shutting_down => Err(NotUp::ShuttingDown),
            Err(f) => Err(NotUp::Failed(f.reason)),
        };
        match healthy {
            Ok(()) => {
                self.go(State::Running, "");
                self.sup.bus().event(
                    "update",
                    format!("build {target} is up"),
                    serde_json::json!({"build": target, "timings": t, "backup": backup.id}),
                );
                Ok(t)
            }
            Err(NotUp::ShuttingDown) => self.undo_for_shutdown(&backup, &target).await,
            Err(NotUp::Failed(why)) => {
                let why = format!("build {target} failed its health window: {why}");
                self.roll_back(&backup.id, true, &why, &target).await
            }
        }
    }

    /// The daemon shuts down after the new build was applied: stop the
    /// server and restore the backup taken before the update, without
    /// marking the build bad. Ends stopped.
    async fn undo_for_shutdown(
        &mut self,
        backup: &BackupInfo,
        target: &str,
    ) -> Result<Timings, InstallError> {
        self.step(UpdateStep::RollingBack, "the daemon is shutting down");
        if self.proc_.is_some() {
            self.stop_process().await;
        }
        if let Err(e) = self.backups.restore(&backup.id).await {
            let e = ActionError::from(e).context(format!(
                "the daemon is shutting down during the update to build {target}, and restoring backup {} failed",
                backup.id
            ));
            self.go(State::Failed, &e.message);
            return Err(InstallError::Failed(e));
        }
        self.refresh_build();
        let what = format!(
            "the update to build {target} was undone: backup {} restored (the build is not marked bad)",
            backup.id
        );
        self.sup.bus().event(
            "update",
            format!("the daemon is shutting down: {what}"),
            serde_json::json!({"build": target, "backup": backup.id, "undone": true}),
        );
        self.go(State::Stopped, "update undone: the daemon is shutting down");
        Err(InstallError::Failed(ActionError::shutting_down(what)))
    }

    /// Restores the backup taken before the update, marks the build bad and
    /// starts the previous build again (unless the daemon is shutting down).
    async fn roll_back(
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
        if !restart || self.shutdown.is_requested() {
            self.go(State::Stopped, "rolled back");
            return Err(rolled_back());
        }
        self.step(UpdateStep::Starting, "previous build");
        match self.launch_and_wait_ready().await {
            Ok(()) => {
                self.go(State::Updating(UpdateStep::HealthCheck), "previous build");
                self.go(State::Running, "rolled back");
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

    /// The server must stay up for the window and answer enough pings.
    async fn health_window(&mut self) -> Result<(), NotUp> {
        let h = self.cfg.health.clone();
        let pings = h.pings.max(1);
        let every = h.window / pings;
        let Some(addr) = self.props.as_ref().map(|p| p.game) else {
            return Err(NotUp::Failed("no server address".into()));
        };
        let shutdown = self.shutdown.clone();
        let mut ok = 0;
        for _ in 0..pings {
            let exited = {
                let p = self
                    .proc_
                    .as_mut()
                    .ok_or_else(|| NotUp::Failed("the server is gone".into()))?;
                let waited = shutdown.unless(tokio::time::timeout(every, p.wait())).await;
                waited.ok_or(NotUp::ShuttingDown)?.ok()
            };
            if let Some(st) = exited {
                let how = st.as_ref().map(describe_exit).unwrap_or_else(|e| e.to_string());
                self.forget_process();
                return Err(NotUp::Failed(format!(
                    "the server exited during the health window ({how})"
                )));
            }
            if crate::slp::ping(addr, PING_TIMEOUT)
                .await
                .is_ok_and(|s| s.players_max > 0)
            {
                ok += 1;
            }
        }
        if ok < pings {
            return Err(NotUp::Failed(format!(
                "{ok} of {pings} Server List Pings answered"
            )));
        }
        Ok(())
    }

    /// After a failed backup: nothing changed, so start again if it ran
    /// (unless the daemon is shutting down).
    async fn back_to_previous_state(&mut self, was_running: bool) {
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
            Err(e) => Err(e.into()),
        };
        if let Err(e) = r {
            let e = e.context("rollback failed");
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
}
