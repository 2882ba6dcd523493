//! Players' instances end to end (issue 21): a pack published with its
//! instance archive (`--player-tools`: the bootstrap jar built from
//! `fetcher/bootstrap/` by `scripts/build-bootstrap.sh`, and this build's
//! `atlas-fetcher` as the Linux binary), served over loopback HTTP,
//! downloaded and imported as Prism Launcher imports it, and launched as
//! Prism Launcher and MultiMC run the pre-launch command (real `java`, the
//! real jar, the real fetcher process). Needs a JDK, as the provisioning
//! tests do.

mod prism;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atlas_builder::export::ExportOptions;
use atlas_builder::export::player_tools::{self, PlayerTools};
use atlas_builder::promote::{PromoteFrom, PromoteRequest};
use atlas_builder::publish::{PublishOptions, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::DirStore;
use atlas_proto::pointer::SignedPointer;
use atlas_proto::{Limits, PointerPayload, SecretKey, Sha256Digest, layout};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;

use prism::{Launch, Launcher};

const PACK: &str = "my-pack";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The Rust target the bootstrap picks on this machine.
fn host_target() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    }
}

/// `atlas-bootstrap.jar`, built once per test process with the script the
/// release uses.
fn bootstrap_jar() -> &'static Path {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("atlas-bootstrap-{}", std::process::id()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/build-bootstrap.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("running {script}: {e}"));
        assert!(
            out.status.success(),
            "{script} failed (it needs a JDK: apt-get install openjdk-17-jdk-headless):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("atlas-bootstrap.jar")
    })
}

/// A player-tools folder: VERSION, the jar, and this build's fetcher as the
/// host's binary, with `tail` appended (a different binary that still runs).
fn tools_dir(root: &Path, version: &str, tail: &[u8]) -> PathBuf {
    let dir = root.join(format!("tools-{version}-{}", tail.len()));
    let bin_dir = dir.join(host_target());
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    std::fs::write(dir.join("VERSION"), format!("{version}\n")).expect("write");
    std::fs::copy(bootstrap_jar(), dir.join("atlas-bootstrap.jar")).expect("copy jar");
    let mut bin = std::fs::read(env!("CARGO_BIN_EXE_atlas-fetcher")).expect("fetcher binary");
    bin.extend_from_slice(tail);
    let path = bin_dir.join("atlas-fetcher");
    std::fs::write(&path, bin).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

/// A pack with shared, client-only and server-only files.
fn pack_repo() -> GitRepo {
    let repo = GitRepo::init().expect("git init");
    write_pack_toml(&repo, "1.0.0", "1.21.1", "0.16.9");
    repo.write("mods/alpha.jar", vec![0xA1; 30_000]).expect("write");
    repo.write("mods/zoom.jar", vec![0x20; 12_000]).expect("write");
    repo.write("config/alpha.toml", "enabled = true\n")
        .expect("write");
    repo.write("config/client/hud.toml", "scale = 2\n")
        .expect("write");
    repo.write("server.properties", "motd=players\n").expect("write");
    repo.commit_all("pack 1.0.0").expect("commit");
    repo
}

fn write_pack_toml(repo: &GitRepo, version: &str, minecraft: &str, loader: &str) {
    repo.write(
        "pack.toml",
        format!(
            r#"id = "{PACK}"
name = "My <Pack> & \"Friends\" #1"
version = "{version}"
minecraft = "{minecraft}"
loader = {{ kind = "fabric", version = "{loader}" }}
description = "Players' test pack."

[[files]]
include = ["mods/*.jar", "config/**"]

[[files]]
include = ["mods/zoom.jar", "config/client/**"]
side = "client"

[[files]]
include = ["server.properties"]
side = "server"
"#
        ),
    )
    .expect("write");
}

/// The files a client install holds for the repository's HEAD (by path).
fn client_files(repo: &GitRepo) -> BTreeMap<String, Vec<u8>> {
    [
        "mods/alpha.jar",
        "mods/zoom.jar",
        "config/alpha.toml",
        "config/client/hud.toml",
    ]
    .into_iter()
    .filter_map(|p| std::fs::read(repo.path().join(p)).ok().map(|b| (p.to_owned(), b)))
    .collect()
}

/// Every file under `dir` outside the fetcher's `.atlas/`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    atlas_testkit::fs::snapshot(dir)
        .into_iter()
        .filter(|(p, e)| !e.dir && !p.starts_with(".atlas"))
        .map(|(p, _)| {
            let bytes = std::fs::read(dir.join(&p)).expect("read");
            (p.to_string_lossy().replace('\\', "/"), bytes)
        })
        .collect()
}

