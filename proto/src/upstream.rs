//! The hash formats upstreams publish and packwiz writes (sha1, sha256,
//! sha512, md5 and CurseForge's murmur2 fingerprint), parsed to raw bytes as in `atlas.v1.Hash`, and
//! [`UpstreamHasher`], which computes any of them over streamed chunks.

use std::fmt;
use std::str::FromStr;

use crate::v1::{self, HashAlgorithm};
use md5::Digest as _;

/// A hash format named by `hash-format` in packwiz files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashFormat {
    Sha1,
    Sha256,
    Sha512,
    Md5,
    /// CurseForge's fingerprint: MurmurHash2 (32-bit, seed 1) over the bytes
    /// with whitespace (9, 10, 13, 32) removed, written as a decimal `u32`.
    Murmur2,
}

/// Every format, in the order packwiz documents them.
pub const HASH_FORMATS: [HashFormat; 5] = [
    HashFormat::Sha1,
    HashFormat::Sha256,
    HashFormat::Sha512,
    HashFormat::Md5,
    HashFormat::Murmur2,
];

impl HashFormat {
    /// The name packwiz writes (`sha256`, `murmur2`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Md5 => "md5",
            Self::Murmur2 => "murmur2",
        }
    }

    /// The matching `atlas.v1.HashAlgorithm`.
    pub fn algorithm(self) -> HashAlgorithm {
        match self {
            Self::Sha1 => HashAlgorithm::Sha1,
            Self::Sha256 => HashAlgorithm::Sha256,
            Self::Sha512 => HashAlgorithm::Sha512,
            Self::Md5 => HashAlgorithm::Md5,
            Self::Murmur2 => HashAlgorithm::Murmur2,
        }
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
            Self::Md5 => 16,
            Self::Murmur2 => 4,
        }
    }
}

impl fmt::Display for HashFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A hash or hash format could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    #[error("unknown hash-format `{0}`; packwiz knows sha1, sha256, sha512, md5 and murmur2")]
    UnknownFormat(String),
    #[error("`{value}` is not a {format} hash: expected {expected}")]
    BadValue {
        format: HashFormat,
        value: String,
        expected: String,
    },
}

impl FromStr for HashFormat {
    type Err = HashParseError;

    /// Case-insensitive, as packwiz reads it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HASH_FORMATS
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| HashParseError::UnknownFormat(s.to_owned()))
    }
}

/// A digest in one format, as raw bytes (murmur2: the `u32`, big endian).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamHash {
    pub format: HashFormat,
    pub bytes: Vec<u8>,
}

impl UpstreamHash {
    /// Parses the text packwiz writes: hex (either case) for the digests,
    /// a decimal `u32` for murmur2.
    pub fn parse(format: HashFormat, text: &str) -> Result<Self, HashParseError> {
        let bad = |expected: String| HashParseError::BadValue {
            format,
            value: text.to_owned(),
            expected,
        };
        let t = text.trim();
        let bytes = match format {
            HashFormat::Murmur2 => t
                .parse::<u32>()
                .map_err(|_| bad("a decimal number from 0 to 4294967295".into()))?
                .to_be_bytes()
                .to_vec(),
            _ => {
                let len = format.digest_len();
                match hex::decode(t) {
                    Ok(b) if b.len() == len => b,
                    _ => return Err(bad(format!("{} hex digits", len * 2))),
                }
            }
        };
        Ok(Self { format, bytes })
    }

    /// Hashes a whole buffer.
    pub fn of(format: HashFormat, data: &[u8]) -> Self {
        let mut h = UpstreamHasher::new(format);
        h.update(data);
        h.finish()
    }

    /// Reads an `atlas.v1.Hash`; `None` for an algorithm this version does
    /// not know or a digest of the wrong length (a reader skips those).
    pub fn from_proto(h: &v1::Hash) -> Option<Self> {
        let format = match HashAlgorithm::try_from(h.algorithm).ok()? {
            HashAlgorithm::Sha1 => HashFormat::Sha1,
            HashAlgorithm::Sha256 => HashFormat::Sha256,
            HashAlgorithm::Sha512 => HashFormat::Sha512,
            HashAlgorithm::Md5 => HashFormat::Md5,
            HashAlgorithm::Murmur2 => HashFormat::Murmur2,
            HashAlgorithm::Unspecified => return None,
        };
        (h.value.len() == format.digest_len()).then(|| Self {
            format,
            bytes: h.value.clone(),
        })
    }

