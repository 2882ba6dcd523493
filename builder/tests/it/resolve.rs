//! Resolvers and downloads against fake Modrinth, CurseForge and file hosts on
//! 127.0.0.1: every failure names the mod, the URL and what to do; transient
//! failures are retried; rate limits and Retry-After are waited out (recorded,
//! never slept for real).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_builder::download::{RetryPolicy, Sleeper};
use atlas_builder::packwiz::{HashFormat, UpstreamHash};
use atlas_builder::resolve::{FetchError, ModOptions, ModSource, ModSpec, fetch_mods};
use atlas_proto::v1::Side;
use atlas_testkit::curseforge::{API_KEY, CurseForgeServer};
use atlas_testkit::http::StaticServer;
use atlas_testkit::modrinth::{FakeFault, ModrinthServer};

#[derive(Debug, Default)]
struct NoSleep(Mutex<Vec<Duration>>);

impl Sleeper for NoSleep {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0.lock().expect("waits").push(d);
        Box::pin(async {})
    }
}

impl NoSleep {
    fn waits(&self) -> Vec<Duration> {
        self.0.lock().expect("waits").clone()
    }
}

struct Fakes {
    modrinth: ModrinthServer,
    curseforge: CurseForgeServer,
    files: StaticServer,
    files_dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    sleeper: Arc<NoSleep>,
}

impl Fakes {
    fn start() -> Self {
        let files_dir = tempfile::tempdir().expect("tmp");
        Self {
            modrinth: ModrinthServer::start().expect("modrinth"),
            curseforge: CurseForgeServer::start().expect("curseforge"),
            files: StaticServer::start(files_dir.path()).expect("files"),
            files_dir,
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
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            max_retry_after: Duration::from_secs(600),
        };
        o.sleeper = self.sleeper.clone();
        o
    }

    fn host(&self, name: &str, bytes: &[u8]) -> (String, UpstreamHash) {
        std::fs::write(self.files_dir.path().join(name), bytes).expect("write");
        (
            format!("{}{name}", self.files.url()),
            UpstreamHash::of(HashFormat::Sha512, bytes),
        )
    }
}

fn spec(name: &str, source: ModSource) -> ModSpec {
    ModSpec {
        name: name.to_owned(),
        defined_in: "pack.toml mods[0]".to_owned(),
        source,
        dir: "mods".to_owned(),
        filename: None,
        side: Side::Both,
        optional: false,
        default_enabled: true,
        description: String::new(),
        mirror: true,
        declared: None,
        origin: None,
    }
}

