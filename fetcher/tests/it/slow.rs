//! Slow and silent peers (issue 17 item 4): with the default settings a
//! trickling body, a server that never answers and a special file in a
//! directory store each end the run in bounded time, with a clear error,
//! the lock released and nothing changed, in the directory or beside it.
//! The defaults are measured on tokio's paused clock (the loopback server
//! runs on it too), so minutes of patience take milliseconds; the clock is
//! paused once the host is installed, for the run under test only. A paused
//! clock jumps to the next timer whenever the runtime waits for I/O, so the
//! cases that need bytes to arrive at a given rate run in real time, with
//! small limits, instead.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use atlas_fetcher::lock::DirLock;
use atlas_fetcher::state::StatePaths;
use atlas_fetcher::{NoProgress, SyncError, SyncOptions, Syncer, exit};
use atlas_proto::{Sha256Digest, layout};
use atlas_testkit::http::{Fault, StaticServer};
use tokio::time::Instant;

const BLOB: usize = 64 * 1024;

fn blob(tag: u8) -> Vec<u8> {
    (0..BLOB).map(|i| (i as u8).wrapping_mul(13) ^ tag).collect()
}

fn base() -> Vec<Spec> {
    vec![f("mods/a.jar", &blob(1)), f("config/c.toml", b"c = 1\n")]
}

fn next() -> Vec<Spec> {
    vec![f("mods/a.jar", &blob(2)), f("config/c.toml", b"c = 1\n")]
}

/// A host directory and a sibling directory that no run may touch.
struct Host {
    root: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(root.path().join("sibling/world")).expect("mkdir");
        std::fs::write(root.path().join("sibling/world/level.dat"), b"another server").expect("write");
        std::fs::write(root.path().join("sibling/notes.txt"), b"keep").expect("write");
        Self { root }
    }

    fn dir(&self) -> std::path::PathBuf {
        self.root.path().join("server")
    }

    fn sibling(&self) -> std::path::PathBuf {
        self.root.path().join("sibling")
    }
}

/// The defaults a host gets, with the test server's address.
fn defaults(source: &str, dir: &Path, store: &Store) -> SyncOptions {
    SyncOptions::new(source, PACK, CHANNEL, vec![store.public()], dir)
}

/// Installs `base()` from `srv`, publishes `next()`; the sync of the next
/// build is the one under test.
async fn installed(store: &mut Store, srv: &StaticServer, host: &Host) {
    store.publish(&base());
    sync(&srv.url(), &host.dir(), &store.public())
        .await
        .expect("install");
    store.publish(&next());
}

/// That the lock is free: a run that ends must not hold it.
fn lock_is_free(dir: &Path) {
    drop(DirLock::acquire(&StatePaths::new(dir)).expect("the lock is released"));
}

#[tokio::test]
async fn a_body_trickling_at_one_byte_per_second_fails_in_minutes_by_default() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let host = Host::new();
    installed(&mut store, &srv, &host).await;
    tokio::time::pause();
    let key = layout::blob_key(&Sha256Digest::of(&blob(2)));
    srv.set_fault(
        &key,
        Fault::Trickle {
            chunk: 1,
            delay_ms: 1000,
        },
    );
    let (before, sibling) = (snapshot_but_partial(&host.dir()), snapshot(&host.sibling()));
    let start = Instant::now();
    // Bounded here too, so that a fetcher without a bound fails the test
    // instead of trickling for 18 hours of (paused) time.
    let syncer = Syncer::new(defaults(&srv.url(), &host.dir(), &store)).expect("syncer");
    let run = syncer.sync(false, &NoProgress);
    let err = tokio::time::timeout(Duration::from_secs(3600), run)
        .await
        .expect("the run ends within the hour")
        .expect_err("too slow");
    let took = start.elapsed();
    assert!(matches!(err, SyncError::TooSlow { .. }), "{err}");
    assert_eq!(err.exit_code(), exit::SOURCE);
    assert!(err.to_string().contains("--low-speed-limit"), "{err}");
    // Six attempts (5 retries) of 30 s each plus their backoff: the slow
    // bytes do not renew the retry budget.
    assert!(took <= Duration::from_secs(6 * 30 + 16 + 5), "took {took:?}");
    let tries = srv.requests().iter().filter(|r| r.path == key).count();
    assert_eq!(tries, 6, "the first attempt and 5 retries");
    assert_eq!(snapshot_but_partial(&host.dir()), before);
    assert_eq!(
        snapshot(&host.sibling()),
        sibling,
        "nothing beside the directory changed"
    );
    lock_is_free(&host.dir());
}

