//! `sync --instance DIR --before-launch`: what an Atlas instance runs before
//! every launch (through the bootstrap jar, as Prism Launcher's or MultiMC's
//! pre-launch command), and the answer the launcher needs: exit 0 starts
//! the game, anything else stops the launch.
//!
//! | situation | exit | the log says |
//! |---|---|---|
//! | updated, or already current | 0 | `Info`: pack, version, build, channel |
//! | store unreachable, pointer expired or older than the one accepted (a stale mirror), clock set back, **and** a build is installed | 0 | `Warning`: why, and that the installed build starts |
//! | the same with nothing installed yet | 1 | `Error`: the first launch needs the store |
//! | a signature, hash, size or path check failed | 1 | `Error`: what failed; the installed build is unchanged; how to play anyway |
//! | the channel does not exist | 1 | `Error`: how to pick another |
//! | the build needs another Minecraft or loader | 1 | `Warning`: the instance was switched, launch again |
//! | another launch is updating the instance | 1 | `Error` |
//!
//! A refusal never changes the game directory (the sync stages and verifies
//! everything first). Lines carry the `!![Level]!` prefix the launchers read
//! as the line's level (Prism `MessageLevel::fromLine`, the same in MultiMC).
//! The policy is here, in Rust and tested without Java; the bootstrap only
//! runs the fetcher and passes its exit code on.

pub mod profile;
pub mod tools;

use std::path::PathBuf;

use atlas_proto::PointerError;
use atlas_proto::v1::Manifest;

use crate::error::SyncError;
use crate::history;
use crate::local::Local;
use crate::progress::Progress;
use crate::report::{Outcome, Report};
use crate::state::{InstallState, StatePaths};
use crate::sync::{Check, SyncOptions, Syncer};

use profile::Profile;
use tools::{Adoption, BootstrapEnv};

/// Exit code that starts the game.
pub const LAUNCH: i32 = 0;
/// Exit code that stops the launch.
pub const STOP: i32 = 1;

/// A log line's level, as the launchers name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Self::Info => "Info",
            Self::Warning => "Warning",
            Self::Error => "Error",
        }
    }
}

/// One line for the launcher's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub level: Level,
    pub text: String,
}

impl std::fmt::Display for Line {
    /// `!![Level]!text`, one per physical line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, part) in self.text.split('\n').enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "!![{}]!{part}", self.level.name())?;
        }
        Ok(())
    }
}

/// How a before-launch run ended.
#[derive(Debug)]
pub struct LaunchOutcome {
    /// [`LAUNCH`] or [`STOP`].
    pub code: i32,
    pub lines: Vec<Line>,
    /// The sync's report, when the sync ran to the end.
    pub report: Option<Report>,
}

/// A before-launch run: the sync (into the instance's game directory, client
/// side) and the instance around it.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub sync: SyncOptions,
    /// The instance folder (holding `instance.cfg`, `mmc-pack.json`, `atlas/`).
    pub instance: PathBuf,
    /// Set when the bootstrap started this run: the instance may then move
    /// to a newer fetcher.
    pub bootstrap: Option<BootstrapEnv>,
}

/// Why a run could not finish, as the launch policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Nothing new can be had now; the installed build is as good as before.
    Unavailable,
    /// The channel does not exist in the store.
    NoChannel,
    /// A check failed: signature, hash, size, path.
    Refused,
    Locked,
    Other,
}

fn cause(e: &SyncError, pointer_url: &str) -> Cause {
    match e {
        SyncError::Unreachable { .. } | SyncError::SourceRead { .. } | SyncError::Deadline { .. } => {
            Cause::Unavailable
        }
        SyncError::HttpStatus { .. } if e.is_transient() => Cause::Unavailable,
        SyncError::NotFound { url, .. } if url == pointer_url => Cause::NoChannel,
        SyncError::Trust {
            reason: PointerError::Expired { .. } | PointerError::Rollback { .. },
            ..
        }
        | SyncError::ClockBackwards { .. } => Cause::Unavailable,
        e if matches!(e.exit_code(), crate::exit::TRUST | crate::exit::INTEGRITY) => Cause::Refused,
        SyncError::Locked { .. } => Cause::Locked,
        _ => Cause::Other,
    }
}

fn short(build: &str) -> &str {
    build.get(..12).unwrap_or(build)
}

/// `my-pack 1.2.0 (0a1b2c3d4e5f)` for the installed build.
fn installed_text(paths: &StatePaths, install: &InstallState, limits: &atlas_proto::Limits) -> String {
    let build = install.build.0;
    let version = Local::open(paths)
        .and_then(|local| history::load(&local, &build, &install.pack, limits))
        .map(|m| m.version)
        .unwrap_or_default();
    let b = build.to_hex();
    if version.is_empty() {
        format!("{} build {}", install.pack, short(&b))
    } else {
        format!("{} {} ({})", install.pack, version, short(&b))
    }
}

