//! A host clock set back (by hand, a dead CMOS battery, a VM restored from a
//! snapshot) would make expired pointers look fresh. `trust.json` records the
//! latest time seen when a pointer was accepted; a clock more than an hour
//! behind it is refused with a clear message, and nothing changes.

use crate::common::*;
use atlas_fetcher::sync::CLOCK_SLACK_SECS;
use atlas_fetcher::{NoProgress, Syncer, exit};
use atlas_testkit::http::StaticServer;

async fn sync_at(
    src: &str,
    dir: &std::path::Path,
    store: &Store,
    now: u64,
) -> Result<atlas_fetcher::Report, atlas_fetcher::SyncError> {
    let mut opts = options(src, dir, vec![store.public()]);
    opts.now = Some(now);
    Syncer::new(opts)?.sync(false, &NoProgress).await
}

#[tokio::test]
async fn a_clock_set_back_is_refused_and_small_corrections_are_not() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let t = now();
    store.publish(&[f("mods/a.jar", b"a v1")]);
    sync_at(&srv.url(), &dir, &store, t).await.expect("install");

    // A new build, and a clock two hours behind the time recorded at install.
    store.publish(&[f("mods/a.jar", b"a v2")]);
    let before = snapshot(&dir);
    let err = sync_at(&srv.url(), &dir, &store, t - 2 * 3600)
        .await
        .expect_err("clock went back");
    assert_eq!(err.exit_code(), exit::TRUST);
    let msg = err.to_string();
    assert!(
        msg.contains("clock went backwards") && msg.contains("7200 s behind"),
        "{msg}"
    );
    assert_eq!(snapshot(&dir), before, "nothing changed");

    // An NTP-sized step back is fine.
    let r = sync_at(&srv.url(), &dir, &store, t - CLOCK_SLACK_SECS / 2)
        .await
        .expect("small step");
    assert_eq!(r.exit_code(), exit::UPDATED);
}