struct World {
    tmp: tempfile::TempDir,
    repo: GitRepo,
    store: DirStore,
    server: Option<StaticServer>,
    key: SecretKey,
    tools: PlayerTools,
    /// The players' Prism Launcher data folder.
    prism: PathBuf,
}

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let store_dir = tmp.path().join("store");
        std::fs::create_dir_all(&store_dir).expect("mkdir");
        let server = StaticServer::start(&store_dir).expect("server");
        let tools = player_tools::load(
            &tools_dir(tmp.path(), env!("CARGO_PKG_VERSION"), b""),
            &Limits::DEFAULT,
        )
        .expect("player tools");
        let prism = tmp.path().join("Prism Launcher");
        Self {
            repo: pack_repo(),
            store: DirStore::new(&store_dir),
            server: Some(server),
            key: SecretKey::from_seed(&[21; 32]),
            tools,
            prism,
            tmp,
        }
    }

    fn server(&self) -> &StaticServer {
        self.server.as_ref().expect("the store is up")
    }

    fn exports(&self) -> ExportOptions {
        ExportOptions::new(&self.server().url()).expect("public URL")
    }

    async fn publish(&self, channel: &str) {
        let source = PackSource::open(self.repo.path(), false).expect("open repo");
        let opts = PublishOptions {
            channel: channel.into(),
            now: now(),
            pointer_lifetime: Duration::from_secs(3600),
            dry_run: false,
            concurrency: 4,
            force_pointer: false,
        };
        let exports = self.exports();
        let req = PublishRequest {
            key: Some(&self.key),
            exports: Some(&exports),
            player_tools: Some(&self.tools),
            ..PublishRequest::new(&source, &self.store, opts, ModOptions::default())
        };
        atlas_builder::publish::run(req).await.expect("publish");
    }

    async fn promote(&self, from: &str, to: &str) {
        let exports = self.exports();
        atlas_builder::promote::run(PromoteRequest {
            store: &self.store,
            key: &self.key,
            trusted: &[],
            pack: PACK,
            from: PromoteFrom::Channel(from.into()),
            to,
            now: now(),
            lifetime: Duration::from_secs(3600),
            exports: Some(&exports),
            player_tools: Some(&self.tools),
        })
        .await
        .expect("promote");
    }

    fn pointer(&self, channel: &str) -> PointerPayload {
        let bytes =
            std::fs::read(self.store.root().join(layout::pointer_key(PACK, channel))).expect("pointer");
        SignedPointer::parse(&bytes)
            .and_then(|p| p.verify(&[self.key.public()], 1, &expect(channel)))
            .expect("verifies")
            .payload
    }

    /// Downloads the channel's archive over HTTP and imports it into the
    /// launcher's instances folder as `name`.
    async fn import(&self, channel: &str, name: &str) -> Launch {
        let key = self
            .pointer(channel)
            .exports
            .instance
            .expect("the pointer names an instance archive");
        assert!(key.ends_with(&format!("/{PACK}-{channel}.zip")), "{key}");
        let url = format!("{}{key}", self.server().url());
        let zip = reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .bytes()
            .await
            .expect("body");
        assert_eq!(
            key.split('/').nth(3),
            Some(Sha256Digest::of(&zip).to_hex().as_str()),
            "named by its SHA-256"
        );
        let root = prism::import_root(&zip);
        assert_eq!(root, "", "the instance is at the zip's root");
        let instance = self.prism.join("instances").join(name);
        std::fs::create_dir_all(&instance).expect("mkdir");
        prism::extract(&zip, &root, &instance);
        Launch {
            instance,
            java: prism::java(),
            cache_home: self.tmp.path().join("cache"),
            env: Vec::new(),
        }
    }

    /// Stops serving the store (the port is closed: connections are refused).
    fn take_down(&mut self) {
        self.server = None;
    }
}

