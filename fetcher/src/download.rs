//! Parallel, verified blob downloads into the staging directory: every blob is
//! streamed to disk while it is hashed and counted, and abandoned as soon as
//! it grows past the size the manifest declares. Memory use is bounded by the
//! chunk size times the parallelism, whatever the file sizes. Transient
//! failures are retried with backoff, and a broken transfer resumes where it
//! stopped (see [`crate::retry`]); big blobs from a remote store are written
//! to `.atlas/partial/` so that the next run resumes them too
//! (see [`crate::partial`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atlas_proto::digest::HashingCounter;
use atlas_proto::{Sha256Digest, layout};
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::time::Instant;

use atlas_proto::IoError;

use crate::cache::BlobCache;
use crate::durable;
use crate::error::SyncError;
use crate::exit;
use crate::interrupt::Interrupt;
use crate::partial::{PartialDir, Resume};
use crate::plan::{Plan, PlannedFile};
use crate::progress::Progress;
use crate::retry::{Retrier, RetryPolicy};
use crate::source::{Body, Source, Start};
use crate::staging::{blob_path, legacy_blob_path};
use crate::staging_file::StagingFile;

/// Default number of blobs downloaded at once.
pub const DEFAULT_PARALLELISM: usize = 8;

/// Blobs staged and verified, by content hash.
#[derive(Debug, Default)]
pub struct Staged {
    pub blobs: BTreeMap<Sha256Digest, PathBuf>,
    pub bytes: u64,
}

/// How downloads behave: parallelism, retries, deadline.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    pub parallelism: usize,
    pub retry: &'a RetryPolicy,
    /// When the whole run must be over; retries that would end later are not tried.
    pub deadline: Option<Instant>,
    /// The host's shared blob cache, if one is configured.
    pub cache: Option<&'a BlobCache>,
    /// Blobs verified ahead of time by `Syncer::prefetch`, moved (not
    /// downloaded) into staging when present with the right size.
    pub prefetched: Option<&'a Path>,
    /// Checked before each blob and each chunk of one.
    pub interrupt: &'a Interrupt,
    /// Where big downloads are kept across runs (`None`: nowhere).
    pub partial: Option<&'a PartialDir>,
}

/// One blob [`fetch_blob`] has.
#[derive(Debug)]
struct Fetched {
    digest: Sha256Digest,
    /// In staging, or in the partial directory until every download is done.
    path: PathBuf,
    /// Bytes received from the network for it by this run.
    bytes: u64,
    /// Still to be kept in the shared cache (once in staging).
    cache: bool,
    /// Written by this run (or an earlier one): to be made durable.
    written: bool,
}

/// Downloads every blob the plan needs into `staging` (which must exist).
///
/// Dropping the future stops the downloads; what was written stays in
/// `staging` for the caller to remove (the sync's staging guard does).
pub async fn download_all(
    source: &Source,
    plan: &Plan,
    staging: &Path,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
) -> Result<Staged, SyncError> {
    if let Some(p) = transfer.partial {
        // Only what this plan downloads is worth keeping.
        let keep: BTreeMap<_, _> = plan.downloads().iter().map(|f| (f.sha256, f.size)).collect();
        p.clean(&keep);
    }
    // The futures are built first (not by a closure inside the stream) so
    // that callers can prove the whole download `Send` and spawn it.
    let syncs = PendingSyncs::default();
    let jobs: Vec<_> = plan
        .downloads()
        .into_iter()
        .map(|f| fetch_blob(source, f, staging, transfer, progress, &syncs))
        .collect();
    let (fetched, unsynced) = futures_util::stream::iter(jobs)
        .buffer_unordered(transfer.parallelism.max(1))
        .try_fold(
            (Vec::new(), false),
            |(mut acc, mut unsynced), f: Fetched| async move {
                unsynced |= f.written;
                acc.push(f);
                Ok((acc, unsynced))
            },
        )
        .await?;
    syncs.wait().await?;
    // Every download is verified: the ones kept in the partial directory
    // move into staging, and nothing is left there to resume.
    let mut staged = Staged::default();
    for f in fetched {
        let path = match transfer.partial.filter(|p| p.holds(&f.path)) {
            Some(p) => {
                let dest = blob_path(staging, &f.digest);
                if let Some(shard) = dest.parent().filter(|s| !s.is_dir()) {
                    std::fs::create_dir_all(shard)
                        .map_err(IoError::at("creating staging directory", shard))?;
                }
                p.finish(&f.digest, &dest)?;
                if let Some(c) = transfer.cache.filter(|_| f.cache) {
                    c.keep(&f.digest, &dest);
                }
                dest
            }
            None => f.path,
        };
        staged.blobs.insert(f.digest, path);
        staged.bytes += f.bytes;
    }
    if let Some(p) = transfer.partial {
        p.clean(&BTreeMap::new());
    }
    if durable::SYNC_ONCE && unsynced {
        let dir = staging.to_owned();
        tokio::task::spawn_blocking(move || durable::sync_filesystem(&dir))
            .await
            .map_err(|e| SyncError::Internal(format!("sync task failed: {e}")))??;
    }
    Ok(staged)
}

