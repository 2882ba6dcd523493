//! What the commands print on stdout: human lines, or one JSON object with
//! `--json` (also for errors, so scripts always get one object).

use std::io::{self, Write as _};
use std::path::Path;

use serde_json::json;

use super::failure::Failure;
use crate::cache::GcReport;
use crate::inspect::{Status, Verification};
use crate::provision::Provisioned;
use crate::report::{Report, Resolution};

/// Prints a failed command's error: on stderr, and as a JSON object on
/// stdout with `--json`.
pub(super) fn failure(f: &Failure, json: bool) {
    if json {
        error_json(f);
    }
    let _ = writeln!(io::stderr(), "error: {}", f.message);
}

/// The `--json` error object on stdout: `outcome`, `kind`, `exit_code`, `error`.
pub(super) fn error_json(f: &Failure) {
    let v = json!({
        "outcome": "error", "kind": f.kind, "exit_code": f.code, "error": f.message,
    });
    let _ = writeln!(io::stdout(), "{v}");
}

/// The report of a sync or rollback: one JSON object, or the dry run's
/// changes, files kept or backed up, and the summary line.
pub(super) fn report(report: &Report, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let v = serde_json::to_string(report).map_err(io::Error::other)?;
        return writeln!(out, "{v}");
    }
    changes_and_kept(report, &mut out)?;
    writeln!(out, "{}", report.summary())
}

/// The dry run's changes, then the files you changed that were kept (left
/// as you made them) and where replaced ones were backed up.
fn changes_and_kept(report: &Report, out: &mut impl io::Write) -> io::Result<()> {
    if report.dry_run {
        let lines = [
            ("add", &report.files.added),
            ("update", &report.files.updated),
            ("repair", &report.files.repaired),
            ("remove", &report.files.removed),
        ];
        for (verb, paths) in lines {
            for p in paths {
                writeln!(out, "{verb:<7}{p}")?;
            }
        }
    }
    for p in &report.files.modified {
        writeln!(
            out,
            "kept   {p} (changed locally; not updated: restore it or use --on-modified backup|replace)"
        )?;
    }
    for p in &report.files.dropped_modified {
        writeln!(
            out,
            "kept   {p} (dropped by the pack but changed locally; no longer managed)"
        )?;
    }
    for c in &report.files.conflicts {
        let what = match c.resolution {
            Resolution::Kept => {
                "kept: the pack now installs a file there, but this one is yours; \
                 remove it or use --on-modified backup|replace to take the pack's"
            }
            Resolution::BackedUp => "backed up, then replaced by the pack's file",
            Resolution::Replaced => "replaced by the pack's file (--on-modified replace)",
        };
        writeln!(out, "conflict {} ({what})", c.path)?;
    }
    if let Some(d) = &report.backup_dir {
        writeln!(out, "backed up your changed files to {d}")?;
    }
    Ok(())
}

/// A sync followed by provisioning: the report with a `provision` member
/// (JSON), or the report's lines then the provisioning line.
pub(super) fn report_and_provisioned(r: &Report, p: &Provisioned, json: bool) -> io::Result<()> {
    if json {
        let mut v = serde_json::to_value(r).map_err(io::Error::other)?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "provision".into(),
                serde_json::to_value(p).map_err(io::Error::other)?,
            );
        }
        return writeln!(io::stdout(), "{v}");
    }
    report(r, false)?;
    provisioned(p)
}

/// The result of `provision`.
pub(super) fn provision(p: &Provisioned, code: i32, json: bool) -> io::Result<()> {
    if json {
        let v = json!({
            "outcome": if p.changed { "provisioned" } else { "current" },
            "exit_code": code, "changed": p.changed, "launch": p.launch,
        });
        return writeln!(io::stdout(), "{v}");
    }
    provisioned(p)
}

/// One line: what was provisioned and how the server starts.
pub(super) fn provisioned(p: &Provisioned) -> io::Result<()> {
    let l = &p.launch;
    let what = if p.changed {
        "provisioned"
    } else {
        "already provisioned:"
    };
    let run = match (&l.jar, &l.args_file) {
        (Some(j), _) => format!("java -jar {j}"),
        (None, Some(a)) => format!("java @{a}"),
        (None, None) => "?".into(),
    };
    let loader = if l.loader_version.is_empty() {
        l.loader.clone()
    } else {
        format!("{} {}", l.loader, l.loader_version)
    };
    writeln!(
        io::stdout(),
        "{what} {loader} for Minecraft {}; needs Java {}+; starts with `{run}` (.atlas/launch.json)",
        l.minecraft,
        l.java_major
    )
}