fn expect(channel: &str) -> atlas_proto::pointer::Expectation<'_> {
    atlas_proto::pointer::Expectation {
        pack: PACK,
        channel,
        now: 0,
        last: None,
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Lines the launcher shows at `level` (the `!![Level]!` prefix).
fn lines(out: &Output, level: &str) -> Vec<String> {
    let prefix = format!("!![{level}]!");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// The blob keys among logged requests.
fn blob_requests(server: &StaticServer) -> BTreeSet<String> {
    server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("blobs/"))
        .collect()
}

fn blob_of(bytes: &[u8]) -> String {
    layout::blob_key(&Sha256Digest::of(bytes))
}

#[tokio::test]
async fn prism_instance_end_to_end() {
    let mut w = World::new();
    w.publish("production").await;
    let launch = w.import("production", "My Pack").await;
    let game = launch.instance.join("minecraft");

    // First launch: the bootstrap downloads the pinned fetcher, the fetcher
    // installs the client build.
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        tree(&game),
        client_files(&w.repo),
        "the client build, byte for byte"
    );
    assert!(!game.join("server.properties").exists(), "no server-only file");
    let install: serde_json::Value =
        serde_json::from_slice(&std::fs::read(game.join(".atlas/install.json")).expect("install.json"))
            .expect("json");
    assert_eq!(install["build"], w.pointer("production").build);
    assert_eq!(install["side"], "client");
    let info = lines(&out, "Info");
    assert!(
        info.iter().any(|l| l.contains("on channel production: updated")),
        "{}",
        text(&out)
    );
    let pin = &w.tools.release.targets[host_target()];
    assert!(
        w.tmp
            .path()
            .join("cache/atlas/fetcher")
            .join(&pin.sha256)
            .join("atlas-fetcher")
            .is_file(),
        "cached under XDG_CACHE_HOME by its hash"
    );

    // Second launch: one request (the pointer, answered 304); the bootstrap
    // runs the cached fetcher.
    w.server().reset_requests();
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    let requests = w.server().requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].path, layout::pointer_key(PACK, "production"));
    assert_eq!(requests[0].status, 304);
    assert!(
        lines(&out, "Info").iter().any(|l| l.ends_with("up to date")),
        "{}",
        text(&out)
    );

    // A new build: one mod and one config change; only they are downloaded.
    w.repo.write("mods/zoom.jar", vec![0x21; 12_500]).expect("write");
    w.repo
        .write("config/alpha.toml", "enabled = false\n")
        .expect("write");
    w.repo.commit_all("pack 1.0.1").expect("commit");
    w.publish("production").await;
    w.server().reset_requests();
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        blob_requests(w.server()),
        BTreeSet::from([blob_of(&[0x21; 12_500]), blob_of(b"enabled = false\n")]),
        "only what changed"
    );
    let paths: BTreeSet<String> = w.server().requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("blobs/") || p.ends_with(".json") || p.ends_with("manifest.pb.zst")),
        "no fetcher download, nothing else: {paths:#?}"
    );
    assert_eq!(tree(&game), client_files(&w.repo));

    // The store unreachable: the game starts with the installed build, and the log says why.
    let before = tree(&game);
    let url = w.server().url();
    w.take_down();
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(
        out.status.success(),
        "offline must not stop the game: {}",
        text(&out)
    );
    let warning = lines(&out, "Warning").join("\n");
    assert!(warning.contains("cannot reach"), "{}", text(&out));
    assert!(
        warning.contains(url.trim_end_matches('/')),
        "names the store: {}",
        text(&out)
    );
    assert!(
        warning.contains("starting with the installed my-pack 1.0.0"),
        "{}",
        text(&out)
    );
    assert_eq!(tree(&game), before);

    // Back online, a new build with a tampered blob: refused, nothing changes.
    let store_dir = w.store.root().to_owned();
    w.server = Some(StaticServer::start(&store_dir).expect("server"));
    // The archive pins the old URL; the instance follows the store where it is now.
    let props = launch.instance.join("atlas/instance.properties");
    let text_props = std::fs::read_to_string(&props)
        .expect("props")
        .replace(&url, &w.server().url());
    std::fs::write(&props, text_props).expect("write");
    w.repo.write("mods/new.jar", vec![0x4E; 9_000]).expect("write");
    w.repo.commit_all("pack 1.0.2").expect("commit");
    w.publish("production").await;
    let tampered = store_dir.join(blob_of(&[0x4E; 9_000]));
    std::fs::write(&tampered, vec![0x66; 9_000]).expect("tamper");
    let install_before = std::fs::read(game.join(".atlas/install.json")).expect("install");
    let before = tree(&game);
    let out = launch.pre_launch(Launcher::Prism).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "tampering stops the launch: {}",
        text(&out)
    );
    let error = lines(&out, "Error").join("\n");
    assert!(error.contains("mods/new.jar"), "names the file: {}", text(&out));
    assert!(
        error.contains(&Sha256Digest::of(&[0x4E; 9_000]).to_hex()),
        "names the hash: {}",
        text(&out)
    );
    assert!(error.contains("unchanged"), "{}", text(&out));
    assert_eq!(tree(&game), before, "the instance is as it was");
    assert_eq!(
        std::fs::read(game.join(".atlas/install.json")).expect("install"),
        install_before
    );
}

