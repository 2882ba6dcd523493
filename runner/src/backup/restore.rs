//! Restoring an archive over the server directory: extract into `.atlas-restore/new`, then a
//! journaled swap that a crash cannot leave half done (the next start completes it).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::archive;
use super::error::{BackupError, io_err};
use super::exclude::Excludes;

/// Scratch space of restores, inside the server directory.
pub const RESTORE_DIR: &str = ".atlas-restore";

const JOURNAL: &str = "journal";
/// Moving the current entries out to `old`.
const PHASE_OUT: &str = "swap-out";
/// Moving the extracted entries in from `new`, then excluded paths back from `old`.
const PHASE_IN: &str = "swap-in";

struct Scratch {
    root: PathBuf,
    new: PathBuf,
    old: PathBuf,
    journal: PathBuf,
}

impl Scratch {
    fn of(server_dir: &Path) -> Self {
        let root = server_dir.join(RESTORE_DIR);
        Self {
            new: root.join("new"),
            old: root.join("old"),
            journal: root.join(JOURNAL),
            root,
        }
    }

    fn set_phase(&self, phase: &str, id: &str) -> Result<(), BackupError> {
        let tmp = self.root.join("journal.tmp");
        let mut f = fs::File::create(&tmp).map_err(io_err("writing the restore journal", &tmp))?;
        f.write_all(format!("{phase}\n{id}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err("writing the restore journal", &tmp))?;
        fs::rename(&tmp, &self.journal).map_err(io_err("writing the restore journal", &self.journal))?;
        sync_dir(&self.root);
        Ok(())
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn remove_all(path: &Path) -> Result<(), BackupError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path)(e)),
    }
}

fn names(dir: &Path) -> Result<Vec<std::ffi::OsString>, BackupError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err("reading", dir))? {
        out.push(e.map_err(io_err("reading", dir))?.file_name());
    }
    out.sort();
    Ok(out)
}

/// Restores `archive` (whose SHA-256 must be `sha256`) over `server_dir`.
pub(super) fn restore(
    server_dir: &Path,
    excludes: &Excludes,
    archive: &Path,
    sha256: &str,
) -> Result<(), BackupError> {
    recover(server_dir, excludes)?;
    let s = Scratch::of(server_dir);
    fs::create_dir_all(server_dir).map_err(io_err("creating", server_dir))?;
    remove_all(&s.root)?;
    fs::create_dir_all(&s.new).map_err(io_err("creating", &s.new))?;
    if let Err(e) = archive::extract(archive, &s.new, excludes, sha256) {
        let _ = remove_all(&s.root);
        return Err(e);
    }
    fs::create_dir_all(&s.old).map_err(io_err("creating", &s.old))?;
    let id = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    s.set_phase(PHASE_OUT, &id)?;
    finish(server_dir, excludes, &s, PHASE_OUT)
}

/// Completes a restore interrupted during its swap; removes the scratch space of one interrupted
/// before it (the server directory was not touched yet).
pub(super) fn recover(server_dir: &Path, excludes: &Excludes) -> Result<(), BackupError> {
    let s = Scratch::of(server_dir);
    match fs::read_to_string(&s.journal) {
        Ok(text) => {
            let phase = text.lines().next().unwrap_or_default().to_owned();
            tracing::warn!(
                "completing a restore interrupted during its swap ({})",
                text.lines().nth(1).unwrap_or("unknown archive")
            );
            finish(server_dir, excludes, &s, &phase)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => remove_all(&s.root),
        Err(e) => Err(io_err("reading the restore journal", &s.journal)(e)),
    }
}

/// The swap from `phase` on; every step can be repeated after a crash.
fn finish(server_dir: &Path, excludes: &Excludes, s: &Scratch, phase: &str) -> Result<(), BackupError> {
    if phase == PHASE_OUT {
        fs::create_dir_all(&s.old).map_err(io_err("creating", &s.old))?;
        for name in names(server_dir)? {
            if name == RESTORE_DIR || excludes.matches(Path::new(&name)) {
                continue;
            }
            let (from, to) = (server_dir.join(&name), s.old.join(&name));
            fs::rename(&from, &to).map_err(io_err("moving aside", &from))?;
        }
        sync_dir(server_dir);
        s.set_phase(PHASE_IN, "")?;
    } else if phase != PHASE_IN {
        return Err(BackupError::Corrupt {
            path: s.journal.clone(),
            message: format!(
                "unknown restore phase `{phase}`; inspect {} by hand",
                s.root.display()
            ),
        });
    }
    if s.new.is_dir() {
        for name in names(&s.new)? {
            let (from, to) = (s.new.join(&name), server_dir.join(&name));
            fs::rename(&from, &to).map_err(io_err("moving into place", &to))?;
        }
    }
    if s.old.is_dir() {
        keep_excluded(&s.old, server_dir, Path::new(""), excludes)?;
    }
    sync_dir(server_dir);
    remove_all(&s.root)
}

/// Moves the excluded paths found under `old` back to the same place in `server_dir`.
fn keep_excluded(old: &Path, server_dir: &Path, rel: &Path, excludes: &Excludes) -> Result<(), BackupError> {
    let dir = old.join(rel);
    for name in names(&dir)? {
        let rel = rel.join(&name);
        let from = old.join(&rel);
        let meta = fs::symlink_metadata(&from).map_err(io_err("reading", &from))?;
        if excludes.matches(&rel) {
            let to = server_dir.join(&rel);
            // Only into real directories of the restored tree, never through a restored link.
            let parent_ok = rel.parent().is_none_or(|p| {
                p.as_os_str().is_empty() || fs::symlink_metadata(server_dir.join(p)).is_ok_and(|m| m.is_dir())
            });
            let parent_missing = rel.parent().is_some_and(|p| {
                !p.as_os_str().is_empty() && fs::symlink_metadata(server_dir.join(p)).is_err()
            });
            if parent_missing && let Some(p) = to.parent() {
                fs::create_dir_all(p).map_err(io_err("creating", p))?;
            }
            if (parent_ok || parent_missing) && fs::symlink_metadata(&to).is_err() {
                fs::rename(&from, &to).map_err(io_err("keeping", &to))?;
            } else {
                tracing::warn!(
                    "excluded path {} could not be kept over the restored tree",
                    rel.display()
                );
            }
        } else if meta.is_dir() {
            keep_excluded(old, server_dir, &rel, excludes)?;
        }
    }
    Ok(())
}
