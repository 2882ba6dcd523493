//! The player tools a publish or promote puts into the store and pins in the
//! channel pointer (docs/FORMAT.md §10): `--player-tools DIR` holds what one
//! Atlas release ships for players, laid out as
//!
//! ```text
//! DIR/VERSION                               the release version, MAJOR.MINOR.PATCH
//! DIR/atlas-bootstrap.jar                   the instance bootstrap (scripts/build-bootstrap.sh)
//! DIR/<target>/atlas-fetcher[.exe]          one per platform, e.g. x86_64-pc-windows-msvc/atlas-fetcher.exe
//! ```
//!
//! The GitHub Action fills it from the release the builder comes from (each
//! archive checked against `SHA256SUMS`); nothing here needs a JDK or a
//! cross compiler. Each fetcher binary becomes an ordinary blob, and the
//! pointer pins it by SHA-256 and size.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use atlas_proto::tools::{PLAYER_TARGETS, ToolPin, ToolRelease, fetcher_file_name, parse_version};
use atlas_proto::{Limits, Sha256Digest, layout};

use super::ExportError;
use crate::store::{Body, ObjectMeta, Store};

/// The tools of one release, read and hashed.
#[derive(Debug, Clone)]
pub struct PlayerTools {
    /// The pins the pointer carries.
    pub release: ToolRelease,
    /// The bootstrap jar's bytes.
    pub jar: Vec<u8>,
    /// Each target's binary on disk.
    pub binaries: BTreeMap<String, PathBuf>,
    /// Platforms the directory has no binary for.
    pub missing: Vec<String>,
}

fn bad(dir: &Path, message: impl Into<String>) -> ExportError {
    ExportError::PlayerTools {
        dir: dir.display().to_string(),
        message: message.into(),
    }
}

