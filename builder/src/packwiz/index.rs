//! packwiz's `index.toml`: the list of every file in the pack with its hash,
//! and which entries are metafiles (`*.pw.toml`), as core/index.go reads it:
//! a missing top-level `hash-format` is `sha256` (`LoadIndex`), and an entry
//! without `hash` (written by `packwiz refresh` in `no-internal-hashes`
//! mode) is installed unverified, as packwiz-installer installs it, with a
//! warning.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::diagnostic::{Diagnostic, Severity};
use super::files;
use super::toml_doc::{self, Keys};
use atlas_proto::upstream::{HashFormat, UpstreamHash};

/// What verifying an entry against the pack's files found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryStatus {
    /// Present and its hash matches.
    Verified,
    /// Present, but its hash does not match.
    Mismatch,
    /// Listed, but the pack has no such file.
    Missing,
    /// Present, but it has no hash (no-internal-hashes mode) or its hash
    /// could not be read, so it was not verified.
    Unchecked,
}

/// One `[[files]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    /// Path relative to the pack directory (the index's `file` resolved
    /// against the index file's directory); literal, never URL-decoded.
    pub path: String,
    /// Line of the entry in the index file.
    pub line: usize,
    /// The expected hash; `None` when the entry has none (no-internal-hashes)
    /// or it is unreadable (reported).
    #[serde(serialize_with = "ser_hash")]
    pub hash: Option<UpstreamHash>,
    /// Installed under this path instead (relative to the pack directory).
    pub alias: Option<String>,
    /// The entry is a metafile (`*.pw.toml`) describing a downloaded file.
    pub metafile: bool,
    /// Written once, then left to the user.
    pub preserve: bool,
    pub status: EntryStatus,
}

fn ser_hash<S: serde::Serializer>(h: &Option<UpstreamHash>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => s.serialize_str(&format!("{}:{h}", h.format)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(rename = "hash-format")]
    hash_format: Option<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    file: Option<String>,
    hash: Option<String>,
    #[serde(rename = "hash-format")]
    hash_format: Option<String>,
    alias: Option<String>,
    #[serde(default)]
    metafile: bool,
    #[serde(default)]
    preserve: bool,
}

const ENTRY_KEYS: Keys = Keys::Only(&[
    ("file", Keys::Any),
    ("hash", Keys::Any),
    ("hash-format", Keys::Any),
    ("alias", Keys::Any),
    ("metafile", Keys::Any),
    ("preserve", Keys::Any),
]);

const KEYS: Keys = Keys::Only(&[("hash-format", Keys::Any), ("files", ENTRY_KEYS)]);

