//! The object classes of docs/FORMAT.md §1, the headers each is served
//! with, and a check that FORMAT.md's own text says so.

use std::path::Path;

/// Object classes of docs/FORMAT.md §1, plus what the server must not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Class {
    Pointer,
    Keyset,
    Manifest,
    Blob,
    Mrpack,
    /// A channel's packwiz `pack.toml`: the one mutable packwiz object.
    PackwizEntry,
    /// A build's packwiz pack file, index or metafile, named by its hash.
    PackwizImmutable,
    /// A pointer envelope kept in the channel's history.
    History,
    Page,
    /// A channel's instance archive (format 1.3).
    Instance,
    /// The store's index of packs, `index.html` at the root (format 1.3).
    StoreIndex,
    /// The writer's lock, temporary files: 404.
    Hidden,
}

impl Class {
    /// The class of a store key, per docs/FORMAT.md §1.
    pub(super) fn of(key: &str) -> Self {
        let parts: Vec<&str> = key.split('/').collect();
        let hex64 = |s: &str| {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if parts.iter().any(|p| p.starts_with('.')) {
            return Class::Hidden;
        }
        match parts.as_slice() {
            ["blobs", "sha256", pre, h] if hex64(h) && h.starts_with(pre) && pre.len() == 2 => Class::Blob,
            ["packs", _, "channels", c] if c.ends_with(".json") => Class::Pointer,
            ["packs", _, "keys", n] if n.strip_suffix(".json").is_some_and(|n| n.parse::<u64>().is_ok()) => {
                Class::Keyset
            }
            ["packs", _, "builds", b, "manifest.pb.zst"] if hex64(b) => Class::Manifest,
            ["packs", _, "builds", b, "pack.mrpack"] if hex64(b) => Class::Mrpack,
            ["packs", _, "channels", _, "packwiz", "pack.toml"] => Class::PackwizEntry,
            ["packs", _, "channels", _, "packwiz", .., f] if packwiz_immutable(f) => Class::PackwizImmutable,
            ["packs", _, "channels", _, "history", v]
                if v.strip_suffix(".json").is_some_and(|n| n.parse::<u64>().is_ok()) =>
            {
                Class::History
            }
            ["packs", _, "instances", h, f] if hex64(h) && f.ends_with(".zip") => Class::Instance,
            ["index.html"] => Class::StoreIndex,
            ["packs", _, .., f] if f.ends_with(".html") => Class::Page,
            _ => panic!(
                "`{key}` is in the store but in no object class of docs/FORMAT.md §1: document it \
                 there, give it its headers in examples/serve/ and docs/SERVING.md, and add it here"
            ),
        }
    }

    /// (Content-Type, Cache-Control) as docs/FORMAT.md §1 says.
    pub(super) fn expected(self) -> Option<(&'static str, &'static str)> {
        use atlas_proto::layout::*;
        Some(match self {
            Class::Pointer => (CONTENT_TYPE_POINTER, CACHE_POINTER),
            Class::Keyset => (CONTENT_TYPE_POINTER, CACHE_KEYSET),
            Class::Manifest => (CONTENT_TYPE_MANIFEST, CACHE_IMMUTABLE),
            Class::Blob => (CONTENT_TYPE_BLOB, CACHE_IMMUTABLE),
            Class::Mrpack => (CONTENT_TYPE_MRPACK, CACHE_IMMUTABLE),
            Class::PackwizEntry => (CONTENT_TYPE_TOML, CACHE_POINTER),
            Class::PackwizImmutable => (CONTENT_TYPE_TOML, CACHE_IMMUTABLE),
            Class::History => (CONTENT_TYPE_POINTER, CACHE_IMMUTABLE),
            Class::Page | Class::StoreIndex => (CONTENT_TYPE_HTML, CACHE_PAGE),
            Class::Instance => (CONTENT_TYPE_ZIP, CACHE_IMMUTABLE),
            Class::Hidden => return None,
        })
    }
}

/// The immutable file names of a channel's packwiz folder (docs/FORMAT.md
/// §7): `pack-<sha256>.toml`, `index-<sha256>.toml`, `<name>.<16 hex>.pw.toml`.
fn packwiz_immutable(name: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if let Some(h) = name
        .strip_prefix("pack-")
        .or_else(|| name.strip_prefix("index-"))
        .and_then(|r| r.strip_suffix(".toml"))
    {
        return hex(h, 64);
    }
    name.strip_suffix(".pw.toml")
        .and_then(|r| r.rsplit_once('.'))
        .is_some_and(|(stem, h)| !stem.is_empty() && hex(h, 16))
}

/// Every file under `root`, as store keys.
pub(super) fn store_keys(root: &Path) -> Vec<String> {
    atlas_testkit::fs::snapshot(root)
        .into_iter()
        .filter(|(_, e)| !e.dir)
        .map(|(p, _)| p.to_string_lossy().replace('\\', "/"))
        .collect()
}

/// The first cell of each class's row in docs/FORMAT.md §1's layout table,
/// and how the "Content types:" sentence below it names the class.
const FORMAT_MD_ROWS: [(Class, &str, &str); 11] = [
    (
        Class::Pointer,
        "`packs/<pack>/channels/<channel>.json`",
        "pointer",
    ),
    (Class::Keyset, "`packs/<pack>/keys/<N>.json`", "keyset"),
    (
        Class::Manifest,
        "`packs/<pack>/builds/<build-id>/manifest.pb.zst`",
        "manifest",
    ),
    (Class::Blob, "`blobs/sha256/<h[0..2]>/<h>`", "blob"),
    (
        Class::Mrpack,
        "`packs/<pack>/builds/<build-id>/pack.mrpack`",
        "`.mrpack`",
    ),
    (
        Class::History,
        "`packs/<pack>/channels/<channel>/history/<version>.json`",
        "history entries",
    ),
    (
        Class::PackwizEntry,
        "`packs/<pack>/channels/<channel>/packwiz/pack.toml`",
        "packwiz files",
    ),
    (
        Class::PackwizImmutable,
        "`packs/<pack>/channels/<channel>/packwiz/pack-<sha256>.toml`, `index-<sha256>.toml`, `…/<name>.<16 hex>.pw.toml`",
        "packwiz files",
    ),
    (
        Class::Instance,
        "`packs/<pack>/instances/<sha256>/<pack>-<channel>.zip`",
        "instance archive",
    ),
    (Class::Page, "`packs/<pack>/index.html`", "pages"),
    (Class::StoreIndex, "`index.html`", "pages"),
];

/// The headers [`Class::expected`] holds a server to are the ones
/// docs/FORMAT.md §1 states: its table's Cache-Control column and its
/// "Content types:" sentence.
pub(super) fn check_format_md(format_md: &Path) {
    let text = std::fs::read_to_string(format_md).expect("read docs/FORMAT.md");
    let section = text
        .split("\n## 1. Layout")
        .nth(1)
        .and_then(|s| s.split("\n## 2.").next())
        .expect("docs/FORMAT.md has a section `## 1. Layout`");
    let prose = section.split_whitespace().collect::<Vec<_>>().join(" ");
    for (class, key, name) in FORMAT_MD_ROWS {
        let (content_type, cache_control) = class.expected().expect("a served class");
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| {key} |")))
            .unwrap_or_else(|| panic!("docs/FORMAT.md §1 has no row for {key}"));
        assert!(
            row.trim_end().ends_with(&format!("| `{cache_control}` |")),
            "docs/FORMAT.md §1 row {key}: the Cache-Control column is not `{cache_control}`: {row}"
        );
        let said = format!("{name} `{content_type}`");
        assert!(
            prose.contains(&said),
            "docs/FORMAT.md §1 does not say the Content-Type of {class:?}: `{said}`"
        );
    }
}
