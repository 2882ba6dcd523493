//! How a command ends when it fails: the message (the error and each of its
//! causes, `outer: cause: cause`) and the exit class the error itself
//! carries ([`ExitClass`]); no list of error types to test in turn.

use crate::exit::{self, ExitClass};

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: i32,
    /// Its class name, for `--json`.
    pub kind: &'static str,
    pub message: String,
}

/// The error's message followed by each cause not already part of it: the
/// error types print their cause in their own message (and most also expose
/// it as `source()`, for library callers who walk the chain), so a cause
/// whose text the message already holds is not printed a second time.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = inner.source();
    }
    s
}

impl<E: ExitClass> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: e.exit_code(),
            kind: e.kind(),
            message: chain(&e),
        }
    }
}

/// Writing the command's own output failed (a closed pipe, a full disk).
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            code: exit::INTERNAL,
            kind: exit::kind(exit::INTERNAL),
            message: format!("writing the output to stdout: {e}"),
        }
    }
}

/// Serialising the command's own JSON output failed (a bug).
impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure {
            code: exit::INTERNAL,
            kind: exit::kind(exit::INTERNAL),
            message: format!("serialising the JSON output: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SyncError;
    use crate::provision::ProvisionError;

    #[test]
    fn each_error_brings_its_own_class() {
        let f = Failure::from(SyncError::Locked {
            path: "/d/.atlas/lock".into(),
        });
        assert_eq!((f.code, f.kind), (exit::LOCKED, "locked"));
        let f = Failure::from(ProvisionError::Sync(SyncError::Usage("bad".into())));
        assert_eq!(
            (f.code, f.kind, f.message.as_str()),
            (exit::USAGE, "usage", "bad")
        );
        let io = atlas_proto::IoError::at("reading", "/x")(std::io::Error::other("boom"));
        let f = Failure::from(SyncError::from(io));
        assert_eq!(f.code, exit::LOCAL);
        assert_eq!(f.message, "reading /x: boom", "each cause printed once");
        let f = Failure::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(f.code, exit::INTERNAL);
    }
}
