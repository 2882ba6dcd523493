//! Programs a pack's players run, pinned by the signed channel pointer
//! (format 1.3, docs/FORMAT.md §10): the `atlas-fetcher` build for each
//! platform, by SHA-256 and size, stored as an ordinary blob.
//!
//! The instance archive's bootstrap (Java) runs only a binary whose hash it
//! has pinned; the first pins come with the archive, later ones only from a
//! pointer the already pinned fetcher verified. So these pins ride on the
//! pointer's signature, version floor and expiry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

/// The platforms players' launchers run on, as Rust target triples (the
/// names of the release archives): Linux (static musl), macOS and Windows,
/// each on x86_64 and aarch64.
pub const PLAYER_TARGETS: [&str; 6] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
    "aarch64-pc-windows-msvc",
];

/// The file name of the fetcher on a target (`.exe` on Windows).
pub fn fetcher_file_name(target: &str) -> &'static str {
    if target.contains("-windows-") {
        "atlas-fetcher.exe"
    } else {
        "atlas-fetcher"
    }
}

/// The `tools` object of a pointer payload (absent when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tools {
    /// The fetcher players' instances run before each launch.
    #[serde(rename = "atlas-fetcher", default, skip_serializing_if = "Option::is_none")]
    pub atlas_fetcher: Option<ToolRelease>,
}

impl Tools {
    /// True when nothing is pinned (the field is then left out of the payload).
    pub fn is_empty(&self) -> bool {
        self.atlas_fetcher.is_none()
    }
}

/// One release of a tool: its version and a pin per target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRelease {
    /// `MAJOR.MINOR.PATCH` (an optional `-pre` suffix is allowed).
    pub version: String,
    /// Pins by Rust target triple (see [`PLAYER_TARGETS`]).
    pub targets: BTreeMap<String, ToolPin>,
}

/// A binary, by content: the blob `blobs/sha256/<h[0..2]>/<h>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPin {
    /// Lowercase hex SHA-256 of the binary.
    pub sha256: String,
    /// Its exact size in bytes.
    pub size: u64,
}

/// A `tools` entry that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ToolsError {
    #[error("tool version `{0}` is not MAJOR.MINOR.PATCH")]
    Version(String),
    #[error("tool target `{0}` is not one of the player platforms ({list})", list = PLAYER_TARGETS.join(", "))]
    Target(String),
    #[error("tool pin for `{target}`: {message}")]
    Pin { target: String, message: String },
}

impl ToolPin {
    /// The pinned digest.
    pub fn digest(&self) -> Result<Sha256Digest, crate::digest::DigestParseError> {
        self.sha256.parse()
    }
}

impl ToolRelease {
    /// Checks the version, every target name and every pin; `max_size` caps
    /// a binary's declared size.
    pub fn validate(&self, max_size: u64) -> Result<(), ToolsError> {
        parse_version(&self.version).ok_or_else(|| ToolsError::Version(self.version.clone()))?;
        for (target, pin) in &self.targets {
            if !PLAYER_TARGETS.contains(&target.as_str()) {
                return Err(ToolsError::Target(target.clone()));
            }
            let bad = |message: String| ToolsError::Pin {
                target: target.clone(),
                message,
            };
            pin.digest().map_err(|e| bad(e.to_string()))?;
            if pin.size == 0 || pin.size > max_size {
                return Err(bad(format!("size {} is not between 1 and {max_size}", pin.size)));
            }
        }
        Ok(())
    }

    /// The parsed version, for ordering releases.
    pub fn version_key(&self) -> Option<Version> {
        parse_version(&self.version)
    }
}

/// A parsed `MAJOR.MINOR.PATCH[-pre]` version; a pre-release sorts before
/// its release (`1.0.0-rc.1` < `1.0.0`), pre-release texts by byte order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// A release sorts after every pre-release of the same numbers.
    release: ReleaseRank,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ReleaseRank {
    Pre(String),
    Release,
}

/// Parses `MAJOR.MINOR.PATCH` with an optional `-pre` (and ignores `+build`).
pub fn parse_version(text: &str) -> Option<Version> {
    let text = text.split('+').next().unwrap_or_default();
    let (core, pre) = match text.split_once('-') {
        Some((c, p)) if !p.is_empty() => (c, Some(p)),
        Some(_) => return None,
        None => (text, None),
    };
    let mut parts = core.split('.');
    let mut num = || -> Option<u64> {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 18 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let (major, minor, patch) = (num()?, num()?, num()?);
    if parts.next().is_some() {
        return None;
    }
    if let Some(p) = pre
        && !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
        release: pre.map_or(ReleaseRank::Release, |p| ReleaseRank::Pre(p.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(size: u64) -> ToolPin {
        ToolPin {
            sha256: Sha256Digest::of(b"x").to_hex(),
            size,
        }
    }

    #[test]
    fn versions_order_and_parse() {
        let v = |s: &str| parse_version(s).expect(s);
        assert!(v("0.1.0") < v("0.2.0"));
        assert!(v("0.10.0") > v("0.9.9"));
        assert!(v("1.0.0-rc.1") < v("1.0.0"));
        assert_eq!(v("1.2.3+build.5"), v("1.2.3"));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1.2.3-",
            "01.x.3",
            "1.2.3-a b",
        ] {
            assert!(parse_version(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn releases_are_validated() {
        let mut r = ToolRelease {
            version: "0.1.0".into(),
            targets: BTreeMap::from([("x86_64-unknown-linux-musl".to_owned(), pin(10))]),
        };
        assert_eq!(r.validate(100), Ok(()));
        r.targets.insert("x86_64-unknown-linux-gnu".into(), pin(10));
        assert!(matches!(r.validate(100), Err(ToolsError::Target(_))));
        r.targets.remove("x86_64-unknown-linux-gnu");
        r.targets.insert("aarch64-apple-darwin".into(), pin(1000));
        assert!(matches!(r.validate(100), Err(ToolsError::Pin { .. })));
        r.targets.insert(
            "aarch64-apple-darwin".into(),
            ToolPin {
                sha256: "ABC".into(),
                size: 1,
            },
        );
        assert!(matches!(r.validate(100), Err(ToolsError::Pin { .. })));
        r.version = "latest".into();
        assert!(matches!(r.validate(100), Err(ToolsError::Version(_))));
    }

    #[test]
    fn json_shape() {
        let t = Tools {
            atlas_fetcher: Some(ToolRelease {
                version: "0.1.0".into(),
                targets: BTreeMap::from([("x86_64-pc-windows-msvc".to_owned(), pin(3))]),
            }),
        };
        let text = serde_json::to_string(&t).expect("json");
        assert!(
            text.starts_with(
                r#"{"atlas-fetcher":{"version":"0.1.0","targets":{"x86_64-pc-windows-msvc":{"sha256":""#
            ),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Tools>(&text).expect("parse"), t);
        assert!(Tools::default().is_empty());
        assert_eq!(fetcher_file_name("x86_64-pc-windows-msvc"), "atlas-fetcher.exe");
        assert_eq!(fetcher_file_name("aarch64-apple-darwin"), "atlas-fetcher");
    }
}
