//! The error of a command: any library error with its exit class. Only
//! errors that know their class ([`HasExitClass`]) convert into it with `?`,
//! so a new error type reaching the command line without a class does not
//! compile.

use std::fmt;

use crate::exit::{ExitClass, HasExitClass};

/// A failed command: what went wrong and which exit code says so.
#[derive(Debug)]
pub struct CliError {
    class: ExitClass,
    error: anyhow::Error,
}

impl CliError {
    /// An error that is not one of the library's (a flag value clap cannot
    /// check, a report that cannot be printed): exit 1.
    pub fn other(error: impl Into<anyhow::Error>) -> Self {
        Self {
            class: ExitClass::Error,
            error: error.into(),
        }
    }

    /// A library error met where its own class does not fit (an export
    /// failure while re-signing is a store failure, not a bad flag).
    pub fn with_class(class: ExitClass, error: impl Into<anyhow::Error>) -> Self {
        Self {
            class,
            error: error.into(),
        }
    }

    pub fn class(&self) -> ExitClass {
        self.class
    }

    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }
}

impl<E: HasExitClass + Send + Sync + 'static> From<E> for CliError {
    fn from(e: E) -> Self {
        Self {
            class: e.exit_class(),
            error: e.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyset::KeysetCmdError;
    use crate::pointer::PointerUpdateError;
    use crate::promote::PromoteError;
    use crate::publish::PublishError;
    use crate::store::StoreError;

    fn conflict() -> StoreError {
        StoreError::Conflict {
            store: "s".into(),
            key: "k".into(),
        }
    }

    fn io() -> StoreError {
        StoreError::Io {
            store: "s".into(),
            key: "k".into(),
            message: "m".into(),
        }
    }

    fn class(e: impl Into<CliError>) -> u8 {
        e.into().class().code()
    }

    /// The classes the command line reported before errors carried them
    /// (an error chain tested against each type in turn).
    #[test]
    fn each_error_keeps_its_exit_code() {
        assert_eq!(class(conflict()), 5);
        assert_eq!(class(io()), 4);
        assert_eq!(class(PublishError::Store(conflict())), 5);
        assert_eq!(
            class(PublishError::Pointer(PointerUpdateError::Store(conflict()))),
            5
        );
        assert_eq!(class(PublishError::Pointer(PointerUpdateError::Store(io()))), 4);
        assert_eq!(
            class(PublishError::Repo(crate::repo::RepoError::Git("x".into()))),
            3
        );
        assert_eq!(
            class(PublishError::Build(crate::build::BuildError::Packwiz("x".into()))),
            3
        );
        assert_eq!(
            class(PublishError::Keyset(KeysetCmdError::Invalid("x".into()))),
            6
        );
        assert_eq!(class(PublishError::Keyset(KeysetCmdError::Store(io()))), 4);
        assert_eq!(class(PromoteError::Store(conflict())), 5);
        assert_eq!(
            class(PromoteError::Pointer(PointerUpdateError::Store(conflict()))),
            5
        );
        assert_eq!(class(PromoteError::Store(io())), 4);
        // `resign` losing a compare-and-swap is a lost race like publish's
        // and promote's: exit 5, as the README promises for a lost race (it
        // was 4, a store failure, before issue 18).
        assert_eq!(class(PointerUpdateError::Store(conflict())), 5);
        assert_eq!(class(PointerUpdateError::Store(io())), 4);
        // A store that ignores conditional writes is refused: a store error.
        assert_eq!(
            class(StoreError::Unconditional {
                store: "s".into(),
                how: "h".into(),
            }),
            4
        );
        // An export race that never settled is a conflict; other export
        // failures while publishing are store failures.
        assert_eq!(
            class(PublishError::Export(crate::export::ExportError::Contended {
                key: "k".into(),
                attempts: 16,
            })),
            5
        );
        assert_eq!(
            class(PublishError::Export(crate::export::ExportError::Store(io()))),
            4
        );
        assert_eq!(
            class(crate::gc::GcError::Raced {
                channel: "c".into(),
                build: "b".into(),
            }),
            5
        );
        assert_eq!(class(crate::gc::GcError::Store(io())), 4);
        assert_eq!(
            class(KeysetCmdError::Conflict {
                store: "s".into(),
                key: "k".into(),
            }),
            4
        );
        assert_eq!(class(KeysetCmdError::Invalid("x".into())), 6);
        assert_eq!(class(crate::signing::SigningError::NoKey), 6);
        assert_eq!(class(crate::check::CheckFailed { errors: 1 }), 3);
        assert_eq!(
            class(crate::export::ExportError::Zip("x".into())),
            1,
            "a bad --public-url"
        );
        assert_eq!(CliError::other(anyhow::anyhow!("x")).class().code(), 1);
    }
}
