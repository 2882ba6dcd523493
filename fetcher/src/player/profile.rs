//! The instance's launcher profile (`mmc-pack.json`): which Minecraft and
//! loader the launcher starts. Before a build's files are installed, its
//! Minecraft and loader versions must be the profile's; when a build needs
//! others, the profile is switched (only the Minecraft and loader
//! components; the player's other components stay, a mapping component
//! pinned to the old Minecraft is dropped for the launcher to re-add) and the
//! launch stops, so the launcher reads the new profile on the next launch
//! and files and loader are never out of step when the game starts.
//!
//! Format: PrismLauncher `launcher/minecraft/PackProfile.cpp`
//! (`formatVersion` 1, ordered `components` of `{uid, version, ...}`; fields
//! we do not know are kept as they are).

use std::path::Path;

use serde_json::{Map, Value, json};

use atlas_proto::launcher::{LOADER_UIDS, MAPPING_UIDS, MINECRAFT_UID, loader_component_version, loader_uid};
use atlas_proto::v1::{LoaderKind, Manifest};

use crate::durable;
use crate::error::SyncError;

/// The profile file, in the instance folder.
pub const PROFILE_FILE: &str = "mmc-pack.json";

/// The largest profile read (a real one is a few KiB).
const PROFILE_BYTES: u64 = 1024 * 1024;

/// What [`ensure`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// The launcher starts the build's Minecraft and loader.
    Matches,
    /// The profile named other versions and was rewritten: the launch must
    /// stop so the launcher reads it.
    Switched {
        /// `Minecraft 1.21.1 with Fabric 0.16.9`.
        now: String,
    },
}

