//! The `sync` configuration file (`--config FILE`, or `ATLAS_CONFIG`): the
//! same settings as the command-line flags, in TOML, for hosts that run the
//! fetcher from cron or systemd. Flags and `ATLAS_*` variables override the
//! file; the file overrides the built-in defaults. Relative paths (`dir`, key
//! files) are relative to the file's directory. Schema:
//! `schemas/fetcher.schema.json`. [`FetcherConfig::settings`] gives the
//! file's layer of [`SyncSettings`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_proto::Limits;
use serde::Deserialize;

use crate::error::SyncError;
use crate::plan::OnModified;
use crate::settings::SyncSettings;
use crate::side::InstallSide;

/// Settings of `atlas-fetcher sync`; every one optional here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetcherConfig {
    /// Base of the store (as `--source`).
    pub source: Option<String>,
    pub pack: Option<String>,
    pub channel: Option<String>,
    /// Trusted public keys: `ed25519:<base64>` text or paths to `.pub` files.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Root of trust (as `--root`): a trusted `keys/<N>.json` or root-keys file.
    pub root: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub side: Option<InstallSide>,
    pub parallelism: Option<usize>,
    /// Per-request timeout, seconds.
    pub timeout: Option<u64>,
    /// Connect timeout, seconds.
    pub connect_timeout: Option<u64>,
    /// Response header timeout, seconds.
    pub header_timeout: Option<u64>,
    /// Low-speed limit, bytes per second (0: none).
    pub low_speed_limit: Option<u64>,
    /// Stretch the low-speed limit is measured over, seconds.
    pub low_speed_time: Option<u64>,
    /// Overall deadline, seconds.
    pub deadline: Option<u64>,
    pub retries: Option<u32>,
    pub on_modified: Option<OnModified>,
    #[serde(default)]
    pub enable: Vec<String>,
    #[serde(default)]
    pub disable: Vec<String>,
    /// Blob cache shared by the instances on this host (as `--cache`).
    pub cache: Option<PathBuf>,
    /// Provision the server after a successful sync (as `--provision`).
    pub provision: Option<bool>,
}

fn bad(path: &Path, message: impl Into<String>) -> SyncError {
    SyncError::Usage(format!("config file {}: {}", path.display(), message.into()))
}

