//! Modrinth (API v2), as its OpenAPI document specifies it
//! (docs.modrinth.com, `openapi.yaml`): versions by id in batches
//! (`GET /v2/versions?ids=[..]`, only syntactically valid base62 ids, as
//! Modrinth answers 400 for the whole batch otherwise), version numbers per
//! project through the filtered listing (`GET /v2/project/{id|slug}/version`
//! with the pack's `loaders` and `game_versions`), and the rate limit
//! (`X-Ratelimit-Remaining`, `X-Ratelimit-Reset`, 429) waited out once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::download::{Sleeper, error_chain, parse_retry_after};
use crate::packwiz::{HashFormat, UpstreamHash};

use super::deps::Accepts;
use super::spec::{ModSource, ModSpec, ResolvedMod, install_path};

mod version;
pub use version::{Dependency, Version, VersionFile};

/// Ids per batch request (keeps URLs well under common limits).
const BATCH: usize = 100;
/// Attempts for one API request answered 429 or 5xx.
const ATTEMPTS: u32 = 4;

/// Whether `s` can be a Modrinth id: base62 (`0-9A-Za-z`) that fits a `u64`,
/// as labrinth's `parse_base62` reads ids. Version numbers like `0.14.3`
/// are not, and must never reach `GET /v2/versions?ids=`.
pub fn is_base62_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .try_fold(0u64, |n, c| {
                let digit = match c {
                    b'0'..=b'9' => c - b'0',
                    b'A'..=b'Z' => c - b'A' + 10,
                    b'a'..=b'z' => c - b'a' + 36,
                    _ => return None,
                };
                n.checked_mul(62)?.checked_add(u64::from(digit))
            })
            .is_some()
}

/// A Modrinth request or lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum ModrinthError {
    #[error(
        "{defined_in}: {name}: Modrinth has no version `{version}` of project `{project}` \
         (looked up {url}); pick an existing version id or number from https://modrinth.com/mod/{project}/versions"
    )]
    VersionNotFound {
        name: String,
        defined_in: String,
        project: String,
        version: String,
        url: String,
    },
    #[error(
        "{defined_in}: {name}: Modrinth project `{project}` has no version `{version}` for {wanted} \
         (looked up {url}); that number exists only for {others}; pick a version id or number for {wanted} \
         from https://modrinth.com/mod/{project}/versions"
    )]
    WrongLoader {
        name: String,
        defined_in: String,
        project: String,
        version: String,
        url: String,
        /// `fabric on Minecraft 1.21.1`.
        wanted: String,
        /// The versions with that number, described.
        others: String,
    },
    #[error(
        "{defined_in}: {name}: Modrinth project `{project}` has {} versions numbered `{version}` for {wanted}: \
         {}; name the one to use by its version id",
        candidates.len(),
        candidates.join(", ")
    )]
    Ambiguous {
        name: String,
        defined_in: String,
        project: String,
        version: String,
        wanted: String,
        /// `id (loaders; Minecraft versions)` of each candidate.
        candidates: Vec<String>,
    },
    #[error("{defined_in}: {name}: Modrinth version `{version}` ({url}) has no files; pick another version")]
    NoFiles {
        name: String,
        defined_in: String,
        version: String,
        url: String,
    },
    #[error(
        "{defined_in}: {name}: Modrinth file {url} lists no sha512 or sha1 hash, so it cannot be verified; \
         use `url` + `hash` instead"
    )]
    NoHash {
        name: String,
        defined_in: String,
        url: String,
    },
    #[error("Modrinth API {url}: {message}; check --modrinth-api and the network, then run again")]
    Api { url: String, message: String },
}

#[derive(Debug, Default)]
struct RateState {
    remaining: Option<u64>,
    reset: Option<Duration>,
}

/// A Modrinth API client.
#[derive(Debug)]
pub struct ModrinthClient {
    base: String,
    http: reqwest::Client,
    sleeper: Arc<dyn Sleeper>,
    rate: tokio::sync::Mutex<RateState>,
}

