//! The stand-in's network side: Server List Ping on the game port and RCON
//! on `rcon.port`, both speaking the real protocols through the server halves
//! of [`atlas_runner::slp`] and [`atlas_runner::rcon`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use atlas_runner::rcon::{self, Packet};
use atlas_runner::slp;

use crate::server::Command;

/// The largest packet vanilla reads from an RCON client: 1460 bytes with the
/// length prefix, so a body of at most [`rcon::MAX_COMMAND_LEN`].
const RCON_MAX_IN: usize = rcon::MAX_COMMAND_LEN + 10;
/// A connection idle for this long is closed (a safety limit).
const IDLE: Duration = Duration::from_secs(600);

/// Answers Server List Pings with `status_json` until the listener fails.
pub async fn serve_slp(listener: TcpListener, status_json: Arc<String>) {
    while let Ok((stream, _)) = listener.accept().await {
        let json = status_json.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(IDLE, slp_connection(stream, &json)).await;
        });
    }
}

async fn slp_connection(mut s: TcpStream, json: &str) -> Result<(), slp::WireError> {
    let (id, data) = slp::read_packet(&mut s, 1024).await?;
    let (_protocol, n) = slp::read_varint(&data)?;
    let (_host, m) = slp::read_string(&data[n..])?;
    let rest = &data[n + m..];
    let (next, _) = slp::read_varint(rest.get(2..).ok_or(slp::WireError::Truncated("no port"))?)?;
    if id != 0x00 || next != 1 {
        // Logins (next state 2) are not supported: a stand-in has no players.
        return Ok(());
    }
    loop {
        let (id, data) = slp::read_packet(&mut s, 64).await?;
        match id {
            0x00 => {
                let mut body = Vec::new();
                slp::write_string(&mut body, json);
                s.write_all(&slp::encode_packet(0x00, &body)).await?;
            }
            0x01 => {
                s.write_all(&slp::encode_packet(0x01, &data)).await?;
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}

/// Accepts RCON connections; authenticated commands go to the server thread.
pub async fn serve_rcon(listener: TcpListener, password: Arc<String>, tx: mpsc::Sender<Command>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (password, tx) = (password.clone(), tx.clone());
        tokio::spawn(async move {
            let _ = rcon_connection(stream, &password, &tx).await;
        });
    }
}

async fn rcon_connection(
    mut s: TcpStream,
    password: &str,
    tx: &mpsc::Sender<Command>,
) -> Result<(), rcon::FrameError> {
    let _ = s.set_nodelay(true);
    let mut authed = false;
    loop {
        let p = match tokio::time::timeout(IDLE, rcon::read_packet(&mut s, RCON_MAX_IN)).await {
            Ok(p) => p?,
            Err(_) => return Ok(()),
        };
        let reply = match p.kind {
            rcon::TYPE_LOGIN => {
                authed = !password.is_empty() && p.body == password.as_bytes();
                let id = if authed { p.id } else { -1 };
                Packet::new(id, rcon::TYPE_COMMAND, Vec::new()).encode()
            }
            rcon::TYPE_COMMAND if !authed => Packet::new(-1, rcon::TYPE_COMMAND, Vec::new()).encode(),
            rcon::TYPE_COMMAND => {
                let line = String::from_utf8_lossy(&p.body).into_owned();
                let (reply_tx, reply_rx) = oneshot::channel();
                if tx
                    .send(Command {
                        line,
                        rcon: Some(reply_tx),
                    })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                // Never answered when the server hangs (hang_on_stop): like a real one.
                let Ok((text, written)) = reply_rx.await else {
                    return Ok(());
                };
                let bytes: Vec<u8> = rcon::split_response(p.id, text.as_bytes())
                    .iter()
                    .flat_map(Packet::encode)
                    .collect();
                s.write_all(&bytes).await?;
                drop(written);
                continue;
            }
            other => {
                let text = format!("Unknown request {other:x}");
                Packet::new(p.id, rcon::TYPE_RESPONSE, text).encode()
            }
        };
        s.write_all(&reply).await?;
    }
}
