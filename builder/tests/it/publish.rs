//! Builder integration tests: a real git repository (made with the git CLI)
//! is planned and published to a directory store.

use std::time::Duration;

use atlas_builder::build::native::plan;
use atlas_builder::plan::{PlanError, PlanOptions};
use atlas_builder::pointer::{PointerStatus, read_current};
use atlas_builder::promote::{PromoteError, PromoteFrom, PromoteReport, PromoteRequest};
use atlas_builder::publish::{PublishOptions, PublishReport, PublishRequest};
use atlas_builder::repo::{PackSource, RepoError};
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::{DirStore, Store};
use atlas_proto::manifest::{ManifestLimits, decode};
use atlas_proto::v1::Side;
use atlas_proto::{SecretKey, layout};
use atlas_testkit::git::GitRepo;

const PACK_TOML: &str = r#"
id = "testpack"
name = "Test Pack"
version = "1.0.0"
minecraft = "1.21.1"
loader = { kind = "fabric", version = "0.16.9" }

[[files]]
include = ["config/**", "mods/*.jar", "run.sh"]

[[files]]
include = ["config/client/**"]
side = "client"
"#;

fn fixture() -> GitRepo {
    let repo = GitRepo::init().expect("git init");
    repo.write("pack.toml", PACK_TOML).expect("write");
    repo.write("config/a.json", "{\"a\": 1}\n").expect("write");
    repo.write("config/client/hud.toml", "x = 1\n").expect("write");
    repo.write("mods/one.jar", vec![1u8; 5000]).expect("write");
    repo.write("mods/two.jar", vec![2u8; 7000]).expect("write");
    repo.write("run.sh", "#!/bin/sh\necho hi\n").expect("write");
    repo.make_executable("run.sh").expect("chmod");
    repo.write("notes.md", "not part of the pack\n").expect("write");
    repo.commit_all("initial").expect("commit");
    repo
}

fn options(channel: &str) -> PublishOptions {
    PublishOptions {
        channel: channel.into(),
        now: 1_000_000,
        pointer_lifetime: Duration::from_secs(3600),
        dry_run: false,
        concurrency: 4,
        force_pointer: false,
    }
}

/// Publishes `source` (a pack without mods: no cache is touched).
async fn publish(
    source: &PackSource,
    store: &dyn Store,
    key: Option<&SecretKey>,
    opts: PublishOptions,
) -> Result<PublishReport, atlas_builder::publish::PublishError> {
    let mods = ModOptions::default();
    let req = PublishRequest {
        key,
        ..PublishRequest::new(source, store, opts, mods)
    };
    Ok(atlas_builder::publish::run(req).await?.report)
}

async fn build_and_publish(
    repo: &GitRepo,
    store: &DirStore,
    key: &SecretKey,
    channel: &str,
) -> PublishReport {
    let source = PackSource::open(repo.path(), false).expect("open");
    publish(&source, store, Some(key), options(channel))
        .await
        .expect("publish")
}

async fn promote(
    store: &DirStore,
    key: &SecretKey,
    from: &PromoteFrom,
    to: &str,
    now: u64,
    lifetime: Duration,
) -> Result<PromoteReport, PromoteError> {
    atlas_builder::promote::run(PromoteRequest {
        store,
        key,
        trusted: &[],
        pack: "testpack",
        from: from.clone(),
        to,
        now,
        lifetime,
        exports: None,
        player_tools: None,
    })
    .await
}

#[test]
fn plan_reads_head_commit_with_sides_and_modes() {
    let repo = fixture();
    let commit = repo.git(&["rev-parse", "HEAD"]).expect("rev-parse");
    // An uncommitted edit must not leak into a normal build.
    repo.write("config/a.json", "{\"a\": 2}\n").expect("write");
    let source = PackSource::open(repo.path(), false).expect("open");
    let p = plan(&source, &PlanOptions::default()).expect("plan");
    let m = &p.manifest;
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "config/a.json",
            "config/client/hud.toml",
            "mods/one.jar",
            "mods/two.jar",
            "run.sh"
        ]
    );
    let file = |p: &str| m.files.iter().find(|f| f.path == p).expect("listed");
    assert_eq!(
        file("config/a.json").size,
        9,
        "committed content, not the working tree"
    );
    assert_eq!(file("config/client/hud.toml").side, Side::Client as i32);
    assert_eq!(file("mods/one.jar").side, Side::Both as i32);
    assert!(file("run.sh").executable);
    assert!(!file("mods/one.jar").executable);
    let src = m.source.as_ref().expect("source");
    assert_eq!(src.commit, commit);
    assert!(!src.dirty);
    assert_eq!(src.commit_time, 1_767_225_600, "the commit's time, not the clock");
    let decoded = decode(&p.manifest_bytes, &ManifestLimits::default()).expect("decode");
    assert_eq!(&decoded, m);
}

