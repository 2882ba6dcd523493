//! Loopback static HTTP server for tests: serves a directory (a store) on
//! 127.0.0.1 over HTTP/1.1 with strong ETags and `If-None-Match`, records
//! every request, answers `Range: bytes=N-` / `bytes=N-M` with 206 and
//! `Content-Range` (unless an `If-Range` names another representation: then
//! 200 and the whole object, RFC 9110 §13.1.5, as nginx and Caddy do), and
//! injects faults per path (status, body, truncation, extra bytes, aborted
//! connection, slow trickle, wrong Content-Length, ignored ranges, stale
//! 304s, no answer at all), forever or for the next few requests only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Object key relative to the server's prefix, e.g. `packs/p/channels/dev.json`
    /// (the raw URL path when it is outside the prefix).
    pub path: String,
    pub status: u16,
    /// Body bytes sent (as planned; an aborted body counts what was sent before the abort).
    pub bytes: u64,
    /// The `If-None-Match` header, if the client sent one.
    pub if_none_match: Option<String>,
    /// The `Range` header, if the client sent one.
    pub range: Option<String>,
    /// The `If-Range` header, if the client sent one.
    pub if_range: Option<String>,
}

/// A misbehaviour to inject for one object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Serve these bytes instead of the file (even when it does not exist).
    Body(Vec<u8>),
    /// Serve only the first `n` bytes (a short but well-formed response).
    Truncate(usize),
    /// Serve the real bytes followed by these.
    Extra(Vec<u8>),
    /// Announce the real Content-Length, send the bytes before offset `n` of
    /// the object, then drop the connection. A range request starting at or
    /// after `n` gets no bytes before the drop.
    Abort(usize),
    /// Send the body in chunks of `chunk` bytes with `delay_ms` between them.
    Trickle { chunk: usize, delay_ms: u64 },
    /// Announce a Content-Length `delta` bytes off the real one (the body is
    /// the real bytes, cut short when the announced length is smaller; when
    /// it is larger the connection closes before the announced end).
    WrongLength(i64),
    /// Ignore `Range`: always answer 200 with the whole object.
    IgnoreRange,
    /// Answer 429 with this `Retry-After` header value and an empty body.
    TooManyRequests(String),
    /// Ignore `If-None-Match`: always answer 200.
    IgnoreConditional,
    /// Answer 304 to any conditional request, whatever the ETag (a stale CDN).
    AlwaysNotModified,
    /// Accept the request and never answer: no status line, no headers (a
    /// hung server or proxy). The connection stays open until the client
    /// gives up or the server stops.
    Stall,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    prefix: String,
    log: Mutex<Vec<Request>>,
    /// Fault per key, with how many more requests it applies to (`None`: forever).
    faults: Mutex<HashMap<String, (Fault, Option<usize>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct StaticServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl StaticServer {
    /// Serves `root` at `http://127.0.0.1:<port>/`. Must be called inside a tokio runtime.
    pub fn start(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        Self::start_with_prefix(root, "")
    }

    /// Serves `root` under a URL prefix, e.g. `bucket/prefix` gives
    /// `http://127.0.0.1:<port>/bucket/prefix/<key>`.
    pub fn start_with_prefix(root: impl Into<PathBuf>, prefix: &str) -> anyhow::Result<Self> {
        let handle = tokio::runtime::Handle::try_current()
            .context("StaticServer::start must be called inside a tokio runtime")?;
        let prefix = prefix.trim_matches('/');
        let inner = Arc::new(Inner {
            root: root.into(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(HashMap::new()),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let _guard = handle.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let app = axum::Router::new().fallback(serve).with_state(inner.clone());
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
            inner,
            shutdown: Some(tx),
            task,
        })
    }

    /// Base URL of the store, with a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}/{}", self.addr, self.inner.prefix)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.inner.log).clone()
    }

    /// Forgets the recorded requests.
    pub fn reset_requests(&self) {
        lock(&self.inner.log).clear();
    }

    /// Number of requests answered so far.
    pub fn count(&self) -> usize {
        lock(&self.inner.log).len()
    }

    /// Injects `fault` for the object `key` (relative to the prefix, no leading slash).
    pub fn set_fault(&self, key: &str, fault: Fault) {
        lock(&self.inner.faults).insert(key.trim_start_matches('/').to_owned(), (fault, None));
    }

    /// Injects `fault` for the next `times` requests of `key` only; later ones are served normally.
    pub fn set_fault_times(&self, key: &str, fault: Fault, times: usize) {
        lock(&self.inner.faults).insert(key.trim_start_matches('/').to_owned(), (fault, Some(times)));
    }

    /// Removes the fault for `key`.
    pub fn clear_fault(&self, key: &str) {
        lock(&self.inner.faults).remove(key.trim_start_matches('/'));
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// Strong ETag: the quoted hex SHA-256 of the content.
pub fn etag_of(content: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(content)))
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// Maps a key to a file under root, refusing anything that could escape it.
fn file_for(root: &Path, key: &str) -> Option<PathBuf> {
    if key.is_empty()
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\\'))
    {
        return None;
    }
    Some(key.split('/').fold(root.to_path_buf(), |p, s| p.join(s)))
}

async fn serve(State(inner): State<Arc<Inner>>, req: axum::extract::Request) -> Response {
    let method = req.method().clone();
    let raw = req.uri().path().trim_start_matches('/').to_owned();
    let key = raw.strip_prefix(inner.prefix.as_str()).map(str::to_owned);
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let if_range = req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fault = key.as_ref().and_then(|k| take_fault(&inner, k));
    if fault == Some(Fault::Stall) {
        std::future::pending::<()>().await;
    }
    let asked = Asked {
        method: &method,
        key: key.as_deref(),
        if_none_match: if_none_match.as_deref(),
        range: range.as_deref(),
        if_range: if_range.as_deref(),
    };
    let (resp, sent) = answer(&inner, &asked, fault).await;
    lock(&inner.log).push(Request {
        method: method.to_string(),
        path: key.unwrap_or(raw),
        status: resp.status().as_u16(),
        bytes: sent,
        if_none_match,
        range,
        if_range,
    });
    resp
}

/// The fault for `key`, counting down a limited one.
fn take_fault(inner: &Inner, key: &str) -> Option<Fault> {
    let mut faults = lock(&inner.faults);
    let (fault, left) = faults.get_mut(key)?;
    let fault = fault.clone();
    if let Some(n) = left {
        *n = n.saturating_sub(1);
        if *n == 0 {
            faults.remove(key);
        }
    }
    Some(fault)
}

/// What a request asks for.
struct Asked<'a> {
    method: &'a Method,
    key: Option<&'a str>,
    if_none_match: Option<&'a str>,
    range: Option<&'a str>,
    if_range: Option<&'a str>,
}

/// Parses `bytes=N-` or `bytes=N-M` against an object of `len` bytes; `None`
/// for anything else (served whole, as RFC 9110 allows), `Some(Err)` when unsatisfiable.
fn parse_range(header: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: usize = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len.checked_sub(1),
        e => Some(e.parse::<usize>().ok()?.min(len.saturating_sub(1))),
    };
    Some(match end {
        Some(end) if start <= end && start < len => Ok((start, end + 1)),
        _ => Err(()),
    })
}

