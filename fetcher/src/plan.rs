//! The install plan: a pure comparison of the new manifest (filtered for the
//! install side) with the previous install and what is on disk, giving one
//! action per file. No I/O here; the caller supplies disk observations.

use std::collections::{BTreeMap, BTreeSet};

use atlas_proto::Sha256Digest;
use atlas_proto::v1::File;
use serde::{Deserialize, Serialize};

use crate::error::SyncError;
use crate::select::Selection;
use crate::side::InstallSide;
use crate::state::{InstallState, InstalledFile};

/// What is at a path in the target directory right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Missing,
    /// A regular file (or a symlink to one).
    File {
        size: u64,
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: Option<u64>,
        /// Its content differs from what the previous install recorded there
        /// (always `false` when the path was not managed).
        modified: bool,
    },
    /// A directory (or anything that is not a regular file).
    NotAFile,
}

/// What to do with one file of the new build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    /// Not managed before: download and write.
    Add,
    /// Managed before with other content: download and replace.
    Replace,
    /// Managed before with this content, but missing or resized on disk: download again.
    Repair,
    /// Already in place.
    Keep,
    /// Edited by the user and left in place (policy `keep`): not downloaded,
    /// not overwritten, reported.
    Modified,
}

/// What to do with a managed file the user changed (`--on-modified`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnModified {
    /// Leave it, report it, and stop updating it until it is restored.
    #[default]
    Keep,
    /// Copy it to `.atlas/backups/<unix-time>/<path>`, then replace it.
    Backup,
    /// Replace it with the build's content.
    Replace,
}

/// One file of the new build and its action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedFile {
    pub path: String,
    #[serde(serialize_with = "ser_digest")]
    pub sha256: Sha256Digest,
    pub size: u64,
    pub executable: bool,
    pub preserve: bool,
    pub action: FileAction,
    /// Upstream URLs (used only when the blob is not in the store).
    #[serde(skip)]
    pub upstreams: Vec<atlas_proto::v1::Upstream>,
    /// The blob is not in the store; fetch it from `upstreams`.
    #[serde(skip)]
    pub upstream_only: bool,
    /// The user changed the file on disk (see [`OnModified`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub modified: bool,
    /// Copy the user's version to `.atlas/backups/` before replacing it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backup: bool,
    /// Modification time on disk now (for files kept in place).
    #[serde(skip)]
    pub mtime_ns: Option<u64>,
    /// For [`FileAction::Modified`]: what the previous install recorded
    /// (for a [`Self::conflict`], the build's content, as if installed).
    #[serde(skip)]
    pub previous: Option<InstalledFile>,
    /// No build managed this path, and the user's own file there differs
    /// from the build's: handled like a managed file the user changed
    /// (see [`OnModified`]) and reported as a conflict, never as an add.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

impl PlannedFile {
    /// Whether this file's bytes must be downloaded.
    pub fn needs_download(&self) -> bool {
        matches!(
            self.action,
            FileAction::Add | FileAction::Replace | FileAction::Repair
        )
    }
}

fn ser_digest<S: serde::Serializer>(d: &Sha256Digest, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.to_hex())
}

/// The complete plan for one sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Every file of the new build for this side, sorted by path.
    pub files: Vec<PlannedFile>,
    /// Paths managed by the previous install, absent from the new one and present on disk, unmodified.
    pub remove: Vec<String>,
    /// Paths the new build dropped but the user changed: kept, no longer managed.
    pub dropped_modified: Vec<String>,
}

impl Plan {
    /// True when applying would change nothing.
    pub fn is_noop(&self) -> bool {
        self.remove.is_empty() && self.files.iter().all(|f| !f.needs_download())
    }

    pub fn count(&self, action: FileAction) -> usize {
        self.files.iter().filter(|f| f.action == action).count()
    }

    /// Paths with the given action.
    pub fn paths(&self, action: FileAction) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.action == action)
            .map(|f| f.path.clone())
            .collect()
    }

    /// Distinct blobs to download: one representative file per SHA-256.
    pub fn downloads(&self) -> Vec<&PlannedFile> {
        let mut seen = BTreeSet::new();
        self.files
            .iter()
            .filter(|f| f.needs_download() && seen.insert(f.sha256))
            .collect()
    }

    /// Bytes to download (each distinct blob once).
    pub fn download_bytes(&self) -> u64 {
        self.downloads().iter().map(|f| f.size).sum()
    }
}

/// Computes the plan with the default policy for user changes ([`OnModified::Keep`]).
pub fn plan(
    files: &[File],
    side: InstallSide,
    previous: Option<&InstallState>,
    observe: &dyn Fn(&str, Option<&InstalledFile>) -> Observed,
) -> Result<Plan, SyncError> {
    plan_with(
        files,
        side,
        &Selection::default(),
        previous,
        observe,
        OnModified::Keep,
    )
}

