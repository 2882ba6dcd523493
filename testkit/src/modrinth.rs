//! A stand-in for Modrinth's API v2 and CDN on 127.0.0.1, as strict as the
//! real service. Every behaviour below is taken from Modrinth's OpenAPI
//! document (docs.modrinth.com, `openapi.yaml` in modrinth/docs
//! `static/openapi.yaml` and modrinth/code `apps/docs/public/openapi.yaml`)
//! or, where the document is silent, from the server itself (labrinth, in
//! modrinth/code `apps/labrinth/src`):
//!
//! - ids are base62 (openapi "Identifiers"; `models/ids.rs` `parse_base62`:
//!   digits, `A-Z`, `a-z`, at most a `u64`). `GET /v2/versions?ids=[..]`
//!   parses the whole list as ids and answers **400** for the whole batch
//!   when one is not base62 (`routes/v3/versions.rs` `versions_get`:
//!   `serde_json::from_str::<Vec<VersionId>>` → `ApiError::Json` → 400);
//!   unknown ids are left out; an empty list is `[]` with 200.
//! - `GET /v2/version/{id}`: the path is a base62 `VersionId`; one that does
//!   not parse is not routed (404, as actix/ntex answer a failed `Path`).
//! - projects are found by id or slug (openapi `ProjectIdentifier`,
//!   `database::models::Project::get`, slugs case-insensitive).
//! - `GET /v2/project/{id|slug}/version` with the optional `loaders` and
//!   `game_versions` JSON-array filters (openapi `getProjectVersions`): a
//!   version matches when it has any of the loaders and any of the game
//!   versions (`routes/v3/versions.rs` `version_list`), newest first; an
//!   unparsable filter is ignored; a project with no match answers `[]`.
//! - `GET /v2/project/{id|slug}/version/{id|number}` (openapi
//!   `getVersionFromIdOrNumber`): "if the version number provided matches
//!   multiple versions, only the oldest matching version will be returned".
//! - every API answer carries `X-Ratelimit-Limit`, `-Remaining` and `-Reset`
//!   (openapi "Ratelimits"); a rate-limited request gets 429 with
//!   `X-Ratelimit-Remaining: 0`, the reset in seconds and no `Retry-After`
//!   (`util/ratelimit.rs`). Faults on API paths inject these, and 5xx.
//! - versions carry several files, one `primary` (openapi `VersionFile`), and
//!   the same version number is common across loaders.
//! - API clients "must provide a uniquely-identifying `User-Agent`" (openapi
//!   "User Agents"): the stand-in refuses (403) a request without one or with
//!   only an HTTP library's, which the real service may block at any time.
//!
//! The CDN (`/data/<project id>/versions/<version id>/<file>`) shares the port.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use sha1::Digest as _;

pub use crate::host::{FakeFault, FakeHost, Logged};
use crate::host::{Running, json_response, json_status, lock, query_param, status};

/// The limit Modrinth announces per minute (openapi "Ratelimits").
pub const RATE_LIMIT: u64 = 300;

/// User-Agents that name only an HTTP library ("Bad: `User-Agent: okhttp/4.9.3`").
const LIBRARY_AGENTS: [&str; 6] = [
    "reqwest/",
    "okhttp/",
    "curl/",
    "python-requests/",
    "Java-http-client/",
    "Go-http-client/",
];

/// Parses a Modrinth id as labrinth does (`parse_base62`): `None` for any
/// character outside `0-9A-Za-z`, for an empty string, or past `u64`.
pub fn parse_base62(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |n, c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        n.checked_mul(62)?.checked_add(u64::from(digit))
    })
}

/// An 8-character base62 id derived from `seed` (for projects named by slug).
fn derived_id(seed: &str) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    sha2::Sha256::digest(seed.as_bytes())
        .iter()
        .take(8)
        .map(|b| DIGITS[usize::from(*b) % 62] as char)
        .collect()
}

/// A version's file, as added to the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    pub url: String,
    pub sha512: String,
    pub sha1: String,
    pub size: u64,
}

