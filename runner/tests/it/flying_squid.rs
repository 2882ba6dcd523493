//! The real `atlas-runnerd` supervising a Minecraft server the project did
//! not write: flying-squid (npm, PrismarineJS; a server in JavaScript),
//! started by `runner/tests/flying-squid/launch.js` on Node.js. Ready, a
//! console command and a stop through its console (stdin: it has no RCON),
//! crashes restarted with backoff, status from its Server List Ping, and a
//! clean shutdown of the daemon.
//!
//! flying-squid must be installed (the test fails, never skips, without
//! it): `bash scripts/test-tools.sh` puts the tree pinned by
//! `runner/tests/flying-squid/package-lock.json` into
//! `target/ci-tools/flying-squid`; `.ci/run` runs it.
//! `ATLAS_FLYING_SQUID_MODULES` points at another `node_modules`.

use std::path::{Path, PathBuf};

use atlas_proto::runner::v1::{ConsoleRequest, LogsRequest, PowerAction, reply, request};
use atlas_runner::slp;

use crate::rig::*;

/// What flying-squid logs once its game port is open: the runner's ready
/// signal, through `[server] ready_pattern` (flying-squid never prints
/// vanilla's `Done (…)!`).
const READY: &str = "Server listening on port";
/// The MOTD and player cap flying-squid is given: `server.properties`
/// (written by the rig) says 20 players, so 7 in the status can only come
/// from flying-squid's Server List Ping.
const MOTD: &str = "Atlas on flying-squid";
const MAX_PLAYERS: u32 = 7;
/// The Minecraft version flying-squid 1.11.0 serves by default, and its protocol number.
const VERSION: &str = "1.21.4";
const PROTOCOL: i32 = 769;

fn launcher() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flying-squid/launch.js")
}

/// flying-squid's `node_modules`; panics with how to install it.
fn node_modules() -> PathBuf {
    let dir = std::env::var_os("ATLAS_FLYING_SQUID_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ci-tools/flying-squid/node_modules")
        });
    assert!(
        dir.join("flying-squid/package.json").is_file(),
        "flying-squid (npm) is not installed in {}: run `bash scripts/test-tools.sh` once \
         (needs Node.js 18+ and npm; installs the versions runner/tests/flying-squid/package-lock.json pins), \
         or set ATLAS_FLYING_SQUID_MODULES to a node_modules that has it",
        dir.display()
    );
    dir
}

/// The runner config: flying-squid as the server, no RCON (it has none),
/// a short backoff.
fn config() -> String {
    let modules = node_modules();
    format!(
        r#"[server]
command = ["node", "{launcher}", "--no-color"]
env = {{ NODE_PATH = "{modules}" }}
start_timeout = "60s"
stop_timeout = "20s"
term_timeout = "5s"
restart_backoff = "500ms"
restart_backoff_max = "5s"
crash_limit = 5
crash_window = "10m"
ping_interval = "1s"
ready_pattern = '{READY} \d+'
"#,
        launcher = launcher().display(),
        modules = modules.display(),
    )
}

/// `flying-squid.json`, which launch.js reads: loopback only, on the rig's
/// game port, offline (no Mojang session server).
fn write_settings(rig: &Rig) {
    let settings = serde_json::json!({
        "host": "127.0.0.1",
        "port": rig.game_port,
        "motd": MOTD,
        "max-players": MAX_PLAYERS,
        "online-mode": false,
        "worldFolder": "world",
        "view-distance": 2,
    });
    std::fs::write(
        rig.server_dir.join("flying-squid.json"),
        serde_json::to_vec_pretty(&settings).expect("json"),
    )
    .expect("flying-squid.json");
}

/// The server's output lines the daemon kept.
async fn log_lines(rig: &Rig) -> Vec<String> {
    rig.call(request::Kind::Logs(LogsRequest {
        tail: 1000,
        follow: false,
    }))
    .await
    .into_iter()
    .filter_map(|r| match r.kind {
        Some(reply::Kind::Log(l)) => Some(l.line),
        _ => None,
    })
    .collect()
}