/// Computes the plan.
///
/// `files` are the new manifest's files (already validated), `selection` the
/// host's choice of optional files (checked with [`Selection::validate`]), `previous` the
/// current install state, `observe` tells what is on disk at a path (given
/// what the previous install recorded there, to tell user changes), and
/// `on_modified` what to do with files the user changed.
pub fn plan_with(
    files: &[File],
    side: InstallSide,
    selection: &Selection,
    previous: Option<&InstallState>,
    observe: &dyn Fn(&str, Option<&InstalledFile>) -> Observed,
    on_modified: OnModified,
) -> Result<Plan, SyncError> {
    let prev: BTreeMap<&str, &InstalledFile> = previous
        .map(|p| p.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    let mut out = Plan::default();
    let mut selected = BTreeSet::new();
    for f in files.iter().filter(|f| side.wants_side(f) && selection.takes(f)) {
        atlas_proto::validate_path(&f.path)?;
        let sha256 = Sha256Digest::from_slice(&f.sha256).map_err(|e| SyncError::Conflict {
            path: f.path.clone(),
            reason: e.to_string(),
        })?;
        let before = prev.get(f.path.as_str()).copied();
        // A path no build managed is compared with the build's content: a
        // file already holding it is taken over, any other is the user's.
        let unmanaged = InstalledFile::new(f.path.clone(), sha256, f.size);
        let compare = match before {
            Some(p) => Some(p),
            None => Some(&unmanaged),
        };
        // A preserved file is the user's once written: never checked for changes.
        let seen = observe(&f.path, compare.filter(|p| !p.preserve && !f.preserve));
        if seen == Observed::NotAFile {
            return Err(SyncError::Conflict {
                path: f.path.clone(),
                reason: "a directory (or other non-file) is in the way; move it aside".into(),
            });
        }
        let (mtime_ns, modified) = match seen {
            Observed::File {
                mtime_ns, modified, ..
            } => (mtime_ns, modified),
            _ => (None, false),
        };
        let mut backup = false;
        let conflict = before.is_none() && modified && !f.preserve;
        let action = match (before, seen) {
            _ if f.preserve && matches!(seen, Observed::File { .. }) => FileAction::Keep,
            (None, Observed::File { modified: false, .. }) => FileAction::Keep,
            (None, Observed::File { modified: true, .. })
            | (Some(_), Observed::File { modified: true, .. }) => match on_modified {
                OnModified::Keep => FileAction::Modified,
                OnModified::Backup => {
                    backup = true;
                    FileAction::Replace
                }
                OnModified::Replace => FileAction::Replace,
            },
            (None, _) => FileAction::Add,
            (Some(p), _) if p.sha256.0 != sha256 => FileAction::Replace,
            (Some(_), Observed::File { .. }) => FileAction::Keep,
            (Some(_), _) => FileAction::Repair,
        };
        selected.insert(f.path.as_str());
        out.files.push(PlannedFile {
            path: f.path.clone(),
            sha256,
            size: f.size,
            executable: f.executable,
            preserve: f.preserve,
            action,
            upstreams: f.upstreams.clone(),
            upstream_only: f.upstream_only,
            modified,
            backup,
            mtime_ns,
            previous: (action == FileAction::Modified)
                .then(|| compare.cloned())
                .flatten(),
            conflict,
        });
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    for (path, p) in prev {
        if selected.contains(path) || p.preserve {
            continue;
        }
        match observe(path, Some(p)) {
            Observed::Missing => {}
            Observed::File { modified: true, .. } => out.dropped_modified.push(path.to_owned()),
            _ => {
                atlas_proto::validate_path(path)?;
                out.remove.push(path.to_owned());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{InstalledFile, Sha256Hex};
    use atlas_proto::v1::Side;

    fn file(path: &str, content: &[u8], side: Side) -> File {
        File {
            path: path.into(),
            size: content.len() as u64,
            sha256: Sha256Digest::of(content).0.to_vec(),
            side: side as i32,
            ..Default::default()
        }
    }

    fn installed(files: &[(&str, &[u8])]) -> InstallState {
        InstallState {
            format: 1,
            pack: "p".into(),
            channel: "dev".into(),
            build: Sha256Hex(Sha256Digest::of(b"old")),
            version: 1,
            side: InstallSide::Server,
            selection: Default::default(),
            history: Vec::new(),
            held: None,
            files: files
                .iter()
                .map(|(p, c)| InstalledFile::new(*p, Sha256Digest::of(c), c.len() as u64))
                .collect(),
        }
    }

    /// A disk where a managed file is "modified" when its size differs from the record.
    fn disk(entries: &[(&str, u64)]) -> impl Fn(&str, Option<&InstalledFile>) -> Observed {
        let m: BTreeMap<String, u64> = entries.iter().map(|(p, s)| ((*p).to_owned(), *s)).collect();
        move |p, before| {
            m.get(p).map_or(Observed::Missing, |&size| Observed::File {
                size,
                mtime_ns: Some(1),
                modified: before.is_some_and(|b| b.size != size),
            })
        }
    }

    fn action(plan: &Plan, path: &str) -> FileAction {
        plan.files
            .iter()
            .find(|f| f.path == path)
            .expect("planned")
            .action
    }

    #[test]
    fn fresh_install_adds_everything_for_the_side() {
        let files = [
            file("a.txt", b"a", Side::Both),
            file("client.jar", b"c", Side::Client),
            file("server.jar", b"s", Side::Server),
        ];
        let p = plan(&files, InstallSide::Server, None, &disk(&[])).expect("plan");
        assert_eq!(p.paths(FileAction::Add), ["a.txt", "server.jar"]);
        let p = plan(&files, InstallSide::Client, None, &disk(&[])).expect("plan");
        assert_eq!(p.paths(FileAction::Add), ["a.txt", "client.jar"]);
        assert_eq!(p.download_bytes(), 2);
        assert!(!p.is_noop());
    }

    #[test]
    fn optional_files_follow_default_enabled() {
        let mut on = file("on.jar", b"1", Side::Both);
        on.optional = true;
        on.default_enabled = true;
        let mut off = file("off.jar", b"2", Side::Both);
        off.optional = true;
        let p = plan(&[off, on], InstallSide::Server, None, &disk(&[])).expect("plan");
        assert_eq!(p.paths(FileAction::Add), ["on.jar"]);
    }

    #[test]
    fn diff_against_previous_install() {
        let prev = installed(&[
            ("keep", b"k"),
            ("change", b"old"),
            ("gone", b"g"),
            ("lost", b"l"),
            ("resized", b"r"),
        ]);
        let files = [
            file("change", b"new", Side::Both),
            file("keep", b"k", Side::Both),
            file("lost", b"l", Side::Both),
            file("new", b"n", Side::Both),
            file("resized", b"r", Side::Both),
        ];
        let on_disk = disk(&[("keep", 1), ("change", 3), ("gone", 1), ("resized", 7)]);
        let p = plan(&files, InstallSide::Server, Some(&prev), &on_disk).expect("plan");
        assert_eq!(action(&p, "keep"), FileAction::Keep);
        assert_eq!(action(&p, "change"), FileAction::Replace);
        assert_eq!(action(&p, "lost"), FileAction::Repair);
        assert_eq!(
            action(&p, "resized"),
            FileAction::Modified,
            "a user change, kept by default"
        );
        assert_eq!(action(&p, "new"), FileAction::Add);
        assert_eq!(p.remove, ["gone"]);
    }

    #[test]
    fn a_users_file_where_the_build_adds_one_follows_the_policy() {
        let prev = installed(&[("a", b"a")]);
        let files = [
            file("a", b"a", Side::Both),
            file("mine", b"pack's", Side::Both),
            file("same", b"s", Side::Both),
            file("new", b"n", Side::Both),
        ];
        // "mine" differs from the build's (7 bytes, not 6); "same" matches.
        let on_disk = disk(&[("a", 1), ("mine", 7), ("same", 1)]);
        for (policy, want, backup) in [
            (OnModified::Keep, FileAction::Modified, false),
            (OnModified::Backup, FileAction::Replace, true),
            (OnModified::Replace, FileAction::Replace, false),
        ] {
            let p = plan_with(
                &files,
                InstallSide::Server,
                &Selection::default(),
                Some(&prev),
                &on_disk,
                policy,
            )
            .expect("plan");
            let mine = p.files.iter().find(|f| f.path == "mine").expect("planned");
            assert_eq!(
                (mine.action, mine.backup, mine.conflict),
                (want, backup, true),
                "{policy:?}"
            );
            if want == FileAction::Modified {
                let rec = mine.previous.as_ref().expect("recorded as the build's content");
                assert_eq!(rec.sha256.0, Sha256Digest::of(b"pack's"));
            }
            assert_eq!(action(&p, "same"), FileAction::Keep, "taken over, not downloaded");
            assert_eq!(action(&p, "new"), FileAction::Add);
            assert!(!p.files.iter().any(|f| f.conflict && f.path != "mine"));
        }
    }

    #[test]
    fn same_build_intact_is_noop_and_unmanaged_files_are_ignored() {
        let prev = installed(&[("a", b"a")]);
        let files = [file("a", b"a", Side::Both)];
        let p = plan(
            &files,
            InstallSide::Server,
            Some(&prev),
            &disk(&[("a", 1), ("world/level.dat", 9)]),
        )
        .expect("plan");
        assert!(p.is_noop());
        assert!(p.remove.is_empty());
    }

    #[test]
    fn removed_but_already_missing_is_not_listed() {
        let prev = installed(&[("gone", b"g")]);
        let p = plan(&[], InstallSide::Server, Some(&prev), &disk(&[])).expect("plan");
        assert!(p.is_noop());
    }

    #[test]
    fn user_changes_follow_the_policy_and_dropped_changes_stay() {
        let prev = installed(&[
            ("cfg", b"v1"),
            ("same", b"s"),
            ("dropped", b"d"),
            ("dropped-ok", b"o"),
        ]);
        let files = [file("cfg", b"v2", Side::Both), file("same", b"s", Side::Both)];
        // "cfg", "same" and "dropped" were edited (their sizes changed).
        let on_disk = disk(&[("cfg", 9), ("same", 9), ("dropped", 9), ("dropped-ok", 1)]);
        let run = |policy| {
            plan_with(
                &files,
                InstallSide::Server,
                &Selection::default(),
                Some(&prev),
                &on_disk,
                policy,
            )
            .expect("plan")
        };
        let p = run(OnModified::Keep);
        assert_eq!(p.paths(FileAction::Modified), ["cfg", "same"]);
        assert_eq!(p.remove, ["dropped-ok"]);
        assert_eq!(p.dropped_modified, ["dropped"]);
        let kept = p.files.iter().find(|f| f.path == "cfg").expect("cfg");
        assert_eq!(kept.previous.as_ref().map(|f| f.size), Some(2));
        for policy in [OnModified::Backup, OnModified::Replace] {
            let p = run(policy);
            assert_eq!(p.paths(FileAction::Replace), ["cfg", "same"], "{policy:?}");
            assert!(p.files.iter().all(|f| f.backup == (policy == OnModified::Backup)));
            assert_eq!(
                p.dropped_modified,
                ["dropped"],
                "dropped edits are kept whatever the policy"
            );
        }
    }

    #[test]
    fn identical_blobs_download_once() {
        let files = [file("a", b"same", Side::Both), file("b", b"same", Side::Both)];
        let p = plan(&files, InstallSide::Server, None, &disk(&[])).expect("plan");
        assert_eq!(p.downloads().len(), 1);
        assert_eq!(p.download_bytes(), 4);
    }

    #[test]
    fn preserved_files_are_written_once_and_never_removed() {
        let mut cfg = file("config/x.toml", b"default", Side::Both);
        cfg.preserve = true;
        let p = plan(
            std::slice::from_ref(&cfg),
            InstallSide::Server,
            None,
            &disk(&[("config/x.toml", 3)]),
        )
        .expect("plan");
        assert_eq!(action(&p, "config/x.toml"), FileAction::Keep);
        let p = plan(std::slice::from_ref(&cfg), InstallSide::Server, None, &disk(&[])).expect("plan");
        assert_eq!(action(&p, "config/x.toml"), FileAction::Add);
        let mut prev = installed(&[("config/x.toml", b"default")]);
        prev.files[0].preserve = true;
        let p = plan(
            &[],
            InstallSide::Server,
            Some(&prev),
            &disk(&[("config/x.toml", 3)]),
        )
        .expect("plan");
        assert!(p.remove.is_empty());
        // Edited by the user (its size changed): still kept, never reported as a change.
        let p = plan_with(
            std::slice::from_ref(&cfg),
            InstallSide::Server,
            &Selection::default(),
            Some(&prev),
            &disk(&[("config/x.toml", 99)]),
            OnModified::Replace,
        )
        .expect("plan");
        assert_eq!(action(&p, "config/x.toml"), FileAction::Keep);
        assert!(!p.files[0].modified);
    }

    #[test]
    fn directory_in_the_way_is_a_conflict_and_unsafe_paths_are_refused() {
        let files = [file("mods", b"x", Side::Both)];
        let err = plan(&files, InstallSide::Server, None, &|_, _| Observed::NotAFile).expect_err("conflict");
        assert!(err.to_string().contains("`mods`"));
        let bad = [file("../x", b"x", Side::Both)];
        let err = plan(&bad, InstallSide::Server, None, &disk(&[])).expect_err("unsafe");
        assert_eq!(err.exit_code(), crate::exit::INTEGRITY);
    }
}