/// Fsyncs started as downloads finish (where [`durable::SYNC_ONCE`] is
/// false); they run on blocking threads while
/// the download slot moves on to the next blob, and all of them are awaited
/// before [`download_all`] returns.
#[derive(Debug, Default)]
struct PendingSyncs(std::sync::Mutex<Vec<(PathBuf, tokio::task::JoinHandle<std::io::Result<()>>)>>);

impl PendingSyncs {
    fn start(&self, file: std::fs::File, path: &Path) {
        let task = tokio::task::spawn_blocking(move || file.sync_all());
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((path.to_owned(), task));
    }

    async fn wait(self) -> Result<(), SyncError> {
        let tasks = self
            .0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (path, task) in tasks {
            task.await
                .map_err(|e| SyncError::Internal(format!("sync task failed: {e}")))?
                .map_err(IoError::at("syncing staging file", &path))?;
        }
        Ok(())
    }
}

/// Downloaded blobs are made durable before the journal names them. On
/// Linux, blobs at least this large start their write-back as soon as they
/// are complete, so it overlaps the other transfers, and one `syncfs` when
/// the downloads are over waits for all of them together (with the small
/// files, whose write-back is cheaper batched). That replaced an fsync per
/// jar: each one forced its own journal commit, and those commits queued
/// behind each other. Elsewhere every blob is fsynced as it finishes.
const WRITEBACK_FROM: u64 = 64 * 1024;

/// Where a blob is read from.
#[derive(Debug, Clone, Copy)]
enum Loc<'a> {
    Key(&'a str),
    Url(&'a str),
}

impl Loc<'_> {
    fn url(&self, source: &Source) -> String {
        match self {
            Loc::Key(k) => source.url_of(k),
            Loc::Url(u) => (*u).to_owned(),
        }
    }
}

