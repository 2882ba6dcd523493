//! Planning a build from whichever pack format the directory holds: one
//! `.mrpack` and no `pack.toml` ([`mrpack`]), a packwiz tree ([`packwiz`]),
//! or Atlas's native `pack.toml` ([`native`]). [`plan_pack`] picks the
//! format, applies `atlas.toml`'s mirror policy, and returns the plan with
//! what fetching the mods did; each format module reads its own files, has
//! [`crate::resolve::fetch`] resolve and download the mods it names, and
//! hands [`crate::plan::assemble`] the manifest entries.

pub mod mrpack;
pub mod native;
pub mod packwiz;

use std::path::PathBuf;

use crate::mrpack::MrpackError;
use crate::pack::PackError;
use crate::plan::{BuildPlan, PlanError, PlanOptions};
use crate::repo::{PackSource, RepoError};
use crate::resolve::{FetchError, ModOptions, ModsReport};
use crate::settings::{AtlasSettings, MirrorPolicy};

/// Planning a pack with mods failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("the packwiz pack has errors:\n{0}")]
    Packwiz(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Mrpack(#[from] MrpackError),
    #[error("download cache {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::exit::HasExitClass for BuildError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        // Whatever failed, the pack as it is cannot be built.
        crate::exit::ExitClass::Pack
    }
}

/// Reads the pack at `source` (a `.mrpack`, packwiz or native), resolves
/// and downloads its mods, and plans the build.
pub async fn plan_pack(
    source: &PackSource,
    opts: &PlanOptions,
    mods: &ModOptions,
) -> Result<(BuildPlan, ModsReport), BuildError> {
    let settings = AtlasSettings::from_source(source)?;
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
