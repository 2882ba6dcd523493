//! The signed channel pointer: a DSSE envelope whose payload names the build a
//! channel points to, with Ed25519 signatures over DSSE's pre-authentication
//! encoding (PAE) of the exact payload bytes.
//!
//! Verification here is pure: the caller supplies the trusted keys, the
//! expected pack and channel, the current time and the last accepted state.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::keys::{PublicKey, SecretKey};
use crate::tools::Tools;

/// DSSE `payloadType` of an Atlas channel pointer.
pub const PAYLOAD_TYPE: &str = "application/vnd.atlas.pointer.v1+json";
/// Payload format version written by this crate.
pub const POINTER_FORMAT: u32 = 1;

/// The signed statement "channel C of pack P is build B".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointerPayload {
    /// Payload format version; 1.
    pub format: u32,
    pub pack: String,
    pub channel: String,
    /// Monotonic per channel: a client never accepts a lower one.
    pub version: u64,
    /// Hex SHA-256 of the stored manifest object (the build id).
    pub build: String,
    /// Exact size in bytes of the stored manifest object.
    pub manifest_size: u64,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    /// Seconds since the Unix epoch; clients refuse the pointer from then on.
    pub expires_at: u64,
    /// Where launchers find this build in other formats (optional; absent
    /// when the builder wrote no export, so older payloads keep their bytes).
    #[serde(default, skip_serializing_if = "Exports::is_empty")]
    pub exports: Exports,
    /// Programs players' instances run, pinned by hash (format 1.3;
    /// absent when the builder was given none).
    #[serde(default, skip_serializing_if = "Tools::is_empty")]
    pub tools: Tools,
}

/// Store keys of the exports of the pointed-to build, relative to the store's
/// base URL. Informative for launchers: Atlas's own clients ignore them, and
/// neither export is covered by this signature beyond naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exports {
    /// The build's Modrinth modpack (`packs/<pack>/builds/<build>/pack.mrpack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrpack: Option<String>,
    /// The build's packwiz pack file in the channel's packwiz folder: since
    /// format 1.3 the immutable `packs/<pack>/channels/<channel>/packwiz/pack-<sha256>.toml`
    /// (the channel's mutable `pack.toml` is a copy of it, written after the
    /// pointer); format 1.1 pointers name the mutable `pack.toml` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packwiz: Option<String>,
    /// The channel's Prism Launcher / MultiMC instance archive (format 1.3,
    /// `packs/<pack>/instances/<sha256>/<pack>-<channel>.zip`, immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Exports {
    /// True when no export is named (the field is then left out of the payload).
    pub fn is_empty(&self) -> bool {
        self.mrpack.is_none() && self.packwiz.is_none() && self.instance.is_none()
    }
}

impl PointerPayload {
    /// The build id as a digest.
    pub fn build_digest(&self) -> Result<Sha256Digest, PointerError> {
        self.build.parse().map_err(|_| {
            PointerError::PayloadMalformed(format!("`build` is not a hex SHA-256: {}", self.build))
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EnvelopeSignature {
    keyid: String,
    sig: String,
}

/// Why a pointer was refused. Every variant says what a host should check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PointerError {
    #[error("pointer is larger than {} bytes; refusing to read it", crate::limits::Limits::DEFAULT.pointer_bytes)]
    TooLarge,
    #[error("pointer is not a valid DSSE envelope: {0}")]
    Malformed(String),
    #[error("pointer payloadType is `{0}`, expected `{PAYLOAD_TYPE}`")]
    WrongPayloadType(String),
    #[error(
        "pointer is not signed by a trusted key (signed by key ids [{}]; valid trusted signatures {valid} of {threshold} needed); check the public key you configured",
        signed_by.join(", ")
    )]
    Untrusted {
        signed_by: Vec<String>,
        valid: usize,
        threshold: usize,
    },
    #[error("pointer payload is malformed: {0}")]
    PayloadMalformed(String),
    #[error("pointer payload format {0} is not supported by this client; upgrade it")]
    UnsupportedFormat(u32),
    #[error("pointer is for pack `{got}`, expected `{expected}`")]
    WrongPack { expected: String, got: String },
    #[error("pointer is for channel `{got}`, expected `{expected}`")]
    WrongChannel { expected: String, got: String },
    #[error(
        "pointer version {got} is lower than version {last} already accepted (rollback attack or stale mirror)"
    )]
    Rollback { last: u64, got: u64 },
    #[error(
        "pointer version {version} was already accepted with different content (the signing key may be misused)"
    )]
    VersionReused { version: u64 },
    #[error(
        "pointer expired at {expires_at} (now {now}, Unix seconds): the channel was not re-signed in time, or someone is serving an old pointer (freeze attack)"
    )]
    Expired { expires_at: u64, now: u64 },
}

