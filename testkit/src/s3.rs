//! In-process S3-compatible server for tests: `s3s` + `s3s-fs` served over real HTTP on 127.0.0.1, with
//! SigV4 authentication, anonymous public reads (like an R2 bucket behind a CDN), R2/S3-style
//! conditional writes, multi-object deletes as strict as S3's, and a log of every request.
//!
//! Conditional writes: AWS S3 honours `If-None-Match: *` on PutObject since August 2024 and
//! `If-Match` since November 2024 (S3 User Guide, "Add preconditions to S3 operations with
//! conditional requests"); Cloudflare R2 honours both (R2 docs, PutObject "conditional
//! operations"). Some S3-compatible servers accept the headers and ignore them (older MinIO
//! releases, several gateway and self-hosted implementations): [`S3Server::set_enforce_preconditions`]
//! with `false` makes this server one of those.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let server = atlas_testkit::s3::S3Server::start("bucket")?;
//! let endpoint = server.endpoint(); // http://127.0.0.1:PORT, path-style, region `auto`
//! let public = server.public_url("packs"); // http://127.0.0.1:PORT/bucket/packs/
//! # Ok(()) }
//! ```
//!
//! The server runs on its own thread and Tokio runtime, so it works from synchronous tests and from
//! `#[tokio::test]` with either runtime flavour. It shuts down when the [`S3Server`] is dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CreateBucketInput, CreateBucketOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, ETag, ETagCondition, GetBucketLocationInput,
    GetBucketLocationOutput, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput,
    HeadObjectInput, HeadObjectOutput, ListBucketsInput, ListBucketsOutput, ListObjectsInput,
    ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput,
    PutObjectInput, PutObjectOutput, StreamingBlob, UploadPartInput, UploadPartOutput,
};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

/// Access key id accepted by the server.
pub const ACCESS_KEY: &str = "ATLASTESTACCESSKEY01";
/// Secret access key matching [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "atlas-test-secret-access-key-0123456789";
/// Region to sign with (the server accepts any; `auto` is what Cloudflare R2 uses).
pub const REGION: &str = "auto";

/// One HTTP request the server answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Raw (percent-encoded) URI path, e.g. `/bucket/prefix/blobs/sha256/ab/ab...`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    pub status: u16,
    /// Request headers, names lowercased.
    pub headers: BTreeMap<String, String>,
}

impl RecordedRequest {
    /// A request header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Whether the request was signed (SigV4 header or presigned query).
    pub fn signed(&self) -> bool {
        self.headers.contains_key("authorization")
            || self
                .query
                .as_deref()
                .is_some_and(|q| q.contains("X-Amz-Signature="))
    }

    /// Whether the request used `aws-chunked` content encoding or a `STREAMING-*` payload hash,
    /// which Cloudflare R2 rejects.
    pub fn is_streaming_upload(&self) -> bool {
        self.header("content-encoding")
            .is_some_and(|v| v.contains("aws-chunked"))
            || self
                .header("x-amz-content-sha256")
                .is_some_and(|v| v.starts_with("STREAMING-"))
            || self.headers.contains_key("x-amz-decoded-content-length")
    }
}

/// When an injected competing write happens relative to the next `PutObject` of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaceTiming {
    /// Just before the request's preconditions are checked (another writer won the race).
    BeforeWrite,
    /// Just after the request was stored, before the response is sent (another writer came next).
    AfterWrite,
}

#[derive(Debug)]
struct Race {
    key: String,
    timing: RaceTiming,
    bytes: Bytes,
}

/// PUTs of one key held until `count` of them are waiting (see [`S3Server::gate_puts`]).
#[derive(Debug)]
struct Gate {
    key: String,
    count: usize,
    arrived: usize,
    open: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    enforce_preconditions: AtomicBool,
    races: Mutex<Vec<Race>>,
    gates: Mutex<Vec<Gate>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Waits at `key`'s gate, if one is set and not yet full: until the last PUT the gate waits
    /// for arrives (or 20 s pass, so a writer that never comes does not hang a test).
    async fn pass_gate(&self, key: &str) {
        let wait = {
            let mut gates = lock(&self.gates);
            let Some(i) = gates.iter().position(|g| g.key == key && g.arrived < g.count) else {
                return;
            };
            let gate = &mut gates[i];
            gate.arrived += 1;
            if gate.arrived == gate.count {
                gate.open.notify_waiters();
                gates.remove(i);
                None
            } else {
                // Created under the lock: it receives the `notify_waiters` of the last arrival.
                Some(Arc::clone(&gate.open).notified_owned())
            }
        };
        if let Some(open) = wait {
            let _ = tokio::time::timeout(Duration::from_secs(20), open).await;
        }
    }

