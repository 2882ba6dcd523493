//! A fake Modrinth on 127.0.0.1: API v2 (`GET /v2/version/{id}`,
//! `GET /v2/versions?ids=[..]`, `GET /v2/project/{id}/version`,
//! `POST /v2/version_files`) answering in Modrinth's JSON shapes with its
//! `X-Ratelimit-*` headers, and its CDN (`/data/<project>/versions/<id>/<file>`)
//! on the same port. Records every request; one-shot faults per path.
//! [`FakeHost`] is the shared core, also used by the fake CurseForge.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use sha1::Digest as _;

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

    /// Answers a file download (with any queued fault), `None` if no such file.
    pub(crate) fn serve_file(&self, path: &str) -> Option<Response> {
        let fault = lock(&self.faults).get_mut(path).and_then(VecDeque::pop_front);
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

/// A version's file, as added to the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    pub url: String,
    pub sha512: String,
    pub sha1: String,
    pub size: u64,
}

#[derive(Debug, Default)]
struct State {
    host: FakeHost,
    versions: Mutex<BTreeMap<String, Value>>,
    /// Rate-limit headers for the next API answers: (remaining, reset seconds).
    rate: Mutex<Option<(u64, u64)>>,
    base: Mutex<String>,
}

/// The fake Modrinth.
#[derive(Debug)]
pub struct ModrinthServer {
    state: Arc<State>,
    running: Running,
}

impl ModrinthServer {
    /// Starts on 127.0.0.1:<random>. Must be called inside a tokio runtime.
    pub fn start() -> anyhow::Result<Self> {
        let state = Arc::new(State::default());
        let app = axum::Router::new().fallback(serve).with_state(state.clone());
        let running = Running::start(app)?;
        *lock(&state.base) = format!("http://{}", running.addr);
        Ok(Self { state, running })
    }

    /// API base URL (no trailing slash), e.g. `http://127.0.0.1:1234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    pub fn host(&self) -> &FakeHost {
        &self.state.host
    }

    /// Adds version `id` (number `number`) of `project` with one primary file.
    pub fn add_version(
        &self,
        project: &str,
        id: &str,
        number: &str,
        filename: &str,
        bytes: &[u8],
    ) -> FakeFile {
        let path = format!("/data/{project}/versions/{id}/{filename}");
        let file = FakeFile {
            url: format!("{}{path}", self.url()),
            sha512: hex::encode(sha2::Sha512::digest(bytes)),
            sha1: hex::encode(sha1::Sha1::digest(bytes)),
            size: bytes.len() as u64,
        };
        self.state.host.put_file(&path, Bytes::copy_from_slice(bytes));
        let v = json!({
            "id": id, "project_id": project, "author_id": "atlas0000",
            "featured": false, "name": format!("{project} {number}"), "version_number": number,
            "changelog": null, "changelog_url": null, "date_published": "2024-01-01T00:00:00Z",
            "downloads": 0, "version_type": "release", "status": "listed", "requested_status": null,
            "files": [{
                "hashes": { "sha512": file.sha512, "sha1": file.sha1 },
                "url": file.url, "filename": filename, "primary": true,
                "size": file.size, "file_type": null
            }],
            "dependencies": [], "game_versions": ["1.21.1"], "loaders": ["fabric"]
        });
        lock(&self.state.versions).insert(id.to_owned(), v);
        file
    }

    /// Changes version `id`'s JSON (e.g. its `dependencies`, `game_versions`
    /// or `loaders`); false when there is no such version.
    pub fn edit_version(&self, id: &str, edit: impl FnOnce(&mut Value)) -> bool {
        match lock(&self.state.versions).get_mut(id) {
            Some(v) => {
                edit(v);
                true
            }
            None => false,
        }
    }

    /// The next API answers carry `X-Ratelimit-Remaining: remaining` and
    /// `X-Ratelimit-Reset: reset_secs` (until [`clear_rate_limit`](Self::clear_rate_limit)).
    pub fn set_rate_limit(&self, remaining: u64, reset_secs: u64) {
        *lock(&self.state.rate) = Some((remaining, reset_secs));
    }

    pub fn clear_rate_limit(&self) {
        *lock(&self.state.rate) = None;
    }

    /// Every request answered (API and CDN).
    pub fn requests(&self) -> Vec<Logged> {
        self.state.host.requests()
    }

    pub fn reset_requests(&self) {
        self.state.host.reset_requests();
    }
}

async fn serve(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    req: axum::extract::Request,
) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let full = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_owned());
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let mut resp = if path.starts_with("/data/") {
        state.host.serve_file(&path).unwrap_or_else(|| status(404))
    } else {
        let mut r = api(&state, &method, &path, &query, &body);
        let (remaining, reset) = lock(&state.rate).unwrap_or((299, 60));
        let h = r.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(300u64));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(reset));
        r
    };
    if method == "HEAD" {
        *resp.body_mut() = Body::empty();
    }
    state.host.log(&method, &full, resp.status().as_u16());
    resp
}

fn api(state: &State, method: &str, path: &str, query: &str, body: &[u8]) -> Response {
    let versions = lock(&state.versions);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("GET", ["v2", "version", id]) => versions.get(*id).map_or_else(|| status(404), json_response),
        ("GET", ["v2", "versions"]) => {
            let ids: Vec<String> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("ids="))
                .map(percent_decode)
                .filter_map(|v| serde_json::from_str::<Vec<String>>(&v).ok())
                .next()
                .unwrap_or_default();
            let found: Vec<Value> = ids.iter().filter_map(|id| versions.get(id).cloned()).collect();
            json_response(&Value::Array(found))
        }
        ("GET", ["v2", "project", project, "version"]) => {
            let list: Vec<Value> = versions
                .values()
                .filter(|v| v["project_id"] == *project)
                .cloned()
                .collect();
            if list.is_empty() {
                status(404)
            } else {
                json_response(&Value::Array(list))
            }
        }
        ("POST", ["v2", "version_files"]) => {
            let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let algo = req["algorithm"].as_str().unwrap_or("sha1");
            let mut out = serde_json::Map::new();
            for h in req["hashes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let Some(v) = versions.values().find(|v| v["files"][0]["hashes"][algo] == h) {
                    out.insert(h.to_owned(), v.clone());
                }
            }
            json_response(&Value::Object(out))
        }
        _ => status(404),
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
