//! Progress callbacks of a publish: the mod downloads and the blob uploads
//! report files and bytes as they go, so the command line can draw a bar
//! (or log plain lines in CI) without the library knowing how.

use std::fmt;
use std::sync::Arc;

/// What is moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Mods from upstream into the download cache.
    Download,
    /// Blobs into the store.
    Upload,
}

impl Stage {
    /// `downloading` / `uploading`.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Download => "downloading",
            Self::Upload => "uploading",
        }
    }

    /// `downloaded` / `uploaded`.
    pub fn done(self) -> &'static str {
        match self {
            Self::Download => "downloaded",
            Self::Upload => "uploaded",
        }
    }
}

/// Receives progress. Every method has a no-op default; implementations
/// must be cheap, they are called from download and upload tasks.
pub trait Progress: Send + Sync + fmt::Debug {
    /// A stage begins with `files` files of `bytes` bytes in all (`None`
    /// when some sizes are unknown until their downloads answer).
    fn start(&self, _stage: Stage, _files: usize, _bytes: Option<u64>) {}
    /// `n` more bytes went through.
    fn bytes(&self, _stage: Stage, _n: u64) {}
    /// One more file is done (downloaded and verified, or stored).
    fn file_done(&self, _stage: Stage) {}
    /// The stage ended (with or without errors).
    fn finish(&self, _stage: Stage) {}
}

/// Progress that reports nothing (the library's default, and `--json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A shared progress receiver.
pub type SharedProgress = Arc<dyn Progress>;

/// [`NoProgress`], shared.
pub fn none() -> SharedProgress {
    Arc::new(NoProgress)
}
