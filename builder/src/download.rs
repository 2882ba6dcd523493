//! Verified, parallel downloads into the [`Cache`]: each file is streamed to
//! a temporary file in the cache while its declared upstream hash, its
//! SHA-256, and its SHA-1 and SHA-512 (which `.mrpack` exports need for every
//! file, whatever single hash the pack declared) are computed in the same
//! pass, then renamed into place. Transient
//! failures (5xx, 429 with `Retry-After`, resets, timeouts, bodies shorter
//! than announced) are retried with exponential backoff and jitter; 404, 403
//! and hash mismatches are not. A file the cache already holds (by upstream
//! hash) is never requested.

// Errors are rare, end a mod's processing, and carry the whole message.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt as _, stream};

use atlas_proto::Sha256Digest;
use atlas_proto::digest::HashingCounter;

use crate::cache::{Cache, CacheEntry, DIGESTS};
pub use crate::cache_writer::WriteMode;
use crate::cache_writer::{BufferPool, CacheWriter};
use crate::packwiz::{HashFormat, UpstreamHash, UpstreamHasher};

/// The User-Agent of every request, as Modrinth asks (project and contact).
pub const USER_AGENT: &str = concat!(
    "atlas-builder/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/atlas-modpacks/atlas)"
);

/// Waits; injected so tests can record waits instead of sleeping.
pub trait Sleeper: Send + Sync + fmt::Debug {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Sleeps with tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter); doubles each time.
    pub base_delay: Duration,
    /// Upper bound of one backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a server asking for more fails the download.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (0 = the first), with `jitter` in
    /// `[0, 1)`: half the exponential delay plus a random part of the other half.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        atlas_proto::retry::backoff(self.base_delay, self.max_delay, retry, jitter)
    }
}

pub use atlas_proto::retry::{jitter, parse_retry_after};

/// Download settings.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Files downloaded at once.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// Connect timeout, and longest silence while reading a body.
    pub timeout: Duration,
    /// Largest file accepted (upstream data is outside data).
    pub max_size: u64,
    /// How downloads reach the cache: [`WriteMode::Direct`] when the store
    /// keeps the cache's files (see [`crate::store::Store::keeps_cached_files`]),
    /// so they are on disk by the time the store syncs.
    pub write_mode: WriteMode,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            max_size: atlas_proto::Limits::DEFAULT.mod_file_bytes,
            write_mode: WriteMode::Buffered,
        }
    }
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// The mod's name, for messages.
    pub name: String,
    pub url: String,
    /// The hash upstream declares; the download must match it.
    pub expected: UpstreamHash,
    /// The size upstream declares, if any.
    pub size: Option<u64>,
    /// Where the file goes in the pack, for messages.
    pub dest: String,
}

/// A verified file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The blob in the cache.
    pub path: PathBuf,
    /// True when nothing was requested.
    pub from_cache: bool,
    /// The file's SHA-1 and SHA-512 ([`DIGESTS`]), computed while it
    /// downloaded or recorded in the cache when it did.
    pub digests: Vec<UpstreamHash>,
}

impl Downloaded {
    /// A cache hit, with its digests from the cache (computed once from the
    /// blob when an older cache did not record them).
    fn hit(cache: &Cache, e: CacheEntry) -> std::io::Result<Self> {
        let digests = cache.digests(&e.sha256, e.size)?;
        Ok(Self {
            sha256: e.sha256,
            size: e.size,
            path: e.path,
            from_cache: true,
            digests,
        })
    }
}

