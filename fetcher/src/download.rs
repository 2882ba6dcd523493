//! Parallel, verified blob downloads into the staging directory: every blob is
//! streamed to disk while it is hashed and counted, and abandoned as soon as
//! it grows past the size the manifest declares. Memory use is bounded by the
//! chunk size times the parallelism, whatever the file sizes. Transient
//! failures are retried with backoff, and a broken transfer resumes where it
//! stopped (see [`crate::retry`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atlas_proto::digest::HashingCounter;
use atlas_proto::{Sha256Digest, layout};
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::time::Instant;

use atlas_proto::IoError;

use crate::cache::BlobCache;
use crate::durable;
use crate::error::SyncError;
use crate::interrupt::Interrupt;
use crate::plan::{Plan, PlannedFile};
use crate::progress::Progress;
use crate::retry::{Retrier, RetryPolicy};
use crate::safe_dir::SafeDir;
use crate::source::{Body, Source, Start};
use crate::staging::BlobDir;
use crate::staging_file::StagingFile;
use crate::verified::{self, Take, Taken};

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
    /// Blobs downloaded ahead of time by `Syncer::prefetch`, moved (not
    /// downloaded) into staging when their bytes hash right at that moment
    /// ([`verified::take`]).
    pub(crate) prefetched: Option<&'a BlobDir>,
    /// Checked before each blob and each chunk of one.
    pub interrupt: &'a Interrupt,
}

