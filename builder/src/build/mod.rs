//! Planning a build from whichever pack format the directory holds: one
//! `.mrpack` and no `pack.toml` ([`mrpack`]), a packwiz tree ([`packwiz`]),
//! or Atlas's native `pack.toml` ([`native`]). [`plan_pack`] picks the
//! format, applies `atlas.toml`'s mirror policy, and returns the plan with
//! what fetching the mods did; each format module reads its own files, has
//! [`crate::resolve::fetch`] resolve and download the mods it names, and
//! hands [`crate::plan::assemble`] the manifest entries.

pub mod error;
pub mod mrpack;
pub mod native;
pub mod packwiz;
pub mod rules;

use crate::plan::{BuildPlan, PlanOptions};
use crate::repo::PackSource;
use crate::resolve::{ModOptions, ModsReport};
use crate::settings::{AtlasSettings, MirrorPolicy};

pub use error::BuildError;

/// Reads the pack at `source` (a `.mrpack`, packwiz or native), resolves
/// and downloads its mods, and plans the build.
pub async fn plan_pack(
    source: &PackSource,
    opts: &PlanOptions,
    mods: &ModOptions,
) -> Result<(BuildPlan, ModsReport), BuildError> {
    let settings = AtlasSettings::from_source(source)?;
    // `[server]` travels in the manifest, for the runner.
    let opts = &PlanOptions {
        server: settings.server.launch(),
        ..opts.clone()
    };
    let mods = &ModOptions {
        mirror: mods
            .mirror_override
            .map_or(settings.mirror, |default| MirrorPolicy {
                default,
                ..Default::default()
            }),
        ..mods.clone()
    };
    // A directory holding one `.mrpack` and no pack.toml imports it.
    if let Some(name) = mrpack::find(source) {
        return mrpack::plan(source, &name, opts, mods).await;
    }
    let (text, pack_file) = native::read_pack_toml(source)?;
    if crate::packwiz::is_packwiz_pack_toml(&text) {
        return packwiz::plan(source, opts, mods).await;
    }
    native::plan_with_mods(source, &text, &pack_file, opts, mods).await
}
