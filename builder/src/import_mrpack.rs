//! A Modrinth modpack (`.mrpack`) as a pack source: a pack directory whose
//! only pack definition is one `*.mrpack` file at its root builds like a
//! native pack. `files[]` downloads become URL mods verified by SHA-512 (and
//! mirrored like any mod), `env` becomes side and optional, and the override
//! folders become files of the build with their side.
//!
//! Nothing in the archive is trusted: the index and every entry are read
//! with size caps, every path is checked with the manifest's path rules
//! (a `..` or absolute entry is refused, naming it), and override bytes are
//! streamed into the download cache while their SHA-256 is computed.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write as _};
use std::path::PathBuf;

use atlas_proto::Sha256Digest;
use atlas_proto::v1::{File, Loader, LoaderKind, Side};
use sha2::Digest as _;

use crate::cache::Cache;
use crate::export::mrpack::{INDEX_FILE, MrEnv, MrIndex, OVERRIDES, loader_key};
use crate::packwiz::{HashFormat, UpstreamHash};
use crate::plan::{BlobSource, BuildPlan, PackInfo, PlanOptions, assemble};
use crate::repo::{Content, PackSource};
use crate::resolve::build::{BuildError, ModOptions, ModsReport, fetch_mods, slug};
use crate::resolve::{ModSource, ModSpec};

/// Largest `modrinth.index.json` read.
pub const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;
/// Most entries in the archive.
pub const MAX_ENTRIES: usize = 100_000;
/// Largest single override file.
pub const MAX_ENTRY_BYTES: u64 = crate::repo::MAX_REPO_FILE_BYTES;
/// Largest total of override bytes.
pub const MAX_TOTAL_BYTES: u64 = 8 << 30;

