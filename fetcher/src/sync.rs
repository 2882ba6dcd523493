//! The sync algorithm and the embeddable API: [`Syncer::check`] (pointer and
//! manifest, verified), [`Syncer::plan`], [`Syncer::apply`], and
//! [`Syncer::sync`] which composes them. docs/FORMAT.md describes the same steps.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use atlas_proto::pointer::{Expectation, PointerError};
use atlas_proto::v1::Manifest;
use atlas_proto::{
    ManifestLimits, PublicKey, Sha256Digest, SignedPointer, VerifiedPointer, layout, manifest,
};

use crate::download::{self, DEFAULT_PARALLELISM, Transfer};
use crate::journal::{self, Journal, Recovery};
use crate::lock::DirLock;
use crate::plan::{FileAction, InstallSide, Observed, OnModified, Plan};
use crate::progress::{Phase, Progress};
use crate::report::{Outcome, Report};
use crate::retry::{Retrier, RetryPolicy};
use crate::source::{PointerFetch, Source};
use crate::staging::StagingGuard;
use crate::state::{
    self, InstallState, InstalledFile, PastBuild, Sha256Hex, StatePaths, TrustEntry, TrustState,
};
use crate::{SyncError, apply, history};

/// How far the clock may be behind the last time recorded in `trust.json`
/// (NTP corrections, a VM resumed from a snapshot) before a run is refused.
pub const CLOCK_SLACK_SECS: u64 = 3600;

/// Directory (inside the state directory) of user files backed up by `--on-modified backup`.
pub const BACKUPS_DIR: &str = "backups";

/// What `install.json` records for a planned file, before its download.
fn installed_entry(f: &crate::PlannedFile) -> InstalledFile {
    if f.action == FileAction::Modified
        && let Some(prev) = &f.previous
    {
        // The installed content, and the mtime of the user's version.
        return InstalledFile {
            modified: true,
            mtime_ns: f.mtime_ns,
            ..prev.clone()
        };
    }
    InstalledFile {
        preserve: f.preserve,
        mtime_ns: if f.action == FileAction::Keep && !f.preserve {
            f.mtime_ns
        } else {
            None
        },
        ..InstalledFile::new(f.path.clone(), f.sha256, f.size)
    }
}

/// Largest manifest object accepted, whatever a pointer declares.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

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
    /// Per-request timeout: connecting, waiting for headers, between two
    /// chunks of a body; the pointer request as a whole.
    pub timeout: Duration,
    /// Overall deadline of the network part of a run (check and downloads);
    /// once files start moving into place, the apply always finishes.
    pub deadline: Option<Duration>,
    /// What to do with managed files the user changed.
    pub on_modified: OnModified,
    /// Paths to handle as changed by the user whatever their size and mtime
    /// say (from `verify --repair`); when not empty, the manifest is always
    /// fetched and planned (no 304 shortcut).
    pub treat_as_modified: std::collections::BTreeSet<String>,
    /// Optional files to take or leave, beyond the pack's defaults.
    pub selection: crate::select::Selection,
    /// A blob cache shared by the instances on this host (`--cache`).
    pub cache: Option<PathBuf>,
}

