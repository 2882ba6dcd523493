//! Answers control-socket requests: status, power actions through the
//! supervisor's queue, logs and events (streamed), console commands,
//! backups, updates and rollback.

use std::sync::Arc;

use atlas_proto::runner::v1::{
    BackupInfo as PbBackup, BackupInfoList, ConsoleOutput, Error as PbError, Event, LaunchSetting, LogLine,
    PowerAction, PowerOutcome, PowerResult, Request, StageProgress as PbStage, Status, UpdateInfo,
    UpdateOutcome as PbUpdateOutcome, backup_request, reply, request,
};
use tokio::sync::{broadcast, oneshot};

use crate::backup::{BackupInfo, Backups};
use crate::channel::{Updater, no_source};
use crate::error::{ActionError, ErrorKind};
use crate::ipc::{Handler, ReplySink, code};
use crate::supervisor::{
    Action, ActionResult, Admission, Found, Outcome, Supervisor, UpdateOutcome, UpdateReport, assess,
    rollback_possible,
};

/// The daemon's request handler.
#[derive(Debug)]
pub struct DaemonHandler {
    pub supervisor: Supervisor,
    pub backups: Arc<Backups>,
    pub updater: Option<Updater>,
}

fn pb_backup(b: &BackupInfo) -> PbBackup {
    PbBackup {
        id: b.id.clone(),
        label: b.label.clone(),
        created_unix: b.created_unix,
        size_bytes: b.size_bytes,
        kind: b.kind.to_string(),
        path: b.path.to_string_lossy().into_owned(),
    }
}

fn pb_update_outcome(o: UpdateOutcome) -> PbUpdateOutcome {
    match o {
        UpdateOutcome::Current => PbUpdateOutcome::Current,
        UpdateOutcome::Available => PbUpdateOutcome::Available,
        UpdateOutcome::Applied => PbUpdateOutcome::Applied,
        UpdateOutcome::RolledBack => PbUpdateOutcome::RolledBack,
        UpdateOutcome::SkippedBad => PbUpdateOutcome::SkippedBad,
    }
}

fn pb_update(u: &UpdateReport) -> UpdateInfo {
    UpdateInfo {
        outcome: pb_update_outcome(u.outcome) as i32,
        current_build: u.current_build.clone(),
        target_build: u.target_build.clone(),
        target_version: u.target_version,
        target_pack_version: u.target_pack_version.clone(),
        message: u.message.clone(),
    }
}

/// A failed action as the last reply: code `failed` with its kind and transience.
async fn failed(sink: &ReplySink, e: ActionError) {
    let err = PbError {
        code: code::FAILED.into(),
        message: e.message,
        kind: e.kind.as_str().into(),
        transient: e.transient,
    };
    let _ = sink.finish(reply::Kind::Error(err)).await;
}

fn power(outcome: PowerOutcome, reason: impl Into<String>, state: &str) -> reply::Kind {
    reply::Kind::Power(PowerResult {
        outcome: outcome as i32,
        reason: reason.into(),
        state: state.into(),
    })
}

impl DaemonHandler {
    fn status(&self) -> reply::Kind {
        let s = self.supervisor.status();
        reply::Kind::Status(Status {
            state: s.state,
            detail: s.detail,
            build: s.build,
            version: s.version,
            uptime_secs: s.uptime_secs,
            players_online: s.players_online,
            players_max: s.players_max,
            memory_rss_bytes: s.memory_rss_bytes,
            pid: s.pid,
            restarts: s.restarts,
            queued_actions: s.queued_actions,
            channel: self.updater.as_ref().map(Updater::channel).unwrap_or_default(),
            bad_build: s.bad_build,
            pointer_version: s.pointer_version,
            server_version: s.server_version,
            motd: s.motd,
            launch: s
                .launch
                .iter()
                .map(|a| LaunchSetting {
                    name: a.name.into(),
                    value: a.value.clone(),
                    origin: a.origin.as_str().into(),
                })
                .collect(),
            staging: s.staging.map(|p| PbStage {
                build: p.build,
                version: p.version,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
                blobs_done: p.blobs_done,
                blobs_total: p.blobs_total,
            }),
            failed_pings: s.failed_pings,
        })
    }

