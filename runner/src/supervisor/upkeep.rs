//! The actor's upkeep between actions: telling a crash from an intended
//! stop, crash backoff and giving up, pings, backups and restores, webhook
//! notices, and the clean shutdown.

use std::process::ExitStatus;
use std::time::Instant;

use super::actor::Actor;
use super::process::describe_exit;
use super::{ActionResult, StopIntent};
use crate::backup::BackupKind;
use crate::config::OnUnresponsive;
use crate::error::{ActionError, ErrorKind};
use crate::state::State;
use crate::webhook::{WebhookEvent, WebhookKind};

/// Log lines attached to crash events and the failed state.
const CRASH_TAIL: usize = 20;

impl Actor {
    /// The process exited while the actor was idle.
    pub(super) async fn on_unexpected_exit(&mut self, st: std::io::Result<ExitStatus>) {
        let how = st.as_ref().map(describe_exit).unwrap_or_else(|e| e.to_string());
        // Its last lines (the reason) are in the log before anything is recorded.
        let eula = self.reap().await;
        let in_game_stop = self
            .proc_
            .as_ref()
            .is_some_and(|p| p.flags.stopping.load(std::sync::atomic::Ordering::SeqCst));
        let intent = self.sup.inner.lock().intent.take();
        self.forget_process();
        if intent.is_some() || in_game_stop {
            let why = match intent {
                Some(StopIntent::Kill) => "killed on request".to_string(),
                Some(StopIntent::Runner) => "stopped by the runner".to_string(),
                None => "stopped by a `stop` from the game or RCON (not a crash)".to_string(),
            };
            self.sup.bus().event(
                "process",
                format!("server exited ({how}): {why}"),
                serde_json::json!({"exit": how}),
            );
            self.go(State::Stopping, &why);
            self.go(State::Stopped, &why);
            return;
        }
        if eula {
            let why = crate::eula::not_accepted_message();
            self.go(State::Crashed, &why);
            self.go(State::Failed, &why);
            self.notify(WebhookKind::Failed, "Server cannot start", &why);
            return;
        }
        self.crashed(&format!("the server exited unexpectedly ({how})"));
    }

