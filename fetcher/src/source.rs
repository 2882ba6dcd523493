//! Where a store is read from: an HTTP(S) base URL or a local directory
//! (`file://` or a plain path). Every read is streamed and capped, so a
//! hostile or broken server can never make the fetcher buffer unbounded data,
//! and bounded in time ([`NetLimits`]): connecting, waiting for response
//! headers, and a low-speed limit on every body (a transfer that gets fewer
//! than `low_speed_limit` bytes per second over `low_speed_time` fails and is
//! retried, as curl's `--speed-limit`/`--speed-time`). A directory store
//! serves regular files only: a FIFO, socket or device there is refused
//! before anything blocks on it. Blob reads can start at an offset
//! (`Range: bytes=N-`, with `If-Range`) to resume a broken transfer; the
//! answer says whether the server honoured the range.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;
use url::Url;

use crate::error::SyncError;

/// Default per-request timeout (`--timeout`): the longest wait between two
/// chunks of a body; the channel pointer request must also complete within it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `--connect-timeout`: establishing the TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--header-timeout`: from sending a request (connecting included)
/// to the response headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Default `--low-speed-limit`, bytes per second (0 turns the check off).
pub const DEFAULT_LOW_SPEED_LIMIT: u64 = 1024;
/// Default `--low-speed-time`: the stretch over which the low-speed limit is measured.
pub const DEFAULT_LOW_SPEED_TIME: Duration = Duration::from_secs(30);

const FILE_CHUNK: usize = 64 * 1024;

/// How long a store may keep the fetcher waiting. Every bound fails the
/// request with a transient error, so it is retried (see [`crate::retry`]);
/// the run's deadline bounds the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetLimits {
    /// Establishing a connection.
    pub connect_timeout: Duration,
    /// From sending a request to its response headers, connecting included.
    pub header_timeout: Duration,
    /// Between two chunks of a body; the pointer request as a whole.
    pub timeout: Duration,
    /// A body that brings fewer than this many bytes per second, measured
    /// over `low_speed_time`, fails ([`SyncError::TooSlow`]). 0: no limit.
    pub low_speed_limit: u64,
    pub low_speed_time: Duration,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            low_speed_limit: DEFAULT_LOW_SPEED_LIMIT,
            low_speed_time: DEFAULT_LOW_SPEED_TIME,
        }
    }
}

/// A store location.
#[derive(Debug, Clone)]
pub struct Source {
    kind: Kind,
    client: reqwest::Client,
    net: NetLimits,
}

/// Where an opened body starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the offset asked for (HTTP 206 with a matching `Content-Range`, or a seek).
    AtOffset,
    /// At 0: the server ignored the range and sent the whole object.
    FromZero,
}

#[derive(Debug, Clone)]
enum Kind {
    Http(Url),
    Dir(PathBuf),
}

/// Result of a conditional pointer request.
#[derive(Debug)]
pub enum PointerFetch {
    /// The server answered 304 Not Modified to `If-None-Match`.
    NotModified,
    /// The pointer bytes (at most `atlas_proto::Limits::DEFAULT.pointer_bytes + 1`) and the ETag, if any.
    Fetched { bytes: Vec<u8>, etag: Option<String> },
}

/// A response body being streamed.
#[derive(Debug)]
pub struct Body {
    url: String,
    inner: BodyInner,
    speed: LowSpeed,
    /// The validator to send as `If-Range` when resuming this object.
    if_range: Option<String>,
}

/// The low-speed check of one body: the bytes counted since `since`, which
/// moves on each time `limit × time` bytes have arrived. A stretch of
/// `time` that ends with fewer is too slow, whether the bytes trickle in or
/// nothing arrives at all.
#[derive(Debug)]
struct LowSpeed {
    limit: u64,
    time: Duration,
    since: Instant,
    got: u64,
}

