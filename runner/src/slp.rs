//! A Server List Ping client (the modern, 1.7+ protocol) and the wire helpers
//! the stand-in server shares.
//!
//! Every packet is a VarInt length, a VarInt packet id and its data. The client
//! sends a handshake (id 0x00: VarInt protocol version, String host, u16 port
//! big-endian, VarInt next state 1) and a status request (id 0x00, empty); the
//! server answers with a status response (id 0x00, a JSON String). Then a ping
//! (id 0x01, i64) is answered by a pong with the same i64.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use atlas_proto::Limits;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The protocol version sent in the handshake: -1 by convention when pinging
/// to find out the server's version.
pub const PING_PROTOCOL: i32 = -1;

/// What a server reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub version_name: String,
    pub protocol: i32,
    pub players_online: u32,
    pub players_max: u32,
    /// The MOTD as plain text (a chat component flattened).
    pub description: String,
    /// The ping → pong round trip.
    pub latency: Duration,
}

/// Why a ping failed.
#[derive(Debug, thiserror::Error)]
pub enum SlpError {
    #[error(
        "cannot connect to the server at {addr} for a Server List Ping: {reason}; is it running, with server-port={port} in server.properties?",
        port = addr.port()
    )]
    Connect { addr: SocketAddr, reason: io::Error },
    #[error(
        "the server at {addr} did not answer a Server List Ping within {} (while {during}); it may still be starting or be hung",
        humantime::format_duration(*after)
    )]
    Timeout {
        addr: SocketAddr,
        during: &'static str,
        after: Duration,
    },
    #[error("the server at {addr} closed the connection during a Server List Ping (while {during})")]
    Closed { addr: SocketAddr, during: &'static str },
    #[error("Server List Ping to {addr} failed while {during}: {reason}")]
    Io {
        addr: SocketAddr,
        during: &'static str,
        reason: io::Error,
    },
    #[error(
        "the server at {addr} broke the Server List Ping protocol while {during}: {detail}; is that port a Minecraft server?"
    )]
    Protocol {
        addr: SocketAddr,
        during: &'static str,
        detail: String,
    },
    #[error("the server at {addr} sent a status that is not valid JSON: {reason}")]
    Json {
        addr: SocketAddr,
        reason: serde_json::Error,
    },
}

/// A malformed frame, before it is tied to an address.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a VarInt is longer than 5 bytes")]
    VarIntTooLong,
    #[error("a packet length of {0} bytes is out of range (1..={1})")]
    BadLength(i64, usize),
    #[error("the packet ends early: {0}")]
    Truncated(&'static str),
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("the connection was closed")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Appends `v` as a VarInt (7 bits a byte, low bits first; negatives take 5 bytes).
pub fn write_varint(out: &mut Vec<u8>, v: i32) {
    let mut u = v as u32;
    loop {
        if u & !0x7f == 0 {
            out.push(u as u8);
            return;
        }
        out.push((u & 0x7f) as u8 | 0x80);
        u >>= 7;
    }
}

/// Decodes a VarInt at the start of `bytes`: the value and how many bytes it took.
pub fn read_varint(bytes: &[u8]) -> Result<(i32, usize), WireError> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = *bytes.get(i).ok_or(WireError::Truncated("inside a VarInt"))?;
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v as i32, i + 1));
        }
    }
    Err(WireError::VarIntTooLong)
}

/// Reads a VarInt from a stream; end of stream before its first byte is [`WireError::Closed`].
pub async fn read_varint_from<R: AsyncRead + Unpin>(r: &mut R) -> Result<i32, WireError> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = match r.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && i == 0 => return Err(WireError::Closed),
            Err(e) => return Err(e.into()),
        };
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v as i32);
        }
    }
    Err(WireError::VarIntTooLong)
}

/// Appends a protocol String: VarInt byte length, then UTF-8.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    write_varint(out, s.len() as i32);
    out.extend_from_slice(s.as_bytes());
}

/// Decodes a String at the start of `bytes`: the text and how many bytes it took.
pub fn read_string(bytes: &[u8]) -> Result<(String, usize), WireError> {
    let (len, n) = read_varint(bytes)?;
    let len = usize::try_from(len).map_err(|_| WireError::Truncated("a negative string length"))?;
    let raw = bytes
        .get(n..n + len)
        .ok_or(WireError::Truncated("inside a string"))?;
    let s = std::str::from_utf8(raw).map_err(|_| WireError::NotUtf8)?;
    Ok((s.to_owned(), n + len))
}

/// A whole packet on the wire: VarInt length of (id + data), VarInt id, data.
pub fn encode_packet(id: i32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + 5);
    write_varint(&mut body, id);
    body.extend_from_slice(data);
    let mut out = Vec::with_capacity(body.len() + 5);
    write_varint(&mut out, body.len() as i32);
    out.extend_from_slice(&body);
    out
}

