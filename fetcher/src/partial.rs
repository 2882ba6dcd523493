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
//! The directory's owner (the server's user) can write here. The directory
//! is reached from the state directory's handle and every entry from the
//! directory's, one name at a time, without following links
//! ([`crate::safe_dir`]); files are opened with `O_NONBLOCK`, must be
//! regular files (checked on the open descriptor), are locked while in use,
//! and anything else found here is removed, never read through. A link in
//! place of the directory itself is left alone, with a warning, and
//! downloads then go to staging. What the directory keeps is bounded: only
//! blobs of the current plan, each no longer than its declared size, none
//! older than [`PARTIAL_MAX_AGE`]; the rest is removed when downloads
//! start, and everything once they have all succeeded.
//!
//! All functions here do blocking I/O: call them from a blocking thread.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use atlas_proto::digest::HashingCounter;
use atlas_proto::{IoError, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::error::SyncError;
use crate::safe_dir::SafeDir;

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
    /// The partial directory (opened without following links) and the file's name in it.
    pub dir: Arc<SafeDir>,
    pub name: String,
}

/// The partial directory of one target directory.
#[derive(Debug, Clone)]
pub struct PartialDir {
    /// The state directory (`DIR/.atlas`), opened without following links.
    state: Arc<SafeDir>,
}

fn hex_name(name: &str) -> Option<Sha256Digest> {
    (name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| name.parse().ok())
    .flatten()
}

/// Opens `name` in `dir` for reading and writing, creating it if missing,
/// never through a link and never waiting; whatever else is there (a link,
/// a FIFO, a directory) is removed first (the name, never its target).
fn open_file(dir: &SafeDir, name: &str) -> Result<File, SyncError> {
    match dir.open_or_create(name) {
        Ok(f) => Ok(f),
        Err(SyncError::Link { .. } | SyncError::NotARegularFile { .. }) => {
            dir.remove_all(name)?;
            dir.open_or_create(name)
        }
        Err(e) => Err(e),
    }
}

/// Removes `name` from `dir` whatever it is (a link itself, not its target).
fn remove_entry(dir: &SafeDir, name: &str) {
    if let Err(e) = dir.remove_all(name) {
        tracing::warn!("cannot remove {}: {e}", dir.join(name).display());
    }
}

impl PartialDir {
    /// The partial directory inside the state directory `state` (`DIR/.atlas`).
    pub fn new(state: Arc<SafeDir>) -> Self {
        Self { state }
    }

    /// Whether a blob of `size` bytes is downloaded through here.
    pub fn wants(size: u64) -> bool {
        size >= PARTIAL_MIN
    }

    /// The name of the bytes of blob `d` in the directory.
    pub fn data_name(d: &Sha256Digest) -> String {
        d.to_hex()
    }

    fn meta_name(d: &Sha256Digest) -> String {
        format!("{}.json", d.to_hex())
    }

