//! The changelog between two builds: mods added, removed and updated (by
//! display name and version) and other files added, removed and changed,
//! from two manifests read from a store by build id or channel.

use std::collections::BTreeMap;

use serde::Serialize;

use atlas_proto::Limits;
use atlas_proto::Sha256Digest;
use atlas_proto::manifest;
use atlas_proto::v1::{File, Manifest};

use crate::builds::{self, BuildLookupError};
use crate::store::Store;

/// A build could not be read.
pub type DiffError = BuildLookupError;

/// Which build to read.
#[derive(Debug, Clone)]
pub enum BuildRef {
    Build(Sha256Digest),
    /// The build a channel points to now (its signature is not checked: a
    /// changelog is informational).
    Channel(String),
}

/// The build a [`BuildRef`] names.
pub async fn resolve_build(store: &dyn Store, pack: &str, at: &BuildRef) -> Result<Sha256Digest, DiffError> {
    match at {
        BuildRef::Build(b) => Ok(*b),
        BuildRef::Channel(channel) => builds::channel_build(store, pack, channel).await,
    }
}

/// Reads build `build` of `pack`, checks it hashes to its id, and decodes it.
pub async fn load_manifest(
    store: &dyn Store,
    pack: &str,
    build: &Sha256Digest,
) -> Result<Manifest, DiffError> {
    let bytes = builds::manifest_bytes(store, pack, build).await?;
    manifest::decode(&bytes, &Limits::DEFAULT.manifest).map_err(|e| {
        BuildLookupError::damaged(
            store,
            &atlas_proto::layout::manifest_key(pack, build),
            e.to_string(),
        )
    })
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    pub build: String,
    pub version: String,
    pub minecraft: String,
}

/// A mod present in one build only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModEntry {
    pub name: String,
    pub version: String,
    pub path: String,
}

/// A mod present in both builds with different contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModUpdate {
    pub name: String,
    pub from: String,
    pub to: String,
    pub path: String,
}

/// What changed between two builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changelog {
    pub pack: String,
    pub from: BuildInfo,
    pub to: BuildInfo,
    pub added: Vec<ModEntry>,
    pub removed: Vec<ModEntry>,
    pub updated: Vec<ModUpdate>,
    /// Other files (configs, resources), by path.
    pub files_added: Vec<String>,
    pub files_removed: Vec<String>,
    pub files_changed: Vec<String>,
}

/// A file is a mod when it has a display name or an upstream.
fn is_mod(f: &File) -> bool {
    !f.display_name.is_empty() || !f.upstreams.is_empty()
}

/// What identifies a mod across builds: its upstream project
/// (`modrinth:<project>`, `curseforge:<project>`), else its display name, else its path.
fn mod_key(f: &File) -> String {
    let project = f
        .upstreams
        .iter()
        .find_map(|u| u.origin.split_once('/').map(|(project, _)| project.to_owned()))
        .filter(|p| p.contains(':'));
    project
        .or_else(|| (!f.display_name.is_empty()).then(|| format!("name:{}", f.display_name)))
        .unwrap_or_else(|| format!("path:{}", f.path))
}

fn display_name(f: &File) -> String {
    if f.display_name.is_empty() {
        file_name(f).to_owned()
    } else {
        f.display_name.clone()
    }
}

/// The version shown: upstream's version, else the installed file name.
fn display_version(f: &File) -> String {
    if f.display_version.is_empty() {
        file_name(f).to_owned()
    } else {
        f.display_version.clone()
    }
}

fn file_name(f: &File) -> &str {
    f.path.rsplit('/').next().unwrap_or(&f.path)
}

fn info(m: &Manifest, build: &Sha256Digest) -> BuildInfo {
    BuildInfo {
        build: build.to_hex(),
        version: m.version.clone(),
        minecraft: m.minecraft_version.clone(),
    }
}

fn entry(f: &File) -> ModEntry {
    ModEntry {
        name: display_name(f),
        version: display_version(f),
        path: f.path.clone(),
    }
}

