//! A SIGTERM to the daemon in the middle of a long update step is acted on
//! at once, not after the step, and leaves the server directory consistent:
//! a download stalled by the store, the announcement wait, and the health
//! window of a new build that is already applied. Without the shutdown
//! checks inside the steps, each of these daemons would still be waiting
//! (an hour) when the safety limit of `Rig::terminate` runs out.

use atlas_proto::Sha256Digest;
use atlas_proto::runner::v1::{UpdateRequest, request};
use atlas_testkit::http::Fault;

use crate::rig::*;
use crate::updates::{build, running_first_build_with, tree};

/// Starts `update apply` without waiting for its answer (the shutdown cuts it).
fn update_apply_in_background(rig: &Rig) -> tokio::task::JoinHandle<()> {
    let socket = rig.socket.clone();
    tokio::spawn(async move {
        let Ok(mut c) = atlas_runner::ipc::Client::connect(&socket).await else {
            return;
        };
        if let Ok(mut s) = c.call(request::Kind::Update(UpdateRequest { apply: true })).await {
            while let Some(Ok(r)) = s.next().await {
                if r.last {
                    break;
                }
            }
        }
    })
}

/// What the daemon's shutdown must leave: it exited cleanly, its server
/// process is gone, build 1's files are in place, and the log says the
/// update ended because of the shutdown.
async fn assert_stopped_on_build_1(rig: &mut Rig) {
    let pids = rig.server_pids();
    assert!(!pids.is_empty(), "{:#?}", rig.event_lines());
    let status = rig.terminate().await;
    assert!(status.success(), "{status:?}; log:\n{}", rig.daemon_log());
    for pid in pids {
        assert!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
            "server pid {pid} still runs"
        );
    }
    let files = tree(&rig.server_dir);
    assert_eq!(files["config/pack.toml"], b"build = 1\n");
    for i in 0..5 {
        assert_eq!(
            files[&format!("mods/mod{i}.jar")],
            format!("mod {i} of build 1").as_bytes()
        );
    }
    let log = rig.daemon_log();
    assert!(
        log.contains("update failed: the daemon is shutting down"),
        "{log}"
    );
}

/// The daemon comes back on build 1, running, with nothing marked bad.
async fn assert_restarts_on(rig: &mut Rig, b1: Sha256Digest) {
    rig.start().await;
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b1.to_hex());
    assert_eq!(s.bad_build, "", "a shutdown does not mark a build bad");
    assert!(rig.terminate().await.success());
}

#[tokio::test]
async fn a_shutdown_during_a_stalled_download_ends_the_update_before_anything_changes() {
    let (mut store, srv, mut rig, _b1) = running_first_build_with(false, "0s", "1500ms").await;
    // The store sends the headers of one of build 2's blobs, then nothing for an hour.
    let stalled = atlas_proto::layout::blob_key(&Sha256Digest::of(b"mod 0 of build 2"));
    srv.set_fault(
        &stalled,
        Fault::Trickle {
            chunk: 1,
            delay_ms: 3_600_000,
        },
    );
    store.publish(&build(2, ""));
    let seen = rig.events.lock().expect("events").len();
    let _apply = update_apply_in_background(&rig);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !srv.requests().iter().any(|r| r.path == stalled) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the blob was never asked for"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_stopped_on_build_1(&mut rig).await;
    // The download was the first step: nothing else of the update ran.
    let later = &rig.event_lines()[seen..];
    assert!(!later.iter().any(|e| e.starts_with("update.step")), "{later:#?}");
}

#[tokio::test]
async fn a_shutdown_during_the_announcement_ends_the_update_before_the_stop() {
    let (mut store, _srv, mut rig, _b1) = running_first_build_with(false, "1h", "1500ms").await;
    store.publish(&build(2, ""));
    let _apply = update_apply_in_background(&rig);
    rig.wait_event("the announcement", |e| {
        e.kind == "update.step" && e.message.contains("announcing")
    })
    .await;
    assert_stopped_on_build_1(&mut rig).await;
}

#[tokio::test]
async fn a_shutdown_during_the_health_window_restores_the_previous_build() {
    let (mut store, _srv, mut rig, b1) = running_first_build_with(false, "0s", "1h").await;
    store.publish(&build(2, ""));
    let _apply = update_apply_in_background(&rig);
    // Build 2 is applied and running: only its health window is left.
    rig.wait_event("the health window", |e| {
        e.kind == "update.step" && e.message.contains("health-check")
    })
    .await;
    assert_eq!(
        std::fs::read(rig.server_dir.join("config/pack.toml")).expect("config"),
        b"build = 2\n"
    );
    assert_stopped_on_build_1(&mut rig).await;
    let log = rig.daemon_log();
    assert!(log.contains("the update to build"), "{log}");
    assert!(log.contains("was undone: backup"), "{log}");
    assert_restarts_on(&mut rig, b1).await;
}
