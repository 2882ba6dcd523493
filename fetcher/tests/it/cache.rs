//! The host-wide blob cache: a second instance takes mods from it without
//! downloading them (hard links), configs are never shared, a damaged cached
//! blob is re-downloaded, and `cache-gc` frees only what no instance uses.
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use crate::common::*;
use atlas_fetcher::cache::BlobCache;
use atlas_fetcher::{NoProgress, Syncer};
use atlas_proto::{Sha256Digest, layout};
use atlas_testkit::http::StaticServer;

fn build() -> Vec<Spec> {
    vec![
        f("mods/a.jar", &[7u8; 40_000]),
        f("resourcepacks/r.zip", &[9u8; 20_000]),
        f("config/a.toml", b"a = 1\n"),
    ]
}

async fn sync_cached(src: &str, dir: &std::path::Path, store: &Store, cache: &std::path::Path) {
    let mut opts = options(src, dir, vec![store.public()]);
    opts.cache = Some(cache.to_owned());
    Syncer::new(opts)
        .expect("options")
        .sync(false, &NoProgress)
        .await
        .expect("sync");
}

fn blob_requests(srv: &StaticServer) -> Vec<String> {
    srv.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("blobs/"))
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn instances_share_mods_through_the_cache_and_gc_frees_only_unused_blobs() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let cache = work.path().join("cache");
    let specs = build();
    store.publish(&specs);

    sync_cached(&srv.url(), &work.path().join("one"), &store, &cache).await;
    assert_eq!(
        blob_requests(&srv).len(),
        3,
        "first instance downloads everything"
    );
    srv.reset_requests();
    sync_cached(&srv.url(), &work.path().join("two"), &store, &cache).await;
    let config_key = layout::blob_key(&Sha256Digest::of(b"a = 1\n"));
    assert_eq!(
        blob_requests(&srv),
        [config_key],
        "the jar and the zip came from the cache"
    );
    assert_eq!(files(&work.path().join("two")), expected(&specs));

    // The jar is one inode in both instances and the cache; the config is not shared.
    let ino = |p: &str| std::fs::metadata(work.path().join(p)).expect("meta").ino();
    assert_eq!(ino("one/mods/a.jar"), ino("two/mods/a.jar"));
    assert_ne!(ino("one/config/a.toml"), ino("two/config/a.toml"));

    // Nothing is free while instances use the blobs.
    let c = BlobCache::open(&cache).expect("open");
    let r = c.gc(0).expect("gc");
    assert_eq!((r.removed, r.in_use), (0, 2));
    std::fs::remove_dir_all(work.path().join("one")).expect("rm");
    std::fs::remove_dir_all(work.path().join("two")).expect("rm");
    let r = c.gc(0).expect("gc");
    assert_eq!((r.removed, r.freed_bytes), (2, 60_000));
}

#[tokio::test]
async fn a_damaged_cached_blob_is_downloaded_again() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let cache = work.path().join("cache");
    let specs = build();
    store.publish(&specs);
    sync_cached(&srv.url(), &work.path().join("one"), &store, &cache).await;
    // Someone edits the jar in place in the first instance: the shared inode
    // (and so the cache entry) changes.
    std::fs::write(work.path().join("one/mods/a.jar"), [8u8; 40_000]).expect("edit in place");
    srv.reset_requests();
    sync_cached(&srv.url(), &work.path().join("two"), &store, &cache).await;
    let jar_key = layout::blob_key(&Sha256Digest::of(&[7u8; 40_000]));
    assert!(
        blob_requests(&srv).contains(&jar_key),
        "the damaged jar was downloaded"
    );
    assert_eq!(files(&work.path().join("two")), expected(&specs));
}

#[tokio::test]
async fn a_cached_blob_another_user_could_change_is_copied_never_linked() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (cache, sibling) = (work.path().join("cache"), work.path().join("sibling"));
    std::fs::create_dir_all(&sibling).expect("mkdir");
    let specs = build();
    store.publish(&specs);
    sync_cached(&srv.url(), &work.path().join("one"), &store, &cache).await;
    // A cache entry that another user owns (or that is writable by others)
    // could be rewritten after it was hashed: a hard link would then change
    // the installed mod too.
    let entry = {
        let hex = Sha256Digest::of(&[7u8; 40_000]).to_hex();
        cache.join("sha256").join(&hex[..2]).join(hex)
    };
    let meta = std::fs::metadata(&entry).expect("cached");
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let before = snapshot(&sibling);
    srv.reset_requests();
    sync_cached(&srv.url(), &work.path().join("two"), &store, &cache).await;
    let jar = std::fs::metadata(work.path().join("two/mods/a.jar")).expect("jar");
    assert_ne!(jar.ino(), meta.ino(), "a copy, not a link to the writable entry");
    assert_eq!(files(&work.path().join("two")), expected(&specs));
    assert_eq!(snapshot(&sibling), before);
}
