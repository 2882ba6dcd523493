//! The control socket cannot be turned against the operator (issue 17,
//! item 8): idle connections never lock `atlas-runner status` out, an idle
//! connection is closed after the idle timeout, and a socket directory that
//! others may write to is made safe before binding. Each test also checks
//! that nothing outside its directory changed.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atlas_proto::Limits;
use atlas_runner::ipc::{self, ServeOptions};
use tokio::io::AsyncReadExt as _;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use crate::rig::*;

/// Every entry under `dir` (recursively): relative path → (mode, size, mtime, bytes).
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, u64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p
                .strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let bytes = if m.is_file() {
                std::fs::read(&p).expect("read")
            } else {
                Vec::new()
            };
            out.insert(rel, (m.mode(), m.len(), m.mtime(), bytes));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// A sibling directory with a few files, to check nothing outside changed.
fn sibling(root: &Path) -> std::path::PathBuf {
    let s = root.join("sibling");
    std::fs::create_dir_all(s.join("sub")).expect("mkdir");
    std::fs::write(s.join("a.txt"), b"keep").expect("write");
    std::fs::write(s.join("sub/b.txt"), b"keep too").expect("write");
    s
}

#[tokio::test]
async fn sixty_four_idle_connections_do_not_lock_the_admin_out() {
    let mut rig = Rig::new("", "", false);
    let outside = sibling(rig.tmp.path());
    let before = snapshot(&outside);
    rig.start().await;
    // A stuck client (or a hostile local user) opens every connection slot
    // and sends nothing.
    let mut idle = Vec::new();
    for _ in 0..Limits::DEFAULT.ipc_connections {
        idle.push(UnixStream::connect(&rig.socket).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_atlas-runner"))
            .arg("--socket")
            .arg(&rig.socket)
            .arg("status")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("status answered in time")
    .expect("run atlas-runner");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("state:     stopped"), "{out}");
    // The connection idle the longest made room: it was closed.
    let mut first = idle.remove(0);
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, first.read(&mut buf))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0, "the oldest idle connection is closed");
    rig.terminate().await;
    assert_eq!(snapshot(&outside), before, "something outside changed");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let outside = sibling(dir.path());
    let before = snapshot(&outside);
    let path = dir.path().join("run/runner.sock");
    let listener = ipc::bind(&path).expect("bind");
    let handler = Arc::new(crate::ipc::TestHandler::new());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(ipc::serve_with(
        listener,
        handler,
        shutdown.clone(),
        ServeOptions {
            idle_timeout: Duration::from_millis(300),
        },
    ));
    let mut s = UnixStream::connect(&path).await.expect("connect");
    let mut buf = Vec::new();
    let n = tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf))
        .await
        .expect("closed within the safety limit")
        .expect("read");
    assert_eq!(n, 0);
    shutdown.cancel();
    task.await.expect("serve ended");
    assert_eq!(snapshot(&outside), before, "something outside changed");
}

#[tokio::test]
async fn a_world_writable_socket_directory_is_fixed_before_binding() {
    let dir = tempfile::tempdir().expect("tmp");
    let outside = sibling(dir.path());
    let before = snapshot(&outside);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).expect("chmod 0777");
    let path = run.join("runner.sock");
    let listener = ipc::bind(&path).expect("bind");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&run), 0o750, "others may no longer replace the socket");
    assert_eq!(mode(&path), 0o660);
    drop(listener);
    assert_eq!(snapshot(&outside), before, "something outside changed");

    // A sticky directory (like /tmp) is safe as it is and left alone.
    let sticky = dir.path().join("sticky");
    std::fs::create_dir(&sticky).expect("mkdir");
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    drop(ipc::bind(&sticky.join("runner.sock")).expect("bind"));
    assert_eq!(mode(&sticky), 0o1777);
}