/// The `.mrpack` could not be read or is not a valid Modrinth modpack.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: not a readable zip archive: {message}")]
    Zip { file: String, message: String },
    #[error("{file}: no {INDEX_FILE} at the archive's root; is this a Modrinth modpack?")]
    NoIndex { file: String },
    #[error("{file}: {INDEX_FILE}: {message}")]
    Index { file: String, message: String },
    #[error("{file}: entry `{entry}`: {message}")]
    Entry {
        file: String,
        entry: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Limit { file: String, message: String },
    #[error("{file}: download cache: {source}")]
    Cache {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// The root-level `*.mrpack` that defines the pack, when there is no
/// `pack.toml` and exactly one such file.
pub fn find_mrpack(source: &PackSource) -> Option<String> {
    if source.files.contains_key(crate::pack::PACK_FILE) {
        return None;
    }
    let mut found = source
        .files
        .keys()
        .filter(|p| !p.contains('/') && p.to_ascii_lowercase().ends_with(".mrpack"));
    let first = found.next()?.clone();
    found.next().is_none().then_some(first)
}

/// An override file, extracted into the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub path: String,
    pub side: Side,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub cached: PathBuf,
    pub executable: bool,
}

/// A `.mrpack`, read and checked.
#[derive(Debug, Clone)]
pub struct Mrpack {
    pub index: MrIndex,
    pub overrides: Vec<Override>,
}

/// Reads and checks an archive; `file` names it in errors. Override files
/// are streamed into `cache`.
pub fn read_mrpack<R: Read + Seek>(reader: R, file: &str, cache: &Cache) -> Result<Mrpack, ImportError> {
    let zip_err = |e: zip::result::ZipError| ImportError::Zip {
        file: file.to_owned(),
        message: e.to_string(),
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(zip_err)?;
    if zip.len() > MAX_ENTRIES {
        return Err(ImportError::Limit {
            file: file.to_owned(),
            message: format!("{} entries, more than the limit of {MAX_ENTRIES}", zip.len()),
        });
    }
    let index = {
        let entry = zip.by_name(INDEX_FILE).map_err(|_| ImportError::NoIndex {
            file: file.to_owned(),
        })?;
        let mut bytes = Vec::new();
        entry
            .take(MAX_INDEX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| index_err(file, format!("unreadable: {e}")))?;
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(index_err(file, format!("larger than {MAX_INDEX_BYTES} bytes")));
        }
        let index: MrIndex = serde_json::from_slice(&bytes).map_err(|e| index_err(file, e.to_string()))?;
        check_index(&index, file)?;
        index
    };
    // path -> (side folder, extracted file)
    let mut by_path: BTreeMap<String, Vec<Override>> = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(zip_err)?;
        let name = entry.name().to_owned();
        let bad = |message: String| ImportError::Entry {
            file: file.to_owned(),
            entry: name.clone(),
            message,
        };
        if name == INDEX_FILE || entry.is_dir() {
            continue;
        }
        let Some((prefix, side)) = OVERRIDES.iter().find(|(p, _)| name.starts_with(p)) else {
            tracing::warn!("{file}: entry `{name}` is outside the override folders; ignored");
            continue;
        };
        let path = name[prefix.len()..].to_owned();
        atlas_proto::validate_path(&path).map_err(|e| {
            bad(format!(
                "unsafe path ({}); refusing the archive (zip-slip protection)",
                e.reason
            ))
        })?;
        if entry.size() > MAX_ENTRY_BYTES {
            return Err(bad(format!(
                "declares {} bytes, more than {MAX_ENTRY_BYTES}",
                entry.size()
            )));
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let cache_err = |source| ImportError::Cache {
            file: file.to_owned(),
            source,
        };
        let mut tmp = cache.temp_file().map_err(cache_err)?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let mut limited = (&mut entry).take(MAX_ENTRY_BYTES + 1);
        loop {
            let n = limited
                .read(&mut buf)
                .map_err(|e| bad(format!("unreadable: {e}")))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            total += n as u64;
            if size > MAX_ENTRY_BYTES {
                return Err(bad(format!("larger than {MAX_ENTRY_BYTES} bytes")));
            }
            if total > MAX_TOTAL_BYTES {
                return Err(ImportError::Limit {
                    file: file.to_owned(),
                    message: format!("override files exceed {MAX_TOTAL_BYTES} bytes in all"),
                });
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(cache_err)?;
        }
        tmp.flush().map_err(cache_err)?;
        let sha256 = Sha256Digest(hasher.finalize().into());
        let cached = cache
            .insert(tmp.into_temp_path(), &sha256, size, &[])
            .map_err(cache_err)?;
        by_path.entry(path.clone()).or_default().push(Override {
            path,
            side: *side,
            sha256,
            size,
            cached,
            executable,
        });
    }
    let mut overrides = Vec::new();
    for (_, mut list) in by_path {
        // A side folder replaces `overrides/` on that side (as launchers
        // extract it last), so a shared file shrinks to the other side.
        let has = |s: Side, l: &[Override]| l.iter().any(|o| o.side == s);
        let (client, server) = (has(Side::Client, &list), has(Side::Server, &list));
        list.retain(|o| o.side != Side::Both || !(client && server));
        for o in &mut list {
            if o.side == Side::Both {
                o.side = if client {
                    Side::Server
                } else if server {
                    Side::Client
                } else {
                    Side::Both
                };
            }
        }
        overrides.extend(list);
    }
    let downloads: std::collections::BTreeSet<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(o) = overrides.iter().find(|o| downloads.contains(o.path.as_str())) {
        return Err(index_err(
            file,
            format!("`{}` is both a download and an override; keep one", o.path),
        ));
    }
    Ok(Mrpack { index, overrides })
}

fn index_err(file: &str, message: String) -> ImportError {
    ImportError::Index {
        file: file.to_owned(),
        message,
    }
}

/// The format's rules: format 1, game minecraft, a Minecraft version, and
/// for every file a safe relative path, both hashes and an http(s) download.
fn check_index(index: &MrIndex, file: &str) -> Result<(), ImportError> {
    let err = |m: String| index_err(file, m);
    if index.format_version != 1 {
        return Err(err(format!(
            "formatVersion {} is not supported (only 1)",
            index.format_version
        )));
    }
    if index.game != "minecraft" {
        return Err(err(format!("game `{}` is not minecraft", index.game)));
    }
    if !index.dependencies.contains_key("minecraft") {
        return Err(err("dependencies has no `minecraft` version".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, f) in index.files.iter().enumerate() {
        let at = |m: String| err(format!("files[{i}] `{}`: {m}", f.path));
        atlas_proto::validate_path(&f.path).map_err(|e| at(format!("unsafe path: {}", e.reason)))?;
        if !seen.insert(f.path.as_str()) {
            return Err(at("listed twice".into()));
        }
        let sha512 = f
            .hashes
            .get("sha512")
            .ok_or_else(|| at("no sha512 hash".into()))?;
        UpstreamHash::parse(HashFormat::Sha512, sha512).map_err(|e| at(e.to_string()))?;
        if let Some(sha1) = f.hashes.get("sha1") {
            UpstreamHash::parse(HashFormat::Sha1, sha1).map_err(|e| at(e.to_string()))?;
        }
        if !f
            .downloads
            .iter()
            .any(|u| u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(at("no http(s) download URL".into()));
        }
    }
    Ok(())
}

fn loader_of(index: &MrIndex) -> Loader {
    for kind in [
        LoaderKind::Fabric,
        LoaderKind::Quilt,
        LoaderKind::Forge,
        LoaderKind::Neoforge,
    ] {
        if let Some(v) = loader_key(kind).and_then(|k| index.dependencies.get(k)) {
            return Loader {
                kind: kind as i32,
                version: v.clone(),
            };
        }
    }
    Loader {
        kind: LoaderKind::Vanilla as i32,
        version: String::new(),
    }
}

/// Plans a build of the `.mrpack` at pack path `name`: downloads are fetched
/// (through the cache) like URL mods, overrides are extracted into the cache.
pub async fn plan_mrpack(
    source: &PackSource,
    name: &str,
    opts: &PlanOptions,
    mods: &ModOptions,
) -> Result<(BuildPlan, ModsReport), BuildError> {
    let src = source
        .files
        .get(name)
        .ok_or_else(|| crate::repo::RepoError::Unsupported {
            path: name.to_owned(),
            message: "not in the pack".into(),
        })?;
    let cache = Cache::open(&mods.cache_dir).map_err(|source| BuildError::Cache {
        path: mods.cache_dir.clone(),
        source,
    })?;
    let pack = match &src.content {
        Content::Disk(p) | Content::Cached(p) => {
            let f = std::fs::File::open(p).map_err(|source| crate::repo::RepoError::Io {
                path: p.clone(),
                source,
            })?;
            read_mrpack(std::io::BufReader::new(f), name, &cache)?
        }
        c @ Content::Git(_) => read_mrpack(std::io::Cursor::new(source.read_content(c)?), name, &cache)?,
    };
    let mut specs = Vec::new();
    for (i, f) in pack.index.files.iter().enumerate() {
        let env = f.env.unwrap_or(MrEnv::of(Side::Both, false));
        let Some((side, optional)) = env.side() else {
            tracing::warn!("{name}: `{}` is unsupported on both sides; skipped", f.path);
            continue;
        };
        let (dir, filename) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
        let url = f
            .downloads
            .iter()
            .find(|u| u.starts_with("https://") || u.starts_with("http://"))
            .cloned()
            .unwrap_or_default();
        let sha512 = f.hashes.get("sha512").map(String::as_str).unwrap_or_default();
        let hash = UpstreamHash::parse(HashFormat::Sha512, sha512)
            .map_err(|e| index_err(name, format!("files[{i}]: {e}")))?;
        specs.push(ModSpec {
            name: filename.to_owned(),
            defined_in: format!("{name} files[{i}]"),
            source: ModSource::Url { url, hash },
            dir: dir.to_owned(),
            filename: Some(filename.to_owned()),
            side,
            optional,
            default_enabled: true,
            description: String::new(),
            mirror: true,
            declared: None,
            origin: None,
        });
    }
    let (extra, report) = fetch_mods(&specs, mods).await?;
    let mut files = Vec::new();
    let mut blobs = BTreeMap::new();
    for o in &pack.overrides {
        blobs.entry(o.sha256).or_insert_with(|| BlobSource {
            content: Content::Cached(o.cached.clone()),
            size: o.size,
            path: o.path.clone(),
        });
        files.push(File {
            path: o.path.clone(),
            size: o.size,
            sha256: o.sha256.0.to_vec(),
            side: o.side as i32,
            default_enabled: true,
            executable: o.executable,
            ..Default::default()
        });
    }
    let idx = &pack.index;
    let info = PackInfo {
        id: mods.pack_id.clone().unwrap_or_else(|| slug(&idx.name)),
        name: idx.name.clone(),
        version: idx.version_id.clone(),
        minecraft: idx.dependencies.get("minecraft").cloned().unwrap_or_default(),
        loader: loader_of(idx),
    };
    let mut plan = assemble(source, info, opts, files, blobs, extra)?;
    plan.mods = report.clone();
    Ok((plan, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"formatVersion":1,"game":"minecraft","versionId":"1","name":"X",
        "files":[],"dependencies":{"minecraft":"1.21.1","fabric-loader":"0.16.9"}}"#;

    fn archive(entries: &[(&str, &[u8])]) -> std::io::Cursor<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("entry");
            zip.write_all(bytes).expect("write");
        }
        let mut c = zip.finish().expect("finish");
        c.set_position(0);
        c
    }

    fn read_in(dir: &std::path::Path, entries: &[(&str, &[u8])]) -> Result<Mrpack, ImportError> {
        let cache = Cache::open(dir).expect("cache");
        read_mrpack(archive(entries), "x.mrpack", &cache)
    }

    fn read(entries: &[(&str, &[u8])]) -> Result<Mrpack, ImportError> {
        read_in(tempfile::tempdir().expect("tmp").path(), entries)
    }

    #[test]
    fn zip_slip_entries_are_refused_by_name() {
        for evil in [
            "overrides/../../etc/passwd",
            "overrides//abs",
            "client-overrides/a/../../b",
            "server-overrides/C:/x",
        ] {
            let err = read(&[(INDEX_FILE, INDEX.as_bytes()), (evil, b"x")]).expect_err(evil);
            let msg = err.to_string();
            assert!(msg.contains(evil) && msg.contains("unsafe path"), "{msg}");
        }
    }

    #[test]
    fn override_sides_and_a_side_folder_replacing_overrides() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = read_in(
            dir.path(),
            &[
                (INDEX_FILE, INDEX.as_bytes()),
                ("overrides/config/a.toml", b"both"),
                ("overrides/config/b.toml", b"shared"),
                ("client-overrides/config/b.toml", b"client"),
                ("server-overrides/s.txt", b"server"),
                ("README.txt", b"ignored"),
            ],
        )
        .expect("read");
        let got: Vec<(&str, Side, u64)> = m
            .overrides
            .iter()
            .map(|o| (o.path.as_str(), o.side, o.size))
            .collect();
        assert_eq!(
            got,
            [
                ("config/a.toml", Side::Both, 4),
                ("config/b.toml", Side::Server, 6),
                ("config/b.toml", Side::Client, 6),
                ("s.txt", Side::Server, 6),
            ]
        );
        assert_eq!(std::fs::read(&m.overrides[2].cached).expect("cached"), b"client");
        assert_eq!(loader_of(&m.index).kind, LoaderKind::Fabric as i32);
    }

    #[test]
    fn invalid_indexes_are_refused() {
        let file = |path: &str, sha512: &str, url: &str| {
            INDEX.replace(
                r#""files":[]"#,
                &format!(
                    r#""files":[{{"path":"{path}","hashes":{{"sha512":"{sha512}"}},"downloads":["{url}"],"fileSize":1}}]"#
                ),
            )
        };
        let good512 = "ab".repeat(64);
        let cases = [
            (
                INDEX.replace(r#""formatVersion":1"#, r#""formatVersion":2"#),
                "formatVersion 2",
            ),
            (INDEX.replace("\"minecraft\",", "\"bedrock\","), "game `bedrock`"),
            (file("../mods/a.jar", &good512, "https://x/a"), "unsafe path"),
            (file("/mods/a.jar", &good512, "https://x/a"), "unsafe path"),
            (file("mods/a.jar", "00", "https://x/a"), "128 hex digits"),
            (file("mods/a.jar", &good512, "ftp://x/a"), "no http(s) download"),
        ];
        for (index, want) in cases {
            let msg = read(&[(INDEX_FILE, index.as_bytes())])
                .expect_err(want)
                .to_string();
            assert!(msg.contains(want), "{want}: {msg}");
        }
        let msg = read(&[("overrides/a", b"x")]).expect_err("no index").to_string();
        assert!(msg.contains("no modrinth.index.json"), "{msg}");
        let big = vec![b' '; MAX_INDEX_BYTES as usize + 10];
        let msg = read(&[(INDEX_FILE, &big)]).expect_err("too big").to_string();
        assert!(msg.contains("larger than"), "{msg}");
    }
}
