//! Acceptance: transfer faults injected by the loopback server. Each sync
//! ends with the new build or with a clear error and the directory exactly
//! as before. Also: the directory lock, the deadline, and a full disk.

use std::time::Duration;

use crate::common::*;
use atlas_fetcher::{NoProgress, SyncError, Syncer, exit};
use atlas_proto::{Sha256Digest, layout};
use atlas_testkit::http::{Fault, StaticServer};

const BIG: usize = 2 * 1024 * 1024;

fn big(version: u8) -> Vec<u8> {
    (0..BIG)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(version))
        .collect()
}

fn base() -> Vec<Spec> {
    vec![f("mods/big.jar", &big(1)), f("config/c.toml", b"c = 1\n")]
}

fn next() -> Vec<Spec> {
    vec![f("mods/big.jar", &big(2)), f("config/c.toml", b"c = 2\n")]
}

fn big_key() -> String {
    layout::blob_key(&Sha256Digest::of(&big(2)))
}

/// An installed directory (base build) with the next build published.
async fn installed() -> (Store, StaticServer, tempfile::TempDir) {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("user.txt"), b"mine").expect("write");
    store.publish(&base());
    sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect("install");
    store.publish(&next());
    srv.reset_requests();
    (store, srv, dir)
}

fn expected(specs: &[Spec]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut t: std::collections::BTreeMap<_, _> = specs
        .iter()
        .map(|s| (s.path.clone(), s.content.clone()))
        .collect();
    t.insert("user.txt".into(), b"mine".to_vec());
    t
}

/// Injects `fault` (for `times` requests, or forever) and expects the new build.
async fn recovers(fault: Fault, times: Option<usize>) -> Vec<atlas_testkit::http::Request> {
    let (store, srv, dir) = installed().await;
    match times {
        Some(n) => srv.set_fault_times(&big_key(), fault.clone(), n),
        None => srv.set_fault(&big_key(), fault.clone()),
    }
    let r = sync(&srv.url(), dir.path(), &store.public()).await;
    assert!(r.is_ok(), "{fault:?}: {r:?}");
    assert_eq!(files(dir.path()), expected(&next()), "{fault:?}");
    srv.requests()
        .into_iter()
        .filter(|r| r.path == big_key())
        .collect()
}

/// Injects `fault` forever and expects a clear error of class `code` and an
/// untouched directory: what the network cut short is kept for the next run
/// (`.atlas/partial/`), wrong bytes are not.
async fn fails(fault: Fault, code: i32, needle: &str) {
    let (store, srv, dir) = installed().await;
    srv.set_fault(&big_key(), fault.clone());
    let before = snapshot_but_partial(dir.path());
    let err = sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect_err("must fail");
    assert_eq!(err.exit_code(), code, "{fault:?}: {err}");
    assert!(
        err.to_string().contains(needle),
        "{fault:?}: `{err}` lacks `{needle}`"
    );
    assert_eq!(
        snapshot_but_partial(dir.path()),
        before,
        "{fault:?}: the directory must be untouched"
    );
    if code == exit::INTEGRITY {
        assert_eq!(
            partials(dir.path()),
            Vec::<String>::new(),
            "{fault:?}: wrong bytes are not kept"
        );
    }
}

#[tokio::test]
async fn dropped_connection_resumes_with_a_range_request() {
    let reqs = recovers(Fault::Abort(BIG / 2), Some(1)).await;
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let range = reqs[1].range.as_deref().expect("the retry asks for a range");
    assert_ne!(range, "bytes=0-");
    assert_eq!(reqs[1].status, 206);
    assert!(reqs[1].bytes < BIG as u64, "only the missing part is sent again");
}

#[tokio::test]
async fn server_errors_then_success() {
    assert_eq!(recovers(Fault::Status(500), Some(2)).await.len(), 3);
    assert_eq!(recovers(Fault::Status(503), Some(1)).await.len(), 2);
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    // Retry-After is honoured but capped by the policy's max delay (20 ms in tests).
    assert_eq!(
        recovers(Fault::TooManyRequests("1".into()), Some(2)).await.len(),
        3
    );
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(1));
    assert_eq!(recovers(Fault::TooManyRequests(date), Some(1)).await.len(), 2);
}

