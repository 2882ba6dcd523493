//! The most common mistakes of a host, run as the host runs them (the
//! `atlas-fetcher` binary): each one's error text is a snapshot
//! (`snapshots/`, temporary paths and ports redacted) and its exit code the
//! one of the README's table. A change to a message shows up as a snapshot
//! diff to review (`cargo insta review`, or `INSTA_UPDATE=always`).

use std::path::Path;
use std::process::Command;

use atlas_fetcher::exit;
use atlas_testkit::http::StaticServer;

use crate::common::{CHANNEL, PACK, Store, f};

/// A published store, a host's working directory, the key file.
struct Host {
    store: Store,
    work: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let mut store = Store::new();
        store.publish(&[f("mods/a.jar", b"a"), f("config/b.toml", b"b")]);
        let work = tempfile::tempdir().expect("tmp");
        std::fs::write(work.path().join("signing.pub"), store.public().to_text()).expect("pub");
        std::fs::write(
            work.path().join("signing.key"),
            format!("# Atlas channel signing key (SECRET).\n{}\n", store.key.to_text()),
        )
        .expect("key");
        Self { store, work }
    }

    fn path(&self, p: &str) -> String {
        self.work.path().join(p).display().to_string()
    }

    /// `sync` from this store into `server/`, with `args` replacing any flag
    /// they name.
    fn sync(&self, source: &str, args: &[&str]) -> Command {
        let mut c = fetcher();
        let mut flags = [
            ("--source", source.to_owned()),
            ("--pack", PACK.to_owned()),
            ("--channel", CHANNEL.to_owned()),
            ("--key", self.path("signing.pub")),
            ("--dir", self.path("server")),
        ];
        let mut extra = Vec::new();
        for pair in args.chunks(2) {
            match flags.iter_mut().find(|(n, _)| *n == pair[0]) {
                Some(f) => f.1 = pair.get(1).copied().unwrap_or_default().to_owned(),
                None => extra.extend(pair.iter().map(|s| (*s).to_owned())),
            }
        }
        c.arg("sync")
            .args(flags.iter().flat_map(|(n, v)| [n.to_string(), v.clone()]));
        c.args(["--retries", "0"]).args(extra);
        c
    }

    fn local(&self) -> String {
        self.store.root().display().to_string()
    }
}

fn fetcher() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"));
    c.env_remove("RUST_LOG").env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("ATLAS_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs `cmd`; its stderr with `redact` pairs replaced, and its exit code.
fn run(mut cmd: Command, redact: &[(&str, &str)]) -> (String, i32) {
    let out = cmd.output().expect("run atlas-fetcher");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    for (from, to) in redact {
        text = text.replace(from, to);
    }
    (text, out.status.code().expect("exit code"))
}

/// Lines that begin an error.
fn errors(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("error:")).count()
}

fn check(name: &str, cmd: Command, redact: &[(&str, &str)], code: i32) {
    let (text, got) = run(cmd, redact);
    assert_eq!(got, code, "{name}: exit code\n{text}");
    assert_eq!(errors(&text), 1, "{name}: one error, printed once\n{text}");
    insta::assert_snapshot!(name, text);
}

fn redactions(h: &Host) -> Vec<(String, &'static str)> {
    vec![
        (h.store.root().display().to_string(), "[STORE]"),
        (h.work.path().display().to_string(), "[WORK]"),
    ]
}