#[tokio::test]
async fn a_transfer_cut_for_low_speed_resumes_at_full_speed() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let host = Host::new();
    installed(&mut store, &srv, &host).await;
    let key = layout::blob_key(&Sha256Digest::of(&blob(2)));
    // About 10 KiB per second, below a limit of 32 KiB per second over 1 s.
    srv.set_fault_times(
        &key,
        Fault::Trickle {
            chunk: 1024,
            delay_ms: 100,
        },
        1,
    );
    srv.reset_requests();
    let mut opts = options(&srv.url(), &host.dir(), vec![store.public()]);
    (opts.low_speed_limit, opts.low_speed_time) = (32 * 1024, Duration::from_secs(1));
    let r = Syncer::new(opts)
        .expect("syncer")
        .sync(false, &NoProgress)
        .await
        .expect("the retry brings the rest");
    assert_eq!(r.bytes_downloaded, BLOB as u64);
    let hits: Vec<_> = srv.requests().into_iter().filter(|r| r.path == key).collect();
    assert_eq!(hits.len(), 2, "{hits:?}");
    let range = hits[1].range.as_deref().expect("the retry asks for the rest");
    let from: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .expect("bytes=N-");
    assert!(from > 0 && from < BLOB as u64, "{range}");
    assert_eq!((hits[1].status, hits[1].bytes), (206, BLOB as u64 - from));
    assert_eq!(files(&host.dir()), expected(&next()));
}

#[tokio::test]
async fn a_server_that_never_answers_costs_seconds_not_minutes_by_default() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let host = Host::new();
    installed(&mut store, &srv, &host).await;
    tokio::time::pause();
    srv.set_fault(&Store::pointer_key(), Fault::Stall);
    let (before, sibling) = (snapshot_but_lock(&host.dir()), snapshot(&host.sibling()));
    let start = Instant::now();
    let syncer = Syncer::new(defaults(&srv.url(), &host.dir(), &store)).expect("syncer");
    let run = syncer.sync(false, &NoProgress);
    let err = tokio::time::timeout(Duration::from_secs(3600), run)
        .await
        .expect("the run ends within the hour")
        .expect_err("no answer");
    let took = start.elapsed();
    assert!(matches!(err, SyncError::NoResponse { .. }), "{err}");
    assert_eq!(err.exit_code(), exit::SOURCE);
    assert!(err.to_string().contains("--header-timeout"), "{err}");
    // Six attempts of 15 s each plus their backoff (about 6 minutes before).
    assert!(took <= Duration::from_secs(6 * 15 + 16 + 5), "took {took:?}");
    assert_eq!(snapshot_but_lock(&host.dir()), before);
    assert_eq!(snapshot(&host.sibling()), sibling);
    lock_is_free(&host.dir());
}

