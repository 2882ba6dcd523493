//! End-to-end syncs over real loopback HTTP and from local directories.

use crate::common::*;
use atlas_fetcher::cli::{Cli, run};
use atlas_fetcher::state::{INSTALL_FILE, TRUST_FILE, parse_install, parse_trust};
use atlas_fetcher::{InstallSide, Outcome, exit};
use atlas_proto::layout;
use atlas_proto::v1::Side;
use atlas_testkit::http::StaticServer;
use clap::Parser as _;

fn v1() -> Vec<Spec> {
    vec![
        f("mods/a.jar", b"mod a v1"),
        f("mods/b.jar", b"mod b v1"),
        f("config/deep/b.toml", b"x = 1\n"),
        f("server.properties", b"motd=hi\n"),
    ]
}

#[tokio::test]
async fn http_install_update_then_not_modified() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let key = store.public();

    // 1. fresh install into a directory that does not exist yet.
    let specs = v1();
    let b1 = store.publish(&specs);
    let r = sync(&srv.url(), &dir, &key).await.expect("install");
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.exit_code(), exit::UPDATED);
    assert_eq!(r.build, b1.to_hex());
    assert_eq!((r.counts.added, r.counts.removed), (4, 0));
    assert_eq!(files(&dir), expected(&specs));
    assert!(!dir.join(".atlas/staging").exists());
    let install = parse_install(
        &dir.join(".atlas").join(INSTALL_FILE),
        &std::fs::read(dir.join(".atlas").join(INSTALL_FILE)).expect("install.json"),
    )
    .expect("parse");
    assert_eq!(
        (install.version, install.build.0, install.files.len()),
        (1, b1, 4)
    );

    // 2. a second build changing one file: pointer + manifest + one blob.
    let mut specs2 = specs.clone();
    specs2[0].content = b"mod a v2".to_vec();
    let b2 = store.publish(&specs2);
    srv.reset_requests();
    let r = sync(&srv.url(), &dir, &key).await.expect("update");
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.files.updated, ["mods/a.jar"]);
    assert_eq!(r.bytes_downloaded, 8);
    assert_eq!(files(&dir), expected(&specs2));
    let paths: Vec<String> = srv.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            Store::pointer_key(),
            layout::manifest_key(PACK, &b2),
            layout::blob_key(&atlas_proto::Sha256Digest::of(b"mod a v2")),
        ]
    );
    assert!(
        srv.requests()[0].if_none_match.is_some(),
        "pointer fetched conditionally"
    );

    // 3. nothing changed: one conditional request, 304, nothing written.
    let before = snapshot(&dir);
    srv.reset_requests();
    let r = sync(&srv.url(), &dir, &key).await.expect("current");
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(r.exit_code(), exit::CURRENT);
    assert!(r.not_modified);
    assert_eq!(r.version, 2);
    let log = srv.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].status, 304);
    assert_eq!(snapshot(&dir), before, "a current sync writes nothing");
}

#[tokio::test]
async fn http_under_a_url_prefix_and_promote_updates_only_trust() {
    let mut store = Store::new();
    let srv = StaticServer::start_with_prefix(store.root(), "bucket/prefix").expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    let key = store.public();
    let specs = v1();
    let b1 = store.publish(&specs);
    let url = srv.url().trim_end_matches('/').to_owned();
    sync(&url, dir.path(), &key).await.expect("install");
    assert_eq!(files(dir.path()), expected(&specs));

    // Re-sign the same build at a new version (a promote): only trust.json changes.
    store.publish(&specs);
    let before = snapshot(dir.path());
    let r = sync(&url, dir.path(), &key).await.expect("same build");
    assert_eq!(
        (r.outcome, r.version, r.build),
        (Outcome::Current, 2, b1.to_hex())
    );
    let after = snapshot(dir.path());
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, e)| before.get(*p) != Some(e) && !e.dir)
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(changed, [std::path::PathBuf::from(".atlas").join(TRUST_FILE)]);
    let trust_path = dir.path().join(".atlas").join(TRUST_FILE);
    let trust = parse_trust(&trust_path, &std::fs::read(&trust_path).expect("read")).expect("parse");
    assert_eq!(trust.channels["demo/dev"].version, 2);

    // And then it is answered with a 304.
    srv.reset_requests();
    let r = sync(&url, dir.path(), &key).await.expect("304");
    assert!(r.not_modified);
    assert_eq!(srv.count(), 1);
}

