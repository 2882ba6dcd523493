//! The packwiz export of a build, in the channel's packwiz folder
//! `packs/<pack>/channels/<channel>/packwiz/` (format 1.3): content-addressed
//! files written once, and one mutable file written last.
//!
//! - one metafile per installed file, in the folder the file installs to
//!   (packwiz-installer installs a metafile's `filename` beside it), named
//!   `<file name>.<16 hex of its SHA-256>.pw.toml`; its `[download] url` is the
//!   blob's public URL and its hash the file's SHA-256;
//! - `index-<sha256>.toml`, listing the metafiles with their hashes;
//! - `pack-<sha256>.toml`, naming that index with its hash (and the build in
//!   a comment): the channel's pointer names this file;
//! - `pack.toml`, the URL packwiz-installer users keep: a copy of the pack
//!   file the channel's pointer names, replaced by compare-and-swap after the
//!   pointer, and only while the pointer still names that pack file.
//!
//! Why not one folder per build: packwiz-installer resolves `[index] file`
//! and every index entry below the folder of the `pack.toml` it was given
//! (`PackwizPath` collapses a `..` that would leave it and treats an absolute
//! URL as a path), and keys its record of installed files by metafile path,
//! so a per-build folder would re-download every file on each update.
//! Content-addressed names in the channel's folder keep unchanged files'
//! paths stable, and make every file a reader reaches from a `pack.toml`
//! immutable: a reader sees one whole build, never a mix.

use std::collections::BTreeMap;

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde::Serialize;

use atlas_proto::Sha256Digest;
use atlas_proto::layout::{self, CACHE_IMMUTABLE, CACHE_POINTER, CONTENT_TYPE_TOML};
use atlas_proto::v1::{LoaderKind, Manifest, Side};

use super::{ChannelPackStatus, ExportError, ExportOptions, ExportReport};
use crate::pointer::read_current;
use crate::store::{Body, Expected, ObjectMeta, PutOutcome, Store, StoreError};

/// packwiz format written.
pub const PACK_FORMAT: &str = "packwiz:1.1.0";

#[derive(Serialize)]
struct PackToml<'a> {
    name: &'a str,
    version: &'a str,
    #[serde(rename = "pack-format")]
    pack_format: &'a str,
    index: IndexRef,
    versions: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct IndexRef {
    file: String,
    #[serde(rename = "hash-format")]
    hash_format: &'static str,
    hash: String,
}

#[derive(Serialize)]
struct IndexToml {
    #[serde(rename = "hash-format")]
    hash_format: &'static str,
    files: Vec<IndexEntry>,
}

#[derive(Serialize)]
struct IndexEntry {
    file: String,
    hash: String,
    metafile: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    preserve: bool,
}

#[derive(Serialize)]
struct MetaToml {
    name: String,
    filename: String,
    side: &'static str,
    download: MetaDownload,
    #[serde(skip_serializing_if = "Option::is_none")]
    option: Option<MetaOption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update: Option<MetaUpdate>,
}

#[derive(Serialize)]
struct MetaDownload {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(rename = "hash-format")]
    hash_format: &'static str,
    hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
}

#[derive(Serialize)]
struct MetaOption {
    optional: bool,
    default: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
}

#[derive(Serialize)]
struct MetaUpdate {
    curseforge: CurseForgeIds,
}

#[derive(Serialize)]
struct CurseForgeIds {
    #[serde(rename = "file-id")]
    file_id: u64,
    #[serde(rename = "project-id")]
    project_id: u64,
}

