//! Moving an instance to a newer `atlas-fetcher`. The bootstrap runs only a
//! fetcher whose SHA-256 is pinned in `atlas/fetcher.properties` (else in
//! the archive's `atlas/instance.properties`). Only this module writes
//! `fetcher.properties`, and only with pins from a pointer the running
//! fetcher has just verified (the `tools` of docs/FORMAT.md §10), for a
//! release at least as new as the running one and the pinned one: pins move
//! forward, and only through the creator's signature.
//!
//! The new binary for this machine is downloaded, hashed and cached before
//! the pins change, so the next launch finds it. When that download fails,
//! the verified release waits in `atlas/fetcher-pending.json` and is tried
//! again on the next runs, also when the pointer is unchanged (HTTP 304).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use atlas_proto::tools::{ToolPin, ToolRelease, Version, fetcher_file_name, parse_version};
use atlas_proto::{Limits, Sha256Digest, layout};

use crate::durable;
use crate::error::SyncError;
use crate::source::Source;

/// Pins a verified pointer brought, read by the bootstrap before the archive's.
pub const FETCHER_PROPERTIES: &str = "fetcher.properties";
/// The archive's settings and first pins.
pub const INSTANCE_PROPERTIES: &str = "instance.properties";
/// A verified release whose binary could not be downloaded yet.
pub const PENDING: &str = "fetcher-pending.json";

/// What the bootstrap tells the fetcher it started (environment variables
/// `ATLAS_BOOTSTRAP_CACHE`, `ATLAS_BOOTSTRAP_TARGET`, `ATLAS_BOOTSTRAP_SHA256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapEnv {
    /// The bootstrap's cache (`<cache>/fetcher/<sha256>/atlas-fetcher[.exe]`).
    pub cache: PathBuf,
    /// The platform whose pin it ran.
    pub target: String,
    /// The SHA-256 of the running binary, as pinned.
    pub sha256: String,
}

impl BootstrapEnv {
    /// Reads the three variables; `None` unless all are set (not started by
    /// the bootstrap: no self-update).
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(Self {
            cache: PathBuf::from(var("ATLAS_BOOTSTRAP_CACHE")?),
            target: var("ATLAS_BOOTSTRAP_TARGET")?,
            sha256: var("ATLAS_BOOTSTRAP_SHA256")?,
        })
    }
}

/// A `.properties` file of the instance, as keys and values. Reads the
/// subset the builder and this module write (`key=value`, `#` comments,
/// `\\` and `\uXXXX` escapes).
pub fn read_properties(path: &Path) -> Result<BTreeMap<String, String>, SyncError> {
    let text = match std::fs::read(path) {
        Ok(b) if b.len() > 256 * 1024 => {
            return Err(SyncError::State {
                path: path.to_owned(),
                message: "larger than 256 KiB".into(),
            });
        }
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(atlas_proto::IoError::at("reading", path)(e).into()),
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(i) = line.find(['=', ':']) else {
            continue;
        };
        let (k, v) = (line[..i].trim(), line[i + 1..].trim_start());
        let mut value = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        value.push(ch);
                    }
                }
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => {}
            }
        }
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}

/// The release the bootstrap currently pins: `fetcher.properties` when it
/// exists, else the archive's (version and per-target pins).
fn pinned(atlas_dir: &Path) -> Result<(Option<Version>, BTreeMap<String, ToolPin>), SyncError> {
    let newer = read_properties(&atlas_dir.join(FETCHER_PROPERTIES))?;
    let props = if newer.is_empty() {
        read_properties(&atlas_dir.join(INSTANCE_PROPERTIES))?
    } else {
        newer
    };
    let version = props.get("fetcher.version").and_then(|v| parse_version(v));
    let mut pins = BTreeMap::new();
    for (k, sha) in &props {
        let Some(target) = k.strip_prefix("fetcher.").and_then(|r| r.strip_suffix(".sha256")) else {
            continue;
        };
        if let Some(size) = props
            .get(&format!("fetcher.{target}.size"))
            .and_then(|s| s.parse().ok())
        {
            pins.insert(
                target.to_owned(),
                ToolPin {
                    sha256: sha.clone(),
                    size,
                },
            );
        }
    }
    Ok((version, pins))
}

fn properties_text(release: &ToolRelease) -> String {
    let mut s = String::from(
        "# Written by atlas-fetcher from a verified channel pointer; read by\n\
         # atlas-bootstrap.jar before instance.properties. Delete it to go back\n\
         # to the fetcher the instance was imported with.\n",
    );
    s.push_str(&format!("fetcher.version={}\n", release.version));
    for (target, pin) in &release.targets {
        s.push_str(&format!("fetcher.{target}.sha256={}\n", pin.sha256));
        s.push_str(&format!("fetcher.{target}.size={}\n", pin.size));
    }
    s
}

