//! How `atlas-runner` prints replies: aligned text for people, or JSON
//! objects whose `type` names the reply (`--json`), and which exit code a
//! reply means.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use atlas_proto::fmt::human_bytes;
use atlas_proto::runner::v1::{
    BackupInfo, Error as PbError, Event, LogLine, PowerOutcome, PowerResult, Reply, StageProgress, Status,
    UpdateInfo, UpdateOutcome, reply,
};
use serde_json::{Value, json};

use super::args::Command;
use super::exit;
use crate::ipc::{IpcError, code};

/// Why `atlas-runner` exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Ipc(#[from] IpcError),
    /// The daemon said no or failed; already printed. Holds the exit code.
    #[error("the daemon answered with an error (exit code {0})")]
    Reported(u8),
    #[error("{0}")]
    Internal(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

impl Failure {
    /// The process exit code for this failure ([`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Ipc(e) if e.is_unreachable() => exit::UNREACHABLE,
            Self::Ipc(_) | Self::Internal(_) | Self::Output(_) => exit::INTERNAL,
            Self::Reported(c) => *c,
        }
    }
}

/// The exit code for a daemon error code.
pub fn exit_for_code(c: &str) -> u8 {
    match c {
        code::REFUSED | code::BUSY => exit::REFUSED,
        code::BAD_REQUEST | code::INTERNAL => exit::INTERNAL,
        _ => exit::FAILED,
    }
}

/// Prints the replies to one command.
#[derive(Debug)]
pub struct Renderer<W: Write> {
    json: bool,
    stream: bool,
    action: &'static str,
    out: W,
    /// With `--json`, a power action's first answer (run/queued), merged
    /// into the final object.
    admission: Option<PowerResult>,
}

impl<W: Write> Renderer<W> {
    pub fn new(command: &Command, json: bool, action: &'static str, out: W) -> Self {
        Self {
            json,
            stream: command.is_stream(),
            action,
            out,
            admission: None,
        }
    }

    /// Prints one reply (or keeps it for later); a daemon error or refusal
    /// is printed and returned as [`Failure::Reported`].
    pub fn reply(&mut self, reply: Reply) -> Result<(), Failure> {
        let Some(kind) = reply.kind else {
            return Err(Failure::Internal(format!("reply {} carries nothing", reply.id)));
        };
        if let reply::Kind::Error(e) = &kind {
            if self.json {
                writeln!(self.out, "{}", to_json(&kind))?;
            } else {
                let _ = writeln!(io::stderr(), "atlas-runner: {}", error_line(e));
            }
            return Err(Failure::Reported(exit_for_code(&e.code)));
        }
        let refused = matches!(&kind, reply::Kind::Power(p) if p.outcome() == PowerOutcome::Refused);
        // An update that was rolled back did not do what was asked: exit 5.
        let rolled_back = matches!(&kind, reply::Kind::Update(u) if u.outcome() == UpdateOutcome::RolledBack);
        if self.json {
            self.json_reply(kind, reply.last)?;
        } else if refused {
            if let reply::Kind::Power(p) = &kind {
                let _ = writeln!(
                    io::stderr(),
                    "atlas-runner: {}: refused: {}",
                    self.action,
                    p.reason
                );
            }
        } else {
            self.human(&kind)?;
        }
        if refused {
            return Err(Failure::Reported(exit::REFUSED));
        }
        if rolled_back {
            return Err(Failure::Reported(exit::FAILED));
        }
        Ok(())
    }

    /// After the last reply.
    pub fn finish(&mut self) -> Result<(), Failure> {
        self.out.flush()?;
        Ok(())
    }

    fn json_reply(&mut self, kind: reply::Kind, last: bool) -> io::Result<()> {
        if self.stream {
            if !matches!(kind, reply::Kind::Done(_)) {
                writeln!(self.out, "{}", to_json(&kind))?;
            }
            return Ok(());
        }
        if !last {
            if let reply::Kind::Power(p) = kind {
                self.admission = Some(p);
            }
            return Ok(());
        }
        let mut v = to_json(&kind);
        if let (Some(a), Value::Object(map)) = (&self.admission, &mut v) {
            map.insert(
                "admission".into(),
                json!({"outcome": outcome_name(a.outcome()), "reason": a.reason}),
            );
        }
        writeln!(self.out, "{v}")
    }