    /// The message-ready form (`atlas.v1.Hash`).
    pub fn to_proto(&self) -> v1::Hash {
        v1::Hash {
            algorithm: self.format.algorithm() as i32,
            value: self.bytes.clone(),
        }
    }
}

impl fmt::Display for UpstreamHash {
    /// The packwiz text form: lowercase hex, or decimal for murmur2.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.format, <[u8; 4]>::try_from(self.bytes.as_slice())) {
            (HashFormat::Murmur2, Ok(b)) => write!(f, "{}", u32::from_be_bytes(b)),
            _ => f.write_str(&hex::encode(&self.bytes)),
        }
    }
}

/// Computes one [`HashFormat`] over data fed in chunks.
///
/// murmur2 needs the length of the whitespace-stripped input before its
/// first round, so that variant keeps the stripped bytes until
/// [`finish`](Self::finish) (as CurseForge and packwiz do); the others use
/// constant memory.
#[derive(Debug, Clone)]
pub struct UpstreamHasher(Inner);

#[derive(Clone)]
enum Inner {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Md5(md5::Md5),
    Murmur2(Vec<u8>),
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.format().name())
    }
}

impl Inner {
    fn format(&self) -> HashFormat {
        match self {
            Self::Sha1(_) => HashFormat::Sha1,
            Self::Sha256(_) => HashFormat::Sha256,
            Self::Sha512(_) => HashFormat::Sha512,
            Self::Md5(_) => HashFormat::Md5,
            Self::Murmur2(_) => HashFormat::Murmur2,
        }
    }
}

impl UpstreamHasher {
    pub fn new(format: HashFormat) -> Self {
        Self(match format {
            HashFormat::Sha1 => Inner::Sha1(sha1::Sha1::new()),
            HashFormat::Sha256 => Inner::Sha256(sha2::Sha256::new()),
            HashFormat::Sha512 => Inner::Sha512(sha2::Sha512::new()),
            HashFormat::Md5 => Inner::Md5(md5::Md5::new()),
            HashFormat::Murmur2 => Inner::Murmur2(Vec::new()),
        })
    }

    pub fn format(&self) -> HashFormat {
        self.0.format()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        match &mut self.0 {
            Inner::Sha1(h) => h.update(chunk),
            Inner::Sha256(h) => h.update(chunk),
            Inner::Sha512(h) => h.update(chunk),
            Inner::Md5(h) => h.update(chunk),
            Inner::Murmur2(buf) => buf.extend(chunk.iter().copied().filter(|b| !is_cf_whitespace(*b))),
        }
    }

    pub fn finish(self) -> UpstreamHash {
        let format = self.format();
        let bytes = match self.0 {
            Inner::Sha1(h) => h.finalize().to_vec(),
            Inner::Sha256(h) => h.finalize().to_vec(),
            Inner::Sha512(h) => h.finalize().to_vec(),
            Inner::Md5(h) => h.finalize().to_vec(),
            Inner::Murmur2(buf) => murmur2(&buf, 1).to_be_bytes().to_vec(),
        };
        UpstreamHash { format, bytes }
    }

    /// Finishes and compares with `expected` (which must be of the same format).
    pub fn verify(self, expected: &UpstreamHash) -> Result<(), HashMismatch> {
        let actual = self.finish();
        if actual == *expected {
            Ok(())
        } else {
            Err(HashMismatch {
                expected: expected.clone(),
                actual,
            })
        }
    }
}

/// Computes each of `formats` over everything `reader` yields, in one
/// streaming pass (constant memory except for murmur2, see [`UpstreamHasher`]).
pub fn hash_reader(
    formats: &[HashFormat],
    mut reader: impl std::io::Read,
) -> std::io::Result<Vec<UpstreamHash>> {
    let mut hashers: Vec<UpstreamHasher> = formats.iter().map(|f| UpstreamHasher::new(*f)).collect();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for h in &mut hashers {
            h.update(&buf[..n]);
        }
    }
    Ok(hashers.into_iter().map(UpstreamHasher::finish).collect())
}

/// Data did not hash to the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} mismatch: expected {expected}, got {actual}", expected.format)]
pub struct HashMismatch {
    pub expected: UpstreamHash,
    pub actual: UpstreamHash,
}

