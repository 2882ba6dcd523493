//! What `atlas-builder` writes in each output mode (issue 20 items 1 and
//! 2): on a terminal (a pseudo-terminal here) a progress bar and colours;
//! into a pipe (CI logs) plain progress lines and no escape codes; with
//! `--json` one JSON object on stdout and no progress at all; `NO_COLOR`
//! honoured on a terminal.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use atlas_testkit::git::GitRepo;
use atlas_testkit::http::{Fault, StaticServer};

use crate::common::{builder, text};

/// The builder's runs on a 100x24 pseudo-terminal.
fn on_a_terminal(cmd: Command) -> (String, Option<i32>) {
    atlas_testkit::pty::on_a_terminal(cmd, Some((100, 24)))
}

const ESC: &str = "\x1b[";

/// A pack of two URL mods served slowly enough for a bar to be drawn.
struct Pack {
    repo: GitRepo,
    _files: tempfile::TempDir,
    _server: StaticServer,
    work: tempfile::TempDir,
}

impl Pack {
    fn new() -> Self {
        Self::with_flaky(false)
    }

    /// With `flaky`, a third mod whose host answers 503 twice before it
    /// serves the file: the builder retries it while the bar is drawn.
    fn with_flaky(flaky: bool) -> Self {
        let files = tempfile::tempdir().expect("tmp");
        let server = StaticServer::start(files.path()).expect("server");
        let mut toml = String::from(
            "id = \"modes\"\nname = \"Modes\"\nversion = \"1\"\nminecraft = \"1.21.1\"\nloader = { kind = \"fabric\", version = \"0.16.9\" }\n",
        );
        for name in ["a", "b"] {
            let bytes: Vec<u8> = (0..48 * 1024u32)
                .map(|i| (i % 251) as u8 ^ name.as_bytes()[0])
                .collect();
            std::fs::write(files.path().join(format!("{name}.jar")), &bytes).expect("write");
            server.set_fault(
                &format!("{name}.jar"),
                Fault::Trickle {
                    chunk: 4096,
                    delay_ms: 60,
                },
            );
            toml.push_str(&format!(
                "[[mods]]\nurl = \"{}{name}.jar\"\nhash = \"sha256:{}\"\n",
                server.url(),
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
            ));
        }
        if flaky {
            let bytes = b"PK\x03\x04 a mod from a flaky host".to_vec();
            std::fs::write(files.path().join("c.jar"), &bytes).expect("write");
            server.set_fault_times("c.jar", Fault::Status(503), 2);
            toml.push_str(&format!(
                "[[mods]]\nurl = \"{}c.jar\"\nhash = \"sha256:{}\"\n",
                server.url(),
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
            ));
        }
        let repo = GitRepo::init().expect("git");
        repo.write("pack.toml", toml).expect("write");
        repo.commit_all("c").expect("commit");
        Self {
            repo,
            _files: files,
            _server: server,
            work: tempfile::tempdir().expect("tmp"),
        }
    }

    /// `plan` with a fresh cache named `run`, so every run downloads.
    fn plan(&self, run: &str, json: bool) -> Command {
        let mut c = builder();
        if json {
            c.arg("--json");
        }
        c.args(["plan", "--repo"])
            .arg(self.repo.path())
            .arg("--store")
            .arg(self.work.path().join("store"))
            .arg("--cache-dir")
            .arg(self.work.path().join(run));
        c.env_remove("NO_COLOR");
        c
    }
}

// The stand-in servers run on the runtime's workers while the test
// thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_gets_a_progress_bar() {
    let pack = Pack::new();
    let (out, code) = on_a_terminal(pack.plan("tty", false));
    assert_eq!(code, Some(0), "{out}");
    // The bar, redrawn in place: its stage, file count, bytes and rate
    // (URL mods declare no size, so no ETA here; with sizes known the bar counts bytes and shows the ETA).
    assert!(
        out.contains("\r\x1b[2Kdownloading 1/2 files, "),
        "no bar drawn: {out:?}"
    );
    assert!(out.contains("/s [="), "{out:?}");
    assert!(out.contains("downloaded 2/2 files"), "{out:?}");
    assert!(out.contains("modes 1 (2 files)"), "{out:?}");
}

