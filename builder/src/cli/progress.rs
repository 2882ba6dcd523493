//! How a run reports progress and failure on stderr: `tracing` lines
//! (`RUST_LOG` filters them; ANSI colours only on a terminal, plain lines in
//! CI logs) and the final `error: ...` line.

use std::io::IsTerminal as _;

/// Logs to stderr: `warn` overall and `info` for the builder unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,atlas_builder=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .with_target(false)
        .init();
}

/// Whether to colour output: only on a terminal, and never when `NO_COLOR`
/// is set to a non-empty value (<https://no-color.org>).
pub fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
