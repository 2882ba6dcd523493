//! atlas-fetcher: keeps a directory at the signed build an Atlas channel points to.
//!
//! The library does everything; the binary is a thin wrapper around [`cli::main`].
//! A launcher embeds [`Syncer`]: [`Syncer::check`] fetches and verifies the
//! signed pointer and the manifest, [`Syncer::plan`] diffs it against the
//! install, [`Syncer::apply`] downloads, verifies and applies atomically, and
//! [`Syncer::sync`] composes the three.

pub mod apply;
pub mod cache;
pub mod cli;
pub mod config;
pub mod download;
pub mod error;
pub mod exit;
pub mod history;
pub mod inspect;
pub mod journal;
pub mod lock;
pub mod plan;
pub mod progress;
pub mod report;
pub mod retry;
pub mod rollback;
pub mod select;
pub mod source;
mod staging;
pub mod state;
pub mod sync;

pub use error::SyncError;
pub use plan::{FileAction, InstallSide, OnModified, Plan, PlannedFile};
pub use progress::{NoProgress, Phase, Progress};
pub use report::{Outcome, Report};
pub use retry::RetryPolicy;
pub use sync::{Check, CheckStatus, SyncOptions, Syncer, load_key};