    /// The directory, if it exists and is one (a link in its place is not
    /// followed: `None`, with a warning).
    fn dir(&self) -> Option<SafeDir> {
        match self.state.open_dir(PARTIAL_DIR) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("{e}; downloads are not kept across runs until it is removed");
                None
            }
        }
    }

    /// The directory, created if missing; `None` (with a warning) when it
    /// cannot be used: downloads then go to staging as if nothing were kept.
    fn ready(&self) -> Option<SafeDir> {
        match self.state.create_dir(PARTIAL_DIR) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!("{e}; downloads are not kept across runs");
                None
            }
        }
    }

    /// Opens the partial download of blob `d` (`size` bytes, from `url`),
    /// creating it if there is none. What it holds is hashed, from the
    /// returned descriptor, if it came from the same URL and is not longer
    /// than `size`; otherwise it is emptied. `None` when the directory is
    /// not usable or another process is writing this blob: the caller then
    /// downloads to staging.
    pub fn open(&self, d: &Sha256Digest, size: u64, url: &str) -> Result<Option<Resume>, SyncError> {
        let Some(dir) = self.ready() else {
            return Ok(None);
        };
        let name = Self::data_name(d);
        let path = dir.join(&name);
        // Bytes someone else could still change after they were hashed are
        // never kept: such a file is removed and the download starts afresh
        // in a file of this process (see [`crate::verified`]).
        let mut file = None;
        for _ in 0..2 {
            match open_file(&dir, &name) {
                Ok(f) if f.metadata().is_ok_and(|m| crate::verified::is_private(&m)) => {
                    file = Some(f);
                    break;
                }
                Ok(_) => {
                    tracing::warn!("{} is writable by another user; not resuming it", path.display());
                    dir.remove_all(&name)?;
                }
                Err(e) => {
                    tracing::warn!("cannot use {}: {e}; downloading to staging", path.display());
                    return Ok(None);
                }
            }
        }
        let Some(file) = file else {
            tracing::warn!("cannot use {}; downloading to staging", path.display());
            return Ok(None);
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
        let meta = read_meta(&dir, d);
        let usable = meta
            .as_ref()
            .is_some_and(|m| m.format == META_FORMAT && m.url == url && m.size == size);
        let mut resume = Resume {
            file,
            counter: HashingCounter::new(),
            if_range: None,
            dir: Arc::new(dir),
            name,
        };
        if usable {
            hash_prefix(&mut resume.file, size, &mut resume.counter)
                .map_err(IoError::at("reading the partial download", &path))?;
            resume.if_range = meta.and_then(|m| m.if_range);
        }
        // Anything past what was hashed (or everything, when unusable) goes.
        let keep = resume.counter.len();
        resume
            .file
            .set_len(keep)
            .and_then(|()| resume.file.seek(SeekFrom::Start(keep)))
            .map_err(IoError::at("truncating the partial download", &path))?;
        if keep > 0 {
            tracing::info!(blob = %d, bytes = keep, "a partial download was kept from an earlier run");
        }
        Ok(Some(resume))
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
        let dir = self.ready().ok_or_else(|| {
            SyncError::Internal(format!(
                "{} is not usable",
                self.state.join(PARTIAL_DIR).display()
            ))
        })?;
        let name = Self::meta_name(d);
        let bytes = serde_json::to_vec(&meta).map_err(|e| SyncError::Internal(e.to_string()))?;
        let mut file = open_file(&dir, &name)?;
        file.set_len(0)
            .and_then(|()| file.write_all(&bytes))
            .map_err(IoError::at("writing", dir.join(&name)))?;
        Ok(())
    }

    /// Forgets the partial download of `d` (its bytes did not verify).
    pub fn discard(&self, d: &Sha256Digest) {
        if let Some(dir) = self.dir() {
            remove_entry(&dir, &Self::data_name(d));
            remove_entry(&dir, &Self::meta_name(d));
        }
    }

    /// Moves the verified download of `d` to `to/to_name` (in staging).
    ///
    /// The rename goes by name: when another user can write this directory
    /// (the server's user made it), they could have put other bytes under
    /// that name since the download was verified, so the staged file is
    /// then hashed again through its own descriptor, and removed with an
    /// integrity error when it is not `d`. A directory only this user can
    /// write (the usual case: the fetcher made it) needs no second pass.
    pub fn finish(&self, d: &Sha256Digest, to: &SafeDir, to_name: &str) -> Result<(), SyncError> {
        let dir = self.dir().ok_or_else(|| {
            SyncError::Internal(format!("{} is gone", self.state.join(PARTIAL_DIR).display()))
        })?;
        dir.rename(&Self::data_name(d), to, to_name)?;
        remove_entry(&dir, &Self::meta_name(d));
        if only_ours(&dir) {
            return Ok(());
        }
        let staged = to.open_read(to_name)?.map(|f| crate::durable::hash_open(&f));
        match staged {
            Some(Ok((got, _))) if got == *d => Ok(()),
            other => {
                let _ = to.remove_file(to_name);
                Err(SyncError::BlobHash {
                    path: to.join(to_name).display().to_string(),
                    url: dir.join(&Self::data_name(d)).display().to_string(),
                    expected: d.to_hex(),
                    actual: match other {
                        Some(Ok((got, _))) => got.to_hex(),
                        _ => "unreadable".into(),
                    },
                })
            }
        }
    }

    /// Removes every entry no download of `keep` (blob → declared size)
    /// can use: other names, other blobs, anything but a regular file,
    /// data longer than its blob, entries older than [`PARTIAL_MAX_AGE`],
    /// side files without data. With `keep` empty, removes the directory.
    pub fn clean(&self, keep: &BTreeMap<Sha256Digest, u64>) {
        let Some(dir) = self.dir() else {
            return;
        };
        if keep.is_empty() {
            remove_entry(&self.state, PARTIAL_DIR);
            return;
        }
        let Ok(entries) = dir.entries() else {
            return;
        };
        if entries.len() > MAX_ENTRIES {
            tracing::warn!("{} holds too many entries; removing it", dir.path().display());
            remove_entry(&self.state, PARTIAL_DIR);
            return;
        }
        let now = SystemTime::now();
        let mut entries = entries;
        // Data first, so a side file whose data goes is seen without it.
        entries.sort_by_key(|(name, _)| name.ends_with(".json"));
        for (name, m) in entries {
            let (hex, is_meta) = match name.strip_suffix(".json") {
                Some(h) => (h, true),
                None => (name.as_str(), false),
            };
            let fresh = m
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t.into_std()).ok())
                .is_none_or(|age| age <= PARTIAL_MAX_AGE);
            let wanted = hex_name(hex).and_then(|d| keep.get(&d).map(|size| (d, *size)));
            let useful = match wanted {
                Some((_, size)) if !is_meta => m.is_file() && m.len() <= size && fresh,
                Some((d, _)) => {
                    m.is_file()
                        && m.len() <= META_MAX
                        && dir
                            .entry(&Self::data_name(&d))
                            .ok()
                            .flatten()
                            .is_some_and(|m| m.is_file())
                }
                None => false,
            };
            if !useful {
                tracing::debug!("removing {}", dir.join(&name).display());
                remove_entry(&dir, &name);
            }
        }
    }
}

