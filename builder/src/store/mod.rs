//! Stores: where a build's static files are written. A local directory (the
//! default) or an S3-compatible bucket (Cloudflare R2, AWS S3, MinIO, ...).
//!
//! Immutable objects (blobs, manifests) are written once and never
//! overwritten; the channel pointer is replaced by compare-and-swap. Stores
//! list and delete too, for garbage collection only ([`crate::gc`]).

pub mod api;
pub mod dir;
pub mod s3;

use std::path::PathBuf;

pub use api::{Body, Expected, Listed, Object, ObjectMeta, PutOutcome, Store, StoreError};
pub use dir::DirStore;
pub use s3::{S3Settings, S3Store};

/// How a store handle is used beyond its address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Write to an S3-compatible store even if it ignores conditional
    /// writes (`--allow-unconditional-store`): only safe with one writer at
    /// a time. Without it, writes to such a store are refused.
    pub allow_unconditional_writes: bool,
}

/// Opens the store named by `url`: a path or `file://` URL for a directory,
/// `s3://bucket[/prefix]` for S3 (settings from `s3`).
pub async fn open(url: &str, s3: &S3Settings) -> Result<Box<dyn Store>, StoreError> {
    open_with(url, s3, OpenOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(
    url: &str,
    s3: &S3Settings,
    options: OpenOptions,
) -> Result<Box<dyn Store>, StoreError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Url {
                url: url.to_owned(),
                message: "missing bucket name: use s3://BUCKET[/PREFIX]".into(),
            });
        }
        let store = S3Store::connect(bucket, prefix.trim_matches('/'), s3).await?;
        return Ok(Box::new(
            store.allow_unconditional_writes(options.allow_unconditional_writes),
        ));
    }
    let path = if let Some(rest) = url.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if url.contains("://") {
        return Err(StoreError::Url {
            url: url.to_owned(),
            message: "unsupported scheme: use a directory path, file://PATH or s3://BUCKET[/PREFIX]".into(),
        });
    } else {
        PathBuf::from(url)
    };
    Ok(Box::new(DirStore::new(path)))
}
