//! atlas-builder: reads a pack from git, plans a build, writes content-addressed
//! blobs and a manifest to a store, and signs the channel pointer.

pub mod store;
