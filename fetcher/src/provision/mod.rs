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

use std::path::Path;

use atlas_proto::IoError;
use serde::Serialize;

pub use error::ProvisionError;
pub use launch::{LAUNCH_FILE, LAUNCH_FORMAT, LaunchDescription, Loader};
pub use options::{DEFAULT_INSTALLER_TIMEOUT, ProvisionOptions, Upstreams};

use crate::durable;
use crate::lock::DirLock;
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
        .map_err(IoError::at("creating a staging directory in", &paths.state_dir))?;
    let out = stage.path().join("out");
    std::fs::create_dir(&out).map_err(IoError::at("creating", &out))?;
    let net = net::Net::new(opts.timeout, opts.limits)?;
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
    // Through the lock's handle on `.atlas/`: never written through a link.
    lock.local().state()?.write_atomic_json(LAUNCH_FILE, &launch)?;
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
    let entries = std::fs::read_dir(from).map_err(IoError::at("reading", from))?;
    for entry in entries {
        let entry = entry.map_err(IoError::at("reading", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().map_err(IoError::at("reading", &src))?;
        if ty.is_dir() {
            std::fs::create_dir_all(&dst).map_err(IoError::at("creating directory", &dst))?;
            commit(&src, &dst, false)?;
        } else if ty.is_file() {
            let user = top && USER_FILES.iter().any(|n| entry.file_name() == *n);
            if user && std::fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            std::fs::rename(&src, &dst).map_err(IoError::at("moving into place", &dst))?;
        } else {
            tracing::warn!(path = %src.display(), "the installer made a link; not installed");
        }
    }
    durable::sync_dir(to);
    Ok(())
}