/// Downloads the pinned binary into the bootstrap's cache unless it is
/// there, hashing while it streams; refuses a wrong size or hash.
async fn cache_binary(
    source: &Source,
    env: &BootstrapEnv,
    pin: &ToolPin,
    max: u64,
) -> Result<PathBuf, SyncError> {
    let digest: Sha256Digest = pin.sha256.parse().map_err(|e| SyncError::Usage(format!("{e}")))?;
    let dir = env.cache.join("fetcher").join(&pin.sha256);
    let bin = dir.join(fetcher_file_name(&env.target));
    if durable::hash_file(&bin) == Some(digest) {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir).map_err(atlas_proto::IoError::at("creating directory", &dir))?;
    let key = layout::blob_key(&digest);
    let mut body = source.open_key(&key).await?;
    let url = body.url().to_owned();
    let mut tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(&dir)
        .map_err(atlas_proto::IoError::at("creating a temporary file in", &dir))?;
    let mut hasher = atlas_proto::digest::HashingCounter::new();
    let mut n: u64 = 0;
    let cap = pin.size.min(max);
    while let Some(chunk) = body.chunk().await? {
        n += chunk.len() as u64;
        if n > cap {
            return Err(SyncError::BlobTooLong {
                path: fetcher_file_name(&env.target).into(),
                url,
                expected: pin.size,
            });
        }
        hasher.update(&chunk);
        tmp.write_all(&chunk)
            .map_err(atlas_proto::IoError::at("writing", tmp.path()))?;
    }
    if n != pin.size {
        return Err(SyncError::BlobSize {
            path: fetcher_file_name(&env.target).into(),
            url,
            expected: pin.size,
            actual: n,
        });
    }
    let (got, _) = hasher.finish();
    if got != digest {
        return Err(SyncError::BlobHash {
            path: fetcher_file_name(&env.target).into(),
            url,
            expected: pin.sha256.clone(),
            actual: got.to_hex(),
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(atlas_proto::IoError::at("syncing", tmp.path()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(atlas_proto::IoError::at("making executable", tmp.path()))?;
    }
    tmp.persist(&bin)
        .map_err(|e| atlas_proto::IoError::at("moving into place", &bin)(e.error))?;
    Ok(bin)
}

/// What [`adopt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// Nothing to do: no release, an older one, or the one pinned already.
    Unchanged,
    /// The release has no build for this machine; nothing changed.
    NoBinaryHere { version: String },
    /// The next launch runs this release (its binary is cached).
    Adopted { version: String, sha256: String },
}

/// Moves the instance's pins to `release` when it is newer than (or as new
/// as, with other pins) both the running fetcher and the pinned one; see the
/// module docs. `release` must come from a verified pointer (or the pending
/// file this function wrote from one). A failed download keeps the release
/// pending and returns the error.
pub async fn adopt(
    instance: &Path,
    env: &BootstrapEnv,
    release: Option<&ToolRelease>,
    source: &Source,
    limits: &Limits,
) -> Result<Adoption, SyncError> {
    let atlas_dir = instance.join("atlas");
    let pending_path = atlas_dir.join(PENDING);
    let pending: Option<ToolRelease> = match release {
        Some(_) => None,
        None => std::fs::read(&pending_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()),
    };
    let Some(release) = release.or(pending.as_ref()) else {
        return Ok(Adoption::Unchanged);
    };
    let drop_pending = || {
        let _ = std::fs::remove_file(&pending_path);
    };
    if let Err(e) = release.validate(limits.tool_binary_bytes) {
        tracing::warn!("ignoring the pointer's atlas-fetcher release: {e}");
        drop_pending();
        return Ok(Adoption::Unchanged);
    }
    let Some(offered) = release.version_key() else {
        return Ok(Adoption::Unchanged);
    };
    let own = parse_version(env!("CARGO_PKG_VERSION"));
    let (pinned_version, pins) = pinned(&atlas_dir)?;
    let floor = own.into_iter().chain(pinned_version.clone()).max();
    if floor.as_ref().is_some_and(|f| offered < *f)
        || (pinned_version.as_ref() == Some(&offered) && pins == release.targets)
    {
        drop_pending();
        return Ok(Adoption::Unchanged);
    }
    let Some(pin) = release.targets.get(&env.target) else {
        drop_pending();
        return Ok(Adoption::NoBinaryHere {
            version: release.version.clone(),
        });
    };
    if let Err(e) = cache_binary(source, env, pin, limits.tool_binary_bytes).await {
        if e.is_transient() || matches!(e, SyncError::NotFound { .. } | SyncError::HttpStatus { .. }) {
            let json = serde_json::to_vec_pretty(release).map_err(|e| SyncError::Internal(e.to_string()))?;
            durable::write_atomic(&pending_path, &json)?;
        }
        return Err(e);
    }
    durable::write_atomic(
        &atlas_dir.join(FETCHER_PROPERTIES),
        properties_text(release).as_bytes(),
    )?;
    drop_pending();
    Ok(Adoption::Adopted {
        version: release.version.clone(),
        sha256: pin.sha256.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip_the_subset_we_write() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = tmp.path().join("x.properties");
        std::fs::write(
            &p,
            "# comment\n! also\nstore=https://cdn.example.com/a/\nkey = ed25519:AB+/=\nname=caf\\u00e9 \\\\ x\n\n",
        )
        .expect("write");
        let m = read_properties(&p).expect("read");
        assert_eq!(m["store"], "https://cdn.example.com/a/");
        assert_eq!(m["key"], "ed25519:AB+/=");
        assert_eq!(m["name"], "café \\ x");
        assert!(
            read_properties(&tmp.path().join("missing"))
                .expect("none")
                .is_empty()
        );
        let release = ToolRelease {
            version: "1.2.3".into(),
            targets: BTreeMap::from([(
                "aarch64-apple-darwin".to_owned(),
                ToolPin {
                    sha256: "ab".repeat(32),
                    size: 9,
                },
            )]),
        };
        std::fs::write(tmp.path().join(FETCHER_PROPERTIES), properties_text(&release)).expect("write");
        let (v, pins) = pinned(tmp.path()).expect("pinned");
        assert_eq!(v, parse_version("1.2.3"));
        assert_eq!(pins, release.targets);
    }
}
