//! Where a store is read from: an HTTP(S) base URL or a local directory
//! (`file://` or a plain path). Every read is streamed and capped, so a
//! hostile or broken server can never make the fetcher buffer unbounded data.
//! Blob reads can start at an offset (`Range: bytes=N-`) to resume a broken
//! transfer; the answer says whether the server honoured the range.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt as _;
use url::Url;

use crate::error::SyncError;

/// Default per-request timeout (`--timeout`): the longest wait for a
/// connection, for response headers and between two chunks of a body; the
/// channel pointer request must also complete within it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const FILE_CHUNK: usize = 64 * 1024;

/// A store location.
#[derive(Debug, Clone)]
pub struct Source {
    kind: Kind,
    client: reqwest::Client,
    timeout: Duration,
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

    /// Next chunk, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, SyncError> {
        match &mut self.inner {
            BodyInner::Http(resp) => resp.chunk().await.map_err(|e| SyncError::SourceRead {
                url: self.url.clone(),
                message: error_chain(&e.without_url()),
            }),
            BodyInner::File(file, buf) => {
                let n = file.read(buf).await.map_err(|e| SyncError::SourceRead {
                    url: self.url.clone(),
                    message: e.to_string(),
                })?;
                Ok((n > 0).then(|| Bytes::copy_from_slice(&buf[..n])))
            }
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

/// Builds the HTTP client with the fetcher's User-Agent and timeouts.
/// HTTP/2 is used when the server offers it through ALPN.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, SyncError> {
    reqwest::Client::builder()
        .user_agent(concat!("atlas-fetcher/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .build()
        .map_err(|e| SyncError::Internal(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

impl Source {
    /// Parses `http(s)://...`, `file://PATH` or a local path, with the default timeout.
    pub fn parse(spec: &str) -> Result<Self, SyncError> {
        Self::parse_with_timeout(spec, DEFAULT_TIMEOUT)
    }

    /// [`Source::parse`] with a per-request timeout.
    pub fn parse_with_timeout(spec: &str, timeout: Duration) -> Result<Self, SyncError> {
        let client = http_client(timeout)?;
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
        Ok(Self {
            kind,
            client,
            timeout,
        })
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
                let mut req = self.client.get(&url).timeout(self.timeout);
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
                let mut body = Body {
                    url,
                    inner: BodyInner::Http(resp),
                };
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
            Kind::Dir(root) => open_file(&root.join(key), hint).await,
        }
    }

    /// Opens an absolute URL (an upstream mirror of a file), over HTTP(S) only.
    pub async fn open_url(&self, url: &str, hint: &str) -> Result<Body, SyncError> {
        Ok(self.open_url_at(url, 0, hint).await?.0)
    }

    /// Opens an object of the store at byte `offset` (a resumed download).
    pub async fn open_key_at(&self, key: &str, offset: u64) -> Result<(Body, Start), SyncError> {
        match &self.kind {
            Kind::Http(_) => self.open_url_at(&self.url_of(key), offset, "").await,
            Kind::Dir(root) => {
                let mut body = open_file(&root.join(key), "").await?;
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

    /// Opens a URL at byte `offset`: asks for `Range: bytes=offset-` and
    /// accepts a 206 only with a `Content-Range` starting at `offset`;
    /// a 200 means the whole object follows.
    pub async fn open_url_at(&self, url: &str, offset: u64, hint: &str) -> Result<(Body, Start), SyncError> {
        let mut req = self.client.get(url);
        if offset > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
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
        Ok((
            Body {
                url: url.to_owned(),
                inner: BodyInner::Http(resp),
            },
            start,
        ))
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        hint: &str,
    ) -> Result<reqwest::Response, SyncError> {
        let resp = req.send().await.map_err(|e| SyncError::Unreachable {
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

async fn open_file(path: &Path, hint: &str) -> Result<Body, SyncError> {
    let url = path.display().to_string();
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SyncError::NotFound {
                url: url.clone(),
                hint: hint.to_owned(),
            }
        } else {
            SyncError::SourceRead {
                url: url.clone(),
                message: e.to_string(),
            }
        }
    })?;
    Ok(Body {
        url,
        inner: BodyInner::File(file, vec![0; FILE_CHUNK]),
    })
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
