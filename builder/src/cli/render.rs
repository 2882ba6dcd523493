//! What the commands print on stdout: one JSON object with `--json`, else
//! human-readable lines. Errors go to stderr ([`super::progress`]).

use anyhow::Context as _;
use atlas_proto::fmt::human_bytes;

use crate::exit::ExitClass;
use crate::gc::GcReport;
use crate::keyset::KeysetOutput;
use crate::pointer::PointerUpdate;
use crate::promote::PromoteReport;
use crate::publish::PublishReport;
use crate::resolve::ModsReport;
use crate::signing::{KeygenOutput, SIGNING_KEY_ENV};

/// Prints `value` as JSON, or the text `human` makes.
pub fn emit<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).context("serialising the report")?
        );
    } else {
        println!("{}", human());
    }
    Ok(())
}

/// How a failed command ends: with `--json`, one object on stdout
/// (`outcome`, `kind`, `exit_code`, `error`: the fetcher's shape), and in
/// every mode the `error: ...` line on stderr, each cause once.
#[allow(clippy::print_stderr)]
pub fn failure(e: &super::CliError, json: bool) {
    let message = e.message();
    if json {
        error_json(e.class(), &message);
    }
    eprintln!("error: {message}");
}

/// The `--json` error object on stdout: `outcome`, `kind`, `exit_code`,
/// `error` (the fetcher's shape).
pub fn error_json(class: ExitClass, message: &str) {
    let v = serde_json::json!({
        "outcome": "error",
        "kind": class.kind(),
        "exit_code": class.code(),
        "error": message,
    });
    println!("{v}");
}

/// The first paragraph of clap's refusal, without its `error: ` prefix
/// (what the `--json` error object holds; the usage lines stay on stderr).
pub fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.split("\n\n").next().unwrap_or_default();
    first.trim().trim_start_matches("error: ").to_owned()
}

/// `publish` and `plan`.
pub fn publish(report: &PublishReport) -> String {
    let mut s = format!(
        "{} {} ({} files) build {}\n  blobs: {} new ({}), {} reused ({})\n  manifest: {} ({})",
        report.plan.pack,
        report.plan.version,
        report.plan.files,
        report.plan.build,
        report.blobs_new,
        human_bytes(report.bytes_new),
        report.blobs_reused,
        human_bytes(report.bytes_reused),
        report.manifest_key,
        if report.manifest_new {
            "new"
        } else {
            "already stored"
        },
    );
    if let Some(line) = mods_line(&report.mods) {
        s.push_str(&line);
    }
    match (&report.pointer, report.dry_run) {
        (_, true) => s.push_str("\n  dry run: nothing was written to the store"),
        (Some(p), false) => s.push_str(&format!(
            "\n  channel {}: version {} ({}) -> {}",
            p.channel,
            p.version,
            p.status.as_str(),
            p.key
        )),
        (None, false) => {}
    }
    s
}

/// The mods line of a publish or plan report (`None` for packs without mods).
fn mods_line(m: &ModsReport) -> Option<String> {
    (m.mods > 0).then(|| {
        let mut s = format!(
            "\n  mods: {} ({} downloaded, {}; {} cached; {} manual; {} upstream-only)",
            m.mods,
            m.downloaded,
            human_bytes(m.bytes_downloaded),
            m.cached,
            m.manual,
            m.upstream_only
        );
        for p in &m.deps {
            s.push_str(&format!("\n  warning: {p}"));
        }
        s
    })
}

/// `promote`.
pub fn promote(report: &PromoteReport) -> String {
    format!(
        "{}: channel {} -> build {} (version {}, {})",
        report.pack,
        report.pointer.channel,
        report.build,
        report.pointer.version,
        report.pointer.status.as_str()
    )
}

/// `resign`.
pub fn resign(updates: &[PointerUpdate]) -> String {
    updates
        .iter()
        .map(|u| {
            format!(
                "{}: version {} expires at {} (Unix seconds)",
                u.channel, u.version, u.expires_at
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `keygen`.
pub fn keygen(out: &KeygenOutput) -> String {
    format!(
        "secret key: {} (mode 0600; store its content as the CI secret {SIGNING_KEY_ENV})\npublic key: {} (give it to hosts: --key)\nkey id:     {}\n{}",
        out.secret_key_file.display(),
        out.public_key_file.display(),
        out.key_id,
        out.public_key
    )
}

/// `key init-root`, `key rotate`, `key revoke`.
pub fn keyset(out: &KeysetOutput) -> String {
    let mut s = format!(
        "wrote {} (keyset {}): root keys {} of [{}], pointer keys {} of [{}]",
        out.keyset_file.display(),
        out.version,
        out.root_threshold,
        out.root_key_ids.join(", "),
        out.pointer_threshold,
        out.pointer_key_ids.join(", ")
    );
    if !out.revoked.is_empty() {
        s.push_str(&format!("\nrevoked: {}", out.revoked.join(", ")));
    }
    for f in &out.secret_key_files {
        let pointer = f
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pointer"));
        let home = if pointer {
            format!("store its content as the CI secret {SIGNING_KEY_ENV}")
        } else {
            "a root key: keep it offline".to_owned()
        };
        s.push_str(&format!("\nsecret key: {} (mode 0600; {home})", f.display()));
    }
    s.push_str("\ncommit the keyset file; `publish` uploads it before the next pointer");
    s
}

/// What `page` wrote.
pub fn page(r: &crate::page::write::PageReport) -> String {
    let status = |s: crate::page::write::PageStatus| match s {
        crate::page::write::PageStatus::Written => "written",
        crate::page::write::PageStatus::Unchanged => "unchanged",
    };
    let mut out = format!(
        "{} {} (pointers {}); index.html {}",
        r.page,
        status(r.page_status),
        r.pointers,
        status(r.index_status)
    );
    for why in &r.left_out {
        out.push_str(&format!("\nleft out: {why}"));
    }
    out
}

/// `gc`: each object deleted (or that would be), then the totals.
pub fn gc(report: &GcReport) -> String {
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    let mut s = String::new();
    for d in &report.deleted {
        s.push_str(&format!(
            "{verb} {} ({}, {})\n",
            d.key,
            d.class,
            human_bytes(d.size)
        ));
    }
    for c in &report.channels {
        s.push_str(&format!(
            "channel {}: keeps {} build(s){}\n",
            c.channel,
            c.kept.len(),
            c.build
                .as_deref()
                .map(|b| format!(", current {}", &b[..12.min(b.len())]))
                .unwrap_or_default()
        ));
    }
    for w in &report.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    let classes: Vec<String> = report
        .by_class
        .iter()
        .map(|(class, t)| format!("{} {class}", t.objects))
        .collect();
    s.push_str(&format!(
        "{} {}: {} {} object(s) ({}), freeing {}; kept {} unreferenced object(s) younger than {} ({})",
        report.store,
        report.pack,
        verb,
        report.freed.objects,
        if classes.is_empty() {
            "none".to_owned()
        } else {
            classes.join(", ")
        },
        human_bytes(report.freed.bytes),
        report.kept_young.objects,
        humantime::format_duration(std::time::Duration::from_secs(report.grace_secs)),
        human_bytes(report.kept_young.bytes),
    ));
    if report.dry_run && report.freed.objects > 0 {
        s.push_str("\ndry run: nothing was deleted; pass --delete to delete");
    }
    s
}
