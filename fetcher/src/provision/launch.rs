//! The launch description (`.atlas/launch.json`): how the runner starts a
//! provisioned server (`java -jar <jar>` or `java @<args_file>`), for which
//! Minecraft version, loader and Java; and the loaders it knows.

use std::path::{Component, Path, PathBuf};

use atlas_proto::Limits;
use serde::{Deserialize, Serialize};

use super::error::ProvisionError;
use crate::state::STATE_DIR;

/// File name of the launch description, in the state directory.
pub const LAUNCH_FILE: &str = "launch.json";
/// Format version of the launch description.
pub const LAUNCH_FORMAT: u32 = 1;

/// How to start the provisioned server: `java -jar <jar>` or `java @<args_file>`,
/// from the server directory, with Java `java_major` or newer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchDescription {
    /// Always [`LAUNCH_FORMAT`] (1).
    pub format: u32,
    /// Minecraft version, e.g. `1.21.1`.
    pub minecraft: String,
    /// `vanilla`, `fabric`, `quilt`, `forge` or `neoforge`.
    pub loader: String,
    /// Loader version; empty for vanilla.
    pub loader_version: String,
    /// Java major version the server needs (Mojang's `javaVersion.majorVersion`).
    pub java_major: u32,
    /// Jar to run with `-jar`, relative to the server directory.
    pub jar: Option<String>,
    /// Arguments file to run as `@file`, relative to the server directory.
    pub args_file: Option<String>,
}

impl LaunchDescription {
    /// Where the launch description of `server_dir` lives.
    pub fn path(server_dir: &Path) -> PathBuf {
        server_dir.join(STATE_DIR).join(LAUNCH_FILE)
    }

    /// Reads and checks the launch description of `server_dir`; `None` if
    /// there is none.
    pub fn load(server_dir: &Path) -> Result<Option<Self>, ProvisionError> {
        // Through the directory's handles: a link in place of `.atlas` or
        // `launch.json` is refused, a FIFO does not hang the read.
        let path = Self::path(server_dir);
        let local = crate::local::Local::open(&crate::state::StatePaths::new(server_dir))?;
        let cap = Limits::DEFAULT.launch_bytes;
        let bytes = match local.try_state() {
            Some(state) => match state.read_capped(LAUNCH_FILE, cap) {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(None),
                Err(crate::error::SyncError::State { message, .. }) => {
                    return Err(ProvisionError::State { path, message });
                }
                Err(e) => return Err(e.into()),
            },
            None => return Ok(None),
        };
        let bad = |message: String| ProvisionError::State {
            path: path.clone(),
            message,
        };
        let d: Self =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a launch description: {e}")))?;
        d.check().map_err(bad)?;
        Ok(Some(d))
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.format != LAUNCH_FORMAT {
            return Err(format!("format {} is not {LAUNCH_FORMAT}", self.format));
        }
        let target = match (&self.jar, &self.args_file) {
            (Some(j), None) => j,
            (None, Some(a)) => a,
            _ => return Err("exactly one of `jar` and `args_file` must be set".into()),
        };
        let p = Path::new(target);
        if target.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!("`{target}` is not a plain relative path"));
        }
        Ok(())
    }

    /// The file the description starts (`jar` or `args_file`).
    pub fn target(&self) -> &str {
        self.jar.as_deref().or(self.args_file.as_deref()).unwrap_or("")
    }
}

/// A mod loader, as provisioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loader {
    Vanilla,
    Fabric,
    Quilt,
    Forge,
    Neoforge,
}

impl Loader {
    /// The name used in the launch description.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vanilla => "vanilla",
            Self::Fabric => "fabric",
            Self::Quilt => "quilt",
            Self::Forge => "forge",
            Self::Neoforge => "neoforge",
        }
    }

    /// From the manifest's `LoaderKind`; `None` when unspecified or unknown.
    pub fn from_proto(kind: i32) -> Option<Self> {
        use atlas_proto::v1::LoaderKind as K;
        match K::try_from(kind).ok()? {
            K::Vanilla => Some(Self::Vanilla),
            K::Fabric => Some(Self::Fabric),
            K::Quilt => Some(Self::Quilt),
            K::Forge => Some(Self::Forge),
            K::Neoforge => Some(Self::Neoforge),
            K::Unspecified => None,
        }
    }
}
