//! atlas-builder: reads a pack from git, plans a build, writes content-addressed
//! blobs and a manifest to a store, and signs the channel pointer.
//!
//! The pipeline is plan-then-execute: [`repo::PackSource`] lists the pack's
//! files at a commit, [`plan::plan`] turns them into a manifest and a set of
//! blobs, and [`publish::publish`] uploads what the store lacks, then the
//! manifest, then the pointer ([`pointer::point_channel`]).

pub mod builds;
pub mod cache;
pub mod cache_writer;
pub mod check;
pub mod cli;
pub mod diff;
pub mod download;
pub mod early;
pub mod export;
pub mod github;
pub mod import_mrpack;
pub mod keyset;
pub mod pack;
pub mod packwiz;
pub mod plan;
pub mod pointer;
pub mod promote;
pub mod publish;
pub mod repo;
pub mod resolve;
pub mod settings;
pub mod signing;
pub mod store;