/// Downloads every blob the plan needs into `staging`.
///
/// Dropping the future stops the downloads; what was written stays in
/// `staging` for the caller to remove (the sync's staging guard does).
pub(crate) async fn download_all(
    source: &Source,
    plan: &Plan,
    staging: &BlobDir,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
) -> Result<Staged, SyncError> {
    // The futures are built first (not by a closure inside the stream) so
    // that callers can prove the whole download `Send` and spawn it.
    let syncs = PendingSyncs::default();
    let jobs: Vec<_> = plan
        .downloads()
        .into_iter()
        .map(|f| fetch_blob(source, f, staging, transfer, progress, &syncs))
        .collect();
    let (staged, unsynced) = futures_util::stream::iter(jobs)
        .buffer_unordered(transfer.parallelism.max(1))
        .try_fold(
            (Staged::default(), false),
            |(mut acc, mut unsynced), (digest, path, bytes)| async move {
                acc.blobs.insert(digest, path);
                acc.bytes += bytes;
                unsynced |= bytes > 0;
                Ok((acc, unsynced))
            },
        )
        .await?;
    syncs.wait().await?;
    if durable::SYNC_ONCE && unsynced {
        let dir = staging.root().try_clone()?;
        tokio::task::spawn_blocking(move || dir.sync_filesystem())
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

/// Fetches one blob, from the store or (for upstream-only files) from the
/// first upstream URL that serves the right bytes.
async fn fetch_blob(
    source: &Source,
    file: &PlannedFile,
    staging: &BlobDir,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
    syncs: &PendingSyncs,
) -> Result<(Sha256Digest, PathBuf, u64), SyncError> {
    transfer.interrupt.check()?;
    let done = staging.display(&file.sha256);
    let shard = staging
        .shard(&file.sha256, true)?
        .ok_or_else(|| SyncError::Internal(format!("no staging directory for {}", done.display())))?;
    let done_name = BlobDir::name(&file.sha256);
    // Prefetching writes into the prefetched blobs themselves, which a
    // later run looks for by name: a download goes under another name and
    // is renamed once verified. Staging is emptied at the start of every run
    // and the journal names it only once every download has been verified,
    // so staged blobs are written in place.
    let in_prefetch = transfer.prefetched.is_some_and(|p| std::ptr::eq(p, staging));
    let part_name = if in_prefetch {
        format!("{done_name}.part")
    } else {
        done_name.clone()
    };
    let staged = (Arc::clone(&shard), done_name.clone());
    if let Some(pre) = transfer.prefetched
        && let Some((dir, name)) = pre.find(&file.sha256)?
    {
        // Hashed now, through the descriptor of the file staged: the
        // prefetch directory is writable by the server's user.
        let how = if Arc::ptr_eq(&dir, &shard) && name == done_name {
            Take::InPlace
        } else {
            Take::Move
        };
        let ((to, to_name), d, size) = (staged.clone(), file.sha256, file.size);
        let taken =
            tokio::task::spawn_blocking(move || verified::take(&dir, &name, &to, &to_name, &d, size, how))
                .await
                .map_err(|e| SyncError::Internal(format!("prefetch task failed: {e}")))??;
        if taken == Taken::Verified {
            tracing::debug!(path = %file.path, "taken from the prefetched blobs");
            progress.blob_done(&file.path);
            return Ok((file.sha256, done, 0));
        }
    }
    let cache = transfer.cache.filter(|_| BlobCache::cacheable(&file.path));
    if let Some(c) = cache {
        let (c, d, size, (to, to_name)) = (c.clone(), file.sha256, file.size, staged.clone());
        let hit = tokio::task::spawn_blocking(move || c.take(&d, size, &to, &to_name))
            .await
            .map_err(|e| SyncError::Internal(format!("cache task failed: {e}")))??;
        if hit {
            tracing::debug!(path = %file.path, "taken from the shared cache");
            progress.blob_done(&file.path);
            return Ok((file.sha256, done, 0));
        }
    }
    let keep = || {
        if let Some(c) = cache {
            c.keep(&file.sha256, &shard, &done_name);
        }
    };
    let part = (&shard, part_name.as_str());
    if !file.upstream_only {
        let key = layout::blob_key(&file.sha256);
        let n = download_resumable(source, Loc::Key(&key), file, part, transfer, progress, syncs).await?;
        finish(part, &done_name)?;
        keep();
        progress.blob_done(&file.path);
        return Ok((file.sha256, done, n));
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
        let fetched =
            match download_resumable(source, Loc::Url(url), file, part, transfer, progress, syncs).await {
                Ok(n) => check_upstream_hashes(part, file, upstream).await.map(|()| n),
                Err(e) => Err(e),
            };
        match fetched {
            Ok(n) => {
                finish(part, &done_name)?;
                keep();
                progress.blob_done(&file.path);
                return Ok((file.sha256, done, n));
            }
            Err(e) => {
                tracing::warn!(path = %file.path, %url, "upstream failed: {e}");
                last = e;
            }
        }
    }
    Err(last)
}

/// Checks the hashes the upstream itself publishes (recorded in the
/// manifest) over a file whose size and SHA-256 already matched: a second,
/// streamed pass, only for upstream-only files (rare: CurseForge's
/// distribution-disabled mods). Hashes of a kind this version does not know
/// are skipped.
async fn check_upstream_hashes(
    (dir, name): (&Arc<SafeDir>, &str),
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
    let (dir, name) = (Arc::clone(dir), name.to_owned());
    let formats: Vec<HashFormat> = expected.iter().map(|h| h.format).collect();
    let actual = tokio::task::spawn_blocking(move || {
        let f = dir.open_read(&name)?.ok_or_else(|| {
            SyncError::from(IoError::at("reading staged file", dir.join(&name))(
                std::io::ErrorKind::NotFound.into(),
            ))
        })?;
        atlas_proto::upstream::hash_reader(&formats, f)
            .map_err(|e| SyncError::from(IoError::at("reading staged file", dir.join(&name))(e)))
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

fn finish((dir, part): (&Arc<SafeDir>, &str), done: &str) -> Result<(), SyncError> {
    if part == done {
        return Ok(());
    }
    dir.rename(part, dir, done)
}

/// Downloads one blob into `dest`, retrying transient failures; a transfer
/// that breaks midway resumes with a range request at the first missing
/// byte. The hasher carries over, so the hash covers the whole file; when the
/// server ignores the range, the file and the hasher start again from zero.
async fn download_resumable(
    source: &Source,
    loc: Loc<'_>,
    file: &PlannedFile,
    (dir, name): (&Arc<SafeDir>, &str),
    transfer: Transfer<'_>,
    progress: &dyn Progress,
    syncs: &PendingSyncs,
) -> Result<u64, SyncError> {
    let dest = dir.join(name);
    let mut out = StagingFile::new(Arc::clone(dir), name, file.size);
    let mut counter = HashingCounter::new();
    let mut retry = Retrier::new(transfer.retry, transfer.deadline);
    let mut url = match loc {
        Loc::Key(k) => source.url_of(k),
        Loc::Url(u) => u.to_owned(),
    };
    loop {
        let offset = counter.len();
        let result = async {
            let (mut body, start) = match loc {
                Loc::Key(k) => source.open_key_at(k, offset).await?,
                Loc::Url(u) => source.open_url_at(u, offset, "").await?,
            };
            url = body.url().to_owned();
            if start == Start::FromZero {
                tracing::info!(%url, offset, "the server ignored the range; starting again from 0");
                counter = HashingCounter::new();
                out.restart();
            } else if offset > 0 {
                tracing::info!(%url, offset, "resuming");
            }
            stream_into(&mut body, file, &mut out, &mut counter, transfer, progress).await
        }
        .await;
        match result {
            Ok(()) => break,
            // Every declared byte arrived before the connection broke (e.g. a
            // too-large Content-Length): the hash check below decides.
            Err(e) if counter.len() == file.size && e.is_transient() => break,
            Err(e) => {
                if counter.len() > offset {
                    retry.progressed();
                }
                if !retry.again(&e).await {
                    return Err(e);
                }
            }
        }
    }
    let big = file.size >= WRITEBACK_FROM;
    let out = out.close(big && durable::SYNC_ONCE).await?;
    if !durable::SYNC_ONCE {
        syncs.start(out, &dest);
    }
    let (digest, len) = counter.finish();
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
    Ok(len)
}

/// Appends `body` to `out`, hashing and counting; stops at the declared size.
/// Whatever way it ends, every byte counted has been written to `out`, so a
/// resumed transfer starts at `counter.len()`.
async fn stream_into(
    body: &mut Body,
    file: &PlannedFile,
    out: &mut StagingFile,
    counter: &mut HashingCounter,
    transfer: Transfer<'_>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let mut write_failed = false;
    let copied = async {
        while let Some(chunk) = body.chunk().await? {
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
