//! The filesystem error every Atlas crate reports the same way: what was
//! being done, to which path, and the OS's reason. Crates that touch the disk
//! wrap it in their own error enums (`#[from]`), so one helper builds it
//! everywhere. Only the type lives here; this crate still does no I/O.

use std::path::PathBuf;

/// A filesystem operation that failed: `"{action} {path}: {reason}"`, e.g.
/// `creating directory /srv/mc/.atlas: Permission denied (os error 13)`.
///
/// The OS error is part of the message and not exposed as the error's
/// source, so a chain printed cause by cause says it once.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {error}", path.display())]
pub struct IoError {
    /// What was being done, as a verb phrase (`"reading"`, `"creating directory"`).
    pub action: &'static str,
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl IoError {
    /// For `map_err`: `std::fs::read(&p).map_err(IoError::at("reading", &p))?`
    /// (`?` then converts it into the caller's error type).
    pub fn at(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IoError {
        let path = path.into();
        move |error| IoError { action, path, error }
    }

    /// The OS error's kind (`NotFound`, `PermissionDenied`...).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.error.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_action_the_path_and_the_reason() {
        let e = IoError::at("reading", "/srv/x.json")(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(e.to_string(), "reading /srv/x.json: entity not found");
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(
            std::error::Error::source(&e).is_none(),
            "the reason is in the message, printed once"
        );
    }
}
