//! The daemon's side of the control socket: [`bind`] the socket, [`serve`]
//! connections, and hand each request to a [`Handler`] with a [`ReplySink`].

use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use atlas_proto::Limits;
use atlas_proto::runner::v1::{Error as PbError, Reply, Request, reply};
use futures_util::{FutureExt as _, StreamExt as _};
use prost::Message as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::frame;
use super::{IpcError, REPLY_QUEUE, WRITE_STALL, code};

/// How long [`serve`] lets connections wind down after `shutdown` before
/// it aborts what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Answers requests. `handle` runs in its own task per request; it sends
/// zero or more replies with [`ReplySink::send`] and ends with
/// [`ReplySink::finish`] or [`ReplySink::error`]. If it returns (or panics)
/// without a final reply, the client gets an `internal` error as the last.
/// Streaming handlers should select on [`ReplySink::closed`].
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request, sink: ReplySink) -> impl Future<Output = ()> + Send;
}

/// The client of this request has gone (or the daemon is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client disconnected")]
pub struct Disconnected;

/// Where a handler sends the replies to one request. Clones share it.
#[derive(Debug, Clone)]
pub struct ReplySink {
    id: u64,
    tx: mpsc::Sender<Reply>,
    closed: CancellationToken,
    finished: Arc<AtomicBool>,
}

impl ReplySink {
    fn new(id: u64, tx: mpsc::Sender<Reply>, closed: CancellationToken) -> Self {
        Self {
            id,
            tx,
            closed,
            finished: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The request's id, echoed in every reply.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends a reply that is not the last.
    pub async fn send(&self, kind: reply::Kind) -> Result<(), Disconnected> {
        self.push(kind, false).await
    }

    /// Sends the last reply for this request.
    pub async fn finish(&self, kind: reply::Kind) -> Result<(), Disconnected> {
        self.push(kind, true).await
    }

    /// Sends an `Error { code, message }` as the last reply (if the client
    /// is still there).
    pub async fn error(&self, code: &str, message: impl Into<String>) {
        let kind = reply::Kind::Error(PbError {
            code: code.into(),
            message: message.into(),
            ..Default::default()
        });
        let _ = self.push(kind, true).await;
    }

    /// Whether the client has gone (a send would fail).
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the client has gone: its connection closed, broke, or
    /// stopped reading, or the daemon is shutting down.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    async fn push(&self, kind: reply::Kind, last: bool) -> Result<(), Disconnected> {
        if self.closed.is_cancelled() {
            return Err(Disconnected);
        }
        let after_last = if last {
            self.finished.swap(true, Ordering::AcqRel)
        } else {
            self.finished.load(Ordering::Acquire)
        };
        if after_last {
            warn!(id = self.id, "a handler replied after its last reply; dropped");
            return Ok(());
        }
        let mut reply = Reply {
            id: self.id,
            last,
            kind: Some(kind),
        };
        let len = reply.encoded_len();
        let max = Limits::DEFAULT.ipc_frame_bytes;
        if len > max {
            warn!(
                id = self.id,
                len, "a reply is over the frame limit; sending an error instead"
            );
            let message = format!("the reply ({len} bytes) is over the {max} byte frame limit");
            reply.kind = Some(reply::Kind::Error(PbError {
                code: code::TOO_LARGE.into(),
                message,
                ..Default::default()
            }));
        }
        tokio::select! {
            r = self.tx.send(reply) => r.map_err(|_| Disconnected),
            _ = self.closed.cancelled() => Err(Disconnected),
        }
    }
}

/// What to do with an existing socket directory of `mode`, owned by
/// `owner`, for a daemon running as `me`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirVerdict {
    /// Nobody else may replace what is in it (or it is sticky, like `/tmp`).
    Safe,
    /// Others may write to it, and it is this user's: take their access away.
    Fix(u32),
    /// Others may write to it, and it is another user's.
    Refuse,
}

fn dir_verdict(mode: u32, owner: u32, me: u32) -> DirVerdict {
    let mode = mode & 0o7777;
    let writable_by_others = mode & 0o022 != 0 && mode & 0o1000 == 0;
    match (writable_by_others, owner == me) {
        (false, _) => DirVerdict::Safe,
        (true, true) => DirVerdict::Fix(mode & !0o027),
        (true, false) => DirVerdict::Refuse,
    }
}

