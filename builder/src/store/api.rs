//! What every store offers: the [`Store`] trait, the objects it reads and
//! writes, and its errors.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use bytes::Bytes;

/// Body of an object to upload.
#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Bytes),
    /// A local file, streamed from disk (never read whole into memory).
    File(PathBuf),
    /// A file in the download cache: like `File`, but immutable (named by
    /// its content), so a directory store on the same filesystem hard-links
    /// it and makes it durable with the other blobs ([`Store::sync_blobs`]).
    CachedFile(PathBuf),
}

/// Headers stored with an object.
#[derive(Debug, Clone, Copy)]
pub struct ObjectMeta {
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

impl ObjectMeta {
    /// A blob: immutable, cached forever.
    pub const BLOB: ObjectMeta = ObjectMeta {
        content_type: atlas_proto::layout::CONTENT_TYPE_BLOB,
        cache_control: atlas_proto::layout::CACHE_IMMUTABLE,
    };
    /// A build's manifest: immutable, cached forever.
    pub const MANIFEST: ObjectMeta = ObjectMeta {
        content_type: atlas_proto::layout::CONTENT_TYPE_MANIFEST,
        cache_control: atlas_proto::layout::CACHE_IMMUTABLE,
    };
    /// A channel's pointer history entry: JSON, written once.
    pub const HISTORY: ObjectMeta = ObjectMeta {
        content_type: atlas_proto::layout::CONTENT_TYPE_POINTER,
        cache_control: atlas_proto::layout::CACHE_IMMUTABLE,
    };
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key relative to the store (its prefix removed).
    pub key: String,
    pub size: u64,
    /// When the object was written (S3 `LastModified`, a file's mtime).
    pub modified: SystemTime,
}

/// What an immutable put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// The key already existed; nothing was written.
    AlreadyExists,
}

/// A stored object read back, with the entity tag used for compare-and-swap.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub etag: String,
}

/// Precondition for replacing a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The key must not exist yet.
    Absent,
    /// The key must still have this entity tag.
    ETag(String),
}

/// A store operation that failed. Messages name the store and the key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {store}: `{key}`: {message}")]
    Io {
        store: String,
        key: String,
        message: String,
    },
    #[error(
        "store {store}: `{key}` changed while this command ran (another publish or promote won the race); run the command again to build on the newer pointer"
    )]
    Conflict { store: String, key: String },
    #[error("store {store}: `{key}` is larger than {limit} bytes")]
    TooLarge { store: String, key: String, limit: u64 },
    #[error("invalid store URL `{url}`: {message}")]
    Url { url: String, message: String },
    #[error(
        "store {store} ignores conditional writes ({how}): two publishes, promotes or re-signs could overwrite each other's pointer without either noticing. Use a store that honours If-None-Match and If-Match on PutObject (AWS S3, Cloudflare R2, recent MinIO), or, if only one writer ever runs at a time (e.g. one CI concurrency group), pass --allow-unconditional-store"
    )]
    Unconditional { store: String, how: String },
}

impl crate::exit::HasExitClass for StoreError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            Self::Conflict { .. } => crate::exit::ExitClass::Conflict,
            Self::Io { .. } | Self::TooLarge { .. } | Self::Url { .. } | Self::Unconditional { .. } => {
                crate::exit::ExitClass::Store
            }
        }
    }
}

/// An object store holding the static layout in docs/FORMAT.md.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Human-readable location (`/path/to/store`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;

    /// Whether the store keeps the download cache's files themselves (a
    /// directory store on the same filesystem hard-links them), so they must
    /// be on disk before the manifest names them. Publishing then writes
    /// downloads straight to the disk ([`crate::download::WriteMode::Direct`]).
    fn keeps_cached_files(&self) -> bool {
        false
    }

    /// Makes every blob put so far durable; called once, after the blobs and
    /// before the manifest that names them. Remote stores have nothing to do
    /// (a completed PUT is stored).
    async fn sync_blobs(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// [`Store::exists`] taking an owned key, for use in streams of requests.
    async fn exists_owned(&self, key: String) -> Result<bool, StoreError> {
        self.exists(&key).await
    }

    /// Writes `key` if and only if it does not exist yet (`If-None-Match: *`).
    async fn put_immutable(&self, key: &str, body: Body, meta: ObjectMeta) -> Result<PutOutcome, StoreError>;

    /// Reads `key` whole, refusing objects larger than `max_bytes`. `None` if absent.
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Object>, StoreError>;

    /// Replaces `key` only if it still matches `expected`; `Conflict` otherwise.
    /// Returns the new entity tag.
    async fn put_cas(
        &self,
        key: &str,
        bytes: Bytes,
        expected: Expected,
        meta: ObjectMeta,
    ) -> Result<String, StoreError>;

    /// Every object whose key starts with `prefix` (`""`: the whole store),
    /// in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError>;

    /// Deletes `keys` (absent ones are not an error). Only garbage
    /// collection deletes.
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError>;

    /// Checks once per handle that the store honours conditional writes
    /// (`If-None-Match: *`, `If-Match`), which compare-and-swap relies on;
    /// `StoreError::Unconditional` when it does not and the handle was not
    /// opened to allow it. Writes check it themselves; writers call it first
    /// to fail before uploading anything.
    async fn check_conditional_writes(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
