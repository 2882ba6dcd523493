//! Reads a pack's files from a git repository: from the HEAD commit with gix
//! (the default, so a build is exactly what was committed), or from the
//! working tree when the creator passes `--allow-dirty`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice as _;

/// Reading the repository failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(
        "{path}: not inside a git repository ({message}); run `git init` and commit the pack, or check --repo"
    )]
    NotARepo { path: PathBuf, message: String },
    #[error(
        "{path}: the repository has no commit yet (HEAD is unborn); commit the pack first, or pass --allow-dirty"
    )]
    NoCommit { path: PathBuf },
    #[error("{path}: is not inside the repository's working tree {workdir}")]
    OutsideWorkdir { path: PathBuf, workdir: PathBuf },
    #[error(
        "{path}: the pack directory `{subdir}` does not exist in commit {commit}; commit it first, or pass --allow-dirty"
    )]
    NoSubdir {
        path: PathBuf,
        subdir: String,
        commit: String,
    },
    #[error("`{path}`: {message}")]
    Unsupported { path: String, message: String },
    #[error(
        "{what}: {size} bytes, more than the {limit} a pack file may hold (atlas_proto::Limits); keep large files out of the pack (a mod: name it in [[mods]] by URL)"
    )]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("git: {0}")]
    Git(String),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::exit::HasExitClass for RepoError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
}

fn git_err(e: impl std::fmt::Display) -> RepoError {
    RepoError::Git(e.to_string())
}

/// The commit a build comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hex commit id ("" for a repository with no commit, built dirty).
    pub id: String,
    /// Committer time, Unix seconds.
    pub time: i64,
    /// `remote.origin.url`, if configured.
    pub remote_url: Option<String>,
    /// True when files come from the working tree.
    pub dirty: bool,
    /// Path of the pack inside the repository, `/`-separated, "" for the root.
    pub subdirectory: String,
}

/// Where a file's bytes are read from.
#[derive(Debug, Clone)]
pub enum Content {
    Git(gix::ObjectId),
    /// A file in the pack directory's working tree (may change under us).
    Disk(PathBuf),
    /// A verified file in the builder's download cache: immutable once
    /// written, so a directory store may hard-link it instead of copying.
    Cached(PathBuf),
}

/// One file of the pack directory.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub executable: bool,
    pub content: Content,
}

/// The files of a pack directory at one commit (or in the working tree).
pub struct PackSource {
    repo: gix::Repository,
    pub commit: CommitInfo,
    /// Files by path relative to the pack directory, `/`-separated.
    pub files: BTreeMap<String, SourceFile>,
    /// Caps on what is read ([`atlas_proto::Limits::repo_file_bytes`]).
    pub limits: atlas_proto::Limits,
}

impl std::fmt::Debug for PackSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackSource")
            .field("commit", &self.commit)
            .field("files", &self.files.len())
            .finish()
    }
}

impl PackSource {
    /// Opens the repository containing `pack_dir` and lists the pack's files.
    pub fn open(pack_dir: &Path, allow_dirty: bool) -> Result<Self, RepoError> {
        let repo = gix::discover(pack_dir).map_err(|e| RepoError::NotARepo {
            path: pack_dir.to_owned(),
            message: e.to_string(),
        })?;
        let workdir = repo.workdir().ok_or_else(|| {
            RepoError::Git(format!(
                "{}: bare repositories are not supported",
                pack_dir.display()
            ))
        })?;
        let canon = |p: &Path| {
            p.canonicalize().map_err(|source| RepoError::Io {
                path: p.to_owned(),
                source,
            })
        };
        let (abs_pack, abs_work) = (canon(pack_dir)?, canon(workdir)?);
        let rel = abs_pack
            .strip_prefix(&abs_work)
            .map_err(|_| RepoError::OutsideWorkdir {
                path: pack_dir.to_owned(),
                workdir: abs_work.clone(),
            })?;
        let subdirectory = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let remote_url = repo
            .config_snapshot()
            .string("remote.origin.url")
            .map(|u| u.to_str_lossy().into_owned());
        let (commit, files) = {
            let head = repo.head_commit().ok();
            let (id, time) = match &head {
                Some(c) => (c.id.to_hex().to_string(), c.time().map_err(git_err)?.seconds),
                None if allow_dirty => (String::new(), 0),
                None => {
                    return Err(RepoError::NoCommit {
                        path: pack_dir.to_owned(),
                    });
                }
            };
            let commit = CommitInfo {
                id,
                time,
                remote_url,
                dirty: allow_dirty,
                subdirectory,
            };
            let files = match &head {
                _ if allow_dirty => list_worktree(&abs_pack)?,
                Some(head) => list_commit(head, &commit, pack_dir)?,
                None => {
                    return Err(RepoError::NoCommit {
                        path: pack_dir.to_owned(),
                    });
                }
            };
            (commit, files)
        };
        Ok(Self {
            repo,
            commit,
            files,
            limits: atlas_proto::Limits::DEFAULT,
        })
    }

