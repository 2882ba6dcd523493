//! Backups of the server directory: hot (with `save-off` / `save-all flush` / `save-on`), cold
//! (server stopped) and manual; retention; restore; optional upload to an S3-compatible bucket.
//!
//! # Layout
//! Each backup is two files in the backup directory (default `<server_dir>/../backups/<server dir
//! name>`): `<id>.tar.zst`, a tar archive compressed with zstd, and `<id>.json`, its sidecar
//! (id, label, kind, creation time, size, SHA-256 of the archive, entry count). The sidecar is
//! written last, so a backup without one is incomplete and ignored (and removed by [`Backups::prune`]).
//! Archives are written to `.tmp-*` files and renamed into place; leftovers are removed by
//! [`Backups::new`].
//!
//! Ids look like `20261122T083000Z-cold`: the UTC time of the backup, so they sort by time. When a
//! second backup lands in the same second, its id takes the next free second (the sidecar keeps the
//! true creation time), so ids stay unique and ordered.
//!
//! # Archives
//! Entries are paths relative to the server directory, written in a deterministic order (sorted by
//! name, depth first), with their mode and mtime: directories (so empty ones survive), regular files
//! (streamed, never read whole) and symlinks. Sockets, FIFOs and devices are skipped.
//!
//! # Exclusions
//! Always left out (and so never touched by a restore): the backup directory when it is inside the
//! server directory, `.atlas/staging`, `.atlas/prefetch` and `.atlas/cache` (the fetcher's
//! scratch space, blobs staged for a build not applied yet, and blob cache), `.atlas-restore` (restore scratch space), `logs` and `crash-reports` (history, which
//! must survive a rollback to explain it). `exclude` adds more: relative paths (a directory
//! excludes everything below it) or globs (`*` and `?` within one path component, `**` across
//! components), e.g. `world/*.old`, `**/*.tmp`.
//!
//! # Restore
//! The caller stops the server first. The archive is checked against its sidecar's SHA-256 while it
//! is extracted into `<server_dir>/.atlas-restore/new` (same file system); every entry is validated
//! (no absolute paths, no `..`, no hard links or devices, no symlink pointing outside the server
//! directory, nothing below a symlink), and any problem stops the restore with the server directory
//! untouched. Then a journal is written and the swap runs: the current top-level entries move to
//! `.atlas-restore/old`, the extracted ones move in, excluded paths move back from `old`, and the
//! scratch space is removed. A crash during the swap is completed by the next [`Backups::new`] or
//! restore, from the journal. Afterwards the directory holds exactly the archive's content plus the
//! excluded paths.

mod archive;
mod error;
mod exclude;
mod restore;
mod settings;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use self::archive::TMP_PREFIX;
pub use self::error::BackupError;
use self::error::io_err;
pub use self::exclude::Excludes;
pub use self::restore::RESTORE_DIR;
pub use self::settings::{BackupSettings, S3BackupSettings, S3Credentials};
/// Paths always left out of archives (see the module documentation).
pub const ALWAYS_EXCLUDED: [&str; 6] = [
    ".atlas/staging",
    // Blobs downloaded for a build not applied yet: not part of the install.
    ".atlas/prefetch",
    ".atlas/cache",
    RESTORE_DIR,
    "logs",
    "crash-reports",
];
const ARCHIVE_SUFFIX: &str = ".tar.zst";
const SIDECAR_SUFFIX: &str = ".json";

/// How a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// While the server runs, with saving paused.
    Hot,
    /// With the server stopped (before updates).
    Cold,
    /// Asked for by an operator.
    Manual,
}

impl BackupKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::Cold => "cold",
            Self::Manual => "manual",
        }
    }
}

impl std::fmt::Display for BackupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub id: String,
    pub label: String,
    pub kind: BackupKind,
    pub created_unix: u64,
    /// Size of the archive.
    pub size_bytes: u64,
    /// The archive.
    pub path: PathBuf,
}

/// What the sidecar `<id>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    format: u32,
    id: String,
    label: String,
    kind: BackupKind,
    created_unix: u64,
    size_bytes: u64,
    sha256: String,
    entries: u64,
}

/// A failed console command.
#[derive(thiserror::Error, Debug)]
#[error("{0}")]
pub struct ConsoleError(pub String);

