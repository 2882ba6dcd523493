//! Issue 18, item 1: publishes and promotes racing for one channel, against
//! the S3 test server (real SigV4) and a directory store, through the library
//! and through the real binary (exit codes are the contract). After every
//! race the pointer, the channel's packwiz tree and the `.mrpack` describe
//! one build; every writer exits 0 or, having lost the pointer's
//! compare-and-swap, 5.
//!
//! Two kinds of rounds: natural (the writers just run at once) and gated (the
//! pointer writes are held until every writer has sent its own, so exactly
//! one wins: the S3 server's `gate_puts`, or a gate in front of the directory
//! store), which makes the losers' path certain to run.

use std::sync::Arc;
use std::time::Duration;

use atlas_builder::exit::HasExitClass as _;
use atlas_builder::export::ExportOptions;
use atlas_builder::promote::{PromoteFrom, PromoteRequest};
use atlas_builder::publish::{PublishOptions, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::{
    Body, DirStore, Expected, Listed, Object, ObjectMeta, PutOutcome, S3Store, Store, StoreError,
};
use atlas_proto::{SecretKey, Sha256Digest, layout};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;
use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

use crate::common::consistency::check_one_build;
use crate::common::{builder, text};

const PACK: &str = "race";
const LIVE: &str = "live";

fn pack_toml() -> String {
    format!(
        "id = \"{PACK}\"\nname = \"Race\"\nversion = \"1.0\"\nminecraft = \"1.21.1\"\n\
         loader = {{ kind = \"fabric\", version = \"0.16.9\" }}\n\
         [[files]]\ninclude = [\"config/**\", \"mods/*.jar\"]\n"
    )
}

/// A pack repository whose build is unique to `tag` (shared jars, one distinct config).
fn repo(tag: &str) -> GitRepo {
    let r = GitRepo::init().expect("git");
    r.write("pack.toml", pack_toml()).expect("write");
    r.write("mods/shared.jar", vec![7u8; 3000]).expect("write");
    r.write("mods/other.jar", vec![8u8; 1500]).expect("write");
    r.write("config/tag.txt", format!("{tag}\n")).expect("write");
    r.write(&format!("config/only-{tag}.txt"), tag).expect("write");
    r.commit_all(tag).expect("commit");
    r
}

fn options(channel: &str) -> PublishOptions {
    PublishOptions {
        channel: channel.into(),
        now: 1_700_000_000,
        pointer_lifetime: Duration::from_secs(86_400),
        dry_run: false,
        concurrency: 4,
        force_pointer: false,
    }
}

async fn publish(
    store: &dyn Store,
    key: &SecretKey,
    exports: &ExportOptions,
    repo: &GitRepo,
    channel: &str,
    cache: &std::path::Path,
) -> Result<Sha256Digest, u8> {
    let source = PackSource::open(repo.path(), false).expect("open");
    let req = PublishRequest {
        key: Some(key),
        exports: Some(exports),
        ..PublishRequest::new(
            &source,
            store,
            options(channel),
            ModOptions::new(cache.to_owned()),
        )
    };
    match atlas_builder::publish::run(req).await {
        Ok(p) => Ok(p.plan.build_id),
        Err(e) => {
            let code = e.exit_class().code();
            assert_eq!(code, 5, "only a lost race may fail a publish: {e}");
            Err(code)
        }
    }
}

async fn promote(
    store: &dyn Store,
    key: &SecretKey,
    exports: &ExportOptions,
    build: Sha256Digest,
) -> Result<Sha256Digest, u8> {
    let r = atlas_builder::promote::run(PromoteRequest {
        store,
        key,
        trusted: &[],
        pack: PACK,
        from: PromoteFrom::Build(build),
        to: LIVE,
        now: 1_700_000_000,
        lifetime: Duration::from_secs(86_400),
        exports: Some(exports),
        player_tools: None,
    })
    .await;
    match r {
        Ok(_) => Ok(build),
        Err(e) => {
            let code = e.exit_class().code();
            assert_eq!(code, 5, "only a lost race may fail a promote: {e}");
            Err(code)
        }
    }
}

/// A directory store whose pointer writes wait at a gate until `n` writers
/// have sent theirs (the directory counterpart of `S3Server::gate_puts`).
#[derive(Debug)]
struct GatedDir {
    inner: DirStore,
    gate: Arc<tokio::sync::Barrier>,
    armed: std::sync::Mutex<usize>,
}

#[async_trait::async_trait]
impl Store for GatedDir {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn keeps_cached_files(&self) -> bool {
        true
    }
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.exists(key).await
    }
    async fn sync_blobs(&self) -> Result<(), StoreError> {
        self.inner.sync_blobs().await
    }
    async fn put_immutable(&self, key: &str, body: Body, meta: ObjectMeta) -> Result<PutOutcome, StoreError> {
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
        let wait = key == layout::pointer_key(PACK, LIVE) && {
            let mut armed = self.armed.lock().expect("gate");
            let go = *armed > 0;
            *armed = armed.saturating_sub(1);
            go
        };
        if wait {
            self.gate.wait().await;
        }
        self.inner.put_cas(key, bytes, expected, meta).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        self.inner.delete(keys).await
    }
}