#[tokio::test]
async fn multimc_order_and_paths_with_spaces() {
    let w = World::new();
    w.publish("production").await;
    let launch = w.import("production", "A pack with spaces").await;
    let out = launch.pre_launch(Launcher::MultiMc).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tree(&launch.instance.join("minecraft")), client_files(&w.repo));
    let cfg = prism::read_cfg(&std::fs::read_to_string(launch.instance.join("instance.cfg")).expect("cfg"));
    assert_eq!(
        cfg["name"],
        "My <Pack> & Friends \\#1 (production)".replace("\\#", "#")
    );
    assert_eq!(cfg["iconKey"], "atlas-my-pack");
    assert!(
        launch.instance.join("atlas-my-pack.png").is_file(),
        "the icon beside instance.cfg"
    );
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(launch.instance.join("mmc-pack.json")).expect("profile"))
            .expect("json");
    assert_eq!(profile["components"][0]["uid"], "net.minecraft");
    assert_eq!(profile["components"][1]["version"], "0.16.9");
}

#[tokio::test]
async fn a_fetcher_that_does_not_match_its_pin_never_runs() {
    let w = World::new();
    w.publish("production").await;
    let launch = w.import("production", "Pinned").await;
    let marker = w.tmp.path().join("ran");
    let pin = &w.tools.release.targets[host_target()];
    let evil = format!("#!/bin/sh\ntouch '{}'\n", marker.display());
    std::fs::write(
        w.store
            .root()
            .join(layout::blob_key(&pin.sha256.parse().expect("hex"))),
        evil,
    )
    .expect("replace the fetcher blob");
    let out = launch.pre_launch(Launcher::Prism).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let error = lines(&out, "Error").join("\n");
    assert!(error.contains(&pin.sha256), "names the pin: {}", text(&out));
    assert!(error.contains("Nothing was run"), "{}", text(&out));
    assert!(!marker.exists(), "the replaced binary never ran");
    assert!(tree(&launch.instance.join("minecraft")).is_empty());
}

