//! Server provisioning: makes the pack's loader launchable in a server
//! directory and writes the launch description (`.atlas/launch.json`) the
//! runner starts the server from.
//!
//! - vanilla: the server jar named by Mojang's version manifest, checked by
//!   the SHA-1 Mojang publishes;
//! - Fabric: that server jar plus Fabric's server launcher from Fabric meta;
//! - Quilt: that server jar plus `quilt-installer install server`, run headless;
//! - Forge and NeoForge: their installer from the Maven repository (checked
//!   against the repository's `.sha256`/`.sha1`), run with `--installServer`.
//!
//! Everything is downloaded and installed into a staging directory under
//! `.atlas/` first and moved into place only once it is complete; the launch
//! description is written last, atomically. A failed run therefore leaves
//! the previous launch description, and what it names, as they were. A run
//! that finds a launch description for the same Minecraft, loader and loader
//! version whose files exist does nothing (and makes no request).

mod error;
mod loaders;
mod net;
mod process;
#[cfg(test)]
mod tests;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::ProvisionError;

/// File name of the launch description, in the state directory.
pub const LAUNCH_FILE: &str = "launch.json";
/// Format version of the launch description.
pub const LAUNCH_FORMAT: u32 = 1;
/// Default time a loader installer may run.
pub const DEFAULT_INSTALLER_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest launch description read.
const MAX_LAUNCH_BYTES: u64 = 64 * 1024;

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
        server_dir.join(crate::state::STATE_DIR).join(LAUNCH_FILE)
    }

    /// Reads and checks the launch description of `server_dir`; `None` if
    /// there is none.
    pub fn load(server_dir: &Path) -> Result<Option<Self>, ProvisionError> {
        use std::io::Read as _;
        let path = Self::path(server_dir);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ProvisionError::io("reading", &path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_LAUNCH_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(ProvisionError::io("reading", &path))?;
        let bad = |message: String| ProvisionError::State {
            path: path.clone(),
            message,
        };
        if bytes.len() as u64 > MAX_LAUNCH_BYTES {
            return Err(bad(format!("larger than {MAX_LAUNCH_BYTES} bytes")));
        }
        let d: Self =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a launch description: {e}")))?;
        d.check().map_err(bad)?;
        Ok(Some(d))
    }

    fn check(&self) -> Result<(), String> {
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
            timeout: crate::source::DEFAULT_TIMEOUT,
            installer_timeout: DEFAULT_INSTALLER_TIMEOUT,
        }
    }

    /// Options for the build installed in `dir`: Minecraft version and
    /// loader from its manifest (kept in `.atlas/builds/`).
    pub fn for_install(dir: &Path) -> Result<Self, ProvisionError> {
        let paths = crate::state::StatePaths::new(dir);
        let install = crate::state::load_install(&paths.install)?
            .ok_or_else(|| ProvisionError::NotInstalled { dir: dir.to_owned() })?;
        if install.side != crate::InstallSide::Server {
            return Err(ProvisionError::Usage(format!(
                "{} holds a client install; only server installs are provisioned",
                dir.display()
            )));
        }
        let m = crate::history::load(&paths, &install.build.0, &install.pack)?;
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

/// The result of [`provision`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provisioned {
    pub launch: LaunchDescription,
    /// False when the directory was already provisioned for the same versions.
    pub changed: bool,
}

/// A path component or URL segment from the pack: letters, digits, `.`, `_`, `+`, `-`.
fn check_version(what: &str, v: &str) -> Result<(), ProvisionError> {
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

/// Makes `opts.dir` launchable for the Minecraft version and loader of
/// `opts`, and writes its launch description. Takes the directory's lock.
pub async fn provision(opts: &ProvisionOptions) -> Result<Provisioned, ProvisionError> {
    check_version("Minecraft version", &opts.minecraft)?;
    if opts.loader == Loader::Vanilla {
        if !opts.loader_version.is_empty() {
            return Err(ProvisionError::Usage("vanilla has no loader version".into()));
        }
    } else {
        check_version("loader version", &opts.loader_version)?;
    }
    let paths = crate::state::StatePaths::new(&opts.dir);
    let _lock = crate::lock::DirLock::acquire(&paths)?;
    match LaunchDescription::load(&opts.dir) {
        Ok(Some(d))
            if d.minecraft == opts.minecraft
                && d.loader == opts.loader.as_str()
                && d.loader_version == opts.loader_version
                && loaders::files_present(&opts.dir, &d) =>
        {
            tracing::debug!("already provisioned");
            return Ok(Provisioned {
                launch: d,
                changed: false,
            });
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("provisioning again: {e}"),
    }
    let stage = tempfile::Builder::new()
        .prefix("provision-")
        .tempdir_in(&paths.state_dir)
        .map_err(ProvisionError::io(
            "creating a staging directory in",
            &paths.state_dir,
        ))?;
    let out = stage.path().join("out");
    std::fs::create_dir(&out).map_err(ProvisionError::io("creating", &out))?;
    let net = net::Net::new(opts.timeout)?;
    let ctx = loaders::Ctx {
        net: &net,
        opts,
        work: stage.path(),
        out: &out,
    };
    let launch = loaders::install(&ctx).await?;
    commit(&out, &opts.dir, true)?;
    if !loaders::files_present(&opts.dir, &launch) {
        return Err(ProvisionError::InstallerOutput {
            loader: opts.loader.as_str(),
            message: format!("`{}` is missing after the install", launch.target()),
        });
    }
    crate::state::write_atomic_json(&LaunchDescription::path(&opts.dir), &launch)?;
    Ok(Provisioned {
        launch,
        changed: true,
    })
}

/// Files an installer may write that belong to the user once they exist.
const USER_FILES: &[&str] = &["user_jvm_args.txt", "eula.txt", "server.properties"];

/// Moves the staged tree into the server directory, file by file (each
/// rename atomic); symbolic links are not followed or moved.
fn commit(from: &Path, to: &Path, top: bool) -> Result<(), ProvisionError> {
    let entries = std::fs::read_dir(from).map_err(ProvisionError::io("reading", from))?;
    for entry in entries {
        let entry = entry.map_err(ProvisionError::io("reading", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().map_err(ProvisionError::io("reading", &src))?;
        if ty.is_dir() {
            std::fs::create_dir_all(&dst).map_err(ProvisionError::io("creating directory", &dst))?;
            commit(&src, &dst, false)?;
        } else if ty.is_file() {
            let user = top && USER_FILES.iter().any(|n| entry.file_name() == *n);
            if user && std::fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            std::fs::rename(&src, &dst).map_err(ProvisionError::io("moving into place", &dst))?;
        } else {
            tracing::warn!(path = %src.display(), "the installer made a link; not installed");
        }
    }
    crate::state::sync_dir(to);
    Ok(())
}
