//! The real `atlas-runner` binary against the test server of
//! [`crate::ipc`] on a temporary socket: output, JSON shapes and exit codes.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::ipc::TestServer;

async fn cli(socket: &Path, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_atlas-runner"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("ATLAS_RUNNER_SOCKET")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("atlas-runner finished within the safety limit")
        .expect("run atlas-runner")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[tokio::test]
async fn status_prints_aligned_text_and_parses_as_json() {
    let server = TestServer::start();
    let o = cli(&server.path, &["status"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for row in [
        "state:     running",
        "build:     b1",
        "uptime:    1h 2m 3s",
        "players:   2/20",
        "memory:    512.0 MiB",
        "pid:       42",
    ] {
        assert!(out.contains(row), "{row:?} in\n{out}");
    }
    let o = cli(&server.path, &["status", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v = json_lines(&o);
    assert_eq!(v.len(), 1, "one object");
    assert_eq!(v[0]["type"], "status");
    assert_eq!(v[0]["state"], "running");
    assert_eq!(v[0]["pid"], 42);
    assert_eq!(v[0]["uptime_secs"], 3723);
    assert_eq!(v[0]["memory_rss_bytes"], 512u64 << 20);
}

#[tokio::test]
async fn a_refused_power_action_exits_4_with_the_reason() {
    let server = TestServer::start();
    let o = cli(&server.path, &["start"]).await;
    assert_eq!(o.status.code(), Some(4));
    assert!(
        text(&o.stderr).contains("refused: the server is already running"),
        "{}",
        text(&o.stderr)
    );
    let o = cli(&server.path, &["--json", "start"]).await;
    assert_eq!(o.status.code(), Some(4));
    let v = json_lines(&o);
    assert_eq!(
        (v[0]["type"].as_str(), v[0]["outcome"].as_str()),
        (Some("power"), Some("refused"))
    );
}

#[tokio::test]
async fn a_waited_power_action_reports_admission_and_outcome() {
    let server = TestServer::start();
    let o = cli(&server.path, &["stop", "--wait"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("stop: queued (1 action(s) ahead)") && out.contains("stop: done; the server is stopped"),
        "{out}"
    );
    let o = cli(&server.path, &["stop", "--wait", "--json"]).await;
    let v = json_lines(&o);
    assert_eq!(v.len(), 1, "one object for a non-stream command");
    assert_eq!(v[0]["outcome"], "done");
    assert_eq!(v[0]["admission"]["outcome"], "queued");
}

#[tokio::test]
async fn an_unreachable_socket_exits_3_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nothing-here.sock");
    let o = cli(&socket, &["status"]).await;
    assert_eq!(o.status.code(), Some(3));
    let err = text(&o.stderr);
    assert!(
        err.contains(&socket.display().to_string()) && err.contains("systemctl status atlas-runnerd"),
        "{err}"
    );
}

#[tokio::test]
async fn daemon_errors_and_usage_errors_have_their_exit_codes() {
    let server = TestServer::start();
    let o = cli(&server.path, &["update", "apply"]).await;
    assert_eq!(o.status.code(), Some(5), "a failed action");
    assert!(
        text(&o.stderr).contains(
            "failed: cannot reach http://127.0.0.1:9/pack/pointers/prod: connection refused \
             (source error; it may pass: try again later)"
        ),
        "{}",
        text(&o.stderr)
    );
    let o = cli(&server.path, &["--json", "update", "apply"]).await;
    assert_eq!(o.status.code(), Some(5));
    let v = &json_lines(&o)[0];
    assert_eq!(
        (&v["type"], &v["code"], &v["kind"], &v["transient"]),
        (&"error".into(), &"failed".into(), &"source".into(), &true.into())
    );
    let o = cli(&server.path, &["frobnicate"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = cli(&server.path, &["--help"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("3  daemon unreachable"));
}

#[tokio::test]
async fn update_outcomes_print_as_text_and_json() {
    let server = TestServer::start();
    let o = cli(&server.path, &["update", "check"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "build b2 (version 1.0.7) is available; the server runs b1. Apply it with `atlas-runner update apply`.\n"
    );
    let o = cli(&server.path, &["--json", "update", "check"]).await;
    let v = &json_lines(&o)[0];
    assert_eq!(
        (&v["type"], &v["outcome"]),
        (&"update".into(), &"available".into())
    );
    assert_eq!(
        (
            &v["target_build"],
            &v["target_version"],
            &v["target_pack_version"]
        ),
        (&"b2".into(), &7.into(), &"1.0.7".into())
    );
}

#[tokio::test]
async fn logs_and_console_print_what_the_daemon_sends() {
    let server = TestServer::start();
    let o = cli(&server.path, &["logs", "-n", "3"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "line 0\nline 1\nline 2\n");
    let o = cli(&server.path, &["logs", "-n", "2", "--json"]).await;
    let v = json_lines(&o);
    assert_eq!(v.len(), 2, "one object per line, none for the end");
    assert_eq!(
        (v[1]["type"].as_str(), v[1]["line"].as_str()),
        (Some("log"), Some("line 1"))
    );
    let o = cli(&server.path, &["console", "say", "hello", "world"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ran say hello world\n");
}
