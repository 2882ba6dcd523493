//! CurseForge Core API: files by id in one batch (`POST /v1/mods/files`),
//! projects for their web pages (`POST /v1/mods`), authenticated with
//! `x-api-key`. A file whose `downloadUrl` is null has distribution disabled:
//! it resolves without a URL, stays upstream-only, and must come from the
//! creator's folder of manual downloads.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::download::error_chain;
use crate::packwiz::{HashFormat, UpstreamHash};

use super::{CURSEFORGE_KEY_ENV, ModSource, ModSpec, ResolvedMod, install_path};

/// A hash in `hashes[]`: `algo` 1 = sha1, 2 = md5.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileHash {
    pub value: String,
    pub algo: u32,
}

/// A file, as the Core API returns it (the fields Atlas uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct File {
    pub id: u64,
    pub mod_id: u64,
    #[serde(default)]
    pub display_name: String,
    pub file_name: String,
    pub file_length: u64,
    /// `null` when the author disabled third-party distribution.
    pub download_url: Option<String>,
    #[serde(default)]
    pub hashes: Vec<FileHash>,
    #[serde(default)]
    pub file_fingerprint: u64,
}

impl File {
    /// The file's hashes: sha1 and md5 from `hashes`, and the murmur2 fingerprint.
    pub fn upstream_hashes(&self) -> Vec<UpstreamHash> {
        let mut out: Vec<UpstreamHash> = self
            .hashes
            .iter()
            .filter_map(|h| {
                let format = match h.algo {
                    1 => HashFormat::Sha1,
                    2 => HashFormat::Md5,
                    _ => return None,
                };
                UpstreamHash::parse(format, &h.value).ok()
            })
            .collect();
        if let Ok(fp) = u32::try_from(self.file_fingerprint)
            && fp != 0
        {
            out.push(UpstreamHash {
                format: HashFormat::Murmur2,
                bytes: fp.to_be_bytes().to_vec(),
            });
        }
        out.sort_by_key(|h| h.format);
        out.dedup();
        out
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Links {
    website_url: Option<String>,
}

/// A project (`mod`), for its page.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Project {
    id: u64,
    #[serde(default)]
    links: Links,
}

#[derive(Debug, Deserialize)]
struct Data<T> {
    data: T,
}

/// A CurseForge request or lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum CurseForgeError {
    #[error(
        "{defined_in}: {name}: CurseForge file {file} of project {project} needs the CurseForge API, \
         but no API key is set; set {CURSEFORGE_KEY_ENV} (https://console.curseforge.com)"
    )]
    NoKey {
        name: String,
        defined_in: String,
        project: u64,
        file: u64,
    },
    #[error(
        "{defined_in}: {name}: CurseForge has no file {file} in project {project} ({url}); \
         check the project and file ids on the project's Files page"
    )]
    FileNotFound {
        name: String,
        defined_in: String,
        project: u64,
        file: u64,
        url: String,
    },
    #[error("{defined_in}: {name}: CurseForge file {url} lists no usable hash; use `url` + `hash` instead")]
    NoHash {
        name: String,
        defined_in: String,
        url: String,
    },
    #[error("CurseForge API {url}: {message}; check {CURSEFORGE_KEY_ENV}, --curseforge-api and the network")]
    Api { url: String, message: String },
}

/// A CurseForge Core API client.
#[derive(Debug)]
pub struct CurseForgeClient {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl CurseForgeClient {
    pub fn new(base: &str, key: Option<String>, http: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
            http,
        }
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, CurseForgeError> {
        let url = format!("{}{path}", self.base);
        let api = |message: String| CurseForgeError::Api {
            url: url.clone(),
            message,
        };
        let resp = self
            .http
            .post(&url)
            .header("x-api-key", self.key.as_deref().unwrap_or_default())
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| api(error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(api(format!("answered HTTP {}", status.as_u16())));
        }
        let bytes = resp.bytes().await.map_err(|e| api(error_chain(&e)))?;
        let data: Data<T> =
            serde_json::from_slice(&bytes).map_err(|e| api(format!("unexpected answer: {e}")))?;
        Ok(data.data)
    }

    /// Files by id (unknown ids are absent).
    pub async fn files(&self, ids: &[u64]) -> Result<Vec<File>, CurseForgeError> {
        self.post("/v1/mods/files", serde_json::json!({ "fileIds": ids }))
            .await
    }

