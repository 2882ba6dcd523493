//! packwiz packs (`pack.toml` + `index.toml` + `*.pw.toml`), read exactly as
//! packwiz defines them: every index hash is verified against the pack's
//! files, `pack.toml`'s `[index] hash` against `index.toml`, and every
//! problem is collected as a [`Diagnostic`] with its file and line, so a
//! check reports them all at once.
//!
//! Entry point: [`PackwizPack::load`] over any [`PackFiles`] (a git commit
//! through [`crate::repo::PackSource`], or a directory through [`DirFiles`]).

pub mod diagnostic;
pub mod files;
pub mod index;
pub mod metafile;
pub mod pack;
pub(crate) mod toml_doc;

use std::collections::{BTreeMap, BTreeSet};

pub use atlas_proto::upstream::{HashFormat, HashMismatch, UpstreamHash, UpstreamHasher};
pub use diagnostic::{Diagnostic, Severity, has_errors};
pub use files::{DirFiles, PackFiles};
pub use index::{EntryStatus, IndexEntry};
pub use metafile::{
    CurseForgeUpdate, Download, DownloadMode, MetaSide, Metafile, ModrinthUpdate, OptionalFile, Updates,
};
pub use pack::{LoaderVersion, PackToml, PackwizLoader, is_packwiz_pack_toml};

/// File name of the pack definition, at the pack directory's root.
pub const PACK_FILE: &str = "pack.toml";

/// The pack could not be read far enough to check its files.
#[derive(Debug, thiserror::Error)]
pub enum PackwizError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// `pack.toml` or the index is missing or unreadable; holds every
    /// problem found so far (the last one is fatal).
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
}

