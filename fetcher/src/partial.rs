//! Downloads kept across runs, `DIR/.atlas/partial/`: a blob of at least
//! [`PARTIAL_MIN`] bytes from an HTTP(S) store is downloaded into
//! `<sha256 hex>` there, with the URL and validator of the response it came
//! from in `<sha256 hex>.json`, and moved into staging only once every
//! download of the run has been verified. A run that stops (killed, past its
//! deadline, network down) leaves it, and the next one asks only for the
//! rest: `Range: bytes=N-` with `If-Range` (so an object that changed comes
//! whole, and the file starts again from zero). The blob is still verified
//! as a whole: the bytes already there are hashed first, read from the
//! descriptor the rest is then appended to, and a prefix that does not
//! verify is dropped and the blob downloaded again from zero.
//!
//! The directory's owner (the server's user) can write here. Entries are
//! opened without following links (`O_NOFOLLOW`) and without blocking
//! (`O_NONBLOCK`), must be regular files (checked on the open descriptor),
//! are locked while in use, and anything else found here is removed, never
//! read through. What the directory keeps is bounded: only blobs of the
//! current plan, each no longer than its declared size, none older than
//! [`PARTIAL_MAX_AGE`]; the rest is removed when downloads start, and
//! everything once they have all succeeded.
//!
//! All functions here do blocking I/O: call them from a blocking thread.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use atlas_proto::digest::HashingCounter;
use atlas_proto::{IoError, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::error::SyncError;

/// Name of the directory inside the state directory.
pub const PARTIAL_DIR: &str = "partial";
/// Blobs at least this large are downloaded through the partial directory.
/// Smaller ones cost less to download again than to keep track of.
pub const PARTIAL_MIN: u64 = 1 << 20;
/// A partial download older than this (by modification time) is removed.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Entries looked at when cleaning (a directory flooded with names is removed whole).
const MAX_ENTRIES: usize = 10_000;
/// Longest side file read.
const META_MAX: u64 = 4096;
const META_FORMAT: u32 = 1;
const HASH_BUFFER: usize = 1 << 20;

/// `<sha256 hex>.json`: where the bytes of a partial download came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format: u32,
    /// The URL the bytes were downloaded from; only a download from the same
    /// URL resumes them.
    url: String,
    /// The blob's declared size.
    size: u64,
    /// The response's strong validator, sent as `If-Range` when resuming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    if_range: Option<String>,
}

/// A partial download opened for appending.
#[derive(Debug)]
pub struct Resume {
    /// Open (and locked) at the end of the bytes hashed into `counter`.
    pub file: File,
    /// The bytes already there, hashed as they were read from `file`.
    pub counter: HashingCounter,
    /// What to send as `If-Range` (`None`: resume without it, or nothing to resume).
    pub if_range: Option<String>,
    /// The file's path, for messages and the final move.
    pub path: PathBuf,
}

/// The partial directory of one target directory.
#[derive(Debug, Clone)]
pub struct PartialDir {
    dir: PathBuf,
}

fn hex_name(name: &str) -> Option<Sha256Digest> {
    (name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| name.parse().ok())
    .flatten()
}

/// Opens `path` for reading and writing, creating it when `create`, never
/// through a link and never waiting (a FIFO planted there opens at once and
/// is then refused by the caller's type check).
fn open_nofollow(path: &Path, create: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(create);
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK);
    #[cfg(not(target_os = "linux"))]
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(std::io::Error::other("not a regular file"));
    }
    o.open(path)
}

