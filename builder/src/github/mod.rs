//! GitHub Actions integration: step outputs (`$GITHUB_OUTPUT`), the job
//! summary (`$GITHUB_STEP_SUMMARY`) and error annotations (workflow commands)
//! for `publish`, `plan`, `check`, `promote` and `resign`.
//!
//! On when the command line says `--github` or the environment says
//! `GITHUB_ACTIONS=true`. [`actions`] knows the Actions environment,
//! [`summary`] formats each report (pure, unit-tested); the functions here
//! put the two together for each command.

use std::path::Path;

use atlas_proto::Sha256Digest;

use crate::check::CheckReport;
use crate::promote::PromoteReport;
use crate::publish::PublishReport;
use crate::store::Store;

mod actions;
mod summary;

pub use actions::{
    Github, GithubError, annotation, diagnostics_base, escape_data, escape_property, output_lines,
};
pub use summary::{
    changes_since, check_summary, md, promote_summary, publish_outputs, publish_summary, resign_summary,
};

/// `--github` for publish and plan: outputs, and a summary with the changes
/// against the build the channel pointed to before.
pub async fn publish(
    gh: &Github,
    store: &dyn Store,
    plan: &crate::plan::BuildPlan,
    report: &PublishReport,
    channel: &str,
) -> Result<(), GithubError> {
    let previous = match &report.pointer {
        Some(p) => p.previous_build.clone(),
        // A dry run changed nothing: compare with the channel as it is.
        None => crate::builds::channel_build(store, &report.plan.pack, channel)
            .await
            .ok()
            .map(|b| b.to_hex()),
    };
    let changes = changes_since(
        store,
        &report.plan.pack,
        previous.as_deref(),
        &plan.build_id,
        Some(&plan.manifest),
    )
    .await;
    let mut summary = publish_summary(gh, report, channel, changes.as_ref());
    if report.pointer.is_none() && previous.is_none() {
        summary = summary.replace(
            "The channel's previous build could not be read (or the channel has none yet).",
            "The channel has no build yet: this would be its first.",
        );
    }
    gh.emit(&publish_outputs(gh, report, channel), &summary)
}

/// `--github` for check: one annotation per problem (on stdout, or stderr
/// with `--json` so the JSON stays clean), outputs and a summary.
#[allow(clippy::print_stderr)]
pub fn check(gh: &Github, report: &CheckReport, base: &Path, json: bool) -> Result<(), GithubError> {
    for a in gh.annotations(report, base) {
        if json {
            eprintln!("{a}");
        } else {
            println!("{a}");
        }
    }
    let (outputs, summary) = check_summary(gh, report, base);
    gh.emit(&outputs, &summary)
}

/// `--github` for promote: outputs, and a summary with the changes against
/// the build the target channel pointed to before.
pub async fn promote(gh: &Github, store: &dyn Store, report: &PromoteReport) -> Result<(), GithubError> {
    let changes = match report.build.parse::<Sha256Digest>() {
        Ok(build) => {
            changes_since(
                store,
                &report.pack,
                report.pointer.previous_build.as_deref(),
                &build,
                None,
            )
            .await
        }
        Err(_) => None,
    };
    let (outputs, summary) = promote_summary(gh, &store.describe(), report, changes.as_ref());
    gh.emit(&outputs, &summary)
}

#[cfg(test)]
mod tests;
