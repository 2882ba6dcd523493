//! The daemon's TOML configuration (`schemas/runner.schema.json`): where the
//! server lives, how to launch and stop it, which channel it follows, and the
//! backup, metrics and webhook settings.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_fetcher::{InstallSide, OnModified, SyncSettings};
use atlas_proto::Limits;
use atlas_proto::fmt::human_bytes;
use serde::{Deserialize, Serialize};

use crate::backup::BackupSettings;
use crate::metrics::MetricsSettings;
use crate::webhook::WebhookSettings;

mod host;

/// Where `atlas-runnerd` and `atlas-runner` meet by default.
pub const DEFAULT_SOCKET: &str = "/run/atlas-runner/runner.sock";

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the runner config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {}; is it the right file?", human_bytes(*limit))]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path} is not a valid runner config: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{field}` {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// Unix socket for `atlas-runner` (mode 0660: give operators the group).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// The Minecraft server directory.
    pub server_dir: PathBuf,
    /// The runner's own state (bad builds, shared blob cache); kept outside
    /// backups. Default: `<server_dir>/.atlas-runner`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Start the server when the daemon starts.
    #[serde(default = "yes")]
    pub autostart: bool,
    /// The channel the server follows; without it there are no updates.
    #[serde(default)]
    pub source: Option<SourceSettings>,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub rcon: RconSettings,
    #[serde(default)]
    pub health: HealthSettings,
    #[serde(default)]
    pub announce: AnnounceSettings,
    #[serde(default)]
    pub schedule: ScheduleSettings,
    #[serde(default)]
    pub backup: BackupSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub webhook: WebhookSettings,
}

/// `[source]`: the Atlas channel to follow.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// Base URL of the store (`https://cdn.example.com/`), or a local directory.
    pub url: String,
    pub pack: String,
    #[serde(default = "default_channel")]
    pub channel: String,
    /// Trusted pointer keys (`ed25519:...` or a path to a `.pub` file).
    #[serde(default)]
    pub keys: Vec<String>,
    /// A root of trust instead of `keys`: a trusted `keys/<N>.json` or a
    /// root file; pointer keys then follow the pack's keyset chain.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// How often to poll the channel pointer.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub update_interval: Duration,
    /// Random delay added to each poll, so hosts do not all poll at once.
    #[serde(default = "default_jitter", with = "humantime_serde")]
    pub jitter: Duration,
    /// Apply updates automatically (else `atlas-runner update apply`).
    #[serde(default = "yes")]
    pub auto_apply: bool,
    /// Make the loader launchable after each update (Fabric, Quilt, Forge,
    /// NeoForge, vanilla); writes `.atlas/launch.json`.
    #[serde(default = "yes")]
    pub provision: bool,
    /// How long players are warned in game before an update stops the
    /// server (the countdown of `[announce]`).
    #[serde(default = "default_announce", with = "humantime_serde")]
    pub announce: Duration,

    // How each sync runs: the fetcher's settings, its defaults when unset.
    /// Which files to install: `server` (default) or `client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<InstallSide>,
    /// Optional files to install although the pack leaves them off (path,
    /// file name or display name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enable: Vec<String>,
    /// Optional files to leave out although the pack turns them on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disable: Vec<String>,
    /// What an update does to a managed file changed on the server: `keep`
    /// (default), `backup` or `replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_modified: Option<OnModified>,
    /// Files downloaded at once, 1 to 64 (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
    /// Retries of a failed request (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Per-request timeout (default 60s).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Longest wait for a connection (default 10s).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Longest wait for response headers (default 15s).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<Duration>,
    /// Bytes per second below which a transfer fails over `low_speed_time`
    /// (default 1024; 0 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_speed_limit: Option<u64>,
    /// The stretch the low-speed limit is measured over (default 30s).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub low_speed_time: Option<Duration>,
    /// Deadline of a check and its downloads (default 30m).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
}

impl SourceSettings {
    /// The fetcher's settings for syncing `server_dir` from this channel with
    /// the blob cache `cache`; `SyncSettings::options` adds the fetcher's
    /// defaults, as it does for `atlas-fetcher sync`.
    pub fn sync_settings(&self, server_dir: &Path, cache: PathBuf) -> SyncSettings {
        SyncSettings {
            source: Some(self.url.clone()),
            pack: Some(self.pack.clone()),
            channel: Some(self.channel.clone()),
            keys: self.keys.clone(),
            root: self.root.clone(),
            dir: Some(server_dir.to_owned()),
            instance: None,
            side: self.side,
            parallelism: self.parallelism,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            header_timeout: self.header_timeout,
            low_speed_limit: self.low_speed_limit,
            low_speed_time: self.low_speed_time,
            deadline: self.deadline,
            retries: self.retries,
            on_modified: self.on_modified,
            enable: self.enable.clone(),
            disable: self.disable.clone(),
            cache: Some(cache),
        }
    }
}

