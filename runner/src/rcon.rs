//! A Minecraft RCON client (and the packet codec the stand-in server shares).
//!
//! The wire layout (wiki.vg "RCON"): every packet is a little-endian `i32`
//! length of the rest, an `i32` request id, an `i32` type (3 = login,
//! 2 = command, 0 = response), the body, and two NUL bytes. A failed login is
//! answered with request id -1. Commands are at most [`MAX_COMMAND_LEN`] bytes;
//! the server splits long output into packets of at most
//! [`MAX_RESPONSE_FRAGMENT`] body bytes, so after the first fragment the client
//! sends a follow-up packet of an unknown type: the server answers requests in
//! order, so its answer marks the end of the output (as does the connection
//! closing after `stop`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use atlas_proto::Limits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Packet type of a login request.
pub const TYPE_LOGIN: i32 = 3;
/// Packet type of a command (and of the server's answer to a login).
pub const TYPE_COMMAND: i32 = 2;
/// Packet type of a command's output.
pub const TYPE_RESPONSE: i32 = 0;
/// The type of the follow-up marker: unknown to the server, which answers it
/// with `Unknown request 64` once the command before it is fully answered.
pub const TYPE_MARKER: i32 = 100;
/// The longest command (and password) the server reads, in bytes.
pub const MAX_COMMAND_LEN: usize = 1446;
/// The most body bytes the server puts in one response packet.
pub const MAX_RESPONSE_FRAGMENT: usize = 4096;
/// Id + type + two NUL bytes: the smallest valid length prefix.
const MIN_PACKET_LEN: usize = 10;

/// One RCON packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub id: i32,
    pub kind: i32,
    pub body: Vec<u8>,
}

impl Packet {
    pub fn new(id: i32, kind: i32, body: impl Into<Vec<u8>>) -> Self {
        Self {
            id,
            kind,
            body: body.into(),
        }
    }

    /// The packet's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let len = (self.body.len() + MIN_PACKET_LEN) as i32;
        let mut out = Vec::with_capacity(self.body.len() + 14);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&[0, 0]);
        out
    }
}

/// Why a packet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection was closed")]
    Closed,
    #[error("length prefix {len} is out of range ({MIN_PACKET_LEN}..={max})")]
    BadLength { len: i32, max: usize },
    #[error("the packet does not end with two NUL bytes")]
    MissingPadding,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one packet whose length prefix is at most `max_len` (the client
/// reads with [`Limits::rcon_packet_bytes`]: generous, since servers other
/// than vanilla may send larger fragments; the cap only bounds memory). A
/// clean end of stream before its first byte is [`FrameError::Closed`].
pub async fn read_packet<R: AsyncRead + Unpin>(r: &mut R, max_len: usize) -> Result<Packet, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_le_bytes(len);
    let bad = || FrameError::BadLength { len, max: max_len };
    let size = usize::try_from(len).map_err(|_| bad())?;
    if !(MIN_PACKET_LEN..=max_len).contains(&size) {
        return Err(bad());
    }
    let mut rest = vec![0u8; size];
    r.read_exact(&mut rest).await?;
    decode_rest(&rest)
}

/// Decodes what follows the length prefix.
fn decode_rest(rest: &[u8]) -> Result<Packet, FrameError> {
    let (head, body) = rest.split_at(8);
    let Some(body) = body.strip_suffix(&[0, 0]) else {
        return Err(FrameError::MissingPadding);
    };
    let id = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let kind = i32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    Ok(Packet {
        id,
        kind,
        body: body.to_vec(),
    })
}

/// The server side: `body` as response packets of at most
/// [`MAX_RESPONSE_FRAGMENT`] bytes each (one empty packet for empty output).
pub fn split_response(id: i32, body: &[u8]) -> Vec<Packet> {
    if body.is_empty() {
        return vec![Packet::new(id, TYPE_RESPONSE, Vec::new())];
    }
    body.chunks(MAX_RESPONSE_FRAGMENT)
        .map(|c| Packet::new(id, TYPE_RESPONSE, c))
        .collect()
}

