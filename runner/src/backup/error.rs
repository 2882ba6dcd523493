//! Why a backup operation failed, in one type every part of [`crate::backup`] returns.

use std::path::{Path, PathBuf};

/// Why a backup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup settings: {0}")]
    Config(String),
    #[error("{action} {path}: {reason}; check the path, free space and permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("hot backup: `{command}` failed: {message}; is the server's console (RCON or stdin) working?")]
    Console { command: &'static str, message: String },
    #[error("a hot backup needs the server's console; take a cold backup with the server stopped")]
    NoConsole,
    #[error(
        "hot backup: `save-on` failed: {message}; the server is NOT saving the world until someone \
         runs `save-on` in its console{earlier}"
    )]
    SaveOn { message: String, earlier: String },
    #[error("no backup `{id}` in {dir}; `atlas-runner backup list` shows the backups")]
    NotFound { id: String, dir: PathBuf },
    #[error("backup archive {path} is damaged: {message}; restore another backup")]
    Corrupt { path: PathBuf, message: String },
    #[error("backup archive {path} has an unsafe entry `{entry}`: {reason}; nothing was restored")]
    Unsafe {
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("uploading {key} to s3://{bucket}: {message}")]
    Upload {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("backup task failed: {0}")]
    Task(String),
    #[error("the backup stopped: the daemon is shutting down (its partial archive was removed)")]
    Interrupted,
}

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io {
        action,
        path,
        reason: source,
    }
}
