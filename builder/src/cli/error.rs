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
        // `resign` losing a compare-and-swap: a store failure, as before.
        assert_eq!(class(PointerUpdateError::Store(conflict())), 4);
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
