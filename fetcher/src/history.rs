//! Builds kept for `rollback`: the manifest of the installed build and of the
//! last few before it, in `.atlas/builds/<build>.pb.zst`, and the history
//! list in `install.json`. Blobs are not kept here: they are immutable in the
//! store, so a rollback downloads what the disk no longer has.

use std::path::PathBuf;

use atlas_proto::v1::Manifest;
use atlas_proto::{Limits, Sha256Digest, manifest};

use crate::error::SyncError;
use crate::local::Local;
use crate::state::{self, BUILDS_DIR, InstallState, PastBuild, StatePaths};

/// Earlier builds kept for rollback.
pub const KEEP_BUILDS: usize = 3;

/// The file name of the kept manifest of `build`.
fn file_name(build: &Sha256Digest) -> String {
    format!("{}.pb.zst", build.to_hex())
}

/// Where the manifest of `build` is kept.
pub fn manifest_path(paths: &StatePaths, build: &Sha256Digest) -> PathBuf {
    paths.builds.join(file_name(build))
}

/// Keeps the verified manifest bytes of `build` (`.atlas/builds/` is
/// opened without following links: a link there is refused).
pub fn save(local: &Local, build: &Sha256Digest, bytes: &[u8]) -> Result<(), SyncError> {
    local
        .state()?
        .create_dir(BUILDS_DIR)?
        .write_atomic(&file_name(build), bytes)
}

/// Reads a kept manifest back, checking that its bytes are still the build
/// they are named after and that it is a valid manifest of `pack` within `limits`.
pub fn load(local: &Local, build: &Sha256Digest, pack: &str, limits: &Limits) -> Result<Manifest, SyncError> {
    let path = manifest_path(&local.paths, build);
    let unreadable = |e: &dyn std::fmt::Display| SyncError::Conflict {
        path: format!("{}/{BUILDS_DIR}/{}", state::STATE_DIR, file_name(build)),
        reason: format!(
            "the kept manifest of build {build} cannot be read ({e}); it cannot be rolled back to"
        ),
    };
    let builds = match local.try_state() {
        Some(s) => s.open_dir(BUILDS_DIR)?,
        None => None,
    };
    let bytes = match builds
        .map(|b| b.read_capped(&file_name(build), limits.manifest_stored_bytes.saturating_add(1)))
    {
        Some(Ok(Some(b))) => b,
        Some(Err(e @ SyncError::Link { .. })) => return Err(e),
        Some(Err(e)) => return Err(unreadable(&e)),
        Some(Ok(None)) | None => return Err(unreadable(&"not found")),
    };
    let url = path.display().to_string();
    let actual = manifest::build_id(&bytes);
    if actual != *build {
        return Err(SyncError::ManifestHash {
            url,
            expected: build.to_hex(),
            actual: actual.to_hex(),
        });
    }
    let m = manifest::decode(&bytes, &limits.manifest).map_err(|source| SyncError::ManifestInvalid {
        url: url.clone(),
        reason: source,
    })?;
    if m.pack_id != pack {
        return Err(SyncError::ManifestWrongPack {
            url,
            expected: pack.to_owned(),
            got: m.pack_id,
        });
    }
    Ok(m)
}

/// The history to record when `new` replaces `previous`: the previous build
/// first (unless it is the same build, e.g. a repair), then its own history,
/// without repeats, at most [`KEEP_BUILDS`].
pub fn after_update(previous: Option<&InstallState>, new: &Sha256Digest) -> Vec<PastBuild> {
    let Some(p) = previous else {
        return Vec::new();
    };
    let head = (p.build.0 != *new).then_some(PastBuild {
        build: p.build,
        version: p.version,
    });
    let mut out: Vec<PastBuild> = Vec::new();
    for b in head.into_iter().chain(p.history.iter().cloned()) {
        if b.build.0 != *new && !out.iter().any(|o| o.build == b.build) {
            out.push(b);
        }
    }
    out.truncate(KEEP_BUILDS);
    out
}

/// Deletes kept manifests of builds that are neither installed nor in the
/// history (best effort: a leftover only costs disk space; a link in place
/// of `.atlas/builds` is never followed).
pub fn prune(local: &Local, install: &InstallState) {
    let keep: Vec<String> = std::iter::once(&install.build)
        .chain(install.history.iter().map(|b| &b.build))
        .map(|b| file_name(&b.0))
        .collect();
    let Some(Ok(Some(builds))) = local.try_state().map(|s| s.open_dir(BUILDS_DIR)) else {
        return;
    };
    let Ok(entries) = builds.entries() else {
        return;
    };
    for (name, _) in entries {
        if !keep.contains(&name) {
            let _ = builds.remove_file(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::side::InstallSide;
    use crate::state::Sha256Hex;

    fn at(build: u8, history: &[u8]) -> InstallState {
        let d = |b: u8| Sha256Hex(Sha256Digest::of(&[b]));
        InstallState {
            format: state::STATE_FORMAT,
            pack: "p".into(),
            channel: "dev".into(),
            build: d(build),
            version: u64::from(build),
            side: InstallSide::Server,
            selection: Default::default(),
            files: vec![],
            history: history
                .iter()
                .map(|b| PastBuild {
                    build: d(*b),
                    version: u64::from(*b),
                })
                .collect(),
            held: None,
        }
    }

    fn versions(h: &[PastBuild]) -> Vec<u64> {
        h.iter().map(|b| b.version).collect()
    }

    #[test]
    fn history_is_newest_first_without_repeats_and_bounded() {
        let d = |b: u8| Sha256Digest::of(&[b]);
        assert!(after_update(None, &d(1)).is_empty());
        assert_eq!(versions(&after_update(Some(&at(1, &[])), &d(2))), [1]);
        assert_eq!(
            versions(&after_update(Some(&at(4, &[3, 2, 1])), &d(5))),
            [4, 3, 2]
        );
        assert_eq!(
            versions(&after_update(Some(&at(4, &[3, 2])), &d(4))),
            [3, 2],
            "a repair keeps the history"
        );
        assert_eq!(
            versions(&after_update(Some(&at(2, &[1])), &d(1))),
            [2],
            "the new build is never in its own history"
        );
    }
}
