//! Writing the pack page and the store index into a store, after the
//! pointer, the way every mutable per-pack object is written: read the
//! page (and its entity tag) first, then read and verify every channel's
//! pointer, render from those, and replace the page only if it did not
//! change meanwhile (compare-and-swap); on a lost race, start over from a
//! fresh read. So a page only ever shows builds that pointers named, and
//! a page made from older pointer reads never replaces one made from newer
//! ones (the `atlas-pointers` versions on successive pages never decrease).
//!
//! Channels of a pack are found from the page itself (its `atlas-pointers`
//! list, carried forward by every writer) plus the writer's own channel;
//! packs of the store from the index's `atlas-packs` list plus the writer's
//! pack. Each pack page carries its own index row (`atlas-index`, JSON), so
//! the index never needs another pack's keys or manifests.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use atlas_proto::pointer::{Expectation, SignedPointer};
use atlas_proto::{Limits, PublicKey, layout};

use super::model::{self, ChannelData, IndexRow, PageInput, PageTrust};
use crate::builds;
use crate::export::{ExportError, ExportOptions};
use crate::store::{Expected, ObjectMeta, Store, StoreError};

/// Tries of one compare-and-swap loop before giving up.
pub const PAGE_ATTEMPTS: u32 = 16;

const PAGE_META: ObjectMeta = ObjectMeta {
    content_type: layout::CONTENT_TYPE_HTML,
    cache_control: layout::CACHE_PAGE,
};

/// What became of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PageStatus {
    Written,
    /// The store had these exact bytes.
    Unchanged,
}

/// What [`write_pages`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageReport {
    /// Store key of the pack page.
    pub page: String,
    pub page_status: PageStatus,
    /// `dev=12 production=7`: the pointer versions the page shows.
    pub pointers: String,
    pub index_status: PageStatus,
    /// Channels left out of the page, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

/// Whom the page trusts to have signed a channel's pointer.
#[derive(Debug, Clone)]
pub struct PageKeys {
    pub keys: Vec<PublicKey>,
    pub threshold: usize,
    /// The pack has a keyset chain (hosts use `--root`).
    pub root: bool,
    /// The key texts hosts configure with `--key` (when `root` is false).
    pub texts: Vec<String>,
}

impl PageKeys {
    /// The pointer keys of the pack's newest keyset in the store, else `signer`.
    pub async fn for_pack(store: &dyn Store, pack: &str, signer: &PublicKey) -> Result<Self, ExportError> {
        match crate::keyset::store_keyset(store, pack)
            .await
            .map_err(|e| ExportError::Page {
                key: layout::pack_page_key(pack),
                message: format!(
                    "the pack's keyset cannot be read ({e}), so no pointer can be checked for the page; the pointer is written: repair the keyset, then run `atlas-builder page`"
                ),
            })? {
            Some(ks) => Ok(Self {
                keys: ks.pointer_keys(),
                threshold: ks.pointer_threshold(),
                root: true,
                texts: Vec::new(),
            }),
            None => Ok(Self {
                keys: vec![signer.clone()],
                threshold: 1,
                root: false,
                texts: vec![signer.to_text()],
            }),
        }
    }
}

/// The `content` of `<meta name="NAME" content="...">` in a page Atlas wrote,
/// with askama's escapes undone.
pub fn meta(html: &str, name: &str) -> Option<String> {
    let start = format!("<meta name=\"{name}\" content=\"");
    let rest = &html[html.find(&start)? + start.len()..];
    let raw = &rest[..rest.find('"')?];
    Some(unescape(raw))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 8) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `dev=12 production=7` as pairs.
pub fn pointer_versions(text: &str) -> Vec<(String, u64)> {
    text.split_whitespace()
        .filter_map(|p| p.split_once('='))
        .filter_map(|(c, v)| Some((c.to_owned(), v.parse().ok()?)))
        .collect()
}

/// The row a pack page carries for the store index.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RowJson {
    pack: String,
    name: String,
    description: String,
    minecraft: String,
    loader: String,
    channels: String,
}

impl From<&IndexRow> for RowJson {
    fn from(r: &IndexRow) -> Self {
        Self {
            pack: r.pack.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            minecraft: r.minecraft.clone(),
            loader: r.loader.clone(),
            channels: r.channels.clone(),
        }
    }
}

impl From<RowJson> for IndexRow {
    fn from(r: RowJson) -> Self {
        Self {
            href: layout::pack_page_key(&r.pack),
            pack: r.pack,
            name: r.name,
            description: r.description,
            minecraft: r.minecraft,
            loader: r.loader,
            channels: r.channels,
        }
    }
}

