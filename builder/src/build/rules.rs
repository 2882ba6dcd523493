//! The `[[files]]` rules of a native `pack.toml`, matched in one pass: every
//! include glob of every entry sits in one `GlobSet`, every exclude glob in
//! another, so a path costs one lookup in each whatever the number of rules
//! (a literal glob is a hash lookup, `dir/**` a prefix). An entry applies to
//! a path when one of its includes matches and none of its excludes does;
//! the last entry that applies decides (the README's rule), and an include
//! glob that never selects a file is an error.

use globset::{Candidate, Glob, GlobBuilder, GlobSet};

use crate::pack::FilesEntry;
use crate::plan::PlanError;

/// The rules of one pack, compiled, and which include globs selected a file.
#[derive(Debug)]
pub struct FileRules<'a> {
    entries: &'a [FilesEntry],
    includes: Sets,
    /// Include glob (in entry order, then pattern order) → (entry, pattern).
    include_owner: Vec<(usize, usize)>,
    excludes: Sets,
    /// Exclude glob → (entry, pattern).
    exclude_owner: Vec<(usize, usize)>,
    /// Include globs that selected a file so far.
    used: Vec<bool>,
    hits: Vec<usize>,
    excluded: Vec<usize>,
    scratch: Vec<usize>,
}

impl<'a> FileRules<'a> {
    /// Compiles the rules of `entries` (from `file`, for messages). The
    /// first invalid glob, in entry order (includes, then excludes), is the
    /// error.
    pub fn compile(entries: &'a [FilesEntry], file: &str) -> Result<Self, PlanError> {
        let mut includes = Vec::new();
        let mut include_owner = Vec::new();
        let mut excludes = Vec::new();
        let mut exclude_owner = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            for (j, pattern) in entry.include.iter().enumerate() {
                includes.push(glob(file, i, pattern)?);
                include_owner.push((i, j));
            }
            for (j, pattern) in entry.exclude.iter().enumerate() {
                excludes.push(glob(file, i, pattern)?);
                exclude_owner.push((i, j));
            }
        }
        let includes = Sets::build(&includes)
            .map_err(|e| set_error(file, entries, &include_owner, e, |f| &f.include))?;
        let excludes = Sets::build(&excludes)
            .map_err(|e| set_error(file, entries, &exclude_owner, e, |f| &f.exclude))?;
        let used = vec![false; include_owner.len()];
        Ok(Self {
            entries,
            includes,
            include_owner,
            excludes,
            exclude_owner,
            used,
            hits: Vec::new(),
            excluded: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The entry that decides for `path` (the last one that applies), if
    /// any; every include glob of an applying entry that matches `path`
    /// counts as used.
    pub fn select(&mut self, path: &str) -> Option<&'a FilesEntry> {
        let candidate = Candidate::new(path);
        self.includes
            .matches(&candidate, &mut self.hits, &mut self.scratch);
        if self.hits.is_empty() {
            return None;
        }
        self.excludes
            .matches(&candidate, &mut self.excluded, &mut self.scratch);
        // Exclude globs are numbered in entry order: their entries come sorted.
        for k in self.excluded.iter_mut() {
            *k = self.exclude_owner[*k].0;
        }
        let mut chosen = None;
        // Include globs are numbered in entry order: the last applying entry wins.
        for &k in &self.hits {
            let (entry, _) = self.include_owner[k];
            if self.excluded.binary_search(&entry).is_err() {
                self.used[k] = true;
                chosen = Some(entry);
            }
        }
        chosen.map(|i| &self.entries[i])
    }

    /// The first include glob (in entry order) that has selected no file:
    /// `(entry, pattern)`.
    pub fn unused(&self) -> Option<(usize, &'a str)> {
        let k = self.used.iter().position(|u| !u)?;
        let (i, j) = self.include_owner[k];
        Some((i, self.entries[i].include[j].as_str()))
    }
}

/// A glob that builds no set on its own (globset's caps), as a plan error.
fn set_error(
    file: &str,
    entries: &[FilesEntry],
    owner: &[(usize, usize)],
    (k, e): (usize, globset::Error),
    patterns: fn(&FilesEntry) -> &Vec<String>,
) -> PlanError {
    let (i, j) = owner[k];
    PlanError::Glob {
        file: file.to_owned(),
        entry: i,
        pattern: patterns(&entries[i])[j].clone(),
        message: e.to_string(),
    }
}

/// A glob of `file`'s `files[entry]`: `*` stays within a directory, `**`
/// crosses them, `\` escapes.
fn glob(file: &str, entry: usize, pattern: &str) -> Result<Glob, PlanError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| PlanError::Glob {
            file: file.to_owned(),
            entry,
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })
}

