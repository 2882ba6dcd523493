//! What a host trusts: a `--key` ([`load_key`]), or a root of trust
//! (`--root`, [`load_root`]) from which the pack's keyset chain is followed
//! (docs/FORMAT.md §3a): start from the newest keyset stored in
//! `DIR/.atlas/keyset.json` when it descends from that root, fetch
//! `keys/<N+1>.json` ... until one is missing (at most
//! [`DEFAULT_CHAIN_CAP`] per run), verifying each against the one before.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use atlas_proto::keyset::{self, DEFAULT_CHAIN_CAP, Keyset, SignedKeyset};
use atlas_proto::{Limits, PublicKey, Sha256Digest, layout};

use super::Syncer;
use crate::error::SyncError;
use crate::local::Local;
use crate::retry::Retrier;
use crate::state::STATE_FORMAT;

/// File (inside the state directory) holding the newest verified keyset.
pub const KEYSET_FILE: &str = "keyset.json";

/// `keyset.json`: the newest keyset verified from the configured root.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKeyset {
    format: u32,
    /// Hex SHA-256 of the configured root's payload: a stored keyset counts
    /// only while the host keeps the root of trust it descends from.
    anchor: String,
    /// The keyset envelope (JSON text) exactly as published.
    keyset: String,
}

/// Reads a `--key` value: the inline `ed25519:...` text or a path to a file holding it.
pub fn load_key(spec: &str) -> Result<PublicKey, SyncError> {
    let spec = spec.trim();
    let secret = |what: &str| {
        SyncError::Usage(format!(
            "--key {what} is a secret signing key, not a public key: give the public key instead (the \
             `.pub` file made beside it, or its `ed25519:` line), and keep the secret key off this host"
        ))
    };
    if spec.starts_with("ed25519-secret:") {
        return Err(secret("value"));
    }
    if spec.starts_with("ed25519:") {
        return PublicKey::parse(spec).map_err(|e| SyncError::Usage(format!("--key `{spec}`: {e}")));
    }
    let text = std::fs::read_to_string(spec)
        .map_err(|e| SyncError::Usage(format!("--key: cannot read public key file `{spec}`: {e}")))?;
    if text
        .lines()
        .any(|l| l.trim_start().starts_with("ed25519-secret:"))
    {
        return Err(secret(&format!("file `{spec}`")));
    }
    PublicKey::parse(&text).map_err(|e| SyncError::Usage(format!("--key file `{spec}`: {e}")))
}

/// Reads a `--root` file: a trusted `keys/<N>.json`, or a JSON file naming
/// root keys and a threshold (see [`keyset::parse_root`]).
pub fn load_root(path: &Path, pack: &str) -> Result<Keyset, SyncError> {
    use std::io::Read as _;
    let origin = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(Limits::DEFAULT.keyset_bytes + 1).read_to_end(&mut bytes))
        .map_err(|e| SyncError::Usage(format!("--root: cannot read the root of trust `{origin}`: {e}")))?;
    keyset::parse_root(&bytes, pack).map_err(|source| SyncError::Keyset {
        origin,
        reason: source,
    })
}

fn anchor_id(root: &Keyset) -> String {
    let bytes = serde_json::to_vec(root.payload()).expect("a keyset payload always serialises");
    Sha256Digest::of(&bytes).to_hex()
}

/// The stored keyset, if it descends from `root` and still verifies; a
/// missing, foreign or invalid file is ignored (the chain is walked again); a
/// link or a non-file there is refused.
fn load_stored(local: &Local, root: &Keyset) -> Result<Option<Keyset>, SyncError> {
    let Some(bytes) = local.read_state(KEYSET_FILE)? else {
        return Ok(None);
    };
    Ok(verify_stored(&bytes, root))
}

/// The keyset in `keyset.json`'s bytes, if it descends from `root` and still verifies.
fn verify_stored(bytes: &[u8], root: &Keyset) -> Option<Keyset> {
    let stored: StoredKeyset = serde_json::from_slice(bytes).ok()?;
    if stored.format != STATE_FORMAT || stored.anchor != anchor_id(root) {
        return None;
    }
    let ks = SignedKeyset::parse(stored.keyset.as_bytes())
        .ok()?
        .verify_self(root.pack())
        .ok()?;
    (ks.version() > root.version()).then_some(ks)
}

/// Writes `ks` as the newest keyset verified from `root`.
pub(super) fn save(local: &Local, root: &Keyset, ks: &Keyset) -> Result<(), SyncError> {
    let Some(envelope) = ks.envelope_bytes().and_then(|b| std::str::from_utf8(b).ok()) else {
        return Ok(());
    };
    let stored = StoredKeyset {
        format: STATE_FORMAT,
        anchor: anchor_id(root),
        keyset: envelope.to_owned(),
    };
    local.state()?.write_atomic_json(KEYSET_FILE, &stored)
}

/// The current keyset and whether it is newer than the stored one.
#[derive(Debug)]
pub(super) struct Current {
    pub keyset: Keyset,
    pub changed: bool,
}

impl Syncer {
    /// Walks the keyset chain from the stored keyset (or the root) to its end.
    pub(super) async fn current_keyset(
        &self,
        root: &Keyset,
        deadline: Option<Instant>,
    ) -> Result<Current, SyncError> {
        let pack = self.opts.pack.as_str();
        let stored = load_stored(&Local::open(&self.paths)?, root)?;
        let stored_version = stored.as_ref().map(Keyset::version);
        let mut current = stored.unwrap_or_else(|| root.clone());
        for step in 1..=DEFAULT_CHAIN_CAP + 1 {
            self.opts.interrupt.check()?;
            let key = layout::keyset_key(pack, current.version() + 1);
            let url = self.source.url_of(&key);
            let mut retry = Retrier::new(&self.opts.retry, deadline);
            let bytes = loop {
                let attempt = async {
                    self.source
                        .open_key(&key)
                        .await?
                        .read_capped(self.opts.limits.keyset_bytes)
                        .await
                };
                match attempt.await {
                    Ok(b) => break Some(b),
                    Err(SyncError::NotFound { .. }) => break None,
                    Err(e) if retry.again(&e).await => {}
                    Err(e) => return Err(e),
                }
            };
            let Some(bytes) = bytes else { break };
            if step > DEFAULT_CHAIN_CAP {
                return Err(SyncError::KeysetChainTooLong {
                    url,
                    cap: DEFAULT_CHAIN_CAP,
                    from: current.version(),
                });
            }
            let err = |source| SyncError::Keyset {
                origin: url.clone(),
                reason: source,
            };
            let next = current
                .verify_next(&SignedKeyset::parse(&bytes).map_err(err)?)
                .map_err(err)?;
            tracing::info!(version = next.version(), %url, "keyset verified");
            current = next;
        }
        if current.version() == 0 {
            return Err(SyncError::NoKeyset {
                url: self.source.url_of(&layout::keyset_key(pack, 1)),
            });
        }
        // Stored only when newer than the root (which the host has anyway).
        let changed = current.version() > root.version() && stored_version != Some(current.version());
        Ok(Current {
            keyset: current,
            changed,
        })
    }
}
