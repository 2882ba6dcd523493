//! The version objects of Modrinth's API v2 (`GET /v2/version/{id}`,
//! `GET /v2/versions`, `GET /v2/project/{id|slug}/version`), as its OpenAPI
//! document names them; only the fields Atlas reads. A resolved mod keeps
//! its version for the dependency checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A version file (`files[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionFile {
    /// Algorithm name (`sha1`, `sha512`) to hex.
    pub hashes: BTreeMap<String, String>,
    pub url: String,
    pub filename: String,
    #[serde(default)]
    pub primary: bool,
    pub size: u64,
}

/// A dependency (`dependencies[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub version_id: Option<String>,
    pub project_id: Option<String>,
    pub file_name: Option<String>,
    /// `required`, `optional`, `incompatible` or `embedded`.
    pub dependency_type: String,
}

/// A version, as `GET /v2/version/{id}` returns it (the fields Atlas uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub version_number: String,
    #[serde(default)]
    pub game_versions: Vec<String>,
    #[serde(default)]
    pub loaders: Vec<String>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    pub files: Vec<VersionFile>,
}

impl Version {
    /// `id (loaders; Minecraft versions)`, for messages.
    pub(super) fn describe(&self) -> String {
        format!(
            "{} ({}; Minecraft {})",
            self.id,
            self.loaders.join(", "),
            self.game_versions.join(", ")
        )
    }
}
