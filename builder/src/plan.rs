//! The build plan: which files become which manifest entries, their content
//! addresses, and the encoded manifest with its build id. Every pack format
//! ([`crate::build`]) produces [`PlannedFile`]s and hands them to
//! [`assemble`]. Planning reads the repository but writes nothing, so
//! `--dry-run` and tests can inspect a build before anything is uploaded.

use std::collections::BTreeMap;

use serde::Serialize;

use atlas_proto::v1::{BuildSource, File, Loader, Manifest, Side};
use atlas_proto::{Limits, Sha256Digest, manifest};

use crate::pack::PackError;
use crate::repo::{Content, PackSource, RepoError};

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
    #[error("the manifest is invalid")]
    Manifest(#[from] manifest::ManifestError),
    #[error(
        "the manifest would hold {what}, more than the {limit} hosts accept (atlas_proto::Limits); install fewer files"
    )]
    ManifestTooLarge { what: String, limit: String },
}

impl crate::exit::HasExitClass for PlanError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
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

/// Options that are not part of the pack itself.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Repository URL recorded in the manifest (default: `remote.origin.url`).
    pub repository_url: Option<String>,
    /// The server's launch settings (`atlas.toml [server]`), recorded in the
    /// manifest for the runner; set by [`crate::build::plan_pack`].
    pub server: Option<atlas_proto::v1::ServerLaunch>,
}

/// One manifest entry and, unless the file is upstream-only, its blob.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub file: File,
    pub blob: Option<(Sha256Digest, BlobSource)>,
}

impl PlannedFile {
    /// File `path` of the pack repository, installed at `dest`: `dest` is
    /// checked with the manifest's path rules, the bytes are read and
    /// addressed, and the entry gets the path, size, SHA-256 and executable
    /// bit (side `both`, enabled by default); callers set the rest.
    pub fn from_repo(source: &PackSource, path: &str, dest: &str) -> Result<Self, PlanError> {
        let src = source.files.get(path).ok_or_else(|| RepoError::Unsupported {
            path: path.to_owned(),
            message: "not in the pack".into(),
        })?;
        atlas_proto::validate_path(dest).map_err(|e| PlanError::BadPath {
            path: dest.to_owned(),
            message: e.reason.to_owned(),
        })?;
        let bytes = source.read(path)?;
        let sha256 = Sha256Digest::of(&bytes);
        let size = bytes.len() as u64;
        Ok(Self {
            file: File {
                path: dest.to_owned(),
                size,
                sha256: sha256.0.to_vec(),
                side: Side::Both as i32,
                default_enabled: true,
                executable: src.executable,
                ..Default::default()
            },
            blob: Some((
                sha256,
                BlobSource {
                    content: src.content.clone(),
                    size,
                    path: dest.to_owned(),
                },
            )),
        })
    }
}

/// Pack identity and versions, as the manifest records them.
#[derive(Debug, Clone)]
pub struct PackInfo {
    pub id: String,
    pub name: String,
    pub version: String,
    pub minecraft: String,
    pub loader: Loader,
    /// The creator's description (plain text; empty when none).
    pub description: String,
    /// The pack's author(s) (plain text; empty when none).
    pub author: String,
}

