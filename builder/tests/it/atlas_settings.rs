//! `atlas.toml` takes effect: its mirror policy decides which mods become
//! blobs (an entry's own `mirror = false` still wins), its channel defaults
//! apply to `publish` unless flags override them, it is never installed, and
//! its mistakes are reported with file, line and the nearest valid name.

use crate::common::{builder, run, text};
use atlas_builder::build::plan_pack;
use atlas_builder::plan::PlanOptions;
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;
use atlas_testkit::modrinth::ModrinthServer;
use sha2::Digest as _;

const HEAD: &str = "id = \"settings\"\nname = \"Settings\"\nversion = \"1\"\nminecraft = \"1.21.1\"\nloader = { kind = \"fabric\", version = \"0.16.9\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_policy_decides_which_mods_become_blobs() {
    let modrinth = ModrinthServer::start().expect("modrinth");
    let files_dir = tempfile::tempdir().expect("tmp");
    let files = StaticServer::start(files_dir.path()).expect("file host");
    let mr = b"modrinth jar".to_vec();
    modrinth.add_version("proj", "ver1", "1.0.0", "mr.jar", &mr);
    let mut toml = format!(
        "{HEAD}\n[[mods]]\nmodrinth = {{ project = \"proj\", version = \"ver1\" }}\n\n[[mods]]\nname = \"own\"\nmodrinth = {{ project = \"proj2\", version = \"ver2\" }}\nmirror = false\n"
    );
    modrinth.add_version("proj2", "ver2", "1.0.0", "mr2.jar", b"second modrinth jar");
    for name in ["a", "b"] {
        let bytes = format!("url jar {name}").into_bytes();
        std::fs::write(files_dir.path().join(format!("{name}.jar")), &bytes).expect("write");
        toml.push_str(&format!(
            "\n[[mods]]\nurl = \"{}{name}.jar\"\nhash = \"sha256:{}\"\n",
            files.url(),
            hex::encode(sha2::Sha256::digest(&bytes))
        ));
    }
    let repo = GitRepo::init().expect("git");
    repo.write("pack.toml", &toml).expect("write");
    repo.write(
        "atlas.toml",
        "[mirror]\ndefault = \"upstream\"\nmodrinth = \"mirror\"\n",
    )
    .expect("write");
    repo.commit_all("pack").expect("commit");
    let cache = tempfile::tempdir().expect("cache");
    let mut opts = ModOptions::new(cache.path().to_owned());
    opts.resolve.modrinth_api = modrinth.url();

    let source = PackSource::open(repo.path(), false).expect("open");
    let (plan, report) = plan_pack(&source, &PlanOptions::default(), &opts)
        .await
        .expect("plan");
    let upstream: Vec<&str> = plan
        .manifest
        .files
        .iter()
        .filter(|f| f.upstream_only)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(upstream, ["mods/a.jar", "mods/b.jar", "mods/mr2.jar"]);
    assert_eq!(report.upstream_only, 3);
    assert_eq!(plan.blobs.len(), 1, "only the mirrored Modrinth jar is a blob");
    assert!(
        plan.manifest.files.iter().all(|f| f.path != "atlas.toml"),
        "atlas.toml is never installed"
    );

    repo.write("atlas.toml", "[mirror]\ncurseforge = \"upstream\"\n")
        .expect("write");
    repo.commit_all("mirror by default").expect("commit");
    let source = PackSource::open(repo.path(), false).expect("open");
    let (plan, report) = plan_pack(&source, &PlanOptions::default(), &opts)
        .await
        .expect("plan");
    assert_eq!(report.upstream_only, 1, "only the entry with `mirror = false`");
    assert_eq!(plan.blobs.len(), 3);

    // `--mirror upstream` (ATLAS_MIRROR; the action's mirror-policy) overrides
    // atlas.toml for every source.
    opts.mirror_override = Some(atlas_builder::settings::MirrorMode::Upstream);
    let (plan, report) = plan_pack(&source, &PlanOptions::default(), &opts)
        .await
        .expect("plan");
    assert_eq!(report.upstream_only, 4);
    assert!(plan.blobs.is_empty());
}

