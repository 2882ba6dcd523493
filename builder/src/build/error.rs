//! Why a pack could not be planned.

use std::path::PathBuf;

use crate::mrpack::MrpackError;
use crate::pack::PackError;
use crate::plan::PlanError;
use crate::repo::RepoError;
use crate::resolve::FetchError;

/// Planning a pack with mods failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("the packwiz pack has errors:\n{0}")]
    Packwiz(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Mrpack(#[from] MrpackError),
    #[error("download cache {}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::exit::HasExitClass for BuildError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            // An unreachable host is the network's fault, not the pack's.
            Self::Fetch(e) => e.exit_class(),
            // Whatever else failed, the pack as it is cannot be built.
            _ => crate::exit::ExitClass::Pack,
        }
    }
}
