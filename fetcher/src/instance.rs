//! Launcher instance folders: `--instance DIR` points the fetcher at the game
//! directory of a Prism Launcher or MultiMC instance (the folder holding
//! `instance.cfg`), where mods, config and resource packs live.
//!
//! Which game directory: the launcher says it when it runs the pre-launch
//! command (`INST_MC_DIR`, always a folder directly inside the instance).
//! Without it, the one of `minecraft` and `.minecraft` that exists. The two
//! launchers break the tie differently (Prism Launcher's `gameRoot` prefers
//! `minecraft`, MultiMC's `.minecraft`), so when both exist the fetcher
//! refuses to guess; when neither does, it takes `minecraft`, which both
//! launchers then use.

use std::path::{Path, PathBuf};

use crate::error::SyncError;

/// The variable Prism Launcher and MultiMC set for their pre-launch command:
/// the instance's game directory.
pub const MC_DIR_ENV: &str = "INST_MC_DIR";

/// The two names a game directory has inside an instance.
pub const GAME_DIRS: [&str; 2] = ["minecraft", ".minecraft"];

/// The game directory of the instance at `dir`, given the launcher's
/// `INST_MC_DIR` when it set one. See the module docs for the rules.
pub fn game_dir(dir: &Path, launcher_mc_dir: Option<&Path>) -> Result<PathBuf, SyncError> {
    if let Some(mc) = launcher_mc_dir.filter(|p| !p.as_os_str().is_empty()) {
        let name = mc.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let parent_is_dir = match (mc.parent().map(std::fs::canonicalize), std::fs::canonicalize(dir)) {
            (Some(Ok(a)), Ok(b)) => a == b,
            _ => mc.parent() == Some(dir),
        };
        if !GAME_DIRS.contains(&name) || !parent_is_dir {
            return Err(SyncError::Usage(format!(
                "{MC_DIR_ENV}={} is not the `minecraft` or `.minecraft` folder of the instance {}; \
                 run the pre-launch command from that instance's launcher",
                mc.display(),
                dir.display()
            )));
        }
        return Ok(dir.join(name));
    }
    let existing: Vec<PathBuf> = GAME_DIRS
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_dir())
        .collect();
    match existing.as_slice() {
        [one] => Ok(one.clone()),
        [] => Ok(dir.join(GAME_DIRS[0])),
        [a, b, ..] => Err(SyncError::Usage(format!(
            "the instance {} has both {} and {}: Prism Launcher would use the first and MultiMC the \
             second, so the fetcher does not guess; move your files into the one your launcher uses \
             and delete the other",
            dir.display(),
            a.display(),
            b.display()
        ))),
    }
}

/// Checks that `dir` is a launcher instance (it holds `instance.cfg`) and
/// returns its game directory, honouring `INST_MC_DIR` from the environment.
pub fn resolve(dir: &Path) -> Result<PathBuf, SyncError> {
    let env = std::env::var_os(MC_DIR_ENV).map(PathBuf::from);
    resolve_with(dir, env.as_deref())
}

/// [`resolve`] with the launcher's game directory given explicitly.
pub fn resolve_with(dir: &Path, launcher_mc_dir: Option<&Path>) -> Result<PathBuf, SyncError> {
    if !dir.join("instance.cfg").is_file() {
        return Err(SyncError::Usage(format!(
            "--instance {}: no instance.cfg there; give the instance's folder (Prism Launcher: \
             right-click the instance, Folder), or use --dir for a plain directory",
            dir.display()
        )));
    }
    game_dir(dir, launcher_mc_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_game_directory_of_prism_and_multimc_instances() {
        let tmp = tempfile::tempdir().expect("tmp");
        let inst = tmp.path().join("My Pack");
        std::fs::create_dir_all(&inst).expect("mkdir");
        assert!(resolve_with(&inst, None).is_err(), "not an instance yet");
        std::fs::write(inst.join("instance.cfg"), "InstanceType=OneSix\n").expect("write");
        assert_eq!(
            resolve_with(&inst, None).expect("new instance"),
            inst.join("minecraft"),
            "neither exists: the name both launchers then use"
        );
        std::fs::create_dir_all(inst.join(".minecraft")).expect("mkdir");
        assert_eq!(
            resolve_with(&inst, None).expect("multimc"),
            inst.join(".minecraft")
        );
        std::fs::create_dir_all(inst.join("minecraft")).expect("mkdir");
        let both = resolve_with(&inst, None).expect_err("both exist").to_string();
        assert!(
            both.contains("minecraft") && both.contains(".minecraft"),
            "{both}"
        );
        // The launcher's word settles it.
        assert_eq!(
            resolve_with(&inst, Some(&inst.join(".minecraft"))).expect("INST_MC_DIR"),
            inst.join(".minecraft")
        );
        assert_eq!(
            resolve_with(&inst, Some(&inst.join("minecraft"))).expect("INST_MC_DIR"),
            inst.join("minecraft")
        );
        let elsewhere = tmp.path().join("other/minecraft");
        assert!(
            resolve_with(&inst, Some(&elsewhere)).is_err(),
            "outside the instance"
        );
        assert!(
            resolve_with(&inst, Some(&inst.join("saves"))).is_err(),
            "not a game directory"
        );
    }
}
