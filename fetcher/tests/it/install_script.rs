//! `scripts/install.sh`, the installer for hosts without a Rust toolchain,
//! run with `sh` (dash here, as on Debian) the way `curl … | sh -s -- …`
//! runs it, against a loopback stand-in of the GitHub release server: a
//! release made by `scripts/package.sh` (which release.yml runs for every
//! target) from the real `atlas-fetcher` binary plus the repository's systemd
//! units, and `SHA256SUMS` in `sha256sum` format, served on 127.0.0.1.
//!
//! A tampered, unlisted or truncated archive is refused and nothing is
//! installed (nor left in the temporary directory); a script cut short runs
//! nothing; and the installers' platform mappings (install.sh, install.ps1)
//! name exactly the targets release.yml builds.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use atlas_testkit::http::{Fault, StaticServer};
use serde_yaml_ng::Value;
use sha2::{Digest as _, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn script() -> Vec<u8> {
    std::fs::read(root().join("scripts/install.sh")).expect("scripts/install.sh")
}

/// The release target install.sh detects on this machine.
fn this_target() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "x86_64-unknown-linux-musl",
        ("linux", "aarch64") => "aarch64-unknown-linux-musl",
        ("macos", "x86_64") => "x86_64-apple-darwin",
        ("macos", "aarch64") => "aarch64-apple-darwin",
        other => panic!("install.sh has no release for {other:?}"),
    }
}

fn asset() -> String {
    format!("atlas-{}.tar.gz", this_target())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A stand-in second binary, so that `--bin` has something to leave out.
const TOOL: &str = "#!/bin/sh\necho atlas-tool 0.0.0\n";

/// Runs scripts/package.sh as release.yml does, over `bins` (name, file),
/// and returns the archive's bytes.
fn package(work: &Path, bins: &[(&str, &Path)]) -> Vec<u8> {
    let bin_dir = work.join("package-bin");
    let out_dir = work.join("package-out");
    let _ = std::fs::remove_dir_all(&bin_dir);
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    for (name, file) in bins {
        std::fs::copy(file, bin_dir.join(name)).expect("copy binary");
    }
    let out = Command::new("bash")
        .arg(root().join("scripts/package.sh"))
        .arg(this_target())
        .arg(&bin_dir)
        .arg(&out_dir)
        .args(bins.iter().map(|(n, _)| n))
        .output()
        .expect("run package.sh");
    assert!(out.status.success(), "package.sh: {}", text(&out.stderr));
    std::fs::read(out_dir.join(asset())).expect("package.sh wrote the archive")
}

/// A release directory: the genuine archive (the real atlas-fetcher and the
/// stand-in `atlas-tool`) and SHA256SUMS listing it among other assets.
struct Release {
    tmp: tempfile::TempDir,
    archive: Vec<u8>,
}

impl Release {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let tool = tmp.path().join("atlas-tool");
        std::fs::write(&tool, TOOL).expect("tool");
        let archive = package(
            tmp.path(),
            &[
                ("atlas-fetcher", Path::new(env!("CARGO_BIN_EXE_atlas-fetcher"))),
                ("atlas-tool", &tool),
            ],
        );
        let dir = tmp.path().join("release");
        std::fs::create_dir_all(&dir).expect("release dir");
        std::fs::write(dir.join(asset()), &archive).expect("archive");
        let sums = format!(
            "{}  atlas-x86_64-pc-windows-msvc.zip\n{}  {}\n",
            "0".repeat(64),
            sha256_hex(&archive),
            asset()
        );
        std::fs::write(dir.join("SHA256SUMS"), sums).expect("SHA256SUMS");
        Release { tmp, archive }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("release")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
}

/// How the script reaches `sh`.
enum Via {
    /// `curl … | sh -s -- ARGS`: the script on standard input.
    Pipe,
    /// `sh install.sh ARGS`.
    File,
}

/// Runs install.sh with a clean environment (PATH, HOME and TMPDIR inside
/// `rel`'s temporary directory) plus `env`.
fn install(rel: &Release, via: Via, args: &[&str], env: &[(&str, &str)]) -> Output {
    install_bytes(rel, via, &script(), args, env)
}

fn install_bytes(rel: &Release, via: Via, script: &[u8], args: &[&str], env: &[(&str, &str)]) -> Output {
    let (home, tmpdir) = (rel.path("home"), rel.path("tmpdir"));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&tmpdir).expect("tmpdir");
    let mut c = Command::new("sh");
    match via {
        Via::Pipe => {
            c.args(["-s", "--"]);
        }
        Via::File => {
            let file = rel.path("install.sh");
            std::fs::write(&file, script).expect("script copy");
            c.arg(file);
        }
    }
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("TMPDIR", &tmpdir)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run sh");
    let mut stdin = child.stdin.take().expect("stdin");
    if matches!(via, Via::Pipe) {
        stdin.write_all(script).expect("script to sh");
    }
    drop(stdin);
    child.wait_with_output().expect("sh finished")
}

