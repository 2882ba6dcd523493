//! Exports of a build for launchers that do not speak Atlas's own format: a
//! Modrinth modpack per build ([`mrpack`]) and a packwiz tree per channel
//! ([`packwiz`]). Both point their downloads at the store's blobs through the
//! public CDN URL, which is configured apart from the S3 endpoint.

pub mod instance;
pub mod mrpack;
pub mod packwiz;
pub mod player_tools;

use std::path::PathBuf;

use serde::Serialize;

use atlas_proto::Sha256Digest;
use atlas_proto::pointer::Exports;

use crate::packwiz::{HashFormat, UpstreamHash};
use crate::repo::{Content, PackSource, RepoError};
use crate::store::StoreError;

/// Environment variable holding the public base URL of the store.
pub const PUBLIC_URL_ENV: &str = "ATLAS_PUBLIC_URL";

/// An export could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "public URL `{url}`: {message}; give the http(s) base URL the CDN serves the store at, e.g. --public-url https://cdn.example.com/atlas/"
    )]
    Url { url: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the .mrpack: {0}")]
    Zip(String),
    #[error("writing the packwiz tree: {0}")]
    Toml(String),
    #[error("the manifest of build {build} is unreadable: {message}")]
    Manifest { build: String, message: String },
    #[error(
        "channel `{channel}` has a packwiz export; pass --public-url (or set {PUBLIC_URL_ENV}) so it is kept in step with the pointer"
    )]
    NeedsPublicUrl { channel: String },
    #[error(
        "--player-tools {dir}: {message}; give the folder the action fills from a release (VERSION, atlas-bootstrap.jar, <target>/atlas-fetcher[.exe])"
    )]
    PlayerTools { dir: String, message: String },
    #[error(
        "--player-tools needs the store's public URL (--public-url or {PUBLIC_URL_ENV}): instances download from it"
    )]
    PlayerToolsNeedPublicUrl,
    #[error("writing the page `{key}`: {message}")]
    Page { key: String, message: String },
    #[error(
        "`{key}` was rewritten by other writers {attempts} times in a row; the pointer is written: run `atlas-builder page` (same --store, --pack and --public-url) to bring the page in step",
        attempts = crate::page::write::PAGE_ATTEMPTS
    )]
    PageContended { key: String },
    #[error("reading the channel pointer: {0}")]
    Pointer(String),
    #[error(
        "`{key}` was changed by other writers {attempts} times in a row; the pointer is written, run the command again to bring the packwiz pack.toml in step"
    )]
    Contended { key: String, attempts: u32 },
}

impl crate::exit::HasExitClass for ExportError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        // Met on its own only for a bad --public-url; publish and promote
        // classify the export failures they meet themselves.
        crate::exit::ExitClass::Error
    }
}

impl ExportError {
    /// The class of an export failure met while publishing or promoting:
    /// a race that never settled is a conflict, anything else a store failure.
    pub fn writer_class(&self) -> crate::exit::ExitClass {
        match self {
            Self::Contended { .. }
            | Self::PageContended { .. }
            | Self::Store(StoreError::Conflict { .. }) => crate::exit::ExitClass::Conflict,
            _ => crate::exit::ExitClass::Store,
        }
    }
}

/// Where the store is served publicly, for download URLs in exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Base URL, always ending in `/`.
    base: url::Url,
}

impl ExportOptions {
    /// Parses the public base URL (`https://cdn.example.com/prefix/`; a
    /// missing trailing `/` is added).
    pub fn new(public_url: &str) -> Result<Self, ExportError> {
        let bad = |message: &str| ExportError::Url {
            url: public_url.to_owned(),
            message: message.to_owned(),
        };
        let mut base = url::Url::parse(public_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("only http and https URLs can be downloaded by launchers"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self { base })
    }

    /// The public URL of a store key.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}{key}", self.base)
    }

    /// The public URL of a blob.
    pub fn blob_url(&self, digest: &Sha256Digest) -> String {
        self.url_of(&atlas_proto::layout::blob_key(digest))
    }
}

/// What the exports of a publish or promote did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExportReport {
    /// Store key of the build's .mrpack.
    pub mrpack: Option<String>,
    /// True when the .mrpack was written now (false: the store had it).
    pub mrpack_new: bool,
    /// Store key of the build's packwiz pack file in the channel's folder
    /// (`.../packwiz/pack-<sha256>.toml`), which the pointer names.
    pub packwiz: Option<String>,
    /// Immutable packwiz files written now (those the folder had are not).
    pub packwiz_written: usize,
    /// Store key of the channel's instance archive (Prism Launcher, MultiMC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What became of the channel's `pack.toml` after the pointer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packwiz_channel: Option<ChannelPackStatus>,
    /// Files left out of the exports, with the reason.
    pub skipped: Vec<String>,
}

impl ExportReport {
    /// The keys the channel pointer names.
    pub fn exports(&self) -> Exports {
        Exports {
            mrpack: self.mrpack.clone(),
            packwiz: self.packwiz.clone(),
            instance: self.instance.clone(),
        }
    }
}

/// What became of a channel's packwiz `pack.toml` after the pointer
/// ([`packwiz::update_channel_pack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelPackStatus {
    /// Replaced with the pack file this writer's pointer names.
    Written,
    /// It already had those bytes.
    Unchanged,
    /// The channel's pointer names another pack file now (a newer publish
    /// or promote): left to that writer.
    Superseded,
}

/// Reads a blob's bytes from where the plan found them: a file streamed from
/// disk, or a git object (small repository files).
pub(crate) enum BlobReader {
    File(std::fs::File, PathBuf),
    Bytes(std::io::Cursor<Vec<u8>>),
}

impl BlobReader {
    pub(crate) fn open(source: &PackSource, content: &Content) -> Result<Self, ExportError> {
        match content {
            Content::Disk(p) | Content::Cached(p) => std::fs::File::open(p)
                .map(|f| Self::File(f, p.clone()))
                .map_err(|source| ExportError::Io {
                    what: format!("reading {}", p.display()),
                    source,
                }),
            c @ Content::Git(_) => Ok(Self::Bytes(std::io::Cursor::new(source.read_content(c)?))),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Self::File(_, p) => p.display().to_string(),
            Self::Bytes(_) => "a git object".to_owned(),
        }
    }
}

impl std::io::Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::File(f, _) => f.read(buf),
            Self::Bytes(c) => c.read(buf),
        }
    }
}

/// SHA-1 and SHA-512 of a blob, in one streaming pass.
pub(crate) fn sha1_sha512(
    source: &PackSource,
    content: &Content,
) -> Result<(UpstreamHash, UpstreamHash), ExportError> {
    let reader = BlobReader::open(source, content)?;
    let what = format!("hashing {}", reader.describe());
    let mut hashes = atlas_proto::upstream::hash_reader(&[HashFormat::Sha1, HashFormat::Sha512], reader)
        .map_err(|source| ExportError::Io { what, source })?
        .into_iter();
    let mut next = || {
        hashes
            .next()
            .expect("hash_reader returns one hash per format asked")
    };
    Ok((next(), next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls() {
        let o = ExportOptions::new("https://cdn.example.com/atlas").expect("valid");
        assert_eq!(o.url_of("a/b"), "https://cdn.example.com/atlas/a/b");
        let o = ExportOptions::new("http://127.0.0.1:8080/").expect("valid");
        assert_eq!(o.url_of("x"), "http://127.0.0.1:8080/x");
        for bad in ["ftp://x/", "not a url", "https://x/?a=b", "file:///tmp/store"] {
            assert!(ExportOptions::new(bad).is_err(), "{bad}");
        }
    }
}
