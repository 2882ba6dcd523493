//! Paths left out of backups: relative paths (a directory covers everything below it) and globs
//! (`*`, `?` within a component, `**` across components).

use std::path::{Component, Path};

use super::error::BackupError;

/// A set of exclusion patterns, matched against `/`-separated paths relative to the server directory.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<Vec<String>>,
}

impl Excludes {
    /// Normalises `patterns` (`./a/b/` is `a/b`); refuses absolute paths and `..`.
    pub fn new(patterns: &[String]) -> Result<Self, BackupError> {
        let mut out = Vec::new();
        for p in patterns {
            let trimmed = p.trim();
            let mut parts = Vec::new();
            for c in Path::new(trimmed).components() {
                match c {
                    Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                    Component::CurDir => {}
                    _ => {
                        return Err(BackupError::Config(format!(
                            "exclude pattern `{p}` must be a path relative to the server directory, \
                             without `..`"
                        )));
                    }
                }
            }
            if !parts.is_empty() {
                out.push(parts);
            }
        }
        Ok(Self { patterns: out })
    }

    /// Whether `rel` itself matches a pattern (its ancestors are not checked).
    pub fn matches(&self, rel: &Path) -> bool {
        let parts: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        self.patterns.iter().any(|p| match_parts(p, &parts))
    }

    /// Whether `rel` or one of its ancestors matches a pattern.
    pub fn covers(&self, rel: &Path) -> bool {
        rel.ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .any(|a| self.matches(a))
    }
}

fn match_parts(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, path.get(skip..).unwrap_or_default()))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, prest)) => glob(first.as_bytes(), p.as_bytes()) && match_parts(rest, prest),
            None => false,
        },
    }
}

/// `*` and `?` within one component.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, name.get(i..).unwrap_or_default())),
        Some((b'?', rest)) => name.split_first().is_some_and(|(_, n)| glob(rest, n)),
        Some((c, rest)) => name
            .split_first()
            .is_some_and(|(n, nrest)| n == c && glob(rest, nrest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("patterns")
    }

    #[test]
    fn paths_and_globs() {
        let e = ex(&["./logs/", ".atlas/cache", "world/*.old", "**/*.tmp", "a?c"]);
        assert!(e.covers(Path::new("logs/latest.log")));
        assert!(e.matches(Path::new("logs")));
        assert!(!e.covers(Path::new("logsx")));
        assert!(e.covers(Path::new(".atlas/cache/blobs/x")));
        assert!(!e.covers(Path::new(".atlas/install.json")));
        assert!(e.matches(Path::new("world/region.old")));
        assert!(!e.matches(Path::new("world/sub/region.old")));
        assert!(e.matches(Path::new("x.tmp")));
        assert!(e.matches(Path::new("deep/er/x.tmp")));
        assert!(e.matches(Path::new("abc")));
        assert!(!e.matches(Path::new("abbc")));
        assert!(Excludes::new(&["../x".to_owned()]).is_err());
        assert!(Excludes::new(&["/etc".to_owned()]).is_err());
    }
}
