//! The supervisor: one actor owns the server process and runs every power
//! action (start, stop, restart, update, backup, restore, rollback) from a
//! single queue, so none is dropped or run twice at once. [`Supervisor`] is
//! the handle the IPC handler and the daemon use: it answers at once whether
//! an action runs, is queued, or is refused and why.
//!
//! The actor is `actor` (its loop, start and stop), `upkeep` (crashes,
//! pings, backups, the shutdown) and `update` (updates and rollbacks). A
//! daemon shutdown is acted on inside long steps, not only between actions;
//! `update` says what an update cut short leaves behind.

mod actor;
mod announce;
mod console;
pub mod process;
mod progress;
mod update;
mod upkeep;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{Notify, oneshot};

pub use actor::Actor;
pub use console::SupervisorConsole;
pub use progress::describe as describe_staging;
pub(crate) use update::rollback::rollback_possible;
pub(crate) use update::{Found, assess};

use crate::backup::BackupInfo;
use crate::error::ActionError;
use crate::events::EventBus;
use crate::java::Applied;
use crate::state::{Machine, State};

/// Actions queued for the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    /// Check the channel and install a new build (`auto`: from the poll timer).
    Update {
        auto: bool,
    },
    Backup {
        label: String,
    },
    Restore {
        id: String,
    },
    /// Back to the build installed before the current one.
    Rollback,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Update { .. } => "update",
            Self::Backup { .. } => "backup",
            Self::Restore { .. } => "restore",
            Self::Rollback => "rollback",
        }
    }
}

/// What [`Supervisor::submit`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Runs now.
    Run,
    /// Runs after the actions ahead of it.
    Queued {
        ahead: usize,
    },
    Refused(String),
}

/// What a finished action produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Done { state: State, message: String },
    Backup(BackupInfo),
    Update(UpdateReport),
}

/// What an update found or did (a failed update is an [`ActionError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The server is on the channel's build (or the channel holds it back).
    Current,
    /// A newer build is there and was not applied (a check, or `auto_apply` off).
    Available,
    /// The newer build is installed (and passed its health window when the server ran).
    Applied,
    /// The newer build failed: the previous build and world are back, and it is marked bad.
    RolledBack,
    /// The channel's build is marked bad: not tried again until the channel names another.
    SkippedBad,
}

impl UpdateOutcome {
    /// The name in `--json`, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Available => "available",
            Self::Applied => "applied",
            Self::RolledBack => "rolled_back",
            Self::SkippedBad => "skipped_bad",
        }
    }
}

/// The result of an update action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    pub outcome: UpdateOutcome,
    pub current_build: String,
    pub target_build: String,
    /// The channel pointer's version number of the target build.
    pub target_version: u64,
    /// The pack's version of the target build (its manifest's `version`).
    pub target_pack_version: String,
    pub message: String,
}

pub type ActionResult = Result<Outcome, ActionError>;

#[derive(Debug)]
pub(crate) struct Job {
    pub action: Action,
    pub done: Option<oneshot::Sender<ActionResult>>,
}

/// Why the last stop happened, recorded before acting (so an exit during a
/// stop is never taken for a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopIntent {
    /// The runner is stopping it (operator, update, shutdown).
    Runner,
    /// `kill`: SIGKILL at once.
    Kill,
}

/// State shared between the actor and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub machine: Machine,
    pub detail: String,
    pub queue: VecDeque<Job>,
    /// An action is running.
    pub busy: Option<Action>,
    pub pid: Option<u32>,
    pub ready_at: Option<Instant>,
    pub players: (u32, u32),
    pub restarts: u32,
    pub build: String,
    /// The pack's version of the installed build (the manifest's `version`).
    pub version: String,
    /// The channel pointer's version number of the installed build.
    pub pointer_version: u64,
    pub bad_build: Option<String>,
    pub intent: Option<StopIntent>,
    pub shutting_down: bool,
    /// Where each launch setting of the running server came from.
    pub launch: Vec<Applied>,
    /// The version name and MOTD the last Server List Ping answered with.
    pub slp: Option<(String, String)>,
    /// Failed Server List Pings in a row.
    pub failed_pings: u32,
    /// The download of a build being staged.
    pub staging: Option<StageProgress>,
}

