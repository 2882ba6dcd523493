//! Dependency checks against a fake Modrinth on 127.0.0.1: a required
//! dependency missing from the pack (by project, or by version id looked up),
//! an incompatibility inside the pack, another Minecraft version or loader;
//! `--deps warn` reports them, `--deps error` fails before any download.
//! What a pack accepts is what packwiz accepts: Forge mods in NeoForge
//! packs, Fabric mods in Quilt packs, and `acceptable-game-versions`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_builder::download::Sleeper;
use atlas_builder::packwiz::{HashFormat, UpstreamHash};
use atlas_builder::resolve::deps::{Accepts, Target, check_accepting};
use atlas_builder::resolve::{
    DepProblem, DepsPolicy, FetchError, ModOptions, ModSource, ModSpec, fetch_mods_for,
};
use atlas_proto::v1::{LoaderKind, Side};
use atlas_testkit::modrinth::ModrinthServer;
use serde_json::json;

#[derive(Debug, Default)]
struct NoSleep(Mutex<Vec<Duration>>);

impl Sleeper for NoSleep {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0.lock().expect("waits").push(d);
        Box::pin(async {})
    }
}

struct Fake {
    modrinth: ModrinthServer,
    cache: tempfile::TempDir,
}

impl Fake {
    /// Projects: sodium (requires fabric-api, incompatible with optifabric),
    /// fabric-api, optifabric, forge-only, old-mod (1.20.1), needs-lib
    /// (requires a version id of lib), lib, shader (iris).
    fn start() -> Self {
        let modrinth = ModrinthServer::start().expect("modrinth");
        for (project, version) in [
            ("sodium", "sod1"),
            ("fabric-api", "fapi1"),
            ("optifabric", "opt1"),
            ("forge-only", "forge1"),
            ("old-mod", "old1"),
            ("needs-lib", "nl1"),
            ("lib", "lib1"),
            ("shader", "sh1"),
        ] {
            modrinth.add_version(
                project,
                version,
                "1.0.0",
                &format!("{project}.jar"),
                format!("{project} bytes").as_bytes(),
            );
        }
        let edit =
            |id: &str, f: &dyn Fn(&mut serde_json::Value)| assert!(modrinth.edit_version(id, f), "{id}");
        // Dependencies name projects by id, as Modrinth's do.
        let (fabric_api, optifabric) = (
            project_id(&modrinth, "fabric-api"),
            project_id(&modrinth, "optifabric"),
        );
        let modmenu = modrinth.add_project("modmenu");
        edit("sod1", &|v| {
            v["dependencies"] = json!([
                { "project_id": fabric_api, "version_id": null, "file_name": null, "dependency_type": "required" },
                { "project_id": optifabric, "version_id": null, "file_name": null, "dependency_type": "incompatible" },
                { "project_id": modmenu, "version_id": null, "file_name": null, "dependency_type": "optional" }
            ]);
        });
        edit("forge1", &|v| v["loaders"] = json!(["forge", "neoforge"]));
        edit("old1", &|v| v["game_versions"] = json!(["1.20.1", "1.20.2"]));
        edit("nl1", &|v| {
            v["dependencies"] = json!([
                { "project_id": null, "version_id": "lib1", "file_name": null, "dependency_type": "required" }
            ]);
        });
        edit("sh1", &|v| v["loaders"] = json!(["iris", "optifine"]));
        Self {
            modrinth,
            cache: tempfile::tempdir().expect("cache"),
        }
    }

    fn options(&self, deps: DepsPolicy) -> ModOptions {
        let mut o = ModOptions::new(self.cache.path().to_owned());
        o.resolve.modrinth_api = self.modrinth.url();
        o.sleeper = Arc::new(NoSleep::default());
        o.deps = deps;
        o
    }

    fn cdn_requests(&self) -> usize {
        self.modrinth
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/data/"))
            .count()
    }
}

fn project_id(modrinth: &ModrinthServer, slug: &str) -> String {
    modrinth
        .project_id(slug)
        .unwrap_or_else(|| panic!("no project {slug}"))
}

