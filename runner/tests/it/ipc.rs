//! The control socket against a test handler (not the daemon): round trips,
//! streams that end when the client goes, interleaving, and connections
//! that misbehave (garbage, oversized or half frames) without harming the
//! server or other clients.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atlas_proto::Limits;
use atlas_proto::runner::v1::{
    ConsoleOutput, ConsoleRequest, Done, Event, EventsRequest, LogLine, LogsRequest, PowerAction,
    PowerOutcome, PowerRequest, PowerResult, Reply, Request, RollbackRequest, Status, StatusRequest,
    UpdateInfo, UpdateOutcome, UpdateRequest, reply, request,
};
use atlas_runner::ipc::{self, Client, Handler, IpcError, ReplySink};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// A safety limit for waits (never an assertion about speed).
const PATIENCE: Duration = Duration::from_secs(60);

async fn patient<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("did not happen within the safety limit")
}

/// Answers like a small daemon: status; start is refused, stop queues then
/// finishes; logs (tail, follow); console broadcasts its command as an
/// event; events streams them; update fails; rollback forgets to answer;
/// backup panics.
#[derive(Debug)]
pub struct TestHandler {
    events: broadcast::Sender<String>,
    /// The id of each streaming request whose handler saw `closed()`.
    closed_seen: mpsc::UnboundedSender<u64>,
    pub handled: AtomicUsize,
}

impl TestHandler {
    /// A handler whose closed-stream notices go nowhere.
    pub fn new() -> Self {
        Self {
            events: broadcast::channel(64).0,
            closed_seen: mpsc::unbounded_channel().0,
            handled: AtomicUsize::new(0),
        }
    }
}

impl Handler for TestHandler {
    async fn handle(&self, req: Request, sink: ReplySink) {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let Some(kind) = req.kind else {
            return sink.error("bad_request", "validated before").await;
        };
        match kind {
            request::Kind::Status(_) => {
                let s = Status {
                    state: "running".into(),
                    build: "b1".into(),
                    version: "1.21.1".into(),
                    uptime_secs: 3723,
                    players_online: 2,
                    players_max: 20,
                    memory_rss_bytes: 512 << 20,
                    pid: 42,
                    restarts: 1,
                    queued_actions: 0,
                    ..Default::default()
                };
                let _ = sink.finish(reply::Kind::Status(s)).await;
            }
            request::Kind::Power(p) => {
                let power = |outcome: PowerOutcome, reason: &str| {
                    reply::Kind::Power(PowerResult {
                        outcome: outcome as i32,
                        reason: reason.into(),
                        state: "stopped".into(),
                    })
                };
                if p.action == PowerAction::Start as i32 {
                    let _ = sink
                        .finish(power(PowerOutcome::Refused, "the server is already running"))
                        .await;
                } else if p.wait {
                    let _ = sink.send(power(PowerOutcome::Queued, "1 action(s) ahead")).await;
                    let _ = sink.finish(power(PowerOutcome::Done, "")).await;
                } else {
                    let _ = sink.finish(power(PowerOutcome::Run, "")).await;
                }
            }
            request::Kind::Logs(l) => {
                for i in 0..l.tail {
                    let line = LogLine {
                        unix_ms: 1,
                        stream: "stdout".into(),
                        line: format!("line {i}"),
                    };
                    if sink.send(reply::Kind::Log(line)).await.is_err() {
                        return;
                    }
                }
                if !l.follow {
                    let _ = sink.finish(reply::Kind::Done(Done::default())).await;
                    return;
                }
                sink.closed().await;
                let _ = self.closed_seen.send(sink.id());
            }
            request::Kind::Console(c) => {
                let _ = self.events.send(c.command.clone());
                let _ = sink
                    .finish(reply::Kind::Console(ConsoleOutput {
                        output: format!("ran {}", c.command),
                    }))
                    .await;
            }
            request::Kind::Events(_) => {
                let mut rx = self.events.subscribe();
                // Subscribed: tell the client, so a test can trigger events now.
                let _ = sink.send(event("hello")).await;
                loop {
                    tokio::select! {
                        e = rx.recv() => match e {
                            Ok(m) => if sink.send(event(&m)).await.is_err() { break },
                            Err(_) => break,
                        },
                        _ = sink.closed() => break,
                    }
                }
                let _ = self.closed_seen.send(sink.id());
            }
            request::Kind::Update(u) if u.apply => {
                let e = atlas_proto::runner::v1::Error {
                    code: "failed".into(),
                    message: "cannot reach http://127.0.0.1:9/pack/pointers/prod: connection refused".into(),
                    kind: "source".into(),
                    transient: true,
                };
                let _ = sink.finish(reply::Kind::Error(e)).await;
            }
            request::Kind::Update(_) => {
                let info = UpdateInfo {
                    outcome: UpdateOutcome::Available as i32,
                    current_build: "b1".into(),
                    target_build: "b2".into(),
                    target_version: 7,
                    target_pack_version: "1.0.7".into(),
                    message: String::new(),
                };
                let _ = sink.finish(reply::Kind::Update(info)).await;
            }
            request::Kind::Rollback(_) => {}
            request::Kind::Backup(_) => panic!("the test handler panics on backups"),
        }
    }
}

