//! The whole path with real components: a git repository holding a pack →
//! `atlas-builder` (plan, publish, promote) → a directory store served over
//! loopback HTTP → `atlas-fetcher` → a server directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atlas_builder::promote::{PromoteFrom, PromoteRequest};
use atlas_builder::publish::{PublishOptions, PublishReport, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::{DirStore, S3Settings, Store};
use atlas_fetcher::{InstallSide, NoProgress, Outcome, Report, SyncOptions, Syncer};
use atlas_proto::{SecretKey, Sha256Digest, layout};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;
use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

const PACK: &str = "e2e";

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
        r#"id = "e2e"
name = "End to end"
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
    repo.write("server.properties", "motd=e2e\n").expect("write");
    repo.write("README.md", "not in the pack\n").expect("write");
    repo.commit_all("pack v1").expect("commit");
    repo
}

async fn publish_head(repo: &GitRepo, store: &dyn Store, key: &SecretKey) -> PublishReport {
    let source = PackSource::open(repo.path(), false).expect("open repo");
    let opts = PublishOptions {
        channel: "dev".into(),
        now: now(),
        pointer_lifetime: Duration::from_secs(3600),
        dry_run: false,
        concurrency: 4,
        force_pointer: false,
    };
    let req = PublishRequest {
        key: Some(key),
        ..PublishRequest::new(&source, store, opts, ModOptions::default())
    };
    atlas_builder::publish::run(req).await.expect("publish").report
}

/// Points `production` at `from`.
async fn promote(store: &dyn Store, key: &SecretKey, from: &PromoteFrom, lifetime: Duration) {
    atlas_builder::promote::run(PromoteRequest {
        store,
        key,
        trusted: &[],
        pack: PACK,
        from: from.clone(),
        to: "production",
        now: now(),
        lifetime,
        exports: None,
        player_tools: None,
    })
    .await
    .expect("promote");
}

async fn sync(url: &str, channel: &str, dir: &Path, key: &SecretKey) -> Report {
    let mut opts = SyncOptions::new(url, PACK, channel, vec![key.public()], dir);
    opts.side = InstallSide::Server;
    Syncer::new(opts)
        .expect("syncer")
        .sync(false, &NoProgress)
        .await
        .expect("sync")
}

/// Every file under `dir` except the client's state, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ".atlas" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The server's share of the pack as committed in the repository.
fn expected(repo: &GitRepo) -> BTreeMap<String, Vec<u8>> {
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

#[tokio::test]
async fn git_to_http_store_to_server_directory() {
    let repo = pack_repo();
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = DirStore::new(store_dir.path());
    let key = SecretKey::from_seed(&[42; 32]);
    let first = publish_head(&repo, &store, &key).await;
    let server = StaticServer::start(store_dir.path().to_owned()).expect("http server");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("server");
    std::fs::create_dir_all(dir.join("world")).expect("mkdir");
    std::fs::write(dir.join("world/level.dat"), b"precious").expect("write");

    // 1. Into an (almost) empty directory: exactly the pack's server files.
    let r = sync(&server.url(), "dev", &dir, &key).await;
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.build, first.plan.build);
    let mut want = expected(&repo);
    want.insert("world/level.dat".into(), b"precious".to_vec());
    assert_eq!(
        tree(&dir),
        want,
        "byte-for-byte the committed server files, world untouched"
    );

    // 2. One file changes and is committed and published: one blob moves.
    repo.write("mods/beta.jar", vec![0xB3; 26_000]).expect("write");
    repo.commit_all("beta 2").expect("commit");
    let second = publish_head(&repo, &store, &key).await;
    assert_eq!(second.blobs_new, 1);
    server.reset_requests();
    let r = sync(&server.url(), "dev", &dir, &key).await;
    assert_eq!(r.outcome, Outcome::Updated);
    assert_eq!(r.files.updated, ["mods/beta.jar"]);
    let build2: Sha256Digest = second.plan.build.parse().expect("hex");
    let paths: Vec<String> = server.requests().into_iter().map(|q| q.path).collect();
    assert_eq!(
        paths,
        [
            layout::pointer_key(PACK, "dev"),
            layout::manifest_key(PACK, &build2),
            layout::blob_key(&Sha256Digest::of(&vec![0xB3; 26_000])),
        ],
        "exactly the pointer, the manifest and the one changed blob"
    );
    want.insert("mods/beta.jar".into(), vec![0xB3; 26_000]);
    assert_eq!(tree(&dir), want);

    // 3. Nothing new: one request, answered 304, nothing written.
    let before = atlas_testkit::fs::snapshot(&dir);
    server.reset_requests();
    let r = sync(&server.url(), "dev", &dir, &key).await;
    assert_eq!(r.outcome, Outcome::Current);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].status, 304);
    assert_eq!(
        atlas_testkit::fs::snapshot(&dir),
        before,
        "a current sync writes nothing"
    );
}