/// `[server]`: how the server process is launched and stopped.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Run this instead of Java (a wrapper script, a stand-in): program and
    /// arguments, started in the server directory.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The Java executable; else `JAVA_HOME`, then `PATH`, then the usual
    /// install folders, picking one of the version the server needs.
    #[serde(default)]
    pub java: Option<PathBuf>,
    /// The Java major version to run, instead of the pack's (`atlas.toml
    /// [server] java`) or the launch description's.
    #[serde(default)]
    pub java_version: Option<u32>,
    /// Heap size for `-Xms`/`-Xmx`, e.g. `4G` or `4096M`, instead of the
    /// pack's `[server.memory]`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Add the widely used G1 tuning flag set (Aikar's flags).
    #[serde(default)]
    pub g1_flags: bool,
    /// JVM arguments, before `-jar`, instead of the pack's `jvm-args`
    /// (`[]` runs with none).
    #[serde(default)]
    pub jvm_args: Option<Vec<String>>,
    /// Arguments after the jar.
    #[serde(default = "default_server_args")]
    pub args: Vec<String>,
    /// Extra environment for the server process.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// From spawn to ready ("Done" and a Server List Ping with players.max > 0).
    #[serde(default = "default_start_timeout", with = "humantime_serde")]
    pub start_timeout: Duration,
    /// After `stop` (RCON or stdin), before SIGTERM.
    #[serde(default = "default_stop_timeout", with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// After SIGTERM, before SIGKILL.
    #[serde(default = "default_term_timeout", with = "humantime_serde")]
    pub term_timeout: Duration,
    /// First restart delay after a crash; doubles per crash in the window.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub restart_backoff: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub restart_backoff_max: Duration,
    /// This many crashes within `crash_window` and the runner gives up (failed).
    #[serde(default = "default_crash_limit")]
    pub crash_limit: u32,
    #[serde(default = "default_crash_window", with = "humantime_serde")]
    pub crash_window: Duration,
    /// How often a running server is pinged (players, liveness).
    #[serde(default = "default_ping_interval", with = "humantime_serde")]
    pub ping_interval: Duration,
    /// This many failed Server List Pings in a row and the server counts as
    /// frozen (an event, the `unresponsive` webhook, then `on_unresponsive`);
    /// 0 turns the check off.
    #[serde(default = "default_unresponsive_pings")]
    pub unresponsive_pings: u32,
    /// What a frozen server gets: `restart` (killed, then restarted like a
    /// crash) or `alert` (the event and webhook only).
    #[serde(default)]
    pub on_unresponsive: OnUnresponsive,
    /// A regular expression on console lines that says the server is ready
    /// (then a Server List Ping must answer). Default: vanilla's
    /// `Done (12.3s)! For help, type "help"`.
    #[serde(default)]
    pub ready_pattern: Option<String>,
    /// Accept the Minecraft EULA (https://aka.ms/MinecraftEULA) for this
    /// server: the runner writes `eula=true` into `eula.txt` before starting
    /// it. Without it, a server whose `eula.txt` is not accepted is not started.
    #[serde(default)]
    pub eula: bool,
}

/// What a frozen server gets (`[server] on_unresponsive`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnresponsive {
    /// Kill it and restart it, counted as a crash.
    #[default]
    Restart,
    /// Only the event and the webhook.
    Alert,
}

/// `[announce]`: what players read before an update or rollback stops the
/// server. Placeholders: `{time}` (the time left), `{version}` (the pack
/// version being installed), `{pack}`, `{build}` (short build id).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceSettings {
    /// The console command that shows a message to everyone (`say`).
    pub command: String,
    /// The countdown message.
    pub message: String,
    /// When to repeat it, counted back from the stop; times longer than
    /// `[source] announce` are skipped, and the message is always sent when
    /// the countdown begins.
    #[serde(with = "duration_list")]
    pub at: Vec<Duration>,
    /// The last message, sent as the server stops.
    pub now: String,
}

