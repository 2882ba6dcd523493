//! What a pack page shows, computed from verified store data without any
//! I/O: [`pack_page`] turns each channel's pointer, manifest and pointer
//! history into the strings the template prints (askama escapes every one
//! of them; nothing here is markup).

use atlas_proto::pointer::PointerPayload;
use atlas_proto::v1::{File, LoaderKind, Manifest, Side};
use atlas_proto::{Sha256Digest, layout};

use crate::diff::{Changelog, diff};

/// How many transitions of a channel's history the changelog shows.
pub const CHANGELOG_ENTRIES: usize = 10;

/// One channel as read from the store.
#[derive(Debug, Clone)]
pub struct ChannelData {
    /// The current pointer's payload (its signature verified).
    pub pointer: PointerPayload,
    /// The build's manifest (its hash checked against the build id).
    pub manifest: Manifest,
    /// Earlier pointer versions of the channel, oldest first, with the
    /// manifest of the build each names when it could be read. May be empty
    /// (a store written before format 1.3 keeps no history).
    pub history: Vec<(PointerPayload, Option<Manifest>)>,
    /// Sizes of the exports the pointer names, when known.
    pub mrpack_size: Option<u64>,
    pub instance_size: Option<u64>,
}

/// Whom hosts and players trust, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageTrust {
    /// Public key texts (`ed25519:<base64>`).
    Keys(Vec<String>),
    /// The pack publishes a keyset chain: hosts use `--root keys-1.json`.
    Root,
}

/// Everything a pack page is made from.
#[derive(Debug, Clone)]
pub struct PageInput {
    pub pack: String,
    /// The channels, in display order (see [`channel_order`]).
    pub channels: Vec<ChannelData>,
    /// The store's public base URL (ending in `/`), for commands to copy.
    pub public_url: String,
    pub trust: PageTrust,
    /// Store key of the pack's icon blob, when one is stored.
    pub icon: Option<String>,
    /// Channels left out (their pointer did not verify), with the reason.
    pub notices: Vec<String>,
}

/// A download link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Relative to the pack page.
    pub href: String,
    /// Absolute, to paste into a launcher.
    pub url: String,
    pub size: String,
    /// Hex SHA-256, when the key names it.
    pub sha256: Option<String>,
}

/// One mod (or other file) of a build, for the mod table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModRow {
    pub name: String,
    pub version: String,
    pub side: &'static str,
    pub optional: &'static str,
    pub source: String,
    /// The mod's page (navigation only; never loaded by the page).
    pub link: Option<String>,
}

/// One transition between two builds of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEntry {
    pub from: String,
    pub to: String,
    pub date: String,
    /// `Minecraft 1.21 → 1.21.1`, when it changed.
    pub minecraft: Option<String>,
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub files: Vec<String>,
    /// False when an older manifest could not be read.
    pub known: bool,
}

/// One channel, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    pub name: String,
    pub pointer_version: u64,
    pub build: String,
    pub build_short: String,
    pub pack_version: String,
    pub minecraft: String,
    pub loader: String,
    pub published: String,
    pub expires: String,
    pub key_ids: Vec<String>,
    pub commit: String,
    pub commit_date: String,
    pub mrpack: Option<Download>,
    pub instance: Option<Download>,
    pub changes: Vec<ChangeEntry>,
    pub mods: Vec<ModRow>,
    pub other_files: Vec<ModRow>,
    pub sync_command: String,
    pub runner_source: String,
    /// `java -jar atlas/atlas-bootstrap.jar channel <name>`.
    pub switch_command: String,
    /// Its mod list starts unfolded (the first channel).
    pub open: bool,
}

/// The pack page's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackView {
    pub pack: String,
    pub name: String,
    pub description: String,
    pub author: String,
    pub minecraft: String,
    pub loader: String,
    pub icon: Option<String>,
    pub channels: Vec<ChannelView>,
    /// `dev=12 production=7`: the pointer versions this page was made from.
    pub pointer_versions: String,
    pub notices: Vec<String>,
    /// Whether any channel has an instance archive.
    pub has_instance: bool,
    /// `keys/1.json` relative to the page, when hosts use a root of trust.
    pub root_href: Option<String>,
}

