//! Publishing a pack: [`run`] owns the whole pipeline. It checks that the
//! store honours conditional writes, uploads the repository's keyset files,
//! plans the build (resolving and downloading mods; for a remote store,
//! mirrored mods go up as they land, see [`early`]), then writes in the
//! order that keeps readers safe: blobs the store lacks, the manifest, the
//! build's immutable launcher exports (the .mrpack, the packwiz files, the
//! instance archive and the fetcher binaries it pins), the signed pointer
//! naming them (by compare-and-swap, with its history entry), then the
//! channel's packwiz `pack.toml`, only while the pointer still names this
//! build's, and last the pack page and the store index, each by
//! compare-and-swap from the verified live pointers (docs/FORMAT.md §1a, §10).

pub mod early;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde::Serialize;

use atlas_proto::SecretKey;
use atlas_proto::layout;
use atlas_proto::tools::Tools;

use crate::build::{BuildError, plan_pack};
use crate::download::WriteMode;
use crate::exit::{ExitClass, HasExitClass};
use crate::export::player_tools::PlayerTools;
use crate::export::{ExportError, ExportOptions, ExportReport};
use crate::keyset::KeysetCmdError;
use crate::page::write::{PageKeys, PageReport, write_pages};
use crate::plan::{BlobSource, BuildPlan, PlanOptions, PlanSummary};
use crate::pointer::{PointerRequest, PointerUpdate, PointerUpdateError, point_channel};
use crate::progress::Stage;
use crate::repo::{Content, PackSource, RepoError};
use crate::resolve::fetch::landed_channel;
use crate::resolve::{ModOptions, ModsReport};
use crate::store::{Body, ObjectMeta, PutOutcome, Store, StoreError};

use early::EarlyUploads;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Keyset(#[from] KeysetCmdError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Pointer(#[from] PointerUpdateError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl HasExitClass for PublishError {
    fn exit_class(&self) -> ExitClass {
        match self {
            Self::Build(e) => e.exit_class(),
            Self::Keyset(e) => e.exit_class(),
            Self::Repo(_) => ExitClass::Pack,
            Self::Store(e) => e.exit_class(),
            Self::Pointer(e) => e.exit_class(),
            // An export that cannot be written is a store failure here.
            Self::Export(e) => e.writer_class(),
        }
    }
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
    pub exports: Option<ExportReport>,
    /// The pack page and the store index (absent without a public URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageReport>,
    /// What uploading while downloading did (remote stores only; not in
    /// the JSON report, whose counts above already include it).
    #[serde(skip)]
    pub early: Option<EarlyUploads>,
}

/// One publish: the pack, where it goes, and how.
#[derive(Debug)]
pub struct PublishRequest<'a> {
    /// The pack, at the commit (or working tree) to build.
    pub source: &'a PackSource,
    pub store: &'a dyn Store,
    /// Signs the pointer; `None` only with `options.dry_run`.
    pub key: Option<&'a SecretKey>,
    pub options: PublishOptions,
    pub plan: PlanOptions,
    /// Where mods come from and where downloads are cached.
    pub mods: ModOptions,
    /// The keyset chain to upload before the pointer (`.atlas/keys`); the
    /// signing key must then be a pointer key of its newest keyset.
    pub keys_dir: Option<&'a Path>,
    /// The launcher exports (.mrpack, packwiz, pages), when the store has a public URL.
    pub exports: Option<&'a ExportOptions>,
    /// The player tools (`--player-tools`): with them, the channel's
    /// instance archive is written and the pointer pins the fetcher.
    pub player_tools: Option<&'a PlayerTools>,
}

impl<'a> PublishRequest<'a> {
    /// A request with no key (enough for a dry run), no keyset chain and no exports.
    pub fn new(
        source: &'a PackSource,
        store: &'a dyn Store,
        options: PublishOptions,
        mods: ModOptions,
    ) -> Self {
        Self {
            source,
            store,
            key: None,
            options,
            plan: PlanOptions::default(),
            mods,
            keys_dir: None,
            exports: None,
            player_tools: None,
        }
    }
}

/// A publish's plan and what it did.
#[derive(Debug)]
pub struct Published {
    pub plan: BuildPlan,
    pub report: PublishReport,
}

