//! The most common mistakes a creator makes with `atlas-builder`, each run
//! through the real binary: the exit code is the README's, and the text
//! (stdout and stderr) is a snapshot under `tests/it/snapshots/`, with
//! temporary paths, ports, commit ids and timings redacted so it is stable.
//! Every cause appears once (issue 20 item 3): a snapshot that repeats one
//! is a regression to review.

use std::path::Path;
use std::process::Output;

use atlas_testkit::git::GitRepo;
use atlas_testkit::http::{Fault, StaticServer};
use atlas_testkit::modrinth::ModrinthServer;
use sha2::Digest as _;

use crate::common::{builder, run, text};

const VANILLA: &str = "id = \"mypack\"\nname = \"My Pack\"\nversion = \"1.0.0\"\nminecraft = \"1.21.1\"\nloader = { kind = \"vanilla\" }\n[[files]]\ninclude = [\"config/**\"]\n";

const FABRIC: &str = "id = \"mypack\"\nname = \"My Pack\"\nversion = \"1.0.0\"\nminecraft = \"1.21.1\"\nloader = { kind = \"fabric\", version = \"0.16.9\" }\n";

/// A committed pack repository with `pack_toml`.
fn repo_with(pack_toml: &str) -> GitRepo {
    let repo = GitRepo::init().expect("init");
    repo.write("pack.toml", pack_toml).expect("write");
    repo.write("config/a.txt", "a").expect("write");
    repo.commit_all("pack").expect("commit");
    repo
}

/// The exit code and both streams, with what changes between runs redacted.
fn transcript(out: &Output, temps: &[&Path]) -> String {
    let mut s = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().map_or("signal".to_owned(), |c| c.to_string()),
        text(&out.stdout),
        text(&out.stderr)
    );
    for t in temps {
        // Longest first: a canonical path may extend the plain one.
        for p in [
            t.canonicalize().unwrap_or_else(|_| t.to_path_buf()),
            t.to_path_buf(),
        ] {
            s = s.replace(&p.display().to_string(), "[TMP]");
        }
    }
    s
}

/// Asserts the exit code, then the snapshot.
fn check(name: &str, out: &Output, code: i32, temps: &[&Path]) {
    let t = transcript(out, temps);
    assert_eq!(out.status.code(), Some(code), "{t}");
    insta::with_settings!({
        filters => vec![
            (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
            (r"\b[0-9a-f]{12}\b", "[COMMIT]"),
            (r"\(\d+ ms\)", "([MS])"),
            (r"in \d+\.\d s(, [0-9.]+ [KMGT]?i?B/s)?", "in [DURATION]"),
            (r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "[TIME]"),
        ],
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, t);
    });
}

/// A signing key pair in `dir`: (secret, public) file paths.
fn keys(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = run(builder().args(["keygen", "--out-dir"]).arg(dir));
    assert!(out.status.success(), "{}", text(&out.stderr));
    (dir.join("atlas-signing.key"), dir.join("atlas-signing.pub"))
}

/// A store holding pack `mypack` with channels `beta` and `production`.
fn published_store(work: &Path) -> (std::path::PathBuf, std::path::PathBuf, GitRepo) {
    let (secret, _) = keys(work);
    let repo = repo_with(VANILLA);
    let store = work.join("store");
    for channel in ["beta", "production"] {
        let out = run(builder()
            .args(["publish", "--channel", channel, "--repo"])
            .arg(repo.path())
            .arg("--store")
            .arg(&store)
            .arg("--key-file")
            .arg(&secret));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    (store, secret, repo)
}

#[test]
fn missing_pack_toml() {
    let repo = GitRepo::init().expect("init");
    repo.write("README.md", "my pack").expect("write");
    repo.commit_all("c").expect("commit");
    let out = run(builder().args(["check", "--repo"]).arg(repo.path()));
    check("missing_pack_toml", &out, 3, &[repo.path()]);
}

#[test]
fn two_misspelled_fields_are_both_reported() {
    let repo = repo_with(&VANILLA.replace("name =", "nmae =").replace("loader =", "loadr ="));
    let out = run(builder().args(["check", "--repo"]).arg(repo.path()));
    check("two_misspelled_fields", &out, 3, &[repo.path()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("did you mean `name`") && stdout.contains("did you mean `loader`"),
        "{stdout}"
    );
}

#[test]
fn uncommitted_changes_are_warned_about() {
    let repo = repo_with(VANILLA);
    repo.write("config/a.txt", "edited").expect("write");
    repo.write("config/new.txt", "new").expect("write");
    let out = run(builder().args(["check", "--repo"]).arg(repo.path()));
    check("dirty_tree_warning", &out, 0, &[repo.path()]);
}

#[test]
fn no_git_repository() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("pack.toml"), VANILLA).expect("write");
    let out = run(builder().args(["check", "--repo"]).arg(dir.path()));
    check("no_git_repository", &out, 3, &[dir.path()]);
}

