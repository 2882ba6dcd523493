//! The job summary's markdown and the step outputs of each command, from
//! their reports (pure formatting, apart from reading the builds a
//! changelog compares).

use std::fmt::Write as _;
use std::path::Path;

use atlas_proto::Sha256Digest;
use atlas_proto::fmt::human_bytes;
use atlas_proto::layout;
use atlas_proto::v1::Manifest;

use super::actions::Github;
use crate::check::CheckReport;
use crate::diff::{self, Changelog};
use crate::pointer::PointerUpdate;
use crate::promote::PromoteReport;
use crate::publish::PublishReport;
use crate::store::Store;

/// Escapes text for a markdown table cell or list item.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The changelog from `previous` (a build id, if the channel had one) to
/// the new build. Failures only cost the summary its changes section.
pub async fn changes_since(
    store: &dyn Store,
    pack: &str,
    previous: Option<&str>,
    build: &Sha256Digest,
    manifest: Option<&Manifest>,
) -> Option<Changelog> {
    let previous: Sha256Digest = previous?.parse().ok()?;
    let old = diff::load_manifest(store, pack, &previous)
        .await
        .map_err(|e| tracing::warn!("summary: reading the previous build: {e}"))
        .ok()?;
    let new = match manifest {
        Some(m) => m.clone(),
        None => diff::load_manifest(store, pack, build)
            .await
            .map_err(|e| tracing::warn!("summary: reading the new build: {e}"))
            .ok()?,
    };
    Some(diff::diff(&old, &previous, &new, build))
}

/// Step outputs of a publish (or dry run).
pub fn publish_outputs(gh: &Github, r: &PublishReport, channel: &str) -> Vec<(&'static str, String)> {
    let pointer_key = layout::pointer_key(&r.plan.pack, channel);
    let mut o = vec![
        ("command", "publish".to_owned()),
        ("dry-run", r.dry_run.to_string()),
        ("pack", r.plan.pack.clone()),
        ("pack-version", r.plan.version.clone()),
        ("commit", r.plan.commit.clone()),
        ("build-id", r.plan.build.clone()),
        ("channel", channel.to_owned()),
        ("files", r.plan.files.to_string()),
        ("files-new", r.blobs_new.to_string()),
        ("files-reused", r.blobs_reused.to_string()),
        ("bytes-new", r.bytes_new.to_string()),
        ("bytes-reused", r.bytes_reused.to_string()),
        ("manifest-url", gh.object_url(&r.store, &r.manifest_key)),
        ("pointer-url", gh.object_url(&r.store, &pointer_key)),
    ];
    if let Some(p) = &r.pointer {
        o.push(("pointer-version", p.version.to_string()));
        o.push(("pointer-status", p.status.as_str().to_owned()));
    }
    o
}