    fn take_race(&self, key: &str, timing: RaceTiming) -> Option<Bytes> {
        let mut races = lock(&self.races);
        let i = races.iter().position(|r| r.key == key && r.timing == timing)?;
        Some(races.remove(i).bytes)
    }
}

/// An S3-compatible server on 127.0.0.1 with a single bucket, storing data in a temporary directory.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    bucket: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    // Dropped last: the server thread is joined first.
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server with the (empty) bucket `bucket`.
    pub fn start(bucket: &str) -> anyhow::Result<S3Server> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join(bucket))?;
        let fs = s3s_fs::FileSystem::new(dir.path()).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            enforce_preconditions: AtomicBool::new(true),
            races: Mutex::new(Vec::new()),
            gates: Mutex::new(Vec::new()),
        });
        let mut builder = S3ServiceBuilder::new(AtlasS3 {
            fs,
            shared: Arc::clone(&shared),
            write_lock: tokio::sync::Mutex::new(()),
        });
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        builder.set_access(PublicRead);
        let service = builder.build();

        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("s3-server-{}", addr.port()))
            .spawn(move || serve(listener, service, thread_shared, shutdown_rx, ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => anyhow::bail!("the S3 server thread exited before it was ready"),
        }
        Ok(S3Server {
            addr,
            bucket: bucket.to_owned(),
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            dir,
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint for an S3 client (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Public (anonymous) base URL of `prefix` in the bucket, ending in `/`:
    /// `http://127.0.0.1:PORT/BUCKET/PREFIX/`.
    pub fn public_url(&self, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("{}/{}/", self.endpoint(), self.bucket)
        } else {
            format!("{}/{}/{}/", self.endpoint(), self.bucket, prefix)
        }
    }

    /// Every request answered so far, in order of completion.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Requests that used `aws-chunked` encoding or a `STREAMING-*` payload (R2 rejects them).
    pub fn streaming_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_streaming_upload)
            .collect()
    }

    /// Whether `If-Match` / `If-None-Match` on writes are enforced (the default, as AWS S3 and
    /// Cloudflare R2 do), or accepted and ignored, as some S3-compatible servers do: the write
    /// then succeeds whatever the object's state.
    pub fn set_enforce_preconditions(&self, enforce: bool) {
        self.shared.enforce_preconditions.store(enforce, Ordering::SeqCst);
    }

    /// Simulates a competing writer: on the next `PutObject` of `key` (the full key in the bucket,
    /// prefix included), `bytes` are stored unconditionally at the given moment.
    pub fn race_next_put(&self, key: &str, timing: RaceTiming, bytes: impl Into<Bytes>) {
        lock(&self.shared.races).push(Race {
            key: key.to_owned(),
            timing,
            bytes: bytes.into(),
        });
    }

    /// Makes the next `count` `PutObject`s of `key` (the full key in the bucket) arrive together:
    /// each waits until the last one is there, then all go on at once and are served one after
    /// another, like writers whose requests reach the store in the same instant. (A writer that
    /// never sends its PUT releases the others after 20 s.)
    pub fn gate_puts(&self, key: &str, count: usize) {
        lock(&self.shared.gates).push(Gate {
            key: key.to_owned(),
            count,
            arrived: 0,
            open: Arc::new(tokio::sync::Notify::new()),
        });
    }

    /// Root of the server's storage; the bucket is the directory `data_dir()/BUCKET`.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the object `key` (full key in the bucket) is stored on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.dir.path().join(&self.bucket).join(key)
    }

    /// The stored bytes of `key`, read from disk; `None` if absent.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.object_path(key)).ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: std::net::TcpListener,
    service: S3Service,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
    ready: mpsc::Sender<anyhow::Result<()>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let service = service.clone();
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| handle(service.clone(), Arc::clone(&shared), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
}

