//! The whole planning step for a pack with mods: read the pack (native
//! `pack.toml` with `[[mods]]`, or a packwiz tree), resolve every mod,
//! download what the cache lacks (or take manual downloads), and plan the
//! manifest with repository files and mods together.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;

use atlas_proto::Sha256Digest;
use atlas_proto::v1::{File, Loader, LoaderKind, Side, Upstream};

use crate::cache::Cache;
use crate::download::{DownloadOptions, DownloadRequest, Downloaded, Downloader, Sleeper, TokioSleeper};
use crate::pack::{NativePack, PACK_FILE, PackError, parse_hash};
use crate::packwiz::{self, DownloadMode, PackwizPack, UpstreamHash};
use crate::plan::{
    BlobSource, BuildPlan, ExtraFile, PackInfo, PlanError, PlanOptions, assemble, plan_native_with,
};
use crate::repo::{PackSource, RepoError};

use super::deps::{DepErrors, DepProblem, DepsPolicy, Target};
use super::{ModError, ModErrors, ModSource, ModSpec, ResolveOptions, ResolvedMod, Resolver, install_path};

/// Settings of mod resolution and downloads.
#[derive(Debug, Clone)]
pub struct ModOptions {
    pub resolve: ResolveOptions,
    pub download: DownloadOptions,
    pub cache_dir: PathBuf,
    /// Pack id for packwiz packs (default: derived from the pack's name).
    pub pack_id: Option<String>,
    pub sleeper: Arc<dyn Sleeper>,
    /// Whether dependency problems fail the build.
    pub deps: DepsPolicy,
    /// Which mods are copied into the store; [`plan_pack`] takes it from the
    /// pack's `atlas.toml`.
    pub mirror: crate::settings::MirrorPolicy,
    /// Overrides `atlas.toml`'s `[mirror]` policy for every source (`--mirror`).
    pub mirror_override: Option<crate::settings::MirrorMode>,
    /// Told of every mirrored file as it lands in the cache, so its upload
    /// can start early ([`crate::early`]).
    pub landed: Option<crate::early::LandedSender>,
}

impl ModOptions {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            resolve: ResolveOptions::default(),
            download: DownloadOptions::default(),
            cache_dir,
            pack_id: None,
            sleeper: Arc::new(TokioSleeper),
            deps: DepsPolicy::default(),
            mirror: crate::settings::MirrorPolicy::default(),
            mirror_override: None,
            landed: None,
        }
    }
}

/// What resolving and downloading did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ModsReport {
    /// Mods from Modrinth, CurseForge and URLs.
    pub mods: usize,
    /// Files downloaded now.
    pub downloaded: usize,
    /// Files found in the cache (no request).
    pub cached: usize,
    /// Files taken from --manual-dir.
    pub manual: usize,
    /// Files kept upstream-only (not uploaded).
    pub upstream_only: usize,
    /// Download requests sent (retries included).
    pub requests: u64,
    pub bytes_downloaded: u64,
    pub retries: u64,
    /// Dependency problems found in Modrinth's metadata (warnings under `--deps warn`).
    pub deps: Vec<DepProblem>,
}

