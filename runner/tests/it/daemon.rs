//! The real daemon against the stand-in server: start → ready → stop with
//! the intent recorded, an in-game stop that is not a crash, a stop that
//! hangs until SIGKILL, a crash loop that ends failed, the one power queue,
//! and a clean shutdown on SIGTERM.

use atlas_proto::runner::v1::{ConsoleRequest, PowerAction, PowerOutcome, reply, request};

use crate::rig::*;

fn power_outcome(replies: &[atlas_proto::runner::v1::Reply]) -> Vec<(PowerOutcome, String)> {
    replies
        .iter()
        .filter_map(|r| match &r.kind {
            Some(reply::Kind::Power(p)) => Some((
                PowerOutcome::try_from(p.outcome).unwrap_or(PowerOutcome::Unspecified),
                p.reason.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn start_ready_stop_records_the_intent_and_an_in_game_stop_is_not_a_crash() {
    let mut rig = Rig::new("", "", true);
    rig.start().await;
    assert_eq!(rig.status().await.state, "stopped");

    let r = rig.power(PowerAction::Start, true).await;
    let outcomes = power_outcome(&r);
    assert_eq!(outcomes.first().map(|o| o.0), Some(PowerOutcome::Run), "{r:?}");
    assert_eq!(outcomes.last().map(|o| o.0), Some(PowerOutcome::Done), "{r:?}");
    let s = rig.wait_state("running").await;
    assert!(s.pid > 0);
    assert_eq!(s.players_max, 20, "players from the Server List Ping");
    // Starting again is refused, with the reason.
    let again = power_outcome(&rig.power(PowerAction::Start, false).await);
    assert_eq!(again[0].0, PowerOutcome::Refused);
    assert!(again[0].1.contains("already running"), "{again:?}");

    // An operator's stop: intent first, then `stop` over RCON; not a crash.
    rig.power(PowerAction::Stop, true).await;
    let s = rig.wait_state("stopped").await;
    assert_eq!((s.restarts, s.pid), (0, 0));
    let lines = rig.event_lines();
    let stop_at = lines
        .iter()
        .position(|l| l.starts_with("state: stopping"))
        .expect("stopping event");
    let exit_at = lines
        .iter()
        .position(|l| l.contains("server exited"))
        .expect("exit event");
    assert!(
        stop_at < exit_at,
        "the intent is recorded before the server exits: {lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("crash")), "{lines:#?}");
    assert!(
        std::fs::read_dir(rig.server_dir.join("world")).is_ok(),
        "the stand-in saved its world"
    );

    // A `stop` typed in the server console (as a player with op would):
    // the server stops itself; the runner records it as intended.
    rig.power(PowerAction::Start, true).await;
    rig.wait_state("running").await;
    let r = rig
        .call(request::Kind::Console(ConsoleRequest {
            command: "stop".into(),
        }))
        .await;
    assert!(!r.is_empty());
    let s = rig.wait_state("stopped").await;
    assert_eq!(s.restarts, 0, "an in-game stop is not a crash");
    rig.wait_event("stop by the game", |e| {
        e.message.contains("from the game or RCON")
    })
    .await;

    let status = rig.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_stop_that_hangs_ends_in_sigkill_after_the_timeouts() {
    let cfg = server_table("")
        .replace("stop_timeout = \"5s\"", "stop_timeout = \"500ms\"")
        .replace("term_timeout = \"5s\"", "term_timeout = \"500ms\"");
    let mut rig = Rig::new(&cfg, "hang_on_stop = true\n", false);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    rig.wait_state("running").await;
    rig.power(PowerAction::Stop, true).await;
    let s = rig.wait_state("stopped").await;
    assert_eq!(s.restarts, 0);
    let lines = rig.event_lines();
    let term = lines
        .iter()
        .position(|l| l.contains("sending SIGTERM"))
        .expect("SIGTERM step");
    let kill = lines
        .iter()
        .position(|l| l.contains("sending SIGKILL"))
        .expect("SIGKILL step");
    assert!(term < kill, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("killed by SIGKILL")),
        "{lines:#?}"
    );
    rig.terminate().await;
}

#[tokio::test]
async fn a_crash_loop_backs_off_then_fails_with_the_log_tail() {
    let cfg = server_table("crash_limit = 3\ncrash_window = \"10m\"\n");
    let mut rig = Rig::new(&cfg, "crash_after_ms = 200\n", false);
    rig.start().await;
    rig.power(PowerAction::Start, false).await;
    let s = rig.wait_state("failed").await;
    assert!(s.detail.contains("crashed 3 times"), "{}", s.detail);
    assert!(s.detail.contains("last log lines"), "{}", s.detail);
    assert!(
        s.detail.contains("Done ("),
        "the log tail is in the detail: {}",
        s.detail
    );
    assert_eq!(s.restarts, 3);
    let lines = rig.event_lines();
    let crashes: Vec<_> = lines.iter().filter(|l| l.starts_with("crash:")).collect();
    assert_eq!(
        crashes.len(),
        2,
        "two restarts with backoff before giving up: {lines:#?}"
    );
    assert!(crashes[0].contains("restarting in 100ms"), "{crashes:?}");
    assert!(
        crashes[1].contains("restarting in 200ms"),
        "backoff doubles: {crashes:?}"
    );
    // Failed waits for an operator: no more restarts.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(rig.status().await.state, "failed");
    rig.terminate().await;
}

#[tokio::test]
async fn power_actions_queue_behind_a_start_and_none_is_dropped() {
    let mut rig = Rig::new("", "start_delay_ms = 500\n", false);
    rig.start().await;
    let (a, b, c) = tokio::join!(
        rig.power(PowerAction::Start, false),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            rig.power(PowerAction::Restart, false).await
        },
        async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            rig.power(PowerAction::Restart, false).await
        },
    );
    assert_eq!(power_outcome(&a)[0].0, PowerOutcome::Run);
    assert_eq!(power_outcome(&b)[0].0, PowerOutcome::Queued, "{b:?}");
    let c = power_outcome(&c);
    assert_eq!(c[0].0, PowerOutcome::Refused);
    assert!(c[0].1.contains("already queued"), "{c:?}");
    // The queued restart runs after the start: two starts in the events.
    rig.wait_event("second start", |e| {
        e.message.starts_with("restart") && e.kind == "power"
    })
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let starts = rig
            .event_lines()
            .iter()
            .filter(|l| l.starts_with("process: started"))
            .count();
        if starts == 2 && rig.status().await.state == "running" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:#?}", rig.event_lines());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    rig.terminate().await;
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_before_the_daemon_exits() {
    let mut rig = Rig::new("", "", true);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let pid = s.pid;
    let status = rig.terminate().await;
    assert!(status.success(), "{status:?}");
    // The server process is gone, and it stopped through `stop` (it saved).
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "server still running"
    );
    assert!(!rig.socket.exists(), "socket removed");
    let log = std::fs::read_to_string(rig.server_dir.join("logs/latest.log")).unwrap_or_default();
    assert!(log.contains("Stopping the server"), "{log}");
}

#[tokio::test]
async fn a_real_jvm_server_from_a_launch_description_starts_and_stops() {
    // No `server.command`: the daemon reads `.atlas/launch.json`, finds a
    // Java of that major version and runs the jar, as it would run Minecraft.
    let jar = crate::common::standin_jar();
    let java_major = atlas_runner::java::java_major(std::path::Path::new("java"))
        .expect("a `java` on PATH (CI installs one)");
    // Mojang's servers need the EULA accepted: the host says so here.
    let cfg = "[server]\neula = true\nmemory = \"64M\"\nstart_timeout = \"60s\"\nstop_timeout = \"10s\"\nterm_timeout = \"5s\"\nping_interval = \"1s\"\n";
    let mut rig = Rig::new(cfg, "", false);
    std::fs::copy(jar, rig.server_dir.join("standin.jar")).expect("copy the jar");
    let launch = atlas_fetcher::provision::LaunchDescription {
        format: 1,
        minecraft: "1.21.1".into(),
        loader: "vanilla".into(),
        loader_version: String::new(),
        java_major,
        jar: Some("standin.jar".into()),
        args_file: None,
    };
    std::fs::create_dir_all(rig.server_dir.join(".atlas")).expect(".atlas");
    std::fs::write(
        rig.server_dir.join(".atlas/launch.json"),
        serde_json::to_vec(&launch).expect("json"),
    )
    .expect("launch.json");
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    let s = rig.wait_state("running").await;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.pid)).expect("cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args[0].ends_with("java"), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["-jar", "standin.jar"]), "{args:?}");
    assert!(args.contains(&"-Xmx64M".to_string()), "{args:?}");
    assert_eq!(s.players_max, 20);
    assert!(
        std::fs::read_to_string(rig.server_dir.join("eula.txt"))
            .expect("eula.txt")
            .ends_with("eula=true\n")
    );
    let memory = s.launch.iter().find(|l| l.name == "memory").expect("memory");
    assert_eq!(
        (memory.value.as_str(), memory.origin.as_str()),
        ("64M", "runner config")
    );
    // No RCON: `stop` goes to the JVM's stdin, and it saves and exits.
    rig.power(PowerAction::Stop, true).await;
    let s = rig.wait_state("stopped").await;
    assert_eq!(s.restarts, 0);
    assert!(rig.server_dir.join("world/level.dat").exists());
    assert!(
        !rig.event_lines().iter().any(|l| l.contains("SIGTERM")),
        "{:#?}",
        rig.event_lines()
    );
    assert!(rig.terminate().await.success());
}

#[tokio::test]
async fn the_metrics_endpoint_follows_the_server() {
    let port = crate::common::free_port();
    let cfg = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let mut rig = Rig::new(&cfg, "", false);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    rig.wait_state("running").await;
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {body}"))
            .to_owned()
    };
    assert!(
        line("atlas_runner_state{state=\"running\"}").ends_with(" 1"),
        "{body}"
    );
    assert!(
        line("atlas_runner_state{state=\"stopped\"}").ends_with(" 0"),
        "{body}"
    );
    assert!(line("atlas_runner_players_max").ends_with(" 20"), "{body}");
    assert!(rig.terminate().await.success());
}