/// `fabric or quilt on Minecraft 1.21.1 or 1.21`, for messages.
fn wanted(accepts: Option<&Accepts>) -> String {
    match accepts {
        None => "any loader and Minecraft version".to_owned(),
        Some(a) => {
            let loaders = match a.loaders() {
                [] => "no mod loader".to_owned(),
                l => l.join(" or "),
            };
            match a.minecraft().as_slice() {
                [] => loaders,
                mc => format!("{loaders} on Minecraft {}", mc.join(" or ")),
            }
        }
    }
}

impl ModrinthClient {
    pub fn new(base: &str, http: reqwest::Client, sleeper: Arc<dyn Sleeper>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            sleeper,
            rate: tokio::sync::Mutex::default(),
        }
    }

    /// GETs `path` (with `query`) as JSON; `None` on 404. Waits while the
    /// rate limit is used up, and once after a 429 (its reset, or
    /// `Retry-After`); retries 5xx with backoff.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, ModrinthError> {
        let url = format!("{}{path}", self.base);
        let api = |message: String| ModrinthError::Api {
            url: url.clone(),
            message,
        };
        let full = if query.is_empty() {
            ::url::Url::parse(&url)
        } else {
            ::url::Url::parse_with_params(&url, query)
        }
        .map_err(|e| api(e.to_string()))?;
        let mut attempt = 1;
        loop {
            // One request at a time while we hold the limiter: Modrinth's
            // budget is per client, and batches keep the count small.
            let mut rate = self.rate.lock().await;
            if rate.remaining == Some(0)
                && let Some(wait) = rate.reset.take()
            {
                tracing::info!(?wait, "Modrinth rate limit reached; waiting for its reset");
                self.sleeper.sleep(wait).await;
                rate.remaining = None;
            }
            let resp = self
                .http
                .get(full.clone())
                .send()
                .await
                .map_err(|e| api(error_chain(&e)))?;
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            rate.remaining = header("x-ratelimit-remaining").and_then(|v| v.trim().parse().ok());
            rate.reset = header("x-ratelimit-reset")
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs);
            let status = resp.status().as_u16();
            if status == 404 {
                return Ok(None);
            }
            if (status == 429 || status >= 500) && attempt < ATTEMPTS {
                let retry_after = header("retry-after")
                    .and_then(|v| parse_retry_after(v.as_str(), std::time::SystemTime::now()));
                let backoff = Duration::from_secs(1 << attempt);
                if status == 429 {
                    // The window resets after `X-Ratelimit-Reset` seconds: wait
                    // that once, holding the limiter so no other request spends
                    // the new window's first slot on another 429, and forget the
                    // exhausted budget so the next attempt does not wait again.
                    let wait = retry_after
                        .or(rate.reset)
                        .filter(|w| !w.is_zero())
                        .unwrap_or(backoff);
                    tracing::info!(?wait, %url, "Modrinth answered 429; waiting for the rate limit to reset");
                    *rate = RateState::default();
                    self.sleeper.sleep(wait).await;
                    drop(rate);
                } else {
                    drop(rate);
                    self.sleeper.sleep(retry_after.unwrap_or(backoff)).await;
                }
                attempt += 1;
                continue;
            }
            drop(rate);
            if !resp.status().is_success() {
                let body = resp.text().await.unwrap_or_default();
                let detail = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["description"].as_str().map(|d| format!(": {d}")))
                    .unwrap_or_default();
                return Err(api(format!("answered HTTP {status}{detail}")));
            }
            let body = resp.bytes().await.map_err(|e| api(error_chain(&e)))?;
            return serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| api(format!("unexpected answer: {e}")));
        }
    }

    /// Versions by id; ids Modrinth does not know are absent from the
    /// result, and strings that cannot be ids are never sent (Modrinth
    /// would refuse the whole batch).
    pub async fn versions(&self, ids: &[&str]) -> Result<Vec<Version>, ModrinthError> {
        let ids: Vec<&str> = ids.iter().copied().filter(|id| is_base62_id(id)).collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let ids = serde_json::to_string(chunk).map_err(|e| ModrinthError::Api {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
            let got: Option<Vec<Version>> = self.get("/v2/versions", &[("ids", ids)]).await?;
            out.extend(got.unwrap_or_default());
        }
        Ok(out)
    }

    /// A project's versions (newest first), for these loaders and Minecraft
    /// versions when given (`None`: no such project).
    pub async fn project_versions(
        &self,
        project: &str,
        loaders: &[&str],
        game_versions: &[&str],
    ) -> Result<Option<Vec<Version>>, ModrinthError> {
        let mut query = Vec::new();
        let json = |list: &[&str]| serde_json::to_string(list).unwrap_or_default();
        if !loaders.is_empty() {
            query.push(("loaders", json(loaders)));
        }
        if !game_versions.is_empty() {
            query.push(("game_versions", json(game_versions)));
        }
        self.get(&format!("/v2/project/{project}/version"), &query).await
    }

    /// Resolves Modrinth specs for any loader and Minecraft version (see
    /// [`ModrinthClient::resolve_accepting`]).
    pub async fn resolve(&self, specs: &[&ModSpec]) -> Vec<Result<ResolvedMod, ModrinthError>> {
        self.resolve_accepting(specs, None).await
    }

    /// Resolves Modrinth specs: version ids in batches, then everything
    /// else (version numbers, unknown ids) per project through the listing
    /// filtered to the pack's loaders and Minecraft versions. A number that
    /// still names several versions is an error naming them. One result per
    /// spec, in order.
    pub async fn resolve_accepting(
        &self,
        specs: &[&ModSpec],
        accepts: Option<&Accepts>,
    ) -> Vec<Result<ResolvedMod, ModrinthError>> {
        let wanted_specs: Vec<(&ModSpec, &str, &str)> = specs
            .iter()
            .filter_map(|s| match &s.source {
                ModSource::Modrinth { project, version } => Some((*s, project.as_str(), version.as_str())),
                _ => None,
            })
            .collect();
        let mut ids: Vec<&str> = wanted_specs.iter().map(|w| w.2).collect();
        ids.sort_unstable();
        ids.dedup();
        let by_id: BTreeMap<String, Version> = match self.versions(&ids).await {
            Ok(v) => v.into_iter().map(|v| (v.id.clone(), v)).collect(),
            Err(e) => {
                let msg = e.to_string();
                return wanted_specs
                    .iter()
                    .map(|_| {
                        Err(ModrinthError::Api {
                            url: format!("{}/v2/versions", self.base),
                            message: msg.clone(),
                        })
                    })
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(wanted_specs.len());
        for (spec, project, version) in wanted_specs {
            let found = match by_id.get(version) {
                Some(v) => Ok(v.clone()),
                None => self.by_number(spec, project, version, accepts).await,
            };
            out.push(found.and_then(|v| self.resolved(spec, v)));
        }
        out
    }

    /// The one version of `project` whose number (or id) is `version`, among
    /// those for the pack's loaders and Minecraft versions.
    async fn by_number(
        &self,
        spec: &ModSpec,
        project: &str,
        version: &str,
        accepts: Option<&Accepts>,
    ) -> Result<Version, ModrinthError> {
        let url = format!("{}/v2/project/{project}/version", self.base);
        let not_found = || ModrinthError::VersionNotFound {
            name: spec.name.clone(),
            defined_in: spec.defined_in.clone(),
            project: project.to_owned(),
            version: version.to_owned(),
            url: url.clone(),
        };
        let loaders: &[&str] = accepts.map_or(&[], |a| a.loaders());
        let minecraft = accepts.map(Accepts::minecraft).unwrap_or_default();
        let is_it = |v: &Version| v.version_number == version || v.id == version;
        let Some(list) = self.project_versions(project, loaders, &minecraft).await? else {
            return Err(not_found());
        };
        let mut candidates: Vec<Version> = list.into_iter().filter(is_it).collect();
        if candidates.is_empty() {
            if loaders.is_empty() && minecraft.is_empty() {
                return Err(not_found());
            }
            // Say whether the number exists for another loader or version.
            let others: Vec<String> = self
                .project_versions(project, &[], &[])
                .await?
                .unwrap_or_default()
                .iter()
                .filter(|v| is_it(v))
                .map(Version::describe)
                .collect();
            if others.is_empty() {
                return Err(not_found());
            }
            return Err(ModrinthError::WrongLoader {
                name: spec.name.clone(),
                defined_in: spec.defined_in.clone(),
                project: project.to_owned(),
                version: version.to_owned(),
                url,
                wanted: wanted(accepts),
                others: others.join(", "),
            });
        }
        if candidates.len() > 1
            && let Some(a) = accepts
        {
            // The pack's own loader, then its own Minecraft version, before
            // the merely compatible ones (a NeoForge pack takes Forge mods,
            // but a NeoForge build of the same number is the one it wants).
            let own_loader = a.target.loader_name();
            if candidates
                .iter()
                .any(|v| v.loaders.iter().any(|l| l == own_loader))
            {
                candidates.retain(|v| v.loaders.iter().any(|l| l == own_loader));
            }
            let own_mc = &a.target.minecraft;
            if candidates.iter().any(|v| v.game_versions.contains(own_mc)) {
                candidates.retain(|v| v.game_versions.contains(own_mc));
            }
        }
        if candidates.len() > 1 {
            return Err(ModrinthError::Ambiguous {
                name: spec.name.clone(),
                defined_in: spec.defined_in.clone(),
                project: project.to_owned(),
                version: version.to_owned(),
                wanted: wanted(accepts),
                candidates: candidates.iter().map(Version::describe).collect(),
            });
        }
        candidates.pop().ok_or_else(not_found)
    }

    fn resolved(&self, spec: &ModSpec, v: Version) -> Result<ResolvedMod, ModrinthError> {
        let url = format!("{}/v2/version/{}", self.base, v.id);
        let Some(file) = v.files.iter().find(|f| f.primary).or(v.files.first()).cloned() else {
            return Err(ModrinthError::NoFiles {
                name: spec.name.clone(),
                defined_in: spec.defined_in.clone(),
                version: v.id.clone(),
                url,
            });
        };
        let mut hashes: Vec<UpstreamHash> = [HashFormat::Sha512, HashFormat::Sha1]
            .into_iter()
            .filter_map(|f| {
                let text = file.hashes.get(f.name())?;
                UpstreamHash::parse(f, text).ok()
            })
            .collect();
        let verify = match (&spec.declared, hashes.first()) {
            (Some(d), _) => d.clone(),
            (None, Some(h)) => h.clone(),
            (None, None) => {
                return Err(ModrinthError::NoHash {
                    name: spec.name.clone(),
                    defined_in: spec.defined_in.clone(),
                    url: file.url.clone(),
                });
            }
        };
        if !hashes.contains(&verify) {
            hashes.push(verify.clone());
        }
        let file_name = file.filename.clone();
        let name = spec.filename.clone().unwrap_or_else(|| file_name.clone());
        Ok(ResolvedMod {
            path: install_path(&spec.dir, &name),
            url: Some(file.url.clone()),
            page: Some(format!("https://modrinth.com/mod/{}", v.project_id)),
            file_name,
            verify,
            hashes,
            size: Some(file.size),
            origin: format!("modrinth:{}/{}", v.project_id, v.id),
            display_version: v.version_number.clone(),
            distribution_disabled: false,
            modrinth: Some(v),
            spec: spec.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base62_strings_are_ids() {
        for id in ["AANobbMI", "ug2qKTPR", "sod1", "12345678"] {
            assert!(is_base62_id(id), "{id}");
        }
        for number in [
            "0.14.3",
            "mc1.21.1-0.6.0-fabric",
            "1.0.0+1.21",
            "",
            "v2 beta",
            "zzzzzzzzzzzz",
        ] {
            assert!(!is_base62_id(number), "{number}");
        }
    }
}