/// A download failed; every variant names the mod, the URL and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{name} ({dest}): GET {url} answered HTTP {status}{}; {hint}", attempts_note(*.attempts))]
    Status {
        name: String,
        dest: String,
        url: String,
        status: u16,
        attempts: u32,
        hint: &'static str,
    },
    #[error(
        "{name} ({dest}): {url}: {format} of the download is {actual}, but the pack declares {expected}; \
         the file changed upstream or the declared hash is wrong: check the source and update the hash \
         (packwiz: `packwiz update`/`packwiz refresh`)"
    )]
    HashMismatch {
        name: String,
        dest: String,
        url: String,
        format: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{name} ({dest}): {url}: the body ended after {got} of {expected} bytes{}; \
         the server or network cut it short: run the build again, or check the URL",
        attempts_note(*.attempts)
    )]
    Truncated {
        name: String,
        dest: String,
        url: String,
        got: u64,
        expected: u64,
        attempts: u32,
    },
    #[error(
        "{name} ({dest}): {url}: larger than the {limit}-byte limit on a mod file (atlas_proto::Limits); check the URL"
    )]
    TooLarge {
        name: String,
        dest: String,
        url: String,
        limit: u64,
    },
    #[error(
        "{name} ({dest}): {url}: the server asks to wait {wait:?} (Retry-After), longer than allowed; run the build later"
    )]
    WaitTooLong {
        name: String,
        dest: String,
        url: String,
        wait: Duration,
    },
    #[error("{name} ({dest}): GET {url} failed: {message}{}; check the network and the URL, then run again", attempts_note(*.attempts))]
    Network {
        name: String,
        dest: String,
        url: String,
        message: String,
        attempts: u32,
    },
    #[error("download cache: {0}")]
    Cache(#[from] std::io::Error),
}

impl crate::exit::HasExitClass for DownloadError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        // A mod that cannot be downloaded makes the pack unbuildable.
        crate::exit::ExitClass::Pack
    }
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// What to tell the creator about a status code.
pub fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => "the file is gone upstream: check the URL, or pick a version that still exists",
        401 | 403 => {
            "access refused: check the URL, or download the file by hand and add it to the repository"
        }
        429 => "rate limited: wait a while and run the build again",
        500..=599 => "the server failed: run the build again later",
        _ => "check the URL",
    }
}

/// Counters over a [`Downloader`]'s life.
#[derive(Debug, Default)]
pub struct DownloadStats {
    /// HTTP requests sent.
    pub requests: AtomicU64,
    /// Body bytes received.
    pub bytes: AtomicU64,
    /// Files served from the cache without a request.
    pub cache_hits: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
}

/// One attempt's failure.
enum Attempt {
    Retry {
        err: DownloadError,
        after: Option<Duration>,
    },
    Fatal(DownloadError),
}

/// Downloads into a [`Cache`].
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    cache: Cache,
    opts: DownloadOptions,
    sleeper: Arc<dyn Sleeper>,
    stats: Arc<DownloadStats>,
    buffers: BufferPool,
}

/// An HTTP client with Atlas's User-Agent and timeouts.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

impl Downloader {
    pub fn new(cache: Cache, opts: DownloadOptions) -> Self {
        Self::with_sleeper(cache, opts, Arc::new(TokioSleeper))
    }

