//! Test support for Atlas: a loopback static HTTP server that counts requests
//! and answers conditional GETs, an in-process S3-compatible server with SigV4
//! authentication, and git repository fixtures. Used by every crate's tests.

pub mod curseforge;
pub mod fs;
pub mod git;
pub mod http;
pub mod loaders;
pub mod modrinth;
pub mod mojang;
pub mod s3;
