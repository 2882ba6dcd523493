//! The fetcher's state in `DIR/.atlas/`: `trust.json` (what was last accepted
//! per pack/channel, for rollback and freeze protection and conditional GETs)
//! and `install.json` (which build is installed and every file it manages).
//! Both are written atomically ([`crate::durable::write_atomic_json`]); this
//! module only models, reads and checks them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atlas_proto::pointer::LastAccepted;
use atlas_proto::{IoError, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::error::SyncError;
use crate::select::Selection;
use crate::side::InstallSide;

/// Name of the state directory inside the target directory.
pub const STATE_DIR: &str = atlas_proto::path::STATE_DIR;
/// Trust state file name.
pub const TRUST_FILE: &str = "trust.json";
/// Install state file name.
pub const INSTALL_FILE: &str = "install.json";
/// Staging directory name (inside the state directory).
pub const STAGING_DIR: &str = "staging";
/// Blobs downloaded ahead of an apply by [`crate::Syncer::prefetch`].
pub const PREFETCH_DIR: &str = "prefetch";
/// Directory (inside the state directory) of the kept manifests of the
/// installed build and the ones before it ([`crate::history`]).
pub const BUILDS_DIR: &str = "builds";
/// Format version of both state files.
pub const STATE_FORMAT: u32 = 1;

/// `trust.json`: one entry per `pack/channel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustState {
    pub format: u32,
    /// Keyed by `<pack>/<channel>`.
    pub channels: BTreeMap<String, TrustEntry>,
    /// The latest time (Unix seconds) this host's clock showed when a pointer
    /// was accepted. A clock found well behind it is refused: expiry checks
    /// (the defence against freeze attacks) mean nothing on a clock set back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<u64>,
}

/// What was last accepted for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustEntry {
    /// Pointer version last accepted.
    pub version: u64,
    /// Hex SHA-256 of the exact payload bytes accepted at that version.
    pub payload_sha256: Sha256Hex,
    /// Build id the accepted pointer named.
    pub build: Sha256Hex,
    /// The pointer's HTTP ETag, for `If-None-Match`.
    pub etag: Option<String>,
    /// Expiry of the accepted pointer (Unix seconds); a 304 after it is refused.
    pub expires_at: u64,
    /// Key ids of the keys configured (trusted) when it was accepted, sorted.
    pub trusted_keys: Vec<String>,
    /// When (Unix seconds, the host's clock) the pointer was last fetched in
    /// full (HTTP 200, not a 304) and accepted. Absent in files written
    /// before it existed: the next check then fetches in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<u64>,
}

impl TrustEntry {
    /// The rollback-protection input for pointer verification.
    pub fn last_accepted(&self) -> LastAccepted {
        LastAccepted {
            version: self.version,
            payload_digest: self.payload_sha256.0,
        }
    }
}

/// A SHA-256 digest serialized as 64 lowercase hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hex(pub Sha256Digest);

impl Serialize for Sha256Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Sha256Hex).map_err(serde::de::Error::custom)
    }
}

/// `install.json`: the installed build and the files it manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallState {
    pub format: u32,
    pub pack: String,
    pub channel: String,
    pub build: Sha256Hex,
    pub version: u64,
    pub side: InstallSide,
    /// The host's choice of optional files when this was installed.
    #[serde(default, skip_serializing_if = "Selection::is_empty")]
    pub selection: Selection,
    /// Every file the installed build manages, sorted by path.
    pub files: Vec<InstalledFile>,
    /// Builds installed here before this one, newest first (at most
    /// [`crate::history::KEEP_BUILDS`]); their manifests are kept in
    /// `.atlas/builds/` for `rollback`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastBuild>,
    /// The build `rollback` moved away from: not installed again while the
    /// channel still points at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Sha256Hex>,
}

/// A build installed here before, kept for `rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastBuild {
    pub build: Sha256Hex,
    /// The pointer version it was installed at.
    pub version: u64,
}

/// One managed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledFile {
    pub path: String,
    pub sha256: Sha256Hex,
    pub size: u64,
    /// Written once, then left to the user: never replaced, repaired or removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve: bool,
    /// Modification time (nanoseconds since the Unix epoch) when installed or
    /// last confirmed intact; absent (older state files): unknown, so the
    /// content is hashed to tell whether the user changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<u64>,
    /// The user changed the file and the `keep` policy left it in place:
    /// `sha256`/`size` still describe what was installed, `mtime_ns` is the
    /// user's version's when last seen, and the file is not
    /// overwritten until it is restored to that or another policy is chosen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub modified: bool,
}

impl InstalledFile {
    /// A file installed with this content, not yet stat'ed.
    pub fn new(path: impl Into<String>, sha256: Sha256Digest, size: u64) -> Self {
        Self {
            path: path.into(),
            sha256: Sha256Hex(sha256),
            size,
            preserve: false,
            mtime_ns: None,
            modified: false,
        }
    }
}

/// Paths of the state files for a target directory.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub trust: PathBuf,
    pub install: PathBuf,
    pub staging: PathBuf,
    /// Verified blobs downloaded ahead of an apply (`Syncer::prefetch`).
    pub prefetch: PathBuf,
    /// Manifests of the installed build and the ones kept for `rollback`.
    pub builds: PathBuf,
}

