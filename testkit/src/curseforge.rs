//! A stand-in for the CurseForge Core API on 127.0.0.1, as strict as the real
//! service, with its file CDN on another port (another origin, as
//! `edge.forgecdn.net` is to `api.curseforge.com`). Taken from the CurseForge
//! Core API documentation (docs.curseforge.com, "Authentication", "Mods",
//! "Files", "Fingerprints", and the schemas `File`, `FileHash`, `Mod`,
//! `GetFilesBodyRequest`, `GetModsByIdsListRequestBody`,
//! `GetFingerprintMatchesRequestBody`) and from what clients of the real API
//! record about it:
//!
//! - every API route requires the `x-api-key` header; a missing or wrong key
//!   is **403** ("Authentication: API Key, in: header").
//! - the API also answers **403** when overloaded: CloudFront's HTML page
//!   "The request could not be satisfied ... There might be too much traffic"
//!   (itzg/docker-minecraft-server#3080, itzg/mc-image-helper#264 and
//!   `CurseForgeApiClient.errorMapForbidden`). [`CurseForgeServer::overload`].
//! - `POST /v1/mods/files` (`{"fileIds": [..]}`) and `POST /v1/mods`
//!   (`{"modIds": [..]}`) answer `{"data": [..]}` leaving unknown ids out;
//!   a body that is not that JSON is **400**. `GET /v1/mods/{modId}` and
//!   `GET /v1/mods/{modId}/files/{fileId}` answer `{"data": ..}` or 404.
//! - `POST /v1/fingerprints` (`{"fingerprints": [..]}`) matches files by
//!   `fileFingerprint`: MurmurHash2, seed 1, over the file with the bytes
//!   9, 10, 13 and 32 removed (the `File.fileFingerprint` CurseForge
//!   computes; packwiz `curseforge/murmur2/hash.go`).
//! - `hashes` holds `{value, algo}` with algo 1 = SHA-1, 2 = MD5 (`HashAlgo`).
//! - a file whose author disabled third-party distribution has
//!   `downloadUrl: null` and its mod `allowModDistribution: false`; its bytes
//!   are on no CDN URL the API gives.
//! - `downloadUrl` names the file as uploaded, spaces and brackets included
//!   (`normalizeDownloadUrl` in mc-image-helper's `CurseForgeApiClient`);
//!   the CDN serves it only at the RFC 3986 percent-encoded path and answers
//!   400 to a request path with a raw `[`, `]` or other character outside
//!   RFC 3986 `pchar`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::host::{FakeHost, Logged, Running, json_response, lock, status};

/// The API key the fake accepts.
pub const API_KEY: &str = "test-curseforge-key";

/// CurseForge's file fingerprint: MurmurHash2 (Austin Appleby's reference,
/// 32-bit, little-endian blocks) with seed 1 over the bytes that are not
/// 9, 10, 13 or 32. Written here from the reference so the stand-in does not
/// share Atlas's implementation.
pub fn fingerprint(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let data: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !matches!(b, 9 | 10 | 13 | 32))
        .collect();
    let mut h: u32 = 1 ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// RFC 3986 `pchar` (plus `/` and `%` for segments and escapes).
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// `name` percent-encoded as an RFC 3986 path segment.
pub fn encode_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b != b'/' && b != b'%' && is_path_char(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Default)]
struct State {
    host: FakeHost,
    cdn: FakeHost,
    files: Mutex<BTreeMap<u64, Value>>,
    mods: Mutex<BTreeMap<u64, Value>>,
    /// API requests still to answer with CloudFront's overload 403.
    overloaded: Mutex<usize>,
}

/// The fake CurseForge.
#[derive(Debug)]
pub struct CurseForgeServer {
    state: Arc<State>,
    running: Running,
    cdn: Running,
}

/// A file as added: where its bytes are served, if anywhere, and its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCfFile {
    /// `downloadUrl` exactly as the API gives it (raw file name).
    pub download_url: Option<String>,
    pub sha1: String,
    pub md5: String,
    pub fingerprint: u32,
    pub size: u64,
    /// The project's page (`links.websiteUrl`).
    pub website: String,
}

impl CurseForgeServer {
    /// Starts the API and the CDN on two 127.0.0.1 ports. Must be called
    /// inside a tokio runtime.
    pub fn start() -> anyhow::Result<Self> {
        let state = Arc::new(State::default());
        let app = axum::Router::new().fallback(serve).with_state(state.clone());
        let running = Running::start(app)?;
        let cdn_app = axum::Router::new().fallback(serve_cdn).with_state(state.clone());
        let cdn = Running::start(cdn_app)?;
        Ok(Self { state, running, cdn })
    }

    /// API base URL (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// CDN base URL (no trailing slash); another origin than the API.
    pub fn cdn_url(&self) -> String {
        format!("http://{}", self.cdn.addr)
    }

    /// The API's request log and faults.
    pub fn host(&self) -> &FakeHost {
        &self.state.host
    }