    fn human(&mut self, kind: &reply::Kind) -> io::Result<()> {
        let out = &mut self.out;
        match kind {
            reply::Kind::Status(s) => status(out, s),
            reply::Kind::Power(p) => {
                let a = self.action;
                match p.outcome() {
                    PowerOutcome::Run if p.reason.is_empty() => writeln!(out, "{a}: running now"),
                    PowerOutcome::Run => writeln!(out, "{a}: running now ({})", p.reason),
                    PowerOutcome::Queued => writeln!(out, "{a}: queued ({})", p.reason),
                    PowerOutcome::Done if p.reason.is_empty() => {
                        writeln!(out, "{a}: done; the server is {}", p.state)
                    }
                    PowerOutcome::Done => {
                        writeln!(out, "{a}: done; the server is {} ({})", p.state, p.reason)
                    }
                    PowerOutcome::Refused | PowerOutcome::Unspecified => {
                        writeln!(out, "{a}: {} {}", outcome_name(p.outcome()), p.reason)
                    }
                }
            }
            reply::Kind::Log(l) => log_line(out, l),
            reply::Kind::Event(e) => writeln!(out, "{}  {:<12} {}", time_ms(e.unix_ms), e.kind, e.message),
            reply::Kind::Console(c) => {
                let text = c.output.trim_end();
                if text.is_empty() {
                    Ok(())
                } else {
                    writeln!(out, "{text}")
                }
            }
            reply::Kind::Backup(b) => backup(out, b),
            reply::Kind::Backups(list) if list.backups.is_empty() => writeln!(out, "no backups"),
            reply::Kind::Backups(list) => {
                writeln!(
                    out,
                    "{:<28} {:<7} {:<21} {:>10}  LABEL",
                    "ID", "KIND", "CREATED", "SIZE"
                )?;
                for b in &list.backups {
                    let created = time_ms(b.created_unix.saturating_mul(1000));
                    writeln!(
                        out,
                        "{:<28} {:<7} {:<21} {:>10}  {}",
                        b.id,
                        b.kind,
                        created,
                        human_bytes(b.size_bytes),
                        b.label
                    )?;
                }
                Ok(())
            }
            reply::Kind::Update(u) => update(out, u),
            reply::Kind::Done(_) if self.stream => Ok(()),
            reply::Kind::Done(d) if d.message.is_empty() => writeln!(out, "done"),
            reply::Kind::Done(d) => writeln!(out, "{}", d.message),
            reply::Kind::Error(e) => writeln!(out, "error: {}", error_line(e)),
        }
    }
}

fn status(out: &mut impl Write, s: &Status) -> io::Result<()> {
    let or_dash = |v: String, set: bool| if set { v } else { "-".to_string() };
    let mut rows: Vec<(&str, String)> = vec![("state", s.state.clone())];
    if !s.detail.is_empty() {
        rows.push(("detail", s.detail.clone()));
    }
    rows.push(("build", or_dash(s.build.clone(), !s.build.is_empty())));
    let version = if s.pointer_version > 0 {
        format!("{} (channel version {})", s.version, s.pointer_version)
    } else {
        s.version.clone()
    };
    rows.push(("version", or_dash(version, !s.version.is_empty())));
    if !s.channel.is_empty() {
        rows.push(("channel", s.channel.clone()));
    }
    if !s.server_version.is_empty() {
        rows.push(("server", s.server_version.clone()));
    }
    if !s.motd.is_empty() {
        rows.push(("motd", s.motd.replace('\n', " / ")));
    }
    let uptime = humantime::format_duration(Duration::from_secs(s.uptime_secs)).to_string();
    rows.push(("uptime", or_dash(uptime, s.uptime_secs > 0)));
    rows.push((
        "players",
        or_dash(
            format!("{}/{}", s.players_online, s.players_max),
            s.players_max > 0,
        ),
    ));
    rows.push((
        "memory",
        or_dash(human_bytes(s.memory_rss_bytes), s.memory_rss_bytes > 0),
    ));
    rows.push(("restarts", s.restarts.to_string()));
    rows.push(("pid", or_dash(s.pid.to_string(), s.pid > 0)));
    rows.push(("queued", format!("{} action(s)", s.queued_actions)));
    if s.failed_pings > 0 {
        rows.push(("pings", format!("{} failed in a row", s.failed_pings)));
    }
    if let Some(p) = &s.staging {
        rows.push(("staging", staging_line(p)));
    }
    if !s.bad_build.is_empty() {
        rows.push(("bad build", s.bad_build.clone()));
    }
    for (k, v) in rows {
        writeln!(out, "{:<10} {v}", format!("{k}:"))?;
    }
    if !s.launch.is_empty() {
        writeln!(out, "launch:")?;
        for l in &s.launch {
            writeln!(
                out,
                "  {:<9} {}  (from the {})",
                format!("{}:", l.name),
                l.value,
                l.origin
            )?;
        }
    }
    Ok(())
}

