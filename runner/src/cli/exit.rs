//! Exit codes of `atlas-runner` (documented in `--help` and docs/RUNNER.md).

/// Success.
pub const OK: u8 = 0;
/// Internal error: an unexpected reply, a protocol error, a daemon bug.
pub const INTERNAL: u8 = 1;
/// Bad usage: unknown command or flag, missing argument.
pub const USAGE: u8 = 2;
/// The daemon cannot be reached (no socket, permission denied, not
/// answering) or closed the connection before answering.
pub const UNREACHABLE: u8 = 3;
/// The daemon refused the request (a power action it cannot take now,
/// busy, nothing to roll back to, …).
pub const REFUSED: u8 = 4;
/// The request ran and failed (a failed start, update, backup, …; an
/// update that was rolled back).
pub const FAILED: u8 = 5;

/// The table `--help` shows.
pub const HELP: &str = "\
Exit codes:
  0  ok
  1  internal error (unexpected reply, protocol error)
  2  usage error
  3  daemon unreachable (no socket, permission denied, not answering, went away)
  4  refused by the daemon (with the reason)
  5  the action ran and failed (also `update apply` when the new build was rolled back)

Environment: ATLAS_RUNNER_SOCKET (the socket), RUST_LOG (diagnostics on stderr),
NO_COLOR (no colour even on a terminal).";
