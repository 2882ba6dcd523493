//! Crash-consistent apply. Before the first file moves, `.atlas/journal.json`
//! (written atomically, fsynced) records the new install state, the previous
//! one, and one entry per path to place (with its staged blob) or remove,
//! each noting whether the path existed before the apply.
//!
//! The apply runs in two phases. **Phase A** moves every existing path the
//! journal names (files to replace and files to remove) into
//! `.atlas/backup/<path>`; **phase B** moves (or, for a blob used by several
//! paths, copies, then finally moves) each staged blob from
//! `.atlas/staging/<first hex digit>/<sha256>` into place, over a few
//! threads (the order of phase B's moves does not matter to the invariant).
//! Then `install.json` (and `trust.json`) are written, the journal is
//! deleted, and backup and staging are cleared.
//!
//! Invariant, at every instant while the journal exists:
//! - the old content of each entry that existed is either still at its path
//!   (not yet backed up, and then nothing new was placed there) or in
//!   `backup/<path>`; a backup is never overwritten;
//! - the new content of each placement is in `staging/<sha256>`, or, once
//!   that blob's last placement has been renamed, at its path(s).
//!
//! So the next run can always finish either way: **roll forward** (redo both
//! phases; every step is idempotent) when every blob is still staged or
//! already in place with the right hash, otherwise **roll back** (delete the
//! paths that did not exist, rename backups back, restore `install.json`).
//! Either way the managed files end exactly as the old build or exactly as
//! the new one. Paths the journal does not name (unmanaged files) are never
//! touched. Without a journal, leftover `backup/` and `staging/` are garbage.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atlas_proto::Sha256Digest;
use serde::{Deserialize, Serialize};

use crate::error::SyncError;
use crate::local::Local;
use crate::place::{Tree, copy_into_place, set_mode_at};
use crate::plan::Plan;
use crate::safe_dir::{SafeDir, split};
use crate::staging::BlobDir;
use crate::state::{self, INSTALL_FILE, InstallState, STAGING_DIR, Sha256Hex, TRUST_FILE, TrustState};

/// Journal file name (inside the state directory).
pub const JOURNAL_FILE: &str = "journal.json";
/// At most this many threads move files into place.
const APPLY_THREADS: usize = 4;
/// Backup directory name (inside the state directory).
pub const BACKUP_DIR: &str = "backup";
/// Test-only: microseconds to sleep before each file operation of an apply,
/// so a test can kill the process mid-apply. Never set it in production.
pub const TEST_PAUSE_ENV: &str = "ATLAS_FETCHER_TEST_PAUSE_APPLY_US";

/// `.atlas/journal.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub format: u32,
    /// The state to write once every entry is applied.
    pub install: InstallState,
    /// The state to restore on roll-back (`None`: there was no install).
    pub previous: Option<InstallState>,
    /// The trust state to write with `install` (`None`: unchanged).
    pub trust: Option<TrustState>,
    /// Removals first, then placements grouped by blob.
    pub entries: Vec<Entry>,
}

/// One path the apply changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    /// The staged blob to place there; `None` removes the path.
    pub blob: Option<Sha256Hex>,
    #[serde(default)]
    pub executable: bool,
    /// Whether something was at the path before the apply (it is backed up).
    pub existed: bool,
}

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No journal: nothing was interrupted.
    Clean,
    /// An interrupted apply was finished: the journal's build is installed.
    Forward,
    /// An interrupted apply was undone: the previous build is installed.
    Back,
}