/// Whether only this process's user (and root) can add, remove or rename
/// entries of `dir`: owned by the effective user, writable by no one else.
fn only_ours(dir: &SafeDir) -> bool {
    #[cfg(unix)]
    {
        use cap_std::fs::{MetadataExt as _, PermissionsExt as _};
        dir.metadata().is_ok_and(|m| {
            m.uid() == rustix::process::geteuid().as_raw() && m.permissions().mode() & 0o022 == 0
        })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

fn read_meta(dir: &SafeDir, d: &Sha256Digest) -> Option<Meta> {
    let bytes = dir.read_capped(&PartialDir::meta_name(d), META_MAX).ok()??;
    serde_json::from_slice(&bytes).ok()
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
        let p = PartialDir::new(Arc::new(SafeDir::open_ambient(tmp.path()).expect("open")));
        (tmp, p)
    }

    fn data(tmp: &tempfile::TempDir, d: &Sha256Digest) -> std::path::PathBuf {
        tmp.path().join(PARTIAL_DIR).join(PartialDir::data_name(d))
    }

    fn meta(tmp: &tempfile::TempDir, d: &Sha256Digest) -> std::path::PathBuf {
        tmp.path().join(PARTIAL_DIR).join(PartialDir::meta_name(d))
    }

    #[test]
    fn a_prefix_from_the_same_url_is_hashed_and_kept_else_emptied() {
        let (tmp, p) = setup();
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
        assert_eq!(std::fs::metadata(data(&tmp, &d)).expect("meta").len(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn links_and_special_files_in_its_place_are_removed_never_followed() {
        let (tmp, p) = setup();
        std::fs::create_dir(tmp.path().join(PARTIAL_DIR)).expect("mkdir");
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"precious").expect("write");
        let d = Sha256Digest::of(b"x");
        std::os::unix::fs::symlink(&outside, data(&tmp, &d)).expect("link");
        std::os::unix::fs::symlink(&outside, meta(&tmp, &d)).expect("link");
        let r = p.open(&d, PARTIAL_MIN, "u").expect("open").expect("usable");
        assert_eq!(r.counter.len(), 0);
        p.record(&d, PARTIAL_MIN, "u", None).expect("record");
        assert_eq!(std::fs::read(&outside).expect("read"), b"precious");
        assert!(
            !std::fs::symlink_metadata(data(&tmp, &d))
                .expect("meta")
                .is_symlink()
        );
        drop(r);
        p.discard(&d);
        nix::unistd::mkfifo(&data(&tmp, &d), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let r = p
            .open(&d, PARTIAL_MIN, "u")
            .expect("open without blocking")
            .expect("usable");
        assert!(r.file.metadata().expect("meta").is_file());
    }

    #[cfg(unix)]
    /// The partial directory writable by another user: bytes swapped in
    /// under the verified download's name after its download are caught
    /// when they reach staging, and removed. Before, `finish` moved them
    /// in by name and they were installed unchecked.
    #[cfg(unix)]
    #[test]
    fn bytes_swapped_in_after_the_download_never_reach_staging_unchecked() {
        use std::os::unix::fs::PermissionsExt as _;
        let (tmp, p) = setup();
        let blob = vec![7u8; 3000];
        let d = Sha256Digest::of(&blob);
        let mut r = p.open(&d, 3000, "u").expect("open").expect("usable");
        r.file.write_all(&blob).expect("write");
        drop(r);
        let staging = tmp.path().join("staging");
        std::fs::create_dir(&staging).expect("mkdir");
        let to = SafeDir::open_ambient(&staging).expect("open");
        let partial = tmp.path().join(PARTIAL_DIR);
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o777)).expect("chmod");

        // Verified, then swapped by name for other bytes of the same size.
        std::fs::remove_file(data(&tmp, &d)).expect("rm");
        std::fs::write(data(&tmp, &d), vec![6u8; 3000]).expect("plant");
        let err = p.finish(&d, &to, "blob").expect_err("swapped bytes");
        assert!(matches!(err, SyncError::BlobHash { .. }), "{err}");
        assert!(!staging.join("blob").exists(), "removed from staging");

        // The verified bytes themselves go through.
        std::fs::write(data(&tmp, &d), &blob).expect("write");
        p.finish(&d, &to, "blob").expect("the right bytes");
        assert_eq!(std::fs::read(staging.join("blob")).expect("staged"), blob);
    }

    #[test]
    fn a_prefix_another_user_could_rewrite_is_not_resumed() {
        use std::os::unix::fs::PermissionsExt as _;
        let (tmp, p) = setup();
        let blob = vec![9u8; 3000];
        let d = Sha256Digest::of(&blob);
        let mut r = p.open(&d, 3000, "u").expect("open").expect("usable");
        p.record(&d, 3000, "u", None).expect("record");
        r.file.write_all(&blob[..1000]).expect("write");
        drop(r);
        // The right bytes, but writable by the group and others: they could
        // change between the hash and the move into staging.
        std::fs::set_permissions(data(&tmp, &d), std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let r = p.open(&d, 3000, "u").expect("open").expect("usable");
        assert_eq!(r.counter.len(), 0, "started afresh");
        let m = r.file.metadata().expect("meta");
        assert!(crate::verified::is_private(&m), "a new file of this process");
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
        let old = File::options().write(true).open(data(&tmp, &b)).expect("open");
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
        assert!(!data(&tmp, &a).exists(), "longer than its blob");
        p.clean(&BTreeMap::new());
        assert!(!tmp.path().join(PARTIAL_DIR).exists());
    }
}
