//! `atlas-runnerd`: loads the config, starts the supervisor's actor, serves
//! the control socket, metrics and webhooks, and on SIGTERM or SIGINT stops
//! the server cleanly before exiting.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::backup::Backups;
use crate::channel::{RunnerState, Updater};
use crate::config::RunnerConfig;
use crate::events::EventBus;
use crate::ipc;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::supervisor::{Action, Actor, Supervisor};
use crate::webhook::Webhook;

mod handler;

pub use handler::DaemonHandler;

/// Keeps a Minecraft server running on the latest good build of its Atlas channel.
///
/// Reads its TOML config (see schemas/runner.schema.json), starts the server,
/// follows the channel (stage, announce, stop, back up, apply, start, health
/// window, roll back on failure), and listens on a Unix socket for
/// `atlas-runner`. SIGTERM or SIGINT stops the server cleanly, then exits.
///
/// Exit codes: 0 clean shutdown, 1 runtime error, 2 bad usage or config.
///
/// Diagnostics go to stderr (journald under systemd), coloured only on a
/// terminal; NO_COLOR turns colour off there too. RUST_LOG sets the level.
#[derive(Debug, Parser)]
#[command(name = "atlas-runnerd", version)]
pub struct Args {
    /// The runner config file.
    #[arg(
        long,
        short,
        env = "ATLAS_RUNNER_CONFIG",
        default_value = "/etc/atlas-runner/runner.toml"
    )]
    pub config: PathBuf,
    /// Check the config (its syntax, and against this host: paths, keys,
    /// ports), print it with every default filled in, and exit: 0 when it
    /// is usable, 2 with the config key at fault when not.
    #[arg(long)]
    pub check: bool,
}

/// A running daemon (tests start one in-process; the binary runs one until a signal).
#[derive(Debug)]
pub struct Daemon {
    pub supervisor: Supervisor,
    pub shutdown: Shutdown,
    pub socket: PathBuf,
    pub metrics_addr: Option<std::net::SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Setup(String),
}

impl Daemon {
    /// Starts every part of the daemon from `cfg`.
    pub async fn start(cfg: RunnerConfig) -> Result<Self, DaemonError> {
        let mut cfg = cfg;
        let state_dir = cfg.state_dir();
        std::fs::create_dir_all(&state_dir).map_err(|e| {
            DaemonError::Setup(format!(
                "`state_dir`: cannot create the state directory {}: {e}",
                state_dir.display()
            ))
        })?;
        // The runner's own state (and its blob cache) is never archived.
        if let Ok(rel) = state_dir.strip_prefix(&cfg.server_dir) {
            cfg.backup.exclude.push(rel.to_string_lossy().into_owned());
        }
        let cfg = Arc::new(cfg);
        let bus = EventBus::new();
        let supervisor = Supervisor::new(bus.clone());
        let saved = RunnerState::load(&state_dir);
        supervisor.inner.lock().bad_build = saved.bad_build;
        let shutdown = Shutdown::new();
        let backups = Arc::new(
            Backups::new(cfg.backup.clone(), cfg.server_dir.clone())
                .map_err(|e| DaemonError::Setup(format!("[backup]: {e}")))?
                .with_interrupt(shutdown.flag()),
        );
        let metrics = Metrics::new();
        metrics.set_state("stopped");
        let webhook = Webhook::new(cfg.webhook.clone())
            .map_err(|e| DaemonError::Setup(format!("`webhook.url`: {e}")))?
            .map(Arc::new);
        let mut tasks = Vec::new();

        let listener = ipc::bind(&cfg.socket).map_err(|e| DaemonError::Setup(format!("`socket`: {e}")))?;
        let handler = Arc::new(DaemonHandler {
            supervisor: supervisor.clone(),
            backups: backups.clone(),
            updater: Updater::new(&cfg, shutdown.clone()),
        });
        tasks.push(tokio::spawn(ipc::serve(
            listener,
            handler,
            shutdown.token().clone(),
        )));

        let mut metrics_addr = None;
        if let Some(addr) = cfg.metrics.listen {
            let l = crate::metrics::bind(addr, cfg.metrics.allow_remote)
                .await
                .map_err(|e| DaemonError::Setup(format!("`metrics.listen`: {e}")))?;
            metrics_addr = l.local_addr().ok();
            let stop = shutdown.clone();
            let m = metrics.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::metrics::serve(l, m, async move { stop.requested().await }).await {
                    tracing::error!("metrics endpoint: {e}");
                }
            }));
        }

        let updater = Updater::new(&cfg, shutdown.clone());
        let has_install = atlas_fetcher::state::StatePaths::new(&cfg.server_dir)
            .install
            .exists();
        let actor = Actor::new(
            supervisor.clone(),
            cfg.clone(),
            backups,
            metrics,
            webhook,
            updater.clone(),
            shutdown.clone(),
        );
        actor.refresh_build();
        tasks.push(tokio::spawn(actor.run()));
        if cfg.autostart {
            if updater.is_some() && !has_install {
                // First run: install the channel's build, then start it.
                supervisor.submit(Action::Update { auto: false }, None);
            }
            supervisor.submit(Action::Start, None);
        }
        bus.event(
            "daemon",
            format!(
                "atlas-runnerd {} listening on {}",
                env!("CARGO_PKG_VERSION"),
                cfg.socket.display()
            ),
            serde_json::json!({"socket": cfg.socket, "server_dir": cfg.server_dir}),
        );
        Ok(Self {
            supervisor,
            shutdown,
            socket: cfg.socket.clone(),
            metrics_addr,
            tasks,
        })
    }

    /// Stops the server cleanly, then every task.
    pub async fn stop(self) {
        self.shutdown.request();
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping the server, then exiting"),
        _ = int.recv() => tracing::info!("SIGINT: stopping the server, then exiting"),
    }
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let args = Args::parse();
    crate::diag::init_tracing("info");
    let cfg = match RunnerConfig::load(&args.config).and_then(|c| c.check_host(&args.config).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        match toml::to_string_pretty(&cfg) {
            Ok(text) => {
                println!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        let daemon = match Daemon::start(cfg).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };
        signal().await;
        daemon.stop().await;
        ExitCode::SUCCESS
    })
}
