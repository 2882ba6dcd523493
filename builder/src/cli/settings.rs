//! Flags, `atlas.toml`, the environment and defaults, resolved into what
//! the library takes. Everywhere the precedence is: the flag (or the
//! environment variable clap reads for it), then `atlas.toml`, then the
//! built-in default.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atlas_proto::SecretKey;

use super::args::{ModArgs, PlanArgs, PublishArgs, SigningArgs, StoreArgs};
use crate::export::{ExportError, ExportOptions};
use crate::publish::PublishOptions;
use crate::resolve::ModOptions;
use crate::settings::{AtlasSettings, DEFAULT_CHANNEL, DEFAULT_EXPIRES_IN};
use crate::signing::{self, SigningError};
use crate::store::{self, S3Settings, Store, StoreError};

/// Now, in Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `--public-url` (or `ATLAS_PUBLIC_URL`), checked: where exports point.
pub fn exports(public_url: Option<&str>) -> Result<Option<ExportOptions>, ExportError> {
    public_url.map(ExportOptions::new).transpose()
}

impl StoreArgs {
    /// The S3 settings of the flags (and `AWS_*` variables).
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            force_path_style: self.s3_path_style,
            ..S3Settings::default()
        }
    }

    /// Opens the store `--store` names.
    pub async fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        let options = store::OpenOptions {
            allow_unconditional_writes: self.allow_unconditional_store,
        };
        store::open_with(&self.store, &self.settings(), options).await
    }
}

impl ModArgs {
    /// Mod resolution and download settings; the cache defaults to
    /// `$XDG_CACHE_HOME/atlas` (else `~/.cache/atlas`, else a temporary folder).
    pub fn options(&self) -> ModOptions {
        let mut o = match &self.cache_dir {
            Some(d) => ModOptions::new(d.clone()),
            None => ModOptions::default(),
        };
        o.resolve.manual_dir = self.manual_dir.clone();
        o.resolve.modrinth_api = self.modrinth_api.clone();
        o.resolve.curseforge_api = self.curseforge_api.clone();
        o.download.concurrency = self.downloads.max(1);
        o.pack_id = self.pack_id.clone();
        o.deps = self.deps;
        o.mirror_override = self.mirror;
        o
    }
}

impl SigningArgs {
    /// `--expires-in`, else the file's value, else 30 days.
    pub fn expires_in(&self, file: Option<Duration>) -> Duration {
        self.expires_in.or(file).unwrap_or(DEFAULT_EXPIRES_IN)
    }

    /// The secret key of `--key-file`, else of `ATLAS_SIGNING_KEY`.
    pub fn load_key(&self) -> Result<SecretKey, SigningError> {
        signing::load_secret_key(self.key_file.as_deref())
    }
}

/// The keyset directory `publish` uploads: `--keys-dir`, else the
/// repository's `.atlas/keys` when it holds a chain.
pub fn keys_dir(flag: Option<&Path>, repo: &Path) -> Option<PathBuf> {
    flag.map(Path::to_owned).or_else(|| {
        let d = repo.join(crate::keyset::DEFAULT_KEYS_DIR);
        d.join("1.json").exists().then_some(d)
    })
}

/// How `publish` runs: the channel (`--channel`, else `[channels] default`,
/// else `dev`) and the pointer lifetime (`--expires-in`, else
/// `[channels] expires-in`, else 30 days).
pub fn publish_options(args: &PublishArgs, file: &AtlasSettings) -> PublishOptions {
    PublishOptions {
        channel: args
            .channel
            .clone()
            .or(file.channels.default.clone())
            .unwrap_or_else(|| DEFAULT_CHANNEL.to_owned()),
        now: now(),
        pointer_lifetime: args.signing.expires_in(file.channels.expires_in()),
        dry_run: args.dry_run,
        concurrency: args.concurrency,
        force_pointer: args.force_pointer,
    }
}

/// How `plan` runs: a dry-run publish to `dev`.
pub fn plan_options(args: &PlanArgs) -> PublishOptions {
    PublishOptions {
        channel: DEFAULT_CHANNEL.to_owned(),
        now: now(),
        pointer_lifetime: Duration::ZERO,
        dry_run: true,
        concurrency: args.concurrency,
        force_pointer: false,
    }
}
