//! Directories opened without following symbolic links. Hosts run the
//! fetcher as root over a directory another user owns, and that user can
//! replace anything inside it at any moment, so every path below a
//! directory the fetcher manages (the install directory, its `.atlas/`, the
//! shared blob cache) is reached from a directory handle, one name at a
//! time, never following a link: directories with `O_NOFOLLOW` (a link is
//! refused with [`SyncError::Link`], exit 7), files with `O_NOFOLLOW` and,
//! for reads, `O_NONBLOCK` (a FIFO cannot hang the run) and a regular-file
//! check on the open descriptor. A handle keeps naming the directory it was
//! opened on, so swapping a name for a link after the check (a race between
//! check and use) cannot redirect a write: there is no second lookup by path.
//!
//! Only the root of such a tree is opened by path ([`SafeDir::open_ambient`]):
//! the administrator chose it, and its parent is theirs.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use atlas_proto::IoError;
use cap_fs_ext::{DirExt as _, FollowSymlinks, OpenOptionsFollowExt as _};
use cap_std::fs::{Dir, Metadata, OpenOptions};

use crate::error::SyncError;

/// A directory handle and where it is (for messages only; the path is
/// never opened again).
#[derive(Debug)]
pub struct SafeDir {
    dir: Dir,
    path: PathBuf,
}

/// Prefix of the temporary files [`SafeDir::write_atomic`] and copies use.
pub const TEMP_PREFIX: &str = ".tmp-";

fn io_at(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SyncError {
    let path = path.to_owned();
    move |e| IoError::at(what, path)(e).into()
}

/// The error for a link found where a directory or file was to be opened.
fn link_error(link: PathBuf, target: std::io::Result<PathBuf>) -> SyncError {
    SyncError::Link {
        target: target.map_or_else(|_| "?".into(), |t| t.display().to_string()),
        link,
    }
}

/// The mode new files get (less the umask): `0o644`, or `0o600` for
/// files only this user may read.
#[cfg(unix)]
fn mode(o: &mut OpenOptions, private: bool) {
    use cap_std::fs::OpenOptionsExt as _;
    o.mode(if private { 0o600 } else { 0o644 });
}

#[cfg(not(unix))]
fn mode(_: &mut OpenOptions, _: bool) {}

/// `O_NONBLOCK`: opening a FIFO must not wait for a writer.
#[cfg(unix)]
fn nonblocking(o: &mut OpenOptions) {
    use cap_std::fs::OpenOptionsExt as _;
    o.custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed());
}

#[cfg(not(unix))]
fn nonblocking(_: &mut OpenOptions) {}

