//! Resume across runs (issue 18 item 4): a big blob a run did not finish is
//! kept in `.atlas/partial/` and the next run asks only for the rest
//! (`Range` + `If-Range`), verifies the blob as a whole, and starts again
//! from zero when the server sends the whole object (200), the object
//! changed, or the kept bytes do not verify. Nothing outside the directory
//! is touched, whatever the server's user put in `.atlas/partial/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use atlas_fetcher::{NoProgress, Report, SyncError, Syncer, exit};
use atlas_proto::{Sha256Digest, layout};
use atlas_testkit::http::{Fault, Request, StaticServer, etag_of};

const BIG: usize = 4 * 1024 * 1024;

fn big(tag: u8) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(tag);
    (0..BIG)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

const CONFIG: &[u8] = b"c = 1\n";

fn build() -> Vec<Spec> {
    vec![f("mods/big.jar", &big(1)), f("config/c.toml", CONFIG)]
}

/// What a run downloads besides the big blob: the small file (its first
/// run failed, so it is downloaded again; small blobs are not kept).
const OTHER: u64 = CONFIG.len() as u64;

fn key() -> String {
    layout::blob_key(&Sha256Digest::of(&big(1)))
}

fn partial_path(dir: &Path) -> PathBuf {
    dir.join(".atlas/partial")
        .join(Sha256Digest::of(&big(1)).to_hex())
}

/// A store with `build()` published, its server, and a host directory
/// (`root/server`) beside a sibling directory no run may touch.
struct Setup {
    store: Store,
    srv: StaticServer,
    root: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let mut store = Store::new();
        let srv = StaticServer::start(store.root()).expect("server");
        store.publish(&build());
        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(root.path().join("sibling")).expect("mkdir");
        std::fs::write(root.path().join("sibling/outside.txt"), b"precious").expect("write");
        Self { store, srv, root }
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("server")
    }

    fn sibling(&self) -> PathBuf {
        self.root.path().join("sibling")
    }

    async fn sync(&self, retries: u32) -> Result<Report, SyncError> {
        let mut opts = options(&self.srv.url(), &self.dir(), vec![self.store.public()]);
        opts.retry.retries = retries;
        Syncer::new(opts)?.sync(false, &NoProgress).await
    }

    /// A first run that the network cuts after `cut` bytes of the big blob,
    /// without retries: it fails and keeps what it got; returns how much.
    async fn cut_at(&self, cut: usize) -> u64 {
        self.srv.set_fault_times(&key(), Fault::Abort(cut), 1);
        let err = self.sync(0).await.expect_err("cut");
        assert_eq!(err.exit_code(), exit::SOURCE, "{err}");
        let kept = std::fs::metadata(partial_path(&self.dir())).expect("kept").len();
        assert!(
            kept > 0 && kept <= cut as u64,
            "what was received is kept: {kept}"
        );
        assert!(!self.dir().join("mods/big.jar").exists());
        self.srv.reset_requests();
        kept
    }

    fn blob_requests(&self) -> Vec<Request> {
        self.srv
            .requests()
            .into_iter()
            .filter(|r| r.path == key())
            .collect()
    }

    fn installed(&self) {
        assert_eq!(files(&self.dir()), expected(&build()));
        assert_eq!(
            partials(&self.dir()),
            Vec::<String>::new(),
            "nothing left to resume"
        );
    }
}

#[tokio::test]
async fn a_download_cut_short_is_resumed_by_the_next_run_with_range_and_if_range() {
    let s = Setup::new();
    let sibling = snapshot(&s.sibling());
    let kept = s.cut_at(BIG / 2).await;
    let r = s.sync(5).await.expect("resumed");
    let rest = BIG as u64 - kept;
    assert_eq!(r.bytes_downloaded, rest + OTHER, "only the missing part");
    let hits = s.blob_requests();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].range.as_deref(), Some(format!("bytes={kept}-").as_str()));
    assert_eq!(
        hits[0].if_range,
        Some(etag_of(&big(1))),
        "If-Range with the strong ETag"
    );
    assert_eq!((hits[0].status, hits[0].bytes), (206, rest));
    s.installed();
    assert_eq!(snapshot(&s.sibling()), sibling);
}

#[tokio::test]
async fn a_200_answer_to_the_range_request_starts_again_from_zero() {
    let s = Setup::new();
    s.cut_at(BIG / 2).await;
    s.srv.set_fault_times(&key(), Fault::IgnoreRange, 1);
    let r = s.sync(5).await.expect("whole object");
    assert_eq!(r.bytes_downloaded, BIG as u64 + OTHER);
    let hits = s.blob_requests();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].range.is_some());
    assert_eq!((hits[0].status, hits[0].bytes), (200, BIG as u64));
    s.installed();
}