fn as_refs<'a>(v: &'a [(String, &'static str)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(a, b)| (a.as_str(), *b)).collect()
}

#[test]
fn wrong_public_key() {
    let h = Host::new();
    let other = atlas_proto::SecretKey::from_seed(&[9; 32]).public().to_text();
    let r = redactions(&h);
    check(
        "wrong_public_key",
        h.sync(&h.local(), &["--key", &other]),
        &as_refs(&r),
        exit::TRUST,
    );
}

#[test]
fn secret_key_given_as_public_key() {
    let h = Host::new();
    let r = redactions(&h);
    let key = h.path("signing.key");
    check(
        "secret_key_given_as_public_key",
        h.sync(&h.local(), &["--key", &key]),
        &as_refs(&r),
        exit::USAGE,
    );
}

#[test]
fn mistyped_channel() {
    let h = Host::new();
    let r = redactions(&h);
    check(
        "mistyped_channel",
        h.sync(&h.local(), &["--channel", "deb"]),
        &as_refs(&r),
        exit::SOURCE,
    );
}

#[test]
fn mistyped_pack() {
    let h = Host::new();
    let r = redactions(&h);
    check(
        "mistyped_pack",
        h.sync(&h.local(), &["--pack", "dmeo"]),
        &as_refs(&r),
        exit::SOURCE,
    );
}

#[test]
fn store_directory_wrong() {
    let h = Host::new();
    let r = redactions(&h);
    let missing = h.path("stor");
    check(
        "store_directory_missing",
        h.sync(&missing, &[]),
        &as_refs(&r),
        exit::SOURCE,
    );
    // The parent of the store, not the store: no packs/ there.
    let parent = h.store.root().join("blobs").display().to_string();
    check(
        "store_directory_not_a_store",
        h.sync(&parent, &[]),
        &as_refs(&r),
        exit::SOURCE,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_url_wrong_or_unreachable() {
    let h = Host::new();
    let srv = StaticServer::start(h.store.root()).expect("server");
    let url = srv.url();
    let port = srv.addr().port().to_string();
    let mut r = redactions(&h);
    r.push((port, "[PORT]"));
    // Over HTTP nothing can be listed: the usual channels are probed.
    let cmd = h.sync(&url, &["--channel", "prod"]);
    let refs: Vec<(String, &'static str)> = r.clone();
    let (text, code) = tokio::task::spawn_blocking(move || run(cmd, &as_refs(&refs)))
        .await
        .expect("join");
    assert_eq!(code, exit::SOURCE, "{text}");
    insta::assert_snapshot!("store_url_mistyped_channel", text);
    let cmd = h.sync(&url, &["--pack", "dmeo"]);
    let refs = r.clone();
    let (text, code) = tokio::task::spawn_blocking(move || run(cmd, &as_refs(&refs)))
        .await
        .expect("join");
    assert_eq!(code, exit::SOURCE, "{text}");
    insta::assert_snapshot!("store_url_wrong", text);
    drop(srv);
    // Nothing listens there any more.
    let cmd = h.sync(&url, &[]);
    let (text, code) = tokio::task::spawn_blocking(move || run(cmd, &as_refs(&r)))
        .await
        .expect("join");
    assert_eq!(code, exit::SOURCE, "{text}");
    assert_eq!(errors(&text), 1, "{text}");
    insta::assert_snapshot!("store_url_unreachable", text);
}

#[test]
fn directory_not_writable() {
    let h = Host::new();
    let r = redactions(&h);
    // A file where the directory should be: even root cannot write there.
    std::fs::write(h.work.path().join("srv"), b"a file").expect("file");
    let dir = h.path("srv/server");
    check(
        "directory_not_writable",
        h.sync(&h.local(), &["--dir", &dir]),
        &as_refs(&r),
        exit::LOCAL,
    );
}

#[test]
fn expired_pointer() {
    let mut h = Host::new();
    let (build, size) = h.store.put_build(&[f("mods/a.jar", b"a")]);
    h.store.version += 1;
    let mut p = h.store.payload(h.store.version, build, size);
    // A fixed past date, so the snapshot does not change with the clock.
    p.issued_at = 1_700_000_000;
    p.expires_at = 1_700_086_400;
    h.store.put_pointer(&p);
    let r = redactions(&h);
    let (text, code) = run(h.sync(&h.local(), &[]), &as_refs(&r));
    assert_eq!(code, exit::TRUST, "{text}");
    // The message names the current time too: keep it out of the snapshot.
    let stable = text.split(" (now ").next().unwrap_or(&text).to_owned();
    insta::assert_snapshot!("expired_pointer", stable);
}

#[test]
fn config_file_typo() {
    let h = Host::new();
    let r = redactions(&h);
    let cfg = h.work.path().join("fetcher.toml");
    std::fs::write(&cfg, "chanel = \"dev\"\n").expect("config");
    let mut c = h.sync(&h.local(), &[]);
    c.arg("--config").arg(&cfg);
    check("config_file_typo", c, &as_refs(&r), exit::USAGE);
}

#[test]
fn unknown_flag() {
    let h = Host::new();
    let r = redactions(&h);
    check(
        "unknown_flag",
        h.sync(&h.local(), &["--chanel", "dev"]),
        &as_refs(&r),
        exit::USAGE,
    );
}

/// The same refusal with `--json`: the error object on stdout, as every
/// other failure prints it (before, stdout was empty).
#[test]
fn unknown_flag_with_json() {
    let h = Host::new();
    let out = h
        .sync(&h.local(), &["--chanel", "dev", "--json"])
        .output()
        .expect("run atlas-fetcher");
    assert_eq!(out.status.code(), Some(exit::USAGE));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(
        (v["outcome"].as_str(), v["kind"].as_str()),
        (Some("error"), Some("usage"))
    );
    assert_eq!(v["exit_code"], exit::USAGE);
    let error = v["error"].as_str().expect("error text");
    assert!(
        error.contains("--chanel") && !error.starts_with("error:"),
        "{error}"
    );
}

#[test]
fn nothing_installed_and_no_cache() {
    let h = Host::new();
    let r = redactions(&h);
    let mut c = fetcher();
    c.args(["verify", "--dir"]).arg(h.work.path());
    check("verify_nothing_installed", c, &as_refs(&r), exit::LOCAL);
    let mut c = fetcher();
    c.args(["rollback", "--source", &h.local(), "--dir"])
        .arg(h.work.path());
    check("rollback_nothing_installed", c, &as_refs(&r), exit::LOCAL);
    let mut c = fetcher();
    c.args(["cache-gc", "--max-mib", "1", "--cache"])
        .arg(h.work.path().join("cache"));
    check("cache_gc_no_cache", c, &as_refs(&r), exit::LOCAL);
    assert!(!Path::new(&h.path("cache")).exists(), "cache-gc created it");
}
