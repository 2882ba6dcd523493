//! Mod sources: what a pack names ([`ModSpec`]: a Modrinth version, a
//! CurseForge file, a URL with a hash) and what it resolves to
//! ([`ResolvedMod`]: a download URL, the upstream hashes to verify, the
//! install path, the origin and the mirror decision). [`Resolver`] asks the
//! services' APIs in batches; [`fetch`] resolves, checks dependencies and
//! downloads a pack's mods into manifest entries. Which pack format names
//! the mods is `crate::build`'s business.

// Errors are rare, end a mod's processing, and carry the whole message.
#![allow(clippy::result_large_err)]

pub mod curseforge;
pub mod deps;
pub mod fetch;
pub mod mirror;
pub mod modrinth;
pub mod url;

use std::collections::BTreeMap;
use std::path::PathBuf;

use atlas_proto::v1::Side;

use crate::download::{DownloadError, Sleeper};
use crate::packwiz::UpstreamHash;

pub use deps::{Accepts, DepProblem, DepsPolicy};
pub use fetch::{FetchError, ModOptions, ModsReport, fetch_mods, fetch_mods_accepting, fetch_mods_for};

/// Default Modrinth API base URL.
pub const MODRINTH_API: &str = "https://api.modrinth.com";
/// Default CurseForge Core API base URL.
pub const CURSEFORGE_API: &str = "https://api.curseforge.com";
/// Environment variable holding the CurseForge API key.
pub const CURSEFORGE_KEY_ENV: &str = "CURSEFORGE_API_KEY";

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
    pub modrinth: Option<modrinth::Version>,
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

/// A mod could not be resolved or fetched. Each names the mod, the URL and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Modrinth(#[from] modrinth::ModrinthError),
    #[error(transparent)]
    CurseForge(#[from] curseforge::CurseForgeError),
    #[error(
        "{defined_in}: {name}: the author does not allow third-party downloads of `{file_name}` \
         (CurseForge distribution disabled); download it by hand from {page} into {} and run again: \
         it is matched by hash, installed at `{dest}` and stays upstream-only",
        manual_dir.as_ref().map_or("a folder passed as --manual-dir".to_owned(), |d| format!("--manual-dir {}", d.display()))
    )]
    DistributionDisabled {
        name: String,
        defined_in: String,
        page: String,
        file_name: String,
        dest: String,
        manual_dir: Option<PathBuf>,
    },
    #[error("{defined_in}: {name}: {message}")]
    Invalid {
        name: String,
        defined_in: String,
        message: String,
    },
}

/// Every mod problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{} mod(s) could not be resolved or downloaded:\n{}", .0.len(), join(.0))]
pub struct ModErrors(pub Vec<ModError>);

use crate::exit::{ExitClass, HasExitClass};

// A mod that cannot be resolved or fetched makes the pack unbuildable (exit 3).
impl HasExitClass for ModError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for ModErrors {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for modrinth::ModrinthError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for curseforge::CurseForgeError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for DepProblem {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for deps::DepErrors {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

fn join(errors: &[ModError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Settings of the resolvers.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    pub modrinth_api: String,
    pub curseforge_api: String,
    /// Needed only when the pack has CurseForge files.
    pub curseforge_key: Option<String>,
    /// Folder of manually downloaded files, matched by hash.
    pub manual_dir: Option<PathBuf>,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self {
            modrinth_api: MODRINTH_API.to_owned(),
            curseforge_api: CURSEFORGE_API.to_owned(),
            curseforge_key: std::env::var(CURSEFORGE_KEY_ENV).ok().filter(|k| !k.is_empty()),
            manual_dir: None,
        }
    }
}

/// Resolves [`ModSpec`]s through the services' APIs.
#[derive(Debug)]
pub struct Resolver {
    modrinth: modrinth::ModrinthClient,
    curseforge: curseforge::CurseForgeClient,
}

impl Resolver {
    pub fn new(opts: &ResolveOptions, http: reqwest::Client, sleeper: std::sync::Arc<dyn Sleeper>) -> Self {
        Self {
            modrinth: modrinth::ModrinthClient::new(&opts.modrinth_api, http.clone(), sleeper.clone()),
            curseforge: curseforge::CurseForgeClient::new(
                &opts.curseforge_api,
                opts.curseforge_key.clone(),
                http,
                sleeper,
            ),
        }
    }

