//! CurseForge Core API (docs.curseforge.com): files by id in one batch
//! (`POST /v1/mods/files`), projects for their web pages (`POST /v1/mods`,
//! best effort: a failure only loses the links), authenticated with
//! `x-api-key`. 429, 5xx and 403 are retried with backoff: CurseForge also
//! answers 403 when overloaded (CloudFront's "too much traffic" page), so a
//! 403 is reported as "key refused or rate limited", never as a bad key alone.
//! A file whose `downloadUrl` is null has distribution disabled: it resolves
//! without a URL and must come from the creator's folder of manual
//! downloads. Download URLs name the file as uploaded (spaces, brackets) and
//! are percent-encoded here before use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::download::{Sleeper, error_chain, parse_retry_after};
use crate::packwiz::{HashFormat, UpstreamHash};

use super::spec::{ModSource, ModSpec, ResolvedMod, install_path};

/// Environment variable holding the CurseForge API key.
pub const CURSEFORGE_KEY_ENV: &str = "CURSEFORGE_API_KEY";

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
#[derive(Debug, Clone, thiserror::Error)]
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
    #[error(
        "CurseForge API {url} answered 403 Forbidden {attempts} times{}; either {CURSEFORGE_KEY_ENV} is not \
         a valid key (check it at https://console.curseforge.com) or CurseForge is limiting requests: \
         wait a few minutes and run again",
        if *.overloaded { " (CloudFront: \"There might be too much traffic\")" } else { "" }
    )]
    Forbidden {
        url: String,
        attempts: u32,
        /// The answer was CloudFront's overload page, not the API's.
        overloaded: bool,
    },
    #[error(
        "{defined_in}: {name}: CurseForge gives `{url}` as the download URL of file {file}, which is not a URL: {message}"
    )]
    BadUrl {
        name: String,
        defined_in: String,
        file: u64,
        url: String,
        message: String,
    },
}

/// Attempts for one API request answered 403, 429 or 5xx.
const ATTEMPTS: u32 = 4;

/// RFC 3986 `pchar`, plus `/` between segments and `%` of escapes already made.
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// A CurseForge `downloadUrl` made requestable: the file name in it is the
/// uploaded one, with spaces, brackets and other characters RFC 3986 does
/// not allow in a path; those are percent-encoded (escapes already present
/// are kept).
pub fn normalize_download_url(raw: &str) -> Result<String, String> {
    let mut url = ::url::Url::parse(raw).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http or https", url.scheme()));
    }
    let path: String = url
        .path()
        .bytes()
        .map(|b| {
            if is_path_char(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    url.set_path(&path);
    Ok(url.into())
}

/// A CurseForge Core API client.
#[derive(Debug)]
pub struct CurseForgeClient {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
    sleeper: Arc<dyn Sleeper>,
}

impl CurseForgeClient {
    pub fn new(base: &str, key: Option<String>, http: reqwest::Client, sleeper: Arc<dyn Sleeper>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
            http,
            sleeper,
        }
    }

    /// POSTs `body` to `path` and reads `{"data": ...}`. 403, 429 and 5xx
    /// are retried with backoff (`Retry-After` when given).
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
        let mut attempt = 1;
        loop {
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
            let status = resp.status().as_u16();
            if matches!(status, 403 | 429) || status >= 500 {
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                let text = resp.text().await.unwrap_or_default();
                if attempt >= ATTEMPTS {
                    return Err(if status == 403 {
                        CurseForgeError::Forbidden {
                            url,
                            attempts: attempt,
                            overloaded: text.contains("too much traffic"),
                        }
                    } else {
                        api(format!("answered HTTP {status} {attempt} times"))
                    });
                }
                let wait = after.unwrap_or(Duration::from_secs(1 << attempt));
                tracing::info!(%url, status, ?wait, "CurseForge API refused the request; retrying");
                self.sleeper.sleep(wait).await;
                attempt += 1;
                continue;
            }
            if !resp.status().is_success() {
                return Err(api(format!("answered HTTP {status}")));
            }
            let bytes = resp.bytes().await.map_err(|e| api(error_chain(&e)))?;
            let data: Data<T> =
                serde_json::from_slice(&bytes).map_err(|e| api(format!("unexpected answer: {e}")))?;
            return Ok(data.data);
        }
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
        let all_failed = |e: CurseForgeError| specs.iter().map(|_| Err(e.clone())).collect();
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
        // Pages are only links for messages: without them every file still resolves.
        let pages = match self.pages(&projects).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("CurseForge project pages unavailable, using generic links: {e}");
                BTreeMap::new()
            }
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
    let url = match &file.download_url {
        None => None,
        Some(raw) => Some(
            normalize_download_url(raw).map_err(|message| CurseForgeError::BadUrl {
                name: spec.name.clone(),
                defined_in: spec.defined_in.clone(),
                file: file.id,
                url: raw.clone(),
                message,
            })?,
        ),
    };
    Ok(ResolvedMod {
        path: install_path(&spec.dir, &name),
        url,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_urls_with_spaces_and_brackets_are_encoded() {
        let url = "https://edge.forgecdn.net/files/3456/789/Mod Name [1.20.1] {beta}|x^.jar";
        assert_eq!(
            normalize_download_url(url).as_deref(),
            Ok("https://edge.forgecdn.net/files/3456/789/Mod%20Name%20%5B1.20.1%5D%20%7Bbeta%7D%7Cx%5E.jar")
        );
        let clean = "https://mediafilez.forgecdn.net/files/4712/866/jei-1.20.1-forge-15.2.0.27.jar";
        assert_eq!(normalize_download_url(clean).as_deref(), Ok(clean));
        let escaped = "https://edge.forgecdn.net/files/1/2/a%2Bb+c(1).jar";
        assert_eq!(normalize_download_url(escaped).as_deref(), Ok(escaped));
        assert!(normalize_download_url("ftp://x/y.jar").is_err());
        assert!(normalize_download_url("not a url").is_err());
    }
}
