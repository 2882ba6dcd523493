//! The server process: spawning it in its own process group, reading its
//! output into the log bus (spotting "Done", "Stopping the server" and
//! "Saved the game"), signals, and reading its memory use.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use atlas_proto::Limits;
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{Mutex, watch};
use tokio_util::codec::{FramedRead, LinesCodec};

use crate::events::EventBus;
use crate::java::LaunchCommand;

/// Flags the output reader raises.
#[derive(Debug, Default)]
pub struct OutputFlags {
    /// "Done (…)! For help…" was printed.
    pub done: AtomicBool,
    /// "Stopping the server" was printed: a `stop` reached the server, from
    /// the runner, the game or someone's RCON.
    pub stopping: AtomicBool,
}

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    pub child: Child,
    pub pid: u32,
    pub started: Instant,
    pub stdin: Arc<Mutex<Option<ChildStdin>>>,
    pub flags: Arc<OutputFlags>,
    /// Changes whenever `flags.done` is raised.
    pub done_rx: watch::Receiver<bool>,
}

/// Whether a log line is the server's "ready" line: `Done (12.345s)! For help, type "help"`.
pub fn is_done_line(line: &str) -> bool {
    let Some(i) = line.find("Done (") else {
        return false;
    };
    let rest = &line[i + 6..];
    let Some(end) = rest.find(")!") else { return false };
    let secs = rest[..end].trim_end_matches('s');
    !secs.is_empty() && secs.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',')
}

/// Whether a log line says the server is shutting down on a `stop` command.
pub fn is_stopping_line(line: &str) -> bool {
    line.contains("Stopping the server") || line.contains("Stopping server")
}

/// Spawns `cmd` in `dir`, in a new process group (a Ctrl-C on the daemon's
/// terminal is not the server's), with its output read into `bus`.
pub fn spawn(
    cmd: &LaunchCommand,
    dir: &std::path::Path,
    env: &std::collections::BTreeMap<String, String>,
    bus: &EventBus,
) -> std::io::Result<ServerProcess> {
    let mut command = tokio::process::Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .current_dir(dir)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the server exited at once"))?;
    let flags = Arc::new(OutputFlags::default());
    let (done_tx, done_rx) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(read_lines(
            out,
            "stdout",
            bus.clone(),
            flags.clone(),
            done_tx.clone(),
        ));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(read_lines(err, "stderr", bus.clone(), flags.clone(), done_tx));
    }
    let stdin = Arc::new(Mutex::new(child.stdin.take()));
    Ok(ServerProcess {
        child,
        pid,
        started: Instant::now(),
        stdin,
        flags,
        done_rx,
    })
}

async fn read_lines<R: tokio::io::AsyncRead + Unpin>(
    r: R,
    stream: &'static str,
    bus: EventBus,
    flags: Arc<OutputFlags>,
    done_tx: Arc<watch::Sender<bool>>,
) {
    // Longer lines are dropped: a mod dumping a megabyte on one line must not grow the daemon.
    let max_line = Limits::DEFAULT.console_line_bytes;
    let mut lines = FramedRead::new(r, LinesCodec::new_with_max_length(max_line));
    while let Some(item) = lines.next().await {
        match item {
            Ok(line) => {
                if is_done_line(&line) {
                    flags.done.store(true, Ordering::SeqCst);
                    let _ = done_tx.send(true);
                }
                if is_stopping_line(&line) {
                    flags.stopping.store(true, Ordering::SeqCst);
                }
                bus.log(stream, line);
            }
            // An over-long line: the codec skips to the next newline.
            Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded) => {
                bus.log(
                    stream,
                    format!("[atlas-runner: a line longer than {max_line} bytes was dropped]"),
                );
            }
            Err(tokio_util::codec::LinesCodecError::Io(_)) => break,
        }
    }
}

impl ServerProcess {
    /// Writes `line` and a newline to the server's console.
    pub async fn write_stdin(stdin: &Mutex<Option<ChildStdin>>, line: &str) -> std::io::Result<()> {
        let mut guard = stdin.lock().await;
        let w = guard.as_mut().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the server's stdin is closed")
        })?;
        w.write_all(format!("{line}\n").as_bytes()).await?;
        w.flush().await
    }

    /// Sends `sig` to the server process.
    pub fn signal(&self, sig: Signal) {
        signal_pid(self.pid, sig);
    }

    /// Waits for the exit (cancel-safe).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }
}

/// Sends `sig` to `pid` (logging, not failing, when it is already gone).
pub fn signal_pid(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(e) = kill(Pid::from_raw(raw), sig) {
        tracing::debug!(pid, ?sig, "signal not delivered: {e}");
    }
}

/// Resident memory of `pid` in bytes (Linux `/proc`; `None` elsewhere).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// How an exit reads in a log line.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!("killed by {sig}"),
            Err(_) => format!("killed by signal {s}"),
        },
        _ => "unknown exit".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_stopping_lines() {
        assert!(is_done_line(
            "[12:00:01] [Server thread/INFO]: Done (12.345s)! For help, type \"help\""
        ));
        assert!(is_done_line(
            "[12:00:01] [Server thread/INFO] [minecraft/DedicatedServer]: Done (3,21s)! For help, type \"help\""
        ));
        assert!(!is_done_line(
            "[12:00:01] [Server thread/INFO]: <Steve> Done (soon)! lol"
        ));
        assert!(!is_done_line("Done ()!"));
        assert!(is_stopping_line(
            "[12:00:09] [Server thread/INFO]: Stopping the server"
        ));
        assert!(!is_stopping_line(
            "[12:00:09] [Server thread/INFO]: Steve left the game"
        ));
    }

    #[tokio::test]
    async fn output_is_read_into_the_bus_and_flags_raised() {
        let bus = EventBus::new();
        let cmd = LaunchCommand {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "echo 'Done (0.1s)! For help, type \"help\"'; echo oops >&2; echo 'Stopping the server'"
                    .into(),
            ],
            java_major: None,
        };
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = spawn(&cmd, dir.path(), &Default::default(), &bus).expect("spawn");
        let status = p.wait().await.expect("wait");
        assert!(status.success());
        let mut rx = p.done_rx.clone();
        rx.wait_for(|d| *d).await.expect("done seen");
        // Output readers may finish just after the exit.
        for _ in 0..100 {
            if bus.tail(10).len() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let tail = bus.tail(10);
        assert!(
            tail.iter().any(|e| e.stream == "stderr" && e.line == "oops"),
            "{tail:?}"
        );
        assert!(p.flags.stopping.load(Ordering::SeqCst));
        assert_eq!(describe_exit(&status), "exit code 0");
    }
}
