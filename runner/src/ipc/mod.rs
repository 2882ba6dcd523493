//! The control socket between `atlas-runnerd` and `atlas-runner`: framing
//! ([`frame`]), the daemon's side ([`bind`], [`serve`], [`Handler`],
//! [`ReplySink`]) and the client's ([`Client`], [`ReplyStream`]).
//!
//! Frames are a 4-byte big-endian length and then that many bytes of one
//! protobuf message (`proto/proto/atlas/runner/v1/ipc.proto`), at most
//! [`Limits::ipc_frame_bytes`]. A client sends [`Request`](atlas_proto::runner::v1::Request)s
//! with ids of its choosing; the daemon answers each with one or more
//! [`Reply`](atlas_proto::runner::v1::Reply)s carrying that id, the last with
//! `last = true`. Requests on one connection run concurrently, so streams
//! (`logs -f`, `events`) and other requests interleave. A stream ends when the
//! client closes the connection (or its sending half): keep it open until the
//! last reply has been read.
//!
//! What the daemon side guarantees: a garbage frame, an oversized length
//! prefix (refused before anything is allocated) or a client that vanishes
//! mid-frame closes that connection only; at most
//! [`Limits::ipc_connections`] connections and [`Limits::ipc_in_flight`]
//! requests per connection (more get a
//! `busy` error); a client that stops reading for [`WRITE_STALL`] is
//! disconnected, so the daemon's memory stays bounded. Idle connections
//! cannot lock the operator out: one with nothing running is closed after
//! [`IDLE_TIMEOUT`], and when every slot is taken the one idle the longest
//! makes room for a newcomer.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_proto::Limits;

mod client;
pub mod frame;
mod server;

pub use client::{Client, ReplyStream};
pub use frame::{codec, decode_reply, decode_request, encode, encode_frame, validate_request};
pub use server::{
    Disconnected, Handler, IDLE_TIMEOUT, PARTIAL_FRAME_TIMEOUT, ReplySink, ServeOptions, bind, serve,
    serve_with, socket_dir_problem,
};

/// Replies queued per connection before a handler's `send` waits.
pub const REPLY_QUEUE: usize = 64;
/// A reply the client does not take within this long ends its connection
/// (it stopped reading).
pub const WRITE_STALL: Duration = Duration::from_secs(30);
/// How long [`Client::connect`] waits for the daemon to accept.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Error codes the daemon side of this module puts in `Error` replies
/// (handlers use these and their own, e.g. `refused`, `failed`).
pub mod code {
    /// The request was malformed or named no valid operation.
    pub const BAD_REQUEST: &str = "bad_request";
    /// Too many connections or requests in flight; try again.
    pub const BUSY: &str = "busy";
    /// The daemon refused the request (see the message).
    pub const REFUSED: &str = "refused";
    /// The request ran and failed.
    pub const FAILED: &str = "failed";
    /// A reply would have exceeded the frame limit.
    pub const TOO_LARGE: &str = "too_large";
    /// The handler ended (or panicked) without a final reply.
    pub const INTERNAL: &str = "internal";
}

/// What can go wrong on the control socket.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("cannot create the socket directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error(
        "another atlas-runnerd is already answering on {}: stop it first (systemctl stop atlas-runnerd) \
         or give this one another socket",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error("{message}")]
    UnsafeDir { message: String },
    #[error("{} exists and is not a socket: refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {}: {source}", path.display())]
    Bind { path: PathBuf, source: io::Error },
    #[error("{}", connect_message(path, source))]
    Connect { path: PathBuf, source: io::Error },
    #[error(
        "atlas-runnerd did not accept a connection on {} within {} s; is it hung? \
         (systemctl status atlas-runnerd)",
        path.display(),
        CONNECT_TIMEOUT.as_secs()
    )]
    ConnectTimeout { path: PathBuf },
    #[error("a frame of {len} bytes is over the {} byte limit", Limits::DEFAULT.ipc_frame_bytes)]
    FrameTooLarge { len: usize },
    #[error("malformed message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("atlas-runnerd closed the connection before its last reply (did it stop?)")]
    Closed,
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
}

impl IpcError {
    /// The daemon could not be reached or went away (the CLI's exit code 3).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::Closed
        )
    }
}

fn connect_message(path: &Path, source: &io::Error) -> String {
    let p = path.display();
    let hint = match source.kind() {
        io::ErrorKind::NotFound => format!(
            "no socket at {p}: is atlas-runnerd running (systemctl status atlas-runnerd)? \
             If it listens elsewhere, pass --socket PATH or set ATLAS_RUNNER_SOCKET."
        ),
        io::ErrorKind::PermissionDenied => format!(
            "permission denied: the socket is mode 0660, so run as the daemon's user or as a member \
             of the socket's group (`ls -l {p}`; `sudo usermod -aG GROUP $USER`, then log in again)."
        ),
        io::ErrorKind::ConnectionRefused => format!(
            "nothing is listening on {p} (a stale socket): is atlas-runnerd running? \
             (systemctl status atlas-runnerd; journalctl -u atlas-runnerd)"
        ),
        _ => "is atlas-runnerd running (systemctl status atlas-runnerd), and may you open its socket?".into(),
    };
    format!("cannot connect to atlas-runnerd at {p}: {source}\n{hint}")
}
