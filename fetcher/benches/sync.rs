//! Sync benchmarks on loopback: cold install of a synthetic pack (300 jars of
//! 1.5 MB and 2,000 small configs, ~450 MB), a sync with nothing new, and an
//! update where one jar changed; beside them, `rclone copy` of the same blobs
//! from the same server, and `atlas-fetcher verify` of the installed tree
//! against `sha256sum` over the same files (both skipped with a note when the
//! tool is missing). The real `atlas-fetcher` binary is run so
//! wall time and peak RSS are those a host sees. Run:
//! `cargo bench -p atlas-fetcher --bench sync`. Figures: docs/BENCHMARKS.md.

#[allow(unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use atlas_testkit::http::StaticServer;
use common::{CHANNEL, PACK, Spec, Store, f};

const JARS: usize = 300;
const JAR_BYTES: usize = 1_500_000;
const CONFIGS: usize = 2_000;

/// Deterministic, incompressible-looking bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn pack(jar_generation: u64) -> Vec<Spec> {
    let mut specs: Vec<Spec> = (0..JARS)
        .map(|i| {
            let seed = if i == 0 {
                1_000_000 + jar_generation
            } else {
                i as u64
            };
            f(&format!("mods/mod-{i:03}.jar"), &bytes(seed, JAR_BYTES))
        })
        .collect();
    specs.extend((0..CONFIGS).map(|i| {
        f(
            &format!("config/mod{}/file-{i}.toml", i % 150),
            &bytes(50_000 + i as u64, 600),
        )
    }));
    specs
}

struct Run {
    wall: Duration,
    max_rss_kib: i64,
    code: i32,
}