/// Fetches one blob, from the store or (for upstream-only files) from the
/// first upstream URL that serves the right bytes.
async fn fetch_blob(
    source: &Source,
    file: &PlannedFile,
    staging: &Path,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
    syncs: &PendingSyncs,
) -> Result<Fetched, SyncError> {
    transfer.interrupt.check()?;
    let done = blob_path(staging, &file.sha256);
    let taken = |path: PathBuf| Fetched {
        digest: file.sha256,
        path,
        bytes: 0,
        cache: false,
        written: false,
    };
    // Prefetched blobs are later trusted by their size, so they are written
    // under another name and renamed once verified. Staging is emptied at the
    // start of every run and the journal names it only once every download
    // has been verified, so staged blobs are written in place.
    let part = if transfer.prefetched == Some(staging) {
        done.with_extension("part")
    } else {
        done.clone()
    };
    // A lookup first: `mkdir` of an existing directory still takes the
    // parent's lock, which every parallel download would queue on.
    if let Some(shard) = done.parent().filter(|s| !s.is_dir()) {
        std::fs::create_dir_all(shard).map_err(IoError::at("creating staging directory", shard))?;
    }
    if let Some(pre) = transfer.prefetched {
        let prefetched = [blob_path(pre, &file.sha256), legacy_blob_path(pre, &file.sha256)];
        if prefetched.iter().any(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == file.size)
                && std::fs::rename(p, &done).is_ok()
        }) {
            tracing::debug!(path = %file.path, "taken from the prefetched blobs");
            progress.blob_done(&file.path);
            return Ok(taken(done));
        }
    }
    let cache = transfer.cache.filter(|_| BlobCache::cacheable(&file.path));
    if let Some(c) = cache {
        let (c, d, size, dest) = (c.clone(), file.sha256, file.size, done.clone());
        let hit = tokio::task::spawn_blocking(move || c.take(&d, size, &dest))
            .await
            .map_err(|e| SyncError::Internal(format!("cache task failed: {e}")))??;
        if hit {
            tracing::debug!(path = %file.path, "taken from the shared cache");
            progress.blob_done(&file.path);
            return Ok(taken(done));
        }
    }
    // A blob in staging goes into the cache now; one in the partial
    // directory once it moves to staging (`download_all`).
    let finished = |path: PathBuf, bytes: u64| -> Result<Fetched, SyncError> {
        let in_partial = transfer.partial.is_some_and(|p| p.holds(&path));
        let path = if in_partial {
            path
        } else {
            finish(&part, &done)?;
            if let Some(c) = cache {
                c.keep(&file.sha256, &done);
            }
            done.clone()
        };
        progress.blob_done(&file.path);
        Ok(Fetched {
            digest: file.sha256,
            path,
            bytes,
            cache: in_partial && cache.is_some(),
            written: true,
        })
    };
    if !file.upstream_only {
        let key = layout::blob_key(&file.sha256);
        let (path, n) = download(source, Loc::Key(&key), file, &part, transfer, progress, syncs).await?;
        return finished(path, n);
    }
    let mut last = SyncError::Conflict {
        path: file.path.clone(),
        reason: "the blob is not in the store and the manifest lists no http(s) upstream URL".into(),
    };
    for upstream in file
        .upstreams
        .iter()
        .filter(|u| u.url.starts_with("https://") || u.url.starts_with("http://"))
    {
        let url = upstream.url.as_str();
        let fetched = match download(source, Loc::Url(url), file, &part, transfer, progress, syncs).await {
            Ok((path, n)) => match check_upstream_hashes(&path, file, upstream).await {
                Ok(()) => Ok((path, n)),
                Err(e) => {
                    if let Some(p) = transfer.partial.filter(|p| p.holds(&path)) {
                        p.discard(&file.sha256);
                    }
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        match fetched {
            Ok((path, n)) => return finished(path, n),
            Err(e) => {
                tracing::warn!(path = %file.path, %url, "upstream failed: {e}");
                last = e;
            }
        }
    }
    Err(last)
}

/// Downloads one blob, into the partial directory when it is big and comes
/// over the network (so the next run can resume it), else into `dest`.
/// Returns where it is and the bytes received.
async fn download(
    source: &Source,
    loc: Loc<'_>,
    file: &PlannedFile,
    dest: &Path,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
    syncs: &PendingSyncs,
) -> Result<(PathBuf, u64), SyncError> {
    let remote = matches!(loc, Loc::Url(_)) || !source.is_local();
    if let Some(partial) = transfer
        .partial
        .filter(|_| remote && PartialDir::wants(file.size))
    {
        let url = loc.url(source);
        let (p, d, size) = (partial.clone(), file.sha256, file.size);
        let opened = tokio::task::spawn_blocking(move || p.open(&d, size, &url))
            .await
            .map_err(|e| SyncError::Internal(format!("partial download task failed: {e}")))??;
        if let Some(resume) = opened {
            let path = resume.path.clone();
            let kept = Some((partial, resume));
            return match download_resumable(source, loc, file, kept, &path, transfer, progress, syncs).await {
                Ok(n) => Ok((path, n)),
                Err(e) => {
                    // Wrong bytes are not worth resuming, nor bytes that
                    // filled the disk; what the network or an interrupt cut
                    // short is left for the next run.
                    if matches!(e.exit_code(), exit::INTEGRITY | exit::LOCAL) {
                        partial.discard(&file.sha256);
                    }
                    Err(e)
                }
            };
        }
    }
    let n = download_resumable(source, loc, file, None, dest, transfer, progress, syncs).await?;
    Ok((dest.to_owned(), n))
}

/// Checks the hashes the upstream itself publishes (recorded in the
/// manifest) over a file whose size and SHA-256 already matched: a second,
/// streamed pass, only for upstream-only files (rare: CurseForge's
/// distribution-disabled mods). Hashes of a kind this version does not know
/// are skipped.
async fn check_upstream_hashes(
    part: &Path,
    file: &PlannedFile,
    upstream: &atlas_proto::v1::Upstream,
) -> Result<(), SyncError> {
    use atlas_proto::upstream::{HashFormat, UpstreamHash};
    let expected: Vec<UpstreamHash> = upstream
        .hashes
        .iter()
        .filter_map(UpstreamHash::from_proto)
        .filter(|h| h.format != HashFormat::Sha256)
        .collect();
    if expected.is_empty() {
        return Ok(());
    }
    let path = part.to_owned();
    let formats: Vec<HashFormat> = expected.iter().map(|h| h.format).collect();
    let actual = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&path)
            .and_then(|f| atlas_proto::upstream::hash_reader(&formats, f))
            .map_err(IoError::at("reading staged file", &path))
    })
    .await
    .map_err(|e| SyncError::Internal(format!("hashing task failed: {e}")))??;
    for (want, got) in expected.iter().zip(actual) {
        if *want != got {
            return Err(SyncError::UpstreamHash {
                path: file.path.clone(),
                url: upstream.url.clone(),
                format: want.format.name().to_owned(),
                expected: want.to_string(),
                actual: got.to_string(),
            });
        }
    }
    Ok(())
}