/// `[schedule]`: when automatic updates may stop the server
/// (`atlas-runner update apply` is never held back).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    /// Wait until no player is online (from the Server List Ping) before the
    /// countdown, at most `max_wait`.
    pub wait_for_empty: bool,
    /// The longest wait for an empty server; then the update goes ahead.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// A maintenance window in the host's local time, `HH:MM-HH:MM` (it may
    /// cross midnight): automatic updates are staged at once but applied
    /// only inside it.
    pub window: Option<String>,
}

/// `[rcon]`: read from `server.properties` unless set here.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RconSettings {
    /// `false` forces stdin for commands even when RCON is enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub password: Option<String>,
}

/// `[health]`: what a new build must show after an update.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// How long the server must stay up after ready.
    #[serde(default = "default_health_window", with = "humantime_serde")]
    pub window: Duration,
    /// Successful Server List Pings needed within the window.
    #[serde(default = "default_health_pings")]
    pub pings: u32,
}

fn yes() -> bool {
    true
}
fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}
fn default_channel() -> String {
    "production".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_jitter() -> Duration {
    Duration::from_secs(60)
}
fn default_announce() -> Duration {
    Duration::from_secs(30)
}
fn default_server_args() -> Vec<String> {
    vec!["nogui".into()]
}
fn default_start_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_stop_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_term_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_backoff() -> Duration {
    Duration::from_secs(5)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}
fn default_crash_limit() -> u32 {
    5
}
fn default_crash_window() -> Duration {
    Duration::from_secs(600)
}
fn default_ping_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_health_window() -> Duration {
    Duration::from_secs(60)
}
fn default_health_pings() -> u32 {
    3
}
fn default_unresponsive_pings() -> u32 {
    4
}

/// The countdown marks `[announce] at` defaults to.
pub const DEFAULT_ANNOUNCE_AT: [u64; 10] = [600, 300, 120, 60, 30, 10, 5, 3, 2, 1];

impl Default for AnnounceSettings {
    fn default() -> Self {
        Self {
            command: "say".into(),
            message: "The server restarts in {time} to update the modpack to version {version}".into(),
            at: DEFAULT_ANNOUNCE_AT
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            now: "The server is restarting now to update the modpack to version {version}".into(),
        }
    }
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            wait_for_empty: false,
            max_wait: Duration::from_secs(3600),
            window: None,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            command: None,
            java: None,
            java_version: None,
            memory: None,
            g1_flags: false,
            jvm_args: None,
            args: default_server_args(),
            env: Default::default(),
            start_timeout: default_start_timeout(),
            stop_timeout: default_stop_timeout(),
            term_timeout: default_term_timeout(),
            restart_backoff: default_backoff(),
            restart_backoff_max: default_backoff_max(),
            crash_limit: default_crash_limit(),
            crash_window: default_crash_window(),
            ping_interval: default_ping_interval(),
            unresponsive_pings: default_unresponsive_pings(),
            on_unresponsive: OnUnresponsive::default(),
            ready_pattern: None,
            eula: false,
        }
    }
}

/// The ready line of vanilla and most servers built on it:
/// `Done (12.345s)! For help, type "help"` (Forge writes `3,21s`).
pub const DEFAULT_READY_PATTERN: &str = r"Done \(\d+(?:[.,]\d+)?s?\)!";

/// [`DEFAULT_READY_PATTERN`], compiled.
pub fn default_ready_pattern() -> regex::Regex {
    regex::Regex::new(DEFAULT_READY_PATTERN).expect("the default ready pattern is a valid regex")
}

impl ServerSettings {
    /// The ready pattern, compiled (checked when the config was read).
    pub fn ready_regex(&self) -> regex::Regex {
        match &self.ready_pattern {
            Some(p) => regex::Regex::new(p).unwrap_or_else(|e| {
                tracing::error!("`server.ready_pattern`: {e}; using the default");
                default_ready_pattern()
            }),
            None => default_ready_pattern(),
        }
    }
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            window: default_health_window(),
            pings: default_health_pings(),
        }
    }
}

