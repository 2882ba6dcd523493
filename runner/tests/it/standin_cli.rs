//! `atlas-standin` as a command (issue 20 item 9): `--help` answers with
//! help and writes nothing, it never creates a world in a directory it was
//! not pointed at, and it listens on 127.0.0.1 unless told otherwise.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::{free_port, standin_exe};

fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn help_answers_with_help_and_writes_nothing() {
    let cwd = tempfile::tempdir().expect("tmp");
    let o = Command::new(standin_exe())
        .arg("--help")
        .current_dir(cwd.path())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Usage: atlas-standin") && out.contains("--dir") && out.contains("--listen"),
        "{out}"
    );
    assert!(entries(cwd.path()).is_empty(), "{:?}", entries(cwd.path()));
}

#[test]
fn without_a_server_directory_it_refuses_and_writes_nothing() {
    let cwd = tempfile::tempdir().expect("tmp");
    let o = Command::new(standin_exe())
        .current_dir(cwd.path())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--dir DIR"), "{err}");
    assert!(entries(cwd.path()).is_empty(), "{:?}", entries(cwd.path()));
}

/// Local addresses (hex, as /proc/net/tcp writes them) listening on `port`.
fn listening_on(port: u16) -> Vec<String> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    tcp.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, p) = f.get(1)?.split_once(':')?;
            (u16::from_str_radix(p, 16).ok()? == port && f.get(3) == Some(&"0A")).then(|| addr.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn it_serves_the_directory_it_is_given_on_loopback_only() {
    let cwd = tempfile::tempdir().expect("tmp");
    let server = tempfile::tempdir().expect("tmp");
    let dir = server.path().join("srv");
    let port = free_port();
    std::fs::create_dir(&dir).expect("mkdir");
    // No server-ip: the stand-in picks its own default.
    std::fs::write(dir.join("server.properties"), format!("server-port={port}\n")).expect("props");
    let mut child = tokio::process::Command::new(standin_exe())
        .arg("--dir")
        .arg(&dir)
        .current_dir(cwd.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    while atlas_runner::slp::ping(addr, std::time::Duration::from_secs(1))
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "no answer on {addr}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listening_on(port), ["0100007F"], "listening beyond loopback");
    child.kill().await.expect("kill");
    assert!(dir.join("world/level.dat").exists(), "the world is in --dir");
    assert!(entries(cwd.path()).is_empty(), "{:?}", entries(cwd.path()));
}
