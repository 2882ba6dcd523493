//! The Modrinth modpack (`.mrpack`) of a build: a zip holding
//! `modrinth.index.json` (format 1) and override folders, stored once per
//! build at `packs/<pack>/builds/<build>/pack.mrpack`.
//!
//! Which file goes where: files under `mods/`, `resourcepacks/` and
//! `shaderpacks/`, and every optional file, are `files[]` downloads from the
//! store's public blob URL (with SHA-1, SHA-512, size and `env` from side and
//! optional); everything else (configs, scripts, options) is embedded under
//! `overrides/`, `client-overrides/` or `server-overrides/` by side.
//! Upstream-only files are downloads from their upstream URL when upstream
//! published both SHA-1 and SHA-512, and are left out otherwise.
//!
//! The zip is byte-reproducible: entries in a fixed order (index first, then
//! overrides sorted by path), a fixed timestamp (1980-01-01) and fixed modes.

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use serde::{Deserialize, Serialize};

use atlas_proto::Sha256Digest;
use atlas_proto::layout::{self, CACHE_IMMUTABLE, CONTENT_TYPE_MRPACK};
use atlas_proto::v1::{File, HashAlgorithm, LoaderKind, Manifest, Side};

use super::{BlobReader, ExportError, ExportOptions, sha1_sha512};
use crate::plan::BuildPlan;
use crate::repo::PackSource;
use crate::store::{Body, ObjectMeta, PutOutcome, Store};

/// Name of the index inside a `.mrpack`.
pub const INDEX_FILE: &str = "modrinth.index.json";
/// Override folders, for both sides, clients only and servers only.
pub const OVERRIDES: [(&str, Side); 3] = [
    ("overrides/", Side::Both),
    ("client-overrides/", Side::Client),
    ("server-overrides/", Side::Server),
];
/// Top-level folders whose files are downloads rather than overrides.
pub const DOWNLOAD_DIRS: [&str; 3] = ["mods", "resourcepacks", "shaderpacks"];

/// `modrinth.index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MrIndex {
    pub format_version: u32,
    pub game: String,
    pub version_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub files: Vec<MrFile>,
    pub dependencies: BTreeMap<String, String>,
}

/// One `files[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MrFile {
    pub path: String,
    /// `sha1` and `sha512` (lowercase hex), both required by the format.
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<MrEnv>,
    pub downloads: Vec<String>,
    pub file_size: u64,
}

/// `env`: whether each side needs the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrEnv {
    pub client: EnvSupport,
    pub server: EnvSupport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvSupport {
    Required,
    Optional,
    Unsupported,
}

impl MrEnv {
    /// From a manifest file's side and optional flag.
    pub fn of(side: Side, optional: bool) -> Self {
        let on = if optional {
            EnvSupport::Optional
        } else {
            EnvSupport::Required
        };
        let (client, server) = match side {
            Side::Client => (on, EnvSupport::Unsupported),
            Side::Server => (EnvSupport::Unsupported, on),
            Side::Both | Side::Unspecified => (on, on),
        };
        Self { client, server }
    }

    /// Back to a side and optional flag; `None` when neither side wants the file.
    pub fn side(self) -> Option<(Side, bool)> {
        use EnvSupport::*;
        let optional = self.client == Optional || self.server == Optional;
        match (self.client, self.server) {
            (Unsupported, Unsupported) => None,
            (_, Unsupported) => Some((Side::Client, optional)),
            (Unsupported, _) => Some((Side::Server, optional)),
            _ => Some((Side::Both, optional)),
        }
    }
}

/// The `dependencies` key of a loader.
pub fn loader_key(kind: LoaderKind) -> Option<&'static str> {
    match kind {
        LoaderKind::Fabric => Some("fabric-loader"),
        LoaderKind::Quilt => Some("quilt-loader"),
        LoaderKind::Forge => Some("forge"),
        LoaderKind::Neoforge => Some("neoforge"),
        LoaderKind::Vanilla | LoaderKind::Unspecified => None,
    }
}