#[tokio::test]
async fn unmanaged_files_survive_and_dropped_files_are_removed() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    let key = store.public();
    let d = dir.path();
    std::fs::create_dir_all(d.join("world")).expect("mkdir");
    std::fs::write(d.join("world/level.dat"), b"my world").expect("write");
    std::fs::write(d.join("my-notes.txt"), b"notes").expect("write");

    store.publish(&v1());
    sync(&srv.url(), d, &key).await.expect("install");
    std::fs::write(d.join("mods/user-added.jar"), b"mine").expect("write");

    let specs2 = vec![f("mods/a.jar", b"mod a v1"), f("server.properties", b"motd=hi\n")];
    store.publish(&specs2);
    let r = sync(&srv.url(), d, &key).await.expect("update");
    assert_eq!(r.files.removed, ["config/deep/b.toml", "mods/b.jar"]);
    assert_eq!(r.counts.kept, 2);
    assert!(!d.join("mods/b.jar").exists());
    assert!(!d.join("config").exists(), "directories left empty are removed");
    assert_eq!(
        std::fs::read(d.join("world/level.dat")).expect("world"),
        b"my world"
    );
    assert_eq!(std::fs::read(d.join("my-notes.txt")).expect("notes"), b"notes");
    assert_eq!(
        std::fs::read(d.join("mods/user-added.jar")).expect("user mod"),
        b"mine"
    );

    // A deleted managed file is repaired on the next run (no 304 shortcut).
    std::fs::remove_file(d.join("mods/a.jar")).expect("rm");
    let r = sync(&srv.url(), d, &key).await.expect("repair");
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.files.repaired, ["mods/a.jar"]);
    assert_eq!(std::fs::read(d.join("mods/a.jar")).expect("a"), b"mod a v1");
}

#[tokio::test]
async fn file_source_works_the_same() {
    let mut store = Store::new();
    let key = store.public();
    for source in [store.file_url(), store.root().display().to_string()] {
        let dir = tempfile::tempdir().expect("tmp");
        let specs = v1();
        store.publish(&specs);
        let r = sync(&source, dir.path(), &key).await.expect("install");
        assert_eq!(r.outcome, Outcome::Updated);
        assert_eq!(files(dir.path()), expected(&specs));

        let mut specs2 = specs.clone();
        specs2[1].content = b"mod b v2, longer".to_vec();
        store.publish(&specs2);
        let r = sync(&source, dir.path(), &key).await.expect("update");
        assert_eq!(r.files.updated, ["mods/b.jar"]);
        assert_eq!(files(dir.path()), expected(&specs2));

        let before = snapshot(dir.path());
        let r = sync(&source, dir.path(), &key).await.expect("current");
        assert_eq!(r.outcome, Outcome::Current);
        assert_eq!(snapshot(dir.path()), before);
    }
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let key = store.public();
    let dir = work.path().join("fresh");
    std::fs::create_dir(&dir).expect("mkdir");
    store.publish(&v1());

    let r = sync_with(&srv.url(), &dir, vec![key.clone()], InstallSide::Server, true)
        .await
        .expect("dry run");
    assert_eq!(
        (r.outcome, r.dry_run, r.counts.added),
        (Outcome::WouldUpdate, true, 4)
    );
    assert_eq!(
        r.bytes_planned,
        v1().iter().map(|s| s.content.len() as u64).sum::<u64>()
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("ls").count(),
        0,
        "no .atlas, no staging"
    );
    assert_eq!(srv.count(), 2, "pointer and manifest only: {:?}", srv.requests());

    sync(&srv.url(), &dir, &key).await.expect("install");
    let mut specs2 = v1();
    specs2.pop();
    specs2[0].content = b"changed".to_vec();
    store.publish(&specs2);
    let before = snapshot(&dir);
    let r = sync_with(&srv.url(), &dir, vec![key.clone()], InstallSide::Server, true)
        .await
        .expect("dry run");
    assert_eq!(r.files.updated, ["mods/a.jar"]);
    assert_eq!(r.files.removed, ["server.properties"]);
    assert_eq!(snapshot(&dir), before);
}

