//! Placing verified files in the target directory: path joining that refuses
//! unsafe manifest paths, conflict checks before anything is downloaded, and
//! the copy and mode helpers the journal's apply uses. Files the pack never
//! managed are never touched.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::error::SyncError;
use crate::plan::Plan;
use atlas_proto::IoError;

/// Joins a manifest path onto the target directory, refusing anything
/// `validate_path` refuses (defence in depth: manifests are validated on
/// decode) and any path with a symbolic link among its directories inside
/// `dir`: writing through one (say `mods` -> `/etc`) could land outside the
/// directory. The last component may be a link: renames replace the link
/// itself, never its target.
pub fn safe_dest(dir: &Path, rel: &str) -> Result<PathBuf, SyncError> {
    SafeDests::new(dir).get(rel)
}

/// [`safe_dest`] for many paths under one directory: each ancestor directory
/// is checked once (an apply of thousands of files shares a few dozen).
#[derive(Debug)]
pub struct SafeDests<'a> {
    dir: &'a Path,
    checked: HashSet<PathBuf>,
}

impl<'a> SafeDests<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            checked: HashSet::new(),
        }
    }

    /// See [`safe_dest`].
    pub fn get(&mut self, rel: &str) -> Result<PathBuf, SyncError> {
        atlas_proto::validate_path(rel)?;
        let mut p = self.dir.to_path_buf();
        let mut segments = rel.split('/').peekable();
        while let Some(segment) = segments.next() {
            p.push(segment);
            if segments.peek().is_none() || self.checked.contains(&p) {
                continue;
            }
            if let Ok(m) = std::fs::symlink_metadata(&p)
                && m.file_type().is_symlink()
            {
                let target = std::fs::read_link(&p).map_or_else(|_| "?".into(), |t| t.display().to_string());
                let link = p.strip_prefix(self.dir).unwrap_or(&p).display().to_string();
                return Err(SyncError::Conflict {
                    path: rel.to_owned(),
                    reason: format!(
                        "`{link}` is a symbolic link (to {target}); Atlas never writes through links, \
                         which could lead outside the directory: replace it with a real directory"
                    ),
                });
            }
            self.checked.insert(p.clone());
        }
        Ok(p)
    }
}

/// Checks, before any download, that every file to write can be written:
/// no ancestor of its path is an existing non-directory the plan does not remove.
pub fn preflight(dir: &Path, plan: &Plan) -> Result<(), SyncError> {
    let removed: BTreeSet<&str> = plan.remove.iter().map(String::as_str).collect();
    let mut checked = BTreeSet::new();
    let mut dests = SafeDests::new(dir);
    for f in plan.files.iter().filter(|f| f.needs_download()) {
        dests.get(&f.path)?;
        for (i, _) in f.path.match_indices('/') {
            let ancestor = &f.path[..i];
            if !checked.insert(ancestor) || removed.contains(ancestor) {
                continue;
            }
            let p = dests.get(ancestor)?;
            if let Ok(m) = std::fs::metadata(&p)
                && !m.is_dir()
            {
                return Err(SyncError::Conflict {
                    path: f.path.clone(),
                    reason: format!("`{ancestor}` exists and is not a directory; move it aside"),
                });
            }
        }
    }
    Ok(())
}

