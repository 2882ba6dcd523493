//! The RCON and Server List Ping clients against the real `atlas-standin`
//! process, plus raw-byte exchanges that pin the wire layout.

use std::time::Duration;

use atlas_runner::rcon::{RconClient, RconError};
use atlas_runner::slp::{self, SlpError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// The stand-in's `help` output, as its binary prints it.
#[allow(dead_code)]
#[path = "../../src/bin/atlas-standin/help.rs"]
mod standin_help;
use standin_help::help_lines;

const T: Duration = Duration::from_secs(30);

async fn started(rcon: bool, behaviour: &str) -> (ServerDir, Running) {
    let dir = ServerDir::new(rcon).behaviour(behaviour);
    let server = Running::standin(dir.path());
    server.wait_for("Done (").await;
    if rcon {
        server.wait_for("RCON running on").await;
    }
    (dir, server)
}

#[tokio::test]
async fn slp_ping_reports_version_players_and_motd() {
    let (dir, mut server) = started(false, "").await;
    let st = slp::ping(dir.game(), T).await.expect("ping");
    assert_eq!(st.version_name, "1.21.1");
    assert_eq!(st.protocol, 767);
    assert_eq!((st.players_online, st.players_max), (0, 20));
    assert_eq!(st.description, "Atlas stand-in");
    // Several pings in a row on fresh connections.
    for _ in 0..3 {
        assert_eq!(slp::ping(dir.game(), T).await.expect("again").players_max, 20);
    }
    server.console("stop").await;
    assert!(server.exit().await.success());
}

#[tokio::test]
async fn slp_players_max_comes_from_standin_toml() {
    let (dir, _server) = started(false, "players_max = 0\n").await;
    assert_eq!(slp::ping(dir.game(), T).await.expect("ping").players_max, 0);
}

#[tokio::test]
async fn slp_raw_bytes_status_then_pong() {
    let (dir, _server) = started(false, "").await;
    let mut s = TcpStream::connect(dir.game()).await.expect("connect");
    // Handshake: protocol 767 (ff 05), host "localhost", port, next state 1; then status request 01 00.
    let mut req = vec![0x10, 0x00, 0xff, 0x05, 0x09];
    req.extend_from_slice(b"localhost");
    req.extend_from_slice(&dir.game_port.to_be_bytes());
    req.extend_from_slice(&[0x01, 0x01, 0x00]);
    s.write_all(&req).await.expect("write");
    let (id, data) = slp::read_packet(&mut s, atlas_proto::Limits::DEFAULT.slp_status_bytes)
        .await
        .expect("status");
    assert_eq!(id, 0x00);
    let (json, used) = slp::read_string(&data).expect("json string");
    assert_eq!(used, data.len(), "the packet is exactly one String");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["players"]["max"], 20);
    // Ping 0x01 with an i64 → the same nine bytes back, length-prefixed.
    s.write_all(&[0x09, 0x01, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .expect("ping");
    let mut pong = [0u8; 10];
    s.read_exact(&mut pong).await.expect("pong");
    assert_eq!(pong, [0x09, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
}

#[tokio::test]
async fn slp_errors_name_the_address() {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let e = slp::ping(addr, T).await.expect_err("nothing listens");
    assert!(matches!(e, SlpError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    // A listener that never answers: the timeout is the safety limit.
    let quiet = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = quiet.local_addr().expect("addr");
    let e = slp::ping(addr, Duration::from_millis(300))
        .await
        .expect_err("silent");
    assert!(
        matches!(
            e,
            SlpError::Timeout {
                during: "reading the status response",
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn rcon_login_list_and_multi_packet_help() {
    let (dir, _server) = started(true, "").await;
    let mut c = RconClient::connect(dir.rcon(), RCON_PASSWORD, T)
        .await
        .expect("login");
    assert_eq!(
        c.command("list").await.expect("list"),
        "There are 0 of a max of 20 players online: "
    );
    let help = c.command("help").await.expect("help");
    let want = help_lines().join("\n");
    assert!(want.len() > 4096, "help must span several packets");
    assert_eq!(help, want, "reassembled byte for byte");
    assert_eq!(
        c.command("save-all flush").await.expect("save"),
        "Saving the game (this may take a moment!)\nSaved the game"
    );
    assert_eq!(c.command("").await.expect("empty command"), "");
    assert!(
        c.command("nonsense")
            .await
            .expect("unknown")
            .starts_with("Unknown or incomplete command")
    );
}

#[tokio::test]
async fn rcon_wrong_password_says_where_to_look() {
    let (dir, _server) = started(true, "").await;
    let e = RconClient::connect(dir.rcon(), "wrong", T)
        .await
        .expect_err("refused");
    assert!(matches!(e, RconError::AuthFailed { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&dir.rcon().to_string()) && msg.contains("rcon.password in server.properties"),
        "{msg}"
    );
    // The right password still works afterwards.
    RconClient::connect(dir.rcon(), RCON_PASSWORD, T)
        .await
        .expect("login");
}

#[tokio::test]
async fn rcon_raw_bytes_login_failure_and_unknown_type() {
    let (dir, _server) = started(true, "").await;
    let mut s = TcpStream::connect(dir.rcon()).await.expect("connect");
    let mut buf = [0u8; 14];
    // A command before login: id -1.
    s.write_all(&[14, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, b'l', b'i', b's', b't', 0, 0])
        .await
        .expect("w");
    s.read_exact(&mut buf).await.expect("r");
    assert_eq!(buf, [10, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0]);
    // Login id 7 "hunter2": answered with type 2, id 7, empty body.
    let mut login = vec![17, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0];
    login.extend_from_slice(b"hunter2\0\0");
    s.write_all(&login).await.expect("w");
    s.read_exact(&mut buf).await.expect("r");
    assert_eq!(buf, [10, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 0, 0]);
    // An unknown type 100: "Unknown request 64" as a response (type 0).
    s.write_all(&[10, 0, 0, 0, 8, 0, 0, 0, 100, 0, 0, 0, 0, 0])
        .await
        .expect("w");
    let mut reply = [0u8; 4 + 10 + 18];
    s.read_exact(&mut reply).await.expect("r");
    let mut want = vec![28, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0];
    want.extend_from_slice(b"Unknown request 64\0\0");
    assert_eq!(reply.to_vec(), want);
}

#[tokio::test]
async fn rcon_stop_exits_zero_after_saving() {
    let (dir, mut server) = started(true, "").await;
    let mut c = RconClient::connect(dir.rcon(), RCON_PASSWORD, T)
        .await
        .expect("login");
    assert_eq!(c.command("stop").await.expect("stop"), "Stopping the server");
    let status = server.exit().await;
    assert!(status.success(), "{status:?}");
    let level = std::fs::read_to_string(dir.path().join("world/level.dat")).expect("level.dat");
    assert!(level.contains("saves=1"), "{level}");
    let log = std::fs::read_to_string(dir.path().join("logs/latest.log")).expect("latest.log");
    assert!(log.contains("[Rcon: Stopping the server]"), "{log}");
    assert!(
        log.contains("ThreadedAnvilChunkStorage: All dimensions are saved"),
        "{log}"
    );
}

#[tokio::test]
async fn rcon_client_errors() {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let e = RconClient::connect(addr, "pw", T)
        .await
        .expect_err("nothing listens");
    assert!(matches!(e, RconError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("enable-rcon=true"), "{e}");
    let (dir, _server) = started(true, "").await;
    let mut c = RconClient::connect(dir.rcon(), RCON_PASSWORD, T)
        .await
        .expect("login");
    let e = c.command(&"say x".repeat(400)).await.expect_err("too long");
    assert!(matches!(e, RconError::TooLong { len: 2000, .. }), "{e:?}");
    // The connection is still usable: nothing was sent.
    assert!(c.command("list").await.expect("list").starts_with("There are 0"));
}