/// Parses an index file at pack path `file`. Entries start as
/// [`EntryStatus::Unchecked`]; verifying them needs the pack's files.
pub fn parse(file: &str, text: &str, diags: &mut Vec<Diagnostic>) -> Result<Vec<IndexEntry>, Diagnostic> {
    let doc = toml_doc::parse(file, text)?;
    toml_doc::unknown_keys(file, text, doc.get_ref(), KEYS, Severity::Warning, diags);
    let raw: Raw = toml_doc::typed(file, text, doc)?;
    let lines = toml_doc::Lines::new(text);
    let line = |span: std::ops::Range<usize>| lines.line_of(span.start);
    // packwiz core/index.go `LoadIndex`: an empty or absent `hash-format` is sha256.
    let default_format = match &raw.hash_format {
        None => Some(HashFormat::Sha256),
        Some(f) if f.get_ref().is_empty() => Some(HashFormat::Sha256),
        Some(f) => match f.get_ref().parse::<HashFormat>() {
            Ok(f) => Some(f),
            Err(e) => {
                diags.push(Diagnostic::error(file, Some(line(f.span())), e.to_string()));
                None
            }
        },
    };
    let mut unhashed = Vec::new();
    let dir = files::parent(file);
    let mut entries = Vec::with_capacity(raw.files.len());
    let mut seen = std::collections::BTreeMap::new();
    for spanned in raw.files {
        let entry_line = line(spanned.span());
        let e = spanned.into_inner();
        let err = |m: String| Diagnostic::error(file, Some(entry_line), m);
        let Some(rel) = e.file.filter(|f| !f.is_empty()) else {
            diags.push(err("[[files]] entry has no `file`".into()));
            continue;
        };
        let path = match files::join(dir, &rel) {
            Ok(p) => p,
            Err(why) => {
                diags.push(err(format!("`{rel}` {why}")));
                continue;
            }
        };
        if let Some(first) = seen.insert(path.clone(), entry_line) {
            diags.push(Diagnostic::warning(
                file,
                Some(entry_line),
                format!("`{rel}` is listed again (first at line {first}); the last entry wins"),
            ));
        }
        let hash = match (
            e.hash_format
                .as_deref()
                .filter(|f| !f.is_empty())
                .map(str::parse::<HashFormat>),
            default_format,
            e.hash.filter(|h| !h.is_empty()),
        ) {
            (_, _, None) => {
                unhashed.push(entry_line);
                None
            }
            (Some(Err(er)), _, Some(_)) => {
                diags.push(err(format!("`{rel}`: {er}")));
                None
            }
            (None, None, Some(_)) => {
                diags.push(err(format!(
                    "`{rel}` has no `hash-format`, and the index's default `hash-format` is unreadable"
                )));
                None
            }
            (Some(Ok(format)), _, Some(h)) | (None, Some(format), Some(h)) => {
                match UpstreamHash::parse(format, &h) {
                    Ok(h) => Some(h),
                    Err(er) => {
                        diags.push(err(format!("`{rel}`: {er}")));
                        None
                    }
                }
            }
        };
        let alias = match e.alias.filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => match files::join(dir, &a) {
                Ok(p) => Some(p),
                Err(why) => {
                    diags.push(err(format!("alias `{a}` {why}")));
                    None
                }
            },
        };
        if !e.metafile && path.ends_with(".pw.toml") {
            diags.push(Diagnostic::warning(
                file,
                Some(entry_line),
                format!("`{rel}` looks like a metafile but lacks `metafile = true`; it is installed as a plain file"),
            ));
        }
        entries.push(IndexEntry {
            path,
            line: entry_line,
            hash,
            alias,
            metafile: e.metafile,
            preserve: e.preserve,
            status: EntryStatus::Unchecked,
        });
    }
    // One warning for the whole index: a no-internal-hashes pack has
    // thousands of such entries.
    if let Some(first) = unhashed.first() {
        diags.push(Diagnostic::warning(
            file,
            Some(*first),
            format!(
                "{} entr{} without `hash` (packwiz's no-internal-hashes mode): installed unverified, \
                 as packwiz-installer installs them; run `packwiz refresh` without that option to hash them",
                unhashed.len(),
                if unhashed.len() == 1 { "y" } else { "ies" }
            ),
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_internal_hashes_and_no_hash_format_are_read_as_packwiz_reads_them() {
        // As `packwiz refresh` writes with `no-internal-hashes = true` (no
        // `hash`), and an index without a top-level `hash-format`.
        let text = "[[files]]\nfile = \"config/a.json\"\n\n[[files]]\nfile = \"mods/b.pw.toml\"\n\
                    metafile = true\n\n[[files]]\nfile = \"c.txt\"\n\
                    hash = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n";
        let mut diags = Vec::new();
        let entries = parse("index.toml", text, &mut diags).expect("parses");
        assert_eq!(entries.len(), 3);
        assert_eq!((entries[0].hash.as_ref(), entries[1].hash.as_ref()), (None, None));
        assert_eq!(
            entries[2].hash.as_ref().map(|h| h.format),
            Some(HashFormat::Sha256)
        );
        let msgs: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(
            msgs[0].starts_with("index.toml:1: warning: 2 entries without `hash`"),
            "{msgs:?}"
        );
    }

    #[test]
    fn parses_entries_relative_to_the_index() {
        let text = "hash-format = \"sha1\"\r\n\r\n[[files]]\r\nfile = \"config/a b.json\"\r\n\
                    hash = \"da39a3ee5e6b4b0d3255bfef95601890afd80709\"\r\n\r\n[[files]]\r\n\
                    file = \"mods/x.pw.toml\"\r\nhash-format = \"murmur2\"\r\nhash = \"1540447798\"\r\n\
                    metafile = true\r\npreserve = true\r\n";
        let mut diags = Vec::new();
        let entries = parse("sub/index.toml", text, &mut diags).expect("parses");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "sub/config/a b.json");
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[1].path, "sub/mods/x.pw.toml");
        assert_eq!(entries[1].line, 7);
        assert!(entries[1].metafile && entries[1].preserve);
        assert_eq!(
            entries[1].hash.as_ref().map(|h| h.format),
            Some(HashFormat::Murmur2)
        );
    }

    #[test]
    fn reports_bad_entries_and_keeps_going() {
        let text = "[[files]]\nfile = \"a\"\nhash = \"00\"\n[[files]]\nfile = \"../b\"\nhash = \"00\"\n\
                    [[files]]\nfile = \"c\"\nhash = \"00\"\nhash-format = \"sha256\"\nmetafle = true\n";
        let mut diags = Vec::new();
        let entries = parse("index.toml", text, &mut diags).expect("parses");
        assert_eq!(entries.len(), 2);
        let msgs: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter().any(|m| m.starts_with(
                "index.toml:11: warning: unknown field `files.metafle` is ignored; did you mean `files.metafile`?"
            )),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.starts_with("index.toml:1: error: `a`: ")),
            "no hash-format is sha256, and `00` is no sha256: {msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("index.toml:4: error: `../b` climbs")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.starts_with("index.toml:7: error: `c`: ")),
            "{msgs:?}"
        );
    }
}
