//! One test per rejection: each asserts the error class (exit code), that the
//! message says what was wrong, and that the directory is exactly as before,
//! on a fresh directory and on one that already has an install.

use crate::common::*;
use atlas_fetcher::{NoProgress, SyncOptions, Syncer, exit};
use atlas_proto::pointer::PointerPayload;
use atlas_proto::v1::{File, Manifest, Side};
use atlas_proto::{SecretKey, Sha256Digest, layout};
use atlas_testkit::http::{Fault, StaticServer};
use base64::Engine as _;

fn base() -> Vec<Spec> {
    vec![f("mods/a.jar", b"mod a v1"), f("config/c.toml", b"c = 1\n")]
}

fn next() -> Vec<Spec> {
    vec![f("mods/a.jar", b"mod a v2!"), f("config/c.toml", b"c = 1\n")]
}

/// Runs `setup` on a store (after installing `base()` when `installed`),
/// syncs, and checks the rejection.
async fn rejected(installed: bool, code: i32, setup: impl FnOnce(&mut Store, &StaticServer) -> Vec<String>) {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("user-file.txt"), b"mine").expect("write");
    if installed {
        store.publish(&base());
        sync(&srv.url(), dir.path(), &store.public())
            .await
            .expect("install");
    }
    let needles = setup(&mut store, &srv);
    let before = snapshot(dir.path());
    let err = sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect_err("must be rejected");
    let msg = err.to_string();
    assert_eq!(err.exit_code(), code, "wrong class for: {msg}");
    for n in needles {
        assert!(msg.contains(&n), "`{msg}` should mention `{n}`");
    }
    assert_eq!(snapshot(dir.path()), before, "the directory must be untouched");
}

async fn both(code: i32, setup: impl Fn(&mut Store, &StaticServer) -> Vec<String>) {
    rejected(false, code, &setup).await;
    rejected(true, code, &setup).await;
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// Publishes the next build's blobs and manifest, returns a valid payload for it.
fn next_payload(store: &mut Store) -> PointerPayload {
    let (build, size) = store.put_build(&next());
    store.version += 1;
    store.payload(store.version, build, size)
}

// ---------------------------------------------------------------- trust (5)

#[tokio::test]
async fn payload_tampered() {
    both(exit::TRUST, |store, _| {
        let p = next_payload(store);
        let env = store.put_pointer(&p);
        let mut json: serde_json::Value = serde_json::from_slice(&env).expect("json");
        let mut forged = p.clone();
        forged.version += 100;
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&forged).expect("json"));
        json["payload"] = b64.into();
        store.write(&Store::pointer_key(), &serde_json::to_vec(&json).expect("json"));
        vec![s("not signed by a trusted key"), s("check the public key")]
    })
    .await;
}

#[tokio::test]
async fn signed_by_another_key() {
    both(exit::TRUST, |store, _| {
        let p = next_payload(store);
        let other = SecretKey::from_seed(&[9; 32]);
        let env = atlas_proto::pointer::sign(&p, &[&other]);
        store.write(&Store::pointer_key(), &env);
        vec![s("not signed by a trusted key"), other.public().key_id()]
    })
    .await;
}

#[tokio::test]
async fn pointer_for_another_pack() {
    both(exit::TRUST, |store, _| {
        let mut p = next_payload(store);
        p.pack = "other".into();
        store.put_pointer(&p);
        vec![s("pointer is for pack `other`, expected `demo`")]
    })
    .await;
}

#[tokio::test]
async fn pointer_for_another_channel() {
    both(exit::TRUST, |store, _| {
        let mut p = next_payload(store);
        p.channel = "beta".into();
        store.put_pointer(&p);
        vec![s("pointer is for channel `beta`, expected `dev`")]
    })
    .await;
}

#[tokio::test]
async fn expired_pointer() {
    both(exit::TRUST, |store, _| {
        let mut p = next_payload(store);
        p.expires_at = now() - 1;
        store.put_pointer(&p);
        vec![s("expired"), s("freeze")]
    })
    .await;
}

