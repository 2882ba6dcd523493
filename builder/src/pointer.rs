//! Writing channel pointers: read the current one, choose the next version,
//! sign, and replace it by compare-and-swap so a newer pointer is never
//! overwritten. Every version is also kept, written once, in the channel's
//! history (`history/<version>.json`): the writer of version N+1 makes sure
//! version N is there before its swap, and writes N+1 after it, so `gc`
//! knows which builds hosts may still roll back to.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use atlas_proto::layout::{CACHE_POINTER, CONTENT_TYPE_POINTER, history_key, pointer_key};
use atlas_proto::pointer::{self, Exports, POINTER_FORMAT, PointerPayload, SignedPointer};
use atlas_proto::tools::Tools;
use atlas_proto::{SecretKey, Sha256Digest};

use crate::store::{Body, Expected, ObjectMeta, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PointerUpdateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the current pointer at `{key}` in {store} is unreadable ({message}); inspect it, and delete it only if you mean to restart the channel's version sequence"
    )]
    Corrupt {
        store: String,
        key: String,
        message: String,
    },
}

impl crate::exit::HasExitClass for PointerUpdateError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            // A lost compare-and-swap is a lost race for every writer
            // (publish, promote and resign): the README's exit 5.
            Self::Store(e) => e.exit_class(),
            Self::Corrupt { .. } => crate::exit::ExitClass::Store,
        }
    }
}

/// The current state of a channel, read from the store.
#[derive(Debug, Clone)]
pub struct CurrentPointer {
    pub payload: PointerPayload,
    pub etag: String,
    pub signed_by: Vec<String>,
    /// The envelope exactly as stored.
    pub bytes: Bytes,
}

/// Reads and parses a channel's pointer (signatures are not checked here).
pub async fn read_current(
    store: &dyn Store,
    pack: &str,
    channel: &str,
) -> Result<Option<CurrentPointer>, PointerUpdateError> {
    let key = pointer_key(pack, channel);
    let Some(obj) = store
        .get(&key, atlas_proto::Limits::DEFAULT.pointer_bytes)
        .await?
    else {
        return Ok(None);
    };
    let corrupt = |message: String| PointerUpdateError::Corrupt {
        store: store.describe(),
        key: key.clone(),
        message,
    };
    let signed = SignedPointer::parse(&obj.bytes).map_err(|e| corrupt(e.to_string()))?;
    let payload = signed.payload_unverified().map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(CurrentPointer {
        payload,
        etag: obj.etag,
        signed_by: signed.key_ids(),
        bytes: obj.bytes,
    }))
}

/// Keeps `pointer` (the envelope bytes of `version`) in the channel's
/// history, unless that version is there already.
pub async fn keep_in_history(
    store: &dyn Store,
    pack: &str,
    channel: &str,
    version: u64,
    pointer: &Bytes,
) -> Result<(), StoreError> {
    let key = history_key(pack, channel, version);
    // Looked up first: a publish that changes nothing writes nothing.
    if store.exists(&key).await? {
        return Ok(());
    }
    store
        .put_immutable(&key, Body::Bytes(pointer.clone()), ObjectMeta::HISTORY)
        .await
        .map(drop)
}

/// What happened to the channel pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PointerStatus {
    /// A new version was signed and written.
    Updated,
    /// The channel already pointed at this build; nothing was written.
    Unchanged,
}

impl PointerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PointerUpdate {
    pub channel: String,
    pub key: String,
    pub status: PointerStatus,
    pub version: u64,
    pub previous_version: Option<u64>,
    pub previous_build: Option<String>,
    pub expires_at: u64,
}

/// How many times a pointer write lost to a concurrent writer is retried
/// from a fresh read (only while the channel still names the same build).
pub const CAS_ATTEMPTS: usize = 3;

/// A channel pointer to write: `channel` of `pack` pointing at `build`.
#[derive(Debug, Clone)]
pub struct PointerRequest<'a> {
    pub store: &'a dyn Store,
    pub key: &'a SecretKey,
    pub pack: &'a str,
    pub channel: &'a str,
    pub build: Sha256Digest,
    /// Length of the build's stored manifest.
    pub manifest_size: u64,
    /// Current time, Unix seconds.
    pub now: u64,
    /// Lifetime of the signed pointer.
    pub lifetime: Duration,
    /// Re-sign even when the channel already points at this build with these exports.
    pub force: bool,
    /// The launcher exports the pointer names.
    pub exports: Exports,
    /// The player tools the pointer pins (format 1.3; empty: none).
    pub tools: Tools,
}