/// The download of a build staged while the server runs (`status`, events).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StageProgress {
    pub build: String,
    /// The pack's version of that build.
    pub version: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub blobs_done: u64,
    pub blobs_total: u64,
}

/// The most actions waiting at once.
pub const MAX_QUEUE: usize = 16;

#[derive(Debug)]
pub(crate) struct Inner {
    pub shared: Mutex<Shared>,
    pub wake: Notify,
    pub bus: EventBus,
    pub console: SupervisorConsole,
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A snapshot for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusSnapshot {
    pub state: String,
    pub detail: String,
    pub build: String,
    pub version: String,
    pub uptime_secs: u64,
    pub players_online: u32,
    pub players_max: u32,
    pub memory_rss_bytes: u64,
    pub pid: u32,
    pub restarts: u32,
    pub queued_actions: u32,
    pub bad_build: String,
    pub pointer_version: u64,
    /// The version name the Server List Ping reports (e.g. `1.21.1`, `Paper 1.21`).
    pub server_version: String,
    /// The MOTD the Server List Ping reports, as plain text.
    pub motd: String,
    pub launch: Vec<Applied>,
    pub staging: Option<StageProgress>,
    pub failed_pings: u32,
}

/// The handle: cheap to clone.
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub(crate) inner: Arc<Inner>,
}

impl Supervisor {
    pub(crate) fn new(bus: EventBus) -> Self {
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                machine: Machine::new(),
                detail: String::new(),
                queue: VecDeque::new(),
                busy: None,
                pid: None,
                ready_at: None,
                players: (0, 0),
                restarts: 0,
                build: String::new(),
                version: String::new(),
                pointer_version: 0,
                bad_build: None,
                intent: None,
                shutting_down: false,
                launch: Vec::new(),
                slp: None,
                failed_pings: 0,
                staging: None,
            }),
            wake: Notify::new(),
            bus,
            console: SupervisorConsole::default(),
        });
        Self { inner }
    }

    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    pub fn console(&self) -> &SupervisorConsole {
        &self.inner.console
    }

    pub fn state(&self) -> State {
        self.inner.lock().machine.state()
    }

    /// Submits `action`: it runs now, is queued behind others, or is refused
    /// with a reason; `done` (if given) receives its result.
    pub fn submit(&self, action: Action, done: Option<oneshot::Sender<ActionResult>>) -> Admission {
        let mut s = self.inner.lock();
        if s.shutting_down {
            return Admission::Refused("the daemon is shutting down".into());
        }
        let idle = s.busy.is_none() && s.queue.is_empty();
        if idle {
            if let Err(reason) = admissible(&action, s.machine.state()) {
                return Admission::Refused(reason);
            }
        } else {
            if s.queue.len() >= MAX_QUEUE {
                return Admission::Refused(format!(
                    "{MAX_QUEUE} actions are already waiting; try again when `atlas-runner status` shows fewer"
                ));
            }
            if s.queue.iter().any(|j| j.action == action) {
                return Admission::Refused(format!("a {} is already queued", action.name()));
            }
        }
        let ahead = s.queue.len() + usize::from(s.busy.is_some());
        self.inner.bus.event(
            "power",
            format!("{} {}", action.name(), if idle { "accepted" } else { "queued" }),
            serde_json::json!({"action": action.name(), "ahead": ahead}),
        );
        s.queue.push_back(Job { action, done });
        drop(s);
        self.inner.wake.notify_one();
        if idle {
            Admission::Run
        } else {
            Admission::Queued { ahead }
        }
    }

    /// SIGKILL now, whatever is running (a stop that hangs, a start that
    /// never ends). Refused when no server process is alive.
    pub fn kill(&self) -> Admission {
        let mut s = self.inner.lock();
        let Some(pid) = s.pid else {
            return Admission::Refused("the server is not running".into());
        };
        s.intent = Some(StopIntent::Kill);
        drop(s);
        self.inner
            .bus
            .event("power", "kill: SIGKILL sent", serde_json::json!({"pid": pid}));
        process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        Admission::Run
    }

    /// The status as `atlas-runner status` shows it.
    pub fn status(&self) -> StatusSnapshot {
        // The group's memory is read from /proc without the lock the actor needs.
        let pid = self.inner.lock().pid;
        let rss = pid.and_then(process::group_rss_bytes).unwrap_or(0);
        let s = self.inner.lock();
        let (server_version, motd) = s.slp.clone().unwrap_or_default();
        StatusSnapshot {
            state: s.machine.state().name().into(),
            detail: match s.machine.state() {
                State::Updating(step) if s.detail.is_empty() => step.as_str().into(),
                _ => s.detail.clone(),
            },
            build: s.build.clone(),
            version: s.version.clone(),
            uptime_secs: s.ready_at.map(|t| t.elapsed().as_secs()).unwrap_or(0),
            players_online: s.players.0,
            players_max: s.players.1,
            memory_rss_bytes: rss,
            pid: s.pid.unwrap_or(0),
            restarts: s.restarts,
            queued_actions: u32::try_from(s.queue.len()).unwrap_or(u32::MAX),
            bad_build: s.bad_build.clone().unwrap_or_default(),
            pointer_version: s.pointer_version,
            server_version,
            motd,
            launch: s.launch.clone(),
            staging: s.staging.clone(),
            failed_pings: s.failed_pings,
        }
    }
}

