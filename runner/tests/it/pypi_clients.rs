//! The stand-in's protocols checked by code the project did not write:
//! mcstatus (Server List Ping) and mcrcon (RCON), from PyPI, run by
//! `runner/tests/python/clients.py` against a real `atlas-standin` process.
//!
//! They must be installed (the tests fail, never skip, without them):
//! `bash scripts/test-tools.sh` puts the pinned versions into
//! `target/ci-tools/python`, which is added to `PYTHONPATH` here; `.ci/run`
//! runs it.

use std::path::{Path, PathBuf};

use atlas_runner::rcon::RconClient;
use serde_json::Value;

use crate::common::*;

/// Where `scripts/test-tools.sh` installs the Python packages.
fn tools_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ci-tools/python")
}

/// Runs `clients.py ARGS` with python3; its JSON output. Panics with the
/// way to install mcstatus and mcrcon when they are missing.
async fn clients(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/clients.py");
    let mut path = vec![tools_python()];
    if let Some(p) = std::env::var_os("PYTHONPATH") {
        path.extend(std::env::split_paths(&p));
    }
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .env("PYTHONPATH", std::env::join_paths(path).expect("PYTHONPATH"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output();
    let out = tokio::time::timeout(PATIENCE, out)
        .await
        .expect("clients.py finished in time")
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): these tests need python3 with mcstatus and mcrcon")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "mcstatus or mcrcon (PyPI) is missing: run `bash scripts/test-tools.sh` once \
         (installs the pinned versions into {}), or pip-install them yourself.\n{stderr}",
        tools_python().display()
    );
    assert!(
        out.status.success(),
        "clients.py {args:?} failed ({}):\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "clients.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn assert_status(st: &Value, what: &str) {
    assert_eq!(st["version_name"], "1.21.1", "{what}: {st}");
    assert_eq!(st["protocol"], 767, "{what}: {st}");
    assert_eq!(st["players_online"], 0, "{what}: {st}");
    assert_eq!(st["players_max"], 20, "{what}: {st}");
    assert_eq!(st["motd"], "Atlas stand-in", "{what}: {st}");
    assert_eq!(st["enforces_secure_chat"], false, "{what}: {st}");
    assert!(
        st["latency_ms"].as_f64().is_some_and(|l| l >= 0.0),
        "{what}: {st}"
    );
}

#[tokio::test]
async fn mcstatus_reads_the_standins_server_list_ping() {
    let dir = ServerDir::new(false);
    let mut server = Running::standin(dir.path());
    server.wait_for("Done (").await;
    let port = dir.game_port.to_string();
    let out = clients(&["slp", "127.0.0.1", &port]).await;
    // What a 1.21.1 client and an old (protocol 47) client are told, over a
    // blocking and an asyncio connection.
    for what in ["status_767", "status_47", "async_status"] {
        assert_status(&out[what], what);
    }
    // A ping right after the handshake (no status request first) is
    // answered with the same token, as vanilla does.
    assert!(out["ping_ms"].as_f64().is_some_and(|l| l >= 0.0), "{out}");
    server.console("stop").await;
    assert!(server.exit().await.success());
}

#[tokio::test]
async fn mcrcon_runs_commands_and_stops_the_standin() {
    let dir = ServerDir::new(true);
    let mut server = Running::standin(dir.path());
    server.wait_for("RCON running on").await;
    let port = dir.rcon().port().to_string();

    let out = clients(&["rcon-wrong-password", "127.0.0.1", &port, "not-the-password"]).await;
    assert_eq!(
        out["refused"], "Login failed",
        "a wrong password gets request id -1: {out}"
    );

    let out = clients(&[
        "rcon",
        "127.0.0.1",
        &port,
        RCON_PASSWORD,
        "list",
        "save-all flush",
        "help",
        "nonsense",
    ])
    .await;
    let replies: Vec<&str> = out["replies"]
        .as_array()
        .expect("replies")
        .iter()
        .map(|r| r.as_str().expect("a string reply"))
        .collect();
    assert_eq!(replies[0], "There are 0 of a max of 20 players online: ");
    assert_eq!(
        replies[1],
        "Saving the game (this may take a moment!)\nSaved the game"
    );
    // Longer than one RCON packet: mcrcon reads every packet of the
    // response and gets the same text as the runner's client (which
    // protocols.rs checks against the stand-in's help lines).
    let mut ours = RconClient::connect(dir.rcon(), RCON_PASSWORD, PATIENCE)
        .await
        .expect("the runner's RCON client logs in");
    let help = ours.command("help").await.expect("help");
    assert!(help.len() > 4096, "help must span several packets");
    assert_eq!(replies[2], help, "reassembled byte for byte");
    assert!(
        replies[3].starts_with("Unknown or incomplete command"),
        "{}",
        replies[3]
    );
    server.wait_for("Saved the game").await;

    // `stop` over mcrcon: the server answers, saves and exits 0. mcrcon
    // 0.7.0 may lose the answer when the connection closes right after it
    // (see clients.py): then its only complaint is its timeout.
    let out = clients(&["rcon-stop", "127.0.0.1", &port, RCON_PASSWORD]).await;
    assert!(
        out["reply"] == "Stopping the server"
            || (out["reply"].is_null() && out["error"] == "Connection timeout error"),
        "{out}"
    );
    let status = server.exit().await;
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(dir.path().join("logs/latest.log")).expect("latest.log");
    assert!(log.contains("[Rcon: Stopping the server]"), "{log}");
    assert!(log.contains("All dimensions are saved"), "{log}");
}
