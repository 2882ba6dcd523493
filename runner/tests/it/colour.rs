//! Colour only on a terminal (issue 19 item 10, issue 20 item 2): the
//! daemon's and the CLI's diagnostics carry ANSI escapes under a
//! pseudo-terminal, none into a pipe (journald, log files, cron mail), and
//! none on a terminal either when `NO_COLOR` is set.

use std::process::Command;

/// Runs `cmd` on a new pseudo-terminal; its output.
fn on_a_terminal(cmd: Command) -> String {
    atlas_testkit::pty::on_a_terminal(cmd, None).0
}

/// Runs `cmd` with stdout and stderr into pipes; both, concatenated.
fn into_a_pipe(mut cmd: Command) -> String {
    let o = cmd.output().expect("run");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const ESC: &str = "\x1b[";

fn daemon(config: &std::path::Path, no_color: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-runnerd"));
    c.arg("--check")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info");
    c.env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    c
}

#[test]
fn the_daemon_colours_only_a_terminal_and_honours_no_color() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("runner.toml");
    // A config error: logged by the daemon at ERROR level.
    std::fs::write(&config, "server_dir = \"/nonexistent/server\"\n").expect("config");
    let tty = on_a_terminal(daemon(&config, false));
    assert!(tty.contains("server_dir"), "{tty:?}");
    assert!(tty.contains(ESC), "no colour on a terminal: {tty:?}");
    let pipe = into_a_pipe(daemon(&config, false));
    assert!(pipe.contains("server_dir"), "{pipe:?}");
    assert!(!pipe.contains(ESC), "colour into a pipe: {pipe:?}");
    let plain = on_a_terminal(daemon(&config, true));
    assert!(plain.contains("server_dir"), "{plain:?}");
    assert!(!plain.contains(ESC), "colour despite NO_COLOR: {plain:?}");
}

fn cli(no_color: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-runner"));
    // A usage error: clap's `error:` line.
    c.arg("--socket").arg("/nonexistent.sock").arg("frobnicate");
    c.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    c
}

#[test]
fn the_cli_colours_only_a_terminal_and_honours_no_color() {
    let tty = on_a_terminal(cli(false));
    assert!(tty.contains("frobnicate") && tty.contains(ESC), "{tty:?}");
    let pipe = into_a_pipe(cli(false));
    assert!(pipe.contains("frobnicate") && !pipe.contains(ESC), "{pipe:?}");
    let plain = on_a_terminal(cli(true));
    assert!(plain.contains("frobnicate") && !plain.contains(ESC), "{plain:?}");
}