    /// Project web pages by project id.
    pub async fn pages(&self, ids: &[u64]) -> Result<BTreeMap<u64, String>, CurseForgeError> {
        let projects: Vec<Project> = self
            .post("/v1/mods", serde_json::json!({ "modIds": ids }))
            .await?;
        Ok(projects
            .into_iter()
            .filter_map(|p| Some((p.id, p.links.website_url?)))
            .collect())
    }

    /// Resolves CurseForge specs with one files request (and one projects
    /// request for pages). One result per spec, in order.
    pub async fn resolve(&self, specs: &[&ModSpec]) -> Vec<Result<ResolvedMod, CurseForgeError>> {
        let ids: Vec<(u64, u64)> = specs
            .iter()
            .map(|s| match s.source {
                ModSource::CurseForge { project, file } => (project, file),
                _ => (0, 0),
            })
            .collect();
        if specs.is_empty() {
            return Vec::new();
        }
        if self.key.is_none() {
            return specs
                .iter()
                .zip(&ids)
                .map(|(s, (project, file))| {
                    Err(CurseForgeError::NoKey {
                        name: s.name.clone(),
                        defined_in: s.defined_in.clone(),
                        project: *project,
                        file: *file,
                    })
                })
                .collect();
        }
        let all_failed = |e: CurseForgeError| {
            let (url, message) = match e {
                CurseForgeError::Api { url, message } => (url, message),
                other => (self.base.clone(), other.to_string()),
            };
            specs
                .iter()
                .map(|_| {
                    Err(CurseForgeError::Api {
                        url: url.clone(),
                        message: message.clone(),
                    })
                })
                .collect()
        };
        let mut file_ids: Vec<u64> = ids.iter().map(|i| i.1).collect();
        file_ids.sort_unstable();
        file_ids.dedup();
        let files: BTreeMap<u64, File> = match self.files(&file_ids).await {
            Ok(f) => f.into_iter().map(|f| (f.id, f)).collect(),
            Err(e) => return all_failed(e),
        };
        let mut projects: Vec<u64> = ids.iter().map(|i| i.0).collect();
        projects.sort_unstable();
        projects.dedup();
        let pages = match self.pages(&projects).await {
            Ok(p) => p,
            Err(e) => return all_failed(e),
        };
        specs
            .iter()
            .zip(ids)
            .map(|(spec, (project, file_id))| {
                let file = files
                    .get(&file_id)
                    .filter(|f| f.mod_id == project)
                    .ok_or_else(|| CurseForgeError::FileNotFound {
                        name: spec.name.clone(),
                        defined_in: spec.defined_in.clone(),
                        project,
                        file: file_id,
                        url: format!("{}/v1/mods/{project}/files/{file_id}", self.base),
                    })?;
                let page = pages
                    .get(&project)
                    .cloned()
                    .unwrap_or_else(|| format!("https://www.curseforge.com/projects/{project}"));
                resolved(spec, file, page)
            })
            .collect()
    }
}

fn resolved(spec: &ModSpec, file: &File, page: String) -> Result<ResolvedMod, CurseForgeError> {
    let mut hashes = file.upstream_hashes();
    let verify = match &spec.declared {
        Some(d) => d.clone(),
        None => hashes
            .iter()
            .find(|h| h.format == HashFormat::Sha1)
            .or(hashes.first())
            .cloned()
            .ok_or_else(|| CurseForgeError::NoHash {
                name: spec.name.clone(),
                defined_in: spec.defined_in.clone(),
                url: file.download_url.clone().unwrap_or_else(|| page.clone()),
            })?,
    };
    if !hashes.contains(&verify) {
        hashes.push(verify.clone());
        hashes.sort_by_key(|h| h.format);
    }
    let name = spec.filename.clone().unwrap_or_else(|| file.file_name.clone());
    Ok(ResolvedMod {
        path: install_path(&spec.dir, &name),
        url: file.download_url.clone(),
        page: Some(format!("{}/files/{}", page.trim_end_matches('/'), file.id)),
        file_name: file.file_name.clone(),
        verify,
        hashes,
        size: Some(file.file_length),
        origin: format!("curseforge:{}/{}", file.mod_id, file.id),
        display_version: file.display_name.clone(),
        distribution_disabled: file.download_url.is_none(),
        modrinth: None,
        spec: spec.clone(),
    })
}