/// A version to add: project (id or slug), id, number, loaders, game
/// versions and files. Defaults: Fabric, Minecraft 1.21.1, no files.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub project: String,
    pub id: String,
    pub number: String,
    pub loaders: Vec<String>,
    pub game_versions: Vec<String>,
    /// (file name, bytes, primary)
    pub files: Vec<(String, Vec<u8>, bool)>,
}

impl NewVersion {
    pub fn new(project: &str, id: &str, number: &str) -> Self {
        Self {
            project: project.to_owned(),
            id: id.to_owned(),
            number: number.to_owned(),
            loaders: vec!["fabric".into()],
            game_versions: vec!["1.21.1".into()],
            files: Vec::new(),
        }
    }

    pub fn loaders(mut self, loaders: &[&str]) -> Self {
        self.loaders = loaders.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn game_versions(mut self, versions: &[&str]) -> Self {
        self.game_versions = versions.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn file(mut self, name: &str, bytes: &[u8], primary: bool) -> Self {
        self.files.push((name.to_owned(), bytes.to_vec(), primary));
        self
    }
}

#[derive(Debug, Clone)]
struct Project {
    id: String,
    slug: String,
}

#[derive(Debug, Default)]
struct State {
    host: FakeHost,
    projects: Mutex<Vec<Project>>,
    /// Version id → version JSON.
    versions: Mutex<BTreeMap<String, Value>>,
    /// Versions added so far (orders `date_published`).
    added: Mutex<u64>,
    /// Rate-limit headers for the next API answers: (remaining, reset seconds).
    rate: Mutex<Option<(u64, u64)>>,
}

/// The fake Modrinth.
#[derive(Debug)]
pub struct ModrinthServer {
    state: Arc<State>,
    running: Running,
}

impl ModrinthServer {
    /// Starts on 127.0.0.1:<random>. Must be called inside a tokio runtime.
    pub fn start() -> anyhow::Result<Self> {
        let state = Arc::new(State::default());
        let app = axum::Router::new().fallback(serve).with_state(state.clone());
        let running = Running::start(app)?;
        Ok(Self { state, running })
    }

    /// API base URL (no trailing slash), e.g. `http://127.0.0.1:1234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    pub fn host(&self) -> &FakeHost {
        &self.state.host
    }

    /// The project named by id or slug, creating it if needed: a name that
    /// is 8 base62 characters is the id (and the slug, in lower case);
    /// anything else is a slug, and the id is derived from it. Returns the id.
    pub fn add_project(&self, id_or_slug: &str) -> String {
        if let Some(p) = find_project(&lock(&self.state.projects), id_or_slug) {
            return p.id;
        }
        let is_id = id_or_slug.len() == 8 && parse_base62(id_or_slug).is_some();
        let p = if is_id {
            Project {
                id: id_or_slug.to_owned(),
                slug: id_or_slug.to_lowercase(),
            }
        } else {
            Project {
                id: derived_id(id_or_slug),
                slug: id_or_slug.to_owned(),
            }
        };
        lock(&self.state.projects).push(p.clone());
        p.id
    }

    /// The id of the project named by id or slug.
    pub fn project_id(&self, id_or_slug: &str) -> Option<String> {
        find_project(&lock(&self.state.projects), id_or_slug).map(|p| p.id)
    }

    /// Adds version `id` (number `number`) of `project` (id or slug) with one
    /// primary file, for Fabric on Minecraft 1.21.1.
    pub fn add_version(
        &self,
        project: &str,
        id: &str,
        number: &str,
        filename: &str,
        bytes: &[u8],
    ) -> FakeFile {
        let v = NewVersion::new(project, id, number).file(filename, bytes, true);
        self.add(&v).remove(0)
    }

    /// Adds a version; returns its files in order. Panics on an id Modrinth
    /// could not have (not base62), as that would be a broken test.
    pub fn add(&self, v: &NewVersion) -> Vec<FakeFile> {
        assert!(
            parse_base62(&v.id).is_some(),
            "Modrinth version ids are base62 (0-9A-Za-z): `{}`",
            v.id
        );
        let project = self.add_project(&v.project);
        let n = {
            let mut added = lock(&self.state.added);
            *added += 1;
            *added
        };
        let mut files = Vec::new();
        let mut json_files = Vec::new();
        for (name, bytes, primary) in &v.files {
            // The CDN path names the file percent-encoded, as cdn.modrinth.com does.
            let encoded: String = name
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            let path = format!("/data/{project}/versions/{}/{encoded}", v.id);
            let file = FakeFile {
                url: format!("{}{path}", self.url()),
                sha512: hex::encode(sha2::Sha512::digest(bytes)),
                sha1: hex::encode(sha1::Sha1::digest(bytes)),
                size: bytes.len() as u64,
            };
            self.state.host.put_file(&path, Bytes::copy_from_slice(bytes));
            json_files.push(json!({
                "hashes": { "sha512": file.sha512, "sha1": file.sha1 },
                "url": file.url, "filename": name, "primary": primary,
                "size": file.size, "file_type": null
            }));
            files.push(file);
        }
        let doc = json!({
            "id": v.id, "project_id": project, "author_id": "EEFFGGHH",
            "featured": false, "name": format!("{} {}", v.project, v.number), "version_number": v.number,
            "changelog": null, "changelog_url": null,
            "date_published": format!("2024-01-01T{:02}:{:02}:00Z", n / 60 % 24, n % 60),
            "downloads": 0, "version_type": "release", "status": "listed", "requested_status": null,
            "files": json_files, "dependencies": [],
            "game_versions": v.game_versions, "loaders": v.loaders
        });
        lock(&self.state.versions).insert(v.id.clone(), doc);
        files
    }

    /// Changes version `id`'s JSON (e.g. its `dependencies`, `game_versions`
    /// or `loaders`); false when there is no such version.
    pub fn edit_version(&self, id: &str, edit: impl FnOnce(&mut Value)) -> bool {
        match lock(&self.state.versions).get_mut(id) {
            Some(v) => {
                edit(v);
                true
            }
            None => false,
        }
    }

    /// The next API answers carry `X-Ratelimit-Remaining: remaining` and
    /// `X-Ratelimit-Reset: reset_secs` (until [`clear_rate_limit`](Self::clear_rate_limit)).
    pub fn set_rate_limit(&self, remaining: u64, reset_secs: u64) {
        *lock(&self.state.rate) = Some((remaining, reset_secs));
    }

    pub fn clear_rate_limit(&self) {
        *lock(&self.state.rate) = None;
    }

    /// Every request answered (API and CDN).
    pub fn requests(&self) -> Vec<Logged> {
        self.state.host.requests()
    }

    /// API requests only (paths under `/v2/`).
    pub fn api_requests(&self) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v2/"))
            .collect()
    }

