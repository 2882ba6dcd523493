//! How a run reports progress and failure on stderr: `tracing` lines
//! (`RUST_LOG` filters them; ANSI colours only on a terminal, plain lines in
//! CI logs) and the final `error: ...` line. Log lines and progress bars
//! share the terminal: the bars live in [`BARS`], and a log line is written
//! while they are hidden, so it never lands in the middle of a bar.

use std::io::IsTerminal as _;
use std::sync::LazyLock;

use indicatif::{MultiProgress, ProgressDrawTarget};

/// Every progress bar this process draws (on stderr, only when it is a
/// terminal; `transfer.rs` adds its bars here).
pub static BARS: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

/// Writes one formatted log event to stderr with the bars cleared first
/// and drawn again after (tracing's formatter writes each event at once).
#[derive(Debug, Clone, Copy)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BARS.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Logs to stderr: `warn` overall and `info` for the builder unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,atlas_builder=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .with_target(false)
        .init();
}

/// Whether to colour output: only on a terminal, and never when `NO_COLOR`
/// is set to a non-empty value (<https://no-color.org>).
pub fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