struct Run<'a> {
    o: &'a LaunchOptions,
    paths: StatePaths,
    installed: Option<InstallState>,
    lines: Vec<Line>,
}

impl Run<'_> {
    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.lines.push(Line {
            level,
            text: text.into(),
        });
    }

    fn end(self, code: i32, report: Option<Report>) -> LaunchOutcome {
        LaunchOutcome {
            code,
            lines: self.lines,
            report,
        }
    }

    /// The launch answer to an error.
    fn failed(mut self, e: &SyncError, pointer_url: &str) -> LaunchOutcome {
        let pack = self.o.sync.pack.clone();
        let channel = self.o.sync.channel.clone();
        let installed = self
            .installed
            .as_ref()
            .map(|i| installed_text(&self.paths, i, &self.o.sync.limits));
        match (cause(e, pointer_url), installed) {
            (Cause::Unavailable, Some(what)) => {
                self.say(
                    Level::Warning,
                    format!("Atlas: {e}; starting with the installed {what}"),
                );
                self.end(LAUNCH, None)
            }
            (Cause::Unavailable, None) => {
                self.say(
                    Level::Error,
                    format!(
                        "Atlas: {e}; the first launch needs the internet to install {pack}: connect and press Launch again"
                    ),
                );
                self.end(STOP, None)
            }
            (Cause::NoChannel, _) => {
                self.say(
                    Level::Error,
                    format!(
                        "Atlas: pack {pack} has no channel `{channel}` ({e}). Pick one its page lists: write its name \
                         into atlas/channel in the instance folder, or delete that file to follow the instance's default"
                    ),
                );
                self.end(STOP, None)
            }
            (Cause::Refused, installed) => {
                let kept = match installed {
                    Some(what) => format!("Your installed {what} is unchanged."),
                    None => "Nothing was installed.".to_owned(),
                };
                self.say(
                    Level::Error,
                    format!(
                        "Atlas: refused the update of {pack} ({channel}): {e}\n{kept} Tell the pack's author. To play \
                         anyway, untick the pre-launch command in the instance's Edit, Settings, Custom commands."
                    ),
                );
                self.end(STOP, None)
            }
            (Cause::Locked, _) => {
                self.say(
                    Level::Error,
                    format!("Atlas: another launch is updating this instance ({e}); wait for it, then launch again"),
                );
                self.end(STOP, None)
            }
            (Cause::Other, _) => {
                self.say(Level::Error, format!("Atlas: {e}"));
                self.end(STOP, None)
            }
        }
    }
}

/// The manifest the profile must match: the checked build's, or the
/// installed one's (kept in `.atlas/builds/`) when the channel did not move.
fn build_manifest(check: &Check, paths: &StatePaths, o: &LaunchOptions) -> Option<Manifest> {
    if let Some(m) = &check.manifest {
        return Some(m.clone());
    }
    let install = check.installed()?;
    let local = Local::open(paths).ok()?;
    history::load(&local, &install.build.0, &o.sync.pack, &o.sync.limits).ok()
}

/// The summary line of a finished sync.
fn done_line(r: &Report, pack_version: &str) -> String {
    let what = match r.outcome {
        Outcome::Updated => format!(
            "updated ({} added, {} updated, {} removed; {} bytes downloaded)",
            r.counts.added + r.counts.repaired,
            r.counts.updated,
            r.counts.removed,
            r.bytes_downloaded
        ),
        _ => "up to date".to_owned(),
    };
    let version = if pack_version.is_empty() {
        String::new()
    } else {
        format!(" {pack_version}")
    };
    format!(
        "Atlas: {}{version} ({}) on channel {}: {what}",
        r.pack,
        short(&r.build),
        r.channel
    )
}

