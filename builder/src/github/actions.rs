//! The GitHub Actions environment: where step outputs and the job summary
//! go (`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`), links to commits and
//! store objects, and workflow commands (annotations). Only
//! [`Github::write_outputs`] and [`Github::write_summary`] touch files.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::check::CheckReport;
use crate::packwiz::Diagnostic;

/// A GitHub file could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "writing the GitHub {what} file `{path}` (from ${var}): {error}; check that the variable names a writable file, or run without --github"
)]
pub struct GithubError {
    what: &'static str,
    var: &'static str,
    path: PathBuf,
    error: std::io::Error,
}

impl crate::exit::HasExitClass for GithubError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Error
    }
}

/// Where GitHub wants step outputs and the summary, and how to link things.
#[derive(Debug, Clone, Default)]
pub struct Github {
    /// `$GITHUB_OUTPUT`.
    pub output: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`.
    pub summary: Option<PathBuf>,
    /// `$GITHUB_WORKSPACE`: annotation paths are made relative to it.
    pub workspace: Option<PathBuf>,
    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY`, for commit links.
    pub repository_url: Option<String>,
    /// Public base URL of the store (a CDN), for pointer and manifest links.
    pub public_url: Option<String>,
}

impl Github {
    /// `Some` when `flag` is set or `GITHUB_ACTIONS=true`, with the paths GitHub gives.
    pub fn detect(flag: bool, public_url: Option<String>) -> Option<Self> {
        let on = flag || std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        if !on {
            return None;
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let repository_url = match (var("GITHUB_SERVER_URL"), var("GITHUB_REPOSITORY")) {
            (Some(server), Some(repo)) => Some(format!("{}/{repo}", server.trim_end_matches('/'))),
            _ => None,
        };
        Some(Self {
            output: var("GITHUB_OUTPUT").map(PathBuf::from),
            summary: var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            workspace: var("GITHUB_WORKSPACE").map(PathBuf::from),
            repository_url,
            public_url: public_url.filter(|u| !u.is_empty()),
        })
    }

    /// Appends `outputs` to `$GITHUB_OUTPUT` (nothing when unset).
    pub fn write_outputs(&self, outputs: &[(&str, String)]) -> Result<(), GithubError> {
        append(
            self.output.as_deref(),
            "output",
            "GITHUB_OUTPUT",
            &output_lines(outputs),
        )
    }

    /// Appends markdown to `$GITHUB_STEP_SUMMARY` (nothing when unset).
    pub fn write_summary(&self, markdown: &str) -> Result<(), GithubError> {
        // A blank line keeps the summaries of several commands apart.
        let text = format!("{}\n\n", markdown.trim_end());
        append(
            self.summary.as_deref(),
            "step summary",
            "GITHUB_STEP_SUMMARY",
            &text,
        )
    }

    /// A link to `key` in the store: under `public_url` when given, else the store's own URL.
    pub fn object_url(&self, store: &str, key: &str) -> String {
        match &self.public_url {
            Some(base) => format!("{}/{key}", base.trim_end_matches('/')),
            None if store.contains("://") => format!("{}/{key}", store.trim_end_matches('/')),
            None => format!("file://{}/{key}", store.trim_end_matches('/')),
        }
    }

    /// A diagnostic's file (relative to `base`) relative to the workspace,
    /// as annotations need it.
    pub(crate) fn annotation_path(&self, base: &Path, file: &str) -> String {
        let joined = base.join(file);
        let rel = match &self.workspace {
            Some(ws) => {
                let ws = std::fs::canonicalize(ws).unwrap_or_else(|_| ws.clone());
                match joined.strip_prefix(&ws) {
                    Ok(rel) => rel.to_path_buf(),
                    Err(_) => joined
                        .strip_prefix(self.workspace.as_deref().unwrap_or(&ws))
                        .unwrap_or(&joined)
                        .to_path_buf(),
                }
            }
            None => joined,
        };
        let s = rel.to_string_lossy().replace('\\', "/");
        let mut s = s.as_str();
        while let Some(rest) = s.strip_prefix("./") {
            s = rest;
        }
        s.to_owned()
    }

    /// Workflow commands for every diagnostic of a check; `base` is the
    /// directory the diagnostics' files are relative to.
    pub fn annotations(&self, report: &CheckReport, base: &Path) -> Vec<String> {
        report
            .diagnostics
            .iter()
            .map(|d| annotation(d, &self.annotation_path(base, &d.file)))
            .collect()
    }

    pub(crate) fn commit_link(&self, commit: &str) -> String {
        let short: String = commit.chars().take(12).collect();
        match &self.repository_url {
            Some(repo) if !commit.is_empty() => format!("[`{short}`]({repo}/commit/{commit})"),
            _ if commit.is_empty() => "(working tree)".to_owned(),
            _ => format!("`{short}`"),
        }
    }
}

fn append(path: Option<&Path>, what: &'static str, var: &'static str, text: &str) -> Result<(), GithubError> {
    let Some(path) = path else {
        return Ok(());
    };
    let err = |error| GithubError {
        what,
        var,
        path: path.to_owned(),
        error,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// Writes step outputs and the job summary.
impl Github {
    pub fn emit(&self, outputs: &[(&str, String)], summary: &str) -> Result<(), GithubError> {
        self.write_outputs(outputs)?;
        self.write_summary(summary)
    }
}

/// The directory `check`'s diagnostics are relative to: `dir` itself, or for
/// a pack read from git, the repository's root (`pack_dir` less the pack's
/// `subdirectory` inside the repository).
pub fn diagnostics_base(pack_dir: &Path, subdirectory: Option<&str>) -> PathBuf {
    let mut base = std::fs::canonicalize(pack_dir).unwrap_or_else(|_| pack_dir.to_owned());
    for _ in subdirectory.unwrap_or("").split('/').filter(|c| !c.is_empty()) {
        base.pop();
    }
    base
}

/// Escapes a workflow command's message (`%`, `\r`, `\n`).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command's property value (also `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::error file=F,line=L,col=C,title=T::message` for one diagnostic.
pub fn annotation(d: &Diagnostic, file: &str) -> String {
    let level = if d.is_error() { "error" } else { "warning" };
    let mut props = vec![format!("file={}", escape_property(file))];
    if let Some(line) = d.line {
        props.push(format!("line={line}"));
        if let Some(col) = d.column {
            props.push(format!("col={col}"));
        }
    }
    props.push(format!("title={}", escape_property(&format!("atlas {level}"))));
    format!("::{level} {}::{}", props.join(","), escape_data(&d.message))
}

/// `$GITHUB_OUTPUT` lines: `name=value`, or `name<<DELIM` blocks for values
/// with line breaks (the delimiter never occurs in the value).
pub fn output_lines(outputs: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (name, value) in outputs {
        if value.contains('\n') || value.contains('\r') {
            let mut n = 0u32;
            let delim = loop {
                let d = format!("ATLAS_EOF_{n}");
                if !value.contains(&d) {
                    break d;
                }
                n += 1;
            };
            let _ = write!(s, "{name}<<{delim}\n{value}\n{delim}\n");
        } else {
            let _ = writeln!(s, "{name}={value}");
        }
    }
    s
}
