//! The build plan: which repository files become which manifest entries,
//! their content addresses, and the encoded manifest with its build id.
//! Planning reads the repository but writes nothing, so `--dry-run` and tests
//! can inspect a build before anything is uploaded.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use atlas_proto::v1::{BuildSource, File, Loader, Manifest};
use atlas_proto::{Sha256Digest, manifest};

use crate::pack::{FilesEntry, NativePack, PACK_FILE, PackError};
use crate::repo::{Content, PackSource, RepoError};
use crate::resolve::ModsReport;

/// Files in the pack directory that configure Atlas and are never installed.
pub const CONFIG_FILES: [&str; 2] = [PACK_FILE, crate::settings::ATLAS_FILE];

/// Planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{file}: files[{entry}]: glob `{pattern}`: {message}")]
    Glob {
        file: String,
        entry: usize,
        pattern: String,
        message: String,
    },
    #[error(
        "{file}: files[{entry}]: include `{pattern}` matches no file in the pack; fix the pattern or remove it"
    )]
    NoMatch {
        file: String,
        entry: usize,
        pattern: String,
    },
    #[error("pack file `{path}` cannot be installed: {message}")]
    BadPath { path: String, message: String },
    #[error("the manifest is invalid: {0}")]
    Manifest(#[from] manifest::ManifestError),
}

/// Where a planned blob's bytes come from.
#[derive(Debug, Clone)]
pub struct BlobSource {
    pub content: Content,
    pub size: u64,
    /// First path that uses this blob (for messages).
    pub path: String,
}

/// A planned build: the manifest and where each blob comes from.
#[derive(Debug)]
pub struct BuildPlan {
    pub manifest: Manifest,
    /// The bytes stored at `packs/<pack>/builds/<build>/manifest.pb.zst`.
    pub manifest_bytes: Vec<u8>,
    pub build_id: Sha256Digest,
    /// Every distinct blob the manifest references.
    pub blobs: BTreeMap<Sha256Digest, BlobSource>,
    /// What resolving and downloading mods did (empty for packs without mods).
    pub mods: ModsReport,
}

/// A printable summary of a plan (for `--dry-run` and `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub pack: String,
    pub version: String,
    pub build: String,
    pub commit: String,
    pub dirty: bool,
    pub files: usize,
    pub blobs: usize,
    pub bytes: u64,
    pub manifest_bytes: usize,
}

impl BuildPlan {
    pub fn summary(&self) -> PlanSummary {
        let source = self.manifest.source.clone().unwrap_or_default();
        PlanSummary {
            pack: self.manifest.pack_id.clone(),
            version: self.manifest.version.clone(),
            build: self.build_id.to_hex(),
            commit: source.commit,
            dirty: source.dirty,
            files: self.manifest.files.len(),
            blobs: self.blobs.len(),
            bytes: self.blobs.values().map(|b| b.size).sum(),
            manifest_bytes: self.manifest_bytes.len(),
        }
    }
}

struct CompiledEntry<'a> {
    entry: &'a FilesEntry,
    include: Vec<GlobSet>,
    exclude: GlobSet,
}

fn glob(file: &str, entry: usize, pattern: &str) -> Result<Glob, PlanError> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| PlanError::Glob {
            file: file.to_owned(),
            entry,
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })
}

fn compile<'a>(pack: &'a NativePack, file: &str) -> Result<Vec<CompiledEntry<'a>>, PlanError> {
    let set = |globs: Vec<Glob>, entry: usize| {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            b.add(g);
        }
        b.build().map_err(|e| PlanError::Glob {
            file: file.to_owned(),
            entry,
            pattern: String::new(),
            message: e.to_string(),
        })
    };
    pack.files
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let include = entry
                .include
                .iter()
                .map(|p| set(vec![glob(file, i, p)?], i))
                .collect::<Result<Vec<_>, _>>()?;
            let exclude = set(
                entry
                    .exclude
                    .iter()
                    .map(|p| glob(file, i, p))
                    .collect::<Result<_, _>>()?,
                i,
            )?;
            Ok(CompiledEntry {
                entry,
                include,
                exclude,
            })
        })
        .collect()
}

/// Options that are not part of the pack itself.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Repository URL recorded in the manifest (default: `remote.origin.url`).
    pub repository_url: Option<String>,
}

/// Reads `pack.toml` from `source` and plans the build.
pub fn plan(source: &PackSource, opts: &PlanOptions) -> Result<BuildPlan, PlanError> {
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
    let pack = NativePack::parse(&text, &pack_file)?;
    plan_native(source, &pack, &pack_file, opts)
}

/// Plans a build of an already parsed native pack (its repository files
/// only; `[[mods]]` are resolved and downloaded by
/// [`crate::resolve::plan_pack`], which passes them to [`plan_native_with`]).
pub fn plan_native(
    source: &PackSource,
    pack: &NativePack,
    pack_file: &str,
    opts: &PlanOptions,
) -> Result<BuildPlan, PlanError> {
    plan_native_with(source, pack, pack_file, opts, Vec::new())
}

