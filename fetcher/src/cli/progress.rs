//! Progress on the terminal: a bar on stderr when it is a terminal, one plain
//! line per phase otherwise (CI logs, cron mail), nothing with `--json`.
//! Log lines (a retry's warning) are written while the bar is hidden, so
//! none lands in the middle of it.

use std::io::{IsTerminal as _, Write as _};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars on stderr (drawn only when it is a terminal).
static BARS: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

/// The log writer: one formatted event at a time (tracing's formatter
/// writes each at once) to stderr, with the bar cleared first and drawn
/// again after.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BARS.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

use crate::progress::{Phase, Progress};

/// Progress for the terminal: a bar when stderr is a terminal, plain phase
/// lines otherwise, nothing with `--json`.
#[derive(Debug)]
pub(super) struct CliProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    started: AtomicBool,
}

impl CliProgress {
    pub(super) fn new(json: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (!json && tty).then(|| {
            let bar = BARS.add(ProgressBar::no_length());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            plain: !json && !tty,
            started: AtomicBool::new(false),
        }
    }

    fn line(&self, msg: &str) {
        if self.plain {
            let _ = writeln!(std::io::stderr(), "{msg}");
        } else if let Some(bar) = &self.bar {
            bar.set_message(msg.to_owned());
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            BARS.remove(bar);
        }
    }
}

impl Progress for CliProgress {
    fn phase(&self, phase: &Phase) {
        match phase {
            // Not shown: a run that ends "current" prints a single line.
            Phase::Pointer { .. } => {}
            Phase::Manifest { url } => self.line(&format!("fetching manifest {url}")),
            Phase::Planning => self.line("comparing with the installed files"),
            Phase::Download { blobs, bytes } => {
                self.line(&format!("downloading {blobs} files, {bytes} bytes"));
                if let Some(bar) = &self.bar {
                    bar.set_length(*bytes);
                    let style = ProgressStyle::with_template(
                        "{msg}\n{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                    );
                    if let Ok(style) = style {
                        bar.set_style(style);
                    }
                    self.started.store(true, Ordering::Relaxed);
                }
            }
            Phase::Apply { files, removals } => {
                self.line(&format!("installing {files} files, removing {removals}"))
            }
            Phase::State => self.line("writing install state"),
        }
    }

    fn bytes(&self, n: u64) {
        if let Some(bar) = &self.bar
            && self.started.load(Ordering::Relaxed)
        {
            bar.inc(n);
        }
    }
}