    /// Submits `action`; answers run/queued/refused, and with `wait` the result.
    async fn submit(&self, action: Action, wait: bool, sink: &ReplySink) -> Option<ActionResult> {
        let (tx, rx) = oneshot::channel();
        let admission = self.supervisor.submit(action, Some(tx));
        let state = self.supervisor.state().name();
        let (outcome, reason) = match &admission {
            Admission::Run => (PowerOutcome::Run, String::new()),
            Admission::Queued { ahead } => (PowerOutcome::Queued, format!("{ahead} action(s) ahead")),
            Admission::Refused(r) => (PowerOutcome::Refused, r.clone()),
        };
        let refused = matches!(admission, Admission::Refused(_));
        if refused || !wait {
            let _ = sink.finish(power(outcome, reason, state)).await;
            return None;
        }
        let _ = sink.send(power(outcome, reason, state)).await;
        let result = tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err(ActionError::new(
                ErrorKind::ShuttingDown,
                "the daemon stopped before the action finished",
            ))),
            _ = sink.closed() => return None,
        };
        Some(result)
    }

    async fn power(&self, action: PowerAction, wait: bool, sink: &ReplySink) {
        let action = match action {
            PowerAction::Start => Action::Start,
            PowerAction::Stop => Action::Stop,
            PowerAction::Restart => Action::Restart,
            PowerAction::Kill => {
                let state = self.supervisor.state().name();
                let kind = match self.supervisor.kill() {
                    Admission::Refused(r) => power(PowerOutcome::Refused, r, state),
                    _ => power(PowerOutcome::Run, "SIGKILL sent", state),
                };
                let _ = sink.finish(kind).await;
                return;
            }
            PowerAction::Unspecified => {
                sink.error(
                    "bad_request",
                    "power action missing: start, stop, restart or kill",
                )
                .await;
                return;
            }
        };
        if let Some(result) = self.submit(action, wait, sink).await {
            let state = self.supervisor.state().name();
            let kind = match result {
                Ok(Outcome::Done { message, .. }) => power(PowerOutcome::Done, message, state),
                Ok(_) => power(PowerOutcome::Done, "", state),
                Err(e) => {
                    failed(sink, e).await;
                    return;
                }
            };
            let _ = sink.finish(kind).await;
        }
    }

    async fn logs(&self, tail: u32, follow: bool, sink: &ReplySink) {
        let (lines, mut rx) = self.supervisor.bus().follow_logs(tail as usize);
        let line = |e: crate::events::LogEntry| {
            reply::Kind::Log(LogLine {
                unix_ms: e.unix_ms,
                stream: e.stream.into(),
                line: e.line,
            })
        };
        for e in lines {
            if sink.send(line(e)).await.is_err() {
                return;
            }
        }
        if !follow {
            let _ = sink.finish(reply::Kind::Done(Default::default())).await;
            return;
        }
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) => if sink.send(line(e)).await.is_err() { return },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let note = crate::events::LogEntry { unix_ms: crate::events::unix_ms(), stream: "runner", line: format!("[{n} lines skipped: the client reads too slowly]") };
                        if sink.send(line(note)).await.is_err() { return }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = sink.closed() => return,
            }
        }
    }

    async fn events(&self, sink: &ReplySink) {
        let mut rx = self.supervisor.bus().subscribe_events();
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) => {
                        let ev = reply::Kind::Event(Event { unix_ms: e.unix_ms, kind: e.kind, message: e.message, json: e.fields.to_string() });
                        if sink.send(ev).await.is_err() { return }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = sink.closed() => return,
            }
        }
    }

    async fn update(&self, apply: bool, sink: &ReplySink) {
        if !apply {
            // A check only reads: it does not wait behind the queue.
            let Some(u) = &self.updater else {
                sink.error(code::REFUSED, no_source("check").message).await;
                return;
            };
            let status = self.supervisor.status();
            let checked = async {
                let syncer = u.syncer()?;
                let check = syncer.check(&atlas_fetcher::NoProgress).await?;
                let bad = (!status.bad_build.is_empty()).then_some(status.bad_build.as_str());
                let report = match assess(&syncer, &check, &status.build, bad)? {
                    Found::Nothing(report, _) => report,
                    Found::New => {
                        let version = check
                            .manifest
                            .as_ref()
                            .map(|m| m.version.clone())
                            .unwrap_or_default();
                        UpdateReport {
                            outcome: UpdateOutcome::Available,
                            current_build: status.build.clone(),
                            target_build: check.build.to_hex(),
                            target_version: check.version,
                            target_pack_version: version,
                            message: String::new(),
                        }
                    }
                };
                Ok::<_, ActionError>(report)
            }
            .await;
            match checked {
                Ok(report) => {
                    let _ = sink.finish(reply::Kind::Update(pb_update(&report))).await;
                }
                Err(e) => failed(sink, e).await,
            }
            return;
        }
        match self.submit(Action::Update { auto: false }, true, sink).await {
            Some(Ok(Outcome::Update(u))) => {
                let _ = sink.finish(reply::Kind::Update(pb_update(&u))).await;
            }
            Some(Ok(_)) => {
                let _ = sink.finish(reply::Kind::Done(Default::default())).await;
            }
            Some(Err(e)) => failed(sink, e).await,
            None => {}
        }
    }

    async fn finish_action(&self, action: Action, sink: &ReplySink) {
        match self.submit(action, true, sink).await {
            Some(Ok(Outcome::Backup(b))) => {
                let _ = sink.finish(reply::Kind::Backup(pb_backup(&b))).await;
            }
            Some(Ok(Outcome::Done { message, .. })) => {
                let _ = sink
                    .finish(reply::Kind::Done(atlas_proto::runner::v1::Done { message }))
                    .await;
            }
            Some(Ok(Outcome::Update(u))) => {
                let _ = sink.finish(reply::Kind::Update(pb_update(&u))).await;
            }
            Some(Err(e)) => failed(sink, e).await,
            None => {}
        }
    }
}

