//! Writes one download into its temporary cache file, in blocks of
//! [`BLOCK`] bytes handed to a blocking thread (one hop per block, never a
//! disk write on the async workers). For a durable store ([`WriteMode::Direct`])
//! the blocks bypass the page cache (`O_DIRECT`, Linux): the bytes reach the
//! disk as they arrive, with no copy into the page cache and no write-back
//! left for the final sync. Where the filesystem refuses `O_DIRECT` (tmpfs,
//! some network filesystems) the writer falls back to ordinary writes.

use std::io::{self, Write as _};
use std::sync::{Arc, Mutex};

/// Bytes per block written at once.
pub const BLOCK: usize = 1 << 20;
/// Alignment `O_DIRECT` needs for the buffer, the file offset and the length
/// (the logical block size of every common disk is at most this).
const ALIGN: usize = 4096;

/// How a download reaches its cache file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Through the page cache; the kernel writes it back when it likes.
    Buffered,
    /// Straight to the disk (`O_DIRECT`) where supported, else buffered.
    Direct,
}

/// Reusable block buffers: a download takes one and gives it back, so a
/// build allocates (and the kernel zeroes) `concurrency` buffers, not one
/// per file.
#[derive(Debug, Clone, Default)]
pub struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    fn take(&self) -> Vec<u8> {
        let pooled = self.0.lock().ok().and_then(|mut v| v.pop());
        // ALIGN more than a block, so an aligned block fits wherever the
        // allocator put it.
        pooled.unwrap_or_else(|| vec![0; BLOCK + ALIGN])
    }

    fn give(&self, buf: Vec<u8>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(buf);
        }
    }
}

/// The file and its buffer, owned by whichever thread is using them.
struct Inner {
    file: tempfile::NamedTempFile,
    buf: Vec<u8>,
    /// Offset of the first aligned byte in `buf`.
    start: usize,
    /// Bytes waiting in the block.
    len: usize,
    /// Whether the file is open with `O_DIRECT`.
    direct: bool,
}

impl Inner {
    /// Writes the whole block: aligned, so `O_DIRECT` takes it as is.
    fn write_block(&mut self) -> io::Result<()> {
        let range = self.start..self.start + self.len;
        match self.file.write_all(&self.buf[range]) {
            // EINVAL: this filesystem takes O_DIRECT at open but not these
            // writes. Nothing was written; go on without it.
            Err(e) if self.direct && e.kind() == io::ErrorKind::InvalidInput => {
                self.set_direct(false)?;
                let range = self.start..self.start + self.len;
                self.file.write_all(&self.buf[range])
            }
            r => r,
        }?;
        self.len = 0;
        Ok(())
    }

