//! Shared helpers for the protocol and stand-in tests: the stand-in binaries
//! (Rust and JVM), a server directory with free ports, and a running stand-in
//! whose output lines can be awaited.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

/// A safety limit for waits (never an assertion about speed).
pub const PATIENCE: Duration = Duration::from_secs(60);
/// The RCON password [`ServerDir`] writes.
pub const RCON_PASSWORD: &str = "hunter2";

/// The `atlas-standin` binary Cargo built for these tests.
pub fn standin_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atlas-standin"))
}

/// `runner/tests/java/StandIn.java` compiled with `javac` and packaged with
/// `jar` (Main-Class manifest), once per test process. Panics with a clear
/// message when the JDK tools are missing: the test must not pass silently.
pub fn standin_jar() -> PathBuf {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/StandIn.java");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("standin-java-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let classes = dir.join("classes");
        std::fs::create_dir_all(&classes).expect("create the javac output directory");
        run_tool(
            "javac",
            &[
                "--release".as_ref(),
                "11".as_ref(),
                "-d".as_ref(),
                classes.as_os_str(),
                src.as_os_str(),
            ],
        );
        let jar = dir.join("standin.jar");
        run_tool(
            "jar",
            &[
                "--create".as_ref(),
                "--file".as_ref(),
                jar.as_os_str(),
                "--main-class".as_ref(),
                "StandIn".as_ref(),
                "-C".as_ref(),
                classes.as_os_str(),
                ".".as_ref(),
            ],
        );
        jar
    })
    .clone()
}

fn run_tool(tool: &str, args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{tool}` ({e}): the JVM stand-in test needs a JDK (javac, jar and java on PATH)"
            )
        });
    assert!(
        out.status.success(),
        "`{tool}` failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port free right now on 127.0.0.1 (bind port 0, read it back).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A temporary server directory with `server.properties` on free ports.
#[derive(Debug)]
pub struct ServerDir {
    pub tmp: tempfile::TempDir,
    pub game_port: u16,
    /// `rcon.port` when RCON is enabled (password [`RCON_PASSWORD`]).
    pub rcon_port: Option<u16>,
}

impl ServerDir {
    pub fn new(rcon: bool) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let game_port = free_port();
        let rcon_port = rcon.then(free_port);
        write_server_properties(tmp.path(), game_port, rcon_port);
        Self {
            tmp,
            game_port,
            rcon_port,
        }
    }

    /// Writes `standin.toml`.
    pub fn behaviour(self, toml: &str) -> Self {
        std::fs::write(self.path().join("standin.toml"), toml).expect("standin.toml");
        self
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn game(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.game_port))
    }

    pub fn rcon(&self) -> SocketAddr {
        SocketAddr::from((
            [127, 0, 0, 1],
            self.rcon_port.expect("RCON is enabled in this ServerDir"),
        ))
    }
}

/// Writes `<dir>/server.properties`: `server-ip=127.0.0.1`, the game port,
/// `level-name=world`, `max-players=20`, and RCON on `rcon` if given.
pub fn write_server_properties(dir: &Path, game: u16, rcon: Option<u16>) {
    let mut p = format!(
        "#Minecraft server properties\nserver-ip=127.0.0.1\nserver-port={game}\nlevel-name=world\nmax-players=20\nmotd=Atlas stand-in\n"
    );
    match rcon {
        Some(r) => p.push_str(&format!(
            "enable-rcon=true\nrcon.port={r}\nrcon.password={RCON_PASSWORD}\n"
        )),
        None => p.push_str("enable-rcon=false\n"),
    }
    std::fs::write(dir.join("server.properties"), p).expect("server.properties");
}

/// A running server process (the Rust or the JVM stand-in) and its output.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    more: Arc<Notify>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts `atlas-standin` in `dir`.
    pub fn standin(dir: &Path) -> Self {
        Self::spawn(Command::new(standin_exe()), dir)
    }

    /// Starts the JVM stand-in with `java -jar` in `dir`.
    pub fn java(dir: &Path) -> Self {
        let mut cmd = Command::new("java");
        cmd.arg("-Xmx64m").arg("-jar").arg(standin_jar());
        Self::spawn(cmd, dir)
    }

    fn spawn(mut cmd: Command, dir: &Path) -> Self {
        let mut child = cmd
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, more) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Notify::new()));
        let (l, m) = (lines.clone(), more.clone());
        let reader = tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                l.lock().expect("lines").push(line);
                m.notify_waiters();
            }
            m.notify_waiters();
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            more,
            reader: Some(reader),
        }
    }

    /// Every stdout line so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits for a stdout line containing `needle`; panics with the output after [`PATIENCE`].
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let notified = self.more.notified();
            if let Some(l) = self.output().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no line containing {needle:?} within {PATIENCE:?}; output:\n{}",
                    self.output().join("\n")
                );
            }
        }
    }

    /// Types a console command on stdin.
    pub async fn console(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .expect("write stdin");
        stdin.flush().await.expect("flush stdin");
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("still running") as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("kill");
    }

    /// Waits for the exit and the end of its output; panics with the output after [`PATIENCE`].
    pub async fn exit(&mut self) -> ExitStatus {
        let Ok(status) = tokio::time::timeout(PATIENCE, self.child.wait()).await else {
            panic!(
                "still running after {PATIENCE:?}; output:\n{}",
                self.output().join("\n")
            )
        };
        // The rest of its output, so tests see every line it printed.
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(PATIENCE, reader).await;
        }
        status.expect("wait")
    }
}
