//! Files the user changed: detected by size and mtime, confirmed by hash, and
//! handled by `--on-modified keep|backup|replace`; dropped files removed only
//! if unchanged.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use crate::common::*;
use atlas_fetcher::state::{INSTALL_FILE, InstallState, parse_install};
use atlas_fetcher::{NoProgress, OnModified, Outcome, Report, Syncer};
use atlas_proto::PublicKey;
use atlas_testkit::http::StaticServer;

fn v1() -> Vec<Spec> {
    vec![
        f("mods/a.jar", b"mod a v1"),
        f("config/c.toml", b"x = 1\n"),
        f("config/gone.toml", b"old = 1\n"),
    ]
}

async fn sync_policy(url: &str, dir: &Path, key: &PublicKey, policy: OnModified) -> Report {
    let mut opts = options(url, dir, vec![key.clone()]);
    opts.on_modified = policy;
    Syncer::new(opts)
        .expect("options")
        .sync(false, &NoProgress)
        .await
        .expect("sync")
}

fn install(dir: &Path) -> InstallState {
    let p = dir.join(".atlas").join(INSTALL_FILE);
    parse_install(&p, &std::fs::read(&p).expect("install.json")).expect("parse")
}

/// Rewrites a file with content of the same size and an mtime far in the
/// past, so only the mtime (then the hash) can tell it changed.
fn edit_same_size(path: &Path, content: &[u8]) {
    std::fs::write(path, content).expect("write");
    let f = std::fs::File::options().write(true).open(path).expect("open");
    f.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000))
        .expect("set mtime");
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).expect(rel)
}

#[tokio::test]
async fn install_records_size_and_mtime() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let key = store.public();
    store.publish(&[f("a", b"same"), f("b", b"same"), f("c", b"other")]);
    sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    for rec in install(&dir).files {
        let meta = std::fs::metadata(dir.join(&rec.path)).expect("meta");
        assert_eq!(rec.size, meta.len());
        assert_eq!(
            rec.mtime_ns,
            atlas_fetcher::durable::mtime_ns(&meta),
            "{}",
            rec.path
        );
        assert!(!rec.modified);
    }
}

#[tokio::test]
async fn keep_policy_leaves_a_changed_file_and_stops_updating_it() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let key = store.public();
    store.publish(&v1());
    sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;

    // Same size, different content: found through the mtime, confirmed by hash.
    edit_same_size(&dir.join("config/c.toml"), b"x = 9\n");
    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(r.files.modified, ["config/c.toml"]);
    assert_eq!(r.counts.modified, 1);
    assert_eq!(read(&dir, "config/c.toml"), b"x = 9\n");
    let rec = install(&dir);
    let c = rec.files.iter().find(|f| f.path == "config/c.toml").expect("c");
    assert!(c.modified);

    // A touched but unchanged file is not a change (hash confirms), and its new mtime is recorded.
    edit_same_size(&dir.join("mods/a.jar"), b"mod a v1");
    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(r.files.modified, ["config/c.toml"]);
    let a = install(&dir)
        .files
        .into_iter()
        .find(|f| f.path == "mods/a.jar")
        .expect("a");
    assert!(!a.modified);
    assert_eq!(a.mtime_ns, Some(1_000_000 * 1_000_000_000));

    // Nothing new: the pointer answers 304 and nothing is read again.
    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    assert!(r.not_modified, "kept changes do not defeat the 304 shortcut");

    // A new build changing that file still leaves the user's version.
    let mut specs2 = v1();
    specs2[0].content = b"mod a v2".to_vec();
    specs2[1].content = b"x = 2\n".to_vec();
    store.publish(&specs2);
    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.files.updated, ["mods/a.jar"]);
    assert_eq!(r.files.modified, ["config/c.toml"]);
    assert_eq!(read(&dir, "config/c.toml"), b"x = 9\n");
    assert_eq!(read(&dir, "mods/a.jar"), b"mod a v2");

    // Restored to what was installed: updated again on the next run.
    std::fs::write(dir.join("config/c.toml"), b"x = 1\n").expect("restore");
    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    assert_eq!(r.files.updated, ["config/c.toml"]);
    assert_eq!(read(&dir, "config/c.toml"), b"x = 2\n");
    assert!(install(&dir).files.iter().all(|f| !f.modified));
}

#[tokio::test]
async fn backup_policy_copies_the_change_then_replaces_it() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let key = store.public();
    store.publish(&v1());
    sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    std::fs::write(dir.join("config/c.toml"), b"x = 1000\n").expect("edit");

    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Backup).await;
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.files.replaced_modified, ["config/c.toml"]);
    assert_eq!(read(&dir, "config/c.toml"), b"x = 1\n");
    let backup = r.backup_dir.expect("backup dir");
    assert!(backup.starts_with(".atlas/backups/"), "{backup}");
    assert_eq!(read(&dir, &format!("{backup}/config/c.toml")), b"x = 1000\n");
    assert_eq!(files(&dir), expected(&v1()), "managed files are the build's");
    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Backup).await;
    assert_eq!(r.outcome, Outcome::Current);
}

#[tokio::test]
async fn replace_policy_overwrites_the_change() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let key = store.public();
    store.publish(&v1());
    sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    edit_same_size(&dir.join("mods/a.jar"), b"mod a XX");

    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Replace).await;
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.files.replaced_modified, ["mods/a.jar"]);
    assert_eq!(r.backup_dir, None);
    assert_eq!(files(&dir), expected(&v1()));
    assert!(!dir.join(".atlas/backups").exists());
}

#[tokio::test]
async fn a_changed_file_the_pack_drops_is_kept_and_reported() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let key = store.public();
    store.publish(&v1());
    sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    std::fs::write(dir.join("config/gone.toml"), b"old = 2, mine\n").expect("edit");
    store.publish(&[f("mods/a.jar", b"mod a v1")]);

    // Whatever the policy, a dropped file is removed only if unchanged.
    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Replace).await;
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.files.removed, ["config/c.toml"]);
    assert_eq!(r.files.dropped_modified, ["config/gone.toml"]);
    assert_eq!(read(&dir, "config/gone.toml"), b"old = 2, mine\n");
    let paths: Vec<String> = install(&dir).files.into_iter().map(|f| f.path).collect();
    assert_eq!(paths, ["mods/a.jar"], "no longer managed");
}

#[tokio::test]
async fn older_install_state_without_mtime_is_hashed() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let key = store.public();
    store.publish(&v1());
    sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    // Write install.json as an older fetcher did (no mtime_ns).
    let p = dir.join(".atlas").join(INSTALL_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
    for f in v["files"].as_array_mut().expect("files") {
        f.as_object_mut().expect("object").remove("mtime_ns");
    }
    std::fs::write(&p, serde_json::to_vec(&v).expect("json")).expect("write");
    std::fs::write(dir.join("mods/a.jar"), b"mod a XX").expect("same size edit");

    let r = sync_policy(&srv.url(), &dir, &key, OnModified::Keep).await;
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(r.files.modified, ["mods/a.jar"]);
    let rec = install(&dir);
    assert!(
        rec.files.iter().all(|f| f.modified || f.mtime_ns.is_some()),
        "unchanged files get their mtime recorded"
    );
}
