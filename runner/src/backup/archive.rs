//! Writing a server directory to a tar + zstd archive (streamed, deterministic order) and
//! extracting one with every entry validated.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tar::{EntryType, Header, HeaderMode};

use super::error::{BackupError, io_err};
use super::exclude::Excludes;

/// Archives (and sidecars) are written under this prefix, then renamed; [`super::Backups::new`]
/// removes leftovers.
pub(super) const TMP_PREFIX: &str = ".tmp-";

/// What [`write`] produced.
#[derive(Debug)]
pub(super) struct Written {
    pub size: u64,
    pub sha256: String,
    pub entries: u64,
}

/// Counts and hashes what goes through.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (T, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Exactly `left` bytes of a file that may change while it is read: cut when it grew, padded with
/// zeros when it shrank (the header already promised the size).
struct Exact<R> {
    inner: R,
    left: u64,
    short: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let Some(slice) = buf.get_mut(..want) else {
            return Ok(0);
        };
        let n = if self.short { 0 } else { self.inner.read(slice)? };
        let n = if n == 0 {
            self.short = true;
            slice.fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Notes whether reading the compressed stream failed, to tell a damaged archive from a failed write.
struct Watch<R> {
    inner: R,
    failed: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// What [`write`] archives, and when it stops.
pub(super) struct Source<'a> {
    /// The server directory.
    pub root: &'a Path,
    pub excludes: &'a Excludes,
    /// Polled before each entry: once raised, [`write`] stops with
    /// [`BackupError::Interrupted`] and removes its temporary file.
    pub interrupt: &'a AtomicBool,
}

/// Archives `src` into `dest`, through a temporary file in `dir`.
pub(super) fn write(src: &Source<'_>, dir: &Path, dest: &Path, level: i32) -> Result<Written, BackupError> {
    let tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .suffix(".tar.zst")
        .tempfile_in(dir)
        .map_err(io_err("creating a temporary archive in", dir))?;
    let out = BufWriter::with_capacity(256 * 1024, Hashing::new(tmp.as_file()));
    let encoder = zstd::Encoder::new(out, level).map_err(io_err("starting zstd for", dest))?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    let mut entries = 0;
    append_dir(&mut builder, src, Path::new(""), &mut entries)?;
    let encoder = builder.into_inner().map_err(io_err("writing", dest))?;
    let out = encoder.finish().map_err(io_err("writing", dest))?;
    let hashing = out
        .into_inner()
        .map_err(|e| io_err("writing", dest)(e.into_error()))?;
    let (_, sha256, size) = hashing.finish();
    tmp.as_file().sync_all().map_err(io_err("writing", dest))?;
    tmp.persist(dest)
        .map_err(|e| io_err("renaming the archive to", dest)(e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Written {
        size,
        sha256,
        entries,
    })
}

fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    src: &Source<'_>,
    rel: &Path,
    entries: &mut u64,
) -> Result<(), BackupError> {
    let Source { root, excludes, .. } = *src;
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(io_err("reading", &dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err("reading", &dir))?;
    names.sort();
    for name in names {
        if src.interrupt.load(Ordering::Relaxed) {
            return Err(BackupError::Interrupted);
        }
        let rel = rel.join(&name);
        if excludes.matches(&rel) {
            continue;
        }
        let path = root.join(&rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Deleted since it was listed (a hot backup of a live directory).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&meta, HeaderMode::Complete);
        let ft = meta.file_type();
        if ft.is_dir() {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
            builder
                .append_data(&mut header, &rel, io::empty())
                .map_err(io_err("archiving", &path))?;
            *entries += 1;
            append_dir(builder, src, &rel, entries)?;
        } else if ft.is_file() {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("opening", &path)(e)),
            };
            let mut reader = Exact {
                inner: file,
                left: meta.len(),
                short: false,
            };
            builder
                .append_data(&mut header, &rel, &mut reader)
                .map_err(io_err("archiving", &path))?;
            if reader.short {
                tracing::warn!("{} shrank while it was archived", path.display());
            }
            *entries += 1;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading the link", &path))?;
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, &rel, &target)
                .map_err(io_err("archiving", &path))?;
            *entries += 1;
        } else {
            tracing::debug!(
                "not archiving {} (neither file, directory nor link)",
                path.display()
            );
        }
    }
    Ok(())
}

