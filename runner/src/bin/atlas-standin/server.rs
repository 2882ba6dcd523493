//! The server thread: console commands from stdin and RCON run one at a
//! time, scripted crashes and hangs, and the graceful shutdown that saves
//! the world.

use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, oneshot};

use crate::help::help_lines;
use crate::log::Log;
use crate::settings::{Behaviour, Settings};
use crate::world::World;

/// A console command, from stdin (`rcon: None`) or RCON. An RCON command's
/// output goes back with a sender the connection drops once it has written it.
#[derive(Debug)]
pub struct Command {
    pub line: String,
    pub rcon: Option<oneshot::Sender<(String, oneshot::Sender<()>)>>,
}

/// Feeds console lines from stdin to the server thread.
pub async fn read_stdin(tx: mpsc::Sender<Command>) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    // At end of input the server keeps running, like Minecraft.
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(Command { line, rcon: None }).await.is_err() {
            break;
        }
    }
}

/// The server thread: runs commands one at a time.
pub struct Server {
    log: Log,
    world: World,
    behaviour: Behaviour,
    settings: Settings,
    saving: bool,
    term: Signal,
    int: Signal,
}

impl Server {
    pub fn new(
        log: Log,
        world: World,
        behaviour: Behaviour,
        settings: Settings,
        signals: (Signal, Signal),
    ) -> Self {
        let (term, int) = signals;
        Self {
            log,
            world,
            behaviour,
            settings,
            saving: true,
            term,
            int,
        }
    }

    /// Runs commands until `stop`, a signal or a scripted crash; the exit code.
    pub async fn serve(&mut self, mut rx: mpsc::Receiver<Command>) -> u8 {
        let crash_after = self.behaviour.crash_after_ms;
        let crash = async move {
            match crash_after {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(crash);
        loop {
            tokio::select! {
                Some(cmd) = rx.recv() => {
                    if self.command(cmd).await {
                        return self.stop().await;
                    }
                }
                _ = self.term.recv() => {
                    if self.behaviour.hang_on_stop {
                        self.log.warn("Ignoring SIGTERM (hang_on_stop in standin.toml)");
                    } else {
                        return shutdown(&self.log, &mut self.world, &self.behaviour);
                    }
                }
                _ = self.int.recv(), if !self.behaviour.hang_on_stop => {
                    return shutdown(&self.log, &mut self.world, &self.behaviour);
                }
                _ = &mut crash => {
                    self.log.error("Encountered an unexpected exception");
                    self.log.error("java.lang.RuntimeException: crash_after_ms is set in standin.toml");
                    self.log.error("This crash report has been saved to: ./crash-reports/crash-standin.txt");
                    return 1;
                }
            }
        }
    }

    /// Runs one command; true when it was `stop`.
    async fn command(&mut self, cmd: Command) -> bool {
        let line = cmd.line.trim();
        let line = line.strip_prefix('/').unwrap_or(line);
        let (name, arg) = line.split_once(' ').unwrap_or((line, ""));
        let out: Vec<String> = match name {
            "" => Vec::new(),
            "stop" => vec!["Stopping the server".into()],
            "save-all" => match self.world.save() {
                Ok(()) => vec![
                    "Saving the game (this may take a moment!)".into(),
                    "Saved the game".into(),
                ],
                Err(e) => vec![
                    "Saving the game (this may take a moment!)".into(),
                    format!("Saving failed: {e}"),
                ],
            },
            "save-off" | "save-on" => {
                let on = name == "save-on";
                let msg = match (self.saving == on, on) {
                    (true, true) => "Saving is already turned on",
                    (true, false) => "Saving is already turned off",
                    (false, true) => "Automatic saving is now enabled",
                    (false, false) => "Automatic saving is now disabled",
                };
                self.saving = on;
                vec![msg.into()]
            }
            "say" => {
                // A chat broadcast: logged, with no command feedback.
                self.log.info(&format!("[Server] {arg}"));
                Vec::new()
            }
            "list" => vec![format!(
                "There are {} of a max of {} players online: ",
                self.behaviour.players_online,
                self.players_max()
            )],
            "help" => help_lines(),
            _ => vec![
                "Unknown or incomplete command, see below for error".into(),
                format!("{line}<--[HERE]"),
            ],
        };
        let is_stop = name == "stop";
        match cmd.rcon {
            None => out.iter().for_each(|l| self.log.info(l)),
            Some(reply) => {
                out.iter().for_each(|l| self.log.info(&format!("[Rcon: {l}]")));
                let (written_tx, written_rx) = oneshot::channel();
                if reply.send((out.join("\n"), written_tx)).is_ok() && is_stop {
                    // Let the connection write "Stopping the server" before the process ends.
                    let _ = tokio::time::timeout(Duration::from_secs(5), written_rx).await;
                }
            }
        }
        is_stop
    }

    async fn stop(&mut self) -> u8 {
        if self.behaviour.hang_on_stop {
            // A shutdown stuck forever: no more commands, signals ignored.
            loop {
                tokio::select! {
                    _ = self.term.recv() => self.log.warn("Ignoring SIGTERM (hang_on_stop in standin.toml)"),
                    _ = self.int.recv() => self.log.warn("Ignoring SIGINT (hang_on_stop in standin.toml)"),
                }
            }
        }
        shutdown(&self.log, &mut self.world, &self.behaviour)
    }

    fn players_max(&self) -> u32 {
        self.behaviour.players_max.unwrap_or(self.settings.max_players)
    }
}

/// A graceful shutdown: save the world, then exit with `exit_code_on_stop`.
pub fn shutdown(log: &Log, world: &mut World, behaviour: &Behaviour) -> u8 {
    log.info("Stopping server");
    log.info("Saving players");
    log.info("Saving worlds");
    let name = world
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    log.info(&format!(
        "Saving chunks for level 'ServerLevel[{name}]'/minecraft:overworld"
    ));
    if let Err(e) = world.save() {
        log.error(&format!("Failed to save level {name}: {e}"));
        return 1;
    }
    log.info(&format!(
        "ThreadedAnvilChunkStorage ({name}): All chunks are saved"
    ));
    log.info("ThreadedAnvilChunkStorage: All dimensions are saved");
    behaviour.exit_code_on_stop
}
