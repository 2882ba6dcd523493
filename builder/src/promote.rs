//! Promotion: point one channel (e.g. `production`) at the build another
//! channel points to, or at a build named by id, with the target channel's
//! own version sequence. Rolling back is promoting an older build.

use std::time::Duration;

use serde::Serialize;

use atlas_proto::layout::{self, pointer_key};
use atlas_proto::pointer::{Expectation, SignedPointer};
use atlas_proto::tools::Tools;
use atlas_proto::{PublicKey, SecretKey, Sha256Digest};

use crate::builds::{self, BuildLookupError};
use crate::export::player_tools::PlayerTools;
use crate::export::{ExportError, ExportOptions, ExportReport};
use crate::page::write::{PageKeys, PageReport, write_pages};
use crate::pointer::{PointerRequest, PointerUpdate, PointerUpdateError, point_channel};
use crate::store::{Store, StoreError};

/// What to promote.
#[derive(Debug, Clone)]
pub enum PromoteFrom {
    /// The build another channel points to now.
    Channel(String),
    /// A build id (hex SHA-256 of the manifest).
    Build(Sha256Digest),
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pointer(#[from] PointerUpdateError),
    #[error(transparent)]
    Build(#[from] BuildLookupError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(
        "the `{channel}` pointer in {store} does not verify with the signing key: {message}; pass --build ID to promote a build explicitly"
    )]
    Unverified {
        channel: String,
        store: String,
        message: String,
    },
    #[error(
        "build {build} cannot be promoted: {missing} of its blobs are missing from {store} (first: `{first}`; collected by gc?); publish its commit again to restore them"
    )]
    MissingBlobs {
        build: String,
        store: String,
        missing: usize,
        first: String,
    },
}

impl crate::exit::HasExitClass for PromoteError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        use crate::exit::ExitClass;
        match self {
            Self::Store(e) => e.exit_class(),
            Self::Pointer(e) => e.exit_class(),
            Self::Export(e) => e.writer_class(),
            Self::Build(e) => e.exit_class(),
            Self::Unverified { .. } | Self::MissingBlobs { .. } => ExitClass::Store,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub pack: String,
    pub build: String,
    pub manifest_size: u64,
    pub pointer: PointerUpdate,
    /// The exports the target channel names now (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exports: Option<ExportReport>,
    /// The pack page and the store index (absent without a public URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageReport>,
}

/// One promotion: which build goes to which channel, signed by whom.
#[derive(Debug, Clone)]
pub struct PromoteRequest<'a> {
    pub store: &'a dyn Store,
    pub key: &'a SecretKey,
    /// Extra keys that may have signed the source channel's pointer.
    pub trusted: &'a [PublicKey],
    pub pack: &'a str,
    pub from: PromoteFrom,
    /// The channel to point at the build.
    pub to: &'a str,
    /// Current time, Unix seconds.
    pub now: u64,
    /// Lifetime of the signed pointer.
    pub lifetime: Duration,
    /// The store's public URL, to keep the target channel's packwiz export
    /// and the pack page in step.
    pub exports: Option<&'a ExportOptions>,
    /// The player tools: with them (and `exports`), the target channel gets
    /// its instance archive and its pointer pins the fetcher.
    pub player_tools: Option<&'a PlayerTools>,
}