fn side_of(f: &File) -> Side {
    Side::try_from(f.side).unwrap_or(Side::Both)
}

/// Whether a manifest file is a `files[]` download (else an override).
pub fn is_download(f: &File) -> bool {
    let top = f.path.split('/').next().unwrap_or_default();
    f.upstream_only || f.optional || (f.path.contains('/') && DOWNLOAD_DIRS.contains(&top))
}

/// The override folder of a side.
fn override_dir(side: Side) -> &'static str {
    match side {
        Side::Client => "client-overrides/",
        Side::Server => "server-overrides/",
        Side::Both | Side::Unspecified => "overrides/",
    }
}

/// An upstream's hash in hex, if it published one in `algorithm`.
fn upstream_hash(f: &File, algorithm: HashAlgorithm) -> Option<(String, String)> {
    f.upstreams.iter().find_map(|u| {
        let h = u.hashes.iter().find(|h| h.algorithm == algorithm as i32)?;
        Some((u.url.clone(), hex::encode(&h.value)))
    })
}

/// What went into a .mrpack.
#[derive(Debug, Clone, Default)]
pub struct MrpackSummary {
    pub downloads: usize,
    pub overrides: usize,
    /// Files left out, with the reason.
    pub skipped: Vec<String>,
}

/// Writes the build's .mrpack to `out`.
pub fn write_mrpack<W: Write + Seek>(
    plan: &BuildPlan,
    source: &PackSource,
    opts: &ExportOptions,
    out: W,
) -> Result<MrpackSummary, ExportError> {
    let m: &Manifest = &plan.manifest;
    let mut summary = MrpackSummary::default();
    let mut files = Vec::new();
    let mut overrides = Vec::new();
    for f in &m.files {
        let digest = Sha256Digest(
            f.sha256
                .as_slice()
                .try_into()
                .map_err(|_| ExportError::Manifest {
                    build: plan.build_id.to_hex(),
                    message: format!("file `{}` has no SHA-256", f.path),
                })?,
        );
        let env = Some(MrEnv::of(side_of(f), f.optional));
        if f.upstream_only {
            match (
                upstream_hash(f, HashAlgorithm::Sha1),
                upstream_hash(f, HashAlgorithm::Sha512),
            ) {
                (Some((url, sha1)), Some((_, sha512))) if !url.is_empty() => {
                    files.push(MrFile {
                        path: f.path.clone(),
                        hashes: BTreeMap::from([("sha1".into(), sha1), ("sha512".into(), sha512)]),
                        env,
                        downloads: vec![url],
                        file_size: f.size,
                    });
                    summary.downloads += 1;
                }
                _ => summary.skipped.push(format!(
                    "{}: upstream-only without both SHA-1 and SHA-512 upstream; left out of the .mrpack",
                    f.path
                )),
            }
            continue;
        }
        let blob = plan.blobs.get(&digest).ok_or_else(|| ExportError::Manifest {
            build: plan.build_id.to_hex(),
            message: format!("file `{}` names a blob the plan does not hold", f.path),
        })?;
        if is_download(f) {
            let (sha1, sha512) = sha1_sha512(source, &blob.content)?;
            files.push(MrFile {
                path: f.path.clone(),
                hashes: BTreeMap::from([
                    ("sha1".into(), sha1.to_string()),
                    ("sha512".into(), sha512.to_string()),
                ]),
                env,
                downloads: vec![opts.blob_url(&digest)],
                file_size: f.size,
            });
            summary.downloads += 1;
        } else {
            let name = format!("{}{}", override_dir(side_of(f)), f.path);
            overrides.push((name, f, blob));
        }
    }
    let mut dependencies = BTreeMap::from([("minecraft".to_owned(), m.minecraft_version.clone())]);
    if let Some(loader) = &m.loader {
        let kind = LoaderKind::try_from(loader.kind).unwrap_or(LoaderKind::Unspecified);
        if let Some(k) = loader_key(kind) {
            dependencies.insert(k.to_owned(), loader.version.clone());
        }
    }
    let index = MrIndex {
        format_version: 1,
        game: "minecraft".to_owned(),
        version_id: m.version.clone(),
        name: m.name.clone(),
        summary: Some(format!("Atlas build {}", plan.build_id)),
        files,
        dependencies,
    };
    let json = serde_json::to_vec_pretty(&index).map_err(|e| ExportError::Zip(e.to_string()))?;
    let zip_err = |e: zip::result::ZipError| ExportError::Zip(e.to_string());
    let mut zip = zip::ZipWriter::new(out);
    let options = |mode: u32, size: u64| {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(mode)
            .large_file(size >= u64::from(u32::MAX))
    };
    zip.start_file(INDEX_FILE, options(0o644, json.len() as u64))
        .map_err(zip_err)?;
    zip.write_all(&json)
        .map_err(|e| ExportError::Zip(e.to_string()))?;
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, f, blob) in overrides {
        let mode = if f.executable { 0o755 } else { 0o644 };
        zip.start_file(name.as_str(), options(mode, f.size))
            .map_err(zip_err)?;
        let mut reader = BlobReader::open(source, &blob.content)?;
        std::io::copy(&mut reader, &mut zip).map_err(|source| ExportError::Io {
            what: format!("adding `{name}` to the .mrpack from {}", reader.describe()),
            source,
        })?;
        summary.overrides += 1;
    }
    zip.finish().map_err(zip_err)?;
    Ok(summary)
}

