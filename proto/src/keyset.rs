//! The signed keyset chain (docs/FORMAT.md §3a), modelled on TUF root
//! rotation: `packs/<pack>/keys/<N>.json` names the root keys (m of n) that
//! sign the next keyset and the keys that sign channel pointers. Keyset N+1
//! counts only when a threshold of keyset N's root keys *and* a threshold of
//! its own root keys signed it, so hosts follow rotations without being
//! touched, and a leaked pointer key is cut off by publishing one keyset.
//!
//! Verification here is pure; fetching and storing are the client's job.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::keys::{PublicKey, SecretKey};
use crate::pointer::{Envelope, EnvelopeError, open_envelope, sign_envelope};

/// DSSE `payloadType` of a keyset.
pub const KEYSET_PAYLOAD_TYPE: &str = "application/vnd.atlas.keyset.v1+json";
/// Payload format version written by this crate.
pub const KEYSET_FORMAT: u32 = 1;
/// How many new keysets a client follows in one run by default; a longer
/// chain is refused (endless data, or a host far too out of date).
pub const DEFAULT_CHAIN_CAP: u64 = 16;

/// The keys of one role and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Public keys in the one-line text form (`ed25519:<base64>`).
    pub keys: Vec<String>,
    /// Distinct valid signatures needed (1 to the number of keys).
    pub threshold: u32,
}

/// The signed statement "for pack P, from version N on, these keys are trusted".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysetPayload {
    /// Payload format version; 1.
    pub format: u32,
    pub pack: String,
    /// 1, 2, ...: the `N` of `keys/<N>.json`.
    pub version: u64,
    /// Seconds since the Unix epoch (informative).
    pub issued_at: u64,
    /// Keys that sign the next keyset (kept offline).
    pub root: RoleKeys,
    /// Keys that sign channel pointers (usually one, held by CI).
    pub pointer: RoleKeys,
    /// Key ids (hex SHA-256 of the raw key) that never count again, in this
    /// keyset or any later one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<String>,
}

/// Why a keyset (or a root of trust) was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysetError {
    #[error("keyset is larger than {} bytes; refusing to read it", crate::limits::Limits::DEFAULT.keyset_bytes)]
    TooLarge,
    #[error("keyset is not a valid DSSE envelope: {0}")]
    Malformed(String),
    #[error("keyset payloadType is `{0}`, expected `{KEYSET_PAYLOAD_TYPE}`")]
    WrongPayloadType(String),
    #[error("keyset payload is malformed: {0}")]
    PayloadMalformed(String),
    #[error("keyset format {0} is not supported by this client; upgrade it")]
    UnsupportedFormat(u32),
    #[error("keyset is for pack `{got}`, expected `{expected}`")]
    WrongPack { expected: String, got: String },
    #[error("keyset has version {got} where version {expected} was expected")]
    WrongVersion { expected: u64, got: u64 },
    #[error("keyset version {version} is invalid: {message}")]
    Invalid { version: u64, message: String },
    #[error(
        "keyset version {version} is not signed by enough {role} ({valid} valid of {threshold} needed; signed by key ids [{}])",
        signed_by.join(", ")
    )]
    Untrusted {
        version: u64,
        /// `root keys of version N-1` or `root keys of its own`.
        role: String,
        valid: usize,
        threshold: usize,
        signed_by: Vec<String>,
    },
    #[error("keyset version {version} drops the revocation of key {key_id} listed by version {}", version - 1)]
    RevocationDropped { version: u64, key_id: String },
}

/// A keyset whose signatures and content were verified (or a configured
/// root of trust, version 0, which names root keys only).
#[derive(Debug, Clone)]
pub struct Keyset {
    payload: KeysetPayload,
    root: Vec<PublicKey>,
    pointer: Vec<PublicKey>,
    /// The envelope bytes as published (`None` for a version-0 anchor).
    envelope: Option<Vec<u8>>,
}

fn parse_role(
    version: u64,
    what: &str,
    role: &RoleKeys,
    revoked: &[String],
) -> Result<Vec<PublicKey>, KeysetError> {
    let invalid = |message: String| KeysetError::Invalid { version, message };
    if role.keys.len() > crate::limits::Limits::DEFAULT.keyset_role_keys {
        return Err(invalid(format!(
            "more than {} {what} keys",
            crate::limits::Limits::DEFAULT.keyset_role_keys
        )));
    }
    let mut keys: Vec<PublicKey> = Vec::new();
    for text in &role.keys {
        let k = PublicKey::parse(text).map_err(|e| invalid(format!("{what} key `{text}`: {e}")))?;
        if revoked.contains(&k.key_id()) {
            return Err(invalid(format!(
                "{what} key {} is also listed as revoked",
                k.key_id()
            )));
        }
        if keys.contains(&k) {
            return Err(invalid(format!("{what} key {} is listed twice", k.key_id())));
        }
        keys.push(k);
    }
    let t = role.threshold as usize;
    if t == 0 || t > keys.len() {
        return Err(invalid(format!(
            "{what} threshold {t} must be from 1 to the number of {what} keys ({})",
            keys.len()
        )));
    }
    Ok(keys)
}

