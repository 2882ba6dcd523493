//! Cancellation: what dropping a sync's future, or setting its interrupt
//! flag, leaves behind. The journaled apply runs on a blocking thread; it
//! holds the directory's lock until it is done, so a run started after the
//! drop waits for it (or fails as locked) and the directory ends with
//! exactly one build.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use atlas_fetcher::inspect::{status, verify};
use atlas_fetcher::lock::DirLock;
use atlas_fetcher::state::StatePaths;
use atlas_fetcher::{Interrupt, NoProgress, Outcome, Phase, Progress, SyncError, Syncer};

/// Enough files that moving them into place takes a while (tens to hundreds
/// of milliseconds), so the future can be dropped while it happens.
const FILES: usize = 1000;

fn build(tag: &str) -> Vec<Spec> {
    (0..FILES)
        .map(|i| {
            f(
                &format!("mods/d{:02}/f{i:04}.jar", i % 50),
                format!("{tag} {i}").as_bytes(),
            )
        })
        .collect()
}

/// Returns once `p` exists (polled every millisecond).
async fn appears(p: &Path) {
    while !p.exists() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until no apply is running: the journal is gone and the lock free.
async fn settled(dir: &Path) {
    let paths = StatePaths::new(dir);
    for _ in 0..3000 {
        if !paths.state_dir.join("journal.json").exists() && DirLock::acquire(&paths).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the dropped apply never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_sync_mid_apply_then_syncing_again_leaves_exactly_one_build() {
    let mut store = Store::new();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let (old, new) = (build("old"), build("new"));
    store.publish(&old);
    sync(&store.file_url(), &dir, &store.public())
        .await
        .expect("first install");
    let new_build = store.publish(&new);
    std::fs::write(dir.join("world.dat"), b"not managed").expect("write");

    // Drop the sync the moment its journal exists: files are moving.
    let journal = dir.join(".atlas").join("journal.json");
    let first = Syncer::new(options(&store.file_url(), &dir, vec![store.public()])).expect("syncer");
    tokio::select! {
        r = first.sync(false, &NoProgress) => panic!("the sync ended before its apply was seen: {r:?}"),
        () = appears(&journal) => {}
    }
    assert!(
        journal.exists(),
        "the future was dropped while the apply still ran (else this test proves nothing)"
    );

    // Another sync at once: it waits for the lock the dropped apply still
    // holds (or gives up as locked); it never works beside it.
    let second = Syncer::new(options(&store.file_url(), &dir, vec![store.public()])).expect("syncer");
    match second.sync(false, &NoProgress).await {
        Ok(r) => assert_eq!(r.outcome, Outcome::Current, "{r:?}"),
        Err(SyncError::Locked { .. }) => {}
        Err(e) => panic!("the second sync must wait for the apply or fail as locked: {e}"),
    }
    settled(&dir).await;

    let mut want = expected(&new);
    want.insert("world.dat".into(), b"not managed".to_vec());
    assert_eq!(files(&dir), want, "exactly the new build, unmanaged files kept");
    let s = status(&dir).expect("status");
    assert_eq!(s.build, Some(new_build.to_hex()));
    assert!(!s.journal_pending);
    let v = verify(&dir, 2).expect("verify");
    assert!(v.clean() && v.checked == FILES, "{v:?}");
    for leftover in ["staging", "backup"] {
        assert!(!dir.join(".atlas").join(leftover).exists(), "{leftover} cleared");
    }
    let again = sync(&store.file_url(), &dir, &store.public())
        .await
        .expect("sync");
    assert_eq!(again.outcome, Outcome::Current);
}

/// Sets the interrupt flag when the downloads start (a user pressing "cancel").
struct CancelOnDownload(Interrupt);

impl Progress for CancelOnDownload {
    fn phase(&self, phase: &Phase) {
        if matches!(phase, Phase::Download { .. }) {
            self.0.trigger();
        }
    }
}

#[tokio::test]
async fn an_interrupted_sync_stops_before_the_apply_and_changes_nothing() {
    let mut store = Store::new();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    store.publish(&build("old")[..200]);
    sync(&store.file_url(), &dir, &store.public())
        .await
        .expect("install");
    store.publish(&build("new")[..200]);
    let before = snapshot(&dir);

    let mut opts = options(&store.file_url(), &dir, vec![store.public()]);
    let interrupt = Interrupt::new();
    opts.interrupt = interrupt.clone();
    let err = Syncer::new(opts)
        .expect("syncer")
        .sync(false, &CancelOnDownload(interrupt))
        .await
        .expect_err("interrupted");
    assert!(matches!(err, SyncError::Interrupted), "{err}");
    assert_eq!(snapshot(&dir), before, "nothing changed, nothing left behind");
    sync(&store.file_url(), &dir, &store.public())
        .await
        .expect("then it updates");
    assert_eq!(files(&dir), expected(&build("new")[..200]));
}
