//! Updates through the real daemon: the first install, an update that
//! succeeds (every step, in order, as events), and a new build that fails
//! its health window: rolled back, the world byte-identical to the backup,
//! and the build marked bad so it is not retried.

use std::collections::BTreeMap;
use std::path::Path;

use atlas_proto::runner::v1::{
    BackupListRequest, BackupRequest, UpdateOutcome, UpdateRequest, backup_request, reply, request,
};
use atlas_testkit::http::StaticServer;

use crate::rig::*;
use crate::store::{Spec, Store, f};

pub fn build(n: u32, standin: &str) -> Vec<Spec> {
    let mut v: Vec<Spec> = (0..5)
        .map(|i| {
            f(
                &format!("mods/mod{i}.jar"),
                format!("mod {i} of build {n}").as_bytes(),
            )
        })
        .collect();
    v.push(f("config/pack.toml", format!("build = {n}\n").as_bytes()));
    v.push(f("standin.toml", standin.as_bytes()));
    v
}

/// `[source]` and `[health]` for `store` served at `url`, with the given
/// announcement wait and health window.
pub fn source_table_with(url: &str, store: &Store, announce: &str, health_window: &str) -> String {
    format!(
        "[source]\nurl = \"{url}\"\npack = \"{}\"\nchannel = \"{}\"\nkeys = [\"{}\"]\nupdate_interval = \"1h\"\njitter = \"0s\"\nauto_apply = false\nprovision = false\nannounce = \"{announce}\"\n\n[health]\nwindow = \"{health_window}\"\npings = 3\n",
        crate::store::PACK,
        crate::store::CHANNEL,
        store.public().to_text(),
    )
}

/// Every file under `dir`, relative path → bytes.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// The files under `prefix/` inside a tar.zst archive.
fn archived(archive: &Path, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(archive).expect("archive");
    let dec = zstd::stream::read::Decoder::new(file).expect("zstd");
    let mut ar = tar::Archive::new(dec);
    let mut out = BTreeMap::new();
    for entry in ar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_owned();
        if let Some(rel) = path.strip_prefix(&format!("{prefix}/")) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read entry");
            out.insert(rel.to_owned(), bytes);
        }
    }
    out
}

async fn update_apply(rig: &Rig) -> atlas_proto::runner::v1::UpdateInfo {
    let replies = rig
        .call(request::Kind::Update(UpdateRequest { apply: true }))
        .await;
    match replies.last().and_then(|r| r.kind.clone()) {
        Some(reply::Kind::Update(u)) => u,
        other => panic!("update apply answered {other:?}; events {:#?}", rig.event_lines()),
    }
}

/// A daemon that installed build 1 from a fresh store on its first start
/// (autostart) and runs it.
async fn running_first_build(rcon: bool) -> (Store, StaticServer, Rig, atlas_proto::Sha256Digest) {
    running_first_build_with(rcon, "0s", "1500ms").await
}

/// [`running_first_build`] with the given announcement wait and health window.
pub async fn running_first_build_with(
    rcon: bool,
    announce: &str,
    health_window: &str,
) -> (Store, StaticServer, Rig, atlas_proto::Sha256Digest) {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let b1 = store.publish(&build(1, ""));
    let cfg = format!(
        "autostart = true\n{}\n{}",
        source_table_with(&srv.url(), &store, announce, health_window),
        server_table("")
    );
    let mut rig = Rig::new(&cfg, "", rcon);
    rig.start().await;
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b1.to_hex());
    (store, srv, rig, b1)
}