/// Planning a pack with mods failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("the packwiz pack has errors:\n{0}")]
    Packwiz(String),
    #[error(transparent)]
    Mods(#[from] ModErrors),
    #[error(transparent)]
    Deps(#[from] DepErrors),
    #[error(transparent)]
    Mrpack(#[from] crate::import_mrpack::ImportError),
    #[error("download cache {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the pack at `source` (native or packwiz), resolves and downloads its
/// mods, and plans the build.
pub async fn plan_pack(
    source: &PackSource,
    opts: &PlanOptions,
    mods: &ModOptions,
) -> Result<(BuildPlan, ModsReport), BuildError> {
    let pack_file = match source.commit.subdirectory.as_str() {
        "" => PACK_FILE.to_owned(),
        sub => format!("{sub}/{PACK_FILE}"),
    };
    let settings = crate::settings::AtlasSettings::from_source(source)?;
    let mods = &ModOptions {
        mirror: mods
            .mirror_override
            .map_or(settings.mirror, |default| crate::settings::MirrorPolicy {
                default,
                ..Default::default()
            }),
        ..mods.clone()
    };
    // A directory holding one `.mrpack` and no pack.toml imports it.
    if let Some(name) = crate::import_mrpack::find_mrpack(source) {
        return crate::import_mrpack::plan_mrpack(source, &name, opts, mods).await;
    }
    if !source.files.contains_key(PACK_FILE) {
        return Err(PackError::Missing { file: pack_file }.into());
    }
    let text = String::from_utf8(source.read(PACK_FILE)?).map_err(|_| PackError::Invalid {
        file: pack_file.clone(),
        field: "(file)".into(),
        message: "is not UTF-8 text".into(),
    })?;
    if packwiz::is_packwiz_pack_toml(&text) {
        return plan_packwiz(source, opts, mods).await;
    }
    let pack = NativePack::parse(&text, &pack_file)?;
    let mut specs = Vec::new();
    let mut extra = Vec::new();
    for (i, m) in pack.mods.iter().enumerate() {
        let defined_in = format!("{pack_file} mods[{i}]");
        let invalid = |message: String| ModError::Invalid {
            name: m.name.clone().unwrap_or_else(|| format!("mods[{i}]")),
            defined_in: defined_in.clone(),
            message,
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
            let hash = parse_hash(hash).map_err(|e| ModErrors(vec![invalid(e)]))?;
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
                hash: UpstreamHash::of(packwiz::HashFormat::Sha256, b""),
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
            Some(path) => {
                extra.push(repo_file(source, &spec, path).map_err(|e| ModErrors(vec![invalid(e)]))?)
            }
            None => specs.push(spec),
        }
    }
    let target = Target {
        minecraft: pack.minecraft.clone(),
        loader: pack.loader.kind.kind(),
    };
    let (files, report) = fetch_mods_for(&specs, mods, Some(&target)).await?;
    extra.extend(files);
    let mut plan = plan_native_with(source, &pack, &pack_file, opts, extra)?;
    plan.mods = report.clone();
    Ok((plan, report))
}

/// A `[[mods]]` entry with `path`: a file of the repository.
fn repo_file(source: &PackSource, spec: &ModSpec, path: &str) -> Result<ExtraFile, String> {
    let src = source
        .files
        .get(path)
        .ok_or_else(|| format!("`path = \"{path}\"` is not a file of the pack"))?;
    let bytes = source.read_content(&src.content).map_err(|e| e.to_string())?;
    let name = spec
        .filename
        .clone()
        .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path).to_owned());
    let dest = install_path(&spec.dir, &name);
    let sha256 = Sha256Digest::of(&bytes);
    let size = bytes.len() as u64;
    let file = manifest_file(spec, &dest, sha256, size, Vec::new(), false, "");
    let blob = BlobSource {
        content: src.content.clone(),
        size,
        path: dest,
    };
    Ok(ExtraFile {
        file,
        blob: Some((sha256, blob)),
    })
}

fn manifest_file(
    spec: &ModSpec,
    path: &str,
    sha256: Sha256Digest,
    size: u64,
    upstreams: Vec<Upstream>,
    upstream_only: bool,
    version: &str,
) -> File {
    File {
        path: path.to_owned(),
        size,
        sha256: sha256.0.to_vec(),
        side: spec.side as i32,
        optional: spec.optional,
        default_enabled: spec.default_enabled,
        upstreams,
        upstream_only,
        display_name: spec.name.clone(),
        display_version: version.to_owned(),
        description: spec.description.clone(),
        ..Default::default()
    }
}

/// Resolves, downloads (or finds in the cache or the manual folder) and
/// turns every mod into a manifest entry. Every failure is reported at once.
pub async fn fetch_mods(
    specs: &[ModSpec],
    opts: &ModOptions,
) -> Result<(Vec<ExtraFile>, ModsReport), BuildError> {
    fetch_mods_for(specs, opts, None).await
}

/// [`fetch_mods`], and with a `target` the dependency checks first (before
/// any download, so `--deps error` fails fast).
pub async fn fetch_mods_for(
    specs: &[ModSpec],
    opts: &ModOptions,
    target: Option<&Target>,
) -> Result<(Vec<ExtraFile>, ModsReport), BuildError> {
    let specs: Vec<ModSpec> = specs
        .iter()
        .cloned()
        .map(|mut s| {
            opts.mirror.apply(&mut s);
            s
        })
        .collect();
    let specs = specs.as_slice();
    let mut report = ModsReport {
        mods: specs.len(),
        ..ModsReport::default()
    };
    if specs.is_empty() {
        return Ok((Vec::new(), report));
    }
    let cache = Cache::open(&opts.cache_dir).map_err(|source| BuildError::Cache {
        path: opts.cache_dir.clone(),
        source,
    })?;
    let downloader = Downloader::with_sleeper(cache, opts.download.clone(), opts.sleeper.clone());
    let resolver = Resolver::new(&opts.resolve, downloader.client().clone(), opts.sleeper.clone());
    let resolved = resolver.resolve(specs).await?;
    let mut errors = Vec::new();
    for r in &resolved {
        if let Err(e) = atlas_proto::validate_path(&r.path) {
            errors.push(ModError::Invalid {
                name: r.spec.name.clone(),
                defined_in: r.spec.defined_in.clone(),
                message: format!("install path `{}` is not allowed: {}", r.path, e.reason),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ModErrors(errors).into());
    }
    if let Some(target) = target {
        let projects = resolver
            .version_projects(&super::deps::unknown_versions(&resolved))
            .await;
        report.deps = super::deps::check(&resolved, target, &projects);
        if opts.deps == DepsPolicy::Error && !report.deps.is_empty() {
            return Err(DepErrors(report.deps).into());
        }
        for p in &report.deps {
            tracing::warn!("{p}");
        }
    }
    let (requests, mirrored): (Vec<DownloadRequest>, Vec<bool>) = resolved
        .iter()
        .filter_map(|r| {
            let req = DownloadRequest {
                name: r.spec.name.clone(),
                url: r.url.clone()?,
                expected: r.verify.clone(),
                size: r.size,
                dest: r.path.clone(),
            };
            Some((req, !r.upstream_only()))
        })
        .unzip();
    let landed = |i: usize, d: &Downloaded| {
        if let Some(tx) = &opts.landed
            && mirrored.get(i).copied().unwrap_or(false)
        {
            // A closed channel only means nobody uploads early.
            let _ = tx.send(crate::early::LandedBlob {
                sha256: d.sha256,
                size: d.size,
                path: d.path.clone(),
                dest: requests.get(i).map(|r| r.dest.clone()).unwrap_or_default(),
            });
        }
    };
    let mut fetched = downloader.fetch_all_with(&requests, landed).await.into_iter();
    let mut manual = ManualDir::new(opts.resolve.manual_dir.clone());
    let mut files = Vec::with_capacity(resolved.len());
    for r in &resolved {
        let got: Result<Downloaded, ModError> = match &r.url {
            Some(_) => match fetched.next() {
                Some(res) => res.map_err(ModError::from),
                None => continue,
            },
            None => match manual.find(&downloader, &r.verify) {
                Ok(Some(d)) => {
                    report.manual += 1;
                    Ok(d)
                }
                Ok(None) => Err(ModError::DistributionDisabled {
                    name: r.spec.name.clone(),
                    defined_in: r.spec.defined_in.clone(),
                    page: r.page.clone().unwrap_or_default(),
                    file_name: r.file_name.clone(),
                    dest: r.path.clone(),
                    manual_dir: opts.resolve.manual_dir.clone(),
                }),
                Err(e) => Err(e.into()),
            },
        };
        match got {
            Ok(d) => files.push(extra_file(r, d, &mut report)),
            Err(e) => errors.push(e),
        }
    }
    let stats = downloader.stats();
    report.requests = stats.requests.load(Ordering::Relaxed);
    report.bytes_downloaded = stats.bytes.load(Ordering::Relaxed);
    report.retries = stats.retries.load(Ordering::Relaxed);
    if errors.is_empty() {
        Ok((files, report))
    } else {
        Err(ModErrors(errors).into())
    }
}

fn extra_file(r: &ResolvedMod, d: Downloaded, report: &mut ModsReport) -> ExtraFile {
    if r.url.is_some() {
        if d.from_cache {
            report.cached += 1;
        } else {
            report.downloaded += 1;
        }
    }
    let upstream_only = r.upstream_only();
    if upstream_only {
        report.upstream_only += 1;
    }
    let mut hashes: Vec<UpstreamHash> = r.hashes.clone();
    hashes.sort_by_key(|h| h.format);
    hashes.dedup();
    let upstream = Upstream {
        url: r.url.clone().or_else(|| r.page.clone()).unwrap_or_default(),
        hashes: hashes.iter().map(UpstreamHash::to_proto).collect(),
        origin: r.origin.clone(),
    };
    let file = manifest_file(
        &r.spec,
        &r.path,
        d.sha256,
        d.size,
        vec![upstream],
        upstream_only,
        &r.display_version,
    );
    let blob = (!upstream_only).then(|| {
        (
            d.sha256,
            BlobSource {
                content: crate::repo::Content::Cached(d.path.clone()),
                size: d.size,
                path: r.path.clone(),
            },
        )
    });
    ExtraFile { file, blob }
}

/// The folder of manually downloaded files, each hashed at most once per format.
struct ManualDir {
    dir: Option<PathBuf>,
    files: Option<Vec<PathBuf>>,
    hashes: BTreeMap<(PathBuf, packwiz::HashFormat), UpstreamHash>,
}

impl ManualDir {
    fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            files: None,
            hashes: BTreeMap::new(),
        }
    }

    fn find(
        &mut self,
        downloader: &Downloader,
        want: &UpstreamHash,
    ) -> Result<Option<Downloaded>, crate::download::DownloadError> {
        let Some(dir) = &self.dir else { return Ok(None) };
        let files = match &self.files {
            Some(f) => f.clone(),
            None => {
                let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("--manual-dir {}: {e}", dir.display()))
                    })?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    .collect();
                f.sort();
                self.files = Some(f.clone());
                f
            }
        };
        for path in files {
            let key = (path.clone(), want.format);
            let hash = match self.hashes.get(&key) {
                Some(h) => h.clone(),
                None => {
                    let data = std::fs::read(&path)?;
                    let h = UpstreamHash::of(want.format, &data);
                    self.hashes.insert(key, h.clone());
                    h
                }
            };
            if hash == *want {
                return downloader.import(&path, want);
            }
        }
        Ok(None)
    }
}

