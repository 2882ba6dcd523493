//! A mod that could not be resolved or fetched ([`ModError`], all of a
//! pack's together in [`ModErrors`]), and the exit class of each resolver
//! error: above the providers, whose errors it wraps.

use std::path::PathBuf;

use crate::download::DownloadError;
use crate::exit::{ExitClass, HasExitClass};

use super::deps::{DepErrors, DepProblem};
use super::{curseforge, modrinth};

/// A mod could not be resolved or fetched. Each names the mod, the URL and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Modrinth(#[from] modrinth::ModrinthError),
    #[error(transparent)]
    CurseForge(#[from] curseforge::CurseForgeError),
    #[error(
        "{defined_in}: {name}: the author does not allow third-party downloads of `{file_name}` \
         (CurseForge distribution disabled); download it by hand from {page} into {} and run again: \
         it is matched by hash, installed at `{dest}` and stays upstream-only",
        manual_dir.as_ref().map_or("a folder passed as --manual-dir".to_owned(), |d| format!("--manual-dir {}", d.display()))
    )]
    DistributionDisabled {
        name: String,
        defined_in: String,
        page: String,
        file_name: String,
        dest: String,
        manual_dir: Option<PathBuf>,
    },
    #[error("{defined_in}: {name}: {message}")]
    Invalid {
        name: String,
        defined_in: String,
        message: String,
    },
}

/// Every mod problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{} mod(s) could not be resolved or downloaded:\n{}", .0.len(), join(.0))]
pub struct ModErrors(pub Vec<ModError>);

// A mod that cannot be resolved or fetched makes the pack unbuildable (exit 3).
impl HasExitClass for ModError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for ModErrors {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for modrinth::ModrinthError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for curseforge::CurseForgeError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for DepProblem {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for DepErrors {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

fn join(errors: &[ModError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}
