//! The sync algorithm and the embeddable API. [`Syncer`] keeps one directory
//! at the build one channel points to: [`Syncer::check`] (`check.rs`: the
//! signed pointer, the keyset chain of `keychain.rs`, the manifest, all
//! verified), [`Syncer::plan`] (here: the diff against the install and the
//! disk), [`Syncer::apply`] (`apply.rs`: staged downloads, then the journaled
//! apply), and [`Syncer::sync`], which composes them under one lock;
//! `prefetch.rs` downloads ahead of an apply and `rollback.rs` re-installs an
//! earlier build. docs/FORMAT.md describes the same steps.
//!
//! Layering: this file holds the types and the steps every part uses; the
//! files beside it add `impl Syncer` blocks and import from here, never the
//! other way round.
//!
//! Dropping a future of this module is always safe: each public `async fn`
//! says what is left behind. In short, nothing is changed until the
//! journaled apply starts, and once it has, it finishes on its own thread,
//! holding the directory's lock, whether or not anyone still awaits it.

mod apply;
mod check;
pub mod keychain;
pub mod prefetch;
mod repair;
mod rollback;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use atlas_proto::v1::Manifest;
use atlas_proto::{Limits, PublicKey, Sha256Digest, VerifiedPointer, layout};

use crate::download::DEFAULT_PARALLELISM;
use crate::durable;
use crate::error::SyncError;
use crate::interrupt::Interrupt;
use crate::journal::{self, Recovery};
use crate::local::Local;
use crate::lock::DirLock;
use crate::place;
use crate::plan::{self, Observed, OnModified, Plan};
use crate::progress::{Phase, Progress};
use crate::report::{Outcome, Report};
use crate::retry::RetryPolicy;
use crate::safe_dir::SafeDir;
use crate::select::Selection;
use crate::side::InstallSide;
use crate::source::{self, Source};
use crate::state::{InstallState, InstalledFile, StatePaths, TrustState};

/// How far the clock may be behind the last time recorded in `trust.json`
/// (NTP corrections, a VM resumed from a snapshot) before a run is refused.
pub const CLOCK_SLACK_SECS: u64 = 3600;

/// Directory (inside the state directory) of user files backed up by `--on-modified backup`.
pub const BACKUPS_DIR: &str = "backups";

/// A conditional request for the pointer is sent only while its last full
/// fetch is younger than this (10 minutes), so a validator collision on the
/// server (see `check.rs`) keeps a host behind for at most that long plus
/// its polling interval. docs/FORMAT.md §5 states the bound.
pub const REVALIDATE_AFTER_SECS: u64 = 600;

/// Default `--deadline`: how long the network part of a run (check and
/// downloads) may take. Big downloads it cuts short are resumed by the next
/// run (see [`crate::partial`]).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// What to sync, from where, into where.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// `http(s)://` base URL of the store, `file://` URL or local directory.
    pub source: String,
    pub pack: String,
    pub channel: String,
    /// Keys trusted to sign the channel pointer (any one suffices); empty
    /// when `root` is set.
    pub keys: Vec<PublicKey>,
    /// Root of trust (`--root`): the pointer keys then come from the pack's
    /// keyset chain, followed from this keyset (docs/FORMAT.md §3a).
    pub root: Option<atlas_proto::keyset::Keyset>,
    /// Target directory (created if missing).
    pub dir: PathBuf,
    pub side: InstallSide,
    /// Blobs downloaded at once.
    pub parallelism: usize,
    /// The current time in Unix seconds, for expiry checks; `None` reads the
    /// system clock (tests and replays set it).
    pub now: Option<u64>,
    /// Retries of failed requests (tests set a tiny base delay).
    pub retry: RetryPolicy,
    /// Per-request timeout: between two chunks of a body; the pointer
    /// request as a whole.
    pub timeout: Duration,
    /// Establishing a connection.
    pub connect_timeout: Duration,
    /// From sending a request (connecting included) to its response headers.
    pub header_timeout: Duration,
    /// A body bringing fewer bytes per second than this, over
    /// `low_speed_time`, fails and is retried (0: no limit).
    pub low_speed_limit: u64,
    pub low_speed_time: Duration,
    /// Overall deadline of the network part of a run (check and downloads),
    /// [`DEFAULT_DEADLINE`] unless set; once files start moving into place,
    /// the apply always finishes. `None`: no deadline.
    pub deadline: Option<Duration>,
    /// What to do with managed files the user changed.
    pub on_modified: OnModified,
    /// Paths to handle as changed by the user whatever their size and mtime
    /// say (from `verify --repair`); when not empty, the manifest is always
    /// fetched and planned (no 304 shortcut).
    pub treat_as_modified: BTreeSet<String>,
    /// Optional files to take or leave, beyond the pack's defaults.
    pub selection: Selection,
    /// A blob cache shared by the instances on this host (`--cache`).
    pub cache: Option<PathBuf>,
    /// Caps on what the store may send (manifest, pointer, keysets);
    /// [`Limits::DEFAULT`] unless a launcher needs others.
    pub limits: Limits,
    /// Set it to stop the run at its next step (see [`crate::interrupt`]).
    pub interrupt: Interrupt,
}