    /// Running/Starting → Crashed, then a restart after a backoff, or Failed
    /// when the crash window is full.
    pub(crate) fn crashed(&mut self, reason: &str) {
        let now = Instant::now();
        let window = self.cfg.server.crash_window;
        self.crash_times.push_back(now);
        while self
            .crash_times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.crash_times.pop_front();
        }
        let n = u32::try_from(self.crash_times.len()).unwrap_or(u32::MAX);
        self.sup.inner.lock().restarts += 1;
        self.metrics.inc_restarts();
        let tail: Vec<String> = self
            .sup
            .bus()
            .tail(CRASH_TAIL)
            .into_iter()
            .map(|e| e.line)
            .collect();
        if self.state() != State::Crashed {
            self.go(State::Crashed, reason);
        }
        if n >= self.cfg.server.crash_limit {
            let why = format!(
                "crashed {n} times within {}; last: {reason}. Fix the cause, then `atlas-runner start`",
                humantime::format_duration(window)
            );
            self.restart_at = None;
            self.crash_times.clear();
            self.sup.bus().event(
                "failed",
                &why,
                serde_json::json!({"crashes": n, "log_tail": tail}),
            );
            self.go(
                State::Failed,
                format!("{why}\n--- last log lines ---\n{}", tail.join("\n")),
            );
            self.notify(
                WebhookKind::Failed,
                "Server failed",
                &format!("{why}\n```\n{}\n```", tail.join("\n")),
            );
            return;
        }
        let base = self.cfg.server.restart_backoff;
        let backoff = base
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(self.cfg.server.restart_backoff_max);
        self.restart_at = Some(tokio::time::Instant::now() + backoff);
        let msg = format!(
            "{reason}; restarting in {} (crash {n} of {} allowed)",
            humantime::format_duration(backoff),
            self.cfg.server.crash_limit
        );
        self.sup.inner.lock().detail = msg.clone();
        self.sup.bus().event(
            "crash",
            &msg,
            serde_json::json!({"crashes": n, "backoff_ms": backoff.as_millis() as u64, "log_tail": tail}),
        );
        self.notify(
            WebhookKind::Crash,
            "Server crashed",
            &format!("{msg}\n```\n{}\n```", tail.join("\n")),
        );
    }

    pub(crate) fn notify(&self, kind: WebhookKind, title: &str, description: &str) {
        if let Some(w) = &self.webhook {
            let w = w.clone();
            let event = WebhookEvent {
                kind,
                title: title.to_owned(),
                description: description.to_owned(),
                fields: Vec::new(),
            };
            tokio::spawn(async move { w.notify(event).await });
        }
    }

    pub(super) async fn ping(&mut self) {
        self.next_ping = self
            .proc_
            .as_ref()
            .map(|_| tokio::time::Instant::now() + self.cfg.server.ping_interval);
        let Some(addr) = self.props.as_ref().map(|p| p.game) else {
            return;
        };
        let limit = self.cfg.server.unresponsive_pings;
        match crate::slp::ping(addr, self.ping_timeout()).await {
            Ok(st) => {
                let mut s = self.sup.inner.lock();
                s.players = (st.players_online, st.players_max);
                s.slp = Some((st.version_name.clone(), st.description.clone()));
                let was_failing = std::mem::take(&mut s.failed_pings);
                let up = s.ready_at.map(|t| t.elapsed()).unwrap_or_default();
                if limit > 0 && was_failing >= limit {
                    s.detail.clear();
                }
                drop(s);
                self.metrics.set_players(st.players_online, st.players_max);
                self.metrics.set_uptime(up);
                if limit > 0 && was_failing >= limit {
                    self.sup.bus().event(
                        "responsive",
                        format!("the server answers Server List Pings again (after {was_failing} failed)"),
                        serde_json::json!({"failed_pings": was_failing}),
                    );
                }
            }
            Err(e) => {
                let n = {
                    let mut s = self.sup.inner.lock();
                    s.failed_pings += 1;
                    s.failed_pings
                };
                tracing::warn!("Server List Ping to {addr} failed ({n} in a row): {e}");
                if limit > 0 && n == limit && self.state() == State::Running {
                    self.unresponsive(n, &e.to_string()).await;
                }
            }
        }
    }

    /// `[server] unresponsive_pings` pings failed in a row: the server looks
    /// frozen. An event and the webhook, then a restart (counted as a
    /// crash) or, with `on_unresponsive = "alert"`, nothing more.
    async fn unresponsive(&mut self, n: u32, last_error: &str) {
        let restart = self.cfg.server.on_unresponsive == OnUnresponsive::Restart;
        let msg = format!(
            "the server has not answered {n} Server List Pings in a row (last: {last_error}): it looks frozen{}",
            if restart {
                "; restarting it"
            } else {
                " (on_unresponsive = \"alert\": left running)"
            }
        );
        self.sup.bus().event(
            "unresponsive",
            &msg,
            serde_json::json!({"failed_pings": n, "action": if restart { "restart" } else { "alert" }}),
        );
        self.notify(WebhookKind::Unresponsive, "Server not responding", &msg);
        if !restart {
            self.sup.inner.lock().detail = msg;
            return;
        }
        // Counted as a crash, not as an intended stop: the process is
        // stopped here, with no console `stop` (it would not be read).
        self.stop_process_with(false).await;
        self.sup.inner.lock().intent = None;
        self.crashed(&format!("frozen: {n} Server List Pings failed in a row"));
    }

    pub(super) async fn backup(&mut self, label: &str) -> Result<crate::backup::BackupInfo, ActionError> {
        let started = Instant::now();
        let info = if self.state() == State::Running {
            let console = self.sup.console().clone();
            self.backups.create(BackupKind::Hot, label, Some(&console)).await
        } else if self.proc_.is_none() {
            self.backups.create(BackupKind::Manual, label, None).await
        } else {
            return Err(ActionError::new(
                ErrorKind::Server,
                format!("cannot back up while the server is {}", self.state()),
            ));
        }?;
        self.metrics.observe_backup(started.elapsed(), info.size_bytes);
        self.sup.bus().event(
            "backup",
            format!("backup {} written ({} bytes)", info.id, info.size_bytes),
            serde_json::to_value(&info).unwrap_or_default(),
        );
        if let Err(e) = self.backups.prune() {
            tracing::warn!("pruning old backups: {e}");
        }
        Ok(info)
    }

    pub(super) async fn restore(&mut self, id: &str) -> ActionResult {
        // A typo must not stop anything: the backup is looked up first.
        self.backups.find(id)?;
        let was_running = self.proc_.is_some();
        if was_running {
            self.stop().await;
        }
        if self.state() == State::Crashed {
            self.restart_at = None;
            self.go(State::Stopped, "restoring a backup");
        }
        self.backups.restore(id).await?;
        // The archive holds the fetcher's state too: the build it names is installed now.
        self.refresh_build();
        self.sup.bus().event(
            "backup",
            format!("restored backup {id}"),
            serde_json::json!({"id": id}),
        );
        if was_running {
            self.start().await?;
        }
        Ok(self.done(&format!("restored backup {id}")))
    }

    pub(super) async fn shut_down(&mut self) {
        let pending: Vec<_> = {
            let mut s = self.sup.inner.lock();
            s.shutting_down = true;
            s.queue.drain(..).collect()
        };
        for job in pending {
            if let Some(tx) = job.done {
                let _ = tx.send(Err(ActionError::shutting_down("the action did not run")));
            }
        }
        if self.proc_.is_some() {
            self.sup.bus().event(
                "daemon",
                "shutting down: stopping the server first",
                serde_json::json!({}),
            );
            if self.state() == State::Running || self.state() == State::Starting {
                self.stop().await;
            } else {
                self.stop_process().await;
            }
        }
    }
}
