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
pub mod error;
pub mod fetch;
pub mod mirror;
pub mod modrinth;
pub mod spec;
pub mod url;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::download::Sleeper;

pub use curseforge::CURSEFORGE_KEY_ENV;
pub use deps::{Accepts, DepProblem, DepsPolicy};
pub use error::{ModError, ModErrors};
pub use fetch::{FetchError, ModOptions, ModsReport, fetch_mods, fetch_mods_accepting, fetch_mods_for};
pub use spec::{ModSource, ModSpec, ResolvedMod, install_path};

/// Default Modrinth API base URL.
pub const MODRINTH_API: &str = "https://api.modrinth.com";
/// Default CurseForge Core API base URL.
pub const CURSEFORGE_API: &str = "https://api.curseforge.com";

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