#[tokio::test]
async fn sides_select_files() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let key = store.public();
    let mut optional_on = f("mods/opt-on.jar", b"on");
    optional_on.optional = true;
    optional_on.default_enabled = true;
    let mut optional_off = f("mods/opt-off.jar", b"off");
    optional_off.optional = true;
    let specs = vec![
        f("mods/common.jar", b"common"),
        sided("mods/client-only.jar", b"client", Side::Client),
        sided("mods/server-only.jar", b"server", Side::Server),
        optional_on,
        optional_off,
    ];
    store.publish(&specs);

    let server = tempfile::tempdir().expect("tmp");
    sync_with(
        &srv.url(),
        server.path(),
        vec![key.clone()],
        InstallSide::Server,
        false,
    )
    .await
    .expect("server");
    let got: Vec<String> = files(server.path()).into_keys().collect();
    assert_eq!(
        got,
        ["mods/common.jar", "mods/opt-on.jar", "mods/server-only.jar"]
    );

    let client = tempfile::tempdir().expect("tmp");
    sync_with(
        &srv.url(),
        client.path(),
        vec![key.clone()],
        InstallSide::Client,
        false,
    )
    .await
    .expect("client");
    let got: Vec<String> = files(client.path()).into_keys().collect();
    assert_eq!(
        got,
        ["mods/client-only.jar", "mods/common.jar", "mods/opt-on.jar"]
    );

    // Switching a directory's side swaps the side-specific files.
    let r = sync_with(
        &srv.url(),
        server.path(),
        vec![key.clone()],
        InstallSide::Client,
        false,
    )
    .await
    .expect("switch");
    assert_eq!(r.files.added, ["mods/client-only.jar"]);
    assert_eq!(r.files.removed, ["mods/server-only.jar"]);
}

#[tokio::test]
async fn shared_blobs_and_executable_modes() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    let mut run_sh = f("run.sh", b"#!/bin/sh\necho hi\n");
    run_sh.executable = true;
    let specs = vec![f("a/same.txt", b"same"), f("b/same.txt", b"same"), run_sh];
    store.publish(&specs);
    let r = sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect("install");
    assert_eq!(r.counts.blobs, 2);
    let blob_requests = srv
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("blobs/"))
        .count();
    assert_eq!(blob_requests, 2, "identical content downloaded once");
    assert_eq!(files(dir.path()), expected(&specs));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("run.sh"), 0o755);
        assert_eq!(mode("a/same.txt"), 0o644);
    }
}

#[tokio::test]
async fn cli_runs_with_key_file_and_json() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    let keyfile = store.root().join("demo.pub");
    std::fs::write(&keyfile, format!("# pack key\n{}\n", store.public().to_text())).expect("write");
    store.publish(&v1());
    let args = |extra: &[&str]| {
        let mut a = vec![
            "atlas-fetcher".to_owned(),
            "sync".into(),
            "--source".into(),
            srv.url(),
            "--pack".into(),
            PACK.into(),
            "--channel".into(),
            CHANNEL.into(),
            "--key".into(),
            keyfile.display().to_string(),
            "--dir".into(),
            dir.path().display().to_string(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        Cli::try_parse_from(a).expect("parse")
    };
    assert_eq!(run(args(&["--json"])).await, exit::UPDATED);
    assert_eq!(run(args(&[])).await, exit::CURRENT);
    let mut bad_pack = args(&[]);
    let atlas_fetcher::cli::Command::Sync(a) = &mut bad_pack.command else {
        panic!("sync expected")
    };
    a.pack = Some("Bad Pack".into());
    assert_eq!(run(bad_pack).await, exit::USAGE);
    let mut bad_key = args(&[]);
    let atlas_fetcher::cli::Command::Sync(a) = &mut bad_key.command else {
        panic!("sync expected")
    };
    a.keys = vec!["ed25519:AAAA".into()];
    assert_eq!(run(bad_key).await, exit::USAGE);
}

#[tokio::test]
async fn changing_the_trusted_keys_revalidates_the_pointer() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    store.publish(&v1());
    let key = store.public();
    sync(&srv.url(), dir.path(), &key).await.expect("install");
    let extra = atlas_proto::SecretKey::from_seed(&[42; 32]).public();
    srv.reset_requests();
    let r = sync_with(
        &srv.url(),
        dir.path(),
        vec![key.clone(), extra],
        InstallSide::Server,
        false,
    )
    .await
    .expect("current");
    assert_eq!(r.outcome, Outcome::Current);
    let log = srv.requests();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].status, log[0].if_none_match.as_deref()), (200, None));
    // Back to the original key set: the stored ETag is for another key set, so no 304 either.
    srv.reset_requests();
    sync(&srv.url(), dir.path(), &key).await.expect("current");
    assert_eq!(srv.requests()[0].if_none_match, None);
    srv.reset_requests();
    let r = sync(&srv.url(), dir.path(), &key).await.expect("current");
    assert!(r.not_modified);
}