fn staging_line(p: &StageProgress) -> String {
    let pct = (p.bytes_done.saturating_mul(100))
        .checked_div(p.bytes_total)
        .unwrap_or(0);
    let short = p.build.get(..12).unwrap_or(&p.build);
    format!(
        "build {short} (version {}): {} of {} ({pct}%), {} of {} files",
        p.version,
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        p.blobs_done,
        p.blobs_total
    )
}

fn log_line(out: &mut impl Write, l: &LogLine) -> io::Result<()> {
    if l.stream == "stdout" || l.stream.is_empty() {
        writeln!(out, "{}", l.line)
    } else {
        writeln!(out, "[{}] {}", l.stream, l.line)
    }
}

fn backup(out: &mut impl Write, b: &BackupInfo) -> io::Result<()> {
    let label = if b.label.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", b.label)
    };
    writeln!(
        out,
        "backup {}{label}: {}, {}, created {}",
        b.id,
        b.kind,
        human_bytes(b.size_bytes),
        time_ms(b.created_unix.saturating_mul(1000))
    )?;
    if !b.path.is_empty() {
        writeln!(out, "  {}", b.path)?;
    }
    Ok(())
}

/// A daemon error for people: `failed: <message> (<kind>; …)`.
fn error_line(e: &PbError) -> String {
    let mut line = format!("{}: {}", e.code, e.message);
    match (e.kind.as_str(), e.transient) {
        ("", _) => {}
        (kind, true) => line.push_str(&format!(" ({kind} error; it may pass: try again later)")),
        (kind, false) => line.push_str(&format!(" ({kind} error)")),
    }
    line
}

fn update(out: &mut impl Write, u: &UpdateInfo) -> io::Result<()> {
    let version = if u.target_pack_version.is_empty() {
        format!("channel version {}", u.target_version)
    } else {
        format!("version {}", u.target_pack_version)
    };
    let line = match u.outcome() {
        UpdateOutcome::Current => format!("up to date: build {}", u.current_build),
        UpdateOutcome::Available => format!(
            "build {} ({version}) is available; the server runs {}. Apply it with `atlas-runner update apply`.",
            u.target_build, u.current_build
        ),
        UpdateOutcome::Applied => format!("updated to build {} ({version})", u.target_build),
        UpdateOutcome::RolledBack => format!(
            "build {} ({version}) failed its health window; rolled back to {}",
            u.target_build, u.current_build
        ),
        UpdateOutcome::SkippedBad => {
            format!(
                "build {} ({version}) is marked bad; waiting for a newer one",
                u.target_build
            )
        }
        UpdateOutcome::Unspecified => format!(
            "update: {} -> {} (an outcome this atlas-runner does not know; is it older than the daemon?)",
            u.current_build, u.target_build
        ),
    };
    writeln!(out, "{line}")?;
    if !u.message.is_empty() {
        writeln!(out, "  {}", u.message)?;
    }
    Ok(())
}

/// An update outcome's name in `--json`.
fn update_outcome_name(o: UpdateOutcome) -> &'static str {
    match o {
        UpdateOutcome::Unspecified => "unspecified",
        UpdateOutcome::Current => "current",
        UpdateOutcome::Available => "available",
        UpdateOutcome::Applied => "applied",
        UpdateOutcome::RolledBack => "rolled_back",
        UpdateOutcome::SkippedBad => "skipped_bad",
    }
}

fn outcome_name(o: PowerOutcome) -> &'static str {
    match o {
        PowerOutcome::Unspecified => "unspecified",
        PowerOutcome::Run => "run",
        PowerOutcome::Queued => "queued",
        PowerOutcome::Refused => "refused",
        PowerOutcome::Done => "done",
    }
}