impl Keyset {
    /// Checks a payload's content (not its signatures).
    fn from_payload(payload: KeysetPayload, envelope: Option<Vec<u8>>) -> Result<Self, KeysetError> {
        if payload.format != KEYSET_FORMAT {
            return Err(KeysetError::UnsupportedFormat(payload.format));
        }
        crate::layout::validate_pack_id(&payload.pack)
            .map_err(|e| KeysetError::PayloadMalformed(e.to_string()))?;
        let v = payload.version;
        if payload.revoked.len() > crate::limits::Limits::DEFAULT.keyset_revoked {
            return Err(KeysetError::Invalid {
                version: v,
                message: format!(
                    "more than {} revoked key ids",
                    crate::limits::Limits::DEFAULT.keyset_revoked
                ),
            });
        }
        let root = parse_role(v, "root", &payload.root, &payload.revoked)?;
        let pointer = if v == 0 {
            Vec::new()
        } else {
            parse_role(v, "pointer", &payload.pointer, &payload.revoked)?
        };
        Ok(Self {
            payload,
            root,
            pointer,
            envelope,
        })
    }

    /// A root of trust naming only root keys (version 0): the client must
    /// then fetch `keys/1.json`, which a threshold of these keys signed.
    pub fn anchor(pack: &str, root_keys: &[PublicKey], threshold: u32) -> Result<Self, KeysetError> {
        let payload = KeysetPayload {
            format: KEYSET_FORMAT,
            pack: pack.to_owned(),
            version: 0,
            issued_at: 0,
            root: RoleKeys {
                keys: root_keys.iter().map(PublicKey::to_text).collect(),
                threshold,
            },
            pointer: RoleKeys {
                keys: Vec::new(),
                threshold: 0,
            },
            revoked: Vec::new(),
        };
        Self::from_payload(payload, None)
    }

    pub fn payload(&self) -> &KeysetPayload {
        &self.payload
    }

    pub fn version(&self) -> u64 {
        self.payload.version
    }

    pub fn pack(&self) -> &str {
        &self.payload.pack
    }

    /// The envelope bytes as published (`None` for a version-0 anchor).
    pub fn envelope_bytes(&self) -> Option<&[u8]> {
        self.envelope.as_deref()
    }

    /// Keys whose signatures count on a channel pointer (never a revoked one).
    pub fn pointer_keys(&self) -> Vec<PublicKey> {
        self.active(&self.pointer)
    }

    /// Distinct pointer keys that must sign a channel pointer.
    pub fn pointer_threshold(&self) -> usize {
        self.payload.pointer.threshold as usize
    }

    /// Sorted ids of the pointer keys (what `trust.json` records).
    pub fn pointer_key_ids(&self) -> Vec<String> {
        let ids: BTreeSet<String> = self.pointer_keys().iter().map(PublicKey::key_id).collect();
        ids.into_iter().collect()
    }

    /// Root keys whose signatures count on the next keyset.
    pub fn root_keys(&self) -> Vec<PublicKey> {
        self.active(&self.root)
    }

    /// Whether `key_id` is revoked by this keyset.
    pub fn is_revoked(&self, key_id: &str) -> bool {
        self.payload.revoked.iter().any(|r| r == key_id)
    }

    fn active(&self, keys: &[PublicKey]) -> Vec<PublicKey> {
        keys.iter()
            .filter(|k| !self.is_revoked(&k.key_id()))
            .cloned()
            .collect()
    }

    /// Verifies `next` as the keyset following this one: version + 1, same
    /// pack, signed by a threshold of this keyset's root keys and a threshold
    /// of its own, and keeping every revocation listed here.
    pub fn verify_next(&self, next: &SignedKeyset) -> Result<Keyset, KeysetError> {
        let payload = next.payload_unverified()?;
        let expected = self.version() + 1;
        if payload.pack != self.payload.pack {
            return Err(KeysetError::WrongPack {
                expected: self.payload.pack.clone(),
                got: payload.pack,
            });
        }
        if payload.version != expected {
            return Err(KeysetError::WrongVersion {
                expected,
                got: payload.version,
            });
        }
        if let Some(k) = self.payload.revoked.iter().find(|k| !payload.revoked.contains(k)) {
            return Err(KeysetError::RevocationDropped {
                version: expected,
                key_id: k.clone(),
            });
        }
        let ks = Keyset::from_payload(payload, Some(next.bytes.clone()))?;
        next.require(
            &self.root_keys(),
            self.payload.root.threshold,
            expected,
            format!("root keys of version {}", self.version()),
        )?;
        next.require(
            &ks.root_keys(),
            ks.payload.root.threshold,
            expected,
            "root keys of its own".into(),
        )?;
        Ok(ks)
    }
}