impl RunnerConfig {
    /// Reads and checks `path`; relative paths inside are relative to the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let limit = Limits::DEFAULT.config_bytes;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_string(&mut text))
            .map_err(read_error)?;
        if text.len() as u64 > limit {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                limit,
            });
        }
        let mut cfg = Self::parse(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_relative(base);
        Ok(cfg)
    }

    /// Parses and checks TOML text (`path` only names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server_dir);
        fix(&mut self.socket);
        if let Some(s) = &mut self.state_dir {
            fix(s);
        }
        if let Some(j) = &mut self.server.java
            && j.components().count() > 1
        {
            fix(j);
        }
        if let Some(d) = &mut self.backup.dir {
            fix(d);
        }
        if let Some(src) = &mut self.source {
            if let Some(r) = &mut src.root {
                fix(r);
            }
            for k in &mut src.keys {
                if !k.trim_start().starts_with("ed25519") && Path::new(k.as_str()).is_relative() {
                    *k = base.join(&*k).to_string_lossy().into_owned();
                }
            }
        }
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field: &str, problem: &str| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            problem: problem.to_owned(),
        };
        if self.server_dir.as_os_str().is_empty() {
            return Err(bad(
                "server_dir",
                "is empty: set it to the Minecraft server directory",
            ));
        }
        if let Some(cmd) = &self.server.command
            && cmd.is_empty()
        {
            return Err(bad(
                "server.command",
                "is empty: give the program and its arguments, or remove it to run Java",
            ));
        }
        if let Some(m) = &self.server.memory {
            parse_memory(m).map_err(|e| bad("server.memory", &e))?;
        }
        let known: Vec<&str> = crate::webhook::WebhookKind::ALL
            .iter()
            .map(|k| k.name())
            .collect();
        if let Some(event) = self.webhook.events.iter().find(|e| !known.contains(&e.as_str())) {
            return Err(bad(
                "webhook.events",
                &format!("names `{event}`; the events are {}", known.join(", ")),
            ));
        }
        if self.server.crash_limit == 0 {
            return Err(bad("server.crash_limit", "must be at least 1"));
        }
        if let Some(p) = &self.server.ready_pattern {
            let re = regex::Regex::new(p).map_err(|e| {
                bad(
                    "server.ready_pattern",
                    &format!("is not a regular expression: {e}"),
                )
            })?;
            if re.is_match("") {
                return Err(bad(
                    "server.ready_pattern",
                    "matches an empty line, so any output would count as ready: make it match the server's ready line",
                ));
            }
        }
        if let Some(v) = self.server.java_version
            && !(8..=99).contains(&v)
        {
            return Err(bad(
                "server.java_version",
                "is not a Java major version (8, 17, 21, ...)",
            ));
        }
        if self.announce.command.trim().is_empty() || self.announce.command.contains(char::is_whitespace) {
            return Err(bad(
                "announce.command",
                "must be one console command name, like `say`",
            ));
        }
        if let Some(w) = &self.schedule.window {
            crate::schedule::Window::parse(w).map_err(|e| bad("schedule.window", &e))?;
        }
        if let Some(src) = &self.source {
            match (src.keys.is_empty(), src.root.is_some()) {
                (true, false) => {
                    return Err(bad(
                        "source.keys",
                        "is empty: list the channel's public key (`ed25519:...` or a .pub file), or set `source.root`",
                    ));
                }
                (false, true) => {
                    return Err(bad(
                        "source.root",
                        "and `source.keys` are both set: trust one or the other",
                    ));
                }
                _ => {}
            }
            if src.update_interval < Duration::from_secs(1) {
                return Err(bad("source.update_interval", "must be at least 1s"));
            }
            if src.parallelism.is_some_and(|p| !(1..=64).contains(&p)) {
                return Err(bad("source.parallelism", "must be from 1 to 64"));
            }
            for (field, value) in [
                ("source.timeout", src.timeout),
                ("source.connect_timeout", src.connect_timeout),
                ("source.header_timeout", src.header_timeout),
                ("source.low_speed_time", src.low_speed_time),
                ("source.deadline", src.deadline),
            ] {
                if value.is_some_and(|t| t < Duration::from_secs(1)) {
                    return Err(bad(field, "must be at least 1s"));
                }
            }
        }
        Ok(())
    }

    /// The runner's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.server_dir.join(".atlas-runner"))
    }
}

/// `[announce] at`: a list of human durations.
mod duration_list {
    use std::time::Duration;

    use humantime_serde::Serde;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(Serde::from))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<Serde<Duration>>::deserialize(d)?
            .into_iter()
            .map(Serde::into_inner)
            .collect())
    }
}

