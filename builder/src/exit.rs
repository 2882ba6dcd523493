//! Exit classes: what kind of failure an error is, and so the exit code of
//! `atlas-builder` (the README's table). Every error type of the library
//! says its own class through [`HasExitClass`], next to its definition; the
//! command line turns only such errors into its own error type, so an error
//! type without a class does not compile there, and a test here fails when a
//! `thiserror` type of the crate has no class.

/// The exit codes of `atlas-builder`, by class of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitClass {
    /// 0: success.
    Ok,
    /// 1: an unexpected error.
    Error,
    /// 2: a bad command line (clap's own code).
    Usage,
    /// 3: the pack is invalid (pack.toml, files, paths, mods) or the repository unreadable.
    Pack,
    /// 4: the store could not be read or written.
    Store,
    /// 4 as well: an upstream host (Modrinth, CurseForge, a mod's URL)
    /// could not be reached after the retries, or kept failing (5xx, 429).
    Network,
    /// 5: another publish or promote changed the channel meanwhile; run again.
    Conflict,
    /// 6: no usable signing key.
    Key,
}

impl ExitClass {
    /// Every class, in code order.
    pub const ALL: [ExitClass; 8] = [
        Self::Ok,
        Self::Error,
        Self::Usage,
        Self::Pack,
        Self::Store,
        Self::Network,
        Self::Conflict,
        Self::Key,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Error => 1,
            Self::Usage => 2,
            Self::Pack => 3,
            Self::Store | Self::Network => 4,
            Self::Conflict => 5,
            Self::Key => 6,
        }
    }

    /// The class's name in the `--json` error object (`"kind"`).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "internal",
            Self::Usage => "usage",
            Self::Pack => "pack",
            Self::Store => "store",
            Self::Network => "network",
            Self::Conflict => "conflict",
            Self::Key => "key",
        }
    }
}

/// An error's message followed by each of its causes, `outer: cause: cause`.
/// Each error type says its cause either in its own message or as its
/// `source()`, never both, so every cause appears once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// An error that knows its exit class.
pub trait HasExitClass: std::error::Error {
    fn exit_class(&self) -> ExitClass;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_readme_table() {
        let codes: Vec<u8> = ExitClass::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 4, 5, 6]);
    }

    /// Every `thiserror` type of the crate implements [`HasExitClass`]: a
    /// new error type without a class fails here even before the command
    /// line uses it.
    #[test]
    fn every_error_type_of_the_crate_has_an_exit_class() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut dirs = vec![src];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).expect("read src") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let all: String = files
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("read"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut types = Vec::new();
        for (i, line) in all.lines().enumerate() {
            let line = line.trim_start();
            if !(line.starts_with("#[derive(") && line.contains("thiserror::Error")) {
                continue;
            }
            // The type is named on the first `pub struct`/`pub enum` line after the derive.
            let name = all
                .lines()
                .skip(i + 1)
                .find_map(|l| {
                    let l = l.trim_start();
                    let rest = l
                        .strip_prefix("pub struct ")
                        .or_else(|| l.strip_prefix("pub enum "))
                        .or_else(|| l.strip_prefix("pub(crate) enum "))
                        .or_else(|| l.strip_prefix("pub(crate) struct "))
                        .or_else(|| l.strip_prefix("enum "))
                        .or_else(|| l.strip_prefix("struct "))?;
                    Some(
                        rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .expect("a type after the derive");
            types.push(name);
        }
        assert!(types.len() > 10, "found only {types:?}");
        // `impl HasExitClass for path::to::Type {` (any path, anywhere in the crate).
        let classified: Vec<&str> = all
            .lines()
            .filter_map(|l| l.split("HasExitClass for ").nth(1))
            .filter_map(|t| t.split_whitespace().next())
            .filter_map(|t| t.rsplit("::").next())
            .collect();
        let missing: Vec<&String> = types
            .iter()
            .filter(|t| !classified.contains(&t.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "error types without an exit class (add `impl HasExitClass for T`): {missing:?}"
        );
    }

    /// No `thiserror` message of the crate both prints its cause and
    /// exposes it as its source: the command line prints the chain, so the
    /// cause would appear twice (issue 20 item 3).
    #[test]
    fn no_error_message_repeats_its_source() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![src];
        let mut doubled = Vec::new();
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).expect("read src") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    dirs.push(p);
                    continue;
                }
                if p.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).expect("read");
                let lines: Vec<&str> = text.lines().collect();
                for (i, line) in lines.iter().enumerate() {
                    let line = line.trim_start();
                    if !line.starts_with("#[error(") || line.contains("transparent") {
                        continue;
                    }
                    // `{source}` is always a source (thiserror treats a field of that name as one).
                    let positional = line.contains("{0}")
                        && lines
                            .iter()
                            .skip(i + 1)
                            .take(2)
                            .any(|l| l.contains("#[from]") || l.contains("#[source]"));
                    if line.contains("{source") || positional {
                        doubled.push(format!("{}:{}", p.display(), i + 1));
                    }
                }
            }
        }
        assert!(
            doubled.is_empty(),
            "messages that print their source, which the chain prints again: {doubled:?}"
        );
    }
}