#[test]
fn publish_takes_channel_defaults_from_atlas_toml_and_flags_override() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(builder().args(["keygen", "--out-dir"]).arg(work.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = work.path().join("atlas-signing.key");
    let repo = GitRepo::init().expect("git");
    repo.write(
        "pack.toml",
        format!("{HEAD}[[files]]\ninclude = [\"config/**\"]\n"),
    )
    .expect("write");
    repo.write("config/x.txt", "x").expect("write");
    repo.write(
        "atlas.toml",
        "[channels]\ndefault = \"beta\"\nexpires-in = \"2h\"\n",
    )
    .expect("write");
    repo.commit_all("c").expect("commit");
    let store = work.path().join("store");
    let publish = |extra: &[&str]| {
        let out = run(builder()
            .args(["--json", "publish", "--repo"])
            .arg(repo.path())
            .arg("--store")
            .arg(&store)
            .arg("--key-file")
            .arg(&key)
            .args(extra));
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };

    let report = publish(&[]);
    assert_eq!(report["pointer"]["channel"], "beta");
    assert_eq!(
        report["blobs_new"], 1,
        "config/x.txt only: atlas.toml is not installed"
    );
    let beta_expiry = report["pointer"]["expires_at"].as_u64().expect("expires_at");
    assert!(store.join("packs/settings/channels/beta.json").is_file());

    let report = publish(&["--channel", "production", "--expires-in", "30d"]);
    assert_eq!(report["pointer"]["channel"], "production");
    let prod_expiry = report["pointer"]["expires_at"].as_u64().expect("expires_at");
    // 30 days against 2 hours, whatever the seconds between the two runs.
    assert!(
        prod_expiry > beta_expiry + 29 * 86_400,
        "{prod_expiry} vs {beta_expiry}"
    );
}

#[test]
fn atlas_toml_mistakes_name_line_and_nearest_field() {
    let repo = GitRepo::init().expect("git");
    repo.write("pack.toml", HEAD).expect("write");
    repo.write("atlas.toml", "[mirror]\ncurseforg = \"upstream\"\n")
        .expect("write");
    repo.commit_all("c").expect("commit");
    let store = tempfile::tempdir().expect("store");
    let out = run(builder()
        .args(["publish", "--dry-run", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(store.path()));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("atlas.toml:2:1: unknown field `curseforg`; did you mean `curseforge`?"),
        "{err}"
    );
}

#[test]
fn check_reports_atlas_toml_beside_either_layout() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("pack.toml"), HEAD).expect("write");
    std::fs::write(
        dir.path().join("atlas.toml"),
        "[server.memory]\nmin = \"4G\"\nmxa = \"8G\"\n",
    )
    .expect("write");
    let report = atlas_builder::check::check_dir(dir.path()).expect("check ran");
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.file == "atlas.toml")
        .unwrap_or_else(|| panic!("{:?}", report.diagnostics));
    assert_eq!(d.line, Some(3));
    assert_eq!(d.message, "unknown field `mxa`; did you mean `max`?");
    assert!(!report.ok());

    std::fs::write(dir.path().join("atlas.toml"), "[server.memory]\nmax = \"8G\"\n").expect("write");
    let report = atlas_builder::check::check_dir(dir.path()).expect("check ran");
    assert!(
        report.diagnostics.iter().all(|d| d.file != "atlas.toml"),
        "{:?}",
        report.diagnostics
    );
}

#[tokio::test]
async fn the_server_settings_travel_in_the_manifest_for_the_runner() {
    let repo = GitRepo::init().expect("git");
    repo.write("pack.toml", HEAD).expect("write");
    repo.write(
        "atlas.toml",
        "[server]\njava = 21\njvm-args = [\"-XX:+UseG1GC\"]\nmain-jar = \"server.jar\"\n\n[server.memory]\nmin = \"2G\"\nmax = \"6G\"\n",
    )
    .expect("write");
    repo.commit_all("pack").expect("commit");
    let cache = tempfile::tempdir().expect("cache");
    let opts = ModOptions::new(cache.path().to_owned());
    let source = PackSource::open(repo.path(), false).expect("open");
    let (plan, _) = plan_pack(&source, &PlanOptions::default(), &opts)
        .await
        .expect("plan");
    assert_eq!(
        plan.manifest.server,
        Some(atlas_proto::v1::ServerLaunch {
            java_major: 21,
            memory_min: "2G".into(),
            memory_max: "6G".into(),
            jvm_args: vec!["-XX:+UseG1GC".into()],
            main_jar: "server.jar".into(),
        })
    );
    // The encoded manifest carries it (what hosts read).
    let decoded = atlas_proto::manifest::decode(&plan.manifest_bytes, &Default::default()).expect("decode");
    assert_eq!(decoded.server, plan.manifest.server);

    // No [server]: nothing recorded (the manifest stays as before).
    repo.write("atlas.toml", "[channels]\ndefault = \"beta\"\n")
        .expect("write");
    repo.commit_all("no server").expect("commit");
    let source = PackSource::open(repo.path(), false).expect("open");
    let (plan, _) = plan_pack(&source, &PlanOptions::default(), &opts)
        .await
        .expect("plan");
    assert_eq!(plan.manifest.server, None);
}