fn finish(part: &Path, done: &Path) -> Result<(), SyncError> {
    if part == done {
        return Ok(());
    }
    Ok(std::fs::rename(part, done).map_err(IoError::at("renaming staged blob", part))?)
}

/// Downloads one blob into `dest`, retrying transient failures; a transfer
/// that breaks midway resumes with a range request at the first missing
/// byte. The hasher carries over, so the hash covers the whole file; when the
/// server ignores the range (or `If-Range` says the object changed), the
/// file and the hasher start again from zero. With `kept`, `dest` is that
/// partial download: its bytes from an earlier run were hashed already, the
/// rest is asked for, and if the whole does not verify it is downloaded
/// once more from zero. Returns the bytes received.
#[allow(clippy::too_many_arguments)]
async fn download_resumable(
    source: &Source,
    loc: Loc<'_>,
    file: &PlannedFile,
    kept: Option<(&PartialDir, Resume)>,
    dest: &Path,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
    syncs: &PendingSyncs,
) -> Result<u64, SyncError> {
    let (mut out, mut counter, mut if_range, partial) = match kept {
        Some((p, r)) => (StagingFile::resume(dest, r.file), r.counter, r.if_range, Some(p)),
        None => (
            StagingFile::new(dest, file.size),
            HashingCounter::new(),
            None,
            None,
        ),
    };
    // Bytes kept from an earlier run: checked with the rest.
    let mut earlier = counter.len();
    if earlier > 0 {
        progress.bytes(earlier);
    }
    let mut received = 0;
    let mut url = loc.url(source);
    loop {
        // A kept download may be complete already; anything else asks.
        if partial.is_none() || counter.len() < file.size {
            let mut retry = Retrier::new(transfer.retry, transfer.deadline);
            loop {
                let offset = counter.len();
                let result = async {
                    let ir = if_range.as_deref().filter(|_| offset > 0);
                    let (mut body, start) = match loc {
                        Loc::Key(k) => source.open_key_at(k, offset, ir).await?,
                        Loc::Url(u) => source.open_url_at(u, offset, ir, "").await?,
                    };
                    url = body.url().to_owned();
                    let from_zero = offset == 0 || start == Start::FromZero;
                    if start == Start::FromZero && offset > 0 {
                        tracing::info!(%url, offset, "the server sent the whole object (range ignored, or it changed); starting again from 0");
                        counter = HashingCounter::new();
                        out.restart();
                        earlier = 0;
                    } else if offset > 0 {
                        tracing::info!(%url, offset, "resuming");
                    }
                    if from_zero {
                        if_range = body.if_range().map(str::to_owned);
                        if let Some(p) = partial {
                            p.record(&file.sha256, file.size, &url, if_range.as_deref())?;
                        }
                    }
                    stream_into(&mut body, file, &mut out, &mut counter, &mut received, transfer, progress).await
                }
                .await;
                match result {
                    Ok(()) => break,
                    // Every declared byte arrived before the connection broke (e.g. a
                    // too-large Content-Length): the hash check below decides.
                    Err(e) if counter.len() == file.size && e.is_transient() => break,
                    // The server has fewer bytes than were kept: start again from zero.
                    Err(SyncError::HttpStatus { status: 416, .. }) if offset > 0 => {
                        tracing::info!(%url, offset, "the range cannot be satisfied; starting again from 0");
                        counter = HashingCounter::new();
                        out.restart();
                        earlier = 0;
                        if_range = None;
                    }
                    Err(e) => {
                        // Progress earns a fresh retry budget, unless it came
                        // too slowly to count (a trickle must not go on forever).
                        if counter.len() > offset && !matches!(e, SyncError::TooSlow { .. }) {
                            retry.progressed();
                        }
                        if !retry.again(&e).await {
                            return Err(e);
                        }
                    }
                }
            }
        }
        let (digest, len) = counter.clone().finish();
        if (len != file.size || digest != file.sha256) && earlier > 0 {
            tracing::warn!(%url, bytes = earlier, "the bytes kept from an earlier run do not verify; downloading again from zero");
            counter = HashingCounter::new();
            out.restart();
            earlier = 0;
            if_range = None;
            continue;
        }
        let big = file.size >= WRITEBACK_FROM;
        let out = out.close(big && durable::SYNC_ONCE).await?;
        if !durable::SYNC_ONCE {
            syncs.start(out, dest);
        }
        if len != file.size {
            return Err(SyncError::BlobSize {
                path: file.path.clone(),
                url,
                expected: file.size,
                actual: len,
            });
        }
        if digest != file.sha256 {
            return Err(SyncError::BlobHash {
                path: file.path.clone(),
                url,
                expected: file.sha256.to_hex(),
                actual: digest.to_hex(),
            });
        }
        return Ok(received);
    }
}

/// Appends `body` to `out`, hashing and counting; stops at the declared size.
/// Whatever way it ends, every byte counted has been written to `out`, so a
/// resumed transfer starts at `counter.len()`.
async fn stream_into(
    body: &mut Body,
    file: &PlannedFile,
    out: &mut StagingFile,
    counter: &mut HashingCounter,
    received: &mut u64,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let mut write_failed = false;
    let copied = async {
        while let Some(chunk) = body.chunk().await? {
            *received += chunk.len() as u64;
            transfer.interrupt.check()?;
            if counter.len() + chunk.len() as u64 > file.size {
                return Err(SyncError::BlobTooLong {
                    path: file.path.clone(),
                    url: body.url().to_owned(),
                    expected: file.size,
                });
            }
            if let Err(e) = out.write(&chunk).await {
                write_failed = true;
                return Err(e);
            }
            counter.update(&chunk);
            progress.bytes(chunk.len() as u64);
        }
        Ok(())
    }
    .await;
    if copied.is_err() && !write_failed {
        // Counted bytes must be on disk before a resumed transfer appends.
        out.flush().await?;
    }
    copied
}