impl StatePaths {
    pub fn new(dir: &Path) -> Self {
        let state_dir = dir.join(STATE_DIR);
        Self {
            dir: dir.to_owned(),
            trust: state_dir.join(TRUST_FILE),
            install: state_dir.join(INSTALL_FILE),
            staging: state_dir.join(STAGING_DIR),
            prefetch: state_dir.join(PREFETCH_DIR),
            builds: state_dir.join(BUILDS_DIR),
            state_dir,
        }
    }
}

/// Key of a channel in `trust.json`.
pub fn channel_key(pack: &str, channel: &str) -> String {
    format!("{pack}/{channel}")
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SyncError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::at("reading state file", path)(e).into()),
    }
}

fn bad(path: &Path, message: impl Into<String>) -> SyncError {
    SyncError::State {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Parses `trust.json` bytes.
pub fn parse_trust(path: &Path, bytes: &[u8]) -> Result<TrustState, SyncError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(path, format!("not JSON: {e}")))?;
    check_format(path, &v)?;
    let t: TrustState = serde_json::from_value(v).map_err(|e| bad(path, e.to_string()))?;
    Ok(t)
}

/// Parses `install.json` bytes.
pub fn parse_install(path: &Path, bytes: &[u8]) -> Result<InstallState, SyncError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(path, format!("not JSON: {e}")))?;
    check_format(path, &v)?;
    let s: InstallState = serde_json::from_value(v).map_err(|e| bad(path, e.to_string()))?;
    for f in &s.files {
        atlas_proto::validate_path(&f.path).map_err(|e| bad(path, e.to_string()))?;
    }
    Ok(s)
}

fn check_format(path: &Path, v: &serde_json::Value) -> Result<(), SyncError> {
    match v.get("format").and_then(serde_json::Value::as_u64) {
        Some(f) if f == u64::from(STATE_FORMAT) => Ok(()),
        Some(f) => Err(bad(
            path,
            format!(
                "format {f} is not supported (this fetcher writes {STATE_FORMAT}); was it written by a newer version?"
            ),
        )),
        None => Err(bad(path, "missing `format` field")),
    }
}

/// Loads `trust.json`; a missing file is an empty state.
pub fn load_trust(path: &Path) -> Result<TrustState, SyncError> {
    match read_optional(path)? {
        Some(b) => parse_trust(path, &b),
        None => Ok(TrustState {
            format: STATE_FORMAT,
            channels: BTreeMap::new(),
            last_time: None,
        }),
    }
}

/// Loads `install.json`; `None` if there is none.
pub fn load_install(path: &Path) -> Result<Option<InstallState>, SyncError> {
    read_optional(path)?.map(|b| parse_install(path, &b)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hexd(b: &[u8]) -> String {
        Sha256Digest::of(b).to_hex()
    }

    #[test]
    fn trust_round_trip_and_exact_shape() {
        let mut t = TrustState {
            format: 1,
            channels: BTreeMap::new(),
            last_time: None,
        };
        t.channels.insert(
            channel_key("p", "dev"),
            TrustEntry {
                version: 3,
                payload_sha256: Sha256Hex(Sha256Digest::of(b"p")),
                build: Sha256Hex(Sha256Digest::of(b"b")),
                etag: Some("\"abc\"".into()),
                expires_at: 99,
                trusted_keys: vec!["k".into()],
                fetched_at: Some(42),
            },
        );
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["channels"]["p/dev"]["payload_sha256"], hexd(b"p"));
        let back = parse_trust(Path::new("t"), &serde_json::to_vec(&t).expect("json")).expect("parse");
        assert_eq!(back, t);
    }

    #[test]
    fn install_parse_and_rejects() {
        let good = format!(
            r#"{{"format":1,"pack":"p","channel":"dev","build":"{b}","version":2,"side":"server",
               "files":[{{"path":"mods/a.jar","sha256":"{b}","size":3}}]}}"#,
            b = hexd(b"x")
        );
        let s = parse_install(Path::new("i"), good.as_bytes()).expect("parse");
        assert_eq!(s.side, InstallSide::Server);
        assert_eq!(s.files[0].size, 3);
        assert!(!s.files[0].preserve);
        assert_eq!(s.files[0].mtime_ns, None, "absent mtime = unknown");
        let with = good.replace(r#""size":3"#, r#""size":3,"mtime_ns":17,"modified":true"#);
        let s = parse_install(Path::new("i"), with.as_bytes()).expect("parse");
        assert_eq!((s.files[0].mtime_ns, s.files[0].modified), (Some(17), true));

        let p = Path::new("/d/.atlas/install.json");
        let err = |s: &str| parse_install(p, s.as_bytes()).expect_err("must fail").to_string();
        assert!(err("{").contains("/d/.atlas/install.json"));
        assert!(err("{").contains("not JSON"));
        assert!(err(r#"{"format":2}"#).contains("format 2 is not supported"));
        assert!(err(r#"{"pack":"p"}"#).contains("missing `format`"));
        assert!(err(&good.replace("mods/a.jar", "../a.jar")).contains("unsafe path"));
        assert!(err(&good.replace("\"server\"", "\"both\"")).contains("unknown variant"));
        assert!(err(&good.replace(r#""size":3"#, r#""size":3,"extra":1"#)).contains("unknown field"));
        assert!(err(&good.replace(&hexd(b"x"), "abc")).contains("SHA-256"));
        let d = tempfile::tempdir().expect("tmp");
        assert!(
            load_install(&d.path().join("none.json"))
                .expect("missing ok")
                .is_none()
        );
    }
}
