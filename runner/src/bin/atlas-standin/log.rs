//! Minecraft-shaped log lines (`[HH:MM:SS] [Server thread/INFO]: …`) on
//! stdout and in `logs/latest.log`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where log lines go; cheap to clone.
#[derive(Debug, Clone)]
pub struct Log {
    file: Arc<Mutex<Option<File>>>,
}

impl Log {
    /// Logs to stdout and `<dir>/logs/latest.log` (started afresh, like Minecraft).
    pub fn open(dir: &Path) -> Self {
        let file = std::fs::create_dir_all(dir.join("logs"))
            .and_then(|()| File::create(dir.join("logs/latest.log")))
            .ok();
        Self {
            file: Arc::new(Mutex::new(file)),
        }
    }

    pub fn stdout_only() -> Self {
        Self {
            file: Arc::new(Mutex::new(None)),
        }
    }

    pub fn info(&self, msg: &str) {
        self.line("INFO", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.line("WARN", msg);
    }

    pub fn error(&self, msg: &str) {
        self.line("ERROR", msg);
    }

    fn line(&self, level: &str, msg: &str) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            % 86_400;
        let text = format!(
            "[{:02}:{:02}:{:02}] [Server thread/{level}]: {msg}\n",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        // A closed stdout (the supervisor went away) must not stop the server.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        if let Ok(mut guard) = self.file.lock()
            && let Some(f) = guard.as_mut()
        {
            let _ = f.write_all(text.as_bytes());
        }
    }
}
