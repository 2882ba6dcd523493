//! Server provisioning against local stand-ins of Mojang's piston-meta,
//! Fabric and Quilt meta and the Forge/NeoForge Mavens, with a stand-in
//! installer jar: each loader made launchable, hashes enforced, idempotence
//! (no request the second time), and a failing installer leaving the
//! previous launch description and files as they were.

mod installer;

use std::path::Path;

use atlas_fetcher::LaunchDescription;
use atlas_fetcher::exit;
use atlas_fetcher::provision::{Loader, ProvisionError, ProvisionOptions, Provisioned, Upstreams, provision};
use atlas_testkit::loaders::FakeLoaders;
use atlas_testkit::mojang::FakeMojang;

const MC: &str = "1.21.1";
const SERVER_JAR: &[u8] = b"PK\x03\x04 the vanilla 1.21.1 server";

struct Fakes {
    mojang: FakeMojang,
    loaders: FakeLoaders,
}

impl Fakes {
    fn start() -> Self {
        let mojang = FakeMojang::start().expect("mojang");
        mojang.add_version("1.20.1", 17, b"PK\x03\x04 the 1.20.1 server");
        mojang.add_version(MC, 21, SERVER_JAR);
        Self {
            mojang,
            loaders: FakeLoaders::start().expect("loaders"),
        }
    }

    fn options(&self, dir: &Path, loader: Loader, version: &str) -> ProvisionOptions {
        let mut o = ProvisionOptions::new(dir, MC, loader, version);
        o.upstreams = Upstreams {
            mojang_meta: self.mojang.url(),
            fabric_meta: self.loaders.fabric_meta(),
            quilt_meta: self.loaders.quilt_meta(),
            forge_maven: self.loaders.forge_maven(),
            neoforge_maven: self.loaders.neoforge_maven(),
        };
        o
    }

    /// Fabric's installer (a stable and an unstable one) and meta's
    /// ready-made launcher for loader 0.16.5, as the real meta serves them.
    fn add_fabric(&self) {
        let installer = installer::jar(&[("mode", "fabric"), ("minecraft", MC), ("loader", "0.16.5")]);
        self.loaders.add_fabric_installer("1.0.1", true, &installer);
        self.loaders
            .add_fabric_installer("1.0.2-beta", false, b"PK\x03\x04 unstable");
        let manifest = format!("{}/mc/game/version_manifest_v2.json", self.mojang.url());
        let meta_launcher = installer::fabric_meta_launcher(&[
            ("game-version", MC),
            ("fabric-loader-version", "0.16.5"),
            ("mojang-manifest", &manifest),
        ]);
        self.loaders
            .add_fabric_server_launcher(MC, "0.16.5", "1.0.1", &meta_launcher);
    }

    fn reset(&self) {
        self.mojang.host().reset_requests();
        self.loaders.host().reset_requests();
    }

    fn request_count(&self) -> usize {
        self.mojang.requests().len() + self.loaders.requests().len()
    }
}