/// A pack id from a pack's name (packwiz, `.mrpack`): lowercase, other
/// characters as `-`.
pub fn pack_id_from_name(name: &str) -> String {
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

/// Builds the manifest from planned files and encodes it. When two files
/// have the same bytes, the first one's blob source is kept.
pub fn assemble(
    source: &PackSource,
    info: PackInfo,
    opts: &PlanOptions,
    planned: Vec<PlannedFile>,
) -> Result<BuildPlan, PlanError> {
    let (manifest, blobs) = assemble_manifest(source, info, opts, planned);
    let manifest_bytes = encode_manifest(&manifest, &Limits::DEFAULT)?;
    let build_id = manifest::build_id(&manifest_bytes);
    Ok(BuildPlan {
        manifest,
        manifest_bytes,
        build_id,
        blobs,
    })
}

/// The manifest of planned files (sorted by path) and the distinct blobs it
/// references, not yet encoded.
pub fn assemble_manifest(
    source: &PackSource,
    info: PackInfo,
    opts: &PlanOptions,
    planned: Vec<PlannedFile>,
) -> (Manifest, BTreeMap<Sha256Digest, BlobSource>) {
    let mut files = Vec::with_capacity(planned.len());
    let mut blobs = BTreeMap::new();
    for p in planned {
        if let Some((digest, blob)) = p.blob {
            blobs.entry(digest).or_insert(blob);
        }
        files.push(p.file);
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
        description: info.description,
        author: info.author,
        server: opts.server.clone(),
    };
    (manifest, blobs)
}

/// Encodes `manifest`, refusing one that a host reading under `limits`
/// would refuse: too many files, too many bytes decoded, or too many
/// stored. The builder writes only what the fetcher reads.
pub fn encode_manifest(manifest: &Manifest, limits: &Limits) -> Result<Vec<u8>, PlanError> {
    check_counts(manifest, limits)?;
    let bytes = manifest::encode(manifest)?;
    check_stored(bytes.len(), limits)?;
    Ok(bytes)
}

/// What [`encode_manifest`] refuses, decided without compressing when it
/// can be (for `check`): a manifest whose compressed size cannot exceed the
/// stored-size cap (zstd's bound on its protobuf size) is only validated;
/// otherwise it is encoded to learn its size. Zstd at the build id's fixed
/// level is most of what planning a big pack costs (docs/BENCHMARKS.md).
pub fn check_manifest(manifest: &Manifest, limits: &Limits) -> Result<(), PlanError> {
    let encoded = check_counts(manifest, limits)?;
    let bound = manifest::stored_len_bound(usize::try_from(encoded).unwrap_or(usize::MAX));
    if bound as u64 <= limits.manifest_stored_bytes {
        let mut sorted = manifest.clone();
        sorted.files.sort_by(|a, b| a.path.cmp(&b.path));
        manifest::validate(&sorted)?;
        return Ok(());
    }
    check_stored(manifest::encode(manifest)?.len(), limits)
}

/// The file-count and decoded-size caps; returns the protobuf size.
fn check_counts(manifest: &Manifest, limits: &Limits) -> Result<u64, PlanError> {
    let caps = &limits.manifest;
    if manifest.files.len() > caps.max_files {
        return Err(too_large(
            format!("{} files", manifest.files.len()),
            format!("{} files", caps.max_files),
        ));
    }
    let decoded = prost::Message::encoded_len(manifest) as u64;
    if decoded > caps.max_decoded_bytes {
        return Err(too_large(
            format!("{decoded} bytes decoded"),
            format!("{} bytes", caps.max_decoded_bytes),
        ));
    }
    Ok(decoded)
}

fn check_stored(len: usize, limits: &Limits) -> Result<(), PlanError> {
    if len as u64 > limits.manifest_stored_bytes {
        return Err(too_large(
            format!("{len} bytes compressed"),
            format!("{} bytes", limits.manifest_stored_bytes),
        ));
    }
    Ok(())
}

fn too_large(what: String, limit: String) -> PlanError {
    PlanError::ManifestTooLarge { what, limit }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: usize) -> Manifest {
        Manifest {
            format_version: manifest::FORMAT_VERSION,
            pack_id: "p".into(),
            name: "P".into(),
            version: "1".into(),
            minecraft_version: "1.21.1".into(),
            files: (0..files)
                .map(|i| File {
                    path: format!("config/{i:05}.toml"),
                    size: 1,
                    sha256: Sha256Digest::of(&i.to_le_bytes()).0.to_vec(),
                    side: Side::Both as i32,
                    default_enabled: true,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn pack_ids_from_names_are_valid() {
        assert_eq!(pack_id_from_name("All The Mods 9"), "all-the-mods-9");
        assert_eq!(
            pack_id_from_name("  Fabulously Optimized!  "),
            "fabulously-optimized"
        );
        assert_eq!(pack_id_from_name("???"), "pack");
        for name in ["Ünïcode Pack", "a/b\\c", "x.y_z"] {
            let s = pack_id_from_name(name);
            assert!(atlas_proto::layout::validate_pack_id(&s).is_ok(), "{s}");
        }
    }

    #[test]
    fn the_encoder_refuses_a_manifest_above_each_cap_a_host_reads_with() {
        let m = manifest(300);
        let bytes = encode_manifest(&m, &Limits::DEFAULT).expect("within the default caps");
        // What the builder writes, the fetcher's decoder reads.
        manifest::decode(&bytes, &Limits::DEFAULT.manifest).expect("decodes");

        let mut few = Limits::DEFAULT;
        few.manifest.max_files = 299;
        let msg = encode_manifest(&m, &few).expect_err("files").to_string();
        assert!(msg.contains("300 files") && msg.contains("299 files"), "{msg}");

        let mut small = Limits::DEFAULT;
        small.manifest.max_decoded_bytes = 1000;
        let msg = encode_manifest(&m, &small).expect_err("decoded").to_string();
        assert!(
            msg.contains("bytes decoded") && msg.contains("1000 bytes"),
            "{msg}"
        );

        let mut stored = Limits::DEFAULT;
        stored.manifest_stored_bytes = bytes.len() as u64 - 1;
        let msg = encode_manifest(&m, &stored).expect_err("stored").to_string();
        assert!(msg.contains("bytes compressed"), "{msg}");
        stored.manifest_stored_bytes = bytes.len() as u64;
        assert_eq!(encode_manifest(&m, &stored).expect("at the cap"), bytes);
    }

    #[test]
    fn check_refuses_exactly_what_the_encoder_refuses() {
        let m = manifest(300);
        let bytes = encode_manifest(&m, &Limits::DEFAULT).expect("within the default caps");
        check_manifest(&m, &Limits::DEFAULT).expect("within the default caps");

        let mut few = Limits::DEFAULT;
        few.manifest.max_files = 299;
        check_manifest(&m, &few).expect_err("files");
        let mut small = Limits::DEFAULT;
        small.manifest.max_decoded_bytes = 1000;
        check_manifest(&m, &small).expect_err("decoded");

        // A stored cap below zstd's bound: compressed to learn the size.
        let mut stored = Limits::DEFAULT;
        stored.manifest_stored_bytes = bytes.len() as u64 - 1;
        let msg = check_manifest(&m, &stored).expect_err("stored").to_string();
        assert!(msg.contains("bytes compressed"), "{msg}");
        stored.manifest_stored_bytes = bytes.len() as u64;
        check_manifest(&m, &stored).expect("at the cap");

        // Structural checks still run when nothing is compressed.
        let mut twice = m.clone();
        twice.files.push(twice.files[0].clone());
        let msg = crate::exit::chain(&check_manifest(&twice, &Limits::DEFAULT).expect_err("twice"));
        assert!(msg.contains("listed twice"), "{msg}");
        encode_manifest(&twice, &Limits::DEFAULT).expect_err("twice");
    }
}