/// Display order of channels: `production`, `stable`, `release`, `beta`,
/// `alpha`, `dev`, `nightly`, then the others by name.
pub fn channel_order(name: &str) -> (usize, String) {
    const KNOWN: [&str; 7] = [
        "production",
        "stable",
        "release",
        "beta",
        "alpha",
        "dev",
        "nightly",
    ];
    let rank = KNOWN.iter().position(|k| *k == name).unwrap_or(KNOWN.len());
    (rank, name.to_owned())
}

/// `YYYY-MM-DD HH:MM UTC` of Unix seconds.
pub fn date(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} UTC", &s[..10], &s[11..16])
}

/// `1.5 MiB` and the like.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn short(build: &str) -> String {
    build.get(..12).unwrap_or(build).to_owned()
}

/// `Fabric 0.16.9`, `Vanilla`.
pub fn loader_text(m: &Manifest) -> String {
    let Some(l) = &m.loader else {
        return "Vanilla".into();
    };
    let name = match LoaderKind::try_from(l.kind).unwrap_or(LoaderKind::Unspecified) {
        LoaderKind::Fabric => "Fabric",
        LoaderKind::Quilt => "Quilt",
        LoaderKind::Forge => "Forge",
        LoaderKind::Neoforge => "NeoForge",
        LoaderKind::Vanilla | LoaderKind::Unspecified => return "Vanilla".into(),
    };
    if l.version.is_empty() {
        name.into()
    } else {
        format!("{name} {}", l.version)
    }
}

fn side_text(f: &File) -> &'static str {
    match Side::try_from(f.side).unwrap_or(Side::Both) {
        Side::Client => "client",
        Side::Server => "server",
        Side::Both | Side::Unspecified => "both",
    }
}

/// Where a file comes from and the page to read about it.
fn source_of(f: &File) -> (String, Option<String>) {
    let origin = f
        .upstreams
        .iter()
        .map(|u| u.origin.as_str())
        .find(|o| !o.is_empty());
    if let Some(o) = origin {
        if let Some((project, _)) = o.strip_prefix("modrinth:").and_then(|r| r.split_once('/')) {
            return (
                "Modrinth".into(),
                Some(format!("https://modrinth.com/mod/{project}")),
            );
        }
        if let Some((project, _)) = o.strip_prefix("curseforge:").and_then(|r| r.split_once('/'))
            && project.bytes().all(|b| b.is_ascii_digit())
        {
            return (
                "CurseForge".into(),
                Some(format!("https://www.curseforge.com/projects/{project}")),
            );
        }
    }
    if let Some(u) = f.upstreams.iter().find(|u| !u.url.is_empty())
        && let Ok(url) = url::Url::parse(&u.url)
        && matches!(url.scheme(), "http" | "https")
        && let Some(host) = url.host_str()
    {
        return (host.to_owned(), None);
    }
    ("in the pack".into(), None)
}

fn is_mod(f: &File) -> bool {
    !f.display_name.is_empty() || !f.upstreams.is_empty()
}

fn row(f: &File) -> ModRow {
    let file_name = f.path.rsplit('/').next().unwrap_or(&f.path);
    let (source, link) = source_of(f);
    ModRow {
        name: if f.display_name.is_empty() {
            file_name.to_owned()
        } else {
            f.display_name.clone()
        },
        version: if f.display_version.is_empty() {
            file_name.to_owned()
        } else {
            f.display_version.clone()
        },
        side: side_text(f),
        optional: match (f.optional, f.default_enabled) {
            (false, _) => "",
            (true, true) => "optional, on",
            (true, false) => "optional, off",
        },
        source,
        link,
    }
}

fn change_entry(log: &Changelog, date_of: u64) -> ChangeEntry {
    let files = log
        .files_added
        .iter()
        .map(|p| format!("added {p}"))
        .chain(log.files_changed.iter().map(|p| format!("changed {p}")))
        .chain(log.files_removed.iter().map(|p| format!("removed {p}")))
        .collect();
    ChangeEntry {
        from: format!("{} ({})", log.from.version, short(&log.from.build)),
        to: format!("{} ({})", log.to.version, short(&log.to.build)),
        date: date(date_of),
        minecraft: (log.from.minecraft != log.to.minecraft)
            .then(|| format!("Minecraft {} → {}", log.from.minecraft, log.to.minecraft)),
        added: log
            .added
            .iter()
            .map(|m| format!("{} {}", m.name, m.version))
            .collect(),
        updated: log
            .updated
            .iter()
            .map(|m| format!("{}: {} → {}", m.name, m.from, m.to))
            .collect(),
        removed: log
            .removed
            .iter()
            .map(|m| format!("{} {}", m.name, m.version))
            .collect(),
        files,
        known: true,
    }
}

