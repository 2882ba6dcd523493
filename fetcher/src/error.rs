//! The fetcher's error type: every failure names what was wrong and where
//! (URL, file, path or key), and carries its exit class ([`ExitClass`]).

use std::path::PathBuf;

use atlas_proto::{IoError, ManifestError, PathError, PointerError};

use crate::exit::{self, ExitClass};

/// Everything that can stop a sync. Grouped by exit code class.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    // ---- usage (exit 2) ----
    /// A bad option value (pack id, key, source URL...).
    #[error("{0}")]
    Usage(String),

    // ---- source / network (exit 4) ----
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        url: String,
        status: u16,
        /// The server's `Retry-After`, when it sent a usable one.
        retry_after: Option<std::time::Duration>,
    },
    #[error("{url} was not found{hint}")]
    NotFound { url: String, hint: String },
    #[error("reading {url} failed: {message}")]
    SourceRead { url: String, message: String },
    #[error("the sync did not finish within the deadline of {secs} s (--deadline); nothing was changed")]
    Deadline { secs: u64 },
    #[error(
        "{url} sent no response headers within {secs} s (--header-timeout); the server or a proxy \
         in front of it is stuck"
    )]
    NoResponse { url: String, secs: u64 },
    #[error(
        "{url} was too slow: {bytes} bytes in the last {secs} s, below the low-speed limit of \
         {limit} bytes per second (--low-speed-limit, --low-speed-time)"
    )]
    TooSlow {
        url: String,
        bytes: u64,
        secs: u64,
        limit: u64,
    },
    #[error(
        "{url} is a {kind}, not a regular file: a store holds only regular files (or links to them); \
         refusing to read it"
    )]
    NotAFile { url: String, kind: &'static str },

    // ---- trust (exit 5) ----
    #[error("rejected the channel pointer at {url}: {source}")]
    Trust {
        url: String,
        #[source]
        source: PointerError,
    },
    #[error(
        "rejected the keyset at {origin}: {source}; nothing was changed (if the creator rotated keys, \
         ask them for the current keys/<N>.json and configure it with --root)"
    )]
    Keyset {
        /// URL of the keyset, or the `--root` file.
        origin: String,
        #[source]
        source: atlas_proto::keyset::KeysetError,
    },
    #[error(
        "the keyset chain is longer than {cap} new keysets from version {from} (found {url}): \
         refusing to follow it in one run; configure a newer keys/<N>.json with --root"
    )]
    KeysetChainTooLong { url: String, cap: u64, from: u64 },
    #[error(
        "no keyset at {url}: the root of trust names root keys only, so the pack must publish \
         keys/1.json (`atlas-builder key init-root`, then `publish`)"
    )]
    NoKeyset { url: String },

    // ---- integrity (exit 6) ----
    #[error(
        "this host's clock reads {now} (Unix seconds), {behind} s behind the time it showed when a pointer \
         was last accepted ({last}, in .atlas/trust.json): the clock went backwards, so pointer expiry \
         cannot be checked; fix the clock (NTP), then run again"
    )]
    ClockBackwards { now: u64, last: u64, behind: u64 },
    #[error("manifest at {url} is longer than the {declared} bytes the signed pointer declares; refusing it")]
    ManifestTooLong { url: String, declared: u64 },
    #[error("manifest at {url} is {actual} bytes, but the signed pointer declares {declared}")]
    ManifestSize { url: String, declared: u64, actual: u64 },
    #[error("manifest at {url} has sha256 {actual}, but the signed pointer names build {expected}")]
    ManifestHash {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("manifest at {url} is invalid: {source}")]
    ManifestInvalid {
        url: String,
        #[source]
        source: ManifestError,
    },
    #[error("manifest at {url} is for pack `{got}`, expected `{expected}`")]
    ManifestWrongPack {
        url: String,
        expected: String,
        got: String,
    },
    #[error("`{path}` downloaded from {url} is longer than the {expected} bytes the manifest declares")]
    BlobTooLong {
        path: String,
        url: String,
        expected: u64,
    },
    #[error("`{path}` downloaded from {url} is {actual} bytes, but the manifest declares {expected}")]
    BlobSize {
        path: String,
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("`{path}` downloaded from {url} has sha256 {actual}, expected {expected}")]
    BlobHash {
        path: String,
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "`{path}` downloaded from {url} has the manifest's sha256 but {format} {actual}, \
         while the manifest records {expected} for that upstream; refusing it (report this to the pack's author)"
    )]
    UpstreamHash {
        path: String,
        url: String,
        format: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    UnsafePath(#[from] PathError),

    // ---- lock (exit 8) ----
    #[error("another atlas-fetcher run holds the lock {} on this directory; try again when it has finished", path.display())]
    Locked { path: PathBuf },

    // ---- local filesystem (exit 7) ----
    /// A filesystem operation failed (see [`IoError::at`]).
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("state file {} is not usable: {message}; fix or delete it (deleting trust.json drops rollback protection)", path.display())]
    State { path: PathBuf, message: String },
    #[error("cannot install `{path}`: {reason}")]
    Conflict { path: String, reason: String },

    // ---- internal (exit 1) ----
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller set the sync's [`crate::interrupt::Interrupt`]: the run
    /// stopped between two steps, before any installed file was changed.
    #[error("interrupted before anything was installed; the directory is as it was")]
    Interrupted,
}

impl SyncError {
    /// The process exit code for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Unreachable { .. }
            | Self::HttpStatus { .. }
            | Self::NotFound { .. }
            | Self::SourceRead { .. }
            | Self::Deadline { .. }
            | Self::NoResponse { .. }
            | Self::TooSlow { .. }
            | Self::NotAFile { .. } => exit::SOURCE,
            Self::Trust { .. }
            | Self::Keyset { .. }
            | Self::KeysetChainTooLong { .. }
            | Self::NoKeyset { .. }
            | Self::ClockBackwards { .. } => exit::TRUST,
            Self::ManifestTooLong { .. }
            | Self::ManifestSize { .. }
            | Self::ManifestHash { .. }
            | Self::ManifestInvalid { .. }
            | Self::ManifestWrongPack { .. }
            | Self::BlobTooLong { .. }
            | Self::BlobSize { .. }
            | Self::BlobHash { .. }
            | Self::UpstreamHash { .. }
            | Self::UnsafePath(_) => exit::INTEGRITY,
            Self::Io(_) | Self::State { .. } | Self::Conflict { .. } => exit::LOCAL,
            Self::Locked { .. } => exit::LOCKED,
            Self::Internal(_) | Self::Interrupted => exit::INTERNAL,
        }
    }

    /// Short machine-readable class name, used in the JSON report.
    pub fn kind(&self) -> &'static str {
        exit::kind(self.exit_code())
    }

    /// Whether another attempt may succeed: connection failures, timeouts,
    /// broken, truncated or too slow bodies, HTTP 408, 429 and 5xx. Never
    /// 404, a special file or an integrity failure.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. }
            | Self::SourceRead { .. }
            | Self::NoResponse { .. }
            | Self::TooSlow { .. } => true,
            Self::HttpStatus { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}

impl ExitClass for SyncError {
    fn exit_code(&self) -> i32 {
        SyncError::exit_code(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let e = SyncError::Trust {
            url: "u".into(),
            source: PointerError::Rollback { last: 2, got: 1 },
        };
        assert_eq!(e.exit_code(), exit::TRUST);
        assert!(e.to_string().contains("rollback"));
        assert_eq!(SyncError::Usage("x".into()).exit_code(), exit::USAGE);
        assert_eq!(SyncError::Internal("x".into()).kind(), "internal");
    }
}
