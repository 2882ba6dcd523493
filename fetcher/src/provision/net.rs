//! HTTP for provisioning: every answer from an upstream is size-capped, and
//! every download is hashed (SHA-1 and SHA-256) while its bytes arrive and
//! checked against what the upstream published before it is used.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use sha1::Digest as _;
use tokio::io::AsyncWriteExt as _;

use atlas_proto::{IoError, Limits};

use super::error::ProvisionError;

/// Largest `.sha256`/`.sha1` file beside a Maven artifact: one hex digest,
/// maybe followed by a file name (a format fact, not a tunable cap).
const SIDECAR_BYTES: u64 = 1024;

/// What an upstream published for a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Expect {
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// An HTTP client with the fetcher's User-Agent and timeouts.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    client: reqwest::Client,
    timeout: Duration,
    limits: Limits,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = inner.source();
    }
    s
}

impl Net {
    pub(crate) fn new(timeout: Duration, limits: Limits) -> Result<Self, ProvisionError> {
        Ok(Self {
            client: crate::source::http_client(timeout)?,
            timeout,
            limits,
        })
    }

    fn map(&self, url: &str, e: &reqwest::Error) -> ProvisionError {
        if e.is_timeout() {
            ProvisionError::Timeout {
                url: url.to_owned(),
                secs: self.timeout.as_secs(),
            }
        } else {
            ProvisionError::Unreachable {
                url: url.to_owned(),
                message: chain(e),
            }
        }
    }

    async fn open(&self, url: &str, hint: &str) -> Result<reqwest::Response, ProvisionError> {
        let parsed = url::Url::parse(url).map_err(|e| ProvisionError::BadMetadata {
            url: url.to_owned(),
            message: format!("not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ProvisionError::BadMetadata {
                url: url.to_owned(),
                message: "only http(s) URLs are followed".into(),
            });
        }
        let resp = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(|e| self.map(url, &e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(ProvisionError::NotFound {
                url: url.to_owned(),
                hint: hint.to_owned(),
            });
        }
        if !status.is_success() {
            return Err(ProvisionError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        Ok(resp)
    }

    /// The whole body, refused past `cap` bytes.
    pub(crate) async fn get_capped(
        &self,
        url: &str,
        cap: u64,
        hint: &str,
    ) -> Result<Vec<u8>, ProvisionError> {
        let mut resp = self.open(url, hint).await?;
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(ProvisionError::TooLarge {
                url: url.to_owned(),
                cap,
            });
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.read_err(url, &e))? {
            if out.len() as u64 + chunk.len() as u64 > cap {
                return Err(ProvisionError::TooLarge {
                    url: url.to_owned(),
                    cap,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn read_err(&self, url: &str, e: &reqwest::Error) -> ProvisionError {
        if e.is_timeout() {
            return self.map(url, e);
        }
        ProvisionError::Read {
            url: url.to_owned(),
            message: chain(e),
        }
    }

    /// A JSON document of at most [`Limits::provision_metadata_bytes`].
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        hint: &str,
    ) -> Result<T, ProvisionError> {
        let bytes = self
            .get_capped(url, self.limits.provision_metadata_bytes, hint)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| ProvisionError::BadMetadata {
            url: url.to_owned(),
            message: format!("not the expected JSON: {e}"),
        })
    }

    /// Streams `url` into `dest` (created), at most `cap` bytes (or the
    /// published size), checking the published hashes and size at the end.
    /// On any error `dest` is removed.
    pub(crate) async fn download(
        &self,
        url: &str,
        dest: &Path,
        cap: u64,
        expect: &Expect,
    ) -> Result<u64, ProvisionError> {
        let result = self.download_inner(url, dest, cap, expect).await;
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    async fn download_inner(
        &self,
        url: &str,
        dest: &Path,
        cap: u64,
        expect: &Expect,
    ) -> Result<u64, ProvisionError> {
        let cap = expect.size.map_or(cap, |s| s.min(cap));
        let mut resp = self.open(url, "").await?;
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(ProvisionError::TooLarge {
                url: url.to_owned(),
                cap,
            });
        }
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(IoError::at("creating", dest))?;
        let (mut s1, mut s256, mut len) = (sha1::Sha1::new(), sha2::Sha256::new(), 0u64);
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.read_err(url, &e))? {
            len += chunk.len() as u64;
            if len > cap {
                return Err(ProvisionError::TooLarge {
                    url: url.to_owned(),
                    cap,
                });
            }
            s1.update(&chunk);
            s256.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(IoError::at("writing", dest))?;
        }
        out.sync_all().await.map_err(IoError::at("syncing", dest))?;
        if let Some(expected) = expect.size
            && expected != len
        {
            return Err(ProvisionError::Size {
                url: url.to_owned(),
                expected,
                actual: len,
            });
        }
        let checks = [
            ("sha1", &expect.sha1, hex::encode(s1.finalize())),
            ("sha256", &expect.sha256, hex::encode(s256.finalize())),
        ];
        for (algorithm, want, actual) in checks {
            if let Some(w) = want
                && !w.eq_ignore_ascii_case(&actual)
            {
                return Err(ProvisionError::Hash {
                    url: url.to_owned(),
                    algorithm,
                    expected: w.clone(),
                    actual,
                });
            }
        }
        Ok(len)
    }

    /// The hash a Maven repository publishes beside `url` (`.sha256`, else
    /// `.sha1`); `None` when it publishes neither.
    pub(crate) async fn sidecar(&self, url: &str) -> Result<Expect, ProvisionError> {
        for (ext, hex_len) in [("sha256", 64), ("sha1", 40)] {
            let side = format!("{url}.{ext}");
            let text = match self.get_capped(&side, SIDECAR_BYTES, "").await {
                Ok(b) => b,
                Err(ProvisionError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&text);
            let digest = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            if digest.len() != hex_len || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ProvisionError::BadMetadata {
                    url: side,
                    message: format!("not a {ext} digest"),
                });
            }
            let mut e = Expect::default();
            if ext == "sha256" {
                e.sha256 = Some(digest);
            } else {
                e.sha1 = Some(digest);
            }
            return Ok(e);
        }
        tracing::warn!(%url, "the repository publishes no .sha256 or .sha1 for it; relying on HTTPS alone");
        Ok(Expect::default())
    }
}

/// SHA-1 of what `f` holds, hex; `None` if unreadable.
pub(crate) fn sha1_of(f: impl std::io::Read) -> Option<String> {
    use atlas_proto::upstream::{HashFormat, hash_reader};
    let hashes = hash_reader(&[HashFormat::Sha1], f).ok()?;
    hashes.first().map(ToString::to_string)
}