impl Journal {
    /// The journal for applying `plan` in `dir`; reads which paths exist now.
    pub fn new(
        dir: &SafeDir,
        plan: &Plan,
        install: InstallState,
        previous: Option<InstallState>,
        trust: Option<TrustState>,
    ) -> Result<Self, SyncError> {
        let tree = Tree::new(dir);
        let mut entries = Vec::new();
        for rel in &plan.remove {
            entries.push(Entry {
                path: rel.clone(),
                blob: None,
                executable: false,
                existed: tree.entry(rel)?.is_some(),
            });
        }
        let mut by_blob: BTreeMap<Sha256Digest, Vec<Entry>> = BTreeMap::new();
        for f in plan.files.iter().filter(|f| f.needs_download()) {
            by_blob.entry(f.sha256).or_default().push(Entry {
                path: f.path.clone(),
                blob: Some(Sha256Hex(f.sha256)),
                executable: f.executable,
                existed: tree.entry(&f.path)?.is_some(),
            });
        }
        entries.extend(by_blob.into_values().flatten());
        Ok(Self {
            format: state::STATE_FORMAT,
            install,
            previous,
            trust,
            entries,
        })
    }

    /// Writes the journal durably. From now on the apply can be recovered.
    pub fn write(&self, local: &Local) -> Result<(), SyncError> {
        local.state()?.write_atomic_json(JOURNAL_FILE, self)
    }
}

/// Loads the journal, if one exists (a link there is refused).
pub fn load(local: &Local) -> Result<Option<Journal>, SyncError> {
    let Some(b) = local.read_state(JOURNAL_FILE)? else {
        return Ok(None);
    };
    serde_json::from_slice(&b)
        .map(Some)
        .map_err(|e| SyncError::State {
            path: local.paths.state_dir.join(JOURNAL_FILE),
            message: e.to_string(),
        })
}

/// Finishes or undoes an interrupted apply, if the journal says there was one.
/// Call with the directory lock held, before reading `install.json`.
pub fn recover(local: &Local) -> Result<Recovery, SyncError> {
    let Some(j) = load(local)? else {
        // A leftover (or a link in its place: removed, never followed).
        local.state()?.remove_all(BACKUP_DIR)?;
        return Ok(Recovery::Clean);
    };
    if can_roll_forward(local, &j)? {
        tracing::warn!(build = %j.install.build.0, "finishing an interrupted apply");
        forward(local, &j)?;
        Ok(Recovery::Forward)
    } else {
        tracing::warn!("undoing an interrupted apply: its staged files are gone");
        backward(local, &j)?;
        Ok(Recovery::Back)
    }
}

/// Placements grouped by blob, in journal order.
fn groups(j: &Journal) -> BTreeMap<Sha256Digest, Vec<&Entry>> {
    let mut g: BTreeMap<Sha256Digest, Vec<&Entry>> = BTreeMap::new();
    for e in &j.entries {
        if let Some(b) = e.blob {
            g.entry(b.0).or_default().push(e);
        }
    }
    g
}

/// `.atlas/staging/`, if it exists (a link there is refused).
fn staging(local: &Local) -> Result<Option<BlobDir>, SyncError> {
    Ok(local.state()?.open_dir(STAGING_DIR)?.map(BlobDir::new))
}