// The stand-in servers run on the runtime's workers while the test
// thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_modrinth_project() {
    let modrinth = ModrinthServer::start().expect("modrinth");
    let repo = repo_with(&format!(
        "{FABRIC}[[mods]]\nmodrinth = {{ project = \"sodiumm\", version = \"0.6.0\" }}\n"
    ));
    let work = tempfile::tempdir().expect("tmp");
    let out = run(builder()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(work.path().join("store"))
        .arg("--cache-dir")
        .arg(work.path().join("cache"))
        .args(["--modrinth-api", &modrinth.url()]));
    check("unknown_modrinth_project", &out, 3, &[repo.path(), work.path()]);
}

/// Modrinth unreachable: exit 4 (network), not 3 (invalid pack), after
/// bounded retries, and one line for the host however many mods it has.
#[test]
fn modrinth_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut toml = FABRIC.to_owned();
    for i in 0..5 {
        toml.push_str(&format!(
            "[[mods]]\nmodrinth = {{ project = \"proj{i:04}\", version = \"ver{i:05}\" }}\n"
        ));
    }
    let repo = repo_with(&toml);
    let work = tempfile::tempdir().expect("tmp");
    let out = run(builder()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(work.path().join("store"))
        .arg("--cache-dir")
        .arg(work.path().join("cache"))
        .args(["--modrinth-api", &format!("http://127.0.0.1:{port}")]));
    check("modrinth_unreachable", &out, 4, &[repo.path(), work.path()]);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("unreachable after").count(), 1, "{stderr}");
    assert!(stderr.lines().count() <= 3, "{stderr}");
}

/// A file host answering 503 to every attempt: exit 4 as well.
// The stand-in servers run on the runtime's workers while the test
// thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_mod_host_answering_503() {
    let files = tempfile::tempdir().expect("tmp");
    let server = StaticServer::start(files.path()).expect("server");
    std::fs::write(files.path().join("m.jar"), b"jar").expect("write");
    server.set_fault("m.jar", Fault::Status(503));
    let hash = hex::encode(sha2::Sha256::digest(b"jar"));
    let repo = repo_with(&format!(
        "{FABRIC}[[mods]]\nurl = \"{}m.jar\"\nhash = \"sha256:{hash}\"\n",
        server.url()
    ));
    let work = tempfile::tempdir().expect("tmp");
    let out = run(builder()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(work.path().join("store"))
        .arg("--cache-dir")
        .arg(work.path().join("cache")));
    check("url_mod_host_503", &out, 4, &[repo.path(), work.path()]);
}

// The stand-in servers run on the runtime's workers while the test
// thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_mod_hash_mismatch() {
    let files = tempfile::tempdir().expect("tmp");
    let server = StaticServer::start(files.path()).expect("server");
    std::fs::write(files.path().join("m.jar"), b"the real bytes").expect("write");
    let hash = hex::encode(sha2::Sha256::digest(b"other bytes"));
    let repo = repo_with(&format!(
        "{FABRIC}[[mods]]\nurl = \"{}m.jar\"\nhash = \"sha256:{hash}\"\n",
        server.url()
    ));
    let work = tempfile::tempdir().expect("tmp");
    let out = run(builder()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(work.path().join("store"))
        .arg("--cache-dir")
        .arg(work.path().join("cache")));
    check("url_mod_hash_mismatch", &out, 3, &[repo.path(), work.path()]);
}

#[test]
fn bad_key_file() {
    let work = tempfile::tempdir().expect("tmp");
    let (store, _, _) = published_store(work.path());
    let bad = work.path().join("bad.key");
    std::fs::write(&bad, "not a key\n").expect("write");
    set_mode(&bad, 0o600);
    let out = run(builder()
        .args([
            "promote",
            "--pack",
            "mypack",
            "--from",
            "beta",
            "--to",
            "production",
            "--store",
        ])
        .arg(&store)
        .arg("--key-file")
        .arg(&bad));
    check("bad_key_file", &out, 6, &[work.path()]);
}

