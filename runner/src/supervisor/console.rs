//! Sending commands to the running server: over RCON when the server has it
//! enabled (the reply comes back), else on its stdin (the reply is the log
//! lines that follow). Hot backups use it through [`ServerConsole`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::ChildStdin;
use tokio::sync::Mutex;

use crate::backup::{ConsoleError, ServerConsole};
use crate::events::EventBus;
use crate::rcon::RconClient;
use crate::supervisor::process::ServerProcess;

/// How long stdin replies are collected from the log.
const STDIN_REPLY_WINDOW: Duration = Duration::from_millis(300);
const RCON_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub stdin: Arc<Mutex<Option<ChildStdin>>>,
    pub rcon: Option<(SocketAddr, String)>,
    pub bus: EventBus,
}

/// The console of whatever server process is current.
#[derive(Debug, Clone, Default)]
pub struct SupervisorConsole {
    target: Arc<std::sync::Mutex<Option<Target>>>,
}

impl SupervisorConsole {
    pub(crate) fn set(&self, target: Option<Target>) {
        *self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = target;
    }

    fn current(&self) -> Result<Target, ConsoleError> {
        self.target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| ConsoleError("the server is not running".into()))
    }

    /// Whether commands go over RCON.
    pub fn uses_rcon(&self) -> bool {
        self.current().is_ok_and(|t| t.rcon.is_some())
    }

    /// Sends `cmd` and returns its reply (RCON) or the log lines printed
    /// right after it (stdin).
    pub async fn send(&self, cmd: &str) -> Result<String, ConsoleError> {
        if cmd.contains(['\n', '\r']) {
            return Err(ConsoleError("a console command is one line".into()));
        }
        let t = self.current()?;
        if let Some((addr, password)) = &t.rcon {
            match rcon_command(*addr, password, cmd).await {
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    tracing::warn!("RCON at {addr} failed ({e}); sending `{cmd}` on stdin instead");
                }
            }
        }
        let (_, mut rx) = t.bus.follow_logs(0);
        ServerProcess::write_stdin(&t.stdin, cmd)
            .await
            .map_err(|e| ConsoleError(format!("cannot write to the server's console: {e}")))?;
        let mut out = Vec::new();
        let until = tokio::time::Instant::now() + STDIN_REPLY_WINDOW;
        while let Ok(Ok(entry)) = tokio::time::timeout_at(until, rx.recv()).await {
            out.push(entry.line);
        }
        Ok(out.join("\n"))
    }
}

async fn rcon_command(addr: SocketAddr, password: &str, cmd: &str) -> Result<String, ConsoleError> {
    let mut c = RconClient::connect(addr, password, RCON_TIMEOUT)
        .await
        .map_err(|e| ConsoleError(e.to_string()))?;
    c.command(cmd).await.map_err(|e| ConsoleError(e.to_string()))
}

#[async_trait::async_trait]
impl ServerConsole for SupervisorConsole {
    async fn command(&self, cmd: &str) -> Result<String, ConsoleError> {
        self.send(cmd).await
    }

    async fn save_all_flush(&self, timeout: Duration) -> Result<(), ConsoleError> {
        let t = self.current()?;
        let (_, mut rx) = t.bus.follow_logs(0);
        let reply = self.send("save-all flush").await?;
        if reply.contains("Saved the game") {
            return Ok(());
        }
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(e) if e.line.contains("Saved the game") => return Ok(()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(ConsoleError("the server's output ended during save-all".into()));
                    }
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            ConsoleError(format!(
                "the server did not report \"Saved the game\" within {}",
                humantime::format_duration(timeout)
            ))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_command_cannot_be_smuggled_into_one() {
        let console = SupervisorConsole::default();
        for cmd in ["say hi\nop mallory", "say hi\rstop"] {
            let e = console.send(cmd).await.expect_err(cmd);
            assert!(e.0.contains("one line"), "{e}");
        }
        let e = console.send("list").await.expect_err("no server");
        assert!(e.0.contains("not running"), "{e}");
    }
}