fn toml_text<T: Serialize>(value: &T) -> Result<Vec<u8>, ExportError> {
    toml::to_string(value)
        .map(String::into_bytes)
        .map_err(|e| ExportError::Toml(e.to_string()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256Digest::of(bytes).to_hex()
}

/// The `[versions]` key of a loader.
fn versions_key(kind: LoaderKind) -> Option<&'static str> {
    match kind {
        LoaderKind::Fabric => Some("fabric"),
        LoaderKind::Quilt => Some("quilt"),
        LoaderKind::Forge => Some("forge"),
        LoaderKind::Neoforge => Some("neoforge"),
        LoaderKind::Vanilla | LoaderKind::Unspecified => None,
    }
}

/// The longest file name (bytes) common file systems store.
const NAME_MAX: usize = 255;

/// Name of the metafile of `path` whose bytes are `meta`: in the folder the
/// file installs to, `<file name>.<16 hex>.pw.toml` (the hash alone when
/// that would be too long a name).
fn metafile_name(path: &str, meta: &[u8]) -> String {
    let hash = Sha256Digest::of(meta).to_hex();
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), path),
    };
    let named = format!("{name}.{}.pw.toml", &hash[..16]);
    if named.len() <= NAME_MAX {
        format!("{dir}{named}")
    } else {
        format!("{dir}{hash}.pw.toml")
    }
}

/// Files of a packwiz tree by name relative to its folder.
pub type Tree = BTreeMap<String, Vec<u8>>;

/// A build's packwiz files, as stored in a channel's folder.
#[derive(Debug, Clone)]
pub struct BuildTree {
    /// Metafiles by name (content-addressed).
    pub metafiles: Tree,
    /// `index-<sha256>.toml` and its bytes.
    pub index: (String, Vec<u8>),
    /// `pack-<sha256>.toml` and its bytes (also the channel `pack.toml`'s).
    pub pack: (String, Vec<u8>),
    /// Files left out, with the reason.
    pub skipped: Vec<String>,
}

impl BuildTree {
    /// Store key of the pack file in `channel`'s folder: what the pointer names.
    pub fn pack_key(&self, pack: &str, channel: &str) -> String {
        format!("{}{}", layout::packwiz_prefix(pack, channel), self.pack.0)
    }

    /// Every file by name, the pack file and index included (what a reader
    /// starting at the pack file fetches).
    pub fn files(&self) -> Tree {
        let mut all = self.metafiles.clone();
        all.insert(self.index.0.clone(), self.index.1.clone());
        all.insert(self.pack.0.clone(), self.pack.1.clone());
        all
    }
}

/// The packwiz files of `build` (whose manifest is `manifest`).
pub fn tree(
    manifest: &Manifest,
    build: &Sha256Digest,
    opts: &ExportOptions,
) -> Result<BuildTree, ExportError> {
    let mut metafiles = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut entries = Vec::new();
    for f in &manifest.files {
        let sha256 = hex::encode(&f.sha256);
        let (url, mode, update) = if f.upstream_only {
            let up = f.upstreams.first();
            let curseforge = up
                .and_then(|u| u.origin.strip_prefix("curseforge:"))
                .and_then(|ids| ids.split_once('/'))
                .and_then(|(p, file)| Some((p.parse().ok()?, file.parse().ok()?)));
            match (curseforge, up.map(|u| u.url.as_str())) {
                (Some((project_id, file_id)), _) => (
                    None,
                    Some("metadata:curseforge"),
                    Some(MetaUpdate {
                        curseforge: CurseForgeIds { file_id, project_id },
                    }),
                ),
                (None, Some(url)) if !url.is_empty() => (Some(url.to_owned()), None, None),
                _ => {
                    skipped.push(format!(
                        "{}: upstream-only without a download URL; left out of the packwiz tree",
                        f.path
                    ));
                    continue;
                }
            }
        } else {
            let digest = Sha256Digest(
                f.sha256
                    .as_slice()
                    .try_into()
                    .map_err(|_| ExportError::Manifest {
                        build: build.to_hex(),
                        message: format!("file `{}` has no SHA-256", f.path),
                    })?,
            );
            (Some(opts.blob_url(&digest)), None, None)
        };
        let filename = f.path.rsplit('/').next().unwrap_or(&f.path).to_owned();
        let side = match Side::try_from(f.side).unwrap_or(Side::Both) {
            Side::Client => "client",
            Side::Server => "server",
            Side::Both | Side::Unspecified => "both",
        };
        let meta = MetaToml {
            name: if f.display_name.is_empty() {
                filename.clone()
            } else {
                f.display_name.clone()
            },
            filename,
            side,
            download: MetaDownload {
                url,
                hash_format: "sha256",
                hash: sha256,
                mode,
            },
            option: f.optional.then(|| MetaOption {
                optional: true,
                default: f.default_enabled,
                description: f.description.clone(),
            }),
            update,
        };
        let bytes = toml_text(&meta)?;
        let name = metafile_name(&f.path, &bytes);
        entries.push(IndexEntry {
            file: name.clone(),
            hash: sha256_hex(&bytes),
            metafile: true,
            preserve: f.preserve,
        });
        metafiles.insert(name, bytes);
    }
    let index = toml_text(&IndexToml {
        hash_format: "sha256",
        files: entries,
    })?;
    let index_digest = Sha256Digest::of(&index);
    let index_name = layout::packwiz_index_file(&index_digest);
    let mut versions = BTreeMap::from([("minecraft", manifest.minecraft_version.clone())]);
    if let Some(l) = &manifest.loader
        && let Some(k) = versions_key(LoaderKind::try_from(l.kind).unwrap_or(LoaderKind::Unspecified))
    {
        versions.insert(k, l.version.clone());
    }
    let mut pack = format!("# atlas build {build}\n").into_bytes();
    pack.extend(toml_text(&PackToml {
        name: &manifest.name,
        version: &manifest.version,
        pack_format: PACK_FORMAT,
        index: IndexRef {
            file: index_name.clone(),
            hash_format: "sha256",
            hash: index_digest.to_hex(),
        },
        versions,
    })?);
    let pack_name = layout::packwiz_pack_file(&Sha256Digest::of(&pack));
    Ok(BuildTree {
        metafiles,
        index: (index_name, index),
        pack: (pack_name, pack),
        skipped,
    })
}

