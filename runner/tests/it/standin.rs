//! The stand-in servers as processes: the Rust `atlas-standin` (console
//! commands, graceful and scripted failures, its world directory) and the
//! JVM stand-in under `java -jar`.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use atlas_runner::slp;
use nix::sys::signal::Signal;

use crate::common::*;

const T: Duration = Duration::from_secs(30);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn console_commands_and_stop_on_stdin() {
    let dir = ServerDir::new(false);
    let mut s = Running::standin(dir.path());
    s.wait_for("Starting minecraft server version 1.21.1").await;
    s.wait_for("Preparing level \"world\"").await;
    s.wait_for("For help, type \"help\"").await;
    s.console("save-off").await;
    s.wait_for("Automatic saving is now disabled").await;
    s.console("save-all flush").await;
    s.wait_for("Saving the game (this may take a moment!)").await;
    s.wait_for("Saved the game").await;
    s.console("save-on").await;
    s.wait_for("Automatic saving is now enabled").await;
    s.console("say hello there").await;
    s.wait_for("[Server] hello there").await;
    s.console("list").await;
    s.wait_for("There are 0 of a max of 20 players online").await;
    s.console("stop").await;
    let status = s.exit().await;
    assert_eq!(status.code(), Some(0), "{:#?}", s.output());
    let out = s.output();
    let pos = |needle: &str| {
        out.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {out:#?}"))
    };
    assert!(pos("Stopping the server") < pos("Saving worlds"));
    assert!(pos("Saving worlds") < pos("ThreadedAnvilChunkStorage: All dimensions are saved"));
    assert!(
        out.iter()
            .all(|l| l.starts_with('[') && l.contains("] [Server thread/")),
        "{out:#?}"
    );
    // save-all then stop: two saves, each in the world.
    let world = dir.path().join("world");
    assert!(read(&world.join("level.dat")).contains("saves=2"));
    assert_eq!(read(&world.join("data/standin-saves.log")).lines().count(), 2);
    assert!(world.join("region/r.0.0.mca").is_file());
    let log = read(&dir.path().join("logs/latest.log"));
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        out,
        "logs/latest.log mirrors stdout"
    );
}

#[tokio::test]
async fn the_same_saves_give_the_same_world_bytes() {
    let mut worlds = Vec::new();
    for _ in 0..2 {
        let dir = ServerDir::new(false);
        let mut s = Running::standin(dir.path());
        s.wait_for("Done (").await;
        s.console("save-all").await;
        s.wait_for("Saved the game").await;
        s.console("stop").await;
        assert!(s.exit().await.success());
        let w = dir.path().join("world");
        let files: Vec<Vec<u8>> = ["level.dat", "region/r.0.0.mca", "data/standin-saves.log"]
            .iter()
            .map(|f| std::fs::read(w.join(f)).expect("world file"))
            .collect();
        worlds.push(files);
    }
    assert_eq!(worlds[0], worlds[1]);
}

#[tokio::test]
async fn sigterm_is_a_graceful_stop() {
    let dir = ServerDir::new(false).behaviour("exit_code_on_stop = 3\n");
    let mut s = Running::standin(dir.path());
    s.wait_for("Done (").await;
    s.signal(Signal::SIGTERM);
    let status = s.exit().await;
    assert_eq!(status.code(), Some(3), "exit_code_on_stop: {:#?}", s.output());
    s.wait_for("All dimensions are saved").await;
    assert!(read(&dir.path().join("world/level.dat")).contains("saves=1"));
}

#[tokio::test]
async fn fail_start_exits_one_before_done() {
    let dir = ServerDir::new(false).behaviour("fail_start = true\nstart_delay_ms = 50\n");
    let mut s = Running::standin(dir.path());
    let status = s.exit().await;
    assert_eq!(status.code(), Some(1));
    let out = s.output();
    assert!(
        out.iter()
            .any(|l| l.contains("[Server thread/ERROR]: Encountered an unexpected exception")),
        "{out:#?}"
    );
    assert!(!out.iter().any(|l| l.contains("Done (")), "{out:#?}");
}