fn spec(project: &str, version: &str) -> ModSpec {
    ModSpec {
        name: project.to_owned(),
        defined_in: format!("pack.toml mods[{project}]"),
        source: ModSource::Modrinth {
            project: project.to_owned(),
            version: version.to_owned(),
        },
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

fn fabric() -> Target {
    Target {
        minecraft: "1.21.1".into(),
        loader: LoaderKind::Fabric,
    }
}

fn problem_pack() -> Vec<ModSpec> {
    vec![
        spec("sodium", "sod1"),
        spec("optifabric", "opt1"),
        spec("forge-only", "forge1"),
        spec("old-mod", "old1"),
        spec("needs-lib", "nl1"),
        spec("shader", "sh1"),
    ]
}

#[tokio::test]
async fn warn_reports_every_dependency_problem_and_builds() {
    let f = Fake::start();
    let (files, report) = fetch_mods_for(&problem_pack(), &f.options(DepsPolicy::Warn), Some(&fabric()))
        .await
        .expect("warnings do not fail the build");
    assert_eq!(files.len(), 6);
    let kinds: Vec<(&str, String)> = report
        .deps
        .iter()
        .map(|p| match p {
            DepProblem::Missing { name, project, .. } => (name.as_str(), format!("missing {project}")),
            DepProblem::Incompatible { name, other, .. } => (name.as_str(), format!("incompatible {other}")),
            DepProblem::Minecraft { name, supported, .. } => {
                (name.as_str(), format!("minecraft {}", supported.join(",")))
            }
            DepProblem::Loader { name, supported, .. } => {
                (name.as_str(), format!("loader {}", supported.join(",")))
            }
        })
        .collect();
    let fabric_api = project_id(&f.modrinth, "fabric-api");
    assert_eq!(
        kinds,
        [
            ("sodium", format!("missing {fabric_api}")),
            ("sodium", "incompatible optifabric".to_owned()),
            ("forge-only", "loader forge,neoforge".to_owned()),
            ("old-mod", "minecraft 1.20.1,1.20.2".to_owned()),
            ("needs-lib", format!("missing {}", project_id(&f.modrinth, "lib"))),
        ],
        "optional dependencies and shader loaders are not problems"
    );
    let messages: Vec<String> = report.deps.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages[0],
        format!(
            "pack.toml mods[sodium]: sodium requires Modrinth project `{fabric_api}`, which the pack does not \
             contain; add it (https://modrinth.com/mod/{fabric_api}) or remove sodium"
        )
    );
    assert!(
        messages[1].contains("incompatible with optifabric (pack.toml mods[optifabric]); remove one"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("forge-only 1.0.0 is built for forge, neoforge, not fabric"),
        "{}",
        messages[2]
    );
    assert!(
        messages[3].contains("is built for Minecraft 1.20.1, 1.20.2, not 1.21.1"),
        "{}",
        messages[3]
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["deps"][0]["kind"], "missing");
}

#[tokio::test]
async fn error_policy_fails_before_downloading() {
    let f = Fake::start();
    let err = match fetch_mods_for(&problem_pack(), &f.options(DepsPolicy::Error), Some(&fabric())).await {
        Ok(_) => panic!("--deps error must fail"),
        Err(e) => e,
    };
    let FetchError::Deps(problems) = &err else {
        panic!("unexpected error: {err}")
    };
    assert_eq!(problems.0.len(), 5);
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "5 dependency problem(s) (--deps error):\n  - pack.toml mods[sodium]: sodium requires"
        ),
        "{msg}"
    );
    assert_eq!(f.cdn_requests(), 0, "nothing downloaded");
}