#[test]
fn allow_dirty_builds_the_working_tree_and_says_so() {
    let repo = fixture();
    repo.write("config/a.json", "{\"a\": 22}\n").expect("write");
    repo.write("config/new.json", "{}\n").expect("write");
    let source = PackSource::open(repo.path(), true).expect("open");
    let p = plan(&source, &PlanOptions::default()).expect("plan");
    assert!(p.manifest.source.as_ref().expect("source").dirty);
    let a = p
        .manifest
        .files
        .iter()
        .find(|f| f.path == "config/a.json")
        .expect("a");
    assert_eq!(a.size, 10);
    assert!(p.manifest.files.iter().any(|f| f.path == "config/new.json"));
}

#[test]
fn same_commit_gives_same_build_id_anywhere() {
    let repo = fixture();
    let a = plan(
        &PackSource::open(repo.path(), false).expect("open"),
        &PlanOptions::default(),
    )
    .expect("plan");
    // A clone elsewhere (different path, different clone time) builds identically.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let clone = elsewhere.path().join("clone");
    let status = std::process::Command::new("git")
        .args(["clone", "-q"])
        .arg(repo.path())
        .arg(&clone)
        .status()
        .expect("git clone");
    assert!(status.success());
    let opts = PlanOptions {
        repository_url: Some(String::new()),
        ..PlanOptions::default()
    };
    let b = plan(&PackSource::open(&clone, false).expect("open"), &opts).expect("plan");
    assert_eq!(a.build_id, b.build_id);
    assert_eq!(a.manifest_bytes, b.manifest_bytes);
}

#[test]
fn pack_in_a_subdirectory_of_the_repository() {
    let repo = GitRepo::init().expect("init");
    repo.write("README.md", "repo root\n").expect("write");
    repo.write(
        "packs/mine/pack.toml",
        PACK_TOML.replace("\"mods/*.jar\", \"run.sh\"", "\"mods/*.jar\""),
    )
    .expect("write");
    repo.write("packs/mine/config/a.json", "{}").expect("write");
    repo.write("packs/mine/config/client/x", "{}").expect("write");
    repo.write("packs/mine/mods/m.jar", "jar").expect("write");
    repo.commit_all("c").expect("commit");
    let source = PackSource::open(&repo.path().join("packs/mine"), false).expect("open");
    assert_eq!(source.commit.subdirectory, "packs/mine");
    let p = plan(&source, &PlanOptions::default()).expect("plan");
    assert_eq!(p.manifest.files.len(), 3);
    assert_eq!(
        p.manifest.source.as_ref().expect("src").subdirectory,
        "packs/mine"
    );
}

#[test]
fn pack_errors_name_the_file_and_the_problem() {
    let repo = GitRepo::init().expect("init");
    repo.write("config/a.json", "{}").expect("write");
    repo.commit_all("no pack").expect("commit");
    let err = plan(
        &PackSource::open(repo.path(), false).expect("open"),
        &PlanOptions::default(),
    )
    .expect_err("no pack.toml");
    assert!(err.to_string().contains("no `pack.toml`"), "{err}");

    repo.write("pack.toml", PACK_TOML.replace("config/**", "confg/**"))
        .expect("write");
    repo.write("config/client/x", "").expect("write");
    repo.write("mods/a.jar", "").expect("write");
    repo.write("run.sh", "").expect("write");
    repo.commit_all("typo").expect("commit");
    let err = plan(
        &PackSource::open(repo.path(), false).expect("open"),
        &PlanOptions::default(),
    )
    .expect_err("pattern matches nothing");
    assert!(
        matches!(err, PlanError::NoMatch { ref pattern, .. } if pattern == "confg/**"),
        "{err}"
    );
    assert!(err.to_string().contains("pack.toml: files[0]"), "{err}");

    repo.write("pack.toml", "id = \"x\"\nname = [\n").expect("write");
    repo.commit_all("syntax").expect("commit");
    let err = plan(
        &PackSource::open(repo.path(), false).expect("open"),
        &PlanOptions::default(),
    )
    .expect_err("syntax error");
    assert!(err.to_string().starts_with("pack.toml:2:"), "{err}");
}

