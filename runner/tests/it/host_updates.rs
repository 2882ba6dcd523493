//! Updates as a host lives them, through the real daemon: typos that must
//! not stop anything, the answers after an update (exit code, a build
//! marked bad, the pack's version), host edits that never restart the
//! server, what backups leave out, readable timings, download progress, a
//! second updater on the directory, and the pack's `[server]` settings.

use std::path::Path;
use std::process::Output;

use atlas_proto::Sha256Digest;
use atlas_proto::runner::v1::{
    BackupRequest, BackupRestore, RollbackRequest, UpdateInfo, UpdateOutcome, UpdateRequest, backup_request,
    reply, request,
};
use atlas_proto::v1::{Manifest, ServerLaunch};
use atlas_testkit::http::StaticServer;

use crate::rig::*;
use crate::store::{PACK, Spec, Store};
use crate::updates::{build, running_first_build_with, source_table_with};

/// Publishes `specs` with the manifest changed by `edit` (the pack's
/// version, its `[server]` settings) at the next pointer version.
pub fn publish_with(store: &mut Store, specs: &[Spec], edit: impl FnOnce(&mut Manifest)) -> Sha256Digest {
    for s in specs {
        store.put_blob(&s.content);
    }
    let mut m = store.manifest_for(specs);
    edit(&mut m);
    let bytes = atlas_proto::manifest::encode(&m).expect("encode");
    let (build, size) = store.put_manifest_bytes(PACK, &bytes);
    store.version += 1;
    store.put_pointer(&store.payload(store.version, build, size));
    build
}

async fn cli(rig: &Rig, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_atlas-runner"))
        .arg("--socket")
        .arg(&rig.socket)
        .args(args)
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("atlas-runner finished within the safety limit")
        .expect("run atlas-runner")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn update(rig: &Rig, apply: bool) -> UpdateInfo {
    let replies = rig.call(request::Kind::Update(UpdateRequest { apply })).await;
    match replies.last().and_then(|r| r.kind.clone()) {
        Some(reply::Kind::Update(u)) => u,
        other => panic!("update answered {other:?}; events {:#?}", rig.event_lines()),
    }
}

fn error_of(replies: &[atlas_proto::runner::v1::Reply]) -> atlas_proto::runner::v1::Error {
    match replies.last().and_then(|r| r.kind.clone()) {
        Some(reply::Kind::Error(e)) => e,
        other => panic!("an error expected: {other:?}"),
    }
}

#[tokio::test]
async fn a_typo_in_restore_or_a_rollback_with_nothing_to_go_back_to_stops_nothing() {
    let (_store, _srv, mut rig, _b1) = running_first_build_with(false, "0s", "1s").await;
    let before = rig.status().await;
    let seen = rig.events.lock().expect("events").len();

    let r = rig
        .call(request::Kind::Backup(BackupRequest {
            op: Some(backup_request::Op::Restore(BackupRestore {
                id: "20250101-000000-typo".into(),
            })),
        }))
        .await;
    let e = error_of(&r);
    assert_eq!(e.code, "refused", "{e:?}");
    assert!(
        e.message.contains("no backup `20250101-000000-typo`"),
        "{}",
        e.message
    );

    let r = rig.call(request::Kind::Rollback(RollbackRequest {})).await;
    let e = error_of(&r);
    assert_eq!(e.code, "refused", "{e:?}");
    assert!(
        e.message.starts_with("nothing to roll back to: "),
        "{}",
        e.message
    );
    assert_eq!(
        e.message.matches("no earlier build").count(),
        1,
        "said once: {}",
        e.message
    );
    let o = cli(&rig, &["rollback"]).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));

    let after = rig.status().await;
    assert_eq!((after.state.as_str(), after.pid), ("running", before.pid));
    let later = rig.event_lines()[seen..].to_vec();
    assert!(
        !later
            .iter()
            .any(|l| l.starts_with("state:") || l.starts_with("update.step")),
        "something moved: {later:#?}"
    );
    rig.terminate().await;
}

