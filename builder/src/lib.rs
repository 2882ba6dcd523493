//! atlas-builder: reads a pack from git, plans a build, writes content-addressed
//! blobs and a manifest to a store, and signs the channel pointer.
//!
//! The pipeline is plan-then-execute: [`repo::PackSource`] lists the pack's
//! files at a commit, [`build::plan_pack`] reads whichever pack format they
//! hold (native, packwiz, `.mrpack`), has [`resolve`] fetch the mods, and
//! [`plan::assemble`]s a manifest and a set of blobs; [`publish::run`] owns
//! the whole publish: keysets, planning, blobs the store lacks, the
//! manifest, the launcher [`export`]s, and the signed pointer
//! ([`pointer::point_channel`]). [`cli`] is the command line over it; every
//! error type says its exit class ([`exit`]).

pub mod build;
pub mod builds;
pub mod cache;
pub mod cache_writer;
pub mod check;
pub mod cli;
pub mod diff;
pub mod download;
pub mod exit;
pub mod export;
pub mod gc;
pub mod github;
pub mod keyset;
pub mod mrpack;
pub mod pack;
pub mod packwiz;
pub mod page;
pub mod plan;
pub mod pointer;
pub mod progress;
pub mod promote;
pub mod publish;
pub mod repo;
pub mod resolve;
pub mod settings;
pub mod signing;
pub mod store;
