//! Resume across runs (issue 18 item 4): a host installs a pack whose one
//! file is a 300 MB blob; the real `atlas-fetcher` is SIGKILLed once half of
//! it is on disk, then run again. The figure is the share of the blob the
//! second run downloads (target: at most 55 %), counted by the server (body
//! bytes sent) and by the fetcher's report; beside it the same second run
//! with the partial download deleted, which is what every earlier fetcher
//! did (the staging copy was removed). Run:
//! `cargo bench -p atlas-fetcher --bench resume` (add `--profile dev` to
//! reuse a debug build: the byte counts do not depend on it).
//! `ATLAS_BENCH_RESUME_MB` changes the size. Figures: docs/BENCHMARKS.md.

#[allow(unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atlas_proto::Sha256Digest;
use atlas_testkit::http::{Fault, StaticServer};
use common::{CHANNEL, PACK, Store, f};

/// Deterministic, incompressible bytes.
fn bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn fetcher(url: &str, key: &Path, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"));
    c.args([
        "sync",
        "--json",
        "--source",
        url,
        "--pack",
        PACK,
        "--channel",
        CHANNEL,
        "--key",
    ])
    .arg(key)
    .arg("--dir")
    .arg(dir)
    .stdin(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// Runs a sync to completion: wall time and the report's `bytes_downloaded`.
/// Dirty pages are written out first, so that each run starts alike.
fn run(url: &str, key: &Path, dir: &Path) -> (Duration, u64) {
    let _ = Command::new("sync").status();
    let start = Instant::now();
    let out = fetcher(url, key, dir).output().expect("run atlas-fetcher");
    let wall = start.elapsed();
    assert_eq!(out.status.code(), Some(0), "the sync failed");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    (
        wall,
        report["bytes_downloaded"].as_u64().expect("bytes_downloaded"),
    )
}

/// Body bytes the server sent for `key` since the last reset.
fn served(server: &StaticServer, key: &str) -> (u64, Vec<u16>) {
    let hits: Vec<_> = server.requests().into_iter().filter(|r| r.path == key).collect();
    (
        hits.iter().map(|r| r.bytes).sum(),
        hits.iter().map(|r| r.status).collect(),
    )
}

fn main() {
    let mb: usize = std::env::var("ATLAS_BENCH_RESUME_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let size = mb * 1_000_000;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = runtime.enter();
    let work = tempfile::tempdir().expect("tmp");
    let mut store = Store::new();
    let blob = bytes(size);
    let digest = Sha256Digest::of(&blob);
    store.publish(&[f("mods/huge.jar", &blob), f("config/c.toml", b"c = 1\n")]);
    drop(blob);
    let server = StaticServer::start(store.root().to_owned()).expect("server");
    let url = server.url();
    let key_file = work.path().join("key.pub");
    std::fs::write(&key_file, store.public().to_text()).expect("key");
    let blob_key = atlas_proto::layout::blob_key(&digest);

    // The first run, slowed to about 200 MB/s so that the kill lands at
    // half (the partial file is watched every millisecond).
    let dir: PathBuf = work.path().join("server");
    let partial = dir.join(".atlas/partial").join(digest.to_hex());
    server.set_fault_times(
        &blob_key,
        Fault::Trickle {
            chunk: 1 << 20,
            delay_ms: 5,
        },
        1,
    );
    let mut child = fetcher(&url, &key_file, &dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("run atlas-fetcher");
    let half = (size / 2) as u64;
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < half {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the sync ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let kept = std::fs::metadata(&partial).expect("kept").len();

    // Copies of the interrupted directory for the two second runs.
    let copy = work.path().join("server-without-partial");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&dir)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    std::fs::remove_dir_all(copy.join(".atlas/partial")).expect("drop the partial copy");

    server.reset_requests();
    let (wall, reported) = run(&url, &key_file, &dir);
    let (sent, statuses) = served(&server, &blob_key);
    server.reset_requests();
    let (wall_before, reported_before) = run(&url, &key_file, &copy);
    let (sent_before, statuses_before) = served(&server, &blob_key);

    let pct = |n: u64| 100.0 * n as f64 / size as f64;
    println!(
        "blob: {size} bytes ({mb} MB); killed with {kept} bytes on disk ({:.1} %)",
        pct(kept)
    );
    println!(
        "second run, resumed: the server sent {sent} bytes of the blob ({:.1} %), statuses {statuses:?}; \
         report bytes_downloaded {reported}; wall {:.2} s",
        pct(sent),
        wall.as_secs_f64()
    );
    println!(
        "second run without the partial download (earlier fetchers): {sent_before} bytes ({:.1} %), \
         statuses {statuses_before:?}; report bytes_downloaded {reported_before}; wall {:.2} s",
        pct(sent_before),
        wall_before.as_secs_f64()
    );
    println!(
        "target, at most 55 % of the blob downloaded again: {}",
        if pct(sent) <= 55.0 { "met" } else { "NOT met" }
    );
}
