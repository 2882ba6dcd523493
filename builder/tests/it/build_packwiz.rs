//! A packwiz pack in git, built with `plan_pack` against a fake Modrinth (its
//! CDN), a fake CurseForge (`metadata:curseforge`) and a plain file host, and
//! published to a directory store: manifest entries keep the metafiles'
//! paths, sides, options, preserve flags and upstreams; the `[index]` hash of
//! `pack.toml` is enforced; a second build is byte-identical.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_builder::build::{BuildError, plan_pack};
use atlas_builder::download::{RetryPolicy, Sleeper};
use atlas_builder::plan::{BuildPlan, PlanOptions};
use atlas_builder::publish::{PublishOptions, PublishReport, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::{ModOptions, ModsReport};
use atlas_builder::store::DirStore;
use atlas_proto::v1::{File, HashAlgorithm, LoaderKind, Side};
use atlas_proto::{SecretKey, layout};
use atlas_testkit::curseforge::{API_KEY, CurseForgeServer};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;
use atlas_testkit::modrinth::ModrinthServer;
use sha1::Digest as _;

#[derive(Debug, Default)]
struct NoSleep(Mutex<Vec<Duration>>);

impl Sleeper for NoSleep {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0.lock().expect("waits").push(d);
        Box::pin(async {})
    }
}

fn sha1_hex(b: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(b))
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn sha512_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha512::digest(b))
}

const SODIUM: &[u8] = b"sodium jar bytes";
const SERVER_UTILS: &[u8] = b"server utils jar bytes";
const JEI: &[u8] = b"jei jar bytes";
const ZOOM: &[u8] = b"zoomify jar bytes";
const SETTINGS: &str = "{\"fov\": 90}\n";
const README: &str = "shared notes\n";

struct World {
    modrinth: ModrinthServer,
    curseforge: CurseForgeServer,
    files: StaticServer,
    _files_dir: tempfile::TempDir,
    repo: GitRepo,
    cache: tempfile::TempDir,
    sodium_url: String,
    jei_url: String,
}