/// What went wrong talking to a server over RCON.
#[derive(Debug, thiserror::Error)]
pub enum RconError {
    #[error(
        "cannot connect to RCON at {addr}: {reason}; check that the server is running with enable-rcon=true and rcon.port={port} in server.properties",
        port = addr.port()
    )]
    Connect { addr: SocketAddr, reason: io::Error },
    #[error(
        "RCON at {addr} refused the password; check rcon.password in server.properties (and the runner's [rcon] password)"
    )]
    AuthFailed { addr: SocketAddr },
    #[error(
        "RCON at {addr} did not answer within {} while {during}; the server may be hung or overloaded",
        humantime::format_duration(*after)
    )]
    Timeout {
        addr: SocketAddr,
        during: &'static str,
        after: Duration,
    },
    #[error(
        "RCON at {addr} closed the connection while {during}; the server may be stopping or have crashed"
    )]
    Closed { addr: SocketAddr, during: &'static str },
    #[error("RCON connection to {addr} failed while {during}: {reason}")]
    Io {
        addr: SocketAddr,
        during: &'static str,
        reason: io::Error,
    },
    #[error(
        "RCON at {addr} broke the protocol while {during}: {detail}; is that port really the server's rcon.port?"
    )]
    Protocol {
        addr: SocketAddr,
        during: &'static str,
        detail: String,
    },
    #[error("RCON at {addr} sent more than {limit} bytes of output for one command; refusing the rest")]
    ResponseTooLarge { addr: SocketAddr, limit: usize },
    #[error("{what} is {len} bytes, but RCON accepts at most {MAX_COMMAND_LEN}; shorten it")]
    TooLong { what: &'static str, len: usize },
    #[error("{what} contains a NUL byte, which RCON cannot carry")]
    Nul { what: &'static str },
}

/// A logged-in RCON connection. Commands run one at a time.
#[derive(Debug)]
pub struct RconClient {
    addr: SocketAddr,
    stream: TcpStream,
    timeout: Duration,
    next_id: i32,
}

impl RconClient {
    /// Connects and logs in; every connect, write and read is bounded by `timeout`.
    pub async fn connect(addr: SocketAddr, password: &str, timeout: Duration) -> Result<Self, RconError> {
        check_text("the RCON password", password)?;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(RconError::Connect { addr, reason: source }),
            Err(_) => {
                return Err(RconError::Timeout {
                    addr,
                    during: "connecting",
                    after: timeout,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let mut c = Self {
            addr,
            stream,
            timeout,
            next_id: 1,
        };
        let id = c.take_id();
        c.send(&Packet::new(id, TYPE_LOGIN, password), "logging in")
            .await?;
        // Source-engine servers send one empty response before the login answer.
        for _ in 0..2 {
            let p = c.recv("logging in").await?;
            match p {
                Packet { id: -1, .. } => return Err(RconError::AuthFailed { addr }),
                Packet {
                    kind: TYPE_RESPONSE,
                    id: pid,
                    ..
                } if pid == id => continue,
                Packet {
                    kind: TYPE_COMMAND,
                    id: pid,
                    ..
                } if pid == id => return Ok(c),
                other => {
                    return Err(c.protocol(
                        "logging in",
                        format!(
                            "expected the login answer for id {id}, got id {} type {}",
                            other.id, other.kind
                        ),
                    ));
                }
            }
        }
        Err(c.protocol("logging in", "no login answer after two packets".into()))
    }

    /// The address this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `cmd` and returns its whole output (every fragment, reassembled).
    pub async fn command(&mut self, cmd: &str) -> Result<String, RconError> {
        check_text("the command", cmd)?;
        let during = "running a command";
        let id = self.take_id();
        self.send(&Packet::new(id, TYPE_COMMAND, cmd), during).await?;
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            let p = match self.recv(during).await {
                Ok(p) => p,
                // The server went away after answering (`stop` does that):
                // the output it sent is complete, fragments are written whole.
                Err(RconError::Closed { .. } | RconError::Io { .. }) if marker.is_some() => break,
                Err(e) => return Err(e),
            };
            if p.id == -1 {
                return Err(RconError::AuthFailed { addr: self.addr });
            }
            if Some(p.id) == marker {
                break;
            }
            if p.id != id || p.kind != TYPE_RESPONSE {
                let detail = format!("expected a response for id {id}, got id {} type {}", p.id, p.kind);
                return Err(self.protocol(during, detail));
            }
            let limit = Limits::DEFAULT.rcon_response_bytes;
            if out.len() + p.body.len() > limit {
                return Err(RconError::ResponseTooLarge {
                    addr: self.addr,
                    limit,
                });
            }
            out.extend_from_slice(&p.body);
            // Sent only after the first fragment: the server has read the
            // command by then, and vanilla reads one packet per socket read.
            if marker.is_none() {
                let m = self.take_id();
                match self.send(&Packet::new(m, TYPE_MARKER, Vec::new()), during).await {
                    Ok(()) => marker = Some(m),
                    // Gone right after answering (`stop`): the output is whole.
                    Err(RconError::Io { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        // Ids stay positive: -1 means "not authenticated".
        self.next_id = if id == i32::MAX { 1 } else { id + 1 };
        id
    }

    async fn send(&mut self, p: &Packet, during: &'static str) -> Result<(), RconError> {
        let bytes = p.encode();
        match tokio::time::timeout(self.timeout, self.stream.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(RconError::Io {
                addr: self.addr,
                during,
                reason: source,
            }),
            Err(_) => Err(RconError::Timeout {
                addr: self.addr,
                during,
                after: self.timeout,
            }),
        }
    }

    async fn recv(&mut self, during: &'static str) -> Result<Packet, RconError> {
        let addr = self.addr;
        let read = read_packet(&mut self.stream, Limits::DEFAULT.rcon_packet_bytes);
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(FrameError::Closed)) => Err(RconError::Closed { addr, during }),
            Ok(Err(FrameError::Io(e))) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(RconError::Closed { addr, during })
            }
            Ok(Err(FrameError::Io(source))) => Err(RconError::Io {
                addr,
                during,
                reason: source,
            }),
            Ok(Err(e)) => Err(self.protocol(during, e.to_string())),
            Err(_) => Err(RconError::Timeout {
                addr,
                during,
                after: self.timeout,
            }),
        }
    }

    fn protocol(&self, during: &'static str, detail: String) -> RconError {
        RconError::Protocol {
            addr: self.addr,
            during,
            detail,
        }
    }
}

fn check_text(what: &'static str, s: &str) -> Result<(), RconError> {
    if s.len() > MAX_COMMAND_LEN {
        return Err(RconError::TooLong { what, len: s.len() });
    }
    if s.contains('\0') {
        return Err(RconError::Nul { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_packet_layout_byte_for_byte() {
        // length 4 (id) + 4 (type) + 8 ("password") + 2 (NUL NUL) = 18.
        let bytes = Packet::new(1, TYPE_LOGIN, "password").encode();
        let mut want = vec![18, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0];
        want.extend_from_slice(b"password");
        want.extend_from_slice(&[0, 0]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn command_and_negative_id_layout() {
        let bytes = Packet::new(0x0102_0304, TYPE_COMMAND, "list").encode();
        assert_eq!(
            bytes,
            [14, 0, 0, 0, 4, 3, 2, 1, 2, 0, 0, 0, b'l', b'i', b's', b't', 0, 0]
        );
        let fail = Packet::new(-1, TYPE_COMMAND, "").encode();
        assert_eq!(fail, [10, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn decode_round_trip_and_rejects() {
        let p = Packet::new(7, TYPE_RESPONSE, "There are 0 of a max of 20 players online: ");
        let bytes = p.encode();
        assert_eq!(
            read_packet(&mut &bytes[..], Limits::DEFAULT.rcon_packet_bytes)
                .await
                .expect("decode"),
            p
        );
        // Closed before anything; truncated; a short or huge length; no padding.
        assert!(matches!(
            read_packet(&mut &[][..], 100).await,
            Err(FrameError::Closed)
        ));
        assert!(matches!(
            read_packet(&mut &bytes[..10], 100).await,
            Err(FrameError::Io(_))
        ));
        let short = [9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            read_packet(&mut &short[..], 100).await,
            Err(FrameError::BadLength { len: 9, max: 100 })
        ));
        let huge = [1, 0, 1, 0];
        assert!(matches!(
            read_packet(&mut &huge[..], Limits::DEFAULT.rcon_packet_bytes).await,
            Err(FrameError::BadLength { len: 65537, .. })
        ));
        let neg = (-5i32).to_le_bytes();
        assert!(matches!(
            read_packet(&mut &neg[..], 100).await,
            Err(FrameError::BadLength { len: -5, .. })
        ));
        let mut bad = Packet::new(1, 0, "x").encode();
        bad[13] = b'y';
        assert!(matches!(
            read_packet(&mut &bad[..], 100).await,
            Err(FrameError::MissingPadding)
        ));
    }

    #[test]
    fn responses_split_at_4096_bytes() {
        let body: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let parts = split_response(5, &body);
        assert_eq!(
            parts.iter().map(|p| p.body.len()).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );
        assert!(parts.iter().all(|p| p.id == 5 && p.kind == TYPE_RESPONSE));
        assert_eq!(
            parts.iter().flat_map(|p| p.body.clone()).collect::<Vec<_>>(),
            body
        );
        assert_eq!(split_response(5, &body[..4096]).len(), 1);
        assert_eq!(
            split_response(5, b""),
            [Packet::new(5, TYPE_RESPONSE, Vec::new())]
        );
    }

    #[test]
    fn over_long_commands_are_refused_before_sending() {
        assert!(check_text("the command", &"a".repeat(MAX_COMMAND_LEN)).is_ok());
        let e = check_text("the command", &"a".repeat(MAX_COMMAND_LEN + 1)).expect_err("too long");
        assert!(
            e.to_string().contains("1447 bytes") && e.to_string().contains("1446"),
            "{e}"
        );
        assert!(matches!(
            check_text("the command", "a\0b"),
            Err(RconError::Nul { .. })
        ));
    }

    /// A scripted server: answers login then the command in three fragments,
    /// and checks every byte the client sends.
    #[tokio::test]
    async fn client_reassembles_fragments_using_the_marker() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let output: Vec<u8> = (0..9000u32).map(|i| b'0' + (i % 10) as u8).collect();
        let expect = output.clone();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let login = read_packet(&mut s, 1460).await.expect("login");
            assert_eq!(login, Packet::new(1, TYPE_LOGIN, "pw"));
            s.write_all(&Packet::new(1, TYPE_COMMAND, "").encode())
                .await
                .expect("w");
            let mut raw = [0u8; 18];
            s.read_exact(&mut raw).await.expect("command bytes");
            assert_eq!(
                raw,
                [14, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, b'h', b'e', b'l', b'p', 0, 0]
            );
            for p in split_response(2, &output) {
                s.write_all(&p.encode()).await.expect("w");
            }
            let marker = read_packet(&mut s, 1460).await.expect("marker");
            assert_eq!(marker, Packet::new(3, TYPE_MARKER, Vec::new()));
            s.write_all(&Packet::new(3, TYPE_RESPONSE, "Unknown request 64").encode())
                .await
                .expect("w");
        });
        let mut c = RconClient::connect(addr, "pw", Duration::from_secs(30))
            .await
            .expect("login");
        let got = c.command("help").await.expect("help");
        assert_eq!(got.as_bytes(), &expect[..]);
        server.await.expect("server");
    }

    #[tokio::test]
    async fn a_server_that_closes_after_answering_stop_gives_the_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let _ = read_packet(&mut s, 1460).await.expect("login");
            s.write_all(&Packet::new(1, TYPE_COMMAND, "").encode())
                .await
                .expect("w");
            let _ = read_packet(&mut s, 1460).await.expect("stop");
            s.write_all(&Packet::new(2, TYPE_RESPONSE, "Stopping the server").encode())
                .await
                .expect("w");
        });
        let mut c = RconClient::connect(addr, "pw", Duration::from_secs(30))
            .await
            .expect("login");
        assert_eq!(c.command("stop").await.expect("stop"), "Stopping the server");
    }

    #[tokio::test]
    async fn silence_is_a_timeout_naming_the_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move { listener.accept().await });
        let e = RconClient::connect(addr, "pw", Duration::from_millis(200))
            .await
            .expect_err("silent");
        assert!(
            matches!(
                e,
                RconError::Timeout {
                    during: "logging in",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        drop(held);
    }

    #[tokio::test]
    async fn wrong_password_names_the_setting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let _ = read_packet(&mut s, 1460).await.expect("login");
            s.write_all(&Packet::new(-1, TYPE_COMMAND, "").encode())
                .await
                .expect("w");
        });
        let e = RconClient::connect(addr, "nope", Duration::from_secs(30))
            .await
            .expect_err("refused");
        assert!(matches!(e, RconError::AuthFailed { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains(&addr.to_string()) && msg.contains("rcon.password"),
            "{msg}"
        );
    }
}