#[tokio::test]
async fn the_deadline_ends_a_run_that_keeps_making_progress() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let host = Host::new();
    installed(&mut store, &srv, &host).await;
    // 10 KiB per second: above the low-speed limit, and 64 KiB take 6 s.
    // A 2 s deadline (the default is 30 minutes) ends the run; nothing else would.
    let key = layout::blob_key(&Sha256Digest::of(&blob(2)));
    srv.set_fault(
        &key,
        Fault::Trickle {
            chunk: 1024,
            delay_ms: 100,
        },
    );
    let (before, sibling) = (snapshot_but_partial(&host.dir()), snapshot(&host.sibling()));
    let mut opts = defaults(&srv.url(), &host.dir(), &store);
    assert_eq!(
        opts.deadline,
        Some(Duration::from_secs(1800)),
        "a deadline by default"
    );
    opts.deadline = Some(Duration::from_secs(2));
    let start = std::time::Instant::now();
    let err = Syncer::new(opts)
        .expect("syncer")
        .sync(false, &NoProgress)
        .await
        .expect_err("deadline");
    assert!(matches!(err, SyncError::Deadline { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert_eq!(snapshot_but_partial(&host.dir()), before);
    assert_eq!(snapshot(&host.sibling()), sibling);
    lock_is_free(&host.dir());
}

/// Special files a directory store must not hold, made at `path`.
#[derive(Debug, Clone, Copy)]
enum Special {
    Fifo,
    Socket,
    Device,
}

fn make(special: Special, path: &Path) -> Option<std::os::unix::net::UnixListener> {
    let _ = std::fs::remove_file(path);
    match special {
        Special::Fifo => {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
            None
        }
        Special::Socket => Some(std::os::unix::net::UnixListener::bind(path).expect("bind")),
        // A link to a device: stores may link to their files, so links are
        // followed, to regular files only.
        Special::Device => {
            std::os::unix::fs::symlink("/dev/zero", path).expect("link");
            None
        }
    }
}

#[tokio::test]
async fn special_files_in_a_directory_store_are_refused() {
    for special in [Special::Fifo, Special::Socket, Special::Device] {
        let mut store = Store::new();
        let host = Host::new();
        store.publish(&base());
        sync(&store.file_url(), &host.dir(), &store.public())
            .await
            .expect("install");
        store.publish(&next());
        let blob = store.root().join(layout::blob_key(&Sha256Digest::of(&blob(2))));
        let _listener = make(special, &blob);
        let (before, sibling) = (snapshot_but_lock(&host.dir()), snapshot(&host.sibling()));
        let err = tokio::time::timeout(
            Duration::from_secs(60),
            sync(&store.file_url(), &host.dir(), &store.public()),
        )
        .await
        .unwrap_or_else(|_| panic!("{special:?}: the run blocked"))
        .expect_err("refused");
        assert!(matches!(err, SyncError::NotAFile { .. }), "{special:?}: {err}");
        assert_eq!(err.exit_code(), exit::SOURCE);
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(snapshot_but_lock(&host.dir()), before, "{special:?}");
        assert_eq!(snapshot(&host.sibling()), sibling, "{special:?}");
        lock_is_free(&host.dir());
    }
}

/// Waits for `child` up to `limit`; kills it and fails if it is still running.
fn exits_within(child: &mut std::process::Child, limit: Duration, what: &str) -> std::process::Output {
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = std::process::Output {
        status: child.wait().expect("status"),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read as _;
    if let Some(mut s) = child.stderr.take() {
        s.read_to_end(&mut out.stderr).expect("stderr");
    }
    out
}

fn fetcher(source: &str, store: &Store, dir: &Path, extra: &[&str]) -> std::process::Child {
    let keyfile = dir.with_extension("pub");
    std::fs::write(&keyfile, store.public().to_text()).expect("key");
    Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"))
        .args([
            "sync",
            "--source",
            source,
            "--pack",
            PACK,
            "--channel",
            CHANNEL,
            "--key",
        ])
        .arg(&keyfile)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run atlas-fetcher")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_on_a_fifo_in_a_file_store_and_releases_the_lock() {
    let mut store = Store::new();
    let host = Host::new();
    store.publish(&base());
    sync(&store.file_url(), &host.dir(), &store.public())
        .await
        .expect("install");
    store.publish(&next());
    let blob = store.root().join(layout::blob_key(&Sha256Digest::of(&blob(2))));
    make(Special::Fifo, &blob);
    let (before, sibling) = (snapshot_but_lock(&host.dir()), snapshot(&host.sibling()));
    let mut child = fetcher(&store.file_url(), &store, &host.dir(), &["--deadline", "5"]);
    let out = tokio::task::spawn_blocking(move || exits_within(&mut child, Duration::from_secs(60), "FIFO"))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::SOURCE), "{stderr}");
    assert!(
        stderr.contains("named pipe (FIFO), not a regular file"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&blob.display().to_string()),
        "names the file: {stderr}"
    );
    assert_eq!(snapshot_but_lock(&host.dir()), before);
    assert_eq!(snapshot(&host.sibling()), sibling);
    lock_is_free(&host.dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_ends_at_its_deadline_and_releases_the_lock() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let host = Host::new();
    installed(&mut store, &srv, &host).await;
    srv.set_fault(&Store::pointer_key(), Fault::Stall);
    let (before, sibling) = (snapshot_but_lock(&host.dir()), snapshot(&host.sibling()));
    let mut child = fetcher(&srv.url(), &store, &host.dir(), &["--deadline", "2"]);
    let out = tokio::task::spawn_blocking(move || {
        exits_within(&mut child, Duration::from_secs(30), "stalled server")
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::SOURCE), "{stderr}");
    assert!(stderr.contains("deadline of 2 s"), "{stderr}");
    assert_eq!(snapshot_but_lock(&host.dir()), before);
    assert_eq!(snapshot(&host.sibling()), sibling);
    lock_is_free(&host.dir());
}
