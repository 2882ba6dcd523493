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
