//! The binaries' diagnostics on stderr (tracing, `RUST_LOG`): ANSI colour
//! only when stderr is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>), so journald, log files and pipes get plain text.

use std::io::IsTerminal as _;

/// Whether to colour output going to a stream that is (or is not) a terminal.
pub fn color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the tracing subscriber: `RUST_LOG`, else `default_filter`.
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color(std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_colour_a_pipe() {
        assert!(!super::color(false));
    }
}
