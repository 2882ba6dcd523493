//! Promotion: point one channel (e.g. `production`) at the build another
//! channel points to, or at a build named by id, with the target channel's
//! own version sequence. Rolling back is promoting an older build.

use std::time::Duration;

use serde::Serialize;

use atlas_proto::layout::{self, pointer_key};
use atlas_proto::pointer::{Expectation, SignedPointer};
use atlas_proto::{PublicKey, SecretKey, Sha256Digest};

use crate::builds::{self, BuildLookupError};
use crate::pointer::{PointerUpdate, PointerUpdateError, point_channel};
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
    Export(#[from] crate::export::ExportError),
    #[error(
        "the `{channel}` pointer in {store} does not verify with the signing key: {message}; pass --build ID to promote a build explicitly"
    )]
    Unverified {
        channel: String,
        store: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub pack: String,
    pub build: String,
    pub manifest_size: u64,
    pub pointer: PointerUpdate,
    /// The exports the target channel names now (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exports: Option<crate::export::ExportReport>,
}

/// Points `to` at the chosen build. The source pointer must verify with
/// `key`'s public half (or one of `trusted`); the manifest must exist and
/// hash to the build id.
#[allow(clippy::too_many_arguments)]
pub async fn promote(
    store: &dyn Store,
    key: &SecretKey,
    trusted: &[PublicKey],
    pack: &str,
    from: &PromoteFrom,
    to: &str,
    now: u64,
    lifetime: Duration,
) -> Result<PromoteReport, PromoteError> {
    promote_with_exports(store, key, trusted, pack, from, to, now, lifetime, None).await
}

/// [`promote`], keeping the target channel's launcher exports in step: the
/// pointer names the build's .mrpack when the store has one, and with
/// `exports` (the public URL) the channel's packwiz tree is rewritten after
/// the pointer. A channel that has a packwiz tree cannot be promoted without
/// `exports` (the tree would fall behind the pointer).
#[allow(clippy::too_many_arguments)]
pub async fn promote_with_exports(
    store: &dyn Store,
    key: &SecretKey,
    trusted: &[PublicKey],
    pack: &str,
    from: &PromoteFrom,
    to: &str,
    now: u64,
    lifetime: Duration,
    exports: Option<&crate::export::ExportOptions>,
) -> Result<PromoteReport, PromoteError> {
    let build = match from {
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
    let mut report = crate::export::ExportReport {
        mrpack: store.exists(&mrpack).await?.then_some(mrpack),
        ..Default::default()
    };
    match exports {
        Some(_) => report.packwiz = Some(layout::packwiz_pack_key(pack, to)),
        None => {
            let current = crate::pointer::read_current(store, pack, to).await?;
            if current.is_some_and(|c| c.payload.exports.packwiz.is_some()) {
                return Err(crate::export::ExportError::NeedsPublicUrl {
                    channel: to.to_owned(),
                }
                .into());
            }
        }
    }
    let named = report.exports();
    let pointer = point_channel(store, key, pack, to, &build, size, now, lifetime, false, &named).await?;
    if let Some(e) = exports {
        let m = atlas_proto::manifest::decode(&manifest, &Default::default()).map_err(|err| {
            crate::export::ExportError::Manifest {
                build: build.to_hex(),
                message: err.to_string(),
            }
        })?;
        let (written, skipped) = crate::export::packwiz::write_channel_tree(store, &m, to, e, 8).await?;
        report.packwiz_written = written;
        report.skipped = skipped;
    }
    Ok(PromoteReport {
        pack: pack.to_owned(),
        build: build.to_hex(),
        manifest_size: size,
        pointer,
        exports: (!named.is_empty()).then_some(report),
    })
}
