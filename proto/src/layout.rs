//! The static store layout (the protocol's object names) and identifier rules.
//!
//! ```text
//! packs/<pack>/channels/<channel>.json          signed pointer (mutable)
//! packs/<pack>/keys/<N>.json                     signed keyset N (immutable, optional)
//! packs/<pack>/builds/<build-id>/manifest.pb.zst build manifest (immutable)
//! blobs/sha256/<first 2 hex>/<64 hex>            file contents (immutable)
//! packs/<pack>/builds/<build-id>/pack.mrpack      Modrinth modpack export (immutable, optional)
//! packs/<pack>/channels/<channel>/history/<v>.json  pointer version v, as written (immutable, format 1.3)
//! packs/<pack>/channels/<channel>/packwiz/pack.toml the channel's packwiz entry point (mutable, optional)
//! packs/<pack>/channels/<channel>/packwiz/...     its content-addressed pack files, index and metafiles (immutable)
//! packs/<pack>/instances/<sha256>/<pack>-<ch>.zip Prism/MultiMC instance archive (immutable, optional, format 1.3)
//! packs/<pack>/index.html                        the pack's page (mutable, optional, format 1.3)
//! index.html                                     the store's list of packs (mutable, optional, format 1.3)
//! ```

use crate::digest::Sha256Digest;

/// Cache-Control for immutable objects (blobs, manifests).
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache-Control for channel pointers: short, so hosts see new builds quickly.
pub const CACHE_POINTER: &str = "public, max-age=60, must-revalidate";
/// Content-Type of a channel pointer (a DSSE envelope in JSON).
pub const CONTENT_TYPE_POINTER: &str = "application/json";
/// Cache-Control for keysets: written once, but a host must see a new one
/// (they are looked up until one is missing, and a 404 must not be cached long).
pub const CACHE_KEYSET: &str = "public, max-age=60, must-revalidate";
/// Content-Type of a manifest.
pub const CONTENT_TYPE_MANIFEST: &str = "application/vnd.atlas.manifest.v1+protobuf+zstd";
/// Content-Type of a blob.
pub const CONTENT_TYPE_BLOB: &str = "application/octet-stream";
/// Content-Type of a Modrinth modpack export.
pub const CONTENT_TYPE_MRPACK: &str = "application/x-modrinth-modpack+zip";
/// Content-Type of the packwiz export's TOML files.
pub const CONTENT_TYPE_TOML: &str = "application/toml";
/// Content-Type of an instance archive.
pub const CONTENT_TYPE_ZIP: &str = "application/zip";
/// Content-Type of a pack page and the store index.
pub const CONTENT_TYPE_HTML: &str = "text/html; charset=utf-8";
/// Cache-Control for pages: replaced with the pointers, so short-lived.
pub const CACHE_PAGE: &str = "public, max-age=60, must-revalidate";
/// Object key of the store's index page (the list of its packs).
pub const STORE_INDEX_KEY: &str = "index.html";

/// Object key of a blob.
pub fn blob_key(digest: &Sha256Digest) -> String {
    let hex = digest.to_hex();
    format!("blobs/sha256/{}/{}", &hex[..2], hex)
}

/// Object key of a build manifest.
pub fn manifest_key(pack: &str, build: &Sha256Digest) -> String {
    format!("packs/{pack}/builds/{build}/manifest.pb.zst")
}

/// Object key of a build's Modrinth modpack export.
pub fn mrpack_key(pack: &str, build: &Sha256Digest) -> String {
    format!("packs/{pack}/builds/{build}/pack.mrpack")
}

/// Folder (key prefix, ending in `/`) of a channel's packwiz export; its
/// `pack.toml` is what packwiz-installer is pointed at.
pub fn packwiz_prefix(pack: &str, channel: &str) -> String {
    format!("packs/{pack}/channels/{channel}/packwiz/")
}

/// Object key of a channel's packwiz `pack.toml`: the one mutable object of
/// the packwiz tree, a copy of the pack file the channel's pointer names.
pub fn packwiz_pack_key(pack: &str, channel: &str) -> String {
    format!("{}pack.toml", packwiz_prefix(pack, channel))
}

