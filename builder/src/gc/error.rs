//! What can stop a garbage collection, and its exit class.

use crate::builds::BuildLookupError;
use crate::exit::{ExitClass, HasExitClass};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(BuildLookupError),
    #[error("`{key}` is unreadable ({message}); nothing was deleted: repair or remove it first")]
    Unreadable { key: String, message: String },
    #[error(
        "channel `{channel}` was pointed at build {build} while gc ran, and gc had already deleted that build's objects; publish or promote it again (nothing more was deleted)"
    )]
    Raced { channel: String, build: String },
    #[error("{0}")]
    Options(String),
}

impl HasExitClass for GcError {
    fn exit_class(&self) -> ExitClass {
        match self {
            Self::Store(e) => e.exit_class(),
            Self::Build(e) => e.exit_class(),
            Self::Unreadable { .. } => ExitClass::Store,
            Self::Raced { .. } => ExitClass::Conflict,
            // A flag out of range: a bad command line.
            Self::Options(_) => ExitClass::Usage,
        }
    }
}