/// Points `to` at the chosen build. The source pointer must verify with
/// `key`'s public half (or one of `trusted`); the manifest must exist and
/// hash to the build id. The target channel's launcher exports are kept in
/// step: the pointer names the build's .mrpack when the store has one, and
/// with `exports` (the public URL) the channel's packwiz tree is rewritten
/// after the pointer. A channel that has a packwiz tree cannot be promoted
/// without `exports` (the tree would fall behind the pointer).
pub async fn run(req: PromoteRequest<'_>) -> Result<PromoteReport, PromoteError> {
    let PromoteRequest {
        store,
        key,
        trusted,
        pack,
        from,
        to,
        now,
        lifetime,
        exports,
        player_tools,
    } = req;
    let build = match &from {
        PromoteFrom::Build(b) => *b,
        PromoteFrom::Channel(channel) => {
            let Some(obj) = store
                .get(
                    &pointer_key(pack, channel),
                    atlas_proto::Limits::DEFAULT.pointer_bytes,
                )
                .await?
            else {
                return Err(builds::missing(store, pack, Some(channel)).await.into());
            };
            let unverified = |message: String| PromoteError::Unverified {
                channel: channel.clone(),
                store: store.describe(),
                message,
            };
            let mut keys = vec![key.public()];
            keys.extend_from_slice(trusted);
            // Expiry does not matter here: the target gets a fresh pointer.
            let expect = Expectation {
                pack,
                channel,
                now: 0,
                last: None,
            };
            let verified = SignedPointer::parse(&obj.bytes)
                .and_then(|p| p.verify(&keys, 1, &expect))
                .map_err(|e| unverified(e.to_string()))?;
            verified.build
        }
    };
    // Never point a channel at a manifest that is missing or damaged.
    let manifest = builds::manifest_bytes(store, pack, &build).await?;
    let size = manifest.len() as u64;
    let decoded =
        atlas_proto::manifest::decode(&manifest, &atlas_proto::Limits::DEFAULT.manifest).map_err(|err| {
            ExportError::Manifest {
                build: build.to_hex(),
                message: err.to_string(),
            }
        })?;
    if matches!(from, PromoteFrom::Build(_)) {
        // A build named by id may be one no channel kept: its blobs must still be there.
        check_blobs(store, &build, &decoded).await?;
    }
    let mrpack = layout::mrpack_key(pack, &build);
    let mut report = ExportReport {
        mrpack: store.exists(&mrpack).await?.then_some(mrpack),
        ..Default::default()
    };
    let tree = match exports {
        Some(e) => Some(
            crate::export::packwiz::prepare_packwiz(store, &decoded, &build, to, e, 8, &mut report).await?,
        ),
        None => {
            let current = crate::pointer::read_current(store, pack, to).await?;
            if current.is_some_and(|c| c.payload.exports.packwiz.is_some()) {
                return Err(ExportError::NeedsPublicUrl {
                    channel: to.to_owned(),
                }
                .into());
            }
            None
        }
    };
    let tools = match (player_tools, exports) {
        (Some(t), Some(e)) => {
            let src = crate::export::instance::InstanceSource {
                tools: t,
                trust: crate::export::instance::trust_anchor(store, pack, &key.public()).await?,
                exports: e,
            };
            t.upload(store).await?;
            let written = crate::export::instance::publish_instance(store, &decoded, to, &src).await?;
            report.instance = Some(written.key);
            Tools {
                atlas_fetcher: Some(t.release.clone()),
            }
        }
        (Some(_), None) => return Err(ExportError::PlayerToolsNeedPublicUrl.into()),
        (None, _) => Tools::default(),
    };
    let named = report.exports();
    let pointer = point_channel(&PointerRequest {
        store,
        key,
        pack,
        channel: to,
        build,
        manifest_size: size,
        now,
        lifetime,
        force: false,
        exports: named.clone(),
        tools,
    })
    .await?;
    if let Some(tree) = &tree {
        crate::export::packwiz::finish_packwiz(store, pack, to, tree, &mut report).await?;
    }
    let mut pages = None;
    if let Some(e) = exports {
        let keys = PageKeys::for_pack(store, pack, &key.public()).await?;
        pages = Some(write_pages(store, pack, Some(to), &keys, e).await?);
    }
    Ok(PromoteReport {
        pack: pack.to_owned(),
        build: build.to_hex(),
        manifest_size: size,
        pointer,
        exports: (!named.is_empty()).then_some(report),
        pages,
    })
}

/// Every blob `manifest` names is in the store.
async fn check_blobs(
    store: &dyn Store,
    build: &Sha256Digest,
    manifest: &atlas_proto::v1::Manifest,
) -> Result<(), PromoteError> {
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let keys: std::collections::BTreeSet<String> = manifest
        .files
        .iter()
        .filter(|f| !f.upstream_only)
        .filter_map(|f| Sha256Digest::from_slice(&f.sha256).ok())
        .map(|d| layout::blob_key(&d))
        .collect();
    let missing: Vec<String> = futures_util::stream::iter(keys)
        .map(|k| async move { Ok::<_, StoreError>((!store.exists(&k).await?).then_some(k)) })
        .buffered(16)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(PromoteError::MissingBlobs {
            build: build.to_hex(),
            store: store.describe(),
            missing: missing.len(),
            first: first.clone(),
        }),
    }
}