impl LowSpeed {
    fn new(net: &NetLimits) -> Self {
        Self {
            limit: net.low_speed_limit,
            time: net.low_speed_time,
            since: Instant::now(),
            got: 0,
        }
    }

    /// Bytes each stretch must bring.
    fn need(&self) -> u64 {
        let n = u128::from(self.limit) * self.time.as_millis() / 1000;
        u64::try_from(n).unwrap_or(u64::MAX).max(1)
    }

    /// When the current stretch ends, if the check is on.
    fn end(&self) -> Option<Instant> {
        (self.limit > 0 && !self.time.is_zero()).then(|| self.since + self.time)
    }

    fn arrived(&mut self, n: u64) {
        self.got = self.got.saturating_add(n);
        if self.got >= self.need() {
            self.since = Instant::now();
            self.got = 0;
        }
    }

    fn too_slow(&self) -> bool {
        self.end().is_some_and(|end| Instant::now() >= end)
    }
}

#[derive(Debug)]
enum BodyInner {
    Http(reqwest::Response),
    File(tokio::fs::File, Vec<u8>),
}

impl Body {
    /// The URL (or file path) the body comes from, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The value to send as `If-Range` to resume this object: its strong
    /// ETag, else its Last-Modified date when that is a strong validator
    /// (at least 60 s before the response's Date, RFC 9110 §8.8.2.2); `None`
    /// for local files and weak validators.
    pub fn if_range(&self) -> Option<&str> {
        self.if_range.as_deref()
    }

    /// Next chunk, or `None` at the end. Fails with [`SyncError::TooSlow`]
    /// when the low-speed limit is not met.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, SyncError> {
        let read = read_chunk(&mut self.inner, &self.url);
        let got = match self.speed.end() {
            None => read.await?,
            Some(end) => match tokio::time::timeout_at(end, read).await {
                Ok(r) => r?,
                Err(_) => return Err(self.too_slow()),
            },
        };
        if let Some(c) = &got {
            self.speed.arrived(c.len() as u64);
            if self.speed.too_slow() {
                return Err(self.too_slow());
            }
        }
        Ok(got)
    }

    fn too_slow(&self) -> SyncError {
        SyncError::TooSlow {
            url: self.url.clone(),
            bytes: self.speed.got,
            secs: self.speed.time.as_secs(),
            limit: self.speed.limit,
        }
    }

    /// Reads the whole body but never more than `max + 1` bytes, so a caller
    /// can tell "exactly max" from "too long" without unbounded memory.
    pub async fn read_capped(&mut self, max: u64) -> Result<Vec<u8>, SyncError> {
        let cap = max.saturating_add(1);
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            let room = cap.saturating_sub(out.len() as u64);
            let take = (chunk.len() as u64).min(room) as usize;
            out.extend_from_slice(&chunk[..take]);
            if out.len() as u64 >= cap {
                break;
            }
        }
        Ok(out)
    }
}

async fn read_chunk(inner: &mut BodyInner, url: &str) -> Result<Option<Bytes>, SyncError> {
    match inner {
        BodyInner::Http(resp) => resp.chunk().await.map_err(|e| SyncError::SourceRead {
            url: url.to_owned(),
            message: error_chain(&e.without_url()),
        }),
        BodyInner::File(file, buf) => {
            let n = file.read(buf).await.map_err(|e| SyncError::SourceRead {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
            Ok((n > 0).then(|| Bytes::copy_from_slice(&buf[..n])))
        }
    }
}

/// See [`Body::if_range`].
fn if_range_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    use reqwest::header::{DATE, ETAG, LAST_MODIFIED};
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(etag) = text(ETAG).filter(|t| t.starts_with('"') && t.len() <= 256) {
        return Some(etag.to_owned());
    }
    let modified = text(LAST_MODIFIED)?;
    let at = httpdate::parse_http_date(modified).ok()?;
    let date = httpdate::parse_http_date(text(DATE)?).ok()?;
    (date.duration_since(at).ok()? >= Duration::from_secs(60)).then(|| modified.to_owned())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = inner.source();
    }
    s
}

