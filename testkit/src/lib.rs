//! Test support for Atlas: a loopback static HTTP server that counts requests
//! and answers conditional GETs, an in-process S3-compatible server with SigV4
//! authentication, git repository fixtures, and stand-ins for Modrinth,
//! CurseForge, Mojang and the loader upstreams that are as strict as the real
//! services (each behaviour cites its specification). Used by every crate's tests.

pub mod curseforge;
pub mod fs;
pub mod git;
pub mod host;
pub mod http;
pub mod loaders;
pub mod modrinth;
pub mod mojang;
pub mod prism;
#[cfg(unix)]
pub mod pty;
pub mod s3;
