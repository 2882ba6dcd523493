//! Fake loader upstreams on one 127.0.0.1 port, each under its own prefix
//! and answering in its upstream's shapes: Fabric meta (`/fabric-meta`:
//! `GET /v2/versions/installer` and
//! `/v2/versions/loader/<mc>/<loader>/<installer>/server/jar`), Quilt meta
//! (`/quilt-meta`: `GET /v3/versions/installer` with `url`, `maven`,
//! `version`) with its Maven (`/quilt-maven/repository/release`), and the
//! Forge and NeoForge Maven repositories (`/forge-maven`, `/neoforge-maven`),
//! which publish `.sha1` and `.sha256` beside every file.

use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::modrinth::{FakeHost, Logged, lock};
use crate::mojang::{StaticUpstream, sha1_hex};

/// The fake Fabric meta, Quilt meta and Maven, Forge and NeoForge Mavens.
#[derive(Debug)]
pub struct FakeLoaders {
    upstream: StaticUpstream,
    fabric_installers: Mutex<Vec<Value>>,
    quilt_installers: Mutex<Vec<Value>>,
}

impl FakeLoaders {
    /// Starts on 127.0.0.1:<random>.
    pub fn start() -> anyhow::Result<Self> {
        let l = Self {
            upstream: StaticUpstream::start()?,
            fabric_installers: Mutex::new(Vec::new()),
            quilt_installers: Mutex::new(Vec::new()),
        };
        l.write_lists();
        Ok(l)
    }

    pub fn fabric_meta(&self) -> String {
        format!("{}/fabric-meta", self.upstream.url())
    }

    pub fn quilt_meta(&self) -> String {
        format!("{}/quilt-meta", self.upstream.url())
    }

    pub fn quilt_maven(&self) -> String {
        format!("{}/quilt-maven/repository/release", self.upstream.url())
    }

    pub fn forge_maven(&self) -> String {
        format!("{}/forge-maven", self.upstream.url())
    }

    pub fn neoforge_maven(&self) -> String {
        format!("{}/neoforge-maven", self.upstream.url())
    }

    pub fn host(&self) -> &FakeHost {
        self.upstream.host()
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.upstream.requests()
    }

    fn write_lists(&self) {
        let fabric = Value::Array(lock(&self.fabric_installers).clone());
        self.host()
            .put_file("/fabric-meta/v2/versions/installer", fabric.to_string());
        let quilt = Value::Array(lock(&self.quilt_installers).clone());
        self.host()
            .put_file("/quilt-meta/v3/versions/installer", quilt.to_string());
    }

    /// Lists Fabric installer `version` (newest first) and serves `jar` as
    /// the server launcher of `mc` + `loader` built with it.
    pub fn add_fabric(&self, mc: &str, loader: &str, installer: &str, stable: bool, jar: &[u8]) {
        lock(&self.fabric_installers).insert(
            0,
            json!({
                "url": format!("https://maven.fabricmc.net/net/fabricmc/fabric-installer/{installer}/fabric-installer-{installer}.jar"),
                "maven": format!("net.fabricmc:fabric-installer:{installer}"),
                "version": installer, "stable": stable
            }),
        );
        self.write_lists();
        let path = format!("/fabric-meta/v2/versions/loader/{mc}/{loader}/{installer}/server/jar");
        self.host().put_file(&path, Bytes::copy_from_slice(jar));
    }

    /// Lists quilt-installer `version` and puts its jar in the Quilt Maven.
    pub fn add_quilt_installer(&self, version: &str, jar: &[u8]) {
        let rel = format!("org/quiltmc/quilt-installer/{version}/quilt-installer-{version}.jar");
        let url = format!("{}/{rel}", self.quilt_maven());
        self.put_with_sidecars(&format!("/quilt-maven/repository/release/{rel}"), jar, true);
        lock(&self.quilt_installers).insert(
            0,
            json!({ "url": url, "maven": format!("org.quiltmc:quilt-installer:{version}"), "version": version }),
        );
        self.write_lists();
    }

    /// Puts the Forge installer of `mc`-`version` in the Forge Maven.
    pub fn add_forge_installer(&self, mc: &str, version: &str, jar: &[u8]) -> String {
        let full = format!("{mc}-{version}");
        let path = format!("/forge-maven/net/minecraftforge/forge/{full}/forge-{full}-installer.jar");
        self.put_with_sidecars(&path, jar, true);
        path
    }

    /// Puts the NeoForge installer of `version` in the NeoForge Maven.
    pub fn add_neoforge_installer(&self, version: &str, jar: &[u8]) -> String {
        let path =
            format!("/neoforge-maven/net/neoforged/neoforge/{version}/neoforge-{version}-installer.jar");
        self.put_with_sidecars(&path, jar, true);
        path
    }

    /// Serves `bytes` at `path`, with `.sha1` and (if `sha256`) `.sha256`
    /// sidecars in Maven's format (the lowercase hex digest alone).
    pub fn put_with_sidecars(&self, path: &str, bytes: &[u8], sha256: bool) {
        self.host().put_file(path, Bytes::copy_from_slice(bytes));
        self.host().put_file(&format!("{path}.sha1"), sha1_hex(bytes));
        if sha256 {
            self.host().put_file(
                &format!("{path}.sha256"),
                hex::encode(sha2::Sha256::digest(bytes)),
            );
        } else {
            self.host().remove_file(&format!("{path}.sha256"));
        }
    }
}