impl Handler for DaemonHandler {
    async fn handle(&self, req: Request, sink: ReplySink) {
        let Some(kind) = req.kind else {
            sink.error(code::BAD_REQUEST, "the request names no operation")
                .await;
            return;
        };
        match kind {
            request::Kind::Status(_) => {
                let _ = sink.finish(self.status()).await;
            }
            request::Kind::Power(p) => {
                let action = PowerAction::try_from(p.action).unwrap_or(PowerAction::Unspecified);
                self.power(action, p.wait, &sink).await;
            }
            request::Kind::Logs(l) => self.logs(l.tail, l.follow, &sink).await,
            request::Kind::Console(c) => match self.supervisor.console().send(&c.command).await {
                Ok(output) => {
                    let _ = sink.finish(reply::Kind::Console(ConsoleOutput { output })).await;
                }
                Err(e) => sink.error(code::REFUSED, e.to_string()).await,
            },
            request::Kind::Backup(b) => match b.op {
                Some(backup_request::Op::Create(c)) => {
                    let label = if c.label.is_empty() {
                        "manual".to_string()
                    } else {
                        c.label
                    };
                    self.finish_action(Action::Backup { label }, &sink).await;
                }
                Some(backup_request::Op::List(_)) => match self.backups.list() {
                    Ok(list) => {
                        let backups = list.iter().map(pb_backup).collect();
                        let _ = sink
                            .finish(reply::Kind::Backups(BackupInfoList { backups }))
                            .await;
                    }
                    Err(e) => sink.error(code::FAILED, e.to_string()).await,
                },
                Some(backup_request::Op::Restore(r)) => {
                    // A typo is refused before anything is queued or stopped.
                    if let Err(e) = self.backups.find(&r.id) {
                        sink.error(code::REFUSED, e.to_string()).await;
                        return;
                    }
                    self.finish_action(Action::Restore { id: r.id }, &sink).await;
                }
                None => {
                    sink.error(code::BAD_REQUEST, "backup: create, list or restore")
                        .await
                }
            },
            request::Kind::Update(u) => self.update(u.apply, &sink).await,
            request::Kind::Rollback(_) => {
                // Nothing to go back to is refused before anything stops.
                let possible = match &self.updater {
                    Some(u) => rollback_possible(u).await,
                    None => Err(no_source("roll back on")),
                };
                if let Err(e) = possible {
                    let err = PbError {
                        code: code::REFUSED.into(),
                        message: e.message,
                        kind: e.kind.as_str().into(),
                        transient: e.transient,
                    };
                    let _ = sink.finish(reply::Kind::Error(err)).await;
                    return;
                }
                self.finish_action(Action::Rollback, &sink).await
            }
            request::Kind::Events(_) => self.events(&sink).await,
        }
    }
}