fn event(message: &str) -> reply::Kind {
    reply::Kind::Event(Event {
        unix_ms: 1,
        kind: "test".into(),
        message: message.into(),
        json: "{\"n\":1}".into(),
    })
}

/// A server on a socket in a temporary directory.
#[derive(Debug)]
pub struct TestServer {
    pub path: PathBuf,
    pub handler: Arc<TestHandler>,
    pub closed_seen: mpsc::UnboundedReceiver<u64>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run").join("runner.sock");
        let listener = ipc::bind(&path).expect("bind");
        let (tx, closed_seen) = mpsc::unbounded_channel();
        let handler = Arc::new(TestHandler {
            events: broadcast::channel(64).0,
            closed_seen: tx,
            handled: AtomicUsize::new(0),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(ipc::serve(listener, handler.clone(), shutdown.clone()));
        Self {
            path,
            handler,
            closed_seen,
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.path).await.expect("connect")
    }

    /// Cancels the server and waits for `serve` to return.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            patient(t).await.expect("serve ended cleanly");
        }
    }
}

fn status() -> request::Kind {
    request::Kind::Status(StatusRequest {})
}

async fn assert_served(path: &Path) {
    let mut c = Client::connect(path).await.expect("a new client connects");
    let r = patient(c.call_one(status())).await.expect("status");
    assert!(
        matches!(r.kind, Some(reply::Kind::Status(ref s)) if s.pid == 42),
        "{r:?}"
    );
}

/// A raw connection: writes `bytes`, then reads until the server closes.
async fn raw_until_closed(path: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    patient(s.read_to_end(&mut got))
        .await
        .expect("the server closes the connection");
    got
}

#[tokio::test]
async fn a_request_gets_its_reply_with_its_id() {
    let server = TestServer::start();
    let mut c = server.client().await;
    let r = c.call_one(status()).await.expect("status");
    assert!(r.last && r.id > 0);
    let Some(reply::Kind::Status(s)) = r.kind else {
        panic!("{r:?}")
    };
    assert_eq!((s.state.as_str(), s.pid), ("running", 42));
    // Several replies for one request, the last marked.
    let mut stream = c
        .call(request::Kind::Power(PowerRequest {
            action: PowerAction::Stop as i32,
            wait: true,
        }))
        .await
        .expect("call");
    let first = patient(stream.next()).await.expect("a reply").expect("ok");
    assert!(!first.last);
    assert_eq!(first.id, stream.id());
    let second = patient(stream.next()).await.expect("a reply").expect("ok");
    assert!(second.last);
    assert!(stream.next().await.is_none(), "nothing after the last reply");
}

