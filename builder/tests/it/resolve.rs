//! Resolvers and downloads against fake Modrinth, CurseForge and file hosts on
//! 127.0.0.1 (as strict as the real services, see `atlas_testkit`): every
//! failure names the mod, the URL and what to do; transient failures are
//! retried; rate limits and Retry-After are waited out once (recorded, never
//! slept for real); version numbers never reach Modrinth's id batch and pick
//! the pack's loader; CurseForge's 403-under-load, odd download URLs and
//! distribution-disabled files are handled as its documentation says.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_builder::download::{RetryPolicy, Sleeper};
use atlas_builder::packwiz::{HashFormat, UpstreamHash};
use atlas_builder::resolve::deps::{Accepts, Target};
use atlas_builder::resolve::{FetchError, ModOptions, ModSource, ModSpec, Resolver, fetch_mods};
use atlas_proto::v1::{LoaderKind, Side};
use atlas_testkit::curseforge::{API_KEY, CurseForgeServer};
use atlas_testkit::http::StaticServer;
use atlas_testkit::modrinth::{FakeFault, ModrinthServer, NewVersion};

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
    // Even with `mirror = false`: no host could download it from upstream.
    let mut specs = specs;
    specs[0].mirror = false;
    let (files, report) = fetch_mods(&specs, &opts).await.expect("manual file accepted");
    assert_eq!((report.manual, report.upstream_only), (1, 0));
    let file = &files[0];
    assert!(
        !file.file.upstream_only && file.blob.is_some(),
        "mirrored from the manual download: the project page is not the file"
    );
    assert_eq!(file.file.path, "mods/Restricted-1.0.jar");
    assert_eq!(file.file.size, bytes.len() as u64);
    assert_eq!(file.file.upstreams[0].origin, "curseforge:238222/4000001");
    assert_eq!(file.file.upstreams[0].url, "", "never the project page (glue)");
    // The resolver offers no upstream URL for it (the page is for messages only).
    let resolver = Resolver::new(
        &opts.resolve,
        atlas_builder::download::http_client(Duration::from_secs(5)),
        f.sleeper.clone(),
    );
    let resolved = resolver.resolve(&specs).await.expect("resolves");
    assert_eq!(resolved[0].upstream_url(), None);
    assert!(
        resolved[0]
            .page
            .as_deref()
            .is_some_and(|p| p.ends_with("/files/4000001"))
    );
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
        msg.contains(&format!("{}/v2/project/sodium/version", f.modrinth.url())),
        "{msg}"
    );
    assert!(msg.contains("https://modrinth.com/mod/sodium/versions"), "{msg}");
}

fn modrinth_spec(name: &str, project: &str, version: &str) -> ModSpec {
    spec(
        name,
        ModSource::Modrinth {
            project: project.into(),
            version: version.into(),
        },
    )
}

/// Paths of the API requests the fake Modrinth answered, decoded.
fn api_paths(f: &Fakes) -> Vec<String> {
    f.modrinth
        .api_requests()
        .iter()
        .map(|r| {
            r.path
                .replace("%22", "\"")
                .replace("%5B", "[")
                .replace("%5D", "]")
                .replace("%2C", ",")
        })
        .collect()
}

