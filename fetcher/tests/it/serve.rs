//! The example web server configurations of `examples/serve/` (docs/SERVING.md),
//! tested against the real servers: Debian's nginx and Caddy run as child
//! processes on 127.0.0.1, configured FROM the committed files (only the listen
//! address, the store directory and the log file are replaced, each checked to
//! occur exactly once), serving a directory store that the real builder
//! published. Then: the headers of every object in the store against
//! docs/FORMAT.md §1, a cold sync with the real `atlas-fetcher` binary, a sync
//! with nothing new answered 304, an update that fetches only the changed
//! blob, and a sync killed in the middle of a big blob then resumed with
//! `Range` and `If-Range` (answered 206), each counted in the server's own
//! access log.
//!
//! The tests fail (never skip) without the servers: `apt-get install nginx
//! caddy` (`bash .ci/run` installs them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atlas_builder::export::ExportOptions;
use atlas_builder::keyset;
use atlas_builder::publish::{PublishOptions, PublishReport, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::DirStore;
use atlas_fetcher::exit;
use atlas_proto::{SecretKey, Sha256Digest, layout};
use atlas_testkit::git::GitRepo;

mod classes;
mod proxy;
mod servers;

use classes::{Class, check_format_md, store_keys};
use proxy::StallingProxy;
use servers::{Hit, Kind, Server};

const PACK: &str = "served";
const CHANNEL: &str = "production";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the fetcher crate sits in the workspace")
        .to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn pack_repo() -> GitRepo {
    let repo = GitRepo::init().expect("git init");
    repo.write(
        "pack.toml",
        r#"id = "served"
name = "Served"
version = "1.0.0"
minecraft = "1.21.1"
loader = { kind = "fabric", version = "0.16.9" }

[[files]]
include = ["mods/*.jar", "config/**", "server.properties"]

[[files]]
include = ["config/client/**"]
side = "client"
"#,
    )
    .expect("write");
    repo.write("mods/alpha.jar", vec![0xA1; 40_000]).expect("write");
    repo.write("mods/beta.jar", vec![0xB2; 25_000]).expect("write");
    repo.write("config/alpha.toml", "enabled = true\n")
        .expect("write");
    repo.write("config/client/zoom.toml", "fov = 70\n")
        .expect("write");
    repo.write("server.properties", "motd=served\n").expect("write");
    repo.commit_all("v1").expect("commit");
    repo
}

/// The files a server install of the repository's HEAD holds.
fn server_files(repo: &GitRepo) -> BTreeMap<String, Vec<u8>> {
    [
        "mods/alpha.jar",
        "mods/beta.jar",
        "config/alpha.toml",
        "server.properties",
    ]
    .into_iter()
    .map(|p| (p.to_owned(), std::fs::read(repo.path().join(p)).expect("read")))
    .collect()
}

/// One store, one server in front of it, one host directory: the state the
/// cases below share, in order.
#[derive(Debug)]
struct Scenario {
    server: Server,
    store: DirStore,
    store_dir: tempfile::TempDir,
    repo: GitRepo,
    key: SecretKey,
    key_file: PathBuf,
    host: tempfile::TempDir,
    published: Vec<PublishReport>,
    _keys: tempfile::TempDir,
}

impl Scenario {
    /// A store with a keyset chain and one build (with both launcher
    /// exports, pointing at the server), served by `kind`.
    async fn new(kind: Kind) -> Self {
        let store_dir = tempfile::tempdir().expect("tmp");
        // The creator's store directory is readable by the web server's user
        // (run as root, nginx's workers are `nobody`); the builder writes
        // objects 0644.
        std::fs::set_permissions(
            store_dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let server = Server::start(kind, store_dir.path());
        let store = DirStore::new(store_dir.path());
        let keys = tempfile::tempdir().expect("tmp");
        let (chain, secrets) = (keys.path().join("chain"), keys.path().join("secret"));
        keyset::init_root(&chain, &secrets, PACK, 1, 1, now(), false).expect("key init-root");
        keyset::upload(&store, &chain).await.expect("upload the keyset");
        let key = atlas_builder::signing::load_secret_key(Some(&secrets.join("pointer-1.key")))
            .expect("the pointer key");
        let key_file = keys.path().join("pointer.pub");
        std::fs::write(&key_file, format!("{}\n", key.public().to_text())).expect("write");
        let mut s = Self {
            server,
            store,
            store_dir,
            repo: pack_repo(),
            key,
            key_file,
            host: tempfile::tempdir().expect("tmp"),
            published: Vec::new(),
            _keys: keys,
        };
        s.publish().await;
        s
    }

    /// Publishes the repository's HEAD to the channel, with the exports.
    async fn publish(&mut self) {
        let source = PackSource::open(self.repo.path(), false).expect("open repo");
        let opts = PublishOptions {
            channel: CHANNEL.into(),
            now: now(),
            pointer_lifetime: Duration::from_secs(3600),
            dry_run: false,
            concurrency: 4,
            force_pointer: false,
        };
        let exports = ExportOptions::new(&self.server.url()).expect("public URL");
        let req = PublishRequest {
            key: Some(&self.key),
            exports: Some(&exports),
            ..PublishRequest::new(&source, &self.store, opts, ModOptions::default())
        };
        let report = atlas_builder::publish::run(req).await.expect("publish").report;
        self.published.push(report);
    }

    fn build(&self) -> Sha256Digest {
        self.published
            .last()
            .expect("published")
            .plan
            .build
            .parse()
            .expect("hex build id")
    }

    fn dir(&self) -> PathBuf {
        self.host.path().join("server")
    }

    /// The real `atlas-fetcher sync --json` from `url`.
    fn command(&self, url: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"));
        c.args(["sync", "--json", "--retries", "0", "--source", url])
            .args(["--pack", PACK, "--channel", CHANNEL, "--key"])
            .arg(&self.key_file)
            .arg("--dir")
            .arg(self.dir())
            .stdin(Stdio::null());
        c
    }

    /// Runs the real `atlas-fetcher sync --json` against the server; returns
    /// its exit code and report.
    async fn sync(&self) -> (i32, serde_json::Value) {
        self.sync_from(&self.server.url()).await
    }

    /// [`Scenario::sync`] from another URL (the proxy in front of the server).
    async fn sync_from(&self, url: &str) -> (i32, serde_json::Value) {
        let out = self.command(url).output().await.expect("run atlas-fetcher");
        let code = out.status.code().expect("exited");
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "atlas-fetcher exited {code} without a JSON report ({e}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, report)
    }

    /// What the host directory holds, outside the fetcher's own state.
    fn installed(&self) -> BTreeMap<String, Vec<u8>> {
        crate::common::files(&self.dir())
    }

    /// Waits until the second the pointer was last written is over.
    /// nginx's and Caddy's ETag is the modification time in whole seconds
    /// and the size: a pointer rewritten within the second it was written,
    /// at the same size, keeps the old ETag and hosts are answered 304 for up
    /// to 10 minutes (the fetcher's bound, docs/FORMAT.md §5; the subject of
    /// validators.rs, not of this test). A creator's publishes are seconds
    /// apart; so are this test's.
    async fn past_the_pointers_second(&self) {
        let pointer = self.store_dir.path().join(layout::pointer_key(PACK, CHANNEL));
        let written = std::fs::metadata(&pointer)
            .and_then(|m| m.modified())
            .expect("pointer mtime")
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        // Past the next second, with a margin for the file system's coarse clock.
        let next = UNIX_EPOCH + Duration::from_secs(written + 1) + Duration::from_millis(50);
        if let Ok(wait) = next.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A GET with extra headers; returns (status, headers, body).
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .map(|v| v.to_str().expect("an ASCII header value"))
}

// ---------------------------------------------------------------------------
// The cases, run in order on one Scenario. To add one, write an
// `async fn(&mut Scenario)` below and call it from `serves_a_directory_store`.
// ---------------------------------------------------------------------------

/// (a) Every object in the store has the Content-Type and Cache-Control of
/// its class (docs/FORMAT.md §1), and validators; hidden files, missing
/// objects and directories are 404 without a long cache lifetime; byte
/// ranges and identity encoding hold whatever the client accepts.
async fn headers_of_every_object_class(s: &mut Scenario) {
    let root = s.store_dir.path();
    // Objects the builder does not write (yet) that the rules cover: a page,
    // and a temporary file as a write in progress leaves it.
    std::fs::write(root.join(format!("packs/{PACK}/index.html")), "<!doctype html>\n").expect("write");
    std::fs::write(
        root.join(format!("packs/{PACK}/channels/.tmp-pointer")),
        "partial",
    )
    .expect("write");
    // An instance archive as `--player-tools` makes one (format 1.3).
    let zip_dir = root.join(format!("packs/{PACK}/instances/{}", Sha256Digest::of(b"zip")));
    std::fs::create_dir_all(&zip_dir).expect("mkdir");
    std::fs::write(zip_dir.join(format!("{PACK}-{CHANNEL}.zip")), "zip").expect("write");
    let mut seen = BTreeSet::new();
    for key in store_keys(root) {
        let class = Class::of(&key);
        seen.insert(class);
        let url = format!("{}{key}", s.server.url());
        let (status, h, body) = get(&url, &[]).await;
        let Some((content_type, cache_control)) = class.expected() else {
            assert_eq!(status, 404, "{key} must not be served");
            assert_eq!(header(&h, "cache-control"), None, "{key}");
            continue;
        };
        assert_eq!(status, 200, "{key}");
        let what = format!("{key} ({class:?})");
        assert_eq!(
            header(&h, "content-type"),
            Some(content_type),
            "Content-Type of {what}"
        );
        assert_eq!(
            header(&h, "cache-control"),
            Some(cache_control),
            "Cache-Control of {what}"
        );
        assert_eq!(body, std::fs::read(root.join(&key)).expect("read"), "{what}");
        let etag = header(&h, "etag").unwrap_or_else(|| panic!("no ETag for {what}"));
        assert!(!etag.starts_with("W/"), "a strong ETag for {what}: {etag}");
        assert!(
            header(&h, "last-modified").is_some(),
            "no Last-Modified for {what}"
        );
        // Revalidation answers 304 with the same Cache-Control.
        let (status, h304, _) = get(&url, &[("if-none-match", etag)]).await;
        assert_eq!(status, 304, "If-None-Match for {what}");
        assert_eq!(
            header(&h304, "cache-control"),
            Some(cache_control),
            "304 of {what}"
        );
    }
    let want = [
        Class::Pointer,
        Class::Keyset,
        Class::Manifest,
        Class::Blob,
        Class::Mrpack,
        Class::PackwizEntry,
        Class::PackwizImmutable,
        Class::History,
        Class::Page,
        Class::Instance,
        Class::StoreIndex,
        Class::Hidden,
    ];
    assert_eq!(seen, want.into_iter().collect(), "every object class was checked");

    // Missing objects: 404, never cached for a year (a blob may be requested
    // before its upload finishes; keys/N+1.json is looked up until it exists).
    let build = s.build();
    let missing = [
        layout::blob_key(&Sha256Digest::of(b"never uploaded")),
        layout::keyset_key(PACK, 2),
        layout::pointer_key(PACK, "nightly"),
        layout::mrpack_key(PACK, &Sha256Digest::of(b"no such build")),
        format!("packs/{PACK}/builds/{build}/"),
        format!("packs/{PACK}/"),
        String::new(),
    ];
    for key in missing {
        let (status, h, _) = get(&format!("{}{key}", s.server.url()), &[]).await;
        assert_eq!(status, 404, "`{key}`");
        assert_ne!(
            header(&h, "cache-control"),
            Some(layout::CACHE_IMMUTABLE),
            "a missing `{key}` must not be cached for a year"
        );
    }

    // A blob: byte ranges (what a resumed download asks for, with If-Range),
    // and no compression even when the client would accept it.
    let blob = Sha256Digest::of(&[0xA1; 40_000]);
    let url = format!("{}{}", s.server.url(), layout::blob_key(&blob));
    let (_, h, _) = get(&url, &[]).await;
    let etag = header(&h, "etag").expect("etag").to_owned();
    let (status, h, body) = get(&url, &[("range", "bytes=39990-"), ("if-range", &etag)]).await;
    assert_eq!(status, 206, "a range of a blob");
    assert_eq!(header(&h, "content-range"), Some("bytes 39990-39999/40000"));
    assert_eq!(body, vec![0xA1; 10]);
    let logged = s.server.hits().pop().expect("logged");
    assert_eq!(
        (logged.status, logged.bytes, logged.range.as_deref()),
        (206, 10, Some("bytes=39990-")),
        "the access log shows ranges (for resumed downloads)"
    );
    let pointer_url = format!("{}{}", s.server.url(), layout::pointer_key(PACK, CHANNEL));
    for url in [&url, &pointer_url] {
        let (status, h, _) = get(url, &[("accept-encoding", "gzip, br, zstd")]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-encoding"), None, "{url} is served as stored");
    }
    std::fs::remove_file(root.join(format!("packs/{PACK}/channels/.tmp-pointer"))).expect("rm");
}

/// (b) A cold sync through the server: the pointer, the manifest and each
/// server-side blob once, nothing else.
async fn cold_sync(s: &mut Scenario) {
    let since = s.server.hits().len();
    let (code, report) = s.sync().await;
    assert_eq!(code, exit::UPDATED, "{report:#}");
    assert_eq!(report["outcome"], "updated");
    assert_eq!(report["build"], s.build().to_hex());
    assert_eq!(s.installed(), server_files(&s.repo));
    let hits = s.server.hits_since(since);
    let mut keys: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
    keys.sort_unstable();
    let mut want: Vec<String> = server_files(&s.repo)
        .values()
        .map(|bytes| layout::blob_key(&Sha256Digest::of(bytes)))
        .chain([
            layout::pointer_key(PACK, CHANNEL),
            layout::manifest_key(PACK, &s.build()),
        ])
        .collect();
    want.sort_unstable();
    assert_eq!(keys, want, "{hits:#?}");
    assert!(
        hits.iter()
            .all(|h| h.method == "GET" && h.status == 200 && h.range.is_none()),
        "whole objects: {hits:#?}"
    );
}

/// (c) Nothing new: one conditional request, answered 304, nothing written.
async fn unchanged_sync_is_one_304(s: &mut Scenario) {
    let before = atlas_testkit::fs::snapshot(&s.dir());
    let since = s.server.hits().len();
    let (code, report) = s.sync().await;
    assert_eq!(code, exit::CURRENT, "{report:#}");
    assert_eq!(report["not_modified"], true, "{report:#}");
    let hits = s.server.hits_since(since);
    assert_eq!(
        hits,
        [Hit {
            method: "GET".into(),
            key: layout::pointer_key(PACK, CHANNEL),
            status: 304,
            bytes: 0,
            range: None,
        }],
        "one conditional request for the pointer"
    );
    // The lock file names its holder (program, pid) for the runner's
    // two-updaters check; every other byte and mtime stays as it was.
    let without_lock = |mut snap: BTreeMap<PathBuf, _>| {
        snap.remove(Path::new(".atlas/lock"));
        snap
    };
    assert_eq!(
        without_lock(atlas_testkit::fs::snapshot(&s.dir())),
        without_lock(before),
        "a current sync writes nothing"
    );
}

/// (d) A new build with one changed file: the pointer, the new manifest and
/// that one blob, nothing else.
async fn update_fetches_only_changed_blobs(s: &mut Scenario) {
    s.past_the_pointers_second().await;
    let changed = vec![0xB3; 26_000];
    s.repo.write("mods/beta.jar", &changed).expect("write");
    s.repo.commit_all("beta 2").expect("commit");
    s.publish().await;
    assert_eq!(s.published.last().expect("published").blobs_new, 1);

    let since = s.server.hits().len();
    let (code, report) = s.sync().await;
    assert_eq!(code, exit::UPDATED, "{report:#}");
    assert_eq!(report["build"], s.build().to_hex());
    assert_eq!(report["files"]["updated"], serde_json::json!(["mods/beta.jar"]));
    assert_eq!(report["bytes_downloaded"], changed.len());
    assert_eq!(s.installed(), server_files(&s.repo));
    let hits = s.server.hits_since(since);
    let keys: Vec<(&str, u16)> = hits.iter().map(|h| (h.key.as_str(), h.status)).collect();
    assert_eq!(
        keys,
        [
            (layout::pointer_key(PACK, CHANNEL).as_str(), 200),
            (layout::manifest_key(PACK, &s.build()).as_str(), 200),
            (layout::blob_key(&Sha256Digest::of(&changed)).as_str(), 200),
        ],
        "the pointer, the manifest and the one changed blob"
    );
}

/// Deterministic, incompressible bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// (e) A new build with a big mod: a sync killed in the middle of its blob
/// (the network stalls there, through a proxy), then a sync that asks the
/// server for the rest only, with `Range` and `If-Range`, answered 206.
async fn killed_sync_resumes_with_a_range(s: &mut Scenario) {
    const BIG: usize = 8 * 1024 * 1024;
    s.past_the_pointers_second().await;
    let big = noise(BIG);
    s.repo.write("mods/big.jar", &big).expect("write");
    s.repo.commit_all("a big mod").expect("commit");
    s.publish().await;
    let key = layout::blob_key(&Sha256Digest::of(&big));
    let partial = s
        .dir()
        .join(".atlas/partial")
        .join(Sha256Digest::of(&big).to_hex());

    let port = url::Url::parse(&s.server.url())
        .expect("URL")
        .port()
        .expect("port");
    let proxy = StallingProxy::start(port).await;
    proxy.stall_next(&key, (BIG / 2) as u64);
    let mut child = s
        .command(&proxy.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run atlas-fetcher");
    // Until the stall, and the fetcher has written what it got.
    let mut last = (0, std::time::Instant::now());
    loop {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the sync ended before the kill"
        );
        let len = std::fs::metadata(&partial).map_or(0, |m| m.len());
        if len != last.0 {
            last = (len, std::time::Instant::now());
        } else if proxy.stalled() && len > 0 && last.1.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(last.1.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.expect("SIGKILL");
    let kept = std::fs::metadata(&partial).expect("kept after the kill").len();
    assert!(
        kept >= (BIG / 4) as u64 && kept < (BIG / 2) as u64,
        "kept {kept} bytes"
    );
    proxy.release();
    // The server logs the cut request once its connection closes.
    let mut waited = Duration::ZERO;
    while !s.server.hits().iter().any(|h| h.key == key) {
        assert!(
            waited < Duration::from_secs(20),
            "the cut request was never logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }

    let since = s.server.hits().len();
    let (code, report) = s.sync_from(&proxy.url()).await;
    assert_eq!(code, exit::UPDATED, "{report:#}");
    assert_eq!(report["build"], s.build().to_hex());
    assert_eq!(report["bytes_downloaded"], BIG as u64 - kept, "{report:#}");
    let mut want = server_files(&s.repo);
    want.insert("mods/big.jar".into(), big);
    assert_eq!(s.installed(), want);
    assert!(!partial.exists(), "nothing left to resume");
    let hits = s.server.hits_since(since);
    let got: Vec<(&str, u16, Option<&str>)> = hits
        .iter()
        .map(|h| (h.key.as_str(), h.status, h.range.as_deref()))
        .collect();
    let range = format!("bytes={kept}-");
    assert_eq!(
        got,
        [
            (layout::pointer_key(PACK, CHANNEL).as_str(), 200, None),
            (layout::manifest_key(PACK, &s.build()).as_str(), 200, None),
            (key.as_str(), 206, Some(range.as_str())),
        ],
        "the pointer, the manifest, and the rest of the blob"
    );
    assert_eq!(
        hits[2].bytes,
        BIG as u64 - kept,
        "only the missing bytes were sent"
    );
}

async fn serves_a_directory_store(kind: Kind) {
    let mut s = Scenario::new(kind).await;
    headers_of_every_object_class(&mut s).await;
    cold_sync(&mut s).await;
    unchanged_sync_is_one_304(&mut s).await;
    update_fetches_only_changed_blobs(&mut s).await;
    killed_sync_resumes_with_a_range(&mut s).await;
}

/// The headers the servers are held to are the ones docs/FORMAT.md §1 states.
#[test]
fn format_md_states_the_headers_the_examples_set() {
    check_format_md(&repo_root().join("docs/FORMAT.md"));
}

#[tokio::test]
async fn nginx_serves_a_directory_store_as_documented() {
    serves_a_directory_store(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_serves_a_directory_store_as_documented() {
    serves_a_directory_store(Kind::Caddy).await;
}
