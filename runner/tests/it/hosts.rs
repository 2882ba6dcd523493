//! What a host meets on day two, through the real daemon: a server started
//! by a wrapper script that does not `exec` (killed with its child, its
//! memory counted), a SIGTERM during a long start, a crash whose reason is
//! printed at the last moment, a frozen server, the EULA, a custom ready
//! pattern, and what the Server List Ping says in `status`.

use std::time::Duration;

use atlas_proto::runner::v1::PowerAction;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::rig::*;

/// Every process of the process group `pgid` except `pgid` itself.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let pgrp = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(2)?.parse::<u32>().ok());
        if pid != pgid && pgrp == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
        .is_some_and(|state| state != 'Z')
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_server_behind_a_wrapper_script_is_killed_with_its_child_and_its_memory_counted() {
    // Forge's run.sh runs Java as the shell's child: no `exec`.
    let cfg = server_table("").replace(
        &format!("command = [\"{}\"]", standin()),
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"\\\"$0\\\"; echo the server exited\", \"{}\"]",
            standin()
        ),
    );
    let mut rig = Rig::new(&cfg, "", false);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let members = group_members(s.pid);
    let [server] = members[..] else {
        panic!("the wrapper's one child expected: {members:?}")
    };
    assert!(
        s.memory_rss_bytes >= rss(server),
        "status counts {} bytes, the server alone uses {}",
        s.memory_rss_bytes,
        rss(server)
    );
    // `kill` reaches the server, not only its wrapper.
    rig.power(PowerAction::Kill, false).await;
    rig.wait_state("stopped").await;
    eventually("the wrapper's child still runs after `kill`", || !alive(server)).await;
    std::net::TcpListener::bind(("127.0.0.1", rig.game_port)).expect("the game port is free again");
    rig.terminate().await;
}

#[tokio::test]
async fn sigterm_during_a_long_start_stops_the_server_at_once_and_cleanly() {
    // A server that takes 40 s to start reads no console command before it
    // runs; `stop` on its stdin would wait for the whole start.
    let cfg = server_table("").replace("stop_timeout = \"5s\"", "stop_timeout = \"120s\"");
    let mut rig = Rig::new(&cfg, "start_delay_ms = 40000\n", false);
    rig.start().await;
    rig.power(PowerAction::Start, false).await;
    rig.wait_state("starting").await;
    let log = rig.server_dir.join("logs/latest.log");
    eventually("the server began preparing its level", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Preparing start region"))
    })
    .await;
    let status = rig.terminate().await;
    assert!(status.success(), "{status:?}; {}", rig.daemon_log());
    let server_log = std::fs::read_to_string(&log).expect("server log");
    assert!(
        !server_log.contains("Done ("),
        "the daemon waited for the start to finish:\n{server_log}"
    );
    assert!(
        server_log.contains("All dimensions are saved"),
        "the server's own shutdown ran (SIGTERM, not SIGKILL):\n{server_log}"
    );
    assert!(rig.daemon_log().contains("not ready yet"), "{}", rig.daemon_log());
}

#[tokio::test]
async fn the_reason_printed_just_before_a_crash_is_in_the_failed_event() {
    // Much output, then the reason, then the exit: the reader is behind
    // when the exit is seen. (One stream, as a Java server logs: lines of
    // two pipes have no order between them.)
    let cfg = "[server]\ncommand = [\"/bin/sh\", \"-c\", \"seq 1 40000; echo 'FATAL: port 25565 is taken (reason-xyz)'; exit 3\"]\n\
         start_timeout = \"30s\"\nrestart_backoff = \"100ms\"\ncrash_limit = 1\n";
    let mut rig = Rig::new(cfg, "", false);
    rig.start().await;
    rig.power(PowerAction::Start, false).await;
    let s = rig.wait_state("failed").await;
    let failed = rig.wait_event("failed", |e| e.kind == "failed").await;
    let fields: serde_json::Value = serde_json::from_str(&failed.json).expect("json");
    let tail: Vec<&str> = fields["log_tail"]
        .as_array()
        .expect("log_tail")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert_eq!(
        tail.last().copied(),
        Some("FATAL: port 25565 is taken (reason-xyz)"),
        "{tail:?}"
    );
    assert!(s.detail.contains("reason-xyz"), "{}", s.detail);
    rig.terminate().await;
}

