//! S3-compatible store (placeholder until the S3 implementation lands).

use bytes::Bytes;

use super::{Body, Expected, Object, ObjectMeta, PutOutcome, Store, StoreError};

/// Connection settings for an S3-compatible store.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Endpoint URL, e.g. `https://<account>.r2.cloudflarestorage.com`.
    pub endpoint: Option<String>,
    /// Region; `auto` for R2.
    pub region: Option<String>,
    /// Explicit credentials; otherwise the standard AWS environment and profile chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.
    pub force_path_style: bool,
}

/// A bucket (and key prefix) on an S3-compatible service.
#[derive(Debug)]
pub struct S3Store {
    bucket: String,
    prefix: String,
}

impl S3Store {
    pub async fn connect(bucket: &str, prefix: &str, _settings: &S3Settings) -> Result<Self, StoreError> {
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    fn unsupported(&self, key: &str) -> StoreError {
        StoreError::Io {
            store: self.describe(),
            key: key.to_owned(),
            message: "S3 support is not built yet".into(),
        }
    }
}

#[async_trait::async_trait]
impl Store for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Err(self.unsupported(key))
    }
    async fn put_immutable(&self, key: &str, _body: Body, _meta: ObjectMeta) -> Result<PutOutcome, StoreError> {
        Err(self.unsupported(key))
    }
    async fn get(&self, key: &str, _max_bytes: u64) -> Result<Option<Object>, StoreError> {
        Err(self.unsupported(key))
    }
    async fn put_cas(&self, key: &str, _bytes: Bytes, _expected: Expected, _meta: ObjectMeta) -> Result<String, StoreError> {
        Err(self.unsupported(key))
    }
}
