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
//! see [`Behaviour`].

mod help;
mod log;
mod net;
pub mod world;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

pub use self::help::help_lines;
use self::log::Log;
use self::world::World;

/// The Minecraft version the stand-in claims to be.
pub const VERSION: &str = "1.21.1";
/// Its protocol number (1.21.1).
pub const PROTOCOL: i32 = 767;

/// `standin.toml`: scripted behaviour. Unknown keys are errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Extra time spent preparing the level before "Done".
    pub start_delay_ms: u64,
    /// Print an error and exit 1 before "Done".
    pub fail_start: bool,
    /// Exit 1 abruptly (no save) this long after "Done".
    pub crash_after_ms: Option<u64>,
    /// Ignore SIGTERM, and hang after `stop` (only SIGKILL ends it).
    pub hang_on_stop: bool,
    /// The exit code of a graceful stop (`stop` or SIGTERM).
    pub exit_code_on_stop: u8,
    /// Overrides `max-players` in the status (0: never "ready").
    pub players_max: Option<u32>,
    /// Damage the world while preparing the level (a bad build).
    pub corrupt_world_on_start: bool,
}

impl Behaviour {
    /// Reads `<dir>/standin.toml`; a missing file is the default behaviour.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("standin.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// What the stand-in takes from `server.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// `rcon.port` and `rcon.password` when RCON is enabled with a password.
    pub rcon: Option<(u16, String)>,
    pub level_name: String,
    pub max_players: u32,
    pub motd: String,
}

impl Settings {
    pub fn from_properties(text: &str) -> Self {
        let p = crate::properties::parse(text);
        let get = |k: &str| p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let num = |k: &str, d: u16| get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let rcon = (get("enable-rcon") == Some("true"))
            .then(|| get("rcon.password").map(|pw| (num("rcon.port", 25575), pw.to_owned())))
            .flatten();
        Self {
            ip: get("server-ip").and_then(|v| v.parse().ok()),
            port: num("server-port", 25565),
            rcon,
            level_name: get("level-name").unwrap_or("world").to_owned(),
            max_players: get("max-players").and_then(|v| v.parse().ok()).unwrap_or(20),
            motd: get("motd").unwrap_or("A Minecraft Server").to_owned(),
        }
    }
}

/// A console command, from stdin (`rcon: None`) or RCON. An RCON command's
/// output goes back with a sender the connection drops once it has written it.
#[derive(Debug)]
pub(crate) struct Command {
    pub line: String,
    pub rcon: Option<oneshot::Sender<(String, oneshot::Sender<()>)>>,
}

/// The binary's entry point: serves the current directory.
pub fn main() -> ExitCode {
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
pub async fn run(dir: &Path) -> u8 {
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
    let mut server = Server {
        log,
        world,
        behaviour,
        settings,
        saving: true,
        term,
        int,
    };
    server.serve(rx).await
}

async fn read_stdin(tx: mpsc::Sender<Command>) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    // At end of input the server keeps running, like Minecraft.
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(Command { line, rcon: None }).await.is_err() {
            break;
        }
    }
}

/// The server thread: runs commands one at a time.
struct Server {
    log: Log,
    world: World,
    behaviour: Behaviour,
    settings: Settings,
    saving: bool,
    term: Signal,
    int: Signal,
}