/// The bytes CurseForge's fingerprint skips: tab, LF, CR and space.
fn is_cf_whitespace(b: u8) -> bool {
    matches!(b, 9 | 10 | 13 | 32)
}

/// MurmurHash2, 32-bit (Austin Appleby's reference `MurmurHash2`, little-endian blocks).
pub fn murmur2(data: &[u8], seed: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // The reference takes the length as a 32-bit int; longer inputs wrap like CurseForge's.
    let mut h = seed ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// CurseForge's file fingerprint of a whole buffer.
pub fn curseforge_fingerprint(data: &[u8]) -> u32 {
    let stripped: Vec<u8> = data.iter().copied().filter(|b| !is_cf_whitespace(*b)).collect();
    murmur2(&stripped, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_case_insensitively() {
        assert_eq!("SHA256".parse::<HashFormat>(), Ok(HashFormat::Sha256));
        assert_eq!("murmur2".parse::<HashFormat>(), Ok(HashFormat::Murmur2));
        assert!(matches!(
            "blake3".parse::<HashFormat>(),
            Err(HashParseError::UnknownFormat(_))
        ));
    }

    #[test]
    fn empty_input_digests() {
        // Vectors from packwiz core/hash_test.go (hash of empty input).
        for (format, text) in [
            (HashFormat::Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (
                HashFormat::Sha256,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                HashFormat::Sha512,
                "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            ),
            (HashFormat::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
            (HashFormat::Murmur2, "1540447798"),
        ] {
            let expected = UpstreamHash::parse(format, text).expect("valid vector");
            assert_eq!(UpstreamHash::of(format, b""), expected, "{format}");
            assert_eq!(expected.to_string(), text);
        }
    }

    #[test]
    fn murmur2_matches_packwiz_and_strips_whitespace() {
        // packwiz curseforge/murmur2/hash_test.go pins "abc" to 1621425345.
        assert_eq!(curseforge_fingerprint(b"abc"), 1_621_425_345);
        let a = curseforge_fingerprint(b"hello world");
        assert_eq!(a, curseforge_fingerprint(b"hello\nworld"));
        assert_eq!(a, curseforge_fingerprint(b"hel l o\tw\rorld"));
        assert_ne!(a, curseforge_fingerprint(b"helloworld!"));
        // Every tail length (0..=3) goes through the same streaming path.
        let data = b"0123456789 abcdef\r\n";
        let mut h = UpstreamHasher::new(HashFormat::Murmur2);
        for chunk in data.chunks(3) {
            h.update(chunk);
        }
        assert_eq!(h.finish().bytes, curseforge_fingerprint(data).to_be_bytes());
    }

    #[test]
    fn parses_hashes_to_raw_bytes() {
        let h = UpstreamHash::parse(HashFormat::Murmur2, "42").expect("valid");
        assert_eq!(h.bytes, [0, 0, 0, 42]);
        assert_eq!(h.to_proto().algorithm, HashAlgorithm::Murmur2 as i32);
        let h =
            UpstreamHash::parse(HashFormat::Sha1, "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709").expect("upper");
        assert_eq!(h.bytes.len(), 20);
        assert_eq!(h.to_string(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        for (format, text) in [
            (HashFormat::Murmur2, "-1"),
            (HashFormat::Murmur2, "4294967296"),
            (HashFormat::Murmur2, "abc"),
            (HashFormat::Sha1, "da39"),
            (HashFormat::Sha256, "zz"),
        ] {
            assert!(
                matches!(
                    UpstreamHash::parse(format, text),
                    Err(HashParseError::BadValue { .. })
                ),
                "{format} {text}"
            );
        }
    }

    #[test]
    fn streamed_equals_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for format in HASH_FORMATS {
            let mut h = UpstreamHasher::new(format);
            for chunk in data.chunks(777) {
                h.update(chunk);
            }
            let whole = UpstreamHash::of(format, &data);
            assert_eq!(h.clone().finish(), whole, "{format}");
            assert!(h.verify(&whole).is_ok());
            let other = UpstreamHash::of(format, b"other");
            let err = UpstreamHasher::new(format).verify(&other).expect_err("mismatch");
            assert_eq!(err.expected, other);
        }
    }
}
