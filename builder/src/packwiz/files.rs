//! [`PackFiles`]: the files of a pack directory, whether from a git commit
//! ([`PackSource`]) or a plain directory on disk ([`DirFiles`]), and the
//! path arithmetic packwiz uses to resolve one file relative to another.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::repo::PackSource;

/// Read access to the files of a pack directory. Paths are relative to the
/// pack directory and `/`-separated.
pub trait PackFiles {
    /// The bytes of `path`, or `None` when the pack has no such file.
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// Every file path, sorted.
    fn list(&self) -> Vec<String>;
}

impl PackFiles for PackSource {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match self.files.get(path) {
            None => Ok(None),
            Some(f) => self.read_content(&f.content).map(Some).map_err(io::Error::other),
        }
    }

    fn list(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}

/// The files under a directory on disk (not necessarily a git repository):
/// every regular file except those inside `.git/`. Symbolic links are skipped.
#[derive(Debug, Clone)]
pub struct DirFiles {
    root: PathBuf,
    files: BTreeMap<String, PathBuf>,
}

impl DirFiles {
    /// Lists the files under `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        let mut files = BTreeMap::new();
        let mut stack = vec![(root.to_owned(), String::new())];
        if !std::fs::metadata(root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        while let Some((dir, rel)) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let ft = entry.file_type()?;
                let path = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                if ft.is_dir() {
                    if name != ".git" {
                        stack.push((entry.path(), path));
                    }
                } else if ft.is_file() {
                    files.insert(path, entry.path());
                }
            }
        }
        Ok(Self {
            root: root.to_owned(),
            files,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl PackFiles for DirFiles {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match self.files.get(path) {
            None => Ok(None),
            Some(p) => std::fs::read(p).map(Some),
        }
    }

    fn list(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}

/// The directory part of a pack path ("" at the root).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Resolves `rel` (a packwiz path, `/`-separated) against the directory
/// `base`, folding `.` and `..`; refuses paths that are absolute or climb
/// out of the pack directory.
pub(crate) fn join(base: &str, rel: &str) -> Result<String, &'static str> {
    if rel.starts_with('/') {
        return Err("is an absolute path; packwiz paths are relative");
    }
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for segment in rel.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("climbs out of the pack directory with `..`");
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err("names no file");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_packwiz() {
        assert_eq!(join("", "mods/a.pw.toml"), Ok("mods/a.pw.toml".into()));
        assert_eq!(
            join("sub", "./mods/../config/x y.json"),
            Ok("sub/config/x y.json".into())
        );
        assert_eq!(join("mods", "a%20b.jar"), Ok("mods/a%20b.jar".into()));
        assert!(join("", "../x").is_err());
        assert!(join("", "/etc/passwd").is_err());
        assert!(join("", "").is_err());
        assert_eq!(parent("mods/a.pw.toml"), "mods");
        assert_eq!(parent("index.toml"), "");
    }

    #[test]
    fn lists_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("mods/x y")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir");
        std::fs::write(dir.path().join("mods/x y/a.txt"), b"hi").expect("write");
        std::fs::write(dir.path().join(".git/HEAD"), b"ref").expect("write");
        std::fs::write(dir.path().join("pack.toml"), b"").expect("write");
        let files = DirFiles::open(dir.path()).expect("open");
        assert_eq!(files.list(), ["mods/x y/a.txt", "pack.toml"]);
        assert_eq!(files.read("mods/x y/a.txt").expect("read"), Some(b"hi".to_vec()));
        assert_eq!(files.read("missing").expect("read"), None);
        assert_eq!(files.read(".git/HEAD").expect("read"), None);
    }
}