/// Every blob is still staged, or every path of it already holds it.
fn can_roll_forward(local: &Local, j: &Journal) -> Result<bool, SyncError> {
    let staging = staging(local)?;
    let tree = Tree::new(local.dir()?);
    for (blob, entries) in groups(j) {
        if let Some(s) = &staging
            && s.find(&blob)?.is_some()
        {
            continue;
        }
        for e in entries {
            let placed = match tree.parent(&e.path, false) {
                Ok(Some((d, name))) => match d.open_read(name) {
                    Ok(Some(f)) => crate::durable::hash_open(&f).ok().map(|(h, _)| h),
                    _ => None,
                },
                Ok(None) | Err(SyncError::Link { .. } | SyncError::NotADirectory { .. }) => None,
                Err(e) => return Err(e),
            };
            if placed != Some(blob) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn pause() -> Option<Duration> {
    std::env::var(TEST_PAUSE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros)
}

/// Removes the directories `rels` (deepest first) where empty, forgetting their handles.
fn remove_empty_dirs(tree: &Tree<'_>, rels: std::collections::BTreeSet<String>) -> Result<(), SyncError> {
    let mut rels: Vec<String> = rels.into_iter().collect();
    rels.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for rel in rels {
        let (parent, name) = split(&rel);
        if let Some(p) = tree.dir(parent, false)? {
            tree.forget(&rel);
            let _ = p.remove_dir(name);
        }
    }
    Ok(())
}

/// One staged blob (its shard and name) and where it goes: each
/// placement's directory, name and executable bit (the last one gets the
/// blob itself, the others copies).
type Move<'a> = (std::sync::Arc<SafeDir>, String, Vec<(&'a str, &'a str, bool)>);

/// Applies (or finishes applying) the journal, writes the state, deletes the journal.
pub fn forward(local: &Local, j: &Journal) -> Result<(), SyncError> {
    let pause = pause();
    let step = || {
        if let Some(d) = pause {
            std::thread::sleep(d);
        }
    };
    let (dir, state_dir) = (local.dir()?, local.state()?);
    let tree = Tree::new(dir);
    // Phase A: back up everything that is replaced or removed.
    let backup_dir = state_dir.create_dir(BACKUP_DIR)?;
    let backups = Tree::new(&backup_dir);
    let mut emptied = std::collections::BTreeSet::new();
    for e in j.entries.iter().filter(|e| e.existed || e.blob.is_none()) {
        let dest = tree.parent(&e.path, false)?;
        if let Some((parent, name)) = dest
            && e.existed
            && backups.entry(&e.path)?.is_none()
            && parent.entry(name)?.is_some()
        {
            step();
            let (bak, bak_name) = backups
                .parent(&e.path, true)?
                .ok_or_else(|| SyncError::Internal(format!("no backup directory for {}", e.path)))?;
            parent.rename(name, &bak, bak_name)?;
        }
        if e.blob.is_none() {
            for (i, _) in e.path.match_indices('/') {
                emptied.insert(e.path[..i].to_owned());
            }
        }
    }
    // Deepest first; a directory the new build fills again is recreated below.
    remove_empty_dirs(&tree, emptied)?;
    // Phase B: place the staged blobs. Directories first, then the moves,
    // spread over a few threads (renames into different directories barely
    // contend, and on a cold install they are most of the apply's time).
    let staging = staging(local)?;
    let mut touched = std::collections::BTreeSet::new();
    let mut moves = Vec::new();
    for (blob, entries) in groups(j) {
        let Some((src, src_name)) = staging.as_ref().map(|s| s.find(&blob)).transpose()?.flatten() else {
            continue; // already renamed into place (checked by can_roll_forward or just done)
        };
        let mut placements = Vec::with_capacity(entries.len());
        for e in entries {
            atlas_proto::validate_path(&e.path)?;
            let (parent, name) = split(&e.path);
            // Each directory once: `mkdir` of an existing one still takes its parent's lock.
            if touched.insert(parent.to_owned()) {
                tree.dir(parent, true)?;
            }
            placements.push((parent, name, e.executable));
        }
        moves.push((src, src_name, placements));
    }
    let staging_root = staging.as_ref().map(BlobDir::root);
    let place = |(src, src_name, placements): &Move<'_>| -> Result<(), SyncError> {
        let Some(((parent, name, executable), copies)) = placements.split_last() else {
            return Ok(());
        };
        let at = |rel: &str| {
            tree.dir(rel, true)?
                .ok_or_else(|| SyncError::Internal(format!("no directory {rel}")))
        };
        for (copy_parent, copy_name, exec) in copies {
            step();
            let tmp = staging_root.ok_or_else(|| SyncError::Internal("no staging directory".into()))?;
            copy_into_place((src, src_name), (&*at(copy_parent)?, copy_name), *exec, tmp)?;
        }
        step();
        set_mode_at(src, src_name, *executable)?;
        src.rename(src_name, &*at(parent)?, name)
    };
    parallel_each(&moves, place)?;
    sync_dirs(dir, &tree, &touched)?;
    state_dir.write_atomic_json(INSTALL_FILE, &j.install)?;
    if let Some(t) = &j.trust {
        state_dir.write_atomic_json(TRUST_FILE, t)?;
    }
    finish(local)
}

/// Makes the renames into the directories `rels` durable (best effort).
/// On Linux, several directories cost one `syncfs` on the filesystem of
/// `dir` instead of an fsync (a journal commit) each.
fn sync_dirs(
    dir: &SafeDir,
    tree: &Tree<'_>,
    rels: &std::collections::BTreeSet<String>,
) -> Result<(), SyncError> {
    if crate::durable::SYNC_ONCE && rels.len() > 1 {
        if let Err(e) = dir.sync_filesystem() {
            tracing::warn!("{e}");
        }
        return Ok(());
    }
    for rel in rels {
        if let Some(d) = tree.dir(rel, false)? {
            d.sync();
        }
    }
    Ok(())
}

/// Runs `f` on every item over up to [`APPLY_THREADS`] threads; the first error wins
/// (items not yet started are skipped).
fn parallel_each<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), SyncError> + Sync,
) -> Result<(), SyncError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, APPLY_THREADS)
        .min(items.len().div_ceil(64).max(1));
    if threads == 1 {
        return items.iter().try_for_each(f);
    }
    let next = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = f(item) {
                        next.store(items.len(), Ordering::Relaxed);
                        failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Undoes a partly applied journal: the previous build's files and state come back.
pub fn backward(local: &Local, j: &Journal) -> Result<(), SyncError> {
    let (dir, state_dir) = (local.dir()?, local.state()?);
    let tree = Tree::new(dir);
    let mut created = std::collections::BTreeSet::new();
    for e in j.entries.iter().filter(|e| !e.existed && e.blob.is_some()) {
        if let Some((parent, name)) = tree.parent(&e.path, false)? {
            parent.remove_file(name)?;
        }
        for (i, _) in e.path.match_indices('/') {
            created.insert(e.path[..i].to_owned());
        }
    }
    remove_empty_dirs(&tree, created)?;
    if let Some(backup_dir) = state_dir.open_dir(BACKUP_DIR)? {
        let backups = Tree::new(&backup_dir);
        for e in j.entries.iter().filter(|e| e.existed) {
            let Some((bak, bak_name)) = backups.parent(&e.path, false)? else {
                continue;
            };
            if bak.entry(bak_name)?.is_none() {
                continue; // never moved: the old content is still in place
            }
            let (parent, name) = tree
                .parent(&e.path, true)?
                .ok_or_else(|| SyncError::Internal(format!("no directory for {}", e.path)))?;
            bak.rename(bak_name, &parent, name)?;
        }
    }
    match &j.previous {
        Some(prev) => state_dir.write_atomic_json(INSTALL_FILE, prev)?,
        None => {
            state_dir.remove_file(INSTALL_FILE)?;
        }
    }
    finish(local)
}

/// Deletes the journal (the commit point of either direction), then the leftovers.
fn finish(local: &Local) -> Result<(), SyncError> {
    let state_dir = local.state()?;
    state_dir.remove_file(JOURNAL_FILE)?;
    state_dir.sync();
    let _ = state_dir.remove_all(BACKUP_DIR);
    let _ = state_dir.remove_all(STAGING_DIR);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FileAction, PlannedFile};
    use crate::side::InstallSide;
    use crate::state::{InstalledFile, StatePaths};
    use std::path::{Path, PathBuf};

    fn blob_path(staging: &Path, d: &Sha256Digest) -> PathBuf {
        let hex = d.to_hex();
        staging.join(&hex[..1]).join(hex)
    }

    fn legacy_blob_path(staging: &Path, d: &Sha256Digest) -> PathBuf {
        staging.join(d.to_hex())
    }

    fn backup_root(paths: &StatePaths) -> PathBuf {
        paths.state_dir.join(BACKUP_DIR)
    }

    fn local(paths: &StatePaths) -> Local {
        Local::open(paths).expect("open")
    }

    fn planned(path: &str, content: &[u8], action: FileAction) -> PlannedFile {
        PlannedFile {
            path: path.into(),
            sha256: Sha256Digest::of(content),
            size: content.len() as u64,
            executable: false,
            preserve: false,
            action,
            upstreams: vec![],
            upstream_only: false,
            modified: false,
            backup: false,
            mtime_ns: None,
            previous: None,
            conflict: false,
        }
    }

    fn install(files: &[(&str, &[u8])]) -> InstallState {
        InstallState {
            format: state::STATE_FORMAT,
            pack: "p".into(),
            channel: "dev".into(),
            build: Sha256Hex(Sha256Digest::of(format!("{files:?}").as_bytes())),
            version: 1,
            side: InstallSide::Server,
            selection: Default::default(),
            history: Vec::new(),
            held: None,
            files: files
                .iter()
                .map(|(p, c)| InstalledFile::new(*p, Sha256Digest::of(c), c.len() as u64))
                .collect(),
        }
    }

    /// Old build: a (v1), gone; new build: a (v2), b, c; plus an unmanaged file.
    fn setup(root: &Path) -> (StatePaths, Journal) {
        let paths = StatePaths::new(&root.join("inst"));
        let d = &paths.dir;
        std::fs::create_dir_all(d.join("m")).expect("mkdir");
        std::fs::write(d.join("m/a"), b"a v1").expect("write");
        std::fs::write(d.join("m/gone"), b"gone").expect("write");
        std::fs::write(d.join("m/user"), b"mine").expect("write");
        std::fs::create_dir_all(&paths.staging).expect("mkdir");
        for c in [&b"a v2"[..], b"b", b"c"] {
            let p = blob_path(&paths.staging, &Sha256Digest::of(c));
            std::fs::create_dir_all(p.parent().expect("shard")).expect("mkdir");
            std::fs::write(p, c).expect("write");
        }
        let plan = Plan {
            files: vec![
                planned("m/a", b"a v2", FileAction::Replace),
                planned("n/b", b"b", FileAction::Add),
                planned("n/c", b"c", FileAction::Add),
            ],
            remove: vec!["m/gone".into()],
            dropped_modified: vec![],
        };
        let old = install(&[("m/a", b"a v1"), ("m/gone", b"gone")]);
        let new = install(&[("m/a", b"a v2"), ("n/b", b"b"), ("n/c", b"c")]);
        let l = local(&paths);
        let j = Journal::new(l.dir().expect("dir"), &plan, new, Some(old), None).expect("journal");
        j.write(&l).expect("write journal");
        (paths, j)
    }

    fn tree(d: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![];
        for sub in ["m", "n"] {
            if let Ok(rd) = std::fs::read_dir(d.join(sub)) {
                for e in rd.filter_map(Result::ok) {
                    let name = format!("{sub}/{}", e.file_name().to_string_lossy());
                    v.push((name, std::fs::read(e.path()).expect("read")));
                }
            }
        }
        v.sort();
        v
    }

    fn owned(v: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        v.iter().map(|(p, c)| ((*p).to_owned(), c.to_vec())).collect()
    }

    #[test]
    fn interrupted_apply_rolls_forward_when_staging_is_complete() {
        let root = tempfile::tempdir().expect("tmp");
        let (paths, j) = setup(root.path());
        // As if killed after phase A and one placement.
        let bak = backup_root(&paths);
        std::fs::create_dir_all(bak.join("m")).expect("mkdir");
        std::fs::rename(paths.dir.join("m/a"), bak.join("m/a")).expect("mv");
        std::fs::rename(paths.dir.join("m/gone"), bak.join("m/gone")).expect("mv");
        std::fs::create_dir_all(paths.dir.join("n")).expect("mkdir");
        let b = blob_path(&paths.staging, &Sha256Digest::of(b"b"));
        std::fs::rename(b, paths.dir.join("n/b")).expect("mv");
        assert_eq!(recover(&local(&paths)).expect("recover"), Recovery::Forward);
        let want = owned(&[
            ("m/a", b"a v2"),
            ("m/user", b"mine"),
            ("n/b", b"b"),
            ("n/c", b"c"),
        ]);
        assert_eq!(tree(&paths.dir), want);
        assert_eq!(local(&paths).load_install().expect("load"), Some(j.install));
        assert!(load(&local(&paths)).expect("load").is_none() && !bak.exists() && !paths.staging.exists());
        assert_eq!(recover(&local(&paths)).expect("again"), Recovery::Clean);
    }

    #[test]
    fn an_apply_interrupted_by_an_earlier_version_with_flat_staging_rolls_forward() {
        let root = tempfile::tempdir().expect("tmp");
        let (paths, j) = setup(root.path());
        // Earlier fetchers staged blobs directly under the staging directory.
        for c in [&b"a v2"[..], b"b", b"c"] {
            let d = Sha256Digest::of(c);
            std::fs::rename(
                blob_path(&paths.staging, &d),
                legacy_blob_path(&paths.staging, &d),
            )
            .expect("mv");
        }
        assert_eq!(recover(&local(&paths)).expect("recover"), Recovery::Forward);
        let want = owned(&[
            ("m/a", b"a v2"),
            ("m/user", b"mine"),
            ("n/b", b"b"),
            ("n/c", b"c"),
        ]);
        assert_eq!(tree(&paths.dir), want);
        assert_eq!(local(&paths).load_install().expect("load"), Some(j.install));
    }

    #[test]
    fn interrupted_apply_rolls_back_when_a_blob_is_lost() {
        let root = tempfile::tempdir().expect("tmp");
        let (paths, j) = setup(root.path());
        let bak = backup_root(&paths);
        std::fs::create_dir_all(bak.join("m")).expect("mkdir");
        std::fs::rename(paths.dir.join("m/a"), bak.join("m/a")).expect("mv");
        std::fs::create_dir_all(paths.dir.join("n")).expect("mkdir");
        let b = blob_path(&paths.staging, &Sha256Digest::of(b"b"));
        std::fs::rename(b, paths.dir.join("n/b")).expect("mv");
        std::fs::remove_file(blob_path(&paths.staging, &Sha256Digest::of(b"c"))).expect("rm");
        assert_eq!(recover(&local(&paths)).expect("recover"), Recovery::Back);
        let want = owned(&[("m/a", b"a v1"), ("m/gone", b"gone"), ("m/user", b"mine")]);
        assert_eq!(tree(&paths.dir), want);
        assert!(
            !paths.dir.join("n").exists(),
            "directories the apply created are pruned"
        );
        assert_eq!(local(&paths).load_install().expect("load"), j.previous);
    }

    #[test]
    fn parallel_moves_run_every_item_once_and_stop_at_the_first_error() {
        let items: Vec<usize> = (0..1000).collect();
        let seen = std::sync::Mutex::new(Vec::new());
        parallel_each(&items, |i| {
            seen.lock().expect("lock").push(*i);
            Ok(())
        })
        .expect("no error");
        let mut seen = seen.into_inner().expect("lock");
        seen.sort_unstable();
        assert_eq!(seen, items, "every item exactly once");

        let ran = AtomicUsize::new(0);
        let err = parallel_each(&items, |i| {
            ran.fetch_add(1, Ordering::Relaxed);
            if *i == 10 {
                return Err(SyncError::Internal("item 10".into()));
            }
            Ok(())
        })
        .expect_err("the error comes back");
        assert!(err.to_string().contains("item 10"), "{err}");
        assert!(
            ran.into_inner() < items.len(),
            "items after the error are skipped"
        );
    }
}
