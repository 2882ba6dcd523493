//! The actor's updates: check the channel, stage the new build while the
//! server runs, then announce, stop, back up, apply, start and watch a
//! health window; a new build that fails is rolled back (previous install
//! and world restored from the backup) and marked bad. Also `atlas-runner
//! rollback`, back to the build installed before. Here: checking and
//! staging; [`install`] applies a staged build, [`rollback`] goes back.
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

use std::time::{Duration, Instant};

use atlas_fetcher::lock_owner::LockOwner;
use atlas_fetcher::{Check, CheckStatus, FileAction, NoProgress, Plan, Syncer};
use atlas_proto::v1::Manifest;

use super::actor::Actor;
use super::progress::StageReporter;
use super::{UpdateOutcome, UpdateReport};
use crate::channel::{Updater, ms, no_source};
use crate::error::{ActionError, ErrorKind};
use crate::state::{State, UpdateStep};
use crate::webhook::WebhookKind;

mod install;
pub(crate) mod rollback;

/// Durations of the update's steps, for events, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    pub stop_ms: u64,
    pub backup_ms: u64,
    pub apply_ms: u64,
    pub start_ms: u64,
}

/// `1.2s`, `350ms`, `2m 5s`.
fn human_ms(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

impl std::fmt::Display for Timings {
    /// `server down 3.2s (stop 1.0s, backup 300ms, apply 250ms, start 1.6s)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.stop_ms + self.backup_ms + self.apply_ms + self.start_ms;
        write!(
            f,
            "server down {} (stop {}, backup {}, apply {}, start {})",
            human_ms(total),
            human_ms(self.stop_ms),
            human_ms(self.backup_ms),
            human_ms(self.apply_ms),
            human_ms(self.start_ms)
        )
    }
}

/// What a channel check found, before anything is installed.
#[derive(Debug)]
pub(crate) enum Found {
    /// Nothing to install; with a plan that only records host edits (no
    /// file written) when there are some.
    Nothing(UpdateReport, Option<Plan>),
    /// A build other than the installed one.
    New,
}

/// The pack version of a checked build (its manifest's `version`).
fn pack_version(check: &Check) -> String {
    check
        .manifest
        .as_ref()
        .map(|m| m.version.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("#{}", check.version))
}

/// What `check` means for the server directory: the channel's build is the
/// installed one (maybe with managed files the host edited, which never
/// make an update of the same build), a build marked bad, or a new build.
/// Reads only; `update check` and the actor share it.
pub(crate) fn assess(
    syncer: &Syncer,
    check: &Check,
    current: &str,
    bad: Option<&str>,
) -> Result<Found, ActionError> {
    if check.status != CheckStatus::Changed || check.held {
        let msg = "the server is on the channel's build".to_owned();
        return Ok(Found::Nothing(
            report(UpdateOutcome::Current, check, current, msg),
            None,
        ));
    }
    let target = check.build.to_hex();
    let same_build = check
        .installed()
        .is_some_and(|i| i.build.0 == check.build && i.pack == syncer.options().pack);
    if same_build {
        let plan = syncer.plan(check, &NoProgress)?;
        let edited = plan.paths(FileAction::Modified);
        let mut differ: Vec<String> = plan
            .files
            .iter()
            .filter(|f| f.needs_download())
            .map(|f| f.path.clone())
            .collect();
        differ.extend(plan.remove.iter().cloned());
        let policy = syncer.options().on_modified;
        let policy = serde_json::to_value(policy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut msg = format!("the server is on the channel's build {target}");
        if !edited.is_empty() {
            msg.push_str(&format!(
                "; managed files edited on the host are kept (on_modified = {policy}): {}",
                edited.join(", ")
            ));
        }
        if !differ.is_empty() {
            msg.push_str(&format!(
                "; {} managed file(s) differ from the build and are left until the next update (on_modified = {policy}): {}",
                differ.len(),
                differ.join(", ")
            ));
        }
        let record = plan.is_noop().then_some(plan);
        return Ok(Found::Nothing(
            report(UpdateOutcome::Current, check, current, msg),
            record,
        ));
    }
    if bad == Some(target.as_str()) {
        let msg = format!("build {target} failed its health window before; waiting for a newer build");
        return Ok(Found::Nothing(
            report(UpdateOutcome::SkippedBad, check, current, msg),
            None,
        ));
    }
    Ok(Found::New)
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
        target_pack_version: pack_version(check),
        message,
    }
}