#[tokio::test]
async fn complete_pack_has_no_problems_and_quilt_runs_fabric_mods() {
    let f = Fake::start();
    let specs = vec![
        spec("sodium", "sod1"),
        spec("fabric-api", "fapi1"),
        spec("needs-lib", "nl1"),
        spec("lib", "lib1"),
    ];
    for loader in [LoaderKind::Fabric, LoaderKind::Quilt] {
        let target = Target {
            minecraft: "1.21.1".into(),
            loader,
        };
        let (_, report) = fetch_mods_for(&specs, &f.options(DepsPolicy::Error), Some(&target))
            .await
            .expect("no problems");
        assert_eq!(report.deps, [], "{loader:?}");
    }
    let neoforge = Target {
        minecraft: "1.21.1".into(),
        loader: LoaderKind::Neoforge,
    };
    let (_, report) = fetch_mods_for(&specs, &f.options(DepsPolicy::Warn), Some(&neoforge))
        .await
        .expect("warn");
    assert_eq!(report.deps.len(), 4, "every fabric mod is reported on neoforge");
}

#[tokio::test]
async fn neoforge_packs_take_forge_mods_as_packwiz_does() {
    // packwiz core/pack.go GetCompatibleLoaders: a NeoForge pack also takes
    // Forge mods. A mod built for Forge alone is no problem in one.
    let f = Fake::start();
    f.modrinth
        .add_version("forge-lib", "flib1", "2.0", "forge-lib.jar", b"forge lib bytes");
    assert!(
        f.modrinth
            .edit_version("flib1", |v| v["loaders"] = json!(["forge"]))
    );
    let neoforge = Target {
        minecraft: "1.21.1".into(),
        loader: LoaderKind::Neoforge,
    };
    let specs = [spec("forge-lib", "flib1")];
    let (_, report) = fetch_mods_for(&specs, &f.options(DepsPolicy::Error), Some(&neoforge))
        .await
        .expect("a Forge mod in a NeoForge pack is fine");
    assert_eq!(report.deps, []);
    // ...but not the other way round.
    let forge = Target {
        minecraft: "1.21.1".into(),
        loader: LoaderKind::Forge,
    };
    let specs = [spec("sodium", "sod1")];
    let (_, report) = fetch_mods_for(&specs, &f.options(DepsPolicy::Warn), Some(&forge))
        .await
        .expect("warn");
    assert!(
        report.deps.iter().any(|p| matches!(p, DepProblem::Loader { .. })),
        "{:?}",
        report.deps
    );
}

