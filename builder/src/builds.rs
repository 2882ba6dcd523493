//! Reading builds back from a store (for `promote` and `diff`): which build a
//! channel names, and a build's manifest bytes checked against its id.

use bytes::Bytes;

use atlas_proto::{Sha256Digest, layout, manifest};

use crate::pointer::{PointerUpdateError, read_current};
use crate::store::{Store, StoreError};

/// A channel or build could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum BuildLookupError {
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
    #[error("build {build} of pack `{pack}` is not in {store} (no `{key}`); check the build id")]
    NoBuild {
        pack: String,
        build: String,
        store: String,
        key: String,
    },
    #[error("the manifest `{key}` in {store} is unusable: {message}; the store is damaged")]
    Damaged {
        key: String,
        store: String,
        message: String,
    },
}

impl crate::exit::HasExitClass for BuildLookupError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Store
    }
}

impl BuildLookupError {
    /// A `Damaged` error for `key`.
    pub fn damaged(store: &dyn Store, key: &str, message: impl Into<String>) -> Self {
        Self::Damaged {
            key: key.to_owned(),
            store: store.describe(),
            message: message.into(),
        }
    }
}

/// The build a channel's pointer names now (signature not checked here).
pub async fn channel_build(
    store: &dyn Store,
    pack: &str,
    channel: &str,
) -> Result<Sha256Digest, BuildLookupError> {
    let current = read_current(store, pack, channel)
        .await?
        .ok_or_else(|| BuildLookupError::NoChannel {
            pack: pack.to_owned(),
            channel: channel.to_owned(),
            store: store.describe(),
        })?;
    current
        .payload
        .build_digest()
        .map_err(|e| BuildLookupError::damaged(store, &layout::pointer_key(pack, channel), e.to_string()))
}

/// The stored manifest bytes of `build`, refused unless they hash to its id
/// (and larger than a host would read: the cap is the fetcher's).
pub async fn manifest_bytes(
    store: &dyn Store,
    pack: &str,
    build: &Sha256Digest,
) -> Result<Bytes, BuildLookupError> {
    let key = layout::manifest_key(pack, build);
    let obj = store
        .get(&key, atlas_proto::Limits::DEFAULT.manifest_stored_bytes)
        .await?
        .ok_or_else(|| BuildLookupError::NoBuild {
            pack: pack.to_owned(),
            build: build.to_hex(),
            store: store.describe(),
            key: key.clone(),
        })?;
    if manifest::build_id(&obj.bytes) != *build {
        return Err(BuildLookupError::damaged(
            store,
            &key,
            "it does not hash to its build id",
        ));
    }
    Ok(obj.bytes)
}
