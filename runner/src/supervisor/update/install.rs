//! Applying a staged build to the server: announce, stop, back up, apply,
//! start and watch the health window; and undoing an applied update when
//! the daemon shuts down in the middle of it.

use super::{InstallError, NotUp, Timings, pack_version};
use std::time::Instant;

use atlas_fetcher::{Check, NoProgress, Syncer};

use crate::backup::{BackupInfo, BackupKind};
use crate::channel::{Updater, ms};
use crate::error::{ActionError, ErrorKind};
use crate::state::{State, UpdateStep};
use crate::supervisor::actor::Actor;
use crate::supervisor::announce::Vars;
use crate::supervisor::process::describe_exit;

impl Actor {
    pub(super) async fn install(
        &mut self,
        u: &Updater,
        syncer: &Syncer,
        check: &Check,
        auto: bool,
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
        match self.stage(syncer, check).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(untouched()),
            Err(e) => return Err(InstallError::Failed(e)),
        }
        // Nothing stops while another updater holds the directory.
        let paths = atlas_fetcher::state::StatePaths::new(&self.cfg.server_dir);
        let probe =
            tokio::task::spawn_blocking(move || atlas_fetcher::lock::DirLock::acquire(&paths).map(drop))
                .await
                .map_err(|e| ActionError::new(ErrorKind::Internal, format!("lock probe: {e}")))
                .and_then(|r| r.map_err(ActionError::from));
        if let Err(e) = probe {
            return Err(InstallError::Failed(
                self.explain_locked(e)
                    .context(format!("build {target} is staged, and nothing was stopped")),
            ));
        }
        let was_running = self.state() == State::Running;
        if was_running {
            if auto && self.cfg.schedule.wait_for_empty && !self.wait_for_empty().await {
                return Err(untouched());
            }
            self.step(UpdateStep::Announcing, &target);
            let vars = Vars {
                version: pack_version(check),
                pack: syncer.options().pack.clone(),
                build: target.clone(),
            };
            if !self.countdown(u.announce(), &vars).await {
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
    pub(super) async fn undo_for_shutdown(
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

    /// The server must stay up for the window and answer enough pings.
    pub(super) async fn health_window(&mut self) -> Result<(), NotUp> {
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
                self.reap().await;
                self.forget_process();
                return Err(NotUp::Failed(format!(
                    "the server exited during the health window ({how})"
                )));
            }
            if crate::slp::ping(addr, self.ping_timeout())
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
}