/// The cache is only a cache: a cached fetcher changed after it was
/// checked (by anything that can write the player's cache folder) is
/// hashed again before it runs, refused, deleted, and fetched afresh on
/// the next launch.
#[tokio::test]
async fn a_cached_fetcher_changed_after_its_check_never_runs() {
    let w = World::new();
    w.publish("production").await;
    let launch = w.import("production", "Cached").await;
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    let pin = &w.tools.release.targets[host_target()];
    let cached = w
        .tmp
        .path()
        .join("cache/atlas/fetcher")
        .join(&pin.sha256)
        .join("atlas-fetcher");
    let marker = w.tmp.path().join("ran");
    let evil = format!("#!/bin/sh\ntouch '{}'\n", marker.display());
    std::fs::write(&cached, evil).expect("replace the cached fetcher");
    let before = tree(&launch.instance.join("minecraft"));
    w.server().reset_requests();
    let out = launch.pre_launch(Launcher::Prism).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let error = lines(&out, "Error").join("\n");
    assert!(error.contains("no longer matches its pin"), "{}", text(&out));
    assert!(error.contains("nothing was run"), "{}", text(&out));
    assert!(!marker.exists(), "the changed binary never ran");
    assert!(!cached.exists(), "it was deleted");
    assert!(w.server().requests().is_empty(), "refused before any request");
    assert_eq!(
        tree(&launch.instance.join("minecraft")),
        before,
        "nothing changed"
    );
    // The next launch downloads the pinned binary again and runs it.
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        Sha256Digest::of(&std::fs::read(&cached).expect("cached again")).to_hex(),
        pin.sha256
    );
    assert!(!marker.exists());
}

#[tokio::test]
async fn the_first_launch_needs_the_store() {
    let mut w = World::new();
    w.publish("production").await;
    // Nothing cached: the bootstrap itself cannot get the fetcher.
    let fresh = w.import("production", "Fresh").await;
    // Another instance warms the cache first, for the fetcher's own case.
    let warm = w.import("production", "Warm").await;
    let warm_out = warm.pre_launch(Launcher::Prism).await;
    assert!(warm_out.status.success(), "{}", text(&warm_out));
    let other = w.import("production", "Other").await;
    w.take_down();
    for launch in [&fresh, &other] {
        // `fresh` and `other` share the cache `warm` filled: both reach the
        // fetcher, which cannot reach the store either.
        let out = launch.pre_launch(Launcher::Prism).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let error = lines(&out, "Error").join("\n");
        assert!(
            error.contains("the first launch needs the internet"),
            "{}",
            text(&out)
        );
        assert!(tree(&launch.instance.join("minecraft")).is_empty());
    }
    let empty = Launch {
        cache_home: w.tmp.path().join("empty-cache"),
        ..fresh.clone()
    };
    let out = empty.pre_launch(Launcher::Prism).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        lines(&out, "Error")
            .join("\n")
            .contains("the first launch needs the internet"),
        "the bootstrap says it too: {}",
        text(&out)
    );
}

#[tokio::test]
async fn a_player_follows_another_channel_and_back() {
    let w = World::new();
    w.publish("production").await;
    w.repo
        .write("mods/beta-only.jar", vec![0xBE; 5_000])
        .expect("write");
    w.repo.commit_all("beta").expect("commit");
    w.publish("beta").await;
    let launch = w.import("production", "Channels").await;
    let game = launch.instance.join("minecraft");
    assert!(launch.pre_launch(Launcher::Prism).await.status.success());
    assert!(!game.join("mods/beta-only.jar").exists());

    let channel = |args: &[&str]| {
        let out = std::process::Command::new(&launch.java)
            .arg("-jar")
            .arg("atlas/atlas-bootstrap.jar")
            .arg("channel")
            .args(args)
            .current_dir(&launch.instance)
            .output()
            .expect("java");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(channel(&[]).starts_with("production (the instance's default)"));
    assert!(channel(&["beta"]).contains("following beta"));
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(game.join("mods/beta-only.jar").is_file(), "beta's build");
    assert!(
        lines(&out, "Info").iter().any(|l| l.contains("on channel beta")),
        "{}",
        text(&out)
    );

    assert!(channel(&["--default"]).contains("following production"));
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(
        out.status.success(),
        "back to production, no rollback error: {}",
        text(&out)
    );
    assert!(!game.join("mods/beta-only.jar").exists());

    // An unknown channel stops the launch and says how to fix it.
    std::fs::write(launch.instance.join("atlas/channel"), "nightly\n").expect("write");
    let out = launch.pre_launch(Launcher::Prism).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        lines(&out, "Error").join("\n").contains("no channel `nightly`"),
        "{}",
        text(&out)
    );
    // ATLAS_CHANNEL (the launcher's environment settings) wins over the file.
    let by_env = Launch {
        env: vec![("ATLAS_CHANNEL".into(), "beta".into())],
        ..launch.clone()
    };
    assert!(by_env.pre_launch(Launcher::Prism).await.status.success());
    assert!(game.join("mods/beta-only.jar").is_file());
}