/// Object key of a channel's instance archive for Prism Launcher and
/// MultiMC, content-addressed by the archive's SHA-256 (the file name is
/// what the launchers suggest as the instance's name).
pub fn instance_key(pack: &str, zip_sha256: &Sha256Digest, channel: &str) -> String {
    format!("packs/{pack}/instances/{zip_sha256}/{pack}-{channel}.zip")
}

/// Object key of a pack's page.
pub fn pack_page_key(pack: &str) -> String {
    format!("packs/{pack}/index.html")
}

/// Name (in the channel's packwiz folder) of an immutable packwiz pack file
/// whose bytes hash to `sha256` (format 1.3).
pub fn packwiz_pack_file(sha256: &Sha256Digest) -> String {
    format!("pack-{sha256}.toml")
}

/// Name (in the channel's packwiz folder) of an immutable packwiz index
/// whose bytes hash to `sha256` (format 1.3).
pub fn packwiz_index_file(sha256: &Sha256Digest) -> String {
    format!("index-{sha256}.toml")
}

/// Folder (key prefix, ending in `/`) of a channel's pointer history.
pub fn history_prefix(pack: &str, channel: &str) -> String {
    format!("packs/{pack}/channels/{channel}/history/")
}

/// Object key of the pointer envelope a channel had at `version` (format 1.3).
pub fn history_key(pack: &str, channel: &str, version: u64) -> String {
    format!("{}{version}.json", history_prefix(pack, channel))
}

/// Prefix of the scratch objects a writer uses to probe whether a store
/// honours conditional writes; a leftover is garbage.
pub const PROBE_PREFIX: &str = "atlas-probe/";

/// Object key of keyset `version` (1, 2, ...) of a pack's keyset chain.
pub fn keyset_key(pack: &str, version: u64) -> String {
    format!("packs/{pack}/keys/{version}.json")
}

/// Object key of a channel pointer.
pub fn pointer_key(pack: &str, channel: &str) -> String {
    format!("packs/{pack}/channels/{channel}.json")
}

/// An identifier (pack id or channel name) that breaks the naming rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid {what} `{value}`: use 1 to 64 characters from a-z, 0-9, '-', '_' and '.', starting with a letter or digit"
)]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
}

fn validate_id(what: &'static str, value: &str) -> Result<(), IdError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(IdError {
            what,
            value: value.chars().take(80).collect(),
        })
    }
}

/// Checks a pack id: it becomes part of object keys and URLs.
pub fn validate_pack_id(id: &str) -> Result<(), IdError> {
    validate_id("pack id", id)
}

/// Checks a channel name (e.g. `dev`, `beta`, `production`).
pub fn validate_channel(name: &str) -> Result<(), IdError> {
    validate_id("channel name", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_documented_shape() {
        let d = Sha256Digest::of(b"");
        assert_eq!(
            blob_key(&d),
            "blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(pointer_key("p", "dev"), "packs/p/channels/dev.json");
        assert_eq!(keyset_key("p", 2), "packs/p/keys/2.json");
        assert!(manifest_key("p", &d).starts_with("packs/p/builds/e3b0"));
        assert!(mrpack_key("p", &d).ends_with("/pack.mrpack"));
        assert_eq!(
            packwiz_pack_key("p", "dev"),
            "packs/p/channels/dev/packwiz/pack.toml"
        );
        assert_eq!(
            instance_key("p", &d, "beta"),
            format!("packs/p/instances/{d}/p-beta.zip")
        );
        assert_eq!(pack_page_key("p"), "packs/p/index.html");
        assert_eq!(history_key("p", "dev", 7), "packs/p/channels/dev/history/7.json");
        assert_eq!(packwiz_index_file(&d), format!("index-{d}.toml"));
        assert_eq!(packwiz_pack_file(&d), format!("pack-{d}.toml"));
    }

    #[test]
    fn ids() {
        for ok in ["a", "my-pack", "pack_2.0", "0day"] {
            assert!(validate_pack_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "-x", ".x", "a/b", "a b", "..", &"x".repeat(65)] {
            assert!(validate_channel(bad).is_err(), "{bad}");
        }
    }
}
