//! `status` and `verify` (with `--repair`) against real installs.

use std::path::Path;

use crate::common::*;
use atlas_fetcher::cli::{Cli, run};
use atlas_fetcher::inspect::{status, verify};
use atlas_fetcher::state::{INSTALL_FILE, parse_install};
use atlas_fetcher::{InstallSide, exit};
use atlas_testkit::http::StaticServer;
use clap::Parser as _;

fn v1() -> Vec<Spec> {
    vec![
        f("mods/a.jar", b"mod a v1"),
        f("mods/b.jar", b"mod b v1"),
        f("config/c.toml", b"x = 1\n"),
        f("server.properties", b"motd=hi\n"),
    ]
}

fn cli(args: &[&str]) -> Cli {
    let mut a = vec!["atlas-fetcher"];
    a.extend_from_slice(args);
    Cli::try_parse_from(a).expect("parse")
}

#[tokio::test]
async fn status_shows_the_install() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let s = status(&dir).expect("status");
    assert!(!s.installed);
    assert_eq!(s.files, 0);

    let build = store.publish(&v1());
    sync(&srv.url(), &dir, &store.public()).await.expect("install");
    let s = status(&dir).expect("status");
    assert!(s.installed);
    assert_eq!(s.pack.as_deref(), Some(PACK));
    assert_eq!(s.channel.as_deref(), Some(CHANNEL));
    assert_eq!(s.version, Some(1));
    assert_eq!(s.build, Some(build.to_hex()));
    assert_eq!(s.side, Some(InstallSide::Server));
    assert_eq!(s.files, 4);
    assert!(s.pointer_expires_at.is_some_and(|t| t > now()));
    assert!(!s.journal_pending);
    let d = dir.display().to_string();
    assert_eq!(run(cli(&["status", "--dir", &d, "--json"])).await, exit::UPDATED);
    assert_eq!(run(cli(&["status", "--dir", &d])).await, exit::UPDATED);
}

/// Rewrites a file in place with same-size content and its old mtime: drift
/// only a re-hash can see (bit rot, or an editor that keeps mtimes).
fn rot(path: &Path, content: &[u8]) {
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).expect("mtime");
    std::fs::write(path, content).expect("write");
    let f = std::fs::File::options().write(true).open(path).expect("open");
    f.set_modified(mtime).expect("set mtime");
}

#[tokio::test]
async fn verify_finds_drift_and_repair_restores_the_build() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("srv");
    let keyfile = work.path().join("demo.pub");
    std::fs::write(&keyfile, store.public().to_text()).expect("key");
    let specs = v1();
    store.publish(&specs);
    sync(&srv.url(), &dir, &store.public()).await.expect("install");
    std::fs::write(dir.join("my-notes.txt"), b"not managed").expect("write");

    let v = verify(&dir, 3).expect("verify");
    assert!(v.clean(), "{v:?}");
    assert_eq!(v.checked, 4);
    assert_eq!(v.bytes, specs.iter().map(|s| s.content.len() as u64).sum::<u64>());
    let d = dir.display().to_string();
    assert_eq!(run(cli(&["verify", "--dir", &d])).await, exit::UPDATED);

    rot(&dir.join("mods/b.jar"), b"mod b XX");
    std::fs::remove_file(dir.join("config/c.toml")).expect("rm");
    let v = verify(&dir, 2).expect("verify");
    assert_eq!(v.modified, ["mods/b.jar"]);
    assert_eq!(v.missing, ["config/c.toml"]);
    assert_eq!(run(cli(&["verify", "--dir", &d, "--json"])).await, exit::DRIFT);
    // The size and mtime are as recorded, so a plain sync sees nothing to do.
    sync(&srv.url(), &dir, &store.public()).await.expect("sync");
    assert_eq!(verify(&dir, 1).expect("verify").modified, ["mods/b.jar"]);

    let url = srv.url();
    let key = keyfile.display().to_string();
    let repair = ["verify", "--dir", &d, "--repair", "--source", &url, "--key", &key];
    assert_eq!(run(cli(&repair)).await, exit::UPDATED);
    assert_eq!(
        files(&dir).remove("mods/b.jar").as_deref(),
        Some(&b"mod b v1"[..])
    );
    let mut want = expected(&specs);
    want.insert("my-notes.txt".into(), b"not managed".to_vec());
    assert_eq!(files(&dir), want);
    assert!(verify(&dir, 4).expect("verify").clean());
    let p = dir.join(".atlas").join(INSTALL_FILE);
    let install = parse_install(&p, &std::fs::read(&p).expect("read")).expect("parse");
    assert!(install.files.iter().all(|f| !f.modified && f.mtime_ns.is_some()));
    assert_eq!(
        run(cli(&[
            "verify", "--dir", &d, "--repair", "--source", &url, "--key", &key
        ]))
        .await,
        exit::UPDATED
    );
}

#[tokio::test]
async fn verify_without_install_is_a_local_error_and_repair_needs_a_source() {
    let work = tempfile::tempdir().expect("tmp");
    let d = work.path().display().to_string();
    assert_eq!(run(cli(&["verify", "--dir", &d])).await, exit::LOCAL);
    let err = Cli::try_parse_from(["atlas-fetcher", "verify", "--dir", &d, "--repair"]).expect_err("usage");
    assert_eq!(err.exit_code(), exit::USAGE);
}