/// The running server's console, for hot backups (implemented by the supervisor).
#[async_trait]
pub trait ServerConsole: Send + Sync {
    /// Runs `cmd` and returns its reply.
    async fn command(&self, cmd: &str) -> Result<String, ConsoleError>;
    /// Runs `save-all flush` and waits until the save is done, at most `timeout`.
    async fn save_all_flush(&self, timeout: Duration) -> Result<(), ConsoleError>;
}

/// The backups of one server directory.
#[derive(Debug)]
pub struct Backups {
    settings: BackupSettings,
    server_dir: PathBuf,
    dir: PathBuf,
    excludes: Excludes,
    /// Creates and restores run one at a time.
    op: tokio::sync::Mutex<()>,
    /// The second of the newest id handed out.
    last_stamp: Mutex<u64>,
    uploader: tokio::sync::OnceCell<upload::Uploader>,
    /// Raised when the daemon shuts down: an archive being written stops
    /// between entries (restores always run to their end).
    interrupt: Arc<AtomicBool>,
}

impl Backups {
    /// Prepares the backup directory, removes leftovers of interrupted backups and completes an
    /// interrupted restore.
    pub fn new(settings: BackupSettings, server_dir: PathBuf) -> Result<Self, BackupError> {
        let server_dir = std::path::absolute(&server_dir).map_err(io_err("resolving", &server_dir))?;
        let dir = settings.resolved_dir(&server_dir)?;
        std::fs::create_dir_all(&dir).map_err(io_err("creating the backup directory", &dir))?;
        if !(1..=22).contains(&settings.zstd_level) {
            return Err(BackupError::Config(format!(
                "zstd_level {} is out of range; use 1 to 22",
                settings.zstd_level
            )));
        }
        let mut patterns: Vec<String> = ALWAYS_EXCLUDED.iter().map(|s| (*s).to_owned()).collect();
        if let Ok(rel) = dir.strip_prefix(&server_dir) {
            patterns.push(rel.to_string_lossy().into_owned());
        }
        patterns.extend(settings.exclude.iter().cloned());
        let excludes = Excludes::new(&patterns)?;
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err("reading", &dir))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let backups = Self {
            settings,
            server_dir,
            dir,
            excludes,
            op: tokio::sync::Mutex::new(()),
            last_stamp: Mutex::new(0),
            uploader: tokio::sync::OnceCell::new(),
            interrupt: Arc::new(AtomicBool::new(false)),
        };
        restore::recover(&backups.server_dir, &backups.excludes)?;
        let newest = backups.list()?.first().and_then(|b| id_stamp(&b.id)).unwrap_or(0);
        *backups.lock_stamp() = newest;
        Ok(backups)
    }

    /// Archives stop between entries once `flag` is raised (the daemon's
    /// shutdown): [`Backups::create`] then fails with
    /// [`BackupError::Interrupted`], leaving no partial archive.
    pub fn with_interrupt(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = flag;
        self
    }

    /// Where archives are written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn server_dir(&self) -> &Path {
        &self.server_dir
    }

    pub fn settings(&self) -> &BackupSettings {
        &self.settings
    }

    fn lock_stamp(&self) -> std::sync::MutexGuard<'_, u64> {
        self.last_stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a backup. With a console (required for [`BackupKind::Hot`]) saving is paused around
    /// the archive: `save-off`, `save-all flush` (at most `save_timeout`), archive, and `save-on`
    /// whatever happened before. Without one the server must be stopped. When `[backup.s3]` is
    /// set the archive is uploaded afterwards; an upload failure is logged, the local backup kept.
    /// Do not cancel the returned future: `save-on` is sent before it completes.
    pub async fn create(
        &self,
        kind: BackupKind,
        label: &str,
        console: Option<&dyn ServerConsole>,
    ) -> Result<BackupInfo, BackupError> {
        let _op = self.op.lock().await;
        let info = match console {
            Some(console) => self.hot(kind, label, console).await?,
            None if kind == BackupKind::Hot => return Err(BackupError::NoConsole),
            None => self.archive(kind, label).await?,
        };
        if self.settings.s3.is_some()
            && let Err(e) = self.upload(&info).await
        {
            tracing::warn!("backup {} kept locally only: {e}", info.id);
        }
        Ok(info)
    }

    async fn hot(
        &self,
        kind: BackupKind,
        label: &str,
        console: &dyn ServerConsole,
    ) -> Result<BackupInfo, BackupError> {
        let result = async {
            console
                .command("save-off")
                .await
                .map_err(|e| BackupError::Console {
                    command: "save-off",
                    message: e.0,
                })?;
            let timeout = self.settings.save_timeout;
            match tokio::time::timeout(timeout, console.save_all_flush(timeout)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(BackupError::Console {
                        command: "save-all flush",
                        message: e.0,
                    });
                }
                Err(_) => {
                    return Err(BackupError::Console {
                        command: "save-all flush",
                        message: format!(
                            "no answer within {}; raise [backup] save_timeout",
                            humantime::format_duration(timeout)
                        ),
                    });
                }
            }
            self.archive(kind, label).await
        }
        .await;
        match (console.command("save-on").await, result) {
            (Ok(_), result) => result,
            (Err(e), Ok(_)) => Err(BackupError::SaveOn {
                message: e.0,
                earlier: String::new(),
            }),
            (Err(e), Err(earlier)) => Err(BackupError::SaveOn {
                message: e.0,
                earlier: format!(" (the backup had failed too: {earlier})"),
            }),
        }
    }

    /// A new id: the current second, or the one after the newest id handed out.
    fn next_id(&self, kind: BackupKind) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut last = self.lock_stamp();
        let stamp = now.max(last.saturating_add(1));
        *last = stamp;
        let time = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(stamp))
            .to_string()
            .replace(['-', ':'], "");
        format!("{time}-{kind}")
    }

    async fn archive(&self, kind: BackupKind, label: &str) -> Result<BackupInfo, BackupError> {
        let id = self.next_id(kind);
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let started = Instant::now();
        let (server_dir, dir, excludes, level, interrupt) = (
            self.server_dir.clone(),
            self.dir.clone(),
            self.excludes.clone(),
            self.settings.zstd_level,
            self.interrupt.clone(),
        );
        let archive_path = self.dir.join(format!("{id}{ARCHIVE_SUFFIX}"));
        let dest = archive_path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let src = archive::Source {
                root: &server_dir,
                excludes: &excludes,
                interrupt: &interrupt,
            };
            archive::write(&src, &dir, &dest, level)
        })
        .await
        .map_err(|e| BackupError::Task(e.to_string()))??;
        let sidecar = Sidecar {
            format: 1,
            id: id.clone(),
            label: label.to_owned(),
            kind,
            created_unix,
            size_bytes: written.size,
            sha256: written.sha256,
            entries: written.entries,
        };
        let sidecar_path = self.sidecar_path(&id);
        let json = serde_json::to_vec_pretty(&sidecar)
            .map_err(|e| BackupError::Task(format!("encoding the sidecar: {e}")))?;
        write_atomic(&self.dir, &sidecar_path, &json)?;
        tracing::info!(
            id,
            size = written.size,
            entries = written.entries,
            "backup written in {:?}",
            started.elapsed()
        );
        Ok(BackupInfo {
            id,
            label: label.to_owned(),
            kind,
            created_unix,
            size_bytes: written.size,
            path: archive_path,
        })
    }

    fn sidecar_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{SIDECAR_SUFFIX}"))
    }

    fn read_sidecar(&self, id: &str) -> Result<Option<Sidecar>, BackupError> {
        // Ids are file names: nothing that could leave the backup directory.
        let plain = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            return Ok(None);
        }
        let path = self.sidecar_path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| BackupError::Corrupt {
                path,
                message: format!("unreadable sidecar: {e}"),
            })
    }

    /// Complete backups, newest first.
    pub fn list(&self) -> Result<Vec<BackupInfo>, BackupError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)
            .map_err(io_err("reading the backup directory", &self.dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(SIDECAR_SUFFIX) else {
                continue;
            };
            if id.starts_with('.') {
                continue;
            }
            let path = self.dir.join(format!("{id}{ARCHIVE_SUFFIX}"));
            match self.read_sidecar(id) {
                Ok(Some(s)) if path.is_file() => out.push(BackupInfo {
                    id: s.id,
                    label: s.label,
                    kind: s.kind,
                    created_unix: s.created_unix,
                    size_bytes: s.size_bytes,
                    path,
                }),
                Ok(_) => {}
                Err(e) => tracing::warn!("skipping backup {id}: {e}"),
            }
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// The backup `id`, if it exists and is complete (nothing is touched).
    pub fn find(&self, id: &str) -> Result<BackupInfo, BackupError> {
        self.list()?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| BackupError::NotFound {
                id: id.to_owned(),
                dir: self.dir.clone(),
            })
    }

    /// Deletes backups beyond `keep_count` or older than `keep_age` (never the newest), and
    /// archives left without a sidecar; returns the ids deleted. Uploaded copies are left alone
    /// (use the bucket's lifecycle rules).
    pub fn prune(&self) -> Result<Vec<String>, BackupError> {
        let list = self.list()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let keep = self.settings.keep_count.max(1);
        let max_age = self.settings.keep_age.as_secs();
        let mut deleted = Vec::new();
        for (i, b) in list.iter().enumerate().skip(1) {
            if i >= keep || now.saturating_sub(b.created_unix) > max_age {
                let sidecar = self.sidecar_path(&b.id);
                std::fs::remove_file(&sidecar).map_err(io_err("deleting", &sidecar))?;
                std::fs::remove_file(&b.path).map_err(io_err("deleting", &b.path))?;
                deleted.push(b.id.clone());
            }
        }
        for entry in std::fs::read_dir(&self.dir)
            .map_err(io_err("reading", &self.dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(ARCHIVE_SUFFIX)
                && !id.starts_with('.')
                && !self.sidecar_path(id).exists()
                && std::fs::remove_file(entry.path()).is_ok()
            {
                deleted.push(id.to_owned());
            }
        }
        Ok(deleted)
    }

    /// Makes the server directory exactly the content of backup `id` (excluded paths kept). The
    /// server must be stopped.
    pub async fn restore(&self, id: &str) -> Result<(), BackupError> {
        let _op = self.op.lock().await;
        let sidecar = self.read_sidecar(id)?.ok_or_else(|| BackupError::NotFound {
            id: id.to_owned(),
            dir: self.dir.clone(),
        })?;
        let archive = self.dir.join(format!("{id}{ARCHIVE_SUFFIX}"));
        if !archive.is_file() {
            return Err(BackupError::NotFound {
                id: id.to_owned(),
                dir: self.dir.clone(),
            });
        }
        let (server_dir, excludes) = (self.server_dir.clone(), self.excludes.clone());
        tokio::task::spawn_blocking(move || {
            restore::restore(&server_dir, &excludes, &archive, &sidecar.sha256)
        })
        .await
        .map_err(|e| BackupError::Task(e.to_string()))?
    }

    /// Uploads backup `info` (archive, then sidecar) to `[backup.s3]`.
    pub async fn upload(&self, info: &BackupInfo) -> Result<(), BackupError> {
        let Some(s3) = &self.settings.s3 else {
            return Err(BackupError::Config("no [backup.s3] bucket configured".into()));
        };
        let uploader = self.uploader.get_or_init(|| upload::Uploader::connect(s3)).await;
        uploader
            .put(
                &format!("{}{ARCHIVE_SUFFIX}", info.id),
                &info.path,
                "application/zstd",
            )
            .await?;
        uploader
            .put(
                &format!("{}{SIDECAR_SUFFIX}", info.id),
                &self.sidecar_path(&info.id),
                "application/json",
            )
            .await
    }
}

/// The second encoded at the start of an id (`20261122T083000Z...`).
fn id_stamp(id: &str) -> Option<u64> {
    let t = id.get(..16)?;
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        t.get(0..4)?,
        t.get(4..6)?,
        t.get(6..8)?,
        t.get(9..11)?,
        t.get(11..13)?,
        t.get(13..15)?
    );
    humantime::parse_rfc3339(&rfc)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Writes `bytes` to `path` through a temporary file in `dir` and a rename.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write as _;
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io_err("creating a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("writing", path))?;
    tmp.as_file().sync_all().map_err(io_err("writing", path))?;
    tmp.persist(path)
        .map_err(|e| io_err("renaming into", path)(e.error))?;
    Ok(())
}
