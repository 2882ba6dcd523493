//! Output modes of the `atlas-fetcher` binary (issue 20 item 2): on a
//! terminal (a pseudo-terminal here) progress is drawn in place and logs are
//! coloured; into a pipe (cron mail, journald, CI logs) progress is one plain
//! line per phase and nothing carries an escape code; `NO_COLOR` turns
//! colour off on a terminal too; with `--json` stdout is one JSON object and
//! stderr has no progress at all.

use std::process::Command;

use crate::common::{CHANNEL, PACK, Store, f};

const ESC: &str = "\x1b[";

/// Runs `cmd` on a new pseudo-terminal; its output and exit code.
fn on_a_terminal(cmd: Command) -> (String, i32) {
    let (out, code) = atlas_testkit::pty::on_a_terminal(cmd, None);
    (out, code.expect("exit code"))
}

/// A sync of a fresh store into a fresh directory, logging at INFO.
fn sync(store: &Store, dir: &std::path::Path, json: bool, no_color: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"));
    c.arg("sync")
        .arg("--source")
        .arg(store.root())
        .args(["--pack", PACK, "--channel", CHANNEL, "--key"])
        .arg(store.public().to_text())
        .arg("--dir")
        .arg(dir);
    if json {
        c.arg("--json");
    }
    c.env("RUST_LOG", "atlas_fetcher=info")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    c
}

fn store() -> Store {
    let mut s = Store::new();
    s.publish(&[f("mods/a.jar", &[1; 100_000]), f("config/b.toml", b"b")]);
    s
}

#[test]
fn a_terminal_gets_colour_and_no_plain_phase_lines() {
    let s = store();
    let tmp = tempfile::tempdir().expect("tmp");
    let (out, code) = on_a_terminal(sync(&s, &tmp.path().join("d"), false, false));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(ESC), "no colour on a terminal: {out:?}");
    assert!(out.contains("updated to version 1"), "{out:?}");
    assert!(
        !out.lines().any(|l| l.starts_with("downloading ")),
        "plain progress lines on a terminal: {out:?}"
    );
}

#[test]
fn no_color_keeps_a_terminal_plain() {
    let s = store();
    let tmp = tempfile::tempdir().expect("tmp");
    let (out, code) = on_a_terminal(sync(&s, &tmp.path().join("d"), false, true));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("fetching channel pointer"),
        "the log is there: {out:?}"
    );
    // The progress bar may still move the cursor; no colour (SGR, `ESC[…m`) is left.
    let sgr = sgr_sequences(&out);
    assert!(sgr.is_empty(), "colour despite NO_COLOR: {sgr:?}");
}

/// Log lines written while the progress line is on the screen start on a
/// line of their own: it is cleared first and drawn again below them.
/// Before, a log line could follow the progress text on its line.
#[test]
fn log_lines_never_land_inside_the_progress_line() {
    let mut s = Store::new();
    let files: Vec<_> = (0..40)
        .map(|i| {
            (
                format!("mods/m{i}.jar"),
                vec![u8::try_from(i).expect("small"); 50_000],
            )
        })
        .collect();
    let specs: Vec<_> = files.iter().map(|(p, b)| f(p, b)).collect();
    s.publish(&specs);
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cmd = sync(&s, &tmp.path().join("d"), false, true);
    cmd.env("RUST_LOG", "atlas_fetcher=debug");
    let (out, code) = on_a_terminal(cmd);
    assert_eq!(code, 0, "{out}");
    let logs: Vec<&str> = out
        .split('\n')
        .filter(|l| l.contains(" DEBUG ") || l.contains(" INFO "))
        .collect();
    assert!(logs.len() > 2, "the log is there: {out:?}");
    for line in logs {
        // What stays on the screen: the text after the line was last cleared,
        // which for a log line begins with its timestamp (2026-...).
        let last = line.rsplit("\x1b[2K").next().unwrap_or(line);
        let shown = without_escapes(last);
        assert!(
            shown.starts_with(|c: char| c.is_ascii_digit()),
            "a log line inside the progress line: {last:?}\n{out:?}"
        );
    }
}

/// `s` without CSI sequences (`ESC [`, parameters, a final letter: cursor
/// moves, clears, colours) and carriage returns.
fn without_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Every SGR (colour) sequence `ESC[…m` in `s`.
fn sgr_sequences(s: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(ESC) {
        let tail = &rest[i + ESC.len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('m') {
            found.push(format!("ESC[{}m", &tail[..end]));
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn a_pipe_gets_plain_lines_and_no_escape_codes() {
    let s = store();
    let tmp = tempfile::tempdir().expect("tmp");
    let o = sync(&s, &tmp.path().join("d"), false, false)
        .output()
        .expect("run");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        !out.contains(ESC) && !err.contains(ESC),
        "escape codes into a pipe: {err:?}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("downloading 2 files")),
        "one plain line per phase: {err}"
    );
    assert!(err.contains("fetching channel pointer"), "{err}");
    assert!(out.contains("updated to version 1"), "{out}");
}

#[test]
fn json_is_one_object_on_stdout_and_no_progress() {
    let s = store();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut c = sync(&s, &tmp.path().join("d"), true, false);
    c.env_remove("RUST_LOG");
    let o = c.output().expect("run");
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["outcome"], "updated");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    // Under a terminal too: no bar, no phase lines, the same one object.
    let mut c = sync(&s, &tmp.path().join("e"), true, false);
    c.env_remove("RUST_LOG");
    let (tty, code) = on_a_terminal(c);
    assert_eq!(code, 0, "{tty}");
    assert!(!tty.contains(ESC), "{tty:?}");
    assert_eq!(tty.trim().lines().count(), 1, "{tty:?}");
    let v: serde_json::Value = serde_json::from_str(tty.trim()).expect("one JSON object");
    assert_eq!(v["outcome"], "updated");
}

#[test]
fn rollback_and_status_read_as_people_speak() {
    let mut s = store();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("d");
    let o = sync(&s, &dir, false, true).output().expect("v1");
    assert_eq!(o.status.code(), Some(0));
    s.publish(&[f("mods/a.jar", b"v2"), f("config/b.toml", b"b")]);
    let o = sync(&s, &dir, false, true).output().expect("v2");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1 updated") && out.contains("1 unchanged"), "{out}");
    let o = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"))
        .arg("rollback")
        .arg("--source")
        .arg(s.root())
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("rollback");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains(&format!("{PACK}/{CHANNEL} rolled back from build ")) && out.contains("1 updated"),
        "{out}"
    );
    assert!(
        !out.contains("updated to version"),
        "says it rolled back, not updated: {out}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_atlas-fetcher"))
        .arg("status")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("status");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("expires   20") && out.contains(" UTC (in "),
        "expiry as a date: {out}"
    );
    assert!(out.contains(" UTC (just now)"), "last check as a date: {out}");
    assert!(!out.contains("unix seconds"), "{out}");
}
