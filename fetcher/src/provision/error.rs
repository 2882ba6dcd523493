//! Errors of server provisioning: each names the URL, file or command at
//! fault and what to do, and maps to one of the fetcher's exit-code classes.

use std::path::PathBuf;

use atlas_proto::IoError;

use crate::error::SyncError;
use crate::exit::{self, ExitClass};

/// Everything that can stop provisioning.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    // ---- usage (exit 2) ----
    /// A bad option value or an unsupported loader.
    #[error("{0}")]
    Usage(String),
    #[error(
        "cannot run the Java executable `{}` for the loader installer: {reason}; install a Java runtime \
         (Java 17 or newer for current loaders) or name one with --java",
        java.display()
    )]
    JavaMissing { java: PathBuf, reason: std::io::Error },
    #[error(
        "{} holds no installed build to provision: run `atlas-fetcher sync` (server side) first",
        dir.display()
    )]
    NotInstalled { dir: PathBuf },

    // ---- source / network (exit 4) ----
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered HTTP {status}; check the upstream URL (or try again later)")]
    HttpStatus { url: String, status: u16 },
    #[error("{url} was not found{hint}")]
    NotFound { url: String, hint: String },
    #[error("reading {url} failed: {message}")]
    Read { url: String, message: String },
    #[error("{url} did not answer within {secs} s (--timeout)")]
    Timeout { url: String, secs: u64 },
    #[error("{url} answered something unusable: {message}")]
    BadMetadata { url: String, message: String },
    #[error(
        "Minecraft {version} is not in Mojang's version manifest at {url}; check the pack's minecraft_version"
    )]
    UnknownVersion { url: String, version: String },
    #[error(
        "{loader} {version} for Minecraft {minecraft} is not listed in {url}; check the pack's loader version"
    )]
    UnknownLoaderVersion {
        url: String,
        loader: &'static str,
        version: String,
        minecraft: String,
    },

    // ---- integrity (exit 6) ----
    #[error(
        "{url} is {actual} {algorithm}, but {expected} was published for it; refusing it \
         (nothing was installed; try again, and report it upstream if it persists)"
    )]
    Hash {
        url: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{url} is {actual} bytes, but {expected} were published for it; refusing it")]
    Size { url: String, expected: u64, actual: u64 },
    #[error("{url} is larger than the {cap} bytes allowed for it; refusing it")]
    TooLarge { url: String, cap: u64 },

    // ---- local (exit 7) ----
    #[error(
        "the {loader} installer ({command}) failed: {status}; nothing was changed in the server \
         directory. Last lines of its output:\n{tail}"
    )]
    Installer {
        loader: &'static str,
        command: String,
        status: String,
        tail: String,
    },
    #[error("the {loader} installer finished but {message}; nothing was changed in the server directory")]
    InstallerOutput { loader: &'static str, message: String },
    /// A filesystem operation failed (see [`IoError::at`]).
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{} is not usable: {message}; delete it and provision again", path.display())]
    State { path: PathBuf, message: String },

    /// Reading the install state or taking the directory lock.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl ProvisionError {
    /// The process exit code (see [`crate::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::JavaMissing { .. } | Self::NotInstalled { .. } => exit::USAGE,
            Self::Unreachable { .. }
            | Self::HttpStatus { .. }
            | Self::NotFound { .. }
            | Self::Read { .. }
            | Self::Timeout { .. }
            | Self::BadMetadata { .. }
            | Self::UnknownVersion { .. }
            | Self::UnknownLoaderVersion { .. } => exit::SOURCE,
            Self::Hash { .. } | Self::Size { .. } | Self::TooLarge { .. } => exit::INTEGRITY,
            Self::Installer { .. } | Self::InstallerOutput { .. } | Self::Io(_) | Self::State { .. } => {
                exit::LOCAL
            }
            Self::Sync(e) => e.exit_code(),
        }
    }

    /// Short machine-readable class name, as [`SyncError::kind`].
    pub fn kind(&self) -> &'static str {
        exit::kind(self.exit_code())
    }
}

impl ExitClass for ProvisionError {
    fn exit_code(&self) -> i32 {
        ProvisionError::exit_code(self)
    }
}
