//! Applying a verified plan to the target directory: conflict checks before
//! anything is downloaded, then (once every blob is staged and verified)
//! removals, atomic renames into place, modes, and pruning of directories the
//! old build left empty. Files the pack never managed are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use atlas_proto::Sha256Digest;

use crate::SyncError;
use crate::plan::{Plan, PlannedFile};

/// Joins a manifest path onto the target directory, refusing anything
/// `validate_path` refuses (defence in depth: manifests are validated on decode).
pub fn safe_dest(dir: &Path, rel: &str) -> Result<PathBuf, SyncError> {
    atlas_proto::validate_path(rel)?;
    let mut p = dir.to_path_buf();
    for segment in rel.split('/') {
        p.push(segment);
    }
    Ok(p)
}

/// Checks, before any download, that every file to write can be written:
/// no ancestor of its path is an existing non-directory the plan does not remove.
pub fn preflight(dir: &Path, plan: &Plan) -> Result<(), SyncError> {
    let removed: BTreeSet<&str> = plan.remove.iter().map(String::as_str).collect();
    let mut checked = BTreeSet::new();
    for f in plan.files.iter().filter(|f| f.needs_download()) {
        safe_dest(dir, &f.path)?;
        for (i, _) in f.path.match_indices('/') {
            let ancestor = &f.path[..i];
            if !checked.insert(ancestor) || removed.contains(ancestor) {
                continue;
            }
            let p = safe_dest(dir, ancestor)?;
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

/// Applies the plan. `staged` maps each needed blob to its verified staging file.
pub fn apply(dir: &Path, plan: &Plan, staged: &BTreeMap<Sha256Digest, PathBuf>) -> Result<(), SyncError> {
    let mut touched_dirs = BTreeSet::new();
    // Removals first, so a file can become a directory (or the reverse).
    let mut emptied = BTreeSet::new();
    for rel in &plan.remove {
        let p = safe_dest(dir, rel)?;
        match std::fs::remove_file(&p) {
            Ok(()) => tracing::debug!(path = %rel, "removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SyncError::io("removing", p)(e)),
        }
        for (i, _) in rel.match_indices('/') {
            emptied.insert(rel[..i].to_owned());
        }
    }
    // Deepest first; stops being useful at the first non-empty directory.
    let mut emptied: Vec<String> = emptied.into_iter().collect();
    emptied.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for rel in emptied {
        let p = safe_dest(dir, &rel)?;
        if std::fs::remove_dir(&p).is_ok() {
            tracing::debug!(path = %rel, "removed empty directory");
        }
    }

    // Group the files to write by blob: copies for all but the last, then a rename.
    let mut by_blob: BTreeMap<Sha256Digest, Vec<&PlannedFile>> = BTreeMap::new();
    for f in plan.files.iter().filter(|f| f.needs_download()) {
        by_blob.entry(f.sha256).or_default().push(f);
    }
    for (digest, files) in by_blob {
        let blob = staged.get(&digest).ok_or_else(|| {
            SyncError::Internal(format!(
                "blob {digest} was not staged (needed by {})",
                files[0].path
            ))
        })?;
        let Some((last, copies)) = files.split_last() else {
            continue;
        };
        for f in copies {
            let dest = prepare(dir, f, &mut touched_dirs)?;
            copy_into_place(blob, &dest, f.executable)?;
        }
        let dest = prepare(dir, last, &mut touched_dirs)?;
        set_mode(blob, last.executable)?;
        match std::fs::rename(blob, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                copy_into_place(blob, &dest, last.executable)?;
            }
            Err(e) => return Err(SyncError::io("moving a downloaded file into place at", dest)(e)),
        }
        tracing::debug!(path = %last.path, "installed");
    }
    for d in touched_dirs {
        crate::state::sync_dir(&d);
    }
    Ok(())
}

/// Creates the parent directories of a destination and returns its path.
fn prepare(dir: &Path, f: &PlannedFile, touched: &mut BTreeSet<PathBuf>) -> Result<PathBuf, SyncError> {
    let dest = safe_dest(dir, &f.path)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(SyncError::io("creating directory", parent))?;
        touched.insert(parent.to_owned());
    }
    Ok(dest)
}

/// Copies `from` into a temporary file beside `dest`, fsyncs it, then renames it over `dest`.
pub(crate) fn copy_into_place(from: &Path, dest: &Path, executable: bool) -> Result<(), SyncError> {
    let parent = dest
        .parent()
        .ok_or_else(|| SyncError::Internal(format!("{} has no parent", dest.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".atlas-tmp-")
        .tempfile_in(parent)
        .map_err(SyncError::io("creating a temporary file in", parent))?;
    let mut src = std::fs::File::open(from).map_err(SyncError::io("opening staged file", from))?;
    std::io::copy(&mut src, &mut tmp.as_file()).map_err(SyncError::io("copying into", tmp.path()))?;
    // Every placement of a blob gets the staged file's mtime (a rename keeps
    // it), so `install.json` can record it before the apply starts.
    if let Ok(t) = src.metadata().and_then(|m| m.modified()) {
        tmp.as_file()
            .set_modified(t)
            .map_err(SyncError::io("setting the modification time of", tmp.path()))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(SyncError::io("syncing", tmp.path()))?;
    set_mode(tmp.path(), executable)?;
    tmp.persist(dest)
        .map_err(|e| SyncError::io("moving a file into place at", dest)(e.error))?;
    Ok(())
}

/// 0755 for executables, 0644 otherwise (unix; no-op elsewhere).
pub(crate) fn set_mode(path: &Path, executable: bool) -> Result<(), SyncError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(SyncError::io("setting permissions of", path))?;
    }
    #[cfg(not(unix))]
    let _ = (path, executable);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FileAction;

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
    fn applies_copies_renames_modes_and_prunes() {
        let root = tempfile::tempdir().expect("tmp");
        let dir = root.path().join("inst");
        let staging = root.path().join("staging");
        std::fs::create_dir_all(&staging).expect("mkdir");
        std::fs::create_dir_all(dir.join("old/deep")).expect("mkdir");
        std::fs::write(dir.join("old/deep/gone.txt"), b"g").expect("write");
        std::fs::write(dir.join("user.txt"), b"mine").expect("write");
        let blob = staging.join("b");
        std::fs::write(&blob, b"same").expect("write");
        let plan = Plan {
            files: vec![planned("a/x", b"same", true), planned("b/y", b"same", false)],
            remove: vec!["old/deep/gone.txt".into()],
            dropped_modified: vec![],
        };
        preflight(&dir, &plan).expect("preflight");
        let staged = BTreeMap::from([(Sha256Digest::of(b"same"), blob.clone())]);
        apply(&dir, &plan, &staged).expect("apply");
        assert_eq!(std::fs::read(dir.join("a/x")).expect("a/x"), b"same");
        assert_eq!(std::fs::read(dir.join("b/y")).expect("b/y"), b"same");
        assert!(!dir.join("old").exists(), "emptied directories are pruned");
        assert!(dir.join("user.txt").exists());
        assert!(!blob.exists(), "the staged blob was moved");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &str| std::fs::metadata(dir.join(p)).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode("a/x"), 0o755);
            assert_eq!(mode("b/y"), 0o644);
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
