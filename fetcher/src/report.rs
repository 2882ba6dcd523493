//! The result of a sync: what happened, printed as one JSON object with
//! `--json` or as human lines otherwise.

use serde::Serialize;

use crate::exit;
use crate::plan::{FileAction, Plan, PlannedFile};
use crate::side::InstallSide;

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Changes were applied.
    Updated,
    /// Nothing to do; nothing in the directory changed except possibly `trust.json`
    /// (a newer pointer naming the installed build).
    Current,
    /// Dry run: these changes would be applied.
    WouldUpdate,
}

impl Outcome {
    /// Exit code for this outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Updated | Self::WouldUpdate => exit::UPDATED,
            Self::Current => exit::CURRENT,
        }
    }
}

/// Per-action file counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub updated: usize,
    pub repaired: usize,
    pub removed: usize,
    pub kept: usize,
    /// Files the user changed that were left in place (including dropped ones).
    pub modified: usize,
    /// Distinct blobs downloaded (or to download, in a dry run).
    pub blobs: usize,
    /// The user's own files at paths the build adds (see [`FileChanges::conflicts`]).
    pub conflicts: usize,
}

/// What became of a user's file at a path the new build adds (`--on-modified`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Left in place (policy `keep`); the build's file is not installed
    /// there until the user removes theirs.
    Kept,
    /// Copied to `.atlas/backups/<unix-time>/`, then replaced.
    BackedUp,
    /// Replaced by the build's file.
    Replaced,
}

/// A file the pack never installed, found where the new build adds one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub path: String,
    pub resolution: Resolution,
}

impl Conflict {
    fn of(f: &PlannedFile) -> Self {
        Self {
            path: f.path.clone(),
            resolution: match f.action {
                FileAction::Modified => Resolution::Kept,
                _ if f.backup => Resolution::BackedUp,
                _ => Resolution::Replaced,
            },
        }
    }
}

/// Paths per action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileChanges {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub repaired: Vec<String>,
    pub removed: Vec<String>,
    /// Files the user changed, left in place (policy `keep`); not updated.
    pub modified: Vec<String>,
    /// Files the build dropped that the user changed: kept, no longer managed.
    pub dropped_modified: Vec<String>,
    /// Files the user changed that were replaced (policy `backup` or `replace`).
    pub replaced_modified: Vec<String>,
    /// Files the pack never installed at paths the new build adds, and
    /// what `--on-modified` did with each (not listed under any other key).
    pub conflicts: Vec<Conflict>,
}

/// What a sync did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub pack: String,
    pub channel: String,
    /// Pointer version now accepted.
    pub version: u64,
    /// Build id the channel points to.
    pub build: String,
    /// Build installed before this run, if any.
    pub previous_build: Option<String>,
    pub side: InstallSide,
    /// The server answered 304 Not Modified to the pointer request.
    pub not_modified: bool,
    pub dry_run: bool,
    pub counts: Counts,
    /// Blob bytes actually downloaded.
    pub bytes_downloaded: u64,
    /// Blob bytes the plan needs (equals `bytes_downloaded` after a successful update).
    pub bytes_planned: u64,
    pub files: FileChanges,
    /// Where changed files were backed up (`.atlas/backups/<unix-time>`), if any.
    pub backup_dir: Option<String>,
    /// The build installed now, when it is not `build`: after `rollback`,
    /// while the channel still points at the build rolled back from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_at: Option<String>,
}

impl Report {
    /// Fills counts and file lists from a plan.
    pub(crate) fn with_plan(mut self, plan: &Plan) -> Self {
        // A conflict is reported as such only, whatever its action.
        let paths = |action: FileAction| -> Vec<String> {
            plan.files
                .iter()
                .filter(|f| f.action == action && !f.conflict)
                .map(|f| f.path.clone())
                .collect()
        };
        let conflicts: Vec<Conflict> = plan
            .files
            .iter()
            .filter(|f| f.conflict)
            .map(Conflict::of)
            .collect();
        self.files = FileChanges {
            added: paths(FileAction::Add),
            updated: paths(FileAction::Replace),
            repaired: paths(FileAction::Repair),
            removed: plan.remove.clone(),
            modified: paths(FileAction::Modified),
            dropped_modified: plan.dropped_modified.clone(),
            replaced_modified: plan
                .files
                .iter()
                .filter(|f| f.modified && f.needs_download() && !f.conflict)
                .map(|f| f.path.clone())
                .collect(),
            conflicts,
        };
        self.counts = Counts {
            added: self.files.added.len(),
            updated: self.files.updated.len(),
            repaired: self.files.repaired.len(),
            removed: plan.remove.len(),
            kept: plan.count(FileAction::Keep),
            modified: self.files.modified.len() + plan.dropped_modified.len(),
            blobs: plan.downloads().len(),
            conflicts: self.files.conflicts.len(),
        };
        self.bytes_planned = plan.download_bytes();
        self
    }

    /// Exit code for this report.
    pub fn exit_code(&self) -> i32 {
        self.outcome.exit_code()
    }

    /// One human-readable summary line.
    pub fn summary(&self) -> String {
        let short = |b: &str| b.get(..12).unwrap_or(b).to_owned();
        match self.outcome {
            Outcome::Current => match &self.held_at {
                Some(at) => format!(
                    "{}/{} stays at build {} (rolled back from build {}, which the channel still names; \
                     the next build it points to is installed as usual)",
                    self.pack,
                    self.channel,
                    short(at),
                    short(&self.build)
                ),
                None => format!(
                    "{}/{} is current: version {}, build {}",
                    self.pack,
                    self.channel,
                    self.version,
                    short(&self.build)
                ),
            },
            Outcome::Updated | Outcome::WouldUpdate => {
                let verb = if self.outcome == Outcome::Updated {
                    "updated to"
                } else {
                    "would update to"
                };
                format!(
                    "{}/{} {verb} version {}, build {}: {} added, {} updated, {} repaired, {} removed, {} unchanged{}; {} bytes {}",
                    self.pack,
                    self.channel,
                    self.version,
                    short(&self.build),
                    self.counts.added,
                    self.counts.updated,
                    self.counts.repaired,
                    self.counts.removed,
                    self.counts.kept,
                    match self.counts.conflicts {
                        0 => String::new(),
                        n => format!(", {n} of your own files in the way"),
                    },
                    if self.dry_run {
                        self.bytes_planned
                    } else {
                        self.bytes_downloaded
                    },
                    if self.dry_run { "to download" } else { "downloaded" },
                )
            }
        }
    }
}