fn join_lines(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A packwiz pack, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PackwizPack {
    /// `pack.toml`: identity, versions, options.
    pub pack: PackToml,
    /// Every `[[files]]` entry of the index, in order, with its verification status.
    pub entries: Vec<IndexEntry>,
    /// Every readable metafile, in index order.
    pub metafiles: Vec<Metafile>,
}

impl PackwizPack {
    /// Reads `pack.toml`, the index and every metafile from `files`, and
    /// verifies every hash the pack states about its own files.
    ///
    /// `Ok` carries every problem found (errors included); `Err` only when
    /// `pack.toml` or the index cannot be read at all.
    pub fn load(files: &impl PackFiles) -> Result<(Self, Vec<Diagnostic>), PackwizError> {
        let mut diags = Vec::new();
        let read = |path: &str| {
            files.read(path).map_err(|error| PackwizError::Read {
                path: path.to_owned(),
                error,
            })
        };
        let fatal = |mut diags: Vec<Diagnostic>, d: Diagnostic| {
            diags.push(d);
            PackwizError::Invalid(diags)
        };

        let Some(pack_bytes) = read(PACK_FILE)? else {
            return Err(fatal(
                diags,
                Diagnostic::error(PACK_FILE, None, "no pack.toml at the pack's root"),
            ));
        };
        let pack_text = match toml_doc::text(PACK_FILE, &pack_bytes) {
            Ok(t) => t,
            Err(d) => return Err(fatal(diags, d)),
        };
        let pack = match pack::parse(PACK_FILE, pack_text, &mut diags) {
            Ok(p) => p,
            Err(d) => return Err(fatal(diags, d)),
        };

        let index_path = match files::join("", &pack.index_file) {
            Ok(p) => p,
            Err(why) => {
                let d = Diagnostic::error(
                    PACK_FILE,
                    pack.index_hash_line,
                    format!("[index] file `{}` {why}", pack.index_file),
                );
                return Err(fatal(diags, d));
            }
        };
        let Some(index_bytes) = read(&index_path)? else {
            let d = Diagnostic::error(
                PACK_FILE,
                pack.index_hash_line,
                format!("the index `{index_path}` named by [index] is not in the pack"),
            );
            return Err(fatal(diags, d));
        };
        if let Some(expected) = &pack.index_hash {
            let actual = UpstreamHash::of(expected.format, &index_bytes);
            if actual != *expected {
                diags.push(Diagnostic::error(
                    PACK_FILE,
                    pack.index_hash_line,
                    format!(
                        "[index] hash does not match {index_path}: expected {expected}, actual {actual} ({}); \
                         run `packwiz refresh`",
                        expected.format
                    ),
                ));
            }
        }
        let index_text = match toml_doc::text(&index_path, &index_bytes) {
            Ok(t) => t,
            Err(d) => return Err(fatal(diags, d)),
        };
        let mut entries = match index::parse(&index_path, index_text, &mut diags) {
            Ok(e) => e,
            Err(d) => return Err(fatal(diags, d)),
        };

        let mut metafiles = Vec::new();
        for entry in &mut entries {
            let bytes = match read(&entry.path) {
                Ok(b) => b,
                Err(e) => {
                    diags.push(Diagnostic::error(&index_path, Some(entry.line), e.to_string()));
                    continue;
                }
            };
            let Some(bytes) = bytes else {
                entry.status = EntryStatus::Missing;
                diags.push(Diagnostic::error(
                    &index_path,
                    Some(entry.line),
                    format!("`{}` is listed but missing from the pack", entry.path),
                ));
                continue;
            };
            if let Some(expected) = &entry.hash {
                let actual = UpstreamHash::of(expected.format, &bytes);
                if actual == *expected {
                    entry.status = EntryStatus::Verified;
                } else {
                    entry.status = EntryStatus::Mismatch;
                    diags.push(Diagnostic::error(
                        &index_path,
                        Some(entry.line),
                        format!(
                            "`{}` does not match its hash: expected {expected}, actual {actual} ({}); \
                             run `packwiz refresh`",
                            entry.path, expected.format
                        ),
                    ));
                }
            }
            if entry.metafile {
                match toml_doc::text(&entry.path, &bytes) {
                    Err(d) => diags.push(d),
                    Ok(text) => metafiles.extend(metafile::parse(&entry.path, text, &mut diags)),
                }
            }
        }
        check_collisions(&index_path, &entries, &metafiles, &mut diags);
        unindexed_metafiles(files, &index_path, &entries, &mut diags);
        Ok((
            Self {
                pack,
                entries,
                metafiles,
            },
            diags,
        ))
    }

    /// Index entries that are not metafiles (installed from the pack itself).
    pub fn plain_entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries.iter().filter(|e| !e.metafile)
    }
}

/// Two files installed at the same path.
fn check_collisions(
    index_path: &str,
    entries: &[IndexEntry],
    metafiles: &[Metafile],
    diags: &mut Vec<Diagnostic>,
) {
    let mut targets: BTreeMap<&str, String> = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.metafile) {
        let target = e.alias.as_deref().unwrap_or(&e.path);
        targets.insert(target, format!("{index_path} line {}", e.line));
    }
    for m in metafiles {
        if let Some(first) = targets.insert(&m.install_path, m.path.clone()) {
            diags.push(Diagnostic::error(
                &m.path,
                None,
                format!("installs `{}`, which {first} also installs", m.install_path),
            ));
        }
    }
}

/// `.pw.toml` files present in the pack but absent from the index (packwiz
/// ignores them until `packwiz refresh`).
fn unindexed_metafiles(
    files: &impl PackFiles,
    index_path: &str,
    entries: &[IndexEntry],
    diags: &mut Vec<Diagnostic>,
) {
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let root = files::parent(index_path);
    for path in files.list() {
        let under_root = root.is_empty() || path.starts_with(&format!("{root}/"));
        if under_root && path.ends_with(".pw.toml") && !listed.contains(path.as_str()) {
            diags.push(Diagnostic::warning(
                &path,
                None,
                format!("is not listed in {index_path}, so packwiz ignores it; run `packwiz refresh`"),
            ));
        }
    }
}
