//! Placing verified files in the target directory: the directory tree
//! reached through handles ([`Tree`]: unsafe manifest paths and links
//! refused), conflict checks before anything is downloaded, and the copy and
//! mode helpers the journal's apply uses. Files the pack never managed are
//! never touched.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::SyncError;
use crate::plan::Plan;
use crate::safe_dir::{SafeDir, split};
use atlas_proto::IoError;

/// Directory handles kept open by a [`Tree`] at most: a pack with
/// thousands of directories must not run out of file descriptors.
const TREE_HANDLES: usize = 256;

/// The install directory's tree as the apply reaches it: every directory
/// on a file's path opened one name at a time from the install directory's
/// handle, never following a link ([`crate::safe_dir`]), so a directory
/// swapped for a link (say `mods` -> `/etc`), before or during the run,
/// cannot redirect a write. Paths are checked with `validate_path` first
/// (defence in depth: manifests and journals are validated when read). The
/// last component of a file's path may be a link: renames and removals
/// replace the link itself, never its target. Handles are cached (at most
/// [`TREE_HANDLES`]), so an apply of thousands of files opens each
/// directory about once.
#[derive(Debug)]
pub(crate) struct Tree<'a> {
    root: &'a SafeDir,
    dirs: Mutex<HashMap<String, Arc<SafeDir>>>,
}

impl<'a> Tree<'a> {
    pub(crate) fn new(root: &'a SafeDir) -> Self {
        Self {
            root,
            dirs: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, rel: &str) -> Option<Arc<SafeDir>> {
        self.dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(rel)
            .cloned()
    }

    /// The directory `rel` (`""`: the root); with `create`, missing ones
    /// are created; `None` if one is missing (only without `create`).
    pub(crate) fn dir(&self, rel: &str, create: bool) -> Result<Option<Arc<SafeDir>>, SyncError> {
        if let Some(d) = self.cached(rel) {
            return Ok(Some(d));
        }
        let d = if rel.is_empty() {
            self.root.try_clone()?
        } else {
            let (parent, name) = split(rel);
            let Some(parent) = self.dir(parent, create)? else {
                return Ok(None);
            };
            if create {
                parent.create_dir(name)?
            } else {
                match parent.open_dir(name)? {
                    Some(d) => d,
                    None => return Ok(None),
                }
            }
        };
        let d = Arc::new(d);
        let mut dirs = self
            .dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if dirs.len() >= TREE_HANDLES {
            dirs.clear();
        }
        dirs.insert(rel.to_owned(), Arc::clone(&d));
        Ok(Some(d))
    }

    /// The directory holding the file `rel` and its name; `None` when a
    /// directory on the way is missing (only without `create`).
    pub(crate) fn parent<'r>(
        &self,
        rel: &'r str,
        create: bool,
    ) -> Result<Option<(Arc<SafeDir>, &'r str)>, SyncError> {
        atlas_proto::validate_path(rel)?;
        let (dir, name) = split(rel);
        Ok(self.dir(dir, create)?.map(|d| (d, name)))
    }