/// Compares two manifests. Mods are matched by upstream project, display
/// name or path; a mod whose bytes or install path changed is updated.
pub fn diff(a: &Manifest, a_id: &Sha256Digest, b: &Manifest, b_id: &Sha256Digest) -> Changelog {
    let mods = |m: &Manifest| -> BTreeMap<String, File> {
        m.files
            .iter()
            .filter(|f| is_mod(f))
            .map(|f| (mod_key(f), f.clone()))
            .collect()
    };
    let files = |m: &Manifest| -> BTreeMap<String, Vec<u8>> {
        m.files
            .iter()
            .filter(|f| !is_mod(f))
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect()
    };
    let (old, new) = (mods(a), mods(b));
    let mut log = Changelog {
        pack: b.pack_id.clone(),
        from: info(a, a_id),
        to: info(b, b_id),
        added: new
            .iter()
            .filter(|(k, _)| !old.contains_key(*k))
            .map(|(_, f)| entry(f))
            .collect(),
        removed: old
            .iter()
            .filter(|(k, _)| !new.contains_key(*k))
            .map(|(_, f)| entry(f))
            .collect(),
        updated: old
            .iter()
            .filter_map(|(k, was)| {
                let now = new.get(k)?;
                (was.sha256 != now.sha256 || was.path != now.path).then(|| {
                    let (mut from, mut to) = (display_version(was), display_version(now));
                    if from == to {
                        // Same name, new bytes: tell them apart by content.
                        from = format!("{from} ({})", short_hash(&was.sha256));
                        to = format!("{to} ({})", short_hash(&now.sha256));
                    }
                    ModUpdate {
                        name: display_name(now),
                        from,
                        to,
                        path: now.path.clone(),
                    }
                })
            })
            .collect(),
        files_added: Vec::new(),
        files_removed: Vec::new(),
        files_changed: Vec::new(),
    };
    let (old, new) = (files(a), files(b));
    for (path, sha) in &new {
        match old.get(path) {
            None => log.files_added.push(path.clone()),
            Some(was) if was != sha => log.files_changed.push(path.clone()),
            Some(_) => {}
        }
    }
    log.files_removed = old.keys().filter(|p| !new.contains_key(*p)).cloned().collect();
    log.added.sort_by_key(|m| m.name.to_lowercase());
    log.removed.sort_by_key(|m| m.name.to_lowercase());
    log.updated.sort_by_key(|m| m.name.to_lowercase());
    log
}

impl Changelog {
    /// True when neither mods nor files changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.updated.is_empty()
            && self.files_added.is_empty()
            && self.files_removed.is_empty()
            && self.files_changed.is_empty()
    }

    /// A Markdown changelog.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{} {} -> {} (build {} -> {})",
            self.pack,
            self.from.version,
            self.to.version,
            short(&self.from.build),
            short(&self.to.build)
        );
        if self.from.minecraft != self.to.minecraft {
            s.push_str(&format!(
                "\nMinecraft {} -> {}",
                self.from.minecraft, self.to.minecraft
            ));
        }
        if self.is_empty() {
            s.push_str("\nno changes");
            return s;
        }
        let mut section = |title: &str, lines: Vec<String>| {
            if !lines.is_empty() {
                s.push_str(&format!("\n\n## {title} ({})\n", lines.len()));
                s.push_str(&lines.join("\n"));
            }
        };
        section(
            "Added",
            self.added
                .iter()
                .map(|m| format!("- {} {}", m.name, m.version))
                .collect(),
        );
        section(
            "Updated",
            self.updated
                .iter()
                .map(|m| format!("- {}: {} -> {}", m.name, m.from, m.to))
                .collect(),
        );
        section(
            "Removed",
            self.removed
                .iter()
                .map(|m| format!("- {} {}", m.name, m.version))
                .collect(),
        );
        let files: Vec<String> = self
            .files_added
            .iter()
            .map(|p| format!("- added {p}"))
            .chain(self.files_changed.iter().map(|p| format!("- changed {p}")))
            .chain(self.files_removed.iter().map(|p| format!("- removed {p}")))
            .collect();
        section("Other files", files);
        s
    }
}

fn short_hash(sha256: &[u8]) -> String {
    hex::encode(sha256.get(..4).unwrap_or(sha256))
}

fn short(build: &str) -> &str {
    build.get(..12).unwrap_or(build)
}