#[tokio::test]
async fn slow_trickle_completes() {
    recovers(
        Fault::Trickle {
            chunk: 256 * 1024,
            delay_ms: 2,
        },
        None,
    )
    .await;
}

#[tokio::test]
async fn too_large_content_length_still_verifies() {
    recovers(Fault::WrongLength(100), None).await;
}

#[tokio::test]
async fn persistent_faults_fail_cleanly() {
    fails(
        Fault::Truncate(1000),
        exit::INTEGRITY,
        "but the manifest declares",
    )
    .await;
    fails(Fault::Body(big(3)), exit::INTEGRITY, "has sha256").await;
    fails(
        Fault::WrongLength(-100),
        exit::INTEGRITY,
        "but the manifest declares",
    )
    .await;
    fails(Fault::Status(503), exit::SOURCE, "HTTP 503").await;
    fails(Fault::Status(404), exit::SOURCE, "was not found").await;
    fails(Fault::Abort(1000), exit::SOURCE, "127.0.0.1").await;
}

#[tokio::test]
async fn no_retry_on_not_found_or_integrity() {
    let (store, srv, dir) = installed().await;
    srv.set_fault(&big_key(), Fault::Status(404));
    sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect_err("404");
    srv.set_fault(&big_key(), Fault::Body(big(3)));
    sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect_err("hash");
    let hits = srv.requests().iter().filter(|r| r.path == big_key()).count();
    assert_eq!(hits, 2, "one request each, no retries");
}

#[tokio::test]
async fn deadline_stops_a_slow_download_and_leaves_the_directory() {
    let (store, srv, dir) = installed().await;
    srv.set_fault(
        &big_key(),
        Fault::Trickle {
            chunk: 1024,
            delay_ms: 50,
        },
    );
    let before = snapshot_but_partial(dir.path());
    let mut opts = options(&srv.url(), dir.path(), vec![store.public()]);
    opts.deadline = Some(Duration::from_millis(300));
    let err = Syncer::new(opts)
        .expect("opts")
        .sync(false, &NoProgress)
        .await
        .expect_err("deadline");
    assert!(matches!(err, SyncError::Deadline { .. }), "{err}");
    assert_eq!(err.exit_code(), exit::SOURCE);
    assert_eq!(snapshot_but_partial(dir.path()), before);
}

#[tokio::test]
async fn a_second_run_is_refused_while_the_lock_is_held() {
    let (store, srv, dir) = installed().await;
    let lock = std::fs::File::open(dir.path().join(".atlas/lock")).expect("lock file");
    lock.try_lock().expect("take the lock");
    let before = snapshot(dir.path());
    let err = sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect_err("locked");
    assert_eq!(err.exit_code(), exit::LOCKED, "{err}");
    assert!(
        err.to_string()
            .contains("another atlas-fetcher run holds the lock"),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);
    drop(lock);
    sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect("free again");
    assert_eq!(files(dir.path()), expected(&next()));
}

/// Unmounts on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn disk_full_during_staging_leaves_the_old_build() {
    let root = tempfile::tempdir().expect("tmp");
    let dir = root.path().join("mnt");
    std::fs::create_dir(&dir).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("note: cannot mount a tmpfs here (not root?); skipping the disk-full test");
        return;
    }
    let _mount = Mount(dir.clone());
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    std::fs::write(dir.join("user.txt"), b"mine").expect("write");
    store.publish(&base());
    sync(&srv.url(), &dir, &store.public())
        .await
        .expect("install fits");
    // The next build needs 2 MiB more staging space than the 3 MiB disk has left.
    store.publish(&next());
    let before = snapshot_but_partial(&dir);
    let err = sync(&srv.url(), &dir, &store.public())
        .await
        .expect_err("disk full");
    assert_eq!(err.exit_code(), exit::LOCAL, "{err}");
    assert!(err.to_string().contains("staging"), "{err}");
    assert_eq!(snapshot_but_partial(&dir), before, "the old build is intact");
    assert_eq!(
        partials(&dir),
        Vec::<String>::new(),
        "what filled the disk is not kept"
    );
    assert_eq!(files(&dir), expected(&base()));
}
