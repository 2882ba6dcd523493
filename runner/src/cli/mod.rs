//! `atlas-runner`: the command line of `atlas-runnerd`. Parses arguments
//! ([`args`]), sends one request over the control socket, prints the replies
//! (for people, or as JSON with `--json`: `render`) and maps the outcome to
//! an exit code ([`exit`]).

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::Parser as _;

use crate::ipc::{Client, IpcError};

pub mod args;
pub mod exit;
mod render;

pub use args::{Args, Backup, Command, Power, Update};
use render::{Failure, Renderer};

/// Runs `atlas-runner` with the process's arguments.
pub fn main() -> ExitCode {
    // clap colours its help and errors only on a terminal, and honours NO_COLOR.
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::USAGE));
        }
    };
    crate::diag::init_tracing("warn");
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&Failure::Internal(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => fail(&f),
    }
}

fn fail(f: &Failure) -> ExitCode {
    // Daemon errors were already printed (as JSON with --json) by the renderer.
    if !matches!(f, Failure::Reported(_)) {
        let _ = writeln!(io::stderr(), "atlas-runner: {f}");
    }
    ExitCode::from(f.exit_code())
}

/// Sends the command's request and prints its replies to stdout.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let mut client = Client::connect(&args.socket).await?;
    let mut stream = client.call(args.command.request()).await?;
    let stdout = io::stdout();
    let mut renderer = Renderer::new(
        &args.command,
        args.json,
        args.command.action_name(),
        stdout.lock(),
    );
    while let Some(reply) = stream.next().await {
        let reply = reply?;
        let last = reply.last;
        match renderer.reply(reply) {
            Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
        if last {
            return match renderer.finish() {
                Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            };
        }
    }
    Err(Failure::Ipc(IpcError::Closed))
}