    pub fn reset_requests(&self) {
        self.state.host.reset_requests();
    }
}

fn find_project(projects: &[Project], id_or_slug: &str) -> Option<Project> {
    projects
        .iter()
        .find(|p| p.id == id_or_slug)
        .or_else(|| projects.iter().find(|p| p.slug.eq_ignore_ascii_case(id_or_slug)))
        .cloned()
}

async fn serve(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    req: axum::extract::Request,
) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let full = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_owned());
    let query = req.uri().query().unwrap_or("").to_owned();
    let agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let anonymous = agent.is_empty() || LIBRARY_AGENTS.iter().any(|g| agent.starts_with(g));
    let mut resp = if path.starts_with("/data/") {
        state.host.serve_file(&path).unwrap_or_else(|| status(404))
    } else if anonymous {
        error(
            403,
            "unauthorized",
            "a uniquely-identifying User-Agent is required (docs.modrinth.com: User Agents)",
        )
    } else {
        let (remaining, reset) = lock(&state.rate).unwrap_or((RATE_LIMIT - 1, 60));
        let (mut r, remaining, reset) = match state.host.take_fault(&path) {
            Some(FakeFault::RateLimited { reset_secs }) => {
                let body = json!({
                    "error": "ratelimit_error",
                    "description": format!(
                        "You are being rate-limited. Please wait {} milliseconds. 0/{RATE_LIMIT} remaining.",
                        reset_secs * 1000
                    )
                });
                (json_status(429, &body), 0, reset_secs)
            }
            Some(FakeFault::Status(code)) => (status(code), remaining, reset),
            Some(FakeFault::TooManyRequests(after)) => {
                let mut r = status(429);
                if let Ok(v) = HeaderValue::from_str(&after) {
                    r.headers_mut().insert("retry-after", v);
                }
                (r, 0, reset)
            }
            Some(FakeFault::Body(b)) => (Response::new(Body::from(b)), remaining, reset),
            Some(FakeFault::Abort(_)) | None => {
                (api(&state, &method, &path, &query, &body), remaining, reset)
            }
        };
        let h = r.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(reset));
        r
    };
    if method == "HEAD" {
        *resp.body_mut() = Body::empty();
    }
    state.host.log(&method, &full, resp.status().as_u16());
    resp
}

