//! `gc` and the player exports (issue 21, format 1.3 §9/§10): instance
//! archives are collected once no kept pointer version names them, the
//! fetcher binaries a kept version of any pack pins stay (they are blobs no
//! manifest names), and the pages, the store index and their icon are never
//! collected.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use atlas_builder::export::ExportOptions;
use atlas_builder::export::player_tools::{self, PlayerTools};
use atlas_builder::gc::{self, GcOptions};
use atlas_builder::publish::{PublishOptions, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::{Body, DirStore, ObjectMeta, Store};
use atlas_proto::pointer::SignedPointer;
use atlas_proto::{Limits, SecretKey, Sha256Digest, layout};
use atlas_testkit::git::GitRepo;

const A: &str = "gcpa";
const B: &str = "gcpb";
const DAY: Duration = Duration::from_secs(86_400);

/// A player-tools folder of release `version` whose fetcher is `fetcher`.
fn tools(root: &Path, version: &str, fetcher: &[u8]) -> PlayerTools {
    let dir = root.join(format!("tools-{version}"));
    let target = "x86_64-unknown-linux-musl";
    std::fs::create_dir_all(dir.join(target)).expect("mkdir");
    std::fs::write(dir.join("VERSION"), format!("{version}\n")).expect("write");
    std::fs::write(dir.join("atlas-bootstrap.jar"), b"PK\x03\x04jar").expect("write");
    std::fs::write(dir.join(target).join("atlas-fetcher"), fetcher).expect("write");
    player_tools::load(&dir, &Limits::DEFAULT).expect("tools")
}

fn repo(id: &str, tag: &str) -> GitRepo {
    let r = GitRepo::init().expect("git");
    r.write(
        "pack.toml",
        format!(
            "id = \"{id}\"\nname = \"P {id}\"\nversion = \"1\"\nminecraft = \"1.21.1\"\n\
             loader = {{ kind = \"fabric\", version = \"0.16.9\" }}\n\
             [[files]]\ninclude = [\"config/**\"]\n"
        ),
    )
    .expect("write");
    r.write("config/tag.txt", format!("{tag}\n")).expect("write");
    r.commit_all(tag).expect("commit");
    r
}

async fn publish(
    store: &DirStore,
    key: &SecretKey,
    exports: &ExportOptions,
    repo: &GitRepo,
    t: &PlayerTools,
) {
    let source = PackSource::open(repo.path(), false).expect("open");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let opts = PublishOptions {
        channel: "dev".into(),
        now,
        pointer_lifetime: 30 * DAY,
        dry_run: false,
        concurrency: 2,
        force_pointer: false,
    };
    let req = PublishRequest {
        key: Some(key),
        exports: Some(exports),
        player_tools: Some(t),
        ..PublishRequest::new(&source, store, opts, ModOptions::default())
    };
    atlas_builder::publish::run(req).await.expect("publish");
}

fn instance_of(store: &DirStore, pack: &str) -> String {
    let bytes = std::fs::read(store.root().join(layout::pointer_key(pack, "dev"))).expect("pointer");
    SignedPointer::parse(&bytes)
        .and_then(|p| p.payload_unverified())
        .expect("pointer")
        .exports
        .instance
        .expect("an instance archive")
}

#[tokio::test]
async fn gc_collects_instance_archives_and_keeps_pinned_tools_and_pages() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(tmp.path().join("store")).expect("mkdir");
    let store = DirStore::new(tmp.path().join("store"));
    let exports = ExportOptions::new("https://cdn.example.com/atlas/").expect("url");
    let key = SecretKey::from_seed(&[5; 32]);
    let (t0, t1, t2) = (
        tools(tmp.path(), "0.1.0", b"fetcher 0"),
        tools(tmp.path(), "0.2.0", b"fetcher 1"),
        tools(tmp.path(), "0.3.0", b"fetcher 2"),
    );
    // A's dev: build 1 with release 0.1.0, builds 2-6 with 0.2.0; B: one build with 0.3.0.
    publish(&store, &key, &exports, &repo(A, "a1"), &t0).await;
    let old_archive = instance_of(&store, A);
    for i in 2..=6 {
        publish(&store, &key, &exports, &repo(A, &format!("a{i}")), &t1).await;
    }
    let live_archive = instance_of(&store, A);
    assert_ne!(old_archive, live_archive, "the pins are in the archive");
    publish(&store, &key, &exports, &repo(B, "b"), &t2).await;
    let b_archive = instance_of(&store, B);
    // A failed publish's archive, named by no pointer.
    let orphan = format!("packs/{A}/instances/{}/{A}-dev.zip", Sha256Digest::of(b"orphan"));
    store
        .put_immutable(
            &orphan,
            Body::Bytes(bytes::Bytes::from_static(b"orphan")),
            ObjectMeta::BLOB,
        )
        .await
        .expect("put");
    let blob = |bytes: &[u8]| layout::blob_key(&Sha256Digest::of(bytes));

    // Young: nothing goes.
    let opts = |now, delete| GcOptions {
        keep_builds: 4,
        now,
        delete,
        ..GcOptions::default()
    };
    let r = gc::run(&store, A, opts(SystemTime::now(), false))
        .await
        .expect("gc");
    assert!(r.deleted.is_empty(), "{:?}", r.deleted);

    // Three days on: builds 1 and 2 of A are not kept, so neither is the
    // archive only version 1 named, nor release 0.1.0's fetcher.
    let r = gc::run(&store, A, opts(SystemTime::now() + 3 * DAY, true))
        .await
        .expect("gc");
    let deleted: BTreeSet<&str> = r.deleted.iter().map(|d| d.key.as_str()).collect();
    assert!(deleted.contains(old_archive.as_str()), "{deleted:?}");
    assert!(deleted.contains(orphan.as_str()), "{deleted:?}");
    assert!(deleted.contains(blob(b"fetcher 0").as_str()), "{deleted:?}");
    assert_eq!(
        r.by_class.get("instance").map(|t| t.objects),
        Some(2),
        "{:?}",
        r.by_class
    );
    let left: BTreeSet<String> = store
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|l| l.key)
        .collect();
    for kept in [
        live_archive,
        b_archive,
        blob(b"fetcher 1"),
        blob(b"fetcher 2"),
        layout::blob_key(&atlas_builder::export::instance::icon_digest()),
        layout::pack_page_key(A),
        layout::pack_page_key(B),
        layout::STORE_INDEX_KEY.to_owned(),
    ] {
        assert!(left.contains(&kept), "{kept} must stay");
    }
    // A second run finds nothing more.
    let again = gc::run(&store, A, opts(SystemTime::now() + 3 * DAY, true))
        .await
        .expect("gc");
    assert!(again.deleted.is_empty(), "{:?}", again.deleted);
}
