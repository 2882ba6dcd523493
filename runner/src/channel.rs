//! The channel the runner follows, through the fetcher library: syncers for
//! the server directory built from `[source]`, loader provisioning, the
//! timing of polls, and the build marked bad (`<state_dir>/runner.json`).
//! The supervisor's actor runs the updates themselves
//! ([`crate::supervisor`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_fetcher::{SyncError, SyncOptions, Syncer};

use crate::config::{RunnerConfig, SourceSettings};
use crate::error::{ActionError, ErrorKind};
use crate::shutdown::Shutdown;

/// File in the state directory that remembers the build marked bad.
const RUNNER_STATE: &str = "runner.json";

/// What the runner remembers across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunnerState {
    /// A build that failed its health window: not installed again until the
    /// channel names another build.
    #[serde(default)]
    pub bad_build: Option<String>,
    #[serde(default)]
    pub bad_reason: Option<String>,
}

impl RunnerState {
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join(RUNNER_STATE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable {}: {e}", path.display());
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), ActionError> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            ActionError::new(ErrorKind::Local, format!("creating {}: {e}", state_dir.display()))
        })?;
        Ok(atlas_fetcher::durable::write_atomic_json(
            &state_dir.join(RUNNER_STATE),
            self,
        )?)
    }
}

/// Builds syncers for the configured channel and times the polls.
#[derive(Debug, Clone)]
pub struct Updater {
    source: SourceSettings,
    server_dir: PathBuf,
    state_dir: PathBuf,
    shutdown: Shutdown,
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() || max.is_zero() {
        return Duration::ZERO;
    }
    let max_ms = ms(max).max(1);
    Duration::from_millis(u64::from_le_bytes(b) % max_ms)
}

impl Updater {
    /// `None` without a `[source]`. Syncers are refused once `shutdown` is
    /// requested.
    pub fn new(cfg: &RunnerConfig, shutdown: Shutdown) -> Option<Self> {
        cfg.source.as_ref().map(|s| Self {
            source: s.clone(),
            server_dir: cfg.server_dir.clone(),
            state_dir: cfg.state_dir(),
            shutdown,
        })
    }

    /// The first poll comes after the jitter alone (a daemon restart checks soon).
    pub fn first_delay(&self) -> Duration {
        jitter(self.source.jitter)
    }

    pub fn next_delay(&self) -> Duration {
        self.source.update_interval + jitter(self.source.jitter)
    }

    pub fn auto_apply(&self) -> bool {
        self.source.auto_apply
    }

    /// What the fetcher is told about the channel and the server directory
    /// (`[source]` → [`SyncOptions`]), with the daemon's shutdown as the
    /// interrupt flag, so a shutdown stops a check,
    /// a download or a prefetch between steps (an apply always finishes).
    fn sync_options(&self) -> Result<SyncOptions, SyncError> {
        let mut opts = self
            .source
            .sync_settings(&self.server_dir, self.state_dir.join("cache"))
            .options()?;
        opts.interrupt = self.shutdown.flag().into();
        Ok(opts)
    }

    /// A syncer for the server directory (server side unless configured).
    pub fn syncer(&self) -> Result<Syncer, ActionError> {
        self.refuse_after_shutdown()?;
        Ok(Syncer::new(self.sync_options()?)?)
    }

    /// A syncer for `rollback` (no pointer read; pack, channel, side and
    /// optional files are those of the install).
    pub fn rollback_syncer(&self) -> Result<Syncer, ActionError> {
        self.refuse_after_shutdown()?;
        Ok(Syncer::for_rollback(self.sync_options()?)?)
    }

    fn refuse_after_shutdown(&self) -> Result<(), ActionError> {
        if self.shutdown.is_requested() {
            return Err(ActionError::shutting_down("no new work on the server directory"));
        }
        Ok(())
    }

    /// Makes the loader launchable (`.atlas/launch.json`) when configured.
    pub async fn provision(&self) -> Result<(), ActionError> {
        if !self.source.provision {
            return Ok(());
        }
        use atlas_fetcher::provision::{ProvisionOptions, provision};
        let opts = ProvisionOptions::for_install(&self.server_dir)?;
        let done = provision(&opts).await?;
        tracing::info!(
            changed = done.changed,
            target = done.launch.target(),
            "loader provisioned"
        );
        Ok(())
    }

    /// `pack/channel`, as `status` shows it.
    pub fn channel(&self) -> String {
        format!("{}/{}", self.source.pack, self.source.channel)
    }

    pub fn announce(&self) -> Duration {
        self.source.announce
    }
}

/// The error of an action that needs a channel when the config has none.
pub fn no_source(what: &str) -> ActionError {
    ActionError::new(
        ErrorKind::Config,
        format!("no [source] in the runner config: there is no channel to {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(2)) < Duration::from_secs(2));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_sources_on_modified_reaches_the_fetcher() {
        let key = atlas_proto::SecretKey::from_seed(&[7; 32]).public().to_text();
        let text = format!(
            "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"{key}\"]\non_modified = \"replace\"\n"
        );
        let cfg = RunnerConfig::parse(Path::new("r.toml"), &text).expect("config");
        let u = Updater::new(&cfg, Shutdown::new()).expect("source");
        let opts = u.sync_options().expect("options");
        assert_eq!(opts.on_modified, atlas_fetcher::OnModified::Replace);
    }

    #[test]
    fn runner_state_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(RunnerState::load(dir.path()), RunnerState::default());
        let s = RunnerState {
            bad_build: Some("ab".into()),
            bad_reason: Some("crashed".into()),
        };
        s.save(dir.path()).expect("save");
        assert_eq!(RunnerState::load(dir.path()), s);
    }
}