/// Reads one packet of at most `max` bytes: its id and data.
pub async fn read_packet<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<(i32, Vec<u8>), WireError> {
    let len = read_varint_from(r).await?;
    let size = usize::try_from(len).ok().filter(|n| (1..=max).contains(n));
    let size = size.ok_or(WireError::BadLength(i64::from(len), max))?;
    let mut body = vec![0u8; size];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => WireError::Truncated("the connection closed inside a packet"),
        _ => WireError::Io(e),
    })?;
    let (id, n) = read_varint(&body)?;
    Ok((id, body.split_off(n)))
}

/// The handshake packet that asks for the status of `host:port`.
pub fn handshake(protocol: i32, host: &str, port: u16) -> Vec<u8> {
    let mut data = Vec::new();
    write_varint(&mut data, protocol);
    write_string(&mut data, host);
    data.extend_from_slice(&port.to_be_bytes());
    write_varint(&mut data, 1);
    encode_packet(0x00, &data)
}

/// Pings the server at `addr`: handshake, status, ping/pong, all within `timeout`.
pub async fn ping(addr: SocketAddr, timeout: Duration) -> Result<ServerStatus, SlpError> {
    let mut during = "connecting";
    match tokio::time::timeout(timeout, exchange(addr, &mut during)).await {
        Ok(r) => r,
        Err(_) => Err(SlpError::Timeout {
            addr,
            during,
            after: timeout,
        }),
    }
}

async fn exchange(addr: SocketAddr, during: &mut &'static str) -> Result<ServerStatus, SlpError> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|source| SlpError::Connect { addr, reason: source })?;
    let _ = s.set_nodelay(true);
    *during = "sending the status request";
    let mut req = handshake(PING_PROTOCOL, &addr.ip().to_string(), addr.port());
    req.extend_from_slice(&encode_packet(0x00, &[]));
    s.write_all(&req).await.map_err(|source| SlpError::Io {
        addr,
        during,
        reason: source,
    })?;

    *during = "reading the status response";
    let fail = |during, e| wire_error(addr, during, e);
    // The JSON is at most 32767 UTF-16 units, plus a favicon: the cap only bounds memory.
    let (id, data) = read_packet(&mut s, Limits::DEFAULT.slp_status_bytes)
        .await
        .map_err(|e| fail(*during, e))?;
    if id != 0x00 {
        return Err(fail(*during, WireError::Truncated("expected packet 0x00")));
    }
    let (json, _) = read_string(&data).map_err(|e| fail(*during, e))?;
    let status = parse_status(&json).map_err(|source| SlpError::Json { addr, reason: source })?;

    *during = "waiting for the pong";
    let token: i64 = 0x0A71_A55E_ED00;
    let sent = Instant::now();
    s.write_all(&encode_packet(0x01, &token.to_be_bytes()))
        .await
        .map_err(|source| SlpError::Io {
            addr,
            during,
            reason: source,
        })?;
    let (id, data) = read_packet(&mut s, 64).await.map_err(|e| fail(*during, e))?;
    let latency = sent.elapsed();
    if id != 0x01 || data != token.to_be_bytes() {
        let detail = format!(
            "expected a pong (0x01) echoing {token}, got packet {id:#04x} of {} bytes",
            data.len()
        );
        return Err(SlpError::Protocol { addr, during, detail });
    }
    Ok(ServerStatus { latency, ..status })
}

fn wire_error(addr: SocketAddr, during: &'static str, e: WireError) -> SlpError {
    match e {
        WireError::Closed => SlpError::Closed { addr, during },
        WireError::Io(source) => SlpError::Io {
            addr,
            during,
            reason: source,
        },
        other => SlpError::Protocol {
            addr,
            during,
            detail: other.to_string(),
        },
    }
}

#[derive(Deserialize)]
struct StatusJson {
    #[serde(default)]
    version: VersionJson,
    #[serde(default)]
    players: PlayersJson,
    #[serde(default)]
    description: serde_json::Value,
}

#[derive(Deserialize, Default)]
struct VersionJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    protocol: i32,
}

#[derive(Deserialize, Default)]
struct PlayersJson {
    #[serde(default)]
    max: i64,
    #[serde(default)]
    online: i64,
}

/// Parses a status JSON (latency zero).
pub fn parse_status(json: &str) -> Result<ServerStatus, serde_json::Error> {
    let s: StatusJson = serde_json::from_str(json)?;
    let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    let mut description = String::new();
    flatten_chat(&s.description, &mut description);
    Ok(ServerStatus {
        version_name: s.version.name,
        protocol: s.version.protocol,
        players_online: count(s.players.online),
        players_max: count(s.players.max),
        description,
        latency: Duration::ZERO,
    })
}