async fn handle(
    service: S3Service,
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<s3s::HttpResponse, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let req = match check_multi_delete(req.map(s3s::Body::from)).await {
        Ok(req) => req,
        Err(resp) => {
            lock(&shared.requests).push(RecordedRequest {
                method,
                path,
                query,
                status: resp.status().as_u16(),
                headers,
            });
            return Ok(resp);
        }
    };
    let mut resp = match service.call(req).await {
        Ok(resp) => resp,
        Err(e) => {
            let mut resp = hyper::Response::new(s3s::Body::from(format!("internal error: {e:?}")));
            *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            resp
        }
    };
    if resp.status() == hyper::StatusCode::NOT_MODIFIED {
        // s3s serializes every error with an XML body; a 304 has none.
        *resp.body_mut() = s3s::Body::empty();
        resp.headers_mut().remove(hyper::header::CONTENT_LENGTH);
        resp.headers_mut().remove(hyper::header::CONTENT_TYPE);
    }
    lock(&shared.requests).push(RecordedRequest {
        method,
        path,
        query,
        status: resp.status().as_u16(),
        headers,
    });
    Ok(resp)
}

/// Keys one `DeleteObjects` request may name (S3 API reference, DeleteObjects: "up to 1,000 keys").
const MAX_DELETE_KEYS: usize = 1000;

/// What S3 checks of a multi-object delete (`POST /bucket?delete`) before anything else, and s3s
/// does not: the `Content-MD5` header is required for general purpose buckets and must be the
/// body's MD5 (S3 API reference, DeleteObjects; a missing one is `InvalidRequest`, a wrong one
/// `BadDigest`), and at most 1,000 keys (`MalformedXML`). Other requests pass through unchanged.
async fn check_multi_delete(
    req: hyper::Request<s3s::Body>,
) -> Result<hyper::Request<s3s::Body>, s3s::HttpResponse> {
    let is_delete = req.method() == hyper::Method::POST
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "delete" || p.starts_with("delete=")));
    // Unsigned requests are refused by the access check first (403), as S3 does.
    if !is_delete || !req.headers().contains_key(hyper::header::AUTHORIZATION) {
        return Ok(req);
    }
    let (parts, mut body) = req.into_parts();
    let bytes = match body.store_all_limited(2 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return Err(s3_error_response(
                400,
                "MalformedXML",
                "The request body is too large.",
            ));
        }
    };
    let Some(given) = parts.headers.get("content-md5").and_then(|v| v.to_str().ok()) else {
        return Err(s3_error_response(
            400,
            "InvalidRequest",
            "Missing required header for this request: Content-MD5",
        ));
    };
    use base64::Engine as _;
    use md5::Digest as _;
    let want = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&bytes));
    if given != want {
        return Err(s3_error_response(
            400,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        ));
    }
    let keys = String::from_utf8_lossy(&bytes).matches("<Object>").count();
    if keys > MAX_DELETE_KEYS {
        return Err(s3_error_response(
            400,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        ));
    }
    Ok(hyper::Request::from_parts(parts, s3s::Body::from(bytes)))
}

/// An S3 error response with its XML body.
fn s3_error_response(status: u16, code: &str, message: &str) -> s3s::HttpResponse {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = hyper::Response::new(s3s::Body::from(xml));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    resp
}

/// Signed requests may do anything; anonymous ones may only read objects (a public bucket).
#[derive(Debug)]
struct PublicRead;

#[async_trait::async_trait]
impl S3Access for PublicRead {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() || matches!(cx.s3_op().name(), "GetObject" | "HeadObject") {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "anonymous access is read-only"))
        }
    }
}

/// `s3s_fs::FileSystem` with atomic (serialized) conditional writes, conditional reads, a switch to
/// ignore write preconditions, and injectable competing writes.
struct AtlasS3 {
    fs: s3s_fs::FileSystem,
    shared: Arc<Shared>,
    /// Serializes writes so that a precondition check and the write are one step.
    write_lock: tokio::sync::Mutex<()>,
}

