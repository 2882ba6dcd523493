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

/// Every file of `.atlas/prefetch/` (the shards' blobs), recursively.
fn prefetched_blobs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir.join(".atlas/prefetch")).expect("prefetch dir") {
        for blob in std::fs::read_dir(shard.expect("shard").path()).expect("shard dir") {
            out.push(blob.expect("blob").path());
        }
    }
    out
}

/// Bytes of the same length as `path`'s, but others.
fn same_size_other_bytes(path: &std::path::Path) -> Vec<u8> {
    let len = std::fs::metadata(path).expect("meta").len() as usize;
    let mut planted = b"planted by the server's user ".repeat(len / 29 + 1);
    planted.truncate(len);
    planted
}

#[tokio::test]
async fn planted_prefetched_blobs_of_the_right_size_are_hashed_at_apply_and_never_installed() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (dir, sibling) = (work.path().join("server"), work.path().join("sibling"));
    std::fs::create_dir_all(&sibling).expect("mkdir");
    std::fs::write(sibling.join("other.txt"), b"another directory").expect("write");
    let key = store.public();
    store.publish(&build(1));
    sync(&srv.url(), &dir, &key).await.expect("v1");
    store.publish(&build(2));
    let before = snapshot(&sibling);

    let syncer = Syncer::new(options(&srv.url(), &dir, vec![key.clone()])).expect("syncer");
    let check = syncer.check(&NoProgress).await.expect("check");
    let plan = syncer.plan(&check, &NoProgress).expect("plan");
    syncer
        .prefetch(&check, &plan, &NoProgress)
        .await
        .expect("prefetch");
    // The server's user swaps every prefetched blob for bytes of the same size.
    let blobs = prefetched_blobs(&dir);
    assert_eq!(blobs.len(), 21);
    for b in &blobs {
        let planted = same_size_other_bytes(b);
        std::fs::remove_file(b).expect("rm");
        std::fs::write(b, planted).expect("plant");
    }
    srv.reset_requests();
    let report = syncer.apply(&check, &plan, &NoProgress).await.expect("apply");
    assert_eq!(
        files(&dir),
        expected(&build(2)),
        "only verified bytes are installed"
    );
    assert_eq!(
        report.bytes_downloaded,
        plan.download_bytes(),
        "every planted blob was downloaded again"
    );
    let v = atlas_fetcher::inspect::verify(&dir, 2).expect("verify");
    assert!(v.clean(), "{v:?}");
    assert_eq!(snapshot(&sibling), before);
}

#[tokio::test]
async fn a_blob_planted_in_the_prefetch_directory_before_a_plain_sync_is_not_installed() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (dir, sibling) = (work.path().join("server"), work.path().join("sibling"));
    std::fs::create_dir_all(&sibling).expect("mkdir");
    let key = store.public();
    store.publish(&build(1));
    sync(&srv.url(), &dir, &key).await.expect("v1");
    let next = build(2);
    store.publish(&next);
    // Nothing was prefetched; the server's user plants one blob the next build needs.
    let victim = &next[0];
    let hex = atlas_proto::Sha256Digest::of(&victim.content).to_hex();
    let planted = dir.join(".atlas/prefetch").join(&hex[..1]).join(&hex);
    std::fs::create_dir_all(planted.parent().expect("shard")).expect("mkdir");
    let mut evil = b"evil ".repeat(victim.content.len());
    evil.truncate(victim.content.len());
    std::fs::write(&planted, evil).expect("plant");
    let before = snapshot(&sibling);
    let r = sync(&srv.url(), &dir, &key).await.expect("v2");
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(files(&dir), expected(&next));
    let r = sync(&srv.url(), &dir, &key).await.expect("again");
    assert_eq!(r.outcome, Outcome::Current);
    assert!(atlas_fetcher::inspect::verify(&dir, 2).expect("verify").clean());
    assert_eq!(snapshot(&sibling), before);
}