impl Server {
    async fn serve(&mut self, mut rx: mpsc::Receiver<Command>) -> u8 {
        let crash_after = self.behaviour.crash_after_ms;
        let crash = async move {
            match crash_after {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(crash);
        loop {
            tokio::select! {
                Some(cmd) = rx.recv() => {
                    if self.command(cmd).await {
                        return self.stop().await;
                    }
                }
                _ = self.term.recv() => {
                    if self.behaviour.hang_on_stop {
                        self.log.warn("Ignoring SIGTERM (hang_on_stop in standin.toml)");
                    } else {
                        return shutdown(&self.log, &mut self.world, &self.behaviour);
                    }
                }
                _ = self.int.recv(), if !self.behaviour.hang_on_stop => {
                    return shutdown(&self.log, &mut self.world, &self.behaviour);
                }
                _ = &mut crash => {
                    self.log.error("Encountered an unexpected exception");
                    self.log.error("java.lang.RuntimeException: crash_after_ms is set in standin.toml");
                    self.log.error("This crash report has been saved to: ./crash-reports/crash-standin.txt");
                    return 1;
                }
            }
        }
    }

    /// Runs one command; true when it was `stop`.
    async fn command(&mut self, cmd: Command) -> bool {
        let line = cmd.line.trim();
        let line = line.strip_prefix('/').unwrap_or(line);
        let (name, arg) = line.split_once(' ').unwrap_or((line, ""));
        let out: Vec<String> = match name {
            "" => Vec::new(),
            "stop" => vec!["Stopping the server".into()],
            "save-all" => match self.world.save() {
                Ok(()) => vec![
                    "Saving the game (this may take a moment!)".into(),
                    "Saved the game".into(),
                ],
                Err(e) => vec![
                    "Saving the game (this may take a moment!)".into(),
                    format!("Saving failed: {e}"),
                ],
            },
            "save-off" | "save-on" => {
                let on = name == "save-on";
                let msg = match (self.saving == on, on) {
                    (true, true) => "Saving is already turned on",
                    (true, false) => "Saving is already turned off",
                    (false, true) => "Automatic saving is now enabled",
                    (false, false) => "Automatic saving is now disabled",
                };
                self.saving = on;
                vec![msg.into()]
            }
            "say" => {
                // A chat broadcast: logged, with no command feedback.
                self.log.info(&format!("[Server] {arg}"));
                Vec::new()
            }
            "list" => vec![format!(
                "There are 0 of a max of {} players online: ",
                self.players_max()
            )],
            "help" => help_lines(),
            _ => vec![
                "Unknown or incomplete command, see below for error".into(),
                format!("{line}<--[HERE]"),
            ],
        };
        let is_stop = name == "stop";
        match cmd.rcon {
            None => out.iter().for_each(|l| self.log.info(l)),
            Some(reply) => {
                out.iter().for_each(|l| self.log.info(&format!("[Rcon: {l}]")));
                let (written_tx, written_rx) = oneshot::channel();
                if reply.send((out.join("\n"), written_tx)).is_ok() && is_stop {
                    // Let the connection write "Stopping the server" before the process ends.
                    let _ = tokio::time::timeout(Duration::from_secs(5), written_rx).await;
                }
            }
        }
        is_stop
    }

    async fn stop(&mut self) -> u8 {
        if self.behaviour.hang_on_stop {
            // A shutdown stuck forever: no more commands, signals ignored.
            loop {
                tokio::select! {
                    _ = self.term.recv() => self.log.warn("Ignoring SIGTERM (hang_on_stop in standin.toml)"),
                    _ = self.int.recv() => self.log.warn("Ignoring SIGINT (hang_on_stop in standin.toml)"),
                }
            }
        }
        shutdown(&self.log, &mut self.world, &self.behaviour)
    }

    fn players_max(&self) -> u32 {
        self.behaviour.players_max.unwrap_or(self.settings.max_players)
    }
}

/// A graceful shutdown: save the world, then exit with `exit_code_on_stop`.
fn shutdown(log: &Log, world: &mut World, behaviour: &Behaviour) -> u8 {
    log.info("Stopping server");
    log.info("Saving players");
    log.info("Saving worlds");
    let name = world
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    log.info(&format!(
        "Saving chunks for level 'ServerLevel[{name}]'/minecraft:overworld"
    ));
    if let Err(e) = world.save() {
        log.error(&format!("Failed to save level {name}: {e}"));
        return 1;
    }
    log.info(&format!(
        "ThreadedAnvilChunkStorage ({name}): All chunks are saved"
    ));
    log.info("ThreadedAnvilChunkStorage: All dimensions are saved");
    behaviour.exit_code_on_stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_give_ports_rcon_and_level() {
        let s = Settings::from_properties(
            "server-port=25570\nenable-rcon=true\nrcon.port=25580\nrcon.password=hunter2\nlevel-name=my world\nmax-players=7\n",
        );
        assert_eq!(s.port, 25570);
        assert_eq!(s.rcon, Some((25580, "hunter2".into())));
        assert_eq!(
            (s.level_name.as_str(), s.max_players, s.ip),
            ("my world", 7, None)
        );
        // RCON needs both enable-rcon and a password, like vanilla.
        assert_eq!(Settings::from_properties("enable-rcon=true\n").rcon, None);
        assert_eq!(
            Settings::from_properties("enable-rcon=false\nrcon.password=x\n").rcon,
            None
        );
        let d = Settings::from_properties("server-ip=127.0.0.1\n");
        assert_eq!(
            (d.port, d.level_name.as_str(), d.max_players),
            (25565, "world", 20)
        );
        assert_eq!(d.ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn behaviour_file() {
        let b: Behaviour = toml::from_str(
            "start_delay_ms = 5\nfail_start = true\ncrash_after_ms = 7\nhang_on_stop = true\nexit_code_on_stop = 3\nplayers_max = 0\ncorrupt_world_on_start = true\n",
        )
        .expect("all keys");
        assert_eq!(b.crash_after_ms, Some(7));
        assert_eq!((b.exit_code_on_stop, b.players_max), (3, Some(0)));
        assert_eq!(
            toml::from_str::<Behaviour>("").expect("empty"),
            Behaviour::default()
        );
        assert!(
            toml::from_str::<Behaviour>("crash_after = 1\n").is_err(),
            "typos are errors"
        );
    }

    #[test]
    fn help_spans_several_rcon_packets() {
        let text = help_lines().join("\n");
        assert!(text.len() > crate::rcon::MAX_RESPONSE_FRAGMENT, "{}", text.len());
        assert!(crate::rcon::split_response(1, text.as_bytes()).len() >= 2);
    }
}
