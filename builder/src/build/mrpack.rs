//! A Modrinth modpack (`.mrpack`) as a pack source: a pack directory whose
//! only pack definition is one `*.mrpack` file at its root builds like a
//! native pack. `files[]` downloads become URL mods verified by SHA-512 (and
//! mirrored like any mod), `env` becomes side and optional, and the override
//! folders become files of the build with their side. The archive is read
//! by [`crate::mrpack::read`], which trusts nothing in it.

use atlas_proto::Limits;
use atlas_proto::v1::{File, Side};

use crate::cache::Cache;
use crate::mrpack::read::index_err;
use crate::mrpack::{MrEnv, Mrpack};
use crate::packwiz::{HashFormat, UpstreamHash};
use crate::plan::{BlobSource, BuildPlan, PackInfo, PlanOptions, PlannedFile, assemble, pack_id_from_name};
use crate::repo::{Content, PackSource, RepoError};
use crate::resolve::{ModOptions, ModSource, ModSpec, ModsReport, fetch_mods};

use super::error::BuildError;

/// The root-level `*.mrpack` that defines the pack, when there is no
/// `pack.toml` and exactly one such file.
pub fn find(source: &PackSource) -> Option<String> {
    if source.files.contains_key(crate::pack::PACK_FILE) {
        return None;
    }
    let mut found = source
        .files
        .keys()
        .filter(|p| !p.contains('/') && p.to_ascii_lowercase().ends_with(".mrpack"));
    let first = found.next()?.clone();
    found.next().is_none().then_some(first)
}

/// Plans a build of the `.mrpack` at pack path `name`: downloads are fetched
/// (through the cache) like URL mods, overrides are extracted into the cache.
pub async fn plan(
    source: &PackSource,
    name: &str,
    opts: &PlanOptions,
    mods: &ModOptions,
) -> Result<(BuildPlan, ModsReport), BuildError> {
    let src = source.files.get(name).ok_or_else(|| RepoError::Unsupported {
        path: name.to_owned(),
        message: "not in the pack".into(),
    })?;
    let cache = Cache::open(&mods.cache_dir).map_err(|source| BuildError::Cache {
        path: mods.cache_dir.clone(),
        source,
    })?;
    let limits = &Limits::DEFAULT;
    let pack: Mrpack = match &src.content {
        Content::Disk(p) | Content::Cached(p) => {
            let f = std::fs::File::open(p).map_err(|source| RepoError::Io {
                path: p.clone(),
                source,
            })?;
            crate::mrpack::read(std::io::BufReader::new(f), name, &cache, limits)?
        }
        c @ Content::Git(_) => crate::mrpack::read(
            std::io::Cursor::new(source.read_content(c)?),
            name,
            &cache,
            limits,
        )?,
    };
    for w in &pack.warnings {
        tracing::warn!("{w}");
    }
    let mut specs = Vec::new();
    for (i, f) in pack.index.files.iter().enumerate() {
        let env = f.env.unwrap_or(MrEnv::of(Side::Both, false));
        let Some((side, optional)) = env.side() else {
            tracing::warn!("{name}: `{}` is unsupported on both sides; skipped", f.path);
            continue;
        };
        let (dir, filename) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
        let url = f
            .downloads
            .iter()
            .find(|u| u.starts_with("https://") || u.starts_with("http://"))
            .cloned()
            .unwrap_or_default();
        let sha512 = f.hashes.get("sha512").map(String::as_str).unwrap_or_default();
        let hash = UpstreamHash::parse(HashFormat::Sha512, sha512)
            .map_err(|e| index_err(name, format!("files[{i}]: {e}")))?;
        specs.push(ModSpec {
            name: filename.to_owned(),
            defined_in: format!("{name} files[{i}]"),
            source: ModSource::Url { url, hash },
            dir: dir.to_owned(),
            filename: Some(filename.to_owned()),
            side,
            optional,
            default_enabled: true,
            description: String::new(),
            mirror: true,
            declared: None,
            origin: None,
        });
    }
    let (extra, report) = fetch_mods(&specs, mods).await?;
    let mut planned: Vec<PlannedFile> = pack
        .overrides
        .iter()
        .map(|o| PlannedFile {
            file: File {
                path: o.path.clone(),
                size: o.size,
                sha256: o.sha256.0.to_vec(),
                side: o.side as i32,
                default_enabled: true,
                executable: o.executable,
                ..Default::default()
            },
            blob: Some((
                o.sha256,
                BlobSource {
                    content: Content::Cached(o.cached.clone()),
                    size: o.size,
                    path: o.path.clone(),
                },
            )),
        })
        .collect();
    planned.extend(extra);
    let idx = &pack.index;
    let info = PackInfo {
        id: mods
            .pack_id
            .clone()
            .unwrap_or_else(|| pack_id_from_name(&idx.name)),
        name: idx.name.clone(),
        version: idx.version_id.clone(),
        minecraft: idx.dependencies.get("minecraft").cloned().unwrap_or_default(),
        loader: idx.loader(),
        description: idx.summary.clone().unwrap_or_default(),
        author: String::new(),
    };
    Ok((assemble(source, info, opts, planned)?, report))
}
