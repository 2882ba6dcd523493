//! Updates through the fetcher library: poll the channel with jitter, stage
//! the new build while the server runs, then announce, stop, back up, apply,
//! start and watch a health window; a new build that fails it is rolled back
//! (previous install and world restored from the backup) and marked bad.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atlas_fetcher::{Check, CheckStatus, NoProgress, SyncOptions, Syncer};

use crate::backup::BackupKind;
use crate::config::{RunnerConfig, SourceSettings};
use crate::state::{State, UpdateStep};
use crate::supervisor::{Actor, Outcome, UpdateOutcome};
use crate::webhook::WebhookKind;

/// File in the state directory that remembers the build marked bad.
const RUNNER_STATE: &str = "runner.json";

/// What the runner remembers across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunnerState {
    /// A build that failed its health window: not installed again until the
    /// channel names another build.
    #[serde(default)]
    pub bad_build: Option<String>,
    #[serde(default)]
    pub bad_reason: Option<String>,
}

impl RunnerState {
    pub fn load(state_dir: &std::path::Path) -> Self {
        let path = state_dir.join(RUNNER_STATE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable {}: {e}", path.display());
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    pub fn save(&self, state_dir: &std::path::Path) -> Result<(), String> {
        let path = state_dir.join(RUNNER_STATE);
        std::fs::create_dir_all(state_dir).map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        atlas_fetcher::state::write_atomic(&path, &bytes).map_err(|e| e.to_string())
    }
}

/// Builds syncers for the configured channel and times the polls.
#[derive(Debug, Clone)]
pub struct Updater {
    source: SourceSettings,
    server_dir: PathBuf,
    state_dir: PathBuf,
}

/// Durations of the update's steps, for events, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    pub stop_ms: u64,
    pub backup_ms: u64,
    pub apply_ms: u64,
    pub start_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() || max.is_zero() {
        return Duration::ZERO;
    }
    let max_ms = ms(max).max(1);
    Duration::from_millis(u64::from_le_bytes(b) % max_ms)
}

impl Updater {
    pub fn new(cfg: &RunnerConfig) -> Option<Self> {
        cfg.source.as_ref().map(|s| Self {
            source: s.clone(),
            server_dir: cfg.server_dir.clone(),
            state_dir: cfg.state_dir(),
        })
    }

    /// The first poll comes after the jitter alone (a daemon restart checks soon).
    pub fn first_delay(&self) -> Duration {
        jitter(self.source.jitter)
    }

    pub fn next_delay(&self) -> Duration {
        self.source.update_interval + jitter(self.source.jitter)
    }

    pub fn auto_apply(&self) -> bool {
        self.source.auto_apply
    }

    /// The fetcher's options for the configured `[source]`.
    fn sync_options(&self) -> Result<SyncOptions, atlas_fetcher::SyncError> {
        self.source
            .sync_settings(&self.server_dir, self.state_dir.join("cache"))
            .options()
    }

    /// A syncer for the server directory (server side unless configured).
    pub fn syncer(&self) -> Result<Syncer, String> {
        let opts = self.sync_options().map_err(|e| e.to_string())?;
        Syncer::new(opts).map_err(|e| e.to_string())
    }

    /// A syncer for `rollback` (no pointer read; pack, channel, side and
    /// optional files are those of the install).
    pub fn rollback_syncer(&self) -> Result<Syncer, String> {
        let opts = self.sync_options().map_err(|e| e.to_string())?;
        Syncer::for_rollback(opts).map_err(|e| e.to_string())
    }

    /// Makes the loader launchable (`.atlas/launch.json`) when configured.
    pub async fn provision(&self) -> Result<(), String> {
        if !self.source.provision {
            return Ok(());
        }
        use atlas_fetcher::provision::{ProvisionOptions, provision};
        let opts = ProvisionOptions::for_install(&self.server_dir).map_err(|e| e.to_string())?;
        let done = provision(&opts).await.map_err(|e| e.to_string())?;
        tracing::info!(
            changed = done.changed,
            target = done.launch.target(),
            "loader provisioned"
        );
        Ok(())
    }

    /// `pack/channel`, as `status` shows it.
    pub fn channel(&self) -> String {
        format!("{}/{}", self.source.pack, self.source.channel)
    }