/// `s` without ANSI escape sequences (CSI: `ESC [` parameters, a final
/// letter) and carriage returns.
fn shown(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Log lines written while the bar is on the screen start on a line of
/// their own: the bar is cleared first and drawn again below them. Before,
/// a retry's log line was written after the bar's text, on its line.
// The stand-in servers run on the runtime's workers while the test
// thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_never_land_inside_the_bar() {
    let pack = Pack::with_flaky(true);
    let mut cmd = pack.plan("tty-logs", false);
    cmd.env("RUST_LOG", "warn,atlas_builder=debug")
        .env("NO_COLOR", "1");
    let (out, code) = on_a_terminal(cmd);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\r\x1b[2Kdownloading "), "no bar drawn: {out:?}");
    let retries: Vec<String> = out
        .split('\n')
        .filter(|l| l.contains("retrying download"))
        // What stays on the screen: the text after the line was last cleared.
        .map(|l| shown(l.rsplit("\x1b[2K").next().unwrap_or(l)))
        .collect();
    assert_eq!(retries.len(), 2, "two retries logged: {out:?}");
    for line in &retries {
        // A log line begins with its timestamp (2026-...), never with the bar.
        assert!(
            line.trim_start().starts_with(|c: char| c.is_ascii_digit()),
            "a log line inside the bar: {line:?}\n{out:?}"
        );
    }
}

// The stand-in servers run on the runtime's workers while the test
// thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_gets_plain_lines_without_escapes() {
    let pack = Pack::new();
    let out = pack.plan("pipe", false).output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("downloading 0/2 files"), "{stderr}");
    assert!(stderr.contains("downloaded 2/2 files"), "{stderr}");
    assert!(!stderr.contains(ESC) && !stderr.contains('\r'), "{stderr:?}");
    assert!(!text(&out.stdout).contains(ESC));
}

// The stand-in servers run on the runtime's workers while the test
// thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_prints_one_object_and_no_progress() {
    let pack = Pack::new();
    let out = pack.plan("json", true).output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["pack"], "modes");
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("download"), "progress with --json: {stderr}");
    // Not on a terminal either.
    let (tty, code) = on_a_terminal(pack.plan("json-tty", true));
    assert_eq!(code, Some(0), "{tty}");
    assert!(!tty.contains("eta") && !tty.contains("downloading"), "{tty:?}");
}

/// A world-readable secret key: a WARN line from tracing.
fn warned(dir: &Path, no_color: bool) -> Command {
    let key = dir.join("atlas-signing.key");
    if !key.exists() {
        let out = builder()
            .args(["keygen", "--out-dir"])
            .arg(dir)
            .output()
            .expect("keygen");
        assert!(out.status.success());
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let mut c = builder();
    c.args(["promote", "--pack", "p", "--from", "a", "--to", "b", "--store"])
        .arg(dir.join("store"))
        .arg("--key-file")
        .arg(&key);
    c.env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    c
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().expect("tmp");
    let (tty, _) = on_a_terminal(warned(dir.path(), false));
    assert!(tty.contains("readable by other users"), "{tty:?}");
    assert!(tty.contains(ESC), "no colour on a terminal: {tty:?}");
    let pipe = warned(dir.path(), false).output().expect("run");
    let pipe = text(&pipe.stderr);
    assert!(
        pipe.contains("readable by other users") && !pipe.contains(ESC),
        "{pipe:?}"
    );
    let (plain, _) = on_a_terminal(warned(dir.path(), true));
    assert!(plain.contains("readable by other users"), "{plain:?}");
    assert!(!plain.contains(ESC), "colour despite NO_COLOR: {plain:?}");

    // clap's own messages too.
    let usage = || {
        let mut c = builder();
        c.args(["publish", "--bogus"])
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        c
    };
    let (tty, code) = on_a_terminal(usage());
    assert_eq!(code, Some(2));
    assert!(tty.contains("--bogus") && tty.contains(ESC), "{tty:?}");
    let mut c = usage();
    c.env("NO_COLOR", "1");
    let (plain, _) = on_a_terminal(c);
    assert!(plain.contains("--bogus") && !plain.contains(ESC), "{plain:?}");
}