#[tokio::test]
async fn pointer_too_large() {
    both(exit::TRUST, |store, srv| {
        store.publish(&next());
        srv.set_fault(&Store::pointer_key(), Fault::Body(vec![b' '; 1 << 20]));
        vec![s("larger than 65536 bytes")]
    })
    .await;
}

#[tokio::test]
async fn version_lower_than_last_accepted() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    store.publish(&base());
    let old_pointer = std::fs::read(store.root().join(Store::pointer_key())).expect("read");
    sync(&srv.url(), dir.path(), &store.public()).await.expect("v1");
    store.publish(&next());
    sync(&srv.url(), dir.path(), &store.public()).await.expect("v2");
    // A stale mirror (or an attacker) serves the genuine, older pointer.
    store.write(&Store::pointer_key(), &old_pointer);
    let before = snapshot(dir.path());
    let err = sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect_err("rollback");
    assert_eq!(err.exit_code(), exit::TRUST);
    assert!(
        err.to_string().contains("version 1 is lower than version 2"),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn same_version_with_different_bytes() {
    rejected(true, exit::TRUST, |store, _| {
        let (build, size) = store.put_build(&next());
        let p = store.payload(store.version, build, size);
        store.put_pointer(&p);
        vec![s("version 1 was already accepted with different content")]
    })
    .await;
}

#[tokio::test]
async fn expired_while_the_cdn_keeps_answering_304() {
    let store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let dir = tempfile::tempdir().expect("tmp");
    let (build, size) = store.put_build(&base());
    let mut p = store.payload(1, build, size);
    p.expires_at = now() + 600;
    store.put_pointer(&p);
    sync(&srv.url(), dir.path(), &store.public())
        .await
        .expect("install");
    srv.set_fault(&Store::pointer_key(), Fault::AlwaysNotModified);
    let before = snapshot(dir.path());
    srv.reset_requests();
    // Ten minutes later (an injected clock, not a sleep) the CDN would still
    // answer 304 to a conditional request; the host, whose saved pointer now
    // expires within the validator bound (docs/FORMAT.md §5), asks in full.
    let mut opts = SyncOptions::new(srv.url(), PACK, CHANNEL, vec![store.public()], dir.path());
    opts.now = Some(p.expires_at);
    let err = Syncer::new(opts)
        .expect("syncer")
        .sync(false, &NoProgress)
        .await
        .expect_err("expired");
    let requests = srv.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].status, 200, "a plain GET, never answered 304");
    assert_eq!(err.exit_code(), exit::TRUST);
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

// ------------------------------------------------------------ integrity (6)

#[tokio::test]
async fn manifest_longer_than_declared() {
    both(exit::INTEGRITY, |store, srv| {
        let p = next_payload(store);
        store.put_pointer(&p);
        let key = layout::manifest_key(PACK, &p.build_digest().expect("digest"));
        srv.set_fault(&key, Fault::Extra(vec![0; 10]));
        vec![s("longer than the"), key]
    })
    .await;
}

#[tokio::test]
async fn manifest_shorter_than_declared() {
    both(exit::INTEGRITY, |store, srv| {
        let p = next_payload(store);
        store.put_pointer(&p);
        let key = layout::manifest_key(PACK, &p.build_digest().expect("digest"));
        srv.set_fault(&key, Fault::Truncate(5));
        vec![s("is 5 bytes, but the signed pointer declares")]
    })
    .await;
}

#[tokio::test]
async fn manifest_hash_mismatch() {
    both(exit::INTEGRITY, |store, srv| {
        let p = next_payload(store);
        store.put_pointer(&p);
        let key = layout::manifest_key(PACK, &p.build_digest().expect("digest"));
        srv.set_fault(&key, Fault::Body(vec![b'x'; p.manifest_size as usize]));
        vec![s("has sha256"), p.build.clone()]
    })
    .await;
}