#[tokio::test]
async fn a_changed_validator_gets_the_whole_object() {
    let s = Setup::new();
    s.cut_at(BIG / 2).await;
    // As if the object had been replaced since: the kept validator is another.
    let meta = partial_path(&s.dir()).with_extension("json");
    let text = std::fs::read_to_string(&meta).expect("side file");
    let etag = etag_of(&big(1));
    assert!(text.contains(&etag.replace('"', "\\\"")), "{text}");
    std::fs::write(
        &meta,
        text.replace(&etag.replace('"', "\\\""), "\\\"replaced\\\""),
    )
    .expect("write");
    let r = s.sync(5).await.expect("whole object");
    let hits = s.blob_requests();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].if_range.as_deref(), Some("\"replaced\""));
    assert_eq!(hits[0].status, 200, "If-Range did not match: the whole object");
    assert_eq!(r.bytes_downloaded, BIG as u64 + OTHER);
    s.installed();
}

#[tokio::test]
async fn kept_bytes_changed_by_someone_else_are_caught_and_downloaded_again() {
    let s = Setup::new();
    let kept = s.cut_at(BIG / 2).await;
    // The server's user rewrites the kept bytes (same length).
    std::fs::write(partial_path(&s.dir()), vec![0xEE; kept as usize]).expect("tamper");
    let r = s.sync(5).await.expect("verified after a second download");
    let hits = s.blob_requests();
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        [206, 200],
        "the rest, then (the whole not verifying) everything: {hits:?}"
    );
    assert_eq!(r.bytes_downloaded, BIG as u64 - kept + BIG as u64 + OTHER);
    s.installed();
}

#[cfg(unix)]
#[tokio::test]
async fn links_in_the_partial_directory_are_never_followed() {
    let s = Setup::new();
    let sibling = snapshot(&s.sibling());
    s.cut_at(BIG / 2).await;
    let target = s.sibling().join("outside.txt");
    let partial = partial_path(&s.dir());
    std::fs::remove_file(&partial).expect("rm");
    std::os::unix::fs::symlink(&target, &partial).expect("link to a file outside");
    let meta = partial.with_extension("json");
    std::fs::remove_file(&meta).expect("rm");
    std::os::unix::fs::symlink(&target, &meta).expect("link to a file outside");
    let r = s.sync(5).await.expect("downloaded from zero");
    assert_eq!(r.bytes_downloaded, BIG as u64 + OTHER);
    s.installed();
    assert_eq!(snapshot(&s.sibling()), sibling, "nothing outside changed");
}

#[tokio::test]
async fn what_no_download_needs_is_cleaned_and_a_local_store_keeps_nothing() {
    let s = Setup::new();
    let stale = s.dir().join(".atlas/partial");
    std::fs::create_dir_all(&stale).expect("mkdir");
    let old_blob = Sha256Digest::of(b"a blob of an older build").to_hex();
    std::fs::write(stale.join(&old_blob), vec![1; 1000]).expect("write");
    std::fs::write(stale.join(format!("{old_blob}.json")), b"{}").expect("write");
    std::fs::write(stale.join("junk"), b"?").expect("write");
    s.sync(5).await.expect("sync");
    s.installed();
    assert!(
        !stale.exists(),
        "the partial directory is gone after a successful run"
    );

    // A directory store is read directly: nothing to resume, nothing kept.
    let mut store = Store::new();
    store.publish(&build());
    let dir = s.root.path().join("local");
    store.write(&key(), &big(1)[..BIG / 2]);
    let err = sync(&store.file_url(), &dir, &store.public())
        .await
        .expect_err("short blob");
    assert_eq!(err.exit_code(), exit::INTEGRITY, "{err}");
    assert_eq!(partials(&dir), Vec::<String>::new());
}

/// The real binary, SIGKILLed in the middle of a big blob, then run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sync_resumes_where_it_stopped() {
    let s = Setup::new();
    let keyfile = s.root.path().join("key.pub");
    std::fs::write(&keyfile, s.store.public().to_text()).expect("key");
    // About 4 MiB per second: the kill lands mid-blob.
    s.srv.set_fault_times(
        &key(),
        Fault::Trickle {
            chunk: 64 * 1024,
            delay_ms: 15,
        },
        1,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"))
        .args([
            "sync",
            "--source",
            &s.srv.url(),
            "--pack",
            PACK,
            "--channel",
            CHANNEL,
            "--key",
        ])
        .arg(&keyfile)
        .arg("--dir")
        .arg(s.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run atlas-fetcher");
    let partial = partial_path(&s.dir());
    let mut waited = Duration::ZERO;
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < (BIG / 4) as u64 {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the sync ended before the kill"
        );
        assert!(waited < Duration::from_secs(60), "no partial download appeared");
        tokio::time::sleep(Duration::from_millis(2)).await;
        waited += Duration::from_millis(2);
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let kept = std::fs::metadata(&partial).expect("kept after the kill").len();
    assert!(kept >= (BIG / 4) as u64 && kept < BIG as u64, "{kept}");
    s.srv.reset_requests();

    let r = s.sync(5).await.expect("resumed");
    let hits = s.blob_requests();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].range.as_deref(), Some(format!("bytes={kept}-").as_str()));
    assert_eq!(hits[0].status, 206);
    assert_eq!(r.bytes_downloaded, BIG as u64 - kept + OTHER);
    s.installed();
}