#[test]
fn unborn_head_and_symlinks_are_refused() {
    let repo = GitRepo::init().expect("init");
    repo.write("pack.toml", PACK_TOML).expect("write");
    let err = PackSource::open(repo.path(), false).expect_err("no commit");
    assert!(matches!(err, RepoError::NoCommit { .. }), "{err}");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", repo.path().join("config-link")).expect("symlink");
        repo.commit_all("link").expect("commit");
        let err = PackSource::open(repo.path(), false).expect_err("symlink");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}

#[tokio::test]
async fn publish_is_incremental_and_pointer_versions_are_monotonic() {
    let repo = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DirStore::new(dir.path());
    let key = SecretKey::from_seed(&[9; 32]);

    let first = build_and_publish(&repo, &store, &key, "dev").await;
    assert_eq!((first.blobs_new, first.blobs_reused), (5, 0));
    assert!(first.manifest_new);
    let p = first.pointer.as_ref().expect("pointer");
    assert_eq!((p.version, p.status), (1, PointerStatus::Updated));
    assert!(store.exists(&first.manifest_key).await.expect("exists"));

    // Same commit again: nothing new, pointer untouched.
    let again = build_and_publish(&repo, &store, &key, "dev").await;
    assert_eq!((again.blobs_new, again.bytes_new), (0, 0));
    assert_eq!(again.plan.build, first.plan.build);
    assert!(!again.manifest_new);
    assert_eq!(
        again.pointer.as_ref().expect("pointer").status,
        PointerStatus::Unchanged
    );

    // One file changes: exactly one new blob.
    repo.write("mods/two.jar", vec![3u8; 7000]).expect("write");
    repo.commit_all("update two").expect("commit");
    let third = build_and_publish(&repo, &store, &key, "dev").await;
    assert_eq!(
        (third.blobs_new, third.blobs_reused, third.bytes_new),
        (1, 4, 7000)
    );
    assert_eq!(third.pointer.as_ref().expect("pointer").version, 2);
    let current = read_current(&store, "testpack", "dev")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(current.payload.build, third.plan.build);
    assert_eq!(current.payload.expires_at, 1_000_000 + 3600);
    assert_eq!(current.signed_by, vec![key.public().key_id()]);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let repo = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DirStore::new(dir.path().join("store"));
    let source = PackSource::open(repo.path(), false).expect("open");
    let mut opts = options("dev");
    opts.dry_run = true;
    let report = publish(&source, &store, None, opts).await.expect("dry run");
    assert_eq!(report.blobs_new, 5);
    assert!(report.pointer.is_none());
    assert!(!dir.path().join("store").exists(), "a dry run creates nothing");
}

#[tokio::test]
async fn promote_and_roll_back_with_the_target_channels_own_versions() {
    let repo = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DirStore::new(dir.path());
    let key = SecretKey::from_seed(&[9; 32]);
    let v1 = build_and_publish(&repo, &store, &key, "dev").await;
    repo.write("config/a.json", "{\"a\": 3}").expect("write");
    repo.commit_all("c2").expect("commit");
    let v2 = build_and_publish(&repo, &store, &key, "dev").await;
    assert_eq!(v2.pointer.as_ref().expect("p").version, 2);

    let life = Duration::from_secs(600);
    let from = PromoteFrom::Channel("dev".into());
    let r = promote(&store, &key, &from, "production", 5, life)
        .await
        .expect("promote");
    assert_eq!((r.build.as_str(), r.pointer.version), (v2.plan.build.as_str(), 1));
    let prod = read_current(&store, "testpack", "production")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(prod.payload.build, v2.plan.build);
    assert_eq!(prod.payload.channel, "production");

    // Roll back: a newer production version pointing at the older build.
    let old: atlas_proto::Sha256Digest = v1.plan.build.parse().expect("hex");
    let back = promote(&store, &key, &PromoteFrom::Build(old), "production", 6, life)
        .await
        .expect("rollback");
    assert_eq!(
        (back.pointer.version, back.build.as_str()),
        (2, v1.plan.build.as_str())
    );

    // A build id that is not in the store is refused.
    let missing = PromoteFrom::Build(atlas_proto::Sha256Digest::of(b"nope"));
    let err = promote(&store, &key, &missing, "production", 7, life)
        .await
        .expect_err("unknown build");
    assert!(err.to_string().contains("is not in"), "{err}");

    // A dev pointer signed by another key is not promoted blindly.
    let stranger = SecretKey::from_seed(&[10; 32]);
    let err = promote(&store, &stranger, &from, "beta", 8, life)
        .await
        .expect_err("unverified source pointer");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert!(
        !store
            .exists(&layout::pointer_key("testpack", "beta"))
            .await
            .expect("exists")
    );
}

