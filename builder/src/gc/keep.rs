//! What garbage collection keeps (docs/FORMAT.md §9): the builds each
//! channel of the pack points to or pointed to recently (its last
//! `keep_builds` distinct builds, and every build live within the grace
//! period), every manifest younger than the grace period, every build of
//! the store's other packs, the blobs all of those name, and the packwiz
//! files reachable from the kept builds' pack files. [`Keep::refresh`] adds
//! what appeared since (a publish or promote running meanwhile).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::SystemTime;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde::Serialize;

use atlas_proto::pointer::SignedPointer;
use atlas_proto::{Limits, Sha256Digest, layout};

use super::error::GcError;
use super::scan::{Kind, classify};
use crate::store::{Listed, Store};

/// One listed object and its class.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
    pub kind: Kind,
}

impl Entry {
    pub fn new(l: Listed) -> Self {
        let kind = classify(&l.key);
        Self {
            key: l.key,
            size: l.size,
            modified: l.modified,
            kind,
        }
    }
}

/// The retention rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Objects written at or after this instant are kept whatever they are.
    pub cutoff: SystemTime,
    /// Distinct builds kept per channel, the current one included.
    pub keep_builds: usize,
}

/// What one channel keeps.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelKeep {
    pub channel: String,
    /// The pointer's version and build (absent: the channel has only history).
    pub version: Option<u64>,
    pub build: Option<String>,
    /// Every build kept for the channel, newest first.
    pub kept: Vec<String>,
}

/// Everything kept, and what was read to know it.
#[derive(Debug, Default)]
pub struct Keep {
    /// Kept builds of the pack being collected.
    pub builds: BTreeSet<Sha256Digest>,
    /// Blobs named by a kept manifest (of any pack).
    pub blobs: HashSet<Sha256Digest>,
    /// Reachable packwiz keys.
    pub packwiz: HashSet<String>,
    /// Instance archives (keys) a kept pointer version of the pack names.
    pub instances: HashSet<String>,
    /// Packwiz folders (key prefixes) left alone.
    pub frozen: BTreeSet<String>,
    /// Manifest keys already read.
    pub manifests_read: HashSet<String>,
    /// Pack files and indexes already followed.
    pub followed: HashSet<String>,
    pub channels: Vec<ChannelKeep>,
    pub warnings: Vec<String>,
}

/// A channel's history entries: (version, written).
type History = Vec<(u64, SystemTime)>;

/// A channel's pointer or history entry, as far as gc cares.
struct Named {
    version: u64,
    build: Sha256Digest,
    packwiz: Option<String>,
    instance: Option<String>,
    /// Blobs of the player tools the version pins.
    tools: Vec<Sha256Digest>,
}

fn parse_pointer(bytes: &[u8]) -> Result<Named, String> {
    let payload = SignedPointer::parse(bytes)
        .and_then(|p| p.payload_unverified())
        .map_err(|e| e.to_string())?;
    let build = payload.build_digest().map_err(|e| e.to_string())?;
    let tools = payload
        .tools
        .atlas_fetcher
        .iter()
        .flat_map(|r| r.targets.values())
        .filter_map(|pin| pin.sha256.parse().ok())
        .collect();
    Ok(Named {
        version: payload.version,
        build,
        packwiz: payload.exports.packwiz,
        instance: payload.exports.instance,
        tools,
    })
}

async fn read_named(store: &dyn Store, key: &str) -> Result<Option<Named>, GcError> {
    let Some(obj) = store.get(key, Limits::DEFAULT.pointer_bytes).await? else {
        return Ok(None);
    };
    parse_pointer(&obj.bytes)
        .map(Some)
        .map_err(|message| GcError::Unreadable {
            key: key.to_owned(),
            message,
        })
}

