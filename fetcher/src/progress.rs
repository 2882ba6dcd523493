//! Progress callbacks, so a CLI can draw a bar and a launcher can drive its UI.

/// A step of a sync, reported as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Fetching the channel pointer from this URL.
    Pointer { url: String },
    /// Fetching the manifest from this URL.
    Manifest { url: String },
    /// Comparing the build with the install and the disk.
    Planning,
    /// Downloading this many distinct blobs totalling this many bytes.
    Download { blobs: usize, bytes: u64 },
    /// Moving files into place and removing files the build dropped.
    Apply { files: usize, removals: usize },
    /// Writing `install.json` and `trust.json`.
    State,
}

/// Receives progress while a sync runs. Every method has a no-op default;
/// implementations must be cheap (they are called from download tasks).
pub trait Progress: Send + Sync {
    /// A phase begins.
    fn phase(&self, _phase: &Phase) {}
    /// `n` more bytes of blob data arrived (and were hashed and written).
    fn bytes(&self, _n: u64) {}
    /// One blob was downloaded and verified; `path` is a file that uses it.
    fn blob_done(&self, _path: &str) {}
}

/// Progress that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