impl SyncOptions {
    /// Options with the defaults: server side, parallelism 8, the network
    /// limits of [`source::NetLimits::default`], a deadline of 30 minutes.
    pub fn new(
        source: impl Into<String>,
        pack: impl Into<String>,
        channel: impl Into<String>,
        keys: Vec<PublicKey>,
        dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            source: source.into(),
            pack: pack.into(),
            channel: channel.into(),
            keys,
            root: None,
            dir: dir.into(),
            side: InstallSide::Server,
            parallelism: DEFAULT_PARALLELISM,
            now: None,
            retry: RetryPolicy::default(),
            timeout: source::DEFAULT_TIMEOUT,
            connect_timeout: source::DEFAULT_CONNECT_TIMEOUT,
            header_timeout: source::DEFAULT_HEADER_TIMEOUT,
            low_speed_limit: source::DEFAULT_LOW_SPEED_LIMIT,
            low_speed_time: source::DEFAULT_LOW_SPEED_TIME,
            deadline: Some(DEFAULT_DEADLINE),
            on_modified: OnModified::Keep,
            treat_as_modified: Default::default(),
            selection: Default::default(),
            cache: None,
            limits: Limits::DEFAULT,
            interrupt: Interrupt::default(),
        }
    }

    /// The timeouts and low-speed limit of these options.
    pub fn net_limits(&self) -> source::NetLimits {
        source::NetLimits {
            connect_timeout: self.connect_timeout,
            header_timeout: self.header_timeout,
            timeout: self.timeout,
            low_speed_limit: self.low_speed_limit,
            low_speed_time: self.low_speed_time,
        }
    }

    /// The install recorded in `dir`; `to` says what needs it (`"roll back"`).
    fn recorded_install(&self, to: &str) -> Result<InstallState, SyncError> {
        let local = Local::open(&StatePaths::new(&self.dir))?;
        local.load_install()?.ok_or_else(|| SyncError::NotInstalled {
            dir: self.dir.clone(),
            action: to.to_owned(),
        })
    }

    /// Takes pack, channel, side and optional files from the install in
    /// `dir` (rollback and repair keep the directory what it is).
    fn follow_install(&mut self, to: &str) -> Result<(), SyncError> {
        let install = self.recorded_install(to)?;
        self.pack = install.pack;
        self.channel = install.channel;
        self.side = install.side;
        self.selection = install.selection;
        Ok(())
    }
}

/// How the channel compares with the installed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// The pointer did not change (HTTP 304) and the install is intact.
    NotModified,
    /// The pointer names the installed build, which is intact on disk.
    Current,
    /// The manifest was fetched: a new build, a side change, or files to repair.
    Changed,
}

/// The verified result of [`Syncer::check`].
#[derive(Debug)]
pub struct Check {
    pub status: CheckStatus,
    /// Pointer version (the stored one when not modified).
    pub version: u64,
    /// Build the channel points to.
    pub build: Sha256Digest,
    /// The verified manifest, when `status` is `Changed`.
    pub manifest: Option<Manifest>,
    /// Its bytes as fetched (kept in `.atlas/builds/` for rollback).
    manifest_bytes: Option<Vec<u8>>,
    /// The channel points at the build `rollback` moved away from: nothing
    /// is installed until it points elsewhere.
    pub held: bool,
    pointer: Option<VerifiedPointer>,
    etag: Option<String>,
    trust: TrustState,
    install: Option<InstallState>,
    /// Sorted ids of the keys the pointer was checked against.
    trusted_keys: Vec<String>,
    /// The current keyset (root-of-trust mode), and whether to store it.
    keyset: Option<atlas_proto::keyset::Keyset>,
    keyset_changed: bool,
}