#[tokio::test]
async fn a_bad_standin_toml_fails_the_start() {
    let dir = ServerDir::new(false).behaviour("crash_after = 5\n");
    let mut s = Running::standin(dir.path());
    assert_eq!(s.exit().await.code(), Some(1));
    s.wait_for("Failed to read standin.toml").await;
}

#[tokio::test]
async fn crash_after_ms_exits_one_without_saving() {
    let dir = ServerDir::new(false).behaviour("crash_after_ms = 100\n");
    let mut s = Running::standin(dir.path());
    s.wait_for("Done (").await;
    let status = s.exit().await;
    assert_eq!(status.code(), Some(1), "{:#?}", s.output());
    assert!(!s.output().iter().any(|l| l.contains("Saving worlds")));
    assert!(read(&dir.path().join("world/level.dat")).contains("saves=0"));
}

#[tokio::test]
async fn hang_on_stop_ignores_sigterm_and_stop_until_sigkill() {
    let dir = ServerDir::new(false).behaviour("hang_on_stop = true\n");
    let mut s = Running::standin(dir.path());
    s.wait_for("Done (").await;
    s.signal(Signal::SIGTERM);
    s.wait_for("Ignoring SIGTERM").await;
    assert!(
        s.child.try_wait().expect("try_wait").is_none(),
        "SIGTERM was ignored"
    );
    // Still serving: a ping and a console command answer.
    assert_eq!(slp::ping(dir.game(), T).await.expect("ping").players_max, 20);
    s.console("stop").await;
    s.wait_for("Stopping the server").await;
    s.console("list").await;
    s.signal(Signal::SIGTERM);
    // Two "Ignoring" lines: the second came after `stop`, so the server hangs in its shutdown.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while s
        .output()
        .iter()
        .filter(|l| l.contains("Ignoring SIGTERM"))
        .count()
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "{:#?}", s.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s.child.try_wait().expect("try_wait").is_none(), "still hung");
    assert!(
        !s.output().iter().any(|l| l.contains("There are 0")),
        "no commands run after stop"
    );
    s.signal(Signal::SIGKILL);
    assert_eq!(s.exit().await.signal(), Some(9));
}

#[tokio::test]
async fn corrupt_world_on_start_damages_the_world() {
    let dir = ServerDir::new(false);
    let mut s = Running::standin(dir.path());
    s.wait_for("Done (").await;
    s.console("stop").await;
    assert!(s.exit().await.success());
    std::fs::write(dir.path().join("standin.toml"), "corrupt_world_on_start = true\n").expect("toml");
    let mut s = Running::standin(dir.path());
    s.wait_for("Done (").await;
    s.signal(Signal::SIGKILL);
    s.exit().await;
    let level = std::fs::read(dir.path().join("world/level.dat")).expect("level.dat");
    assert!(
        !level.starts_with(b"atlas-standin level.dat"),
        "level.dat damaged"
    );
    // A damaged world fails the next start, as with a real server.
    std::fs::remove_file(dir.path().join("standin.toml")).expect("rm");
    let mut s = Running::standin(dir.path());
    assert_eq!(s.exit().await.code(), Some(1));
    s.wait_for("Failed to load level \"world\"").await;
}

#[tokio::test]
async fn jvm_standin_answers_server_list_ping_and_stops() {
    let dir = ServerDir::new(false);
    let mut s = Running::java(dir.path());
    s.wait_for("Starting minecraft server version").await;
    s.wait_for("Done (").await;
    let st = slp::ping(dir.game(), T).await.expect("ping the JVM stand-in");
    assert!(st.players_max > 0, "{st:?}");
    assert_eq!(st.version_name, "1.21.1");
    s.console("stop").await;
    let status = s.exit().await;
    assert!(status.success(), "{status:?}: {:#?}", s.output());
    assert!(read(&dir.path().join("world/level.dat")).contains("LevelName=world"));
    s.wait_for("All dimensions are saved").await;
}
