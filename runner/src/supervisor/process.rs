//! The server process: spawning it in its own process group, reading its
//! output into the log bus (spotting the ready line, "Stopping the server",
//! and the EULA refusal), signalling the whole group, reading the group's
//! memory use, and reading the output to its end after an exit.
//!
//! The group matters for wrapper scripts: Forge's and NeoForge's `run.sh`
//! run Java as a child of the shell (no `exec`). Signals go to the group, so
//! the JVM gets them too, and what is left of the group after the first
//! process exits is killed, so no orphan keeps the server's port.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atlas_proto::Limits;
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use regex::Regex;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, LinesCodec};

use crate::config::default_ready_pattern;
use crate::events::EventBus;
use crate::java::LaunchCommand;

/// What vanilla prints (then exits) when `eula.txt` does not say `eula=true`.
pub const EULA_LINE: &str = "You need to agree to the EULA in order to run the server";

/// How long the output of an exited server is read before its end is given
/// up on (a process outside the group holding the pipe open).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Flags the output reader raises.
#[derive(Debug, Default)]
pub struct OutputFlags {
    /// The ready line (`[server] ready_pattern`) was printed.
    pub done: AtomicBool,
    /// "Stopping the server" was printed: a `stop` reached the server, from
    /// the runner, the game or someone's RCON.
    pub stopping: AtomicBool,
    /// The server refused to run because the EULA is not accepted.
    pub eula_refused: AtomicBool,
}

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    pub child: Child,
    /// The first process's pid, also the process group's id.
    pub pid: u32,
    pub started: Instant,
    pub stdin: Arc<Mutex<Option<ChildStdin>>>,
    pub flags: Arc<OutputFlags>,
    /// Changes whenever `flags.done` is raised.
    pub done_rx: watch::Receiver<bool>,
    /// The tasks reading stdout and stderr into the bus.
    readers: Vec<JoinHandle<()>>,
}

/// Whether a log line is vanilla's ready line: `Done (12.345s)! For help, type "help"`.
pub fn is_done_line(line: &str) -> bool {
    default_ready_pattern().is_match(line)
}

/// Whether a log line says the server is shutting down on a `stop` command.
pub fn is_stopping_line(line: &str) -> bool {
    line.contains("Stopping the server") || line.contains("Stopping server")
}

/// Spawns `cmd` in `dir`, in a new process group (a Ctrl-C on the daemon's
/// terminal is not the server's, and signals reach every process of the
/// server), with its output read into `bus`; a line matching `ready` raises
/// [`OutputFlags::done`].
pub fn spawn(
    cmd: &LaunchCommand,
    dir: &std::path::Path,
    env: &std::collections::BTreeMap<String, String>,
    bus: &EventBus,
    ready: &Regex,
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
    let mut readers = Vec::new();
    let reader = |stream| Reader {
        stream,
        bus: bus.clone(),
        flags: flags.clone(),
        done_tx: done_tx.clone(),
        ready: ready.clone(),
    };
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(reader("stdout").read(out)));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(reader("stderr").read(err)));
    }
    let stdin = Arc::new(Mutex::new(child.stdin.take()));
    Ok(ServerProcess {
        child,
        pid,
        started: Instant::now(),
        stdin,
        flags,
        done_rx,
        readers,
    })
}

/// Reads one output stream of the server into the bus.
struct Reader {
    stream: &'static str,
    bus: EventBus,
    flags: Arc<OutputFlags>,
    done_tx: Arc<watch::Sender<bool>>,
    ready: Regex,
}

impl Reader {
    async fn read<R: tokio::io::AsyncRead + Unpin>(self, r: R) {
        // Longer lines are dropped: a mod dumping a megabyte on one line must not grow the daemon.
        let max_line = Limits::DEFAULT.console_line_bytes;
        let mut lines = FramedRead::new(r, LinesCodec::new_with_max_length(max_line));
        while let Some(item) = lines.next().await {
            match item {
                Ok(line) => {
                    if self.ready.is_match(&line) {
                        self.flags.done.store(true, Ordering::SeqCst);
                        let _ = self.done_tx.send(true);
                    }
                    if is_stopping_line(&line) {
                        self.flags.stopping.store(true, Ordering::SeqCst);
                    }
                    if line.contains(EULA_LINE) {
                        self.flags.eula_refused.store(true, Ordering::SeqCst);
                    }
                    self.bus.log(self.stream, line);
                }
                // An over-long line: the codec skips to the next newline.
                Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded) => {
                    self.bus.log(
                        self.stream,
                        format!("[atlas-runner: a line longer than {max_line} bytes was dropped]"),
                    );
                }
                Err(tokio_util::codec::LinesCodecError::Io(_)) => break,
            }
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

    /// Sends `sig` to every process of the server's group.
    pub fn signal(&self, sig: Signal) {
        signal_group(self.pid, sig);
    }

    /// Waits for the first process's exit (cancel-safe).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// After the first process exited: kills what is left of its group (an
    /// orphaned JVM would keep the port) and reads the output to its end, so
    /// the last lines (the crash's reason) are in the bus before the exit is
    /// recorded. Idempotent.
    pub async fn reap(&mut self) {
        signal_group(self.pid, Signal::SIGKILL);
        let readers = std::mem::take(&mut self.readers);
        let all = futures_util::future::join_all(readers);
        if tokio::time::timeout(DRAIN_LIMIT, all).await.is_err() {
            tracing::warn!(
                pid = self.pid,
                "the server's output did not end within {DRAIN_LIMIT:?} of its exit"
            );
        }
    }
}

/// Sends `sig` to the process group `pgid` (logging, not failing, when it is already gone).
pub fn signal_group(pgid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    if raw <= 1 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(raw), sig) {
        tracing::debug!(pgid, ?sig, "signal not delivered: {e}");
    }
}

