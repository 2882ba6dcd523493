//! Issue 18, item 5: `gc` on directory and S3 stores. It deletes exactly
//! the unreferenced objects older than the grace period (and lists them in a
//! dry run), keeps every channel's recent builds and every build of other
//! packs sharing the bucket, collects a failed publish's early uploads once
//! the grace period is over, and never takes from a publish running at the
//! same time what it needs: the fetcher then syncs the new build.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use atlas_builder::export::ExportOptions;
use atlas_builder::export::packwiz::tree;
use atlas_builder::gc::{self, GcOptions, GcReport};
use atlas_builder::promote::{PromoteFrom, PromoteRequest};
use atlas_builder::publish::{PublishOptions, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::{
    Body, DirStore, Expected, Listed, Object, ObjectMeta, PutOutcome, S3Store, Store, StoreError,
};
use atlas_proto::{SecretKey, Sha256Digest, layout};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::{Fault, StaticServer};
use atlas_testkit::s3::S3Server;

use crate::common::consistency::{check_blobs, check_one_build};

const A: &str = "gca";
const B: &str = "gcb";
const DAY: Duration = Duration::from_secs(86_400);

fn pack_toml(id: &str) -> String {
    format!(
        "id = \"{id}\"\nname = \"GC {id}\"\nversion = \"1\"\nminecraft = \"1.21.1\"\n\
         loader = {{ kind = \"fabric\", version = \"0.16.9\" }}\n\
         [[files]]\ninclude = [\"config/**\", \"mods/*.jar\"]\n"
    )
}

/// The bytes of pack A's `mods/only-<i>.jar`.
fn only(i: u8) -> Vec<u8> {
    vec![i + 10; 1000 + usize::from(i)]
}

fn repo(id: &str, tag: &str, jars: &[(&str, Vec<u8>)]) -> GitRepo {
    let r = GitRepo::init().expect("git");
    r.write("pack.toml", pack_toml(id)).expect("write");
    r.write("config/tag.txt", format!("{tag}\n")).expect("write");
    for (name, bytes) in jars {
        r.write(&format!("mods/{name}"), bytes).expect("write");
    }
    r.commit_all(tag).expect("commit");
    r
}

/// Build `i` of pack A: the shared jar and its own.
fn repo_a(i: u8) -> GitRepo {
    repo(
        A,
        &format!("a{i}"),
        &[("shared.jar", vec![1; 2000]), (&format!("only-{i}.jar"), only(i))],
    )
}

async fn publish(
    store: &dyn Store,
    key: &SecretKey,
    exports: &ExportOptions,
    repo: &GitRepo,
    channel: &str,
) -> Sha256Digest {
    let source = PackSource::open(repo.path(), false).expect("open");
    let cache = tempfile::tempdir().expect("cache");
    let opts = PublishOptions {
        channel: channel.into(),
        now: now_secs(),
        pointer_lifetime: 30 * DAY,
        dry_run: false,
        concurrency: 4,
        force_pointer: false,
    };
    let req = PublishRequest {
        key: Some(key),
        exports: Some(exports),
        ..PublishRequest::new(&source, store, opts, ModOptions::new(cache.path().to_owned()))
    };
    atlas_builder::publish::run(req)
        .await
        .expect("publish")
        .plan
        .build_id
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn options(now: SystemTime, delete: bool) -> GcOptions {
    GcOptions {
        keep_builds: 4,
        now,
        delete,
        ..GcOptions::default()
    }
}

/// Packs A (six builds on `dev`, build 1 promoted to `production`) and B
/// (one build sharing a jar with A's build 2), plus leftovers: a failed
/// publish's blobs, a probe object, format-1.1 packwiz files and objects gc
/// does not know.
struct World {
    key: SecretKey,
    a: Vec<Sha256Digest>,
    b: Sha256Digest,
    leftovers: Vec<String>,
    unknown: Vec<String>,
}

async fn populate(store: &dyn Store, exports: &ExportOptions) -> World {
    let key = SecretKey::from_seed(&[4; 32]);
    let mut a = Vec::new();
    for i in 1..=6 {
        a.push(publish(store, &key, exports, &repo_a(i), "dev").await);
    }
    atlas_builder::promote::run(PromoteRequest {
        store,
        key: &key,
        trusted: &[],
        pack: A,
        from: PromoteFrom::Build(a[0]),
        to: "production",
        now: now_secs(),
        lifetime: 30 * DAY,
        exports: Some(exports),
        player_tools: None,
    })
    .await
    .expect("promote");
    let b = publish(store, &key, exports, &repo(B, "b", &[("x.jar", only(2))]), "dev").await;
    let put = |k: String, v: &'static [u8]| async move {
        store
            .put_immutable(&k, Body::Bytes(bytes::Bytes::from_static(v)), ObjectMeta::BLOB)
            .await
            .expect("put");
        k
    };
    let mut leftovers = Vec::new();
    for orphan in [&b"orphan one"[..], b"orphan two"] {
        leftovers.push(put(layout::blob_key(&Sha256Digest::of(orphan)), orphan).await);
    }
    leftovers.push(put("atlas-probe/0123456789abcdef".into(), b"probe").await);
    let legacy = layout::packwiz_prefix(A, "dev");
    leftovers.push(put(format!("{legacy}index.toml"), b"hash-format = \"sha256\"\n").await);
    leftovers.push(put(format!("{legacy}mods/legacy.jar.pw.toml"), b"name = \"legacy\"\n").await);
    let mut unknown = Vec::new();
    unknown.push(put(format!("packs/{A}/keys/1.json"), b"{}").await);
    unknown.push(put("index.html".into(), b"<html></html>").await);
    unknown.push(put(format!("packs/{A}/notes.txt"), b"mine").await);
    World {
        key,
        a,
        b,
        leftovers,
        unknown,
    }
}

/// What gc must delete from `populate`'s store once everything is old:
/// build 2 of A (no channel keeps it), its own config blob, A's dev packwiz
/// files of builds 1 and 2 that builds 3-6 do not share, and the leftovers.
async fn expected(store: &dyn Store, exports: &ExportOptions, w: &World) -> BTreeSet<String> {
    let manifest = |b: Sha256Digest| async move {
        let bytes = atlas_builder::builds::manifest_bytes(store, A, &b)
            .await
            .expect("manifest");
        atlas_proto::manifest::decode(&bytes, &atlas_proto::Limits::DEFAULT.manifest).expect("decode")
    };
    let mut want: BTreeSet<String> = w.leftovers.iter().cloned().collect();
    want.insert(layout::manifest_key(A, &w.a[1]));
    want.insert(layout::mrpack_key(A, &w.a[1]));
    want.insert(layout::blob_key(&Sha256Digest::of(b"a2\n")));
    let dev = layout::packwiz_prefix(A, "dev");
    let mut kept = BTreeSet::new();
    for b in &w.a[2..] {
        kept.extend(
            tree(&manifest(*b).await, b, exports)
                .expect("tree")
                .files()
                .into_keys(),
        );
    }
    for b in &w.a[..2] {
        for name in tree(&manifest(*b).await, b, exports)
            .expect("tree")
            .files()
            .into_keys()
        {
            if !kept.contains(&name) {
                want.insert(format!("{dev}{name}"));
            }
        }
    }
    want
}

fn deleted(r: &GcReport) -> BTreeSet<String> {
    r.deleted.iter().map(|d| d.key.clone()).collect()
}

async fn exactly_the_unreferenced_old_objects(store: &dyn Store, exports: &ExportOptions) {
    let w = populate(store, exports).await;
    let want = expected(store, exports, &w).await;
    let before = store.list("").await.expect("list").len();

    // Now: every build was live within the grace period (so every channel
    // keeps all of its builds), and the two orphans and the probe are young.
    let r = gc::run(store, A, options(SystemTime::now(), false))
        .await
        .expect("gc");
    assert!(r.deleted.is_empty(), "{:?}", r.deleted);
    assert_eq!(r.kept_young.objects, 3, "{:?}", r.kept_young);
    let dev = r.channels.iter().find(|c| c.channel == "dev").expect("dev");
    assert_eq!(dev.kept.len(), 6, "all live within the grace period");

    // Three days on, a dry run lists exactly the garbage and deletes nothing.
    let later = SystemTime::now() + 3 * DAY;
    let dry = gc::run(store, A, options(later, false)).await.expect("gc");
    assert!(dry.dry_run);
    assert_eq!(deleted(&dry), want);
    assert_eq!(dry.freed.objects, want.len());
    assert_eq!(dry.freed.bytes, dry.deleted.iter().map(|d| d.size).sum::<u64>());
    assert_eq!(
        dry.by_class.values().map(|t| t.objects).sum::<usize>(),
        want.len()
    );
    assert_eq!(store.list("").await.expect("list").len(), before);
    let dev = dry.channels.iter().find(|c| c.channel == "dev").expect("dev");
    let kept: Vec<String> = w.a[2..].iter().rev().map(Sha256Digest::to_hex).collect();
    assert_eq!(dev.kept, kept, "the current build and the three before it");
    let prod = dry
        .channels
        .iter()
        .find(|c| c.channel == "production")
        .expect("production");
    assert_eq!(prod.kept, [w.a[0].to_hex()]);

    // --delete deletes just that.
    let done = gc::run(store, A, options(later, true)).await.expect("gc");
    assert!(!done.dry_run);
    assert_eq!(deleted(&done), want);
    let left: BTreeSet<String> = store
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(left.len(), before - want.len());
    assert!(left.is_disjoint(&want));
    for k in &w.unknown {
        assert!(left.contains(k), "{k} is not gc's to delete");
    }
    // Every kept build is whole, and every channel is still one build.
    for b in [w.a[0], w.a[2], w.a[3], w.a[4], w.a[5]] {
        check_blobs(store, A, &b).await;
    }
    check_blobs(store, B, &w.b).await;
    assert_eq!(check_one_build(store, exports, A, "dev").await, w.a[5]);
    assert_eq!(check_one_build(store, exports, A, "production").await, w.a[0]);
    assert_eq!(check_one_build(store, exports, B, "dev").await, w.b);
    // A second run finds nothing more; a rollback to a kept build still works.
    let again = gc::run(store, A, options(later, true)).await.expect("gc");
    assert!(again.deleted.is_empty(), "{:?}", again.deleted);
    // The stand-in keyset is no keyset: the pages promote writes would
    // (rightly) refuse it.
    store
        .delete(&[format!("packs/{A}/keys/1.json")])
        .await
        .expect("delete");
    atlas_builder::promote::run(PromoteRequest {
        store,
        key: &w.key,
        trusted: &[],
        pack: A,
        from: PromoteFrom::Build(w.a[2]),
        to: "production",
        now: now_secs(),
        lifetime: DAY,
        exports: Some(exports),
        player_tools: None,
    })
    .await
    .expect("roll back to a kept build");
    // The collected build cannot be promoted: its manifest is gone.
    let gone = atlas_builder::promote::run(PromoteRequest {
        store,
        key: &w.key,
        trusted: &[],
        pack: A,
        from: PromoteFrom::Build(w.a[1]),
        to: "production",
        now: now_secs(),
        lifetime: DAY,
        exports: Some(exports),
        player_tools: None,
    })
    .await
    .expect_err("collected");
    assert!(gone.to_string().contains("is not in"), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_exactly_the_unreferenced_old_objects_of_a_directory_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let http = StaticServer::start(dir.path()).expect("http");
    let exports = ExportOptions::new(&http.url()).expect("url");
    exactly_the_unreferenced_old_objects(&DirStore::new(dir.path()), &exports).await;
    // Build folders go with their last object.
    let builds = std::fs::read_dir(dir.path().join(format!("packs/{A}/builds")))
        .expect("ls")
        .count();
    assert_eq!(builds, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_exactly_the_unreferenced_old_objects_of_an_s3_store() {
    let server = S3Server::start("atlas").expect("s3");
    let store = S3Store::connect("atlas", "cdn", &crate::common::s3_settings(&server))
        .await
        .expect("connect");
    let exports = ExportOptions::new(&server.public_url("cdn")).expect("url");
    exactly_the_unreferenced_old_objects(&store, &exports).await;
}

#[tokio::test]
async fn gc_options_are_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = DirStore::new(dir.path());
    let few = GcOptions {
        keep_builds: 3,
        ..GcOptions::default()
    };
    let err = gc::run(&store, A, few).await.expect_err("too few");
    assert!(err.to_string().contains("at least 4"), "{err}");
    let short = GcOptions {
        grace: Duration::from_secs(60),
        ..GcOptions::default()
    };
    let err = gc::run(&store, A, short).await.expect_err("too short");
    assert!(err.to_string().contains("at least 1h"), "{err}");
    assert!(gc::run(&store, "Bad/Pack", GcOptions::default()).await.is_err());
}

/// A publish to S3 fails after one mod was uploaded while the other was
/// still downloading: the orphan blob stays through the grace period, and
/// goes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publishs_early_uploads_are_collected_after_the_grace_period() {
    let files = tempfile::tempdir().expect("tmp");
    let good = vec![0x5a; 4000];
    std::fs::write(files.path().join("good.jar"), &good).expect("write");
    std::fs::write(files.path().join("bad.jar"), vec![0x33; 4000]).expect("write");
    let http = StaticServer::start(files.path()).expect("http");
    // Arrives slowly, and is not what the pack says.
    http.set_fault(
        "bad.jar",
        Fault::Trickle {
            chunk: 400,
            delay_ms: 100,
        },
    );
    let url = http.url();
    let toml = format!(
        "{}[[mods]]\nurl = \"{url}good.jar\"\nhash = \"sha256:{}\"\n[[mods]]\nurl = \"{url}bad.jar\"\nhash = \"sha256:{}\"\n",
        pack_toml(A),
        Sha256Digest::of(&good),
        Sha256Digest::of(b"something else"),
    );
    let r = GitRepo::init().expect("git");
    r.write("pack.toml", toml).expect("write");
    r.write("config/tag.txt", "t").expect("write");
    r.commit_all("mods").expect("commit");

    let server = S3Server::start("atlas").expect("s3");
    let store = S3Store::connect("atlas", "", &crate::common::s3_settings(&server))
        .await
        .expect("connect");
    let key = SecretKey::from_seed(&[4; 32]);
    let source = PackSource::open(r.path(), false).expect("open");
    let cache = tempfile::tempdir().expect("cache");
    let opts = PublishOptions {
        channel: "dev".into(),
        now: now_secs(),
        pointer_lifetime: DAY,
        dry_run: false,
        concurrency: 4,
        force_pointer: false,
    };
    let req = PublishRequest {
        key: Some(&key),
        ..PublishRequest::new(&source, &store, opts, ModOptions::new(cache.path().to_owned()))
    };
    atlas_builder::publish::run(req)
        .await
        .expect_err("bad.jar has the wrong hash");
    let orphan = layout::blob_key(&Sha256Digest::of(&good));
    assert!(
        store.exists(&orphan).await.expect("exists"),
        "uploaded while bad.jar downloaded"
    );
    assert!(
        store.list("packs/").await.expect("list").is_empty(),
        "no manifest, no pointer"
    );

    let within = gc::run(
        &store,
        A,
        options(SystemTime::now() + 47 * 3600 * Duration::from_secs(1), true),
    )
    .await
    .expect("gc");
    assert!(within.deleted.is_empty(), "{:?}", within.deleted);
    assert_eq!(within.kept_young.objects, 1);
    assert!(store.exists(&orphan).await.expect("exists"));
    let after = gc::run(
        &store,
        A,
        options(SystemTime::now() + 49 * 3600 * Duration::from_secs(1), true),
    )
    .await
    .expect("gc");
    assert_eq!(deleted(&after), BTreeSet::from([orphan.clone()]));
    assert_eq!(
        after.by_class.get("blob").map(|t| (t.objects, t.bytes)),
        Some((1, 4000))
    );
    assert!(!store.exists(&orphan).await.expect("exists"));
}

/// When, during a publish, a hooked store runs a whole `gc --delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// After the publish found which blobs the store has, before its manifest.
    BeforeManifest,
    /// After the manifest, before the pointer.
    BeforePointer,
}

/// The publish's view of the store: runs gc (through its own handle) once, at `moment`.
#[derive(Debug)]
struct Hooked {
    inner: Arc<S3Store>,
    gc_store: Arc<S3Store>,
    moment: Moment,
    report: tokio::sync::Mutex<Option<GcReport>>,
}

impl Hooked {
    async fn maybe_gc(&self, now: Moment) {
        let mut report = self.report.lock().await;
        if now == self.moment && report.is_none() {
            let r = gc::run(&*self.gc_store, A, options(SystemTime::now(), true))
                .await
                .expect("gc");
            *report = Some(r);
        }
    }
}

#[async_trait::async_trait]
impl Store for Hooked {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.exists(key).await
    }
    async fn put_immutable(&self, key: &str, body: Body, meta: ObjectMeta) -> Result<PutOutcome, StoreError> {
        if key.ends_with("/manifest.pb.zst") {
            self.maybe_gc(Moment::BeforeManifest).await;
        }
        self.inner.put_immutable(key, body, meta).await
    }
    async fn get(&self, key: &str, max: u64) -> Result<Option<Object>, StoreError> {
        self.inner.get(key, max).await
    }
    async fn put_cas(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        expected: Expected,
        meta: ObjectMeta,
    ) -> Result<String, StoreError> {
        if key == layout::pointer_key(A, "dev") {
            self.maybe_gc(Moment::BeforePointer).await;
        }
        self.inner.put_cas(key, bytes, expected, meta).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        self.inner.delete(keys).await
    }
    async fn check_conditional_writes(&self) -> Result<(), StoreError> {
        self.inner.check_conditional_writes().await
    }
}