/// Publishes the pack (or with `options.dry_run` reports what would be
/// uploaded, writing nothing to the store).
pub async fn run(req: PublishRequest<'_>) -> Result<Published, PublishError> {
    let opts = &req.options;
    if !opts.dry_run {
        // Before anything is uploaded: refused on a store whose
        // compare-and-swap cannot work (unless the store was opened to allow it).
        req.store.check_conditional_writes().await?;
    }
    if let (Some(dir), Some(key), false) = (req.keys_dir, req.key, opts.dry_run) {
        // Keysets go up before anything names them; the key must be current.
        if let Some(ks) = crate::keyset::upload(req.store, dir).await? {
            crate::keyset::check_signing_key(req.store, ks.pack(), &key.public()).await?;
        }
    }
    let mut mods = req.mods.clone();
    let (planned, early) = if opts.dry_run || req.store.keeps_cached_files() {
        if !opts.dry_run {
            // The store links the cache's files: write them straight to disk.
            mods.download.write_mode = WriteMode::Direct;
        }
        (plan_pack(req.source, &req.plan, &mods).await, None)
    } else {
        // A remote store: upload each mirrored download as it lands, while
        // the rest download (the channel closes when planning drops `mods`).
        let (tx, rx) = landed_channel();
        mods.landed = Some(tx);
        let (source, plan_opts) = (req.source, &req.plan);
        let planning = async move { plan_pack(source, plan_opts, &mods).await };
        let (planned, early) = tokio::join!(planning, early::upload_landed(req.store, rx, opts.concurrency));
        (planned, Some(early))
    };
    let (plan, mods_report) = planned?;
    let report = upload(&req, &plan, mods_report, early).await?;
    Ok(Published { plan, report })
}

/// Uploads what the store lacks of `plan` and points the channel at it.
/// `early` names the blobs this run already uploaded while downloading:
/// they count as new.
async fn upload(
    req: &PublishRequest<'_>,
    plan: &BuildPlan,
    mods: ModsReport,
    early: Option<EarlyUploads>,
) -> Result<PublishReport, PublishError> {
    let (source, store, opts) = (req.source, req.store, &req.options);
    let concurrency = opts.concurrency.max(1);
    let pack = plan.manifest.pack_id.as_str();
    // 1. Which blobs does the store already have?
    let present: Vec<bool> = stream::iter(plan.blobs.keys())
        .map(|d| store.exists_owned(layout::blob_key(d)))
        .buffered(concurrency * 2)
        .try_collect()
        .await?;
    let (reused, missing): (Vec<_>, Vec<_>) = plan.blobs.iter().zip(&present).partition(|(_, p)| **p);
    let reused: Vec<(&atlas_proto::Sha256Digest, &BlobSource)> = reused.into_iter().map(|(b, _)| b).collect();
    let missing: Vec<(&atlas_proto::Sha256Digest, &BlobSource)> =
        missing.into_iter().map(|(b, _)| b).collect();
    // New: missing now, or written by this run's early uploads.
    let (blobs_new, bytes_new) = plan
        .blobs
        .iter()
        .zip(&present)
        .filter(|((d, _), p)| !**p || early.as_ref().is_some_and(|e| e.created.contains(*d)))
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
        mods,
        exports: None,
        pages: None,
        early,
    };
    if opts.dry_run {
        return Ok(report);
    }
    if req.exports.is_none() {
        // A channel with a packwiz export would keep naming an older build.
        let current = crate::pointer::read_current(store, pack, &opts.channel).await?;
        if current.is_some_and(|c| c.payload.exports.packwiz.is_some()) {
            return Err(ExportError::NeedsPublicUrl {
                channel: opts.channel.clone(),
            }
            .into());
        }
    }
    let Some(key) = req.key else {
        return Err(PointerUpdateError::Store(StoreError::Io {
            store: store.describe(),
            key: layout::pointer_key(pack, &opts.channel),
            message: "no signing key given".into(),
        })
        .into());
    };
    // 2. Upload missing blobs, a bounded number at a time. Bodies are read
    // when each upload starts, so memory holds at most `concurrency` blobs.
    let progress = &req.mods.download.progress;
    let upload_bytes = missing.iter().map(|(_, b)| b.size).sum();
    progress.start(Stage::Upload, missing.len(), Some(upload_bytes));
    let mut uploads = stream::iter(missing)
        .map(|(digest, blob)| {
            let body = blob_body(source, blob);
            let k = layout::blob_key(digest);
            async move {
                let outcome = store.put_immutable(&k, body?, ObjectMeta::BLOB).await?;
                tracing::debug!(blob = %k, path = %blob.path, ?outcome, "blob");
                progress.bytes(Stage::Upload, blob.size);
                progress.file_done(Stage::Upload);
                Ok::<_, PublishError>(())
            }
        })
        .buffer_unordered(concurrency);
    let mut failed = None;
    while let Some(r) = uploads.next().await {
        if let Err(e) = r {
            failed = Some(e);
            break;
        }
    }
    drop(uploads);
    progress.finish(Stage::Upload);
    if let Some(e) = failed {
        return Err(e);
    }
    store.sync_blobs().await?;
    // 3. The manifest, once every blob it names is stored (skipped when the
    // store already has it: a rebuild of the same commit uploads nothing).
    if report.manifest_new {
        let body = Body::Bytes(Bytes::from(plan.manifest_bytes.clone()));
        let outcome = store
            .put_immutable(&report.manifest_key, body, ObjectMeta::MANIFEST)
            .await?;
        report.manifest_new = outcome == PutOutcome::Created;
        // A blob found in the store at step 1 may have been old garbage that
        // a concurrent `gc` collected since; the manifest now keeps it (gc
        // keeps every young manifest's blobs), so check once more.
        restore_reused(req, plan, &reused).await?;
    }
    // 4. The build's immutable launcher exports, which the pointer names.
    let mut exports = match req.exports {
        Some(e) => {
            let mut r = crate::export::mrpack::write_build_exports(plan, source, store, e).await?;
            let tree = crate::export::packwiz::prepare_packwiz(
                store,
                &plan.manifest,
                &plan.build_id,
                &opts.channel,
                e,
                concurrency,
                &mut r,
            )
            .await?;
            Some((r, tree))
        }
        None => None,
    };
    // The channel's instance archive (immutable, content-addressed), with
    // the fetcher pins the pointer carries.
    let tools = match (req.player_tools, req.exports, exports.as_mut()) {
        (Some(t), Some(e), Some((r, _))) => {
            let src = crate::export::instance::InstanceSource {
                tools: t,
                trust: crate::export::instance::trust_anchor(store, pack, &key.public()).await?,
                exports: e,
            };
            t.upload(store).await?;
            let written =
                crate::export::instance::publish_instance(store, &plan.manifest, &opts.channel, &src).await?;
            r.instance = Some(written.key);
            Tools {
                atlas_fetcher: Some(t.release.clone()),
            }
        }
        (Some(_), None, _) => return Err(ExportError::PlayerToolsNeedPublicUrl.into()),
        _ => Tools::default(),
    };
    let named = exports.as_ref().map(|(r, _)| r.exports()).unwrap_or_default();
    // 5. The pointer (a lost race ends here: exit 5, nothing else written).
    report.pointer = Some(
        point_channel(&PointerRequest {
            store,
            key,
            pack,
            channel: &opts.channel,
            build: plan.build_id,
            manifest_size: plan.manifest_bytes.len() as u64,
            now: opts.now,
            lifetime: opts.pointer_lifetime,
            force: opts.force_pointer,
            exports: named,
            tools,
        })
        .await?,
    );
    // 6. The channel's packwiz pack.toml, while the pointer names this build's.
    if let Some((r, tree)) = exports.as_mut() {
        crate::export::packwiz::finish_packwiz(store, pack, &opts.channel, tree, r).await?;
    }
    report.exports = exports.map(|(r, _)| r);
    // 7. Last, the pack page and the store index, from the live pointers.
    if let Some(e) = req.exports {
        let keys = PageKeys::for_pack(store, pack, &key.public()).await?;
        report.pages = Some(write_pages(store, pack, Some(&opts.channel), &keys, e).await?);
    }
    Ok(report)
}