/// What `status` shows.
pub(super) fn status(s: &Status, dir: &Path, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let v = serde_json::to_string(s).map_err(io::Error::other)?;
        return writeln!(out, "{v}");
    }
    if !s.installed {
        writeln!(out, "{}: nothing installed", dir.display())?;
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let now_secs = || jiff::Timestamp::now().as_second();
    if s.installed {
        writeln!(out, "pack      {}", opt(s.pack.clone()))?;
        writeln!(out, "channel   {}", opt(s.channel.clone()))?;
        writeln!(out, "version   {}", opt(s.version.map(|v| v.to_string())))?;
        writeln!(out, "build     {}", opt(s.build.clone()))?;
        writeln!(out, "side      {}", opt(s.side.map(|v| v.as_str().to_owned())))?;
        writeln!(
            out,
            "files     {} ({} kept: changed by you, left as they are)",
            s.files, s.kept_modified
        )?;
        writeln!(
            out,
            "expires   {}",
            opt(s.pointer_expires_at.map(|t| when(t, now_secs())))
        )?;
    }
    if let Some(t) = s.last_accepted_at {
        writeln!(out, "checked   {}", when(t, now_secs()))?;
    }
    if s.journal_pending {
        writeln!(
            out,
            "journal   pending: an apply was interrupted; the next sync finishes or undoes it"
        )?;
    }
    Ok(())
}

/// What `verify` found, and the repair's report if it repaired.
pub(super) fn verify(v: &Verification, repaired: Option<&Report>, code: i32, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let outcome = match (repaired, v.clean()) {
            (Some(_), _) => "repaired",
            (None, true) => "clean",
            (None, false) => "drift",
        };
        let j = json!({
            "outcome": outcome, "exit_code": code, "verify": v, "repair": repaired,
        });
        return writeln!(out, "{j}");
    }
    for p in &v.modified {
        writeln!(out, "modified {p}")?;
    }
    for p in &v.missing {
        writeln!(out, "missing  {p}")?;
    }
    if v.journal_pending {
        writeln!(
            out,
            "an interrupted apply is pending; the next sync finishes or undoes it"
        )?;
    }
    writeln!(
        out,
        "verified {} files, {} bytes: {}",
        v.checked,
        v.bytes,
        if v.clean() {
            "clean".to_owned()
        } else {
            format!("{} modified, {} missing", v.modified.len(), v.missing.len())
        }
    )?;
    if let Some(r) = repaired {
        writeln!(out, "repair: {}", r.summary())?;
    }
    Ok(())
}

/// What `cache-gc` removed and kept.
pub(super) fn cache_gc(r: &GcReport, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let v = serde_json::to_string(r).map_err(io::Error::other)?;
        return writeln!(out, "{v}");
    }
    writeln!(
        out,
        "removed {} blobs ({} bytes); {} bytes held only by the cache; {} blobs still used by instances stay",
        r.removed, r.freed_bytes, r.cache_only_bytes, r.in_use
    )
}

/// What `rollback` did: one JSON object, or (as `sync`) the dry run's
/// changes and kept files, then one line that says it rolled back.
pub(super) fn rollback(r: &Report, json: bool) -> io::Result<()> {
    if json {
        return report(r, true);
    }
    let mut out = io::stdout().lock();
    changes_and_kept(r, &mut out)?;
    let short = |b: &str| b.get(..12).unwrap_or(b).to_owned();
    let from = r.previous_build.as_deref().map_or_else(|| "?".to_owned(), short);
    let verb = if r.dry_run {
        "would roll back"
    } else {
        "rolled back"
    };
    writeln!(
        out,
        "{}/{} {verb} from build {from} to build {} (version {}): {} added, {} updated, {} removed, \
         {} unchanged; {} bytes {}; `sync` stays at this build until the channel points to another one",
        r.pack,
        r.channel,
        short(&r.build),
        r.version,
        r.files.added.len(),
        r.files.updated.len(),
        r.files.removed.len(),
        r.counts.kept,
        if r.dry_run {
            r.bytes_planned
        } else {
            r.bytes_downloaded
        },
        if r.dry_run { "to download" } else { "downloaded" },
    )
}

/// A time as a date and relative to `now` (both Unix seconds):
/// `2026-12-06 01:30 UTC (3 hours ago)`.
pub(super) fn when(t: u64, now: i64) -> String {
    let secs = i64::try_from(t).unwrap_or(i64::MAX);
    let date = jiff::Timestamp::from_second(secs)
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| format!("{t} (Unix seconds)"));
    format!("{date} ({})", relative(secs.saturating_sub(now)))
}

/// `d` seconds from now in words, rounded down to the largest unit:
/// `in 2 days`, `3 hours ago`, `just now`.
fn relative(d: i64) -> String {
    let a = d.unsigned_abs();
    if a < 60 {
        return "just now".into();
    }
    let (n, unit) = [
        (86_400 * 365, "year"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ]
    .into_iter()
    .find(|(s, _)| a >= *s)
    .map(|(s, u)| (a / s, u))
    .unwrap_or((a / 60, "minute"));
    let plural = if n == 1 { "" } else { "s" };
    if d < 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_dates_with_a_relative_time() {
        // 2026-12-06 01:30:00 UTC
        let t = 1_796_520_600;
        assert_eq!(
            when(t, t as i64 + 3 * 3600 + 59),
            "2026-12-06 01:30 UTC (3 hours ago)"
        );
        assert_eq!(when(t, t as i64 - 86_400), "2026-12-06 01:30 UTC (in 1 day)");
        assert_eq!(when(t, t as i64 + 5), "2026-12-06 01:30 UTC (just now)");
    }
}
