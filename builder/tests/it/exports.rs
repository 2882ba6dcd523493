//! Launcher exports, end to end over loopback HTTP: a pack is published to a
//! directory store served by `StaticServer` with `--public-url` set; the
//! build's `.mrpack` passes the checks of Modrinth's format documentation,
//! imports back as a pack with the same manifest file set, is
//! byte-reproducible, and the channel's packwiz tree reads cleanly with
//! Atlas's own packwiz importer with every URL and hash resolving.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::time::Duration;

use atlas_builder::build::plan_pack;
use atlas_builder::export::mrpack::write_mrpack;
use atlas_builder::export::{ExportError, ExportOptions};
use atlas_builder::packwiz::{DirFiles, PackwizPack, UpstreamHash, has_errors};
use atlas_builder::plan::{BuildPlan, PlanOptions};
use atlas_builder::pointer::read_current;
use atlas_builder::promote::{PromoteError, PromoteFrom, PromoteReport, PromoteRequest};
use atlas_builder::publish::{PublishOptions, PublishRequest, Published};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::{DirStore, Store};
use atlas_proto::pointer::{Expectation, SignedPointer};
use atlas_proto::v1::{Manifest, Side};
use atlas_proto::{SecretKey, Sha256Digest, layout};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;
use sha1::Digest as _;

const PACK_TOML: &str = r#"
id = "expo"
name = "Export Pack"
version = "2.3.4"
minecraft = "1.21.1"
loader = { kind = "fabric", version = "0.16.9" }

[[files]]
include = ["config/**", "mods/*.jar", "resourcepacks/*.zip", "run.sh"]

[[files]]
include = ["config/client/**", "mods/client-*.jar"]
side = "client"

[[files]]
include = ["config/server/**", "mods/server-*.jar"]
side = "server"

[[files]]
include = ["mods/opt-*.jar"]
optional = true
default = false
description = "An optional mod"
"#;

fn fixture() -> GitRepo {
    let repo = GitRepo::init().expect("git init");
    repo.write("pack.toml", PACK_TOML).expect("write");
    repo.write("config/a.json", "{\"a\": 1}\n").expect("write");
    repo.write("config/client/hud.toml", "x = 1\n").expect("write");
    repo.write("config/server/ops.toml", "op = true\n")
        .expect("write");
    repo.write("mods/one.jar", vec![1u8; 5000]).expect("write");
    repo.write("mods/same.jar", vec![1u8; 5000]).expect("write");
    repo.write("mods/client-zoom.jar", vec![2u8; 3000])
        .expect("write");
    repo.write("mods/server-tick.jar", vec![3u8; 2000])
        .expect("write");
    repo.write("mods/opt-shaders.jar", vec![4u8; 1000])
        .expect("write");
    repo.write("resourcepacks/look.zip", vec![5u8; 700])
        .expect("write");
    repo.write("run.sh", "#!/bin/sh\necho hi\n").expect("write");
    repo.make_executable("run.sh").expect("chmod");
    repo.commit_all("initial").expect("commit");
    repo
}

struct World {
    repo: GitRepo,
    source: PackSource,
    plan: BuildPlan,
    _store_dir: tempfile::TempDir,
    store: DirStore,
    _server: StaticServer,
    exports: ExportOptions,
    key: SecretKey,
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

/// Publishes `source` (a pack without mods) with its launcher exports.
async fn publish_with_exports(
    source: &PackSource,
    store: &dyn Store,
    key: &SecretKey,
    opts: PublishOptions,
    exports: &ExportOptions,
) -> Published {
    let req = PublishRequest {
        key: Some(key),
        exports: Some(exports),
        ..PublishRequest::new(source, store, opts, ModOptions::default())
    };
    atlas_builder::publish::run(req).await.expect("publish")
}

/// Promotes `from` to `production` of pack `expo`.
async fn promote(
    w: &World,
    from: PromoteFrom,
    now: u64,
    exports: Option<&ExportOptions>,
) -> Result<PromoteReport, PromoteError> {
    atlas_builder::promote::run(PromoteRequest {
        store: &w.store,
        key: &w.key,
        trusted: &[],
        pack: "expo",
        from,
        to: "production",
        now,
        lifetime: Duration::from_secs(3600),
        exports,
        player_tools: None,
    })
    .await
}

impl World {
    async fn published() -> Self {
        let repo = fixture();
        let source = PackSource::open(repo.path(), false).expect("open");
        let store_dir = tempfile::tempdir().expect("tmp");
        let store = DirStore::new(store_dir.path());
        let server = StaticServer::start(store_dir.path()).expect("server");
        let exports = ExportOptions::new(&server.url()).expect("public url");
        let key = SecretKey::from_seed(&[9; 32]);
        let Published { plan, report } =
            publish_with_exports(&source, &store, &key, options("dev"), &exports).await;
        let w = Self {
            repo,
            source,
            plan,
            _store_dir: store_dir,
            store,
            _server: server,
            exports,
            key,
        };
        let e = report.exports.expect("exports");
        assert!(e.mrpack_new);
        assert!(e.packwiz_written > 0);
        assert!(e.skipped.is_empty(), "{:?}", e.skipped);
        w
    }