    /// What is at `rel` (links not followed); `None` if nothing.
    /// A file where a directory of `rel`'s path would be (a file the new
    /// build turns into a directory) means nothing is at `rel`.
    pub(crate) fn entry(&self, rel: &str) -> Result<Option<cap_std::fs::Metadata>, SyncError> {
        match self.parent(rel, false) {
            Ok(Some((d, name))) => d.entry(name),
            Ok(None) | Err(SyncError::NotADirectory { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Forgets the handles of `rel` and everything below it (the directory was removed).
    pub(crate) fn forget(&self, rel: &str) {
        let below = format!("{rel}/");
        self.dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|k, _| k != rel && !k.starts_with(&below));
    }
}

/// Checks, before any download, that every file to write can be written:
/// no directory on its path is a link, and none is an existing
/// non-directory the plan does not remove.
pub(crate) fn preflight(dir: &SafeDir, plan: &Plan) -> Result<(), SyncError> {
    let removed: BTreeSet<&str> = plan.remove.iter().map(String::as_str).collect();
    let tree = Tree::new(dir);
    let mut checked = BTreeSet::new();
    for f in plan.files.iter().filter(|f| f.needs_download()) {
        atlas_proto::validate_path(&f.path)?;
        for (i, _) in f.path.match_indices('/') {
            let ancestor = &f.path[..i];
            if !checked.insert(ancestor) {
                continue;
            }
            if removed.contains(ancestor) {
                break;
            }
            let (parent, name) = split(ancestor);
            let Some(parent) = tree.dir(parent, false)? else {
                break; // missing: the apply creates it
            };
            match parent.entry(name)? {
                None => break,
                Some(m) if m.is_dir() => {}
                Some(m) if m.is_symlink() => {
                    return Err(SyncError::Link {
                        target: parent
                            .read_link(name)
                            .map_or_else(|_| "?".into(), |t| t.display().to_string()),
                        link: parent.join(name),
                    });
                }
                Some(_) => {
                    return Err(SyncError::Conflict {
                        path: f.path.clone(),
                        reason: format!("`{ancestor}` exists and is not a directory; move it aside"),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Copies the staged blob `from/name` into a temporary file in `tmp_dir`
/// (which must be on the same filesystem as `dest`: the staging directory),
/// fsyncs it, then renames it over `dest_dir/dest`. A process killed
/// mid-copy leaves its partial file in `tmp_dir`, which is cleared with
/// staging, never beside `dest` among the user's files.
pub(crate) fn copy_into_place(
    (from, name): (&SafeDir, &str),
    (dest_dir, dest): (&SafeDir, &str),
    executable: bool,
    tmp_dir: &SafeDir,
) -> Result<(), SyncError> {
    let mut src = from.open_read(name)?.ok_or_else(|| {
        SyncError::from(IoError::at("opening staged file", from.join(name))(
            std::io::ErrorKind::NotFound.into(),
        ))
    })?;
    let (tmp, mut out) = tmp_dir.create_temp()?;
    let copied = (|| -> Result<(), SyncError> {
        let at = |what| IoError::at(what, tmp_dir.join(&tmp));
        std::io::copy(&mut src, &mut out).map_err(at("copying into"))?;
        // Every placement of a blob gets the staged file's mtime (a rename
        // keeps it), so `install.json` can record it before the apply starts.
        if let Ok(t) = src.metadata().and_then(|m| m.modified()) {
            out.set_modified(t)
                .map_err(at("setting the modification time of"))?;
        }
        out.sync_all().map_err(at("syncing"))?;
        set_mode(&out, executable).map_err(at("setting permissions of"))?;
        tmp_dir.rename(&tmp, dest_dir, dest)
    })();
    if copied.is_err() {
        let _ = tmp_dir.remove_file(&tmp);
    }
    copied
}

/// Copies the user's file `from/name` to `to/to_name` (a backup): read
/// through a descriptor opened without following links, written to a
/// private temporary file, then given the original's owner, group, mode
/// (less set-id bits) and mtime before it is renamed into place. So a backup
/// never lets anyone read what they could not read before, even when the
/// file is a hard link to one the server's user may not read. A link is
/// backed up as a link (never read through); anything else that is not a
/// regular file is skipped.
pub(crate) fn back_up_file(
    (from, name): (&SafeDir, &str),
    (to, to_name): (&SafeDir, &str),
) -> Result<(), SyncError> {
    match from.entry(name)? {
        None => return Ok(()),
        Some(m) if m.is_symlink() => {
            #[cfg(unix)]
            {
                let target = from
                    .read_link(name)
                    .map_err(IoError::at("reading the link", from.join(name)))?;
                to.symlink(&target, to_name)?;
            }
            return Ok(());
        }
        Some(m) if !m.is_file() => return Ok(()),
        Some(_) => {}
    }
    let Some(mut src) = from.open_read(name)? else {
        return Ok(());
    };
    let (tmp, mut out) = to.create_temp_private()?;
    let copied = (|| -> Result<(), SyncError> {
        let at = |what| IoError::at(what, to.join(&tmp));
        std::io::copy(&mut src, &mut out).map_err(at("copying into"))?;
        let meta = src.metadata().map_err(at("reading"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            match std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid())) {
                Ok(()) => out
                    .set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o777))
                    .map_err(at("setting permissions of"))?,
                // Not root: the copy stays private to this user.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(at("setting the owner of")(e).into()),
            }
        }
        if let Ok(t) = meta.modified() {
            let _ = out.set_modified(t);
        }
        out.sync_all().map_err(at("syncing"))?;
        to.rename(&tmp, to, to_name)
    })();
    if copied.is_err() {
        let _ = to.remove_file(&tmp);
    }
    copied
}

/// Sets the staged blob `dir/name` to 0755 (executable) or 0644, through
/// a descriptor (unix; no-op elsewhere).
pub(crate) fn set_mode_at(dir: &SafeDir, name: &str, executable: bool) -> Result<(), SyncError> {
    #[cfg(unix)]
    if let Some(f) = dir.open_read(name)? {
        set_mode(&f, executable).map_err(IoError::at("setting permissions of", dir.join(name)))?;
    }
    #[cfg(not(unix))]
    let _ = (dir, name, executable);
    Ok(())
}

/// 0755 for executables, 0644 otherwise (unix; no-op elsewhere).
pub(crate) fn set_mode(file: &std::fs::File, executable: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if executable { 0o755 } else { 0o644 };
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (file, executable);
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
            conflict: false,
        }
    }

    #[test]
    fn tree_refuses_escapes_and_links() {
        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(root.path().join("mods")).expect("mkdir");
        let d = SafeDir::open_ambient(root.path()).expect("open");
        let tree = Tree::new(&d);
        let (dir, name) = tree.parent("mods/a.jar", false).expect("ok").expect("there");
        assert_eq!((dir.path(), name), (root.path().join("mods").as_path(), "a.jar"));
        for bad in [
            "../x",
            "/abs",
            "C:\\x",
            "a/../../b",
            "a\\..\\b",
            "",
            ".atlas/trust.json",
        ] {
            assert!(tree.parent(bad, true).is_err(), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("mods"), root.path().join("link")).expect("symlink");
            let e = tree.parent("link/x.jar", true).expect_err("a link on the path");
            assert!(matches!(e, SyncError::Link { .. }), "{e}");
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

        let staged = SafeDir::open_ambient(&staging).expect("open");
        let dest = SafeDir::open_ambient(&dir.join("a")).expect("open");
        copy_into_place((&staged, "b"), (&dest, "x"), true, &staged).expect("copy");
        assert_eq!(std::fs::read(dir.join("a/x")).expect("a/x"), b"same");
        assert!(
            blob.exists(),
            "a copy leaves the staged blob for the next placement"
        );
        assert_eq!(staged.entries().expect("ls").len(), 1, "no temporary file left");
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
        let d = SafeDir::open_ambient(root.path()).expect("open");
        let err = preflight(&d, &plan).expect_err("conflict");
        assert!(
            err.to_string().contains("`mods` exists and is not a directory"),
            "{err}"
        );
        let plan = Plan {
            remove: vec!["mods".into()],
            ..plan
        };
        preflight(&d, &plan).expect("removed first, so fine");
    }
}