/// Reads `path` whole, refusing more than `max` bytes.
fn read_capped(path: &Path, max: u64, dir: &Path) -> Result<Vec<u8>, ExportError> {
    let f = std::fs::File::open(path).map_err(|e| bad(dir, format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(dir, format!("{}: {e}", path.display())))?;
    if out.len() as u64 > max {
        return Err(bad(dir, format!("{} is larger than {max} bytes", path.display())));
    }
    Ok(out)
}

/// SHA-256 and size of a file, streamed, refusing more than `max` bytes.
fn hash_file(path: &Path, max: u64, dir: &Path) -> Result<ToolPin, ExportError> {
    let mut f = std::fs::File::open(path).map_err(|e| bad(dir, format!("{}: {e}", path.display())))?;
    let mut h = atlas_proto::digest::HashingCounter::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| bad(dir, format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        if h.len() > max {
            return Err(bad(dir, format!("{} is larger than {max} bytes", path.display())));
        }
    }
    let (digest, size) = h.finish();
    if size == 0 {
        return Err(bad(dir, format!("{} is empty", path.display())));
    }
    Ok(ToolPin {
        sha256: digest.to_hex(),
        size,
    })
}

/// Reads and hashes the tools in `dir` (see the module docs). At least one
/// platform's fetcher is needed; the others are reported as missing.
pub fn load(dir: &Path, limits: &Limits) -> Result<PlayerTools, ExportError> {
    let version_text = read_capped(&dir.join("VERSION"), 64, dir)?;
    let version = String::from_utf8_lossy(&version_text)
        .trim()
        .trim_start_matches('v')
        .to_owned();
    if parse_version(&version).is_none() {
        return Err(bad(
            dir,
            format!("VERSION holds `{version}`, not MAJOR.MINOR.PATCH"),
        ));
    }
    if version != env!("CARGO_PKG_VERSION") {
        tracing::warn!(
            "player tools {version} in {} come from another release than this atlas-builder ({}); \
             instances adopt a fetcher only when its version is not older than theirs",
            dir.display(),
            env!("CARGO_PKG_VERSION")
        );
    }
    let jar = read_capped(&dir.join("atlas-bootstrap.jar"), limits.bootstrap_jar_bytes, dir)?;
    if !jar.starts_with(b"PK\x03\x04") {
        return Err(bad(dir, "atlas-bootstrap.jar is not a jar (zip) file"));
    }
    let mut targets = BTreeMap::new();
    let mut binaries = BTreeMap::new();
    let mut missing = Vec::new();
    for target in PLAYER_TARGETS {
        let path = dir.join(target).join(fetcher_file_name(target));
        if !path.is_file() {
            missing.push(target.to_owned());
            continue;
        }
        targets.insert(
            target.to_owned(),
            hash_file(&path, limits.tool_binary_bytes, dir)?,
        );
        binaries.insert(target.to_owned(), path);
    }
    if targets.is_empty() {
        return Err(bad(
            dir,
            format!(
                "no atlas-fetcher for any platform: expected {}/{} and the like",
                PLAYER_TARGETS[0],
                fetcher_file_name(PLAYER_TARGETS[0])
            ),
        ));
    }
    if !missing.is_empty() {
        tracing::warn!(
            "player tools in {} have no atlas-fetcher for {}: instances on those platforms will not start",
            dir.display(),
            missing.join(", ")
        );
    }
    let release = ToolRelease { version, targets };
    release
        .validate(limits.tool_binary_bytes)
        .map_err(|e| bad(dir, e.to_string()))?;
    Ok(PlayerTools {
        release,
        jar,
        binaries,
        missing,
    })
}

impl PlayerTools {
    /// Uploads every fetcher binary as a blob (written once; present ones
    /// are kept). Returns how many were new.
    pub async fn upload(&self, store: &dyn Store) -> Result<usize, ExportError> {
        let mut new = 0;
        for (target, path) in &self.binaries {
            let pin = &self.release.targets[target];
            let digest: Sha256Digest = pin.sha256.parse().map_err(|e| ExportError::Zip(format!("{e}")))?;
            // Hashed again as it is read: the file must not have changed.
            let key = layout::blob_key(&digest);
            if store.exists(&key).await? {
                continue;
            }
            let again = hash_file(path, pin.size, path.parent().unwrap_or(path))?;
            if again != *pin {
                return Err(bad(
                    path.parent().unwrap_or(path),
                    format!("{} changed while publishing", path.display()),
                ));
            }
            store
                .put_immutable(&key, Body::File(path.clone()), ObjectMeta::BLOB)
                .await?;
            new += 1;
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools_dir() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join("VERSION"), "0.1.0\n").expect("write");
        std::fs::write(tmp.path().join("atlas-bootstrap.jar"), b"PK\x03\x04rest").expect("write");
        for (t, body) in [
            ("x86_64-unknown-linux-musl", b"linux".as_slice()),
            ("x86_64-pc-windows-msvc", b"windows".as_slice()),
        ] {
            std::fs::create_dir_all(tmp.path().join(t)).expect("mkdir");
            std::fs::write(tmp.path().join(t).join(fetcher_file_name(t)), body).expect("write");
        }
        tmp
    }

    #[test]
    fn a_release_directory_becomes_pins() {
        let tmp = tools_dir();
        let t = load(tmp.path(), &Limits::DEFAULT).expect("load");
        assert_eq!(t.release.version, "0.1.0");
        assert_eq!(
            t.release.targets["x86_64-pc-windows-msvc"].sha256,
            Sha256Digest::of(b"windows").to_hex()
        );
        assert_eq!(t.release.targets["x86_64-unknown-linux-musl"].size, 5);
        assert_eq!(t.missing.len(), 4);
    }

    #[test]
    fn bad_directories_are_refused_by_name() {
        let tmp = tools_dir();
        std::fs::write(tmp.path().join("VERSION"), "latest").expect("write");
        let e = load(tmp.path(), &Limits::DEFAULT)
            .expect_err("version")
            .to_string();
        assert!(e.contains("VERSION"), "{e}");
        let tmp = tools_dir();
        std::fs::write(tmp.path().join("atlas-bootstrap.jar"), b"not a jar").expect("write");
        let e = load(tmp.path(), &Limits::DEFAULT).expect_err("jar").to_string();
        assert!(e.contains("atlas-bootstrap.jar"), "{e}");
        let empty = tempfile::tempdir().expect("tmp");
        std::fs::write(empty.path().join("VERSION"), "0.1.0").expect("write");
        std::fs::write(empty.path().join("atlas-bootstrap.jar"), b"PK\x03\x04").expect("write");
        let e = load(empty.path(), &Limits::DEFAULT)
            .expect_err("no binary")
            .to_string();
        assert!(e.contains("no atlas-fetcher"), "{e}");
    }
}
