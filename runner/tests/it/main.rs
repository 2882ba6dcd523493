//! Integration tests of atlas-runner: one binary, a module per area.

mod announce;
mod backup;
mod check;
mod cli;
mod colour;
mod common;
mod config_schema;
mod daemon;
mod daemon_ipc;
mod flying_squid;
mod host_updates;
mod hosts;
mod ipc;
mod metrics;
mod protocols;
mod pypi_clients;
mod rig;
mod shutdown;
mod socket;
mod standin;
mod standin_cli;
#[path = "../../../fetcher/tests/it/common/mod.rs"]
mod store;
mod updates;
mod webhook;
