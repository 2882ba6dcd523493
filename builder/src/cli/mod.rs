//! The `atlas-builder` command line, in ripgrep's shape: [`args`] defines
//! the flags (clap derive), [`settings`] resolves flags, `atlas.toml`, the
//! environment and defaults into the library's requests, [`commands`] runs
//! one library operation per subcommand, [`render`] prints its report and
//! [`progress`] logs to stderr. [`run`] only dispatches; the exit code is
//! the class of the error ([`CliError`], [`crate::exit`]).

pub mod args;
pub mod commands;
pub mod error;
pub mod progress;
pub mod render;
pub mod settings;
pub mod transfer;

use std::process::ExitCode;

use clap::Parser as _;

pub use args::{Cli, Command};
pub use error::CliError;

use crate::exit::ExitClass;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = commands::Context {
        json: cli.json,
        github: crate::github::Github::detect(cli.github, cli.public_url.clone()),
        public_url: cli.public_url,
    };
    match cli.command {
        Command::Keygen(args) => commands::keygen(&ctx, args),
        Command::Publish(args) => commands::publish(&ctx, args).await,
        Command::Check(args) => commands::check(&ctx, args),
        Command::Plan(args) => commands::plan(&ctx, args).await,
        Command::Diff(args) => commands::diff(&ctx, args).await,
        Command::Promote(args) => commands::promote(&ctx, args).await,
        Command::Resign(args) => commands::resign(&ctx, args).await,
        Command::Page(args) => commands::page(&ctx, args).await,
        Command::Gc(args) => commands::gc(&ctx, args).await,
        Command::Key(cmd) => commands::key(&ctx, cmd),
    }
}

/// clap's answer to a command line it refuses (or to `--help` and
/// `--version`), printed as clap prints it; when the line asks for `--json`,
/// the refusal is also the usual error object on stdout, so a script reading
/// stdout never gets nothing.
fn refused(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::from(ExitClass::Ok.code());
    }
    if std::env::args_os().any(|a| a == "--json") {
        render::error_json(ExitClass::Usage, &render::clap_message(e));
    }
    let _ = e.print();
    ExitCode::from(ExitClass::Usage.code())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return refused(&e),
    };
    progress::init_tracing();
    let json = cli.json;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::other(anyhow::anyhow!("starting the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::from(ExitClass::Ok.code()),
        Err(e) => {
            render::failure(&e, json);
            ExitCode::from(e.class().code())
        }
    }
}