/// The job summary of a publish (or dry run).
pub fn publish_summary(gh: &Github, r: &PublishReport, channel: &str, changes: Option<&Changelog>) -> String {
    let mut s = String::new();
    let verb = if r.dry_run { "Dry run of" } else { "Published" };
    let _ = writeln!(
        s,
        "## Atlas: {verb} {} {} to `{}`\n",
        md(&r.plan.pack),
        md(&r.plan.version),
        md(channel)
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Pack | `{}` |", md(&r.plan.pack));
    let _ = writeln!(s, "| Version | {} |", md(&r.plan.version));
    let _ = writeln!(s, "| Commit | {} |", gh.commit_link(&r.plan.commit));
    let _ = writeln!(s, "| Build | `{}` |", r.plan.build);
    let channel_cell = match (&r.pointer, r.dry_run) {
        (_, true) => format!("`{}`: not changed (dry run)", md(channel)),
        (Some(p), false) => format!(
            "`{}` → version {} ({})",
            md(channel),
            p.version,
            p.status.as_str()
        ),
        (None, false) => format!("`{}`", md(channel)),
    };
    let _ = writeln!(s, "| Channel | {channel_cell} |");
    let _ = writeln!(s, "| Files | {} ({}) |", r.plan.files, human_bytes(r.plan.bytes));
    let _ = writeln!(s, "\n### Upload\n\n| | files | bytes |\n|---|---:|---:|");
    let new = if r.dry_run { "to upload" } else { "new" };
    let _ = writeln!(s, "| {new} | {} | {} |", r.blobs_new, human_bytes(r.bytes_new));
    let _ = writeln!(
        s,
        "| reused | {} | {} |",
        r.blobs_reused,
        human_bytes(r.bytes_reused)
    );
    let previous = r.pointer.as_ref().and_then(|p| p.previous_build.clone());
    changes_section(
        &mut s,
        channel,
        changes,
        r.pointer.is_none() || previous.is_some(),
    );
    links_section(
        &mut s,
        gh.object_url(&r.store, &layout::pointer_key(&r.plan.pack, channel)),
        gh.object_url(&r.store, &r.manifest_key),
    );
    s
}

fn changes_section(s: &mut String, channel: &str, changes: Option<&Changelog>, had_previous: bool) {
    let _ = writeln!(s, "\n### Changes against `{}`\n", md(channel));
    let Some(c) = changes else {
        let _ = writeln!(
            s,
            "{}",
            if had_previous {
                "The channel's previous build could not be read (or the channel has none yet)."
            } else {
                "First build on this channel."
            }
        );
        return;
    };
    let short = |b: &str| b.chars().take(12).collect::<String>();
    let _ = writeln!(
        s,
        "From {} (build `{}`) to {} (build `{}`).\n",
        md(&c.from.version),
        short(&c.from.build),
        md(&c.to.version),
        short(&c.to.build)
    );
    if c.added.is_empty()
        && c.removed.is_empty()
        && c.updated.is_empty()
        && c.files_added.is_empty()
        && c.files_removed.is_empty()
        && c.files_changed.is_empty()
    {
        let _ = writeln!(s, "No changes.");
        return;
    }
    let _ = writeln!(
        s,
        "Mods: {} added, {} removed, {} updated. Other files: {} added, {} removed, {} changed.\n",
        c.added.len(),
        c.removed.len(),
        c.updated.len(),
        c.files_added.len(),
        c.files_removed.len(),
        c.files_changed.len()
    );
    for m in &c.added {
        let _ = writeln!(s, "- Added **{}** {}", md(&m.name), md(&m.version));
    }
    for m in &c.removed {
        let _ = writeln!(s, "- Removed **{}** {}", md(&m.name), md(&m.version));
    }
    for m in &c.updated {
        let _ = writeln!(s, "- Updated **{}** {} → {}", md(&m.name), md(&m.from), md(&m.to));
    }
    const MAX_FILES: usize = 50;
    let files = [
        ("Added", &c.files_added),
        ("Removed", &c.files_removed),
        ("Changed", &c.files_changed),
    ];
    for (what, list) in files {
        for f in list.iter().take(MAX_FILES) {
            let _ = writeln!(s, "- {what} `{}`", md(f));
        }
        if list.len() > MAX_FILES {
            let _ = writeln!(
                s,
                "- … and {} more {}",
                list.len() - MAX_FILES,
                what.to_lowercase()
            );
        }
    }
}

fn links_section(s: &mut String, pointer: String, manifest: String) {
    let _ = writeln!(
        s,
        "\n### Links\n\n- Pointer: <{pointer}>\n- Manifest: <{manifest}>"
    );
}

/// Step outputs and summary of `check`.
pub fn check_summary(gh: &Github, r: &CheckReport, base: &Path) -> (Vec<(&'static str, String)>, String) {
    let outputs = vec![
        ("command", "check".to_owned()),
        ("pack", r.name.clone().unwrap_or_default()),
        ("pack-version", r.version.clone().unwrap_or_default()),
        ("errors", r.errors.to_string()),
        ("warnings", r.warnings.to_string()),
    ];
    let mut s = String::new();
    let verdict = if r.ok() { "passed" } else { "failed" };
    let _ = writeln!(
        s,
        "## Atlas check {verdict}: {} {}\n\n{} error(s), {} warning(s), {} file(s).\n",
        md(r.name.as_deref().unwrap_or("?")),
        md(r.version.as_deref().unwrap_or("")),
        r.errors,
        r.warnings,
        r.summary.files
    );
    if !r.diagnostics.is_empty() {
        let _ = writeln!(s, "| | file | message |\n|---|---|---|");
        for d in &r.diagnostics {
            let file = gh.annotation_path(base, &d.file);
            let at = d.line.map_or(file.clone(), |l| format!("{file}:{l}"));
            let _ = writeln!(s, "| {} | `{}` | {} |", d.severity, md(&at), md(&d.message));
        }
    }
    (outputs, s)
}

/// Step outputs and summary of `promote`.
pub fn promote_summary(
    gh: &Github,
    store: &str,
    r: &PromoteReport,
    changes: Option<&Changelog>,
) -> (Vec<(&'static str, String)>, String) {
    let build: Result<Sha256Digest, _> = r.build.parse();
    let manifest_url = build
        .map(|b| gh.object_url(store, &layout::manifest_key(&r.pack, &b)))
        .unwrap_or_default();
    let pointer_url = gh.object_url(store, &r.pointer.key);
    let mut outputs = pointer_outputs("promote", &r.pack, &r.pointer, &pointer_url);
    outputs.push(("build-id", r.build.clone()));
    outputs.push(("manifest-url", manifest_url.clone()));
    if let Some(c) = changes {
        outputs.push(("pack-version", c.to.version.clone()));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Atlas: promoted {} build `{}` to `{}`\n\nChannel `{}` → version {} ({}).",
        md(&r.pack),
        r.build,
        md(&r.pointer.channel),
        md(&r.pointer.channel),
        r.pointer.version,
        r.pointer.status.as_str()
    );
    changes_section(
        &mut s,
        &r.pointer.channel,
        changes,
        r.pointer.previous_build.is_some(),
    );
    links_section(&mut s, pointer_url, manifest_url);
    (outputs, s)
}

/// Step outputs and summary of `resign`.
pub fn resign_summary(
    gh: &Github,
    store: &str,
    pack: &str,
    updates: &[PointerUpdate],
) -> (Vec<(&'static str, String)>, String) {
    let mut s = format!(
        "## Atlas: re-signed {} pointer(s) of {}\n\n",
        updates.len(),
        md(pack)
    );
    let _ = writeln!(
        s,
        "| channel | version | build | expires (Unix s) |\n|---|---:|---|---:|"
    );
    for u in updates {
        let _ = writeln!(
            s,
            "| [`{}`]({}) | {} | `{}` | {} |",
            md(&u.channel),
            gh.object_url(store, &u.key),
            u.version,
            u.previous_build.as_deref().unwrap_or(""),
            u.expires_at
        );
    }
    let outputs = match updates {
        [one] => pointer_outputs("resign", pack, one, &gh.object_url(store, &one.key)),
        _ => vec![("command", "resign".to_owned()), ("pack", pack.to_owned())],
    };
    (outputs, s)
}

fn pointer_outputs(command: &str, pack: &str, p: &PointerUpdate, url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("command", command.to_owned()),
        ("pack", pack.to_owned()),
        ("channel", p.channel.clone()),
        ("pointer-version", p.version.to_string()),
        ("pointer-status", p.status.as_str().to_owned()),
        ("pointer-url", url.to_owned()),
    ]
}
