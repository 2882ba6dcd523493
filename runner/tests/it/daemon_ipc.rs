//! The daemon's socket under abuse: two `atlas-runner` clients at once (one
//! following the log), garbage bytes, an oversized length prefix, half a
//! frame then a vanished client. Each bad connection is closed; the daemon
//! and the server keep running and answer the next client.

use std::time::Duration;

use atlas_proto::runner::v1::PowerAction;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::rig::*;

fn cli(rig: &Rig) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_atlas-runner"));
    c.arg("--socket").arg(&rig.socket).kill_on_drop(true);
    c
}

/// Reads until the daemon closes the connection (or a safety limit).
async fn closed_by_daemon(mut s: UnixStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn two_clients_at_once_and_garbage_on_the_socket_leave_the_daemon_serving() {
    let mut rig = Rig::new("", "", true);
    rig.start().await;
    rig.power(PowerAction::Start, true).await;
    let before = rig.wait_state("running").await;

    // Client 1 follows the log; client 2 asks for status meanwhile.
    let mut follower = cli(&rig)
        .args(["logs", "-f", "-n", "5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("logs -f");
    let status = cli(&rig)
        .args(["status", "--json"])
        .output()
        .await
        .expect("status");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert_eq!(v["state"], "running", "{v}");

    // Garbage: a valid length, then bytes that are not a Request.
    let mut g = UnixStream::connect(&rig.socket).await.expect("connect");
    g.write_all(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    assert!(
        closed_by_daemon(g).await,
        "a garbage frame closes that connection"
    );

    // A length prefix far over the limit: closed without reading 4 GiB.
    let mut o = UnixStream::connect(&rig.socket).await.expect("connect");
    o.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("write");
    assert!(
        closed_by_daemon(o).await,
        "an oversized prefix closes that connection"
    );

    // Half a frame, then the client vanishes.
    let mut h = UnixStream::connect(&rig.socket).await.expect("connect");
    h.write_all(&[0, 0, 0, 100, 1, 2]).await.expect("write");
    drop(h);

    // A console command while the follower still streams: its output shows up there.
    let out = cli(&rig)
        .args(["console", "say", "hello", "followers"])
        .output()
        .await
        .expect("console");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut stdout = follower.stdout.take().expect("stdout");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !seen.contains("hello followers") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
            .await
            .expect("the follower sees the console output")
            .expect("read");
        assert!(n > 0, "the follower's stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = follower.kill().await;

    // The daemon and the server are unharmed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = rig.status().await;
    assert_eq!((after.state.as_str(), after.pid), ("running", before.pid));
    assert_eq!(after.restarts, 0);
    assert!(rig.terminate().await.success());
}
