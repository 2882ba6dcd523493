//! The `[backup]` settings of the daemon's config (`schemas/runner.schema.json`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::BackupError;

/// `[backup]` of the daemon's config.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSettings {
    /// Where archives go; relative paths are relative to the server directory. Default
    /// `<server_dir>/../backups/<server dir name>` (see [`BackupSettings::resolved_dir`]).
    pub dir: Option<PathBuf>,
    /// Archives kept (the newest always is).
    pub keep_count: usize,
    /// Archives older than this are deleted (the newest never is).
    #[serde(with = "humantime_serde")]
    pub keep_age: Duration,
    /// More paths or globs, relative to the server directory, left out of archives.
    pub exclude: Vec<String>,
    /// How long `save-all flush` may take in a hot backup.
    #[serde(with = "humantime_serde")]
    pub save_timeout: Duration,
    /// Take a hot backup this often while the server runs.
    #[serde(with = "humantime_serde")]
    pub hot_interval: Option<Duration>,
    /// zstd level, 1 (fast) to 22 (small).
    pub zstd_level: i32,
    /// Also upload each archive to an S3-compatible bucket.
    pub s3: Option<S3BackupSettings>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            dir: None,
            keep_count: 10,
            keep_age: Duration::from_secs(14 * 24 * 3600),
            exclude: Vec::new(),
            save_timeout: Duration::from_secs(60),
            hot_interval: None,
            zstd_level: 3,
            s3: None,
        }
    }
}

impl BackupSettings {
    /// The backup directory for a server in `server_dir` (which should be absolute).
    pub fn resolved_dir(&self, server_dir: &Path) -> Result<PathBuf, BackupError> {
        if let Some(dir) = &self.dir {
            return Ok(server_dir.join(dir));
        }
        match (server_dir.parent(), server_dir.file_name()) {
            (Some(parent), Some(name)) => Ok(parent.join("backups").join(name)),
            _ => Err(BackupError::Config(format!(
                "cannot derive a backup directory from the server directory {}; set [backup] dir",
                server_dir.display()
            ))),
        }
    }
}

/// `[backup.s3]`: an S3-compatible bucket (Cloudflare R2, AWS S3, MinIO, ...). Credentials come
/// from the standard AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`,
/// ...). With an `endpoint`, requests use path-style addressing, which every S3-compatible server
/// accepts; like the builder's store, checksums are sent only when required (R2 rejects
/// `aws-chunked` uploads). Archives are sent in one `PutObject`, so at most 5 GiB each.
#[derive(Deserialize, Serialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct S3BackupSettings {
    pub bucket: String,
    /// Key prefix; objects are `<prefix>/<id>.tar.zst` and `<prefix>/<id>.json`.
    #[serde(default)]
    pub prefix: String,
    /// Endpoint URL, e.g. `https://<account>.r2.cloudflarestorage.com`; else `AWS_ENDPOINT_URL`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region (`auto` for R2); else `AWS_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Explicit credentials, for embedding programs and tests; never read from the config file.
    #[serde(skip)]
    pub credentials: Option<S3Credentials>,
}

/// An access key pair.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"(hidden)")
            .finish()
    }
}