/// Removes whatever `path` names (a link itself, not its target).
fn remove_entry(path: &Path) {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = result {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

impl PartialDir {
    /// The partial directory inside the state directory `state_dir` (`DIR/.atlas`).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(PARTIAL_DIR),
        }
    }

    /// Whether a blob of `size` bytes is downloaded through here.
    pub fn wants(size: u64) -> bool {
        size >= PARTIAL_MIN
    }

    /// Where the bytes of blob `d` are kept.
    pub fn data_path(&self, d: &Sha256Digest) -> PathBuf {
        self.dir.join(d.to_hex())
    }

    fn meta_path(&self, d: &Sha256Digest) -> PathBuf {
        self.dir.join(format!("{}.json", d.to_hex()))
    }

    /// Whether `path` is one of this directory's downloads.
    pub fn holds(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path())
    }

    /// Whether the directory is usable: a real directory (created if
    /// missing). A link or a file in its place is left alone, with a
    /// warning, and downloads go to staging as if nothing were kept.
    fn ready(&self) -> bool {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(m) if m.is_dir() => true,
            Ok(_) => {
                tracing::warn!(
                    "{} is not a directory (a link?); downloads are not kept across runs until it is removed",
                    self.dir.display()
                );
                false
            }
            Err(_) => match std::fs::create_dir(&self.dir) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        "cannot create {}: {e}; downloads are not kept across runs",
                        self.dir.display()
                    );
                    false
                }
            },
        }
    }

    /// Opens the partial download of blob `d` (`size` bytes, from `url`),
    /// creating it if there is none. What it holds is hashed, from the
    /// returned descriptor, if it came from the same URL and is not longer
    /// than `size`; otherwise it is emptied. `None` when the directory is
    /// not usable or another process is writing this blob: the caller then
    /// downloads to staging.
    pub fn open(&self, d: &Sha256Digest, size: u64, url: &str) -> Result<Option<Resume>, SyncError> {
        if !self.ready() {
            return Ok(None);
        }
        let path = self.data_path(d);
        let file = match open_nofollow(&path, true) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
            // A link, a FIFO, a directory... in its place: remove the name, start afresh.
            _ => {
                remove_entry(&path);
                match open_nofollow(&path, true) {
                    Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
                    _ => {
                        tracing::warn!("cannot use {}; downloading to staging", path.display());
                        return Ok(None);
                    }
                }
            }
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(
                    "{} is in use by another process; downloading to staging",
                    path.display()
                );
                return Ok(None);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(IoError::at("locking", &path)(e).into()),
        }
        let meta = self.read_meta(d);
        let usable = meta
            .as_ref()
            .is_some_and(|m| m.format == META_FORMAT && m.url == url && m.size == size);
        let mut resume = Resume {
            file,
            counter: HashingCounter::new(),
            if_range: None,
            path,
        };
        if usable {
            hash_prefix(&mut resume.file, size, &mut resume.counter)
                .map_err(IoError::at("reading the partial download", &resume.path))?;
            resume.if_range = meta.and_then(|m| m.if_range);
        }
        // Anything past what was hashed (or everything, when unusable) goes.
        let keep = resume.counter.len();
        resume
            .file
            .set_len(keep)
            .and_then(|()| resume.file.seek(SeekFrom::Start(keep)))
            .map_err(IoError::at("truncating the partial download", &resume.path))?;
        if keep > 0 {
            tracing::info!(blob = %d, bytes = keep, "a partial download was kept from an earlier run");
        }
        Ok(Some(resume))
    }

    fn read_meta(&self, d: &Sha256Digest) -> Option<Meta> {
        let path = self.meta_path(d);
        let file = open_nofollow(&path, false).ok()?;
        if !file.metadata().is_ok_and(|m| m.is_file() && m.len() <= META_MAX) {
            return None;
        }
        let mut text = Vec::new();
        file.take(META_MAX).read_to_end(&mut text).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Records where the bytes of `d` now come from (a download that starts
    /// from zero), before any of them is written.
    pub fn record(
        &self,
        d: &Sha256Digest,
        size: u64,
        url: &str,
        if_range: Option<&str>,
    ) -> Result<(), SyncError> {
        let meta = Meta {
            format: META_FORMAT,
            url: url.to_owned(),
            size,
            if_range: if_range.map(str::to_owned),
        };
        let path = self.meta_path(d);
        let bytes = serde_json::to_vec(&meta).map_err(|e| SyncError::Internal(e.to_string()))?;
        let write = |f: &mut File| f.set_len(0).and_then(|()| f.write_all(&bytes));
        let mut file = match open_nofollow(&path, true) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
            _ => {
                remove_entry(&path);
                open_nofollow(&path, true).map_err(IoError::at("writing", &path))?
            }
        };
        write(&mut file).map_err(IoError::at("writing", &path))?;
        Ok(())
    }

    /// Forgets the partial download of `d` (its bytes did not verify).
    pub fn discard(&self, d: &Sha256Digest) {
        remove_entry(&self.data_path(d));
        remove_entry(&self.meta_path(d));
    }

    /// Moves the verified download of `d` to `dest` (in staging).
    pub fn finish(&self, d: &Sha256Digest, dest: &Path) -> Result<(), SyncError> {
        let from = self.data_path(d);
        std::fs::rename(&from, dest).map_err(IoError::at("moving the verified download", &from))?;
        remove_entry(&self.meta_path(d));
        Ok(())
    }

    /// Removes every entry no download of `keep` (blob → declared size)
    /// can use: other names, other blobs, anything but a regular file,
    /// data longer than its blob, entries older than [`PARTIAL_MAX_AGE`],
    /// side files without data. With `keep` empty, removes the directory.
    pub fn clean(&self, keep: &BTreeMap<Sha256Digest, u64>) {
        let Ok(m) = std::fs::symlink_metadata(&self.dir) else {
            return;
        };
        if !m.is_dir() {
            return; // `ready` warns about it when it matters
        }
        if keep.is_empty() {
            remove_entry(&self.dir);
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries: Vec<_> = entries.filter_map(Result::ok).take(MAX_ENTRIES + 1).collect();
        // Data first, so a side file whose data goes is seen without it.
        entries.sort_by_key(|e| e.file_name().to_string_lossy().ends_with(".json"));
        if entries.len() > MAX_ENTRIES {
            tracing::warn!("{} holds too many entries; removing it", self.dir.display());
            remove_entry(&self.dir);
            return;
        }
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let (hex, is_meta) = match name.strip_suffix(".json") {
                Some(h) => (h, true),
                None => (name.as_str(), false),
            };
            let fresh = |m: &std::fs::Metadata| {
                m.modified()
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_none_or(|age| age <= PARTIAL_MAX_AGE)
            };
            let wanted = hex_name(hex).and_then(|d| keep.get(&d).map(|size| (d, *size)));
            let useful = match (wanted, std::fs::symlink_metadata(&path)) {
                (Some((_, size)), Ok(m)) if !is_meta => m.is_file() && m.len() <= size && fresh(&m),
                (Some((d, _)), Ok(m)) => m.is_file() && m.len() <= META_MAX && self.data_path(&d).is_file(),
                _ => false,
            };
            if !useful {
                tracing::debug!("removing {}", path.display());
                remove_entry(&path);
            }
        }
    }
}

