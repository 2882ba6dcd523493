//! Atlas's native `pack.toml`: the pack's identity, Minecraft version and
//! loader, and which repository files the pack installs with which side.
//! JSON Schema: `schemas/pack.schema.json`.

use std::path::Path;

use serde::Deserialize;

use atlas_proto::v1::{LoaderKind, Side};

/// File name of the pack definition, at the pack directory's root.
pub const PACK_FILE: &str = "pack.toml";

/// `pack.toml` could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: `{field}`: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    #[error(
        "{file}: no `{PACK_FILE}` at the pack's root; create one (see examples/) or point --repo at the pack directory"
    )]
    Missing { file: String },
}

impl crate::exit::HasExitClass for PackError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
}

/// The `[loader]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LoaderDef {
    pub kind: LoaderName,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LoaderName {
    Vanilla,
    Fabric,
    Forge,
    Neoforge,
    Quilt,
}

impl LoaderName {
    pub fn kind(self) -> LoaderKind {
        match self {
            Self::Vanilla => LoaderKind::Vanilla,
            Self::Fabric => LoaderKind::Fabric,
            Self::Forge => LoaderKind::Forge,
            Self::Neoforge => LoaderKind::Neoforge,
            Self::Quilt => LoaderKind::Quilt,
        }
    }
}

/// Which installs get a file.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SideName {
    #[default]
    Both,
    Client,
    Server,
}

impl SideName {
    pub fn side(self) -> Side {
        match self {
            Self::Both => Side::Both,
            Self::Client => Side::Client,
            Self::Server => Side::Server,
        }
    }
}

fn yes() -> bool {
    true
}

/// A `[[files]]` entry: repository files selected by glob.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilesEntry {
    /// Globs relative to the pack directory (`*` stays within a directory, `**` crosses them).
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub side: SideName,
    #[serde(default)]
    pub optional: bool,
    /// For optional files: selected unless the user says otherwise.
    #[serde(default = "yes")]
    pub default: bool,
    /// Written once, then left to the user.
    #[serde(default)]
    pub preserve: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// `modrinth = { project = "...", version = "..." }` in a `[[mods]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ModrinthRef {
    /// Project id or slug.
    pub project: String,
    /// Version id, or version number.
    pub version: String,
}

/// `curseforge = { project = 123, file = 456 }` in a `[[mods]]` entry.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CurseForgeRef {
    pub project: u64,
    pub file: u64,
}

/// A `[[mods]]` entry: one file from Modrinth, CurseForge, a URL with a
/// hash, or the repository (exactly one source).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ModEntry {
    /// Display name (default: derived from the source).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub modrinth: Option<ModrinthRef>,
    #[serde(default)]
    pub curseforge: Option<CurseForgeRef>,
    #[serde(default)]
    pub url: Option<String>,
    /// With `url`: `<algorithm>:<value>`, e.g. `sha512:...` (sha1, sha256, sha512, md5, murmur2).
    #[serde(default)]
    pub hash: Option<String>,
    /// A file in the repository.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub side: SideName,
    #[serde(default)]
    pub optional: bool,
    #[serde(default = "yes")]
    pub default: bool,
    /// Install file name (default: upstream's).
    #[serde(default)]
    pub filename: Option<String>,
    /// Install directory (default `mods`).
    #[serde(default)]
    pub dir: Option<String>,
    /// False: never copy the file into the store; hosts fetch it upstream.
    #[serde(default = "yes")]
    pub mirror: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// The native `pack.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NativePack {
    pub id: String,
    pub name: String,
    pub version: String,
    pub minecraft: String,
    pub loader: LoaderDef,
    /// What the pack is, for players (plain text, shown on the pack's page).
    #[serde(default)]
    pub description: Option<String>,
    /// Who makes the pack (plain text).
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub files: Vec<FilesEntry>,
    #[serde(default)]
    pub mods: Vec<ModEntry>,
}

impl NativePack {
    /// Parses and validates `pack.toml` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, PackError> {
        let pack: Self = toml::from_str(text).map_err(|e| syntax_error(text, file, &e))?;
        pack.validate(file)?;
        Ok(pack)
    }

    /// Reads `pack.toml` from a directory on disk.
    pub fn load(dir: &Path) -> Result<Self, PackError> {
        let path = dir.join(PACK_FILE);
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|_| PackError::Missing { file: file.clone() })?;
        Self::parse(&text, &file)
    }

    fn validate(&self, file: &str) -> Result<(), PackError> {
        let invalid = |field: &str, message: String| PackError::Invalid {
            file: file.to_owned(),
            field: field.to_owned(),
            message,
        };
        atlas_proto::layout::validate_pack_id(&self.id).map_err(|e| invalid("id", e.to_string()))?;
        for (field, value) in [
            ("name", &self.name),
            ("version", &self.version),
            ("minecraft", &self.minecraft),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "must not be empty".into()));
            }
        }
        match (&self.loader.kind, &self.loader.version) {
            (LoaderName::Vanilla, Some(_)) => {
                return Err(invalid(
                    "loader.version",
                    "vanilla has no loader version; remove it".into(),
                ));
            }
            (LoaderName::Vanilla, None) => {}
            (_, None) => {
                return Err(invalid(
                    "loader.version",
                    "required for this loader, e.g. \"0.16.9\"".into(),
                ));
            }
            (_, Some(v)) if v.trim().is_empty() => {
                return Err(invalid("loader.version", "must not be empty".into()));
            }
            _ => {}
        }
        for (i, entry) in self.files.iter().enumerate() {
            if entry.include.is_empty() {
                return Err(invalid(
                    &format!("files[{i}].include"),
                    "list at least one glob, e.g. [\"config/**\"]".into(),
                ));
            }
        }
        for (i, m) in self.mods.iter().enumerate() {
            let sources = [
                m.modrinth.is_some(),
                m.curseforge.is_some(),
                m.url.is_some(),
                m.path.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(
                    &format!("mods[{i}]"),
                    "give exactly one of `modrinth`, `curseforge`, `url` (with `hash`) or `path`".into(),
                ));
            }
            match (&m.url, &m.hash) {
                (Some(_), None) => {
                    return Err(invalid(
                        &format!("mods[{i}].hash"),
                        "required with `url`, e.g. \"sha512:<hex>\"".into(),
                    ));
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        &format!("mods[{i}].hash"),
                        "only allowed with `url`".into(),
                    ));
                }
                (Some(_), Some(h)) => {
                    parse_hash(h).map_err(|e| invalid(&format!("mods[{i}].hash"), e))?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}