    fn get(&self, url: &str) -> Vec<u8> {
        get(url)
    }

    fn mrpack_bytes(&self) -> Vec<u8> {
        let key = layout::mrpack_key("expo", &self.plan.build_id);
        self.get(&self.exports.url_of(&key))
    }
}

/// A tiny blocking GET over loopback (the test runtime is async; the
/// checks read files one by one).
mod reqwest {
    pub fn blocking_get(url: &str) -> Result<Vec<u8>, String> {
        let url = url.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let resp = ::reqwest::get(&url).await.map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    return Err(format!("status {}", resp.status()));
                }
                Ok(resp.bytes().await.map_err(|e| e.to_string())?.to_vec())
            })
        })
        .join()
        .map_err(|_| "GET thread panicked".to_owned())?
    }
}

/// (path, sha256, size, side) of every manifest file.
fn file_set(m: &Manifest) -> BTreeSet<(String, Vec<u8>, u64, i32, bool)> {
    m.files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone(), f.size, f.side, f.optional))
        .collect()
}

fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains(':')
        && path.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mrpack_passes_the_format_documentation_checks() {
    let w = World::published().await;
    let bytes = w.mrpack_bytes();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let mut text = String::new();
    zip.by_name("modrinth.index.json")
        .expect("index at the root")
        .read_to_string(&mut text)
        .expect("utf-8");
    let index: serde_json::Value = serde_json::from_str(&text).expect("json");
    // Required top-level fields.
    assert_eq!(index["formatVersion"], 1);
    assert_eq!(index["game"], "minecraft");
    assert_eq!(index["versionId"], "2.3.4");
    assert_eq!(index["name"], "Export Pack");
    let deps = index["dependencies"].as_object().expect("dependencies");
    assert_eq!(deps["minecraft"], "1.21.1");
    assert_eq!(deps["fabric-loader"], "0.16.9");
    for k in deps.keys() {
        assert!(
            ["minecraft", "forge", "neoforge", "fabric-loader", "quilt-loader"].contains(&k.as_str()),
            "{k}"
        );
    }
    let files = index["files"].as_array().expect("files");
    let mut downloads = BTreeSet::new();
    for f in files {
        let path = f["path"].as_str().expect("path");
        assert!(safe_relative(path), "{path}");
        let size = f["fileSize"].as_u64().expect("fileSize");
        let urls = f["downloads"].as_array().expect("downloads");
        assert!(!urls.is_empty(), "{path}");
        // Both hashes, recomputed from the blob bytes the download URL serves.
        let blob = w.get(urls[0].as_str().expect("url"));
        assert_eq!(blob.len() as u64, size, "{path}");
        assert_eq!(
            f["hashes"]["sha1"],
            hex::encode(sha1::Sha1::digest(&blob)),
            "{path}"
        );
        assert_eq!(
            f["hashes"]["sha512"],
            hex::encode(sha2::Sha512::digest(&blob)),
            "{path}"
        );
        for side in ["client", "server"] {
            let v = f["env"][side].as_str().expect("env");
            assert!(
                ["required", "optional", "unsupported"].contains(&v),
                "{path}: {v}"
            );
        }
        downloads.insert(path.to_owned());
    }
    // Jars and resource packs are downloads; configs and scripts overrides.
    let want: BTreeSet<String> = [
        "mods/client-zoom.jar",
        "mods/one.jar",
        "mods/opt-shaders.jar",
        "mods/same.jar",
        "mods/server-tick.jar",
        "resourcepacks/look.zip",
    ]
    .map(String::from)
    .into();
    assert_eq!(downloads, want);
    let env = |p: &str| {
        let f = files.iter().find(|f| f["path"] == p).expect("file");
        (f["env"]["client"].clone(), f["env"]["server"].clone())
    };
    assert_eq!(
        env("mods/client-zoom.jar"),
        ("required".into(), "unsupported".into())
    );
    assert_eq!(
        env("mods/server-tick.jar"),
        ("unsupported".into(), "required".into())
    );
    assert_eq!(
        env("mods/opt-shaders.jar"),
        ("optional".into(), "optional".into())
    );
    let names: Vec<String> = zip.file_names().map(String::from).collect();
    let mut overrides: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "modrinth.index.json")
        .collect();
    overrides.sort();
    assert_eq!(
        overrides,
        [
            "client-overrides/config/client/hud.toml",
            "overrides/config/a.json",
            "overrides/run.sh",
            "server-overrides/config/server/ops.toml",
        ]
    );
    for n in &overrides {
        let rest = n.split_once('/').expect("folder").1;
        assert!(safe_relative(rest), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_is_byte_identical_and_uploads_nothing_new() {
    let w = World::published().await;
    let first = w.mrpack_bytes();
    let mut again = std::io::Cursor::new(Vec::new());
    write_mrpack(&w.plan, &w.source, &w.exports, &mut again).expect("write");
    assert_eq!(again.into_inner(), first);
    let Published { plan, report } =
        publish_with_exports(&w.source, &w.store, &w.key, options("dev"), &w.exports).await;
    assert_eq!(plan.build_id, w.plan.build_id);
    let e = report.exports.expect("exports");
    assert!(!e.mrpack_new);
    assert_eq!(e.packwiz_written, 0);
    assert_eq!(report.blobs_new, 0);
    // The pointer names both exports and still verifies as the fetcher checks it.
    let env = w.get(&w.exports.url_of(&layout::pointer_key("expo", "dev")));
    let verified = SignedPointer::parse(&env)
        .expect("parse")
        .verify(
            &[w.key.public()],
            1,
            &Expectation {
                pack: "expo",
                channel: "dev",
                now: 1_000_001,
                last: None,
            },
        )
        .expect("verify");
    assert_eq!(
        verified.payload.exports.mrpack,
        Some(layout::mrpack_key("expo", &w.plan.build_id))
    );
    // The pointer names the build's immutable pack file; the channel's pack.toml is its copy.
    let tree =
        atlas_builder::export::packwiz::tree(&w.plan.manifest, &w.plan.build_id, &w.exports).expect("tree");
    let pack_key = tree.pack_key("expo", "dev");
    assert!(
        pack_key.starts_with("packs/expo/channels/dev/packwiz/pack-"),
        "{pack_key}"
    );
    assert_eq!(verified.payload.exports.packwiz, Some(pack_key));
    assert_eq!(
        w.get(&w.exports.url_of(&layout::packwiz_pack_key("expo", "dev"))),
        tree.pack.1
    );
    assert_eq!(verified.payload.version, 1, "an unchanged rebuild signs nothing");
    // Re-signing keeps the exports the channel names.
    let update = atlas_builder::pointer::resign(
        &w.store,
        &w.key,
        "expo",
        "dev",
        1_000_500,
        Duration::from_secs(60),
    )
    .await
    .expect("resign")
    .expect("a pointer");
    assert_eq!(update.version, 2);
    let current = read_current(&w.store, "expo", "dev")
        .await
        .expect("read")
        .expect("pointer");
    assert_eq!(current.payload.exports, verified.payload.exports);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mrpack_imports_back_as_the_same_file_set() {
    let w = World::published().await;
    let repo = GitRepo::init().expect("git");
    repo.write("export.mrpack", w.mrpack_bytes()).expect("write");
    repo.commit_all("import").expect("commit");
    let source = PackSource::open(repo.path(), false).expect("open");
    let cache = tempfile::tempdir().expect("cache");
    let mut mods = ModOptions::new(cache.path().to_owned());
    mods.pack_id = Some("expo".into());
    let (imported, report) = plan_pack(&source, &PlanOptions::default(), &mods)
        .await
        .expect("import");
    assert_eq!(report.mods, 6, "six downloads");
    assert_eq!(
        (report.downloaded, report.cached),
        (5, 1),
        "two mods have the same bytes: downloaded once"
    );
    let m = &imported.manifest;
    assert_eq!(file_set(m), file_set(&w.plan.manifest));
    assert_eq!((m.name.as_str(), m.version.as_str()), ("Export Pack", "2.3.4"));
    assert_eq!(m.minecraft_version, "1.21.1");
    assert_eq!(m.loader, w.plan.manifest.loader);
    let run = m.files.iter().find(|f| f.path == "run.sh").expect("run.sh");
    assert!(run.executable, "the zip keeps the executable bit");
    let hud = m
        .files
        .iter()
        .find(|f| f.path == "config/client/hud.toml")
        .expect("hud");
    assert_eq!(hud.side, Side::Client as i32);
}

/// GET over loopback, panicking with the URL on failure.
fn get(url: &str) -> Vec<u8> {
    reqwest::blocking_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Downloads the channel's packwiz tree as packwiz-installer would: pack.toml,
/// the index it names, and every file the index lists.
fn fetch_packwiz_tree(exports: &ExportOptions, pack: &str, channel: &str, into: &std::path::Path) -> usize {
    let base = exports.url_of(&layout::packwiz_prefix(pack, channel));
    let fetch = |rel: &str| {
        let bytes = get(&format!("{base}{rel}"));
        let p = into.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &bytes).expect("write");
        bytes
    };
    let pack: toml::Table =
        toml::from_str(&String::from_utf8(fetch("pack.toml")).expect("utf8")).expect("toml");
    let index_file = pack["index"]["file"].as_str().expect("index file").to_owned();
    let index: toml::Table =
        toml::from_str(&String::from_utf8(fetch(&index_file)).expect("utf8")).expect("toml");
    let files = index["files"].as_array().expect("files");
    for f in files {
        fetch(f["file"].as_str().expect("file"));
    }
    files.len()
}

/// Reads the channel's tree with Atlas's packwiz importer: no diagnostics,
/// every metafile's URL on the public base, its hash right for the bytes
/// served, and the file set equal to the manifest's.
fn check_tree_at(exports: &ExportOptions, pack: &str, channel: &str, m: &Manifest) {
    let dir = tempfile::tempdir().expect("tmp");
    let n = fetch_packwiz_tree(exports, pack, channel, dir.path());
    assert_eq!(n, m.files.len());
    let (pw, diags) = PackwizPack::load(&DirFiles::open(dir.path()).expect("dir")).expect("load");
    assert!(!has_errors(&diags), "{diags:?}");
    assert_eq!(pw.pack.minecraft, m.minecraft_version);
    let by_path: BTreeMap<&str, &atlas_proto::v1::File> =
        m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    assert_eq!(pw.metafiles.len(), by_path.len());
    for meta in &pw.metafiles {
        let f = by_path[meta.install_path.as_str()];
        let url = meta.download.url.as_deref().expect("url");
        assert!(url.starts_with(&exports.url_of("")), "{url}");
        let bytes = get(url);
        assert_eq!(
            UpstreamHash::of(meta.download.hash.format, &bytes),
            meta.download.hash,
            "{url}"
        );
        assert_eq!(Sha256Digest::of(&bytes).0.to_vec(), f.sha256);
        assert_eq!(meta.side.side() as i32, f.side, "{}", f.path);
        assert_eq!(meta.option.as_ref().is_some_and(|o| o.optional), f.optional);
    }
}

fn check_packwiz_tree(w: &World, channel: &str, m: &Manifest) {
    check_tree_at(&w.exports, "expo", channel, m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_on_an_s3_store_resolve_through_its_public_url() {
    use atlas_builder::store::{S3Settings, S3Store};
    use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};
    let server = S3Server::start("atlas").expect("s3");
    let settings = S3Settings {
        endpoint: Some(server.endpoint()),
        region: Some(REGION.to_owned()),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        session_token: None,
        force_path_style: true,
    };
    let store = S3Store::connect("atlas", "cdn", &settings)
        .await
        .expect("connect");
    let exports = ExportOptions::new(&server.public_url("cdn")).expect("url");
    let repo = fixture();
    let source = PackSource::open(repo.path(), false).expect("open");
    let key = SecretKey::from_seed(&[8; 32]);
    let p = publish_with_exports(&source, &store, &key, options("dev"), &exports)
        .await
        .plan;
    check_tree_at(&exports, "expo", "dev", &p.manifest);
    // The .mrpack is there, and a second publish rewrites nothing.
    let mrpack = get(&exports.url_of(&layout::mrpack_key("expo", &p.build_id)));
    assert!(mrpack.starts_with(b"PK"));
    let r = publish_with_exports(&source, &store, &key, options("dev"), &exports)
        .await
        .report;
    let e = r.exports.expect("exports");
    assert!(!e.mrpack_new);
    assert_eq!(e.packwiz_written, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packwiz_tree_resolves_on_loopback_and_follows_promote() {
    let w = World::published().await;
    check_packwiz_tree(&w, "dev", &w.plan.manifest);

    // Promote with the public URL: production gets its own tree and names it.
    let r = promote(
        &w,
        PromoteFrom::Channel("dev".into()),
        1_000_100,
        Some(&w.exports),
    )
    .await
    .expect("promote");
    let e = r.exports.expect("exports");
    assert_eq!(e.mrpack, Some(layout::mrpack_key("expo", &w.plan.build_id)));
    check_packwiz_tree(&w, "production", &w.plan.manifest);
    let current = read_current(&w.store, "expo", "production")
        .await
        .expect("read")
        .expect("pointer");
    assert_eq!(current.payload.exports, e.exports());

    // A new build on dev, then production rolled back to it and forward:
    // the tree follows the pointer each time.
    w.repo.write("config/a.json", "{\"a\": 2}\n").expect("write");
    w.repo.write("mods/new.jar", vec![7u8; 900]).expect("write");
    w.repo.commit_all("second").expect("commit");
    let source = PackSource::open(w.repo.path(), false).expect("open");
    let mut opts = options("dev");
    opts.now += 10;
    let second = publish_with_exports(&source, &w.store, &w.key, opts, &w.exports)
        .await
        .plan;
    check_packwiz_tree(&w, "dev", &second.manifest);
    check_packwiz_tree(&w, "production", &w.plan.manifest);
    promote(
        &w,
        PromoteFrom::Build(second.build_id),
        1_000_200,
        Some(&w.exports),
    )
    .await
    .expect("promote");
    check_packwiz_tree(&w, "production", &second.manifest);

    // Without the public URL, a channel with a packwiz tree is not promoted.
    let err = promote(&w, PromoteFrom::Build(w.plan.build_id), 1_000_300, None)
        .await
        .expect_err("needs the public url");
    assert!(
        matches!(err, PromoteError::Export(ExportError::NeedsPublicUrl { .. })),
        "{err}"
    );
    check_packwiz_tree(&w, "production", &second.manifest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_public_url_writes_exports_and_promote_keeps_them() {
    use crate::common::{builder, run, text};
    let repo = fixture();
    let work = tempfile::tempdir().expect("tmp");
    let store = work.path().join("store");
    std::fs::create_dir_all(&store).expect("mkdir");
    let server = StaticServer::start(&store).expect("server");
    let secret = SecretKey::from_seed(&[5; 32]).to_text();
    let out = run(builder()
        .args(["--json", "publish", "--channel", "dev", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(&store)
        .env("ATLAS_PUBLIC_URL", server.url())
        .env("ATLAS_SIGNING_KEY", &secret));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let build = report["build"].as_str().expect("build").to_owned();
    assert_eq!(
        report["exports"]["mrpack"],
        format!("packs/expo/builds/{build}/pack.mrpack")
    );
    assert!(
        store
            .join(format!("packs/expo/builds/{build}/pack.mrpack"))
            .is_file()
    );
    assert!(store.join("packs/expo/channels/dev/packwiz/pack.toml").is_file());

    // Promote without the public URL: refused, nothing changes.
    let promote = |public_url: Option<&str>| {
        let mut c = builder();
        c.args([
            "--json", "promote", "--pack", "expo", "--from", "dev", "--to", "dev2", "--store",
        ])
        .arg(&store)
        .env("ATLAS_SIGNING_KEY", &secret);
        if let Some(u) = public_url {
            c.args(["--public-url", u]);
        }
        run(&mut c)
    };
    let out = promote(Some(&server.url()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(store.join("packs/expo/channels/dev2/packwiz/pack.toml").is_file());
    let out = promote(None);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--public-url"),
        "{}",
        text(&out.stderr)
    );

    let bad = run(builder()
        .args(["publish", "--dry-run", "--public-url", "ftp://x", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(&store));
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("ftp://x"), "{}", text(&bad.stderr));
}
