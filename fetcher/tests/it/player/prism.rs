//! What Prism Launcher and MultiMC do with an Atlas instance archive and its
//! pre-launch command, done here the same way, so the tests run the archive
//! as a launcher would:
//!
//! - import: the instance root is found as Prism's `getRootFromZip`
//!   (`launcher/InstanceImportTask.cpp`) finds it: a root
//!   `modrinth.index.json` makes the zip a Modrinth pack; otherwise the
//!   folders are searched, files before subfolders, `overrides/` skipped, and
//!   `instance.cfg` marks a MultiMC instance (`manifest.json` a CurseForge
//!   pack); the folder holding it is extracted (zip-slip refused);
//! - `instance.cfg` is read with the old-format rules of Prism's
//!   `settings/INIFile.cpp` (`parseOldFileFormat`, `unescape`, `unquote`);
//! - the command is split as Qt's `QProcess::splitCommand` does
//!   (qtbase `src/corelib/io/qprocess.cpp`: whitespace separates, `"` quotes,
//!   `"""` is a literal quote) and `$KEY` replaced in each argument (Prism,
//!   `LaunchTask::substituteVariables` after the split), or replaced in the
//!   whole string first and then split (MultiMC's order);
//! - it runs with no shell, in the game directory, with `INST_NAME`,
//!   `INST_ID`, `INST_DIR`, `INST_MC_DIR`, `INST_JAVA`, `INST_JAVA_ARGS` and
//!   `NO_COLOR` (Prism `MinecraftInstance::getVariables`/`createEnvironment`)
//!   over a clean environment.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder of the zip that holds the instance, as Prism finds it
/// (`""`: the zip's root); panics on a zip Prism would take for another
/// format or not import.
pub fn import_root(zip_bytes: &[u8]) -> String {
    let zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).expect("a zip");
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    assert!(
        !names.iter().any(|n| n == "modrinth.index.json"),
        "a root modrinth.index.json makes it a Modrinth pack"
    );
    assert!(
        !names
            .iter()
            .any(|n| n == "bin/modpack.jar" || n == "bin/version.json"),
        "Technic"
    );
    // Folders by depth, files of a folder before its subfolders.
    let mut folders: Vec<String> = vec![String::new()];
    while !folders.is_empty() {
        let mut next = Vec::new();
        for dir in &folders {
            for n in &names {
                let Some(rest) = n.strip_prefix(dir.as_str()) else {
                    continue;
                };
                if rest == "instance.cfg" {
                    return dir.clone();
                }
                assert_ne!(
                    rest, "manifest.json",
                    "a manifest.json makes it a CurseForge pack"
                );
            }
            let mut subs: Vec<String> = names
                .iter()
                .filter_map(|n| n.strip_prefix(dir.as_str()))
                .filter_map(|r| r.split_once('/').map(|(d, _)| format!("{dir}{d}/")))
                .filter(|d| !d.ends_with("overrides/"))
                .collect();
            subs.sort();
            subs.dedup();
            next.extend(subs);
        }
        folders = next;
    }
    panic!("no instance.cfg: Prism Launcher would not import it");
}

/// Extracts the folder `root` of the zip into `dest` (the new instance).
pub fn extract(zip_bytes: &[u8], root: &str, dest: &Path) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).expect("a zip");
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).expect("entry");
        let name = entry.name().to_owned();
        let Some(rel) = name.strip_prefix(root) else {
            continue;
        };
        let safe = entry.enclosed_name().expect("no zip-slip entry");
        assert!(!safe.is_absolute());
        let out = dest.join(rel);
        if name.ends_with('/') {
            std::fs::create_dir_all(&out).expect("mkdir");
            continue;
        }
        std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        std::fs::write(&out, bytes).expect("write");
    }
}

/// `instance.cfg` as Prism reads a file without `ConfigVersion`.
pub fn read_cfg(text: &str) -> BTreeMap<String, String> {
    assert!(
        !text.contains("ConfigVersion"),
        "the old format is what keeps quotes"
    );
    atlas_testkit::prism::read_instance_cfg(text)
}

