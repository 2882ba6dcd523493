//! A packwiz pack (`pack.toml`, `index.toml`, `*.pw.toml`), read as
//! packwiz-installer reads it ([`crate::packwiz`]): metafiles are mods
//! resolved and downloaded like any other, index entries without a metafile
//! are files of the repository (at their `alias` when they have one).

use atlas_proto::v1::{Loader, LoaderKind};

use crate::packwiz::{self, DownloadMode, PackwizError, PackwizPack};
use crate::plan::{BuildPlan, PackInfo, PlanOptions, PlannedFile, assemble, pack_id_from_name};
use crate::repo::PackSource;
use crate::resolve::deps::Accepts;
use crate::resolve::{ModOptions, ModSource, ModSpec, ModsReport, fetch_mods_accepting};

use super::error::BuildError;

impl crate::exit::HasExitClass for PackwizError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
}

/// Plans a packwiz pack: every metafile is resolved and downloaded
/// (dependency problems checked first), then the plain index entries.
pub async fn plan(
    source: &PackSource,
    opts: &PlanOptions,
    mods: &ModOptions,
) -> Result<(BuildPlan, ModsReport), BuildError> {
    let (pw, diags) = PackwizPack::load(source).map_err(|e| BuildError::Packwiz(e.to_string()))?;
    if packwiz::has_errors(&diags) {
        let text = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(BuildError::Packwiz(text));
    }
    let specs: Vec<ModSpec> = pw.metafiles.iter().map(spec).collect();
    let accepts = Accepts::for_packwiz(&pw.pack);
    let (extra, report) = fetch_mods_accepting(&specs, mods, Some(&accepts)).await?;
    let mut planned = Vec::new();
    for e in pw.plain_entries() {
        // `packwiz refresh` indexes atlas.toml too; it configures Atlas and is never installed.
        if e.path == crate::settings::ATLAS_FILE || !source.files.contains_key(&e.path) {
            continue;
        }
        let dest = e.alias.as_deref().unwrap_or(&e.path);
        let mut p = PlannedFile::from_repo(source, &e.path, dest)?;
        p.file.preserve = e.preserve;
        planned.push(p);
    }
    planned.extend(extra);
    let p = &pw.pack;
    let info = PackInfo {
        id: mods.pack_id.clone().unwrap_or_else(|| pack_id_from_name(&p.name)),
        name: p.name.clone(),
        version: p.version.clone().unwrap_or_else(|| "0".to_owned()),
        minecraft: p.minecraft.clone(),
        loader: match &p.loader {
            Some(l) => Loader {
                kind: l.loader.kind().unwrap_or(LoaderKind::Unspecified) as i32,
                version: l.version.clone(),
            },
            None => Loader {
                kind: LoaderKind::Vanilla as i32,
                version: String::new(),
            },
        },
        description: p.description.clone().unwrap_or_default(),
        author: p.author.clone().unwrap_or_default(),
    };
    Ok((assemble(source, info, opts, planned)?, report))
}

/// A packwiz metafile as a [`ModSpec`].
fn spec(m: &packwiz::Metafile) -> ModSpec {
    let (dir, filename) = match m.install_path.rsplit_once('/') {
        Some((d, f)) => (d.to_owned(), f.to_owned()),
        None => (String::new(), m.install_path.clone()),
    };
    let origin = match (&m.update.modrinth, &m.update.curseforge) {
        (Some(u), _) => Some(format!("modrinth:{}/{}", u.mod_id, u.version)),
        (None, Some(u)) => Some(format!("curseforge:{}/{}", u.project_id, u.file_id)),
        _ => None,
    };
    let source = match (m.download.mode, &m.update.curseforge, &m.download.url) {
        (DownloadMode::CurseForge, Some(cf), _) => ModSource::CurseForge {
            project: cf.project_id,
            file: cf.file_id,
        },
        (_, _, url) => ModSource::Url {
            url: url.clone().unwrap_or_default(),
            hash: m.download.hash.clone(),
        },
    };
    let option = m.option.clone().unwrap_or_default();
    ModSpec {
        name: m.name.clone(),
        defined_in: m.path.clone(),
        source,
        dir,
        filename: Some(filename),
        side: m.side.side(),
        optional: option.optional,
        default_enabled: !option.optional || option.default,
        description: option.description.unwrap_or_default(),
        mirror: true,
        declared: Some(m.download.hash.clone()),
        origin,
    }
}