/// Peak resident set (`VmHWM`, monotonic) of a running process, from /proc.
fn peak_rss_kib(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary once; reports wall time, exit code and peak RSS (sampled
/// from /proc while it runs; VmHWM only grows, so the last sample is the peak
/// up to a few milliseconds before exit).
fn fetch(url: &str, dir: &Path, key: &Path) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"))
        .args([
            "sync",
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
        // `ATLAS_BENCH_LOG=info` shows the fetcher's phases with timestamps.
        .env(
            "RUST_LOG",
            std::env::var("ATLAS_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run atlas-fetcher");
    let mut max_rss_kib = 0;
    let status = loop {
        if let Some(rss) = peak_rss_kib(child.id()) {
            max_rss_kib = max_rss_kib.max(rss);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        wall: start.elapsed(),
        max_rss_kib,
        code: status.code().unwrap_or(-1),
    }
}

/// Wall time of a command run to completion (stdout discarded); `None` if it could not run or failed.
fn timed(cmd: &mut Command) -> Option<Duration> {
    let start = Instant::now();
    let status = cmd.stdout(std::process::Stdio::null()).status().ok()?;
    status.success().then(|| start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

/// `rclone copy` of every blob of `specs` from the server (HTTP backend,
/// `--files-from` so no directory listing is needed), into a fresh directory.
fn rclone(url: &str, specs: &[Spec], work: &Path, dest: &Path) -> Option<(Duration, usize)> {
    let list = work.join("rclone-files.txt");
    let mut keys: Vec<String> = specs
        .iter()
        .map(|s| atlas_proto::layout::blob_key(&atlas_proto::Sha256Digest::of(&s.content)))
        .collect();
    keys.sort();
    keys.dedup();
    std::fs::write(&list, keys.join("\n")).ok()?;
    timed(
        Command::new("rclone")
            .args(["copy", "--http-url", url, ":http:"])
            .arg(dest)
            .arg("--files-from")
            .arg(&list)
            .args(["--no-traverse", "--transfers", "8", "--checkers", "8"]),
    )
    .map(|t| (t, count_files(dest)))
}

/// Regular files under `dir`, recursively.
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => count_files(&e.path()),
                Ok(t) if t.is_file() => 1,
                _ => 0,
            })
            .sum()
    })
}

/// Median of 3 runs each: `atlas-fetcher verify` and `sha256sum` over the same files.
fn verify_vs_sha256sum(dir: &Path) -> (Option<Duration>, Option<Duration>) {
    let ours: Vec<Duration> = (0..3)
        .filter_map(|_| {
            timed(
                Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"))
                    .arg("verify")
                    .arg("--dir")
                    .arg(dir),
            )
        })
        .collect();
    let theirs: Vec<Duration> = (0..3)
        .filter_map(|_| {
            timed(Command::new("sh").arg("-c").arg(format!(
                "find '{}' -type f -not -path '*/.atlas/*' -print0 | xargs -0 sha256sum",
                dir.display()
            )))
        })
        .collect();
    (median(ours), median(theirs))
}

/// CPU time (user, system) of every child waited for so far.
#[derive(Clone, Copy)]
struct Cpu {
    user: Duration,
    sys: Duration,
}

impl Cpu {
    fn children() -> Self {
        let u =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("getrusage");
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
        };
        Cpu {
            user: tv(u.user_time()),
            sys: tv(u.system_time()),
        }
    }

    /// CPU used since `self`, as "user+sys".
    fn since(self) -> String {
        let now = Cpu::children();
        format!(
            "{:.2}+{:.2}",
            (now.user - self.user).as_secs_f64(),
            (now.sys - self.sys).as_secs_f64()
        )
    }
}

/// Flushes every dirty page to disk, so a timed step never pays for the
/// write-back of the step before it (`sync(1)`; a no-op where it is missing).
fn flush_disk() {
    let _ = Command::new("sync").status();
}

/// How many cold-install rounds to interleave with rclone (`ATLAS_BENCH_ROUNDS`, default 5).
fn rounds() -> usize {
    std::env::var("ATLAS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return; // `cargo test --benches`: nothing to check here.
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = runtime.enter();
    let mut store = Store::new();
    let specs = pack(0);
    let total: usize = specs.iter().map(|s| s.content.len()).sum();
    store.publish(&specs);
    let key_file = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key_file.path(), store.public().to_text()).expect("write key");
    let server = StaticServer::start(store.root().to_owned()).expect("server");
    let work = tempfile::tempdir().expect("tempdir");
    let mb = total as f64 / 1e6;

    // Cold installs interleaved with `rclone copy` of the same blobs, the
    // order alternating each round so drift in the disk's speed falls on
    // both; `sync` before every timed step. Each step writes into a new
    // directory and nothing is deleted until the end: deleting 450 MB just
    // before a step made that step pay for the deletion (ext4 `discard`).
    let n = rounds();
    let mut ratios = Vec::new();
    let mut durable_ratios = Vec::new();
    let mut cold_walls = Vec::new();
    let mut peak_rss = 0;
    for round in 0..n {
        let mut ours = None;
        let mut theirs = None;
        for step in 0..2 {
            let atlas_turn = (step == 0) == (round % 2 == 0);
            flush_disk();
            if atlas_turn {
                server.reset_requests();
                let cpu = Cpu::children();
                let cold = fetch(
                    &server.url(),
                    &work.path().join(format!("server-{round}")),
                    key_file.path(),
                );
                assert_eq!(cold.code, 0, "cold install must update");
                assert_eq!(
                    server.requests().len(),
                    specs.len() + 2,
                    "pointer, manifest, blobs"
                );
                peak_rss = peak_rss.max(cold.max_rss_kib);
                ours = Some((cold.wall, cpu.since()));
            } else {
                let cpu = Cpu::children();
                let dest = work.path().join(format!("rclone-{round}"));
                theirs = rclone(&server.url(), &specs, work.path(), &dest).map(|(t, copied)| {
                    // rclone leaves its writes in the page cache; the time to
                    // make them durable, which atlas-fetcher pays inside its run.
                    let flush = Instant::now();
                    flush_disk();
                    (t, t + flush.elapsed(), cpu.since(), copied)
                });
            }
        }
        let (wall, cpu) = ours.expect("the cold install ran");
        cold_walls.push(wall);
        match theirs {
            Some((r, durable, rcpu, copied)) => {
                ratios.push(wall.as_secs_f64() / r.as_secs_f64());
                durable_ratios.push(wall.as_secs_f64() / durable.as_secs_f64());
                println!(
                    "round {}: cold install {:.2} s ({:.0} MB/s, cpu user+sys {cpu} s) | rclone copy {:.2} s ({:.0} MB/s, cpu {rcpu} s, {copied} files), then sync {:.2} s | ratio {:.2} ({:.2} to rclone + sync)",
                    round + 1,
                    wall.as_secs_f64(),
                    mb / wall.as_secs_f64(),
                    r.as_secs_f64(),
                    mb / r.as_secs_f64(),
                    durable.as_secs_f64(),
                    wall.as_secs_f64() / r.as_secs_f64(),
                    wall.as_secs_f64() / durable.as_secs_f64()
                );
            }
            None => println!(
                "round {}: cold install {:.2} s (cpu user+sys {cpu} s); rclone copy not measured (rclone missing or failed)",
                round + 1,
                wall.as_secs_f64()
            ),
        }
    }
    let dir = work.path().join(format!("server-{}", n - 1));
    ratios.sort_by(f64::total_cmp);
    durable_ratios.sort_by(f64::total_cmp);
    println!(
        "cold install: {} files, {mb:.0} MB, median {:.2} s over {n} rounds; peak RSS {:.1} MB; {} requests each",
        specs.len(),
        median(cold_walls).expect("at least one round").as_secs_f64(),
        peak_rss as f64 / 1024.0,
        specs.len() + 2
    );
    if let Some(r) = ratios.get(ratios.len() / 2) {
        println!(
            "cold install / rclone copy: median ratio {r:.2} (min {:.2}, max {:.2})",
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    if let Some(r) = durable_ratios.get(durable_ratios.len() / 2) {
        println!(
            "cold install / (rclone copy, then sync): median ratio {r:.2} (min {:.2}, max {:.2})",
            durable_ratios[0],
            durable_ratios[durable_ratios.len() - 1]
        );
    }

    let (ours, sha) = verify_vs_sha256sum(&dir);
    match (ours, sha) {
        (Some(o), Some(s)) => println!(
            "verify: {:.2} s ({:.0} MB/s) vs sha256sum {:.2} s ({:.0} MB/s): {:.2}x faster (median of 3, warm cache)",
            o.as_secs_f64(),
            mb / o.as_secs_f64(),
            s.as_secs_f64(),
            mb / s.as_secs_f64(),
            s.as_secs_f64() / o.as_secs_f64()
        ),
        _ => println!("verify vs sha256sum: not measured (verify failed or sha256sum missing)"),
    }

    let mut times = Vec::new();
    for _ in 0..21 {
        server.reset_requests();
        let r = fetch(&server.url(), &dir, key_file.path());
        assert_eq!(r.code, 3, "nothing new must report current");
        assert_eq!(server.requests().len(), 1, "one conditional request");
        times.push(r.wall);
    }
    times.sort();
    println!(
        "nothing new: 1 request (304), median wall {:.1} ms over 21 runs (process start included)",
        times[10].as_secs_f64() * 1e3
    );

    store.publish(&pack(1));
    server.reset_requests();
    let one = fetch(&server.url(), &dir, key_file.path());
    assert_eq!(one.code, 0);
    let sent: u64 = server.requests().iter().map(|r| r.bytes).sum();
    println!(
        "one jar changed: {} requests, {} bytes sent ({} of them the jar), wall {:.0} ms",
        server.requests().len(),
        sent,
        JAR_BYTES,
        one.wall.as_secs_f64() * 1e3
    );
}