    /// Reads a file of the pack whole (repository files are small: configs,
    /// scripts, the odd jar; mods from the web are streamed elsewhere).
    /// What differs between the commit the pack was read from and the pack
    /// directory's working tree: `modified X`, `new X` (not committed, not
    /// ignored), `deleted X`, sorted by path. Empty when the source is the
    /// working tree itself (`--allow-dirty`). A file too large to compare is
    /// taken as modified.
    pub fn worktree_changes(&self) -> Result<Vec<String>, RepoError> {
        if self.commit.dirty {
            return Ok(Vec::new());
        }
        let Some(workdir) = self.repo.workdir() else {
            return Ok(Vec::new());
        };
        let root = match self.commit.subdirectory.as_str() {
            "" => workdir.to_owned(),
            sub => workdir.join(sub),
        };
        let disk = list_worktree(&root)?;
        let mut changes = Vec::new();
        for (path, file) in &disk {
            match self.files.get(path) {
                None => changes.push((path.clone(), "new")),
                Some(committed) => {
                    let same = match (
                        self.read_content(&committed.content),
                        self.read_content(&file.content),
                    ) {
                        (Ok(a), Ok(b)) => a == b,
                        _ => false,
                    };
                    if !same {
                        changes.push((path.clone(), "modified"));
                    }
                }
            }
        }
        for path in self.files.keys().filter(|p| !disk.contains_key(*p)) {
            changes.push((path.clone(), "deleted"));
        }
        changes.sort();
        Ok(changes.into_iter().map(|(p, how)| format!("{how} {p}")).collect())
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>, RepoError> {
        let file = self.files.get(path).ok_or_else(|| RepoError::Unsupported {
            path: path.to_owned(),
            message: "not in the pack".into(),
        })?;
        self.read_content(&file.content).map_err(|e| match e {
            RepoError::TooLarge { size, limit, .. } => RepoError::TooLarge {
                what: format!("`{path}`"),
                size,
                limit,
            },
            e => e,
        })
    }

    /// Reads a file's bytes whole, refusing one larger than
    /// [`atlas_proto::Limits::repo_file_bytes`] before reading it.
    pub fn read_content(&self, content: &Content) -> Result<Vec<u8>, RepoError> {
        let limit = self.limits.repo_file_bytes;
        match content {
            Content::Git(oid) => {
                let size = self.repo.find_header(*oid).map_err(git_err)?.size();
                if size > limit {
                    return Err(RepoError::TooLarge {
                        what: format!("git blob {oid}"),
                        size,
                        limit,
                    });
                }
                let blob = self.repo.find_blob(*oid).map_err(git_err)?;
                Ok(blob.detach().data)
            }
            Content::Disk(p) | Content::Cached(p) => {
                let io = |source| RepoError::Io {
                    path: p.clone(),
                    source,
                };
                let file = std::fs::File::open(p).map_err(io)?;
                let size = file.metadata().map_err(io)?.len();
                if size > limit {
                    return Err(RepoError::TooLarge {
                        what: p.display().to_string(),
                        size,
                        limit,
                    });
                }
                let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                // The cap holds even if the file grows while it is read.
                std::io::Read::read_to_end(&mut std::io::Read::take(file, limit + 1), &mut bytes)
                    .map_err(io)?;
                if bytes.len() as u64 > limit {
                    return Err(RepoError::TooLarge {
                        what: p.display().to_string(),
                        size: bytes.len() as u64,
                        limit,
                    });
                }
                Ok(bytes)
            }
        }
    }
}

fn list_commit(
    head: &gix::Commit<'_>,
    commit: &CommitInfo,
    pack_dir: &Path,
) -> Result<BTreeMap<String, SourceFile>, RepoError> {
    let mut tree = head.tree().map_err(git_err)?;
    if !commit.subdirectory.is_empty() {
        let entry = tree
            .lookup_entry_by_path(&commit.subdirectory)
            .map_err(git_err)?
            .filter(|e| e.mode().is_tree())
            .ok_or_else(|| RepoError::NoSubdir {
                path: pack_dir.to_owned(),
                subdir: commit.subdirectory.clone(),
                commit: commit.id.clone(),
            })?;
        tree = entry.object().map_err(git_err)?.into_tree();
    }
    let mut files = BTreeMap::new();
    for entry in tree.traverse().breadthfirst.files().map_err(git_err)? {
        let path = entry.filepath.to_str_lossy().into_owned();
        let mode = entry.mode;
        if mode.is_tree() {
            continue;
        }
        if mode.is_commit() {
            return Err(RepoError::Unsupported {
                path,
                message:
                    "is a git submodule; Atlas packs cannot contain submodules (vendor the files instead)"
                        .into(),
            });
        }
        if mode.is_link() {
            return Err(RepoError::Unsupported {
                path,
                message: "is a symbolic link; packs must contain regular files".into(),
            });
        }
        files.insert(
            path,
            SourceFile {
                executable: mode.is_executable(),
                content: Content::Git(entry.oid),
            },
        );
    }
    Ok(files)
}

fn list_worktree(root: &Path) -> Result<BTreeMap<String, SourceFile>, RepoError> {
    let mut files = BTreeMap::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .parents(true)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = entry.map_err(git_err)?;
        let Some(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .map_err(git_err)?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if ft.is_symlink() {
            return Err(RepoError::Unsupported {
                path: rel,
                message: "is a symbolic link; packs must contain regular files".into(),
            });
        }
        let meta = entry.metadata().map_err(git_err)?;
        files.insert(
            rel,
            SourceFile {
                executable: is_executable(&meta),
                content: Content::Disk(entry.path().to_owned()),
            },
        );
    }
    Ok(files)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_testkit::git::GitRepo;

    #[test]
    fn files_above_the_cap_are_refused_by_name_before_they_are_read() {
        let repo = GitRepo::init().expect("git init");
        repo.write("small.txt", "0123456789").expect("write");
        repo.write("config/big.bin", vec![7u8; 100]).expect("write");
        repo.commit_all("files").expect("commit");
        for dirty in [false, true] {
            let mut source = PackSource::open(repo.path(), dirty).expect("open");
            source.limits.repo_file_bytes = 10;
            assert_eq!(source.read("small.txt").expect("at the cap"), b"0123456789");
            let msg = source.read("config/big.bin").expect_err("too large").to_string();
            assert!(
                msg.starts_with("`config/big.bin`: 100 bytes, more than the 10"),
                "{msg}"
            );
        }
    }
}
