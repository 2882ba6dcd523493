//! Download and upload progress on stderr: an indicatif bar (files, bytes,
//! rate, ETA) when stderr is a terminal, a plain line at the start, every
//! few seconds and at the end otherwise (CI logs), nothing with `--json`.
//! The approach is the fetcher's `cli/progress.rs`; the stages and the
//! periodic lines are the builder's own.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atlas_proto::fmt::human_bytes;
use indicatif::{ProgressBar, ProgressStyle};

use super::progress::BARS;
use crate::progress::{Progress, Stage};

/// How often a plain progress line is written, at most.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// Plain periodic lines (stderr is a pipe or a file).
    Lines,
    /// Nothing (`--json`).
    Off,
}

impl Mode {
    /// The mode for this process: `--json` silences progress; otherwise a
    /// bar on a terminal and lines elsewhere.
    pub fn detect(json: bool) -> Self {
        match (json, std::io::stderr().is_terminal()) {
            (true, _) => Self::Off,
            (false, true) => Self::Bar,
            (false, false) => Self::Lines,
        }
    }
}

/// One stage's counters.
#[derive(Debug)]
struct Run {
    stage: Stage,
    files: usize,
    bytes: Option<u64>,
    files_done: usize,
    bytes_done: u64,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

impl Run {
    fn counts(&self) -> String {
        let bytes = match self.bytes {
            Some(total) => format!("{} of {}", human_bytes(self.bytes_done), human_bytes(total)),
            None => human_bytes(self.bytes_done),
        };
        format!("{}/{} files, {bytes}", self.files_done, self.files)
    }

    /// The periodic line, when plain lines are written and the last one is
    /// [`LINE_EVERY`] old.
    fn due_line(&mut self, now: Instant) -> Option<String> {
        if self.bar.is_some() || now.saturating_duration_since(self.last_line) < LINE_EVERY {
            return None;
        }
        self.last_line = now;
        Some(format!("{}: {}{}", self.stage.verb(), self.counts(), self.rate()))
    }

    fn rate(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        if secs < 0.001 {
            return String::new();
        }
        // Whole bytes per second are precise enough for a log line.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let per_sec = (self.bytes_done as f64 / secs) as u64;
        format!(", {}/s", human_bytes(per_sec))
    }
}

/// The command line's [`Progress`].
#[derive(Debug)]
pub struct CliProgress {
    mode: Mode,
    run: Mutex<Option<Run>>,
}

impl CliProgress {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            run: Mutex::new(None),
        }
    }

    fn with_run(&self, stage: Stage, f: impl FnOnce(&mut Run)) {
        if self.mode == Mode::Off {
            return;
        }
        let mut guard = self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(run) = guard.as_mut().filter(|r| r.stage == stage) {
            f(run);
        }
    }

    fn line(msg: &str) {
        let _ = writeln!(std::io::stderr(), "{msg}");
    }

    /// A plain line when the last one is old enough.
    fn periodic(run: &mut Run) {
        if let Some(line) = run.due_line(Instant::now()) {
            Self::line(&line);
        }
    }
}

fn bar(files: usize, bytes: Option<u64>) -> ProgressBar {
    let (len, template) = match bytes {
        Some(b) => (
            b,
            "{prefix} {msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ),
        None => (files as u64, "{prefix} {msg} [{wide_bar}] {elapsed}"),
        // (`msg` then carries the bytes and the rate; no ETA without sizes.)
    };
    // In BARS, so log lines are written around it, never into it.
    let bar = BARS.add(ProgressBar::new(len));
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

impl Progress for CliProgress {
    fn start(&self, stage: Stage, files: usize, bytes: Option<u64>) {
        if self.mode == Mode::Off || files == 0 {
            return;
        }
        let now = Instant::now();
        let bar = (self.mode == Mode::Bar).then(|| {
            let b = bar(files, bytes);
            b.set_prefix(stage.verb());
            b.set_message(format!("0/{files} files"));
            b
        });
        let run = Run {
            stage,
            files,
            bytes,
            files_done: 0,
            bytes_done: 0,
            started: now,
            last_line: now,
            bar,
        };
        if run.bar.is_none() {
            Self::line(&format!("{} {}", stage.verb(), run.counts()));
        }
        *self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run);
    }

    fn bytes(&self, stage: Stage, n: u64) {
        self.with_run(stage, |run| {
            run.bytes_done += n;
            if let Some(bar) = &run.bar {
                match run.bytes {
                    Some(_) => bar.inc(n),
                    // Sizes unknown: the bar counts files, the message bytes and rate.
                    None => bar.set_message(format!("{}{}", run.counts(), run.rate())),
                }
            }
            Self::periodic(run);
        });
    }

    fn file_done(&self, stage: Stage) {
        self.with_run(stage, |run| {
            run.files_done += 1;
            if let Some(bar) = &run.bar {
                match run.bytes {
                    Some(_) => bar.set_message(format!("{}/{} files", run.files_done, run.files)),
                    None => {
                        bar.set_message(format!("{}{}", run.counts(), run.rate()));
                        bar.inc(1);
                    }
                }
            }
            Self::periodic(run);
        });
    }

    fn finish(&self, stage: Stage) {
        if self.mode == Mode::Off {
            return;
        }
        let mut guard = self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(run) = guard.take_if(|r| r.stage == stage) else {
            return;
        };
        if let Some(bar) = &run.bar {
            bar.finish_and_clear();
            BARS.remove(bar);
        }
        let outcome = match run.files_done < run.files {
            true => format!("{} stopped after", stage.verb()),
            false => stage.done().to_owned(),
        };
        Self::line(&format!(
            "{outcome} {} in {:.1} s{}",
            run.counts(),
            run.started.elapsed().as_secs_f64(),
            run.rate()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_mode_draws_nothing_and_keeps_no_state() {
        let p = CliProgress::new(Mode::Off);
        p.start(Stage::Download, 3, Some(10));
        p.bytes(Stage::Download, 10);
        assert!(p.run.lock().expect("lock").is_none());
    }

    #[test]
    fn lines_mode_counts_files_and_bytes_of_its_stage_only() {
        let p = CliProgress::new(Mode::Lines);
        p.start(Stage::Upload, 2, Some(2048));
        p.bytes(Stage::Upload, 1024);
        p.file_done(Stage::Upload);
        p.bytes(Stage::Download, 99);
        let mut guard = p.run.lock().expect("lock");
        let run = guard.as_mut().expect("a run");
        assert_eq!(run.counts(), "1/2 files, 1.0 KiB of 2.0 KiB");
        // One line per LINE_EVERY, however many events arrive.
        let t0 = run.last_line;
        assert_eq!(run.due_line(t0 + Duration::from_secs(1)), None);
        let line = run.due_line(t0 + LINE_EVERY).expect("a line after LINE_EVERY");
        assert!(
            line.starts_with("uploading: 1/2 files, 1.0 KiB of 2.0 KiB"),
            "{line}"
        );
        assert_eq!(run.due_line(t0 + LINE_EVERY + Duration::from_secs(1)), None);
        assert!(run.due_line(t0 + 2 * LINE_EVERY).is_some());
    }
}