/// The Content-Type a directory store's web server sends for a file, by
/// its extension (docs/FORMAT.md §1; nginx's mime.types and Caddy agree
/// on these): pages render as HTML, everything else is bytes.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("toml") => "application/toml",
        Some("zip") => "application/zip",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

async fn answer(inner: &Inner, asked: &Asked<'_>, fault: Option<Fault>) -> (Response, u64) {
    let method = asked.method;
    if method != Method::GET && method != Method::HEAD {
        return (empty(StatusCode::METHOD_NOT_ALLOWED), 0);
    }
    match &fault {
        Some(Fault::Status(code)) => {
            return (
                empty(StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)),
                0,
            );
        }
        Some(Fault::TooManyRequests(after)) => {
            let mut r = empty(StatusCode::TOO_MANY_REQUESTS);
            if let Ok(v) = HeaderValue::from_str(after) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return (r, 0);
        }
        _ => {}
    }
    let Some(path) = asked.key.and_then(|k| file_for(&inner.root, k)) else {
        return (empty(StatusCode::NOT_FOUND), 0);
    };
    let real = match (&fault, tokio::fs::read(&path).await) {
        (Some(Fault::Body(b)), _) => b.clone(),
        (_, Ok(b)) => b,
        (_, Err(_)) => return (empty(StatusCode::NOT_FOUND), 0),
    };
    let etag = etag_of(&real);
    if let Some(inm) = asked.if_none_match {
        let not_modified = match fault {
            Some(Fault::AlwaysNotModified) => true,
            Some(Fault::IgnoreConditional) => false,
            _ => etag_matches(inm, &etag),
        };
        if not_modified {
            let mut r = empty(StatusCode::NOT_MODIFIED);
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            return (r, 0);
        }
    }
    let full_len = real.len();
    // If-Range: the range only while the client's validator is the current
    // ETag (compared strongly); a date never matches (no Last-Modified is sent).
    let same = asked.if_range.is_none_or(|v| v.trim() == etag);
    let range = match (asked.range, &fault) {
        (_, Some(Fault::IgnoreRange)) | (None, _) => None,
        (Some(_), _) if !same => None,
        (Some(h), _) => match parse_range(h, full_len) {
            None => None,
            Some(Ok(r)) => Some(r),
            Some(Err(())) => {
                let mut r = empty(StatusCode::RANGE_NOT_SATISFIABLE);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{full_len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return (r, 0);
            }
        },
    };
    let (start, end) = range.unwrap_or((0, full_len));
    let part = real[start..end].to_vec();
    let part_len = part.len();
    let (body, sent, declared) = match fault {
        Some(Fault::Truncate(n)) => {
            let b = part[..n.min(part_len)].to_vec();
            let n = b.len();
            (Body::from(b), n, n)
        }
        Some(Fault::Extra(extra)) => {
            let mut b = part;
            b.extend_from_slice(&extra);
            let n = b.len();
            (Body::from(b), n, n)
        }
        Some(Fault::Abort(n)) => {
            let first = Bytes::copy_from_slice(&part[..n.saturating_sub(start).min(part_len)]);
            let n = first.len();
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(first),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "fault injected",
                )),
            ];
            (Body::from_stream(futures_util::stream::iter(chunks)), n, part_len)
        }
        Some(Fault::Trickle { chunk, delay_ms }) => {
            let chunks: Vec<Bytes> = part.chunks(chunk.max(1)).map(Bytes::copy_from_slice).collect();
            let stream = futures_util::stream::iter(chunks).then(move |c| async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                Ok::<_, std::io::Error>(c)
            });
            (Body::from_stream(stream), part_len, part_len)
        }
        Some(Fault::WrongLength(delta)) => {
            let declared = usize::try_from((part_len as i64).saturating_add(delta).max(0)).unwrap_or(0);
            let b = part[..declared.min(part_len)].to_vec();
            let n = b.len();
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(b))]);
            (Body::from_stream(stream), n, declared)
        }
        _ => (Body::from(part), part_len, part_len),
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        body
    };
    let mut r = Response::new(body);
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        let cr = format!("bytes {start}-{}/{full_len}", end.saturating_sub(1));
        if let Ok(v) = HeaderValue::from_str(&cr) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    (r, if method == Method::HEAD { 0 } else { sent as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(url: &str, inm: Option<&str>) -> (u16, Option<String>, Vec<u8>) {
        get_h(url, inm.map(|t| format!("If-None-Match: {t}"))).await
    }

    async fn get_h(url: &str, extra: Option<String>) -> (u16, Option<String>, Vec<u8>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let u = url.strip_prefix("http://").expect("http url");
        let (host, path) = u.split_once('/').expect("path");
        let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
        let mut req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        if let Some(h) = extra {
            req.push_str(&format!("{h}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return (0, None, buf);
        };
        let status = head[9..12].parse().expect("status");
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("etag: ").map(str::to_owned));
        (status, etag, body.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn serves_etags_304_404_prefix_and_faults() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("a")).expect("mkdir");
        std::fs::write(dir.path().join("a/b.txt"), b"hello").expect("write");
        let srv = StaticServer::start_with_prefix(dir.path(), "bucket/pre").expect("start");
        assert!(srv.url().ends_with("/bucket/pre/"));
        let url = format!("{}a/b.txt", srv.url());
        let (status, etag, body) = get(&url, None).await;
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        let etag = etag.expect("etag");
        assert_eq!(etag, etag_of(b"hello"));
        assert_eq!(get(&url, Some(&etag)).await.0, 304);
        assert_eq!(get(&format!("{}nope", srv.url()), None).await.0, 404);
        assert_eq!(get(&format!("{}../x", srv.url()), None).await.0, 404);

        srv.set_fault("a/b.txt", Fault::Extra(b"!!".to_vec()));
        assert_eq!(get(&url, None).await.2, b"hello!!");
        srv.set_fault("a/b.txt", Fault::Truncate(2));
        assert_eq!(get(&url, None).await.2, b"he");
        srv.set_fault("a/b.txt", Fault::Status(503));
        assert_eq!(get(&url, None).await.0, 503);
        srv.set_fault("a/b.txt", Fault::AlwaysNotModified);
        assert_eq!(get(&url, Some("\"other\"")).await.0, 304);
        srv.clear_faults();

        let log = srv.requests();
        assert_eq!(srv.count(), log.len());
        assert_eq!(log[0].path, "a/b.txt");
        assert_eq!((log[0].status, log[0].bytes), (200, 5));
        assert_eq!(log[1].if_none_match.as_deref(), Some(etag.as_str()));
        srv.reset_requests();
        assert_eq!(srv.count(), 0);
    }

    #[tokio::test]
    async fn ranges_and_counted_faults() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("o"), b"0123456789").expect("write");
        let srv = StaticServer::start(dir.path()).expect("start");
        let url = format!("{}o", srv.url());
        let range = |r: &str| Some(format!("Range: bytes={r}"));
        assert_eq!(
            get_h(&url, range("4-")).await,
            (206, Some(etag_of(b"0123456789")), b"456789".to_vec())
        );
        assert_eq!(get_h(&url, range("2-3")).await.2, b"23");
        assert_eq!(get_h(&url, range("10-")).await.0, 416);
        let etag = etag_of(b"0123456789");
        let if_range = |v: &str| Some(format!("Range: bytes=4-\r\nIf-Range: {v}"));
        assert_eq!(get_h(&url, if_range(&etag)).await.2, b"456789");
        assert_eq!(
            get_h(&url, if_range("\"other\"")).await.0,
            200,
            "another representation: the whole object"
        );
        srv.set_fault("o", Fault::IgnoreRange);
        assert_eq!(get_h(&url, range("4-")).await.0, 200);
        srv.set_fault("o", Fault::Abort(6));
        let (status, _, body) = get_h(&url, range("4-")).await;
        assert!(status == 0 || body.starts_with(b"45"), "{status} {body:?}");
        srv.set_fault_times("o", Fault::Status(500), 2);
        assert_eq!(get(&url, None).await.0, 500);
        assert_eq!(get(&url, None).await.0, 500);
        assert_eq!(get(&url, None).await.0, 200);
        srv.set_fault_times("o", Fault::TooManyRequests("0".into()), 1);
        assert_eq!(get(&url, None).await.0, 429);
        srv.set_fault(
            "o",
            Fault::Trickle {
                chunk: 3,
                delay_ms: 1,
            },
        );
        assert_eq!(get(&url, None).await.2, b"0123456789");
        srv.set_fault("o", Fault::WrongLength(-4));
        assert_eq!(get(&url, None).await.2, b"012345");
        assert_eq!(srv.requests()[0].range.as_deref(), Some("bytes=4-"));
    }
}