/// Qt's `QProcess::splitCommand`.
pub fn split_command(command: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut tmp = String::new();
    let mut quotes = 0;
    let mut in_quote = false;
    for c in command.chars() {
        if c == '"' {
            quotes += 1;
            if quotes == 3 {
                quotes = 0;
                tmp.push(c);
            }
            continue;
        }
        if quotes > 0 {
            if quotes == 1 {
                in_quote = !in_quote;
            }
            quotes = 0;
        }
        if !in_quote && c.is_whitespace() {
            if !tmp.is_empty() {
                args.push(std::mem::take(&mut tmp));
            }
        } else {
            tmp.push(c);
        }
    }
    if !tmp.is_empty() {
        args.push(tmp);
    }
    args
}

/// Which launcher's order of substitution and splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// Split, then substitute in each argument.
    Prism,
    /// Substitute in the whole string, then split.
    MultiMc,
}

/// A launch of an imported instance.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The instance folder (under `…/instances/`).
    pub instance: PathBuf,
    /// The Java the launcher chose.
    pub java: PathBuf,
    /// `XDG_CACHE_HOME`: where the bootstrap caches the fetcher.
    pub cache_home: PathBuf,
    /// Extra variables (a player's `ATLAS_CHANNEL`, say).
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The game directory the launcher picks (and creates): `minecraft`
    /// unless only `.minecraft` exists (Prism's `gameRoot`).
    pub fn game_dir(&self) -> PathBuf {
        let dot = self.instance.join(".minecraft");
        let plain = self.instance.join("minecraft");
        if dot.is_dir() && !plain.is_dir() {
            dot
        } else {
            plain
        }
    }

    /// Runs the instance's pre-launch command as `launcher` does (the
    /// test's runtime keeps serving the store meanwhile).
    pub async fn pre_launch(&self, launcher: Launcher) -> Output {
        let cfg =
            read_cfg(&std::fs::read_to_string(self.instance.join("instance.cfg")).expect("instance.cfg"));
        assert_eq!(cfg.get("OverrideCommands").map(String::as_str), Some("true"));
        let command = cfg.get("PreLaunchCommand").expect("a pre-launch command").clone();
        let mc = self.game_dir();
        std::fs::create_dir_all(&mc).expect("CreateGameFolders");
        let name = self
            .instance
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let vars: BTreeMap<String, String> = [
            ("INST_NAME", cfg.get("name").cloned().unwrap_or_default()),
            ("INST_ID", name),
            ("INST_DIR", self.instance.display().to_string()),
            ("INST_MC_DIR", mc.display().to_string()),
            ("INST_JAVA", self.java.display().to_string()),
            ("INST_JAVA_ARGS", "-Xmx2G".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let substitute = |s: &str| {
            vars.iter()
                .fold(s.to_owned(), |acc, (k, v)| acc.replace(&format!("${k}"), v))
        };
        let args: Vec<String> = match launcher {
            Launcher::Prism => split_command(&command).iter().map(|a| substitute(a)).collect(),
            Launcher::MultiMc => split_command(&substitute(&command)),
        };
        let (program, rest) = args.split_first().expect("a program");
        let mut cmd = Command::new(program);
        cmd.args(rest).current_dir(&mc).env_clear();
        for k in ["PATH", "HOME", "LANG"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(&vars)
            .env("NO_COLOR", "1")
            .env("XDG_CACHE_HOME", &self.cache_home)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        tokio::process::Command::from(cmd)
            .output()
            .await
            .unwrap_or_else(|e| panic!("starting {program}: {e}"))
    }
}

/// The Java on PATH, as a launcher's Java setting would name it.
pub fn java() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("java"))
        .find(|p| p.is_file())
        .expect("java on PATH: install a JDK (apt-get install openjdk-17-jdk-headless)")
}

#[test]
fn qt_splitting_rules() {
    assert_eq!(split_command(r#""a b" c  "d""#), ["a b", "c", "d"]);
    assert_eq!(split_command(r#"say """hi""" x"#), ["say", "\"hi\"", "x"]);
    assert_eq!(split_command("  "), Vec::<String>::new());
}
