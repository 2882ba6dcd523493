//! `modrinth.index.json` read as launchers read it: the fields of the
//! format ([`MrIndex`]) are parsed, and a field the format does not have is
//! ignored, as the Modrinth App and other launchers ignore it, with a
//! warning naming the archive, the line and the field (and the nearest
//! known name, for a likely typo). So is a `dependencies` key that names no
//! game or loader Atlas knows (with the ones it reads). The fields left over are found by
//! `serde_ignored` while serde_json reads the index; the line is where the
//! reader was when the field's value began.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

use serde_ignored::Path;

use crate::packwiz::Diagnostic;
use crate::packwiz::toml_doc::nearest;

use super::{INDEX_FILE, MrIndex};

/// Fields of the index (docs.modrinth.com, "Modrinth modpack format").
const INDEX_FIELDS: [&str; 7] = [
    "formatVersion",
    "game",
    "versionId",
    "name",
    "summary",
    "files",
    "dependencies",
];
/// Fields of a `files[]` entry.
const FILE_FIELDS: [&str; 5] = ["path", "hashes", "env", "downloads", "fileSize"];
/// Fields of `env`.
const ENV_FIELDS: [&str; 2] = ["client", "server"];
/// `dependencies` keys: the game and the loaders the format names.
pub const DEPENDENCIES: [&str; 5] = ["minecraft", "forge", "neoforge", "fabric-loader", "quilt-loader"];

/// Parses the index of the archive `file`, with a warning for every field
/// that is ignored. A syntax or type error is serde_json's (with its line
/// and column).
pub fn parse(bytes: &[u8], file: &str) -> Result<(MrIndex, Vec<Diagnostic>), serde_json::Error> {
    let at = format!("{file}/{INDEX_FILE}");
    // The bytes serde_json has consumed: it reads one byte at a time from
    // an unbuffered reader, so the count is its position.
    let pos = Rc::new(Cell::new(0usize));
    let reader = Counting {
        bytes,
        pos: pos.clone(),
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut ignored: Vec<(usize, String, Option<&'static str>)> = Vec::new();
    let index = serde_ignored::deserialize(&mut de, |path| {
        ignored.push((pos.get(), field(&path), hint(&path)));
    })
    .and_then(|index: MrIndex| de.end().map(|()| index))?;
    let mut warnings: Vec<Diagnostic> = ignored
        .into_iter()
        .map(|(offset, name, hint)| {
            let hint = hint.map_or(String::new(), |k| format!("; did you mean `{k}`?"));
            Diagnostic::warning(
                at.clone(),
                Some(line_of(bytes, offset)),
                format!("unknown field `{name}` is ignored{hint}"),
            )
        })
        .collect();
    for key in index.dependencies.keys() {
        if DEPENDENCIES.contains(&key.as_str()) {
            continue;
        }
        warnings.push(Diagnostic::warning(
            at.clone(),
            dependency_line(bytes, key),
            format!(
                "unknown dependency `dependencies.{key}` is ignored; Atlas reads {}",
                DEPENDENCIES.map(|d| format!("`{d}`")).join(", ")
            ),
        ));
    }
    Ok((index, warnings))
}

/// `files[3].env.extra`: the path as a reader of the JSON writes it.
fn field(path: &Path<'_>) -> String {
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field(parent)),
        Path::Map { parent, key } => match field(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            field(parent)
        }
    }
}

/// The known field nearest to an unknown one, at its level of the index.
fn hint(path: &Path<'_>) -> Option<&'static str> {
    let Path::Map { parent, key } = path else {
        return None;
    };
    let known: &[&'static str] = match field(parent).as_str() {
        "" => &INDEX_FIELDS,
        p if p.starts_with("files[") && p.ends_with(']') => &FILE_FIELDS,
        p if p.starts_with("files[") && p.ends_with("].env") => &ENV_FIELDS,
        _ => return None,
    };
    nearest(key, known.iter().copied())
}

/// 1-based line of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// The line of key `key` in the `dependencies` object: its first quoted
/// occurrence after `"dependencies"` (none when it is written with escapes).
fn dependency_line(bytes: &[u8], key: &str) -> Option<usize> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let deps = find(bytes, b"\"dependencies\"")?;
    let quoted = serde_json::to_vec(key).ok()?;
    let at = deps + find(&bytes[deps..], &quoted)?;
    Some(line_of(bytes, at))
}

/// An unbuffered reader over the index that counts what was read.
struct Counting<'a> {
    bytes: &'a [u8],
    pos: Rc<Cell<usize>>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.pos.get().min(self.bytes.len());
        let n = (&self.bytes[start..]).read(buf)?;
        self.pos.set(start + n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_warnings_with_line_and_nearest_name() {
        let text = r#"{
  "formatVersion": 1,
  "game": "minecraft",
  "versionId": "1.0.0",
  "name": "X",
  "sumary": "typo",
  "files": [
    {
      "path": "mods/a.jar",
      "hashes": {"sha1": "x", "sha512": "y"},
      "env": {"client": "required", "server": "optional", "sever": "x"},
      "downloads": ["https://cdn.example/a.jar"],
      "fileSize": 1,
      "fileSzie": 2,
      "project": {"nested": [1, 2, {"deep": true}]}
    }
  ],
  "dependencies": {"minecraft": "1.21.1", "fabric-loader": "0.16.9", "liteloader": "1", "quilt_loader": "0.1"},
  "x-launcher": {"any": "thing"}
}
"#;
        let (index, warnings) = parse(text.as_bytes(), "p.mrpack").expect("valid");
        assert_eq!(index.files.len(), 1);
        assert_eq!(index.dependencies.len(), 4);
        let got: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "p.mrpack/modrinth.index.json:6: warning: unknown field `sumary` is ignored; did you mean `summary`?",
                "p.mrpack/modrinth.index.json:11: warning: unknown field `files[0].env.sever` is ignored; did you mean `server`?",
                "p.mrpack/modrinth.index.json:14: warning: unknown field `files[0].fileSzie` is ignored; did you mean `fileSize`?",
                "p.mrpack/modrinth.index.json:15: warning: unknown field `files[0].project` is ignored",
                "p.mrpack/modrinth.index.json:19: warning: unknown field `x-launcher` is ignored",
                "p.mrpack/modrinth.index.json:18: warning: unknown dependency `dependencies.liteloader` is ignored; \
                 Atlas reads `minecraft`, `forge`, `neoforge`, `fabric-loader`, `quilt-loader`",
                "p.mrpack/modrinth.index.json:18: warning: unknown dependency `dependencies.quilt_loader` is ignored; \
                 Atlas reads `minecraft`, `forge`, `neoforge`, `fabric-loader`, `quilt-loader`",
            ]
        );
        assert!(warnings.iter().all(|w| !w.is_error()));
    }

    #[test]
    fn a_known_index_has_no_warning_and_errors_keep_their_position() {
        let text = r#"{"formatVersion":1,"game":"minecraft","versionId":"1","name":"X","summary":"s",
            "files":[{"path":"a","hashes":{},"env":{"client":"required","server":"unsupported"},"downloads":[],"fileSize":0}],
            "dependencies":{"minecraft":"1.21.1","neoforge":"21.1.1"}}"#;
        let (_, warnings) = parse(text.as_bytes(), "p.mrpack").expect("valid");
        assert_eq!(warnings, []);
        let err = parse(b"{\"formatVersion\": 1,\n \"game\": 3}", "p.mrpack").expect_err("type");
        assert_eq!(err.line(), 2, "{err}");
        let err = parse(format!("{text} trailing").as_bytes(), "p.mrpack").expect_err("trailing");
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