impl Actor {
    fn updater(&self) -> Result<Updater, ActionError> {
        self.updater.clone().ok_or_else(|| no_source("update from"))
    }

    /// The manifest of the installed build, as the fetcher kept it.
    pub(crate) fn installed_manifest(&self) -> Option<Manifest> {
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        let local = atlas_fetcher::local::Local::open(&paths).ok()?;
        let install = local.load_install().ok()??;
        atlas_fetcher::history::load(
            &local,
            &install.build.0,
            &install.pack,
            &atlas_proto::Limits::DEFAULT,
        )
        .map_err(|e| tracing::warn!("the installed build's manifest: {e}"))
        .ok()
    }

    /// The installed build and versions, as the fetcher recorded them: the
    /// pack's version (the manifest's) and the channel pointer's number.
    pub(crate) fn refresh_build(&self) {
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        let local = atlas_fetcher::local::Local::open(&paths);
        if let Ok(Some(i)) = local.and_then(|l| l.load_install()) {
            let version = self
                .installed_manifest()
                .map(|m| m.version)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| format!("#{}", i.version));
            let mut s = self.sup.inner.lock();
            s.build = i.build.0.to_hex();
            s.version = version.clone();
            s.pointer_version = i.version;
            drop(s);
            self.metrics.set_build(&i.build.0.to_hex(), &version);
        }
    }

    /// Another updater that took the server directory's lock since this
    /// daemon started (an `atlas-fetcher` timer), if there is one.
    fn other_updater(&self) -> Option<LockOwner> {
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        let owner = atlas_fetcher::lock_owner::read(&paths.state_dir.join(atlas_fetcher::lock::LOCK_FILE))?;
        let me = LockOwner::me();
        if owner.pid == me.pid && owner.program == me.program {
            return None;
        }
        (owner.since_unix >= self.started_unix || owner.is_running() == Some(true)).then_some(owner)
    }

    /// Says so (event, webhook, log) when another updater works on the
    /// server directory too, and which one to remove; once per updater.
    fn report_other_updater(&mut self) {
        let Some(other) = self.other_updater() else {
            return;
        };
        if self
            .other_updater
            .as_ref()
            .is_some_and(|o| o.pid == other.pid && o.program == other.program)
        {
            return;
        }
        let msg = format!(
            "{} (pid {}) also updates {} (it took its lock {} s after the epoch): {}",
            other.program,
            other.pid,
            self.cfg.server_dir.display(),
            other.since_unix,
            LockOwner::me().advice(&other)
        );
        tracing::warn!("{msg}");
        self.sup.bus().event(
            "updaters",
            &msg,
            serde_json::json!({"program": other.program, "pid": other.pid, "since_unix": other.since_unix}),
        );
        self.notify(WebhookKind::Updaters, "Two updaters on one server", &msg);
        self.other_updater = Some(other);
    }

    /// A `locked` error names who holds the lock and which updater to remove.
    fn explain_locked(&self, e: ActionError) -> ActionError {
        if e.kind != ErrorKind::Locked {
            return e;
        }
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        let Some(owner) =
            atlas_fetcher::lock_owner::read(&paths.state_dir.join(atlas_fetcher::lock::LOCK_FILE))
        else {
            return e;
        };
        ActionError {
            message: format!(
                "{} (pid {}) holds the lock of {}: {}",
                owner.program,
                owner.pid,
                self.cfg.server_dir.display(),
                LockOwner::me().advice(&owner)
            ),
            ..e
        }
    }

    /// `update check` / `update apply` / the poll timer.
    pub(crate) async fn update(&mut self, auto: bool) -> Result<UpdateReport, ActionError> {
        let u = self.updater()?;
        self.report_other_updater();
        let syncer = u.syncer()?;
        let current = self.sup.inner.lock().build.clone();
        let unchecked = || ActionError::shutting_down("the channel was not checked; nothing changed");
        let check = match self.shutdown.unless(syncer.check(&NoProgress)).await {
            None => return Err(unchecked()),
            // The fetcher's own interrupt (see `Updater::syncer`), or a failure it caused.
            Some(Err(_)) if self.shutdown.is_requested() => return Err(unchecked()),
            Some(Err(e)) => return Err(u.explain(e).await.into()),
            Some(Ok(c)) => c,
        };
        let bad = self.sup.inner.lock().bad_build.clone();
        match assess(&syncer, &check, &current, bad.as_deref())? {
            Found::Nothing(report, record) => {
                if let Some(plan) = record {
                    // Host edits kept: recorded so later checks see the build intact.
                    // A no-op plan writes only the fetcher's state, never a server file.
                    syncer
                        .apply(&check, &plan, &NoProgress)
                        .await
                        .map_err(|e| self.explain_locked(e.into()))?;
                }
                return Ok(report);
            }
            Found::New => {}
        }
        let target = check.build.to_hex();
        let version = pack_version(&check);
        if auto && !u.auto_apply() {
            self.sup.bus().event(
                "update",
                format!(
                    "build {target} (version {version}) is available; `atlas-runner update apply` installs it"
                ),
                serde_json::json!({"build": target, "version": version, "pointer_version": check.version}),
            );
            let msg = "auto_apply is off".to_owned();
            return Ok(report(UpdateOutcome::Available, &check, &current, msg));
        }
        if auto
            && let Some(window) = self.window()
            && !window.contains(crate::schedule::now().time())
        {
            return self.stage_for_window(&syncer, &check, &current, window).await;
        }
        let started = Instant::now();
        let result = self.install(&u, &syncer, &check, auto).await;
        let (label, msg) = match &result {
            Ok(t) => (
                UpdateOutcome::Applied.as_str(),
                format!("build {target} (version {version}) installed; {t}"),
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
                let e = self.explain_locked(e);
                self.notify(WebhookKind::Failed, "Update failed", &e.message);
                Err(e)
            }
        }
    }

    /// `[schedule] window`, parsed (checked when the config was read).
    fn window(&self) -> Option<crate::schedule::Window> {
        let w = self.cfg.schedule.window.as_deref()?;
        crate::schedule::Window::parse(w)
            .map_err(|e| tracing::error!("`schedule.window`: {e}"))
            .ok()
    }

    /// Outside the maintenance window: the new build is downloaded now, and
    /// the next poll comes when the window opens.
    async fn stage_for_window(
        &mut self,
        syncer: &Syncer,
        check: &Check,
        current: &str,
        window: crate::schedule::Window,
    ) -> Result<UpdateReport, ActionError> {
        let target = check.build.to_hex();
        let version = pack_version(check);
        let wait = window.until_open(&crate::schedule::now());
        let msg = format!(
            "build {target} (version {version}) is staged; it is installed in the maintenance window {} (opens in {})",
            window.describe(),
            super::announce::human(wait)
        );
        let at = tokio::time::Instant::now() + wait + Duration::from_secs(1);
        self.next_poll = Some(self.next_poll.map_or(at, |p| p.min(at)));
        if self.window_staged.as_deref() == Some(target.as_str()) {
            return Ok(report(UpdateOutcome::Available, check, current, msg));
        }
        match self.stage(syncer, check).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(ActionError::shutting_down(
                    "the build was not staged; nothing changed",
                ));
            }
            Err(e) => return Err(e),
        }
        self.window_staged = Some(target.clone());
        self.sup.bus().event(
            "update",
            &msg,
            serde_json::json!({"build": target, "version": version, "window": window.describe(), "opens_in_ms": ms(wait)}),
        );
        Ok(report(UpdateOutcome::Available, check, current, msg))
    }

    /// Downloads and verifies the build's new blobs into `.atlas/prefetch/`
    /// while the server runs, reporting progress in `status` and events.
    /// `None` when the daemon's shutdown cut it short (the blobs staged so
    /// far stay for the next try).
    async fn stage(
        &self,
        syncer: &Syncer,
        check: &Check,
    ) -> Result<Option<atlas_fetcher::sync::prefetch::Prefetched>, ActionError> {
        let target = check.build.to_hex();
        let plan = syncer.plan(check, &NoProgress)?;
        let reporter = StageReporter::new(self.sup.inner.clone(), &target, &pack_version(check));
        let pre = self
            .shutdown
            .unless(syncer.prefetch(check, &plan, &reporter))
            .await;
        reporter.finish();
        let pre = match pre {
            None => return Ok(None),
            Some(Err(_)) if self.shutdown.is_requested() => return Ok(None),
            Some(r) => r.map_err(|e| ActionError::from(e).context(format!("staging build {target}")))?,
        };
        self.sup.bus().event(
            "update",
            format!(
                "build {target} staged ({} blobs, {} bytes downloaded)",
                pre.blobs, pre.bytes_downloaded
            ),
            serde_json::json!({"build": target, "blobs": pre.blobs, "bytes": pre.bytes_downloaded}),
        );
        Ok(Some(pre))
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
}
