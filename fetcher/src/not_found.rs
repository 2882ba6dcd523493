//! Why a channel pointer was not found, told apart for the host who typed
//! the command: a store that does not exist or is not an Atlas store, a pack
//! the store does not hold, or a channel the pack does not have. A directory
//! store is listed (what exists is named, nearest name first); an HTTP store
//! cannot be listed, so the objects of the static layout (docs/FORMAT.md §1)
//! that a published pack has are probed: the pointers of the usual channel
//! names and the pack's first keyset.

use atlas_proto::layout;

use crate::error::SyncError;
use crate::source::{Listing, Source};

/// Channel names probed on a store that cannot be listed.
pub const USUAL_CHANNELS: &[&str] = &[
    "production",
    "beta",
    "dev",
    "stable",
    "release",
    "alpha",
    "staging",
    "testing",
    "main",
];

/// What is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A directory store whose directory does not exist.
    NoStore { store: String },
    /// A directory that holds no `packs/`: not an Atlas store.
    NotAStore { store: String },
    /// The store (a directory store) holds no pack of this id; the packs it
    /// holds, nearest name first.
    Pack { pack: String, packs: Vec<String> },
    /// The pack exists but has no such channel; its channels, nearest name
    /// first (on an HTTP store, those of [`USUAL_CHANNELS`] that answered).
    Channel {
        pack: String,
        channel: String,
        channels: Vec<String>,
    },
    /// An HTTP store where nothing of the pack answered: the pack id or the
    /// store URL is wrong (or nothing is published yet).
    PackOrStore { pack: String },
}

/// `names` sorted by edit distance to `to` (then by name).
pub fn nearest_first(to: &str, mut names: Vec<String>) -> Vec<String> {
    names.sort_by_key(|n| (strsim::damerau_levenshtein(to, n), n.clone()));
    names
}

/// Finds out what is missing when the pointer of `pack`/`channel` was not
/// found on `source`.
pub async fn diagnose(source: &Source, pack: &str, channel: &str) -> Missing {
    let store = source.url_of("");
    match source.list("") {
        Listing::NoStore => return Missing::NoStore { store },
        Listing::Names(top) => {
            if !top.iter().any(|n| n == "packs") {
                return Missing::NotAStore { store };
            }
            let Listing::Names(packs) = source.list("packs") else {
                return Missing::NotAStore { store };
            };
            if !packs.iter().any(|p| p == pack) {
                return Missing::Pack {
                    pack: pack.to_owned(),
                    packs: nearest_first(pack, packs),
                };
            }
            let channels = match source.list(&format!("packs/{pack}/channels")) {
                Listing::Names(n) => n
                    .iter()
                    .filter_map(|n| n.strip_suffix(".json"))
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            return Missing::Channel {
                pack: pack.to_owned(),
                channel: channel.to_owned(),
                channels: nearest_first(channel, channels),
            };
        }
        Listing::Unlisted => {}
    }
    let mut found = Vec::new();
    for c in USUAL_CHANNELS.iter().filter(|c| **c != channel) {
        match source.probe(&layout::pointer_key(pack, c)).await {
            Ok(true) => found.push((*c).to_owned()),
            Ok(false) => {}
            // The store stopped answering: say what is known so far.
            Err(_) => break,
        }
    }
    let pack_exists =
        !found.is_empty() || matches!(source.probe(&layout::keyset_key(pack, 1)).await, Ok(true));
    if pack_exists {
        Missing::Channel {
            pack: pack.to_owned(),
            channel: channel.to_owned(),
            channels: nearest_first(channel, found),
        }
    } else {
        Missing::PackOrStore {
            pack: pack.to_owned(),
        }
    }
}

impl Missing {
    /// The hint appended to "… was not found": what is missing and what to
    /// check.
    pub fn hint(&self) -> String {
        match self {
            Self::NoStore { store } => {
                format!(": the store directory {store} does not exist (check --source)")
            }
            Self::NotAStore { store } => format!(
                ": {store} is not an Atlas store, it has no packs/ directory (check --source: it names the \
                 store's top directory, the one that holds packs/ and blobs/)"
            ),
            Self::Pack { pack, packs } if packs.is_empty() => format!(
                ": the store holds no pack yet, so no pack `{pack}` (check --source; `atlas-builder publish` \
                 publishes a pack)"
            ),
            Self::Pack { pack, packs } => format!(
                ": the store has no pack `{pack}`; it has {} (check --pack)",
                packs.join(", ")
            ),
            Self::Channel {
                pack,
                channel,
                channels,
            } if channels.is_empty() => format!(
                ": pack `{pack}` has no channel `{channel}`, and none of the usual channels ({}) either \
                 (check --channel; `atlas-builder publish` creates a channel)",
                USUAL_CHANNELS.join(", ")
            ),
            Self::Channel {
                pack,
                channel,
                channels,
            } => format!(
                ": pack `{pack}` has no channel `{channel}`; it has {} (check --channel)",
                channels.join(", ")
            ),
            Self::PackOrStore { pack } => format!(
                ": nothing of pack `{pack}` is there (no pointer of the usual channels {}, no keyset), so the \
                 pack id (--pack) or the store URL (--source) is wrong, or the pack is not published yet",
                USUAL_CHANNELS.join(", ")
            ),
        }
    }
}

/// `e` with a hint that tells what is missing, when it is the "not found"
/// of `pack`/`channel`'s pointer on `source`; any other error as it was.
pub async fn explain(e: SyncError, source: &Source, pack: &str, channel: &str) -> SyncError {
    match e {
        SyncError::NotFound { url, .. } if url == source.url_of(&layout::pointer_key(pack, channel)) => {
            let hint = diagnose(source, pack, channel).await.hint();
            SyncError::NotFound { url, hint }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_name_first() {
        let names = ["dev", "production", "beta", "prod"].map(String::from).to_vec();
        assert_eq!(
            nearest_first("prodution", names),
            ["production", "prod", "beta", "dev"]
        );
    }

    #[tokio::test]
    async fn a_directory_store_tells_store_pack_and_channel_apart() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("store");
        let src = |p: &std::path::Path| Source::parse(&p.display().to_string()).expect("source");
        let d = diagnose(&src(&root), "p", "dev").await;
        assert!(matches!(d, Missing::NoStore { .. }), "{d:?}");
        std::fs::create_dir_all(root.join("other")).expect("mkdir");
        let d = diagnose(&src(&root), "p", "dev").await;
        assert!(matches!(d, Missing::NotAStore { .. }), "{d:?}");
        for c in ["production", "dev"] {
            let dir = root.join("packs/atlas-demo/channels");
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join(format!("{c}.json")), "{}").expect("write");
        }
        std::fs::create_dir_all(root.join("packs/zeta")).expect("mkdir");
        let d = diagnose(&src(&root), "atlas-dem", "dev").await;
        assert_eq!(
            d.hint(),
            ": the store has no pack `atlas-dem`; it has atlas-demo, zeta (check --pack)"
        );
        let d = diagnose(&src(&root), "atlas-demo", "prodution").await;
        assert_eq!(
            d.hint(),
            ": pack `atlas-demo` has no channel `prodution`; it has production, dev (check --channel)"
        );
    }
}