/// The runs of equal builds in a channel's history (oldest first), each
/// with the first pointer of the run and its manifest, ending with the
/// current build (the pointer the page shows).
fn runs(c: &ChannelData) -> Vec<(&PointerPayload, Option<&Manifest>)> {
    let mut out: Vec<(&PointerPayload, Option<&Manifest>)> = Vec::new();
    let mut entries: Vec<(&PointerPayload, Option<&Manifest>)> = c
        .history
        .iter()
        .filter(|(p, _)| p.version <= c.pointer.version)
        .map(|(p, m)| (p, m.as_ref()))
        .collect();
    entries.sort_by_key(|(p, _)| p.version);
    if entries.last().is_none_or(|(p, _)| p.version != c.pointer.version) {
        entries.push((&c.pointer, Some(&c.manifest)));
    }
    for (p, m) in entries {
        if out.last().is_none_or(|(last, _)| last.build != p.build) {
            out.push((p, m));
        }
    }
    if let Some(last) = out.last_mut() {
        // The current build's manifest is the verified one.
        last.1 = Some(&c.manifest);
    }
    out
}

fn channel_view(c: &ChannelData, input: &PageInput, open: bool) -> ChannelView {
    let (p, m) = (&c.pointer, &c.manifest);
    let runs = runs(c);
    let published = runs.last().map_or(p.issued_at, |(first, _)| first.issued_at);
    let changes = runs
        .windows(2)
        .rev()
        .take(CHANGELOG_ENTRIES)
        .map(|w| {
            let ((a, am), (b, bm)) = (w[0], w[1]);
            match (am, bm, a.build_digest(), b.build_digest()) {
                (Some(am), Some(bm), Ok(ad), Ok(bd)) => change_entry(&diff(am, &ad, bm, &bd), b.issued_at),
                _ => ChangeEntry {
                    from: short(&a.build),
                    to: short(&b.build),
                    date: date(b.issued_at),
                    minecraft: None,
                    added: Vec::new(),
                    updated: Vec::new(),
                    removed: Vec::new(),
                    files: Vec::new(),
                    known: false,
                },
            }
        })
        .collect();
    let download = |key: &str, size_of: Option<u64>, sha256: Option<String>| Download {
        href: key
            .strip_prefix(&format!("packs/{}/", input.pack))
            .map_or_else(|| format!("../../{key}"), str::to_owned),
        url: format!("{}{key}", input.public_url),
        size: size_of.map(size).unwrap_or_default(),
        sha256,
    };
    let instance_sha = |key: &str| {
        key.split('/')
            .nth(3)
            .filter(|h| h.parse::<Sha256Digest>().is_ok())
            .map(str::to_owned)
    };
    let (mut mods, mut other_files): (Vec<ModRow>, Vec<ModRow>) = (Vec::new(), Vec::new());
    for f in &m.files {
        if is_mod(f) {
            mods.push(row(f));
        } else {
            let mut r = row(f);
            r.name = f.path.clone();
            r.version = size(f.size);
            other_files.push(r);
        }
    }
    mods.sort_by_key(|r| r.name.to_lowercase());
    let trust_flag = match &input.trust {
        PageTrust::Keys(keys) => keys
            .iter()
            .map(|k| format!(" \\\n  --key '{k}'"))
            .collect::<String>(),
        PageTrust::Root => " \\\n  --root keys-1.json".to_owned(),
    };
    let trust_toml = match &input.trust {
        PageTrust::Keys(keys) => format!(
            "keys = [{}]",
            keys.iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        PageTrust::Root => "root = \"/etc/atlas-runner/keys-1.json\"".to_owned(),
    };
    let source = m.source.clone().unwrap_or_default();
    ChannelView {
        name: p.channel.clone(),
        pointer_version: p.version,
        build: p.build.clone(),
        build_short: short(&p.build),
        pack_version: m.version.clone(),
        minecraft: m.minecraft_version.clone(),
        loader: loader_text(m),
        published: date(published),
        expires: date(p.expires_at),
        key_ids: Vec::new(),
        commit: source.commit.get(..12).unwrap_or(&source.commit).to_owned(),
        commit_date: if source.commit_time > 0 {
            date(u64::try_from(source.commit_time).unwrap_or(0))
        } else {
            String::new()
        },
        mrpack: p
            .exports
            .mrpack
            .as_deref()
            .map(|k| download(k, c.mrpack_size, None)),
        instance: p
            .exports
            .instance
            .as_deref()
            .map(|k| download(k, c.instance_size, instance_sha(k))),
        changes,
        mods,
        other_files,
        sync_command: format!(
            "atlas-fetcher sync --source {} \\\n  --pack {} --channel {}{trust_flag} \\\n  --dir /srv/minecraft",
            input.public_url, input.pack, p.channel
        ),
        runner_source: format!(
            "[source]\nurl = \"{}\"\npack = \"{}\"\nchannel = \"{}\"\n{trust_toml}",
            input.public_url, input.pack, p.channel
        ),
        switch_command: format!("java -jar atlas/atlas-bootstrap.jar channel {}", p.channel),
        open,
    }
}

/// The page's content; `signers` gives each channel's verified key ids.
pub fn pack_page(input: &PageInput, signers: &[Vec<String>]) -> PackView {
    let first = input.channels.first();
    let m = first.map(|c| &c.manifest);
    let mut channels: Vec<ChannelView> = input
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| channel_view(c, input, i == 0))
        .collect();
    for (v, ids) in channels.iter_mut().zip(signers) {
        v.key_ids = ids.clone();
    }
    PackView {
        pack: input.pack.clone(),
        name: m
            .map(|m| m.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| input.pack.clone()),
        description: m.map(|m| m.description.clone()).unwrap_or_default(),
        author: m.map(|m| m.author.clone()).unwrap_or_default(),
        minecraft: m.map(|m| m.minecraft_version.clone()).unwrap_or_default(),
        loader: m.map(loader_text).unwrap_or_default(),
        icon: input.icon.as_ref().map(|k| format!("../../{k}")),
        pointer_versions: input
            .channels
            .iter()
            .map(|c| format!("{}={}", c.pointer.channel, c.pointer.version))
            .collect::<Vec<_>>()
            .join(" "),
        has_instance: channels.iter().any(|c| c.instance.is_some()),
        channels,
        notices: input.notices.clone(),
        root_href: (input.trust == PageTrust::Root).then(|| "keys/1.json".to_owned()),
    }
}