/// Hashes what `file` holds from its start, at most `size` bytes.
fn hash_prefix(file: &mut File, size: u64, counter: &mut HashingCounter) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut reader = (&*file).take(size);
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => counter.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PartialDir) {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = PartialDir::new(tmp.path());
        (tmp, p)
    }

    #[test]
    fn a_prefix_from_the_same_url_is_hashed_and_kept_else_emptied() {
        let (_tmp, p) = setup();
        let blob = vec![5u8; 3000];
        let d = Sha256Digest::of(&blob);
        let mut r = p.open(&d, 3000, "http://a/x").expect("open").expect("usable");
        assert_eq!(r.counter.len(), 0);
        p.record(&d, 3000, "http://a/x", Some("\"etag\""))
            .expect("record");
        r.file.write_all(&blob[..1000]).expect("write");
        drop(r);

        let r = p.open(&d, 3000, "http://a/x").expect("open").expect("usable");
        assert_eq!(r.counter.len(), 1000);
        assert_eq!(r.if_range.as_deref(), Some("\"etag\""));
        let mut whole = r.counter.clone();
        whole.update(&blob[1000..]);
        assert_eq!(
            whole.finish().0,
            d,
            "the prefix hash continues into the whole blob's"
        );
        // Locked while open: a second opener downloads elsewhere.
        assert!(p.open(&d, 3000, "http://a/x").expect("open").is_none());
        drop(r);

        let r = p.open(&d, 3000, "http://b/x").expect("open").expect("usable");
        assert_eq!(r.counter.len(), 0, "another URL starts afresh");
        assert_eq!(std::fs::metadata(p.data_path(&d)).expect("meta").len(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn links_and_special_files_in_its_place_are_removed_never_followed() {
        let (tmp, p) = setup();
        std::fs::create_dir(tmp.path().join(PARTIAL_DIR)).expect("mkdir");
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"precious").expect("write");
        let d = Sha256Digest::of(b"x");
        std::os::unix::fs::symlink(&outside, p.data_path(&d)).expect("link");
        std::os::unix::fs::symlink(&outside, p.meta_path(&d)).expect("link");
        let r = p.open(&d, PARTIAL_MIN, "u").expect("open").expect("usable");
        assert_eq!(r.counter.len(), 0);
        p.record(&d, PARTIAL_MIN, "u", None).expect("record");
        assert_eq!(std::fs::read(&outside).expect("read"), b"precious");
        assert!(
            !std::fs::symlink_metadata(p.data_path(&d))
                .expect("meta")
                .is_symlink()
        );
        drop(r);
        p.discard(&d);
        nix::unistd::mkfifo(&p.data_path(&d), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let r = p
            .open(&d, PARTIAL_MIN, "u")
            .expect("open without blocking")
            .expect("usable");
        assert!(r.file.metadata().expect("meta").is_file());
    }

    #[test]
    fn cleaning_keeps_only_what_the_plan_can_use() {
        let (tmp, p) = setup();
        let (a, b) = (Sha256Digest::of(b"a"), Sha256Digest::of(b"b"));
        for d in [a, b] {
            let mut r = p.open(&d, 10, "u").expect("open").expect("usable");
            p.record(&d, 10, "u", None).expect("record");
            r.file.write_all(b"12345").expect("write");
        }
        std::fs::write(tmp.path().join(PARTIAL_DIR).join("junk"), b"?").expect("write");
        let old = File::options().write(true).open(p.data_path(&b)).expect("open");
        old.set_modified(SystemTime::now() - PARTIAL_MAX_AGE - Duration::from_secs(60))
            .expect("age it");
        let keep: BTreeMap<_, _> = [(a, 10), (b, 10)].into_iter().collect();
        p.clean(&keep);
        let mut names: Vec<_> = std::fs::read_dir(tmp.path().join(PARTIAL_DIR))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [a.to_hex(), format!("{}.json", a.to_hex())]);
        p.clean(&[(a, 4)].into_iter().collect());
        assert!(!p.data_path(&a).exists(), "longer than its blob");
        p.clean(&BTreeMap::new());
        assert!(!tmp.path().join(PARTIAL_DIR).exists());
    }
}
