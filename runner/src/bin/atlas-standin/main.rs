//! `atlas-standin`: a stand-in Minecraft server for tests and trials.
//!
//! Run in a server directory like a real server, it reads `server.properties`
//! (`server-ip`, `server-port`, `enable-rcon`, `rcon.port`, `rcon.password`,
//! `level-name`, `max-players`, `motd`), prints Minecraft-shaped log lines on
//! stdout and into `logs/latest.log`, answers Server List Ping and RCON with
//! the real protocols, takes console commands on stdin and over RCON (`stop`,
//! `save-all [flush]`, `save-off`, `save-on`, `say`, `list`, `help`), and keeps
//! a world directory ([`world`]). SIGTERM or SIGINT stops it gracefully, like
//! Minecraft's shutdown hook. An optional `standin.toml` scripts failures:
//! see [`settings::Behaviour`].
//!
//! A binary crate of its own, outside the `atlas_runner` library: the daemon
//! never links it. It speaks RCON and Server List Ping through the server
//! halves of the library's codecs ([`atlas_runner::rcon`], [`atlas_runner::slp`]).
//! The runner's tests and benchmark start it (`CARGO_BIN_EXE_atlas-standin`),
//! and the release ships it so hosts can try `atlas-runnerd` without a real server.

mod help;
mod log;
mod net;
mod server;
mod settings;
mod world;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::log::Log;
use crate::server::{Server, read_stdin, shutdown};
use crate::settings::{Behaviour, PROTOCOL, Settings, VERSION};
use crate::world::World;

/// Serves the current directory.
fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            Log::stdout_only().error(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(Path::new(".")));
    // The stdin reader blocks in a thread; do not wait for it.
    rt.shutdown_background();
    ExitCode::from(code)
}

/// Runs the stand-in in `dir` until it stops; the process exit code.
async fn run(dir: &Path) -> u8 {
    let started = Instant::now();
    let log = Log::open(dir);
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        log.error("cannot install signal handlers");
        return 1;
    };
    log.info(&format!("Starting minecraft server version {VERSION}"));
    let behaviour = match Behaviour::load(dir) {
        Ok(b) => b,
        Err(e) => {
            log.error(&format!("Failed to read standin.toml: {e}"));
            return 1;
        }
    };
    log.info("Loading properties");
    let props = std::fs::read_to_string(dir.join("server.properties")).unwrap_or_default();
    let settings = Settings::from_properties(&props);
    log.info("Default game type: SURVIVAL");
    let ip = settings.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let shown = settings.ip.map(|i| i.to_string()).unwrap_or_else(|| "*".into());
    log.info(&format!("Starting Minecraft server on {shown}:{}", settings.port));
    let game = match tokio::net::TcpListener::bind(SocketAddr::new(ip, settings.port)).await {
        Ok(l) => l,
        Err(e) => {
            log.warn("**** FAILED TO BIND TO PORT!");
            log.warn(&format!("The exception was: {e}"));
            log.warn("Perhaps a server is already running on that port?");
            return 1;
        }
    };
    let status = serde_json::json!({
        "version": {"name": VERSION, "protocol": PROTOCOL},
        "players": {"max": behaviour.players_max.unwrap_or(settings.max_players), "online": 0},
        "description": {"text": settings.motd},
        "enforcesSecureChat": false,
    });
    tokio::spawn(net::serve_slp(game, Arc::new(status.to_string())));

    log.info(&format!("Preparing level \"{}\"", settings.level_name));
    let mut world = match World::open(dir, &settings.level_name) {
        Ok(w) => w,
        Err(e) => {
            log.error(&format!("Failed to load level \"{}\": {e}", settings.level_name));
            return 1;
        }
    };
    if behaviour.corrupt_world_on_start
        && let Err(e) = world.corrupt()
    {
        log.error(&format!("corrupt_world_on_start: {e}"));
    }
    log.info("Preparing start region for dimension minecraft:overworld");
    let delay = tokio::time::sleep(Duration::from_millis(behaviour.start_delay_ms));
    tokio::select! {
        _ = delay => {}
        _ = term.recv(), if !behaviour.hang_on_stop => return shutdown(&log, &mut world, &behaviour),
        _ = int.recv(), if !behaviour.hang_on_stop => return shutdown(&log, &mut world, &behaviour),
    }
    if behaviour.fail_start {
        log.error("Encountered an unexpected exception");
        log.error("java.lang.IllegalStateException: fail_start is set in standin.toml");
        return 1;
    }
    let (tx, rx) = mpsc::channel(64);
    let rcon = match &settings.rcon {
        Some((port, _)) => match tokio::net::TcpListener::bind(SocketAddr::new(ip, *port)).await {
            Ok(l) => Some(l),
            Err(e) => {
                log.warn(&format!("Unable to initialise RCON on {shown}:{port}: {e}"));
                None
            }
        },
        None => None,
    };
    log.info(&format!(
        "Done ({:.3}s)! For help, type \"help\"",
        started.elapsed().as_secs_f64()
    ));
    if let (Some(l), Some((port, pw))) = (rcon, &settings.rcon) {
        log.info("Starting remote control listener");
        log.info("Thread RCON Listener started");
        log.info(&format!("RCON running on {ip}:{port}"));
        tokio::spawn(net::serve_rcon(l, Arc::new(pw.clone()), tx.clone()));
    }
    tokio::spawn(read_stdin(tx));
    let mut server = Server::new(log, world, behaviour, settings, (term, int));
    server.serve(rx).await
}
