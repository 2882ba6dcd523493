//! A staging file written from async code with as few trips to a blocking
//! thread as possible: bytes gather in memory and reach the disk in one
//! blocking call per [`WRITE_BUFFER`] bytes, and the file is only created by
//! the first of those calls. A config file of a few hundred bytes costs one
//! trip (create, write, close) instead of the three or four a
//! `tokio::fs::File` behind a `BufWriter` takes; over thousands of files
//! those thread wake-ups were a measurable share of a cold install.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::SyncError;
use atlas_proto::IoError;

/// Bytes gathered before each write. Memory: at most this (plus one body
/// chunk) per download in flight.
pub(crate) const WRITE_BUFFER: usize = 256 * 1024;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct StagingFile {
    path: PathBuf,
    /// `None` until the first write reaches the disk (or after [`Self::restart`]).
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    /// Empty the file before the next write ([`Self::restart`] of an open file).
    truncate: bool,
}

impl StagingFile {
    /// Nothing is created yet; `expected` (the declared size) sizes the buffer.
    pub(crate) fn new(path: &Path, expected: u64) -> Self {
        let cap = usize::try_from(expected)
            .unwrap_or(WRITE_BUFFER)
            .min(WRITE_BUFFER);
        Self {
            path: path.to_owned(),
            file: None,
            buf: Vec::with_capacity(cap),
            truncate: false,
        }
    }

    /// Appends to `file`, already open where the next byte goes (a partial
    /// download kept from an earlier run, see [`crate::partial`]).
    pub(crate) fn resume(path: &Path, file: std::fs::File) -> Self {
        Self {
            path: path.to_owned(),
            file: Some(file),
            buf: Vec::with_capacity(WRITE_BUFFER),
            truncate: false,
        }
    }

    /// Appends `data`; writes to disk once the buffer is full.
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<(), SyncError> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes whatever is buffered (creating the file if need be).
    pub(crate) async fn flush(&mut self) -> Result<(), SyncError> {
        self.flush_then(false).await
    }

    /// [`Self::flush`], then, if `writeback`, starts the file's write-back.
    async fn flush_then(&mut self, writeback: bool) -> Result<(), SyncError> {
        let file = self.file.take();
        let mut buf = std::mem::take(&mut self.buf);
        let path = self.path.clone();
        let truncate = std::mem::take(&mut self.truncate);
        let (file, buf) = tokio::task::spawn_blocking(move || {
            let mut f = match file {
                Some(f) => f,
                None => std::fs::File::create(&path).map_err(IoError::at("creating staging file", &path))?,
            };
            if truncate {
                use std::io::Seek as _;
                f.set_len(0)
                    .and_then(|()| f.rewind())
                    .map_err(IoError::at("truncating staging file", &path))?;
            }
            f.write_all(&buf)
                .map_err(IoError::at("writing staging file", &path))?;
            buf.clear();
            if writeback {
                crate::durable::start_writeback(&f);
            }
            Ok::<_, SyncError>((f, buf))
        })
        .await
        .map_err(|e| SyncError::Internal(format!("write task failed: {e}")))??;
        self.file = Some(file);
        self.buf = buf;
        Ok(())
    }

    /// Forgets every byte written: the next write starts the file again from
    /// zero (used when a server ignores a range request).
    pub(crate) fn restart(&mut self) {
        self.buf.clear();
        // The next flush empties the file through the same descriptor.
        self.truncate = self.file.is_some();
    }

    /// Writes what is left and hands back the file (for an fsync). With
    /// `writeback`, the file's write-back starts in the same blocking call
    /// (see [`crate::durable::start_writeback`]).
    pub(crate) async fn close(mut self, writeback: bool) -> Result<std::fs::File, SyncError> {
        if self.file.is_none() || !self.buf.is_empty() || self.truncate || writeback {
            self.flush_then(writeback).await?;
        }
        self.file
            .ok_or_else(|| SyncError::Internal(format!("{} was not created", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_writes_gather_and_an_empty_file_is_still_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a");
        let mut f = StagingFile::new(&p, 5);
        f.write(b"ab").await.expect("write");
        f.write(b"cde").await.expect("write");
        assert!(
            !p.exists(),
            "nothing reaches the disk before the buffer fills or the file closes"
        );
        drop(f.close(false).await.expect("close"));
        assert_eq!(std::fs::read(&p).expect("read"), b"abcde");

        let empty = dir.path().join("empty");
        drop(StagingFile::new(&empty, 0).close(false).await.expect("close"));
        assert_eq!(std::fs::read(&empty).expect("read"), b"");
    }

    #[tokio::test]
    async fn large_files_are_written_as_the_buffer_fills_and_restart_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big");
        let chunk = vec![7u8; 100_000];
        let mut f = StagingFile::new(&p, 1 << 20);
        for _ in 0..3 {
            f.write(&chunk).await.expect("write");
        }
        assert_eq!(std::fs::metadata(&p).expect("written").len(), 300_000);
        f.restart();
        f.write(b"xyz").await.expect("write");
        drop(f.close(false).await.expect("close"));
        assert_eq!(std::fs::read(&p).expect("read"), b"xyz");
    }
}
