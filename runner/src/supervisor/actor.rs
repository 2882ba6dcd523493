//! The actor that owns the server process: it takes actions from the queue
//! one at a time, and between them watches for exits (crash or in-game
//! stop), restart backoffs, update polls, pings and scheduled hot backups.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::console::Target;
use super::process::{self, ServerProcess, describe_exit};
use super::{Action, ActionResult, Outcome, StopIntent, Supervisor};
use crate::backup::Backups;
use crate::channel::Updater;
use crate::config::RunnerConfig;
use crate::error::{ActionError, ErrorKind};
use crate::metrics::Metrics;
use crate::properties::ServerProperties;
use crate::shutdown::Shutdown;
use crate::state::State;
use crate::webhook::{Webhook, WebhookKind};

/// How often readiness pings are tried after "Done".
const READY_PING_EVERY: Duration = Duration::from_millis(250);
pub(super) const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a start did not reach ready.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub reason: String,
    /// A process was spawned (it exited, or was killed at the start timeout).
    pub launched: bool,
    /// The daemon is shutting down: the wait for ready ended early and the
    /// process, still running, is left to the caller to stop.
    pub shutting_down: bool,
    /// The Minecraft EULA is not accepted: not a crash, nothing to retry
    /// until the host accepts it.
    pub eula: bool,
}

/// Owns the server process; see the module docs.
#[derive(Debug)]
pub struct Actor {
    pub(crate) sup: Supervisor,
    pub(crate) cfg: Arc<RunnerConfig>,
    pub(crate) backups: Arc<Backups>,
    pub(crate) metrics: Metrics,
    pub(crate) webhook: Option<Arc<Webhook>>,
    pub(crate) updater: Option<Updater>,
    pub(crate) proc_: Option<ServerProcess>,
    pub(crate) props: Option<ServerProperties>,
    pub(super) crash_times: VecDeque<Instant>,
    pub(super) restart_at: Option<tokio::time::Instant>,
    pub(crate) next_poll: Option<tokio::time::Instant>,
    pub(super) next_ping: Option<tokio::time::Instant>,
    pub(super) next_hot_backup: Option<tokio::time::Instant>,
    pub(super) shutdown: Shutdown,
    /// `[server] ready_pattern`, compiled.
    pub(super) ready: regex::Regex,
    /// When the daemon started (Unix seconds): a lock owner other than this
    /// daemon recorded after it means a second updater.
    pub(super) started_unix: u64,
    /// The other updater last reported, so it is reported once.
    pub(super) other_updater: Option<atlas_fetcher::lock_owner::LockOwner>,
    /// The build staged to wait for the maintenance window (said once).
    pub(super) window_staged: Option<String>,
}

/// Why the wait for ready ended without it.
enum NotReady {
    Exited(std::io::Result<ExitStatus>),
    Timeout,
    ShuttingDown,
}

