//! End to end with mods: a synthetic 300-mod pack split across a fake
//! Modrinth, a fake CurseForge and a plain file host (all on 127.0.0.1),
//! built and published to the in-process S3 server; rebuilds are
//! reproducible and incremental, and a warm cache makes no download requests.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_builder::build::plan_pack;
use atlas_builder::download::{RetryPolicy, Sleeper, WriteMode};
use atlas_builder::plan::{BuildPlan, PlanOptions};
use atlas_builder::publish::{PublishOptions, PublishReport, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::{ModOptions, ModsReport};
use atlas_builder::store::{S3Settings, S3Store};
use atlas_proto::SecretKey;
use atlas_proto::v1::HashAlgorithm;
use atlas_testkit::curseforge::{API_KEY, CurseForgeServer};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;
use atlas_testkit::modrinth::ModrinthServer;
use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};
use sha2::Digest as _;

/// Records waits instead of sleeping.
#[derive(Debug, Default)]
pub struct NoSleep(pub Mutex<Vec<Duration>>);

impl Sleeper for NoSleep {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0.lock().expect("waits").push(d);
        Box::pin(async {})
    }
}

/// A deterministic "jar" of a few KiB for mod `i`, variant `v`.
fn jar(i: usize, v: u8) -> Vec<u8> {
    let len = 2048 + (i * 37) % 3072;
    let seed = sha2::Sha256::digest(format!("mod-{i}-{v}").as_bytes());
    (0..len).map(|k| seed[k % 32] ^ (k as u8)).collect()
}

struct World {
    modrinth: ModrinthServer,
    curseforge: CurseForgeServer,
    files: StaticServer,
    _files_dir: tempfile::TempDir,
    repo: GitRepo,
    cache: tempfile::TempDir,
    sleeper: Arc<NoSleep>,
}

const MODS: usize = 300;

impl World {
    fn new() -> Self {
        let modrinth = ModrinthServer::start().expect("modrinth");
        let curseforge = CurseForgeServer::start().expect("curseforge");
        let files_dir = tempfile::tempdir().expect("tmp");
        let files = StaticServer::start(files_dir.path()).expect("file host");
        let repo = GitRepo::init().expect("git");
        let mut toml = String::from(
            "id = \"big\"\nname = \"Big Pack\"\nversion = \"1.0.0\"\nminecraft = \"1.21.1\"\n\
             loader = { kind = \"fabric\", version = \"0.16.9\" }\n\n[[files]]\ninclude = [\"config/**\"]\n",
        );
        for i in 0..MODS {
            let bytes = jar(i, 0);
            let side = ["both", "client", "server"][i % 3];
            match i % 3 {
                0 => {
                    let (project, id) = (format!("proj{i:04}"), format!("ver{i:05}"));
                    modrinth.add_version(&project, &id, "1.0.0", &format!("mr-{i}.jar"), &bytes);
                    writeln!(
                        toml,
                        "\n[[mods]]\nmodrinth = {{ project = \"{project}\", version = \"{id}\" }}\nside = \"{side}\""
                    )
                    .expect("fmt");
                }
                1 => {
                    let (project, file) = (10_000 + i as u64, 500_000 + i as u64);
                    curseforge.add_file(project, file, &format!("cf-{i}.jar"), &bytes, true);
                    writeln!(
                        toml,
                        "\n[[mods]]\ncurseforge = {{ project = {project}, file = {file} }}\nside = \"{side}\"\noptional = {}",
                        i % 7 == 0
                    )
                    .expect("fmt");
                }
                _ => {
                    std::fs::write(files_dir.path().join(format!("url-{i}.jar")), &bytes).expect("write");
                    let hash = hex::encode(sha2::Sha512::digest(&bytes));
                    writeln!(
                        toml,
                        "\n[[mods]]\nurl = \"{}url-{i}.jar\"\nhash = \"sha512:{hash}\"\nside = \"{side}\"",
                        files.url()
                    )
                    .expect("fmt");
                }
            }
        }
        repo.write("pack.toml", &toml).expect("write");
        for c in 0..20 {
            repo.write(&format!("config/c{c}.json"), format!("{{\"n\": {c}}}\n"))
                .expect("write");
        }
        repo.commit_all("pack").expect("commit");
        Self {
            modrinth,
            curseforge,
            files,
            _files_dir: files_dir,
            repo,
            cache: tempfile::tempdir().expect("cache"),
            sleeper: Arc::default(),
        }
    }