/// Uploads again any blob of `reused` (found in the store before the
/// manifest was written) that is no longer there.
async fn restore_reused(
    req: &PublishRequest<'_>,
    plan: &BuildPlan,
    reused: &[(&atlas_proto::Sha256Digest, &BlobSource)],
) -> Result<(), PublishError> {
    let store = req.store;
    let concurrency = req.options.concurrency.max(1);
    let gone: Vec<_> = stream::iter(reused.iter().copied())
        .map(|(d, b)| async move {
            Ok::<_, StoreError>((!store.exists(&layout::blob_key(d)).await?).then_some((d, b)))
        })
        .buffered(concurrency * 2)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    if gone.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        "{} blob(s) of build {} left the store while publishing (a concurrent gc?); uploading them again",
        gone.len(),
        plan.build_id
    );
    for (digest, blob) in gone {
        let body = blob_body(req.source, blob)?;
        store
            .put_immutable(&layout::blob_key(digest), body, ObjectMeta::BLOB)
            .await?;
    }
    store.sync_blobs().await?;
    Ok(())
}

/// The body of a blob upload, read from where the plan found the file.
fn blob_body(source: &PackSource, blob: &BlobSource) -> Result<Body, PublishError> {
    Ok(match &blob.content {
        Content::Disk(path) => Body::File(path.clone()),
        Content::Cached(path) => Body::CachedFile(path.clone()),
        c @ Content::Git(_) => Body::Bytes(Bytes::from(source.read_content(c)?)),
    })
}