/// Runs the before-launch sync and decides whether the game starts (see the
/// module docs). Never panics on bad input; every failure becomes lines
/// and an exit code.
pub async fn before_launch(o: &LaunchOptions, progress: &dyn Progress) -> LaunchOutcome {
    let paths = StatePaths::new(&o.sync.dir);
    let installed = Local::open(&paths)
        .and_then(|local| local.load_install())
        .ok()
        .flatten()
        .filter(|i| i.pack == o.sync.pack);
    let mut run = Run {
        o,
        paths,
        installed,
        lines: Vec::new(),
    };
    let pointer_url = crate::source::Source::parse(&o.sync.source)
        .map(|s| s.url_of(&atlas_proto::layout::pointer_key(&o.sync.pack, &o.sync.channel)))
        .unwrap_or_default();
    let syncer = match Syncer::new(o.sync.clone()) {
        Ok(s) => s,
        Err(e) => return run.failed(&e, &pointer_url),
    };
    let check = match syncer.check(progress).await {
        Ok(c) => c,
        Err(e) => return run.failed(&e, &pointer_url),
    };
    if let Some(m) = build_manifest(&check, &run.paths, o) {
        match profile::ensure(&o.instance, &m) {
            Ok(Profile::Matches) => {}
            Ok(Profile::Switched { now }) => {
                run.say(
                    Level::Warning,
                    format!(
                        "Atlas: {} {} needs {now}; the instance was switched to it and nothing else changed. \
                         Press Launch again (Prism Launcher: if this repeats, restart the launcher first)",
                        o.sync.pack, m.version
                    ),
                );
                return run.end(STOP, None);
            }
            Err(e) => return run.failed(&e, &pointer_url),
        }
    }
    let version = check
        .manifest
        .as_ref()
        .map(|m| m.version.clone())
        .unwrap_or_else(|| {
            build_manifest(&check, &run.paths, o)
                .map(|m| m.version)
                .unwrap_or_default()
        });
    let plan = match syncer.plan(&check, progress) {
        Ok(p) => p,
        Err(e) => return run.failed(&e, &pointer_url),
    };
    let report = match syncer.apply(&check, &plan, progress).await {
        Ok(r) => r,
        Err(e) => return run.failed(&e, &pointer_url),
    };
    run.say(Level::Info, done_line(&report, &version));
    if let Some(env) = &o.bootstrap {
        let release = check
            .pointer()
            .and_then(|p| p.payload.tools.atlas_fetcher.as_ref());
        let source = crate::source::Source::parse_with_timeout(&o.sync.source, o.sync.timeout);
        let adopted = match source {
            Ok(s) => tools::adopt(&o.instance, env, release, &s, &o.sync.limits).await,
            Err(e) => Err(e),
        };
        match adopted {
            Ok(Adoption::Adopted { version, sha256 }) => run.say(
                Level::Info,
                format!(
                    "Atlas: the next launch runs atlas-fetcher {version} ({}), verified and cached",
                    short(&sha256)
                ),
            ),
            Ok(Adoption::NoBinaryHere { version }) => run.say(
                Level::Warning,
                format!(
                    "Atlas: atlas-fetcher {version} has no build for {}; keeping this one",
                    env.target
                ),
            ),
            Ok(Adoption::Unchanged) => {}
            Err(e) => run.say(
                Level::Warning,
                format!("Atlas: could not fetch the newer atlas-fetcher ({e}); trying again next launch"),
            ),
        }
    }
    run.end(LAUNCH, Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_launchers_level_prefix() {
        let l = Line {
            level: Level::Warning,
            text: "a\nb".into(),
        };
        assert_eq!(l.to_string(), "!![Warning]!a\n!![Warning]!b");
    }

    #[test]
    fn causes_follow_the_policy() {
        let url = "http://s/packs/p/channels/c.json";
        let unreachable = SyncError::Unreachable {
            url: url.into(),
            message: "refused".into(),
        };
        assert_eq!(cause(&unreachable, url), Cause::Unavailable);
        let not_found = SyncError::NotFound {
            url: url.into(),
            hint: String::new(),
        };
        assert_eq!(cause(&not_found, url), Cause::NoChannel);
        let blob_missing = SyncError::NotFound {
            url: "http://s/blobs/sha256/aa/aa".into(),
            hint: String::new(),
        };
        assert_eq!(cause(&blob_missing, url), Cause::Other);
        let hash = SyncError::BlobHash {
            path: "mods/a.jar".into(),
            url: "u".into(),
            expected: "1".into(),
            actual: "2".into(),
        };
        assert_eq!(cause(&hash, url), Cause::Refused);
        let expired = SyncError::Trust {
            url: url.into(),
            reason: PointerError::Expired {
                expires_at: 1,
                now: 2,
            },
        };
        assert_eq!(cause(&expired, url), Cause::Unavailable);
        let forged = SyncError::Trust {
            url: url.into(),
            reason: PointerError::Untrusted {
                signed_by: Vec::new(),
                valid: 0,
                threshold: 1,
            },
        };
        assert_eq!(cause(&forged, url), Cause::Refused);
        let server = SyncError::HttpStatus {
            url: url.into(),
            status: 503,
            retry_after: None,
        };
        assert_eq!(cause(&server, url), Cause::Unavailable);
    }
}
