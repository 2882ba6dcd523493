//! A real `atlas-runnerd` process supervising the `atlas-standin` server in a
//! temporary directory, driven over its socket: the fixture of the daemon
//! tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_proto::runner::v1::{Event, PowerAction, PowerRequest, Reply, StatusRequest, reply, request};
use atlas_runner::ipc::Client;

use crate::common::{free_port, write_server_properties};

/// A safety limit for waits (never an assertion about speed).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn standin() -> &'static str {
    env!("CARGO_BIN_EXE_atlas-standin")
}

/// The daemon under test and its directories.
#[derive(Debug)]
pub struct Rig {
    pub tmp: tempfile::TempDir,
    pub server_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub daemon: Option<tokio::process::Child>,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub game_port: u16,
    pub rcon_port: u16,
}

impl Rig {
    /// A rig whose config is `extra` appended to the basics (stand-in command,
    /// short timeouts); `standin` is the stand-in's behaviour file.
    pub fn new(extra: &str, standin_toml: &str, rcon: bool) -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let server_dir = tmp.path().join("server");
        let backup_dir = tmp.path().join("backups");
        let socket = tmp.path().join("run/runner.sock");
        let game_port = free_port();
        let rcon_port = free_port();
        std::fs::create_dir_all(&server_dir).expect("server dir");
        write_server_properties(&server_dir, game_port, rcon.then_some(rcon_port));
        if !standin_toml.is_empty() {
            std::fs::write(server_dir.join("standin.toml"), standin_toml).expect("standin.toml");
        }
        let config = tmp.path().join("runner.toml");
        let autostart = if extra.contains("autostart") {
            ""
        } else {
            "autostart = false\n"
        };
        let text = format!(
            "socket = \"{socket}\"\nserver_dir = \"{server}\"\n{autostart}{extra}\n",
            socket = socket.display(),
            server = server_dir.display(),
        );
        let text = with_defaults(&text, standin(), &backup_dir);
        std::fs::write(&config, text).expect("config");
        Self {
            tmp,
            server_dir,
            backup_dir,
            socket,
            config,
            daemon: None,
            events: Arc::new(Mutex::new(Vec::new())),
            game_port,
            rcon_port,
        }
    }

    /// Starts `atlas-runnerd` and waits for its socket; records every event.
    pub async fn start(&mut self) {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_atlas-runnerd"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.tmp.path().join("daemon.log")).expect("daemon.log"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn atlas-runnerd");
        self.daemon = Some(child);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(c) = Client::connect(&self.socket).await {
                drop(c);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the daemon never opened its socket"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let events = self.events.clone();
        let mut c = Client::connect(&self.socket).await.expect("connect");
        let mut stream = c
            .call(request::Kind::Events(Default::default()))
            .await
            .expect("events");
        tokio::spawn(async move {
            let _keep = c;
            while let Some(Ok(r)) = stream.next().await {
                if let Some(reply::Kind::Event(e)) = r.kind {
                    events.lock().expect("events").push(e);
                }
            }
        });
        // A server started before the subscription (autostart) has no
        // `process` event here: record its pid from the status.
        let s = self.status().await;
        if s.pid > 0 {
            self.events.lock().expect("events").insert(
                0,
                Event {
                    kind: "process".into(),
                    message: format!("already running (pid {})", s.pid),
                    json: serde_json::json!({"pid": s.pid}).to_string(),
                    ..Default::default()
                },
            );
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.expect("connect")
    }

    /// Sends one request and collects every reply until the last.
    pub async fn call(&self, kind: request::Kind) -> Vec<Reply> {
        let mut c = self.client().await;
        let mut s = c.call(kind).await.expect("call");
        let mut out = Vec::new();
        while let Some(r) = tokio::time::timeout(PATIENCE, s.next())
            .await
            .expect("reply in time")
        {
            let r = r.expect("reply");
            let last = r.last;
            out.push(r);
            if last {
                break;
            }
        }
        out
    }

    pub async fn status(&self) -> atlas_proto::runner::v1::Status {
        let replies = self.call(request::Kind::Status(StatusRequest {})).await;
        match replies.last().and_then(|r| r.kind.clone()) {
            Some(reply::Kind::Status(s)) => s,
            other => panic!("status answered {other:?}"),
        }
    }

    pub async fn power(&self, action: PowerAction, wait: bool) -> Vec<Reply> {
        self.call(request::Kind::Power(PowerRequest {
            action: action as i32,
            wait,
        }))
        .await
    }

    /// Waits until the status state is `state`.
    pub async fn wait_state(&self, state: &str) -> atlas_proto::runner::v1::Status {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let s = self.status().await;
            if s.state == state {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never reached {state}; last status {s:?}; events: {:#?}",
                self.event_lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until an event satisfies `pred`.
    pub async fn wait_event(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(e) = self.events.lock().expect("events").iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no event {what}; events: {:#?}",
                self.event_lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the daemon logged (its events among them) on stderr.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("daemon.log")).unwrap_or_default()
    }

    /// The pids of the server processes the daemon started.
    pub fn server_pids(&self) -> Vec<i32> {
        // Also called from Drop during a panic: a poisoned lock gives none.
        self.events
            .lock()
            .map(|ev| {
                ev.iter()
                    .filter(|e| e.kind == "process")
                    .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.json).ok()?["pid"].as_i64())
                    .filter_map(|p| i32::try_from(p).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn event_lines(&self) -> Vec<String> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .map(|e| format!("{}: {}", e.kind, e.message))
            .collect()
    }

    /// SIGTERM to the daemon; returns its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.daemon.take().expect("daemon running");
        let pid = child.id().expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        match tokio::time::timeout(PATIENCE, child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                // Drop kills it and its servers.
                self.daemon = Some(child);
                panic!(
                    "the daemon did not exit after SIGTERM; log:\n{}",
                    self.daemon_log()
                );
            }
        }
    }
}

/// Puts the stand-in command and test-sized timeouts in a config that does
/// not set them itself.
fn with_defaults(text: &str, standin: &str, backups: &Path) -> String {
    let mut out = text.to_owned();
    if !text.contains("[server]") {
        out.push_str(&format!(
            "\n[server]\ncommand = [\"{standin}\"]\nstart_timeout = \"30s\"\nstop_timeout = \"5s\"\nterm_timeout = \"5s\"\nrestart_backoff = \"100ms\"\nrestart_backoff_max = \"1s\"\nping_interval = \"1s\"\n"
        ));
    }
    if !text.contains("[backup]") {
        out.push_str(&format!("\n[backup]\ndir = \"{}\"\n", backups.display()));
    }
    out
}

/// The `[server]` table with the stand-in and the given timeouts.
pub fn server_table(extra: &str) -> String {
    format!(
        "[server]\ncommand = [\"{}\"]\nstart_timeout = \"30s\"\nstop_timeout = \"5s\"\nterm_timeout = \"5s\"\nrestart_backoff = \"100ms\"\nrestart_backoff_max = \"1s\"\nping_interval = \"1s\"\n{extra}\n",
        standin()
    )
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Servers the daemon started run in their own process groups: a
        // failed test must not leave them listening (after a clean
        // `terminate` the daemon stopped them itself).
        if self.daemon.is_none() {
            return;
        }
        for pid in self.server_pids() {
            // Each server runs in its own process group (its pid).
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(c) = &self.daemon
            && let Some(pid) = c.id()
        {
            // Kill the daemon's server too (it runs in its own process group).
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
