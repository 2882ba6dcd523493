//! packwiz's `pack.toml`: name, version, `pack-format`, the `[index]`
//! reference with its hash, `[versions]` (Minecraft and loader) and
//! `[options]`, as packwiz's core/pack.go reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use atlas_proto::v1::LoaderKind;

use super::diagnostic::{Diagnostic, Severity};
use super::toml_doc::{self, Keys};
use atlas_proto::upstream::{HashFormat, UpstreamHash};

/// The pack-format packwiz writes today.
pub const CURRENT_PACK_FORMAT: &str = "packwiz:1.1.0";

/// A mod loader named in `[versions]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackwizLoader {
    Quilt,
    Fabric,
    Neoforge,
    Forge,
    Liteloader,
}

impl PackwizLoader {
    /// In packwiz's order of preference (core/pack.go `GetLoaders`).
    pub const ALL: [Self; 5] = [
        Self::Quilt,
        Self::Fabric,
        Self::Neoforge,
        Self::Forge,
        Self::Liteloader,
    ];

    /// The `[versions]` key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Quilt => "quilt",
            Self::Fabric => "fabric",
            Self::Neoforge => "neoforge",
            Self::Forge => "forge",
            Self::Liteloader => "liteloader",
        }
    }

    /// The manifest's loader kind; Atlas manifests have none for LiteLoader.
    pub fn kind(self) -> Option<LoaderKind> {
        match self {
            Self::Quilt => Some(LoaderKind::Quilt),
            Self::Fabric => Some(LoaderKind::Fabric),
            Self::Neoforge => Some(LoaderKind::Neoforge),
            Self::Forge => Some(LoaderKind::Forge),
            Self::Liteloader => None,
        }
    }
}

/// The loader and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoaderVersion {
    pub loader: PackwizLoader,
    pub version: String,
}

#[derive(Debug, Deserialize)]
struct Raw {
    name: Option<String>,
    author: Option<String>,
    version: Option<String>,
    description: Option<String>,
    #[serde(rename = "pack-format")]
    pack_format: Option<Spanned<String>>,
    index: Option<Spanned<RawIndexRef>>,
    #[serde(default)]
    versions: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    options: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
struct RawIndexRef {
    file: Option<String>,
    #[serde(rename = "hash-format")]
    hash_format: Option<Spanned<String>>,
    hash: Option<Spanned<String>>,
}

const KEYS: Keys = Keys::Only(&[
    ("name", Keys::Any),
    ("author", Keys::Any),
    ("version", Keys::Any),
    ("description", Keys::Any),
    ("pack-format", Keys::Any),
    (
        "index",
        Keys::Only(&[
            ("file", Keys::Any),
            ("hash-format", Keys::Any),
            ("hash", Keys::Any),
        ]),
    ),
    (
        "versions",
        Keys::Only(&[
            ("minecraft", Keys::Any),
            ("fabric", Keys::Any),
            ("forge", Keys::Any),
            ("neoforge", Keys::Any),
            ("quilt", Keys::Any),
            ("liteloader", Keys::Any),
        ]),
    ),
    ("export", Keys::Any),
    ("options", Keys::Any),
]);

/// `pack.toml`, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PackToml {
    pub name: String,
    pub author: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    /// As written, or [`CURRENT_PACK_FORMAT`] when absent.
    pub pack_format: String,
    /// `[index] file`, relative to `pack.toml`'s directory (default `index.toml`).
    pub index_file: String,
    /// `[index] hash`, when present and readable.
    pub index_hash: Option<UpstreamHash>,
    /// Line of `[index] hash` (or of `[index]`), for messages.
    pub index_hash_line: Option<usize>,
    /// `[versions] minecraft` ("" when absent, which is reported).
    pub minecraft: String,
    /// The loader, or `None` for vanilla.
    pub loader: Option<LoaderVersion>,
    /// Every `[versions]` entry as written.
    pub versions: BTreeMap<String, String>,
    /// `[options]`, kept whole (packwiz merges it into its settings).
    pub options: BTreeMap<String, toml::Value>,
}

/// The `[options]` key listing other Minecraft versions whose mods the pack takes.
pub const ACCEPTABLE_GAME_VERSIONS: &str = "acceptable-game-versions";

