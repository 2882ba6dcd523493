//! Which files a kind of install takes: a dedicated server, or a client (a
//! launcher instance). Optional files are chosen on top of this
//! ([`crate::select`]).

use atlas_proto::v1::{File, Side};
use serde::{Deserialize, Serialize};

/// Which kind of install a directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InstallSide {
    /// A dedicated server: files for both sides and server-only files.
    Server,
    /// A client (launcher instance): files for both sides and client-only files.
    Client,
}

impl InstallSide {
    /// Whether a manifest file is for this side (optional or not).
    pub fn wants_side(self, f: &File) -> bool {
        match Side::try_from(f.side) {
            Ok(Side::Both) => true,
            Ok(Side::Server) => self == Self::Server,
            Ok(Side::Client) => self == Self::Client,
            _ => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}