const IMMUTABLE_TOML: ObjectMeta = ObjectMeta {
    content_type: CONTENT_TYPE_TOML,
    cache_control: CACHE_IMMUTABLE,
};

/// Writes the immutable files of `tree` that `channel`'s folder lacks:
/// metafiles, then the index, then the pack file (so each names only
/// files already stored). Returns how many were written.
pub async fn write_build_tree(
    store: &dyn Store,
    pack: &str,
    channel: &str,
    tree: &BuildTree,
    concurrency: usize,
) -> Result<usize, ExportError> {
    let prefix = layout::packwiz_prefix(pack, channel);
    let present: HashSet<String> = store
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| o.key.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    let put = |name: &str, bytes: &[u8]| {
        let key = format!("{prefix}{name}");
        let body = Body::Bytes(Bytes::copy_from_slice(bytes));
        async move {
            let outcome = store.put_immutable(&key, body, IMMUTABLE_TOML).await?;
            Ok::<_, ExportError>(usize::from(outcome == PutOutcome::Created))
        }
    };
    let missing = tree.metafiles.iter().filter(|(name, _)| !present.contains(*name));
    let mut written: usize = stream::iter(missing)
        .map(|(name, bytes)| put(name, bytes))
        .buffer_unordered(concurrency.max(1))
        .try_fold(0usize, |n, w| async move { Ok(n + w) })
        .await?;
    for (name, bytes) in [&tree.index, &tree.pack] {
        if !present.contains(name) {
            written += put(name, bytes).await?;
        }
    }
    Ok(written)
}

/// Attempts at the channel `pack.toml`'s compare-and-swap (each loss means
/// another writer changed it meanwhile).
const CHANNEL_PACK_ATTEMPTS: u32 = 16;