impl World {
    fn new() -> Self {
        let modrinth = ModrinthServer::start().expect("modrinth");
        let curseforge = CurseForgeServer::start().expect("curseforge");
        let files_dir = tempfile::tempdir().expect("tmp");
        let files = StaticServer::start(files_dir.path()).expect("file host");
        let repo = GitRepo::init().expect("git");

        let sodium = modrinth.add_version("AANobbMI", "sodiumv1", "0.6.0", "sodium-0.6.0.jar", SODIUM);
        let jei = curseforge.add_file(238_222, 4_712_866, "jei-19.0.jar", JEI, true);
        // Served under its percent-encoded name: the URL is requested exactly as written.
        std::fs::write(files_dir.path().join("server-utils%2B1.jar"), SERVER_UTILS).expect("write");
        std::fs::write(files_dir.path().join("zoomify.jar"), ZOOM).expect("write");

        let metafiles = [
            (
                "mods/sodium.pw.toml",
                format!(
                    "name = \"Sodium\"\nfilename = \"sodium-0.6.0.jar\"\nside = \"client\"\n\n[download]\n\
                     url = \"{}\"\nhash-format = \"sha512\"\nhash = \"{}\"\n\n[update]\n[update.modrinth]\n\
                     mod-id = \"AANobbMI\"\nversion = \"sodiumv1\"\n",
                    sodium.url, sodium.sha512
                ),
            ),
            (
                "mods/server-utils.pw.toml",
                // CRLF line ends, as packwiz writes on Windows.
                format!(
                    "name = \"Server Utils\"\nfilename = \"Server Utils+1.jar\"\nside = \"server\"\n\n\
                     [download]\nurl = \"{}server-utils%2B1.jar\"\nhash-format = \"sha1\"\nhash = \"{}\"\n",
                    files.url(),
                    sha1_hex(SERVER_UTILS)
                )
                .replace('\n', "\r\n"),
            ),
            (
                "mods/jei.pw.toml",
                format!(
                    "name = \"Just Enough Items\"\nfilename = \"jei-19.0.jar\"\nside = \"both\"\n\n[download]\n\
                     hash-format = \"sha1\"\nhash = \"{}\"\nmode = \"metadata:curseforge\"\n\n[update]\n\
                     [update.curseforge]\nfile-id = 4712866\nproject-id = 238222\n",
                    jei.sha1
                ),
            ),
            (
                "mods/extras/zoomify.pw.toml",
                format!(
                    "name = \"Zoomify\"\nfilename = \"zoomify.jar\"\nside = \"client\"\n\n[download]\n\
                     url = \"{}zoomify.jar\"\nhash-format = \"sha256\"\nhash = \"{}\"\n\n[option]\n\
                     optional = true\ndefault = false\ndescription = \"A zoom key\"\n",
                    files.url(),
                    sha256_hex(ZOOM)
                ),
            ),
        ];
        let mut index = String::from("hash-format = \"sha256\"\n");
        for (path, text) in &metafiles {
            repo.write(path, text).expect("write");
            writeln!(
                index,
                "\n[[files]]\nfile = \"{path}\"\nhash = \"{}\"\nmetafile = true",
                sha256_hex(text.as_bytes())
            )
            .expect("fmt");
        }
        repo.write("config/settings.json", SETTINGS).expect("write");
        writeln!(
            index,
            "\n[[files]]\nfile = \"config/settings.json\"\nhash = \"{}\"\npreserve = true",
            sha256_hex(SETTINGS.as_bytes())
        )
        .expect("fmt");
        repo.write("config/read me.txt", README).expect("write");
        writeln!(
            index,
            "\n[[files]]\nfile = \"config/read me.txt\"\nhash-format = \"md5\"\nhash = \"{}\"",
            hex::encode(md5_digest(README.as_bytes()))
        )
        .expect("fmt");
        repo.write("index.toml", &index).expect("write");
        repo.write("pack.toml", pack_toml(&index)).expect("write");
        repo.commit_all("packwiz pack").expect("commit");
        Self {
            modrinth,
            curseforge,
            files,
            _files_dir: files_dir,
            repo,
            cache: tempfile::tempdir().expect("cache"),
            sodium_url: sodium.url,
            jei_url: jei.download_url.expect("distributable"),
        }
    }

    fn options(&self, cache: &std::path::Path) -> ModOptions {
        let mut o = ModOptions::new(cache.to_owned());
        o.resolve.modrinth_api = self.modrinth.url();
        o.resolve.curseforge_api = self.curseforge.url();
        o.resolve.curseforge_key = Some(API_KEY.to_owned());
        o.download.retry = RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        };
        o.sleeper = Arc::new(NoSleep::default());
        o
    }

    async fn plan(&self, cache: &std::path::Path) -> Result<(BuildPlan, ModsReport), BuildError> {
        let source = PackSource::open(self.repo.path(), false).expect("open");
        plan_pack(&source, &PlanOptions::default(), &self.options(cache)).await
    }

    /// Publishes HEAD: the plan, what fetching the mods did, and what the publish did.
    async fn publish(
        &self,
        store: &DirStore,
        cache: &std::path::Path,
    ) -> (BuildPlan, ModsReport, PublishReport) {
        let source = PackSource::open(self.repo.path(), false).expect("open");
        let opts = PublishOptions {
            channel: "dev".into(),
            now: 1_000_000,
            pointer_lifetime: Duration::from_secs(3600),
            dry_run: false,
            concurrency: 4,
            force_pointer: false,
        };
        let key = SecretKey::from_seed(&[9; 32]);
        let req = PublishRequest {
            key: Some(&key),
            ..PublishRequest::new(&source, store, opts, self.options(cache))
        };
        let published = atlas_builder::publish::run(req).await.expect("publish");
        let mods = published.report.mods.clone();
        (published.plan, mods, published.report)
    }
}

fn md5_digest(b: &[u8]) -> Vec<u8> {
    use md5::Digest as _;
    md5::Md5::digest(b).to_vec()
}