#[tokio::test]
async fn manifest_for_another_pack() {
    both(exit::INTEGRITY, |store, _| {
        let mut m = store.manifest_for(&next());
        m.pack_id = "other".into();
        let bytes = atlas_proto::manifest::encode(&m).expect("encode");
        let (build, size) = store.put_manifest_bytes(PACK, &bytes);
        store.version += 1;
        store.put_pointer(&store.payload(store.version, build, size));
        vec![s("is for pack `other`")]
    })
    .await;
}

#[tokio::test]
async fn blob_hash_mismatch() {
    both(exit::INTEGRITY, |store, srv| {
        let p = next_payload(store);
        store.put_pointer(&p);
        let d = Sha256Digest::of(b"mod a v2!");
        let key = layout::blob_key(&d);
        srv.set_fault(&key, Fault::Body(b"mod a v3!".to_vec()));
        vec![
            s("`mods/a.jar`"),
            key,
            d.to_hex(),
            Sha256Digest::of(b"mod a v3!").to_hex(),
        ]
    })
    .await;
}

#[tokio::test]
async fn blob_longer_than_manifest_size() {
    both(exit::INTEGRITY, |store, srv| {
        let p = next_payload(store);
        store.put_pointer(&p);
        let key = layout::blob_key(&Sha256Digest::of(b"mod a v2!"));
        srv.set_fault(&key, Fault::Extra(vec![0; 1 << 20]));
        vec![s("`mods/a.jar`"), s("longer than the 9 bytes")]
    })
    .await;
}