async fn sync(url: &str, key: &SecretKey, dir: &Path) -> atlas_fetcher::Report {
    let mut opts = atlas_fetcher::SyncOptions::new(url, A, "dev", vec![key.public()], dir);
    opts.side = atlas_fetcher::InstallSide::Server;
    atlas_fetcher::Syncer::new(opts)
        .expect("syncer")
        .sync(false, &atlas_fetcher::NoProgress)
        .await
        .expect("the fetcher syncs the new build")
}

/// gc runs while a publish of a build that brings back a collected-looking
/// blob (A's build 2 jar, old and unreferenced) is under way: at the worst
/// moment (between the publish's look at the store and its manifest), after
/// the manifest, and simply at the same time. Each time gc deletes old
/// garbage, the new build is whole, and the fetcher syncs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_during_a_publish_then_the_fetcher_syncs_the_new_build() {
    let server = S3Server::start("atlas").expect("s3");
    let connect = || async {
        Arc::new(
            S3Store::connect("atlas", "cdn", &crate::common::s3_settings(&server))
                .await
                .expect("connect"),
        )
    };
    let store = connect().await;
    let exports = ExportOptions::new(&server.public_url("cdn")).expect("url");
    let key = SecretKey::from_seed(&[4; 32]);
    for (round, moment) in [Some(Moment::BeforeManifest), Some(Moment::BeforePointer), None]
        .into_iter()
        .enumerate()
    {
        // Old history: six builds, everything five days old.
        for i in 1..=6 {
            publish(&*store, &key, &exports, &repo_a(i), "dev").await;
        }
        atlas_testkit::fs::age(&server.data_dir().join("atlas"), 5 * DAY);
        // The new build brings back build 2's jar, garbage by now.
        let jars = [("shared.jar", vec![1; 2000]), ("only-2.jar", only(2))];
        let new = repo(A, &format!("new-{round}"), &jars);
        let (build, report) = match moment {
            Some(moment) => {
                let hooked = Hooked {
                    inner: Arc::clone(&store),
                    gc_store: connect().await,
                    moment,
                    report: tokio::sync::Mutex::new(None),
                };
                let build = publish(&hooked, &key, &exports, &new, "dev").await;
                (build, hooked.report.lock().await.take().expect("gc ran"))
            }
            None => {
                let gc_store = connect().await;
                let (build, report) = tokio::join!(
                    publish(&*store, &key, &exports, &new, "dev"),
                    gc::run(&*gc_store, A, options(SystemTime::now(), true)),
                );
                (build, report.expect("gc"))
            }
        };
        assert!(
            report.freed.objects > 0,
            "round {round}: gc had garbage to delete"
        );
        if moment == Some(Moment::BeforeManifest) {
            let jar = layout::blob_key(&Sha256Digest::of(&only(2)));
            assert!(
                deleted(&report).contains(&jar),
                "gc took the jar the publish had found"
            );
        }
        check_blobs(&*store, A, &build).await;
        assert_eq!(check_one_build(&*store, &exports, A, "dev").await, build);
        let dir = tempfile::tempdir().expect("server dir");
        let synced = sync(&server.public_url("cdn"), &key, dir.path()).await;
        assert_eq!(synced.build, build.to_hex(), "round {round}");
        assert_eq!(
            std::fs::read(dir.path().join("mods/only-2.jar")).expect("installed"),
            only(2)
        );
    }
}