/// A pack id from a packwiz pack's name: lowercase, other characters as `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(64).collect();
    if out.is_empty() { "pack".to_owned() } else { out }
}

async fn plan_packwiz(
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
    let specs: Vec<ModSpec> = pw.metafiles.iter().map(packwiz_spec).collect();
    let target = Target {
        minecraft: pw.pack.minecraft.clone(),
        loader: match &pw.pack.loader {
            Some(l) => l.loader.kind().unwrap_or(LoaderKind::Unspecified),
            None => LoaderKind::Vanilla,
        },
    };
    let (extra, report) = fetch_mods_for(&specs, mods, Some(&target)).await?;
    let mut files = Vec::new();
    let mut blobs = BTreeMap::new();
    for e in pw.plain_entries() {
        // `packwiz refresh` indexes atlas.toml too; it configures Atlas and is never installed.
        if e.path == crate::settings::ATLAS_FILE {
            continue;
        }
        let Some(src) = source.files.get(&e.path) else {
            continue;
        };
        let dest = e.alias.clone().unwrap_or_else(|| e.path.clone());
        atlas_proto::validate_path(&dest).map_err(|err| PlanError::BadPath {
            path: dest.clone(),
            message: err.reason.to_owned(),
        })?;
        let bytes = source.read_content(&src.content)?;
        let sha256 = Sha256Digest::of(&bytes);
        let size = bytes.len() as u64;
        blobs.entry(sha256).or_insert_with(|| BlobSource {
            content: src.content.clone(),
            size,
            path: dest.clone(),
        });
        files.push(File {
            path: dest,
            size,
            sha256: sha256.0.to_vec(),
            side: Side::Both as i32,
            default_enabled: true,
            executable: src.executable,
            preserve: e.preserve,
            ..Default::default()
        });
    }
    let p = &pw.pack;
    let info = PackInfo {
        id: mods.pack_id.clone().unwrap_or_else(|| slug(&p.name)),
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
    };
    let mut plan = assemble(source, info, opts, files, blobs, extra)?;
    plan.mods = report.clone();
    Ok((plan, report))
}

/// A packwiz metafile as a [`ModSpec`].
fn packwiz_spec(m: &packwiz::Metafile) -> ModSpec {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_pack_ids() {
        assert_eq!(slug("All The Mods 9"), "all-the-mods-9");
        assert_eq!(slug("  Fabulously Optimized!  "), "fabulously-optimized");
        assert_eq!(slug("???"), "pack");
        for name in ["Ünïcode Pack", "a/b\\c", "x.y_z"] {
            let s = slug(name);
            assert!(atlas_proto::layout::validate_pack_id(&s).is_ok(), "{s}");
        }
    }
}