/// Why the existing socket directory `dir` (metadata `m`) cannot be used,
/// if it cannot: others may write to it (so replace the socket with their
/// own) and it is not this user's to fix. A sticky directory (`/tmp`) is
/// safe: nobody else may remove or rename what is in it.
pub fn socket_dir_problem(dir: &Path, m: &fs::Metadata) -> Option<String> {
    let mode = m.mode() & 0o7777;
    (dir_verdict(mode, m.uid(), nix::unistd::geteuid().as_raw()) == DirVerdict::Refuse).then(|| {
        format!(
            "the socket's directory {} is mode {mode:04o} and owned by uid {}: other users could replace \
             the socket. Make it `chmod 0750 {}` (or let systemd create it: RuntimeDirectory=)",
            dir.display(),
            m.uid(),
            dir.display()
        )
    })
}

/// Makes an existing socket directory safe before binding: group and
/// others lose write access (and others every access) when it is this
/// user's; another user's directory that others may write to is refused.
fn secure_socket_dir(dir: &Path) -> Result<(), IpcError> {
    let m = fs::metadata(dir).map_err(|source| IpcError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    if let Some(problem) = socket_dir_problem(dir, &m) {
        return Err(IpcError::UnsafeDir { message: problem });
    }
    let mode = m.mode() & 0o7777;
    if let DirVerdict::Fix(fixed) = dir_verdict(mode, m.uid(), nix::unistd::geteuid().as_raw()) {
        fs::set_permissions(dir, fs::Permissions::from_mode(fixed)).map_err(|source| {
            IpcError::CreateDir {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        warn!(
            "the socket's directory {} was mode {mode:04o} (others could replace the socket): made it {fixed:04o}",
            dir.display()
        );
    }
    Ok(())
}

/// Creates the socket's directory if missing (mode 0750), or makes an
/// existing one safe (see [`socket_dir_problem`]), removes a stale socket
/// left by a daemon that died, refuses to take over a socket another daemon
/// still answers on (or a path that is not a socket), binds, and makes the
/// socket mode 0660. Must be called inside a Tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, IpcError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if dir.exists() {
            secure_socket_dir(dir)?;
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o750)))
                .map_err(|source| IpcError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
    }
    let bind_err = |source| IpcError::Bind {
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(IpcError::InUse {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                debug!(path = %path.display(), "removing a stale socket");
                fs::remove_file(path).map_err(bind_err)?;
            }
            Err(e) => return Err(bind_err(e)),
        },
        Ok(_) => {
            return Err(IpcError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    Ok(listener)
}

/// How long a connection may stay open with no request running and
/// nothing sent before the daemon closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How [`serve_with`] treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A connection with no request running that sends nothing for this
    /// long is closed ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// What the accept loop knows of one open connection.
#[derive(Debug)]
struct ConnInfo {
    /// Requests running now.
    in_flight: AtomicUsize,
    /// When it last sent a request or a request of it ended.
    last_active: Mutex<tokio::time::Instant>,
    /// Cancelled to close it.
    closed: CancellationToken,
}

impl ConnInfo {
    fn touch(&self) {
        *self
            .last_active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
    }

    fn idle_since(&self) -> Option<tokio::time::Instant> {
        (self.in_flight.load(Ordering::SeqCst) == 0).then(|| {
            *self
                .last_active
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }
}

/// Serves connections on `listener` until `shutdown` is cancelled, with the
/// default [`ServeOptions`]; see [`serve_with`].
pub async fn serve<H: Handler>(listener: UnixListener, handler: Arc<H>, shutdown: CancellationToken) {
    serve_with(listener, handler, shutdown, ServeOptions::default()).await;
}

/// Serves connections on `listener` until `shutdown` is cancelled: a task
/// per connection, a task per request. Never fails: a broken connection is
/// logged and closed, and the listener keeps accepting.
///
/// Idle connections cannot lock the operator out: one with no request
/// running closes after `idle_timeout`, and when every slot is taken the
/// connection idle the longest is closed to make room for the new one. Only
/// when every connection is running a request is a newcomer told `busy`.
pub async fn serve_with<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: CancellationToken,
    options: ServeOptions,
) {
    let slots = Arc::new(Semaphore::new(Limits::DEFAULT.ipc_connections));
    let mut conns = JoinSet::new();
    let open: Arc<Mutex<Vec<Arc<ConnInfo>>>> = Arc::new(Mutex::new(Vec::new()));
    let mut next_conn = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => log_join(done, "connection"),
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off a little.
                        warn!("control socket: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let slot = match slots.clone().try_acquire_owned() {
                    Ok(slot) => slot,
                    Err(_) => match make_room(&open, &slots).await {
                        Some(slot) => slot,
                        None => {
                            warn!(
                                "control socket: {} connections open, each running a request; turning one away",
                                Limits::DEFAULT.ipc_connections
                            );
                            turn_away(&stream);
                            continue;
                        }
                    },
                };
                next_conn += 1;
                let info = Arc::new(ConnInfo {
                    in_flight: AtomicUsize::new(0),
                    last_active: Mutex::new(tokio::time::Instant::now()),
                    closed: shutdown.child_token(),
                });
                lock_open(&open).push(info.clone());
                let (handler, open) = (handler.clone(), open.clone());
                let conn = next_conn;
                conns.spawn(async move {
                    connection(conn, stream, handler, info.clone(), options).await;
                    lock_open(&open).retain(|c| !Arc::ptr_eq(c, &info));
                    drop(slot);
                });
            }
        }
    }
    debug!(open = conns.len(), "control socket: shutting down");
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        warn!("control socket: requests still running after {SHUTDOWN_GRACE:?}; aborting them");
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

fn lock_open(open: &Mutex<Vec<Arc<ConnInfo>>>) -> std::sync::MutexGuard<'_, Vec<Arc<ConnInfo>>> {
    open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every slot is taken: closes the connection idle the longest (none of its
/// requests running) and returns its slot, or `None` when all are busy.
async fn make_room(open: &Mutex<Vec<Arc<ConnInfo>>>, slots: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    let victim = lock_open(open)
        .iter()
        .filter(|c| !c.closed.is_cancelled())
        .filter_map(|c| c.idle_since().map(|t| (t, c.clone())))
        .min_by_key(|(t, _)| *t)
        .map(|(_, c)| c)?;
    debug!("control socket: all slots taken; closing the connection idle the longest");
    victim.closed.cancel();
    // Its task ends at once (nothing runs on it) and frees its slot.
    tokio::time::timeout(EVICT_WAIT, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// How long a newcomer waits for the slot of an idle connection closed for it.
const EVICT_WAIT: Duration = Duration::from_secs(2);

/// Tells a client over the connection limit why it is dropped (best effort,
/// without waiting).
fn turn_away(stream: &UnixStream) {
    let reply = Reply {
        id: 0,
        last: true,
        kind: Some(reply::Kind::Error(PbError {
            code: code::BUSY.into(),
            message: format!(
                "atlas-runnerd is serving {} connections already; try again",
                Limits::DEFAULT.ipc_connections
            ),
            ..Default::default()
        })),
    };
    if let Ok(frame) = frame::encode_frame(&reply) {
        let _ = stream.try_write(&frame);
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>, what: &str) {
    if let Err(e) = done
        && e.is_panic()
    {
        error!("control socket: a {what} task panicked");
    }
}

/// How long a started frame may take to arrive whole.
pub const PARTIAL_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// One client: reads requests, spawns their handlers, and closes on EOF, a
/// bad frame, a write failure or stall, idleness, or shutdown (`info.closed`).
async fn connection<H: Handler>(
    conn: u64,
    stream: UnixStream,
    handler: Arc<H>,
    info: Arc<ConnInfo>,
    options: ServeOptions,
) {
    debug!(conn, "control socket: client connected");
    let closed = info.closed.clone();
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(REPLY_QUEUE);
    let writer = tokio::spawn(write_replies(conn, write, rx, closed.clone()));
    let mut frames = FramedRead::new(read, frame::codec());
    let in_flight = Arc::new(Semaphore::new(Limits::DEFAULT.ipc_in_flight));
    let mut handlers = JoinSet::new();
    let tick = (PARTIAL_FRAME_TIMEOUT / 10).min(options.idle_timeout / 4);
    let mut partial_check = tokio::time::interval(tick);
    partial_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        let next = tokio::select! {
            _ = closed.cancelled() => break,
            Some(done) = handlers.join_next(), if !handlers.is_empty() => {
                log_join(done, "request");
                info.in_flight.fetch_sub(1, Ordering::SeqCst);
                info.touch();
                continue;
            }
            next = frames.next() => next,
            // A client that started a frame and stopped sending holds a
            // connection slot: it gets PARTIAL_FRAME_TIMEOUT to finish it
            // (`next` is cancel-safe: buffered bytes stay buffered). One
            // that sends nothing and has nothing running is closed after
            // the idle timeout.
            _ = partial_check.tick() => {
                if frames.read_buffer().is_empty() {
                    partial_since = None;
                    if info.idle_since().is_some_and(|t| t.elapsed() >= options.idle_timeout) {
                        debug!(conn, "control socket: closing a connection idle for {:?}", options.idle_timeout);
                        break;
                    }
                } else if partial_since.get_or_insert_with(tokio::time::Instant::now).elapsed() >= PARTIAL_FRAME_TIMEOUT {
                    warn!(conn, "control socket: closing a connection that left a frame unfinished for {PARTIAL_FRAME_TIMEOUT:?}");
                    break;
                }
                continue;
            }
        };
        partial_since = None;
        info.touch();
        let bytes = match next {
            None => {
                debug!(conn, "control socket: client closed the connection");
                break;
            }
            Some(Err(e)) => {
                warn!(conn, "control socket: closing a connection: {e}");
                break;
            }
            Some(Ok(bytes)) => bytes,
        };
        let req = match Request::decode(&bytes[..]) {
            Ok(req) => req,
            Err(e) => {
                warn!(
                    conn,
                    "control socket: closing a connection that sent a malformed request: {e}"
                );
                break;
            }
        };
        let sink = ReplySink::new(req.id, tx.clone(), closed.clone());
        if let Err(reason) = frame::validate_request(&req) {
            debug!(conn, id = req.id, "control socket: bad request: {reason}");
            sink.error(code::BAD_REQUEST, reason).await;
            continue;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            sink.error(
                code::BUSY,
                format!(
                    "{} requests already in flight on this connection",
                    Limits::DEFAULT.ipc_in_flight
                ),
            )
            .await;
            continue;
        };
        let handler = handler.clone();
        info.in_flight.fetch_add(1, Ordering::SeqCst);
        handlers.spawn(async move {
            let _permit = permit;
            run_handler(&*handler, req, sink).await;
        });
    }
    closed.cancel();
    drop(frames);
    // Handlers see `closed` and end; the connection's slot is held until
    // they have, so lingering handlers count against the limit.
    while let Some(done) = handlers.join_next().await {
        log_join(done, "request");
    }
    drop(tx);
    log_join(writer.await, "writer");
    debug!(conn, "control socket: connection closed");
}

/// Runs one request; makes sure the client gets a last reply even when the
/// handler forgets it or panics.
async fn run_handler<H: Handler>(handler: &H, req: Request, sink: ReplySink) {
    let id = req.id;
    let outcome = std::panic::AssertUnwindSafe(handler.handle(req, sink.clone()))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        error!(id, "control socket: a request handler panicked");
    }
    if !sink.finished.load(Ordering::Acquire) && !sink.is_closed() {
        let message = if outcome.is_err() {
            "the daemon failed while answering (see its log)"
        } else {
            "the daemon ended the request without an answer"
        };
        sink.error(code::INTERNAL, message).await;
    }
}

/// Writes queued replies in order; a failed write, or one the client does
/// not take within [`WRITE_STALL`], closes the connection.
async fn write_replies(
    conn: u64,
    mut out: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Reply>,
    closed: CancellationToken,
) {
    loop {
        let reply = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
            _ = closed.cancelled() => break,
        };
        let Ok(bytes) = frame::encode_frame(&reply) else {
            // ReplySink::push already replaced oversized replies.
            continue;
        };
        match tokio::time::timeout(WRITE_STALL, out.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(conn, "control socket: client went away: {e}");
                break;
            }
            Err(_) => {
                warn!(
                    conn,
                    "control socket: client stopped reading for {WRITE_STALL:?}; closing it"
                );
                break;
            }
        }
    }
    closed.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_directories_others_may_write_are_fixed_or_refused() {
        assert_eq!(dir_verdict(0o750, 1000, 1000), DirVerdict::Safe);
        assert_eq!(dir_verdict(0o755, 0, 1000), DirVerdict::Safe);
        assert_eq!(
            dir_verdict(0o1777, 0, 1000),
            DirVerdict::Safe,
            "sticky, like /tmp"
        );
        assert_eq!(dir_verdict(0o777, 1000, 1000), DirVerdict::Fix(0o750));
        assert_eq!(dir_verdict(0o775, 1000, 1000), DirVerdict::Fix(0o750));
        assert_eq!(dir_verdict(0o2777, 1000, 1000), DirVerdict::Fix(0o2750));
        assert_eq!(dir_verdict(0o777, 0, 1000), DirVerdict::Refuse);
        assert_eq!(dir_verdict(0o770, 0, 1000), DirVerdict::Refuse);
    }
}
