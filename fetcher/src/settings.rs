//! Settings of a sync, from wherever they come, and the one function that
//! turns them into [`SyncOptions`]: [`SyncSettings::options`].
//!
//! Each source of settings gives one [`SyncSettings`] layer: the command
//! line (flags and `ATLAS_*` variables), the fetcher's config file
//! ([`crate::config::FetcherConfig::settings`]), the runner's `[source]`
//! section. [`SyncSettings::or`] puts one layer over another, and `options`
//! fills what no layer set with the defaults and reads the keys. Everyone
//! therefore gets the same defaults and the same checks.

use std::path::PathBuf;
use std::time::Duration;

use crate::download::DEFAULT_PARALLELISM;
use crate::error::SyncError;
use crate::instance;
use crate::plan::OnModified;
use crate::retry::RetryPolicy;
use crate::select::Selection;
use crate::side::InstallSide;
use crate::source::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_LOW_SPEED_LIMIT, DEFAULT_LOW_SPEED_TIME,
    DEFAULT_TIMEOUT,
};
use crate::sync::keychain::{load_key, load_root};
use crate::sync::{DEFAULT_DEADLINE, SyncOptions};

/// One layer of sync settings; `None` or empty: not set by this layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSettings {
    /// Base of the store: `http(s)://` URL, `file://` URL or directory.
    pub source: Option<String>,
    pub pack: Option<String>,
    pub channel: Option<String>,
    /// Trusted public keys: `ed25519:<base64>` text or paths to `.pub` files.
    pub keys: Vec<String>,
    /// Root of trust instead of `keys`: a trusted `keys/<N>.json` or root file.
    pub root: Option<PathBuf>,
    /// The directory to keep in sync.
    pub dir: Option<PathBuf>,
    /// A Prism Launcher or MultiMC instance folder: its game directory is
    /// synced instead of `dir`, and the side defaults to client.
    pub instance: Option<PathBuf>,
    pub side: Option<InstallSide>,
    /// Blobs downloaded at once (1 to 64).
    pub parallelism: Option<usize>,
    /// Per-request timeout: between two chunks of a body, the pointer request.
    pub timeout: Option<Duration>,
    /// Establishing a connection.
    pub connect_timeout: Option<Duration>,
    /// From sending a request to its response headers.
    pub header_timeout: Option<Duration>,
    /// Bytes per second below which a transfer, over `low_speed_time`, fails (0: no limit).
    pub low_speed_limit: Option<u64>,
    pub low_speed_time: Option<Duration>,
    /// Overall deadline of the network part of a run.
    pub deadline: Option<Duration>,
    /// Retries of a failed request.
    pub retries: Option<u32>,
    pub on_modified: Option<OnModified>,
    /// Optional files to install even if the pack leaves them off.
    pub enable: Vec<String>,
    /// Optional files to leave out even if the pack turns them on.
    pub disable: Vec<String>,
    /// Blob cache shared by the instances on this host.
    pub cache: Option<PathBuf>,
}

