//! Kill test: a real `atlas-fetcher` process applying a sizeable update is
//! SIGKILLed at pseudo-random moments (fixed seed) during at least 50 applies.
//! After each kill, a run that can only recover (its source does not exist)
//! must leave the managed files exactly as the old build or exactly as the
//! new one, unmanaged files unchanged; a normal run then reaches the new build.
//!
//! The test-only `ATLAS_FETCHER_TEST_PAUSE_APPLY_US` slows each file
//! operation of the apply so that kills land inside it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use atlas_fetcher::exit;
use atlas_testkit::http::StaticServer;

/// Deterministic xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn content(rng: &mut Rng, tag: &str, len: usize) -> Vec<u8> {
    let mut v = format!("{tag}\n").into_bytes();
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len.max(tag.len() + 1));
    v
}

/// 200 files, about 5 MiB; the new build changes 120, drops 20, adds 20,
/// and turns a file into a directory.
fn builds() -> (Vec<Spec>, Vec<Spec>) {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut old = Vec::new();
    let mut new = Vec::new();
    for i in 0..200 {
        let path = if i % 3 == 0 {
            format!("config/c{i:03}.toml")
        } else {
            format!("mods/m{i:03}.jar")
        };
        let len = if i % 25 == 0 {
            300_000
        } else {
            1_000 + (rng.next() % 30_000) as usize
        };
        let v1 = content(&mut rng, &format!("{path} v1"), len);
        old.push(f(&path, &v1));
        match i {
            0..120 => new.push(f(&path, &content(&mut rng, &format!("{path} v2"), len + 7))),
            120..140 => {} // dropped
            _ => new.push(f(&path, &v1)),
        }
    }
    for i in 0..20 {
        let path = format!("newmods/n{i:02}.jar");
        new.push(f(&path, &content(&mut rng, &path, 20_000)));
    }
    // Two paths sharing one blob (a copy and a rename).
    new.push(f("shared/a.txt", b"same bytes"));
    new.push(f("shared/b.txt", b"same bytes"));
    old.push(f("turns/into-dir", b"a file first"));
    new.push(f("turns/into-dir/now.txt", b"then a directory"));
    (old, new)
}

fn unmanaged() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("world/level.dat", b"precious world"),
        ("mods/my-own.jar", b"the user's mod"),
        ("server.properties", b"motd=hi"),
    ]
}

fn tree(specs: &[Spec]) -> BTreeMap<String, Vec<u8>> {
    let mut t: BTreeMap<String, Vec<u8>> = specs
        .iter()
        .map(|s| (s.path.clone(), s.content.clone()))
        .collect();
    for (p, c) in unmanaged() {
        t.insert(p.to_owned(), c.to_vec());
    }
    t
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

fn fetcher(source: &str, keyfile: &Path, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"));
    c.args([
        "sync",
        "--source",
        source,
        "--pack",
        PACK,
        "--channel",
        CHANNEL,
        "--key",
    ])
    .arg(keyfile)
    .arg("--dir")
    .arg(dir)
    .args(["--retries", "0"])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

#[test]
fn sigkill_mid_apply_leaves_exactly_one_build() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _enter = rt.enter();
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let keyfile = store.root().join("demo.pub");
    std::fs::write(&keyfile, format!("{}\n", store.public().to_text())).expect("write key");
    let (old, new) = builds();
    let (old_tree, new_tree) = (tree(&old), tree(&new));

    // A template directory at the old build, with unmanaged files.
    // On tmpfs when there is one: fsyncs are free there, and a kill (unlike a
    // power cut) does not depend on them.
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tmp")
    } else {
        tempfile::tempdir().expect("tmp")
    };
    let template = root.path().join("template");
    store.publish(&old);
    for (p, c) in unmanaged() {
        let path = template.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, c).expect("write");
    }
    let status = fetcher(&srv.url(), &keyfile, &template).status().expect("run");
    assert_eq!(status.code(), Some(exit::UPDATED));
    assert_eq!(files(&template), old_tree);
    store.publish(&new);

    let missing_source = root.path().join("no-such-store");
    let mut rng = Rng(0xdead_beef_0000_0042);
    let (mut landed, mut rolled_back, mut runs) = (0, 0, 0);
    while landed < 50 && runs < 150 {
        runs += 1;
        let dir = root.path().join(format!("run{runs}"));
        copy_tree(&template, &dir);
        let journal = dir.join(".atlas/journal.json");
        let mut child = fetcher(&srv.url(), &keyfile, &dir)
            .env("ATLAS_FETCHER_TEST_PAUSE_APPLY_US", "300")
            .spawn()
            .expect("spawn");
        // Wait for the apply to start, then kill somewhere inside it.
        while !journal.exists() && child.try_wait().expect("wait").is_none() {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 120_000));
        child.kill().expect("kill");
        child.wait().expect("reap");
        if journal.exists() {
            landed += 1;
        }

        // Recovery only: the source does not exist, so nothing new can be fetched.
        let status = fetcher(missing_source.to_str().expect("utf-8"), &keyfile, &dir)
            .status()
            .expect("run");
        assert_eq!(status.code(), Some(exit::SOURCE), "run {runs}");
        assert!(!journal.exists(), "run {runs}: the journal was resolved");
        let now = files(&dir);
        if now == old_tree {
            rolled_back += 1;
        } else {
            let differ = |t: &BTreeMap<String, Vec<u8>>| {
                let keys: std::collections::BTreeSet<&String> = t.keys().chain(now.keys()).collect();
                keys.into_iter()
                    .filter(|k| t.get(*k) != now.get(*k))
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert!(
                now == new_tree,
                "run {runs}: a mix of the two builds; differs from old at {:?}, from new at {:?}",
                differ(&old_tree),
                differ(&new_tree)
            );
        }

        let out = fetcher(&srv.url(), &keyfile, &dir)
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        assert!(
            matches!(out.status.code(), Some(exit::UPDATED | exit::CURRENT)),
            "run {runs}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            files(&dir),
            new_tree,
            "run {runs}: the re-run reaches the new build"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("{runs} runs, {landed} killed mid-apply, {rolled_back} left at the old build after recovery");
    assert!(landed >= 50, "only {landed} of {runs} kills landed mid-apply");
}