#[tokio::test]
async fn a_new_loader_switches_the_profile_before_any_file() {
    let w = World::new();
    w.publish("production").await;
    let launch = w.import("production", "Loader").await;
    let game = launch.instance.join("minecraft");
    assert!(launch.pre_launch(Launcher::Prism).await.status.success());
    write_pack_toml(&w.repo, "2.0.0", "1.21.4", "0.16.10");
    w.repo.write("mods/alpha.jar", vec![0xA2; 30_000]).expect("write");
    w.repo.commit_all("pack 2.0.0").expect("commit");
    w.publish("production").await;
    let before = tree(&game);
    let out = launch.pre_launch(Launcher::Prism).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        lines(&out, "Warning").join("\n").contains("Press Launch again"),
        "{}",
        text(&out)
    );
    assert_eq!(
        tree(&game),
        before,
        "no file before the launcher has the new profile"
    );
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(launch.instance.join("mmc-pack.json")).expect("profile"))
            .expect("json");
    assert_eq!(profile["components"][0]["version"], "1.21.4");
    assert_eq!(profile["components"][1]["version"], "0.16.10");
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tree(&game), client_files(&w.repo));
}

#[tokio::test]
async fn the_instance_moves_to_a_newer_fetcher_only_through_a_signed_pointer() {
    let mut w = World::new();
    w.publish("production").await;
    let launch = w.import("production", "Self update").await;
    assert!(launch.pre_launch(Launcher::Prism).await.status.success());
    let old_pin = w.tools.release.targets[host_target()].sha256.clone();

    // A newer release (a different binary): adopted after the verified pointer names it.
    w.tools =
        player_tools::load(&tools_dir(w.tmp.path(), "99.0.0", b"\0newer"), &Limits::DEFAULT).expect("tools");
    let new_pin = w.tools.release.targets[host_target()].sha256.clone();
    w.promote("production", "production").await;
    assert_eq!(
        w.pointer("production").tools.atlas_fetcher.map(|t| t.version),
        Some("99.0.0".to_owned())
    );
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        lines(&out, "Info")
            .iter()
            .any(|l| l.contains("next launch runs atlas-fetcher 99.0.0")),
        "{}",
        text(&out)
    );
    let props = std::fs::read_to_string(launch.instance.join("atlas/fetcher.properties")).expect("new pins");
    assert!(props.contains(&new_pin), "{props}");
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    let info = lines(&out, "Info").join("\n");
    assert!(
        info.contains(&new_pin[..12]),
        "runs the new binary: {}",
        text(&out)
    );
    assert!(!info.contains(&old_pin[..12]), "{}", text(&out));

    // An older release is never adopted, even signed.
    w.tools =
        player_tools::load(&tools_dir(w.tmp.path(), "0.0.1", b"\0older"), &Limits::DEFAULT).expect("tools");
    w.promote("production", "production").await;
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(out.status.success(), "{}", text(&out));
    let props = std::fs::read_to_string(launch.instance.join("atlas/fetcher.properties")).expect("pins");
    assert!(props.contains(&new_pin), "still the newer pins: {props}");
    let out = launch.pre_launch(Launcher::Prism).await;
    assert!(
        lines(&out, "Info").join("\n").contains(&new_pin[..12]),
        "{}",
        text(&out)
    );
    w.take_down();
}