#[tokio::test]
async fn version_numbers_never_reach_the_id_batch() {
    // Modrinth parses every id of `GET /v2/versions?ids=` as base62 and
    // answers 400 for the whole batch otherwise: a number there failed
    // every Modrinth mod of the pack.
    let f = Fakes::start();
    f.modrinth
        .add_version("sodium", "AAAA1111", "0.6.0", "sodium.jar", b"sodium");
    f.modrinth.add_version(
        "lithium",
        "BBBB2222",
        "mc1.21.1-0.14.3-fabric",
        "lithium.jar",
        b"lithium",
    );
    let specs = [
        modrinth_spec("Sodium", "sodium", "AAAA1111"),
        modrinth_spec("Lithium", "lithium", "mc1.21.1-0.14.3-fabric"),
    ];
    let (files, _) = fetch_mods(&specs, &f.options()).await.expect("both resolve");
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].file.display_version, "mc1.21.1-0.14.3-fabric");
    let lithium = f.modrinth.project_id("lithium").expect("project");
    assert_eq!(
        files[1].file.upstreams[0].origin,
        format!("modrinth:{lithium}/BBBB2222")
    );
    let api = api_paths(&f);
    assert_eq!(
        api,
        [
            "/v2/versions?ids=[\"AAAA1111\"]".to_owned(),
            "/v2/project/lithium/version".to_owned()
        ],
        "only the id is batched; the number is looked up in its project"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_once_and_an_exhausted_budget_before_the_next_call() {
    let f = Fakes::start();
    f.modrinth
        .add_version("sodium", "AAAA1111", "0.6.0", "sodium.jar", b"sodium");
    f.modrinth
        .add_version("lithium", "BBBB2222", "0.14.3", "lithium.jar", b"lithium");
    // Modrinth's limiter answers 429 with X-Ratelimit-Reset and no Retry-After.
    f.modrinth
        .host()
        .push_fault("/v2/versions", FakeFault::RateLimited { reset_secs: 42 });
    let specs = [
        modrinth_spec("Sodium", "sodium", "AAAA1111"),
        modrinth_spec("Lithium", "lithium", "0.14.3"),
    ];
    fetch_mods(&specs, &f.options()).await.expect("after the wait");
    assert_eq!(
        f.sleeper.waits(),
        [Duration::from_secs(42)],
        "the reset is waited once"
    );
    let statuses: Vec<u16> = f.modrinth.api_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200, 200]);

    // A budget used up (Remaining 0) is waited out before the next call; a 5xx is retried.
    let f = Fakes::start();
    f.modrinth
        .add_version("lithium", "BBBB2222", "0.14.3", "lithium.jar", b"lithium");
    f.modrinth.set_rate_limit(0, 7);
    f.modrinth
        .host()
        .push_fault("/v2/project/lithium/version", FakeFault::Status(502));
    let specs = [modrinth_spec("Lithium", "lithium", "0.14.3")];
    fetch_mods(&specs, &f.options()).await.expect("after the retry");
    let waits = f.sleeper.waits();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert_eq!(waits[1], Duration::from_secs(7), "{waits:?}");
}

/// The same version number for Fabric and NeoForge on 1.21.1, and for Fabric
/// on 1.20.1, as Modrinth projects commonly publish it.
fn shared_number(f: &Fakes) {
    for (id, loaders, mc) in [
        ("FabricA1", &["fabric"][..], "1.21.1"),
        ("FabricO1", &["fabric"][..], "1.20.1"),
        ("NeoForA1", &["neoforge"][..], "1.21.1"),
    ] {
        f.modrinth.add(
            &NewVersion::new("lithium", id, "0.14.3")
                .loaders(loaders)
                .game_versions(&[mc])
                .file(&format!("lithium-{id}.jar"), id.as_bytes(), true)
                .file(&format!("lithium-{id}-sources.jar"), b"sources", false),
        );
    }
}

#[tokio::test]
async fn a_version_number_shared_across_loaders_is_never_guessed() {
    // Without the pack's loader, a number three versions share is an error
    // naming them (it used to pick the first: a Fabric pack got NeoForge's jar).
    let f = Fakes::start();
    shared_number(&f);
    let msg = fail(&f, &[modrinth_spec("Lithium", "lithium", "0.14.3")]).await;
    for id in ["FabricA1", "FabricO1", "NeoForA1"] {
        assert!(msg.contains(id), "{msg}");
    }
    assert!(msg.contains("name the one to use by its version id"), "{msg}");
}