#[tokio::test]
async fn after_an_update_the_answers_are_right_exit_code_bad_build_and_pack_version() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let b1 = publish_with(&mut store, &build(1, ""), |m| m.version = "1.0.1".into());
    let cfg = format!(
        "autostart = true\n{}\n{}",
        source_table_with(&srv.url(), &store, "0s", "1500ms"),
        server_table("")
    );
    let mut rig = Rig::new(&cfg, "", false);
    rig.start().await;
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b1.to_hex());
    assert_eq!(
        (s.version.as_str(), s.pointer_version),
        ("1.0.1", 1),
        "the pack's version, not the channel's number"
    );
    let o = cli(&rig, &["status"]).await;
    assert!(
        text(&o.stdout).contains("version:   1.0.1 (channel version 1)"),
        "{}",
        text(&o.stdout)
    );

    // A bad build: `update apply` rolls back and exits 5.
    let b2 = publish_with(&mut store, &build(2, "crash_after_ms = 300\n"), |m| {
        m.version = "1.0.2".into()
    });
    let o = cli(&rig, &["update", "apply"]).await;
    assert_eq!(o.status.code(), Some(5), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("(version 1.0.2) failed its health window"),
        "{}",
        text(&o.stdout)
    );
    let s = rig.wait_state("running").await;
    assert_eq!(
        (s.bad_build.as_str(), s.version.as_str()),
        (b2.to_hex().as_str(), "1.0.1")
    );

    // `update check` does not offer what `apply` would skip.
    let u = update(&rig, false).await;
    assert_eq!(u.outcome(), UpdateOutcome::SkippedBad, "{u:?}");
    assert_eq!(u.target_pack_version, "1.0.2");
    let o = cli(&rig, &["update", "check"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("is marked bad"), "{}", text(&o.stdout));
    rig.terminate().await;
}

#[tokio::test]
async fn a_host_edit_of_a_managed_file_never_updates_or_restarts_the_same_build() {
    let (_store, _srv, mut rig, b1) = running_first_build_with(false, "0s", "1s").await;
    let pid = rig.status().await.pid;
    // The host edits a file the build manages.
    let edited = rig.server_dir.join("config/pack.toml");
    std::fs::write(&edited, b"build = 1\n# the host's tuning\n").expect("edit");
    let seen = rig.events.lock().expect("events").len();

    let u = update(&rig, false).await;
    assert_eq!(u.outcome(), UpdateOutcome::Current, "{u:?}");
    assert!(u.message.contains("config/pack.toml"), "{}", u.message);
    let u = update(&rig, true).await;
    assert_eq!(u.outcome(), UpdateOutcome::Current, "{u:?}");
    assert!(u.message.contains("kept (on_modified = keep)"), "{}", u.message);
    // Recorded: the next check is plainly current.
    let u = update(&rig, true).await;
    assert_eq!(u.outcome(), UpdateOutcome::Current, "{u:?}");

    let s = rig.status().await;
    assert_eq!(
        (s.state.as_str(), s.pid, s.build.as_str()),
        ("running", pid, b1.to_hex().as_str())
    );
    let later = rig.event_lines()[seen..].to_vec();
    assert!(
        !later
            .iter()
            .any(|l| l.starts_with("update.step") || l.starts_with("state:")),
        "{later:#?}"
    );
    assert_eq!(
        std::fs::read(&edited).expect("read"),
        b"build = 1\n# the host's tuning\n"
    );
    rig.terminate().await;
}

/// Paths in a tar.zst archive.
fn archive_paths(archive: &Path) -> Vec<String> {
    let dec = zstd::stream::read::Decoder::new(std::fs::File::open(archive).expect("open")).expect("zstd");
    let mut ar = tar::Archive::new(dec);
    ar.entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn staged_downloads_stay_out_of_backups_and_a_rollback_clears_them_and_timings_read_well() {
    let (mut store, _srv, mut rig, _b1) = running_first_build_with(false, "0s", "1500ms").await;
    rig.events.lock().expect("events").clear();
    // A good update: timings for people, progress as events.
    store.publish(&build(2, ""));
    let o = cli(&rig, &["update", "apply"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("server down ") && out.contains("(stop "), "{out}");
    assert!(!out.contains("Timings {") && !out.contains("_ms"), "{out}");
    let progress: Vec<serde_json::Value> = rig
        .events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| e.kind == "update.progress")
        .map(|e| serde_json::from_str(&e.json).expect("json"))
        .collect();
    let (first, last) = (
        progress.first().expect("a start"),
        progress.last().expect("an end"),
    );
    assert_eq!(first["bytes_done"], 0);
    let total = first["bytes_total"].as_u64().expect("total");
    let expected: u64 = build(2, "")
        .iter()
        .filter(|s| s.path != "standin.toml")
        .map(|s| s.content.len() as u64)
        .sum();
    assert_eq!(total, expected, "the new blobs of build 2");
    assert_eq!(last["bytes_done"].as_u64(), Some(total));
    assert!(rig.status().await.staging.is_none());

    // A bad build: its staged blobs are not in the backup taken before it,
    // and are gone after the rollback.
    store.publish(&build(3, "crash_after_ms = 300\n"));
    let u = update(&rig, true).await;
    assert_eq!(u.outcome(), UpdateOutcome::RolledBack, "{u:?}");
    let rollback = rig.wait_event("rollback", |e| e.kind == "rollback").await;
    let id = serde_json::from_str::<serde_json::Value>(&rollback.json).expect("json")["backup"]
        .as_str()
        .expect("backup id")
        .to_owned();
    let archive = rig.backup_dir.join(format!("{id}.tar.zst"));
    let paths = archive_paths(&archive);
    assert!(paths.iter().any(|p| p.starts_with("mods/")), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with(".atlas/prefetch")),
        "staged blobs in the backup: {paths:?}"
    );
    assert!(
        !rig.server_dir.join(".atlas/prefetch").exists(),
        "the bad build's staged blobs are left behind"
    );
    rig.terminate().await;
}

