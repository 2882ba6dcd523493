//! The Atlas shared model: content addresses, upstream hash formats, the
//! store layout, the build manifest codec, the signed channel pointer, and path validation.
//!
//! This crate does no network or disk I/O: it turns bytes into verified
//! values and back, so the builder, the fetcher, the runner and third-party
//! launchers share one implementation of the protocol in docs/FORMAT.md.

pub mod digest;
pub mod fmt;
pub mod io_error;
pub mod keys;
pub mod keyset;
pub mod launcher;
pub mod layout;
pub mod limits;
pub mod manifest;
pub mod path;
pub mod pointer;
pub mod retry;
pub mod tools;
pub mod upstream;

/// Types generated from `proto/atlas/v1/*.proto`.
#[allow(missing_debug_implementations, unused_qualifications, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/atlas.v1.rs"));
}

/// The runner's control protocol (`proto/atlas/runner/v1/ipc.proto`): requests
/// and replies carried as length-delimited frames over atlas-runnerd's socket.
pub mod runner {
    /// Version 1 of the control protocol.
    #[allow(missing_debug_implementations, unused_qualifications, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/atlas.runner.v1.rs"));
    }
}

pub use digest::Sha256Digest;
pub use io_error::IoError;
pub use keys::{KeyError, PublicKey, SecretKey};
pub use limits::Limits;
pub use manifest::{ManifestError, ManifestLimits};
pub use path::{PathError, validate_path};
pub use pointer::{PointerError, PointerPayload, SignedPointer, VerifiedPointer};
