//! Who holds, or last held, a directory's lock: the program, its pid and
//! since when, written into `DIR/.atlas/lock` by whoever takes the lock.
//! Two updaters on one directory (an `atlas-fetcher` timer and
//! `atlas-runnerd`, say) take turns without ever overlapping, so the lock
//! alone never notices them; the owner record does. [`record`] warns when
//! the previous owner is another program still running, and names the one
//! to remove; `atlas-runnerd` reads [`read`] to say the same.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The largest owner record read.
const MAX_RECORD: u64 = 4096;

/// One line of JSON in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    /// The executable's file name (`atlas-fetcher`, `atlas-runnerd`, a launcher).
    pub program: String,
    pub pid: u32,
    /// When it took the lock (Unix seconds).
    pub since_unix: u64,
}

impl LockOwner {
    /// This process.
    pub fn me() -> Self {
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".into());
        Self {
            program,
            pid: std::process::id(),
            since_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Whether the process is still running (Linux: `/proc/<pid>/exe` names
    /// the same program). `None` where that cannot be told.
    pub fn is_running(&self) -> Option<bool> {
        if cfg!(target_os = "linux") {
            let exe = std::fs::read_link(format!("/proc/{}/exe", self.pid)).ok();
            let name = exe
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned());
            // A binary replaced by an upgrade reads "atlas-runnerd (deleted)".
            Some(name.is_some_and(|n| n.trim_end_matches(" (deleted)") == self.program))
        } else {
            None
        }
    }

    /// What to tell the host when `self` and `other` both update one directory.
    pub fn advice(&self, other: &LockOwner) -> String {
        let runner = |o: &LockOwner| o.program.starts_with("atlas-runnerd");
        let fetcher = |o: &LockOwner| o.program.starts_with("atlas-fetcher");
        if runner(self) && fetcher(other) || fetcher(self) && runner(other) {
            "atlas-runnerd updates the server directory itself: remove the atlas-fetcher cron line or \
             timer for it (`systemctl disable --now atlas-fetcher.timer`, or `crontab -e`)"
                .into()
        } else if runner(self) && runner(other) {
            "two atlas-runnerd daemons serve this directory: stop one (`systemctl list-units 'atlas-runnerd*'`), \
             each instance needs its own server directory"
                .into()
        } else {
            format!(
                "only one updater may update a directory: stop `{}` or `{}` from updating it",
                self.program, other.program
            )
        }
    }
}

/// Reads the owner record of the lock file at `lock_path` (`None` when
/// there is none or it is not one).
pub fn read(lock_path: &Path) -> Option<LockOwner> {
    let mut text = String::new();
    std::fs::File::open(lock_path)
        .ok()?
        .take(MAX_RECORD)
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Writes this process as the owner into the held lock `file`, after
/// warning when the previous owner is another program that is still
/// running (two updaters taking turns on one directory). A process that
/// already is the recorded owner writes nothing, and the file keeps its
/// modification time, so a run that changes nothing else leaves the
/// directory as it was.
pub(crate) fn record(file: &mut std::fs::File, lock_path: &Path) {
    let me = LockOwner::me();
    let prev = read(lock_path);
    if let Some(prev) = &prev
        && prev.program == me.program
        && prev.pid == me.pid
    {
        return;
    }
    if let Some(prev) = &prev
        && prev.program != me.program
        && prev.is_running() == Some(true)
    {
        tracing::warn!(
            "{} (pid {}) also updates {}: {}",
            prev.program,
            prev.pid,
            lock_path
                .parent()
                .and_then(Path::parent)
                .unwrap_or(lock_path)
                .display(),
            me.advice(prev)
        );
    }
    let Ok(line) = serde_json::to_string(&me) else {
        return;
    };
    let times = file.metadata().ok().and_then(|m| {
        let t = std::fs::FileTimes::new().set_modified(m.modified().ok()?);
        Some(match m.accessed() {
            Ok(a) => t.set_accessed(a),
            Err(_) => t,
        })
    });
    // Best effort: the lock works without the record.
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(format!("{line}\n").as_bytes()))
        .and_then(|()| times.map_or(Ok(()), |t| file.set_times(t)));
    if let Err(e) = written {
        tracing::debug!("cannot record the lock's owner in {}: {e}", lock_path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_recorded_and_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("lock");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("create");
        std::fs::write(&path, "garbage").expect("write");
        assert_eq!(read(&path), None);
        let mtime = || {
            std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .expect("mtime")
        };
        let before = mtime();
        record(&mut f, &path);
        let owner = read(&path).expect("owner");
        assert_eq!(mtime(), before, "the lock file keeps its time");
        let bytes = std::fs::read(&path).expect("read");
        record(&mut f, &path);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bytes,
            "the owner again: nothing written"
        );
        assert_eq!(owner.pid, std::process::id());
        assert_eq!(
            owner,
            LockOwner {
                since_unix: owner.since_unix,
                ..LockOwner::me()
            }
        );
        if cfg!(target_os = "linux") {
            assert_eq!(owner.is_running(), Some(true));
            let gone = LockOwner {
                pid: u32::MAX - 1,
                ..owner.clone()
            };
            assert_eq!(gone.is_running(), Some(false));
        }
        let runner = LockOwner {
            program: "atlas-runnerd".into(),
            ..owner.clone()
        };
        let fetcher = LockOwner {
            program: "atlas-fetcher".into(),
            ..owner
        };
        assert!(runner.advice(&fetcher).contains("remove the atlas-fetcher"));
        assert!(fetcher.advice(&runner).contains("remove the atlas-fetcher"));
    }
}