/// Builds the HTTP client with the fetcher's User-Agent and timeouts
/// (`timeout` for connecting and between two reads).
/// HTTP/2 is used when the server offers it through ALPN.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, SyncError> {
    build_client(timeout, timeout)
}

fn build_client(connect: Duration, read: Duration) -> Result<reqwest::Client, SyncError> {
    reqwest::Client::builder()
        .user_agent(concat!("atlas-fetcher/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect)
        .read_timeout(read)
        .build()
        .map_err(|e| SyncError::Internal(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

/// The HTTP client for `net`'s connect and read timeouts.
pub fn http_client_with(net: &NetLimits) -> Result<reqwest::Client, SyncError> {
    build_client(net.connect_timeout, net.timeout)
}

impl Source {
    /// Parses `http(s)://...`, `file://PATH` or a local path, with the default limits.
    pub fn parse(spec: &str) -> Result<Self, SyncError> {
        Self::parse_with(spec, NetLimits::default())
    }

    /// [`Source::parse`] with a per-request timeout (other limits default).
    pub fn parse_with_timeout(spec: &str, timeout: Duration) -> Result<Self, SyncError> {
        Self::parse_with(
            spec,
            NetLimits {
                timeout,
                ..NetLimits::default()
            },
        )
    }

    /// [`Source::parse`] with these timeouts and low-speed limit.
    pub fn parse_with(spec: &str, net: NetLimits) -> Result<Self, SyncError> {
        let client = http_client_with(&net)?;
        let lower = spec.to_ascii_lowercase();
        let kind = if lower.starts_with("http://") || lower.starts_with("https://") {
            let mut url = Url::parse(spec)
                .map_err(|e| SyncError::Usage(format!("invalid source URL `{spec}`: {e}")))?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(SyncError::Usage(format!(
                    "source URL `{spec}` must not have a query or fragment; give the base of the store"
                )));
            }
            if !url.path().ends_with('/') {
                let p = format!("{}/", url.path());
                url.set_path(&p);
            }
            Kind::Http(url)
        } else if lower.starts_with("file://") {
            let url = Url::parse(spec)
                .map_err(|e| SyncError::Usage(format!("invalid source URL `{spec}`: {e}")))?;
            let path = url
                .to_file_path()
                .map_err(|()| SyncError::Usage(format!("`{spec}` is not a usable local file URL")))?;
            Kind::Dir(path)
        } else if spec.contains("://") {
            return Err(SyncError::Usage(format!(
                "unsupported source `{spec}`: use an http(s):// URL, a file:// URL or a local directory"
            )));
        } else if spec.is_empty() {
            return Err(SyncError::Usage("the source is empty".into()));
        } else {
            Kind::Dir(PathBuf::from(spec))
        };
        Ok(Self { kind, client, net })
    }

    /// The limits this source applies.
    pub fn limits(&self) -> &NetLimits {
        &self.net
    }

    /// The URL (or path) of an object, for requests and messages.
    pub fn url_of(&self, key: &str) -> String {
        match &self.kind {
            Kind::Http(base) => base
                .join(key)
                .map(String::from)
                .unwrap_or_else(|_| format!("{base}{key}")),
            Kind::Dir(root) => root.join(key).display().to_string(),
        }
    }

    /// Whether this is a local directory source.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    /// Fetches the channel pointer, conditionally when `etag` is given, reading at most `max + 1` bytes.
    pub async fn get_pointer(
        &self,
        key: &str,
        etag: Option<&str>,
        max: u64,
    ) -> Result<PointerFetch, SyncError> {
        let hint = " (check --source, --pack and --channel; the channel may not be published yet)";
        match &self.kind {
            Kind::Http(_) => {
                let url = self.url_of(key);
                let mut req = self.client.get(&url).timeout(self.net.timeout);
                if let Some(tag) = etag {
                    req = req.header(reqwest::header::IF_NONE_MATCH, tag);
                }
                let resp = self.send(req, &url, hint).await?;
                if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
                    return Ok(PointerFetch::NotModified);
                }
                let etag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 256)
                    .map(str::to_owned);
                let mut body = self.body(url, resp);
                Ok(PointerFetch::Fetched {
                    bytes: body.read_capped(max).await?,
                    etag,
                })
            }
            Kind::Dir(_) => {
                let mut body = self.open(key, hint).await?;
                Ok(PointerFetch::Fetched {
                    bytes: body.read_capped(max).await?,
                    etag: None,
                })
            }
        }
    }

    /// Opens an object of the store for streaming.
    pub async fn open_key(&self, key: &str) -> Result<Body, SyncError> {
        self.open(key, "").await
    }

    async fn open(&self, key: &str, hint: &str) -> Result<Body, SyncError> {
        match &self.kind {
            Kind::Http(_) => self.open_url(&self.url_of(key), hint).await,
            Kind::Dir(root) => self.open_file(&root.join(key), hint).await,
        }
    }

    fn body(&self, url: String, resp: reqwest::Response) -> Body {
        Body {
            url,
            if_range: if_range_of(resp.headers()),
            inner: BodyInner::Http(resp),
            speed: LowSpeed::new(&self.net),
        }
    }

    /// Opens an absolute URL (an upstream mirror of a file), over HTTP(S) only.
    pub async fn open_url(&self, url: &str, hint: &str) -> Result<Body, SyncError> {
        Ok(self.open_url_at(url, 0, None, hint).await?.0)
    }

    /// Opens an object of the store at byte `offset` (a resumed download),
    /// with `If-Range: if_range` when given.
    pub async fn open_key_at(
        &self,
        key: &str,
        offset: u64,
        if_range: Option<&str>,
    ) -> Result<(Body, Start), SyncError> {
        match &self.kind {
            Kind::Http(_) => self.open_url_at(&self.url_of(key), offset, if_range, "").await,
            Kind::Dir(root) => {
                let mut body = self.open_file(&root.join(key), "").await?;
                if offset > 0
                    && let BodyInner::File(f, _) = &mut body.inner
                {
                    use tokio::io::AsyncSeekExt as _;
                    f.seek(std::io::SeekFrom::Start(offset))
                        .await
                        .map_err(|e| SyncError::SourceRead {
                            url: body.url.clone(),
                            message: e.to_string(),
                        })?;
                }
                Ok((body, Start::AtOffset))
            }
        }
    }

    /// Opens a URL at byte `offset`: asks for `Range: bytes=offset-` (with
    /// `If-Range: if_range` when given, so a changed object comes whole) and
    /// accepts a 206 only with a `Content-Range` starting at `offset`;
    /// a 200 means the whole object follows.
    pub async fn open_url_at(
        &self,
        url: &str,
        offset: u64,
        if_range: Option<&str>,
        hint: &str,
    ) -> Result<(Body, Start), SyncError> {
        let mut req = self.client.get(url);
        if offset > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
            if let Some(v) = if_range {
                req = req.header(reqwest::header::IF_RANGE, v);
            }
        }
        let resp = self.send(req, url, hint).await?;
        let start = if resp.status() == reqwest::StatusCode::PARTIAL_CONTENT {
            let range = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if offset == 0 || content_range_start(range) != Some(offset) {
                return Err(SyncError::SourceRead {
                    url: url.to_owned(),
                    message: format!(
                        "answered 206 with Content-Range `{range}` to a request for bytes {offset}-"
                    ),
                });
            }
            Start::AtOffset
        } else if offset == 0 {
            Start::AtOffset
        } else {
            Start::FromZero
        };
        Ok((self.body(url.to_owned(), resp), start))
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        hint: &str,
    ) -> Result<reqwest::Response, SyncError> {
        let secs = self.net.header_timeout.as_secs();
        let resp = tokio::time::timeout(self.net.header_timeout, req.send())
            .await
            .map_err(|_| SyncError::NoResponse {
                url: url.to_owned(),
                secs,
            })?
            .map_err(|e| SyncError::Unreachable {
                url: url.to_owned(),
                message: error_chain(&e.without_url()),
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(SyncError::NotFound {
                url: url.to_owned(),
                hint: hint.to_owned(),
            });
        }
        if !(status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED) {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::retry::parse_retry_after(v, std::time::SystemTime::now()));
            return Err(SyncError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
                retry_after,
            });
        }
        Ok(resp)
    }
}