impl Keep {
    /// Works out what to keep of `pack` from the listing `entries`.
    pub async fn compute(
        store: &dyn Store,
        pack: &str,
        entries: &[Entry],
        rules: Rules,
    ) -> Result<Self, GcError> {
        let mut keep = Keep::default();
        // The pages' icon (a blob no manifest names).
        keep.blobs.insert(crate::export::instance::icon_digest());
        // Channels of every pack: by pointer, and by history (a channel whose
        // pointer is gone keeps its history's builds).
        let mut channels: BTreeMap<(&str, &str), (bool, History)> = BTreeMap::new();
        for e in entries {
            match &e.kind {
                Kind::Pointer { pack: p, channel } => channels.entry((p, channel)).or_default().0 = true,
                Kind::History {
                    pack: p,
                    channel,
                    version,
                } => channels
                    .entry((p, channel))
                    .or_default()
                    .1
                    .push((*version, e.modified)),
                _ => {}
            }
        }
        let mut packfiles: Vec<String> = Vec::new();
        for ((p, channel), (has_pointer, mut history)) in channels {
            history.sort_by_key(|h| std::cmp::Reverse(h.0));
            let refs = channel_keep(store, p, channel, has_pointer, &history, rules).await?;
            // Player tools are blobs shared by every pack: kept for all of them.
            keep.blobs.extend(refs.tools);
            if p != pack {
                // Other packs keep all their builds; their tools are all this needs.
                continue;
            }
            for b in &refs.keep.kept {
                if let Ok(d) = b.parse() {
                    keep.builds.insert(d);
                }
            }
            packfiles.extend(refs.packwiz);
            keep.instances.extend(refs.instances);
            keep.channels.push(refs.keep);
        }
        // Manifests written within the grace period: a publish may be on its way to the pointer.
        for e in entries {
            if let Kind::Build {
                pack: p,
                build,
                manifest: true,
            } = &e.kind
                && p == pack
                && e.modified >= rules.cutoff
            {
                keep.builds.insert(*build);
            }
        }
        let present: HashSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        for b in &keep.builds {
            let key = layout::manifest_key(pack, b);
            if !present.contains(key.as_str()) {
                keep.warnings.push(format!(
                    "build {b} is kept (a channel names it) but its manifest `{key}` is missing"
                ));
            }
        }
        // Every manifest of the other packs, and the kept ones of this pack.
        let manifests: Vec<(String, Sha256Digest)> = entries
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::Build {
                    pack: p,
                    build,
                    manifest: true,
                } if p != pack || keep.builds.contains(build) => Some((p.clone(), *build)),
                _ => None,
            })
            .collect();
        keep.read_manifests(store, manifests).await?;
        // The packwiz files of the kept builds.
        keep.follow_packwiz(store, pack, entries, &packfiles, rules)
            .await?;
        Ok(keep)
    }

    /// Reads `manifests` (pack, build) and keeps the blobs they name.
    async fn read_manifests(
        &mut self,
        store: &dyn Store,
        manifests: Vec<(String, Sha256Digest)>,
    ) -> Result<(), GcError> {
        let todo: Vec<_> = manifests
            .into_iter()
            .filter(|(p, b)| !self.manifests_read.contains(&layout::manifest_key(p, b)))
            .collect();
        let read: Vec<(String, Vec<Sha256Digest>)> = stream::iter(todo)
            .map(|(p, b)| async move {
                let key = layout::manifest_key(&p, &b);
                let blobs = manifest_blobs(store, &p, &b).await?;
                Ok::<_, GcError>((key, blobs))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        for (key, blobs) in read {
            self.manifests_read.insert(key);
            self.blobs.extend(blobs);
        }
        Ok(())
    }

    /// Keeps the packwiz files reachable from `packfiles`, from each
    /// channel's `pack.toml`, and from pack files and indexes written within
    /// the grace period.
    async fn follow_packwiz(
        &mut self,
        store: &dyn Store,
        pack: &str,
        entries: &[Entry],
        packfiles: &[String],
        rules: Rules,
    ) -> Result<(), GcError> {
        let mut roots: Vec<(String, bool)> = packfiles.iter().map(|k| (k.clone(), true)).collect();
        for e in entries {
            let Kind::Packwiz {
                pack: p,
                channel,
                name,
            } = &e.kind
            else {
                continue;
            };
            if p != pack {
                continue;
            }
            let young = e.modified >= rules.cutoff;
            if name == "pack.toml" {
                roots.push((e.key.clone(), true));
                if young {
                    // Legacy (format 1.1) files are named without hashes: a reader
                    // may still follow a pack.toml that named them until recently.
                    self.frozen_legacy(pack, channel);
                }
            } else if young
                && (name.starts_with("pack-") || name.starts_with("index-"))
                && !name.contains('/')
            {
                roots.push((e.key.clone(), name.starts_with("pack-")));
            }
        }
        for (key, is_pack) in roots {
            self.follow(store, &key, is_pack).await?;
        }
        Ok(())
    }

    fn frozen_legacy(&mut self, pack: &str, channel: &str) {
        self.frozen
            .insert(format!("{}#legacy", layout::packwiz_prefix(pack, channel)));
    }

    /// Whether the unreachable packwiz object `key` (named `name` in
    /// `channel`'s folder) must stay anyway.
    pub fn packwiz_frozen(&self, pack: &str, channel: &str, name: &str) -> bool {
        let folder = layout::packwiz_prefix(pack, channel);
        self.frozen.contains(&folder)
            || (is_legacy_name(name) && self.frozen.contains(&format!("{folder}#legacy")))
    }

    /// Keeps `key` (a pack file when `is_pack`, else an index) and what it names.
    async fn follow(&mut self, store: &dyn Store, key: &str, is_pack: bool) -> Result<(), GcError> {
        if !self.followed.insert(key.to_owned()) {
            return Ok(());
        }
        let Some((folder, _)) = key.rsplit_once('/').map(|(d, f)| (format!("{d}/"), f)) else {
            return Ok(());
        };
        // The channel's packwiz folder: what every relative name resolves below.
        let Some(root_end) = key.find("/packwiz/").map(|i| i + "/packwiz/".len()) else {
            return Ok(());
        };
        let root = &key[..root_end];
        self.packwiz.insert(key.to_owned());
        let Some(obj) = store
            .get(key, Limits::DEFAULT.export_object_bytes)
            .await
            .or_else(|e| match e {
                crate::store::StoreError::TooLarge { .. } => Ok(None),
                e => Err(e),
            })?
        else {
            return Ok(());
        };
        let freeze = |keep: &mut Keep, why: String| {
            keep.warnings
                .push(format!("`{key}`: {why}; its packwiz folder is left as it is"));
            keep.frozen.insert(root.to_owned());
        };
        let text = match std::str::from_utf8(&obj.bytes).map(toml::from_str::<toml::Table>) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                freeze(self, format!("not TOML ({e})"));
                return Ok(());
            }
            Err(_) => {
                freeze(self, "not UTF-8".into());
                return Ok(());
            }
        };
        let names: Vec<String> = if is_pack {
            text.get("index")
                .and_then(|i| i.get("file"))
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect()
        } else {
            text.get("files")
                .and_then(toml::Value::as_array)
                .map(|files| {
                    files
                        .iter()
                        .filter_map(|f| f.get("file").and_then(toml::Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for name in names {
            let Some(target) = resolve(root, &folder, &name) else {
                freeze(
                    self,
                    format!("names `{name}`, which is not a plain relative path"),
                );
                return Ok(());
            };
            if is_pack {
                Box::pin(self.follow(store, &target, false)).await?;
            } else {
                self.packwiz.insert(target);
            }
        }
        Ok(())
    }

    /// Adds what a publish or promote running meanwhile made reachable:
    /// manifests and packwiz pack files that were not listed before, and
    /// builds the pack's pointers name now. A pointer naming a build whose
    /// objects this run already deleted is an error.
    pub async fn refresh(
        &mut self,
        store: &dyn Store,
        pack: &str,
        rules: Rules,
        deleted_builds: &HashSet<Sha256Digest>,
    ) -> Result<(), GcError> {
        let entries: Vec<Entry> = store.list("packs/").await?.into_iter().map(Entry::new).collect();
        let mut manifests = Vec::new();
        for e in &entries {
            match &e.kind {
                Kind::Pointer { pack: p, .. } if p != pack => {
                    if let Some(named) = read_named(store, &e.key).await? {
                        self.blobs.extend(named.tools);
                    }
                }
                Kind::Pointer { pack: p, channel } if p == pack => {
                    let Some(named) = read_named(store, &e.key).await? else {
                        continue;
                    };
                    self.blobs.extend(named.tools.iter().copied());
                    self.instances.extend(named.instance.clone());
                    if self.builds.insert(named.build) {
                        if deleted_builds.contains(&named.build) {
                            return Err(GcError::Raced {
                                channel: channel.clone(),
                                build: named.build.to_hex(),
                            });
                        }
                        manifests.push((pack.to_owned(), named.build));
                    }
                    if let Some(k) = named.packwiz {
                        self.follow(store, &k, true).await?;
                    }
                }
                Kind::Build {
                    pack: p,
                    build,
                    manifest: true,
                } if p != pack || e.modified >= rules.cutoff || self.builds.contains(build) => {
                    if p == pack {
                        self.builds.insert(*build);
                    }
                    manifests.push((p.clone(), *build));
                }
                _ => {}
            }
        }
        let present: HashSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        manifests.retain(|(p, b)| present.contains(layout::manifest_key(p, b).as_str()));
        self.read_manifests(store, manifests).await?;
        self.follow_packwiz(store, pack, &entries, &[], rules).await
    }
}

/// What one channel's kept pointer versions name.
struct ChannelRefs {
    keep: ChannelKeep,
    /// Packwiz pack files.
    packwiz: Vec<String>,
    /// Instance archives.
    instances: Vec<String>,
    /// Blobs of pinned player tools.
    tools: Vec<Sha256Digest>,
}

/// The builds `channel` keeps, newest first, and the packwiz pack files,
/// instance archives and player tools they name: the pointer's build, then
/// the history's, newest first, until `keep_builds` distinct builds are
/// kept and the next entry stopped being live before the cutoff.
async fn channel_keep(
    store: &dyn Store,
    pack: &str,
    channel: &str,
    has_pointer: bool,
    history: &[(u64, SystemTime)],
    rules: Rules,
) -> Result<ChannelRefs, GcError> {
    let mut kept: Vec<Sha256Digest> = Vec::new();
    let mut files = Vec::new();
    let mut instances = Vec::new();
    let mut tools = Vec::new();
    let mut ck = ChannelKeep {
        channel: channel.to_owned(),
        version: None,
        build: None,
        kept: Vec::new(),
    };
    let pointer_key = layout::pointer_key(pack, channel);
    let live = if has_pointer {
        read_named(store, &pointer_key).await?
    } else {
        None
    };
    if let Some(named) = &live {
        ck.version = Some(named.version);
        ck.build = Some(named.build.to_hex());
        kept.push(named.build);
        files.extend(named.packwiz.clone());
        instances.extend(named.instance.clone());
        tools.extend(named.tools.iter().copied());
    }
    // When the entry being looked at stopped being live: the next newer entry's write.
    let mut live_until: Option<SystemTime> = None;
    for (version, written) in history {
        if ck.version.is_some_and(|v| *version > v) {
            continue;
        }
        let recently_live = live_until.is_none_or(|t| t >= rules.cutoff);
        if kept.len() >= rules.keep_builds && !recently_live {
            break;
        }
        let key = layout::history_key(pack, channel, *version);
        if let Some(named) = read_named(store, &key).await? {
            if !kept.contains(&named.build) {
                kept.push(named.build);
            }
            files.extend(named.packwiz);
            instances.extend(named.instance);
            tools.extend(named.tools);
        }
        live_until = Some(*written);
    }
    ck.kept = kept.iter().map(Sha256Digest::to_hex).collect();
    Ok(ChannelRefs {
        keep: ck,
        packwiz: files,
        instances,
        tools,
    })
}

/// The blobs a stored manifest names (checked against its build id).
async fn manifest_blobs(
    store: &dyn Store,
    pack: &str,
    build: &Sha256Digest,
) -> Result<Vec<Sha256Digest>, GcError> {
    let bytes = match crate::builds::manifest_bytes(store, pack, build).await {
        Ok(b) => b,
        Err(crate::builds::BuildLookupError::NoBuild { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(GcError::Build(e)),
    };
    let m = atlas_proto::manifest::decode(&bytes, &Limits::DEFAULT.manifest).map_err(|e| {
        GcError::Unreadable {
            key: layout::manifest_key(pack, build),
            message: e.to_string(),
        }
    })?;
    Ok(m.files
        .iter()
        .filter(|f| !f.upstream_only)
        .filter_map(|f| Sha256Digest::from_slice(&f.sha256).ok())
        .collect())
}

/// `name` (as written in a packwiz file in `folder`) as a key below `root`;
/// `None` unless it is a plain relative path.
fn resolve(root: &str, folder: &str, name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && name.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    (plain && folder.starts_with(root)).then(|| format!("{folder}{name}"))
}

/// A packwiz file name of format 1.1 (no content hash in it).
fn is_legacy_name(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    if file == "index.toml" {
        return true;
    }
    let Some(stem) = file.strip_suffix(".pw.toml") else {
        return false;
    };
    let hashed = |h: &str, n: usize| h.len() == n && h.bytes().all(|b| b.is_ascii_hexdigit());
    let short = stem.rsplit_once('.').is_some_and(|(_, h)| hashed(h, 16));
    !(short || hashed(stem, 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_below_the_folder_only() {
        let root = "packs/p/channels/dev/packwiz/";
        assert_eq!(
            resolve(root, root, "mods/a.pw.toml").as_deref(),
            Some("packs/p/channels/dev/packwiz/mods/a.pw.toml")
        );
        for bad in ["../x", "/x", "a//b", "a\\b", "", "./a"] {
            assert_eq!(resolve(root, root, bad), None, "{bad}");
        }
    }

    #[test]
    fn legacy_names_have_no_hash() {
        assert!(is_legacy_name("index.toml"));
        assert!(is_legacy_name("mods/a.jar.pw.toml"));
        assert!(!is_legacy_name("mods/a.jar.0123456789abcdef.pw.toml"));
        assert!(!is_legacy_name(&format!("mods/{}.pw.toml", "a".repeat(64))));
        assert!(!is_legacy_name("index-abc.toml"));
    }
}