#[tokio::test]
async fn a_second_updater_on_the_directory_is_named_with_the_one_to_remove() {
    let (mut store, _srv, mut rig, _b1) = running_first_build_with(false, "0s", "1s").await;
    let lock = rig.server_dir.join(".atlas/lock");
    // An atlas-fetcher timer ran on the directory after the daemon started.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    std::fs::write(
        &lock,
        format!("{{\"program\":\"atlas-fetcher\",\"pid\":4242,\"since_unix\":{now}}}\n"),
    )
    .expect("lock record");
    store.publish(&build(2, ""));
    update(&rig, true).await;
    let e = rig.wait_event("two updaters", |e| e.kind == "updaters").await;
    assert!(
        e.message.contains("atlas-fetcher (pid 4242)") && e.message.contains("remove the atlas-fetcher"),
        "{}",
        e.message
    );

    // Another process holding the lock: the error names it.
    let held = atlas_fetcher::lock::DirLock::acquire(&atlas_fetcher::state::StatePaths::new(&rig.server_dir))
        .expect("the test takes the lock");
    store.publish(&build(3, ""));
    let r = rig
        .call(request::Kind::Update(UpdateRequest { apply: true }))
        .await;
    let err = error_of(&r);
    assert_eq!(err.kind, "locked", "{err:?}");
    assert!(
        err.message.contains(&format!("(pid {})", std::process::id())),
        "{}",
        err.message
    );
    drop(held);
    rig.terminate().await;
}

#[tokio::test]
async fn the_packs_server_settings_reach_the_jvm_and_the_host_overrides_them() {
    let jar = crate::common::standin_jar();
    let java_major =
        atlas_runner::java::java_major(Path::new("java")).expect("a `java` on PATH (CI installs one)");
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let b1 = publish_with(&mut store, &build(1, ""), |m| {
        m.version = "2.0.0".into();
        m.server = Some(ServerLaunch {
            java_major,
            memory_min: "32M".into(),
            memory_max: "64M".into(),
            jvm_args: vec!["-Datlas.pack=yes".into()],
            main_jar: String::new(),
        });
    });
    // The host overrides the memory only.
    let cfg = format!(
        "autostart = true\n{}\n[server]\neula = true\nmemory = \"96M\"\nstart_timeout = \"60s\"\nstop_timeout = \"10s\"\nterm_timeout = \"5s\"\nping_interval = \"1s\"\n",
        source_table_with(&srv.url(), &store, "0s", "1s"),
    );
    let mut rig = Rig::new(&cfg, "", false);
    std::fs::copy(jar, rig.server_dir.join("standin.jar")).expect("copy the jar");
    let launch = atlas_fetcher::provision::LaunchDescription {
        format: 1,
        minecraft: "1.21.1".into(),
        loader: "vanilla".into(),
        loader_version: String::new(),
        java_major: 8,
        jar: Some("standin.jar".into()),
        args_file: None,
    };
    std::fs::create_dir_all(rig.server_dir.join(".atlas")).expect(".atlas");
    std::fs::write(
        rig.server_dir.join(".atlas/launch.json"),
        serde_json::to_vec(&launch).expect("json"),
    )
    .expect("launch.json");
    rig.start().await;
    let s = rig.wait_state("running").await;
    assert_eq!(s.build, b1.to_hex());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.pid)).expect("cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args.contains(&"-Datlas.pack=yes".to_string()), "{args:?}");
    assert!(
        args.contains(&"-Xmx96M".to_string()) && !args.contains(&"-Xmx64M".to_string()),
        "{args:?}"
    );
    let origin = |name: &str| {
        let l = s
            .launch
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", s.launch));
        (l.value.clone(), l.origin.clone())
    };
    assert_eq!(origin("java"), (java_major.to_string(), "pack".to_string()));
    assert_eq!(origin("memory"), ("96M".to_string(), "runner config".to_string()));
    assert_eq!(
        origin("jvm_args"),
        ("-Datlas.pack=yes".to_string(), "pack".to_string())
    );
    let o = cli(&rig, &["status"]).await;
    assert!(
        text(&o.stdout).contains("  memory:   96M  (from the runner config)"),
        "{}",
        text(&o.stdout)
    );
    rig.terminate().await;
}