#[tokio::test]
async fn promote_reaches_a_production_host() {
    let repo = pack_repo();
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = DirStore::new(store_dir.path());
    let key = SecretKey::from_seed(&[43; 32]);
    let v1 = publish_head(&repo, &store, &key).await;
    let server = StaticServer::start(store_dir.path().to_owned()).expect("http server");
    let work = tempfile::tempdir().expect("tempdir");
    let prod = work.path().join("prod");

    let life = Duration::from_secs(3600);
    let dev = PromoteFrom::Channel("dev".into());
    promote(&store, &key, &dev, life).await;
    let r = sync(&server.url(), "production", &prod, &key).await;
    assert_eq!(
        (r.outcome, r.build.as_str(), r.version),
        (Outcome::Updated, v1.plan.build.as_str(), 1)
    );

    // A newer dev build is not on production until promoted.
    repo.write("config/alpha.toml", "enabled = false\n")
        .expect("write");
    repo.commit_all("v2").expect("commit");
    let v2 = publish_head(&repo, &store, &key).await;
    assert_eq!(
        sync(&server.url(), "production", &prod, &key).await.outcome,
        Outcome::Current
    );
    promote(&store, &key, &dev, life).await;
    let r = sync(&server.url(), "production", &prod, &key).await;
    assert_eq!(
        (r.outcome, r.build.as_str(), r.version),
        (Outcome::Updated, v2.plan.build.as_str(), 2)
    );
    assert_eq!(
        std::fs::read(prod.join("config/alpha.toml")).expect("read"),
        b"enabled = false\n"
    );

    // Rolling back is a newer production version pointing at the older build.
    let old = PromoteFrom::Build(v1.plan.build.parse().expect("hex"));
    promote(&store, &key, &old, life).await;
    let r = sync(&server.url(), "production", &prod, &key).await;
    assert_eq!(
        (r.outcome, r.build.as_str(), r.version),
        (Outcome::Updated, v1.plan.build.as_str(), 3)
    );
    assert_eq!(
        std::fs::read(prod.join("config/alpha.toml")).expect("read"),
        b"enabled = true\n"
    );
    assert!(
        store
            .exists(&layout::pointer_key(PACK, "production"))
            .await
            .expect("exists")
    );
}

#[tokio::test]
async fn s3_store_with_sigv4_to_server_directory() {
    let s3 = S3Server::start("atlas").expect("s3 server");
    let settings = S3Settings {
        endpoint: Some(s3.endpoint()),
        region: Some(REGION.to_owned()),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        session_token: None,
        force_path_style: true,
    };
    let store = atlas_builder::store::open("s3://atlas/packs-cdn", &settings)
        .await
        .expect("open s3 store");
    let repo = pack_repo();
    let key = SecretKey::from_seed(&[44; 32]);
    let first = publish_head(&repo, store.as_ref(), &key).await;
    assert_eq!(
        first.blobs_new, 5,
        "every distinct file, client-only ones included"
    );
    assert!(
        s3.requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .all(|r| r.signed())
    );
    assert!(
        s3.streaming_requests().is_empty(),
        "no aws-chunked uploads (R2 refuses them)"
    );

    // Hosts read the bucket anonymously over plain HTTP, as through a CDN.
    let url = s3.public_url("packs-cdn");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("server");
    let r = sync(&url, "dev", &dir, &key).await;
    assert_eq!(
        (r.outcome, r.build.as_str()),
        (Outcome::Updated, first.plan.build.as_str())
    );
    assert_eq!(tree(&dir), expected(&repo));

    // An update moves one blob; a rebuild of the same commit uploads nothing.
    repo.write("mods/alpha.jar", vec![0xA2; 41_000]).expect("write");
    repo.commit_all("alpha 2").expect("commit");
    let second = publish_head(&repo, store.as_ref(), &key).await;
    assert_eq!((second.blobs_new, second.blobs_reused), (1, 4));
    s3.clear_requests();
    let again = publish_head(&repo, store.as_ref(), &key).await;
    assert_eq!(
        (again.blobs_new, again.plan.build.as_str()),
        (0, second.plan.build.as_str())
    );
    assert!(
        s3.requests().iter().all(|r| r.method != "PUT"),
        "nothing uploaded when nothing changed: {:?}",
        s3.requests()
            .iter()
            .map(|r| (&r.method, &r.path))
            .collect::<Vec<_>>()
    );
    let r = sync(&url, "dev", &dir, &key).await;
    assert_eq!(
        (r.outcome, r.files.updated.as_slice()),
        (Outcome::Updated, &["mods/alpha.jar".to_owned()][..])
    );
    assert_eq!(tree(&dir), expected(&repo));
    assert_eq!(sync(&url, "dev", &dir, &key).await.outcome, Outcome::Current);
}