#[tokio::test]
async fn a_followed_stream_ends_when_the_client_goes_away() {
    let mut server = TestServer::start();
    let mut c = server.client().await;
    let mut logs = c
        .call(request::Kind::Logs(LogsRequest {
            tail: 3,
            follow: true,
        }))
        .await
        .expect("call");
    for i in 0..3 {
        let r = patient(logs.next()).await.expect("a line").expect("ok");
        assert!(
            matches!(r.kind, Some(reply::Kind::Log(ref l)) if l.line == format!("line {i}")),
            "{r:?}"
        );
        assert!(!r.last);
    }
    let id = logs.id();
    drop(logs);
    drop(c);
    assert_eq!(
        patient(server.closed_seen.recv()).await,
        Some(id),
        "the handler saw closed()"
    );
    assert_served(&server.path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_and_two_requests_on_one_connection_interleave() {
    let mut server = TestServer::start();
    let mut a = server.client().await;
    let mut events = a
        .call(request::Kind::Events(EventsRequest {}))
        .await
        .expect("events");
    let hello = patient(events.next()).await.expect("hello").expect("ok");
    assert!(matches!(hello.kind, Some(reply::Kind::Event(ref e)) if e.message == "hello"));
    // While A's stream is open, A itself and B are answered.
    assert_served(&server.path).await;
    let r = patient(a.call_one(status()))
        .await
        .expect("status on the streaming connection");
    assert!(matches!(r.kind, Some(reply::Kind::Status(_))));
    let mut b = server.client().await;
    let r = patient(b.call_one(request::Kind::Console(ConsoleRequest {
        command: "say hi".into(),
    })))
    .await
    .expect("console");
    assert!(
        matches!(r.kind, Some(reply::Kind::Console(ref c)) if c.output == "ran say hi"),
        "{r:?}"
    );
    let e = patient(events.next()).await.expect("an event").expect("ok");
    assert!(
        matches!(e.kind, Some(reply::Kind::Event(ref e)) if e.message == "say hi"),
        "{e:?}"
    );
    assert_eq!(e.id, events.id());
    drop((a, events));
    assert!(patient(server.closed_seen.recv()).await.is_some());
}

#[tokio::test]
async fn a_bad_request_is_answered_and_the_connection_stays() {
    let server = TestServer::start();
    let mut s = UnixStream::connect(&server.path).await.expect("connect");
    let frame = |r: &Request| ipc::encode_frame(r).expect("fits");
    s.write_all(&frame(&Request { id: 9, kind: None }))
        .await
        .expect("write");
    let power = PowerRequest {
        action: PowerAction::Unspecified as i32,
        wait: false,
    };
    s.write_all(&frame(&Request {
        id: 10,
        kind: Some(request::Kind::Power(power)),
    }))
    .await
    .expect("write");
    s.write_all(&frame(&Request {
        id: 11,
        kind: Some(status()),
    }))
    .await
    .expect("write");
    let mut frames = tokio_util::codec::FramedRead::new(s, ipc::codec());
    use futures_util::StreamExt as _;
    for id in [9, 10] {
        let bytes = patient(frames.next()).await.expect("a reply").expect("frame");
        let r = Reply::decode(&bytes[..]).expect("reply");
        assert_eq!(r.id, id);
        assert!(r.last);
        assert!(
            matches!(r.kind, Some(reply::Kind::Error(ref e)) if e.code == "bad_request"),
            "{r:?}"
        );
    }
    let bytes = patient(frames.next()).await.expect("a reply").expect("frame");
    assert!(matches!(
        ipc::decode_reply(&bytes).expect("reply").kind,
        Some(reply::Kind::Status(_))
    ));
    assert_eq!(
        server.handler.handled.load(Ordering::SeqCst),
        1,
        "bad requests never reach the handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_that_connection_only() {
    let mut server = TestServer::start();
    let mut bystander = server.client().await;
    let mut stream = bystander
        .call(request::Kind::Events(EventsRequest {}))
        .await
        .expect("events");
    patient(stream.next()).await.expect("hello").expect("ok");
    // A well-framed message that is not protobuf.
    let got = raw_until_closed(&server.path, &[0, 0, 0, 3, 0x0a, 0xff, 0x01]).await;
    assert!(got.is_empty(), "no reply to garbage");
    // Not even a frame: an HTTP request reads as a ~1.2 GB length prefix.
    raw_until_closed(&server.path, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_served(&server.path).await;
    let r = patient(bystander.call_one(status()))
        .await
        .expect("the other client is still served");
    assert!(matches!(r.kind, Some(reply::Kind::Status(_))));
    server.stop().await;
    assert!(
        matches!(patient(stream.next()).await, Some(Err(IpcError::Closed))),
        "shutdown ends streams"
    );
}

#[tokio::test]
async fn an_oversized_length_prefix_closes_the_connection() {
    let server = TestServer::start();
    let got = raw_until_closed(&server.path, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    assert!(got.is_empty());
    let over = (Limits::DEFAULT.ipc_frame_bytes as u32 + 1).to_be_bytes();
    raw_until_closed(&server.path, &over).await;
    assert_served(&server.path).await;
    assert_eq!(
        server.handler.handled.load(Ordering::SeqCst),
        1,
        "only the last status was handled"
    );
}

#[tokio::test]
async fn a_client_that_sends_half_a_frame_and_vanishes_harms_nothing() {
    let server = TestServer::start();
    let frame = ipc::encode_frame(&Request {
        id: 1,
        kind: Some(status()),
    })
    .expect("fits");
    {
        let mut s = UnixStream::connect(&server.path).await.expect("connect");
        s.write_all(&frame[..frame.len() / 2]).await.expect("write");
        // Dropped here: the connection ends mid-frame.
    }
    let mut s = UnixStream::connect(&server.path).await.expect("connect");
    s.write_all(&[0, 0, 0, 100, 1, 2]).await.expect("write");
    s.shutdown().await.expect("half-close mid-frame");
    let mut got = Vec::new();
    patient(s.read_to_end(&mut got)).await.expect("closed");
    assert_served(&server.path).await;
    assert_eq!(server.handler.handled.load(Ordering::SeqCst), 1);
}

// Paused time: the server's partial-frame timer fires as soon as nothing
// else can run, so the test does not wait the real 10 s.
#[tokio::test(start_paused = true)]
async fn a_client_that_stops_mid_frame_is_closed_after_the_partial_frame_timeout() {
    let server = TestServer::start();
    let started = tokio::time::Instant::now();
    let got = raw_until_closed(&server.path, &[0, 0, 0, 100, 1, 2]).await;
    assert!(got.is_empty());
    assert!(started.elapsed() >= ipc::PARTIAL_FRAME_TIMEOUT);
    assert_served(&server.path).await;
}

#[tokio::test]
async fn too_many_requests_in_flight_on_one_connection_are_busy() {
    let server = TestServer::start();
    let mut c = server.client().await;
    // Requests on a connection are read in order, and these hold their
    // slot until the client goes: the next one finds none left.
    let mut streams = Vec::new();
    for _ in 0..Limits::DEFAULT.ipc_in_flight {
        streams.push(
            c.call(request::Kind::Logs(LogsRequest {
                tail: 0,
                follow: true,
            }))
            .await
            .expect("call"),
        );
    }
    let r = patient(c.call_one(status())).await.expect("reply");
    assert!(
        matches!(r.kind, Some(reply::Kind::Error(ref e)) if e.code == "busy"),
        "{r:?}"
    );
    // Another connection has its own budget.
    assert_served(&server.path).await;
}

#[tokio::test]
async fn a_handler_that_ends_without_answering_or_panics_still_ends_the_request() {
    let server = TestServer::start();
    let mut c = server.client().await;
    let r = patient(c.call_one(request::Kind::Rollback(RollbackRequest {})))
        .await
        .expect("reply");
    assert!(
        matches!(r.kind, Some(reply::Kind::Error(ref e)) if e.code == "internal"),
        "{r:?}"
    );
    let backup = atlas_proto::runner::v1::BackupRequest {
        op: Some(atlas_proto::runner::v1::backup_request::Op::List(
            Default::default(),
        )),
    };
    let r = patient(c.call_one(request::Kind::Backup(backup)))
        .await
        .expect("reply");
    assert!(
        matches!(r.kind, Some(reply::Kind::Error(ref e)) if e.code == "internal"),
        "{r:?}"
    );
    let r = patient(c.call_one(request::Kind::Update(UpdateRequest { apply: true })))
        .await
        .expect("reply");
    assert!(
        matches!(r.kind, Some(reply::Kind::Error(ref e)) if e.code == "failed"),
        "{r:?}"
    );
    assert_served(&server.path).await;
}

#[tokio::test]
async fn the_socket_is_0660_in_a_0750_directory() {
    let server = TestServer::start();
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&server.path), 0o660);
    assert_eq!(mode(server.path.parent().expect("dir")), 0o750);
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runner.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists(), "a socket file left by a daemon that died");
    let live = ipc::bind(&path).expect("the stale socket is replaced");
    match ipc::bind(&path) {
        Err(e @ IpcError::InUse { .. }) => {
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        other => panic!("a live socket must be refused: {other:?}"),
    }
    drop(live);
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").expect("write");
    assert!(matches!(ipc::bind(&file), Err(IpcError::NotASocket { .. })));
    assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
}

#[tokio::test]
async fn connecting_to_nothing_names_the_path_and_what_to_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.sock");
    let err = Client::connect(&path).await.expect_err("nothing there");
    assert!(err.is_unreachable());
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("systemctl status atlas-runnerd"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_client_over_the_connection_limit_is_told_busy_when_every_connection_is_working() {
    let server = TestServer::start();
    let mut held = Vec::new();
    for _ in 0..Limits::DEFAULT.ipc_connections {
        let mut c = server.client().await;
        // A followed log stream: this connection is busy, not idle.
        let mut stream = c
            .call(request::Kind::Logs(LogsRequest {
                tail: 1,
                follow: true,
            }))
            .await
            .expect("logs -f");
        patient(stream.next()).await.expect("a line").expect("reply");
        held.push((c, stream));
    }
    let mut extra = server.client().await;
    let r = patient(extra.call_one(status())).await.expect("a reply");
    assert!(
        matches!(r.kind, Some(reply::Kind::Error(ref e)) if e.code == "busy"),
        "{r:?}"
    );
    drop(held);
    // Slots free up as those clients leave (polled, within the safety limit).
    patient(async {
        loop {
            let mut c = server.client().await;
            if let Ok(Reply {
                kind: Some(reply::Kind::Status(_)),
                ..
            }) = c.call_one(status()).await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