#[tokio::test]
async fn first_install_then_an_update_then_a_bad_build_rolled_back() {
    let (mut store, _srv, mut rig, _b1) = running_first_build(false).await;
    assert_eq!(
        std::fs::read(rig.server_dir.join("config/pack.toml")).expect("config"),
        b"build = 1\n"
    );

    rig.events.lock().expect("events").clear();

    // A good update: every step in order, the new build running.
    let b2 = store.publish(&build(2, ""));
    let u = update_apply(&rig).await;
    assert_eq!(u.outcome(), UpdateOutcome::Applied, "{u:?}");
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b2.to_hex());
    assert_eq!(
        std::fs::read(rig.server_dir.join("mods/mod3.jar")).expect("mod"),
        b"mod 3 of build 2"
    );
    let steps: Vec<String> = rig
        .events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| e.kind == "update.step")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.json).expect("json")["step"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        steps,
        [
            "announcing",
            "stopping",
            "backing-up",
            "applying",
            "starting",
            "health-check"
        ],
        "{:#?}",
        rig.event_lines()
    );
    rig.events.lock().expect("events").clear();

    // A bad build: it starts, damages the world, then crashes inside the health window.
    let b3 = store.publish(&build(3, "crash_after_ms = 400\ncorrupt_world_on_start = true\n"));
    let u = update_apply(&rig).await;
    assert_eq!(
        u.outcome(),
        UpdateOutcome::RolledBack,
        "{u:?}; {:#?}",
        rig.event_lines()
    );
    assert_eq!(u.target_build, b3.to_hex());
    let rollback = rig.wait_event("rollback", |e| e.kind == "rollback").await;
    let fields: serde_json::Value = serde_json::from_str(&rollback.json).expect("json");
    let backup_id = fields["backup"].as_str().expect("backup id").to_owned();
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b2.to_hex(), "the previous build runs again");
    assert_eq!(s.bad_build, b3.to_hex());
    assert_eq!(
        std::fs::read(rig.server_dir.join("mods/mod3.jar")).expect("mod"),
        b"mod 3 of build 2"
    );

    // The world is byte for byte the one archived before the update.
    let list = rig
        .call(request::Kind::Backup(BackupRequest {
            op: Some(backup_request::Op::List(BackupListRequest {})),
        }))
        .await;
    let Some(reply::Kind::Backups(list)) = list.last().and_then(|r| r.kind.clone()) else {
        panic!("backup list: {list:?}");
    };
    let backup = list
        .backups
        .iter()
        .find(|b| b.id == backup_id)
        .expect("the pre-update backup is listed");
    let in_archive = archived(Path::new(&backup.path), "world");
    assert!(!in_archive.is_empty(), "the backup holds the world");
    assert_eq!(tree(&rig.server_dir.join("world")), in_archive);

    // The bad build is not retried while the channel still names it.
    let u = update_apply(&rig).await;
    assert_eq!(u.outcome(), UpdateOutcome::SkippedBad, "{u:?}");
    assert_eq!(rig.status().await.build, b2.to_hex());

    rig.terminate().await;
}

#[tokio::test]
async fn backups_and_rollback_through_the_socket() {
    use atlas_proto::runner::v1::{BackupCreate, BackupRestore, RollbackRequest};

    let (mut store, _srv, mut rig, b1) = running_first_build(true).await;
    let b2 = store.publish(&build(2, ""));
    assert_eq!(update_apply(&rig).await.outcome(), UpdateOutcome::Applied);

    // A hot backup of the running server: saving paused, flushed, resumed.
    let r = rig
        .call(request::Kind::Backup(BackupRequest {
            op: Some(backup_request::Op::Create(BackupCreate {
                label: "before a test".into(),
            })),
        }))
        .await;
    let Some(reply::Kind::Backup(hot)) = r.last().and_then(|r| r.kind.clone()) else {
        panic!("backup create: {r:?}");
    };
    assert_eq!((hot.kind.as_str(), hot.label.as_str()), ("hot", "before a test"));
    let log = std::fs::read_to_string(rig.server_dir.join("logs/latest.log")).expect("server log");
    let (off, saved, on) = (
        log.find("Automatic saving is now disabled").expect("save-off"),
        log.rfind("Saved the game").expect("save-all flush"),
        log.rfind("Automatic saving is now enabled").expect("save-on"),
    );
    assert!(off < saved && saved < on, "{log}");
    assert_eq!(rig.status().await.state, "running");

    // `rollback`: back to build 1, with a backup first, and running again.
    let r = rig.call(request::Kind::Rollback(RollbackRequest {})).await;
    assert!(
        matches!(r.last().and_then(|r| r.kind.clone()), Some(reply::Kind::Done(_))),
        "{r:?}; {:#?}",
        rig.event_lines()
    );
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b1.to_hex());
    assert_eq!(
        std::fs::read(rig.server_dir.join("config/pack.toml")).expect("config"),
        b"build = 1\n"
    );

    // Restoring the hot backup brings build 2's files back, and the server runs again.
    let r = rig
        .call(request::Kind::Backup(BackupRequest {
            op: Some(backup_request::Op::Restore(BackupRestore { id: hot.id.clone() })),
        }))
        .await;
    assert!(
        matches!(r.last().and_then(|r| r.kind.clone()), Some(reply::Kind::Done(_))),
        "{r:?}"
    );
    let s = rig.wait_state("running").await;
    assert_eq!(
        std::fs::read(rig.server_dir.join("config/pack.toml")).expect("config"),
        b"build = 2\n"
    );
    assert_eq!(s.build, b2.to_hex(), "the install state came back with the files");
    assert!(rig.terminate().await.success());
}
