//! `rollback`: back to the build installed before, from the kept manifest and
//! the store's blobs; the build rolled back from is held until the channel
//! moves on; the kept manifests are bounded and checked against their ids.

use crate::common::*;
use atlas_fetcher::cli::{Cli, run};
use atlas_fetcher::history::{self, KEEP_BUILDS};
use atlas_fetcher::state::{INSTALL_FILE, StatePaths, parse_install};
use atlas_fetcher::{NoProgress, Outcome, SyncOptions, Syncer, exit};
use atlas_testkit::http::StaticServer;
use clap::Parser as _;

fn build(n: u32) -> Vec<Spec> {
    let mut v = vec![
        f("mods/core.jar", format!("core v{n}").as_bytes()),
        f("config/core.toml", format!("version = {n}\n").as_bytes()),
    ];
    if n == 1 {
        v.push(f("mods/only-in-v1.jar", b"dropped by v2"));
    }
    v
}

async fn rollback(
    source: &str,
    dir: &std::path::Path,
) -> Result<atlas_fetcher::Report, atlas_fetcher::SyncError> {
    let opts = SyncOptions::new(source, "x", "x", Vec::new(), dir);
    Syncer::for_rollback(opts)?.rollback(false, &NoProgress).await
}

fn install_json(dir: &std::path::Path) -> atlas_fetcher::state::InstallState {
    let bytes = std::fs::read(dir.join(".atlas").join(INSTALL_FILE)).expect("install.json");
    parse_install(&dir.join(".atlas").join(INSTALL_FILE), &bytes).expect("parse")
}

#[tokio::test]
async fn rollback_restores_the_previous_build_and_holds_until_the_channel_moves() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("level.dat"), b"world").expect("write");
    let key = store.public();
    let b1 = store.publish(&build(1));
    sync(&srv.url(), &dir, &key).await.expect("v1");
    let b2 = store.publish(&build(2));
    sync(&srv.url(), &dir, &key).await.expect("v2");

    // Back to v1: the file v2 dropped comes back from the store.
    let r = rollback(&srv.url(), &dir).await.expect("rollback");
    assert_eq!(
        (r.outcome, r.build.as_str()),
        (Outcome::Updated, b1.to_hex().as_str())
    );
    let mut want = expected(&build(1));
    want.insert("level.dat".into(), b"world".to_vec());
    assert_eq!(files(&dir), want);
    let i = install_json(&dir);
    assert_eq!((i.build.0, i.held.map(|h| h.0)), (b1, Some(b2)));

    // The channel still names v2: syncs stay at v1 and say so.
    let r = sync(&srv.url(), &dir, &key).await.expect("held");
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(r.held_at.as_deref(), Some(b1.to_hex().as_str()));
    assert!(r.summary().contains("rolled back from build"), "{}", r.summary());
    assert_eq!(files(&dir), want);

    // A new build on the channel is installed as usual, and the hold ends.
    let b3 = store.publish(&build(3));
    let r = sync(&srv.url(), &dir, &key).await.expect("v3");
    assert_eq!(
        (r.outcome, r.build.as_str()),
        (Outcome::Updated, b3.to_hex().as_str())
    );
    let i = install_json(&dir);
    assert_eq!(i.held, None);
    assert_eq!(
        i.history.first().map(|b| b.build.0),
        Some(b1),
        "v1 was the installed build"
    );
    let mut want = expected(&build(3));
    want.insert("level.dat".into(), b"world".to_vec());
    assert_eq!(files(&dir), want);
}

#[tokio::test]
async fn nothing_to_roll_back_to_is_a_clear_error() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let err = rollback(&srv.url(), &dir).await.expect_err("nothing installed");
    assert!(err.to_string().contains("nothing is installed in"), "{err}");
    store.publish(&build(1));
    sync(&srv.url(), &dir, &store.public()).await.expect("v1");
    let before = snapshot(&dir);
    let err = rollback(&srv.url(), &dir).await.expect_err("no history");
    assert_eq!(err.exit_code(), exit::LOCAL);
    assert!(err.to_string().contains("no earlier build is kept here"), "{err}");
    assert_eq!(snapshot(&dir), before);
}

#[tokio::test]
async fn a_tampered_kept_manifest_is_refused_and_nothing_changes() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let b1 = store.publish(&build(1));
    sync(&srv.url(), &dir, &store.public()).await.expect("v1");
    store.publish(&build(2));
    sync(&srv.url(), &dir, &store.public()).await.expect("v2");
    let kept = history::manifest_path(&StatePaths::new(&dir), &b1);
    let mut bytes = std::fs::read(&kept).expect("kept manifest");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&kept, bytes).expect("tamper");
    let before = files(&dir);
    let err = rollback(&srv.url(), &dir).await.expect_err("tampered");
    assert_eq!(err.exit_code(), exit::INTEGRITY);
    assert!(err.to_string().contains(&b1.to_hex()), "{err}");
    assert_eq!(files(&dir), before);
}

#[tokio::test]
async fn kept_builds_are_bounded_and_the_cli_rolls_back_twice() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let mut ids = Vec::new();
    for n in 1..=6 {
        ids.push(store.publish(&build(n)));
        sync(&srv.url(), &dir, &store.public()).await.expect("sync");
    }
    let kept = std::fs::read_dir(dir.join(".atlas/builds"))
        .expect("builds")
        .count();
    assert_eq!(
        kept,
        KEEP_BUILDS + 1,
        "the installed build and {KEEP_BUILDS} before it"
    );
    assert_eq!(install_json(&dir).history.len(), KEEP_BUILDS);
    for want in [ids[4], ids[3]] {
        let cli = Cli::try_parse_from([
            "atlas-fetcher",
            "rollback",
            "--dir",
            &dir.display().to_string(),
            "--source",
            &srv.url(),
        ])
        .expect("parse");
        assert_eq!(run(cli).await, exit::UPDATED);
        assert_eq!(install_json(&dir).build.0, want);
    }
    assert_eq!(files(&dir), expected(&build(4)), "ids[3] is build 4");
}