/// A manifest listing one file at `path`, built with prost + zstd directly
/// because `manifest::encode` refuses unsafe paths.
fn unsafe_manifest(path: &str) -> impl Fn(&mut Store, &StaticServer) -> Vec<String> {
    let path = path.to_owned();
    move |store, _| {
        store.put_blob(b"evil");
        let m = Manifest {
            format_version: 1,
            pack_id: PACK.into(),
            files: vec![File {
                path: path.clone(),
                size: 4,
                sha256: Sha256Digest::of(b"evil").0.to_vec(),
                side: Side::Both as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let (build, size) = store.put_raw_manifest(&m);
        store.version += 1;
        store.put_pointer(&store.payload(store.version, build, size));
        vec![s("unsafe path"), s("manifest at")]
    }
}

macro_rules! unsafe_path_tests {
    ($($name:ident => $path:expr,)*) => {$(
        #[tokio::test]
        async fn $name() {
            both(exit::INTEGRITY, unsafe_manifest($path)).await;
        }
    )*};
}

unsafe_path_tests! {
    manifest_path_parent => "../x",
    manifest_path_absolute => "/abs",
    manifest_path_windows_drive => "C:\\x",
    manifest_path_escape_through_subdir => "a/../../b",
    manifest_path_backslash_parent => "a\\..\\b",
    manifest_path_empty => "",
    manifest_path_state_dir => ".atlas/trust.json",
}

/// A manifest listing `paths` (each with the bytes "evil"), built with prost +
/// zstd directly because `manifest::encode` refuses what these tests need.
fn raw_manifest(paths: &[&str], encoding: i32) -> Manifest {
    let mut paths = paths.to_vec();
    paths.sort();
    Manifest {
        format_version: 1,
        pack_id: PACK.into(),
        files: paths
            .iter()
            .map(|p| File {
                path: (*p).to_owned(),
                size: 4,
                sha256: Sha256Digest::of(b"evil").0.to_vec(),
                side: Side::Both as i32,
                encoding,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn manifest_paths_equal_after_unicode_normalization() {
    both(exit::INTEGRITY, |store, _| {
        store.put_blob(b"evil");
        let m = raw_manifest(&["config/caf\u{e9}.txt", "config/cafe\u{301}.txt"], 0);
        let (build, size) = store.put_raw_manifest(&m);
        store.version += 1;
        store.put_pointer(&store.payload(store.version, build, size));
        vec![s("only by Unicode normalization")]
    })
    .await;
}

#[tokio::test]
async fn manifest_with_an_unknown_blob_encoding() {
    both(exit::INTEGRITY, |store, _| {
        store.put_blob(b"evil");
        let m = raw_manifest(&["mods/x.jar"], 9);
        let (build, size) = store.put_raw_manifest(&m);
        store.version += 1;
        store.put_pointer(&store.payload(store.version, build, size));
        vec![s("blob encoding 9"), s("mods/x.jar")]
    })
    .await;
}

#[tokio::test]
async fn manifest_with_a_second_zstd_frame() {
    both(exit::INTEGRITY, |store, _| {
        store.put_blob(b"evil");
        let first = atlas_proto::manifest::encode(&store.manifest_for(&next())).expect("encode");
        let extra = zstd::stream::encode_all(
            prost::Message::encode_to_vec(&raw_manifest(&["mods/extra.jar"], 0)).as_slice(),
            3,
        )
        .expect("zstd");
        let mut stored = first;
        stored.extend_from_slice(&extra);
        let (build, size) = store.put_manifest_bytes(PACK, &stored);
        store.version += 1;
        store.put_pointer(&store.payload(store.version, build, size));
        vec![s("exactly one frame")]
    })
    .await;
}

// ------------------------------------------------------- source (4), local (7)

#[tokio::test]
async fn channel_not_published() {
    rejected(false, exit::SOURCE, |_, srv| {
        vec![
            format!("{}{}", srv.url(), Store::pointer_key()),
            s("may not be published yet"),
        ]
    })
    .await;
}

#[tokio::test]
async fn blob_missing_from_store() {
    both(exit::SOURCE, |store, _| {
        let p = next_payload(store);
        store.put_pointer(&p);
        let key = layout::blob_key(&Sha256Digest::of(b"mod a v2!"));
        std::fs::remove_file(store.root().join(&key)).expect("rm");
        vec![key, s("was not found")]
    })
    .await;
}

#[tokio::test]
async fn connection_dropped_mid_blob() {
    both(exit::SOURCE, |store, srv| {
        let p = next_payload(store);
        store.put_pointer(&p);
        let key = layout::blob_key(&Sha256Digest::of(b"mod a v2!"));
        srv.set_fault(&key, Fault::Abort(3));
        vec![key]
    })
    .await;
}

#[tokio::test]
async fn server_error_status() {
    both(exit::SOURCE, |store, srv| {
        let p = next_payload(store);
        store.put_pointer(&p);
        srv.set_fault(&Store::pointer_key(), Fault::Status(503));
        vec![s("answered HTTP 503")]
    })
    .await;
}

#[tokio::test]
async fn malformed_state_files_are_named() {
    for (file, junk) in [
        ("trust.json", &b"{ not json"[..]),
        ("install.json", &br#"{"format":9}"#[..]),
    ] {
        let mut store = Store::new();
        let srv = StaticServer::start(store.root()).expect("server");
        let dir = tempfile::tempdir().expect("tmp");
        store.publish(&base());
        sync(&srv.url(), dir.path(), &store.public())
            .await
            .expect("install");
        store.publish(&next());
        std::fs::write(dir.path().join(".atlas").join(file), junk).expect("write");
        let before = snapshot(dir.path());
        let err = sync(&srv.url(), dir.path(), &store.public())
            .await
            .expect_err("bad state");
        assert_eq!(err.exit_code(), exit::LOCAL);
        assert!(err.to_string().contains(file), "{err}");
        assert_eq!(snapshot(dir.path()), before);
    }
}

#[tokio::test]
async fn failure_into_a_missing_directory_leaves_nothing_behind() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("new-server");
    store.publish(&base());
    srv.set_fault(
        &layout::blob_key(&Sha256Digest::of(b"mod a v1")),
        Fault::Body(b"mod a XX".to_vec()),
    );
    let err = sync(&srv.url(), &dir, &store.public())
        .await
        .expect_err("mismatch");
    assert_eq!(err.exit_code(), exit::INTEGRITY);
    assert!(
        !dir.exists(),
        "the target directory this run created is removed again"
    );
}