/// The first byte position of a `Content-Range: bytes A-B/N` value.
fn content_range_start(v: &str) -> Option<u64> {
    let range = v.trim().strip_prefix("bytes ")?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

impl Source {
    /// Opens a file of a directory store; see [`open_regular`].
    async fn open_file(&self, path: &Path, hint: &str) -> Result<Body, SyncError> {
        let url = path.display().to_string();
        let p = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || open_regular(&p))
            .await
            .map_err(|e| SyncError::Internal(format!("open task failed: {e}")))?;
        let file = opened.map_err(|e| match e {
            Opened::NotAFile(kind) => SyncError::NotAFile {
                url: url.clone(),
                kind,
            },
            Opened::Io(e) if e.kind() == std::io::ErrorKind::NotFound => SyncError::NotFound {
                url: url.clone(),
                hint: hint.to_owned(),
            },
            Opened::Io(e) => SyncError::SourceRead {
                url: url.clone(),
                message: e.to_string(),
            },
        })?;
        Ok(Body {
            url,
            inner: BodyInner::File(tokio::fs::File::from_std(file), vec![0; FILE_CHUNK]),
            speed: LowSpeed::new(&self.net),
            if_range: None,
        })
    }
}

/// Why a store file was not opened.
#[derive(Debug)]
enum Opened {
    NotAFile(&'static str),
    Io(std::io::Error),
}

impl From<std::io::Error> for Opened {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// What a non-regular file is, for messages.
fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "named pipe (FIFO)";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_block_device() {
            return "block device";
        }
        if t.is_char_device() {
            return "character device";
        }
    }
    if t.is_dir() { "directory" } else { "special file" }
}