    pub fn with_sleeper(cache: Cache, opts: DownloadOptions, sleeper: Arc<dyn Sleeper>) -> Self {
        Self {
            client: http_client(opts.timeout),
            cache,
            opts,
            sleeper,
            stats: Arc::default(),
            buffers: BufferPool::default(),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn sleeper(&self) -> Arc<dyn Sleeper> {
        self.sleeper.clone()
    }

    pub fn stats(&self) -> &DownloadStats {
        &self.stats
    }

    /// Fetches every request, `concurrency` at a time; results in request order.
    pub async fn fetch_all(&self, reqs: &[DownloadRequest]) -> Vec<Result<Downloaded, DownloadError>> {
        self.fetch_all_with(reqs, |_, _| {}).await
    }

    /// [`Downloader::fetch_all`], calling `landed` with the request's index
    /// as each file is verified in the cache (so its upload can start while
    /// the others download).
    pub async fn fetch_all_with(
        &self,
        reqs: &[DownloadRequest],
        landed: impl Fn(usize, &Downloaded) + Sync,
    ) -> Vec<Result<Downloaded, DownloadError>> {
        let landed = &landed;
        // Each distinct file (by upstream hash) is downloaded once; requests
        // for a file already requested wait and then take it from the cache.
        let mut seen = std::collections::HashSet::new();
        let first: Vec<bool> = reqs.iter().map(|r| seen.insert(&r.expected)).collect();
        let mut firsts: Vec<Option<Result<Downloaded, DownloadError>>> =
            stream::iter(reqs.iter().zip(&first).enumerate())
                .map(|(i, (r, is_first))| async move {
                    if !*is_first {
                        return None;
                    }
                    let res = self.fetch(r).await;
                    if let Ok(d) = &res {
                        landed(i, d);
                    }
                    Some(res)
                })
                .buffered(self.opts.concurrency.max(1))
                .collect()
                .await;
        let mut out = Vec::with_capacity(reqs.len());
        // Repeats are not announced to `landed`: the first request was.
        for (r, slot) in reqs.iter().zip(firsts.iter_mut()) {
            match slot.take() {
                Some(res) => out.push(res),
                None => out.push(self.fetch(r).await),
            }
        }
        out
    }

    /// The file from the cache, or downloaded, verified and cached.
    pub async fn fetch(&self, req: &DownloadRequest) -> Result<Downloaded, DownloadError> {
        if let Some(hit) = self.cache.lookup(&req.expected)
            && req.size.is_none_or(|s| s == hit.size)
        {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Downloaded::hit(&self.cache, hit)?);
        }
        let retry = &self.opts.retry;
        let mut attempt = 1;
        loop {
            match self.attempt(req, attempt).await {
                Ok(d) => return Ok(d),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry { err, after }) => {
                    if attempt >= retry.max_attempts.max(1) {
                        return Err(err);
                    }
                    let wait = match after {
                        Some(w) if w > retry.max_retry_after => {
                            return Err(DownloadError::WaitTooLong {
                                name: req.name.clone(),
                                dest: req.dest.clone(),
                                url: req.url.clone(),
                                wait: w,
                            });
                        }
                        Some(w) => w,
                        None => retry.backoff(attempt - 1, jitter()),
                    };
                    tracing::info!(url = %req.url, attempt, ?wait, error = %err, "retrying download");
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.sleeper.sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, req: &DownloadRequest, attempts: u32) -> Result<Downloaded, Attempt> {
        let network = |message: String| Attempt::Retry {
            err: DownloadError::Network {
                name: req.name.clone(),
                dest: req.dest.clone(),
                url: req.url.clone(),
                message,
                attempts,
            },
            after: None,
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .client
            .get(&req.url)
            .send()
            .await
            .map_err(|e| network(error_chain(&e)))?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let err = DownloadError::Status {
                name: req.name.clone(),
                dest: req.dest.clone(),
                url: req.url.clone(),
                status,
                attempts,
                hint: status_hint(status),
            };
            return Err(if status == 429 || status >= 500 {
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                Attempt::Retry { err, after }
            } else {
                Attempt::Fatal(err)
            });
        }
        let too_large = || {
            Attempt::Fatal(DownloadError::TooLarge {
                name: req.name.clone(),
                dest: req.dest.clone(),
                url: req.url.clone(),
                limit: self.opts.max_size,
            })
        };
        let announced = resp.content_length();
        if announced.is_some_and(|n| n > self.opts.max_size) {
            return Err(too_large());
        }
        let fatal_io = |e: std::io::Error| Attempt::Fatal(DownloadError::Cache(e));
        let tmp = self.cache.temp_file().map_err(fatal_io)?;
        let mut out = CacheWriter::new(tmp, self.opts.write_mode, &self.buffers);
        // The content address is SHA-256 already: a `sha256:` upstream hash is
        // checked against it instead of hashing every byte twice.
        let mut upstream = (!matches!(
            req.expected.format,
            HashFormat::Sha256 | HashFormat::Sha1 | HashFormat::Sha512
        ))
        .then(|| UpstreamHasher::new(req.expected.format));
        let mut digests: Vec<UpstreamHasher> = DIGESTS.into_iter().map(UpstreamHasher::new).collect();
        let mut sha = HashingCounter::new();
        let mut body = resp.bytes_stream();
        let mut cut = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    cut = Some(error_chain(&e));
                    break;
                }
            };
            self.stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if sha.len() + chunk.len() as u64 > self.opts.max_size {
                return Err(too_large());
            }
            if let Some(h) = upstream.as_mut() {
                h.update(&chunk);
            }
            for h in &mut digests {
                h.update(&chunk);
            }
            sha.update(&chunk);
            out.write(&chunk).await.map_err(fatal_io)?;
        }
        let got = sha.len();
        let expected_len = announced.or(req.size);
        if let Some(n) = expected_len.filter(|n| got < *n) {
            return Err(Attempt::Retry {
                err: DownloadError::Truncated {
                    name: req.name.clone(),
                    dest: req.dest.clone(),
                    url: req.url.clone(),
                    got,
                    expected: n,
                    attempts,
                },
                after: None,
            });
        }
        if let Some(message) = cut {
            return Err(network(message));
        }
        let (sha256, size) = sha.finish();
        let digests: Vec<UpstreamHash> = digests.into_iter().map(UpstreamHasher::finish).collect();
        let actual = match (upstream, req.expected.format) {
            (Some(h), _) => h.finish(),
            (None, HashFormat::Sha256) => UpstreamHash {
                format: HashFormat::Sha256,
                bytes: sha256.0.to_vec(),
            },
            (None, format) => digests
                .iter()
                .find(|d| d.format == format)
                .cloned()
                .ok_or_else(|| {
                    Attempt::Fatal(DownloadError::Cache(std::io::Error::other("digest not computed")))
                })?,
        };
        if actual != req.expected {
            return Err(Attempt::Fatal(DownloadError::HashMismatch {
                name: req.name.clone(),
                dest: req.dest.clone(),
                url: req.url.clone(),
                format: req.expected.format.name().to_owned(),
                expected: req.expected.to_string(),
                actual: actual.to_string(),
            }));
        }
        // Not fsynced here: a cache entry is checked by size when used, and a
        // directory store syncs its filesystem before naming it (see `store::dir`).
        let tmp = out.finish().await.map_err(fatal_io)?;
        let path = self
            .cache
            .insert(tmp, &sha256, size, std::slice::from_ref(&req.expected))
            .map_err(fatal_io)?;
        self.cache.record_digests(&sha256, &digests).map_err(fatal_io)?;
        Ok(Downloaded {
            sha256,
            size,
            path,
            from_cache: false,
            digests,
        })
    }