/// Consecutive globs in as few `GlobSet`s as build: one, unless globset's
/// cap on the size of a set's combined regex (10 MiB of NFA) is reached
/// by many complex globs, then halves, recursively, down to single globs.
/// Each set is `(number of its first glob, set)`.
#[derive(Debug)]
struct Sets(Vec<(usize, GlobSet)>);

impl Sets {
    /// The sets, or the number of a glob that builds no set on its own
    /// with globset's error.
    fn build(globs: &[Glob]) -> Result<Self, (usize, globset::Error)> {
        let mut sets = Vec::new();
        Self::build_into(globs, 0, &mut sets)?;
        Ok(Self(sets))
    }

    fn build_into(
        globs: &[Glob],
        first: usize,
        out: &mut Vec<(usize, GlobSet)>,
    ) -> Result<(), (usize, globset::Error)> {
        if globs.is_empty() {
            return Ok(());
        }
        match GlobSet::new(globs) {
            Ok(set) => {
                out.push((first, set));
                Ok(())
            }
            Err(e) if globs.len() == 1 => Err((first, e)),
            Err(_) => {
                let mid = globs.len() / 2;
                Self::build_into(&globs[..mid], first, out)?;
                Self::build_into(&globs[mid..], first + mid, out)
            }
        }
    }

    /// The numbers of the globs that match, ascending, into `into`.
    fn matches(&self, candidate: &Candidate<'_>, into: &mut Vec<usize>, scratch: &mut Vec<usize>) {
        into.clear();
        for (first, set) in &self.0 {
            set.matches_candidate_into(candidate, scratch);
            into.extend(scratch.iter().map(|k| first + k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::SideName;

    fn entry(include: &[&str], exclude: &[&str], side: SideName) -> FilesEntry {
        FilesEntry {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            side,
            optional: false,
            default: true,
            preserve: false,
            description: None,
        }
    }

    #[test]
    fn the_sets_split_when_globsets_cap_is_reached_and_number_globs_as_one() {
        // Complex globs: together they exceed globset's 10 MiB NFA cap.
        let globs: Vec<Glob> = (0..6000)
            .map(|i| {
                GlobBuilder::new(&format!(
                    "**/{{a,b,c,d,e,f}}*[0-9]{i}*/**/*[a-z][a-z].{{json,toml,txt,cfg}}"
                ))
                .literal_separator(true)
                .build()
                .expect("valid glob")
            })
            .collect();
        assert!(GlobSet::new(&globs).is_err(), "one set is over globset's cap");
        let sets = Sets::build(&globs).expect("builds in parts");
        assert!(sets.0.len() > 1);
        let mut hits = Vec::new();
        let mut scratch = Vec::new();
        let matchers: Vec<_> = globs.iter().map(Glob::compile_matcher).collect();
        for path in ["x/a7_53999z/y/cc.json", "b0/cd.toml", "f12/d/ee.txt", "a/b"] {
            sets.matches(&Candidate::new(path), &mut hits, &mut scratch);
            let want: Vec<usize> = (0..globs.len()).filter(|k| matchers[*k].is_match(path)).collect();
            assert_eq!(hits, want, "{path}");
        }
        assert!(hits.is_empty(), "`a/b` matches none");
    }

    #[test]
    fn an_unused_include_is_reported_in_entry_order() {
        let entries = vec![
            entry(&["a/**", "nothing/**"], &[], SideName::Both),
            entry(&["b"], &["b"], SideName::Both),
        ];
        let mut rules = FileRules::compile(&entries, "pack.toml").expect("compiles");
        assert!(rules.select("a/x").is_some());
        // `b` matches only where its own entry excludes it: not used.
        assert!(rules.select("b").is_none());
        assert_eq!(rules.unused(), Some((0, "nothing/**")));
    }
}
