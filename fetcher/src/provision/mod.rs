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
//! Everything is downloaded and installed into a private staging directory
//! first (mode 0700 in this user's temporary directory, `TMPDIR`: the
//! server's user can neither write there nor redirect it, as it could a
//! directory under `.atlas/`), then copied into the server directory through
//! directory handles that follow no link (by way of `.atlas/provision-*`, so
//! each file lands with one rename), and only once it is complete; the
//! launch description is written last, atomically. A failed run therefore
//! leaves the previous launch description, and what it names, as they
//! were. A link the server's user put where a file or directory goes (say
//! `libraries` -> `/etc`) stops the run (exit 7) and nothing is written
//! through it. A run
//! that finds a launch description for the same Minecraft, loader and loader
//! version whose files exist does nothing (and makes no request).
//!
//! Layering: `launch.rs` (the description) and `options.rs` (what to
//! provision) below `net.rs` and `process.rs`, below `loaders.rs`, below
//! this file, which runs the whole and re-exports the public types.

mod error;
mod launch;
mod loaders;
mod net;
mod options;
mod process;
#[cfg(test)]
mod tests;

use atlas_proto::IoError;
use serde::Serialize;

pub use error::ProvisionError;
pub use launch::{LAUNCH_FILE, LAUNCH_FORMAT, LaunchDescription, Loader};
pub use options::{DEFAULT_INSTALLER_TIMEOUT, ProvisionOptions, Upstreams};

use crate::lock::DirLock;
use crate::place::copy_into_place;
use crate::safe_dir::SafeDir;
use crate::state::StatePaths;
use options::check_version;

/// The result of [`provision`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provisioned {
    pub launch: LaunchDescription,
    /// False when the directory was already provisioned for the same versions.
    pub changed: bool,
}

/// Makes `opts.dir` launchable for the Minecraft version and loader of
/// `opts`, and writes its launch description. Takes the directory's lock.
///
/// Dropping the future while it downloads or an installer runs stops it:
/// the installer process is killed, the staging directory removed and the
/// lock released; the server directory is as it was. Moving the result into
/// place and writing the description happen without an await, so a drop
/// never lands between them.
pub async fn provision(opts: &ProvisionOptions) -> Result<Provisioned, ProvisionError> {
    check_version("Minecraft version", &opts.minecraft)?;
    if opts.loader == Loader::Vanilla {
        if !opts.loader_version.is_empty() {
            return Err(ProvisionError::Usage("vanilla has no loader version".into()));
        }
    } else {
        check_version("loader version", &opts.loader_version)?;
    }
    let paths = StatePaths::new(&opts.dir);
    let lock = DirLock::acquire(&paths)?;
    let (dir, state) = (lock.local().dir()?, lock.local().state()?);
    match LaunchDescription::load(&opts.dir) {
        Ok(Some(d))
            if d.minecraft == opts.minecraft
                && d.loader == opts.loader.as_str()
                && d.loader_version == opts.loader_version
                && loaders::files_present(dir, &d) =>
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
    remove_leftovers(state)?;
    let stage = tempfile::Builder::new()
        .prefix("atlas-provision-")
        .tempdir()
        .map_err(IoError::at(
            "creating a staging directory in",
            std::env::temp_dir(),
        ))?;
    let out = stage.path().join("out");
    std::fs::create_dir(&out).map_err(IoError::at("creating", &out))?;
    let net = net::Net::new(opts.timeout, opts.limits)?;
    let ctx = loaders::Ctx {
        net: &net,
        opts,
        dir,
        work: stage.path(),
        out: &out,
    };
    let launch = loaders::install(&ctx).await?;
    let staged = SafeDir::open_ambient(&out).map_err(IoError::at("opening", &out))?;
    let landing_name = format!("{LANDING_PREFIX}{}", std::process::id());
    let landing = state.create_dir(&landing_name)?;
    let committed = commit(&staged, dir, &landing, true);
    let _ = state.remove_all(&landing_name);
    committed?;
    if !loaders::files_present(dir, &launch) {
        return Err(ProvisionError::InstallerOutput {
            loader: opts.loader.as_str(),
            message: format!("`{}` is missing after the install", launch.target()),
        });
    }
    // Through the lock's handle on `.atlas/`: never written through a link.
    state.write_atomic_json(LAUNCH_FILE, &launch)?;
    Ok(Provisioned {
        launch,
        changed: true,
    })
}

/// Prefix of the directories in `.atlas/` through which installed files
/// land (one per run, removed at its end; an interrupted run's are removed
/// by the next). Runs before this one staged there too.
const LANDING_PREFIX: &str = "provision-";

/// Removes what an interrupted run left in `.atlas/` (under the lock, so no
/// run is using it).
fn remove_leftovers(state: &SafeDir) -> Result<(), ProvisionError> {
    for (name, meta) in state.entries()? {
        if meta.is_dir() && name.starts_with(LANDING_PREFIX) {
            state.remove_all(&name)?;
        }
    }
    Ok(())
}

/// Files an installer may write that belong to the user once they exist.
const USER_FILES: &[&str] = &["user_jvm_args.txt", "eula.txt", "server.properties"];

/// Copies the staged tree into the server directory, file by file: each
/// file is written in `landing` (on the server directory's filesystem),
/// fsynced, and renamed into place, so none is ever seen half-written.
/// Directories are opened and created one name at a time without following
/// links (a link where a directory goes is an error naming it); a link
/// where a file goes is replaced, never written through. Links the
/// installer made are not installed.
fn commit(from: &SafeDir, to: &SafeDir, landing: &SafeDir, top: bool) -> Result<(), ProvisionError> {
    for (name, meta) in from.entries()? {
        if meta.is_dir() {
            let sub = from.open_dir(&name)?.ok_or_else(|| {
                IoError::at("reading", from.join(&name))(std::io::ErrorKind::NotFound.into())
            })?;
            commit(&sub, &to.create_dir(&name)?, landing, false)?;
        } else if meta.is_file() {
            if top && USER_FILES.contains(&name.as_str()) && to.entry(&name)?.is_some() {
                continue;
            }
            copy_into_place((from, &name), (to, &name), executable(&meta), landing)?;
        } else {
            tracing::warn!(path = %from.join(&name).display(), "the installer made a link; not installed");
        }
    }
    to.sync();
    Ok(())
}

/// Whether the installer made `meta`'s file executable (`run.sh`).
fn executable(meta: &cap_std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use cap_std::fs::PermissionsExt as _;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}