impl PackToml {
    /// `[options] acceptable-game-versions`: Minecraft versions other than
    /// `[versions] minecraft` whose mods packwiz accepts (core/pack.go
    /// `GetSupportedMCVersions`). Entries that are not strings are left out
    /// (reported when parsed).
    pub fn acceptable_game_versions(&self) -> Vec<String> {
        match self.options.get(ACCEPTABLE_GAME_VERSIONS) {
            Some(toml::Value::Array(list)) => list
                .iter()
                .filter_map(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses `pack.toml`. `Err` when nothing usable could be read (bad syntax, unknown
/// pack-format major); problems that leave the rest readable go to `diags`.
pub fn parse(file: &str, text: &str, diags: &mut Vec<Diagnostic>) -> Result<PackToml, Diagnostic> {
    let doc = toml_doc::parse(file, text)?;
    toml_doc::unknown_keys(file, text, doc.get_ref(), KEYS, Severity::Warning, diags);
    let raw: Raw = toml_doc::typed(file, text, doc)?;
    let line = |span: std::ops::Range<usize>| Some(toml_doc::line_of(text, span.start));

    let pack_format = match &raw.pack_format {
        None => {
            diags.push(Diagnostic::warning(
                file,
                None,
                format!("no `pack-format`; assuming {CURRENT_PACK_FORMAT} as packwiz does"),
            ));
            CURRENT_PACK_FORMAT.to_owned()
        }
        Some(pf) => {
            check_pack_format(pf.get_ref()).map_err(|m| Diagnostic::error(file, line(pf.span()), m))?;
            pf.get_ref().clone()
        }
    };

    let name = raw.name.unwrap_or_default();
    if name.trim().is_empty() {
        diags.push(Diagnostic::error(
            file,
            None,
            "`name` is required (the pack's display name)",
        ));
    }

    let (mut index_file, mut index_hash, mut index_hash_line) = ("index.toml".to_owned(), None, None);
    match &raw.index {
        None => diags.push(Diagnostic::warning(
            file,
            None,
            "no [index] table; reading index.toml unverified",
        )),
        Some(index) => {
            let index_line = line(index.span());
            let index = index.get_ref();
            if let Some(f) = index.file.as_deref().filter(|f| !f.is_empty()) {
                index_file = f.to_owned();
            }
            index_hash_line = index.hash.as_ref().map_or(index_line, |h| line(h.span()));
            match (&index.hash_format, &index.hash) {
                (_, None) => diags.push(Diagnostic::warning(
                    file,
                    index_line,
                    "[index] has no `hash`; index.toml cannot be verified",
                )),
                (None, Some(_)) => diags.push(Diagnostic::error(
                    file,
                    index_line,
                    "[index] has a `hash` but no `hash-format`",
                )),
                (Some(format), Some(hash)) => match format.get_ref().parse::<HashFormat>() {
                    Err(e) => diags.push(Diagnostic::error(file, line(format.span()), e.to_string())),
                    Ok(format) => match UpstreamHash::parse(format, hash.get_ref()) {
                        Ok(h) => index_hash = Some(h),
                        Err(e) => {
                            diags.push(Diagnostic::error(file, line(hash.span()), format!("[index] {e}")))
                        }
                    },
                },
            }
        }
    }

    let minecraft = match raw.versions.get("minecraft") {
        Some(v) if !v.get_ref().trim().is_empty() => v.get_ref().clone(),
        _ => {
            diags.push(Diagnostic::error(
                file,
                None,
                "[versions] has no `minecraft` version, e.g. minecraft = \"1.21.1\"",
            ));
            String::new()
        }
    };
    let loaders: Vec<(PackwizLoader, &Spanned<String>)> = PackwizLoader::ALL
        .into_iter()
        .filter_map(|l| raw.versions.get(l.key()).map(|v| (l, v)))
        .collect();
    if loaders.len() > 1 {
        let names: Vec<&str> = loaders.iter().map(|(l, _)| l.key()).collect();
        diags.push(Diagnostic::warning(
            file,
            line(loaders[1].1.span()),
            format!(
                "[versions] names several loaders ({}); Atlas uses `{}`",
                names.join(", "),
                names[0]
            ),
        ));
    }
    let loader = loaders.first().map(|(l, v)| LoaderVersion {
        loader: *l,
        version: v.get_ref().clone(),
    });
    if let Some((l, v)) = loaders.first() {
        if v.get_ref().trim().is_empty() {
            diags.push(Diagnostic::error(
                file,
                line(v.span()),
                format!("[versions] `{}` is empty", l.key()),
            ));
        }
        if l.kind().is_none() {
            diags.push(Diagnostic::warning(
                file,
                line(v.span()),
                format!(
                    "Atlas manifests have no loader kind for `{}`; hosts must install it themselves",
                    l.key()
                ),
            ));
        }
    }

    match raw.options.get(ACCEPTABLE_GAME_VERSIONS) {
        None | Some(toml::Value::Array(_)) => {}
        Some(other) => diags.push(Diagnostic::warning(
            file,
            None,
            format!(
                "[options] `{ACCEPTABLE_GAME_VERSIONS}` is a {}, not a list of versions; ignored",
                other.type_str()
            ),
        )),
    }
    if let Some(toml::Value::Array(list)) = raw.options.get(ACCEPTABLE_GAME_VERSIONS)
        && list.iter().any(|v| !v.is_str())
    {
        diags.push(Diagnostic::warning(
            file,
            None,
            format!(
                "[options] `{ACCEPTABLE_GAME_VERSIONS}` holds entries that are not strings; they are ignored"
            ),
        ));
    }

    Ok(PackToml {
        name,
        author: raw.author,
        version: raw.version,
        description: raw.description,
        pack_format,
        index_file,
        index_hash,
        index_hash_line,
        minecraft,
        loader,
        versions: raw
            .versions
            .into_iter()
            .map(|(k, v)| (k, v.into_inner()))
            .collect(),
        options: raw.options,
    })
}

/// Accepts `packwiz:1.x.y` (1.0.0 and 1.1.0 are the formats packwiz has written).
fn check_pack_format(pf: &str) -> Result<(), String> {
    let Some(version) = pf.strip_prefix("packwiz:") else {
        return Err(format!(
            "pack-format `{pf}` is not a packwiz format (expected e.g. \"{CURRENT_PACK_FORMAT}\")"
        ));
    };
    let parts: Vec<&str> = version.split('.').collect();
    let numbers: Option<Vec<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
    match numbers.as_deref() {
        Some([1, _, _]) => Ok(()),
        Some([major, _, _]) => Err(format!(
            "pack-format `{pf}` is packwiz format version {major}, which Atlas cannot read (it reads 1.x); \
             convert the pack with a packwiz release that writes {CURRENT_PACK_FORMAT}, or update Atlas"
        )),
        _ => Err(format!(
            "pack-format `{pf}` is not a version like \"{CURRENT_PACK_FORMAT}\""
        )),
    }
}

/// True when `pack.toml` text is packwiz's (it has `pack-format` or an `[index]` table),
/// false for Atlas's native format.
pub fn is_packwiz_pack_toml(text: &str) -> bool {
    match text.parse::<toml::Table>() {
        Ok(t) => t.contains_key("pack-format") || t.get("index").is_some_and(toml::Value::is_table),
        // Unparsable: decide from the lines, so the right parser reports the error.
        Err(_) => text
            .lines()
            .map(str::trim)
            .any(|l| l.starts_with("pack-format") || l == "[index]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_formats() {
        assert!(check_pack_format("packwiz:1.1.0").is_ok());
        assert!(check_pack_format("packwiz:1.0.0").is_ok());
        let e = check_pack_format("packwiz:2.0.0").expect_err("major 2");
        assert!(e.contains("version 2"), "{e}");
        assert!(check_pack_format("modrinth:1.0.0").is_err());
        assert!(check_pack_format("packwiz:1.x").is_err());
    }

    #[test]
    fn detects_packwiz() {
        assert!(is_packwiz_pack_toml(
            "name = \"a\"\npack-format = \"packwiz:1.1.0\"\n"
        ));
        assert!(is_packwiz_pack_toml(
            "name = \"a\"\n[index]\nfile = \"index.toml\"\n"
        ));
        assert!(is_packwiz_pack_toml("name = \n[index]\n"));
        assert!(!is_packwiz_pack_toml(
            "id = \"demo\"\nname = \"Demo\"\nloader = { kind = \"fabric\" }\n"
        ));
    }

    #[test]
    fn parses_versions_and_options() {
        let text = "name = \"P\"\r\npack-format = \"packwiz:1.0.0\"\r\n[index]\r\nfile = \"index.toml\"\r\n\
                    hash-format = \"sha256\"\r\nhash = \"00\"\r\n[versions]\r\nminecraft = \"1.20.1\"\r\n\
                    forge = \"47.1.0\"\r\n[options]\r\nacceptable-game-versions = [\"1.20\"]\r\nsomething-new = 1\r\n";
        let mut diags = Vec::new();
        let p = parse("pack.toml", text, &mut diags).expect("parses");
        assert_eq!(p.minecraft, "1.20.1");
        assert_eq!(p.loader.as_ref().map(|l| l.loader), Some(PackwizLoader::Forge));
        assert_eq!(p.options.len(), 2);
        assert_eq!(p.acceptable_game_versions(), ["1.20"]);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].line, Some(6));
        assert!(diags[0].message.contains("64 hex digits"), "{}", diags[0]);
    }
}