/// The JSON of a pack's index row, for its page's `atlas-index` meta.
pub fn index_json(row: &IndexRow) -> String {
    serde_json::to_string(&RowJson::from(row)).expect("strings always serialise")
}

/// 10 ms doubling to about 1 s, with jitter so racing writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.min(7);
    let mut r = [0u8; 2];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) => u64::from(u16::from_le_bytes(r)) % base.max(1),
        Err(_) => 0,
    };
    Duration::from_millis(base / 2 + jitter)
}

/// One channel read from the store and verified; `Err` says why it is left out.
async fn read_channel(
    store: &dyn Store,
    pack: &str,
    channel: &str,
    keys: &PageKeys,
) -> Result<Option<(ChannelData, Vec<String>)>, String> {
    let key = layout::pointer_key(pack, channel);
    let obj = match store.get(&key, Limits::DEFAULT.pointer_bytes).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    // Expiry does not matter on a page (it shows the date); the signature does.
    let expect = Expectation {
        pack,
        channel,
        now: 0,
        last: None,
    };
    let verified = SignedPointer::parse(&obj.bytes)
        .and_then(|p| p.verify(&keys.keys, keys.threshold, &expect))
        .map_err(|e| format!("channel `{channel}`: its pointer does not verify ({e})"))?;
    let bytes = builds::manifest_bytes(store, pack, &verified.build)
        .await
        .map_err(|e| format!("channel `{channel}`: {e}"))?;
    let manifest = atlas_proto::manifest::decode(&bytes, &Limits::DEFAULT.manifest)
        .map_err(|e| format!("channel `{channel}`: manifest {}: {e}", verified.build))?;
    let history = read_history(store, pack, channel, keys, &verified.payload, &manifest).await;
    let mrpack_size = object_size(store, verified.payload.exports.mrpack.as_deref()).await;
    let instance_size = object_size(store, verified.payload.exports.instance.as_deref()).await;
    Ok(Some((
        ChannelData {
            pointer: verified.payload,
            manifest,
            history,
            mrpack_size,
            instance_size,
        },
        verified.signers,
    )))
}

/// The size of a stored object from a listing (the page shows it beside
/// the download); `None` when it cannot be listed.
async fn object_size(store: &dyn Store, key: Option<&str>) -> Option<u64> {
    let key = key?;
    store
        .list(key)
        .await
        .ok()?
        .into_iter()
        .find(|l| l.key == key)
        .map(|l| l.size)
}

/// History entries read for one channel's changelog at most (re-signs of
/// one build make many entries per build).
const HISTORY_READS: usize = 256;

/// The channel's earlier pointer versions (docs/FORMAT.md §3), oldest
/// first, each verified like the current one, with the manifest of the
/// build it names when that can still be read: enough of them, newest
/// first, for the changelog's [`model::CHANGELOG_ENTRIES`] transitions.
/// An entry that is missing, unreadable or not signed by the pack's pointer
/// keys is left out (the changelog then shows fewer or coarser changes).
async fn read_history(
    store: &dyn Store,
    pack: &str,
    channel: &str,
    keys: &PageKeys,
    current: &atlas_proto::pointer::PointerPayload,
    current_manifest: &atlas_proto::v1::Manifest,
) -> Vec<(
    atlas_proto::pointer::PointerPayload,
    Option<atlas_proto::v1::Manifest>,
)> {
    let prefix = layout::history_prefix(pack, channel);
    let listed = match store.list(&prefix).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("page of `{pack}`: listing the history of channel `{channel}`: {e}");
            return Vec::new();
        }
    };
    let mut versions: Vec<u64> = listed
        .iter()
        .filter_map(|l| l.key.strip_prefix(&prefix)?.strip_suffix(".json")?.parse().ok())
        .filter(|v| *v < current.version)
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let mut builds: Vec<String> = vec![current.build.clone()];
    let mut manifests: std::collections::HashMap<String, Option<atlas_proto::v1::Manifest>> =
        std::collections::HashMap::from([(current.build.clone(), Some(current_manifest.clone()))]);
    let mut out = Vec::new();
    for v in versions.into_iter().take(HISTORY_READS) {
        let key = layout::history_key(pack, channel, v);
        let Ok(Some(obj)) = store.get(&key, Limits::DEFAULT.pointer_bytes).await else {
            continue;
        };
        let expect = Expectation {
            pack,
            channel,
            now: 0,
            last: None,
        };
        let verified = match SignedPointer::parse(&obj.bytes)
            .and_then(|p| p.verify(&keys.keys, keys.threshold, &expect))
        {
            Ok(p) if p.payload.version == v => p,
            Ok(_) => {
                tracing::warn!("page of `{pack}`: `{key}` holds another version; left out");
                continue;
            }
            Err(e) => {
                tracing::warn!("page of `{pack}`: `{key}` does not verify ({e}); left out");
                continue;
            }
        };
        let build = verified.payload.build.clone();
        if !builds.contains(&build) {
            if builds.len() > model::CHANGELOG_ENTRIES {
                break;
            }
            builds.push(build.clone());
        }
        if !manifests.contains_key(&build) {
            let m = match builds::manifest_bytes(store, pack, &verified.build).await {
                Ok(bytes) => atlas_proto::manifest::decode(&bytes, &Limits::DEFAULT.manifest).ok(),
                Err(_) => None,
            };
            manifests.insert(build.clone(), m);
        }
        out.push((verified.payload, manifests.get(&build).cloned().flatten()));
    }
    out.reverse();
    out
}

