//! A validator collision cannot pin a host to an old build (issue 18 item
//! 3). nginx's and Caddy's ETag is the modification time in whole seconds
//! and the size: a pointer rewritten within the second at the same size
//! keeps its ETag, and the server answers 304 to hosts that hold the old
//! pointer. The stand-in server plays that with `AlwaysNotModified`; the
//! host's clock is the injectable `SyncOptions::now`. A host fetches the
//! pointer in full once its last full fetch is `REVALIDATE_AFTER_SECS` old
//! (docs/FORMAT.md §5), so it is behind for at most that long, and a run
//! with nothing new stays one request.

use atlas_fetcher::sync::REVALIDATE_AFTER_SECS;
use atlas_fetcher::{NoProgress, Outcome, Report, Syncer};
use atlas_testkit::http::{Fault, Request, StaticServer};

use crate::common::*;

fn build(tag: &str) -> Vec<Spec> {
    vec![f("config/a.toml", tag.as_bytes()), f("mods/m.jar", b"a mod")]
}

async fn sync_at(srv: &StaticServer, store: &Store, dir: &std::path::Path, now: u64) -> Report {
    let mut opts = options(&srv.url(), dir, vec![store.public()]);
    opts.now = Some(now);
    Syncer::new(opts)
        .expect("syncer")
        .sync(false, &NoProgress)
        .await
        .expect("sync")
}

fn pointer_requests(srv: &StaticServer) -> Vec<Request> {
    let all = srv.requests();
    srv.reset_requests();
    all.into_iter()
        .filter(|r| r.path == Store::pointer_key())
        .collect()
}

#[tokio::test]
async fn a_pointer_answered_304_after_it_changed_is_fetched_in_full_within_the_bound() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("server");
    let t0 = now();
    store.publish(&build("v1"));
    sync_at(&srv, &store, &dir, t0).await;
    pointer_requests(&srv);

    // The common case: nothing new, one conditional request answered 304.
    let r = sync_at(&srv, &store, &dir, t0 + 60).await;
    assert!(r.not_modified);
    let hits = pointer_requests(&srv);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].status, hits[0].if_none_match.is_some()), (304, true));
    assert_eq!(srv.count(), 0, "and nothing else");

    // A new pointer, which the server hides behind its old ETag.
    store.publish(&build("v2"));
    srv.set_fault(&Store::pointer_key(), Fault::AlwaysNotModified);
    let r = sync_at(&srv, &store, &dir, t0 + 120).await;
    assert_eq!(
        r.outcome,
        Outcome::Current,
        "within the bound the host may be behind"
    );
    assert!(r.not_modified);
    assert_eq!(files(&dir), expected(&build("v1")));
    pointer_requests(&srv);

    // Once the last full fetch is REVALIDATE_AFTER_SECS old: a plain GET.
    let r = sync_at(&srv, &store, &dir, t0 + REVALIDATE_AFTER_SECS).await;
    assert_eq!(r.outcome, Outcome::Updated, "the host caught up");
    assert_eq!(files(&dir), expected(&build("v2")));
    let hits = pointer_requests(&srv);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].status, hits[0].if_none_match.as_deref()), (200, None));

    // And conditional again from there on.
    let r = sync_at(&srv, &store, &dir, t0 + REVALIDATE_AFTER_SECS + 60).await;
    assert!(r.not_modified);
    let hits = pointer_requests(&srv);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].if_none_match.is_some());
}

#[tokio::test]
async fn a_pointer_near_its_expiry_is_fetched_in_full() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("server");
    store.publish(&build("v1"));
    sync_at(&srv, &store, &dir, now()).await;
    let trust: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".atlas/trust.json")).expect("trust.json"))
            .expect("json");
    let expires_at = trust["channels"]["demo/dev"]["expires_at"]
        .as_u64()
        .expect("expiry");
    // A full fetch a while before the expiry (the last one is old by then).
    sync_at(&srv, &store, &dir, expires_at - 1000).await;
    // The creator re-signs the same build with a later expiry; the server
    // keeps answering 304 to the old ETag.
    let (build_id, size) = store.put_build(&build("v1"));
    let mut payload = store.payload(2, build_id, size);
    payload.expires_at += 86_400;
    store.put_pointer(&payload);
    srv.set_fault(&Store::pointer_key(), Fault::AlwaysNotModified);
    pointer_requests(&srv);
    // 500 s after the last full fetch, but within REVALIDATE_AFTER_SECS of
    // the expiry: a full GET finds the new pointer, where a 304 would keep
    // the old one until it expired.
    let r = sync_at(&srv, &store, &dir, expires_at - 500).await;
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(r.version, 2, "the re-signed pointer was accepted");
    let hits = pointer_requests(&srv);
    assert_eq!((hits.len(), hits[0].if_none_match.as_deref()), (1, None));
}
