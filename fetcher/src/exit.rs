//! Process exit codes of `atlas-fetcher`, stable for scripts and systemd
//! units, and [`ExitClass`], which every error type a command can end with
//! implements: the error itself says which code it exits with.

/// Changes were applied: the directory now holds the channel's build.
pub const UPDATED: i32 = 0;
/// Unexpected or internal error (a bug, or something this list does not cover).
pub const INTERNAL: i32 = 1;
/// Usage error: bad or missing command-line arguments.
pub const USAGE: i32 = 2;
/// Already current: nothing to do, nothing written (also a successful dry run with no changes).
pub const CURRENT: i32 = 3;
/// Source or network error: unreachable, HTTP error status, object not found.
pub const SOURCE: i32 = 4;
/// Trust rejected: bad signature, unknown key, wrong pack or channel,
/// rollback, version reused with different content, expired pointer.
pub const TRUST: i32 = 5;
/// Integrity failure: manifest or blob hash or size mismatch, manifest longer
/// than declared, malformed manifest, unsafe path.
pub const INTEGRITY: i32 = 6;
/// Local filesystem error: cannot read or write the target directory or its
/// state; nothing installed where `verify`/`rollback` look; no such blob cache.
pub const LOCAL: i32 = 7;
/// Another run holds the directory's lock (`DIR/.atlas/lock`); nothing was done.
pub const LOCKED: i32 = 8;
/// `verify` found drift: managed files changed or missing (or an interrupted apply pending).
pub const DRIFT: i32 = 9;

/// Short machine-readable class name of an exit code, used in JSON reports.
pub fn kind(code: i32) -> &'static str {
    match code {
        USAGE => "usage",
        SOURCE => "source",
        TRUST => "trust",
        INTEGRITY => "integrity",
        LOCAL => "local",
        LOCKED => "locked",
        _ => "internal",
    }
}

/// An error that knows which exit code (and JSON `kind`) it ends a command
/// with. A new error type implements it, so the CLI never guesses.
pub trait ExitClass: std::error::Error {
    /// One of the codes above.
    fn exit_code(&self) -> i32;

    /// Short machine-readable class name ([`kind`] of the code).
    fn kind(&self) -> &'static str {
        kind(self.exit_code())
    }
}

/// The table shown in `--help`.
pub const HELP: &str = "\
Exit codes:
  0  updated: changes were applied (dry run: changes would be applied)
  1  unexpected internal error
  2  usage error: bad or missing arguments, unreadable key
  3  already current: nothing to do, nothing written
  4  source/network error: unreachable, HTTP error status, not found
  5  trust rejected: bad signature, unknown key, wrong pack or channel,
     rollback, version reused, expired pointer
  6  integrity failure: hash or size mismatch, manifest longer than
     declared, malformed manifest, unsafe path
  7  local filesystem error (target directory or its .atlas/ state,
     nothing installed there, no such blob cache)
  8  locked: another run is working on this directory; nothing was done
  9  drift (verify): managed files changed or missing, or an interrupted
     apply is pending; `verify --repair` restores them";
