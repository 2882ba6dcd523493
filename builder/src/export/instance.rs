//! The instance archive of a channel for Prism Launcher and MultiMC: a zip
//! those launchers import ("Add Instance" → "Import", a file or a URL) whose
//! pre-launch command keeps the instance at the channel's signed build.
//!
//! Layout (instance at the zip's root, as the launchers' own exports):
//!
//! ```text
//! instance.cfg                 InstanceType=OneSix, name, icon, PreLaunchCommand
//! mmc-pack.json                Minecraft and the loader as components
//! atlas-<pack>.png             the icon (its base name is instance.cfg's iconKey)
//! atlas/atlas-bootstrap.jar    run by the launcher's own Java before each launch
//! atlas/instance.properties    store, pack, default channel, trust anchor, fetcher pins
//! atlas/root.json              the pack's keys/1.json, when it has a keyset chain
//! atlas/README.txt             what this folder is, how to change channel
//! minecraft/                   the (empty) game directory
//! ```
//!
//! No game file and no binary: the bootstrap downloads the platform's
//! `atlas-fetcher` by the SHA-256 pinned here and runs it, and the fetcher
//! verifies the signed pointer, the manifest and every file.
//!
//! [`write_archive`] is a pure function (model → bytes) and reproducible:
//! entries sorted by name, dated 1980-01-01, fixed modes, deflate. The store
//! key names the archive by its SHA-256, so equal archives are stored once.
//!
//! The `instance.cfg` dialect: without a `ConfigVersion` key, Prism Launcher
//! (`launcher/settings/INIFile.cpp`, `parseOldFileFormat`) and MultiMC read
//! one `key=value` per line, trimmed, un-escape `\n`, `\t`, `\#` and `\\`,
//! cut a line at an unescaped `#`, and strip surrounding quotes only from a
//! value that also holds `;`, `=` or `,`. The pre-launch command below holds
//! none of those, so it reaches the launcher verbatim.

use std::io::{Cursor, Write as _};

use atlas_proto::launcher::{MINECRAFT_UID, loader_component_version, loader_uid};
use atlas_proto::layout;
use atlas_proto::tools::ToolRelease;
use atlas_proto::v1::{LoaderKind, Manifest};

use super::player_tools::PlayerTools;
use super::{ExportError, ExportOptions};
use crate::store::{Body, ObjectMeta, PutOutcome, Store};

/// The archive entry of the bootstrap jar.
pub const BOOTSTRAP_ENTRY: &str = "atlas/atlas-bootstrap.jar";
/// The archive entry of the bootstrap's settings.
pub const PROPERTIES_ENTRY: &str = "atlas/instance.properties";
/// The archive entry of the pack's root of trust (keyset chain packs).
pub const ROOT_ENTRY: &str = "atlas/root.json";

/// The pre-launch command: one string for every OS and both launchers, no
/// shell. Prism splits it (`QProcess::splitCommand`: whitespace separates,
/// `"` quotes) and then replaces `$INST_JAVA` and `$INST_DIR` in each
/// argument; MultiMC replaces first, then splits, so the quotes keep a path
/// with spaces in one argument.
pub const PRE_LAUNCH_COMMAND: &str = r#""$INST_JAVA" -jar "$INST_DIR/atlas/atlas-bootstrap.jar""#;

/// The icon used when the pack has none: Atlas's globe (128×128 PNG).
pub const DEFAULT_ICON: &[u8] = include_bytes!("../../assets/atlas-icon.png");

/// Whom the instance trusts to sign the channel's pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustAnchor {
    /// Public key texts (`ed25519:<base64>`), any one valid signature suffices.
    Keys(Vec<String>),
    /// The pack's root of trust: the bytes of `packs/<pack>/keys/1.json`.
    Root(Vec<u8>),
}

impl TrustAnchor {
    /// What the page shows hosts: `--key 'ed25519:…'` or `--root keys-1.json`.
    pub fn is_root(&self) -> bool {
        matches!(self, Self::Root(_))
    }
}

/// Everything one channel's archive holds.
#[derive(Debug, Clone)]
pub struct InstanceModel<'a> {
    pub pack: &'a str,
    /// The pack's display name.
    pub name: &'a str,
    /// The channel the instance follows unless the player picks another.
    pub channel: &'a str,
    pub minecraft: &'a str,
    pub loader: LoaderKind,
    /// Loader version as the manifest records it (empty for vanilla).
    pub loader_version: &'a str,
    /// The store's public base URL, ending in `/`.
    pub store_url: &'a str,
    /// The public URL of the pack's page.
    pub page_url: &'a str,
    pub trust: &'a TrustAnchor,
    /// The fetcher the bootstrap may run, pinned per platform.
    pub fetcher: &'a ToolRelease,
    pub bootstrap_jar: &'a [u8],
    /// PNG bytes of the icon.
    pub icon_png: &'a [u8],
}