impl SafeDir {
    /// Opens the root of a managed tree by its path (following links in
    /// `path` itself: the administrator's choice).
    pub fn open_ambient(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            dir: Dir::open_ambient_dir(path, cap_std::ambient_authority())?,
            path: path.to_owned(),
        })
    }

    /// Creates `path` (and its parents) if needed, then opens it like [`Self::open_ambient`].
    pub fn create_ambient(path: &Path) -> Result<Self, SyncError> {
        std::fs::create_dir_all(path).map_err(io_at("creating directory", path))?;
        Self::open_ambient(path).map_err(io_at("opening directory", path))
    }

    /// Where this directory is (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory (for messages).
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> Result<Self, SyncError> {
        Ok(Self {
            dir: self
                .dir
                .try_clone()
                .map_err(io_at("opening directory", &self.path))?,
            path: self.path.clone(),
        })
    }

    /// What `name` is, without following a link (`None` if absent).
    pub fn entry(&self, name: &str) -> Result<Option<Metadata>, SyncError> {
        debug_assert!(!name.contains('/'), "{name}: one name at a time");
        match self.dir.symlink_metadata(name) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at("reading", &self.join(name))(e)),
        }
    }

    /// Where the link `name` points (for messages).
    pub fn read_link(&self, name: &str) -> std::io::Result<PathBuf> {
        self.dir.read_link_contents(name)
    }

    /// The error for a failed open of `name`: a link, a non-directory, or `e`.
    fn explain(&self, name: &str, e: std::io::Error, what: &'static str) -> SyncError {
        match self.dir.symlink_metadata(name) {
            Ok(m) if m.is_symlink() => link_error(self.join(name), self.read_link(name)),
            _ => io_at(what, &self.join(name))(e),
        }
    }

    /// Opens the subdirectory `name`, refusing a link (`None` if absent).
    pub fn open_dir(&self, name: &str) -> Result<Option<Self>, SyncError> {
        debug_assert!(!name.contains('/') && name != "..", "{name}: one name at a time");
        match self.dir.open_dir_nofollow(name) {
            Ok(dir) => Ok(Some(Self {
                dir,
                path: self.join(name),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => match self.entry(name)? {
                Some(m) if m.is_symlink() => Err(link_error(self.join(name), self.read_link(name))),
                Some(m) if !m.is_dir() => Err(SyncError::NotADirectory {
                    path: self.join(name),
                }),
                // Gone between the two calls.
                None => Ok(None),
                Some(_) => Err(io_at("opening directory", &self.join(name))(e)),
            },
        }
    }

    /// Creates the subdirectory `name` if it is missing, then opens it like [`Self::open_dir`].
    pub fn create_dir(&self, name: &str) -> Result<Self, SyncError> {
        if let Some(d) = self.open_dir(name)? {
            return Ok(d);
        }
        match self.dir.create_dir(name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at("creating directory", &self.join(name))(e)),
        }
        self.open_dir(name)?
            .ok_or_else(|| io_at("creating directory", &self.join(name))(std::io::ErrorKind::NotFound.into()))
    }

    /// Opens the directory `rel` (`a/b/c`, `""` for this one) one name at
    /// a time, refusing links; with `create`, missing ones are created.
    /// `None` when one is missing (never with `create`).
    pub fn walk(&self, rel: &str, create: bool) -> Result<Option<Self>, SyncError> {
        let mut cur = self.try_clone()?;
        for name in rel.split('/').filter(|n| !n.is_empty()) {
            cur = if create {
                cur.create_dir(name)?
            } else {
                match cur.open_dir(name)? {
                    Some(d) => d,
                    None => return Ok(None),
                }
            };
        }
        Ok(Some(cur))
    }

    fn open_with(
        &self,
        name: &str,
        o: &mut OpenOptions,
        what: &'static str,
    ) -> Result<std::fs::File, SyncError> {
        debug_assert!(!name.contains('/'), "{name}: one name at a time");
        o.follow(FollowSymlinks::No);
        match self.dir.open_with(name, o) {
            Ok(f) => Ok(f.into_std()),
            Err(e) => Err(self.explain(name, e, what)),
        }
    }

    /// Opens the regular file `name` for reading, refusing a link and
    /// anything that is not a regular file (a FIFO, a device); `None` if absent.
    pub fn open_read(&self, name: &str) -> Result<Option<std::fs::File>, SyncError> {
        let mut o = OpenOptions::new();
        o.read(true);
        nonblocking(&mut o);
        let f = match self.open_with(name, &mut o, "opening") {
            Ok(f) => f,
            Err(SyncError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = f.metadata().map_err(io_at("reading", &self.join(name)))?;
        if !meta.is_file() {
            return Err(SyncError::NotARegularFile {
                path: self.join(name),
            });
        }
        Ok(Some(f))
    }

    /// Reads the regular file `name`, at most `cap` bytes (a longer file is
    /// an error); `None` if absent.
    pub fn read_capped(&self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, SyncError> {
        let Some(f) = self.open_read(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        f.take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_at("reading", &self.join(name)))?;
        if bytes.len() as u64 > cap {
            return Err(SyncError::State {
                path: self.join(name),
                message: format!("larger than {cap} bytes"),
            });
        }
        Ok(Some(bytes))
    }

    /// Creates the file `name`, which must not exist (no link is followed:
    /// an existing name, link or not, is an error).
    pub fn create_new(&self, name: &str) -> Result<std::fs::File, SyncError> {
        self.create_new_mode(name, false)
    }

    fn create_new_mode(&self, name: &str, private: bool) -> Result<std::fs::File, SyncError> {
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        mode(&mut o, private);
        self.open_with(name, &mut o, "creating")
    }

    /// Creates or truncates the regular file `name` for writing, refusing a link.
    pub fn create(&self, name: &str) -> Result<std::fs::File, SyncError> {
        let mut o = OpenOptions::new();
        o.write(true).create(true).truncate(true);
        mode(&mut o, false);
        nonblocking(&mut o);
        let f = self.open_with(name, &mut o, "creating")?;
        if !f
            .metadata()
            .map_err(io_at("creating", &self.join(name)))?
            .is_file()
        {
            return Err(SyncError::NotARegularFile {
                path: self.join(name),
            });
        }
        Ok(f)
    }

    /// Opens (creating if needed, never truncating) the regular file `name`
    /// for reading and writing, refusing a link (the lock file).
    pub fn open_or_create(&self, name: &str) -> Result<std::fs::File, SyncError> {
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        mode(&mut o, false);
        nonblocking(&mut o);
        let f = self.open_with(name, &mut o, "opening")?;
        if !f
            .metadata()
            .map_err(io_at("opening", &self.join(name)))?
            .is_file()
        {
            return Err(SyncError::NotARegularFile {
                path: self.join(name),
            });
        }
        Ok(f)
    }

    /// A new temporary file in this directory (mode 0644): `(name, file)`.
    pub fn create_temp(&self) -> Result<(String, std::fs::File), SyncError> {
        self.create_temp_mode(false)
    }

    /// [`Self::create_temp`] readable by this user only (mode 0600).
    pub fn create_temp_private(&self) -> Result<(String, std::fs::File), SyncError> {
        self.create_temp_mode(true)
    }

    fn create_temp_mode(&self, private: bool) -> Result<(String, std::fs::File), SyncError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("{TEMP_PREFIX}{}-{n}-{nanos:x}", std::process::id());
            match self.create_new_mode(&name, private) {
                Ok(f) => return Ok((name, f)),
                Err(SyncError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Replaces `name` with `bytes` atomically: a temporary file in this
    /// directory, fsynced, renamed over `name`, then the directory fsynced.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), SyncError> {
        let (tmp, mut f) = self.create_temp()?;
        let written = f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(io_at("writing", &self.join(&tmp)))
            .and_then(|()| self.rename(&tmp, self, name));
        if written.is_err() {
            let _ = self.remove_file(&tmp);
        }
        written?;
        self.sync();
        Ok(())
    }

    /// [`Self::write_atomic`] of `value` as pretty JSON.
    pub fn write_atomic_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), SyncError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| SyncError::Internal(e.to_string()))?;
        bytes.push(b'\n');
        self.write_atomic(name, &bytes)
    }

    /// Renames `from` (here) to `to` in `to_dir`; a link is moved as a link.
    pub fn rename(&self, from: &str, to_dir: &Self, to: &str) -> Result<(), SyncError> {
        self.dir
            .rename(from, &to_dir.dir, to)
            .map_err(io_at("moving", &self.join(from)))
    }

    /// Creates the link `name` pointing to `target` (a backup of the user's link).
    #[cfg(unix)]
    pub fn symlink(&self, target: &Path, name: &str) -> Result<(), SyncError> {
        self.dir
            .symlink_contents(target, name)
            .map_err(io_at("creating the link", &self.join(name)))
    }

    /// Hard-links `from` (here) as `to` in `to_dir` (a link is linked as a link).
    pub fn hard_link(&self, from: &str, to_dir: &Self, to: &str) -> std::io::Result<()> {
        self.dir.hard_link(from, &to_dir.dir, to)
    }

    /// Removes the file or link `name`; `false` if it was absent.
    pub fn remove_file(&self, name: &str) -> Result<bool, SyncError> {
        match self.dir.remove_file_or_symlink(name) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_at("removing", &self.join(name))(e)),
        }
    }

    /// Removes the empty directory `name`.
    pub fn remove_dir(&self, name: &str) -> std::io::Result<()> {
        self.dir.remove_dir(name)
    }

    /// Removes `name` whatever it is: a file, a link (not what it points
    /// to), or a directory and everything below it, following no link.
    pub fn remove_all(&self, name: &str) -> Result<(), SyncError> {
        match self.entry(name)? {
            None => Ok(()),
            Some(m) if m.is_dir() => self
                .dir
                .remove_dir_all(name)
                .map_err(io_at("removing", &self.join(name))),
            Some(_) => self.remove_file(name).map(|_| ()),
        }
    }

    /// The names in this directory with what each is (links not followed).
    pub fn entries(&self) -> Result<Vec<(String, Metadata)>, SyncError> {
        let mut out = Vec::new();
        for e in self.dir.entries().map_err(io_at("reading", &self.path))? {
            let e = e.map_err(io_at("reading", &self.path))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(m) = self.entry(&name)? {
                out.push((name, m));
            }
        }
        Ok(out)
    }

    /// This directory's metadata.
    pub fn metadata(&self) -> std::io::Result<Metadata> {
        self.dir.dir_metadata()
    }

    /// This directory opened for reading as a `std` file (for fsync, times,
    /// `syncfs`: the handle itself may be an `O_PATH` descriptor, which
    /// allows none of them).
    fn as_file(&self) -> std::io::Result<std::fs::File> {
        use cap_fs_ext::OpenOptionsMaybeDirExt as _;
        let mut o = OpenOptions::new();
        o.read(true).maybe_dir(true);
        Ok(self.dir.open_with(".", &o)?.into_std())
    }

    /// Sets this directory's access and modification times (best effort).
    pub fn set_times(&self, times: std::fs::FileTimes) {
        if let Ok(f) = self.as_file() {
            let _ = f.set_times(times);
        }
    }

    /// This directory's times, to put back with [`Self::set_times`].
    pub fn times(&self) -> Option<std::fs::FileTimes> {
        let m = self.metadata().ok()?;
        let mut t = std::fs::FileTimes::new().set_modified(m.modified().ok()?.into_std());
        if let Ok(a) = m.accessed() {
            t = t.set_accessed(a.into_std());
        }
        Some(t)
    }

    /// fsyncs this directory so renames in it are durable (best effort; unix only).
    pub fn sync(&self) {
        #[cfg(unix)]
        if let Ok(f) = self.as_file() {
            let _ = f.sync_all();
        }
    }

    /// Flushes the filesystem holding this directory (`syncfs(2)`, Linux;
    /// elsewhere a no-op, see [`crate::durable::SYNC_ONCE`]).
    pub fn sync_filesystem(&self) -> Result<(), SyncError> {
        #[cfg(target_os = "linux")]
        {
            let d = self.as_file().map_err(io_at("opening directory", &self.path))?;
            nix::unistd::syncfs(&d)
                .map_err(|e| io_at("syncing the filesystem of", &self.path)(std::io::Error::from(e)))?;
        }
        Ok(())
    }
}