/// Checks a heap size like `4G`, `512M` or `1536m` and returns it as the JVM writes it.
pub fn parse_memory(s: &str) -> Result<String, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let unit = unit.to_ascii_uppercase();
    if !matches!(unit.as_str(), "K" | "M" | "G") || num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "`{s}` is not a heap size: write a number and K, M or G, like 4G or 3072M"
        ));
    }
    Ok(format!("{num}{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_settings_reach_the_fetchers_options() {
        let key = atlas_proto::SecretKey::from_seed(&[9; 32]).public().to_text();
        let text = format!(
            "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"{key}\"]\n\
             side = \"client\"\nenable = [\"shaders.zip\"]\ndisable = [\"minimap.jar\"]\n\
             on_modified = \"backup\"\nparallelism = 4\nretries = 2\ntimeout = \"20s\"\ndeadline = \"10m\"\n\
             connect_timeout = \"5s\"\nheader_timeout = \"20s\"\nlow_speed_limit = 4096\nlow_speed_time = \"1m\"\n"
        );
        let c = RunnerConfig::parse(Path::new("r.toml"), &text).expect("parse");
        let src = c.source.as_ref().expect("source");
        let o = src
            .sync_settings(&c.server_dir, c.state_dir().join("cache"))
            .options()
            .expect("options");
        assert_eq!((o.pack.as_str(), o.channel.as_str()), ("p", "production"));
        assert_eq!((o.side, o.on_modified), (InstallSide::Client, OnModified::Backup));
        assert_eq!((o.parallelism, o.retry.retries), (4, 2));
        assert_eq!(o.timeout, Duration::from_secs(20));
        assert_eq!(o.deadline, Some(Duration::from_secs(600)));
        assert_eq!(
            (o.connect_timeout, o.header_timeout, o.low_speed_time),
            (
                Duration::from_secs(5),
                Duration::from_secs(20),
                Duration::from_secs(60)
            )
        );
        assert_eq!(o.low_speed_limit, 4096);
        assert!(o.selection.enable.contains("shaders.zip") && o.selection.disable.contains("minimap.jar"));
        assert_eq!(o.cache, Some(PathBuf::from("/srv/mc/.atlas-runner/cache")));
        // Unset: the fetcher's own defaults, as for `atlas-fetcher sync`.
        let c = RunnerConfig::parse(
            Path::new("r.toml"),
            &format!(
                "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"{key}\"]\n"
            ),
        )
        .expect("parse");
        let src = c.source.as_ref().expect("source");
        let o = src
            .sync_settings(&c.server_dir, "/c".into())
            .options()
            .expect("options");
        assert_eq!(
            (o.side, o.parallelism, o.retry.retries),
            (InstallSide::Server, 8, 5)
        );
        assert_eq!(
            (o.timeout, o.deadline),
            (Duration::from_secs(60), Some(Duration::from_secs(1800)))
        );
        assert_eq!(
            (o.header_timeout, o.low_speed_limit),
            (Duration::from_secs(15), 1024)
        );
        let err = RunnerConfig::parse(
            Path::new("r.toml"),
            &format!("server_dir = \"/x\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"{key}\"]\nparallelism = 65\n"),
        )
        .expect_err("too many");
        assert!(err.to_string().contains("source.parallelism"), "{err}");
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let c = RunnerConfig::parse(Path::new("r.toml"), "server_dir = \"/srv/mc\"\n").expect("parse");
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert!(c.autostart);
        assert_eq!(c.server.args, vec!["nogui".to_string()]);
        assert_eq!(c.server.stop_timeout, Duration::from_secs(60));
        assert_eq!(c.health.pings, 3);
        assert_eq!(c.state_dir(), PathBuf::from("/srv/mc/.atlas-runner"));
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_field() {
        let e = RunnerConfig::parse(Path::new("r.toml"), "server_dir = \"/x\"\nautostrt = true\n")
            .expect_err("unknown");
        assert!(e.to_string().contains("autostrt"), "{e}");
        let e = RunnerConfig::parse(
            Path::new("r.toml"),
            "server_dir = \"/x\"\n[server]\nmemory = \"lots\"\n",
        )
        .expect_err("memory");
        assert!(e.to_string().contains("server.memory"), "{e}");
        let e = RunnerConfig::parse(
            Path::new("r.toml"),
            "server_dir = \"/x\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\n",
        )
        .expect_err("keys");
        assert!(e.to_string().contains("source.keys"), "{e}");
    }

    #[test]
    fn durations_are_human() {
        let c = RunnerConfig::parse(
            Path::new("r.toml"),
            "server_dir = \"/x\"\n[server]\nstop_timeout = \"1m 30s\"\nstart_timeout = \"250ms\"\n",
        )
        .expect("parse");
        assert_eq!(c.server.stop_timeout, Duration::from_secs(90));
        assert_eq!(c.server.start_timeout, Duration::from_millis(250));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("4g").expect("4g"), "4G");
        assert_eq!(parse_memory("3072M").expect("m"), "3072M");
        assert!(parse_memory("4GB").is_err());
        assert!(parse_memory("G").is_err());
    }
}