/// Reads both builds from `store` and compares them.
pub async fn diff_builds(
    store: &dyn Store,
    pack: &str,
    from: &BuildRef,
    to: &BuildRef,
) -> Result<Changelog, DiffError> {
    let a_id = resolve_build(store, pack, from).await?;
    let b_id = resolve_build(store, pack, to).await?;
    let a = load_manifest(store, pack, &a_id).await?;
    let b = load_manifest(store, pack, &b_id).await?;
    Ok(diff(&a, &a_id, &b, &b_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_proto::v1::Upstream;

    fn file(path: &str, bytes: &[u8], name: &str, version: &str, origin: &str) -> File {
        File {
            path: path.to_owned(),
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes).0.to_vec(),
            display_name: name.to_owned(),
            display_version: version.to_owned(),
            upstreams: if origin.is_empty() {
                Vec::new()
            } else {
                vec![Upstream {
                    url: format!("https://example.invalid/{path}"),
                    hashes: Vec::new(),
                    origin: origin.to_owned(),
                }]
            },
            ..File::default()
        }
    }

    fn manifest(version: &str, files: Vec<File>) -> Manifest {
        Manifest {
            pack_id: "p".into(),
            version: version.into(),
            minecraft_version: "1.21.1".into(),
            files,
            ..Manifest::default()
        }
    }

    fn id(n: u8) -> Sha256Digest {
        Sha256Digest([n; 32])
    }

    #[test]
    fn mods_added_removed_updated_and_files_changed() {
        let a = manifest(
            "1.0",
            vec![
                file(
                    "mods/sodium-0.5.jar",
                    b"s5",
                    "Sodium",
                    "0.5.0",
                    "modrinth:AANobbMI/v5",
                ),
                file("mods/jei.jar", b"j", "JEI", "19.0", "curseforge:238222/1"),
                file("mods/old.jar", b"o", "Old Mod", "", "url"),
                file("mods/local.jar", b"l1", "Local", "", ""),
                file("config/a.json", b"a1", "", "", ""),
                file("config/gone.json", b"g", "", "", ""),
            ],
        );
        let b = manifest(
            "1.1",
            vec![
                // Renamed file, same project: an update, not add + remove.
                file(
                    "mods/sodium-0.6.jar",
                    b"s6",
                    "Sodium",
                    "0.6.0",
                    "modrinth:AANobbMI/v6",
                ),
                file("mods/jei.jar", b"j", "JEI", "19.0", "curseforge:238222/1"),
                file("mods/local.jar", b"l2", "Local", "", ""),
                file("mods/new.jar", b"n", "New Mod", "2.0", "modrinth:NEW/v1"),
                file("config/a.json", b"a2", "", "", ""),
                file("config/b.json", b"b", "", "", ""),
            ],
        );
        let log = diff(&a, &id(1), &b, &id(2));
        assert_eq!(
            log.added,
            [ModEntry {
                name: "New Mod".into(),
                version: "2.0".into(),
                path: "mods/new.jar".into()
            }]
        );
        assert_eq!(
            log.removed,
            [ModEntry {
                name: "Old Mod".into(),
                version: "old.jar".into(),
                path: "mods/old.jar".into()
            }]
        );
        let updated: Vec<(&str, &str, &str)> = log
            .updated
            .iter()
            .map(|u| (u.name.as_str(), u.from.as_str(), u.to.as_str()))
            .collect();
        assert_eq!(
            updated,
            [
                ("Local", "local.jar (2804bad6)", "local.jar (8a1cee43)"),
                ("Sodium", "0.5.0", "0.6.0")
            ]
        );
        assert_eq!(log.files_added, ["config/b.json"]);
        assert_eq!(log.files_changed, ["config/a.json"]);
        assert_eq!(log.files_removed, ["config/gone.json"]);
        let text = log.human();
        assert!(
            text.starts_with("p 1.0 -> 1.1 (build 010101010101 -> 020202020202)"),
            "{text}"
        );
        assert!(text.contains("## Added (1)\n- New Mod 2.0"), "{text}");
        assert!(text.contains("- Sodium: 0.5.0 -> 0.6.0"), "{text}");
        assert!(text.contains("## Removed (1)\n- Old Mod old.jar"), "{text}");
        assert!(text.contains("- changed config/a.json"), "{text}");
    }

    #[test]
    fn same_build_has_no_changes() {
        let a = manifest("1", vec![file("mods/x.jar", b"x", "X", "1", "url")]);
        let log = diff(&a, &id(1), &a, &id(1));
        assert!(log.is_empty());
        assert!(log.human().ends_with("no changes"), "{}", log.human());
    }
}