enum Wake {
    Shutdown,
    Woken,
    Exited(std::io::Result<ExitStatus>),
    Restart,
    Poll,
    Ping,
    HotBackup,
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    pub(crate) fn new(
        sup: Supervisor,
        cfg: Arc<RunnerConfig>,
        backups: Arc<Backups>,
        metrics: Metrics,
        webhook: Option<Arc<Webhook>>,
        updater: Option<Updater>,
        shutdown: Shutdown,
    ) -> Self {
        let hot = cfg.backup.hot_interval.map(|d| tokio::time::Instant::now() + d);
        Self {
            sup,
            backups,
            metrics,
            webhook,
            updater,
            proc_: None,
            props: None,
            crash_times: VecDeque::new(),
            restart_at: None,
            next_poll: None,
            next_ping: None,
            next_hot_backup: hot,
            shutdown,
            ready: cfg.server.ready_regex(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            other_updater: None,
            window_staged: None,
            cfg,
        }
    }

    /// Runs until the shutdown is requested, then stops the server.
    pub async fn run(mut self) {
        if let Some(u) = &self.updater {
            self.next_poll = Some(tokio::time::Instant::now() + u.first_delay());
        }
        loop {
            if self.shutdown.is_requested() {
                self.shut_down().await;
                return;
            }
            let job = {
                let mut s = self.sup.inner.lock();
                let job = s.queue.pop_front();
                s.busy = job.as_ref().map(|j| j.action.clone());
                job
            };
            if let Some(job) = job {
                let result = self.execute(job.action.clone()).await;
                self.sup.inner.lock().busy = None;
                if let Err(e) = &result {
                    self.sup.bus().event(
                        "power",
                        format!("{} failed: {e}", job.action.name()),
                        serde_json::json!({
                            "action": job.action.name(),
                            "error": e.message,
                            "kind": e.kind.as_str(),
                            "transient": e.transient,
                        }),
                    );
                }
                if let Some(tx) = job.done {
                    let _ = tx.send(result);
                }
                continue;
            }
            let wake = self.next_wake().await;
            match wake {
                Wake::Shutdown | Wake::Woken => {}
                Wake::Exited(st) => self.on_unexpected_exit(st).await,
                Wake::Restart => {
                    self.restart_at = None;
                    if self.state() == State::Crashed {
                        let _ = self.start().await;
                    }
                }
                Wake::Poll => {
                    let next = self.updater.as_ref().map(Updater::next_delay);
                    self.next_poll = next.map(|d| tokio::time::Instant::now() + d);
                    // Refused only when an update is already queued.
                    self.sup.submit(Action::Update { auto: true }, None);
                }
                Wake::Ping => self.ping().await,
                Wake::HotBackup => {
                    let d = self.cfg.backup.hot_interval;
                    self.next_hot_backup = d.map(|d| tokio::time::Instant::now() + d);
                    if self.state() == State::Running {
                        self.sup.submit(
                            Action::Backup {
                                label: "scheduled".into(),
                            },
                            None,
                        );
                    }
                }
            }
        }
    }

    /// Waits for the next thing to do while no action runs.
    async fn next_wake(&mut self) -> Wake {
        let exit = async {
            match &mut self.proc_ {
                Some(p) => p.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.shutdown.requested() => Wake::Shutdown,
            _ = self.sup.inner.wake.notified() => Wake::Woken,
            st = exit => Wake::Exited(st),
            _ = sleep_opt(self.restart_at) => Wake::Restart,
            _ = sleep_opt(self.next_poll) => Wake::Poll,
            _ = sleep_opt(self.next_ping) => Wake::Ping,
            _ = sleep_opt(self.next_hot_backup) => Wake::HotBackup,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.sup.state()
    }

    /// Moves the machine to `to` (a refused transition is a supervisor bug).
    pub(crate) fn go(&self, to: State, detail: impl Into<String>) {
        let detail = detail.into();
        let mut s = self.sup.inner.lock();
        match s.machine.go(to) {
            Ok(from) => {
                s.detail = detail.clone();
                drop(s);
                self.metrics.set_state(to.name());
                self.sup.bus().event(
                    "state",
                    if detail.is_empty() {
                        to.to_string()
                    } else {
                        format!("{to}: {detail}")
                    },
                    serde_json::json!({"from": from.to_string(), "to": to.to_string(), "detail": detail}),
                );
            }
            Err(e) => {
                drop(s);
                tracing::error!("{e}");
                self.sup.bus().event("bug", e.to_string(), serde_json::json!({}));
                debug_assert!(false, "{e}");
            }
        }
    }

    async fn execute(&mut self, action: Action) -> ActionResult {
        match action {
            Action::Start => match self.state() {
                State::Running | State::Starting => Ok(self.done("already running")),
                _ => {
                    self.restart_at = None;
                    self.start().await.map(|()| self.done("started"))
                }
            },
            Action::Stop => self.stop_action().await,
            Action::Restart => {
                if self.proc_.is_some() {
                    self.stop().await;
                }
                self.start().await.map(|()| self.done("restarted"))
            }
            Action::Update { auto } => self.update(auto).await.map(Outcome::Update),
            Action::Backup { label } => self.backup(&label).await.map(Outcome::Backup),
            Action::Restore { id } => self.restore(&id).await,
            Action::Rollback => self.rollback().await,
        }
    }

    pub(crate) fn done(&self, message: &str) -> Outcome {
        Outcome::Done {
            state: self.state(),
            message: message.into(),
        }
    }

    async fn stop_action(&mut self) -> ActionResult {
        match self.state() {
            State::Crashed => {
                self.restart_at = None;
                self.go(State::Stopped, "restart cancelled");
                Ok(self.done("stopped (the restart after the crash is cancelled)"))
            }
            State::Stopped | State::Failed => Ok(self.done("already stopped")),
            _ => {
                self.stop().await;
                Ok(self.done("stopped"))
            }
        }
    }

    /// Launches the server and waits for ready: Stopped/Crashed/Failed → Starting → Running.
    /// A shutdown during the wait leaves it Starting, for the shutdown to stop.
    pub(crate) async fn start(&mut self) -> Result<(), ActionError> {
        self.go(State::Starting, "");
        match self.launch_and_wait_ready().await {
            Ok(()) => {
                self.go(State::Running, "");
                Ok(())
            }
            Err(f) if f.shutting_down => Err(ActionError::shutting_down("the start was not waited for")),
            Err(f) if f.eula => {
                // Not a crash: nothing changes until the host accepts the EULA.
                self.go(State::Crashed, &f.reason);
                self.go(State::Failed, &f.reason);
                self.notify(WebhookKind::Failed, "Server cannot start", &f.reason);
                Err(ActionError::new(ErrorKind::Config, f.reason))
            }
            Err(f) if f.launched && self.sup.inner.lock().intent == Some(StopIntent::Kill) => {
                self.sup.inner.lock().intent = None;
                self.go(State::Stopping, "killed on request");
                self.go(State::Stopped, "killed on request");
                Err(ActionError::new(
                    ErrorKind::Server,
                    format!("killed during the start ({})", f.reason),
                ))
            }
            Err(f) if f.launched => {
                let reason = f.reason.clone();
                self.crashed(&reason);
                Err(ActionError::new(ErrorKind::Server, reason))
            }
            Err(f) => {
                // Could not even launch (no Java, no launch description).
                self.go(State::Crashed, &f.reason);
                self.go(State::Failed, &f.reason);
                self.notify(WebhookKind::Failed, "Server cannot start", &f.reason);
                Err(ActionError::new(ErrorKind::Server, f.reason))
            }
        }
    }

    /// Spawns the server and waits until it prints its ready line
    /// (`[server] ready_pattern`) and answers a Server List Ping with
    /// `players.max > 0`, within the start timeout, or until the daemon
    /// shuts down. Leaves the machine's state alone.
    pub(crate) async fn launch_and_wait_ready(&mut self) -> Result<(), StartFailure> {
        let dir = self.cfg.server_dir.clone();
        let launch_error = |reason: String| StartFailure {
            reason,
            launched: false,
            shutting_down: false,
            eula: false,
        };
        let props =
            ServerProperties::load(&dir).map_err(|e| launch_error(format!("server.properties: {e}")))?;
        let pack = self.installed_manifest().and_then(|m| m.server);
        let cmd = crate::java::launch_command(&dir, &self.cfg.server, pack.as_ref())
            .map_err(|e| launch_error(e.to_string()))?;
        if self.cfg.server.eula {
            match crate::eula::accept(&dir) {
                Ok(true) => self.sup.bus().event(
                    "eula",
                    format!(
                        "wrote eula.txt: the host accepted the Minecraft EULA ({}) with `eula = true` in the runner config",
                        crate::eula::EULA_URL
                    ),
                    serde_json::json!({"url": crate::eula::EULA_URL}),
                ),
                Ok(false) => {}
                Err(e) => {
                    return Err(launch_error(format!(
                        "cannot write {}: {e}",
                        dir.join(crate::eula::EULA_FILE).display()
                    )));
                }
            }
        } else if self.cfg.server.command.is_none() && !crate::eula::accepted(&dir) {
            // A Java server from a launch description is Mojang's server
            // (vanilla or a loader on it): it would print why and exit.
            return Err(StartFailure {
                eula: true,
                ..launch_error(crate::eula::not_accepted_message())
            });
        }
        let p = process::spawn(&cmd, &dir, &self.cfg.server.env, self.sup.bus(), &self.ready)
            .map_err(|e| launch_error(format!("cannot run {}: {e}", cmd.program.display())))?;
        self.sup.bus().event(
            "process",
            format!("started {} (pid {})", cmd.program.display(), p.pid),
            serde_json::json!({"pid": p.pid, "program": cmd.program, "args": cmd.args, "launch": cmd.applied}),
        );
        self.sup.inner.lock().launch = cmd.applied.clone();
        let use_rcon = props.rcon_enabled && self.cfg.rcon.enabled != Some(false);
        let rcon = use_rcon.then(|| {
            let addr =
                std::net::SocketAddr::new(props.rcon.ip(), self.cfg.rcon.port.unwrap_or(props.rcon.port()));
            let pw = self
                .cfg
                .rcon
                .password
                .clone()
                .unwrap_or_else(|| props.rcon_password.clone());
            (addr, pw)
        });
        self.sup.console().set(Some(Target {
            stdin: p.stdin.clone(),
            rcon,
            bus: self.sup.bus().clone(),
        }));
        {
            let mut s = self.sup.inner.lock();
            s.pid = Some(p.pid);
            s.intent = None;
            s.ready_at = None;
        }
        let game = props.game;
        self.props = Some(props);
        let mut done_rx = p.done_rx.clone();
        self.proc_ = Some(p);
        let timeout = self.cfg.server.start_timeout;
        let ping_timeout = self.ping_timeout();
        let ready = async {
            let _ = done_rx.wait_for(|d| *d).await;
            loop {
                if let Ok(st) = crate::slp::ping(game, ping_timeout).await
                    && st.players_max > 0
                {
                    return st;
                }
                tokio::time::sleep(READY_PING_EVERY).await;
            }
        };
        let shutdown = self.shutdown.clone();
        let result = {
            let proc_ = self.proc_.as_mut().expect("set just above");
            tokio::select! {
                st = proc_.wait() => Err(NotReady::Exited(st)),
                r = tokio::time::timeout(timeout, ready) => r.map_err(|_| NotReady::Timeout),
                () = shutdown.requested() => Err(NotReady::ShuttingDown),
            }
        };
        match result {
            Ok(st) => {
                let mut s = self.sup.inner.lock();
                s.ready_at = Some(Instant::now());
                s.players = (st.players_online, st.players_max);
                s.slp = Some((st.version_name.clone(), st.description.clone()));
                s.failed_pings = 0;
                drop(s);
                self.metrics.set_players(st.players_online, st.players_max);
                self.next_ping = Some(tokio::time::Instant::now() + self.cfg.server.ping_interval);
                Ok(())
            }
            Err(NotReady::ShuttingDown) => Err(StartFailure {
                reason: "the daemon is shutting down".into(),
                launched: true,
                shutting_down: true,
                eula: false,
            }),
            Err(NotReady::Exited(st)) => {
                let how = st.as_ref().map(describe_exit).unwrap_or_else(|e| e.to_string());
                let eula = self.reap().await;
                self.forget_process();
                if eula {
                    return Err(StartFailure {
                        reason: crate::eula::not_accepted_message(),
                        launched: true,
                        shutting_down: false,
                        eula: true,
                    });
                }
                Err(StartFailure {
                    reason: format!("the server exited before it was ready ({how})"),
                    launched: true,
                    shutting_down: false,
                    eula: false,
                })
            }
            Err(NotReady::Timeout) => {
                if let Some(p) = self.proc_.as_mut() {
                    p.signal(Signal::SIGKILL);
                    let _ = p.wait().await;
                }
                self.reap().await;
                self.forget_process();
                Err(StartFailure {
                    reason: format!(
                        "the server was not ready within {} (no \"Done\" line, or no Server List Ping answer with players.max > 0 on {game})",
                        humantime::format_duration(timeout)
                    ),
                    launched: true,
                    shutting_down: false,
                    eula: false,
                })
            }
        }
    }

    /// After the server process exited: the rest of its group killed and
    /// its output read to the end; whether it refused to run for the EULA.
    pub(crate) async fn reap(&mut self) -> bool {
        match self.proc_.as_mut() {
            Some(p) => {
                p.reap().await;
                p.flags.eula_refused.load(std::sync::atomic::Ordering::SeqCst)
            }
            None => false,
        }
    }

    /// The timeout of one Server List Ping: the ping interval, between 1 s
    /// and [`PING_TIMEOUT`].
    pub(crate) fn ping_timeout(&self) -> Duration {
        self.cfg
            .server
            .ping_interval
            .clamp(Duration::from_secs(1), PING_TIMEOUT)
    }

    pub(crate) fn forget_process(&mut self) {
        self.proc_ = None;
        self.sup.console().set(None);
        self.next_ping = None;
        let mut s = self.sup.inner.lock();
        s.pid = None;
        s.ready_at = None;
        s.players = (0, 0);
        s.failed_pings = 0;
    }

    /// The stop sequence, with the intent recorded first: `stop` (RCON, else
    /// stdin), then SIGTERM, then SIGKILL, each after its timeout.
    /// Running/Starting → Stopping → Stopped.
    pub(crate) async fn stop(&mut self) {
        if !matches!(self.state(), State::Updating(_)) {
            self.go(State::Stopping, "");
        }
        self.stop_process().await;
        if self.state() == State::Stopping {
            self.go(State::Stopped, "");
        }
    }

    /// The stop sequence without state changes (updates use their own steps).
    pub(crate) async fn stop_process(&mut self) {
        self.stop_process_with(true).await;
    }

    /// The stop sequence; with `console` false (a frozen server) it starts
    /// at SIGTERM. A server that has not printed its ready line yet cannot
    /// take a console `stop` (vanilla reads commands only once it runs), so
    /// it gets SIGTERM at once too: its shutdown hook stops it cleanly.
    pub(crate) async fn stop_process_with(&mut self, console: bool) {
        {
            let mut s = self.sup.inner.lock();
            if s.intent.is_none() {
                s.intent = Some(StopIntent::Runner);
            }
        }
        let Some(mut p) = self.proc_.take() else { return };
        let bus = self.sup.bus().clone();
        let (stop_timeout, term_timeout) = (self.cfg.server.stop_timeout, self.cfg.server.term_timeout);
        let ready = p.flags.done.load(std::sync::atomic::Ordering::SeqCst);
        let mut exited = None;
        if console && ready {
            let console = self.sup.console().clone();
            let sent = tokio::time::timeout(Duration::from_secs(10), console.send("stop")).await;
            if !matches!(sent, Ok(Ok(_))) {
                bus.event(
                    "stop",
                    "could not send `stop` to the console",
                    serde_json::json!({}),
                );
            }
            exited = tokio::time::timeout(stop_timeout, p.wait()).await.ok();
            if exited.is_none() {
                bus.event(
                    "stop",
                    format!(
                        "not stopped {} after `stop`: sending SIGTERM",
                        humantime::format_duration(stop_timeout)
                    ),
                    serde_json::json!({"signal": "SIGTERM"}),
                );
            }
        } else {
            let why = if console {
                "the server is not ready yet (it takes console commands once it runs): sending SIGTERM"
            } else {
                "the server does not answer: sending SIGTERM"
            };
            bus.event("stop", why, serde_json::json!({"signal": "SIGTERM"}));
        }
        if exited.is_none() {
            p.signal(Signal::SIGTERM);
            exited = tokio::time::timeout(term_timeout, p.wait()).await.ok();
        }
        if exited.is_none() {
            bus.event(
                "stop",
                format!(
                    "not stopped {} after SIGTERM: sending SIGKILL",
                    humantime::format_duration(term_timeout)
                ),
                serde_json::json!({"signal": "SIGKILL"}),
            );
            p.signal(Signal::SIGKILL);
            exited = Some(p.wait().await);
        }
        p.reap().await;
        let how = match exited {
            Some(Ok(st)) => describe_exit(&st),
            Some(Err(e)) => e.to_string(),
            None => "unknown".into(),
        };
        bus.event(
            "process",
            format!("server exited ({how})"),
            serde_json::json!({"exit": how}),
        );
        self.proc_ = Some(p);
        self.forget_process();
        self.sup.inner.lock().intent = None;
    }
}