/// labrinth's error body (`{"error", "description"}`).
fn error(code: u16, kind: &str, description: &str) -> Response {
    json_status(code, &json!({ "error": kind, "description": description }))
}

/// `date_published`, for ordering.
fn published(v: &Value) -> &str {
    v["date_published"].as_str().unwrap_or("")
}

fn api(state: &State, method: &str, path: &str, query: &str, body: &[u8]) -> Response {
    let versions = lock(&state.versions);
    let projects = lock(&state.projects);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let of_project = |p: &Project| -> Vec<&Value> {
        let mut list: Vec<&Value> = versions.values().filter(|v| v["project_id"] == p.id).collect();
        list.sort_by(|a, b| published(b).cmp(published(a)));
        list
    };
    match (method, segs.as_slice()) {
        ("GET", ["v2", "version", id]) => match parse_base62(id) {
            None => status(404),
            Some(_) => versions.get(*id).map_or_else(|| status(404), json_response),
        },
        ("GET", ["v2", "versions"]) => {
            let Some(ids) = query_param(query, "ids") else {
                return error(
                    400,
                    "invalid_input",
                    "Query deserialize error: missing field `ids`",
                );
            };
            let ids: Vec<String> = match serde_json::from_str(&ids) {
                Ok(ids) => ids,
                Err(e) => return error(400, "json_error", &format!("Error while parsing JSON: {e}")),
            };
            if let Some(bad) = ids.iter().find(|id| parse_base62(id).is_none()) {
                return error(
                    400,
                    "json_error",
                    &format!("Error while parsing JSON: `{bad}` is not a base62 id"),
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            let found: Vec<Value> = ids
                .iter()
                .filter(|id| seen.insert(id.as_str()))
                .filter_map(|id| versions.get(id).cloned())
                .collect();
            json_response(&Value::Array(found))
        }
        ("GET", ["v2", "project", project, "version"]) => {
            let Some(p) = find_project(&projects, project) else {
                return status(404);
            };
            // An unparsable filter is no filter (`.ok()` / `unwrap_or_default` in labrinth).
            let parse = |name: &str| {
                query_param(query, name).and_then(|v| serde_json::from_str::<Vec<String>>(&v).ok())
            };
            let loaders = parse("loaders");
            let game_versions = parse("game_versions");
            let any = |v: &Value, field: &str, wanted: &Option<Vec<String>>| match wanted {
                None => true,
                Some(w) => v[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|x| w.iter().any(|y| y == x)),
            };
            let list: Vec<Value> = of_project(&p)
                .into_iter()
                .filter(|v| any(v, "loaders", &loaders) && any(v, "game_versions", &game_versions))
                .cloned()
                .collect();
            json_response(&Value::Array(list))
        }
        ("GET", ["v2", "project", project, "version", id_or_number]) => {
            let Some(p) = find_project(&projects, project) else {
                return status(404);
            };
            let mut list = of_project(&p);
            list.reverse(); // oldest first: the oldest match wins
            list.into_iter()
                .find(|v| v["id"] == *id_or_number || v["version_number"] == *id_or_number)
                .map_or_else(|| status(404), json_response)
        }
        ("POST", ["v2", "version_files"]) => {
            let req: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return error(400, "json_error", &format!("Error while parsing JSON: {e}")),
            };
            let algo = req["algorithm"].as_str().unwrap_or("sha1");
            let mut out = serde_json::Map::new();
            for h in req["hashes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let hit = versions.values().find(|v| {
                    v["files"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|f| f["hashes"][algo] == h)
                });
                if let Some(v) = hit {
                    out.insert(h.to_owned(), v.clone());
                }
            }
            json_response(&Value::Object(out))
        }
        _ => status(404),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GET over a raw connection: (status, body).
    async fn get(base: &str, path: &str, agent: Option<&str>) -> (u16, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let host = base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
        let ua = agent.map(|a| format!("User-Agent: {a}\r\n")).unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{ua}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        (head[9..12].parse().expect("status"), body.to_owned())
    }

    #[tokio::test]
    async fn answers_as_strictly_as_modrinth() {
        let m = ModrinthServer::start().expect("start");
        m.add(&NewVersion::new("lithium", "AAAA1111", "0.14.3").file("a.jar", b"a", true));
        m.add(
            &NewVersion::new("lithium", "BBBB2222", "0.14.3")
                .loaders(&["neoforge"])
                .file("b.jar", b"b", true),
        );
        let ua = Some("atlas-tests/1 (+https://example.invalid)");
        let u = m.url();
        // A version number in the id batch fails the whole batch.
        let (code, body) = get(&u, "/v2/versions?ids=%5B%22AAAA1111%22%2C%220.14.3%22%5D", ua).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("json_error"), "{body}");
        let (code, body) = get(&u, "/v2/versions?ids=%5B%22AAAA1111%22%5D", ua).await;
        assert_eq!((code, body.matches("\"id\":\"AAAA1111\"").count()), (200, 1));
        assert_eq!(
            get(&u, "/v2/versions?ids=%5B%5D", ua).await,
            (200, "[]".to_owned())
        );
        assert_eq!(get(&u, "/v2/versions", ua).await.0, 400);
        // By slug or id; filtered; [] when nothing matches; 404 without the project.
        let id = m.project_id("lithium").expect("id");
        let (code, body) = get(&u, &format!("/v2/project/{id}/version"), ua).await;
        assert_eq!(
            (code, body.matches("\"version_number\":\"0.14.3\"").count()),
            (200, 2)
        );
        let (_, body) = get(&u, "/v2/project/LITHIUM/version?loaders=%5B%22neoforge%22%5D", ua).await;
        assert!(body.contains("BBBB2222") && !body.contains("AAAA1111"), "{body}");
        let (_, body) = get(
            &u,
            "/v2/project/lithium/version?game_versions=%5B%221.20.1%22%5D",
            ua,
        )
        .await;
        assert_eq!(body, "[]");
        assert_eq!(get(&u, "/v2/project/nope/version", ua).await.0, 404);
        // The oldest of a shared number; ids are base62 in paths too.
        let (_, body) = get(&u, "/v2/project/lithium/version/0.14.3", ua).await;
        assert!(body.contains("AAAA1111"), "{body}");
        assert_eq!(get(&u, "/v2/version/0.14.3", ua).await.0, 404);
        // No User-Agent, or only a library's: refused.
        assert_eq!(get(&u, "/v2/version/AAAA1111", None).await.0, 403);
        assert_eq!(get(&u, "/v2/version/AAAA1111", Some("reqwest/0.13")).await.0, 403);
        // 429 as the limiter sends it.
        m.host()
            .push_fault("/v2/version/AAAA1111", FakeFault::RateLimited { reset_secs: 9 });
        let (code, body) = get(&u, "/v2/version/AAAA1111", ua).await;
        assert_eq!(code, 429, "{body}");
        assert!(body.contains("ratelimit_error"), "{body}");
    }

    #[test]
    fn base62_as_labrinth_parses_it() {
        assert_eq!(parse_base62("10"), Some(62));
        assert_eq!(parse_base62("AANobbMI").map(|_| ()), Some(()));
        assert_eq!(parse_base62("0.14.3"), None);
        assert_eq!(parse_base62("mc1.21-0.6"), None);
        assert_eq!(parse_base62(""), None);
        assert_eq!(parse_base62("zzzzzzzzzzzz"), None, "past u64");
        assert_eq!(derived_id("sodium").len(), 8);
        assert!(parse_base62(&derived_id("sodium")).is_some());
    }
}
