//! The client's side of the control socket: [`Client::connect`], then
//! [`Client::call`] for each request, whose replies arrive on a
//! [`ReplyStream`]. One connection carries any number of requests; a task
//! reads replies and hands each to the stream of its request id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use atlas_proto::runner::v1::{Reply, Request, request};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::{CONNECT_TIMEOUT, IpcError, frame};

/// Replies buffered per request before the reading task waits for the
/// caller to take them (the daemon then waits too, up to its stall limit).
const STREAM_BUFFER: usize = 64;

type Slot = mpsc::Sender<Result<Reply, IpcError>>;

#[derive(Debug, Default)]
struct Pending {
    streams: HashMap<u64, Slot>,
    /// Set when the reading task has ended: no reply will arrive any more.
    dead: bool,
    /// A reply with id 0: the daemon speaking about the whole connection
    /// (e.g. `busy` before it hangs up). Requests made after it get it too.
    notice: Option<Reply>,
}

/// What a client and its streams share: the connection stays open until the
/// client and every stream are dropped.
#[derive(Debug)]
struct Conn {
    out: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<Pending>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lock(p: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection to `atlas-runnerd`.
#[derive(Debug)]
pub struct Client {
    conn: Arc<Conn>,
    path: PathBuf,
    next_id: u64,
}

impl Client {
    /// Connects to the daemon's socket at `path`, waiting at most
    /// [`CONNECT_TIMEOUT`]. Errors name the path and say what to check.
    pub async fn connect(path: &Path) -> Result<Self, IpcError> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(IpcError::Connect {
                    path: path.to_path_buf(),
                    reason: source,
                });
            }
            Err(_) => {
                return Err(IpcError::ConnectTimeout {
                    path: path.to_path_buf(),
                });
            }
        };
        let (read, write) = stream.into_split();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader = tokio::spawn(read_replies(
            FramedRead::new(read, frame::codec()),
            pending.clone(),
        ));
        let conn = Conn {
            out: tokio::sync::Mutex::new(write),
            pending,
            reader,
        };
        Ok(Self {
            conn: Arc::new(conn),
            path: path.to_path_buf(),
            next_id: 1,
        })
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends a request; its replies (up to and including the one with
    /// `last`) come from the returned stream, which works on after this
    /// client is dropped.
    pub async fn call(&mut self, kind: request::Kind) -> Result<ReplyStream, IpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = frame::encode_frame(&Request { id, kind: Some(kind) })?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        {
            let mut p = lock(&self.conn.pending);
            if p.dead {
                let notice = p.notice.clone().ok_or(IpcError::Closed)?;
                let _ = tx.try_send(Ok(Reply {
                    id,
                    last: true,
                    ..notice
                }));
                return Ok(ReplyStream {
                    id,
                    rx,
                    conn: self.conn.clone(),
                    done: false,
                });
            }
            p.streams.insert(id, tx);
        }
        let stream = ReplyStream {
            id,
            rx,
            conn: self.conn.clone(),
            done: false,
        };
        let sent = self.conn.out.lock().await.write_all(&bytes).await;
        match sent {
            // The daemon hung up: the reading task ends and tells the stream
            // why (its parting notice, such as `busy`, or Closed).
            Ok(()) => Ok(stream),
            Err(e) if is_disconnect(&e) => Ok(stream),
            Err(e) => Err(IpcError::Io(e)),
        }
    }

    /// Sends a request and waits for its last reply, which it returns
    /// (replies before it, such as "queued", are skipped).
    pub async fn call_one(&mut self, kind: request::Kind) -> Result<Reply, IpcError> {
        let mut stream = self.call(kind).await?;
        while let Some(r) = stream.next().await {
            let r = r?;
            if r.last {
                return Ok(r);
            }
        }
        Err(IpcError::Closed)
    }
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, NotConnected};
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected
    )
}

/// The replies to one request, in order, ending after the one with `last`.
#[derive(Debug)]
pub struct ReplyStream {
    id: u64,
    rx: mpsc::Receiver<Result<Reply, IpcError>>,
    conn: Arc<Conn>,
    done: bool,
}

impl ReplyStream {
    /// The request's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next reply; `None` after the last one (or after an error).
    /// [`IpcError::Closed`] when the daemon closed the connection first.
    pub async fn next(&mut self) -> Option<Result<Reply, IpcError>> {
        if self.done {
            return None;
        }
        let item = self.rx.recv().await.unwrap_or(Err(IpcError::Closed));
        self.done = item.as_ref().map_or(true, |r| r.last);
        Some(item)
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        lock(&self.conn.pending).streams.remove(&self.id);
    }
}

/// Routes each reply to its request's stream until the connection ends;
/// then every waiting stream gets the reason.
async fn read_replies(
    mut frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    pending: Arc<Mutex<Pending>>,
) {
    let failure = loop {
        let bytes = match frames.next().await {
            None => break IpcError::Closed,
            Some(Err(e)) if is_disconnect(&e) => break IpcError::Closed,
            Some(Err(e)) => break IpcError::Io(e),
            Some(Ok(bytes)) => bytes,
        };
        let reply = match frame::decode_reply(&bytes) {
            Ok(r) => r,
            Err(e) => break e,
        };
        // Id 0 is the daemon speaking about the whole connection (e.g.
        // `busy`): every waiting request gets it.
        let targets: Vec<(u64, Slot)> = {
            let mut p = lock(&pending);
            if reply.id == 0 {
                p.notice = Some(reply.clone());
                p.streams.drain().collect()
            } else if reply.last {
                p.streams.remove_entry(&reply.id).into_iter().collect()
            } else {
                p.streams
                    .get(&reply.id)
                    .map(|s| (reply.id, s.clone()))
                    .into_iter()
                    .collect()
            }
        };
        if targets.is_empty() {
            tracing::debug!(id = reply.id, "a reply for no waiting request; dropped");
        }
        for (id, slot) in targets {
            // A dropped stream no longer wants its replies.
            let _ = slot.send(Ok(Reply { id, ..reply.clone() })).await;
        }
    };
    tracing::debug!("control connection ended: {failure}");
    let (slots, notice): (Vec<(u64, Slot)>, _) = {
        let mut p = lock(&pending);
        p.dead = true;
        (p.streams.drain().collect(), p.notice.clone())
    };
    for (id, slot) in slots {
        let item = match (&notice, &failure) {
            (Some(n), _) => Ok(Reply {
                id,
                last: true,
                ..n.clone()
            }),
            (None, IpcError::Closed) => Err(IpcError::Closed),
            (None, other) => Err(IpcError::Io(std::io::Error::other(other.to_string()))),
        };
        let _ = slot.send(item).await;
    }
}