#[test]
fn public_key_as_key_file() {
    let work = tempfile::tempdir().expect("tmp");
    let (store, _, _) = published_store(work.path());
    let public = work.path().join("atlas-signing.pub");
    // World-readable, as a public key is: no warning about permissions.
    set_mode(&public, 0o644);
    let out = run(builder()
        .args([
            "promote",
            "--pack",
            "mypack",
            "--from",
            "beta",
            "--to",
            "production",
            "--store",
        ])
        .arg(&store)
        .arg("--key-file")
        .arg(&public));
    check("public_key_as_key_file", &out, 6, &[work.path()]);
    assert!(!text(&out.stderr).contains("readable by other users"));
}

/// `promote --from btea` (a typo of `beta`) on a published store.
fn promote_from_a_typo(work: &Path, json: bool) -> Output {
    let (store, secret, _) = published_store(work);
    let mut c = builder();
    if json {
        c.arg("--json");
    }
    run(c
        .args([
            "promote",
            "--pack",
            "mypack",
            "--from",
            "btea",
            "--to",
            "production",
            "--store",
        ])
        .arg(&store)
        .arg("--key-file")
        .arg(&secret))
}

#[test]
fn mistyped_channel() {
    let work = tempfile::tempdir().expect("tmp");
    let out = promote_from_a_typo(work.path(), false);
    check("mistyped_channel", &out, 2, &[work.path()]);
}

#[test]
fn mistyped_pack() {
    let work = tempfile::tempdir().expect("tmp");
    let (store, secret, _) = published_store(work.path());
    let out = run(builder()
        .args(["resign", "--pack", "mypak", "--channel", "beta", "--store"])
        .arg(&store)
        .arg("--key-file")
        .arg(&secret));
    check("mistyped_pack", &out, 2, &[work.path()]);
    // gc tells the same, and deletes nothing.
    let out = run(builder().args(["gc", "--pack", "mypak", "--store"]).arg(&store));
    check("mistyped_pack_gc", &out, 2, &[work.path()]);
}

#[test]
fn missing_store() {
    let work = tempfile::tempdir().expect("tmp");
    let (secret, _) = keys(work.path());
    let out = run(builder()
        .args([
            "promote",
            "--pack",
            "mypack",
            "--from",
            "beta",
            "--to",
            "production",
            "--store",
        ])
        .arg(work.path().join("no-such-store"))
        .arg("--key-file")
        .arg(&secret));
    check("missing_store", &out, 2, &[work.path()]);
}

/// With `--json` the error is an object on stdout (the fetcher's shape),
/// and the `error:` line still goes to stderr.
#[test]
fn json_error_object() {
    let work = tempfile::tempdir().expect("tmp");
    let out = promote_from_a_typo(work.path(), true);
    check("json_error_object", &out, 2, &[work.path()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["kind"], "usage");
    assert_eq!(v["exit_code"], 2);
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("did you mean `beta`"))
    );
}

/// A flag clap refuses, with `--json`: the error object on stdout as for any
/// other failure (before, stdout was empty), clap's usage on stderr, exit 2.
#[test]
fn json_usage_error() {
    let out = run(builder().args(["--json", "publish", "--bogus"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(
        (v["outcome"].as_str(), v["kind"].as_str()),
        (Some("error"), Some("usage"))
    );
    assert_eq!(v["exit_code"], 2);
    let error = v["error"].as_str().expect("error text");
    assert!(
        error.contains("--bogus") && !error.starts_with("error:"),
        "{error}"
    );
    assert!(
        text(&out.stderr).contains("Usage:"),
        "clap's usage stays on stderr"
    );
    // Without --json, stdout stays empty.
    let out = run(builder().args(["publish", "--bogus"]));
    assert_eq!((out.status.code(), out.stdout.is_empty()), (Some(2), true));
}

/// A missing key file: the OS's reason once, not twice.
#[test]
fn missing_key_file() {
    let work = tempfile::tempdir().expect("tmp");
    let (store, _, _) = published_store(work.path());
    let out = run(builder()
        .args([
            "promote",
            "--pack",
            "mypack",
            "--from",
            "beta",
            "--to",
            "production",
            "--store",
        ])
        .arg(&store)
        .arg("--key-file")
        .arg(work.path().join("nope.key")));
    check("missing_key_file", &out, 6, &[work.path()]);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}
