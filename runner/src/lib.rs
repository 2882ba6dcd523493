//! atlas-runner: the `atlas-runnerd` daemon that keeps a Minecraft server
//! running on the latest good build of its Atlas channel, and the
//! `atlas-runner` command line that controls it over a Unix socket.
//!
//! The daemon's and the CLI's binaries are thin wrappers: [`daemon::main`]
//! and [`cli::main`]. Everything else is a library module testable on its own:
//! the supervisor's [`state`] machine, the [`rcon`] and [`slp`] protocol
//! clients, [`backup`]s, the [`channel`] followed through the fetcher library
//! (the updates themselves are the supervisor's), typed [`error`]s, the
//! daemon's [`shutdown`], [`metrics`] and [`webhook`]s, and the [`ipc`] framing.

pub mod backup;
pub mod channel;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod error;
pub mod eula;
pub mod events;
pub mod ipc;
pub mod java;
pub mod metrics;
pub mod properties;
pub mod rcon;
pub mod schedule;
pub mod shutdown;
pub mod slp;
pub mod state;
pub mod supervisor;
pub mod webhook;