fn time_ms(unix_ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn backup_json(b: &BackupInfo) -> Value {
    json!({"id": b.id, "label": b.label, "created_unix": b.created_unix, "size_bytes": b.size_bytes, "kind": b.kind, "path": b.path})
}

fn event_json(e: &Event) -> Value {
    let fields = serde_json::from_str::<Value>(&e.json).unwrap_or(Value::Null);
    json!({"type": "event", "unix_ms": e.unix_ms, "kind": e.kind, "message": e.message, "fields": fields})
}

/// A reply as the JSON object `--json` prints.
pub fn to_json(kind: &reply::Kind) -> Value {
    match kind {
        reply::Kind::Error(e) => json!({
            "type": "error", "code": e.code, "message": e.message,
            "kind": e.kind, "transient": e.transient,
        }),
        reply::Kind::Status(s) => json!({
            "type": "status", "state": s.state, "detail": s.detail, "build": s.build,
            "version": s.version, "channel": s.channel, "uptime_secs": s.uptime_secs,
            "players_online": s.players_online, "players_max": s.players_max,
            "memory_rss_bytes": s.memory_rss_bytes, "pid": s.pid, "restarts": s.restarts,
            "queued_actions": s.queued_actions, "bad_build": s.bad_build,
            "pointer_version": s.pointer_version, "server_version": s.server_version, "motd": s.motd,
            "launch": s.launch.iter().map(|l| json!({"name": l.name, "value": l.value, "origin": l.origin})).collect::<Vec<_>>(),
            "staging": s.staging.as_ref().map(|p| json!({
                "build": p.build, "version": p.version, "bytes_done": p.bytes_done,
                "bytes_total": p.bytes_total, "blobs_done": p.blobs_done, "blobs_total": p.blobs_total,
            })),
            "failed_pings": s.failed_pings,
        }),
        reply::Kind::Power(p) => {
            json!({"type": "power", "outcome": outcome_name(p.outcome()), "reason": p.reason, "state": p.state})
        }
        reply::Kind::Log(l) => {
            json!({"type": "log", "unix_ms": l.unix_ms, "stream": l.stream, "line": l.line})
        }
        reply::Kind::Event(e) => event_json(e),
        reply::Kind::Console(c) => json!({"type": "console", "output": c.output}),
        reply::Kind::Backup(b) => {
            let mut v = backup_json(b);
            if let Value::Object(m) = &mut v {
                m.insert("type".into(), "backup".into());
            }
            v
        }
        reply::Kind::Backups(l) => {
            json!({"type": "backups", "backups": l.backups.iter().map(backup_json).collect::<Vec<_>>()})
        }
        reply::Kind::Update(u) => json!({
            "type": "update", "outcome": update_outcome_name(u.outcome()), "current_build": u.current_build,
            "target_build": u.target_build, "target_version": u.target_version,
            "target_pack_version": u.target_pack_version, "message": u.message,
        }),
        reply::Kind::Done(d) => json!({"type": "done", "message": d.message}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_error_codes_map_to_exit_codes() {
        assert_eq!(exit_for_code("refused"), exit::REFUSED);
        assert_eq!(exit_for_code("busy"), exit::REFUSED);
        assert_eq!(exit_for_code("failed"), exit::FAILED);
        assert_eq!(exit_for_code("something_new"), exit::FAILED);
        assert_eq!(exit_for_code("bad_request"), exit::INTERNAL);
    }

    #[test]
    fn a_rolled_back_update_exits_5_and_reads_well() {
        let cmd = Command::Update(super::super::args::Update::Apply);
        let mut out = Vec::new();
        let mut r = Renderer::new(&cmd, false, "request", &mut out);
        let info = UpdateInfo {
            outcome: UpdateOutcome::RolledBack as i32,
            current_build: "b1".into(),
            target_build: "b2".into(),
            target_version: 7,
            target_pack_version: "1.0.2".into(),
            message: String::new(),
        };
        let e = r
            .reply(Reply {
                id: 1,
                last: true,
                kind: Some(reply::Kind::Update(info)),
            })
            .expect_err("rolled back");
        assert_eq!(e.exit_code(), exit::FAILED);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("(version 1.0.2) failed"), "{text}");
    }

    #[test]
    fn status_is_aligned() {
        let mut out = Vec::new();
        let s = Status {
            state: "running".into(),
            uptime_secs: 3723,
            players_max: 20,
            version: "1.0.1".into(),
            pointer_version: 7,
            server_version: "1.21.1".into(),
            motd: "A pack".into(),
            launch: vec![atlas_proto::runner::v1::LaunchSetting {
                name: "memory".into(),
                value: "2G to 4G".into(),
                origin: "pack".into(),
            }],
            ..Default::default()
        };
        status(&mut out, &s).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("version:   1.0.1 (channel version 7)\n"), "{text}");
        assert!(text.contains("server:    1.21.1\nmotd:      A pack\n"), "{text}");
        assert!(text.contains("  memory:   2G to 4G  (from the pack)\n"), "{text}");
        assert!(text.contains("state:     running\n"), "{text}");
        assert!(text.contains("uptime:    1h 2m 3s\n"), "{text}");
        assert!(text.contains("players:   0/20\n"), "{text}");
        assert!(text.contains("pid:       -\n"), "{text}");
    }
}
