//! Optional files: which ones an install takes. The pack's defaults
//! (`default_enabled`) apply unless the host names a file to enable or
//! disable, by path, file name or display name (`--enable` / `--disable`, or
//! the config file). The selection is recorded in `install.json`, so changing
//! it re-plans even when the channel has not moved.

use std::collections::BTreeSet;

use atlas_proto::v1::File;
use serde::{Deserialize, Serialize};

use crate::error::SyncError;
use crate::side::InstallSide;

/// The host's choices among optional files; empty means the pack's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Optional files to install even if the pack leaves them off.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub enable: BTreeSet<String>,
    /// Optional files to leave out even if the pack turns them on.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disable: BTreeSet<String>,
}

/// Whether `name` designates `f`: its path, its file name, or (ignoring
/// case) its display name.
fn names(name: &str, f: &File) -> bool {
    f.path == name
        || f.path.rsplit('/').next() == Some(name)
        || (!f.display_name.is_empty() && f.display_name.eq_ignore_ascii_case(name))
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.enable.is_empty() && self.disable.is_empty()
    }

    /// Whether an install takes `f` (side already checked by the caller).
    pub fn takes(&self, f: &File) -> bool {
        if !f.optional {
            return true;
        }
        if self.enable.iter().any(|n| names(n, f)) {
            return true;
        }
        f.default_enabled && !self.disable.iter().any(|n| names(n, f))
    }

    /// Checks every name against the optional files of this side: a name that
    /// designates none (a typo, or a file of the other side), a file that is
    /// not optional, or one named both ways is an error that lists the choices.
    pub fn validate(&self, files: &[File], side: InstallSide) -> Result<(), SyncError> {
        let optional: Vec<&File> = files
            .iter()
            .filter(|f| f.optional && side.wants_side(f))
            .collect();
        let choices = || {
            if optional.is_empty() {
                return "this build has no optional files for this side".to_owned();
            }
            let list: Vec<String> = optional
                .iter()
                .map(|f| {
                    let state = if f.default_enabled { "on" } else { "off" };
                    match f.display_name.as_str() {
                        "" => format!("{} ({state})", f.path),
                        n => format!("{} [{n}] ({state})", f.path),
                    }
                })
                .collect();
            format!("optional files: {}", list.join(", "))
        };
        for (flag, set) in [("--enable", &self.enable), ("--disable", &self.disable)] {
            for name in set {
                if optional.iter().any(|f| names(name, f)) {
                    continue;
                }
                let reason = if files.iter().any(|f| names(name, f) && !f.optional) {
                    "that file is not optional: the pack always installs it".to_owned()
                } else {
                    "no optional file of this build has that path, file name or name".to_owned()
                };
                return Err(SyncError::Usage(format!(
                    "{flag} `{name}`: {reason}; {}",
                    choices()
                )));
            }
        }
        if let Some(both) = self.enable.intersection(&self.disable).next() {
            return Err(SyncError::Usage(format!(
                "`{both}` is named by both --enable and --disable; keep one"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_proto::v1::Side;

    fn opt(path: &str, name: &str, on: bool) -> File {
        File {
            path: path.into(),
            display_name: name.into(),
            optional: true,
            default_enabled: on,
            side: Side::Both as i32,
            ..Default::default()
        }
    }

    fn sel(enable: &[&str], disable: &[&str]) -> Selection {
        Selection {
            enable: enable.iter().map(|s| (*s).to_owned()).collect(),
            disable: disable.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn defaults_then_names_by_path_file_name_and_display_name() {
        let shaders = opt("shaderpacks/complementary.zip", "Complementary Shaders", false);
        let minimap = opt("mods/minimap.jar", "Xaero's Minimap", true);
        let always = File {
            path: "mods/core.jar".into(),
            ..Default::default()
        };
        let none = Selection::default();
        assert!(!none.takes(&shaders) && none.takes(&minimap) && none.takes(&always));
        assert!(sel(&["shaderpacks/complementary.zip"], &[]).takes(&shaders));
        assert!(sel(&["complementary.zip"], &[]).takes(&shaders));
        assert!(sel(&["complementary shaders"], &[]).takes(&shaders));
        assert!(!sel(&[], &["minimap.jar"]).takes(&minimap));
        assert!(
            sel(&[], &["core.jar"]).takes(&always),
            "only optional files can be left out"
        );
    }

    #[test]
    fn unknown_non_optional_and_contradictory_names_are_refused_with_the_choices() {
        let files = [
            opt("mods/minimap.jar", "Minimap", true),
            File {
                path: "mods/core.jar".into(),
                side: Side::Both as i32,
                ..Default::default()
            },
        ];
        let err = sel(&["minimpa.jar"], &[])
            .validate(&files, InstallSide::Server)
            .expect_err("typo");
        let msg = err.to_string();
        assert!(msg.contains("--enable `minimpa.jar`"), "{msg}");
        assert!(msg.contains("mods/minimap.jar [Minimap] (on)"), "{msg}");
        let err = sel(&[], &["core.jar"])
            .validate(&files, InstallSide::Server)
            .expect_err("not optional");
        assert!(err.to_string().contains("not optional"), "{err}");
        let err = sel(&["minimap.jar"], &["minimap.jar"])
            .validate(&files, InstallSide::Server)
            .expect_err("both");
        assert!(err.to_string().contains("both"), "{err}");
        sel(&["Minimap"], &[])
            .validate(&files, InstallSide::Server)
            .expect("fine");
    }
}
