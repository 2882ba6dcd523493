//! What a pack names ([`ModSpec`]: a Modrinth version, a CurseForge file, a
//! URL with a hash) and what it resolves to ([`ResolvedMod`]): the types the
//! providers (`modrinth`, `curseforge`, `url`) produce and `deps` and `fetch`
//! consume, below all of them.

use atlas_proto::v1::Side;

use crate::packwiz::UpstreamHash;

use super::modrinth::Version;

/// Where a mod comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModSource {
    /// A Modrinth version, by id or version number, of a project (id or slug).
    Modrinth { project: String, version: String },
    /// A CurseForge file of a project.
    CurseForge { project: u64, file: u64 },
    /// A plain URL with the hash the file must have.
    Url { url: String, hash: UpstreamHash },
}

/// One mod the pack names, before any network access.
#[derive(Debug, Clone, PartialEq)]
pub struct ModSpec {
    /// The mod's name, for messages.
    pub name: String,
    /// Where the pack defines it (`pack.toml mods[3]`, `mods/x.pw.toml`).
    pub defined_in: String,
    pub source: ModSource,
    /// Install directory relative to the pack root ("" = the root).
    pub dir: String,
    /// Install file name; default: upstream's.
    pub filename: Option<String>,
    pub side: Side,
    pub optional: bool,
    pub default_enabled: bool,
    pub description: String,
    /// False: keep the file upstream-only (never copied into the store).
    pub mirror: bool,
    /// A hash the pack itself declares (packwiz), checked against the download.
    pub declared: Option<UpstreamHash>,
    /// Origin known without an API call (packwiz `[update]`).
    pub origin: Option<String>,
}

/// A mod resolved to a concrete file.
#[derive(Debug, Clone)]
pub struct ResolvedMod {
    pub spec: ModSpec,
    /// Install path in the pack.
    pub path: String,
    /// Download URL; `None` when upstream withholds it (download by hand).
    pub url: Option<String>,
    /// The project's web page, for messages (never recorded as a download URL).
    pub page: Option<String>,
    /// Upstream's file name.
    pub file_name: String,
    /// The hash the download must match.
    pub verify: UpstreamHash,
    /// Every upstream hash known for the file (recorded in the manifest).
    pub hashes: Vec<UpstreamHash>,
    /// Size upstream declares.
    pub size: Option<u64>,
    /// `modrinth:<project>/<version>`, `curseforge:<project>/<file>` or `url`.
    pub origin: String,
    pub display_version: String,
    /// Upstream withholds the download (CurseForge distribution disabled):
    /// the file comes from the creator's manual download and is mirrored.
    pub distribution_disabled: bool,
    /// Modrinth's version metadata, kept for dependency checks.
    pub modrinth: Option<Version>,
}

impl ResolvedMod {
    /// The file stays upstream-only: the creator asked for it and upstream
    /// gives a URL hosts can download it from. A file without one
    /// (CurseForge distribution disabled) is always mirrored from the
    /// creator's manual download: no host could fetch it otherwise.
    pub fn upstream_only(&self) -> bool {
        !self.spec.mirror && self.url.is_some()
    }

    /// The URL to record as the file's upstream: the file itself, never a
    /// web page (`None` when upstream withholds the file).
    pub fn upstream_url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// `dir` + `/` + `name` (either may be empty).
pub fn install_path(dir: &str, name: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}