/// One race: `repos.len()` publishes and `pool.len()` promotes into `live`
/// at once. Returns the exit codes (0 or 5).
async fn race(
    store: &dyn Store,
    key: &SecretKey,
    exports: &ExportOptions,
    repos: &[GitRepo],
    pool: &[Sha256Digest],
    cache: &std::path::Path,
) -> Vec<(Sha256Digest, u8)> {
    let pubs = repos.iter().map(|r| async move {
        match publish(store, key, exports, r, LIVE, cache).await {
            Ok(build) => (build, 0),
            // A loser's build is not needed: it cannot be the live one.
            Err(code) => (Sha256Digest::of(b"lost"), code),
        }
    });
    let proms = pool.iter().map(|b| async move {
        (
            *b,
            promote(store, key, exports, *b).await.map_or_else(|c| c, |_| 0),
        )
    });
    let (mut a, b) = tokio::join!(
        futures_util::future::join_all(pubs),
        futures_util::future::join_all(proms)
    );
    a.extend(b);
    a
}

/// Runs `rounds` races on `store` (gated with `arm` when `gated`) and checks each.
async fn races(
    store: &dyn Store,
    exports: &ExportOptions,
    rounds: usize,
    tag: &str,
    arm: &dyn Fn(usize),
    gated: bool,
) -> (usize, usize) {
    let key = SecretKey::from_seed(&[3; 32]);
    let cache = tempfile::tempdir().expect("cache");
    // Builds to promote, published to another channel first.
    let mut pool = Vec::new();
    for i in 0..rounds * 2 {
        let r = repo(&format!("{tag}-pool-{i}"));
        pool.push(
            publish(store, &key, exports, &r, "pool", cache.path())
                .await
                .expect("pool publish"),
        );
    }
    let (mut wins, mut losses) = (0, 0);
    for round in 0..rounds {
        let repos: Vec<GitRepo> = (0..2).map(|i| repo(&format!("{tag}-{round}-{i}"))).collect();
        let promoted = &pool[round * 2..round * 2 + 2];
        arm(4);
        let outcomes = race(store, &key, exports, &repos, promoted, cache.path()).await;
        let live = check_one_build(store, exports, PACK, LIVE).await;
        let winners: Vec<_> = outcomes.iter().filter(|(_, c)| *c == 0).collect();
        assert!(!winners.is_empty(), "round {round}: someone wins: {outcomes:?}");
        assert!(
            winners.iter().any(|(b, _)| *b == live),
            "round {round}: the live build {live} is a winner's: {outcomes:?}"
        );
        let lost = outcomes.len() - winners.len();
        if gated {
            assert_eq!(
                lost, 3,
                "round {round}: one pointer write wins a gated race: {outcomes:?}"
            );
        }
        wins += winners.len();
        losses += lost;
    }
    (wins, losses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_and_promotes_race_on_s3() {
    let server = S3Server::start("atlas").expect("s3");
    let store = S3Store::connect("atlas", "cdn", &crate::common::s3_settings(&server))
        .await
        .expect("connect");
    let exports = ExportOptions::new(&server.public_url("cdn")).expect("url");
    let gate_key = format!("cdn/{}", layout::pointer_key(PACK, LIVE));
    let (w, l) = races(
        &store,
        &exports,
        4,
        "s3g",
        &|n| server.gate_puts(&gate_key, n),
        true,
    )
    .await;
    assert_eq!((w, l), (4, 12));
    let (w, l) = races(&store, &exports, 4, "s3n", &|_| {}, false).await;
    assert_eq!(w + l, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_and_promotes_race_on_a_directory_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = StaticServer::start(dir.path()).expect("http");
    let exports = ExportOptions::new(&server.url()).expect("url");
    let gated = GatedDir {
        inner: DirStore::new(dir.path()),
        gate: Arc::new(tokio::sync::Barrier::new(4)),
        armed: std::sync::Mutex::new(0),
    };
    let arm = |n: usize| *gated.armed.lock().expect("gate") = n;
    let (w, l) = races(&gated, &exports, 4, "dirg", &arm, true).await;
    assert_eq!((w, l), (4, 12));
    let (w, l) = races(&gated, &exports, 4, "dirn", &|_| {}, false).await;
    assert_eq!(w + l, 16);
}

/// The real binary, racing: `publish` and `promote` processes started at
/// once against the S3 server (pointer writes gated) and a directory store
/// (natural races); each exits 0 or 5, and a 5 names the lost race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_race_and_losers_exit_5() {
    let work = tempfile::tempdir().expect("tmp");
    let key = SecretKey::from_seed(&[3; 32]);
    let s3 = S3Server::start("atlas").expect("s3");
    let s3_store = S3Store::connect("atlas", "cdn", &crate::common::s3_settings(&s3))
        .await
        .expect("connect");
    let s3_exports = ExportOptions::new(&s3.public_url("cdn")).expect("url");
    let dir = work.path().join("store");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let http = StaticServer::start(&dir).expect("http");
    let dir_exports = ExportOptions::new(&http.url()).expect("url");
    let dir_store = DirStore::new(&dir);
    let endpoint = s3.endpoint();
    let cache = work.path().join("cache");
    let rounds = 3;

    for (name, store, exports, gated) in [
        ("s3", &s3_store as &dyn Store, &s3_exports, true),
        ("dir", &dir_store as &dyn Store, &dir_exports, false),
    ] {
        let store_url = match name {
            "s3" => "s3://atlas/cdn".to_owned(),
            _ => dir.display().to_string(),
        };
        let mut pool = Vec::new();
        for i in 0..rounds * 2 {
            let r = repo(&format!("bin-{name}-pool-{i}"));
            pool.push(
                publish(store, &key, exports, &r, "pool", &cache)
                    .await
                    .expect("pool"),
            );
        }
        let mut losses = 0;
        for round in 0..rounds {
            let repos: Vec<GitRepo> = (0..2).map(|i| repo(&format!("bin-{name}-{round}-{i}"))).collect();
            if gated {
                s3.gate_puts(&format!("cdn/{}", layout::pointer_key(PACK, LIVE)), 4);
            }
            let command = |args: Vec<String>| {
                let mut c = builder();
                c.args(["--json", "--public-url", &exports.url_of("")])
                    .args(args)
                    .args(["--store", &store_url])
                    .env("ATLAS_SIGNING_KEY", key.to_text())
                    .env("ATLAS_CACHE_DIR", &cache)
                    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
                    .env("AWS_ENDPOINT_URL", &endpoint)
                    .env("AWS_REGION", REGION);
                if name == "s3" {
                    c.arg("--s3-path-style");
                }
                c.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                c.spawn().expect("spawn atlas-builder")
            };
            let mut children = Vec::new();
            for r in &repos {
                let args = ["publish", "--channel", LIVE, "--repo"]
                    .map(String::from)
                    .to_vec();
                let mut args = args;
                args.push(r.path().display().to_string());
                children.push(command(args));
            }
            for b in &pool[round * 2..round * 2 + 2] {
                let args = ["promote", "--pack", PACK, "--to", LIVE, "--build"]
                    .map(String::from)
                    .to_vec();
                let mut args = args;
                args.push(b.to_hex());
                children.push(command(args));
            }
            let outs: Vec<std::process::Output> = tokio::task::spawn_blocking(move || {
                children
                    .into_iter()
                    .map(|c| c.wait_with_output().expect("wait"))
                    .collect()
            })
            .await
            .expect("join");
            let live = check_one_build(store, exports, PACK, LIVE).await;
            let mut winners = Vec::new();
            for out in &outs {
                match out.status.code() {
                    Some(0) => {
                        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
                        winners.push(report["build"].as_str().expect("build").to_owned());
                    }
                    Some(5) => {
                        losses += 1;
                        let err = text(&out.stderr);
                        assert!(err.contains("run the command again"), "{err}");
                    }
                    other => panic!("{name} round {round}: exit {other:?}: {}", text(&out.stderr)),
                }
            }
            assert!(
                winners.contains(&live.to_hex()),
                "{name} round {round}: {winners:?} vs {live}"
            );
            if gated {
                assert_eq!(
                    winners.len(),
                    1,
                    "{name} round {round}: one winner of a gated race"
                );
            }
        }
        if gated {
            assert_eq!(losses, rounds * 3);
        }
    }
}
