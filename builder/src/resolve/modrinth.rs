//! Modrinth (API v2): versions by id in batches (`GET /v2/versions?ids=[..]`),
//! a project's versions by version number as the fallback
//! (`GET /v2/project/{id}/version`), and the rate-limit headers
//! (`X-Ratelimit-Remaining`, `X-Ratelimit-Reset`) respected by waiting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::download::{Sleeper, error_chain, parse_retry_after};
use crate::packwiz::{HashFormat, UpstreamHash};

use super::{ModSource, ModSpec, ResolvedMod, install_path};

/// Ids per batch request (keeps URLs well under common limits).
const BATCH: usize = 100;
/// Attempts for one API request answered 429 or 5xx.
const ATTEMPTS: u32 = 4;

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
    /// rate limit is used up, and after 429s as the headers say.
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
        let full = ::url::Url::parse_with_params(&url, query).map_err(|e| api(e.to_string()))?;
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
                let wait = header("retry-after")
                    .and_then(|v| parse_retry_after(v.as_str(), std::time::SystemTime::now()))
                    .or(rate.reset)
                    .unwrap_or(Duration::from_secs(1 << attempt));
                drop(rate);
                self.sleeper.sleep(wait).await;
                attempt += 1;
                continue;
            }
            drop(rate);
            if !resp.status().is_success() {
                return Err(api(format!("answered HTTP {status}")));
            }
            let body = resp.bytes().await.map_err(|e| api(error_chain(&e)))?;
            return serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| api(format!("unexpected answer: {e}")));
        }
    }

    /// Versions by id; ids Modrinth does not know are absent from the result.
    pub async fn versions(&self, ids: &[&str]) -> Result<Vec<Version>, ModrinthError> {
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

    /// Every version of a project (`None`: no such project).
    pub async fn project_versions(&self, project: &str) -> Result<Option<Vec<Version>>, ModrinthError> {
        self.get(&format!("/v2/project/{project}/version"), &[]).await
    }

    /// Resolves Modrinth specs: versions by id in batches, then unknown ids
    /// as version numbers of their project. One result per spec, in order.
    pub async fn resolve(&self, specs: &[&ModSpec]) -> Vec<Result<ResolvedMod, ModrinthError>> {
        let wanted: Vec<(&ModSpec, &str, &str)> = specs
            .iter()
            .filter_map(|s| match &s.source {
                ModSource::Modrinth { project, version } => Some((*s, project.as_str(), version.as_str())),
                _ => None,
            })
            .collect();
        let mut ids: Vec<&str> = wanted.iter().map(|w| w.2).collect();
        ids.sort_unstable();
        ids.dedup();
        let by_id: BTreeMap<String, Version> = match self.versions(&ids).await {
            Ok(v) => v.into_iter().map(|v| (v.id.clone(), v)).collect(),
            Err(e) => {
                let msg = e.to_string();
                return wanted
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
        let mut out = Vec::with_capacity(wanted.len());
        for (spec, project, version) in wanted {
            let found = match by_id.get(version) {
                Some(v) => Ok(Some(v.clone())),
                None => self.project_versions(project).await.map(|list| {
                    list.unwrap_or_default()
                        .into_iter()
                        .find(|v| v.version_number == version || v.id == version)
                }),
            };
            out.push(match found {
                Ok(Some(v)) => self.resolved(spec, v),
                Ok(None) => Err(ModrinthError::VersionNotFound {
                    name: spec.name.clone(),
                    defined_in: spec.defined_in.clone(),
                    project: project.to_owned(),
                    version: version.to_owned(),
                    url: format!("{}/v2/version/{version}", self.base),
                }),
                Err(e) => Err(e),
            });
        }
        out
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
