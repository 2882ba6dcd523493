//! The packwiz tree of a channel, at `packs/<pack>/channels/<channel>/packwiz/`:
//! `pack.toml`, `index.toml`, and one metafile per installed file
//! (`<path>.pw.toml`, whose `[download] url` is the blob's public URL and
//! whose hash is the file's SHA-256). An unmodified packwiz-installer pointed
//! at the channel's `pack.toml` installs and updates the pack.
//!
//! packwiz-installer resolves `[index] file` and the index's paths below the
//! folder of `pack.toml` (it collapses `..` that would leave it), so the tree
//! cannot point into an immutable per-build folder: publish and promote
//! rewrite the channel's tree, metafiles first, then `index.toml`, then
//! `pack.toml` (whose index hash binds the rest). Every file is a metafile,
//! so the tree is small text whatever the pack's size.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde::Serialize;

use atlas_proto::layout::{self, CACHE_POINTER, CONTENT_TYPE_TOML};
use atlas_proto::v1::{LoaderKind, Manifest, Side};

use super::{ExportError, ExportOptions};
use crate::store::{Expected, ObjectMeta, Store};

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
    file: &'static str,
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
    atlas_proto::Sha256Digest::of(bytes).to_hex()
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

/// Files of a packwiz tree by path relative to its folder.
pub type Tree = BTreeMap<String, Vec<u8>>;

/// The channel's packwiz files for `manifest`, and the files left out (with
/// the reason).
pub fn tree(manifest: &Manifest, opts: &ExportOptions) -> Result<(Tree, Vec<String>), ExportError> {
    let mut out = BTreeMap::new();
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
            let digest = atlas_proto::Sha256Digest(f.sha256.as_slice().try_into().map_err(|_| {
                ExportError::Manifest {
                    build: format!("(pack `{}`)", manifest.pack_id),
                    message: format!("file `{}` has no SHA-256", f.path),
                }
            })?);
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
        let path = format!("{}.pw.toml", f.path);
        entries.push(IndexEntry {
            file: path.clone(),
            hash: sha256_hex(&bytes),
            metafile: true,
            preserve: f.preserve,
        });
        out.insert(path, bytes);
    }
    let index = toml_text(&IndexToml {
        hash_format: "sha256",
        files: entries,
    })?;
    let mut versions = BTreeMap::from([("minecraft", manifest.minecraft_version.clone())]);
    if let Some(l) = &manifest.loader
        && let Some(k) = versions_key(LoaderKind::try_from(l.kind).unwrap_or(LoaderKind::Unspecified))
    {
        versions.insert(k, l.version.clone());
    }
    let pack = toml_text(&PackToml {
        name: &manifest.name,
        version: &manifest.version,
        pack_format: PACK_FORMAT,
        index: IndexRef {
            file: "index.toml",
            hash_format: "sha256",
            hash: sha256_hex(&index),
        },
        versions,
    })?;
    out.insert("index.toml".to_owned(), index);
    out.insert("pack.toml".to_owned(), pack);
    Ok((out, skipped))
}

/// Writes one mutable object unless it already has these bytes; true when written.
async fn put_if_changed(store: &dyn Store, key: String, bytes: Vec<u8>) -> Result<bool, ExportError> {
    let expected = match store
        .get(&key, atlas_proto::Limits::DEFAULT.export_object_bytes)
        .await
    {
        Ok(Some(obj)) if obj.bytes.as_ref() == bytes.as_slice() => return Ok(false),
        Ok(Some(obj)) => Expected::ETag(obj.etag),
        Ok(None) => Expected::Absent,
        // Larger than any file this module writes: replace it.
        Err(crate::store::StoreError::TooLarge { .. }) => Expected::Absent,
        Err(e) => return Err(e.into()),
    };
    let meta = ObjectMeta {
        content_type: CONTENT_TYPE_TOML,
        cache_control: CACHE_POINTER,
    };
    store.put_cas(&key, Bytes::from(bytes), expected, meta).await?;
    Ok(true)
}

/// Brings the channel's packwiz tree in step with `manifest`: metafiles
/// first, then `index.toml`, then `pack.toml`. Returns how many files were
/// written and the files left out.
pub async fn write_channel_tree(
    store: &dyn Store,
    manifest: &Manifest,
    channel: &str,
    opts: &ExportOptions,
    concurrency: usize,
) -> Result<(usize, Vec<String>), ExportError> {
    let prefix = layout::packwiz_prefix(&manifest.pack_id, channel);
    let (mut files, skipped) = tree(manifest, opts)?;
    let last: Vec<(String, Vec<u8>)> = ["index.toml", "pack.toml"]
        .iter()
        .filter_map(|k| files.remove_entry(*k))
        .collect();
    let mut written: usize = stream::iter(files)
        .map(|(path, bytes)| put_if_changed(store, format!("{prefix}{path}"), bytes))
        .buffer_unordered(concurrency.max(1))
        .try_fold(0usize, |n, w| async move { Ok(n + usize::from(w)) })
        .await?;
    for (path, bytes) in last {
        written += usize::from(put_if_changed(store, format!("{prefix}{path}"), bytes).await?);
    }
    Ok((written, skipped))
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
                    sha256: atlas_proto::Sha256Digest::of(b"abc").0.to_vec(),
                    side: Side::Client as i32,
                    preserve: true,
                    ..Default::default()
                },
                File {
                    path: "mods/x.jar".into(),
                    size: 1,
                    sha256: atlas_proto::Sha256Digest::of(b"x").0.to_vec(),
                    side: Side::Both as i32,
                    optional: true,
                    default_enabled: false,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let opts = ExportOptions::new("https://cdn.example.com/s/").expect("url");
        let (files, skipped) = tree(&m, &opts).expect("tree");
        assert!(skipped.is_empty());
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
            Some(opts.blob_url(&atlas_proto::Sha256Digest::of(b"x")).as_str())
        );
        assert!(x.option.as_ref().is_some_and(|o| o.optional && !o.default));
        assert_eq!(pack.metafiles[0].side.side(), Side::Client);
    }
}