/// Points the channel at the build, signing version `current + 1`.
///
/// If the channel already points at the build with the same exports and
/// `force` is false, nothing is written. The pointer is replaced by
/// compare-and-swap. When another writer wins the race, the channel is read
/// again: if it still names the build it named before (the other writer only
/// re-signed it) or already names this build, the write is retried from that
/// fresh read, at most [`CAS_ATTEMPTS`] times in all; if it names another
/// build (another publish or promote landed), this fails with
/// `StoreError::Conflict` and never overwrites that newer pointer.
pub async fn point_channel(req: &PointerRequest<'_>) -> Result<PointerUpdate, PointerUpdateError> {
    let (store, pack, channel) = (req.store, req.pack, req.channel);
    let before = read_current(store, pack, channel).await?.map(|c| c.payload.build);
    let mut attempt = 1;
    loop {
        let result = point_channel_once(req).await;
        let Err(PointerUpdateError::Store(StoreError::Conflict { .. })) = &result else {
            return result;
        };
        let fresh = read_current(store, pack, channel).await?;
        let fresh_build = fresh.as_ref().map(|c| c.payload.build.clone());
        let ours = req.build.to_hex();
        let same = fresh_build == before || fresh_build.as_deref() == Some(ours.as_str());
        if !same || attempt >= CAS_ATTEMPTS {
            match (&fresh, same) {
                (Some(f), false) => tracing::warn!(
                    "channel `{channel}` of `{pack}` was pointed at build {} (version {}) by another writer while this command ran; not overwriting it",
                    f.payload.build,
                    f.payload.version
                ),
                _ => tracing::warn!(
                    "channel `{channel}` of `{pack}` kept changing; gave up after {attempt} attempts"
                ),
            }
            return result;
        }
        tracing::info!("channel `{channel}` was re-signed concurrently; retrying from a fresh read");
        attempt += 1;
    }
}

/// One read-sign-write of [`point_channel`]; `StoreError::Conflict` when
/// the pointer changed after it was read.
async fn point_channel_once(req: &PointerRequest<'_>) -> Result<PointerUpdate, PointerUpdateError> {
    let (store, key, pack, channel) = (req.store, req.key, req.pack, req.channel);
    let object_key = pointer_key(pack, channel);
    let current = read_current(store, pack, channel).await?;
    let previous_version = current.as_ref().map(|c| c.payload.version);
    let previous_build = current.as_ref().map(|c| c.payload.build.clone());
    if let Some(c) = &current {
        // The version about to be replaced stays known (a writer that died
        // between its swap and its history entry left it out).
        keep_in_history(store, pack, channel, c.payload.version, &c.bytes).await?;
    }
    if let Some(c) = &current {
        if c.payload.build == req.build.to_hex()
            && c.payload.exports == req.exports
            && c.payload.tools == req.tools
            && !req.force
        {
            return Ok(PointerUpdate {
                channel: channel.to_owned(),
                key: object_key,
                status: PointerStatus::Unchanged,
                version: c.payload.version,
                previous_version,
                previous_build,
                expires_at: c.payload.expires_at,
            });
        }
        let own = key.public().key_id();
        if !c.signed_by.contains(&own) {
            tracing::warn!(
                "the current `{channel}` pointer was signed by key(s) {:?}, not by this key ({own}); hosts must trust this key to accept the new pointer",
                c.signed_by
            );
        }
    }
    let payload = PointerPayload {
        format: POINTER_FORMAT,
        pack: pack.to_owned(),
        channel: channel.to_owned(),
        version: previous_version.map_or(1, |v| v.saturating_add(1)),
        build: req.build.to_hex(),
        manifest_size: req.manifest_size,
        issued_at: req.now,
        expires_at: req.now.saturating_add(req.lifetime.as_secs()),
        exports: req.exports.clone(),
        tools: req.tools.clone(),
    };
    let envelope = Bytes::from(pointer::sign(&payload, &[key]));
    let expected = current.map_or(Expected::Absent, |c| Expected::ETag(c.etag));
    let meta = ObjectMeta {
        content_type: CONTENT_TYPE_POINTER,
        cache_control: CACHE_POINTER,
    };
    store
        .put_cas(&object_key, envelope.clone(), expected, meta)
        .await?;
    // The pointer is live: a failure here only delays the history entry
    // (the next writer adds it before replacing this version).
    let entry = history_key(pack, channel, payload.version);
    let kept = store
        .put_immutable(&entry, Body::Bytes(envelope.clone()), ObjectMeta::HISTORY)
        .await;
    if let Err(e) = kept {
        tracing::warn!(
            "channel `{channel}` points at build {} (version {}), but its history entry could not be written ({e}); the next publish, promote or resign adds it",
            payload.build,
            payload.version
        );
    }
    Ok(PointerUpdate {
        channel: channel.to_owned(),
        key: object_key,
        status: PointerStatus::Updated,
        version: payload.version,
        previous_version,
        previous_build,
        expires_at: payload.expires_at,
    })
}

/// Re-signs a channel's current pointer with a new expiry (version + 1, same
/// build), so hosts are not frozen when a channel sees no new builds. Run it
/// on a schedule shorter than the pointer lifetime.
pub async fn resign(
    store: &dyn Store,
    key: &SecretKey,
    pack: &str,
    channel: &str,
    now: u64,
    lifetime: Duration,
) -> Result<Option<PointerUpdate>, PointerUpdateError> {
    let Some(current) = read_current(store, pack, channel).await? else {
        return Ok(None);
    };
    let build = current
        .payload
        .build_digest()
        .map_err(|e| PointerUpdateError::Corrupt {
            store: store.describe(),
            key: pointer_key(pack, channel),
            message: e.to_string(),
        })?;
    point_channel(&PointerRequest {
        store,
        key,
        pack,
        channel,
        build,
        manifest_size: current.payload.manifest_size,
        now,
        lifetime,
        force: true,
        // The exports stay as they are: the build, and so its exports, is unchanged.
        exports: current.payload.exports.clone(),
        tools: current.payload.tools.clone(),
    })
    .await
    .map(Some)
}