    fn options(&self) -> ModOptions {
        let mut o = ModOptions::new(self.cache.path().to_owned());
        o.resolve.modrinth_api = self.modrinth.url();
        o.resolve.curseforge_api = self.curseforge.url();
        o.resolve.curseforge_key = Some(API_KEY.to_owned());
        o.download.retry = RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        };
        o.sleeper = self.sleeper.clone();
        o
    }

    /// Publishes HEAD to `store` with `options`: the plan, what fetching
    /// the mods did, and what the publish did.
    async fn publish_with(
        &self,
        store: &S3Store,
        options: ModOptions,
    ) -> (BuildPlan, ModsReport, PublishReport) {
        let source = PackSource::open(self.repo.path(), false).expect("open");
        let key = SecretKey::from_seed(&[7; 32]);
        let req = PublishRequest {
            key: Some(&key),
            ..PublishRequest::new(&source, store, publish_options(), options)
        };
        let published = atlas_builder::publish::run(req).await.expect("publish");
        let mods = published.report.mods.clone();
        (published.plan, mods, published.report)
    }

    async fn publish(&self, store: &S3Store) -> (BuildPlan, ModsReport, PublishReport) {
        self.publish_with(store, self.options()).await
    }

    fn download_requests(&self) -> usize {
        let cdn = |p: &str| p.starts_with("/data/");
        // CurseForge's files come from its CDN, another origin than its API.
        self.modrinth.requests().iter().filter(|r| cdn(&r.path)).count()
            + self.curseforge.cdn_requests().len()
            + self.files.count()
    }
}

async fn s3_store(server: &S3Server) -> S3Store {
    let settings = S3Settings {
        endpoint: Some(server.endpoint()),
        region: Some(REGION.to_owned()),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        session_token: None,
        force_path_style: true,
    };
    S3Store::connect(server.bucket(), "", &settings)
        .await
        .expect("connect")
}

