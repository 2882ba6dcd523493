//! Parallel, verified blob downloads into the staging directory: every blob is
//! streamed to disk while it is hashed and counted, and abandoned as soon as
//! it grows past the size the manifest declares. Memory use is bounded by the
//! chunk size times the parallelism, whatever the file sizes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atlas_proto::digest::HashingCounter;
use atlas_proto::{Sha256Digest, layout};
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncWriteExt as _;

use crate::SyncError;
use crate::plan::{Plan, PlannedFile};
use crate::progress::Progress;
use crate::source::Source;

/// Default number of blobs downloaded at once.
pub const DEFAULT_PARALLELISM: usize = 8;

/// Blobs staged and verified, by content hash.
#[derive(Debug, Default)]
pub struct Staged {
    pub blobs: BTreeMap<Sha256Digest, PathBuf>,
    pub bytes: u64,
}

/// Downloads every blob the plan needs into `staging` (which must exist).
pub async fn download_all(
    source: &Source,
    plan: &Plan,
    staging: &Path,
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<Staged, SyncError> {
    let jobs = plan.downloads();
    futures_util::stream::iter(jobs)
        .map(|f| fetch_blob(source, f, staging, progress))
        .buffer_unordered(parallelism.max(1))
        .try_fold(Staged::default(), |mut acc, (digest, path, bytes)| async move {
            acc.blobs.insert(digest, path);
            acc.bytes += bytes;
            Ok(acc)
        })
        .await
}

/// Fetches one blob, from the store or (for upstream-only files) from the
/// first upstream URL that serves the right bytes.
async fn fetch_blob(
    source: &Source,
    file: &PlannedFile,
    staging: &Path,
    progress: &dyn Progress,
) -> Result<(Sha256Digest, PathBuf, u64), SyncError> {
    let hex = file.sha256.to_hex();
    let part = staging.join(format!("{hex}.part"));
    let done = staging.join(&hex);
    if !file.upstream_only {
        let body = source.open_key(&layout::blob_key(&file.sha256)).await?;
        let n = stream_to_file(body, file, &part, progress).await?;
        finish(&part, &done)?;
        progress.blob_done(&file.path);
        return Ok((file.sha256, done, n));
    }
    let mut last = SyncError::Conflict {
        path: file.path.clone(),
        reason: "the blob is not in the store and the manifest lists no http(s) upstream URL".into(),
    };
    for url in file
        .upstreams
        .iter()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    {
        let attempt = async {
            let body = source.open_url(url, "").await?;
            stream_to_file(body, file, &part, progress).await
        };
        match attempt.await {
            Ok(n) => {
                finish(&part, &done)?;
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

fn finish(part: &Path, done: &Path) -> Result<(), SyncError> {
    std::fs::rename(part, done).map_err(SyncError::io("renaming staged blob", part))
}

/// Streams `body` into `dest`, hashing and counting; checks size and hash.
async fn stream_to_file(
    mut body: crate::source::Body,
    file: &PlannedFile,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<u64, SyncError> {
    let url = body.url().to_owned();
    let mut out = tokio::fs::File::create(dest)
        .await
        .map_err(SyncError::io("creating staging file", dest))?;
    let mut counter = HashingCounter::new();
    while let Some(chunk) = body.chunk().await? {
        counter.update(&chunk);
        if counter.len() > file.size {
            return Err(SyncError::BlobTooLong {
                path: file.path.clone(),
                url,
                expected: file.size,
            });
        }
        out.write_all(&chunk)
            .await
            .map_err(SyncError::io("writing staging file", dest))?;
        progress.bytes(chunk.len() as u64);
    }
    out.flush()
        .await
        .map_err(SyncError::io("writing staging file", dest))?;
    out.sync_all()
        .await
        .map_err(SyncError::io("syncing staging file", dest))?;
    drop(out);
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