impl Check {
    /// A check that names `build` with its verified `manifest` without a
    /// pointer (rollback to a kept build): the trust state stays as it is.
    fn new_changed(
        build: Sha256Digest,
        version: u64,
        manifest: Manifest,
        trust: TrustState,
        install: InstallState,
    ) -> Self {
        Self {
            status: CheckStatus::Changed,
            version,
            build,
            manifest: Some(manifest),
            manifest_bytes: None,
            held: false,
            pointer: None,
            etag: None,
            trust,
            install: Some(install),
            trusted_keys: Vec::new(),
            keyset: None,
            keyset_changed: false,
        }
    }

    /// The installed state read at check time.
    pub fn installed(&self) -> Option<&InstallState> {
        self.install.as_ref()
    }

    /// The keyset the pointer was checked against (`None` with `--key`).
    pub fn keyset(&self) -> Option<&atlas_proto::keyset::Keyset> {
        self.keyset.as_ref()
    }

    /// The verified pointer (`None` when the server answered 304).
    pub fn pointer(&self) -> Option<&VerifiedPointer> {
        self.pointer.as_ref()
    }
}

/// Syncs one directory with one channel.
#[derive(Debug)]
pub struct Syncer {
    opts: SyncOptions,
    source: Source,
    paths: StatePaths,
    key_ids: Vec<String>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether the file `name` in `dir` no longer holds what `f` records as
/// installed: a link, or size or mtime differ (or mtime unknown, or flagged
/// modified) and the content hash confirms it. An unreadable file is not
/// "modified".
fn is_modified(dir: &SafeDir, name: &str, meta: &cap_std::fs::Metadata, f: &InstalledFile) -> bool {
    if meta.is_symlink() || meta.len() != f.size {
        return true;
    }
    if !f.modified && f.mtime_ns.is_some() && durable::cap_mtime_ns(meta) == f.mtime_ns {
        return false;
    }
    match dir.open_read(name) {
        Ok(Some(file)) => durable::hash_open(&file).is_ok_and(|(h, _)| h != f.sha256.0),
        _ => false,
    }
}

impl Syncer {
    /// Validates the options (ids, keys, source) without any I/O.
    pub fn new(opts: SyncOptions) -> Result<Self, SyncError> {
        Self::with_keys_required(opts, true)
    }

    fn with_keys_required(opts: SyncOptions, require_keys: bool) -> Result<Self, SyncError> {
        layout::validate_pack_id(&opts.pack).map_err(|e| SyncError::Usage(e.to_string()))?;
        layout::validate_channel(&opts.channel).map_err(|e| SyncError::Usage(e.to_string()))?;
        if require_keys && opts.keys.is_empty() && opts.root.is_none() {
            return Err(SyncError::Usage(
                "no trusted key given: pass the pack's root of trust with --root, or its public key with --key".into(),
            ));
        }
        if !opts.keys.is_empty() && opts.root.is_some() {
            return Err(SyncError::Usage(
                "give either --root (the pack's keyset chain) or --key, not both".into(),
            ));
        }
        let source = Source::parse_with(&opts.source, opts.net_limits())?;
        let mut key_ids: Vec<String> = opts.keys.iter().map(PublicKey::key_id).collect();
        key_ids.sort();
        key_ids.dedup();
        Ok(Self {
            paths: StatePaths::new(&opts.dir),
            opts,
            source,
            key_ids,
        })
    }

    /// The time expiry is checked against.
    fn now(&self) -> u64 {
        self.opts.now.unwrap_or_else(now_unix)
    }

    pub fn options(&self) -> &SyncOptions {
        &self.opts
    }

    /// Takes the directory's lock, then finishes or undoes an apply a
    /// killed run left behind (see [`crate::journal`]). The lock is shared
    /// (`Arc`) so that the blocking apply a run starts holds it as long as
    /// it works, even when the run's future is dropped.
    fn lock_and_recover(&self) -> Result<(Arc<DirLock>, Recovery), SyncError> {
        let lock = Arc::new(DirLock::acquire(&self.paths)?);
        let r = journal::recover(lock.local())?;
        if r != Recovery::Clean {
            tracing::warn!(?r, "recovered an interrupted apply");
        }
        Ok((lock, r))
    }

    /// When a run starting now must be over.
    fn deadline(&self) -> Option<Instant> {
        self.opts.deadline.map(|d| Instant::now() + d)
    }