/// Whether `action` makes sense in `state` when nothing else is pending.
fn admissible(action: &Action, state: State) -> Result<(), String> {
    match (action, state) {
        (Action::Start, State::Running | State::Starting) => Err("the server is already running".into()),
        (Action::Stop, State::Stopped) => Err("the server is already stopped".into()),
        (Action::Stop, State::Failed) => {
            Err("the server is not running (failed); `start` to try again".into())
        }
        (Action::Restart, State::Stopped | State::Failed) => {
            Err("the server is not running; use `start`".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_queue_runs_queues_or_refuses_with_a_reason() {
        let sup = Supervisor::new(EventBus::new());
        assert_eq!(
            sup.submit(Action::Stop, None),
            Admission::Refused("the server is already stopped".into())
        );
        assert_eq!(sup.submit(Action::Start, None), Admission::Run);
        // The actor has not taken the start yet: everything else waits.
        assert_eq!(sup.submit(Action::Stop, None), Admission::Queued { ahead: 1 });
        assert_eq!(
            sup.submit(Action::Stop, None),
            Admission::Refused("a stop is already queued".into())
        );
        assert_eq!(sup.submit(Action::Restart, None), Admission::Queued { ahead: 2 });
        assert_eq!(sup.status().queued_actions, 3);
        assert!(matches!(sup.kill(), Admission::Refused(_)));
    }

    #[test]
    fn a_full_queue_refuses() {
        let sup = Supervisor::new(EventBus::new());
        sup.submit(Action::Start, None);
        for i in 0..MAX_QUEUE - 1 {
            let a = Action::Backup {
                label: format!("b{i}"),
            };
            assert!(matches!(sup.submit(a, None), Admission::Queued { .. }));
        }
        let a = Action::Backup {
            label: "one too many".into(),
        };
        assert!(matches!(sup.submit(a, None), Admission::Refused(r) if r.contains("already waiting")));
    }

    #[test]
    fn shutting_down_refuses_everything() {
        let sup = Supervisor::new(EventBus::new());
        sup.inner.lock().shutting_down = true;
        assert!(
            matches!(sup.submit(Action::Start, None), Admission::Refused(r) if r.contains("shutting down"))
        );
    }
}
