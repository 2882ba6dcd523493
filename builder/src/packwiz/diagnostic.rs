//! [`Diagnostic`]: one problem found in a pack, with the file and line it is
//! in, so that a check can report every problem at once.

use std::fmt;

use serde::Serialize;

/// How bad a problem is: errors fail `atlas-builder check`, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// One problem in one file. Displays as `file:line:column: severity: message`
/// (line and column when known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Path relative to the pack directory, `/`-separated.
    pub file: String,
    /// 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based, in characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.into(),
            line,
            column: None,
            message: message.into(),
        }
    }

    pub fn warning(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, line, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}: {}", self.severity, self.message)
    }
}

/// True when any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let mut d = Diagnostic::error("pack.toml", Some(3), "bad");
        assert_eq!(d.to_string(), "pack.toml:3: error: bad");
        d.column = Some(7);
        assert_eq!(d.to_string(), "pack.toml:3:7: error: bad");
        assert_eq!(
            Diagnostic::warning("index.toml", None, "hm").to_string(),
            "index.toml: warning: hm"
        );
    }
}