/// A file from outside the repository's globs (a downloaded mod): its
/// manifest entry, and its blob unless the file is upstream-only.
#[derive(Debug, Clone)]
pub struct ExtraFile {
    pub file: File,
    pub blob: Option<(Sha256Digest, BlobSource)>,
}

/// Pack identity and versions, as the manifest records them.
#[derive(Debug, Clone)]
pub struct PackInfo {
    pub id: String,
    pub name: String,
    pub version: String,
    pub minecraft: String,
    pub loader: Loader,
}

/// [`plan_native`] plus files from elsewhere (downloaded mods).
pub fn plan_native_with(
    source: &PackSource,
    pack: &NativePack,
    pack_file: &str,
    opts: &PlanOptions,
    extra: Vec<ExtraFile>,
) -> Result<BuildPlan, PlanError> {
    let entries = compile(pack, pack_file)?;
    // Which include patterns matched something, to report patterns that match nothing.
    let mut used: Vec<Vec<bool>> = entries.iter().map(|e| vec![false; e.include.len()]).collect();
    let mut files = Vec::new();
    let mut blobs = BTreeMap::new();
    for (path, src) in &source.files {
        // `.atlas/` holds the repository's Atlas metadata (the keyset chain,
        // `.atlas/keys/`), never pack content.
        if CONFIG_FILES.contains(&path.as_str()) || path.starts_with(".atlas/") {
            continue;
        }
        // The last matching entry decides, so specific entries go after general ones.
        let mut chosen = None;
        for (i, e) in entries.iter().enumerate() {
            let hits: Vec<usize> = e
                .include
                .iter()
                .enumerate()
                .filter(|(_, g)| g.is_match(path))
                .map(|(j, _)| j)
                .collect();
            if !hits.is_empty() && !e.exclude.is_match(path) {
                for j in hits {
                    used[i][j] = true;
                }
                chosen = Some(e.entry);
            }
        }
        let Some(entry) = chosen else { continue };
        atlas_proto::validate_path(path).map_err(|e| PlanError::BadPath {
            path: path.clone(),
            message: e.reason.to_owned(),
        })?;
        let bytes = source.read_content(&src.content)?;
        let digest = Sha256Digest::of(&bytes);
        let size = bytes.len() as u64;
        blobs.entry(digest).or_insert_with(|| BlobSource {
            content: src.content.clone(),
            size,
            path: path.clone(),
        });
        files.push(File {
            path: path.clone(),
            size,
            sha256: digest.0.to_vec(),
            side: entry.side.side() as i32,
            optional: entry.optional,
            default_enabled: !entry.optional || entry.default,
            executable: src.executable,
            preserve: entry.preserve,
            description: entry.description.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    for (i, e) in entries.iter().enumerate() {
        if let Some(j) = used[i].iter().position(|u| !u) {
            return Err(PlanError::NoMatch {
                file: pack_file.to_owned(),
                entry: i,
                pattern: e.entry.include[j].clone(),
            });
        }
    }
    let info = PackInfo {
        id: pack.id.clone(),
        name: pack.name.clone(),
        version: pack.version.clone(),
        minecraft: pack.minecraft.clone(),
        loader: Loader {
            kind: pack.loader.kind.kind() as i32,
            version: pack.loader.version.clone().unwrap_or_default(),
        },
    };
    assemble(source, info, opts, files, blobs, extra)
}

/// Builds the manifest from planned files (plus `extra`) and encodes it.
pub fn assemble(
    source: &PackSource,
    info: PackInfo,
    opts: &PlanOptions,
    mut files: Vec<File>,
    mut blobs: BTreeMap<Sha256Digest, BlobSource>,
    extra: Vec<ExtraFile>,
) -> Result<BuildPlan, PlanError> {
    for e in extra {
        if let Some((digest, blob)) = e.blob {
            blobs.entry(digest).or_insert(blob);
        }
        files.push(e.file);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let commit = &source.commit;
    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        pack_id: info.id,
        name: info.name,
        version: info.version,
        source: Some(BuildSource {
            repository: opts
                .repository_url
                .clone()
                .or_else(|| commit.remote_url.clone())
                .unwrap_or_default(),
            commit: commit.id.clone(),
            commit_time: commit.time,
            dirty: commit.dirty,
            subdirectory: commit.subdirectory.clone(),
        }),
        builder_version: env!("CARGO_PKG_VERSION").to_owned(),
        minecraft_version: info.minecraft,
        loader: Some(info.loader),
        files,
        server: None,
    };
    let manifest_bytes = manifest::encode(&manifest)?;
    let build_id = manifest::build_id(&manifest_bytes);
    Ok(BuildPlan {
        manifest,
        manifest_bytes,
        build_id,
        blobs,
        mods: ModsReport::default(),
    })
}