#[tokio::test]
async fn a_version_number_resolves_for_the_packs_loader_and_minecraft() {
    let f = Fakes::start();
    shared_number(&f);
    let resolver = Resolver::new(
        &f.options().resolve,
        atlas_builder::download::http_client(Duration::from_secs(5)),
        f.sleeper.clone(),
    );
    let specs = [modrinth_spec("Lithium", "lithium", "0.14.3")];
    let target = |loader, mc: &str| {
        Accepts::from(&Target {
            minecraft: mc.into(),
            loader,
        })
    };
    for (loader, mc, want) in [
        (LoaderKind::Fabric, "1.21.1", "FabricA1"),
        (LoaderKind::Quilt, "1.21.1", "FabricA1"),
        (LoaderKind::Neoforge, "1.21.1", "NeoForA1"),
        (LoaderKind::Fabric, "1.20.1", "FabricO1"),
    ] {
        let r = resolver
            .resolve_accepting(&specs, Some(&target(loader, mc)))
            .await
            .unwrap_or_else(|e| panic!("{loader:?} {mc}: {e}"));
        assert_eq!(r[0].origin.rsplit('/').next(), Some(want), "{loader:?} {mc}");
        assert_eq!(r[0].file_name, format!("lithium-{want}.jar"), "the primary file");
    }
    f.modrinth.reset_requests();
    let fabric = target(LoaderKind::Fabric, "1.21.1");
    resolver
        .resolve_accepting(&specs, Some(&fabric))
        .await
        .expect("resolves");
    let api = api_paths(&f);
    assert_eq!(
        api,
        ["/v2/project/lithium/version?loaders=[\"fabric\"]&game_versions=[\"1.21.1\"]"],
        "the listing is filtered by Modrinth"
    );
    // A Forge pack: the number exists, but not for Forge.
    let err = match resolver
        .resolve_accepting(&specs, Some(&target(LoaderKind::Forge, "1.21.1")))
        .await
    {
        Ok(_) => panic!("no Forge version"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("no version `0.14.3` for forge on Minecraft 1.21.1"),
        "{err}"
    );
    assert!(err.contains("NeoForA1 (neoforge; Minecraft 1.21.1)"), "{err}");
    // Two Fabric builds of one number for the same Minecraft: named, not guessed.
    f.modrinth
        .add(&NewVersion::new("lithium", "FabricA2", "0.14.3").file("lithium-again.jar", b"again", true));
    let err = match resolver.resolve_accepting(&specs, Some(&fabric)).await {
        Ok(_) => panic!("ambiguous"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("2 versions numbered `0.14.3` for fabric on Minecraft 1.21.1")
            && err.contains("FabricA1")
            && err.contains("FabricA2"),
        "{err}"
    );
}

#[tokio::test]
async fn curseforge_403_under_load_is_retried_and_pages_are_optional() {
    let f = Fakes::start();
    let bytes = b"jei bytes".to_vec();
    // A file name as uploaded, spaces and brackets included; the CDN is another origin.
    let cf = f.curseforge.add_file(
        238_222,
        4_712_866,
        "Just Enough Items [1.21.1] 19.0.jar",
        &bytes,
        true,
    );
    // CloudFront's overload page twice, then the API; the projects call fails for good.
    f.curseforge.overload(2);
    for _ in 0..4 {
        f.curseforge.host().push_fault("/v1/mods", FakeFault::Status(500));
    }
    let specs = [spec(
        "JEI",
        ModSource::CurseForge {
            project: 238_222,
            file: 4_712_866,
        },
    )];
    let (files, _) = fetch_mods(&specs, &f.options())
        .await
        .expect("resolved and downloaded");
    let file = &files[0].file;
    assert_eq!(file.path, "mods/Just Enough Items [1.21.1] 19.0.jar");
    let raw = cf.download_url.expect("distributable");
    assert!(raw.contains(" [1.21.1] "), "the API gives the raw name: {raw}");
    assert_eq!(
        file.upstreams[0].url,
        raw.replace(' ', "%20").replace('[', "%5B").replace(']', "%5D"),
        "requested and recorded percent-encoded"
    );
    let api: Vec<(String, u16)> = f
        .curseforge
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    assert_eq!(
        &api[..3],
        &[
            ("/v1/mods/files".to_owned(), 403),
            ("/v1/mods/files".to_owned(), 403),
            ("/v1/mods/files".to_owned(), 200),
        ]
    );
    assert_eq!(f.curseforge.cdn_requests().len(), 1);
    assert_eq!(f.curseforge.cdn_requests()[0].status, 200);
}

#[tokio::test]
async fn curseforge_403_that_persists_names_the_key_and_the_rate_limit() {
    let f = Fakes::start();
    f.curseforge.add_file(1, 2, "a.jar", b"a", true);
    f.curseforge.overload(100);
    let specs = [spec("A", ModSource::CurseForge { project: 1, file: 2 })];
    let msg = fail(&f, &specs).await;
    assert!(msg.contains("403") && msg.contains("CURSEFORGE_API_KEY"), "{msg}");
    assert!(
        msg.contains("limiting requests") && msg.contains("too much traffic"),
        "{msg}"
    );
    // A wrong key is refused the same way (the API cannot tell us which it is).
    let f = Fakes::start();
    f.curseforge.add_file(1, 2, "a.jar", b"a", true);
    let mut opts = f.options();
    opts.resolve.curseforge_key = Some("not-the-key".into());
    let msg = fetch_mods(&specs, &opts).await.expect_err("bad key").to_string();
    assert!(msg.contains("403") && msg.contains("CURSEFORGE_API_KEY"), "{msg}");
    assert_eq!(f.curseforge.requests().len(), 4, "retried, then reported");
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

#[tokio::test]
async fn downloads_record_sha1_and_sha512_in_the_same_pass() {
    // A .mrpack lists sha1 and sha512 for every file: a mod declared with one
    // hash (packwiz, URL, imported) gets both from its one download.
    use atlas_builder::cache::Cache;
    use atlas_builder::download::{DownloadRequest, Downloader};
    let f = Fakes::start();
    let bytes = b"a mod declared by its sha256 only";
    let (url, _) = f.host("only-sha256.jar", bytes);
    let opts = f.options();
    let downloader = Downloader::with_sleeper(
        Cache::open(f.cache.path()).expect("cache"),
        opts.download.clone(),
        f.sleeper.clone(),
    );
    let req = DownloadRequest {
        name: "Only Sha256".into(),
        url,
        expected: UpstreamHash::of(HashFormat::Sha256, bytes),
        size: None,
        dest: "mods/only-sha256.jar".into(),
    };
    let want = vec![
        UpstreamHash::of(HashFormat::Sha1, bytes),
        UpstreamHash::of(HashFormat::Sha512, bytes),
    ];
    let d = downloader.fetch(&req).await.expect("downloaded");
    assert!(!d.from_cache);
    assert_eq!(d.digests, want);
    assert_eq!(f.files.count(), 1, "one request");
    // From the cache: the same digests, no request, the blob not re-read.
    let again = downloader.fetch(&req).await.expect("cached");
    assert!(again.from_cache);
    assert_eq!(again.digests, want);
    assert_eq!(f.files.count(), 1);
    // A sha1-declared download is checked with the same pass's SHA-1.
    let (url, sha1) = {
        let (u, _) = f.host("by-sha1.jar", b"declared by sha1");
        (u, UpstreamHash::of(HashFormat::Sha1, b"declared by sha1"))
    };
    let d = downloader
        .fetch(&DownloadRequest {
            url,
            expected: sha1.clone(),
            dest: "mods/by-sha1.jar".into(),
            ..req.clone()
        })
        .await
        .expect("sha1 verified");
    assert_eq!(d.digests[0], sha1);
}

#[tokio::test]
async fn a_single_hash_upstream_only_mod_keeps_its_place_in_the_mrpack() {
    // Glue test (resolve/build.rs): a mod declared by sha256 alone and kept
    // upstream-only gets the SHA-1 and SHA-512 its download computed, so the
    // .mrpack lists it as a download instead of leaving it out.
    use atlas_builder::build::plan_pack;
    use atlas_builder::export::ExportOptions;
    use atlas_builder::export::mrpack::write_mrpack;
    use atlas_builder::plan::PlanOptions;
    use atlas_builder::repo::PackSource;
    use sha2::Digest as _;
    let f = Fakes::start();
    let bytes = b"a jar declared by its sha256";
    let (url, _) = f.host("single.jar", bytes);
    let repo = atlas_testkit::git::GitRepo::init().expect("git");
    repo.write(
        "pack.toml",
        format!(
            "id = \"single\"\nname = \"Single\"\nversion = \"1\"\nminecraft = \"1.21.1\"\n\
             loader = {{ kind = \"fabric\", version = \"0.16.9\" }}\n\n[[mods]]\nurl = \"{url}\"\n\
             hash = \"sha256:{}\"\nmirror = false\n",
            hex::encode(sha2::Sha256::digest(bytes))
        ),
    )
    .expect("write");
    repo.commit_all("pack").expect("commit");
    let source = PackSource::open(repo.path(), false).expect("open");
    let (plan, report) = plan_pack(&source, &PlanOptions::default(), &f.options())
        .await
        .expect("plan");
    assert_eq!(report.upstream_only, 1);
    let mut out = std::io::Cursor::new(Vec::new());
    let opts = ExportOptions::new("https://cdn.example.com/atlas/").expect("url");
    let summary = write_mrpack(&plan, &source, &opts, &mut out).expect("mrpack");
    assert_eq!(summary.skipped, Vec::<String>::new());
    assert_eq!(summary.downloads, 1);
}
