//! `atlas-standin`: a stand-in Minecraft server for tests and trials.
//!
//! Run in a server directory like a real server (the current directory when
//! it holds a `server.properties`, or `--dir DIR`), it reads `server.properties`
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
//!
//! It listens on 127.0.0.1 unless `server-ip` or `--listen` says otherwise,
//! and never writes a world (or logs) into a directory it was not pointed at.

mod help;
mod log;
mod net;
mod server;
mod settings;
mod world;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::log::Log;
use crate::server::{Server, read_stdin, shutdown};
use crate::settings::{Behaviour, PROTOCOL, Settings, VERSION};
use crate::world::World;

/// A stand-in Minecraft server for tests and trials.
///
/// It serves a server directory like a real server would: reads
/// server.properties (server-ip, server-port, enable-rcon, rcon.port,
/// rcon.password, level-name, max-players, motd), prints Minecraft-shaped log
/// lines on stdout and into logs/latest.log, answers the Server List Ping and
/// RCON, takes console commands on stdin (stop, save-all [flush], save-off,
/// save-on, say, list, help) and keeps a world directory. SIGTERM or SIGINT
/// stops it gracefully. An optional standin.toml in the directory scripts
/// failures (start_delay_ms, fail_start, crash_after_ms, hang_on_stop,
/// exit_code_on_stop, players_max, players_online, corrupt_world_on_start,
/// require_eula).
///
/// Try atlas-runnerd with it: `[server] command = ["atlas-standin"]` in the
/// runner config (the daemon starts it in the server directory).
#[derive(Debug, Parser)]
#[command(name = "atlas-standin", version)]
struct Args {
    /// The server directory to serve; created if missing, and the world,
    /// logs/ and any eula.txt are written there. Without it the current
    /// directory is served only when it holds a server.properties.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The address to listen on when server.properties sets no server-ip
    /// (default 127.0.0.1; 0.0.0.0 for every interface).
    #[arg(long, value_name = "IP")]
    listen: Option<IpAddr>,
}

/// Says what is wrong on stderr (before any log is open).
fn usage_error(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "atlas-standin: {message}");
}

/// Serves `--dir`, or the current directory when it is a server directory.
fn main() -> ExitCode {
    let args = Args::parse();
    let dir = match &args.dir {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                usage_error(&format!("cannot create {}: {e}", d.display()));
                return ExitCode::from(2);
            }
            d.clone()
        }
        None if Path::new("server.properties").is_file() => PathBuf::from("."),
        None => {
            usage_error(
                "the current directory has no server.properties, so it is not a server directory; \
                 pass --dir DIR to serve DIR (its world and logs are written there). See --help.",
            );
            return ExitCode::from(2);
        }
    };
    let listen = args.listen.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            Log::stdout_only().error(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(&dir, listen));
    // The stdin reader blocks in a thread; do not wait for it.
    rt.shutdown_background();
    ExitCode::from(code)
}

/// Runs the stand-in in `dir` until it stops; the process exit code.
/// `listen` is the address used when server.properties sets no `server-ip`.
async fn run(dir: &Path, listen: IpAddr) -> u8 {
    let started = Instant::now();
    let log = Log::open(dir);
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        log.error("cannot install signal handlers");
        return 1;
    };
    let behaviour = match Behaviour::load(dir) {
        Ok(b) => b,
        Err(e) => {
            log.error(&format!("Failed to read standin.toml: {e}"));
            return 1;
        }
    };
    // Vanilla checks eula.txt before anything else, writes it with
    // eula=false when it is missing, and returns (exit code 0).
    if behaviour.require_eula && !atlas_runner::eula::accepted(dir) {
        if !dir.join("eula.txt").exists() {
            log.warn("Failed to load eula.txt");
            let _ = std::fs::write(
                dir.join("eula.txt"),
                "#By changing the setting below to TRUE you are indicating your agreement to our EULA (https://aka.ms/MinecraftEULA).\neula=false\n",
            );
        }
        log.info("You need to agree to the EULA in order to run the server. Go to eula.txt for more info.");
        return 0;
    }
    log.info(&format!("Starting minecraft server version {VERSION}"));
    log.info("Loading properties");
    let props = std::fs::read_to_string(dir.join("server.properties")).unwrap_or_default();
    let settings = Settings::from_properties(&props);
    log.info("Default game type: SURVIVAL");
    let ip = settings.ip.unwrap_or(listen);
    let shown = ip.to_string();
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
        "players": {"max": behaviour.players_max.unwrap_or(settings.max_players), "online": behaviour.players_online},
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