/// A parsed keyset envelope whose signatures have not been checked yet.
#[derive(Debug)]
pub struct SignedKeyset {
    envelope: Envelope,
    payload_bytes: Vec<u8>,
    bytes: Vec<u8>,
}

impl SignedKeyset {
    /// Parses envelope bytes (size-capped) without trusting anything in them.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeysetError> {
        let (envelope, payload_bytes) = open_envelope(
            bytes,
            crate::limits::Limits::DEFAULT.keyset_bytes,
            KEYSET_PAYLOAD_TYPE,
        )
        .map_err(|e| match e {
            EnvelopeError::TooLarge(_) => KeysetError::TooLarge,
            EnvelopeError::Malformed(m) => KeysetError::Malformed(m),
            EnvelopeError::WrongPayloadType(t) => KeysetError::WrongPayloadType(t),
        })?;
        Ok(Self {
            envelope,
            payload_bytes,
            bytes: bytes.to_vec(),
        })
    }

    /// Decodes the payload without checking signatures (for tools that
    /// build the next keyset, never for trusting one).
    pub fn payload_unverified(&self) -> Result<KeysetPayload, KeysetError> {
        serde_json::from_slice(&self.payload_bytes).map_err(|e| KeysetError::PayloadMalformed(e.to_string()))
    }

    /// Key ids named by the signatures (unverified).
    pub fn key_ids(&self) -> Vec<String> {
        self.envelope.key_ids()
    }

    fn require(
        &self,
        keys: &[PublicKey],
        threshold: u32,
        version: u64,
        role: String,
    ) -> Result<(), KeysetError> {
        let valid = self.envelope.valid_signers(&self.payload_bytes, keys).len();
        let threshold = (threshold as usize).max(1);
        if valid < threshold {
            return Err(KeysetError::Untrusted {
                version,
                role,
                valid,
                threshold,
                signed_by: self.key_ids(),
            });
        }
        Ok(())
    }

    /// Verifies a keyset configured as a root of trust: it must be for `pack`
    /// and signed by a threshold of its own root keys.
    pub fn verify_self(&self, pack: &str) -> Result<Keyset, KeysetError> {
        let payload = self.payload_unverified()?;
        if payload.pack != pack {
            return Err(KeysetError::WrongPack {
                expected: pack.to_owned(),
                got: payload.pack,
            });
        }
        if payload.version == 0 {
            return Err(KeysetError::WrongVersion { expected: 1, got: 0 });
        }
        let ks = Keyset::from_payload(payload, Some(self.bytes.clone()))?;
        self.require(
            &ks.root_keys(),
            ks.payload.root.threshold,
            ks.version(),
            "root keys of its own".into(),
        )?;
        Ok(ks)
    }
}

/// A root-of-trust file that names root keys instead of a whole keyset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootFile {
    pack: String,
    root: RoleKeys,
}

/// Reads a root of trust for `pack`: either a trusted keyset envelope
/// (`keys/<N>.json`, self-signed) or a JSON file
/// `{"pack": "...", "root": {"keys": ["ed25519:..."], "threshold": m}}`.
pub fn parse_root(bytes: &[u8], pack: &str) -> Result<Keyset, KeysetError> {
    if bytes.len() as u64 > crate::limits::Limits::DEFAULT.keyset_bytes {
        return Err(KeysetError::TooLarge);
    }
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| KeysetError::Malformed(e.to_string()))?;
    if v.get("payloadType").is_some() {
        return SignedKeyset::parse(bytes)?.verify_self(pack);
    }
    let f: RootFile = serde_json::from_value(v).map_err(|e| KeysetError::PayloadMalformed(e.to_string()))?;
    if f.pack != pack {
        return Err(KeysetError::WrongPack {
            expected: pack.to_owned(),
            got: f.pack,
        });
    }
    let keys = f
        .root
        .keys
        .iter()
        .map(|t| PublicKey::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| KeysetError::Invalid {
            version: 0,
            message: format!("root key: {e}"),
        })?;
    Keyset::anchor(pack, &keys, f.root.threshold)
}

/// Serialises and signs a keyset payload with every given key.
pub fn sign(payload: &KeysetPayload, keys: &[&SecretKey]) -> Vec<u8> {
    let bytes = serde_json::to_vec(payload).expect("a struct of strings and integers always serialises");
    sign_envelope(KEYSET_PAYLOAD_TYPE, &bytes, keys)
}

#[cfg(test)]
#[path = "keyset_tests.rs"]
mod tests;