/// Opens a store file for reading, refusing anything but a regular file
/// before it can block: the path's type is checked first (links are
/// followed: a store may link to its files), then the file is opened
/// without waiting for a writer (`O_NONBLOCK`: opening a FIFO would block
/// until one comes, on a blocking thread no deadline can stop) and checked
/// again on the open descriptor, which is what is read.
fn open_regular(path: &Path) -> Result<std::fs::File, Opened> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Opened::NotAFile(kind_of(meta.file_type())));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, nix::libc::O_NONBLOCK);
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Opened::NotAFile(kind_of(meta.file_type())));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources_and_joins_keys() {
        let s = Source::parse("http://127.0.0.1:9000/bucket/prefix").expect("http");
        assert_eq!(
            s.url_of("packs/p/channels/dev.json"),
            "http://127.0.0.1:9000/bucket/prefix/packs/p/channels/dev.json"
        );
        let s = Source::parse("https://cdn.example/").expect("https");
        assert_eq!(s.url_of("blobs/x"), "https://cdn.example/blobs/x");
        let s = Source::parse("file:///srv/store").expect("file");
        assert!(s.is_local());
        assert_eq!(s.url_of("a/b"), "/srv/store/a/b");
        assert!(Source::parse("./store").expect("path").is_local());
        assert!(matches!(Source::parse("s3://bucket"), Err(SyncError::Usage(_))));
        assert!(matches!(Source::parse(""), Err(SyncError::Usage(_))));
        assert!(matches!(Source::parse("http://x/?a=b"), Err(SyncError::Usage(_))));
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
    }
}