/// Parses `<algorithm>:<value>` (`sha512:<hex>`, `murmur2:<decimal>`, ...).
pub fn parse_hash(text: &str) -> Result<crate::packwiz::UpstreamHash, String> {
    let (algo, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: write `<algorithm>:<value>`, e.g. `sha512:<hex>`"))?;
    let format: crate::packwiz::HashFormat = algo.parse().map_err(|e| format!("{e}"))?;
    crate::packwiz::UpstreamHash::parse(format, value).map_err(|e| e.to_string())
}

/// Turns a toml error into one naming the file, line and column.
pub fn syntax_error(text: &str, file: &str, e: &toml::de::Error) -> PackError {
    let (line, column) = e.span().map(|span| line_col(text, span.start)).unwrap_or((1, 1));
    PackError::Syntax {
        file: file.to_owned(),
        line,
        column,
        message: with_nearest_name(e.message().trim()),
    }
}

/// Rewrites serde's `unknown field `x`, expected one of `a`, `b`, ...` as
/// `unknown field `x`; did you mean `a`?` (or without the hint when no known
/// name is close); other messages are returned unchanged.
fn with_nearest_name(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match crate::packwiz::toml_doc::nearest(field, known.iter().copied()) {
        Some(k) => format!("unknown field `{field}`; did you mean `{k}`?"),
        None if known.is_empty() => format!("unknown field `{field}`; this table has no fields"),
        None => format!(
            "unknown field `{field}`; valid fields: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
#:schema ../../schemas/pack.schema.json
id = "demo"
name = "Demo"
version = "1.0.0"
minecraft = "1.21.1"
loader = { kind = "fabric", version = "0.16.9" }

[[files]]
include = ["config/**"]

[[files]]
include = ["mods/*.jar"]
side = "server"
optional = true
default = false
"#;

    #[test]
    fn parses_native_pack() {
        let p = NativePack::parse(GOOD, "pack.toml").expect("valid");
        assert_eq!(p.id, "demo");
        assert_eq!(p.loader.kind, LoaderName::Fabric);
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[0].side, SideName::Both);
        assert!(p.files[0].default);
        assert!(p.files[1].optional && !p.files[1].default);
    }

    #[test]
    fn syntax_error_names_line() {
        let text = "id = \"demo\"\nname = \n";
        let e = NativePack::parse(text, "pack.toml").expect_err("invalid");
        let msg = e.to_string();
        assert!(msg.starts_with("pack.toml:2:"), "{msg}");
    }

    #[test]
    fn unknown_field_is_named() {
        let text = GOOD.replace("minecraft =", "minecarft =");
        let msg = NativePack::parse(&text, "pack.toml")
            .expect_err("invalid")
            .to_string();
        assert!(msg.contains("minecarft"), "{msg}");
    }

    #[test]
    fn unknown_fields_name_the_nearest_valid_name() {
        let cases = [
            (
                GOOD.replace("minecraft =", "minecarft ="),
                "pack.toml:6:1: unknown field `minecarft`; did you mean `minecraft`?",
            ),
            (
                GOOD.replace("kind = \"fabric\"", "kidn = \"fabric\""),
                "pack.toml:7:12: unknown field `kidn`; did you mean `kind`?",
            ),
            (
                GOOD.replace("optional = true", "optinal = true"),
                "pack.toml:15:1: unknown field `optinal`; did you mean `optional`?",
            ),
            (
                format!("{GOOD}\n[[mods]]\nurl = \"https://x/a.jar\"\nhsah = \"sha1:00\"\n"),
                "pack.toml:20:1: unknown field `hsah`; did you mean `hash`?",
            ),
        ];
        for (text, want) in &cases {
            let msg = NativePack::parse(text, "pack.toml")
                .expect_err("invalid")
                .to_string();
            assert_eq!(&msg, want);
        }
        let msg = NativePack::parse(&GOOD.replace("minecraft =", "zzzzzz ="), "pack.toml")
            .expect_err("invalid")
            .to_string();
        assert!(
            msg.contains("unknown field `zzzzzz`; valid fields: `id`"),
            "{msg}"
        );
    }

    #[test]
    fn semantic_checks() {
        let bad_id = GOOD.replace("id = \"demo\"", "id = \"Demo Pack\"");
        let msg = NativePack::parse(&bad_id, "pack.toml")
            .expect_err("invalid")
            .to_string();
        assert!(msg.contains("`id`"), "{msg}");
        let no_version = GOOD.replace(", version = \"0.16.9\"", "");
        let msg = NativePack::parse(&no_version, "pack.toml")
            .expect_err("invalid")
            .to_string();
        assert!(msg.contains("loader.version"), "{msg}");
    }
}