    /// The CDN's request log and faults (keyed by the encoded path).
    pub fn cdn(&self) -> &FakeHost {
        &self.state.cdn
    }

    /// The next `requests` API requests get CloudFront's overload 403.
    pub fn overload(&self, requests: usize) {
        *lock(&self.state.overloaded) = requests;
    }

    /// Adds file `file_id` of project `mod_id` for Fabric on 1.21.1;
    /// `distributable = false` gives `downloadUrl: null` and serves no bytes.
    pub fn add_file(
        &self,
        mod_id: u64,
        file_id: u64,
        file_name: &str,
        bytes: &[u8],
        distributable: bool,
    ) -> FakeCfFile {
        let path = format!("/files/{}/{}/{file_name}", file_id / 1000, file_id % 1000);
        let encoded = format!(
            "/files/{}/{}/{}",
            file_id / 1000,
            file_id % 1000,
            encode_segment(file_name)
        );
        let download_url = distributable.then(|| format!("{}{path}", self.cdn_url()));
        if distributable {
            self.state.cdn.put_file(&encoded, Bytes::copy_from_slice(bytes));
        }
        let sha1 = hex::encode(sha1::Sha1::digest(bytes));
        let md5 = hex::encode(md5::Md5::digest(bytes));
        let fp = fingerprint(bytes);
        let website = format!("https://www.curseforge.com/minecraft/mc-mods/project-{mod_id}");
        let file = json!({
            "id": file_id, "gameId": 432, "modId": mod_id, "isAvailable": true,
            "displayName": file_name.trim_end_matches(".jar"), "fileName": file_name,
            "releaseType": 1, "fileStatus": 4,
            "hashes": [{ "value": sha1, "algo": 1 }, { "value": md5, "algo": 2 }],
            "fileDate": "2024-01-01T00:00:00Z", "fileLength": bytes.len(), "downloadCount": 0,
            "downloadUrl": download_url, "gameVersions": ["1.21.1", "Fabric"],
            "sortableGameVersions": [], "dependencies": [], "alternateFileId": 0,
            "isServerPack": false, "fileFingerprint": fp, "modules": []
        });
        lock(&self.state.files).insert(file_id, file);
        lock(&self.state.mods).insert(
            mod_id,
            json!({
                "id": mod_id, "gameId": 432, "name": format!("Project {mod_id}"),
                "slug": format!("project-{mod_id}"),
                "links": { "websiteUrl": website, "wikiUrl": "", "issuesUrl": "", "sourceUrl": "" },
                "allowModDistribution": distributable, "isAvailable": true
            }),
        );
        FakeCfFile {
            download_url,
            sha1,
            md5,
            fingerprint: fp,
            size: bytes.len() as u64,
            website,
        }
    }

    /// API requests answered.
    pub fn requests(&self) -> Vec<Logged> {
        self.state.host.requests()
    }

    /// CDN requests answered.
    pub fn cdn_requests(&self) -> Vec<Logged> {
        self.state.cdn.requests()
    }

    pub fn reset_requests(&self) {
        self.state.host.reset_requests();
        self.state.cdn.reset_requests();
    }
}

/// CloudFront's answer when the API is overloaded (as clients recorded it).
const OVERLOADED: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" \
    \"http://www.w3.org/TR/html4/loose.dtd\">\n<HTML><HEAD><META HTTP-EQUIV=\"Content-Type\" \
    CONTENT=\"text/html; charset=iso-8859-1\">\n<TITLE>ERROR: The request could not be satisfied</TITLE>\n\
    </HEAD><BODY>\n<H1>403 ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size=\"1px\">\n\
    Request blocked.\nWe can't connect to the server for this app or website at this time. There might be \
    too much traffic or a configuration error. Try again later, or contact the app or website owner.\n</BODY></HTML>\n";

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
    let overloaded = {
        let mut n = lock(&state.overloaded);
        let hit = *n > 0;
        *n = n.saturating_sub(1);
        hit
    };
    let mut resp = if overloaded {
        let mut r = Response::new(Body::from(OVERLOADED));
        *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/html"));
        r.headers_mut()
            .insert("x-cache", HeaderValue::from_static("Error from cloudfront"));
        r
    } else if let Some(code) = match state.host.take_fault(&path) {
        Some(crate::host::FakeFault::Status(c)) => Some(c),
        _ => None,
    } {
        status(code)
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

async fn serve_cdn(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    req: axum::extract::Request,
) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let resp = if !path.bytes().all(is_path_char) {
        status(400)
    } else if method != "GET" {
        status(405)
    } else {
        state.cdn.serve_file(&path).unwrap_or_else(|| status(404))
    };
    state.cdn.log(&method, &path, resp.status().as_u16());
    resp
}

