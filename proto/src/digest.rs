//! SHA-256 content addresses: parsing, formatting and incremental hashing.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest, displayed as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

/// A string or byte slice that is not a SHA-256 digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a SHA-256 digest: expected 64 lowercase hex characters")]
pub struct DigestParseError {
    /// The offending input, shortened for display.
    pub input: String,
}

impl Sha256Digest {
    /// Hashes a byte slice in one go.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Builds a digest from exactly 32 raw bytes, as stored in a manifest.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DigestParseError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| DigestParseError {
            input: format!("<{} raw bytes>", bytes.len()),
        })?;
        Ok(Self(arr))
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DigestParseError {
            input: s.chars().take(80).collect(),
        };
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

/// Incremental SHA-256 plus a byte count, for checking data while it streams.
#[derive(Clone, Default)]
pub struct HashingCounter {
    hasher: Sha256,
    len: u64,
}

impl fmt::Debug for HashingCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingCounter").field("len", &self.len).finish()
    }
}

impl HashingCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.hasher.finalize().into()), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(
            Sha256Digest::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_round_trip_and_rejects() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(d.to_hex().parse::<Sha256Digest>(), Ok(d));
        assert!("abc".parse::<Sha256Digest>().is_err());
        assert!(d.to_hex().to_uppercase().parse::<Sha256Digest>().is_err());
        assert!("zz".repeat(32).parse::<Sha256Digest>().is_err());
        assert!(Sha256Digest::from_slice(&[0u8; 31]).is_err());
    }

    #[test]
    fn streaming_matches_one_shot() {
        let mut h = HashingCounter::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), (Sha256Digest::of(b"abc"), 3));
    }
}