/// The Minecraft version and loader (uid, version) a manifest needs.
fn wanted(m: &Manifest) -> (String, Option<(&'static str, String)>) {
    let kind = m
        .loader
        .as_ref()
        .and_then(|l| LoaderKind::try_from(l.kind).ok())
        .unwrap_or(LoaderKind::Vanilla);
    let version = m.loader.as_ref().map(|l| l.version.as_str()).unwrap_or_default();
    let loader =
        loader_uid(kind).map(|uid| (uid, loader_component_version(kind, version, &m.minecraft_version)));
    (m.minecraft_version.clone(), loader)
}

fn describe(minecraft: &str, loader: &Option<(&'static str, String)>) -> String {
    match loader {
        Some((uid, v)) => format!("Minecraft {minecraft} with {uid} {v}"),
        None => format!("Minecraft {minecraft} (vanilla)"),
    }
}

fn components(doc: &Value) -> Vec<Value> {
    doc.get("components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn uid(c: &Value) -> &str {
    c.get("uid").and_then(Value::as_str).unwrap_or_default()
}

fn version(c: &Value) -> &str {
    c.get("version").and_then(Value::as_str).unwrap_or_default()
}

/// Whether the profile's components start what the build needs.
fn matches(doc: &Value, minecraft: &str, loader: &Option<(&'static str, String)>) -> bool {
    let comps = components(doc);
    let mc_ok = comps
        .iter()
        .any(|c| uid(c) == MINECRAFT_UID && version(c) == minecraft);
    let loaders: Vec<&Value> = comps.iter().filter(|c| LOADER_UIDS.contains(&uid(c))).collect();
    let loader_ok = match loader {
        Some((want, v)) => loaders.len() == 1 && uid(loaders[0]) == *want && version(loaders[0]) == v,
        None => loaders.is_empty(),
    };
    mc_ok && loader_ok
}

/// The profile with Minecraft and the loader replaced.
fn switched(doc: &Value, minecraft: &str, loader: &Option<(&'static str, String)>) -> Value {
    let old_mc = components(doc)
        .iter()
        .find(|c| uid(c) == MINECRAFT_UID)
        .map(|c| version(c).to_owned());
    let mut out: Vec<Value> = Vec::new();
    let mut placed = false;
    for c in components(doc) {
        let id = uid(&c).to_owned();
        if id == MINECRAFT_UID || LOADER_UIDS.contains(&id.as_str()) {
            if !placed {
                out.push(json!({"uid": MINECRAFT_UID, "version": minecraft, "important": true}));
                if let Some((u, v)) = loader {
                    out.push(json!({"uid": u, "version": v}));
                }
                placed = true;
            }
            continue;
        }
        // Mappings pinned to another Minecraft: the launcher adds the right ones.
        if MAPPING_UIDS.contains(&id.as_str())
            && (version(&c) != minecraft || old_mc.as_deref() != Some(minecraft))
        {
            continue;
        }
        out.push(c);
    }
    if !placed {
        let mut head = vec![json!({"uid": MINECRAFT_UID, "version": minecraft, "important": true})];
        if let Some((u, v)) = loader {
            head.push(json!({"uid": u, "version": v}));
        }
        head.extend(out);
        out = head;
    }
    let mut obj: Map<String, Value> = doc.as_object().cloned().unwrap_or_default();
    obj.insert("components".into(), Value::Array(out));
    obj.entry("formatVersion").or_insert(json!(1));
    Value::Object(obj)
}

/// Makes the instance's profile start `m`'s Minecraft and loader (see the
/// module docs). A profile that is a symbolic link is refused, never followed.
pub fn ensure(instance: &Path, m: &Manifest) -> Result<Profile, SyncError> {
    let path = instance.join(PROFILE_FILE);
    let (minecraft, loader) = wanted(m);
    let doc = match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(SyncError::Conflict {
                path: path.display().to_string(),
                reason: "it is a symbolic link; the fetcher writes only files it can replace safely".into(),
            });
        }
        Ok(meta) if meta.len() > PROFILE_BYTES => {
            return Err(SyncError::State {
                path: path.clone(),
                message: format!("larger than {PROFILE_BYTES} bytes"),
            });
        }
        Ok(_) => {
            let bytes = std::fs::read(&path).map_err(atlas_proto::IoError::at("reading", &path))?;
            serde_json::from_slice::<Value>(&bytes).map_err(|e| SyncError::State {
                path: path.clone(),
                message: format!("not JSON ({e}); re-import the instance, or fix the file"),
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({"formatVersion": 1, "components": []}),
        Err(e) => return Err(atlas_proto::IoError::at("reading", &path)(e).into()),
    };
    if matches(&doc, &minecraft, &loader) {
        return Ok(Profile::Matches);
    }
    let new = switched(&doc, &minecraft, &loader);
    let mut bytes = serde_json::to_vec_pretty(&new).map_err(|e| SyncError::Internal(e.to_string()))?;
    bytes.push(b'\n');
    durable::write_atomic(&path, &bytes)?;
    Ok(Profile::Switched {
        now: describe(&minecraft, &loader),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_proto::v1::Loader;

    fn manifest(mc: &str, kind: LoaderKind, v: &str) -> Manifest {
        Manifest {
            minecraft_version: mc.into(),
            loader: Some(Loader {
                kind: kind as i32,
                version: v.into(),
            }),
            ..Manifest::default()
        }
    }

    #[test]
    fn a_matching_profile_is_left_alone_and_others_are_switched_keeping_the_rest() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = tmp.path().join(PROFILE_FILE);
        let original = r#"{"components": [
            {"uid": "org.lwjgl3", "version": "3.3.3", "dependencyOnly": true},
            {"uid": "net.minecraft", "version": "1.21.1", "important": true},
            {"uid": "net.fabricmc.intermediary", "version": "1.21.1", "dependencyOnly": true},
            {"uid": "net.fabricmc.fabric-loader", "version": "0.16.9"},
            {"uid": "com.example.player-added", "version": "7"}
        ], "formatVersion": 1}"#;
        std::fs::write(&p, original).expect("write");
        let m = manifest("1.21.1", LoaderKind::Fabric, "0.16.9");
        assert_eq!(ensure(tmp.path(), &m).expect("ensure"), Profile::Matches);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), original, "untouched");

        let m = manifest("1.21.4", LoaderKind::Fabric, "0.16.10");
        let r = ensure(tmp.path(), &m).expect("ensure");
        assert!(
            matches!(r, Profile::Switched { ref now } if now.contains("1.21.4")),
            "{r:?}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        let uids: Vec<(&str, &str)> = doc["components"]
            .as_array()
            .expect("array")
            .iter()
            .map(|c| (uid(c), version(c)))
            .collect();
        assert_eq!(
            uids,
            [
                ("org.lwjgl3", "3.3.3"),
                ("net.minecraft", "1.21.4"),
                ("net.fabricmc.fabric-loader", "0.16.10"),
                ("com.example.player-added", "7"),
            ],
            "stale intermediary dropped, the rest kept in order"
        );
        assert_eq!(ensure(tmp.path(), &m).expect("again"), Profile::Matches);

        // Another loader replaces the old one.
        let m = manifest("1.21.4", LoaderKind::Neoforge, "21.4.1");
        ensure(tmp.path(), &m).expect("switch loader");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        let loaders: Vec<&str> = doc["components"]
            .as_array()
            .expect("array")
            .iter()
            .map(uid)
            .filter(|u| LOADER_UIDS.contains(u))
            .collect();
        assert_eq!(loaders, ["net.neoforged"]);
    }

    #[test]
    fn a_missing_profile_is_written_and_a_linked_one_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let m = manifest("1.20.1", LoaderKind::Forge, "1.20.1-47.3.0");
        assert!(matches!(
            ensure(tmp.path(), &m).expect("write"),
            Profile::Switched { .. }
        ));
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join(PROFILE_FILE)).expect("read"))
                .expect("json");
        assert_eq!(doc["components"][1]["version"], "47.3.0");
        #[cfg(unix)]
        {
            let other = tempfile::tempdir().expect("tmp");
            std::fs::write(other.path().join("target.json"), "{}").expect("write");
            std::fs::remove_file(tmp.path().join(PROFILE_FILE)).expect("rm");
            std::os::unix::fs::symlink(other.path().join("target.json"), tmp.path().join(PROFILE_FILE))
                .expect("link");
            assert!(ensure(tmp.path(), &m).is_err());
            assert_eq!(
                std::fs::read_to_string(other.path().join("target.json")).expect("read"),
                "{}"
            );
        }
    }
}