    /// Copies a local file (a manual download) into the cache if it has the
    /// expected upstream hash; `None` when it does not match.
    pub fn import(
        &self,
        path: &std::path::Path,
        expected: &UpstreamHash,
    ) -> Result<Option<Downloaded>, DownloadError> {
        let data = std::fs::read(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if UpstreamHash::of(expected.format, &data) != *expected {
            return Ok(None);
        }
        let sha256 = Sha256Digest::of(&data);
        let size = data.len() as u64;
        let digests: Vec<UpstreamHash> = DIGESTS.iter().map(|f| UpstreamHash::of(*f, &data)).collect();
        self.cache.record_digests(&sha256, &digests)?;
        if let Some(hit) = self.cache.get(&sha256, Some(size)) {
            self.cache.record(expected, &sha256, size)?;
            return Ok(Some(Downloaded::hit(&self.cache, hit)?));
        }
        let mut tmp = self.cache.temp_file()?;
        tmp.write_all(&data)?;
        let path = self.cache.insert(
            tmp.into_temp_path(),
            &sha256,
            size,
            std::slice::from_ref(expected),
        )?;
        Ok(Some(Downloaded {
            sha256,
            size,
            path,
            from_cache: true,
            digests,
        }))
    }
}

/// An error and its causes on one line (reqwest hides the useful part in sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(60),
        };
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(p.backoff(0, 0.0)), 50);
        assert_eq!(ms(p.backoff(0, 0.999_999)), 99);
        assert_eq!(ms(p.backoff(1, 0.0)), 100);
        assert_eq!(ms(p.backoff(2, 0.5)), 300);
        assert_eq!(ms(p.backoff(3, 0.0)), 400);
        // Capped at max_delay, even for absurd retry counts.
        assert_eq!(ms(p.backoff(4, 0.0)), 500);
        assert_eq!(ms(p.backoff(1000, 1.0)), 1000);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn user_agent_names_the_project() {
        assert!(USER_AGENT.starts_with("atlas-builder/"));
        assert!(USER_AGENT.contains("github.com/atlas-modpacks/atlas"));
    }
}
