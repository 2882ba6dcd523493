//! What each key of a store listing is, for garbage collection: the object
//! classes of docs/FORMAT.md §1, by the shape of their keys. Keys of no
//! known shape are never deleted; pack pages and the store index are
//! `Other`, so they are kept.

use atlas_proto::Sha256Digest;
use atlas_proto::layout::{self, PROBE_PREFIX};

/// The class of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `blobs/sha256/<h[0..2]>/<h>`.
    Blob(Sha256Digest),
    /// `packs/<pack>/builds/<build>/<file>`: the manifest, the .mrpack, ...
    Build {
        pack: String,
        build: Sha256Digest,
        manifest: bool,
    },
    /// `packs/<pack>/channels/<channel>.json`.
    Pointer { pack: String, channel: String },
    /// `packs/<pack>/channels/<channel>/history/<version>.json`.
    History {
        pack: String,
        channel: String,
        version: u64,
    },
    /// `packs/<pack>/channels/<channel>/packwiz/<name>`.
    Packwiz {
        pack: String,
        channel: String,
        name: String,
    },
    /// `packs/<pack>/instances/<sha256>/<name>.zip`: a channel's instance
    /// archive for Prism Launcher and MultiMC (format 1.3, §10).
    Instance { pack: String },
    /// `atlas-probe/<random>`: a conditional-write probe left behind.
    Probe,
    /// A directory store's temporary file (`.tmp-…`) left by a killed writer.
    Temp,
    /// Anything else (keysets, pages, files Atlas did not write): kept.
    Other,
}

impl Kind {
    /// The report's name of the class.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Blob(_) => "blob",
            Self::Build { .. } => "build",
            Self::Pointer { .. } => "pointer",
            Self::History { .. } => "history",
            Self::Packwiz { .. } => "packwiz",
            Self::Instance { .. } => "instance",
            Self::Probe => "probe",
            Self::Temp => "temporary",
            Self::Other => "other",
        }
    }
}

/// Classifies a key relative to the store.
pub fn classify(key: &str) -> Kind {
    let segments: Vec<&str> = key.split('/').collect();
    if segments.last().is_some_and(|s| s.starts_with(".tmp-")) {
        return Kind::Temp;
    }
    if key.starts_with(PROBE_PREFIX) && segments.len() == 2 && !segments[1].is_empty() {
        return Kind::Probe;
    }
    match segments.as_slice() {
        ["blobs", "sha256", shard, hex] => match hex.parse::<Sha256Digest>() {
            Ok(d) if d.to_hex() == *hex && hex.starts_with(shard) && shard.len() == 2 => Kind::Blob(d),
            _ => Kind::Other,
        },
        ["packs", pack, "builds", build, file] if layout::validate_pack_id(pack).is_ok() => {
            match build.parse::<Sha256Digest>() {
                Ok(b) if b.to_hex() == *build && !file.is_empty() => Kind::Build {
                    pack: (*pack).to_owned(),
                    build: b,
                    manifest: *file == "manifest.pb.zst",
                },
                _ => Kind::Other,
            }
        }
        ["packs", pack, "channels", file] => match file.strip_suffix(".json") {
            Some(channel) if ids_ok(pack, channel) => Kind::Pointer {
                pack: (*pack).to_owned(),
                channel: channel.to_owned(),
            },
            _ => Kind::Other,
        },
        ["packs", pack, "channels", channel, "history", file] if ids_ok(pack, channel) => {
            match file.strip_suffix(".json").map(str::parse::<u64>) {
                Some(Ok(version)) if file.strip_suffix(".json") == Some(&version.to_string()) => {
                    Kind::History {
                        pack: (*pack).to_owned(),
                        channel: (*channel).to_owned(),
                        version,
                    }
                }
                _ => Kind::Other,
            }
        }
        ["packs", pack, "instances", sha, file]
            if layout::validate_pack_id(pack).is_ok()
                && sha.parse::<Sha256Digest>().is_ok_and(|d| d.to_hex() == *sha)
                && file.ends_with(".zip")
                && file.len() > ".zip".len() =>
        {
            Kind::Instance {
                pack: (*pack).to_owned(),
            }
        }
        ["packs", pack, "channels", channel, "packwiz", rest @ ..]
            if ids_ok(pack, channel) && !rest.is_empty() =>
        {
            Kind::Packwiz {
                pack: (*pack).to_owned(),
                channel: (*channel).to_owned(),
                name: rest.join("/"),
            }
        }
        _ => Kind::Other,
    }
}

fn ids_ok(pack: &str, channel: &str) -> bool {
    layout::validate_pack_id(pack).is_ok() && layout::validate_channel(channel).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_shape() {
        let d = Sha256Digest::of(b"x");
        let h = d.to_hex();
        assert_eq!(classify(&format!("blobs/sha256/{}/{h}", &h[..2])), Kind::Blob(d));
        assert_eq!(
            classify(&format!("blobs/sha256/00/{h}")),
            Kind::Other,
            "wrong shard"
        );
        assert_eq!(
            classify(&format!("packs/p/builds/{h}/manifest.pb.zst")),
            Kind::Build {
                pack: "p".into(),
                build: d,
                manifest: true
            }
        );
        assert_eq!(
            classify(&format!("packs/p/builds/{h}/pack.mrpack")),
            Kind::Build {
                pack: "p".into(),
                build: d,
                manifest: false
            }
        );
        assert_eq!(
            classify("packs/p/channels/dev.json"),
            Kind::Pointer {
                pack: "p".into(),
                channel: "dev".into()
            }
        );
        assert_eq!(
            classify("packs/p/channels/dev/history/12.json"),
            Kind::History {
                pack: "p".into(),
                channel: "dev".into(),
                version: 12
            }
        );
        assert_eq!(classify("packs/p/channels/dev/history/012.json"), Kind::Other);
        assert_eq!(
            classify("packs/p/channels/dev/packwiz/mods/a.jar.0123456789abcdef.pw.toml"),
            Kind::Packwiz {
                pack: "p".into(),
                channel: "dev".into(),
                name: "mods/a.jar.0123456789abcdef.pw.toml".into()
            }
        );
        assert_eq!(
            classify(&format!("packs/p/instances/{h}/p-dev.zip")),
            Kind::Instance { pack: "p".into() }
        );
        assert_eq!(classify("atlas-probe/abc"), Kind::Probe);
        assert_eq!(classify("blobs/sha256/ab/.tmp-x1y2"), Kind::Temp);
        for other in [
            "packs/p/keys/1.json",
            "index.html",
            "packs/p/index.html",
            "packs/p/instances/abc/p-dev.zip",
            "packs/P/channels/dev.json",
            "atlas-probe/",
        ] {
            assert_eq!(classify(other), Kind::Other, "{other}");
        }
    }
}