fn frozen_config(on_unresponsive: &str) -> String {
    server_table(&format!(
        "unresponsive_pings = 3\non_unresponsive = \"{on_unresponsive}\"\n"
    ))
    .replace("ping_interval = \"1s\"", "ping_interval = \"300ms\"")
    .replace("term_timeout = \"5s\"", "term_timeout = \"1s\"")
}

#[tokio::test]
async fn a_frozen_server_is_an_event_then_restarted_like_a_crash() {
    let mut rig = Rig::new(&frozen_config("restart"), "", false);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let frozen = s.pid;
    nix::sys::signal::kill(Pid::from_raw(frozen as i32), Signal::SIGSTOP).expect("SIGSTOP");
    let e = rig.wait_event("unresponsive", |e| e.kind == "unresponsive").await;
    assert!(e.message.contains("3 Server List Pings"), "{}", e.message);
    rig.wait_event("a crash for the frozen server", |e| {
        e.kind == "crash" && e.message.contains("frozen")
    })
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let s = loop {
        let s = rig.status().await;
        if s.state == "running" && s.pid != frozen {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not restarted: {s:?}; {:#?}",
            rig.event_lines()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s.restarts, 1);
    assert!(!alive(frozen), "the frozen process was left behind");
    rig.terminate().await;
}

#[tokio::test]
async fn a_frozen_server_with_alert_only_is_reported_and_left_running() {
    let mut rig = Rig::new(&frozen_config("alert"), "", false);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let pid = Pid::from_raw(s.pid as i32);
    nix::sys::signal::kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    rig.wait_event("unresponsive", |e| e.kind == "unresponsive").await;
    let s = rig.status().await;
    assert_eq!(s.state, "running");
    assert!(s.failed_pings >= 3, "{s:?}");
    assert!(s.detail.contains("frozen"), "{}", s.detail);
    nix::sys::signal::kill(pid, Signal::SIGCONT).expect("SIGCONT");
    rig.wait_event("responsive again", |e| e.kind == "responsive")
        .await;
    let s = rig.status().await;
    assert_eq!((s.state.as_str(), s.restarts, s.failed_pings), ("running", 0, 0));
    assert!(s.detail.is_empty(), "{}", s.detail);
    rig.terminate().await;
}

#[tokio::test]
async fn without_the_eula_the_server_waits_for_the_host_instead_of_crash_looping() {
    let mut rig = Rig::new(&server_table("crash_limit = 3\n"), "require_eula = true\n", false);
    rig.start().await;
    rig.power(PowerAction::Start, false).await;
    let s = rig.wait_state("failed").await;
    assert!(
        s.detail.contains("EULA is not accepted") && s.detail.contains("https://aka.ms/MinecraftEULA"),
        "{}",
        s.detail
    );
    assert!(s.detail.contains("eula = true"), "{}", s.detail);
    assert_eq!(s.restarts, 0, "not counted as a crash");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = rig
        .event_lines()
        .iter()
        .filter(|l| l.starts_with("process: started"))
        .count();
    assert_eq!(started, 1, "{:#?}", rig.event_lines());
    assert!(
        !rig.event_lines().iter().any(|l| l.starts_with("crash")),
        "{:#?}",
        rig.event_lines()
    );
    rig.terminate().await;

    // The host accepts: `eula = true` writes eula.txt, and the server runs.
    let mut rig = Rig::new(&server_table("eula = true\n"), "require_eula = true\n", false);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    rig.wait_state("running").await;
    let eula = std::fs::read_to_string(rig.server_dir.join("eula.txt")).expect("eula.txt");
    assert!(
        eula.contains("https://aka.ms/MinecraftEULA") && eula.ends_with("eula=true\n"),
        "{eula}"
    );
    rig.terminate().await;
}

#[tokio::test]
async fn a_custom_ready_pattern_decides_when_the_server_is_ready_and_status_shows_the_ping() {
    // The stand-in answers pings as soon as it prepares its level, and
    // prints "Done" only 40 s later: the pattern makes the earlier line count.
    let cfg = server_table("ready_pattern = 'Preparing start region for dimension \\S+'\n");
    let mut rig = Rig::new(&cfg, "start_delay_ms = 40000\n", false);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let log = std::fs::read_to_string(rig.server_dir.join("logs/latest.log")).expect("log");
    assert!(!log.contains("Done ("), "ready before Done:\n{log}");
    assert_eq!(s.server_version, "1.21.1");
    assert_eq!(s.motd, "Atlas stand-in");
    rig.terminate().await;
}
