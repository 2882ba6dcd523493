//! Upstream-only files (the creator's mirror policy, or CurseForge's
//! distribution-disabled mods): the blob is not in the store, so the fetcher
//! downloads it from the upstream URL the manifest records and checks both the
//! manifest's SHA-256 and the hashes the upstream itself publishes.

use crate::common::*;
use atlas_fetcher::exit;
use atlas_proto::manifest;
use atlas_proto::upstream::{HashFormat, UpstreamHash};
use atlas_proto::v1::Upstream;
use atlas_testkit::http::StaticServer;

const JAR: &[u8] = b"a distribution-disabled mod's bytes";

/// A store with one ordinary file and one upstream-only file whose upstream
/// entry records `hashes`; the jar is served by a separate "upstream" host.
fn publish(store: &mut Store, upstream_url: &str, hashes: Vec<UpstreamHash>) {
    let specs = [f("config/a.toml", b"a = 1\n"), f("mods/cf.jar", JAR)];
    store.put_blob(&specs[0].content); // the jar's blob is *not* stored
    let mut m = store.manifest_for(&specs);
    let jar = m.files.iter_mut().find(|f| f.path == "mods/cf.jar").expect("jar");
    jar.upstream_only = true;
    jar.upstreams = vec![Upstream {
        url: upstream_url.to_owned(),
        hashes: hashes.iter().map(UpstreamHash::to_proto).collect(),
        origin: "curseforge:1234/5678".into(),
    }];
    let bytes = manifest::encode(&m).expect("encode");
    let (build, size) = store.put_manifest_bytes(PACK, &bytes);
    store.version += 1;
    store.put_pointer(&store.payload(store.version, build, size));
}

fn upstream_host(content: &[u8]) -> (tempfile::TempDir, StaticServer) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("files")).expect("mkdir");
    std::fs::write(dir.path().join("files/cf.jar"), content).expect("write");
    let srv = StaticServer::start(dir.path()).expect("upstream server");
    (dir, srv)
}

#[tokio::test]
async fn upstream_only_file_is_fetched_upstream_and_its_upstream_hashes_checked() {
    let (_up_dir, up) = upstream_host(JAR);
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let hashes = vec![
        UpstreamHash::of(HashFormat::Sha1, JAR),
        UpstreamHash::of(HashFormat::Murmur2, JAR),
    ];
    publish(&mut store, &format!("{}/files/cf.jar", up.url()), hashes);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let r = sync(&srv.url(), &dir, &store.public()).await.expect("sync");
    assert_eq!(r.exit_code(), exit::UPDATED);
    assert_eq!(std::fs::read(dir.join("mods/cf.jar")).expect("jar"), JAR);
    assert!(
        up.requests().iter().any(|r| r.path == "files/cf.jar"),
        "the jar came from the upstream host"
    );
}

#[tokio::test]
async fn upstream_hash_that_does_not_match_is_refused_and_nothing_changes() {
    let (_up_dir, up) = upstream_host(JAR);
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    // The manifest's SHA-256 is right, but the sha1 the upstream publishes is not.
    let wrong = vec![UpstreamHash::of(HashFormat::Sha1, b"other bytes")];
    publish(&mut store, &format!("{}/files/cf.jar", up.url()), wrong);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("level.dat"), b"world").expect("write");
    let before = snapshot(&dir);
    let err = sync(&srv.url(), &dir, &store.public())
        .await
        .expect_err("refused");
    assert_eq!(err.exit_code(), exit::INTEGRITY);
    let msg = err.to_string();
    assert!(
        msg.contains("mods/cf.jar") && msg.contains("sha1") && msg.contains("/files/cf.jar"),
        "{msg}"
    );
    assert_eq!(snapshot(&dir), before, "nothing changed on disk");
}

#[tokio::test]
async fn upstream_serving_other_bytes_is_refused_by_the_manifest_sha256() {
    let other: Vec<u8> = JAR.iter().map(|b| b ^ 1).collect(); // same length
    let (_up_dir, up) = upstream_host(&other);
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let hashes = vec![UpstreamHash::of(HashFormat::Sha1, JAR)];
    publish(&mut store, &format!("{}/files/cf.jar", up.url()), hashes);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    let err = sync(&srv.url(), &dir, &store.public())
        .await
        .expect_err("refused");
    assert_eq!(err.exit_code(), exit::INTEGRITY);
    assert!(err.to_string().contains("sha256"), "{err}");
    assert!(!dir.join("mods/cf.jar").exists());
}