/// A request for an internal call, carrying over the identity of `like`.
fn sub_request<T, U>(like: &S3Request<U>, input: T) -> S3Request<T> {
    S3Request {
        input,
        method: like.method.clone(),
        uri: like.uri.clone(),
        headers: like.headers.clone(),
        extensions: Default::default(),
        credentials: like.credentials.clone(),
        region: like.region.clone(),
        service: like.service.clone(),
        trailing_headers: None,
    }
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    s3_error!(InternalError, "{e}")
}

fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == current,
    }
}

impl AtlasS3 {
    /// The current ETag (unquoted) of an object, `None` if absent.
    async fn current_etag<U>(
        &self,
        like: &S3Request<U>,
        bucket: &str,
        key: &str,
    ) -> S3Result<Option<String>> {
        let input = HeadObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.to_owned())
            .build()
            .map_err(internal)?;
        match self.fs.head_object(sub_request(like, input)).await {
            Ok(resp) => Ok(resp.output.e_tag.map(ETag::into_value)),
            Err(e) if matches!(e.code(), S3ErrorCode::NoSuchKey) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `bytes` at `key` unconditionally (a competing writer).
    async fn raw_put<U>(&self, like: &S3Request<U>, bucket: &str, key: &str, bytes: Bytes) -> S3Result<()> {
        let input = PutObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.to_owned())
            .content_length(Some(i64::try_from(bytes.len()).map_err(internal)?))
            .body(Some(StreamingBlob::from(s3s::Body::from(bytes))))
            .build()
            .map_err(internal)?;
        self.fs.put_object(sub_request(like, input)).await.map(drop)
    }

    /// Read-side conditions (`If-Match`, `If-None-Match`) of GET and HEAD, which s3s-fs ignores.
    async fn check_read_conditions<U>(
        &self,
        like: &S3Request<U>,
        bucket: &str,
        key: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<()> {
        if if_match.is_none() && if_none_match.is_none() {
            return Ok(());
        }
        let Some(current) = self.current_etag(like, bucket, key).await? else {
            return Ok(()); // the read itself answers 404
        };
        if let Some(cond) = if_match
            && !etag_matches(cond, &current)
        {
            return Err(s3_error!(PreconditionFailed, "ETag does not match"));
        }
        if let Some(cond) = if_none_match
            && etag_matches(cond, &current)
        {
            let mut err = s3_error!(NotModified);
            let mut headers = hyper::HeaderMap::new();
            if let Ok(v) = format!("\"{current}\"").parse() {
                headers.insert(hyper::header::ETAG, v);
            }
            err.set_headers(headers);
            return Err(err);
        }
        Ok(())
    }
}

/// Reads and discards a request body, so the client sees the error response rather than a reset
/// connection.
async fn drain(body: Option<StreamingBlob>) {
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    }
}