/// The `field` array of a JSON body, each an integer; `None` when the body
/// is not such an object (the real API then answers 400).
fn ids(body: &[u8], field: &str) -> Option<Vec<u64>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get(field)?.as_array()?.iter().map(Value::as_u64).collect()
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
        ("POST", ["v1", "mods", "files"]) => match ids(body, "fileIds") {
            None => status(400),
            Some(ids) => data(Value::Array(
                ids.iter().filter_map(|id| files.get(id).cloned()).collect(),
            )),
        },
        ("POST", ["v1", "mods"]) => match ids(body, "modIds") {
            None => status(400),
            Some(ids) => data(Value::Array(
                ids.iter().filter_map(|id| mods.get(id).cloned()).collect(),
            )),
        },
        ("POST", ["v1", "fingerprints"]) => match ids(body, "fingerprints") {
            None => status(400),
            Some(fps) => {
                let matches: Vec<Value> = files
                    .values()
                    .filter(|f| fps.contains(&f["fileFingerprint"].as_u64().unwrap_or(0)))
                    .map(|f| json!({ "id": f["modId"], "file": f, "latestFiles": [f] }))
                    .collect();
                let exact: Vec<Value> = matches
                    .iter()
                    .map(|m| m["file"]["fileFingerprint"].clone())
                    .collect();
                let unmatched: Vec<u64> = fps
                    .iter()
                    .copied()
                    .filter(|fp| !exact.iter().any(|e| e.as_u64() == Some(*fp)))
                    .collect();
                data(json!({
                    "isCacheBuilt": true, "exactMatches": matches, "exactFingerprints": exact,
                    "partialMatches": [], "partialMatchFingerprints": {},
                    "installedFingerprints": fps, "unmatchedFingerprints": unmatched
                }))
            }
        },
        _ => status(404),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request over a raw connection: (status, body).
    async fn send(base: &str, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let host = base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
        let key = key.map(|k| format!("x-api-key: {k}\r\n")).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{key}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        (head[9..12].parse().expect("status"), body.to_owned())
    }

    #[tokio::test]
    async fn answers_as_strictly_as_curseforge() {
        let cf = CurseForgeServer::start().expect("start");
        let file = cf.add_file(238_222, 4_712_866, "JEI [1.21.1] 19.0.jar", b"jei", true);
        let hidden = cf.add_file(1, 2_000, "hidden.jar", b"hidden", false);
        assert_eq!(hidden.download_url, None);
        let api = cf.url();
        let files = "{\"fileIds\": [4712866, 2000, 99]}";
        assert_eq!(send(&api, "POST", "/v1/mods/files", None, files).await.0, 403);
        let (code, body) = send(&api, "POST", "/v1/mods/files", Some(API_KEY), files).await;
        assert_eq!(code, 200);
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["data"][0]["fileFingerprint"], fingerprint(b"jei"));
        assert_eq!(v["data"][1]["downloadUrl"], Value::Null);
        assert_eq!(
            send(&api, "POST", "/v1/mods/files", Some(API_KEY), "fileIds=1")
                .await
                .0,
            400
        );
        cf.overload(1);
        let (code, body) = send(&api, "POST", "/v1/mods", Some(API_KEY), "{\"modIds\": [1]}").await;
        assert!(code == 403 && body.contains("too much traffic"), "{code} {body}");
        // The CDN: another origin, the encoded name only.
        let url = file.download_url.expect("distributable");
        assert!(url.starts_with(&cf.cdn_url()) && url.contains(" [1.21.1] "));
        let path = url.trim_start_matches(&cf.cdn_url());
        let encoded = path.replace(' ', "%20").replace('[', "%5B").replace(']', "%5D");
        assert_eq!(
            send(&cf.cdn_url(), "GET", &encoded, None, "").await,
            (200, "jei".to_owned())
        );
        let raw_brackets = path.replace(' ', "%20");
        assert_eq!(send(&cf.cdn_url(), "GET", &raw_brackets, None, "").await.0, 400);
    }

    #[test]
    fn fingerprint_strips_whitespace_and_matches_the_reference() {
        // The vector packwiz and Atlas pin ("abc" → 1621425345), and the
        // whitespace CurseForge strips.
        assert_eq!(fingerprint(b"abc"), 1_621_425_345);
        assert_eq!(fingerprint(b" a\tb\r\nc "), fingerprint(b"abc"));
        let data: Vec<u8> = (0..=255u8).cycle().take(10_007).collect();
        assert_eq!(
            fingerprint(&data),
            atlas_proto::upstream::curseforge_fingerprint(&data)
        );
    }

    #[test]
    fn segments_are_encoded_as_rfc_3986_asks() {
        assert_eq!(
            encode_segment("Mod Name [1.20].jar"),
            "Mod%20Name%20%5B1.20%5D.jar"
        );
        assert_eq!(encode_segment("a+b(c).jar"), "a+b(c).jar");
        assert!(!"/files/1/2/a [b].jar".bytes().all(is_path_char));
        assert!("/files/1/2/a%20%5Bb%5D.jar".bytes().all(is_path_char));
    }
}
