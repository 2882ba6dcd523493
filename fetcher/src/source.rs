//! Where a store is read from: an HTTP(S) base URL or a local directory
//! (`file://` or a plain path). Every read is streamed and capped, so a
//! hostile or broken server can never make the fetcher buffer unbounded data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt as _;
use url::Url;

use crate::SyncError;

/// Timeout for establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout for a whole small request (pointer, manifest).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest pause between two chunks of a blob download.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

const FILE_CHUNK: usize = 64 * 1024;

/// A store location.
#[derive(Debug, Clone)]
pub struct Source {
    kind: Kind,
    client: reqwest::Client,
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
    /// The pointer bytes (at most `MAX_ENVELOPE_BYTES + 1`) and the ETag, if any.
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
pub fn http_client() -> Result<reqwest::Client, SyncError> {
    reqwest::Client::builder()
        .user_agent(concat!("atlas-fetcher/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| SyncError::Internal(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

impl Source {
    /// Parses `http(s)://...`, `file://PATH` or a local path.
    pub fn parse(spec: &str) -> Result<Self, SyncError> {
        let client = http_client()?;
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
        Ok(Self { kind, client })
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
                let mut req = self.client.get(&url).timeout(REQUEST_TIMEOUT);
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
        let req = self.client.get(url);
        let resp = self.send(req, url, hint).await?;
        Ok(Body {
            url: url.to_owned(),
            inner: BodyInner::Http(resp),
        })
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
            return Err(SyncError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        Ok(resp)
    }
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
    }
}