/// `path` as components, or why it is unsafe.
fn checked(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err("it contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("it is an absolute path".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("its path is empty".into());
    }
    Ok(out)
}

/// Whether the symlink at `rel` pointing to `target` stays inside the root. `..` is only allowed
/// before the first name: after one, it would climb out of whatever that name (possibly another
/// link) resolves to, which a lexical check cannot follow.
fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    let mut depth = rel.components().count().saturating_sub(1) as i64;
    let mut named = false;
    for c in target.components() {
        match c {
            Component::Normal(_) => {
                named = true;
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 || named {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    !target.as_os_str().is_empty()
}

/// Extracts `archive` into the empty directory `dest`, validating every entry and checking the
/// archive's SHA-256 against `sha256`. Entries covered by `excludes` are skipped.
pub(super) fn extract(
    archive: &Path,
    dest: &Path,
    excludes: &Excludes,
    sha256: &str,
) -> Result<(), BackupError> {
    let file = File::open(archive).map_err(io_err("opening", archive))?;
    let mut hashing = Hashing::new(BufReader::with_capacity(256 * 1024, file));
    let corrupt = |message: String| BackupError::Corrupt {
        path: archive.to_path_buf(),
        message,
    };
    let decoder = zstd::Decoder::new(&mut hashing).map_err(|e| corrupt(e.to_string()))?;
    let failed = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut tar = tar::Archive::new(Watch {
        inner: decoder,
        failed: failed.clone(),
    });
    let mut links: HashSet<PathBuf> = HashSet::new();
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    for entry in tar.entries().map_err(|e| corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let raw = entry.path().map_err(|e| corrupt(e.to_string()))?.into_owned();
        let unsafe_entry = |reason: String| BackupError::Unsafe {
            path: archive.to_path_buf(),
            entry: raw.display().to_string(),
            reason,
        };
        let rel = checked(&raw).map_err(unsafe_entry)?;
        if rel.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(unsafe_entry("it lies below a symbolic link".into()));
        }
        if excludes.covers(&rel) {
            continue;
        }
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(|e| corrupt(e.to_string()))?;
        let mtime = entry.header().mtime().map_err(|e| corrupt(e.to_string()))?;
        match kind {
            EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err("creating", &target))?;
                dirs.push((target, mode, mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::Symlink => {
                if kind == EntryType::Symlink {
                    let link = entry
                        .link_name()
                        .map_err(|e| corrupt(e.to_string()))?
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    if !link_stays_inside(&rel, &link) {
                        return Err(unsafe_entry(format!(
                            "it is a symbolic link to {}, outside the server directory",
                            link.display()
                        )));
                    }
                    links.insert(rel.clone());
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
                }
                entry.set_preserve_mtime(true);
                entry.set_preserve_permissions(false);
                entry.unpack(&target).map_err(|e| {
                    if failed.get() {
                        corrupt(e.to_string())
                    } else {
                        io_err("extracting", &target)(e)
                    }
                })?;
            }
            other => {
                return Err(unsafe_entry(format!(
                    "entries of type {other:?} (hard links, devices, FIFOs) are never restored"
                )));
            }
        }
    }
    // Drain the rest of the stream so the whole file is hashed.
    let mut decoder = tar.into_inner().inner;
    io::copy(&mut decoder, &mut io::sink()).map_err(|e| corrupt(e.to_string()))?;
    drop(decoder);
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err("reading", archive))?;
    let (_, actual, _) = hashing.finish();
    if actual != sha256 {
        return Err(corrupt(format!(
            "its SHA-256 is {actual}, the sidecar records {sha256}"
        )));
    }
    // Directory modes and times last, deepest first, so read-only directories can be filled.
    for (dir, mode, mtime) in dirs.iter().rev() {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o777))
            .map_err(io_err("setting the mode of", dir))?;
        if let Ok(f) = File::open(dir) {
            let _ = f.set_modified(UNIX_EPOCH + Duration::from_secs(*mtime));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a/b"), Path::new("c/../../d")));
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c/d")));
        assert!(!link_stays_inside(Path::new("a/b"), Path::new("../../c")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("/etc/passwd")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("")));
        assert!(checked(Path::new("./a/b")).is_ok());
        assert!(checked(Path::new("a/../b")).is_err());
        assert!(checked(Path::new("/a")).is_err());
    }
}
