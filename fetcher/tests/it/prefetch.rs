//! `Syncer::prefetch`: a build's blobs downloaded and verified ahead of the
//! apply (a runner does it while the server still runs); the apply then
//! makes no blob request and leaves no prefetched files behind.

use crate::common::*;
use atlas_fetcher::{CheckStatus, NoProgress, Outcome, Syncer};
use atlas_testkit::http::StaticServer;

fn build(n: u32) -> Vec<Spec> {
    let mut v: Vec<Spec> = (0..20)
        .map(|i| f(&format!("mods/m{i}.jar"), format!("mod {i} build {n}").as_bytes()))
        .collect();
    v.push(f("config/a.toml", format!("a = {n}\n").as_bytes()));
    v
}

#[tokio::test]
async fn apply_after_prefetch_downloads_nothing_and_cleans_up() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let key = store.public();
    store.publish(&build(1));
    sync(&srv.url(), &dir, &key).await.expect("v1");
    store.publish(&build(2));

    let syncer = Syncer::new(options(&srv.url(), &dir, vec![key.clone()])).expect("syncer");
    let check = syncer.check(&NoProgress).await.expect("check");
    assert_eq!(check.status, CheckStatus::Changed);
    let plan = syncer.plan(&check, &NoProgress).expect("plan");
    let pre = syncer
        .prefetch(&check, &plan, &NoProgress)
        .await
        .expect("prefetch");
    assert_eq!(pre.blobs, 21);
    assert!(pre.bytes_downloaded > 0);
    // Installed files are untouched until the apply.
    assert_eq!(files(&dir), expected(&build(1)));
    // A second prefetch (an interrupted one resumed) downloads nothing more.
    let again = syncer
        .prefetch(&check, &plan, &NoProgress)
        .await
        .expect("prefetch again");
    assert_eq!((again.blobs, again.bytes_downloaded), (21, 0));

    srv.reset_requests();
    let report = syncer.apply(&check, &plan, &NoProgress).await.expect("apply");
    assert_eq!(report.outcome, Outcome::Updated);
    assert_eq!(report.bytes_downloaded, 0);
    let blob_requests: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("blobs/"))
        .collect();
    assert!(blob_requests.is_empty(), "apply fetched blobs: {blob_requests:?}");
    assert_eq!(files(&dir), expected(&build(2)));
    assert!(
        !dir.join(".atlas/prefetch").exists(),
        "prefetched blobs left behind"
    );
}

#[tokio::test]
async fn a_damaged_prefetched_blob_is_downloaded_again() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let key = store.public();
    store.publish(&build(1));
    sync(&srv.url(), &dir, &key).await.expect("v1");
    store.publish(&build(2));
    let syncer = Syncer::new(options(&srv.url(), &dir, vec![key])).expect("syncer");
    let check = syncer.check(&NoProgress).await.expect("check");
    let plan = syncer.plan(&check, &NoProgress).expect("plan");
    syncer
        .prefetch(&check, &plan, &NoProgress)
        .await
        .expect("prefetch");
    // Truncate one prefetched blob: its size no longer matches, so the apply downloads it.
    // Blobs sit in 16 shards: `.atlas/prefetch/<first hex digit>/<hex>`.
    let shard = std::fs::read_dir(dir.join(".atlas/prefetch"))
        .expect("prefetch dir")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("a shard");
    let victim = std::fs::read_dir(&shard)
        .expect("shard dir")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("a prefetched blob");
    assert_eq!(
        victim.file_name().and_then(|n| n.to_str()).map(|n| &n[..1]),
        shard.file_name().and_then(|n| n.to_str())
    );
    std::fs::write(&victim, b"x").expect("truncate");
    let report = syncer.apply(&check, &plan, &NoProgress).await.expect("apply");
    assert!(report.bytes_downloaded > 0);
    assert_eq!(files(&dir), expected(&build(2)));
}