/// One pack on the store's index page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub pack: String,
    pub name: String,
    pub description: String,
    pub minecraft: String,
    pub loader: String,
    /// `production 1.2.0, dev 1.3.0-rc.1`.
    pub channels: String,
    /// `packs/<pack>/index.html`, relative to the store root.
    pub href: String,
}

/// The index row of a pack from its page input.
pub fn index_row(input: &PageInput) -> IndexRow {
    let view = pack_page(input, &[]);
    IndexRow {
        href: layout::pack_page_key(&input.pack),
        channels: view
            .channels
            .iter()
            .map(|c| format!("{} {}", c.name, c.pack_version))
            .collect::<Vec<_>>()
            .join(", "),
        pack: view.pack,
        name: view.name,
        description: view.description,
        minecraft: view.minecraft,
        loader: view.loader,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use atlas_proto::pointer::Exports;
    use atlas_proto::v1::{BuildSource, Loader, Upstream};

    pub(crate) fn file(path: &str, bytes: &[u8], name: &str, version: &str, origin: &str) -> File {
        File {
            path: path.to_owned(),
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes).0.to_vec(),
            side: Side::Both as i32,
            display_name: name.to_owned(),
            display_version: version.to_owned(),
            upstreams: if origin.is_empty() {
                Vec::new()
            } else {
                vec![Upstream {
                    url: "https://cdn.modrinth.com/data/x/y.jar".into(),
                    hashes: Vec::new(),
                    origin: origin.to_owned(),
                }]
            },
            ..File::default()
        }
    }

    pub(crate) fn manifest(version: &str, files: Vec<File>) -> Manifest {
        Manifest {
            format_version: 1,
            pack_id: "p".into(),
            name: "My <Pack>".into(),
            version: version.into(),
            minecraft_version: "1.21.1".into(),
            loader: Some(Loader {
                kind: LoaderKind::Fabric as i32,
                version: "0.16.9".into(),
            }),
            source: Some(BuildSource {
                commit: "abcdef0123456789".into(),
                commit_time: 1_700_000_000,
                ..Default::default()
            }),
            description: "A pack.".into(),
            files,
            ..Manifest::default()
        }
    }

    pub(crate) fn pointer(channel: &str, version: u64, m: &Manifest, issued_at: u64) -> PointerPayload {
        let bytes = crate::plan::encode_manifest(m, &atlas_proto::Limits::DEFAULT).expect("encode");
        PointerPayload {
            format: 1,
            pack: "p".into(),
            channel: channel.into(),
            version,
            build: atlas_proto::manifest::build_id(&bytes).to_hex(),
            manifest_size: bytes.len() as u64,
            issued_at,
            expires_at: issued_at + 86_400,
            exports: Exports::default(),
            tools: Default::default(),
        }
    }

    #[test]
    fn the_changelog_follows_distinct_builds_newest_first() {
        let m1 = manifest(
            "1.0",
            vec![file("mods/a.jar", b"a1", "A", "1", "modrinth:AAA/v1")],
        );
        let m2 = manifest(
            "1.1",
            vec![
                file("mods/a.jar", b"a2", "A", "2", "modrinth:AAA/v2"),
                file("mods/b.jar", b"b", "B", "1", "curseforge:123/456"),
            ],
        );
        let m3 = manifest(
            "1.2",
            vec![file("mods/b.jar", b"b", "B", "1", "curseforge:123/456")],
        );
        let history = vec![
            (pointer("dev", 1, &m1, 100), Some(m1.clone())),
            (pointer("dev", 2, &m2, 200), Some(m2.clone())),
            // A resign: same build, later version; no changelog entry.
            (pointer("dev", 3, &m2, 300), Some(m2.clone())),
            (pointer("dev", 4, &m3, 400), Some(m3.clone())),
        ];
        let c = ChannelData {
            pointer: pointer("dev", 5, &m3, 500),
            manifest: m3.clone(),
            history,
            mrpack_size: None,
            instance_size: None,
        };
        let input = PageInput {
            pack: "p".into(),
            channels: vec![c],
            public_url: "https://cdn.example.com/".into(),
            trust: PageTrust::Root,
            icon: None,
            notices: Vec::new(),
        };
        let v = pack_page(&input, &[]);
        let ch = &v.channels[0];
        assert_eq!(
            ch.published,
            date(400),
            "the first pointer naming the current build"
        );
        assert_eq!(ch.changes.len(), 2);
        assert_eq!(ch.changes[0].removed, ["A 2"]);
        assert_eq!(ch.changes[1].updated, ["A: 1 → 2"]);
        assert_eq!(ch.changes[1].added, ["B 1"]);
        assert_eq!(
            ch.mods[0].link.as_deref(),
            Some("https://www.curseforge.com/projects/123")
        );
        assert!(
            ch.sync_command.contains("--root keys-1.json"),
            "{}",
            ch.sync_command
        );
        assert_eq!(v.pointer_versions, "dev=5");
        assert_eq!(v.root_href.as_deref(), Some("keys/1.json"));
    }

    #[test]
    fn sources_links_and_formats() {
        let (s, l) = source_of(&file("mods/x.jar", b"x", "X", "1", "modrinth:P7dR8mSH/abc"));
        assert_eq!(
            (s.as_str(), l.as_deref()),
            ("Modrinth", Some("https://modrinth.com/mod/P7dR8mSH"))
        );
        let (s, l) = source_of(&file("mods/x.jar", b"x", "X", "1", "url"));
        assert_eq!((s.as_str(), l), ("cdn.modrinth.com", None));
        let (s, _) = source_of(&file("config/x.json", b"x", "", "", ""));
        assert_eq!(s, "in the pack");
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        let mut order = vec!["dev", "zeta", "production", "beta", "alpha2"];
        order.sort_by_key(|c| channel_order(c));
        assert_eq!(order, ["production", "beta", "dev", "alpha2", "zeta"]);
    }
}
