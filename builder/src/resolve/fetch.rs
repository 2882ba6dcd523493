//! Fetching a pack's mods: resolve every [`ModSpec`] through the services'
//! APIs, check dependencies, download what the cache lacks (or take manual
//! downloads), and turn each into a manifest entry with its blob
//! ([`PlannedFile`]). Every failure is reported at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::sync::mpsc;

use atlas_proto::Sha256Digest;
use atlas_proto::v1::{File, Upstream};

use crate::cache::Cache;
use crate::download::{DownloadOptions, DownloadRequest, Downloaded, Downloader, Sleeper, TokioSleeper};
use crate::packwiz::{self, UpstreamHash};
use crate::plan::{BlobSource, PlannedFile};
use crate::repo::Content;

use super::deps::{self, Accepts, DepErrors, DepProblem, DepsPolicy, Target};
use super::error::{ModError, ModErrors};
use super::spec::{ModSpec, ResolvedMod};
use super::{ResolveOptions, Resolver};

/// Fetching mods failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Mods(#[from] ModErrors),
    #[error(transparent)]
    Deps(#[from] DepErrors),
    #[error("download cache {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::exit::HasExitClass for FetchError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
}

/// A verified download (or cache hit) that the store will hold, announced
/// as it lands so its upload can start before the rest have downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The file in the download cache.
    pub path: PathBuf,
    /// Its install path, for logs.
    pub dest: String,
}

/// Where the download step announces blobs as they land.
pub type LandedSender = mpsc::UnboundedSender<LandedBlob>;

/// A channel for [`LandedBlob`]s: the sender goes into
/// [`ModOptions::landed`], the receiver to whoever uploads them.
pub fn landed_channel() -> (LandedSender, mpsc::UnboundedReceiver<LandedBlob>) {
    mpsc::unbounded_channel()
}

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
    /// Which mods are copied into the store; `crate::build::plan_pack` takes
    /// it from the pack's `atlas.toml`.
    pub mirror: crate::settings::MirrorPolicy,
    /// Overrides `atlas.toml`'s `[mirror]` policy for every source (`--mirror`).
    pub mirror_override: Option<crate::settings::MirrorMode>,
    /// Told of every mirrored file as it lands in the cache, so its upload
    /// can start early (`crate::publish::early`).
    pub landed: Option<LandedSender>,
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

impl Default for ModOptions {
    /// The user's download cache (`$XDG_CACHE_HOME/atlas`, else
    /// `~/.cache/atlas`, else a folder in the temporary directory).
    fn default() -> Self {
        Self::new(crate::cache::default_dir().unwrap_or_else(|| std::env::temp_dir().join("atlas-cache")))
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

/// What a mod's manifest entry takes from its spec: side, options, name
/// and description (the content fields are the caller's).
pub fn mod_entry(spec: &ModSpec) -> File {
    File {
        side: spec.side as i32,
        optional: spec.optional,
        default_enabled: spec.default_enabled,
        display_name: spec.name.clone(),
        description: spec.description.clone(),
        ..Default::default()
    }
}

/// Resolves, downloads (or finds in the cache or the manual folder) and
/// turns every mod into a manifest entry. Every failure is reported at once.
pub async fn fetch_mods(
    specs: &[ModSpec],
    opts: &ModOptions,
) -> Result<(Vec<PlannedFile>, ModsReport), FetchError> {
    fetch_mods_for(specs, opts, None).await
}

/// [`fetch_mods`], and with a `target` the dependency checks first (before
/// any download, so `--deps error` fails fast).
pub async fn fetch_mods_for(
    specs: &[ModSpec],
    opts: &ModOptions,
    target: Option<&Target>,
) -> Result<(Vec<PlannedFile>, ModsReport), FetchError> {
    fetch_mods_accepting(specs, opts, target.map(Accepts::from).as_ref()).await
}

/// [`fetch_mods_for`] with what the pack accepts: Modrinth version numbers
/// are looked up for its loaders and Minecraft versions, and the dependency
/// checks count them (packwiz's `GetCompatibleLoaders` and
/// `acceptable-game-versions`).
pub async fn fetch_mods_accepting(
    specs: &[ModSpec],
    opts: &ModOptions,
    accepts: Option<&Accepts>,
) -> Result<(Vec<PlannedFile>, ModsReport), FetchError> {
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
    let cache = Cache::open(&opts.cache_dir).map_err(|source| FetchError::Cache {
        path: opts.cache_dir.clone(),
        source,
    })?;
    let downloader = Downloader::with_sleeper(cache, opts.download.clone(), opts.sleeper.clone());
    let resolver = Resolver::new(&opts.resolve, downloader.client().clone(), opts.sleeper.clone());
    let resolved = resolver.resolve_accepting(specs, accepts).await?;
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
    if let Some(accepts) = accepts {
        let projects = resolver
            .version_projects(&deps::unknown_versions(&resolved))
            .await;
        report.deps = deps::check_accepting(&resolved, accepts, &projects);
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
            let _ = tx.send(LandedBlob {
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

fn extra_file(r: &ResolvedMod, d: Downloaded, report: &mut ModsReport) -> PlannedFile {
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
    // SHA-1 and SHA-512 from the download pass: a .mrpack needs both.
    hashes.extend(d.digests.iter().cloned());
    hashes.sort_by_key(|h| h.format);
    hashes.dedup();
    let upstream = Upstream {
        url: r.upstream_url().unwrap_or_default().to_owned(),
        hashes: hashes.iter().map(UpstreamHash::to_proto).collect(),
        origin: r.origin.clone(),
    };
    let file = File {
        path: r.path.clone(),
        size: d.size,
        sha256: d.sha256.0.to_vec(),
        upstreams: vec![upstream],
        upstream_only,
        display_version: r.display_version.clone(),
        ..mod_entry(&r.spec)
    };
    let blob = (!upstream_only).then(|| {
        (
            d.sha256,
            BlobSource {
                content: Content::Cached(d.path.clone()),
                size: d.size,
                path: r.path.clone(),
            },
        )
    });
    PlannedFile { file, blob }
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
