//! Promotion: point one channel (e.g. `production`) at the build another
//! channel points to, or at a build named by id, with the target channel's
//! own version sequence. Rolling back is promoting an older build.

use std::time::Duration;

use serde::Serialize;

use atlas_proto::layout::{manifest_key, pointer_key};
use atlas_proto::pointer::{Expectation, MAX_ENVELOPE_BYTES, SignedPointer};
use atlas_proto::{PublicKey, SecretKey, Sha256Digest};

use crate::pointer::{PointerUpdate, PointerUpdateError, point_channel};
use crate::store::{Store, StoreError};

/// Largest manifest `promote` reads to check a build exists.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

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
    #[error("channel `{channel}` of pack `{pack}` has no pointer in {store}; publish to it first")]
    NoChannel {
        pack: String,
        channel: String,
        store: String,
    },
    #[error(
        "the `{channel}` pointer in {store} does not verify with the signing key: {message}; pass --build ID to promote a build explicitly"
    )]
    Unverified {
        channel: String,
        store: String,
        message: String,
    },
    #[error("build {build} of pack `{pack}` is not in {store} (no `{key}`); check the build id")]
    NoBuild {
        pack: String,
        build: String,
        store: String,
        key: String,
    },
    #[error("the manifest `{key}` in {store} does not hash to its build id; the store is damaged")]
    Damaged { key: String, store: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub pack: String,
    pub build: String,
    pub manifest_size: u64,
    pub pointer: PointerUpdate,
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
    let build = match from {
        PromoteFrom::Build(b) => *b,
        PromoteFrom::Channel(channel) => {
            let obj = store
                .get(&pointer_key(pack, channel), MAX_ENVELOPE_BYTES)
                .await?
                .ok_or_else(|| PromoteError::NoChannel {
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
    let key_name = manifest_key(pack, &build);
    let manifest = store
        .get(&key_name, MAX_MANIFEST_BYTES)
        .await?
        .ok_or_else(|| PromoteError::NoBuild {
            pack: pack.to_owned(),
            build: build.to_hex(),
            store: store.describe(),
            key: key_name.clone(),
        })?;
    if Sha256Digest::of(&manifest.bytes) != build {
        return Err(PromoteError::Damaged {
            key: key_name,
            store: store.describe(),
        });
    }
    let size = manifest.bytes.len() as u64;
    let pointer = point_channel(store, key, pack, to, &build, size, now, lifetime, false).await?;
    Ok(PromoteReport {
        pack: pack.to_owned(),
        build: build.to_hex(),
        manifest_size: size,
        pointer,
    })
}