async fn run(o: &ProvisionOptions) -> Result<Provisioned, ProvisionError> {
    provision(o).await
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// No staging directory is left in `.atlas/`.
fn no_staging_left(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join(".atlas")) else {
        return; // the lock removed the state directory it created
    };
    let left: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("provision-"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[tokio::test]
async fn vanilla_server_jar_is_found_through_the_manifest_and_checked() {
    let fakes = Fakes::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let p = run(&fakes.options(tmp.path(), Loader::Vanilla, ""))
        .await
        .expect("provision");
    assert!(p.changed);
    let want = LaunchDescription {
        format: 1,
        minecraft: MC.into(),
        loader: "vanilla".into(),
        loader_version: String::new(),
        java_major: 21,
        jar: Some("server.jar".into()),
        args_file: None,
    };
    assert_eq!(p.launch, want);
    assert_eq!(LaunchDescription::load(tmp.path()).expect("load"), Some(want));
    assert_eq!(
        LaunchDescription::path(tmp.path()),
        tmp.path().join(".atlas/launch.json")
    );
    assert_eq!(read(tmp.path(), "server.jar"), SERVER_JAR);
    no_staging_left(tmp.path());
    let json: serde_json::Value =
        serde_json::from_slice(&read(tmp.path(), ".atlas/launch.json")).expect("json");
    assert_eq!(json["java_major"], 21);
    assert_eq!(json["args_file"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_server_jar_with_the_wrong_sha1_is_refused_and_nothing_is_left() {
    let fakes = Fakes::start();
    fakes
        .mojang
        .add_version_declaring("1.21.2", 21, b"PK\x03\x04 tampered", &"ab".repeat(20));
    let tmp = tempfile::tempdir().expect("tmp");
    let mut o = fakes.options(tmp.path(), Loader::Vanilla, "");
    o.minecraft = "1.21.2".into();
    let err = run(&o).await.expect_err("wrong sha1");
    assert!(
        matches!(
            err,
            ProvisionError::Hash {
                algorithm: "sha1",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.exit_code(), exit::INTEGRITY);
    assert!(err.to_string().contains("/server.jar"), "names the URL: {err}");
    assert!(!tmp.path().join("server.jar").exists());
    assert_eq!(LaunchDescription::load(tmp.path()).expect("load"), None);
    no_staging_left(tmp.path());
}

#[tokio::test]
async fn an_unknown_minecraft_version_names_the_manifest() {
    let fakes = Fakes::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut o = fakes.options(tmp.path(), Loader::Vanilla, "");
    o.minecraft = "9.9.9".into();
    let err = run(&o).await.expect_err("unknown");
    assert_eq!(err.exit_code(), exit::SOURCE);
    assert!(err.to_string().contains("version_manifest_v2.json"), "{err}");
    o.minecraft = "../etc".into();
    assert_eq!(run(&o).await.expect_err("unsafe").exit_code(), exit::USAGE);
}

/// Starts the provisioned server's launcher as the runner does (`java -jar
/// <jar>` in the server directory); the stand-in launchers print the game
/// jar they would run instead of starting Minecraft.
fn first_boot(dir: &Path, jar: &str) -> String {
    let out = std::process::Command::new("java")
        .arg("-jar")
        .arg(jar)
        .current_dir(dir)
        .output()
        .expect("java runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the launcher failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn fabric_first_boot_runs_the_verified_server_jar_without_network() {
    let fakes = Fakes::start();
    fakes.add_fabric();
    let tmp = tempfile::tempdir().expect("tmp");
    let o = fakes.options(tmp.path(), Loader::Fabric, "0.16.5");
    let p = run(&o).await.expect("provision");
    assert_eq!(p.launch.jar.as_deref(), Some("fabric-server-launch.jar"));
    assert_eq!((p.launch.loader.as_str(), p.launch.java_major), ("fabric", 21));
    assert_eq!(read(tmp.path(), "server.jar"), SERVER_JAR);
    assert!(
        tmp.path()
            .join("libraries/net/fabricmc/fabric-loader/0.16.5/fabric-loader-0.16.5.jar")
            .is_file(),
        "the installer's libraries are in place before the first boot"
    );
    assert!(
        fakes.loaders.requests().iter().any(|r| r.path
            == "/fabric-maven/net/fabricmc/fabric-installer/1.0.1/fabric-installer-1.0.1.jar.sha256"),
        "the stable installer, checked against its Maven sidecar: {:?}",
        fakes.loaders.requests()
    );
    no_staging_left(tmp.path());

    // The first boot runs the jar Atlas verified, and asks nothing of the network.
    fakes.reset();
    let printed = first_boot(tmp.path(), "fabric-server-launch.jar");
    let sha1 = atlas_testkit::mojang::sha1_hex(SERVER_JAR);
    assert!(
        printed.contains(&format!("game jar: server.jar sha1 {sha1}")),
        "{printed}"
    );
    assert_eq!(fakes.request_count(), 0, "{:?}", fakes.mojang.requests());

    // Provisioned again: nothing to do. A launcher properties file that does
    // not name the verified jar (as Atlas before 0.2 wrote it) is repaired.
    assert!(!run(&o).await.expect("again").changed);
    std::fs::write(
        tmp.path().join("fabric-server-launcher.properties"),
        "serverJarPath=server.jar\n",
    )
    .expect("old properties");
    assert!(run(&o).await.expect("repair").changed);
    let props = String::from_utf8(read(tmp.path(), "fabric-server-launcher.properties")).expect("utf-8");
    assert!(props.lines().any(|l| l == "serverJar=server.jar"), "{props}");
}

#[tokio::test]
async fn quilt_runs_the_installer_headless() {
    let fakes = Fakes::start();
    let jar = installer::jar(&[("mode", "quilt"), ("minecraft", MC), ("loader", "0.26.4")]);
    fakes.loaders.add_quilt_installer("0.9.2", &jar);
    let tmp = tempfile::tempdir().expect("tmp");
    let p = run(&fakes.options(tmp.path(), Loader::Quilt, "0.26.4"))
        .await
        .expect("provision");
    assert_eq!(p.launch.jar.as_deref(), Some("quilt-server-launch.jar"));
    assert!(tmp.path().join("quilt-server-launch.jar").is_file());
    assert!(
        tmp.path()
            .join("libraries/org/quiltmc/quilt-loader/0.26.4/quilt-loader-0.26.4.jar")
            .is_file()
    );
    assert_eq!(read(tmp.path(), "server.jar"), SERVER_JAR);
    assert!(
        !tmp.path().join("installer.jar").exists(),
        "the installer stays in staging"
    );
    no_staging_left(tmp.path());
}

#[tokio::test]
async fn forge_installs_headless_to_an_args_file_or_a_legacy_jar() {
    let fakes = Fakes::start();
    let args_dir = "libraries/net/minecraftforge/forge/1.21.1-52.0.16";
    let jar = installer::jar(&[("args_dir", args_dir)]);
    fakes.loaders.add_forge_installer("1.21.1-52.0.16", &jar);
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("user_jvm_args.txt"), "-Xmx6G\n").expect("user args");
    let p = run(&fakes.options(tmp.path(), Loader::Forge, "52.0.16"))
        .await
        .expect("provision");
    let args_file = format!("{args_dir}/unix_args.txt");
    assert_eq!(p.launch.args_file.as_deref(), Some(args_file.as_str()));
    assert_eq!(p.launch.jar, None);
    assert!(
        tmp.path()
            .join("libraries/net/example/fake/1.0/fake-1.0.jar")
            .is_file()
    );
    assert_eq!(
        read(tmp.path(), "user_jvm_args.txt"),
        b"-Xmx6G\n",
        "the user's file is kept"
    );
    assert!(
        fakes
            .loaders
            .requests()
            .iter()
            .any(|r| r.path.ends_with("forge-1.21.1-52.0.16-installer.jar.sha256")),
        "checked against the sidecar"
    );

    // Forge before 1.17 installs a server jar.
    let legacy = installer::jar(&[("legacy_jar", "forge-1.20.1-47.3.0.jar")]);
    fakes.loaders.add_forge_installer("1.20.1-47.3.0", &legacy);
    let old = tempfile::tempdir().expect("tmp");
    let mut o = fakes.options(old.path(), Loader::Forge, "1.20.1-47.3.0");
    o.minecraft = "1.20.1".into();
    let p = run(&o).await.expect("legacy");
    assert_eq!(p.launch.jar.as_deref(), Some("forge-1.20.1-47.3.0.jar"));
    assert_eq!((p.launch.args_file, p.launch.java_major), (None, 17));
}

#[tokio::test]
async fn forge_finds_every_era_of_maven_coordinates() {
    let fakes = Fakes::start();
    fakes
        .mojang
        .add_version("1.7.10", 8, b"PK\x03\x04 the 1.7.10 server");
    fakes
        .mojang
        .add_version("1.7.2", 8, b"PK\x03\x04 the 1.7.2 server");
    // Real entries of Forge's maven-metadata.xml around the ones served.
    fakes.loaders.list_forge_versions(&[
        "1.7.10_pre4-10.12.2.1149-prerelease",
        "1.7.10-10.13.0.1208",
        "1.7.10-10.13.1.1212-new",
        "1.7.10-10.13.4.1558-1.7.10",
        "1.10-12.18.0.2000-1.10.0",
        "1.7.2-10.12.2.1155-mc172",
    ]);
    for coordinate in ["1.7.10-10.13.4.1614-1.7.10", "1.7.2-10.12.2.1161-mc172"] {
        let universal = format!("forge-{coordinate}-universal.jar");
        let jar = installer::jar(&[("legacy_jar", &universal)]);
        fakes.loaders.add_forge_installer(coordinate, &jar);
    }
    // packwiz writes the Forge version alone (`forge = "10.13.4.1614"`, e.g.
    // github.com/4iki40k/Galaxy-1.7.10-minecraft), or with its suffix.
    for (mc, version, jar) in [
        (
            "1.7.10",
            "10.13.4.1614",
            "forge-1.7.10-10.13.4.1614-1.7.10-universal.jar",
        ),
        (
            "1.7.10",
            "10.13.4.1614-1.7.10",
            "forge-1.7.10-10.13.4.1614-1.7.10-universal.jar",
        ),
        (
            "1.7.10",
            "1.7.10-10.13.4.1614-1.7.10",
            "forge-1.7.10-10.13.4.1614-1.7.10-universal.jar",
        ),
        (
            "1.7.2",
            "10.12.2.1161",
            "forge-1.7.2-10.12.2.1161-mc172-universal.jar",
        ),
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut o = fakes.options(tmp.path(), Loader::Forge, version);
        o.minecraft = mc.into();
        let p = run(&o).await.unwrap_or_else(|e| panic!("{mc} {version}: {e}"));
        assert_eq!(p.launch.jar.as_deref(), Some(jar), "{mc} {version}");
        assert_eq!(p.launch.java_major, 8);
    }
    // A version the metadata does not list names the metadata.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut o = fakes.options(tmp.path(), Loader::Forge, "10.13.9.9999");
    o.minecraft = "1.7.10".into();
    let err = run(&o).await.expect_err("unlisted");
    assert!(err.to_string().contains("maven-metadata.xml"), "{err}");
    assert!(err.to_string().contains("10.13.9.9999"), "{err}");
}

#[tokio::test]
async fn an_installer_that_does_not_match_the_maven_hash_is_refused() {
    let fakes = Fakes::start();
    let jar = installer::jar(&[("args_dir", "libraries/x")]);
    let path = fakes.loaders.add_neoforge_installer("21.1.1", &jar);
    fakes
        .loaders
        .host()
        .put_file(&format!("{path}.sha256"), "00".repeat(32));
    let tmp = tempfile::tempdir().expect("tmp");
    let err = run(&fakes.options(tmp.path(), Loader::Neoforge, "21.1.1"))
        .await
        .expect_err("hash");
    assert!(
        matches!(
            err,
            ProvisionError::Hash {
                algorithm: "sha256",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.exit_code(), exit::INTEGRITY);
    assert!(err.to_string().contains("neoforge-21.1.1-installer.jar"), "{err}");
    no_staging_left(tmp.path());
}

#[tokio::test]
async fn neoforge_is_idempotent_and_a_failing_installer_leaves_the_previous_state() {
    let fakes = Fakes::start();
    let good = installer::jar(&[("args_dir", "libraries/net/neoforged/neoforge/21.1.1")]);
    fakes.loaders.add_neoforge_installer("21.1.1", &good);
    let tmp = tempfile::tempdir().expect("tmp");
    let o = fakes.options(tmp.path(), Loader::Neoforge, "21.1.1");
    let first = run(&o).await.expect("provision");
    assert_eq!(
        first.launch.args_file.as_deref(),
        Some("libraries/net/neoforged/neoforge/21.1.1/unix_args.txt")
    );
    assert_eq!(
        (first.launch.loader.as_str(), first.launch.java_major),
        ("neoforge", 21)
    );
    let launch_bytes = read(tmp.path(), ".atlas/launch.json");

    // Again: nothing to do, not one request.
    fakes.reset();
    let second = run(&o).await.expect("again");
    assert!(!second.changed);
    assert_eq!(second.launch, first.launch);
    assert_eq!(fakes.request_count(), 0, "{:?}", fakes.loaders.requests());

    // A newer version whose installer fails: the old state stays.
    let bad = installer::jar(&[
        ("args_dir", "libraries/net/neoforged/neoforge/21.1.2"),
        ("fail", "true"),
    ]);
    fakes.loaders.add_neoforge_installer("21.1.2", &bad);
    let err = run(&fakes.options(tmp.path(), Loader::Neoforge, "21.1.2"))
        .await
        .expect_err("installer fails");
    assert!(matches!(err, ProvisionError::Installer { .. }), "{err}");
    assert_eq!(err.exit_code(), exit::LOCAL);
    let msg = err.to_string();
    assert!(
        msg.contains("connection reset") && msg.contains("--installServer"),
        "{msg}"
    );
    assert_eq!(read(tmp.path(), ".atlas/launch.json"), launch_bytes);
    assert!(!tmp.path().join("libraries/partial.txt").exists());
    assert!(
        tmp.path()
            .join("libraries/net/neoforged/neoforge/21.1.1/unix_args.txt")
            .is_file()
    );
    no_staging_left(tmp.path());

    // A missing java is a clear usage error.
    let mut o2 = fakes.options(tmp.path(), Loader::Neoforge, "21.1.2");
    o2.java = tmp.path().join("no-such-java");
    let err = run(&o2).await.expect_err("no java");
    assert_eq!(err.exit_code(), exit::USAGE, "{err}");
    assert!(err.to_string().contains("--java"), "{err}");
}

#[tokio::test]
async fn sync_provision_flag_and_provision_command_read_the_installed_manifest() {
    use crate::common::{CHANNEL, PACK, Store, f};
    use atlas_fetcher::cli::{Cli, run as cli};
    use atlas_proto::v1::{Loader as ProtoLoader, LoaderKind};
    use clap::Parser as _;

    let fakes = Fakes::start();
    let mut store = Store::new();
    let mut m = store.manifest_for(&[f("config/a.toml", b"a = 1\n")]);
    store.put_blob(b"a = 1\n");
    m.minecraft_version = MC.into();
    m.loader = Some(ProtoLoader {
        kind: LoaderKind::Vanilla as i32,
        version: String::new(),
    });
    let (build, size) = store.put_manifest_bytes(PACK, &atlas_proto::manifest::encode(&m).expect("encode"));
    store.version += 1;
    store.put_pointer(&store.payload(store.version, build, size));
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().display().to_string();
    let key = store.public().to_text();
    let mojang = fakes.mojang.url();

    // Not synced yet: a usage error naming what to do.
    let args = [
        "atlas-fetcher",
        "provision",
        "--dir",
        &dir,
        "--mojang-meta",
        &mojang,
    ];
    assert_eq!(cli(Cli::try_parse_from(args).expect("parse")).await, exit::USAGE);

    let source = store.file_url();
    let sync = [
        "atlas-fetcher",
        "sync",
        "--source",
        &source,
        "--pack",
        PACK,
        "--channel",
        CHANNEL,
        "--key",
        &key,
        "--dir",
        &dir,
        "--provision",
        "--mojang-meta",
        &mojang,
        "--json",
    ];
    assert_eq!(
        cli(Cli::try_parse_from(sync).expect("parse")).await,
        exit::UPDATED
    );
    let launch = LaunchDescription::load(tmp.path())
        .expect("load")
        .expect("provisioned");
    assert_eq!(
        (launch.loader.as_str(), launch.jar.as_deref()),
        ("vanilla", Some("server.jar"))
    );
    assert_eq!(read(tmp.path(), "server.jar"), SERVER_JAR);

    fakes.reset();
    let json = [
        "atlas-fetcher",
        "provision",
        "--dir",
        &dir,
        "--mojang-meta",
        &mojang,
        "--json",
    ];
    assert_eq!(
        cli(Cli::try_parse_from(json).expect("parse")).await,
        exit::CURRENT
    );
    assert_eq!(fakes.request_count(), 0);
}

/// The server's user owns the server directory: a link it put where the
/// installer's output goes (`libraries` -> elsewhere) is never written
/// through. Before, the files were renamed into the link's target.
#[cfg(unix)]
#[tokio::test]
async fn a_link_where_installed_files_go_is_refused_and_nothing_lands_outside() {
    let fakes = Fakes::start();
    let jar = installer::jar(&[("args_dir", "libraries/net/neoforged/neoforge/21.1.1")]);
    fakes.loaders.add_neoforge_installer("21.1.1", &jar);
    let root = tempfile::tempdir().expect("tmp");
    let (dir, outside) = (root.path().join("server"), root.path().join("outside"));
    std::fs::create_dir_all(&dir).expect("server dir");
    std::fs::create_dir_all(outside.join("net")).expect("outside");
    std::fs::write(outside.join("precious.txt"), b"keep me").expect("outside file");
    std::os::unix::fs::symlink(&outside, dir.join("libraries")).expect("link");
    let before = atlas_testkit::fs::snapshot(&outside);

    let err = run(&fakes.options(&dir, Loader::Neoforge, "21.1.1"))
        .await
        .expect_err("a link in the way");
    assert_eq!(err.exit_code(), exit::LOCAL, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("libraries"), "names the link: {msg}");
    assert_eq!(
        atlas_testkit::fs::snapshot(&outside),
        before,
        "nothing written outside"
    );
    assert!(!dir.join(".atlas/launch.json").exists());
    no_staging_left(&dir);
}

/// A link in place of the Fabric launcher's properties file is replaced by
/// the file, never written through, and a FIFO there cannot hang the check
/// that the directory is already provisioned (before, that check opened
/// it by path and waited for a writer forever, holding the lock).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_fifos_in_place_of_installed_files_are_replaced_never_followed() {
    let fakes = Fakes::start();
    fakes.add_fabric();
    let root = tempfile::tempdir().expect("tmp");
    let (dir, outside) = (root.path().join("server"), root.path().join("outside.txt"));
    std::fs::create_dir_all(&dir).expect("server dir");
    std::fs::write(&outside, b"not Atlas's").expect("outside file");
    let props = dir.join("fabric-server-launcher.properties");
    std::os::unix::fs::symlink(&outside, &props).expect("link");
    let o = fakes.options(&dir, Loader::Fabric, "0.16.5");
    assert!(run(&o).await.expect("provision").changed);
    assert_eq!(std::fs::read(&outside).expect("outside"), b"not Atlas's");
    assert!(
        std::fs::symlink_metadata(&props).expect("props").is_file(),
        "the link was replaced"
    );

    std::fs::remove_file(&props).expect("rm");
    nix::unistd::mkfifo(&props, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("fifo");
    let o2 = o.clone();
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::spawn(async move { run(&o2).await }),
    )
    .await
    .expect("a FIFO must not hang provisioning")
    .expect("join")
    .expect("provision again");
    assert!(again.changed, "a FIFO is not the launcher's properties");
    assert!(std::fs::symlink_metadata(&props).expect("props").is_file());
    let text = String::from_utf8(read(&dir, "fabric-server-launcher.properties")).expect("utf-8");
    assert!(text.lines().any(|l| l == "serverJar=server.jar"), "{text}");
    no_staging_left(&dir);
}