/// A chat component as plain text: a string, or `text` followed by `extra`.
fn flatten_chat(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => out.push_str(s),
        serde_json::Value::Array(items) => items.iter().for_each(|i| flatten_chat(i, out)),
        serde_json::Value::Object(o) => {
            if let Some(t) = o.get("text") {
                flatten_chat(t, out);
            } else if let Some(serde_json::Value::String(key)) = o.get("translate") {
                out.push_str(key);
            }
            if let Some(extra) = o.get("extra") {
                flatten_chat(extra, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: [(i32, &[u8]); 9] = [
        (0, &[0x00]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x80, 0x01]),
        (255, &[0xff, 0x01]),
        (25565, &[0xdd, 0xc7, 0x01]),
        (2097151, &[0xff, 0xff, 0x7f]),
        (2147483647, &[0xff, 0xff, 0xff, 0xff, 0x07]),
        (-1, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];

    #[test]
    fn varint_documented_examples() {
        for (v, bytes) in EXAMPLES {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out, bytes, "encode {v}");
            assert_eq!(
                read_varint(bytes).expect("decode"),
                (v, bytes.len()),
                "decode {v}"
            );
        }
        let mut out = Vec::new();
        write_varint(&mut out, i32::MIN);
        assert_eq!(out, [0x80, 0x80, 0x80, 0x80, 0x08]);
    }

    #[tokio::test]
    async fn varint_errors() {
        let six = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(read_varint(&six), Err(WireError::VarIntTooLong)));
        assert!(matches!(
            read_varint_from(&mut &six[..]).await,
            Err(WireError::VarIntTooLong)
        ));
        assert!(matches!(read_varint(&[0x80]), Err(WireError::Truncated(_))));
        assert!(matches!(
            read_varint_from(&mut &[][..]).await,
            Err(WireError::Closed)
        ));
        for (v, bytes) in EXAMPLES {
            assert_eq!(read_varint_from(&mut &bytes[..]).await.expect("stream decode"), v);
        }
    }

    #[test]
    fn handshake_and_status_request_byte_for_byte() {
        let hs = handshake(767, "localhost", 25565);
        let mut want = vec![0x10, 0x00, 0xff, 0x05, 0x09];
        want.extend_from_slice(b"localhost");
        want.extend_from_slice(&[0x63, 0xdd, 0x01]);
        assert_eq!(hs, want);
        // -1 as protocol takes five bytes.
        let hs = handshake(-1, "127.0.0.1", 80);
        assert_eq!(hs[..8], [0x13, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x09]);
        assert_eq!(hs[hs.len() - 3..], [0x00, 0x50, 0x01]);
        assert_eq!(encode_packet(0x00, &[]), [0x01, 0x00]);
        let ping = encode_packet(0x01, &1i64.to_be_bytes());
        assert_eq!(ping, [0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[tokio::test]
    async fn packets_round_trip_and_caps() {
        let mut data = Vec::new();
        write_string(&mut data, "{\"a\":1}");
        let bytes = encode_packet(0x00, &data);
        let (id, got) = read_packet(&mut &bytes[..], 100).await.expect("read");
        assert_eq!(
            (id, read_string(&got).expect("string").0.as_str()),
            (0, "{\"a\":1}")
        );
        assert!(matches!(
            read_packet(&mut &bytes[..], 3).await,
            Err(WireError::BadLength(9, 3))
        ));
        assert!(matches!(
            read_packet(&mut &[0x00][..], 3).await,
            Err(WireError::BadLength(0, 3))
        ));
        assert!(matches!(
            read_packet(&mut &bytes[..5], 100).await,
            Err(WireError::Truncated(_))
        ));
        assert!(matches!(read_string(&[0x05, b'a']), Err(WireError::Truncated(_))));
        assert!(matches!(read_string(&[0x01, 0xff]), Err(WireError::NotUtf8)));
    }

    #[test]
    fn status_json_string_or_component() {
        let s = parse_status(
            r#"{"version":{"name":"1.21.1","protocol":767},"players":{"max":20,"online":3,"sample":[]},"description":"A Minecraft Server","favicon":"data:image/png;base64,AA=="}"#,
        )
        .expect("plain");
        assert_eq!(
            (
                s.version_name.as_str(),
                s.protocol,
                s.players_online,
                s.players_max,
                s.description.as_str()
            ),
            ("1.21.1", 767, 3, 20, "A Minecraft Server")
        );
        let s = parse_status(
            r#"{"version":{"name":"Paper 1.21","protocol":767},"players":{"max":5,"online":0},"description":{"text":"Hello ","extra":[{"text":"big","bold":true}," world"]}}"#,
        )
        .expect("component");
        assert_eq!(s.description, "Hello big world");
        let s = parse_status(r#"{"version":{"name":"x","protocol":1},"description":{"translate":"k"}}"#)
            .expect("no players");
        assert_eq!((s.players_max, s.description.as_str()), (0, "k"));
        assert!(parse_status("not json").is_err());
    }
}