/// Replaces `key` with what `render` makes of its current bytes, by
/// compare-and-swap, reading again after a lost race.
async fn cas_loop<T, F, Fut>(store: &dyn Store, key: &str, render: F) -> Result<(PageStatus, T), ExportError>
where
    F: Fn(Option<Bytes>) -> Fut,
    Fut: Future<Output = Result<(Vec<u8>, T), ExportError>>,
{
    for attempt in 1..=PAGE_ATTEMPTS {
        let current = store.get(key, Limits::DEFAULT.export_object_bytes).await?;
        let (old, expected) = match current {
            Some(o) => (Some(o.bytes), Expected::ETag(o.etag)),
            None => (None, Expected::Absent),
        };
        let (new, extra) = render(old.clone()).await?;
        if old.as_deref() == Some(new.as_slice()) {
            return Ok((PageStatus::Unchanged, extra));
        }
        if new.len() as u64 > Limits::DEFAULT.export_object_bytes {
            return Err(ExportError::Page {
                key: key.to_owned(),
                message: format!(
                    "the page would be {} bytes, more than the {} a page may have",
                    new.len(),
                    Limits::DEFAULT.export_object_bytes
                ),
            });
        }
        match store.put_cas(key, Bytes::from(new), expected, PAGE_META).await {
            Ok(_) => return Ok((PageStatus::Written, extra)),
            Err(StoreError::Conflict { .. }) => {
                tracing::debug!(attempt, "`{key}` changed meanwhile; reading it again");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ExportError::PageContended { key: key.to_owned() })
}

/// Renders and writes `pack`'s page and the store index (see the module
/// docs). `channel` is the one this command just wrote (it joins the page
/// even on its first publish).
pub async fn write_pages(
    store: &dyn Store,
    pack: &str,
    channel: Option<&str>,
    keys: &PageKeys,
    exports: &ExportOptions,
) -> Result<PageReport, ExportError> {
    let page_key = layout::pack_page_key(pack);
    let icon = Some(crate::export::instance::publish_icon(store).await?);
    let written = cas_loop(store, &page_key, |old| {
        let old_text = old.map(|b| String::from_utf8_lossy(&b).into_owned());
        let icon = icon.clone();
        async move { render_page(store, pack, channel, keys, exports, old_text.as_deref(), icon).await }
    })
    .await;
    let (page_status, (shown, left_out, row)) = match written {
        Ok(w) => w,
        Err(ExportError::PageContended { key }) => {
            // Others kept rewriting it: fine if the page now shows at least
            // the pointer versions this writer read.
            let (_, (shown, left_out, row)) =
                render_page(store, pack, channel, keys, exports, None, icon.clone()).await?;
            let now = store.get(&key, Limits::DEFAULT.export_object_bytes).await?;
            let covered = now
                .as_ref()
                .and_then(|o| meta(&String::from_utf8_lossy(&o.bytes), "atlas-pointers"))
                .is_some_and(|m| {
                    let theirs = pointer_versions(&m);
                    pointer_versions(&shown)
                        .iter()
                        .all(|(c, v)| theirs.iter().any(|(tc, tv)| tc == c && tv >= v))
                });
            if !covered {
                return Err(ExportError::PageContended { key });
            }
            (PageStatus::Unchanged, (shown, left_out, row))
        }
        Err(e) => return Err(e),
    };
    let (index_status, ()) = write_index(store, &row, icon.as_deref()).await?;
    Ok(PageReport {
        page: page_key,
        page_status,
        pointers: shown,
        index_status,
        left_out,
    })
}

/// The page made from the channels `old` lists plus `channel` (without one:
/// plus every channel with a pointer), read now;
/// with the pointer versions shown, the channels left out and the index row.
async fn render_page(
    store: &dyn Store,
    pack: &str,
    channel: Option<&str>,
    keys: &PageKeys,
    exports: &ExportOptions,
    old: Option<&str>,
    icon: Option<String>,
) -> Result<(Vec<u8>, (String, Vec<String>, IndexRow)), ExportError> {
    let mut names: Vec<String> = old
        .and_then(|h| meta(h, "atlas-pointers"))
        .map(|m| pointer_versions(&m).into_iter().map(|(c, _)| c).collect())
        .unwrap_or_default();
    match channel {
        Some(c) => names.push(c.to_owned()),
        // `page` and `resign`: every channel with a pointer in the store
        // (a page lost or never written is made whole again).
        None => {
            let prefix = format!("packs/{pack}/channels/");
            for l in store.list(&prefix).await? {
                if let Some(c) = l.key.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".json"))
                    && !c.contains('/')
                {
                    names.push(c.to_owned());
                }
            }
        }
    }
    names.retain(|c| layout::validate_channel(c).is_ok());
    names.sort_by_key(|c| model::channel_order(c));
    names.dedup();
    let mut channels = Vec::new();
    let mut signers = Vec::new();
    let mut notices = Vec::new();
    let mut left_out = Vec::new();
    for c in &names {
        match read_channel(store, pack, c, keys).await {
            Ok(Some((data, s))) => {
                channels.push(data);
                signers.push(s);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!("page of `{pack}`: {why}; left out");
                notices.push(format!(
                    "Channel {c} is not shown: its current pointer could not be verified."
                ));
                left_out.push(why);
            }
        }
    }
    let input = PageInput {
        pack: pack.to_owned(),
        channels,
        public_url: exports.url_of(""),
        trust: if keys.root {
            PageTrust::Root
        } else {
            PageTrust::Keys(keys.texts.clone())
        },
        icon,
        notices,
    };
    let view = model::pack_page(&input, &signers);
    let row = model::index_row(&input);
    let html = super::render_pack_page_with_row(&view, &index_json(&row)).map_err(|e| ExportError::Page {
        key: layout::pack_page_key(pack),
        message: e.to_string(),
    })?;
    Ok((html.into_bytes(), (view.pointer_versions, left_out, row)))
}

