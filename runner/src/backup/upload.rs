//! Uploading backups to an S3-compatible bucket, configured like the builder's store (R2-friendly:
//! checksums only when required, plain `Content-Length` bodies streamed from disk).

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata as _};
use aws_sdk_s3::primitives::ByteStream;

use super::error::BackupError;
use super::settings::S3BackupSettings;

#[derive(Debug)]
pub(super) struct Uploader {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
}

impl Uploader {
    /// Configures a client; makes no request.
    pub(super) async fn connect(s: &S3BackupSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = s.region.as_deref().filter(|r| !r.is_empty()) {
            loader = loader.region(Region::new(region.to_owned()));
        }
        let endpoint = s.endpoint.as_deref().filter(|e| !e.is_empty());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(c) = &s.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                None,
                None,
                "atlas-backup-settings",
            ));
        }
        let sdk = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&sdk)
            // Every S3-compatible server understands path-style; virtual hosts need DNS set up.
            .force_path_style(sdk.endpoint_url().is_some())
            // Cloudflare R2 rejects aws-chunked uploads and trailing checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if sdk.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        Self {
            endpoint: sdk
                .endpoint_url()
                .map_or_else(|| "the default AWS S3 endpoint".to_owned(), str::to_owned),
            client: Client::from_conf(config.build()),
            bucket: s.bucket.clone(),
            prefix: s.prefix.trim_matches('/').to_owned(),
        }
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// Uploads the file at `path` as `<prefix>/<name>`.
    pub(super) async fn put(&self, name: &str, path: &Path, content_type: &str) -> Result<(), BackupError> {
        let key = self.key(name);
        let fail = |message: String| BackupError::Upload {
            bucket: self.bucket.clone(),
            key: key.clone(),
            message,
        };
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| fail(format!("opening {}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let hint = if status == Some(403) || e.code().is_some_and(|c| c.contains("Access") || c.contains("Signature")) {
                    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's permissions"
                } else {
                    "check [backup.s3] endpoint, region and bucket, AWS_ENDPOINT_URL and the network"
                };
                fail(format!(
                    "PutObject to {} failed: {}; {hint}",
                    self.endpoint,
                    DisplayErrorContext(&e)
                ))
            })?;
        tracing::info!(bucket = %self.bucket, key, "backup uploaded");
        Ok(())
    }
}