fn pack_toml(index: &str) -> String {
    format!(
        "name = \"Packwiz Fixture\"\nauthor = \"atlas\"\nversion = \"2.3.0\"\npack-format = \"packwiz:1.1.0\"\n\n\
         [index]\nfile = \"index.toml\"\nhash-format = \"sha256\"\nhash = \"{}\"\n\n[versions]\n\
         minecraft = \"1.21.1\"\nfabric = \"0.16.9\"\n",
        sha256_hex(index.as_bytes())
    )
}

fn entry<'a>(plan: &'a BuildPlan, path: &str) -> &'a File {
    plan.manifest
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no manifest entry `{path}`"))
}

fn hash_of(f: &File, algo: HashAlgorithm) -> Option<String> {
    f.upstreams[0]
        .hashes
        .iter()
        .find(|h| h.algorithm == algo as i32)
        .map(|h| hex::encode(&h.value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packwiz_pack_builds_publishes_and_rebuilds_identically() {
    let world = World::new();
    // Published to a directory store: every blob and the manifest.
    let store_dir = tempfile::tempdir().expect("store");
    let store = DirStore::new(store_dir.path());
    let (plan, report, first) = world.publish(&store, world.cache.path()).await;
    assert_eq!((report.mods, report.downloaded, report.cached), (4, 4, 0));

    let m = &plan.manifest;
    assert_eq!(
        (m.pack_id.as_str(), m.name.as_str(), m.version.as_str()),
        ("packwiz-fixture", "Packwiz Fixture", "2.3.0")
    );
    assert_eq!(m.minecraft_version, "1.21.1");
    let loader = m.loader.clone().expect("loader");
    assert_eq!(
        (loader.kind, loader.version.as_str()),
        (LoaderKind::Fabric as i32, "0.16.9")
    );
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "config/read me.txt",
            "config/settings.json",
            "mods/Server Utils+1.jar",
            "mods/extras/zoomify.jar",
            "mods/jei-19.0.jar",
            "mods/sodium-0.6.0.jar",
        ],
        "metafiles, pack.toml and index.toml are never installed"
    );

    // Modrinth CDN URL (url mode): origin from [update.modrinth], the declared sha512.
    let sodium = entry(&plan, "mods/sodium-0.6.0.jar");
    assert_eq!(sodium.side, Side::Client as i32);
    assert_eq!(
        (
            sodium.display_name.as_str(),
            sodium.optional,
            sodium.default_enabled
        ),
        ("Sodium", false, true)
    );
    assert_eq!(sodium.upstreams.len(), 1);
    assert_eq!(sodium.upstreams[0].url, world.sodium_url);
    assert_eq!(sodium.upstreams[0].origin, "modrinth:AANobbMI/sodiumv1");
    assert_eq!(hash_of(sodium, HashAlgorithm::Sha512), Some(sha512_hex(SODIUM)));
    assert_eq!(sodium.sha256, sha2::Sha256::digest(SODIUM).to_vec());
    assert_eq!(sodium.size, SODIUM.len() as u64);
    assert!(!sodium.upstream_only);

    // A plain URL (percent-encoded, CRLF metafile): server side, origin "url".
    let utils = entry(&plan, "mods/Server Utils+1.jar");
    assert_eq!(utils.side, Side::Server as i32);
    assert_eq!(
        utils.upstreams[0].url,
        format!("{}server-utils%2B1.jar", world.files.url())
    );
    assert_eq!(utils.upstreams[0].origin, "url");
    assert_eq!(hash_of(utils, HashAlgorithm::Sha1), Some(sha1_hex(SERVER_UTILS)));

    // metadata:curseforge: resolved through the API, URL and origin from it.
    let jei = entry(&plan, "mods/jei-19.0.jar");
    assert_eq!(jei.side, Side::Both as i32);
    assert_eq!(jei.upstreams[0].url, world.jei_url);
    assert_eq!(jei.upstreams[0].origin, "curseforge:238222/4712866");
    assert_eq!(hash_of(jei, HashAlgorithm::Sha1), Some(sha1_hex(JEI)));
    assert!(
        world
            .curseforge
            .requests()
            .iter()
            .any(|r| r.path == "/v1/mods/files"),
        "the CurseForge API was asked"
    );

    // A metafile in a subfolder: installed beside it; optional, off by default.
    let zoom = entry(&plan, "mods/extras/zoomify.jar");
    assert_eq!(zoom.side, Side::Client as i32);
    assert!(zoom.optional && !zoom.default_enabled);
    assert_eq!(zoom.description, "A zoom key");
    assert_eq!(hash_of(zoom, HashAlgorithm::Sha256), Some(sha256_hex(ZOOM)));

    // Plain files from the repository: preserve as the index says, no upstream.
    let settings = entry(&plan, "config/settings.json");
    assert!(settings.preserve && settings.upstreams.is_empty());
    assert_eq!(settings.side, Side::Both as i32);
    let readme = entry(&plan, "config/read me.txt");
    assert!(!readme.preserve && readme.upstreams.is_empty());

    assert_eq!((first.blobs_new, first.blobs_reused), (6, 0));
    assert_eq!(first.mods, report, "the publish report carries the mods report");
    assert!(first.mods.bytes_downloaded > 0);
    for f in &m.files {
        let digest = atlas_proto::Sha256Digest(f.sha256.clone().try_into().expect("32 bytes"));
        let blob = std::fs::read(store_dir.path().join(layout::blob_key(&digest))).expect("blob stored");
        assert_eq!(blob.len() as u64, f.size, "{}", f.path);
    }
    let stored = std::fs::read(store_dir.path().join(&first.manifest_key)).expect("manifest stored");
    assert_eq!(stored, plan.manifest_bytes);

    // Second build, warm cache: nothing downloaded, byte-identical manifest.
    world.modrinth.reset_requests();
    world.files.reset_requests();
    let (plan2, report2, second) = world.publish(&store, world.cache.path()).await;
    assert_eq!((report2.downloaded, report2.cached), (0, 4));
    assert_eq!(world.files.count(), 0);
    assert_eq!(plan2.manifest_bytes, plan.manifest_bytes);
    assert_eq!(plan2.build_id, plan.build_id);
    assert_eq!((second.blobs_new, second.bytes_new), (0, 0));
    assert!(!second.manifest_new);
    assert_eq!((second.mods.cached, second.mods.bytes_downloaded), (4, 0));

    // Another machine (cold cache): the same bytes again.
    let other = tempfile::tempdir().expect("cache");
    let (plan3, report3) = world.plan(other.path()).await.expect("plan");
    assert_eq!(report3.downloaded, 4);
    assert_eq!(plan3.manifest_bytes, plan.manifest_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_index_fails_naming_the_file() {
    let world = World::new();
    let index = std::fs::read_to_string(world.repo.path().join("index.toml")).expect("read");
    world
        .repo
        .write("index.toml", format!("{index}\n# edited by hand\n"))
        .expect("write");
    world.repo.commit_all("edit index").expect("commit");
    let err = match world.plan(world.cache.path()).await {
        Ok(_) => panic!("a tampered index must not build"),
        Err(e) => e,
    };
    assert!(matches!(err, BuildError::Packwiz(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("pack.toml:") && msg.contains("[index] hash does not match index.toml"),
        "{msg}"
    );
    assert!(msg.contains("packwiz refresh"), "{msg}");

    // A metafile edited without `packwiz refresh`: the index names it.
    world.repo.write("index.toml", &index).expect("write");
    let sodium = std::fs::read_to_string(world.repo.path().join("mods/sodium.pw.toml")).expect("read");
    world
        .repo
        .write(
            "mods/sodium.pw.toml",
            sodium.replace("side = \"client\"", "side = \"both\""),
        )
        .expect("write");
    world.repo.commit_all("edit metafile").expect("commit");
    let msg = match world.plan(world.cache.path()).await {
        Ok(_) => panic!("a metafile that does not match the index must not build"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("index.toml:") && msg.contains("`mods/sodium.pw.toml` does not match its hash"),
        "{msg}"
    );
    assert_eq!(
        world.files.count(),
        0,
        "nothing is downloaded for an invalid pack"
    );
}