/// Copies `from` into a temporary file in `tmp_dir` (which must be on the
/// same filesystem as `dest`: the staging directory), fsyncs it, then renames
/// it over `dest`. A process killed mid-copy leaves its partial file in
/// `tmp_dir`, which is cleared with staging, never beside `dest` among the
/// user's files.
pub(crate) fn copy_into_place(
    from: &Path,
    dest: &Path,
    executable: bool,
    tmp_dir: &Path,
) -> Result<(), SyncError> {
    let tmp = tempfile::Builder::new()
        .prefix(".atlas-tmp-")
        .tempfile_in(tmp_dir)
        .map_err(IoError::at("creating a temporary file in", tmp_dir))?;
    let mut src = std::fs::File::open(from).map_err(IoError::at("opening staged file", from))?;
    std::io::copy(&mut src, &mut tmp.as_file()).map_err(IoError::at("copying into", tmp.path()))?;
    // Every placement of a blob gets the staged file's mtime (a rename keeps
    // it), so `install.json` can record it before the apply starts.
    if let Ok(t) = src.metadata().and_then(|m| m.modified()) {
        tmp.as_file()
            .set_modified(t)
            .map_err(IoError::at("setting the modification time of", tmp.path()))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(IoError::at("syncing", tmp.path()))?;
    set_mode(tmp.path(), executable)?;
    tmp.persist(dest)
        .map_err(|e| IoError::at("moving a file into place at", dest)(e.error))?;
    Ok(())
}

/// 0755 for executables, 0644 otherwise (unix; no-op elsewhere).
pub(crate) fn set_mode(path: &Path, executable: bool) -> Result<(), SyncError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(IoError::at("setting permissions of", path))?;
    }
    #[cfg(not(unix))]
    let _ = (path, executable);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FileAction, PlannedFile};
    use atlas_proto::Sha256Digest;

    fn planned(path: &str, content: &[u8], executable: bool) -> PlannedFile {
        PlannedFile {
            path: path.into(),
            sha256: Sha256Digest::of(content),
            size: content.len() as u64,
            executable,
            preserve: false,
            action: FileAction::Add,
            upstreams: vec![],
            upstream_only: false,
            modified: false,
            backup: false,
            mtime_ns: None,
            previous: None,
        }
    }

    #[test]
    fn safe_dest_refuses_escapes() {
        let d = Path::new("/srv/mc");
        assert_eq!(
            safe_dest(d, "mods/a.jar").expect("ok"),
            Path::new("/srv/mc/mods/a.jar")
        );
        for bad in [
            "../x",
            "/abs",
            "C:\\x",
            "a/../../b",
            "a\\..\\b",
            "",
            ".atlas/trust.json",
        ] {
            assert!(safe_dest(d, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copies_through_the_temp_dir_with_mode_and_mtime() {
        let root = tempfile::tempdir().expect("tmp");
        let dir = root.path().join("inst");
        let staging = root.path().join("staging");
        std::fs::create_dir_all(&staging).expect("mkdir");
        std::fs::create_dir_all(dir.join("a")).expect("mkdir");
        let blob = staging.join("b");
        std::fs::write(&blob, b"same").expect("write");
        let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(&blob)
            .and_then(|f| f.set_modified(when))
            .expect("mtime");
        std::fs::write(dir.join("a/x"), b"old").expect("write");

        copy_into_place(&blob, &dir.join("a/x"), true, &staging).expect("copy");
        assert_eq!(std::fs::read(dir.join("a/x")).expect("a/x"), b"same");
        assert!(
            blob.exists(),
            "a copy leaves the staged blob for the next placement"
        );
        let beside: Vec<_> = std::fs::read_dir(dir.join("a")).expect("ls").collect();
        assert_eq!(
            beside.len(),
            1,
            "no temporary file is ever created beside the destination"
        );
        let meta = std::fs::metadata(dir.join("a/x")).expect("meta");
        assert_eq!(meta.modified().expect("mtime"), when);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        }
    }

    #[test]
    fn preflight_finds_a_file_in_the_way() {
        let root = tempfile::tempdir().expect("tmp");
        std::fs::write(root.path().join("mods"), b"not a dir").expect("write");
        let plan = Plan {
            files: vec![planned("mods/a.jar", b"x", false)],
            remove: vec![],
            dropped_modified: vec![],
        };
        let err = preflight(root.path(), &plan).expect_err("conflict");
        assert!(
            err.to_string().contains("`mods` exists and is not a directory"),
            "{err}"
        );
        let plan = Plan {
            remove: vec!["mods".into()],
            ..plan
        };
        preflight(root.path(), &plan).expect("removed first, so fine");
    }
}
