//! Update downtime and idle cost of `atlas-runnerd` (release build), against
//! the stand-in server and a loopback store: a 300-file update staged while
//! the server runs, then stop → back up → apply → start, each step timed by
//! the daemon itself (the `update` event's `timings`); and the daemon's
//! resident memory and CPU while it idles with the server running.
//!
//! Run: `cargo bench -p atlas-runner --bench update`. Figures go to
//! docs/BENCHMARKS.md; nothing here asserts a speed.

#[allow(dead_code, clippy::all)]
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code, clippy::all)]
#[path = "../tests/it/rig.rs"]
mod rig;
#[allow(dead_code, clippy::all)]
#[path = "../../fetcher/tests/it/common/mod.rs"]
mod store;

use std::time::Duration;

use atlas_proto::runner::v1::{UpdateOutcome, UpdateRequest, reply, request};
use atlas_testkit::http::StaticServer;
use rig::Rig;
use store::{Spec, Store, f};

const FILES: usize = 300;
const ROUNDS: u32 = 5;

fn build(n: u32) -> Vec<Spec> {
    (0..FILES)
        .map(|i| {
            if i < 100 {
                // 100 "jars" of 256 KiB.
                let mut bytes = vec![(i % 251) as u8; 256 * 1024];
                bytes[..8].copy_from_slice(&u64::from(n).to_le_bytes());
                f(&format!("mods/mod{i:03}.jar"), &bytes)
            } else {
                f(
                    &format!("config/c{i:03}.toml"),
                    format!("build = {n}\nfile = {i}\n").as_bytes(),
                )
            }
        })
        .collect()
}

fn proc_stat(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the comm.
    let ticks = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    (rss_kb, ticks)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    store.publish(&build(0));
    let cfg = format!(
        "autostart = true\n[source]\nurl = \"{}\"\npack = \"{}\"\nchannel = \"{}\"\nkeys = [\"{}\"]\nupdate_interval = \"1h\"\njitter = \"0s\"\nauto_apply = false\nprovision = false\nannounce = \"0s\"\n\n[health]\nwindow = \"1s\"\npings = 1\n\n{}",
        srv.url(),
        store::PACK,
        store::CHANNEL,
        store.public().to_text(),
        rig::server_table(""),
    );
    let mut rig = Rig::new(&cfg, "", true);
    rig.start().await;
    rig.wait_state("running").await;
    let pid = rig.daemon.as_ref().and_then(|c| c.id()).expect("daemon pid");

    // Idle: the server runs, the daemon pings it every second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, t0) = proc_stat(pid);
    let idle = Duration::from_secs(20);
    tokio::time::sleep(idle).await;
    let (rss_kb, t1) = proc_stat(pid);
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu = (t1 - t0) as f64 / ticks_per_sec / idle.as_secs_f64() * 100.0;
    println!(
        "idle daemon: RSS {:.1} MiB, CPU {cpu:.2}% of one core over {}s",
        rss_kb as f64 / 1024.0,
        idle.as_secs()
    );

    let (mut stop, mut backup, mut apply, mut start, mut total) = (vec![], vec![], vec![], vec![], vec![]);
    for round in 1..=ROUNDS {
        rig.events.lock().expect("events").clear();
        store.publish(&build(round));
        let began = std::time::Instant::now();
        let replies = rig
            .call(request::Kind::Update(UpdateRequest { apply: true }))
            .await;
        let wall = began.elapsed();
        match replies.last().and_then(|r| r.kind.clone()) {
            Some(reply::Kind::Update(u)) if u.outcome() == UpdateOutcome::Applied => {}
            other => panic!("update: {other:?}"),
        }
        let up = rig
            .wait_event("build up", |e| e.kind == "update" && e.message.ends_with("is up"))
            .await;
        let v: serde_json::Value = serde_json::from_str(&up.json).expect("json");
        let t = &v["timings"];
        let ms = |k: &str| t[k].as_u64().expect("timing");
        println!(
            "round {round}: stop {} ms, backup {} ms, apply {} ms, start {} ms (update call {} ms, staging included)",
            ms("stop_ms"),
            ms("backup_ms"),
            ms("apply_ms"),
            ms("start_ms"),
            wall.as_millis()
        );
        stop.push(ms("stop_ms"));
        backup.push(ms("backup_ms"));
        apply.push(ms("apply_ms"));
        start.push(ms("start_ms"));
        total.push(ms("stop_ms") + ms("backup_ms") + ms("apply_ms") + ms("start_ms"));
    }
    println!(
        "median of {ROUNDS}: downtime {} ms = stop {} + backup {} + apply {} + start {} ({FILES} files changed, staged beforehand)",
        median(total),
        median(stop),
        median(backup),
        median(apply),
        median(start)
    );
    rig.terminate().await;
}
