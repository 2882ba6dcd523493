//! Why an action of the supervisor failed: a [`ErrorKind`] for scripts, the
//! control socket's error replies, events and metrics, a message for people,
//! and whether another attempt may succeed. Errors of the fetcher keep their
//! class (`source`, `trust`, `integrity`, …) and their transience.

use atlas_fetcher::SyncError;
use atlas_fetcher::provision::ProvisionError;

use crate::backup::BackupError;

/// What failed. The names ([`ErrorKind::as_str`]) are stable: they are the
/// `kind` of the socket's `Error` replies and of `atlas-runner --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The runner's configuration lacks what the action needs (no
    /// `[source]`), or a file it names (a key, a root keyset) is unusable.
    Config,
    /// The channel's store: unreachable, an HTTP error, an object not found
    /// (the fetcher's `source` class, also Mojang's and loaders' metadata).
    Source,
    /// The channel is not trusted: signature, key, rollback, expiry (`trust`).
    Trust,
    /// A manifest, blob or download failed verification (`integrity`).
    Integrity,
    /// The server directory or the fetcher's state in it (`local`).
    Local,
    /// Another fetcher run holds the server directory's lock (`locked`).
    Locked,
    /// Taking or restoring a backup.
    Backup,
    /// The server: it did not start or stay healthy, or the action does not
    /// fit its state (restarting after a crash, not stopped).
    Server,
    /// The daemon is shutting down: the action did not run, or stopped
    /// between steps (see [`crate::supervisor`] for what is left behind).
    ShuttingDown,
    /// A bug, or an error of a kind this list does not cover.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Source => "source",
            Self::Trust => "trust",
            Self::Integrity => "integrity",
            Self::Local => "local",
            Self::Locked => "locked",
            Self::Backup => "backup",
            Self::Server => "server",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
        }
    }

    /// The kind of a fetcher error class (`SyncError::kind`, `ProvisionError::kind`).
    fn of_fetcher_class(class: &str) -> Self {
        match class {
            "usage" => Self::Config,
            "source" => Self::Source,
            "trust" => Self::Trust,
            "integrity" => Self::Integrity,
            "local" => Self::Local,
            "locked" => Self::Locked,
            _ => Self::Internal,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed action: what failed, what to tell the operator, and whether
/// trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    pub kind: ErrorKind,
    pub message: String,
    /// Another attempt may succeed (a connection failure, a timeout, HTTP
    /// 408, 429 or 5xx); never for trust or integrity failures.
    pub transient: bool,
}

impl ActionError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            transient: false,
        }
    }

    /// The daemon is shutting down; `what` says what became of the action.
    pub fn shutting_down(what: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::ShuttingDown,
            format!("the daemon is shutting down: {what}"),
        )
    }

    /// The same error, its message prefixed with what was being done.
    pub fn context(self, doing: impl std::fmt::Display) -> Self {
        Self {
            message: format!("{doing}: {}", self.message),
            ..self
        }
    }
}

impl From<SyncError> for ActionError {
    fn from(e: SyncError) -> Self {
        Self {
            kind: ErrorKind::of_fetcher_class(e.kind()),
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<ProvisionError> for ActionError {
    fn from(e: ProvisionError) -> Self {
        // ProvisionError has no is_transient of its own: the same rule as
        // SyncError's (connection failures, timeouts, 408, 429 and 5xx).
        let transient = match &e {
            ProvisionError::Sync(s) => s.is_transient(),
            ProvisionError::Unreachable { .. }
            | ProvisionError::Read { .. }
            | ProvisionError::Timeout { .. } => true,
            ProvisionError::HttpStatus { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        };
        Self {
            kind: ErrorKind::of_fetcher_class(e.kind()),
            transient,
            message: e.to_string(),
        }
    }
}

impl From<BackupError> for ActionError {
    fn from(e: BackupError) -> Self {
        let kind = match e {
            BackupError::Interrupted => ErrorKind::ShuttingDown,
            _ => ErrorKind::Backup,
        };
        Self::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetcher_errors_keep_their_class_and_transience() {
        let e = ActionError::from(SyncError::Unreachable {
            url: "http://127.0.0.1:9/p/pointers/c".into(),
            message: "connection refused".into(),
        });
        assert_eq!((e.kind, e.transient), (ErrorKind::Source, true));
        assert!(e.message.contains("127.0.0.1:9"), "{e}");
        let e = ActionError::from(SyncError::Usage("--key `x`: not a key".into()));
        assert_eq!((e.kind, e.transient), (ErrorKind::Config, false));
        let e = ActionError::from(SyncError::Internal("bug".into())).context("applying build ab");
        assert_eq!(e.kind, ErrorKind::Internal);
        assert_eq!(e.message, "applying build ab: internal error: bug");
    }

    #[test]
    fn provision_errors_keep_their_class_and_transience() {
        let e = ActionError::from(ProvisionError::HttpStatus {
            url: "https://meta.example/v2".into(),
            status: 503,
        });
        assert_eq!((e.kind, e.transient), (ErrorKind::Source, true));
        let e = ActionError::from(ProvisionError::Usage("no loader".into()));
        assert_eq!((e.kind, e.transient), (ErrorKind::Config, false));
    }

    #[test]
    fn backup_errors_and_names() {
        assert_eq!(ActionError::from(BackupError::NoConsole).kind, ErrorKind::Backup);
        assert_eq!(
            ActionError::from(BackupError::Interrupted).kind,
            ErrorKind::ShuttingDown
        );
        assert_eq!(ErrorKind::ShuttingDown.to_string(), "shutting_down");
        let e = ActionError::shutting_down("nothing changed");
        assert_eq!(e.to_string(), "the daemon is shutting down: nothing changed");
    }
}
