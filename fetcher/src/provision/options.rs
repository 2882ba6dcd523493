//! What to provision: the Minecraft version and loader (from the installed
//! build's manifest, or given), the upstreams to download from, the Java
//! that runs installers, timeouts and caps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_proto::Limits;

use super::error::ProvisionError;
use super::launch::Loader;
use crate::history;
use crate::side::InstallSide;
use crate::source;
use crate::state::StatePaths;

/// Default time a loader installer may run.
pub const DEFAULT_INSTALLER_TIMEOUT: Duration = Duration::from_secs(600);

/// Base URLs of the upstreams (no trailing slash needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    /// Mojang's piston-meta: `<base>/mc/game/version_manifest_v2.json`.
    pub mojang_meta: String,
    /// Fabric meta: `<base>/v2/versions/...`.
    pub fabric_meta: String,
    /// Quilt meta: `<base>/v3/versions/installer`.
    pub quilt_meta: String,
    /// Forge's Maven repository.
    pub forge_maven: String,
    /// NeoForge's Maven repository (releases).
    pub neoforge_maven: String,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            mojang_meta: "https://piston-meta.mojang.com".into(),
            fabric_meta: "https://meta.fabricmc.net".into(),
            quilt_meta: "https://meta.quiltmc.org".into(),
            forge_maven: "https://maven.minecraftforge.net".into(),
            neoforge_maven: "https://maven.neoforged.net/releases".into(),
        }
    }
}

/// What to provision, where, and from which upstreams.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// The server directory.
    pub dir: PathBuf,
    pub minecraft: String,
    pub loader: Loader,
    /// Empty for vanilla.
    pub loader_version: String,
    pub upstreams: Upstreams,
    /// Java executable that runs loader installers (Quilt, Forge, NeoForge).
    pub java: PathBuf,
    /// Per-request timeout: connection, response, and between two chunks.
    pub timeout: Duration,
    /// Longest run of a loader installer.
    pub installer_timeout: Duration,
    /// Caps on metadata, jars and launchers downloaded
    /// ([`Limits::DEFAULT`] unless changed).
    pub limits: Limits,
}

impl ProvisionOptions {
    /// Options with the real upstreams, `java` from `PATH` and default timeouts.
    pub fn new(
        dir: impl Into<PathBuf>,
        minecraft: impl Into<String>,
        loader: Loader,
        loader_version: impl Into<String>,
    ) -> Self {
        Self {
            dir: dir.into(),
            minecraft: minecraft.into(),
            loader,
            loader_version: loader_version.into(),
            upstreams: Upstreams::default(),
            java: PathBuf::from("java"),
            timeout: source::DEFAULT_TIMEOUT,
            installer_timeout: DEFAULT_INSTALLER_TIMEOUT,
            limits: Limits::DEFAULT,
        }
    }

    /// Options for the build installed in `dir`: Minecraft version and
    /// loader from its manifest (kept in `.atlas/builds/`).
    pub fn for_install(dir: &Path) -> Result<Self, ProvisionError> {
        let local = crate::local::Local::open(&StatePaths::new(dir))?;
        let install = local
            .load_install()?
            .ok_or_else(|| ProvisionError::NotInstalled { dir: dir.to_owned() })?;
        if install.side != InstallSide::Server {
            return Err(ProvisionError::Usage(format!(
                "{} holds a client install; only server installs are provisioned",
                dir.display()
            )));
        }
        let m = history::load(&local, &install.build.0, &install.pack, &Limits::DEFAULT)?;
        let loader = m.loader.unwrap_or_default();
        let kind = Loader::from_proto(loader.kind).ok_or_else(|| {
            ProvisionError::Usage(format!(
                "the installed build {} names no known loader (kind {}); it cannot be provisioned",
                install.build.0, loader.kind
            ))
        })?;
        Ok(Self::new(dir, m.minecraft_version, kind, loader.version))
    }
}

/// A path component or URL segment from the pack: letters, digits, `.`, `_`, `+`, `-`.
pub(super) fn check_version(what: &str, v: &str) -> Result<(), ProvisionError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ProvisionError::Usage(format!(
            "{what} `{v}` is not a usable version (1 to 64 letters, digits, `.`, `_`, `+` or `-`)"
        )))
    }
}