/// The icon key (and the icon file's base name): `atlas-<pack>`.
pub fn icon_key(pack: &str) -> String {
    format!("atlas-{pack}")
}

/// Escapes a value for `instance.cfg` (old INI dialect, see the module
/// docs): `\`, newlines, tabs and `#` are escaped; other control
/// characters are dropped.
fn ini_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '#' => out.push_str("\\#"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The instance's display name: `<pack name> (<channel>)`, on one line and
/// without the double quotes the launchers' parsers could strip.
pub fn instance_name(name: &str, channel: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| *c != '"')
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = name.trim();
    let name = if name.is_empty() { "Atlas pack" } else { name };
    format!("{name} ({channel})")
}

/// The key id of the anchor's keys, for the notes (first key, or the root file's hash).
fn anchor_summary(trust: &TrustAnchor) -> String {
    match trust {
        TrustAnchor::Keys(keys) => keys
            .iter()
            .filter_map(|k| atlas_proto::PublicKey::parse(k).ok())
            .map(|k| format!("key id {}", k.key_id()))
            .collect::<Vec<_>>()
            .join(", "),
        TrustAnchor::Root(bytes) => format!(
            "root of trust keys/1.json, sha256 {}",
            atlas_proto::Sha256Digest::of(bytes)
        ),
    }
}

/// `instance.cfg`.
pub fn instance_cfg(m: &InstanceModel<'_>) -> String {
    let notes = format!(
        "Kept current by Atlas: before every launch, the pre-launch command installs the build \
         channel {channel} of {pack} points to (signed, verified, delta).\n\
         Pack page: {page}\n\
         Trusted: {anchor}\n\
         To follow another channel, write its name into atlas/channel in this instance's folder.",
        channel = m.channel,
        pack = m.pack,
        page = m.page_url,
        anchor = anchor_summary(m.trust),
    );
    let lines = [
        ("InstanceType", "OneSix".to_owned()),
        ("name", instance_name(m.name, m.channel)),
        ("iconKey", icon_key(m.pack)),
        ("OverrideCommands", "true".to_owned()),
        ("PreLaunchCommand", PRE_LAUNCH_COMMAND.to_owned()),
        ("notes", notes),
    ];
    lines
        .iter()
        .map(|(k, v)| format!("{k}={}\n", ini_escape(v)))
        .collect()
}

/// `mmc-pack.json`: Minecraft (important) and the loader, uid and version
/// only, as packwiz-installer writes them; the launcher adds the rest
/// (LWJGL, intermediary mappings) as dependencies.
pub fn mmc_pack_json(minecraft: &str, loader: LoaderKind, loader_version: &str) -> String {
    let mut components = vec![serde_json::json!({
        "uid": MINECRAFT_UID, "version": minecraft, "important": true,
    })];
    if let Some(uid) = loader_uid(loader) {
        components.push(serde_json::json!({
            "uid": uid,
            "version": loader_component_version(loader, loader_version, minecraft),
        }));
    }
    let doc = serde_json::json!({ "components": components, "formatVersion": 1 });
    let mut s = serde_json::to_string_pretty(&doc).expect("a JSON value always serialises");
    s.push('\n');
    s
}

/// Escapes a Java `.properties` value (read by `Properties.load`, ISO-8859-1):
/// `\` doubled, anything outside printable ASCII as `\uXXXX`, a leading space escaped.
fn properties_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' if i == 0 => out.push_str("\\ "),
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// `atlas/instance.properties`: what the bootstrap needs, and nothing it
/// would have to trust the network for.
pub fn instance_properties(m: &InstanceModel<'_>) -> String {
    let mut lines: Vec<(String, String)> = vec![
        ("format".into(), "1".into()),
        ("store".into(), m.store_url.into()),
        ("pack".into(), m.pack.into()),
        ("channel".into(), m.channel.into()),
        ("page".into(), m.page_url.into()),
    ];
    match m.trust {
        TrustAnchor::Keys(keys) => lines.push(("key".into(), keys.join(","))),
        TrustAnchor::Root(_) => lines.push(("root".into(), "root.json".into())),
    }
    lines.push(("fetcher.version".into(), m.fetcher.version.clone()));
    for (target, pin) in &m.fetcher.targets {
        lines.push((format!("fetcher.{target}.sha256"), pin.sha256.clone()));
        lines.push((format!("fetcher.{target}.size"), pin.size.to_string()));
    }
    let mut s = String::from(
        "# Atlas instance settings, written by atlas-builder and read by\n\
         # atlas-bootstrap.jar before every launch (see README.txt beside it).\n\
         # Pins: the bootstrap runs only an atlas-fetcher with one of these SHA-256.\n",
    );
    for (k, v) in lines {
        s.push_str(&format!("{k}={}\n", properties_escape(&v)));
    }
    s
}

