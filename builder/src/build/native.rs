//! Atlas's native `pack.toml`: `[[files]]` globs select repository files,
//! `[[mods]]` name mods (Modrinth, CurseForge, URL with hash, or a file of
//! the repository by `path`).

use atlas_proto::v1::{File, Loader, Manifest};

use crate::pack::{NativePack, PACK_FILE, PackError, parse_hash};
use crate::packwiz::{HashFormat, UpstreamHash};
use crate::plan::{BuildPlan, PackInfo, PlanError, PlanOptions, PlannedFile, assemble, assemble_manifest};
use crate::repo::PackSource;
use crate::resolve::deps::Target;
use crate::resolve::fetch::mod_entry;
use crate::resolve::{
    FetchError, ModError, ModErrors, ModOptions, ModSource, ModSpec, ModsReport, install_path,
};

use super::error::BuildError;
use super::rules::FileRules;

/// Files in the pack directory that configure Atlas and are never installed.
pub const CONFIG_FILES: [&str; 2] = [PACK_FILE, crate::settings::ATLAS_FILE];

/// The text of the pack's `pack.toml` and its path in the repository.
pub fn read_pack_toml(source: &PackSource) -> Result<(String, String), PlanError> {
    let pack_file = match source.commit.subdirectory.as_str() {
        "" => PACK_FILE.to_owned(),
        sub => format!("{sub}/{PACK_FILE}"),
    };
    if !source.files.contains_key(PACK_FILE) {
        return Err(PackError::Missing { file: pack_file }.into());
    }
    let text = String::from_utf8(source.read(PACK_FILE)?).map_err(|_| PackError::Invalid {
        file: pack_file.clone(),
        field: "(file)".into(),
        message: "is not UTF-8 text".into(),
    })?;
    Ok((text, pack_file))
}

/// Plans a native pack's repository files (its `[[mods]]` are left out:
/// [`plan_with_mods`] resolves and downloads them). Offline and synchronous,
/// for `check` and tests.
pub fn plan(source: &PackSource, opts: &PlanOptions) -> Result<BuildPlan, PlanError> {
    let (text, pack_file) = read_pack_toml(source)?;
    let pack = NativePack::parse(&text, &pack_file)?;
    assemble(source, info(&pack), opts, repo_files(source, &pack, &pack_file)?)
}

/// What [`plan`] would build, checked against every cap a host reads
/// with but not compressed (when the caps allow it: `check`'s path, where
/// the build id is not needed).
pub fn check(source: &PackSource, opts: &PlanOptions) -> Result<Manifest, PlanError> {
    let (text, pack_file) = read_pack_toml(source)?;
    let pack = NativePack::parse(&text, &pack_file)?;
    let planned = repo_files(source, &pack, &pack_file)?;
    let (manifest, _) = assemble_manifest(source, info(&pack), opts, planned);
    crate::plan::check_manifest(&manifest, &atlas_proto::Limits::DEFAULT)?;
    Ok(manifest)
}

/// Plans a native pack with its mods: every `[[mods]]` entry is resolved
/// and downloaded (dependency problems checked first), then the globs.
pub async fn plan_with_mods(
    source: &PackSource,
    text: &str,
    pack_file: &str,
    opts: &PlanOptions,
    mods: &ModOptions,
) -> Result<(BuildPlan, ModsReport), BuildError> {
    let pack = NativePack::parse(text, pack_file)?;
    let (specs, mut extra) = mod_specs(source, &pack, pack_file).map_err(FetchError::from)?;
    let target = Target {
        minecraft: pack.minecraft.clone(),
        loader: pack.loader.kind.kind(),
    };
    let (files, report) = crate::resolve::fetch_mods_for(&specs, mods, Some(&target)).await?;
    extra.extend(files);
    let mut planned = repo_files(source, &pack, pack_file)?;
    planned.extend(extra);
    Ok((assemble(source, info(&pack), opts, planned)?, report))
}

fn info(pack: &NativePack) -> PackInfo {
    PackInfo {
        id: pack.id.clone(),
        name: pack.name.clone(),
        version: pack.version.clone(),
        minecraft: pack.minecraft.clone(),
        loader: Loader {
            kind: pack.loader.kind.kind() as i32,
            version: pack.loader.version.clone().unwrap_or_default(),
        },
        description: pack.description.clone().unwrap_or_default(),
        author: pack.author.clone().unwrap_or_default(),
    }
}

