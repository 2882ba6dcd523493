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
}

impl crate::exit::HasExitClass for PromoteError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        use crate::exit::ExitClass;
        match self {
            Self::Store(StoreError::Conflict { .. })
            | Self::Pointer(PointerUpdateError::Store(StoreError::Conflict { .. })) => ExitClass::Conflict,
            Self::Store(_)
            | Self::Pointer(_)
            | Self::Build(_)
            | Self::Export(_)
            | Self::Unverified { .. } => ExitClass::Store,
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
            let obj = store
                .get(
                    &pointer_key(pack, channel),
                    atlas_proto::Limits::DEFAULT.pointer_bytes,
                )
                .await?
                .ok_or_else(|| BuildLookupError::NoChannel {
                    pack: pack.to_owned(),
                    channel: channel.clone(),
                    store: store.describe(),
                })?;
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
    let mrpack = layout::mrpack_key(pack, &build);
    let mut report = ExportReport {
        mrpack: store.exists(&mrpack).await?.then_some(mrpack),
        ..Default::default()
    };
    match exports {
        Some(_) => report.packwiz = Some(layout::packwiz_pack_key(pack, to)),
        None => {
            let current = crate::pointer::read_current(store, pack, to).await?;
            if current.is_some_and(|c| c.payload.exports.packwiz.is_some()) {
                return Err(ExportError::NeedsPublicUrl {
                    channel: to.to_owned(),
                }
                .into());
            }
        }
    }
    // Decoded once: the instance archive needs its Minecraft and loader,
    // the packwiz tree its files.
    let decoded =
        atlas_proto::manifest::decode(&manifest, &atlas_proto::Limits::DEFAULT.manifest).map_err(|err| {
            ExportError::Manifest {
                build: build.to_hex(),
                message: err.to_string(),
            }
        })?;
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
    let mut pages = None;
    if let Some(e) = exports {
        let (written, skipped) =
            crate::export::packwiz::write_channel_tree(store, &decoded, to, e, 8).await?;
        report.packwiz_written = written;
        report.skipped = skipped;
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
