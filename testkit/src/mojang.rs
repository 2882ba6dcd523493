//! A fake Mojang piston-meta on 127.0.0.1, answering in Mojang's shapes:
//! `/mc/game/version_manifest_v2.json` (`latest`, `versions[]` with `id`,
//! `type`, `url`, `time`, `releaseTime`, `sha1`, `complianceLevel`), the
//! per-version JSON at `/v1/packages/<sha1>/<id>.json` (`downloads.server`
//! with `sha1`, `size`, `url`; `javaVersion.majorVersion`), and the server
//! jars at `/v1/objects/<sha1>/server.jar`. Records every request; one-shot
//! faults per path. [`StaticUpstream`] is the file-serving core, also used by
//! the fake loader upstreams.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::host::{FakeHost, Logged, Running, lock, status};

/// Serves the files put into its [`FakeHost`] on 127.0.0.1:<random>.
#[derive(Debug)]
pub struct StaticUpstream {
    host: Arc<FakeHost>,
    running: Running,
}

impl StaticUpstream {
    /// Starts on 127.0.0.1:<random>. Must be called inside a tokio runtime.
    pub fn start() -> anyhow::Result<Self> {
        let host = Arc::new(FakeHost::default());
        let app = axum::Router::new().fallback(serve).with_state(host.clone());
        Ok(Self {
            host,
            running: Running::start(app)?,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:1234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    pub fn host(&self) -> &FakeHost {
        &self.host
    }

    /// Requests answered so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.host.requests()
    }
}

async fn serve(
    axum::extract::State(host): axum::extract::State<Arc<FakeHost>>,
    req: axum::extract::Request,
) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let resp = if method == "GET" {
        host.serve_file(&path).unwrap_or_else(|| status(404))
    } else {
        status(StatusCode::METHOD_NOT_ALLOWED.as_u16())
    };
    host.log(&method, &path, resp.status().as_u16());
    resp
}

/// SHA-1 of `bytes`, hex.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(bytes))
}

/// The fake piston-meta.
#[derive(Debug)]
pub struct FakeMojang {
    upstream: StaticUpstream,
    versions: Mutex<Vec<Value>>,
}

impl FakeMojang {
    /// Starts on 127.0.0.1:<random>, with an empty version list.
    pub fn start() -> anyhow::Result<Self> {
        let m = Self {
            upstream: StaticUpstream::start()?,
            versions: Mutex::new(Vec::new()),
        };
        m.write_manifest();
        Ok(m)
    }

    /// Base URL (the `--mojang-meta` of the tests).
    pub fn url(&self) -> String {
        self.upstream.url()
    }

    pub fn host(&self) -> &FakeHost {
        self.upstream.host()
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.upstream.requests()
    }

    /// Adds release `id` needing Java `java_major`, with this server jar.
    pub fn add_version(&self, id: &str, java_major: u32, server_jar: &[u8]) {
        self.add_version_declaring(id, java_major, server_jar, &sha1_hex(server_jar));
    }

    /// Adds `id` whose version JSON declares `server_sha1` for the server jar
    /// (a wrong one to test refusal).
    pub fn add_version_declaring(&self, id: &str, java_major: u32, server_jar: &[u8], server_sha1: &str) {
        let base = self.url();
        let jar_path = format!("/v1/objects/{}/server.jar", sha1_hex(server_jar));
        self.host()
            .put_file(&jar_path, Bytes::copy_from_slice(server_jar));
        let version = json!({
            "id": id, "type": "release", "mainClass": "net.minecraft.client.main.Main",
            "releaseTime": "2024-08-08T12:24:45+00:00", "time": "2024-08-08T12:24:45+00:00",
            "minimumLauncherVersion": 21, "complianceLevel": 1,
            "assets": "17", "assetIndex": { "id": "17" },
            "javaVersion": { "component": "java-runtime-delta", "majorVersion": java_major },
            "downloads": {
                "client": { "sha1": "0".repeat(40), "size": 1, "url": format!("{base}/v1/objects/client.jar") },
                "server": { "sha1": server_sha1, "size": server_jar.len(), "url": format!("{base}{jar_path}") }
            },
            "libraries": []
        });
        let text = version.to_string();
        let sha = sha1_hex(text.as_bytes());
        let path = format!("/v1/packages/{sha}/{id}.json");
        self.host().put_file(&path, text);
        lock(&self.versions).insert(
            0,
            json!({
                "id": id, "type": "release", "url": format!("{base}{path}"),
                "time": "2024-08-08T12:24:45+00:00", "releaseTime": "2024-08-08T12:24:45+00:00",
                "sha1": sha, "complianceLevel": 1
            }),
        );
        self.write_manifest();
    }

    fn write_manifest(&self) {
        let versions = lock(&self.versions).clone();
        let latest = versions
            .first()
            .and_then(|v| v["id"].as_str())
            .unwrap_or("")
            .to_owned();
        let m = json!({ "latest": { "release": latest, "snapshot": latest }, "versions": versions });
        self.host()
            .put_file("/mc/game/version_manifest_v2.json", m.to_string());
    }
}