    pub fn announce(&self) -> Duration {
        self.source.announce
    }
}

fn outcome(kind: &str, check: Option<&Check>, current: &str, message: String) -> UpdateOutcome {
    UpdateOutcome {
        outcome: kind.into(),
        current_build: current.into(),
        target_build: check.map(|c| c.build.to_hex()).unwrap_or_default(),
        target_version: check.map(|c| c.version).unwrap_or(0),
        message,
    }
}

impl Actor {
    fn updater(&self) -> Result<Updater, String> {
        self.updater
            .clone()
            .ok_or_else(|| "no [source] in the runner config: there is no channel to update from".to_string())
    }

    /// The installed build and version, as the fetcher recorded them.
    pub(crate) fn refresh_build(&self) {
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        if let Ok(Some(i)) = atlas_fetcher::state::load_install(&paths.install) {
            let mut s = self.sup.inner.lock();
            s.build = i.build.0.to_hex();
            s.version = i.version.to_string();
            drop(s);
            self.metrics
                .set_build(&i.build.0.to_hex(), &i.version.to_string());
        }
    }

    /// `update check` / `update apply` / the poll timer.
    pub(crate) async fn update(&mut self, auto: bool) -> Result<UpdateOutcome, String> {
        let u = self.updater()?;
        let syncer = u.syncer()?;
        let current = self.sup.inner.lock().build.clone();
        let check = syncer.check(&NoProgress).await.map_err(|e| e.to_string())?;
        if check.status != CheckStatus::Changed || check.held {
            return Ok(outcome(
                "current",
                Some(&check),
                &current,
                "the server is on the channel's build".into(),
            ));
        }
        let target = check.build.to_hex();
        if self.sup.inner.lock().bad_build.as_deref() == Some(target.as_str()) {
            let msg = format!("build {target} failed its health window before; waiting for a newer build");
            return Ok(outcome("skipped_bad", Some(&check), &current, msg));
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
            return Ok(outcome(
                "available",
                Some(&check),
                &current,
                "auto_apply is off".into(),
            ));
        }
        let started = Instant::now();
        let result = self.install(&u, &syncer, &check).await;
        let (kind, msg) = match &result {
            Ok(t) => (
                "applied",
                format!(
                    "build {target} (version {}) installed; downtime steps {t:?}",
                    check.version
                ),
            ),
            Err(InstallError::RolledBack(why)) => ("rolled_back", why.clone()),
            Err(InstallError::Failed(why)) => ("failed", why.clone()),
        };
        self.metrics.observe_update(kind, started.elapsed());
        self.refresh_build();
        match result {
            Ok(_) => {
                self.notify(WebhookKind::Update, "Server updated", &msg);
                Ok(outcome(kind, Some(&check), &current, msg))
            }
            Err(InstallError::RolledBack(_)) => {
                self.notify(WebhookKind::Rollback, "Update rolled back", &msg);
                Ok(outcome(kind, Some(&check), &current, msg))
            }
            Err(InstallError::Failed(why)) => {
                self.notify(WebhookKind::Failed, "Update failed", &why);
                Err(why)
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
        let mut t = Timings::default();
        // Download and verify while the server still runs.
        let plan = syncer
            .plan(check, &NoProgress)
            .map_err(|e| InstallError::Failed(e.to_string()))?;
        let pre = syncer
            .prefetch(check, &plan, &NoProgress)
            .await
            .map_err(|e| InstallError::Failed(format!("staging build {target}: {e}")))?;
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
            tokio::time::sleep(wait).await;
            self.step(UpdateStep::Stopping, "");
            let s = Instant::now();
            self.stop_process().await;
            t.stop_ms = ms(s.elapsed());
        } else if self.state() == State::Crashed {
            return Err(InstallError::Failed(
                "the server is restarting after a crash; try again later".into(),
            ));
        }
        self.step(UpdateStep::BackingUp, "world and current install");
        let s = Instant::now();
        let label = format!("before build {target}");
        let backup = self
            .backups
            .create(BackupKind::Cold, &label, None)
            .await
            .map_err(|e| {
                InstallError::Failed(format!("backup before the update failed, nothing changed: {e}"))
            });
        let backup = match backup {
            Ok(b) => b,
            Err(e) => {
                self.back_to_previous_state(was_running).await;
                return Err(e);
            }
        };
        t.backup_ms = ms(s.elapsed());
        self.step(UpdateStep::Applying, &target);
        let s = Instant::now();
        let applied = async {
            // Re-plan: the stopped server may have written files since.
            let plan = syncer.plan(check, &NoProgress).map_err(|e| e.to_string())?;
            syncer
                .apply(check, &plan, &NoProgress)
                .await
                .map_err(|e| e.to_string())?;
            u.provision().await
        }
        .await;
        t.apply_ms = ms(s.elapsed());
        if let Err(e) = applied {
            return self
                .roll_back(
                    &backup.id,
                    was_running,
                    &format!("applying build {target} failed: {e}"),
                    &target,
                )
                .await;
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
            Err(f) => Err(f.reason),
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
            Err(why) => {
                self.roll_back(
                    &backup.id,
                    true,
                    &format!("build {target} failed its health window: {why}"),
                    &target,
                )
                .await
            }
        }
    }

    /// Restores the backup taken before the update, marks the build bad and
    /// starts the previous build again.
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
            return Err(InstallError::Failed(msg));
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
        if !restart {
            self.go(State::Stopped, "rolled back");
            return Err(InstallError::RolledBack(why.to_owned()));
        }
        self.step(UpdateStep::Starting, "previous build");
        match self.launch_and_wait_ready().await {
            Ok(()) => {
                self.go(State::Updating(UpdateStep::HealthCheck), "previous build");
                self.go(State::Running, "rolled back");
                Err(InstallError::RolledBack(why.to_owned()))
            }
            Err(f) => {
                let msg = format!("{why}; the previous build did not start either: {}", f.reason);
                self.go(State::Failed, &msg);
                Err(InstallError::Failed(msg))
            }
        }
    }

