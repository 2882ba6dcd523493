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
        let v = json!({
            "outcome": "error", "kind": f.kind, "exit_code": f.code, "error": f.message,
        });
        let _ = writeln!(io::stdout(), "{v}");
    }
    let _ = writeln!(io::stderr(), "error: {}", f.message);
}

/// The report of a sync or rollback: one JSON object, or the dry run's
/// changes, files kept or backed up, and the summary line.
pub(super) fn report(report: &Report, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let v = serde_json::to_string(report).map_err(io::Error::other)?;
        return writeln!(out, "{v}");
    }
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
    writeln!(out, "{}", report.summary())
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
    if s.installed {
        writeln!(out, "pack      {}", opt(s.pack.clone()))?;
        writeln!(out, "channel   {}", opt(s.channel.clone()))?;
        writeln!(out, "version   {}", opt(s.version.map(|v| v.to_string())))?;
        writeln!(out, "build     {}", opt(s.build.clone()))?;
        writeln!(out, "side      {}", opt(s.side.map(|v| v.as_str().to_owned())))?;
        writeln!(
            out,
            "files     {} ({} changed by you and kept)",
            s.files, s.kept_modified
        )?;
        writeln!(
            out,
            "expires   {}",
            opt(s.pointer_expires_at.map(|t| format!("{t} (unix seconds)")))
        )?;
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
        "removed {} blobs ({} bytes); {} bytes held only by the cache; {} blobs in use by instances kept",
        r.removed, r.freed_bytes, r.cache_only_bytes, r.in_use
    )
}

/// The line after a rollback.
pub(super) fn rolled_back(report: &Report) -> io::Result<()> {
    let from = report.previous_build.as_deref().unwrap_or("?");
    writeln!(
        io::stdout(),
        "rolled back from build {from}; `sync` stays here until the channel points to another build"
    )
}
