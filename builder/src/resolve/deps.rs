//! Dependency checks from Modrinth's version metadata: a required
//! dependency missing from the pack, a declared incompatibility inside the
//! pack, and a mod built for another Minecraft version or loader. What a
//! pack takes is what packwiz takes ([`Accepts`]): its loader's compatible
//! loaders and its `acceptable-game-versions`. The creator's [`DepsPolicy`]
//! makes problems warnings or errors.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use atlas_proto::v1::LoaderKind;

use super::spec::ResolvedMod;

/// What dependency problems do to a build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DepsPolicy {
    /// Reported; the build goes on.
    #[default]
    Warn,
    /// Reported; the build fails.
    Error,
}

impl std::str::FromStr for DepsPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "warn" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            other => Err(format!("`{other}`: expected `warn` or `error`")),
        }
    }
}

/// What the pack is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub minecraft: String,
    pub loader: LoaderKind,
}

/// Loaders Modrinth lists for mods (anything else is a resource pack,
/// shader or data pack, which any loader takes).
const MOD_LOADERS: [&str; 7] = [
    "fabric",
    "forge",
    "neoforge",
    "quilt",
    "liteloader",
    "modloader",
    "rift",
];

impl Target {
    /// The pack's loader by Modrinth's name.
    pub fn loader_name(&self) -> &'static str {
        match self.loader {
            LoaderKind::Fabric => "fabric",
            LoaderKind::Forge => "forge",
            LoaderKind::Neoforge => "neoforge",
            LoaderKind::Quilt => "quilt",
            LoaderKind::Vanilla | LoaderKind::Unspecified => "vanilla",
        }
    }

    /// Modrinth loader names whose mods this pack takes, its own first, as
    /// packwiz counts them (core/pack.go `GetCompatibleLoaders`): a Quilt
    /// pack also takes Fabric mods, a NeoForge pack also Forge mods.
    pub fn loaders(&self) -> &'static [&'static str] {
        match self.loader {
            LoaderKind::Fabric => &["fabric"],
            LoaderKind::Quilt => &["quilt", "fabric"],
            LoaderKind::Forge => &["forge"],
            LoaderKind::Neoforge => &["neoforge", "forge"],
            LoaderKind::Vanilla | LoaderKind::Unspecified => &[],
        }
    }

    /// Whether this pack's loader runs mods built for `loader`.
    fn runs(&self, loader: &str) -> bool {
        self.loaders().contains(&loader)
    }
}

/// What a pack takes mods for: its [`Target`], plus the other Minecraft
/// versions packwiz's `[options] acceptable-game-versions` allows (packwiz
/// core/pack.go `GetSupportedMCVersions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepts {
    pub target: Target,
    /// Other Minecraft versions whose mods the pack takes.
    pub also_minecraft: Vec<String>,
}

impl Accepts {
    pub fn new(target: Target, acceptable: impl IntoIterator<Item = String>) -> Self {
        let mut also: Vec<String> = acceptable
            .into_iter()
            .filter(|v| !v.is_empty() && *v != target.minecraft)
            .collect();
        also.dedup();
        Self {
            target,
            also_minecraft: also,
        }
    }

    /// Minecraft versions whose mods the pack takes, its own first (empty
    /// when the pack names none).
    pub fn minecraft(&self) -> Vec<&str> {
        std::iter::once(self.target.minecraft.as_str())
            .filter(|v| !v.is_empty())
            .chain(self.also_minecraft.iter().map(String::as_str))
            .collect()
    }

    /// Modrinth loader names whose mods the pack takes, its own first.
    pub fn loaders(&self) -> &'static [&'static str] {
        self.target.loaders()
    }
}

impl Accepts {
    /// What a packwiz pack takes: its `[versions]` loader (the first, as
    /// Atlas builds for it) and Minecraft version, and its
    /// `[options] acceptable-game-versions`.
    pub fn for_packwiz(pack: &crate::packwiz::PackToml) -> Self {
        let loader = match &pack.loader {
            Some(l) => l.loader.kind().unwrap_or(LoaderKind::Unspecified),
            None => LoaderKind::Vanilla,
        };
        Self::new(
            Target {
                minecraft: pack.minecraft.clone(),
                loader,
            },
            pack.acceptable_game_versions(),
        )
    }
}

impl From<&Target> for Accepts {
    fn from(target: &Target) -> Self {
        Self::new(target.clone(), [])
    }
}

/// One dependency problem; its message names the mod, where the pack
/// defines it and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DepProblem {
    #[error(
        "{defined_in}: {name} requires Modrinth project `{project}`, which the pack does not contain; \
         add it (https://modrinth.com/mod/{project}) or remove {name}"
    )]
    Missing {
        name: String,
        defined_in: String,
        project: String,
    },
    #[error(
        "{defined_in}: {name} declares itself incompatible with {other} ({other_defined_in}); \
         remove one of them"
    )]
    Incompatible {
        name: String,
        defined_in: String,
        other: String,
        other_defined_in: String,
    },
    #[error(
        "{defined_in}: {name} {version} is built for Minecraft {}, not {minecraft}; \
         pick a version for {minecraft} (https://modrinth.com/mod/{project}/versions)",
        supported.join(", ")
    )]
    Minecraft {
        name: String,
        defined_in: String,
        project: String,
        version: String,
        supported: Vec<String>,
        minecraft: String,
    },
    #[error(
        "{defined_in}: {name} {version} is built for {}, not {loader}; \
         pick a {loader} version (https://modrinth.com/mod/{project}/versions)",
        supported.join(", ")
    )]
    Loader {
        name: String,
        defined_in: String,
        project: String,
        version: String,
        supported: Vec<String>,
        loader: String,
    },
}