/// Names of the entries of `dir` (empty when it does not exist).
fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The repository's systemd units, as package.sh finds them.
fn repo_units() -> Vec<PathBuf> {
    let mut units = Vec::new();
    for crate_dir in std::fs::read_dir(root()).expect("root") {
        let dir = crate_dir.expect("entry").path().join("systemd");
        for e in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = e.expect("unit").path();
            if path.extension().is_some_and(|x| x == "service" || x == "timer") {
                units.push(path);
            }
        }
    }
    units.sort();
    units
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_the_release_for_this_machine_after_checking_sha256sums() {
    let rel = Release::new();
    let server = StaticServer::start(rel.dir()).expect("server");
    let (bin, units) = (rel.path("prefix/bin"), rel.path("units"));
    let bin_s = bin.display().to_string();
    let url = server.url();

    // 1. `curl … | sh -s -- …`, binaries and systemd units.
    let out = install(
        &rel,
        Via::Pipe,
        &[
            "--release-url",
            &url,
            "--dir",
            &bin_s,
            "--systemd",
            "--systemd-dir",
            &units.display().to_string(),
        ],
        &[],
    );
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("SHA-256 of {} matches SHA256SUMS", asset())),
        "{log}"
    );
    assert!(log.contains("is not on your PATH"), "{log}");
    assert!(
        log.contains(&format!(
            "done: Atlas {} (atlas-fetcher,atlas-tool) in {bin_s}",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );
    assert_eq!(
        entries(&bin),
        BTreeSet::from(["atlas-fetcher".to_owned(), "atlas-tool".to_owned()]),
        "the binaries and nothing else (no temporary files)"
    );
    let fetcher = bin.join("atlas-fetcher");
    assert_eq!(
        std::fs::read(&fetcher).expect("installed"),
        std::fs::read(env!("CARGO_BIN_EXE_atlas-fetcher")).expect("built")
    );
    let mode = std::fs::metadata(&fetcher).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let version = Command::new(&fetcher)
        .arg("--version")
        .output()
        .expect("run the installed atlas-fetcher");
    assert!(version.status.success());
    assert_eq!(
        text(&version.stdout).trim(),
        format!("atlas-fetcher {}", env!("CARGO_PKG_VERSION"))
    );
    // Every unit the repository has, its binaries' paths pointing into --dir.
    let want = repo_units();
    assert!(want.len() >= 3, "{want:?}");
    let names: BTreeSet<String> = want
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries(&units), names);
    for unit in &want {
        let name = unit.file_name().expect("name");
        let installed = std::fs::read_to_string(units.join(name)).expect("unit");
        let shipped = std::fs::read_to_string(unit).expect("repo unit");
        assert_eq!(
            installed,
            shipped.replace("/usr/local/bin/atlas-", &format!("{bin_s}/atlas-"))
        );
    }
    let service = std::fs::read_to_string(units.join("atlas-fetcher.service")).expect("service");
    assert!(
        service.contains(&format!("ExecStart={bin_s}/atlas-fetcher sync")),
        "{service}"
    );
    let paths: Vec<(String, u16)> = server
        .requests()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(
        paths,
        [("SHA256SUMS".to_owned(), 200), (asset(), 200)],
        "SHA256SUMS and this machine's archive, nothing else"
    );
    assert!(entries(&rel.path("tmpdir")).is_empty(), "temporary files left");

    // 2. An upgrade in place, configured by environment only (`sh install.sh`):
    // the binary is replaced by a rename (a running one keeps its inode), and
    // ATLAS_BINS limits what is installed.
    std::fs::write(&fetcher, b"old build").expect("old");
    std::fs::remove_file(bin.join("atlas-tool")).expect("rm tool");
    let inode = std::fs::metadata(&fetcher).expect("meta").ino();
    let out = install(
        &rel,
        Via::File,
        &[],
        &[
            ("ATLAS_RELEASE_URL", &url),
            ("ATLAS_INSTALL_DIR", &bin_s),
            ("ATLAS_BINS", "atlas-fetcher"),
            ("ATLAS_VERSION", "v0.1.0"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(entries(&bin), BTreeSet::from(["atlas-fetcher".to_owned()]));
    assert_ne!(std::fs::metadata(&fetcher).expect("meta").ino(), inode);
    assert_eq!(
        std::fs::read(&fetcher).expect("installed"),
        std::fs::read(env!("CARGO_BIN_EXE_atlas-fetcher")).expect("built")
    );

    // 3. The release as a plain directory and as file:// (a local mirror).
    for base in [
        rel.dir().display().to_string(),
        format!("file://{}", rel.dir().display()),
    ] {
        let dir = rel.path("other-bin");
        let _ = std::fs::remove_dir_all(&dir);
        let out = install(
            &rel,
            Via::Pipe,
            &[
                "--release-url",
                &base,
                "--dir",
                &dir.display().to_string(),
                "--bin",
                "atlas-tool",
            ],
            &[],
        );
        assert!(out.status.success(), "{base}: {}", text(&out.stderr));
        assert_eq!(entries(&dir), BTreeSet::from(["atlas-tool".to_owned()]), "{base}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_archive_is_refused_and_nothing_is_installed() {
    let rel = Release::new();
    let server = StaticServer::start(rel.dir()).expect("server");
    // A swapped archive whose "atlas-fetcher" would leave a marker if it ran.
    let marker = rel.path("it-ran");
    let evil = rel.path("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).expect("evil");
    let evil_archive = package(&rel.path("evil"), &[("atlas-fetcher", &evil)]);
    assert_ne!(evil_archive, rel.archive);
    let (bin, units) = (rel.path("bin"), rel.path("units"));
    let args_owned = [
        "--release-url".to_owned(),
        server.url(),
        "--dir".to_owned(),
        bin.display().to_string(),
        "--systemd".to_owned(),
        "--systemd-dir".to_owned(),
        units.display().to_string(),
    ];
    let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
    let nothing_installed = |what: &str| {
        assert!(!bin.exists(), "{what}: the install directory was created");
        assert!(!units.exists(), "{what}: units were installed");
        assert!(!marker.exists(), "{what}: the tampered binary ran");
        assert!(
            entries(&rel.path("tmpdir")).is_empty(),
            "{what}: temporary files left"
        );
    };

    // 1. The server (a compromised mirror) swaps the archive.
    server.set_fault(&asset(), Fault::Body(evil_archive.clone()));
    let out = install(&rel, Via::Pipe, &args, &[]);
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "SHA-256 mismatch for {}: SHA256SUMS says {}, the download is {}",
            asset(),
            sha256_hex(&rel.archive),
            sha256_hex(&evil_archive)
        )) && log.contains("refusing to install it"),
        "{log}"
    );
    assert!(!log.contains("installed "), "{log}");
    nothing_installed("swapped archive");

    // 2. A download cut short is a mismatch too.
    server.set_fault(&asset(), Fault::Truncate(rel.archive.len() / 2));
    let out = install(&rel, Via::Pipe, &args, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SHA-256 mismatch"),
        "{}",
        text(&out.stderr)
    );
    nothing_installed("truncated archive");
    server.clear_faults();

    // 3. An archive SHA256SUMS does not list is refused.
    server.set_fault(
        "SHA256SUMS",
        Fault::Body(format!("{}  atlas-other.tar.gz\n", sha256_hex(&rel.archive)).into_bytes()),
    );
    let out = install(&rel, Via::Pipe, &args, &[]);
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("lists no {}; refusing to install it", asset())),
        "{log}"
    );
    nothing_installed("unlisted archive");

    // 4. A missing release (404) names what it could not download.
    server.set_fault("SHA256SUMS", Fault::Status(404));
    let out = install(&rel, Via::Pipe, &args, &[]);
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("SHA256SUMS failed"), "{log}");
    nothing_installed("missing release");
    server.clear_faults();

    // 5. A script cut short by the network runs nothing: all of it is in
    // main(), called on its last line.
    server.reset_requests();
    let full = script();
    for cut in [full.len() / 3, full.len() / 2, full.len() - 20] {
        let out = install_bytes(&rel, Via::Pipe, &full[..cut], &args, &[]);
        assert!(
            !text(&out.stderr).contains("installing Atlas"),
            "cut at {cut}: {}",
            text(&out.stderr)
        );
        nothing_installed(&format!("script cut at {cut}"));
    }
    assert_eq!(server.count(), 0, "a partial script made requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_refused_with_exit_2() {
    let rel = Release::new();
    let server = StaticServer::start(rel.dir()).expect("server");
    let url = server.url();
    let bin = rel.path("bin");
    let bin_s = bin.display().to_string();
    for (args, needle) in [
        (
            vec!["--version", "1.2"],
            "--version must be `latest` or a release tag such as v1.2.3",
        ),
        (vec!["--version", "v1.2.3;rm"], "--version must be"),
        (
            vec!["--bin", "../../etc/x"],
            "--bin takes comma-separated binary names",
        ),
        (vec!["--frobnicate"], "unknown option `--frobnicate`"),
        (vec!["--dir"], "--dir needs a value"),
        (
            vec!["--target", "x86_64-pc-windows-msvc"],
            "use scripts/install.ps1",
        ),
        (
            vec!["--target", "x86_64-apple-darwin", "--systemd"],
            "--systemd is for Linux",
        ),
        (
            vec!["--systemd", "--systemd-dir", "rel/units"],
            "must be an absolute path",
        ),
    ] {
        let mut all = vec!["--release-url", url.as_str(), "--dir", bin_s.as_str()];
        all.extend(&args);
        let out = install(&rel, Via::Pipe, &all, &[]);
        let log = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {log}");
        assert!(log.contains(needle), "{args:?}: {log}");
    }
    assert_eq!(server.count(), 0, "bad options are refused before any download");

    // A binary the archive does not have: the message lists those it has.
    let out = install(
        &rel,
        Via::Pipe,
        &[
            "--release-url",
            &url,
            "--dir",
            &bin_s,
            "--bin",
            "atlas-fetcher,atlas-nope",
        ],
        &[],
    );
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("has no `atlas-nope`; it has: atlas-fetcher,atlas-tool"),
        "{log}"
    );
    assert!(!bin.exists(), "nothing installed");

    // --help explains every option and exits 0 (also when piped).
    let out = install(&rel, Via::Pipe, &["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for opt in [
        "--version",
        "--dir",
        "--release-url",
        "--bin",
        "--systemd",
        "--systemd-dir",
        "--target",
        "ATLAS_INSTALL_DIR",
        "SHA256SUMS",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
}

fn yaml(rel: &str) -> Value {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_installers_cover_exactly_the_targets_the_release_builds() {
    let wf = yaml(".github/workflows/release.yml");
    let include = wf["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("jobs.build.strategy.matrix.include");
    let (mut unix, mut windows) = (BTreeSet::new(), BTreeSet::new());
    for e in include {
        let target = e["target"].as_str().expect("target").to_owned();
        if target.contains("-windows-") {
            windows.insert(target);
        } else {
            unix.insert(target);
        }
    }
    // install.sh: `Linux-x86_64 | Linux-amd64) echo TRIPLE ;;`
    let sh = String::from_utf8(script()).expect("utf-8");
    let mapped: BTreeSet<String> = sh
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.trim().split_once(") echo ")?;
            Some(rest.strip_suffix(" ;;")?.to_owned())
        })
        .collect();
    assert_eq!(
        mapped, unix,
        "install.sh's uname mapping and release.yml's matrix differ"
    );
    assert!(unix.contains(this_target()));
    // install.ps1: `'AMD64' { $Target = 'TRIPLE' }`
    let ps = std::fs::read_to_string(root().join("scripts/install.ps1")).expect("install.ps1");
    let ps_targets: BTreeSet<String> = ps
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("$Target = '")?;
            Some(rest.split_once('\'')?.0.to_owned())
        })
        .collect();
    assert_eq!(ps_targets, windows, "install.ps1 and release.yml's matrix differ");
    assert!(ps.contains("\"atlas-$Target.zip\"") && ps.contains("'SHA256SUMS'"));
    // The release's archives are made by the script this test packages with.
    let package_steps = wf["jobs"]["build"]["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .filter(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("bash scripts/package.sh \"$TARGET\""))
        })
        .count();
    assert_eq!(package_steps, 1, "release.yml packages with scripts/package.sh");
    // The README tells hosts about both installers.
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    assert!(
        readme.contains("scripts/install.sh | sh"),
        "README: install.sh line"
    );
    assert!(readme.contains("scripts/install.ps1"), "README: install.ps1 line");
}