#[tokio::test]
async fn resign_extends_expiry_with_a_new_version_of_the_same_build() {
    let repo = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DirStore::new(dir.path());
    let key = SecretKey::from_seed(&[9; 32]);
    let first = build_and_publish(&repo, &store, &key, "dev").await;
    let life = Duration::from_secs(7200);
    let update = atlas_builder::pointer::resign(&store, &key, "testpack", "dev", 2_000_000, life)
        .await
        .expect("resign")
        .expect("channel exists");
    assert_eq!((update.version, update.expires_at), (2, 2_000_000 + 7200));
    let now = read_current(&store, "testpack", "dev")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(now.payload.build, first.plan.build);
    assert_eq!(now.payload.version, 2);
    let none = atlas_builder::pointer::resign(&store, &key, "testpack", "beta", 1, life)
        .await
        .expect("ok");
    assert!(
        none.is_none(),
        "a channel without a pointer is reported, not created"
    );
}

/// A real directory store that records the order of the calls made to it.
#[derive(Debug)]
struct Recording {
    inner: DirStore,
    calls: std::sync::Mutex<Vec<String>>,
}

impl Recording {
    fn log(&self, call: String) {
        self.calls.lock().expect("log").push(call);
    }
}

#[async_trait::async_trait]
impl Store for Recording {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn keeps_cached_files(&self) -> bool {
        self.inner.keeps_cached_files()
    }
    async fn exists(&self, key: &str) -> Result<bool, atlas_builder::store::StoreError> {
        self.inner.exists(key).await
    }
    async fn put_immutable(
        &self,
        key: &str,
        body: atlas_builder::store::Body,
        meta: atlas_builder::store::ObjectMeta,
    ) -> Result<atlas_builder::store::PutOutcome, atlas_builder::store::StoreError> {
        let kind = if key.starts_with("blobs/") {
            "blob"
        } else if key.contains("/history/") {
            "history"
        } else {
            "manifest"
        };
        let r = self.inner.put_immutable(key, body, meta).await;
        self.log(format!("put {kind}"));
        r
    }
    async fn sync_blobs(&self) -> Result<(), atlas_builder::store::StoreError> {
        let r = self.inner.sync_blobs().await;
        self.log("sync".into());
        r
    }
    async fn get(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<atlas_builder::store::Object>, atlas_builder::store::StoreError> {
        self.inner.get(key, max_bytes).await
    }
    async fn put_cas(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        expected: atlas_builder::store::Expected,
        meta: atlas_builder::store::ObjectMeta,
    ) -> Result<String, atlas_builder::store::StoreError> {
        self.log("pointer".into());
        self.inner.put_cas(key, bytes, expected, meta).await
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<atlas_builder::store::Listed>, atlas_builder::store::StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), atlas_builder::store::StoreError> {
        self.log("delete".into());
        self.inner.delete(keys).await
    }
}

#[tokio::test]
async fn blobs_are_synced_once_after_the_last_blob_and_before_the_manifest() {
    let repo = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Recording {
        inner: DirStore::new(dir.path()),
        calls: Default::default(),
    };
    let key = SecretKey::from_seed(&[9; 32]);
    let source = PackSource::open(repo.path(), false).expect("open");
    publish(&source, &store, Some(&key), options("dev"))
        .await
        .expect("publish");
    let calls = store.calls.lock().expect("log").clone();
    let mut want = vec!["put blob".to_owned(); 5];
    // The pointer, then its history entry (version 1).
    want.extend(["sync", "put manifest", "pointer", "put history"].map(String::from));
    assert_eq!(calls, want);
}
