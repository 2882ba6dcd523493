//! The command line of `atlas-runner`: arguments, subcommands and their help,
//! and the request each command sends.

use std::path::PathBuf;

use atlas_proto::runner::v1::{
    BackupCreate, BackupListRequest, BackupRequest, BackupRestore, ConsoleRequest, EventsRequest,
    LogsRequest, PowerAction, PowerRequest, RollbackRequest, StatusRequest, UpdateRequest, backup_request,
    request,
};
use clap::{Parser, Subcommand};

use super::exit;

const LONG_ABOUT: &str = "\
Controls atlas-runnerd, the daemon that keeps a Minecraft server running on the \
latest good build of its Atlas channel. Talks to it over its Unix socket \
(mode 0660: run as the daemon's user or as a member of the socket's group).

Power actions (start, stop, restart, kill) go through the daemon's one \
queue: each is run now, queued behind others, or refused with a reason. \
With --wait the command returns when the action has finished.

--json prints one JSON object (the final answer) for each command, or one \
object per line for streams (logs, events). Every object has a \"type\": \
status, power, log, event, console, backup, backups, update, done or error \
(daemon errors: {\"type\":\"error\",\"code\",\"message\"}).";

/// Command line of `atlas-runner`.
#[derive(Debug, Parser)]
#[command(name = "atlas-runner", version, about = "Control atlas-runnerd (status, power, logs, console, backups, updates)", long_about = LONG_ABOUT, after_long_help = exit::HELP, after_help = "Exit codes: 0 ok, 1 internal, 2 usage, 3 daemon unreachable, 4 refused, 5 failed (--help for more).")]
pub struct Args {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", env = "ATLAS_RUNNER_SOCKET", default_value = crate::config::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print JSON: one object per command, or one per line for streams.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What to ask the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the server's state, build, version, uptime, players, memory,
    /// restarts, pid and queued actions.
    Status,
    /// Start the server (queued behind running actions).
    Start(Power),
    /// Stop the server cleanly: RCON or console `stop`, then SIGTERM, then
    /// SIGKILL, each after its timeout. Recorded as intended, not a crash.
    Stop(Power),
    /// Stop the server cleanly, then start it again.
    Restart(Power),
    /// Kill the server process now (SIGKILL), skipping the queue. The world
    /// may lose what was not saved.
    Kill(Power),
    /// Print the server's recent log lines; with -f keep printing new ones
    /// until interrupted.
    Logs {
        /// How many past lines to print first.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 100)]
        lines: u32,
        /// Keep printing new lines as they come (until Ctrl-C).
        #[arg(short, long)]
        follow: bool,
    },
    /// Run one command in the server console (over RCON when enabled) and
    /// print its output, e.g. `atlas-runner console say hello`.
    Console {
        /// The command and its arguments (joined with spaces).
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Create, list or restore backups of the server directory.
    #[command(subcommand)]
    Backup(Backup),
    /// Check the channel for a newer build, or apply it now.
    #[command(subcommand)]
    Update(Update),
    /// Go back to the build installed before the current one (stop, back up,
    /// restore the previous install, start).
    Rollback,
    /// Stream the daemon's events (state changes, update steps, backups,
    /// crashes) until interrupted.
    Events,
}

/// Flags of the power actions.
#[derive(Debug, clap::Args)]
pub struct Power {
    /// Wait until the action has finished, and exit with its outcome.
    #[arg(long)]
    pub wait: bool,
}

/// `backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum Backup {
    /// Take a backup now (a hot backup while the server runs: save-off,
    /// save-all flush, archive, save-on).
    Create {
        /// A free-form label stored with the backup.
        #[arg(long, value_name = "L")]
        label: Option<String>,
    },
    /// List the backups, newest first.
    List,
    /// Restore a backup (the server is stopped first and started again).
    Restore {
        /// The backup's id, as `backup list` shows it.
        id: String,
    },
}

/// `update` subcommands.
#[derive(Debug, Subcommand)]
pub enum Update {
    /// Check the channel and say whether a newer build is available.
    Check,
    /// Update now: stage, announce, stop, back up, apply, start, and roll
    /// back if the new build fails its health window.
    Apply,
}

impl Command {
    /// The request this command sends.
    pub fn request(&self) -> request::Kind {
        let power = |action: PowerAction, p: &Power| {
            request::Kind::Power(PowerRequest {
                action: action as i32,
                wait: p.wait,
            })
        };
        let backup = |op| request::Kind::Backup(BackupRequest { op: Some(op) });
        match self {
            Self::Status => request::Kind::Status(StatusRequest {}),
            Self::Start(p) => power(PowerAction::Start, p),
            Self::Stop(p) => power(PowerAction::Stop, p),
            Self::Restart(p) => power(PowerAction::Restart, p),
            Self::Kill(p) => power(PowerAction::Kill, p),
            Self::Logs { lines, follow } => request::Kind::Logs(LogsRequest {
                tail: *lines,
                follow: *follow,
            }),
            Self::Console { command } => request::Kind::Console(ConsoleRequest {
                command: command.join(" "),
            }),
            Self::Backup(Backup::Create { label }) => backup(backup_request::Op::Create(BackupCreate {
                label: label.clone().unwrap_or_default(),
            })),
            Self::Backup(Backup::List) => backup(backup_request::Op::List(BackupListRequest {})),
            Self::Backup(Backup::Restore { id }) => {
                backup(backup_request::Op::Restore(BackupRestore { id: id.clone() }))
            }
            Self::Update(u) => request::Kind::Update(UpdateRequest {
                apply: matches!(u, Update::Apply),
            }),
            Self::Rollback => request::Kind::Rollback(RollbackRequest {}),
            Self::Events => request::Kind::Events(EventsRequest {}),
        }
    }

    /// Whether the replies are a stream printed as they come (`logs`,
    /// `events`) rather than one answer.
    pub fn is_stream(&self) -> bool {
        matches!(self, Self::Logs { .. } | Self::Events)
    }

    /// The power action's name, for messages.
    pub fn action_name(&self) -> &'static str {
        match self {
            Self::Start(_) => "start",
            Self::Stop(_) => "stop",
            Self::Restart(_) => "restart",
            Self::Kill(_) => "kill",
            _ => "request",
        }
    }
}
