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
//! The archive is written by [`crate::mrpack::write`] (byte-reproducible),
//! overrides sorted by entry name.

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use atlas_proto::Sha256Digest;
use atlas_proto::layout::{self, CACHE_IMMUTABLE, CONTENT_TYPE_MRPACK};
use atlas_proto::v1::{File, HashAlgorithm, LoaderKind, Manifest, Side};

use super::{BlobReader, ExportError, ExportOptions, ExportReport, sha1_sha512};
use crate::mrpack::write::{MrpackWriter, WriteError, override_name};
use crate::mrpack::{MrEnv, MrFile, MrIndex, loader_key};
use crate::plan::BuildPlan;
use crate::repo::PackSource;
use crate::store::{Body, ObjectMeta, PutOutcome, Store};

/// Top-level folders whose files are downloads rather than overrides.
pub const DOWNLOAD_DIRS: [&str; 3] = ["mods", "resourcepacks", "shaderpacks"];

fn side_of(f: &File) -> Side {
    Side::try_from(f.side).unwrap_or(Side::Both)
}

/// Whether a manifest file is a `files[]` download (else an override).
pub fn is_download(f: &File) -> bool {
    let top = f.path.split('/').next().unwrap_or_default();
    f.upstream_only || f.optional || (f.path.contains('/') && DOWNLOAD_DIRS.contains(&top))
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
            let name = override_name(side_of(f), &f.path);
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
    let zip_err = |e: WriteError| ExportError::Zip(e.to_string());
    let mut zip = MrpackWriter::new(out, &index).map_err(zip_err)?;
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, f, blob) in overrides {
        let mut reader = BlobReader::open(source, &blob.content)?;
        zip.add_override(&name, f.executable, f.size, &mut reader)
            .map_err(|e| match e {
                WriteError::Copy { source, .. } => ExportError::Io {
                    what: format!("adding `{name}` to the .mrpack from {}", reader.describe()),
                    source,
                },
                e @ WriteError::Zip(_) => zip_err(e),
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

/// Writes the build's .mrpack before the pointer is signed; returns the
/// report, whose key the pointer names.
pub async fn write_build_exports(
    plan: &BuildPlan,
    source: &PackSource,
    store: &dyn Store,
    opts: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    let pack = plan.manifest.pack_id.as_str();
    let (mrpack_new, skipped) = publish_mrpack(plan, source, store, opts).await?;
    Ok(ExportReport {
        mrpack: Some(layout::mrpack_key(pack, &plan.build_id)),
        mrpack_new,
        skipped,
        ..ExportReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
