//! Executes a build plan against a store, in the order that keeps readers
//! safe: blobs the store lacks, then the manifest, then the signed pointer.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde::Serialize;

use atlas_proto::SecretKey;
use atlas_proto::layout::{self, CACHE_IMMUTABLE, CONTENT_TYPE_BLOB, CONTENT_TYPE_MANIFEST};

use crate::plan::{BlobSource, BuildPlan, PlanSummary};
use crate::pointer::{PointerUpdate, PointerUpdateError, point_channel};
use crate::repo::{Content, PackSource, RepoError};
use crate::resolve::ModsReport;
use crate::store::{Body, ObjectMeta, PutOutcome, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Pointer(#[from] PointerUpdateError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub channel: String,
    /// Current time, Unix seconds (injected so tests control it).
    pub now: u64,
    /// Lifetime of the signed pointer.
    pub pointer_lifetime: Duration,
    /// Upload nothing; report what would be uploaded.
    pub dry_run: bool,
    /// Parallel store requests.
    pub concurrency: usize,
    /// Re-sign the pointer even if the channel already points at this build.
    pub force_pointer: bool,
}

/// What a publish did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    #[serde(flatten)]
    pub plan: PlanSummary,
    pub store: String,
    pub dry_run: bool,
    pub blobs_new: usize,
    pub blobs_reused: usize,
    pub bytes_new: u64,
    pub bytes_reused: u64,
    pub manifest_key: String,
    pub manifest_new: bool,
    pub pointer: Option<PointerUpdate>,
    /// Mods resolved for the build: downloaded, cached, manual, upstream-only.
    pub mods: ModsReport,
    /// The .mrpack and packwiz exports (absent without a public URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exports: Option<crate::export::ExportReport>,
}

/// Headers of every blob.
pub(crate) const IMMUTABLE_BLOB: ObjectMeta = ObjectMeta {
    content_type: CONTENT_TYPE_BLOB,
    cache_control: CACHE_IMMUTABLE,
};

/// Uploads what the store lacks and points the channel at the build.
/// `key` may be `None` only for a dry run.
pub async fn publish(
    plan: &BuildPlan,
    source: &PackSource,
    store: &dyn Store,
    key: Option<&SecretKey>,
    opts: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    publish_with_exports(plan, source, store, key, opts, None, None).await
}

/// [`publish`], plus the launcher exports ([`crate::export`]) when `exports`
/// gives the store's public URL: the .mrpack before the pointer (which names
/// it), the channel's packwiz tree after it. `early` names the blobs this run
/// already uploaded while downloading ([`crate::early`]): they count as new.
pub async fn publish_with_exports(
    plan: &BuildPlan,
    source: &PackSource,
    store: &dyn Store,
    key: Option<&SecretKey>,
    opts: &PublishOptions,
    exports: Option<&crate::export::ExportOptions>,
    early: Option<&crate::early::EarlyUploads>,
) -> Result<PublishReport, PublishError> {
    let concurrency = opts.concurrency.max(1);
    let pack = plan.manifest.pack_id.as_str();
    // 1. Which blobs does the store already have?
    let present: Vec<bool> = stream::iter(plan.blobs.keys())
        .map(|d| store.exists_owned(layout::blob_key(d)))
        .buffered(concurrency * 2)
        .try_collect()
        .await?;
    let missing: Vec<(&atlas_proto::Sha256Digest, &BlobSource)> = plan
        .blobs
        .iter()
        .zip(&present)
        .filter(|(_, p)| !**p)
        .map(|(b, _)| b)
        .collect();
    // New: missing now, or written by this run's early uploads.
    let (blobs_new, bytes_new) = plan
        .blobs
        .iter()
        .zip(&present)
        .filter(|((d, _), p)| !**p || early.is_some_and(|e| e.created.contains(*d)))
        .fold((0, 0u64), |(n, bytes), ((_, b), _)| (n + 1, bytes + b.size));
    let bytes_total: u64 = plan.blobs.values().map(|b| b.size).sum();
    let manifest_key = layout::manifest_key(pack, &plan.build_id);
    let mut report = PublishReport {
        plan: plan.summary(),
        store: store.describe(),
        dry_run: opts.dry_run,
        blobs_new,
        blobs_reused: plan.blobs.len() - blobs_new,
        bytes_new,
        bytes_reused: bytes_total - bytes_new,
        manifest_new: !store.exists(&manifest_key).await?,
        manifest_key,
        pointer: None,
        mods: plan.mods.clone(),
        exports: None,
    };
    if opts.dry_run {
        return Ok(report);
    }
    let Some(key) = key else {
        return Err(PointerUpdateError::Store(StoreError::Io {
            store: store.describe(),
            key: layout::pointer_key(pack, &opts.channel),
            message: "no signing key given".into(),
        })
        .into());
    };
    // 2. Upload missing blobs, a bounded number at a time. Bodies are read
    // when each upload starts, so memory holds at most `concurrency` blobs.
    let mut uploads = stream::iter(missing)
        .map(|(digest, blob)| {
            let body = match &blob.content {
                Content::Disk(path) => Ok(Body::File(path.clone())),
                Content::Cached(path) => Ok(Body::CachedFile(path.clone())),
                c @ Content::Git(_) => source.read_content(c).map(|b| Body::Bytes(Bytes::from(b))),
            };
            let k = layout::blob_key(digest);
            async move {
                let outcome = store.put_immutable(&k, body?, IMMUTABLE_BLOB).await?;
                tracing::debug!(blob = %k, path = %blob.path, ?outcome, "blob");
                Ok::<_, PublishError>(())
            }
        })
        .buffer_unordered(concurrency);
    while let Some(r) = uploads.next().await {
        r?;
    }
    drop(uploads);
    store.sync_blobs().await?;
    // 3. The manifest, once every blob it names is stored (skipped when the
    // store already has it: a rebuild of the same commit uploads nothing).
    if report.manifest_new {
        let meta = ObjectMeta {
            content_type: CONTENT_TYPE_MANIFEST,
            cache_control: CACHE_IMMUTABLE,
        };
        let body = Body::Bytes(Bytes::from(plan.manifest_bytes.clone()));
        let outcome = store.put_immutable(&report.manifest_key, body, meta).await?;
        report.manifest_new = outcome == PutOutcome::Created;
    }
    // 4. Launcher exports named by the pointer (the .mrpack is immutable).
    let mut export_report = match exports {
        Some(e) => Some(crate::export::write_build_exports(plan, source, store, &opts.channel, e).await?),
        None => None,
    };
    let named = export_report.as_ref().map(|r| r.exports()).unwrap_or_default();
    // 5. The pointer, last (then the channel's packwiz tree, kept in step).
    report.pointer = Some(
        point_channel(
            store,
            key,
            pack,
            &opts.channel,
            &plan.build_id,
            plan.manifest_bytes.len() as u64,
            opts.now,
            opts.pointer_lifetime,
            opts.force_pointer,
            &named,
        )
        .await?,
    );
    if let (Some(e), Some(r)) = (exports, export_report.as_mut()) {
        let (written, skipped) =
            crate::export::packwiz::write_channel_tree(store, &plan.manifest, &opts.channel, e, concurrency)
                .await?;
        r.packwiz_written = written;
        r.skipped.extend(skipped);
    }
    report.exports = export_report;
    Ok(report)
}