async fn fail(fakes: &Fakes, specs: &[ModSpec]) -> String {
    match fetch_mods(specs, &fakes.options()).await {
        Ok(_) => panic!("expected a failure"),
        Err(e @ FetchError::Mods(_)) => e.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn upstream_hash_mismatch_names_mod_url_and_fix() {
    let f = Fakes::start();
    let (url, _) = f.host("lithium.jar", b"the real bytes");
    let wrong = UpstreamHash::of(HashFormat::Sha512, b"other bytes");
    let msg = fail(
        &f,
        &[spec(
            "Lithium",
            ModSource::Url {
                url: url.clone(),
                hash: wrong,
            },
        )],
    )
    .await;
    assert!(msg.contains("Lithium") && msg.contains(&url), "{msg}");
    assert!(msg.contains("sha512") && msg.contains("update the hash"), "{msg}");
    assert_eq!(f.files.count(), 1, "a hash mismatch is not retried");
}

#[tokio::test]
async fn sha256_upstream_hash_is_checked_by_the_content_hash() {
    let f = Fakes::start();
    let (url, _) = f.host("sodium.jar", b"sodium bytes");
    let wrong = UpstreamHash::of(HashFormat::Sha256, b"other bytes");
    let msg = fail(
        &f,
        &[spec(
            "Sodium",
            ModSource::Url {
                url: url.clone(),
                hash: wrong,
            },
        )],
    )
    .await;
    assert!(msg.contains("Sodium") && msg.contains(&url), "{msg}");
    assert!(msg.contains("sha256") && msg.contains("update the hash"), "{msg}");
    let right = UpstreamHash::of(HashFormat::Sha256, b"sodium bytes");
    let (files, _) = fetch_mods(
        &[spec("Sodium", ModSource::Url { url, hash: right })],
        &f.options(),
    )
    .await
    .expect("a matching sha256 passes");
    assert_eq!(files.len(), 1);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let f = Fakes::start();
    let url = format!("{}gone.jar", f.files.url());
    let hash = UpstreamHash::of(HashFormat::Sha512, b"x");
    let msg = fail(
        &f,
        &[spec(
            "Gone Mod",
            ModSource::Url {
                url: url.clone(),
                hash,
            },
        )],
    )
    .await;
    assert!(
        msg.contains("Gone Mod") && msg.contains(&url) && msg.contains("404"),
        "{msg}"
    );
    assert!(msg.contains("check the URL"), "{msg}");
    assert_eq!(f.files.count(), 1);
}

#[tokio::test]
async fn too_many_requests_waits_retry_after_then_succeeds() {
    let f = Fakes::start();
    let bytes = b"sodium jar".to_vec();
    let file = f
        .modrinth
        .add_version("sodium", "AAAA1111", "0.6.0", "sodium.jar", &bytes);
    let path = file.url.trim_start_matches(&f.modrinth.url()).to_owned();
    f.modrinth
        .host()
        .push_fault(&path, FakeFault::TooManyRequests("7".into()));
    f.modrinth.host().push_fault(&path, FakeFault::Status(503));
    let specs = [spec(
        "Sodium",
        ModSource::Modrinth {
            project: "sodium".into(),
            version: "AAAA1111".into(),
        },
    )];
    let (files, report) = fetch_mods(&specs, &f.options()).await.expect("retried");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].file.path, "mods/sodium.jar");
    assert_eq!((report.retries, report.requests), (2, 3));
    let waits = f.sleeper.waits();
    assert_eq!(
        waits[0],
        Duration::from_secs(7),
        "Retry-After honoured: {waits:?}"
    );
    assert!(waits[1] <= Duration::from_millis(4), "{waits:?}");
    let statuses: Vec<u16> = f
        .modrinth
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 503, 200]);
}

#[tokio::test]
async fn truncated_body_is_retried_then_reported() {
    let f = Fakes::start();
    let bytes = vec![7u8; 50_000];
    // Once (on the Modrinth CDN): retried and accepted.
    let file = f
        .modrinth
        .add_version("big", "CCCC3333", "1.0", "big.jar", &bytes);
    let path = file.url.trim_start_matches(&f.modrinth.url()).to_owned();
    f.modrinth.host().push_fault(&path, FakeFault::Abort(1000));
    let once = [spec(
        "Big Mod",
        ModSource::Modrinth {
            project: "big".into(),
            version: "CCCC3333".into(),
        },
    )];
    let (files, report) = fetch_mods(&once, &f.options()).await.expect("retried");
    assert_eq!(files[0].file.size, 50_000);
    assert_eq!(report.retries, 1);
    // Every time: reported after the retries, naming mod, URL and what to do.
    for _ in 0..3 {
        f.modrinth.host().push_fault(&path, FakeFault::Abort(1000));
    }
    let cold = Fakes::start();
    let file = cold
        .modrinth
        .add_version("big", "CCCC3333", "1.0", "big.jar", &bytes);
    let path = file.url.trim_start_matches(&cold.modrinth.url()).to_owned();
    for _ in 0..3 {
        cold.modrinth.host().push_fault(&path, FakeFault::Abort(1000));
    }
    let msg = fail(&cold, &once).await;
    assert!(msg.contains("Big Mod") && msg.contains(&file.url), "{msg}");
    assert!(
        msg.contains("1000 of 50000 bytes") && msg.contains("3 attempts"),
        "{msg}"
    );
    assert!(msg.contains("run the build again"), "{msg}");
    let cdn = cold.modrinth.requests().iter().filter(|r| r.path == path).count();
    assert_eq!(cdn, 3);
}

