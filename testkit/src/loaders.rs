//! Fake loader upstreams on one 127.0.0.1 port, each under its own prefix
//! and answering in its upstream's shapes:
//! - Fabric meta (`/fabric-meta`; FabricMC/fabric-meta's API:
//!   `GET /v2/versions/installer` → `[{url, maven, version, stable}]`, newest
//!   first, and the ready-made server launcher at
//!   `/v2/versions/loader/<mc>/<loader>/<installer>/server/jar`) with the
//!   Fabric Maven (`/fabric-maven`, maven.fabricmc.net) holding
//!   `net/fabricmc/fabric-installer/<v>/fabric-installer-<v>.jar`;
//! - Quilt meta (`/quilt-meta`: `GET /v3/versions/installer` with `url`,
//!   `maven`, `version`) with its Maven (`/quilt-maven/repository/release`);
//! - the Forge and NeoForge Maven repositories (`/forge-maven`,
//!   `/neoforge-maven`): installers at their real coordinates, which for
//!   Forge took several forms over the years (`1.21.1-52.0.16`,
//!   `1.7.10-10.13.4.1614-1.7.10`, `1.7.2-10.12.2.1161-mc172`,
//!   `1.10-12.18.0.2000-1.10.0`, `1.7.10_pre4-10.12.2.1149-prerelease`; see
//!   maven.minecraftforge.net `net/minecraftforge/forge/maven-metadata.xml`),
//!   listed in `maven-metadata.xml` as Maven does.
//!
//! Every Maven file has `.sha1` and `.sha256` sidecars (the lowercase hex
//! digest alone), as those repositories publish them.

use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::host::{FakeHost, Logged, lock};
use crate::mojang::{StaticUpstream, sha1_hex};

/// The fake Fabric meta, Quilt meta and Maven, Forge and NeoForge Mavens.
#[derive(Debug)]
pub struct FakeLoaders {
    upstream: StaticUpstream,
    fabric_installers: Mutex<Vec<Value>>,
    quilt_installers: Mutex<Vec<Value>>,
    /// Forge Maven versions, as `maven-metadata.xml` lists them.
    forge_versions: Mutex<Vec<String>>,
}

impl FakeLoaders {
    /// Starts on 127.0.0.1:<random>.
    pub fn start() -> anyhow::Result<Self> {
        let l = Self {
            upstream: StaticUpstream::start()?,
            fabric_installers: Mutex::new(Vec::new()),
            quilt_installers: Mutex::new(Vec::new()),
            forge_versions: Mutex::new(Vec::new()),
        };
        l.write_lists();
        Ok(l)
    }

    pub fn fabric_meta(&self) -> String {
        format!("{}/fabric-meta", self.upstream.url())
    }

    pub fn fabric_maven(&self) -> String {
        format!("{}/fabric-maven", self.upstream.url())
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

    /// Lists fabric-installer `version` (newest first; `stable` or not) with
    /// its `url` in the Fabric Maven, where `jar` is served with sidecars.
    pub fn add_fabric_installer(&self, version: &str, stable: bool, jar: &[u8]) {
        let rel = format!("net/fabricmc/fabric-installer/{version}/fabric-installer-{version}.jar");
        self.put_with_sidecars(&format!("/fabric-maven/{rel}"), jar, true);
        lock(&self.fabric_installers).insert(
            0,
            json!({
                "url": format!("{}/{rel}", self.fabric_maven()),
                "maven": format!("net.fabricmc:fabric-installer:{version}"),
                "version": version, "stable": stable
            }),
        );
        self.write_lists();
    }

    /// Serves `jar` as Fabric meta's ready-made server launcher of `mc` +
    /// `loader` built with installer `installer`.
    pub fn add_fabric_server_launcher(&self, mc: &str, loader: &str, installer: &str, jar: &[u8]) {
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

    /// Puts the Forge installer of Maven version `coordinate` (e.g.
    /// `1.21.1-52.0.16` or `1.7.10-10.13.4.1614-1.7.10`) in the Forge Maven
    /// and lists it in `maven-metadata.xml`.
    pub fn add_forge_installer(&self, coordinate: &str, jar: &[u8]) -> String {
        let path =
            format!("/forge-maven/net/minecraftforge/forge/{coordinate}/forge-{coordinate}-installer.jar");
        self.put_with_sidecars(&path, jar, true);
        self.list_forge_versions(&[coordinate]);
        path
    }

    /// Lists these Maven versions in Forge's `maven-metadata.xml` (without
    /// serving an installer for them).
    pub fn list_forge_versions(&self, coordinates: &[&str]) {
        let mut versions = lock(&self.forge_versions);
        for c in coordinates {
            if !versions.iter().any(|v| v == c) {
                versions.push((*c).to_owned());
            }
        }
        let list: String = versions
            .iter()
            .map(|v| format!("      <version>{v}</version>\n"))
            .collect();
        let latest = versions.last().cloned().unwrap_or_default();
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>net.minecraftforge</groupId>\n  \
             <artifactId>forge</artifactId>\n  <versioning>\n    <latest>{latest}</latest>\n    \
             <release>{latest}</release>\n    <versions>\n{list}    </versions>\n    \
             <lastUpdated>20240101000000</lastUpdated>\n  </versioning>\n</metadata>\n"
        );
        drop(versions);
        self.put_with_sidecars(
            "/forge-maven/net/minecraftforge/forge/maven-metadata.xml",
            xml.as_bytes(),
            false,
        );
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