fn publish_options() -> PublishOptions {
    PublishOptions {
        channel: "dev".into(),
        now: 1_000_000,
        pointer_lifetime: Duration::from_secs(3600),
        dry_run: false,
        concurrency: 8,
        force_pointer: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_mods_build_publish_and_rebuild_incrementally() {
    let world = World::new();
    let s3 = S3Server::start("atlas").expect("s3");
    let store = s3_store(&s3).await;

    // Cold build: every mod downloaded once, every blob uploaded.
    let (plan, report, published) = world.publish(&store).await;
    assert_eq!(report.mods, MODS);
    assert_eq!(
        (report.downloaded, report.cached, report.upstream_only),
        (MODS, 0, 0)
    );
    assert_eq!(world.download_requests(), MODS);
    assert_eq!(plan.manifest.files.len(), MODS + 20);
    assert_eq!(published.blobs_new, MODS + 20);
    assert_eq!(published.blobs_reused, 0);

    // Manifest entries carry upstreams with origin and hashes, side and options.
    let mr = plan
        .manifest
        .files
        .iter()
        .find(|f| f.path == "mods/mr-0.jar")
        .expect("modrinth mod");
    assert_eq!(mr.upstreams.len(), 1);
    assert_eq!(mr.upstreams[0].origin, "modrinth:proj0000/ver00000");
    assert!(mr.upstreams[0].url.starts_with(&world.modrinth.url()));
    let algos: Vec<i32> = mr.upstreams[0].hashes.iter().map(|h| h.algorithm).collect();
    assert_eq!(algos, [HashAlgorithm::Sha1 as i32, HashAlgorithm::Sha512 as i32]);
    assert_eq!(mr.sha256, sha2::Sha256::digest(jar(0, 0)).to_vec());
    let cf = plan
        .manifest
        .files
        .iter()
        .find(|f| f.path == "mods/cf-7.jar")
        .expect("curseforge mod");
    assert_eq!(cf.upstreams[0].origin, "curseforge:10007/500007");
    assert!(cf.optional && !cf.upstream_only);
    assert_eq!(cf.side, atlas_proto::v1::Side::Client as i32);

    // Rebuild of the same commit with a warm cache: no downloads, same build, nothing uploaded.
    world.modrinth.reset_requests();
    world.curseforge.reset_requests();
    world.files.reset_requests();
    let (plan2, report2, again) = world.publish(&store).await;
    assert_eq!(world.download_requests(), 0, "warm cache must not download");
    assert_eq!(
        (report2.downloaded, report2.cached, report2.requests),
        (0, MODS, 0)
    );
    assert_eq!(plan2.build_id, plan.build_id);
    assert_eq!(plan2.manifest_bytes, plan.manifest_bytes);
    assert_eq!((again.blobs_new, again.bytes_new), (0, 0));
    assert_eq!(again.blobs_reused, MODS + 20);
    assert!(!again.manifest_new);

    // A cold cache elsewhere (another machine) gives the same build id; this
    // one is written as for a directory store (O_DIRECT where supported), and
    // every cached file holds exactly the bytes its name says.
    let other_cache = tempfile::tempdir().expect("tmp");
    let mut o = world.options();
    o.cache_dir = other_cache.path().to_owned();
    o.download.write_mode = WriteMode::Direct;
    let source2 = PackSource::open(world.repo.path(), false).expect("open");
    let (plan3, _) = plan_pack(&source2, &PlanOptions::default(), &o)
        .await
        .expect("plan");
    assert_eq!(plan3.build_id, plan.build_id);
    let mut cached = 0;
    for shard in std::fs::read_dir(other_cache.path().join("sha256")).expect("ls") {
        for f in std::fs::read_dir(shard.expect("shard").path()).expect("ls") {
            let path = f.expect("file").path();
            let bytes = std::fs::read(&path).expect("read");
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), name);
            cached += 1;
        }
    }
    assert_eq!(cached, MODS, "every downloaded mod is in the cache");

    // Change one mod: one new blob.
    let changed = jar(2, 1);
    std::fs::write(world.files.root().join("url-2.jar"), &changed).expect("write");
    let toml = std::fs::read_to_string(world.repo.path().join("pack.toml")).expect("read");
    let toml = toml.replace(
        &hex::encode(sha2::Sha512::digest(jar(2, 0))),
        &hex::encode(sha2::Sha512::digest(&changed)),
    );
    world.repo.write("pack.toml", toml).expect("write");
    world.repo.commit_all("update one mod").expect("commit");
    world.files.reset_requests();
    let (plan4, report4, one) = world.publish(&store).await;
    assert_eq!((report4.downloaded, report4.cached), (1, MODS - 1));
    assert_eq!(world.files.count(), 1);
    assert_ne!(plan4.build_id, plan.build_id);
    assert_eq!(one.blobs_new, 1);
    assert_eq!(one.bytes_new, changed.len() as u64);
    assert!(one.manifest_new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_mods_upload_while_the_rest_download_and_count_as_new() {
    let world = World::new();
    let s3 = S3Server::start("atlas").expect("s3");
    let store = s3_store(&s3).await;

    // A remote store: the publish uploads mirrored mods as they land, while
    // the rest download, then finds them stored and uploads the 20
    // repository files; every blob counts as new (this run wrote them).
    let (plan, report, published) = world.publish(&store).await;
    assert_eq!((report.downloaded, report.upstream_only), (MODS, 0));
    let early = published.early.expect("a remote store uploads early");
    assert_eq!((early.created.len(), early.failed), (MODS, 0));
    for d in &early.created {
        assert!(plan.blobs.contains_key(d), "only blobs of the plan go up early");
    }
    let mods_bytes: u64 = early
        .created
        .iter()
        .map(|d| plan.blobs.get(d).expect("in plan").size)
        .sum();
    assert_eq!(early.bytes, mods_bytes);
    let total: u64 = plan.blobs.values().map(|b| b.size).sum();
    assert_eq!(
        (published.blobs_new, published.blobs_reused, published.bytes_new),
        (MODS + 20, 0, total)
    );
    assert!(published.pointer.is_some());

    // Upstream-only mods never go to the store early, even from a warm cache.
    let s3b = S3Server::start("other").expect("s3");
    let other = s3_store(&s3b).await;
    let mut o = world.options();
    o.mirror_override = Some(atlas_builder::settings::MirrorMode::Upstream);
    let (_, report, published) = world.publish_with(&other, o).await;
    assert_eq!((report.cached, report.upstream_only), (MODS, MODS));
    assert_eq!(
        published.early,
        Some(atlas_builder::publish::early::EarlyUploads::default())
    );
}