/// `atlas/README.txt`, for the player who opens the folder.
pub fn readme(m: &InstanceModel<'_>) -> String {
    format!(
        "This folder keeps the instance at the build the pack's creator signed.\n\
         \n\
         Before every launch, Prism Launcher or MultiMC runs the instance's pre-launch command\n\
         (Edit > Settings > Custom commands):\n\
         \n\
         \x20   {cmd}\n\
         \n\
         atlas-bootstrap.jar runs the atlas-fetcher for this computer (downloaded once, checked\n\
         against the SHA-256 in instance.properties before it runs, cached in your user cache\n\
         folder). The fetcher checks the creator's signature, then installs only what changed into\n\
         the minecraft folder, all at once or not at all. Offline, the game starts with the build\n\
         you have.\n\
         \n\
         Channel: the instance follows `{channel}`. To follow another (e.g. beta), write its name\n\
         into a file named `channel` in this folder, or run from the instance folder:\n\
         \n\
         \x20   java -jar atlas/atlas-bootstrap.jar channel beta\n\
         \n\
         Delete the file to go back to `{channel}`. The pack's page lists its channels:\n\
         {page}\n",
        cmd = PRE_LAUNCH_COMMAND,
        channel = m.channel,
        page = m.page_url,
    )
}

fn options(mode: u32) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(mode)
}

/// The archive's entries, sorted by name (`None`: a directory).
fn entries(m: &InstanceModel<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    let mut e: Vec<(String, Option<Vec<u8>>)> = vec![
        ("instance.cfg".into(), Some(instance_cfg(m).into_bytes())),
        (
            "mmc-pack.json".into(),
            Some(mmc_pack_json(m.minecraft, m.loader, m.loader_version).into_bytes()),
        ),
        (format!("{}.png", icon_key(m.pack)), Some(m.icon_png.to_vec())),
        ("atlas/".into(), None),
        (BOOTSTRAP_ENTRY.into(), Some(m.bootstrap_jar.to_vec())),
        (PROPERTIES_ENTRY.into(), Some(instance_properties(m).into_bytes())),
        ("atlas/README.txt".into(), Some(readme(m).into_bytes())),
        ("minecraft/".into(), None),
    ];
    if let TrustAnchor::Root(bytes) = m.trust {
        e.push((ROOT_ENTRY.into(), Some(bytes.clone())));
    }
    e.sort_by(|a, b| a.0.cmp(&b.0));
    e
}

/// Writes the archive (see the module docs); the same model always gives
/// the same bytes.
pub fn write_archive(m: &InstanceModel<'_>) -> Result<Vec<u8>, ExportError> {
    let err = |e: &dyn std::fmt::Display| ExportError::Zip(format!("the instance archive: {e}"));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries(m) {
        match bytes {
            None => zip.add_directory(name, options(0o755)).map_err(|e| err(&e))?,
            Some(b) => {
                zip.start_file(name, options(0o644)).map_err(|e| err(&e))?;
                zip.write_all(&b).map_err(|e| err(&e))?;
            }
        }
    }
    let cursor = zip.finish().map_err(|e| err(&e))?;
    Ok(cursor.into_inner())
}

/// Checks that `bytes` are a PNG (by its signature), for a pack's icon.
pub fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// Whom a channel's instances trust: the pack's root of trust when it
/// publishes a keyset chain (`packs/<pack>/keys/1.json`), else the key that
/// signs this pointer.
pub async fn trust_anchor(
    store: &dyn Store,
    pack: &str,
    signer: &atlas_proto::PublicKey,
) -> Result<TrustAnchor, ExportError> {
    let key = layout::keyset_key(pack, 1);
    Ok(
        match store.get(&key, atlas_proto::Limits::DEFAULT.keyset_bytes).await? {
            Some(obj) => TrustAnchor::Root(obj.bytes.to_vec()),
            None => TrustAnchor::Keys(vec![signer.to_text()]),
        },
    )
}