/// Every dependency problem, one per line (the build's error under `--deps error`).
#[derive(Debug, thiserror::Error)]
#[error(
    "{} dependency problem(s) (--deps error):\n{}",
    .0.len(),
    .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
)]
pub struct DepErrors(pub Vec<DepProblem>);

/// `modrinth:<project>/<version>` → (project, version).
fn modrinth_origin(origin: &str) -> Option<(&str, &str)> {
    origin.strip_prefix("modrinth:")?.split_once('/')
}

/// Version ids named by dependencies that give no project id and are not
/// in the pack: their projects must be looked up before [`check`].
pub fn unknown_versions(mods: &[ResolvedMod]) -> Vec<String> {
    let in_pack: BTreeSet<&str> = mods
        .iter()
        .filter_map(|m| modrinth_origin(&m.origin).map(|o| o.1))
        .collect();
    let mut out: Vec<String> = mods
        .iter()
        .filter_map(|m| m.modrinth.as_ref())
        .flat_map(|v| &v.dependencies)
        .filter(|d| d.project_id.is_none())
        .filter_map(|d| d.version_id.clone())
        .filter(|id| !in_pack.contains(id.as_str()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Checks every mod with Modrinth metadata against the pack's [`Target`]
/// (see [`check_accepting`]).
pub fn check(mods: &[ResolvedMod], target: &Target, projects: &BTreeMap<String, String>) -> Vec<DepProblem> {
    check_accepting(mods, &Accepts::from(target), projects)
}

/// Checks every mod with Modrinth metadata against what the pack accepts.
/// `projects` maps dependency version ids to their projects (see
/// [`unknown_versions`]); a dependency whose project stays unknown is not judged.
pub fn check_accepting(
    mods: &[ResolvedMod],
    accepts: &Accepts,
    projects: &BTreeMap<String, String>,
) -> Vec<DepProblem> {
    let target = &accepts.target;
    let minecraft = accepts.minecraft();
    // Which mod of the pack is each Modrinth project and version.
    let mut by_project: BTreeMap<&str, &ResolvedMod> = BTreeMap::new();
    let mut by_version: BTreeMap<&str, &ResolvedMod> = BTreeMap::new();
    for m in mods {
        if let Some(v) = &m.modrinth {
            by_project.insert(&v.project_id, m);
            by_version.insert(&v.id, m);
        }
        if let Some((project, version)) = modrinth_origin(&m.origin) {
            by_project.entry(project).or_insert(m);
            by_version.entry(version).or_insert(m);
        }
    }
    let mut out = Vec::new();
    for m in mods {
        let Some(v) = &m.modrinth else { continue };
        let (name, defined_in) = (&m.spec.name, &m.spec.defined_in);
        for d in &v.dependencies {
            let project = d
                .project_id
                .clone()
                .or_else(|| d.version_id.as_ref().and_then(|id| projects.get(id).cloned()));
            let in_pack = d
                .version_id
                .as_deref()
                .and_then(|id| by_version.get(id))
                .or_else(|| project.as_deref().and_then(|p| by_project.get(p)))
                .filter(|other| other.path != m.path);
            match d.dependency_type.as_str() {
                "required" => {
                    if let (Some(project), None) = (project, in_pack) {
                        out.push(DepProblem::Missing {
                            name: name.clone(),
                            defined_in: defined_in.clone(),
                            project,
                        });
                    }
                }
                "incompatible" => {
                    if let Some(other) = in_pack {
                        out.push(DepProblem::Incompatible {
                            name: name.clone(),
                            defined_in: defined_in.clone(),
                            other: other.spec.name.clone(),
                            other_defined_in: other.spec.defined_in.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        if !minecraft.is_empty()
            && !v.game_versions.is_empty()
            && !v.game_versions.iter().any(|g| minecraft.contains(&g.as_str()))
        {
            out.push(DepProblem::Minecraft {
                name: name.clone(),
                defined_in: defined_in.clone(),
                project: v.project_id.clone(),
                version: v.version_number.clone(),
                supported: v.game_versions.clone(),
                minecraft: minecraft.join(" or "),
            });
        }
        let loaders: Vec<&String> = v
            .loaders
            .iter()
            .filter(|l| MOD_LOADERS.contains(&l.as_str()))
            .collect();
        let known_loader = target.loader != LoaderKind::Unspecified;
        if known_loader && !loaders.is_empty() && !loaders.iter().any(|l| target.runs(l)) {
            out.push(DepProblem::Loader {
                name: name.clone(),
                defined_in: defined_in.clone(),
                project: v.project_id.clone(),
                version: v.version_number.clone(),
                supported: loaders.into_iter().cloned().collect(),
                loader: target.loader_name().to_owned(),
            });
        }
    }
    out
}
