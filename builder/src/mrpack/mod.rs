//! The Modrinth modpack format (`.mrpack`), read and written in one place: a
//! zip holding `modrinth.index.json` (format 1) and override folders
//! (`overrides/`, `client-overrides/`, `server-overrides/`).
//!
//! [`read`] checks an archive and extracts its overrides (a pack source, see
//! `crate::build::mrpack`), [`index`] reads its index as launchers do (what
//! they ignore is a warning); [`write`] produces a byte-reproducible archive
//! (the export of a build, see `crate::export::mrpack`).

pub mod index;
pub mod read;
pub mod write;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use atlas_proto::v1::{Loader, LoaderKind, Side};

pub use read::{Mrpack, MrpackError, Override, read};
pub use write::{MrpackWriter, WriteError};

/// Name of the index inside a `.mrpack`.
pub const INDEX_FILE: &str = "modrinth.index.json";
/// Override folders, for both sides, clients only and servers only.
pub const OVERRIDES: [(&str, Side); 3] = [
    ("overrides/", Side::Both),
    ("client-overrides/", Side::Client),
    ("server-overrides/", Side::Server),
];

/// `modrinth.index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MrIndex {
    pub format_version: u32,
    pub game: String,
    pub version_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub files: Vec<MrFile>,
    pub dependencies: BTreeMap<String, String>,
}

/// One `files[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MrFile {
    pub path: String,
    /// `sha1` and `sha512` (lowercase hex), both required by the format.
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<MrEnv>,
    pub downloads: Vec<String>,
    pub file_size: u64,
}

/// `env`: whether each side needs the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrEnv {
    pub client: EnvSupport,
    pub server: EnvSupport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvSupport {
    Required,
    Optional,
    Unsupported,
}

impl MrEnv {
    /// From a manifest file's side and optional flag.
    pub fn of(side: Side, optional: bool) -> Self {
        let on = if optional {
            EnvSupport::Optional
        } else {
            EnvSupport::Required
        };
        let (client, server) = match side {
            Side::Client => (on, EnvSupport::Unsupported),
            Side::Server => (EnvSupport::Unsupported, on),
            Side::Both | Side::Unspecified => (on, on),
        };
        Self { client, server }
    }

    /// Back to a side and optional flag; `None` when neither side wants the file.
    pub fn side(self) -> Option<(Side, bool)> {
        use EnvSupport::*;
        let optional = self.client == Optional || self.server == Optional;
        match (self.client, self.server) {
            (Unsupported, Unsupported) => None,
            (_, Unsupported) => Some((Side::Client, optional)),
            (Unsupported, _) => Some((Side::Server, optional)),
            _ => Some((Side::Both, optional)),
        }
    }
}

/// The `dependencies` key of a loader.
pub fn loader_key(kind: LoaderKind) -> Option<&'static str> {
    match kind {
        LoaderKind::Fabric => Some("fabric-loader"),
        LoaderKind::Quilt => Some("quilt-loader"),
        LoaderKind::Forge => Some("forge"),
        LoaderKind::Neoforge => Some("neoforge"),
        LoaderKind::Vanilla | LoaderKind::Unspecified => None,
    }
}

impl MrIndex {
    /// The loader its `dependencies` name (vanilla when none).
    pub fn loader(&self) -> Loader {
        for kind in [
            LoaderKind::Fabric,
            LoaderKind::Quilt,
            LoaderKind::Forge,
            LoaderKind::Neoforge,
        ] {
            if let Some(v) = loader_key(kind).and_then(|k| self.dependencies.get(k)) {
                return Loader {
                    kind: kind as i32,
                    version: v.clone(),
                };
            }
        }
        Loader {
            kind: LoaderKind::Vanilla as i32,
            version: String::new(),
        }
    }
}

/// The override folder of a side.
pub fn override_dir(side: Side) -> &'static str {
    match side {
        Side::Client => "client-overrides/",
        Side::Server => "server-overrides/",
        Side::Both | Side::Unspecified => "overrides/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_round_trips_side_and_optional() {
        for side in [Side::Both, Side::Client, Side::Server] {
            for optional in [false, true] {
                assert_eq!(MrEnv::of(side, optional).side(), Some((side, optional)));
            }
        }
        let none = MrEnv {
            client: EnvSupport::Unsupported,
            server: EnvSupport::Unsupported,
        };
        assert_eq!(none.side(), None);
        let json = serde_json::to_string(&MrEnv::of(Side::Client, true)).expect("json");
        assert_eq!(json, r#"{"client":"optional","server":"unsupported"}"#);
    }

    #[test]
    fn loaders_and_override_folders() {
        assert_eq!(loader_key(LoaderKind::Neoforge), Some("neoforge"));
        assert_eq!(loader_key(LoaderKind::Vanilla), None);
        for (dir, side) in OVERRIDES {
            assert_eq!(override_dir(side), dir);
        }
    }
}