impl FetcherConfig {
    /// Reads and checks a configuration file; relative paths in it are made
    /// relative to its directory.
    pub fn load(path: &Path) -> Result<Self, SyncError> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot open it: {e}")))?;
        let mut text = String::new();
        let cap = Limits::DEFAULT.config_bytes;
        file.take(cap + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(path, format!("cannot read it as UTF-8 text: {e}")))?;
        if text.len() as u64 > cap {
            return Err(bad(path, format!("larger than {cap} bytes")));
        }
        let mut cfg: Self = toml::from_str(&text).map_err(|e| bad(path, e.to_string().trim_end()))?;
        if cfg.parallelism.is_some_and(|p| !(1..=64).contains(&p)) {
            return Err(bad(path, "`parallelism` must be from 1 to 64"));
        }
        for (key, value) in [
            ("timeout", cfg.timeout),
            ("connect_timeout", cfg.connect_timeout),
            ("header_timeout", cfg.header_timeout),
            ("low_speed_time", cfg.low_speed_time),
            ("deadline", cfg.deadline),
        ] {
            if value == Some(0) {
                return Err(bad(path, format!("`{key}` must be at least 1 second")));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(d) = cfg.dir.take() {
            cfg.dir = Some(base.join(d));
        }
        if let Some(d) = cfg.cache.take() {
            cfg.cache = Some(base.join(d));
        }
        if let Some(r) = cfg.root.take() {
            cfg.root = Some(base.join(r));
        }
        if cfg.root.is_some() && !cfg.keys.is_empty() {
            return Err(bad(path, "give `root` or `keys`, not both"));
        }
        for k in &mut cfg.keys {
            let inline = k.trim_start().starts_with("ed25519:");
            if !inline && Path::new(k.as_str()).is_relative() {
                *k = base.join(&*k).display().to_string();
            }
        }
        Ok(cfg)
    }

    /// The sync settings of this file (all but `provision`).
    pub fn settings(&self) -> SyncSettings {
        SyncSettings {
            source: self.source.clone(),
            pack: self.pack.clone(),
            channel: self.channel.clone(),
            keys: self.keys.clone(),
            root: self.root.clone(),
            dir: self.dir.clone(),
            instance: None,
            side: self.side,
            parallelism: self.parallelism,
            timeout: self.timeout.map(Duration::from_secs),
            connect_timeout: self.connect_timeout.map(Duration::from_secs),
            header_timeout: self.header_timeout.map(Duration::from_secs),
            low_speed_limit: self.low_speed_limit,
            low_speed_time: self.low_speed_time.map(Duration::from_secs),
            deadline: self.deadline.map(Duration::from_secs),
            retries: self.retries,
            on_modified: self.on_modified,
            enable: self.enable.clone(),
            disable: self.disable.clone(),
            cache: self.cache.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("fetcher.toml");
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn reads_every_setting_and_resolves_relative_paths() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = write(
            tmp.path(),
            r#"#:schema ../schemas/fetcher.schema.json
source = "https://cdn.example.com/"
pack = "my-pack"
channel = "production"
keys = ["keys/pack.pub", "ed25519:AAAA", "/etc/atlas/other.pub"]
dir = "server"
side = "client"
parallelism = 4
timeout = 30
connect_timeout = 5
header_timeout = 20
low_speed_limit = 4096
low_speed_time = 45
deadline = 600
retries = 2
on_modified = "backup"
enable = ["shiny.zip"]
disable = ["minimap.jar"]
"#,
        );
        let c = FetcherConfig::load(&p).expect("load");
        assert_eq!(c.source.as_deref(), Some("https://cdn.example.com/"));
        assert_eq!(c.dir, Some(tmp.path().join("server")));
        assert_eq!(
            c.keys,
            [
                tmp.path().join("keys/pack.pub").display().to_string(),
                "ed25519:AAAA".into(),
                "/etc/atlas/other.pub".into()
            ]
        );
        assert_eq!(
            (c.side, c.on_modified),
            (Some(InstallSide::Client), Some(OnModified::Backup))
        );
        assert_eq!(
            (c.parallelism, c.timeout, c.deadline, c.retries),
            (Some(4), Some(30), Some(600), Some(2))
        );
        assert_eq!(
            (
                c.connect_timeout,
                c.header_timeout,
                c.low_speed_limit,
                c.low_speed_time
            ),
            (Some(5), Some(20), Some(4096), Some(45))
        );
        assert_eq!((c.enable.len(), c.disable.len()), (1, 1));
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = write(tmp.path(), "pack = \"p\"\nchanel = \"dev\"\n");
        let msg = FetcherConfig::load(&p).expect_err("unknown field").to_string();
        assert!(
            msg.contains("fetcher.toml") && msg.contains("chanel") && msg.contains("line 2"),
            "{msg}"
        );
        assert!(msg.contains("channel"), "the valid names are listed: {msg}");
        let p = write(tmp.path(), "side = \"both\"\n");
        let msg = FetcherConfig::load(&p).expect_err("bad side").to_string();
        assert!(msg.contains("side") || msg.contains("both"), "{msg}");
        let p = write(tmp.path(), "parallelism = 0\n");
        assert!(FetcherConfig::load(&p).is_err());
        let p = write(tmp.path(), "pack = \n");
        let msg = FetcherConfig::load(&p).expect_err("syntax").to_string();
        assert!(msg.contains("line 1"), "{msg}");
        let missing = tmp.path().join("nope.toml");
        let msg = FetcherConfig::load(&missing).expect_err("missing").to_string();
        assert!(msg.contains("nope.toml") && msg.contains("cannot open"), "{msg}");
    }
}
