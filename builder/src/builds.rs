//! Reading builds back from a store (for `promote` and `diff`): which build a
//! channel names, and a build's manifest bytes checked against its id.

use bytes::Bytes;

use atlas_proto::{Sha256Digest, layout, manifest};

use crate::pointer::{PointerUpdateError, read_current};
use crate::store::{Store, StoreError};

/// A channel or build could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum BuildLookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pointer(#[from] PointerUpdateError),
    #[error(
        "store {store} holds no pack: it does not exist, or nothing was published there yet; check --store (or ATLAS_STORE)"
    )]
    NoStore { store: String },
    #[error(
        "pack `{pack}` is not in {store}; {}",
        known_list("packs", "check --pack", known)
    )]
    NoPack {
        pack: String,
        store: String,
        /// The packs the store holds, nearest name first.
        known: Vec<String>,
    },
    #[error(
        "channel `{channel}` of pack `{pack}` has no pointer in {store}; {}",
        known_list("channels", "publish to it first, or check the channel's name", known)
    )]
    NoChannel {
        pack: String,
        channel: String,
        store: String,
        /// The pack's channels, nearest name first.
        known: Vec<String>,
    },
    #[error("build {build} of pack `{pack}` is not in {store} (no `{key}`); check the build id")]
    NoBuild {
        pack: String,
        build: String,
        store: String,
        key: String,
    },
    #[error("the manifest `{key}` in {store} is unusable: {message}; the store is damaged")]
    Damaged {
        key: String,
        store: String,
        message: String,
    },
}

impl crate::exit::HasExitClass for BuildLookupError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            Self::Store(e) => e.exit_class(),
            Self::Pointer(e) => e.exit_class(),
            // A store, pack, channel or build named on the command line
            // that is not there: a bad command line.
            Self::NoStore { .. } | Self::NoPack { .. } | Self::NoChannel { .. } | Self::NoBuild { .. } => {
                crate::exit::ExitClass::Usage
            }
            Self::Damaged { .. } => crate::exit::ExitClass::Store,
        }
    }
}

/// `it holds: `a`, `b`` (nearest first), or what to do when there is none.
fn known_list(what: &str, otherwise: &str, known: &[String]) -> String {
    match known {
        [] => otherwise.to_owned(),
        [nearest, ..] => format!(
            "did you mean `{nearest}`? The {what} there: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `names` ordered by likeness to `wanted`, nearest first (ties by name).
pub fn nearest_first(wanted: &str, mut names: Vec<String>) -> Vec<String> {
    names.sort_by(|a, b| {
        let (sa, sb) = (
            strsim::normalized_damerau_levenshtein(wanted, a),
            strsim::normalized_damerau_levenshtein(wanted, b),
        );
        sb.total_cmp(&sa).then_with(|| a.cmp(b))
    });
    names.dedup();
    names
}

/// Why `pack` (and `channel`, when given) cannot be found in `store`: a
/// store with no pack at all, a pack it does not hold (with the packs it
/// holds, nearest first) or a channel the pack lacks (with its channels).
pub async fn missing(store: &dyn Store, pack: &str, channel: Option<&str>) -> BuildLookupError {
    let listed = match store.list("packs/").await {
        Ok(l) => l,
        Err(e) => return e.into(),
    };
    let packs: Vec<String> = listed
        .iter()
        .filter_map(|l| {
            l.key
                .strip_prefix("packs/")?
                .split_once('/')
                .map(|(p, _)| p.to_owned())
        })
        .collect();
    if packs.is_empty() {
        return BuildLookupError::NoStore {
            store: store.describe(),
        };
    }
    if !packs.iter().any(|p| p == pack) {
        return BuildLookupError::NoPack {
            pack: pack.to_owned(),
            store: store.describe(),
            known: nearest_first(pack, packs),
        };
    }
    let prefix = format!("packs/{pack}/channels/");
    let channels: Vec<String> = listed
        .iter()
        .filter_map(|l| l.key.strip_prefix(&prefix)?.strip_suffix(".json"))
        .filter(|c| !c.contains('/'))
        .map(str::to_owned)
        .collect();
    BuildLookupError::NoChannel {
        pack: pack.to_owned(),
        channel: channel.unwrap_or_default().to_owned(),
        store: store.describe(),
        known: nearest_first(channel.unwrap_or_default(), channels),
    }
}

impl BuildLookupError {
    /// A `Damaged` error for `key`.
    pub fn damaged(store: &dyn Store, key: &str, message: impl Into<String>) -> Self {
        Self::Damaged {
            key: key.to_owned(),
            store: store.describe(),
            message: message.into(),
        }
    }
}

/// The build a channel's pointer names now (signature not checked here).
pub async fn channel_build(
    store: &dyn Store,
    pack: &str,
    channel: &str,
) -> Result<Sha256Digest, BuildLookupError> {
    let Some(current) = read_current(store, pack, channel).await? else {
        return Err(missing(store, pack, Some(channel)).await);
    };
    current
        .payload
        .build_digest()
        .map_err(|e| BuildLookupError::damaged(store, &layout::pointer_key(pack, channel), e.to_string()))
}

/// The stored manifest bytes of `build`, refused unless they hash to its id
/// (and larger than a host would read: the cap is the fetcher's).
pub async fn manifest_bytes(
    store: &dyn Store,
    pack: &str,
    build: &Sha256Digest,
) -> Result<Bytes, BuildLookupError> {
    let key = layout::manifest_key(pack, build);
    let obj = store
        .get(&key, atlas_proto::Limits::DEFAULT.manifest_stored_bytes)
        .await?
        .ok_or_else(|| BuildLookupError::NoBuild {
            pack: pack.to_owned(),
            build: build.to_hex(),
            store: store.describe(),
            key: key.clone(),
        })?;
    if manifest::build_id(&obj.bytes) != *build {
        return Err(BuildLookupError::damaged(
            store,
            &key,
            "it does not hash to its build id",
        ));
    }
    Ok(obj.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_name_first() {
        let names = ["production", "beta", "dev"].map(str::to_owned).to_vec();
        assert_eq!(nearest_first("btea", names.clone())[0], "beta");
        assert_eq!(nearest_first("prod", names)[0], "production");
        let e = BuildLookupError::NoChannel {
            pack: "p".into(),
            channel: "btea".into(),
            store: "s".into(),
            known: vec!["beta".into(), "dev".into()],
        };
        assert_eq!(
            e.to_string(),
            "channel `btea` of pack `p` has no pointer in s; did you mean `beta`? The channels there: `beta`, `dev`"
        );
    }
}