    /// Writes the last, partial block without `O_DIRECT` (its length is not
    /// aligned).
    fn write_tail(&mut self) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let aligned = self.len / ALIGN * ALIGN;
        if self.direct && aligned > 0 {
            let tail = self.len - aligned;
            self.len = aligned;
            self.write_block()?;
            self.buf
                .copy_within(self.start + aligned..self.start + aligned + tail, self.start);
            self.len = tail;
        }
        if self.direct {
            self.set_direct(false)?;
        }
        self.write_block()
    }

    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        set_direct(self.file.as_file(), on)?;
        self.direct = on;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn set_direct(file: &std::fs::File, on: bool) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    let flags = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    fcntl(file, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &std::fs::File, on: bool) -> io::Result<()> {
    if on {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(())
}

/// A download's temporary cache file being written.
pub struct CacheWriter {
    /// `None` only while a block is being written on a blocking thread (and
    /// after a failed hop, when the writer is unusable).
    inner: Option<Inner>,
    pool: BufferPool,
}

impl CacheWriter {
    /// Starts writing `file` in `mode`, with a buffer from `pool`.
    pub fn new(file: tempfile::NamedTempFile, mode: WriteMode, pool: &BufferPool) -> Self {
        let buf = pool.take();
        let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        let direct = mode == WriteMode::Direct && set_direct(file.as_file(), true).is_ok();
        Self {
            inner: Some(Inner {
                file,
                buf,
                start,
                len: 0,
                direct,
            }),
            pool: pool.clone(),
        }
    }

    /// Whether the file is being written with `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.direct)
    }

    fn inner(&mut self) -> io::Result<&mut Inner> {
        self.inner.as_mut().ok_or_else(failed_before)
    }

    /// Appends `data`, writing each full block on a blocking thread.
    pub async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let inner = self.inner()?;
            let n = data.len().min(BLOCK - inner.len);
            let at = inner.start + inner.len;
            inner.buf[at..at + n].copy_from_slice(&data[..n]);
            inner.len += n;
            data = &data[n..];
            if inner.len == BLOCK {
                self.hop(Inner::write_block).await?;
            }
        }
        Ok(())
    }

    /// Writes what is left and returns the file, closed.
    pub async fn finish(mut self) -> io::Result<tempfile::TempPath> {
        self.hop(Inner::write_tail).await?;
        let inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("writer already finished"))?;
        self.pool.give(inner.buf);
        Ok(inner.file.into_temp_path())
    }

    async fn hop(&mut self, f: fn(&mut Inner) -> io::Result<()>) -> io::Result<()> {
        let mut inner = self.inner.take().ok_or_else(failed_before)?;
        let (inner, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut inner);
            (inner, r)
        })
        .await
        .map_err(|e| io::Error::other(format!("write task failed: {e}")))?;
        self.inner = Some(inner);
        result
    }
}

fn failed_before() -> io::Error {
    io::Error::other("an earlier write to this file failed")
}

impl std::fmt::Debug for CacheWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheWriter")
            .field("path", &self.inner.as_ref().map(|i| i.file.path()))
            .field("direct", &self.is_direct())
            .finish()
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            self.pool.give(inner.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn roundtrip(mode: WriteMode, chunks: &[usize]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tmp");
        let pool = BufferPool::default();
        let file = tempfile::NamedTempFile::new_in(dir.path()).expect("file");
        let mut w = CacheWriter::new(file, mode, &pool);
        let mut want = Vec::new();
        for (i, n) in chunks.iter().enumerate() {
            let chunk: Vec<u8> = (0..*n).map(|j| (i * 31 + j * 7) as u8).collect();
            w.write(&chunk).await.expect("write");
            want.extend_from_slice(&chunk);
        }
        let path = w.finish().await.expect("finish");
        let got = std::fs::read(&path).expect("read");
        assert_eq!(got.len(), want.len());
        assert!(got == want, "contents differ ({mode:?}, {chunks:?})");
        assert_eq!(pool.0.lock().expect("pool").len(), 1, "the buffer went back");
        got
    }

    #[tokio::test]
    async fn every_size_round_trips_in_both_modes() {
        for mode in [WriteMode::Buffered, WriteMode::Direct] {
            for chunks in [
                vec![],
                vec![1],
                vec![ALIGN],
                vec![ALIGN + 1],
                vec![BLOCK],
                vec![BLOCK - 1, 2],
                vec![16 * 1024; 200],
                vec![BLOCK, BLOCK, 3 * ALIGN + 17],
                vec![7_000, 1_000_000, 900_000, 5],
            ] {
                roundtrip(mode, &chunks).await;
            }
        }
    }

    #[tokio::test]
    async fn buffers_are_reused() {
        let dir = tempfile::tempdir().expect("tmp");
        let pool = BufferPool::default();
        for _ in 0..3 {
            let file = tempfile::NamedTempFile::new_in(dir.path()).expect("file");
            let mut w = CacheWriter::new(file, WriteMode::Direct, &pool);
            w.write(&[1; 10]).await.expect("write");
            drop(w); // an abandoned download gives its buffer back too
        }
        assert_eq!(pool.0.lock().expect("pool").len(), 1);
    }
}