/// Names given in a list, trimmed, without empty ones (`ATLAS_KEY=a,,b`).
fn names(v: &[String]) -> Vec<String> {
    v.iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The first list that names something.
fn first(upper: Vec<String>, lower: Vec<String>) -> Vec<String> {
    if names(&upper).is_empty() { lower } else { upper }
}

impl SyncSettings {
    /// These settings over `lower`: each setting this layer leaves unset comes
    /// from `lower`. Trust is taken as a whole: a layer that names keys or a
    /// root replaces both of the layer below (a `--key` flag wins over a
    /// `root` in the file). Lists (`enable`, `disable`) replace, never merge.
    pub fn or(self, lower: SyncSettings) -> SyncSettings {
        let (keys, root) = if self.root.is_some() || !names(&self.keys).is_empty() {
            (self.keys, self.root)
        } else {
            (lower.keys, lower.root)
        };
        SyncSettings {
            source: self.source.or(lower.source),
            pack: self.pack.or(lower.pack),
            channel: self.channel.or(lower.channel),
            keys,
            root,
            dir: self.dir.or(lower.dir),
            instance: self.instance.or(lower.instance),
            side: self.side.or(lower.side),
            parallelism: self.parallelism.or(lower.parallelism),
            timeout: self.timeout.or(lower.timeout),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            header_timeout: self.header_timeout.or(lower.header_timeout),
            low_speed_limit: self.low_speed_limit.or(lower.low_speed_limit),
            low_speed_time: self.low_speed_time.or(lower.low_speed_time),
            deadline: self.deadline.or(lower.deadline),
            retries: self.retries.or(lower.retries),
            on_modified: self.on_modified.or(lower.on_modified),
            enable: first(self.enable, lower.enable),
            disable: first(self.disable, lower.disable),
            cache: self.cache.or(lower.cache),
        }
    }

    /// The options of a sync with these settings and the defaults for the
    /// rest (server side, or client for an instance; parallelism 8; timeout
    /// 60 s, connect timeout 10 s, header timeout 15 s, low-speed limit
    /// 1024 bytes/s over 30 s; deadline 30 minutes; 5 retries; `keep`
    /// modified files). Reads the key files or the root of trust. Errors name
    /// the missing or bad setting as its flag and its config-file key.
    pub fn options(&self) -> Result<SyncOptions, SyncError> {
        let required = |flag: &str, key: &str| {
            SyncError::Usage(format!("--{flag} is required (or `{key}` in the --config file)"))
        };
        let source = self.source.clone().ok_or_else(|| required("source", "source"))?;
        let pack = self.pack.clone().ok_or_else(|| required("pack", "pack"))?;
        let channel = self
            .channel
            .clone()
            .ok_or_else(|| required("channel", "channel"))?;
        let instance = self.instance.as_deref().map(instance::resolve).transpose()?;
        let dir = match instance.clone() {
            Some(game) => game,
            None => self.dir.clone().ok_or_else(|| required("dir", "dir"))?,
        };
        let keys = match self.root {
            Some(_) => Vec::new(),
            None => names(&self.keys)
                .iter()
                .map(|k| load_key(k))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if keys.is_empty() && self.root.is_none() {
            return Err(SyncError::Usage(
                "--root or --key is required (or `root` or `keys` in the --config file)".into(),
            ));
        }
        let root = self.root.as_deref().map(|r| load_root(r, &pack)).transpose()?;
        let mut opts = SyncOptions::new(source, pack, channel, keys, dir);
        opts.root = root;
        let default_side = if instance.is_some() {
            InstallSide::Client
        } else {
            InstallSide::Server
        };
        opts.side = self.side.unwrap_or(default_side);
        opts.selection = Selection {
            enable: names(&self.enable).into_iter().collect(),
            disable: names(&self.disable).into_iter().collect(),
        };
        opts.parallelism = self.parallelism.unwrap_or(DEFAULT_PARALLELISM);
        opts.timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        opts.connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        opts.header_timeout = self.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT);
        opts.low_speed_limit = self.low_speed_limit.unwrap_or(DEFAULT_LOW_SPEED_LIMIT);
        opts.low_speed_time = self.low_speed_time.unwrap_or(DEFAULT_LOW_SPEED_TIME);
        opts.deadline = Some(self.deadline.unwrap_or(DEFAULT_DEADLINE));
        opts.retry.retries = self.retries.unwrap_or(RetryPolicy::default().retries);
        opts.on_modified = self.on_modified.unwrap_or_default();
        opts.cache = self.cache.clone();
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        atlas_proto::SecretKey::from_seed(&[3; 32]).public().to_text()
    }

    fn base() -> SyncSettings {
        SyncSettings {
            source: Some("http://cdn/".into()),
            pack: Some("p".into()),
            channel: Some("dev".into()),
            keys: vec![key()],
            dir: Some("/srv/mc".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_what_no_layer_sets() {
        let o = base().options().expect("options");
        assert_eq!(
            (o.side, o.parallelism, o.retry.retries),
            (InstallSide::Server, 8, 5)
        );
        assert_eq!(
            (o.timeout, o.deadline),
            (Duration::from_secs(60), Some(Duration::from_secs(1800)))
        );
        assert_eq!(
            (o.connect_timeout, o.header_timeout, o.low_speed_time),
            (
                Duration::from_secs(10),
                Duration::from_secs(15),
                Duration::from_secs(30)
            )
        );
        assert_eq!(o.low_speed_limit, 1024);
        assert_eq!((o.on_modified, o.cache), (OnModified::Keep, None));
        assert!(o.selection.is_empty());
    }

    #[test]
    fn an_upper_layer_wins_setting_by_setting_and_trust_as_a_whole() {
        let file = SyncSettings {
            root: Some("/etc/atlas/root.json".into()),
            keys: Vec::new(),
            retries: Some(2),
            enable: vec!["a.zip".into()],
            ..base()
        };
        let flags = SyncSettings {
            keys: vec![key(), " ".into()],
            channel: Some("beta".into()),
            ..Default::default()
        };
        let s = flags.or(file.clone());
        assert_eq!((s.channel.as_deref(), s.retries), (Some("beta"), Some(2)));
        assert_eq!((s.root, s.enable), (None, vec!["a.zip".to_owned()]));
        let o = SyncSettings::default().or(file).or(base());
        assert_eq!(
            o.root.as_deref(),
            Some(std::path::Path::new("/etc/atlas/root.json"))
        );
        assert!(o.keys.is_empty(), "the root and its (absent) keys come together");
    }

    #[test]
    fn missing_settings_name_the_flag_and_the_key() {
        let err = SyncSettings {
            source: None,
            ..base()
        }
        .options()
        .expect_err("no source")
        .to_string();
        assert!(
            err.contains("--source is required (or `source` in the --config file)"),
            "{err}"
        );
        let err = SyncSettings {
            keys: vec![" ".into()],
            ..base()
        }
        .options()
        .expect_err("no key")
        .to_string();
        assert!(err.contains("--root or --key is required"), "{err}");
    }
}