/// What a channel's archive is made from, besides the build.
#[derive(Debug, Clone)]
pub struct InstanceSource<'a> {
    pub tools: &'a PlayerTools,
    pub trust: TrustAnchor,
    pub exports: &'a ExportOptions,
}

/// A written (or found) archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedInstance {
    /// Its store key, which the pointer names.
    pub key: String,
    pub size: u64,
    /// False when the store had it already.
    pub new: bool,
}

/// Writes `channel`'s archive for the build `m` (immutable and
/// content-addressed, so an identical archive is stored once), and the icon
/// as a blob for the pack's page. Call before the pointer that names it.
pub async fn publish_instance(
    store: &dyn Store,
    m: &Manifest,
    channel: &str,
    src: &InstanceSource<'_>,
) -> Result<PublishedInstance, ExportError> {
    let pack = m.pack_id.as_str();
    let loader = m.loader.as_ref();
    let page_url = src.exports.url_of(&layout::pack_page_key(pack));
    let model = InstanceModel {
        pack,
        name: &m.name,
        channel,
        minecraft: &m.minecraft_version,
        loader: loader
            .and_then(|l| LoaderKind::try_from(l.kind).ok())
            .unwrap_or(LoaderKind::Vanilla),
        loader_version: loader.map(|l| l.version.as_str()).unwrap_or_default(),
        store_url: &src.exports.url_of(""),
        page_url: &page_url,
        trust: &src.trust,
        fetcher: &src.tools.release,
        bootstrap_jar: &src.tools.jar,
        icon_png: DEFAULT_ICON,
    };
    let bytes = write_archive(&model)?;
    let size = bytes.len() as u64;
    let key = layout::instance_key(pack, &atlas_proto::Sha256Digest::of(&bytes), channel);
    let meta = ObjectMeta {
        content_type: layout::CONTENT_TYPE_ZIP,
        cache_control: layout::CACHE_IMMUTABLE,
    };
    let outcome = store
        .put_immutable(&key, Body::Bytes(bytes::Bytes::from(bytes)), meta)
        .await?;
    publish_icon(store).await?;
    Ok(PublishedInstance {
        key,
        size,
        new: outcome == PutOutcome::Created,
    })
}

/// The blob the pages show as the pack's icon (`gc` keeps it).
pub fn icon_digest() -> atlas_proto::Sha256Digest {
    atlas_proto::Sha256Digest::of(DEFAULT_ICON)
}

