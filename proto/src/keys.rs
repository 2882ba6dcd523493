//! Ed25519 signing keys: generation, the one-line text formats, and key ids.
//!
//! Text formats (one line; `#` comment lines and blank lines are ignored):
//! - public key: `ed25519:<standard base64 of the 32-byte public key>`
//! - secret key: `ed25519-secret:<standard base64 of the 32-byte seed>`
//!
//! The key id is the lowercase hex SHA-256 of the raw 32-byte public key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, Verifier as _};

use crate::digest::Sha256Digest;

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// A key that could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not an Atlas {what} key: expected one line `{prefix}<base64 of 32 bytes>` (make one with `atlas-builder keygen`)"
    )]
    Format {
        what: &'static str,
        prefix: &'static str,
    },
    #[error("the {what} key is not a valid Ed25519 key")]
    Invalid { what: &'static str },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// Extracts the single meaningful line of a key file.
fn key_line(text: &str) -> Option<&str> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next()?;
    lines.next().is_none().then_some(line)
}

fn decode32(text: &str, prefix: &'static str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let format = || KeyError::Format { what, prefix };
    let body = key_line(text)
        .and_then(|l| l.strip_prefix(prefix))
        .ok_or_else(format)?;
    let bytes = B64.decode(body).map_err(|_| format())?;
    bytes.try_into().map_err(|_| format())
}

/// An Ed25519 public key that signs channel pointers.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// Parses the one-line text form (`ed25519:...`), e.g. the content of a `.pub` file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let raw = decode32(text, PUBLIC_PREFIX, "public")?;
        Self::from_bytes(&raw)
    }

    pub fn from_bytes(raw: &[u8; 32]) -> Result<Self, KeyError> {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(raw).map_err(|_| KeyError::Invalid { what: "public" })?;
        Ok(Self { key })
    }

    /// Hex SHA-256 of the raw public key.
    pub fn key_id(&self) -> String {
        Sha256Digest::of(self.key.as_bytes()).to_hex()
    }

    /// The one-line text form.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", B64.encode(self.key.as_bytes()))
    }

    /// Verifies a 64-byte signature over `message` (strict: no malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok() && self.key.verify(message, &sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// An Ed25519 secret key. Its Debug form never shows the key material.
#[derive(Clone)]
pub struct SecretKey {
    key: ed25519_dalek::SigningKey,
}

impl SecretKey {
    /// Makes a new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Parses the one-line text form (`ed25519-secret:...`).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        Ok(Self::from_seed(&decode32(text, SECRET_PREFIX, "secret")?))
    }

    /// The one-line text form. Handle with care: this is the secret.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(self.key.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(key id {})", self.public().key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_sign() {
        let sk = SecretKey::generate().expect("rng");
        let sk2 = SecretKey::parse(&format!("# comment\n{}\n", sk.to_text())).expect("parse");
        let pk = PublicKey::parse(&sk2.public().to_text()).expect("parse pub");
        assert_eq!(pk, sk.public());
        let sig = sk.sign(b"msg");
        assert!(pk.verify(b"msg", &sig));
        assert!(!pk.verify(b"msh", &sig));
        assert!(!pk.verify(b"msg", &sig[..63]));
        assert_eq!(pk.key_id().len(), 64);
        assert!(!format!("{sk:?}").contains(&sk.to_text()));
    }

    #[test]
    fn rejects_wrong_formats() {
        let sk = SecretKey::generate().expect("rng");
        assert!(PublicKey::parse(&sk.to_text()).is_err());
        assert!(SecretKey::parse(&sk.public().to_text()).is_err());
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
        assert!(PublicKey::parse("").is_err());
        let two = format!("{}\n{}", sk.public().to_text(), sk.public().to_text());
        assert!(PublicKey::parse(&two).is_err());
    }

    #[test]
    fn key_id_is_sha256_of_raw_key() {
        let sk = SecretKey::from_seed(&[7u8; 32]);
        let raw = sk.public().key;
        assert_eq!(sk.public().key_id(), Sha256Digest::of(raw.as_bytes()).to_hex());
    }
}