    /// Resolves every spec for any loader and Minecraft version (see
    /// [`Resolver::resolve_accepting`]).
    pub async fn resolve(&self, specs: &[ModSpec]) -> Result<Vec<ResolvedMod>, ModErrors> {
        self.resolve_accepting(specs, None).await
    }

    /// Resolves every spec; all problems are returned together. With
    /// `accepts`, Modrinth version numbers are looked up among the versions
    /// for the pack's loaders and Minecraft versions only.
    pub async fn resolve_accepting(
        &self,
        specs: &[ModSpec],
        accepts: Option<&Accepts>,
    ) -> Result<Vec<ResolvedMod>, ModErrors> {
        let mut errors = Vec::new();
        let mut out: Vec<Option<ResolvedMod>> = vec![None; specs.len()];
        let mut mr = Vec::new();
        let mut cf = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            match &spec.source {
                ModSource::Url { .. } => match url::resolve(spec) {
                    Ok(r) => out[i] = Some(r),
                    Err(e) => errors.push(e),
                },
                ModSource::Modrinth { .. } => mr.push(i),
                ModSource::CurseForge { .. } => cf.push(i),
            }
        }
        let mr_specs: Vec<&ModSpec> = mr.iter().map(|i| &specs[*i]).collect();
        for (i, r) in mr
            .iter()
            .zip(self.modrinth.resolve_accepting(&mr_specs, accepts).await)
        {
            match r {
                Ok(r) => out[*i] = Some(r),
                Err(e) => errors.push(e.into()),
            }
        }
        let cf_specs: Vec<&ModSpec> = cf.iter().map(|i| &specs[*i]).collect();
        for (i, r) in cf.iter().zip(self.curseforge.resolve(&cf_specs).await) {
            match r {
                Ok(r) => out[*i] = Some(r),
                Err(e) => errors.push(e.into()),
            }
        }
        if !errors.is_empty() {
            return Err(ModErrors(errors));
        }
        let mut resolved: Vec<ResolvedMod> = out.into_iter().flatten().collect();
        self.attach_modrinth_metadata(&mut resolved).await;
        Ok(resolved)
    }

    /// URL mods that name their Modrinth version (packwiz `[update.modrinth]`)
    /// get its metadata for dependency checks: one batched request, best
    /// effort (the build does not need it).
    async fn attach_modrinth_metadata(&self, resolved: &mut [ResolvedMod]) {
        let mut ids: Vec<String> = resolved
            .iter()
            .filter(|r| r.modrinth.is_none())
            .filter_map(|r| r.origin.strip_prefix("modrinth:")?.split_once('/'))
            .map(|(_, version)| version.to_owned())
            .collect();
        if ids.is_empty() {
            return;
        }
        ids.sort();
        ids.dedup();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let versions = match self.modrinth.versions(&refs).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("dependency checks skip packwiz Modrinth mods: {e}");
                return;
            }
        };
        for r in resolved.iter_mut().filter(|r| r.modrinth.is_none()) {
            let version = r.origin.strip_prefix("modrinth:").and_then(|o| o.split_once('/'));
            if let Some((_, id)) = version {
                r.modrinth = versions.iter().find(|v| v.id == id).cloned();
            }
        }
    }

    /// The projects of Modrinth versions, by version id (best effort: an
    /// unreachable API gives an empty map).
    pub async fn version_projects(&self, ids: &[String]) -> BTreeMap<String, String> {
        if ids.is_empty() {
            return BTreeMap::new();
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        match self.modrinth.versions(&refs).await {
            Ok(v) => v.into_iter().map(|v| (v.id, v.project_id)).collect(),
            Err(e) => {
                tracing::warn!("looking up dependency versions: {e}");
                BTreeMap::new()
            }
        }
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
