//! Launcher instance folders: `--instance DIR` points the fetcher at the game
//! directory of a Prism Launcher or MultiMC instance (the folder holding
//! `instance.cfg`), where mods, config and resource packs live.

use std::path::{Path, PathBuf};

use crate::error::SyncError;

/// The game directory of the instance at `dir`: its `.minecraft` or
/// `minecraft` subfolder (Prism Launcher and MultiMC use either; an existing
/// one wins, `.minecraft` when neither exists yet), or `dir` itself when it is
/// already a game directory.
pub fn game_dir(dir: &Path) -> PathBuf {
    for name in [".minecraft", "minecraft"] {
        let p = dir.join(name);
        if p.is_dir() {
            return p;
        }
    }
    if dir.join("instance.cfg").is_file() {
        dir.join(".minecraft")
    } else {
        dir.to_owned()
    }
}

/// Checks that `dir` is a launcher instance (it holds `instance.cfg`) and
/// returns its game directory.
pub fn resolve(dir: &Path) -> Result<PathBuf, SyncError> {
    if !dir.join("instance.cfg").is_file() {
        return Err(SyncError::Usage(format!(
            "--instance {}: no instance.cfg there; give the instance's folder (Prism Launcher: \
             right-click the instance, Folder), or use --dir for a plain directory",
            dir.display()
        )));
    }
    Ok(game_dir(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_game_directory_of_prism_and_multimc_instances() {
        let tmp = tempfile::tempdir().expect("tmp");
        let inst = tmp.path().join("MyPack");
        std::fs::create_dir_all(&inst).expect("mkdir");
        assert!(resolve(&inst).is_err(), "not an instance yet");
        std::fs::write(inst.join("instance.cfg"), "InstanceType=OneSix\n").expect("write");
        assert_eq!(resolve(&inst).expect("new instance"), inst.join(".minecraft"));
        std::fs::create_dir_all(inst.join("minecraft")).expect("mkdir");
        assert_eq!(resolve(&inst).expect("prism"), inst.join("minecraft"));
        std::fs::create_dir_all(inst.join(".minecraft")).expect("mkdir");
        assert_eq!(resolve(&inst).expect("multimc"), inst.join(".minecraft"));
    }
}