/// Splits a relative path into its directory (`""` for none) and last name.
pub fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_refused_on_every_operation_and_nothing_outside_changes() {
        let root = tempfile::tempdir().expect("tmp");
        let (inside, outside) = (root.path().join("in"), root.path().join("out"));
        std::fs::create_dir_all(inside.join("real")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), b"s").expect("write");
        symlink(&outside, inside.join("dirlink")).expect("symlink");
        symlink(outside.join("secret"), inside.join("filelink")).expect("symlink");
        symlink(outside.join("dangling"), inside.join("dangling")).expect("symlink");
        let d = SafeDir::open_ambient(&inside).expect("open");

        for e in [
            d.open_dir("dirlink").expect_err("dir link"),
            d.create_dir("dirlink").expect_err("dir link"),
            d.walk("dirlink/x", true).expect_err("dir link on a path"),
            d.open_read("filelink").expect_err("file link"),
            d.create("filelink").expect_err("file link"),
            d.open_or_create("dangling").expect_err("dangling link"),
            d.create_new("dangling").expect_err("dangling link"),
        ] {
            assert_eq!(e.exit_code(), crate::exit::LOCAL, "{e}");
        }
        let e = d.open_dir("dirlink").expect_err("link");
        assert!(
            matches!(&e, SyncError::Link { link, .. } if link.ends_with("dirlink")),
            "{e}"
        );
        assert!(e.to_string().contains(&outside.display().to_string()), "{e}");
        // Removing a link removes the link only.
        d.remove_all("dirlink").expect("rm link");
        d.remove_all("filelink").expect("rm link");
        assert!(!outside.join("dangling").exists());
        assert_eq!(std::fs::read(outside.join("secret")).expect("secret"), b"s");
        assert_eq!(std::fs::read_dir(&outside).expect("ls").count(), 1);
    }

    #[test]
    fn a_fifo_is_not_a_file_and_does_not_block() {
        let root = tempfile::tempdir().expect("tmp");
        nix::unistd::mkfifo(&root.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let d = SafeDir::open_ambient(root.path()).expect("open");
        let e = d.open_read("fifo").expect_err("a fifo");
        assert!(matches!(e, SyncError::NotARegularFile { .. }), "{e}");
        assert!(d.read_capped("absent", 10).expect("absent").is_none());
    }

    #[test]
    fn atomic_writes_walks_and_caps() {
        let root = tempfile::tempdir().expect("tmp");
        let d = SafeDir::open_ambient(root.path()).expect("open");
        let sub = d.walk("a/b", true).expect("walk").expect("created");
        sub.write_atomic("x.json", b"one").expect("write");
        sub.write_atomic("x.json", b"two").expect("write");
        assert_eq!(
            std::fs::read(root.path().join("a/b/x.json")).expect("read"),
            b"two"
        );
        assert_eq!(sub.entries().expect("ls").len(), 1, "no temporary file left");
        assert!(d.walk("a/c", false).expect("walk").is_none());
        assert!(sub.read_capped("x.json", 2).is_err(), "above the cap");
        d.remove_all("a").expect("rm");
        assert!(!root.path().join("a").exists());
    }
}
