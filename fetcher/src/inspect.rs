//! `status` and `verify`: read-only views of an install. [`status`] reads the
//! state files; [`verify`] re-hashes every managed file in parallel (a
//! bounded pool of threads, large reads) and reports drift. Repair is a sync
//! that treats the drifted files as modified (see `SyncOptions::treat_as_modified`).

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::error::SyncError;
use crate::journal;
use crate::local::Local;
use crate::lock::DirLock;
use crate::place::Tree;
use crate::side::InstallSide;
use crate::state::{self, InstalledFile, StatePaths};

/// What `atlas-fetcher status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Whether `install.json` exists (if not, the other fields are empty).
    pub installed: bool,
    pub pack: Option<String>,
    pub channel: Option<String>,
    pub version: Option<u64>,
    pub build: Option<String>,
    pub side: Option<InstallSide>,
    /// Managed files.
    pub files: usize,
    /// Managed files the user changed and the `keep` policy left in place.
    pub kept_modified: usize,
    /// Expiry (Unix seconds) of the last accepted pointer for this pack/channel.
    pub pointer_expires_at: Option<u64>,
    /// When (Unix seconds, this host's clock) a pointer was last accepted
    /// in this directory: the last sync that checked the channel.
    pub last_accepted_at: Option<u64>,
    /// A killed apply left a journal: the next run finishes or undoes it.
    pub journal_pending: bool,
}

/// Reads the state of `dir` (writes nothing, takes no lock).
pub fn status(dir: &Path) -> Result<Status, SyncError> {
    let local = Local::open(&StatePaths::new(dir))?;
    let install = local.load_install()?;
    let trust = local.load_trust()?;
    let journal_pending = journal::load(&local)?.is_some();
    let Some(i) = install else {
        return Ok(Status {
            installed: false,
            pack: None,
            channel: None,
            version: None,
            build: None,
            side: None,
            files: 0,
            kept_modified: 0,
            pointer_expires_at: None,
            last_accepted_at: trust.last_time,
            journal_pending,
        });
    };
    let expires = trust
        .channels
        .get(&state::channel_key(&i.pack, &i.channel))
        .map(|e| e.expires_at);
    Ok(Status {
        installed: true,
        files: i.files.len(),
        kept_modified: i.files.iter().filter(|f| f.modified).count(),
        pack: Some(i.pack),
        channel: Some(i.channel),
        version: Some(i.version),
        build: Some(i.build.0.to_hex()),
        side: Some(i.side),
        pointer_expires_at: expires,
        last_accepted_at: trust.last_time,
        journal_pending,
    })
}

/// What `atlas-fetcher verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Managed files checked (preserved files are the user's and are skipped).
    pub checked: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Files whose content is not what was installed, sorted.
    pub modified: Vec<String>,
    /// Files that are gone (or are not regular files), sorted.
    pub missing: Vec<String>,
    /// A killed apply left a journal: the next run finishes or undoes it.
    pub journal_pending: bool,
}

impl Verification {
    /// No drift.
    pub fn clean(&self) -> bool {
        self.modified.is_empty() && self.missing.is_empty() && !self.journal_pending
    }

    /// Paths to repair.
    pub fn drifted(&self) -> impl Iterator<Item = &String> {
        self.modified.iter().chain(&self.missing)
    }
}

/// Default number of hashing threads: the available parallelism, at most 8.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
}

/// Re-hashes every managed file of `dir` with `threads` threads. Holds the
/// directory's lock, so it never sees a half-applied sync; writes nothing.
pub fn verify(dir: &Path, threads: usize) -> Result<Verification, SyncError> {
    let lock = DirLock::acquire(&StatePaths::new(dir))?;
    let local = lock.local();
    let journal_pending = journal::load(local)?.is_some();
    let Some(install) = local.load_install()? else {
        return Err(SyncError::NotInstalled {
            dir: dir.to_owned(),
            action: "verify".into(),
        });
    };
    let files: Vec<&InstalledFile> = install.files.iter().filter(|f| !f.preserve).collect();
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Verification {
        checked: files.len(),
        journal_pending,
        ..Verification::default()
    });
    let tree = Tree::new(local.dir()?);
    let worker = || -> Result<(), SyncError> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(f) = files.get(i) else {
                return Ok(());
            };
            // Read without following links: a link or a FIFO in place of
            // a managed file is "missing" (not a regular file), never read through.
            let seen = match tree.parent(&f.path, false)? {
                Some((d, name)) => match d.open_read(name) {
                    Ok(Some(file)) => Some(crate::durable::hash_open(&file).ok()),
                    Ok(None) | Err(SyncError::Link { .. } | SyncError::NotARegularFile { .. }) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            let mut o = out
                .lock()
                .map_err(|_| SyncError::Internal("a verify thread panicked".into()))?;
            match seen {
                None | Some(None) => o.missing.push(f.path.clone()),
                Some(Some((h, len))) => {
                    o.bytes += len;
                    if h != f.sha256.0 || len != f.size {
                        o.modified.push(f.path.clone());
                    }
                }
            }
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| SyncError::Internal("a verify thread panicked".into()))?
            })
            .collect::<Result<Vec<()>, SyncError>>()
    })?;
    let mut v = out
        .into_inner()
        .map_err(|_| SyncError::Internal("a verify thread panicked".into()))?;
    v.modified.sort();
    v.missing.sort();
    Ok(v)
}
