//! The `atlas-fetcher` command line, in the shape of ripgrep's:
//! `args.rs` (every flag, clap derive), `settings.rs` (flags + `--config`
//! file + defaults into the library's options), `commands.rs` (one function
//! per subcommand), `render.rs` (human lines or `--json`), `progress.rs`
//! (bar or plain lines), `failure.rs` (an error's message and exit class).
//! This file sets up logging and the runtime and dispatches.

mod args;
mod commands;
mod failure;
mod progress;
mod render;
mod settings;

use std::io::{IsTerminal as _, Write as _};

use clap::Parser as _;

pub use args::{
    CacheGcArgs, Cli, Command, ProvisionArgs, ProvisionFlags, RollbackArgs, StatusArgs, SyncArgs, VerifyArgs,
};
pub use failure::Failure;

use crate::exit;

/// Entry point of the binary: parses arguments, sets up logging, runs, and
/// returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // With `--json` on the line, a refusal is also the error object
            // on stdout, as every other failure is.
            if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                // clap's first paragraph, without its `error: ` prefix.
                let text = e.render().to_string();
                let first = text.split("\n\n").next().unwrap_or_default();
                render::error_json(&Failure {
                    code: exit::USAGE,
                    kind: exit::kind(exit::USAGE),
                    message: first.trim().trim_start_matches("error: ").to_owned(),
                });
            }
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::UPDATED
            };
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color(std::io::stderr().is_terminal()))
        .with_writer(|| progress::LogWriter)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    let code = runtime.block_on(run(cli));
    // Whatever a blocking thread still waits for once the run is over (a
    // read from a hung network file system, say) must not keep the process,
    // and a cron job, alive: the run's work, and the lock, are done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// Whether to colour diagnostics going to a stream that is (or is not) a
/// terminal: never into a pipe or file (cron mail, journald, CI logs), and
/// not on a terminal either when `NO_COLOR` is set and not empty
/// (<https://no-color.org>). clap applies the same rule to its own help and
/// usage errors.
pub fn color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs a parsed command line; returns the exit code. Output goes to stdout/stderr.
pub async fn run(cli: Cli) -> i32 {
    let (json, result) = match cli.command {
        Command::Sync(args) => (args.json, commands::sync(*args).await),
        Command::Status(args) => (args.json, commands::status(&args)),
        Command::Verify(args) => (args.json, commands::verify(args).await),
        Command::Rollback(args) => (args.json, commands::rollback(args).await),
        Command::CacheGc(args) => (args.json, commands::cache_gc(&args)),
        Command::Provision(args) => (args.json, commands::provision(args).await),
    };
    result.unwrap_or_else(|f| {
        render::failure(&f, json);
        f.code
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed_and_help_lists_exit_codes() {
        Cli::command().debug_assert();
        let help = Cli::command()
            .find_subcommand_mut("sync")
            .expect("sync")
            .render_long_help()
            .to_string();
        assert!(help.contains("Exit codes"));
        assert!(help.contains("ATLAS_SOURCE"));
    }
}
