//! The core the service stand-ins share: hosted files, a request log,
//! one-shot faults per path, and a running axum app on 127.0.0.1.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

/// One request answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    /// Path and query, e.g. `/v2/versions?ids=...`.
    pub path: String,
    pub status: u16,
}

/// A misbehaviour for the next request of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFault {
    /// This status, empty body.
    Status(u16),
    /// 429 with this `Retry-After` value.
    TooManyRequests(String),
    /// 429 the way Modrinth's limiter answers it: `X-Ratelimit-Remaining: 0`,
    /// `X-Ratelimit-Reset: <secs>` and no `Retry-After` (API routes only).
    RateLimited { reset_secs: u64 },
    /// Announce the real length, send `n` bytes, then drop the connection.
    Abort(usize),
    /// These bytes instead of the file.
    Body(Vec<u8>),
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hosted files, request log and fault queues shared by the fakes.
#[derive(Debug, Default)]
pub struct FakeHost {
    files: Mutex<HashMap<String, Bytes>>,
    log: Mutex<Vec<Logged>>,
    faults: Mutex<HashMap<String, VecDeque<FakeFault>>>,
}

impl FakeHost {
    pub fn put_file(&self, path: &str, bytes: impl Into<Bytes>) {
        lock(&self.files).insert(path.to_owned(), bytes.into());
    }

    pub fn remove_file(&self, path: &str) {
        lock(&self.files).remove(path);
    }

    /// Queues `fault` for the next request of `path` (no query string).
    pub fn push_fault(&self, path: &str, fault: FakeFault) {
        lock(&self.faults)
            .entry(path.to_owned())
            .or_default()
            .push_back(fault);
    }

    pub fn requests(&self) -> Vec<Logged> {
        lock(&self.log).clone()
    }

    pub fn reset_requests(&self) {
        lock(&self.log).clear();
    }

    pub(crate) fn log(&self, method: &str, path: &str, status: u16) {
        lock(&self.log).push(Logged {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
        });
    }

    /// The next queued fault of `path`, if any.
    pub(crate) fn take_fault(&self, path: &str) -> Option<FakeFault> {
        lock(&self.faults).get_mut(path).and_then(VecDeque::pop_front)
    }

    /// Answers a file download (with any queued fault), `None` if no such file.
    pub(crate) fn serve_file(&self, path: &str) -> Option<Response> {
        let fault = self.take_fault(path);
        let real = lock(&self.files).get(path).cloned();
        Some(match fault {
            Some(FakeFault::Status(code)) => status(code),
            Some(FakeFault::TooManyRequests(after)) => {
                let mut r = status(429);
                if let Ok(v) = HeaderValue::from_str(&after) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            Some(FakeFault::RateLimited { .. }) => status(429),
            Some(FakeFault::Body(b)) => bytes_response(Bytes::from(b)),
            Some(FakeFault::Abort(n)) => {
                let real = real?;
                let len = real.len();
                use futures_util::StreamExt as _;
                let first = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(
                    real.slice(..n.min(len)),
                )));
                // Let the head and the first bytes reach the client before the drop.
                let cut = futures_util::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "fault",
                    ))
                });
                let mut r = Response::new(Body::from_stream(first.chain(cut)));
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                r
            }
            None => bytes_response(real?),
        })
    }
}

pub(crate) fn status(code: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn bytes_response(b: Bytes) -> Response {
    let len = b.len();
    let mut r = Response::new(Body::from(b));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

pub(crate) fn json_response(v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `json_response` with another status.
pub(crate) fn json_status(code: u16, v: &Value) -> Response {
    let mut r = json_response(v);
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A running axum app on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub(crate) struct Running {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn start(app: axum::Router) -> anyhow::Result<Self> {
        let handle = tokio::runtime::Handle::try_current().context("fake servers need a tokio runtime")?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let _guard = handle.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = handle.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// Decodes `%XX` and `+` in a query value.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of query parameter `name`, decoded; `None` when absent.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}
