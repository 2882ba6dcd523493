//! Progress on the terminal: a bar on stderr when it is a terminal, one plain
//! line per phase otherwise (CI logs, cron mail), nothing with `--json`.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
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