/// Waits until the server's output has a line containing `needle`.
async fn wait_log(rig: &Rig, needle: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let lines = log_lines(rig).await;
        if lines.iter().any(|l| l.contains(needle)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {needle:?} in the server output: {lines:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the server is running with a pid other than `old`.
async fn running_again(rig: &Rig, old: u32) -> atlas_proto::runner::v1::Status {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = rig.status().await;
        if s.state == "running" && s.pid != old && s.pid != 0 {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not running again after the crash; last status {s:?}; events: {:#?}",
            rig.event_lines()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn sigkill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the server");
}

/// The `crash` events' `backoff_ms` fields, in order.
fn crash_backoffs(rig: &Rig) -> Vec<u64> {
    rig.events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| e.kind == "crash")
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.json).ok()?["backoff_ms"].as_u64())
        .collect()
}

#[tokio::test]
async fn flying_squid_under_the_runner_ready_console_crashes_and_stop() {
    let mut rig = Rig::new(&config(), "", false);
    write_settings(&rig);
    rig.start().await;

    // Ready: flying-squid's listening line, then its Server List Ping.
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.pid)).expect("cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.starts_with("node ") && cmdline.contains("launch.js"),
        "{cmdline}"
    );
    // Players from flying-squid's Server List Ping, not server.properties.
    assert_eq!((s.players_online, s.players_max), (0, MAX_PLAYERS), "{s:?}");
    let ready_line = format!("{READY} {}, version {VERSION}", rig.game_port);
    let lines = log_lines(&rig).await;
    assert!(
        lines.iter().any(|l| l.contains(&ready_line)),
        "{ready_line:?} in the server output: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\u{1b}[3")),
        "--no-color: no ANSI colours in the log: {lines:#?}"
    );
    // What flying-squid's Server List Ping says: in the status, and read
    // with the runner's client.
    assert_eq!(
        (s.server_version.as_str(), s.motd.as_str()),
        (VERSION, MOTD),
        "{s:?}"
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], rig.game_port));
    let ping = slp::ping(addr, PATIENCE).await.expect("ping flying-squid");
    assert_eq!(
        (
            ping.version_name.as_str(),
            ping.protocol,
            ping.description.as_str()
        ),
        (VERSION, PROTOCOL, MOTD),
        "{ping:?}"
    );
    assert_eq!(ping.players_max, MAX_PLAYERS);

    // A console command goes to its stdin (no RCON) and flying-squid runs
    // it: `say`, as the runner's update announcements use it. (The reply
    // is what it logs within 300 ms; the log is waited for, not the reply.)
    let r = rig
        .call(request::Kind::Console(ConsoleRequest {
            command: "say Atlas: restarting in 30s".into(),
        }))
        .await;
    assert!(
        r.iter().any(|r| matches!(r.kind, Some(reply::Kind::Console(_)))),
        "{r:?}"
    );
    wait_log(&rig, "[CHAT]: [Server] Atlas: restarting in 30s").await;

    // Crashes: SIGKILL the node process twice; the runner restarts it after
    // restart_backoff, doubled the second time.
    let first = s.pid;
    sigkill(first);
    let s = running_again(&rig, first).await;
    assert_eq!(s.restarts, 1, "{s:?}");
    let second = s.pid;
    sigkill(second);
    let s = running_again(&rig, second).await;
    assert_eq!(s.restarts, 2, "{s:?}");
    assert_eq!(s.players_max, MAX_PLAYERS, "ready again through its ping");
    assert_eq!(crash_backoffs(&rig), [500, 1000], "{:#?}", rig.event_lines());
    let crashes: Vec<String> = rig
        .event_lines()
        .into_iter()
        .filter(|l| l.starts_with("crash:"))
        .collect();
    assert!(
        crashes[0].contains("killed by SIGKILL") && crashes[0].contains("restarting in 500ms"),
        "{crashes:#?}"
    );
    assert!(crashes[1].contains("restarting in 1s"), "{crashes:#?}");

    // Stop: intent first, then `stop` on its stdin; flying-squid closes and
    // exits 0 without needing SIGTERM. Not a crash.
    rig.power(PowerAction::Stop, true).await;
    let s = rig.wait_state("stopped").await;
    assert_eq!((s.restarts, s.pid), (2, 0), "{s:?}");
    let events = rig.event_lines();
    let stopping = events
        .iter()
        .rposition(|l| l.starts_with("state: stopping"))
        .expect("stopping event");
    let exited = events
        .iter()
        .rposition(|l| l.starts_with("process: server exited (exit code 0)"))
        .unwrap_or_else(|| panic!("a clean exit after `stop`: {events:#?}"));
    assert!(stopping < exited, "{events:#?}");
    assert!(
        !events.iter().any(|l| l.contains("SIGTERM")),
        "`stop` was enough: {events:#?}"
    );
    wait_log(&rig, "Server is closed.").await;
    assert!(
        rig.server_dir.join("world/level.dat").is_file(),
        "flying-squid created its world in the server directory"
    );

    // Started again, then the daemon's SIGTERM stops it the same way.
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let pid = s.pid;
    let lines = log_lines(&rig).await;
    let status = rig.terminate().await;
    assert!(status.success(), "{status:?}\n{}", rig.daemon_log());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "flying-squid still running after the daemon exited"
    );

    // Nothing tried to reach beyond loopback: launch.js refuses and prints
    // every lookup of another host, on stdout (kept by the daemon) and so
    // in flying-squid's own log files (logs/*.log, every run).
    let mut seen = lines;
    for f in std::fs::read_dir(rig.server_dir.join("logs")).expect("flying-squid's logs/") {
        let f = f.expect("logs entry").path();
        seen.extend(
            std::fs::read_to_string(&f)
                .expect("log file")
                .lines()
                .map(str::to_owned),
        );
    }
    assert!(
        seen.iter().filter(|l| l.contains(READY)).count() >= 4,
        "four starts in the output and logs: {seen:#?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("atlas-launch: refused a lookup")),
        "flying-squid tried to reach the internet: {seen:#?}"
    );
}