    /// The server must stay up for the window and answer enough pings.
    async fn health_window(&mut self) -> Result<(), String> {
        let h = self.cfg.health.clone();
        let pings = h.pings.max(1);
        let every = h.window / pings;
        let Some(addr) = self.props.as_ref().map(|p| p.game) else {
            return Err("no server address".into());
        };
        let mut ok = 0;
        for _ in 0..pings {
            let exited = {
                let p = self.proc_.as_mut().ok_or("the server is gone")?;
                tokio::time::timeout(every, p.wait()).await.ok()
            };
            if let Some(st) = exited {
                let how = st
                    .as_ref()
                    .map(crate::supervisor::process::describe_exit)
                    .unwrap_or_else(|e| e.to_string());
                self.forget_process();
                return Err(format!("the server exited during the health window ({how})"));
            }
            if crate::slp::ping(addr, Duration::from_secs(5))
                .await
                .is_ok_and(|s| s.players_max > 0)
            {
                ok += 1;
            }
        }
        if ok < pings {
            return Err(format!("{ok} of {pings} Server List Pings answered"));
        }
        Ok(())
    }

    /// After a failed backup: nothing changed, so start again if it ran.
    async fn back_to_previous_state(&mut self, was_running: bool) {
        if was_running {
            self.go(State::Updating(UpdateStep::Applying), "nothing applied");
            self.go(State::Updating(UpdateStep::Starting), "previous build");
            if let Err(f) = self.launch_and_wait_ready().await {
                self.go(State::Failed, &f.reason);
                return;
            }
            self.go(State::Updating(UpdateStep::HealthCheck), "");
            self.go(State::Running, "");
        } else {
            self.go(State::Updating(UpdateStep::Applying), "nothing applied");
            self.go(State::Stopped, "");
        }
    }

    /// `atlas-runner rollback`: back to the build installed before, with a
    /// backup first.
    pub(crate) async fn rollback(&mut self) -> Result<Outcome, String> {
        let u = self.updater()?;
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
            .await
            .map_err(|e| e.to_string());
        let backup = match backup {
            Ok(b) => b,
            Err(e) => {
                self.back_to_previous_state(was_running).await;
                return Err(format!("backup before the rollback failed, nothing changed: {e}"));
            }
        };
        self.step(UpdateStep::Applying, "previous build");
        let r = syncer
            .rollback(false, &NoProgress)
            .await
            .map_err(|e| e.to_string());
        let r = match r {
            Ok(r) => u.provision().await.map(|()| r),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            let msg = format!("rollback failed: {e}");
            let _ = self.roll_back(&backup.id, was_running, &msg, "").await;
            return Err(msg);
        }
        self.refresh_build();
        self.notify(
            WebhookKind::Rollback,
            "Rolled back",
            "back to the previous build on request",
        );
        if !was_running {
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
            Err(f) => {
                self.go(State::Failed, &f.reason);
                Err(f.reason)
            }
        }
    }
}

#[derive(Debug)]
enum InstallError {
    RolledBack(String),
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(2)) < Duration::from_secs(2));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn runner_state_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(RunnerState::load(dir.path()), RunnerState::default());
        let s = RunnerState {
            bad_build: Some("ab".into()),
            bad_reason: Some("crashed".into()),
        };
        s.save(dir.path()).expect("save");
        assert_eq!(RunnerState::load(dir.path()), s);
    }
}
