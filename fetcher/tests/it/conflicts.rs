//! A file the pack never installed, at a path a new build adds (the user's
//! own `server.properties`, a mod they dropped in by hand), is the user's:
//! it follows `--on-modified` like a changed managed file (kept by default,
//! backed up then replaced, or replaced) and is reported as a conflict in the
//! dry run, the report, `--json` and the text output (issue 17 item 3).

use std::path::Path;

use crate::common::*;
use atlas_fetcher::cli::{Cli, run};
use atlas_fetcher::state::{INSTALL_FILE, parse_install};
use atlas_fetcher::{NoProgress, OnModified, Outcome, Report, Syncer, exit};
use atlas_testkit::http::StaticServer;
use clap::Parser as _;
use serde_json::json;

const MINE: &[u8] = b"motd=my own server\n";

fn v1() -> Vec<Spec> {
    vec![f("mods/a.jar", b"mod a v1")]
}

/// v1 plus the pack's own `server.properties`, and a file the user already has identically.
fn v2() -> Vec<Spec> {
    vec![
        f("mods/a.jar", b"mod a v1"),
        f("server.properties", b"motd=the pack's\n"),
        f("mods/same.jar", b"identical bytes"),
    ]
}

/// A server directory with v1 installed, the user's own `server.properties`
/// and a hand-installed copy of `mods/same.jar`; the store has v2.
async fn host(store: &mut Store, srv: &StaticServer, work: &Path) {
    let dir = work.join("server");
    store.publish(&v1());
    sync(&srv.url(), &dir, &store.public()).await.expect("v1");
    std::fs::write(dir.join("server.properties"), MINE).expect("write");
    std::fs::write(dir.join("mods/same.jar"), b"identical bytes").expect("write");
    std::fs::create_dir_all(work.join("sibling")).expect("mkdir");
    std::fs::write(work.join("sibling/x"), b"x").expect("write");
    store.publish(&v2());
}

async fn sync_policy(url: &str, dir: &Path, store: &Store, policy: OnModified, dry_run: bool) -> Report {
    let mut opts = options(url, dir, vec![store.public()]);
    opts.on_modified = policy;
    Syncer::new(opts)
        .expect("options")
        .sync(dry_run, &NoProgress)
        .await
        .expect("sync")
}

fn conflicts(r: &Report) -> serde_json::Value {
    serde_json::to_value(r).expect("json")["files"]["conflicts"].clone()
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).expect(rel)
}

#[tokio::test]
async fn by_default_the_users_file_is_kept_and_reported_as_a_conflict() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    host(&mut store, &srv, work.path()).await;
    let sibling = snapshot(&work.path().join("sibling"));

    let dry = sync_policy(&srv.url(), &dir, &store, OnModified::Keep, true).await;
    let want = json!([{"path": "server.properties", "resolution": "kept"}]);
    assert_eq!(conflicts(&dry), want, "the dry run shows it");
    assert!(dry.files.added.is_empty(), "{:?}", dry.files);

    let r = sync_policy(&srv.url(), &dir, &store, OnModified::Keep, false).await;
    assert_eq!(conflicts(&r), want);
    assert_eq!(read(&dir, "server.properties"), MINE, "never silently replaced");
    assert!(r.backup_dir.is_none());
    // The identical file is simply taken over: nothing to download or report.
    assert_eq!(r.counts.kept, 2);
    assert_eq!(read(&dir, "mods/same.jar"), b"identical bytes");
    assert_eq!(r.bytes_downloaded, 0);
    // Recorded like a managed file the user changed: kept while it differs.
    let p = dir.join(".atlas").join(INSTALL_FILE);
    let install = parse_install(&p, &std::fs::read(&p).expect("read")).expect("parse");
    let rec = install
        .files
        .iter()
        .find(|f| f.path == "server.properties")
        .expect("recorded");
    assert!(rec.modified);
    let again = sync_policy(&srv.url(), &dir, &store, OnModified::Keep, false).await;
    assert_eq!(again.outcome, Outcome::Current);
    assert_eq!(read(&dir, "server.properties"), MINE);
    // Removing their file hands the path to the pack.
    std::fs::remove_file(dir.join("server.properties")).expect("rm");
    sync_policy(&srv.url(), &dir, &store, OnModified::Keep, false).await;
    assert_eq!(read(&dir, "server.properties"), b"motd=the pack's\n");
    assert_eq!(snapshot(&work.path().join("sibling")), sibling);
}

#[tokio::test]
async fn backup_and_replace_policies_take_the_path_and_say_so() {
    for (policy, resolution) in [
        (OnModified::Backup, "backed_up"),
        (OnModified::Replace, "replaced"),
    ] {
        let mut store = Store::new();
        let srv = StaticServer::start(store.root()).expect("server");
        let work = tempfile::tempdir().expect("tmp");
        let dir = work.path().join("server");
        host(&mut store, &srv, work.path()).await;
        let sibling = snapshot(&work.path().join("sibling"));
        let r = sync_policy(&srv.url(), &dir, &store, policy, false).await;
        assert_eq!(
            conflicts(&r),
            json!([{"path": "server.properties", "resolution": resolution}]),
            "{policy:?}"
        );
        assert!(
            r.files.added.is_empty(),
            "not reported as a plain add: {:?}",
            r.files
        );
        assert_eq!(read(&dir, "server.properties"), b"motd=the pack's\n");
        match policy {
            OnModified::Backup => {
                let b = r.backup_dir.as_deref().expect("backed up");
                assert_eq!(read(&dir.join(b), "server.properties"), MINE);
            }
            _ => assert!(r.backup_dir.is_none()),
        }
        assert_eq!(snapshot(&work.path().join("sibling")), sibling);
    }
}

#[tokio::test]
async fn the_cli_names_the_conflict_in_text_and_json() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    host(&mut store, &srv, work.path()).await;
    let keyfile = work.path().join("demo.pub");
    std::fs::write(&keyfile, store.public().to_text()).expect("write");
    // Not `std::process`: waiting on the child would block this runtime, which serves the store.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"))
        .args([
            "sync",
            "--dry-run",
            "--source",
            &srv.url(),
            "--pack",
            PACK,
            "--channel",
            CHANNEL,
        ])
        .arg("--key")
        .arg(&keyfile)
        .arg("--dir")
        .arg(&dir)
        .output()
        .await
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("conflict") && l.contains("server.properties") && l.contains("kept")),
        "{text}"
    );
    let cli = Cli::try_parse_from([
        "atlas-fetcher",
        "sync",
        "--json",
        "--source",
        &srv.url(),
        "--pack",
        PACK,
        "--channel",
        CHANNEL,
        "--key",
        &keyfile.display().to_string(),
        "--dir",
        &dir.display().to_string(),
        "--on-modified",
        "replace",
    ])
    .expect("parse");
    assert_eq!(run(cli).await, exit::UPDATED);
    assert_eq!(read(&dir, "server.properties"), b"motd=the pack's\n");
}