#[async_trait::async_trait]
impl S3 for AtlasS3 {
    async fn put_object(&self, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.shared.pass_gate(&req.input.key).await;
        let _guard = self.write_lock.lock().await;
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        if let Some(bytes) = self.shared.take_race(&key, RaceTiming::BeforeWrite) {
            self.raw_put(&req, &bucket, &key, bytes).await?;
        }
        let if_match = req.input.if_match.take();
        let if_none_match = req.input.if_none_match.take();
        if self.shared.enforce_preconditions.load(Ordering::SeqCst)
            && (if_match.is_some() || if_none_match.is_some())
        {
            let current = self.current_etag(&req, &bucket, &key).await?;
            let failed = match (&current, &if_none_match, &if_match) {
                (Some(cur), Some(cond), _) if etag_matches(cond, cur) => Some("the object already exists"),
                (None, _, Some(_)) => Some("the object does not exist"),
                (Some(cur), _, Some(cond)) if !etag_matches(cond, cur) => Some("the ETag does not match"),
                _ => None,
            };
            if let Some(why) = failed {
                drain(req.input.body.take()).await;
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold: {why}"
                ));
            }
        }
        let like = sub_request(&req, ());
        let resp = self.fs.put_object(req).await?;
        if let Some(bytes) = self.shared.take_race(&key, RaceTiming::AfterWrite) {
            self.raw_put(&like, &bucket, &key, bytes).await?;
        }
        Ok(resp)
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let i = &req.input;
        self.check_read_conditions(
            &req,
            &i.bucket,
            &i.key,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )
        .await?;
        self.fs.get_object(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = &req.input;
        self.check_read_conditions(
            &req,
            &i.bucket,
            &i.key,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )
        .await?;
        self.fs.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let _guard = self.write_lock.lock().await;
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let _guard = self.write_lock.lock().await;
        self.fs.delete_objects(req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let _guard = self.write_lock.lock().await;
        self.fs.copy_object(req).await
    }

    async fn complete_multipart_upload(
        &self,
        mut req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let _guard = self.write_lock.lock().await;
        if !self.shared.enforce_preconditions.load(Ordering::SeqCst) {
            req.input.if_match = None;
            req.input.if_none_match = None;
        }
        self.fs.complete_multipart_upload(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A bare HTTP/1.1 request; returns the status and the whole response text.
    async fn raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream
            .write_all(format!("{req}{body}").as_bytes())
            .await
            .expect("write");
        let mut resp = String::new();
        stream.read_to_string(&mut resp).await.expect("read");
        let status = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, resp)
    }

    #[tokio::test]
    async fn anonymous_reads_only() {
        let server = S3Server::start("bkt").expect("start");
        std::fs::create_dir_all(server.object_path("p")).expect("mkdir");
        std::fs::write(server.object_path("p/hello.txt"), b"hello").expect("write");

        let (status, text) = raw(server.addr(), "GET", "/bkt/p/hello.txt", "").await;
        assert_eq!(status, 200, "{text}");
        assert!(text.ends_with("hello"), "{text}");
        let etag = text
            .lines()
            .find_map(|l| l.strip_prefix("etag: ").or_else(|| l.strip_prefix("ETag: ")))
            .expect("etag header")
            .to_owned();
        assert_eq!(raw(server.addr(), "HEAD", "/bkt/p/hello.txt", "").await.0, 200);
        assert_eq!(raw(server.addr(), "GET", "/bkt/p/missing", "").await.0, 404);

        // Conditional GET answers 304 without a body.
        let mut stream = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connect");
        let req = format!(
            "GET /bkt/p/hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut resp = String::new();
        stream.read_to_string(&mut resp).await.expect("read");
        assert!(resp.starts_with("HTTP/1.1 304"), "{resp}");
        assert!(resp.ends_with("\r\n\r\n"), "no body: {resp}");

        // Writes, deletes and listings need a signature.
        assert_eq!(raw(server.addr(), "PUT", "/bkt/p/evil", "evil").await.0, 403);
        assert_eq!(raw(server.addr(), "DELETE", "/bkt/p/hello.txt", "").await.0, 403);
        assert_eq!(raw(server.addr(), "GET", "/bkt?list-type=2", "").await.0, 403);
        assert!(server.object("p/evil").is_none());
        assert_eq!(server.object("p/hello.txt").as_deref(), Some(&b"hello"[..]));

        let reqs = server.requests();
        assert_eq!(reqs.len(), 7);
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].path.as_str(), reqs[0].status),
            ("GET", "/bkt/p/hello.txt", 200)
        );
        assert!(reqs.iter().all(|r| !r.signed() && !r.is_streaming_upload()));
        assert!(server.streaming_requests().is_empty());
        server.clear_requests();
        assert!(server.requests().is_empty());
    }

    #[test]
    fn works_without_a_runtime_and_shuts_down() {
        let server = S3Server::start("b").expect("start");
        let addr = server.addr();
        assert_eq!(server.public_url(""), format!("http://{addr}/b/"));
        assert_eq!(server.public_url("/x/y/"), format!("http://{addr}/b/x/y/"));
        assert!(server.data_dir().join("b").is_dir());
        drop(server);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "listener closed on drop"
        );
    }
}