/// What the client last accepted for this channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastAccepted {
    pub version: u64,
    /// SHA-256 of the payload bytes accepted at that version.
    pub payload_digest: Sha256Digest,
}

/// What a client expects of a pointer, besides a trusted signature.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    pub pack: &'a str,
    pub channel: &'a str,
    /// Current time, Unix seconds.
    pub now: u64,
    pub last: Option<LastAccepted>,
}

/// A pointer whose signatures and claims were verified.
#[derive(Debug, Clone)]
pub struct VerifiedPointer {
    pub payload: PointerPayload,
    /// The exact payload bytes that were signed.
    pub payload_bytes: Vec<u8>,
    pub payload_digest: Sha256Digest,
    pub build: Sha256Digest,
    /// Key ids of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
}

/// DSSE pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Serialises and signs a payload with every given key; returns the envelope bytes.
pub fn sign(payload: &PointerPayload, keys: &[&SecretKey]) -> Vec<u8> {
    let payload_bytes =
        serde_json::to_vec(payload).expect("a struct of strings and integers always serialises");
    sign_envelope(PAYLOAD_TYPE, &payload_bytes, keys)
}

/// Signs `payload_bytes` as a DSSE envelope of `payload_type` with every
/// given key (shared by pointers and keysets); returns the envelope bytes.
pub fn sign_envelope(payload_type: &str, payload_bytes: &[u8], keys: &[&SecretKey]) -> Vec<u8> {
    let message = pae(payload_type, payload_bytes);
    let envelope = Envelope {
        payload: B64.encode(payload_bytes),
        payload_type: payload_type.to_owned(),
        signatures: keys
            .iter()
            .map(|k| EnvelopeSignature {
                keyid: k.public().key_id(),
                sig: B64.encode(k.sign(&message)),
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&envelope).expect("envelope always serialises");
    out.push(b'\n');
    out
}

/// Why DSSE envelope bytes could not be opened (before any signature check).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EnvelopeError {
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Malformed(String),
    #[error("payloadType is `{0}`")]
    WrongPayloadType(String),
}

/// Parses envelope bytes (size-capped, of the given `payload_type`) and
/// decodes the payload, trusting nothing.
pub(crate) fn open_envelope(
    bytes: &[u8],
    max: u64,
    payload_type: &str,
) -> Result<(Envelope, Vec<u8>), EnvelopeError> {
    if bytes.len() as u64 > max {
        return Err(EnvelopeError::TooLarge(max));
    }
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    if envelope.payload_type != payload_type {
        return Err(EnvelopeError::WrongPayloadType(envelope.payload_type));
    }
    let payload_bytes = B64
        .decode(&envelope.payload)
        .map_err(|e| EnvelopeError::Malformed(format!("payload is not base64: {e}")))?;
    Ok((envelope, payload_bytes))
}

impl Envelope {
    /// Key ids of `trusted` keys with a valid signature over the PAE of
    /// `payload_bytes`. A set: several signatures by one key count once;
    /// signatures by unknown key ids are ignored.
    pub(crate) fn valid_signers(&self, payload_bytes: &[u8], trusted: &[PublicKey]) -> BTreeSet<String> {
        let message = pae(&self.payload_type, payload_bytes);
        let mut valid = BTreeSet::new();
        for s in &self.signatures {
            let Some(key) = trusted.iter().find(|k| k.key_id() == s.keyid) else {
                continue;
            };
            let Ok(sig) = B64.decode(&s.sig) else {
                continue;
            };
            if key.verify(&message, &sig) {
                valid.insert(s.keyid.clone());
            }
        }
        valid
    }

    /// Key ids named by the signatures (unverified).
    pub(crate) fn key_ids(&self) -> Vec<String> {
        self.signatures.iter().map(|s| s.keyid.clone()).collect()
    }
}

/// A parsed envelope whose signatures have not been checked yet.
#[derive(Debug)]
pub struct SignedPointer {
    envelope: Envelope,
    payload_bytes: Vec<u8>,
}

impl SignedPointer {
    /// Parses envelope bytes (size-capped) without trusting anything in them.
    pub fn parse(bytes: &[u8]) -> Result<Self, PointerError> {
        let (envelope, payload_bytes) =
            open_envelope(bytes, crate::limits::Limits::DEFAULT.pointer_bytes, PAYLOAD_TYPE).map_err(
                |e| match e {
                    EnvelopeError::TooLarge(_) => PointerError::TooLarge,
                    EnvelopeError::Malformed(m) => PointerError::Malformed(m),
                    EnvelopeError::WrongPayloadType(t) => PointerError::WrongPayloadType(t),
                },
            )?;
        Ok(Self {
            envelope,
            payload_bytes,
        })
    }

    /// Key ids named by the envelope's signatures (unverified).
    pub fn key_ids(&self) -> Vec<String> {
        self.envelope.key_ids()
    }

    /// Decodes the payload without checking signatures. Only for tools that
    /// inspect a pointer they will re-sign themselves (never for installing).
    pub fn payload_unverified(&self) -> Result<PointerPayload, PointerError> {
        serde_json::from_slice(&self.payload_bytes).map_err(|e| PointerError::PayloadMalformed(e.to_string()))
    }

    /// Checks signatures against `trusted` (at least `threshold` distinct keys),
    /// then the payload against `expect`.
    pub fn verify(
        &self,
        trusted: &[PublicKey],
        threshold: usize,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedPointer, PointerError> {
        let valid = self.envelope.valid_signers(&self.payload_bytes, trusted);
        let threshold = threshold.max(1);
        if valid.len() < threshold {
            return Err(PointerError::Untrusted {
                signed_by: self.key_ids(),
                valid: valid.len(),
                threshold,
            });
        }
        let payload = self.payload_unverified()?;
        if payload.format != POINTER_FORMAT {
            return Err(PointerError::UnsupportedFormat(payload.format));
        }
        let build = payload.build_digest()?;
        if payload.pack != expect.pack {
            return Err(PointerError::WrongPack {
                expected: expect.pack.to_owned(),
                got: payload.pack,
            });
        }
        if payload.channel != expect.channel {
            return Err(PointerError::WrongChannel {
                expected: expect.channel.to_owned(),
                got: payload.channel,
            });
        }
        let payload_digest = Sha256Digest::of(&self.payload_bytes);
        if let Some(last) = expect.last {
            if payload.version < last.version {
                return Err(PointerError::Rollback {
                    last: last.version,
                    got: payload.version,
                });
            }
            if payload.version == last.version && payload_digest != last.payload_digest {
                return Err(PointerError::VersionReused {
                    version: payload.version,
                });
            }
        }
        if expect.now >= payload.expires_at {
            return Err(PointerError::Expired {
                expires_at: payload.expires_at,
                now: expect.now,
            });
        }
        Ok(VerifiedPointer {
            payload,
            payload_bytes: self.payload_bytes.clone(),
            payload_digest,
            build,
            signers: valid.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(version: u64) -> PointerPayload {
        PointerPayload {
            format: 1,
            pack: "p".into(),
            channel: "dev".into(),
            version,
            build: Sha256Digest::of(b"m").to_hex(),
            manifest_size: 10,
            issued_at: 100,
            expires_at: 1000,
            exports: Exports::default(),
            tools: Tools::default(),
        }
    }

    #[test]
    fn exports_are_optional_and_omitted_when_empty() {
        let p = payload(1);
        let bytes = serde_json::to_vec(&p).expect("json");
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(!text.contains("exports"), "{text}");
        // A payload written before exports existed still parses.
        let back: PointerPayload = serde_json::from_slice(&bytes).expect("parse");
        assert_eq!(back, p);
        let mut with = payload(1);
        with.exports.mrpack = Some("packs/p/builds/b/pack.mrpack".into());
        let text = serde_json::to_string(&with).expect("json");
        assert!(
            text.ends_with(r#""exports":{"mrpack":"packs/p/builds/b/pack.mrpack"}}"#),
            "{text}"
        );
        let sk = SecretKey::from_seed(&[1; 32]);
        let sp = SignedPointer::parse(&sign(&with, &[&sk])).expect("parse");
        let v = sp.verify(&[sk.public()], 1, &expect(None)).expect("verify");
        assert_eq!(v.payload.exports, with.exports);
    }

    fn expect(last: Option<LastAccepted>) -> Expectation<'static> {
        Expectation {
            pack: "p",
            channel: "dev",
            now: 500,
            last,
        }
    }

    #[test]
    fn pae_matches_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_verify_and_each_rejection() {
        let sk = SecretKey::from_seed(&[1; 32]);
        let other = SecretKey::from_seed(&[2; 32]);
        let env = sign(&payload(5), &[&sk]);
        let sp = SignedPointer::parse(&env).expect("parse");
        let v = sp.verify(&[sk.public()], 1, &expect(None)).expect("verify");
        assert_eq!(v.payload.version, 5);
        let last = LastAccepted {
            version: 5,
            payload_digest: v.payload_digest,
        };
        // Same bytes again: fine (idempotent re-fetch).
        assert!(sp.verify(&[sk.public()], 1, &expect(Some(last))).is_ok());

        let err = |e: Result<VerifiedPointer, PointerError>| e.expect_err("must be rejected");
        assert!(matches!(
            err(sp.verify(&[other.public()], 1, &expect(None))),
            PointerError::Untrusted { valid: 0, .. }
        ));
        let lower = SignedPointer::parse(&sign(&payload(4), &[&sk])).expect("parse");
        assert!(matches!(
            err(lower.verify(&[sk.public()], 1, &expect(Some(last)))),
            PointerError::Rollback { last: 5, got: 4 }
        ));
        let mut p = payload(5);
        p.manifest_size = 11;
        let reused = SignedPointer::parse(&sign(&p, &[&sk])).expect("parse");
        assert!(matches!(
            err(reused.verify(&[sk.public()], 1, &expect(Some(last)))),
            PointerError::VersionReused { version: 5 }
        ));
        let mut e = expect(None);
        e.now = 1000;
        assert!(matches!(
            err(sp.verify(&[sk.public()], 1, &e)),
            PointerError::Expired { .. }
        ));
        e = expect(None);
        e.pack = "q";
        assert!(matches!(
            err(sp.verify(&[sk.public()], 1, &e)),
            PointerError::WrongPack { .. }
        ));
        e = expect(None);
        e.channel = "production";
        assert!(matches!(
            err(sp.verify(&[sk.public()], 1, &e)),
            PointerError::WrongChannel { .. }
        ));
    }

    #[test]
    fn tampered_payload_fails_signature() {
        let sk = SecretKey::from_seed(&[1; 32]);
        let env = sign(&payload(5), &[&sk]);
        let mut json: serde_json::Value = serde_json::from_slice(&env).expect("json");
        let forged = serde_json::to_vec(&payload(6)).expect("json");
        json["payload"] = B64.encode(forged).into();
        let bytes = serde_json::to_vec(&json).expect("json");
        let sp = SignedPointer::parse(&bytes).expect("parse");
        assert!(matches!(
            sp.verify(&[sk.public()], 1, &expect(None)),
            Err(PointerError::Untrusted { .. })
        ));
    }

    #[test]
    fn duplicate_signatures_by_one_key_count_once() {
        let sk = SecretKey::from_seed(&[1; 32]);
        let env = sign(&payload(1), &[&sk, &sk]);
        let sp = SignedPointer::parse(&env).expect("parse");
        assert!(matches!(
            sp.verify(&[sk.public()], 2, &expect(None)),
            Err(PointerError::Untrusted {
                valid: 1,
                threshold: 2,
                ..
            })
        ));
    }

    #[test]
    fn malformed_envelopes() {
        assert!(matches!(
            SignedPointer::parse(b"{"),
            Err(PointerError::Malformed(_))
        ));
        assert!(matches!(
            SignedPointer::parse(&vec![b' '; 70_000]),
            Err(PointerError::TooLarge)
        ));
        let wrong_type = br#"{"payload":"","payloadType":"text/plain","signatures":[]}"#;
        assert!(matches!(
            SignedPointer::parse(wrong_type),
            Err(PointerError::WrongPayloadType(_))
        ));
    }
}
