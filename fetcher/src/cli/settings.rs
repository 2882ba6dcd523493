//! From flags to options: each command's arguments become the library's
//! options. For `sync`, the flags (and `ATLAS_*` variables) are one layer of
//! [`SyncSettings`] over the `--config` file's, and
//! [`SyncSettings::options`] adds the defaults, as it does for the runner.

use std::path::Path;
use std::time::Duration;

use super::args::{ProvisionFlags, RollbackArgs, SyncArgs, VerifyArgs};
use crate::config::FetcherConfig;
use crate::error::SyncError;
use crate::provision::{ProvisionError, ProvisionOptions, Upstreams};
use crate::settings::SyncSettings;
use crate::sync::SyncOptions;
use crate::sync::keychain::load_key;

impl SyncArgs {
    /// The flags' layer of settings (the `--config` file's goes below it).
    pub fn settings(&self) -> SyncSettings {
        SyncSettings {
            source: self.source.clone(),
            pack: self.pack.clone(),
            channel: self.channel.clone(),
            keys: self.keys.clone(),
            root: self.root.clone(),
            dir: self.dir.clone(),
            instance: self.instance.clone(),
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

    fn config(&self) -> Result<FetcherConfig, SyncError> {
        match &self.config {
            Some(p) => FetcherConfig::load(p),
            None => Ok(FetcherConfig::default()),
        }
    }

    /// Whether to provision after the sync: `--provision` (or
    /// `ATLAS_PROVISION`), else `provision` in the config file.
    pub fn wants_provision(&self) -> Result<bool, SyncError> {
        if self.provision {
            return Ok(true);
        }
        Ok(self.config()?.provision.unwrap_or(false))
    }

    /// The options of this run: flags (and `ATLAS_*`) over the config file
    /// over the defaults. Loads the keys.
    pub fn options(&self) -> Result<SyncOptions, SyncError> {
        self.settings().or(self.config()?.settings()).options()
    }
}

/// The keys named on the command line (empty entries of `ATLAS_KEY=a,,b` skipped).
fn keys(specs: &[String]) -> Result<Vec<atlas_proto::PublicKey>, SyncError> {
    specs
        .iter()
        .filter(|k| !k.trim().is_empty())
        .map(|k| load_key(k))
        .collect()
}

impl VerifyArgs {
    /// The options of `--repair` (pack, channel and side then come from the
    /// install, see [`crate::Syncer::for_repair`]).
    pub fn repair_options(&self) -> Result<SyncOptions, SyncError> {
        let source = self
            .source
            .clone()
            .ok_or_else(|| SyncError::Usage("--repair needs --source".into()))?;
        Ok(SyncOptions::new(
            source,
            "unknown",
            "unknown",
            keys(&self.keys)?,
            self.dir.clone(),
        ))
    }
}

impl RollbackArgs {
    /// The options of `rollback`: pack, channel, side and optional files come
    /// from the install (see [`crate::Syncer::for_rollback`]); no key is used.
    pub fn options(&self) -> SyncOptions {
        SyncOptions::new(
            self.source.clone(),
            "unknown",
            "unknown",
            Vec::new(),
            self.dir.clone(),
        )
    }
}

impl ProvisionFlags {
    /// Provisioning options for the build installed in `dir`.
    pub fn options(&self, dir: &Path, timeout: Duration) -> Result<ProvisionOptions, ProvisionError> {
        let mut o = ProvisionOptions::for_install(dir)?;
        o.java = self.java.clone();
        o.timeout = timeout;
        o.installer_timeout = Duration::from_secs(self.installer_timeout);
        o.upstreams = Upstreams {
            mojang_meta: self.mojang_meta.clone(),
            fabric_meta: self.fabric_meta.clone(),
            quilt_meta: self.quilt_meta.clone(),
            forge_maven: self.forge_maven.clone(),
            neoforge_maven: self.neoforge_maven.clone(),
        };
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::args::{Cli, Command};
    use crate::exit;
    use crate::side::InstallSide;

    #[test]
    fn parses_repeated_keys_and_side() {
        let cli = Cli::try_parse_from([
            "atlas-fetcher",
            "sync",
            "--source",
            "http://x/",
            "--pack",
            "p",
            "--channel",
            "dev",
            "--key",
            "a.pub",
            "--key",
            "b.pub",
            "--dir",
            "/tmp/x",
            "--side",
            "client",
        ])
        .expect("parse");
        let Command::Sync(a) = cli.command else {
            panic!("sync expected");
        };
        assert_eq!(a.keys, ["a.pub", "b.pub"]);
        let o = a.options().expect_err("key files do not exist").to_string();
        assert!(o.contains("a.pub"), "{o}");
        assert_eq!(a.side, Some(InstallSide::Client));
        assert_eq!(
            (a.parallelism, a.on_modified),
            (None, None),
            "defaults are applied in options()"
        );
        let v = Cli::try_parse_from(["atlas-fetcher", "verify", "--dir", "/tmp/x", "--threads", "3"])
            .expect("verify");
        let Command::Verify(v) = v.command else {
            panic!("verify expected")
        };
        assert_eq!((v.threads, v.repair, v.json), (3, false, false));
        let sync = Cli::try_parse_from(["atlas-fetcher", "sync", "--pack", "p"]).expect("parses");
        let Command::Sync(a) = sync.command else {
            panic!("sync expected")
        };
        let err = a.options().expect_err("no source");
        assert_eq!(err.exit_code(), exit::USAGE);
        assert!(
            err.to_string()
                .contains("--source is required (or `source` in the --config file)"),
            "{err}"
        );
    }

    #[test]
    fn flags_override_the_config_file_which_overrides_defaults() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = atlas_proto::SecretKey::generate()
            .expect("key")
            .public()
            .to_text();
        let cfg = tmp.path().join("fetcher.toml");
        std::fs::write(
            &cfg,
            format!(
                "source = \"http://cdn/\"\npack = \"p\"\nchannel = \"beta\"\nkeys = [\"{key}\"]\n\
                 dir = \"srv\"\nretries = 2\nparallelism = 3\nenable = [\"shiny.zip\"]\n\
                 low_speed_limit = 2048\nheader_timeout = 40\n"
            ),
        )
        .expect("write");
        let cfg_arg = cfg.display().to_string();
        let parse = |extra: &[&str]| {
            let mut v = vec!["atlas-fetcher", "sync", "--config", cfg_arg.as_str()];
            v.extend_from_slice(extra);
            let Command::Sync(a) = Cli::try_parse_from(v).expect("parse").command else {
                panic!("sync expected")
            };
            a.options().expect("options")
        };
        let o = parse(&[]);
        assert_eq!(
            (o.channel.as_str(), o.retry.retries, o.parallelism),
            ("beta", 2, 3)
        );
        assert_eq!(o.dir, tmp.path().join("srv"), "relative to the config file");
        assert_eq!(o.timeout, std::time::Duration::from_secs(60), "built-in default");
        assert_eq!(
            (
                o.low_speed_limit,
                o.header_timeout.as_secs(),
                o.low_speed_time.as_secs()
            ),
            (2048, 40, 30)
        );
        assert!(o.selection.enable.contains("shiny.zip"));
        let o = parse(&[
            "--channel",
            "production",
            "--retries",
            "0",
            "--enable",
            "other.jar",
            "--low-speed-limit",
            "0",
            "--low-speed-time",
            "5",
            "--connect-timeout",
            "3",
            "--deadline",
            "90",
        ]);
        assert_eq!((o.channel.as_str(), o.retry.retries), ("production", 0));
        assert_eq!(
            (
                o.low_speed_limit,
                o.low_speed_time.as_secs(),
                o.connect_timeout.as_secs()
            ),
            (0, 5, 3),
            "flags win over the file"
        );
        assert_eq!(o.header_timeout.as_secs(), 40, "the file's, no flag given");
        assert_eq!(o.deadline, Some(std::time::Duration::from_secs(90)));
        assert_eq!(o.selection.enable.iter().collect::<Vec<_>>(), ["other.jar"]);
    }
}
