//! The stand-in loader installers and Fabric launchers
//! (`tests/it/java/FakeInstaller.java`, `FakeFabricLauncher.java`),
//! compiled with `javac` once per test process and packed with `jar` into one
//! jar per configuration. Without a JDK these tests fail: CI installs one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SOURCES: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/java/FakeInstaller.java"),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/java/FakeFabricLauncher.java"
    ),
];

fn tool(name: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{name}` ({e}): the provisioning tests compile a stand-in loader installer and need \
             a JDK (javac and jar on PATH, Java 17 or newer; e.g. apt-get install openjdk-17-jdk-headless)"
        )
    });
    assert!(
        out.status.success(),
        "`{name}` failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The compiled class, built once per test process.
fn classes() -> &'static Path {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("atlas-fake-installer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("class dir");
        let mut args: Vec<&std::ffi::OsStr> = vec!["-d".as_ref(), dir.as_os_str()];
        args.extend(SOURCES.iter().map(std::ffi::OsStr::new));
        tool("javac", &args);
        dir
    })
}

/// A stand-in installer jar configured by these properties (see the Java source).
pub fn jar(props: &[(&str, &str)]) -> Vec<u8> {
    packed("FakeInstaller", "fake-installer.properties", props)
}

/// The stand-in of Fabric meta's ready-made server launcher (fabric-installer's
/// `ServerLauncher`), with these `install.properties` (`game-version`,
/// `fabric-loader-version`, and the stand-in's `mojang-manifest` URL).
pub fn fabric_meta_launcher(install: &[(&str, &str)]) -> Vec<u8> {
    packed("FakeFabricLauncher", "install.properties", install)
}

/// The compiled classes and one properties file, with `main` as entry point.
fn packed(main: &str, props_name: &str, props: &[(&str, &str)]) -> Vec<u8> {
    let classes = classes();
    let tmp = tempfile::tempdir().expect("tmp");
    let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(tmp.path().join(props_name), text).expect("props");
    let out = tmp.path().join("installer.jar");
    tool(
        "jar",
        &[
            "cfe".as_ref(),
            out.as_os_str(),
            main.as_ref(),
            "-C".as_ref(),
            classes.as_os_str(),
            ".".as_ref(),
            "-C".as_ref(),
            tmp.path().as_os_str(),
            props_name.as_ref(),
        ],
    );
    std::fs::read(out).expect("jar bytes")
}