/// Writes the build's .mrpack to the store unless it is already there.
/// Returns whether it was written, and the files left out.
pub async fn publish_mrpack(
    plan: &BuildPlan,
    source: &PackSource,
    store: &dyn Store,
    opts: &ExportOptions,
) -> Result<(bool, Vec<String>), ExportError> {
    let key = layout::mrpack_key(&plan.manifest.pack_id, &plan.build_id);
    if store.exists(&key).await? {
        return Ok((false, Vec::new()));
    }
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| ExportError::Io { what, source }
    };
    let mut tmp = tempfile::NamedTempFile::new().map_err(io("creating a temporary file for the .mrpack"))?;
    let summary = write_mrpack(plan, source, opts, tmp.as_file_mut())?;
    tmp.as_file_mut()
        .flush()
        .map_err(io("writing the temporary .mrpack"))?;
    let meta = ObjectMeta {
        content_type: CONTENT_TYPE_MRPACK,
        cache_control: CACHE_IMMUTABLE,
    };
    let outcome = store
        .put_immutable(&key, Body::File(tmp.path().to_owned()), meta)
        .await?;
    for s in &summary.skipped {
        tracing::warn!("{s}");
    }
    Ok((outcome == PutOutcome::Created, summary.skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_round_trips_side_and_optional() {
        for side in [Side::Both, Side::Client, Side::Server] {
            for optional in [false, true] {
                assert_eq!(MrEnv::of(side, optional).side(), Some((side, optional)));
            }
        }
        let none = MrEnv {
            client: EnvSupport::Unsupported,
            server: EnvSupport::Unsupported,
        };
        assert_eq!(none.side(), None);
        let json = serde_json::to_string(&MrEnv::of(Side::Client, true)).expect("json");
        assert_eq!(json, r#"{"client":"optional","server":"unsupported"}"#);
    }

    #[test]
    fn downloads_and_overrides() {
        let f = |path: &str, optional: bool| File {
            path: path.into(),
            optional,
            ..Default::default()
        };
        assert!(is_download(&f("mods/a.jar", false)));
        assert!(is_download(&f("shaderpacks/s.zip", false)));
        assert!(is_download(&f("config/x.toml", true)));
        assert!(!is_download(&f("config/x.toml", false)));
        assert!(!is_download(&f("mods", false)));
        assert_eq!(loader_key(LoaderKind::Neoforge), Some("neoforge"));
        assert_eq!(loader_key(LoaderKind::Vanilla), None);
    }
}