/// Stores the icon as a blob (pages show it); returns its key.
pub async fn publish_icon(store: &dyn Store) -> Result<String, ExportError> {
    let key = layout::blob_key(&icon_digest());
    if !store.exists(&key).await? {
        store
            .put_immutable(
                &key,
                Body::Bytes(bytes::Bytes::from_static(DEFAULT_ICON)),
                ObjectMeta::BLOB,
            )
            .await?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read as _;

    use atlas_proto::tools::ToolPin;

    fn release() -> ToolRelease {
        ToolRelease {
            version: "0.1.0".into(),
            targets: BTreeMap::from([(
                "x86_64-unknown-linux-musl".to_owned(),
                ToolPin {
                    sha256: atlas_proto::Sha256Digest::of(b"fetcher").to_hex(),
                    size: 7,
                },
            )]),
        }
    }

    fn with<R>(name: &str, trust: &TrustAnchor, f: impl FnOnce(&InstanceModel<'_>) -> R) -> R {
        let fetcher = release();
        let m = InstanceModel {
            pack: "my-pack",
            name,
            channel: "production",
            minecraft: "1.21.1",
            loader: LoaderKind::Fabric,
            loader_version: "0.16.9",
            store_url: "https://cdn.example.com/atlas/",
            page_url: "https://cdn.example.com/atlas/packs/my-pack/index.html",
            trust,
            fetcher: &fetcher,
            bootstrap_jar: b"PK jar bytes",
            icon_png: DEFAULT_ICON,
        };
        f(&m)
    }

    fn key() -> TrustAnchor {
        TrustAnchor::Keys(vec![
            atlas_proto::SecretKey::from_seed(&[4; 32]).public().to_text(),
        ])
    }

    #[test]
    fn instance_cfg_survives_the_launchers_parser() {
        let trust = key();
        let name = "Evil # \"Pack\"\\ with\ttab\nand = , ;";
        with(name, &trust, |m| {
            let cfg = instance_cfg(m);
            assert!(!cfg.contains("ConfigVersion"), "old dialect only: {cfg}");
            let parsed = atlas_testkit::prism::read_instance_cfg(&cfg);
            assert_eq!(parsed["PreLaunchCommand"], PRE_LAUNCH_COMMAND);
            assert_eq!(parsed["InstanceType"], "OneSix");
            assert_eq!(parsed["OverrideCommands"], "true");
            assert_eq!(parsed["iconKey"], "atlas-my-pack");
            assert_eq!(parsed["name"], "Evil # Pack\\ with tab and = , ; (production)");
            assert!(parsed["notes"].contains("atlas/channel"), "{:?}", parsed["notes"]);
            assert!(parsed["notes"].contains("key id "), "{:?}", parsed["notes"]);
            assert_eq!(parsed.len(), 6, "{parsed:?}");
        });
    }

    #[test]
    fn mmc_pack_names_minecraft_and_each_loader() {
        let v: serde_json::Value =
            serde_json::from_str(&mmc_pack_json("1.21.1", LoaderKind::Fabric, "0.16.9")).expect("json");
        assert_eq!(v["formatVersion"], 1);
        assert_eq!(v["components"][0]["uid"], "net.minecraft");
        assert_eq!(v["components"][0]["version"], "1.21.1");
        assert_eq!(v["components"][0]["important"], true);
        assert_eq!(v["components"][1]["uid"], "net.fabricmc.fabric-loader");
        assert_eq!(v["components"][1]["version"], "0.16.9");
        let forge: serde_json::Value =
            serde_json::from_str(&mmc_pack_json("1.20.1", LoaderKind::Forge, "1.20.1-47.3.0")).expect("json");
        assert_eq!(forge["components"][1]["uid"], "net.minecraftforge");
        assert_eq!(forge["components"][1]["version"], "47.3.0");
        for (kind, uid) in [
            (LoaderKind::Neoforge, "net.neoforged"),
            (LoaderKind::Quilt, "org.quiltmc.quilt-loader"),
        ] {
            let j: serde_json::Value =
                serde_json::from_str(&mmc_pack_json("1.21.1", kind, "1")).expect("json");
            assert_eq!(j["components"][1]["uid"], uid);
        }
        let vanilla: serde_json::Value =
            serde_json::from_str(&mmc_pack_json("1.21.1", LoaderKind::Vanilla, "")).expect("json");
        assert_eq!(vanilla["components"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn properties_pin_the_fetcher_and_the_anchor() {
        let trust = key();
        with("P", &trust, |m| {
            let p = instance_properties(m);
            assert!(p.contains("store=https://cdn.example.com/atlas/\n"), "{p}");
            assert!(p.contains("channel=production\n"), "{p}");
            assert!(p.contains("key=ed25519:"), "{p}");
            assert!(p.contains(&format!(
                "fetcher.x86_64-unknown-linux-musl.sha256={}\n",
                atlas_proto::Sha256Digest::of(b"fetcher")
            )));
            assert!(p.contains("fetcher.x86_64-unknown-linux-musl.size=7\n"), "{p}");
        });
        assert_eq!(properties_escape("a\\b é"), "a\\\\b \\u00e9");
        assert_eq!(properties_escape(" x"), "\\ x");
    }

    #[test]
    fn the_archive_is_reproducible_and_laid_out_for_import() {
        let trust = TrustAnchor::Root(b"{\"root\": 1}".to_vec());
        let (a, b) = (
            with("P", &trust, |m| write_archive(m).expect("zip")),
            with("P", &trust, |m| write_archive(m).expect("zip")),
        );
        assert_eq!(a, b, "same model, same bytes");
        let other = with("Q", &trust, |m| write_archive(m).expect("zip"));
        assert_ne!(a, other);
        let mut zip = zip::ZipArchive::new(Cursor::new(a)).expect("read");
        let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for want in [
            "instance.cfg",
            "mmc-pack.json",
            "atlas-my-pack.png",
            BOOTSTRAP_ENTRY,
            PROPERTIES_ENTRY,
            ROOT_ENTRY,
            "minecraft/",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        // Never what makes a launcher take it for another format.
        assert!(
            !names
                .iter()
                .any(|n| n == "modrinth.index.json" || n.ends_with("manifest.json"))
        );
        let mut props = String::new();
        zip.by_name(PROPERTIES_ENTRY)
            .expect("props")
            .read_to_string(&mut props)
            .expect("read");
        assert!(props.contains("root=root.json"), "{props}");
        let entry = zip.by_name("instance.cfg").expect("cfg");
        assert_eq!(entry.last_modified(), Some(zip::DateTime::default()));
    }

    #[test]
    fn the_default_icon_is_a_png() {
        assert!(is_png(DEFAULT_ICON));
        assert!(!is_png(b"GIF89a"));
    }
}