#[tokio::test]
async fn distribution_disabled_is_reported_then_taken_from_manual_dir() {
    let f = Fakes::start();
    let bytes = b"optifine-like jar".to_vec();
    let cf = f
        .curseforge
        .add_file(238_222, 4_000_001, "Restricted-1.0.jar", &bytes, false);
    assert!(cf.download_url.is_none());
    let specs = [spec(
        "Restricted Mod",
        ModSource::CurseForge {
            project: 238_222,
            file: 4_000_001,
        },
    )];
    let msg = fail(&f, &specs).await;
    assert!(msg.contains("Restricted Mod"), "{msg}");
    assert!(msg.contains(&format!("{}/files/4000001", cf.website)), "{msg}");
    assert!(
        msg.contains("Restricted-1.0.jar") && msg.contains("mods/Restricted-1.0.jar"),
        "{msg}"
    );
    assert!(msg.contains("--manual-dir"), "{msg}");

    let manual = tempfile::tempdir().expect("tmp");
    std::fs::write(manual.path().join("unrelated.jar"), b"nope").expect("write");
    std::fs::write(manual.path().join("downloaded-by-hand.jar"), &bytes).expect("write");
    let mut opts = f.options();
    opts.resolve.manual_dir = Some(manual.path().to_owned());
    let (files, report) = fetch_mods(&specs, &opts).await.expect("manual file accepted");
    assert_eq!((report.manual, report.upstream_only), (1, 1));
    let file = &files[0];
    assert!(file.file.upstream_only && file.blob.is_none(), "never mirrored");
    assert_eq!(file.file.path, "mods/Restricted-1.0.jar");
    assert_eq!(file.file.size, bytes.len() as u64);
    assert_eq!(file.file.upstreams[0].origin, "curseforge:238222/4000001");
    assert!(file.file.upstreams[0].url.contains("/files/4000001"));
}

#[tokio::test]
async fn unknown_modrinth_version_is_reported() {
    let f = Fakes::start();
    f.modrinth
        .add_version("sodium", "AAAA1111", "0.6.0", "sodium.jar", b"x");
    let specs = [spec(
        "Sodium",
        ModSource::Modrinth {
            project: "sodium".into(),
            version: "ZZZZ9999".into(),
        },
    )];
    let msg = fail(&f, &specs).await;
    assert!(msg.contains("Sodium") && msg.contains("ZZZZ9999"), "{msg}");
    assert!(
        msg.contains(&format!("{}/v2/version/ZZZZ9999", f.modrinth.url())),
        "{msg}"
    );
    assert!(msg.contains("https://modrinth.com/mod/sodium/versions"), "{msg}");
}

#[tokio::test]
async fn modrinth_version_number_and_rate_limit() {
    let f = Fakes::start();
    f.modrinth
        .add_version("lithium", "BBBB2222", "0.14.3", "lithium.jar", b"lithium");
    // Remaining 0: the next API call waits for the reset first.
    f.modrinth.set_rate_limit(0, 42);
    let specs = [spec(
        "Lithium",
        ModSource::Modrinth {
            project: "lithium".into(),
            version: "0.14.3".into(),
        },
    )];
    let (files, _) = fetch_mods(&specs, &f.options()).await.expect("by version number");
    assert_eq!(files[0].file.display_version, "0.14.3");
    assert_eq!(files[0].file.upstreams[0].origin, "modrinth:lithium/BBBB2222");
    assert_eq!(f.sleeper.waits(), [Duration::from_secs(42)]);
    let api: Vec<String> = f
        .modrinth
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(api.len(), 2, "{api:?}");
    assert!(api[1].starts_with("/v2/project/lithium/version"), "{api:?}");
}

#[tokio::test]
async fn curseforge_without_key_says_which_variable() {
    let f = Fakes::start();
    let mut opts = f.options();
    opts.resolve.curseforge_key = None;
    let specs = [spec("JEI", ModSource::CurseForge { project: 1, file: 2 })];
    let msg = fetch_mods(&specs, &opts).await.expect_err("no key").to_string();
    assert!(msg.contains("JEI") && msg.contains("CURSEFORGE_API_KEY"), "{msg}");
}