/// Sends `sig` to the single process `pid`.
pub fn signal_pid(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(e) = kill(Pid::from_raw(raw), sig) {
        tracing::debug!(pid, ?sig, "signal not delivered: {e}");
    }
}

/// The process group of `pid`, from `/proc/<pid>/stat` (Linux).
fn pgrp_of(stat: &str) -> Option<u32> {
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Resident memory of one process in bytes (Linux `/proc`; `None` elsewhere).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident memory of every process in the group `pgid` (the wrapper script
/// and the JVM it started), in bytes; `None` when nothing of it is left.
pub fn group_rss_bytes(pgid: u32) -> Option<u64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if pgrp_of(&stat) == Some(pgid)
            && let Some(rss) = rss_bytes(pid)
        {
            *total.get_or_insert(0) += rss;
        }
    }
    total
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
            applied: Vec::new(),
        };
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = spawn(
            &cmd,
            dir.path(),
            &Default::default(),
            &bus,
            &default_ready_pattern(),
        )
        .expect("spawn");
        let status = p.wait().await.expect("wait");
        assert!(status.success());
        let mut rx = p.done_rx.clone();
        rx.wait_for(|d| *d).await.expect("done seen");
        p.reap().await;
        let tail = bus.tail(10);
        assert_eq!(tail.len(), 3, "{tail:?}");
        assert!(
            tail.iter().any(|e| e.stream == "stderr" && e.line == "oops"),
            "{tail:?}"
        );
        assert!(p.flags.stopping.load(Ordering::SeqCst));
        assert_eq!(describe_exit(&status), "exit code 0");
    }

    fn sh(script: &str) -> LaunchCommand {
        LaunchCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            java_major: None,
            applied: Vec::new(),
        }
    }

    fn alive(pid: i32) -> bool {
        // A zombie (exited, not yet reaped by its parent) counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
            .is_some_and(|state| state != 'Z')
    }

    /// The pids of `pgid`'s group other than `pgid` itself.
    fn group_members(pgid: u32) -> Vec<i32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid != pgid
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| pgrp_of(&s))
                    == Some(pgid)
            {
                out.push(pid as i32);
            }
        }
        out
    }

    #[tokio::test]
    async fn signals_reach_the_child_of_a_wrapper_script_and_memory_counts_the_group() {
        // A shell that does not `exec` its server (Forge's run.sh): the
        // "server" is the shell's child, which ignores nothing but is not
        // the process the runner spawned.
        let bus = EventBus::new();
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = spawn(
            &sh("sleep 600; echo after"),
            dir.path(),
            &Default::default(),
            &bus,
            &default_ready_pattern(),
        )
        .expect("spawn");
        let mut members = Vec::new();
        for _ in 0..200 {
            members = group_members(p.pid);
            if !members.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let [child] = members[..] else {
            panic!("one child of the shell expected: {members:?}")
        };
        let shell_rss = rss_bytes(p.pid).expect("shell rss");
        let child_rss = rss_bytes(child as u32).expect("child rss");
        let group = group_rss_bytes(p.pid).expect("group rss");
        // Both processes counted (RSS moves a little between reads).
        assert!(
            group > shell_rss && group > child_rss,
            "group {group}, shell {shell_rss}, child {child_rss}"
        );
        p.signal(Signal::SIGKILL);
        p.wait().await.expect("wait");
        p.reap().await;
        for _ in 0..200 {
            if !alive(child) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!alive(child), "the wrapper's child was left running");
        assert_eq!(group_rss_bytes(p.pid), None);
    }

    #[tokio::test]
    async fn what_is_left_of_the_group_after_the_first_process_exits_is_killed() {
        let bus = EventBus::new();
        let dir = tempfile::tempdir().expect("tmp");
        // The shell exits at once and leaves its child (an orphaned JVM).
        let mut p = spawn(
            &sh("sleep 600 & echo $! > child.pid"),
            dir.path(),
            &Default::default(),
            &bus,
            &default_ready_pattern(),
        )
        .expect("spawn");
        p.wait().await.expect("wait");
        let child: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .expect("child.pid")
            .trim()
            .parse()
            .expect("pid");
        p.reap().await;
        for _ in 0..200 {
            if !alive(child) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!alive(child), "the orphan was left running");
    }

    #[tokio::test]
    async fn the_output_is_read_to_its_end_before_the_exit_is_recorded() {
        // A server that writes a lot and then its reason, and exits at once:
        // the reader is behind when the exit is seen.
        for _ in 0..3 {
            let bus = EventBus::new();
            let dir = tempfile::tempdir().expect("tmp");
            let mut p = spawn(
                &sh("seq 1 40000; echo 'FATAL: the reason'; exit 3"),
                dir.path(),
                &Default::default(),
                &bus,
                &default_ready_pattern(),
            )
            .expect("spawn");
            let st = p.wait().await.expect("wait");
            assert_eq!(describe_exit(&st), "exit code 3");
            p.reap().await;
            let tail: Vec<String> = bus.tail(2).into_iter().map(|e| e.line).collect();
            assert_eq!(tail, ["40000", "FATAL: the reason"]);
        }
    }

    #[test]
    fn custom_ready_patterns_and_the_process_group_field() {
        let re = Regex::new(r"Server marked as active").expect("regex");
        assert!(re.is_match("[INFO] Server marked as active"));
        assert_eq!(pgrp_of("123 (my (odd) name) S 1 4567 4567 0 -1"), Some(4567));
        assert_eq!(pgrp_of("garbage"), None);
    }
}