impl SyncOptions {
    /// Options with the defaults: server side, parallelism 8.
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
            timeout: crate::source::DEFAULT_TIMEOUT,
            deadline: None,
            on_modified: OnModified::Keep,
            treat_as_modified: Default::default(),
            selection: Default::default(),
            cache: None,
        }
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
    pub(crate) manifest_bytes: Option<Vec<u8>>,
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
    pub(crate) fn new_changed(
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
    pub(crate) opts: SyncOptions,
    pub(crate) source: Source,
    pub(crate) paths: StatePaths,
    key_ids: Vec<String>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads a `--key` value: the inline `ed25519:...` text or a path to a file holding it.
pub fn load_key(spec: &str) -> Result<PublicKey, SyncError> {
    let spec = spec.trim();
    if spec.starts_with("ed25519:") {
        return PublicKey::parse(spec).map_err(|e| SyncError::Usage(format!("--key `{spec}`: {e}")));
    }
    let text = std::fs::read_to_string(spec)
        .map_err(|e| SyncError::Usage(format!("--key: cannot read public key file `{spec}`: {e}")))?;
    PublicKey::parse(&text).map_err(|e| SyncError::Usage(format!("--key file `{spec}`: {e}")))
}

impl Syncer {
    /// Validates the options (ids, keys, source) without any I/O.
    pub fn new(opts: SyncOptions) -> Result<Self, SyncError> {
        Self::with_keys_required(opts, true)
    }

    pub(crate) fn with_keys_required(opts: SyncOptions, require_keys: bool) -> Result<Self, SyncError> {
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
        let source = Source::parse_with_timeout(&opts.source, opts.timeout)?;
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

    /// Whether every file of `install` is on disk exactly as recorded: same
    /// size and mtime (no hashing here). A differing or unknown mtime (older
    /// `install.json`) is not intact, so the plan hashes the file and records
    /// the new mtime (or the change). Preserved files are not checked; a file
    /// kept as user-modified is intact while its mtime is the one last seen
    /// (touching it, e.g. restoring it, makes the plan look at it again).
    fn intact(&self, install: &InstallState) -> bool {
        install.side == self.opts.side
            && install.selection == self.opts.selection
            && install.files.iter().all(|f| {
                f.preserve
                    || apply::safe_dest(&self.opts.dir, &f.path)
                        .ok()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .is_some_and(|m| {
                            m.is_file()
                                && (f.modified || m.len() == f.size)
                                && f.mtime_ns.is_some()
                                && state::mtime_ns(&m) == f.mtime_ns
                        })
            })
    }

    /// Finishes or undoes an apply a killed run left behind (see [`crate::journal`]).
    /// The caller holds the directory lock.
    pub(crate) fn recover(&self) -> Result<Recovery, SyncError> {
        let r = journal::recover(&self.paths)?;
        if r != Recovery::Clean {
            tracing::warn!(?r, "recovered an interrupted apply");
        }
        Ok(r)
    }

    /// When a run starting now must be over.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.opts.deadline.map(|d| Instant::now() + d)
    }

    /// Runs `fut`, failing with [`SyncError::Deadline`] if `deadline` passes first.
    pub(crate) async fn by<T>(
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

    /// Fetches and verifies the pointer, and the manifest if the installed
    /// build is not the channel's (or needs repair). Writes nothing.
    pub async fn check(&self, progress: &dyn Progress) -> Result<Check, SyncError> {
        let deadline = self.deadline();
        self.by(deadline, self.check_by(deadline, progress)).await
    }

    async fn check_by(&self, deadline: Option<Instant>, progress: &dyn Progress) -> Result<Check, SyncError> {
        let (pack, channel) = (self.opts.pack.as_str(), self.opts.channel.as_str());
        let trust = state::load_trust(&self.paths.trust)?;
        let now = self.now();
        if let Some(last) = trust.last_time
            && now.saturating_add(CLOCK_SLACK_SECS) < last
        {
            return Err(SyncError::ClockBackwards {
                now,
                last,
                behind: last - now,
            });
        }
        // The keys a pointer must be signed by: the configured ones, or the
        // pointer keys of the newest keyset of the chain.
        let (keyset, keyset_changed, trusted, threshold, key_ids) = match &self.opts.root {
            Some(root) => {
                let cur = self.current_keyset(root, deadline).await?;
                let ids = cur.keyset.pointer_key_ids();
                let (keys, t) = (cur.keyset.pointer_keys(), cur.keyset.pointer_threshold());
                (Some(cur.keyset), cur.changed, keys, t, ids)
            }
            None => (None, false, self.opts.keys.clone(), 1, self.key_ids.clone()),
        };
        let install = state::load_install(&self.paths.install)?;
        let mut entry = trust.channels.get(&state::channel_key(pack, channel)).cloned();
        // Fast-forward recovery: the rollback floor (and the ETag) belong to
        // the signing keys that were trusted when it was set. Once those
        // change (a rotation, a revocation), a floor pushed up by a leaked
        // key must not lock the channel out, so it is reset.
        if entry.as_ref().is_some_and(|e| e.trusted_keys != key_ids) {
            tracing::warn!("the trusted signing keys changed: the channel's rollback floor is reset");
            entry = None;
        }
        // The build installed for this pack/channel, if it is intact on disk for this side.
        let ours: Option<Sha256Digest> = install
            .as_ref()
            .filter(|i| {
                i.pack == pack
                    && i.channel == channel
                    && self.opts.treat_as_modified.is_empty()
                    && self.intact(i)
            })
            .map(|i| i.build.0);
        let conditional = entry
            .as_ref()
            .filter(|e| ours == Some(e.build.0))
            .and_then(|e| e.etag.clone());

        let key = layout::pointer_key(pack, channel);
        let url = self.source.url_of(&key);
        progress.phase(&Phase::Pointer { url: url.clone() });
        tracing::info!(%url, conditional = conditional.is_some(), "fetching channel pointer");
        let trust_err = |source| SyncError::Trust {
            url: url.clone(),
            source,
        };
        let mut retry = Retrier::new(&self.opts.retry, deadline);
        let fetched = loop {
            match self
                .source
                .get_pointer(
                    &key,
                    conditional.as_deref(),
                    atlas_proto::Limits::DEFAULT.pointer_bytes,
                )
                .await
            {
                Ok(f) => break f,
                Err(e) if retry.again(&e).await => {}
                Err(e) => return Err(e),
            }
        };
        let (bytes, etag) = match fetched {
            PointerFetch::NotModified => {
                let Some(e) = entry.filter(|_| conditional.is_some()) else {
                    return Err(SyncError::HttpStatus {
                        url: url.clone(),
                        status: 304,
                        retry_after: None,
                    });
                };
                let now = self.now();
                if now >= e.expires_at {
                    return Err(trust_err(PointerError::Expired {
                        expires_at: e.expires_at,
                        now,
                    }));
                }
                return Ok(Check {
                    status: CheckStatus::NotModified,
                    version: e.version,
                    build: e.build.0,
                    manifest: None,
                    manifest_bytes: None,
                    held: false,
                    pointer: None,
                    etag: e.etag.clone(),
                    trust,
                    install,
                    trusted_keys: key_ids,
                    keyset,
                    keyset_changed,
                });
            }
            PointerFetch::Fetched { bytes, etag } => (bytes, etag),
        };
        let signed = SignedPointer::parse(&bytes).map_err(trust_err)?;
        let expect = Expectation {
            pack,
            channel,
            now: self.now(),
            last: entry.as_ref().map(TrustEntry::last_accepted),
        };
        let pointer = signed.verify(&trusted, threshold, &expect).map_err(trust_err)?;
        tracing::info!(version = pointer.payload.version, build = %pointer.build, "pointer verified");

        let held = install.as_ref().is_some_and(|i| {
            i.pack == pack && i.channel == channel && i.held == Some(Sha256Hex(pointer.build))
        });
        let mut check = Check {
            status: CheckStatus::Current,
            version: pointer.payload.version,
            build: pointer.build,
            manifest: None,
            manifest_bytes: None,
            held,
            pointer: None,
            etag,
            trust,
            install,
            trusted_keys: key_ids,
            keyset,
            keyset_changed,
        };
        if held {
            tracing::warn!(build = %pointer.build, "the channel still points at the build rolled back from; staying");
        } else if ours != Some(pointer.build) {
            let (m, bytes) = self.fetch_manifest(&pointer, deadline, progress).await?;
            check.manifest = Some(m);
            check.manifest_bytes = Some(bytes);
            check.status = CheckStatus::Changed;
        }
        check.pointer = Some(pointer);
        Ok(check)
    }

    async fn fetch_manifest(
        &self,
        pointer: &VerifiedPointer,
        deadline: Option<Instant>,
        progress: &dyn Progress,
    ) -> Result<(Manifest, Vec<u8>), SyncError> {
        let key = layout::manifest_key(&self.opts.pack, &pointer.build);
        let url = self.source.url_of(&key);
        let declared = pointer.payload.manifest_size;
        progress.phase(&Phase::Manifest { url: url.clone() });
        tracing::info!(%url, size = declared, "fetching manifest");
        if declared > MAX_MANIFEST_BYTES {
            return Err(SyncError::ManifestTooLong { url, declared });
        }
        let mut retry = Retrier::new(&self.opts.retry, deadline);
        let bytes = loop {
            let attempt = async { self.source.open_key(&key).await?.read_capped(declared).await };
            match attempt.await {
                Ok(b) => break b,
                Err(e) if retry.again(&e).await => {}
                Err(e) => return Err(e),
            }
        };
        let actual = bytes.len() as u64;
        if actual > declared {
            return Err(SyncError::ManifestTooLong { url, declared });
        }
        if actual != declared {
            return Err(SyncError::ManifestSize {
                url,
                declared,
                actual,
            });
        }
        let digest = manifest::build_id(&bytes);
        if digest != pointer.build {
            return Err(SyncError::ManifestHash {
                url,
                expected: pointer.build.to_hex(),
                actual: digest.to_hex(),
            });
        }
        let m = manifest::decode(&bytes, &ManifestLimits::default()).map_err(|source| {
            SyncError::ManifestInvalid {
                url: url.clone(),
                source,
            }
        })?;
        if m.pack_id != self.opts.pack {
            return Err(SyncError::ManifestWrongPack {
                url,
                expected: self.opts.pack.clone(),
                got: m.pack_id,
            });
        }
        Ok((m, bytes))
    }

    /// Compares the checked build with the install and the disk. Writes nothing.
    pub fn plan(&self, check: &Check, progress: &dyn Progress) -> Result<Plan, SyncError> {
        let Some(m) = &check.manifest else {
            return Ok(Plan::default());
        };
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
        let dir = &self.opts.dir;
        let observe = |rel: &str, before: Option<&InstalledFile>| {
            let Ok(path) = apply::safe_dest(dir, rel) else {
                return Observed::Missing;
            };
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => Observed::File {
                    size: meta.len(),
                    mtime_ns: state::mtime_ns(&meta),
                    modified: before.is_some_and(|b| {
                        self.opts.treat_as_modified.contains(rel) || state::is_modified(&path, &meta, b)
                    }),
                },
                Ok(_) => Observed::NotAFile,
                Err(_) => Observed::Missing,
            }
        };
        crate::plan::plan_with(
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

    /// The trust state to store after accepting `check`'s pointer, or `None` if unchanged.
    fn new_trust(&self, check: &Check) -> Option<TrustState> {
        let p = check.pointer.as_ref()?;
        let key = state::channel_key(&self.opts.pack, &self.opts.channel);
        let entry = TrustEntry {
            version: p.payload.version,
            payload_sha256: Sha256Hex(p.payload_digest),
            build: Sha256Hex(p.build),
            etag: check.etag.clone(),
            expires_at: p.payload.expires_at,
            trusted_keys: check.trusted_keys.clone(),
        };
        if check.trust.channels.get(&key) == Some(&entry) {
            return None;
        }
        let mut t = check.trust.clone();
        t.format = state::STATE_FORMAT;
        t.last_time = Some(t.last_time.unwrap_or(0).max(self.now()));
        t.channels.insert(key, entry);
        Some(t)
    }

    /// Takes the directory's lock, downloads and applies `plan`, then writes
    /// `install.json` and `trust.json`.
    /// On any error before files are moved into place, the directory is left exactly as it was.
    pub async fn apply(
        &self,
        check: &Check,
        plan: &Plan,
        progress: &dyn Progress,
    ) -> Result<Report, SyncError> {
        let _lock = DirLock::acquire(&self.paths)?;
        if self.recover()? != Recovery::Clean {
            return Err(SyncError::Conflict {
                path: journal::JOURNAL_FILE.into(),
                reason: "an interrupted apply was just recovered, so this plan is stale: check again".into(),
            });
        }
        self.apply_by(self.deadline(), check, plan, None, progress).await
    }

    /// Applies `plan`. `rollback` carries the history and hold of a rollback
    /// (`None`: a normal update, which records the previous build in the history).
    pub(crate) async fn apply_by(
        &self,
        deadline: Option<Instant>,
        check: &Check,
        plan: &Plan,
        rollback: Option<(Vec<PastBuild>, Sha256Hex)>,
        progress: &dyn Progress,
    ) -> Result<Report, SyncError> {
        if let (Some(root), Some(ks), true) = (&self.opts.root, &check.keyset, check.keyset_changed) {
            // Verified from the root: safe to keep whatever happens next.
            crate::keychain::save(&self.paths.state_dir, root, ks)?;
        }
        let trust = self.new_trust(check);
        if check.status != CheckStatus::Changed || check.manifest.is_none() {
            // Not modified, or same build intact: at most a trust update.
            if let Some(t) = &trust {
                state::write_atomic_json(&self.paths.trust, t)?;
            }
            return Ok(self.report(check, Outcome::Current));
        }
        let (history, held) = match rollback {
            Some((history, held)) => (history, Some(held)),
            None => (history::after_update(check.install.as_ref(), &check.build), None),
        };
        let mut install = InstallState {
            format: state::STATE_FORMAT,
            pack: self.opts.pack.clone(),
            channel: self.opts.channel.clone(),
            build: Sha256Hex(check.build),
            version: check.version,
            side: self.opts.side,
            selection: self.opts.selection.clone(),
            files: plan.files.iter().map(installed_entry).collect(),
            history,
            held,
        };
        // Kept for a later rollback; written only once this run is sure to
        // install the build (a failed run leaves the directory as it was).
        let keep_manifest = || match &check.manifest_bytes {
            Some(bytes) => history::save(&self.paths, &check.build, bytes),
            None => Ok(()),
        };
        if plan.is_noop() {
            keep_manifest()?;
            if check.install.as_ref() != Some(&install) {
                state::write_atomic_json(&self.paths.install, &install)?;
            }
            if let Some(t) = &trust {
                state::write_atomic_json(&self.paths.trust, t)?;
            }
            return Ok(self.report(check, Outcome::Current).with_plan(plan));
        }

        apply::preflight(&self.opts.dir, plan)?;
        let guard = StagingGuard::create(&self.paths)?;
        let downloads = plan.downloads();
        progress.phase(&Phase::Download {
            blobs: downloads.len(),
            bytes: plan.download_bytes(),
        });
        tracing::info!(
            blobs = downloads.len(),
            bytes = plan.download_bytes(),
            "downloading"
        );
        let cache = match &self.opts.cache {
            Some(dir) => Some(crate::cache::BlobCache::open(dir)?),
            None => None,
        };
        let transfer = Transfer {
            parallelism: self.opts.parallelism,
            retry: &self.opts.retry,
            deadline,
            cache: cache.as_ref(),
            prefetched: Some(&self.paths.prefetch),
        };
        let staged = self
            .by(
                deadline,
                download::download_all(&self.source, plan, &self.paths.staging, transfer, progress),
            )
            .await?;
        // Every placement of a blob ends with the staged file's mtime (see
        // `apply::copy_into_place`), so it can be recorded now.
        for (f, rec) in plan.files.iter().zip(install.files.iter_mut()) {
            if f.needs_download() {
                rec.mtime_ns = staged
                    .blobs
                    .get(&f.sha256)
                    .and_then(|b| std::fs::metadata(b).ok())
                    .and_then(|m| state::mtime_ns(&m));
            }
        }
        let backed_up = self.back_up(plan)?;
        keep_manifest()?;
        let kept = install.clone();

        progress.phase(&Phase::Apply {
            files: plan.files.iter().filter(|f| f.needs_download()).count(),
            removals: plan.remove.len(),
        });
        tracing::info!("applying");
        let journal = Journal::new(&self.opts.dir, plan, install, check.install.clone(), trust)?;
        journal.write(&self.paths)?;
        // From here on, the journal (not the staging guard) decides what happens to staging.
        guard.commit();
        let paths = self.paths.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let r = journal::forward(&paths, &journal);
            if let Err(e) = &r {
                tracing::error!("apply failed, restoring the previous build: {e}");
                if let Err(e2) = journal::backward(&paths, &journal) {
                    tracing::error!("restoring failed too; the next run finishes the recovery: {e2}");
                }
            }
            r
        })
        .await
        .map_err(|e| SyncError::Internal(format!("apply task failed: {e}")));
        applied.and_then(|r| r)?;
        history::prune(&self.paths, &kept);
        crate::prefetch::discard(&self.paths);
        progress.phase(&Phase::State);
        let mut report = self.report(check, Outcome::Updated).with_plan(plan);
        report.bytes_downloaded = staged.bytes;
        report.backup_dir = backed_up;
        Ok(report)
    }

    /// Copies the user's version of each file the plan replaces with a
    /// backup to `.atlas/backups/<unix-time>/<path>`. Copies only (the journal
    /// still moves the file itself), so a crash here changes nothing managed.
    fn back_up(&self, plan: &Plan) -> Result<Option<String>, SyncError> {
        let mut todo = plan.files.iter().filter(|f| f.backup).peekable();
        if todo.peek().is_none() {
            return Ok(None);
        }
        let rel = format!("{}/{}", BACKUPS_DIR, self.now());
        let root = self.paths.state_dir.join(&rel);
        for f in todo {
            let from = apply::safe_dest(&self.opts.dir, &f.path)?;
            let to = apply::safe_dest(&root, &f.path)?;
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(SyncError::io("creating directory", parent))?;
            }
            std::fs::copy(&from, &to).map_err(SyncError::io("backing up", &from))?;
            tracing::warn!(path = %f.path, backup = %to.display(), "backed up a file you changed before replacing it");
        }
        Ok(Some(format!("{}/{rel}", state::STATE_DIR)))
    }

    /// Check, plan, and (unless `dry_run`) apply, holding the directory's
    /// lock for the whole run (a dry run writes nothing and takes no lock).
    pub async fn sync(&self, dry_run: bool, progress: &dyn Progress) -> Result<Report, SyncError> {
        let _lock = if dry_run {
            None
        } else {
            let lock = DirLock::acquire(&self.paths)?;
            self.recover()?;
            Some(lock)
        };
        let deadline = self.deadline();
        let check = self.by(deadline, self.check_by(deadline, progress)).await?;
        let plan = self.plan(&check, progress)?;
        if dry_run {
            return Ok(self.dry_run_report(&check, &plan));
        }
        self.apply_by(deadline, &check, &plan, None, progress).await
    }
}