/// Rewrites the store index with `row` for its pack and every other pack's
/// row read from that pack's own page.
async fn write_index(
    store: &dyn Store,
    row: &IndexRow,
    icon: Option<&str>,
) -> Result<(PageStatus, ()), ExportError> {
    cas_loop(store, layout::STORE_INDEX_KEY, |old| {
        let old_text = old.map(|b| String::from_utf8_lossy(&b).into_owned());
        async move {
            let mut packs: Vec<String> = old_text
                .as_deref()
                .and_then(|h| meta(h, "atlas-packs"))
                .map(|m| m.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            packs.push(row.pack.clone());
            packs.retain(|p| layout::validate_pack_id(p).is_ok());
            packs.sort();
            packs.dedup();
            let mut rows = Vec::new();
            for p in &packs {
                if *p == row.pack {
                    rows.push(row.clone());
                    continue;
                }
                let page = store
                    .get(&layout::pack_page_key(p), Limits::DEFAULT.export_object_bytes)
                    .await?;
                let Some(page) = page else { continue };
                let html = String::from_utf8_lossy(&page.bytes);
                match meta(&html, "atlas-index").and_then(|j| serde_json::from_str::<RowJson>(&j).ok()) {
                    Some(r) if r.pack == *p => rows.push(r.into()),
                    _ => rows.push(IndexRow {
                        pack: p.clone(),
                        name: p.clone(),
                        description: String::new(),
                        minecraft: String::new(),
                        loader: String::new(),
                        channels: String::new(),
                        href: layout::pack_page_key(p),
                    }),
                }
            }
            let html = super::render_store_index(&rows, icon).map_err(|e| ExportError::Page {
                key: layout::STORE_INDEX_KEY.to_owned(),
                message: e.to_string(),
            })?;
            Ok((html.into_bytes(), ()))
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_values_come_back_unescaped() {
        let html =
            "<meta name=\"atlas-index\" content=\"{&#34;a&#34;:&#34;&#60;b&#62; &#38; &#39;c&#39;&#34;}\">";
        assert_eq!(
            meta(html, "atlas-index").as_deref(),
            Some("{\"a\":\"<b> & 'c'\"}")
        );
        assert_eq!(unescape("a &amp; b &lt; &#x41; &bogus; &"), "a & b < A &bogus; &");
        assert_eq!(
            pointer_versions("dev=12 production=7 junk"),
            [("dev".to_owned(), 12), ("production".to_owned(), 7)]
        );
    }
}