#[tokio::test]
async fn acceptable_game_versions_are_honoured() {
    // A real pack.toml (github.com/Alfakynz/Toralia, MIT) accepts 1.21 mods
    // in a 1.21.1 pack through `[options] acceptable-game-versions`.
    let f = Fake::start();
    f.modrinth
        .add_version("for-1-21", "v121", "1.0", "for-1-21.jar", b"a 1.21 mod");
    assert!(
        f.modrinth
            .edit_version("v121", |v| v["game_versions"] = json!(["1.21"]))
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/packwiz-real/toralia-fabric-cf");
    let (pw, _) = atlas_builder::packwiz::PackwizPack::load(
        &atlas_builder::packwiz::DirFiles::open(&dir).expect("fixture"),
    )
    .expect("loads");
    let accepts = Accepts::for_packwiz(&pw.pack);
    assert_eq!(accepts.minecraft(), ["1.21.1", "1.21"]);
    let specs = [spec("for-1-21", "v121"), spec("old-mod", "old1")];
    let http = atlas_builder::download::http_client(Duration::from_secs(5));
    let resolver = atlas_builder::resolve::Resolver::new(
        &f.options(DepsPolicy::Warn).resolve,
        http,
        Arc::new(NoSleep::default()),
    );
    let resolved = resolver
        .resolve_accepting(&specs, Some(&accepts))
        .await
        .expect("resolves");
    let problems = check_accepting(&resolved, &accepts, &Default::default());
    let kinds: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(kinds.len(), 1, "only the 1.20 mod: {kinds:?}");
    assert!(
        kinds[0].contains("old-mod 1.0.0 is built for Minecraft 1.20.1, 1.20.2, not 1.21.1 or 1.21"),
        "{kinds:?}"
    );
    // Without the option, the 1.21 mod is a problem (as it always was).
    let strict = Accepts::from(&accepts.target);
    assert_eq!(check_accepting(&resolved, &strict, &Default::default()).len(), 2);
}

#[tokio::test]
async fn packwiz_url_mods_get_metadata_from_their_update_section() {
    let f = Fake::start();
    let bytes = b"sodium bytes";
    let url = format!(
        "{}/data/{}/versions/sod1/sodium.jar",
        f.modrinth.url(),
        project_id(&f.modrinth, "sodium")
    );
    let mut s = spec("Sodium", "");
    s.defined_in = "mods/sodium.pw.toml".into();
    s.source = ModSource::Url {
        url,
        hash: UpstreamHash::of(HashFormat::Sha512, bytes),
    };
    s.origin = Some("modrinth:sodium/sod1".into());
    let (_, report) = fetch_mods_for(&[s], &f.options(DepsPolicy::Warn), Some(&fabric()))
        .await
        .expect("builds");
    let messages: Vec<String> = report.deps.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let fabric_api = project_id(&f.modrinth, "fabric-api");
    assert!(
        messages[0].starts_with(&format!(
            "mods/sodium.pw.toml: Sodium requires Modrinth project `{fabric_api}`"
        )),
        "{}",
        messages[0]
    );
}

#[tokio::test]
async fn a_packwiz_build_honours_acceptable_game_versions() {
    // Glue test (resolve/build.rs): a packwiz pack accepting 1.21 mods builds
    // with --deps error although one of its mods is built for 1.21 only.
    let f = Fake::start();
    f.modrinth
        .add_version("for-1-21", "v121", "1.0", "for-1-21.jar", b"a 1.21 mod");
    assert!(
        f.modrinth
            .edit_version("v121", |v| v["game_versions"] = json!(["1.21"]))
    );
    let project = project_id(&f.modrinth, "for-1-21");
    let url = format!("{}/data/{project}/versions/v121/for-1-21.jar", f.modrinth.url());
    let sha512 = UpstreamHash::of(HashFormat::Sha512, b"a 1.21 mod");
    let meta = format!(
        "name = \"For 1.21\"\nfilename = \"for-1-21.jar\"\nside = \"both\"\n\n[download]\nurl = \"{url}\"\n\
         hash-format = \"sha512\"\nhash = \"{sha512}\"\n\n[update]\n[update.modrinth]\nmod-id = \"{project}\"\nversion = \"v121\"\n"
    );
    let repo = atlas_testkit::git::GitRepo::init().expect("git");
    repo.write("mods/for-1-21.pw.toml", &meta).expect("write");
    let index = format!(
        "hash-format = \"sha256\"\n\n[[files]]\nfile = \"mods/for-1-21.pw.toml\"\nhash = \"{}\"\nmetafile = true\n",
        UpstreamHash::of(HashFormat::Sha256, meta.as_bytes())
    );
    repo.write("index.toml", &index).expect("write");
    repo.write(
        "pack.toml",
        format!(
            "name = \"Accepting\"\npack-format = \"packwiz:1.1.0\"\n\n[index]\nfile = \"index.toml\"\n\
             hash-format = \"sha256\"\nhash = \"{}\"\n\n[versions]\nminecraft = \"1.21.1\"\nfabric = \"0.16.9\"\n\n\
             [options]\nacceptable-game-versions = [\"1.21\"]\n",
            UpstreamHash::of(HashFormat::Sha256, index.as_bytes())
        ),
    )
    .expect("write");
    repo.commit_all("pack").expect("commit");
    let source = atlas_builder::repo::PackSource::open(repo.path(), false).expect("open");
    let (_, report) = atlas_builder::build::plan_pack(
        &source,
        &atlas_builder::plan::PlanOptions::default(),
        &f.options(DepsPolicy::Error),
    )
    .await
    .expect("1.21 mods are accepted");
    assert_eq!(report.deps, []);
}