/// The `[[mods]]` entries: specs to resolve, and the entries with `path`
/// (files of the repository) planned at once.
fn mod_specs(
    source: &PackSource,
    pack: &NativePack,
    pack_file: &str,
) -> Result<(Vec<ModSpec>, Vec<PlannedFile>), ModErrors> {
    let mut specs = Vec::new();
    let mut in_repo = Vec::new();
    for (i, m) in pack.mods.iter().enumerate() {
        let defined_in = format!("{pack_file} mods[{i}]");
        let invalid = |message: String| {
            ModErrors(vec![ModError::Invalid {
                name: m.name.clone().unwrap_or_else(|| format!("mods[{i}]")),
                defined_in: defined_in.clone(),
                message,
            }])
        };
        let (source_kind, name) = if let Some(r) = &m.modrinth {
            (
                Some(ModSource::Modrinth {
                    project: r.project.clone(),
                    version: r.version.clone(),
                }),
                r.project.clone(),
            )
        } else if let Some(r) = m.curseforge {
            (
                Some(ModSource::CurseForge {
                    project: r.project,
                    file: r.file,
                }),
                format!("curseforge project {}", r.project),
            )
        } else if let (Some(url), Some(hash)) = (&m.url, &m.hash) {
            let hash = parse_hash(hash).map_err(invalid)?;
            (
                Some(ModSource::Url {
                    url: url.clone(),
                    hash,
                }),
                url.rsplit('/').next().unwrap_or(url).to_owned(),
            )
        } else {
            (None, m.path.clone().unwrap_or_default())
        };
        let spec = ModSpec {
            name: m.name.clone().unwrap_or(name),
            defined_in: defined_in.clone(),
            source: source_kind.unwrap_or(ModSource::Url {
                url: String::new(),
                hash: UpstreamHash::of(HashFormat::Sha256, b""),
            }),
            dir: m.dir.clone().unwrap_or_else(|| "mods".to_owned()),
            filename: m.filename.clone(),
            side: m.side.side(),
            optional: m.optional,
            default_enabled: !m.optional || m.default,
            description: m.description.clone().unwrap_or_default(),
            mirror: m.mirror,
            declared: None,
            origin: None,
        };
        match &m.path {
            Some(path) => in_repo.push(repo_mod(source, &spec, path).map_err(invalid)?),
            None => specs.push(spec),
        }
    }
    Ok((specs, in_repo))
}

/// A `[[mods]]` entry with `path`: a file of the repository, installed as
/// the mod the entry describes.
fn repo_mod(source: &PackSource, spec: &ModSpec, path: &str) -> Result<PlannedFile, String> {
    if !source.files.contains_key(path) {
        return Err(format!("`path = \"{path}\"` is not a file of the pack"));
    }
    let name = spec
        .filename
        .clone()
        .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path).to_owned());
    let dest = install_path(&spec.dir, &name);
    let mut planned = PlannedFile::from_repo(source, path, &dest).map_err(|e| e.to_string())?;
    let content = std::mem::take(&mut planned.file);
    // The mod's side and options; its bytes are never marked executable.
    planned.file = File {
        path: content.path,
        size: content.size,
        sha256: content.sha256,
        ..mod_entry(spec)
    };
    Ok(planned)
}

/// The repository files the `[[files]]` globs select, with their side and
/// options: the last matching entry decides, and an include pattern that
/// matches nothing is an error.
fn repo_files(
    source: &PackSource,
    pack: &NativePack,
    pack_file: &str,
) -> Result<Vec<PlannedFile>, PlanError> {
    let mut rules = FileRules::compile(&pack.files, pack_file)?;
    let mut planned = Vec::new();
    for path in source.files.keys() {
        // `.atlas/` holds the repository's Atlas metadata (the keyset chain,
        // `.atlas/keys/`), never pack content.
        if CONFIG_FILES.contains(&path.as_str()) || path.starts_with(".atlas/") {
            continue;
        }
        // The last matching entry decides, so specific entries go after general ones.
        let Some(entry) = rules.select(path) else { continue };
        let mut p = PlannedFile::from_repo(source, path, path)?;
        let f = &mut p.file;
        f.side = entry.side.side() as i32;
        f.optional = entry.optional;
        f.default_enabled = !entry.optional || entry.default;
        f.preserve = entry.preserve;
        f.description = entry.description.clone().unwrap_or_default();
        planned.push(p);
    }
    if let Some((entry, pattern)) = rules.unused() {
        return Err(PlanError::NoMatch {
            file: pack_file.to_owned(),
            entry,
            pattern: pattern.to_owned(),
        });
    }
    Ok(planned)
}
