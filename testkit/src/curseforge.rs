//! A fake CurseForge Core API on 127.0.0.1: `GET /v1/mods/{modId}`,
//! `GET /v1/mods/{modId}/files/{fileId}`, `POST /v1/mods/files` and
//! `POST /v1/mods`, answering `{"data": ...}` in the API's shapes, requiring
//! `x-api-key`, with `downloadUrl: null` for distribution-disabled files, and
//! its CDN (`/files/<a>/<b>/<name>`) on the same port.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::modrinth::{FakeHost, Logged, Running, json_response, lock, status};

/// The API key the fake accepts.
pub const API_KEY: &str = "test-curseforge-key";

#[derive(Debug, Default)]
struct State {
    host: FakeHost,
    files: Mutex<BTreeMap<u64, Value>>,
    mods: Mutex<BTreeMap<u64, Value>>,
}

/// The fake CurseForge.
#[derive(Debug)]
pub struct CurseForgeServer {
    state: Arc<State>,
    running: Running,
}

/// A file as added: where its bytes are served, if anywhere, and its sha1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCfFile {
    pub download_url: Option<String>,
    pub sha1: String,
    pub size: u64,
    /// The project's page (`links.websiteUrl`).
    pub website: String,
}

impl CurseForgeServer {
    /// Starts on 127.0.0.1:<random>. Must be called inside a tokio runtime.
    pub fn start() -> anyhow::Result<Self> {
        let state = Arc::new(State::default());
        let app = axum::Router::new().fallback(serve).with_state(state.clone());
        let running = Running::start(app)?;
        Ok(Self { state, running })
    }

    /// API base URL (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    pub fn host(&self) -> &FakeHost {
        &self.state.host
    }

    /// Adds file `file_id` of project `mod_id`; `distributable = false`
    /// gives `downloadUrl: null` and serves no bytes.
    pub fn add_file(
        &self,
        mod_id: u64,
        file_id: u64,
        file_name: &str,
        bytes: &[u8],
        distributable: bool,
    ) -> FakeCfFile {
        let path = format!("/files/{}/{}/{file_name}", file_id / 1000, file_id % 1000);
        let download_url = distributable.then(|| format!("{}{path}", self.url()));
        if distributable {
            self.state.host.put_file(&path, Bytes::copy_from_slice(bytes));
        }
        let sha1 = hex::encode(sha1::Sha1::digest(bytes));
        let website = format!("https://www.curseforge.com/minecraft/mc-mods/project-{mod_id}");
        let file = json!({
            "id": file_id, "gameId": 432, "modId": mod_id, "isAvailable": true,
            "displayName": file_name.trim_end_matches(".jar"), "fileName": file_name,
            "releaseType": 1, "fileStatus": 4,
            "hashes": [{ "value": sha1, "algo": 1 }],
            "fileDate": "2024-01-01T00:00:00Z", "fileLength": bytes.len(), "downloadCount": 0,
            "downloadUrl": download_url, "gameVersions": ["1.21.1", "Fabric"],
            "dependencies": [], "alternateFileId": 0, "isServerPack": false,
            "fileFingerprint": 0, "modules": []
        });
        lock(&self.state.files).insert(file_id, file);
        lock(&self.state.mods).insert(
            mod_id,
            json!({
                "id": mod_id, "gameId": 432, "name": format!("Project {mod_id}"),
                "slug": format!("project-{mod_id}"),
                "links": { "websiteUrl": website, "wikiUrl": "", "issuesUrl": "", "sourceUrl": "" },
                "allowModDistribution": distributable
            }),
        );
        FakeCfFile {
            download_url,
            sha1,
            size: bytes.len() as u64,
            website,
        }
    }

    /// Every request answered (API and CDN).
    pub fn requests(&self) -> Vec<Logged> {
        self.state.host.requests()
    }

    pub fn reset_requests(&self) {
        self.state.host.reset_requests();
    }
}

async fn serve(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    req: axum::extract::Request,
) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let key_ok = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let mut resp = if path.starts_with("/files/") {
        state.host.serve_file(&path).unwrap_or_else(|| status(404))
    } else if !key_ok {
        status(403)
    } else {
        api(&state, &method, &path, &body)
    };
    if method == "HEAD" {
        *resp.body_mut() = Body::empty();
    }
    state.host.log(&method, &path, resp.status().as_u16());
    resp
}

fn ids(body: &[u8], field: &str) -> Vec<u64> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

fn api(state: &State, method: &str, path: &str, body: &[u8]) -> Response {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let files = lock(&state.files);
    let mods = lock(&state.mods);
    let data = |v: Value| json_response(&json!({ "data": v }));
    match (method, segs.as_slice()) {
        ("GET", ["v1", "mods", m]) => match m.parse::<u64>().ok().and_then(|m| mods.get(&m)) {
            Some(v) => data(v.clone()),
            None => status(404),
        },
        ("GET", ["v1", "mods", m, "files", f]) => {
            let found = f
                .parse::<u64>()
                .ok()
                .and_then(|f| files.get(&f))
                .filter(|v| v["modId"].as_u64().map(|id| id.to_string()).as_deref() == Some(*m));
            match found {
                Some(v) => data(v.clone()),
                None => status(404),
            }
        }
        ("POST", ["v1", "mods", "files"]) => data(Value::Array(
            ids(body, "fileIds")
                .iter()
                .filter_map(|id| files.get(id).cloned())
                .collect(),
        )),
        ("POST", ["v1", "mods"]) => data(Value::Array(
            ids(body, "modIds")
                .iter()
                .filter_map(|id| mods.get(id).cloned())
                .collect(),
        )),
        _ => status(404),
    }
}