/// Brings `channel`'s `pack.toml` in step with the pointer, when the pointer
/// names `pack_key` (whose bytes are `bytes`). Each attempt reads the
/// `pack.toml` (its ETag) first and the pointer second, then swaps: a swap
/// that succeeds therefore replaces only a `pack.toml` written from an
/// earlier pointer read, so the file never goes back to an older build.
/// A pointer that names another pack file stops this writer.
pub async fn update_channel_pack(
    store: &dyn Store,
    pack: &str,
    channel: &str,
    pack_key: &str,
    bytes: &[u8],
) -> Result<ChannelPackStatus, ExportError> {
    let key = layout::packwiz_pack_key(pack, channel);
    let limit = atlas_proto::Limits::DEFAULT.export_object_bytes;
    for attempt in 1..=CHANNEL_PACK_ATTEMPTS {
        let current = match store.get(&key, limit).await {
            Ok(c) => c,
            Err(StoreError::TooLarge { .. }) => {
                return Err(ExportError::Toml(format!(
                    "`{key}` is larger than {limit} bytes, so not a pack file Atlas wrote; delete it and publish again"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let pointer = read_current(store, pack, channel)
            .await
            .map_err(|e| ExportError::Pointer(e.to_string()))?;
        if pointer.and_then(|p| p.payload.exports.packwiz).as_deref() != Some(pack_key) {
            return Ok(ChannelPackStatus::Superseded);
        }
        let expected = match &current {
            Some(c) if c.bytes.as_ref() == bytes => return Ok(ChannelPackStatus::Unchanged),
            Some(c) => Expected::ETag(c.etag.clone()),
            None => Expected::Absent,
        };
        let meta = ObjectMeta {
            content_type: CONTENT_TYPE_TOML,
            cache_control: CACHE_POINTER,
        };
        match store
            .put_cas(&key, Bytes::copy_from_slice(bytes), expected, meta)
            .await
        {
            Ok(_) => return Ok(ChannelPackStatus::Written),
            Err(StoreError::Conflict { .. }) => {
                tracing::debug!(attempt, "`{key}` changed meanwhile; reading it again");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ExportError::Contended {
        key,
        attempts: CHANNEL_PACK_ATTEMPTS,
    })
}

/// 10 ms doubling up to about 1 s, with jitter so racing writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.min(7);
    let mut r = [0u8; 2];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) => u64::from(u16::from_le_bytes(r)) % base.max(1),
        Err(_) => 0,
    };
    Duration::from_millis(base / 2 + jitter)
}

/// Writes `build`'s packwiz files into `channel`'s folder, before the pointer
/// that names them; `report` then names the pack file. Returns the tree, for
/// [`finish_packwiz`] after the pointer.
pub async fn prepare_packwiz(
    store: &dyn Store,
    manifest: &Manifest,
    build: &Sha256Digest,
    channel: &str,
    opts: &ExportOptions,
    concurrency: usize,
    report: &mut ExportReport,
) -> Result<BuildTree, ExportError> {
    let tree = tree(manifest, build, opts)?;
    report.packwiz_written = write_build_tree(store, &manifest.pack_id, channel, &tree, concurrency).await?;
    report.packwiz = Some(tree.pack_key(&manifest.pack_id, channel));
    report.skipped.extend(tree.skipped.iter().cloned());
    Ok(tree)
}

/// After the pointer: brings the channel's `pack.toml` in step with it
/// (unless a newer pointer names another pack file by now).
pub async fn finish_packwiz(
    store: &dyn Store,
    pack: &str,
    channel: &str,
    tree: &BuildTree,
    report: &mut ExportReport,
) -> Result<(), ExportError> {
    let key = tree.pack_key(pack, channel);
    let status = update_channel_pack(store, pack, channel, &key, &tree.pack.1).await?;
    if status == ChannelPackStatus::Superseded {
        tracing::info!(
            "channel `{channel}`'s pointer names another build's packwiz files by now; its writer updates pack.toml"
        );
    }
    report.packwiz_channel = Some(status);
    Ok(())
}

/// Brings `channel`'s `pack.toml` in step with the pack file its pointer
/// names now (what `resign` does, repairing a publish that stopped between
/// its pointer and its `pack.toml`). `None` when the pointer names no
/// format-1.3 pack file.
pub async fn repair_channel_pack(
    store: &dyn Store,
    pack: &str,
    channel: &str,
) -> Result<Option<ChannelPackStatus>, ExportError> {
    let current = read_current(store, pack, channel)
        .await
        .map_err(|e| ExportError::Pointer(e.to_string()))?;
    let Some(key) = current.and_then(|c| c.payload.exports.packwiz) else {
        return Ok(None);
    };
    let prefix = layout::packwiz_prefix(pack, channel);
    let immutable = key
        .strip_prefix(&prefix)
        .is_some_and(|name| name.starts_with("pack-") && !name.contains('/'));
    if !immutable {
        return Ok(None);
    }
    let limit = atlas_proto::Limits::DEFAULT.export_object_bytes;
    let Some(obj) = store.get(&key, limit).await? else {
        return Err(ExportError::Toml(format!(
            "the pointer of channel `{channel}` names `{key}`, which is missing; publish or promote again"
        )));
    };
    if Sha256Digest::of(&obj.bytes).to_hex() != key[prefix.len() + "pack-".len()..].trim_end_matches(".toml")
    {
        return Err(ExportError::Toml(format!(
            "`{key}` does not hash to its name; the store is damaged, publish or promote again"
        )));
    }
    update_channel_pack(store, pack, channel, &key, &obj.bytes)
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_proto::v1::{File, Loader};

    #[test]
    fn tree_is_a_valid_packwiz_pack() {
        let m = Manifest {
            pack_id: "p".into(),
            name: "P \"quoted\"".into(),
            version: "1.0".into(),
            minecraft_version: "1.21.1".into(),
            loader: Some(Loader {
                kind: LoaderKind::Fabric as i32,
                version: "0.16.9".into(),
            }),
            files: vec![
                File {
                    path: "config/a b.toml".into(),
                    size: 3,
                    sha256: Sha256Digest::of(b"abc").0.to_vec(),
                    side: Side::Client as i32,
                    preserve: true,
                    ..Default::default()
                },
                File {
                    path: "mods/x.jar".into(),
                    size: 1,
                    sha256: Sha256Digest::of(b"x").0.to_vec(),
                    side: Side::Both as i32,
                    optional: true,
                    default_enabled: false,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let opts = ExportOptions::new("https://cdn.example.com/s/").expect("url");
        let build = Sha256Digest::of(b"build");
        let t = tree(&m, &build, &opts).expect("tree");
        assert!(t.skipped.is_empty());
        // Every file but pack.toml is named by its hash.
        assert_eq!(
            t.index.0,
            layout::packwiz_index_file(&Sha256Digest::of(&t.index.1))
        );
        assert_eq!(t.pack.0, layout::packwiz_pack_file(&Sha256Digest::of(&t.pack.1)));
        assert!(String::from_utf8_lossy(&t.pack.1).starts_with(&format!("# atlas build {build}\n")));
        for (name, bytes) in &t.metafiles {
            let h = Sha256Digest::of(bytes).to_hex();
            assert!(name.ends_with(&format!(".{}.pw.toml", &h[..16])), "{name}");
        }
        let mut files = t.files();
        files.insert("pack.toml".into(), t.pack.1.clone());
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, bytes) in &files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, bytes).expect("write");
        }
        let pw = crate::packwiz::DirFiles::open(dir.path()).expect("open");
        let (pack, diags) = crate::packwiz::PackwizPack::load(&pw).expect("load");
        assert!(!crate::packwiz::has_errors(&diags), "{diags:?}");
        assert_eq!(pack.pack.name, "P \"quoted\"");
        let paths: Vec<&str> = pack.metafiles.iter().map(|m| m.install_path.as_str()).collect();
        assert_eq!(paths, ["config/a b.toml", "mods/x.jar"]);
        assert!(pack.entries[0].preserve);
        let x = &pack.metafiles[1];
        assert_eq!(
            x.download.url.as_deref(),
            Some(opts.blob_url(&Sha256Digest::of(b"x")).as_str())
        );
        assert!(x.option.as_ref().is_some_and(|o| o.optional && !o.default));
        assert_eq!(pack.metafiles[0].side.side(), Side::Client);
    }

    #[test]
    fn metafile_names_stay_within_a_file_name() {
        let long = format!("mods/{}.jar", "a".repeat(240));
        let name = metafile_name(&long, b"x");
        assert_eq!(name, format!("mods/{}.pw.toml", Sha256Digest::of(b"x")));
        assert_eq!(
            metafile_name("top.jar", b"x"),
            format!("top.jar.{}.pw.toml", &Sha256Digest::of(b"x").to_hex()[..16])
        );
    }
}