    /// Runs `fut`, failing with [`SyncError::Deadline`] if `deadline` passes first.
    async fn by<T>(
        &self,
        deadline: Option<Instant>,
        fut: impl Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        match deadline {
            None => fut.await,
            Some(d) => tokio::time::timeout_at(d, fut)
                .await
                .map_err(|_| SyncError::Deadline {
                    secs: self.opts.deadline.map_or(0, |d| d.as_secs()),
                })?,
        }
    }

    /// Compares the checked build with the install and the disk. Writes nothing.
    pub fn plan(&self, check: &Check, progress: &dyn Progress) -> Result<Plan, SyncError> {
        let Some(m) = &check.manifest else {
            return Ok(Plan::default());
        };
        self.opts.interrupt.check()?;
        progress.phase(&Phase::Planning);
        if let Err(e) = self.opts.selection.validate(&m.files, self.opts.side) {
            // A name the host just chose is checked strictly (a typo must not
            // pass silently); one that matched before and no longer does (the
            // pack renamed or dropped the file) only warns, so cron keeps working.
            match &check.install {
                Some(i) if i.selection == self.opts.selection => tracing::warn!("{e}"),
                _ => return Err(e),
            }
        }
        // Read through handles, never following a link: a link where a file
        // is expected is the user's (observed, never read through); a link
        // among the directories is refused when the apply gets there.
        let local = Local::open(&self.paths)?;
        let tree = local.try_dir().map(place::Tree::new);
        let observe = |rel: &str, before: Option<&InstalledFile>| {
            let Some(Ok(Some((dir, name)))) = tree.as_ref().map(|t| t.parent(rel, false)) else {
                return Observed::Missing;
            };
            match dir.entry(name) {
                Ok(Some(meta)) if meta.is_file() || meta.is_symlink() => Observed::File {
                    size: meta.len(),
                    mtime_ns: durable::cap_mtime_ns(&meta),
                    modified: before.is_some_and(|b| {
                        self.opts.treat_as_modified.contains(rel) || is_modified(&dir, name, &meta, b)
                    }),
                },
                Ok(Some(_)) => Observed::NotAFile,
                _ => Observed::Missing,
            }
        };
        plan::plan_with(
            &m.files,
            self.opts.side,
            &self.opts.selection,
            check.install.as_ref(),
            &observe,
            self.opts.on_modified,
        )
    }

    fn report(&self, check: &Check, outcome: Outcome) -> Report {
        Report {
            outcome,
            pack: self.opts.pack.clone(),
            channel: self.opts.channel.clone(),
            version: check.version,
            build: check.build.to_hex(),
            previous_build: check.install.as_ref().map(|i| i.build.0.to_hex()),
            side: self.opts.side,
            not_modified: check.status == CheckStatus::NotModified,
            dry_run: false,
            counts: Default::default(),
            bytes_downloaded: 0,
            bytes_planned: 0,
            files: Default::default(),
            backup_dir: None,
            held_at: check
                .held
                .then(|| check.install.as_ref().map(|i| i.build.0.to_hex()))
                .flatten(),
        }
    }

    /// The report a dry run gives: the plan, nothing changed.
    pub fn dry_run_report(&self, check: &Check, plan: &Plan) -> Report {
        let outcome = if check.status == CheckStatus::Changed && !plan.is_noop() {
            Outcome::WouldUpdate
        } else {
            Outcome::Current
        };
        let mut r = self.report(check, outcome).with_plan(plan);
        r.dry_run = true;
        r
    }

    /// Check, plan, and (unless `dry_run`) apply, holding the directory's
    /// lock for the whole run (a dry run writes nothing and takes no lock).
    ///
    /// Dropping the future before the apply starts moving files stops the
    /// run: staging is removed, the lock released, the directory as it was.
    /// Dropped later, the apply finishes on its own (see [`Syncer::apply`]).
    pub async fn sync(&self, dry_run: bool, progress: &dyn Progress) -> Result<Report, SyncError> {
        let lock = if dry_run {
            None
        } else {
            Some(self.lock_and_recover()?.0)
        };
        let deadline = self.deadline();
        let check = self.by(deadline, self.check_by(deadline, progress)).await?;
        let plan = self.plan(&check, progress)?;
        match lock {
            None => Ok(self.dry_run_report(&check, &plan)),
            Some(lock) => self.apply_by(lock, deadline, &check, &plan, None, progress).await,
        }
    }
}
