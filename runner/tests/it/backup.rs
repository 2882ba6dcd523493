//! Backups: archive round trips, restore semantics, the hot-backup console sequence, retention,
//! refusal of malicious archives and upload to the in-process S3 server.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use atlas_runner::backup::{
    BackupError, BackupKind, BackupSettings, Backups, ConsoleError, S3BackupSettings, S3Credentials,
    ServerConsole,
};
use sha2::{Digest as _, Sha256};

/// Everything observable about a tree: type, mode, content, link target, file mtime.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let m = fs::symlink_metadata(&p).expect("meta");
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("link {}", fs::read_link(&p).expect("link").display()),
                );
            } else if m.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                walk(root, &p, out);
            } else {
                let hash = hex::encode(Sha256::digest(fs::read(&p).expect("read")));
                let mtime = m
                    .modified()
                    .expect("mtime")
                    .duration_since(UNIX_EPOCH)
                    .expect("epoch")
                    .as_secs();
                out.insert(rel, format!("file {mode:o} {mtime} {hash}"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, bytes).expect("write");
}

fn set_mtime(path: &Path, secs: u64) {
    fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}

/// A server directory `<tmp>/server` with a varied tree.
fn server(tmp: &Path) -> PathBuf {
    let s = tmp.join("server");
    write(&s.join("server.properties"), b"motd=hello\n");
    write(&s.join("world/region/r.0.0.mca"), &vec![7u8; 300_000]);
    write(&s.join("world/level.dat"), b"level");
    fs::create_dir_all(s.join("empty/deeper")).expect("mkdir");
    write(&s.join("start.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(s.join("start.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    write(&s.join("readonly.txt"), b"ro");
    fs::set_permissions(s.join("readonly.txt"), fs::Permissions::from_mode(0o444)).expect("chmod");
    let long = "d".repeat(80);
    write(
        &s.join(format!("{long}/{long}/file-with-a-long-path.json")),
        b"{}",
    );
    symlink("world/level.dat", s.join("level-link")).expect("symlink");
    symlink("../region", s.join("world/region-link")).expect("symlink");
    for p in ["server.properties", "world/level.dat", "start.sh"] {
        set_mtime(&s.join(p), 1_600_000_000);
    }
    s
}

fn settings() -> BackupSettings {
    BackupSettings::default()
}

#[tokio::test]
async fn an_interrupted_backup_stops_and_leaves_no_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = server(tmp.path());
    let flag = Arc::new(AtomicBool::new(false));
    let backups = Backups::new(settings(), s.clone())
        .expect("backups")
        .with_interrupt(flag.clone());
    let kept = backups
        .create(BackupKind::Cold, "kept", None)
        .await
        .expect("not interrupted yet");
    // The daemon shuts down: the next archive stops before its first entry.
    flag.store(true, Ordering::SeqCst);
    let e = backups
        .create(BackupKind::Cold, "cut", None)
        .await
        .expect_err("interrupted");
    assert!(matches!(e, BackupError::Interrupted), "{e}");
    let mut left: Vec<String> = fs::read_dir(backups.dir())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let want = [format!("{}.json", kept.id), format!("{}.tar.zst", kept.id)];
    assert_eq!(left, want, "no partial archive, no sidecar");
    assert_eq!(backups.list().expect("list").len(), 1);
}

#[tokio::test]
async fn round_trip_is_byte_identical() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = server(tmp.path());
    let backups = Backups::new(settings(), s.clone()).expect("backups");
    assert_eq!(backups.dir(), tmp.path().join("backups/server"));
    let before = tree(&s);
    let info = backups
        .create(BackupKind::Cold, "before", None)
        .await
        .expect("backup");
    assert!(info.id.ends_with("-cold"), "{}", info.id);
    assert_eq!(info.size_bytes, fs::metadata(&info.path).expect("archive").len());
    assert_eq!(backups.list().expect("list"), vec![info.clone()]);

    write(&s.join("world/level.dat"), b"changed");
    fs::remove_file(s.join("server.properties")).expect("rm");
    fs::set_permissions(s.join("start.sh"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::remove_dir_all(s.join("empty")).expect("rm");
    fs::remove_file(s.join("level-link")).expect("rm");
    write(&s.join("world/new-region.mca"), b"new");
    assert_ne!(tree(&s), before);

    backups.restore(&info.id).await.expect("restore");
    assert_eq!(tree(&s), before);
    assert!(!s.join(".atlas-restore").exists());
}

#[tokio::test]
async fn restore_removes_new_files_but_keeps_excluded_ones() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = server(tmp.path());
    write(&s.join(".atlas/install.json"), b"old install");
    let mut st = settings();
    st.dir = Some(PathBuf::from("backups")); // inside the server directory: excluded
    st.exclude = vec!["keep-me".into(), "world/*.lock".into()];
    let backups = Backups::new(st, s.clone()).expect("backups");
    let info = backups
        .create(BackupKind::Manual, "m", None)
        .await
        .expect("backup");
    let before = tree(&s);

    write(&s.join("new.txt"), b"new");
    write(&s.join("world/new-dir/x"), b"x");
    write(&s.join(".atlas/install.json"), b"new install");
    write(&s.join("logs/latest.log"), b"why it crashed");
    write(&s.join("keep-me/notes"), b"notes");
    write(&s.join("world/session.lock"), b"lock");
    write(&s.join(".atlas/cache/blob"), b"blob");
    write(&s.join(".atlas/staging/part"), b"part");

    backups.restore(&info.id).await.expect("restore");
    for gone in ["new.txt", "world/new-dir"] {
        assert!(!s.join(gone).exists(), "{gone} should be gone");
    }
    assert_eq!(
        fs::read(s.join(".atlas/install.json")).expect("install"),
        b"old install"
    );
    for (kept, content) in [
        ("logs/latest.log", &b"why it crashed"[..]),
        ("keep-me/notes", b"notes"),
        ("world/session.lock", b"lock"),
        (".atlas/cache/blob", b"blob"),
        (".atlas/staging/part", b"part"),
    ] {
        assert_eq!(fs::read(s.join(kept)).expect(kept), content, "{kept}");
    }
    // The archive itself is not in the archive, and survives the restore.
    assert!(info.path.starts_with(s.join("backups")));
    assert_eq!(backups.list().expect("list").len(), 1);
    let mut after = tree(&s);
    after.retain(|k, _| {
        ![
            "logs",
            "keep-me",
            "world/session.lock",
            ".atlas/cache",
            ".atlas/staging",
            "backups",
        ]
        .iter()
        .any(|p| k == p || k.starts_with(&format!("{p}/")))
    });
    let mut before = before;
    before.retain(|k, _| k != "backups" && !k.starts_with("backups/"));
    assert_eq!(after, before);
}

/// Records the commands it gets; can fail or hang `save-all flush` and fail `save-on`.
#[derive(Default)]
struct FakeConsole {
    log: Mutex<Vec<String>>,
    flush_fails: bool,
    flush_hangs: bool,
    save_on_fails: bool,
}

impl FakeConsole {
    fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

#[async_trait]
impl ServerConsole for FakeConsole {
    async fn command(&self, cmd: &str) -> Result<String, ConsoleError> {
        self.log.lock().expect("log").push(cmd.to_owned());
        if cmd == "save-on" && self.save_on_fails {
            return Err(ConsoleError("connection lost".into()));
        }
        Ok(String::new())
    }

    async fn save_all_flush(&self, _timeout: Duration) -> Result<(), ConsoleError> {
        self.log.lock().expect("log").push("save-all flush".into());
        if self.flush_hangs {
            std::future::pending::<()>().await;
        }
        if self.flush_fails {
            return Err(ConsoleError("no reply".into()));
        }
        Ok(())
    }
}

const SEQUENCE: [&str; 3] = ["save-off", "save-all flush", "save-on"];

#[tokio::test]
async fn hot_backup_pauses_saving_and_always_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = server(tmp.path());
    let mut st = settings();
    st.save_timeout = Duration::from_millis(100);
    let backups = Backups::new(st, s).expect("backups");

    let ok = FakeConsole::default();
    let info = backups
        .create(BackupKind::Hot, "hot", Some(&ok))
        .await
        .expect("hot backup");
    assert_eq!(info.kind, BackupKind::Hot);
    assert_eq!(ok.log(), SEQUENCE);

    // Without a console a hot backup is refused.
    assert!(matches!(
        backups.create(BackupKind::Hot, "x", None).await,
        Err(BackupError::NoConsole)
    ));

    for console in [
        FakeConsole {
            flush_hangs: true,
            ..Default::default()
        },
        FakeConsole {
            flush_fails: true,
            ..Default::default()
        },
    ] {
        let err = backups
            .create(BackupKind::Hot, "hot", Some(&console))
            .await
            .expect_err("flush fails");
        assert!(
            matches!(
                err,
                BackupError::Console {
                    command: "save-all flush",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(console.log(), SEQUENCE);
    }

    let console = FakeConsole {
        save_on_fails: true,
        ..Default::default()
    };
    let err = backups
        .create(BackupKind::Hot, "hot", Some(&console))
        .await
        .expect_err("save-on fails");
    assert!(matches!(err, BackupError::SaveOn { .. }), "{err}");
    assert!(err.to_string().contains("save-on"), "{err}");

    // Archiving fails: the backup directory became a file.
    fs::remove_dir_all(backups.dir()).expect("rm");
    fs::write(backups.dir(), b"not a directory").expect("write");
    let console = FakeConsole::default();
    let err = backups
        .create(BackupKind::Hot, "hot", Some(&console))
        .await
        .expect_err("archive fails");
    assert!(matches!(err, BackupError::Io { .. }), "{err}");
    assert_eq!(console.log(), SEQUENCE);
}

#[tokio::test]
async fn retention_by_count_and_age_keeps_the_newest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = tmp.path().join("server");
    write(&s.join("a"), b"a");
    let mut st = settings();
    st.keep_count = 3;
    let backups = Backups::new(st.clone(), s.clone()).expect("backups");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            backups
                .create(BackupKind::Cold, &format!("n{i}"), None)
                .await
                .expect("backup")
                .id,
        );
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids are unique and increase with time");
    let listed: Vec<_> = backups.list().expect("list").into_iter().map(|b| b.id).collect();
    assert_eq!(listed, ids.iter().rev().cloned().collect::<Vec<_>>());

    let mut deleted = backups.prune().expect("prune");
    deleted.sort();
    assert_eq!(deleted, ids[..2]);
    assert_eq!(backups.list().expect("list").len(), 3);
    assert!(backups.prune().expect("prune again").is_empty());

    // Everything is too old, but the newest stays.
    st.keep_age = Duration::ZERO;
    let backups = Backups::new(st, s).expect("backups");
    let old = SystemTime::now() + Duration::from_secs(2);
    while SystemTime::now() < old {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(backups.prune().expect("prune").len(), 2);
    let left: Vec<_> = backups.list().expect("list").into_iter().map(|b| b.id).collect();
    assert_eq!(left, vec![ids[4].clone()]);
}

/// A raw tar entry: path, type, link target.
type Forged = (&'static str, tar::EntryType, &'static str);

/// Writes `<dir>/<id>.tar.zst` from raw tar headers (which may hold anything) and its sidecar.
fn forge(dir: &Path, id: &str, entries: &[Forged]) {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, link) in entries {
        let mut h = tar::Header::new_old();
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        let linkname = &mut h.as_old_mut().linkname;
        linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"evil"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        builder.append(&h, data).expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    fs::write(dir.join(format!("{id}.tar.zst")), &zst).expect("archive");
    let sidecar = serde_json::json!({
        "format": 1, "id": id, "label": "forged", "kind": "manual", "created_unix": 1,
        "size_bytes": zst.len(), "sha256": hex::encode(Sha256::digest(&zst)), "entries": entries.len(),
    });
    fs::write(dir.join(format!("{id}.json")), sidecar.to_string()).expect("sidecar");
}

#[tokio::test]
async fn malicious_archives_are_refused_with_nothing_changed() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let tmp = tempfile::tempdir().expect("tmp");
    let s = server(tmp.path());
    let backups = Backups::new(settings(), s.clone()).expect("backups");
    let before = tree(&s);
    let cases: [(&str, Vec<Forged>); 7] = [
        (
            "20200101T000000Z-dotdot",
            vec![("ok.txt", Regular, ""), ("../x", Regular, "")],
        ),
        ("20200101T000001Z-nested", vec![("a/../../x", Regular, "")]),
        (
            "20200101T000002Z-absolute",
            vec![("/tmp/atlas-evil-absolute", Regular, "")],
        ),
        (
            "20200101T000003Z-linkout",
            vec![("out", Symlink, "../../outside")],
        ),
        ("20200101T000004Z-linkabs", vec![("etc", Symlink, "/etc")]),
        (
            "20200101T000005Z-below",
            vec![("d", Directory, ""), ("l", Symlink, "d"), ("l/x", Regular, "")],
        ),
        (
            "20200101T000006Z-hardlink",
            vec![("h", Link, "server.properties")],
        ),
    ];
    for (id, entries) in &cases {
        forge(backups.dir(), id, entries);
        let err = backups.restore(id).await.expect_err(id);
        assert!(matches!(err, BackupError::Unsafe { .. }), "{id}: {err}");
        assert_eq!(tree(&s), before, "{id} changed the server directory");
        assert!(!tmp.path().join("x").exists() && !tmp.path().join("backups/x").exists());
    }
    assert!(!Path::new("/tmp/atlas-evil-absolute").exists());

    // A damaged archive (hash mismatch) is refused too.
    let info = backups
        .create(BackupKind::Cold, "good", None)
        .await
        .expect("backup");
    let mut bytes = fs::read(&info.path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&info.path, &bytes).expect("write");
    write(&s.join("new.txt"), b"new");
    let before = tree(&s);
    let err = backups.restore(&info.id).await.expect_err("damaged");
    assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
    assert_eq!(tree(&s), before);

    let err = backups
        .restore("20990101T000000Z-cold")
        .await
        .expect_err("missing");
    assert!(matches!(err, BackupError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn uploads_to_s3_with_sigv4() {
    use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};
    let s3 = S3Server::start("backups").expect("s3");
    let tmp = tempfile::tempdir().expect("tmp");
    let s = server(tmp.path());
    let mut st = settings();
    st.s3 = Some(S3BackupSettings {
        bucket: "backups".into(),
        prefix: "/hosts/one/".into(),
        endpoint: Some(s3.endpoint()),
        region: Some(REGION.into()),
        credentials: Some(S3Credentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        }),
    });
    let backups = Backups::new(st, s).expect("backups");
    let info = backups
        .create(BackupKind::Cold, "up", None)
        .await
        .expect("backup");
    let archive = s3
        .object(&format!("hosts/one/{}.tar.zst", info.id))
        .expect("archive uploaded");
    assert_eq!(archive, fs::read(&info.path).expect("local"));
    let sidecar = s3
        .object(&format!("hosts/one/{}.json", info.id))
        .expect("sidecar uploaded");
    let sidecar: serde_json::Value = serde_json::from_slice(&sidecar).expect("json");
    assert_eq!(sidecar["id"], info.id.as_str());
    let puts: Vec<_> = s3.requests().into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2, "{puts:#?}");
    assert!(puts.iter().all(|r| r.signed() && r.status == 200), "{puts:#?}");
    assert!(
        s3.streaming_requests().is_empty(),
        "no aws-chunked uploads (R2 rejects them)"
    );

    // A wrong key: the backup is still written locally, and an explicit upload says why.
    let mut st = settings();
    st.s3 = Some(S3BackupSettings {
        bucket: "backups".into(),
        prefix: String::new(),
        endpoint: Some(s3.endpoint()),
        region: Some(REGION.into()),
        credentials: Some(S3Credentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: "wrong".into(),
        }),
    });
    let backups = Backups::new(st, tmp.path().join("server")).expect("backups");
    let info = backups
        .create(BackupKind::Cold, "local only", None)
        .await
        .expect("backup");
    assert!(info.path.is_file());
    let err = backups.upload(&info).await.expect_err("bad credentials");
    assert!(matches!(err, BackupError::Upload { .. }), "{err}");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
}

#[test]
fn settings_parse_with_defaults_and_refuse_unknown_keys() {
    let st: BackupSettings = toml::from_str(
        "keep_count = 4\nkeep_age = \"2days\"\nhot_interval = \"30m\"\n[s3]\nbucket = \"b\"\n",
    )
    .expect("parse");
    assert_eq!(st.keep_count, 4);
    assert_eq!(st.keep_age, Duration::from_secs(2 * 86400));
    assert_eq!(st.hot_interval, Some(Duration::from_secs(1800)));
    assert_eq!(st.save_timeout, Duration::from_secs(60));
    assert_eq!(st.zstd_level, 3);
    assert_eq!(st.s3.expect("s3").bucket, "b");
    assert!(toml::from_str::<BackupSettings>("keep = 1").is_err());
    let st = BackupSettings::default();
    assert_eq!(
        st.resolved_dir(Path::new("/srv/mc/one")).expect("dir"),
        Path::new("/srv/mc/backups/one")
    );
}

#[tokio::test]
async fn an_interrupted_swap_is_completed_on_the_next_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = tmp.path().join("server");
    // Crashed while moving the current entries aside: `world` is in `old`, `stale.txt` not yet.
    write(&s.join("stale.txt"), b"stale");
    write(&s.join("logs/latest.log"), b"log");
    write(&s.join(".atlas-restore/old/world/level.dat"), b"current");
    write(&s.join(".atlas-restore/old/world/session.lock"), b"lock");
    write(&s.join(".atlas-restore/new/world/level.dat"), b"restored");
    write(&s.join(".atlas-restore/new/restored.txt"), b"restored");
    write(
        &s.join(".atlas-restore/journal"),
        b"swap-out\n20261122T083000Z-cold.tar.zst\n",
    );
    let mut st = settings();
    st.exclude = vec!["world/session.lock".into()];
    Backups::new(st.clone(), s.clone()).expect("recovers");
    let mut expected = BTreeMap::new();
    for (p, c) in [
        ("logs/latest.log", "log"),
        ("restored.txt", "restored"),
        ("world/level.dat", "restored"),
        ("world/session.lock", "lock"),
    ] {
        expected.insert(p.to_owned(), c.to_owned());
    }
    let mut actual = BTreeMap::new();
    for (k, v) in tree(&s) {
        if v.starts_with("file") {
            actual.insert(
                k.clone(),
                String::from_utf8(fs::read(s.join(&k)).expect("read")).expect("utf8"),
            );
        }
    }
    assert_eq!(actual, expected);
    assert!(!s.join(".atlas-restore").exists());

    // Scratch space of a restore that crashed before its swap is just removed.
    write(&s.join(".atlas-restore/new/half-extracted"), b"x");
    Backups::new(st, s.clone()).expect("cleans up");
    assert!(!s.join(".atlas-restore").exists());
    assert!(!s.join("half-extracted").exists());
}

/// The futures can be boxed as `dyn Future + Send` with borrowed arguments, as the supervisor does.
#[allow(dead_code)]
fn futures_are_send<'a>(
    backups: &'a Backups,
    console: &'a dyn ServerConsole,
    label: &'a str,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let _ = backups.create(BackupKind::Hot, label, Some(console)).await;
        let _ = backups.create(BackupKind::Cold, label, None).await;
        let _ = backups.restore(label).await;
        if let Ok(list) = backups.list() {
            for b in &list {
                let _ = backups.upload(b).await;
            }
        }
    })
}
