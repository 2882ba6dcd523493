//! Reading a `.mrpack` as its own tools do, trusting nothing in it: the
//! index and every entry are read under [`Limits`] caps, every path is
//! checked with the manifest's path rules (an entry anywhere in the archive
//! whose name is `..`, absolute, a drive or uses `\` refuses the archive,
//! naming it), and override bytes are streamed into the download cache
//! while their SHA-256 is computed. Other entries outside the override
//! folders are ignored with a warning, as launchers ignore them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, Write as _};
use std::path::PathBuf;

use sha2::Digest as _;

use atlas_proto::v1::Side;
use atlas_proto::{Limits, Sha256Digest};

use super::{INDEX_FILE, MrIndex, OVERRIDES};
use crate::cache::Cache;
use crate::packwiz::{Diagnostic, HashFormat, UpstreamHash};

/// The `.mrpack` could not be read or is not a valid Modrinth modpack.
#[derive(Debug, thiserror::Error)]
pub enum MrpackError {
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

impl crate::exit::HasExitClass for MrpackError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
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
    /// What was ignored, as launchers ignore it: unknown index fields and
    /// dependencies, entries outside the override folders.
    pub warnings: Vec<Diagnostic>,
}

/// Reads and checks an archive under `limits`; `file` names it in errors.
/// Override files are streamed into `cache`.
pub fn read<R: Read + Seek>(
    reader: R,
    file: &str,
    cache: &Cache,
    limits: &Limits,
) -> Result<Mrpack, MrpackError> {
    let zip_err = |e: zip::result::ZipError| MrpackError::Zip {
        file: file.to_owned(),
        message: e.to_string(),
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(zip_err)?;
    let mut warnings = Vec::new();
    if zip.len() > limits.mrpack_entries {
        return Err(MrpackError::Limit {
            file: file.to_owned(),
            message: format!(
                "{} entries, more than the limit of {}",
                zip.len(),
                limits.mrpack_entries
            ),
        });
    }
    let index = {
        let entry = zip.by_name(INDEX_FILE).map_err(|_| MrpackError::NoIndex {
            file: file.to_owned(),
        })?;
        let cap = limits.mrpack_index_bytes;
        let mut bytes = Vec::new();
        entry
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| index_err(file, format!("unreadable: {e}")))?;
        if bytes.len() as u64 > cap {
            return Err(index_err(file, format!("larger than {cap} bytes")));
        }
        let (index, found) = super::index::parse(&bytes, file).map_err(|e| index_err(file, e.to_string()))?;
        check_index(&index, file)?;
        warnings.extend(found);
        index
    };
    let entry_cap = limits.mrpack_entry_bytes;
    let total_cap = limits.mrpack_total_bytes;
    // path -> (side folder, extracted file)
    let mut by_path: BTreeMap<String, Vec<Override>> = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(zip_err)?;
        let name = entry.name().to_owned();
        let bad = |message: String| MrpackError::Entry {
            file: file.to_owned(),
            entry: name.clone(),
            message,
        };
        // Every name in the archive must be a safe relative path (FORMAT.md
        // §4), wherever it is: an entry that would land outside the folder
        // it is extracted into (`..`, absolute, a drive, `\` separators)
        // refuses the whole archive, even outside the override folders,
        // where launchers would skip it.
        let unsafe_path = |e: atlas_proto::PathError| {
            bad(format!(
                "unsafe path ({}); refusing the archive (zip-slip protection)",
                e.reason
            ))
        };
        let dir_name = name.strip_suffix('/').filter(|_| entry.is_dir());
        atlas_proto::validate_path(dir_name.unwrap_or(&name)).map_err(unsafe_path)?;
        if name == INDEX_FILE || entry.is_dir() {
            continue;
        }
        let Some((prefix, side)) = OVERRIDES.iter().find(|(p, _)| name.starts_with(p)) else {
            warnings.push(Diagnostic::warning(
                file,
                None,
                format!("entry `{name}` is outside the override folders; ignored, as launchers ignore it"),
            ));
            continue;
        };
        let path = name[prefix.len()..].to_owned();
        atlas_proto::validate_path(&path).map_err(unsafe_path)?;
        if entry.size() > entry_cap {
            return Err(bad(format!(
                "declares {} bytes, more than {entry_cap}",
                entry.size()
            )));
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let cache_err = |source| MrpackError::Cache {
            file: file.to_owned(),
            source,
        };
        let mut tmp = cache.temp_file().map_err(cache_err)?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let mut limited = (&mut entry).take(entry_cap + 1);
        loop {
            let n = limited
                .read(&mut buf)
                .map_err(|e| bad(format!("unreadable: {e}")))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            total += n as u64;
            if size > entry_cap {
                return Err(bad(format!("larger than {entry_cap} bytes")));
            }
            if total > total_cap {
                return Err(MrpackError::Limit {
                    file: file.to_owned(),
                    message: format!("override files exceed {total_cap} bytes in all"),
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
    let downloads: BTreeSet<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(o) = overrides.iter().find(|o| downloads.contains(o.path.as_str())) {
        return Err(index_err(
            file,
            format!("`{}` is both a download and an override; keep one", o.path),
        ));
    }
    Ok(Mrpack {
        index,
        overrides,
        warnings,
    })
}

/// An error in `file`'s index.
pub fn index_err(file: &str, message: String) -> MrpackError {
    MrpackError::Index {
        file: file.to_owned(),
        message,
    }
}

/// The format's rules: format 1, game minecraft, a Minecraft version, and
/// for every file a safe relative path, both hashes and an http(s) download.
fn check_index(index: &MrIndex, file: &str) -> Result<(), MrpackError> {
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
    let mut seen = BTreeSet::new();
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

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_proto::v1::LoaderKind;

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

    fn read_with(
        dir: &std::path::Path,
        entries: &[(&str, &[u8])],
        limits: &Limits,
    ) -> Result<Mrpack, MrpackError> {
        let cache = Cache::open(dir).expect("cache");
        read(archive(entries), "x.mrpack", &cache, limits)
    }

    fn read_in(dir: &std::path::Path, entries: &[(&str, &[u8])]) -> Result<Mrpack, MrpackError> {
        read_with(dir, entries, &Limits::DEFAULT)
    }

    fn read_default(entries: &[(&str, &[u8])]) -> Result<Mrpack, MrpackError> {
        read_in(tempfile::tempdir().expect("tmp").path(), entries)
    }

    #[test]
    fn zip_slip_entries_are_refused_by_name() {
        for evil in [
            "overrides/../../etc/passwd",
            "overrides//abs",
            "client-overrides/a/../../b",
            "server-overrides/C:/x",
            // Outside the override folders too (launchers skip these; an
            // archive carrying them is refused whole, FORMAT.md §7).
            "../../evil.txt",
            "/etc/cron.d/evil",
            "overrides\\..\\..\\x",
            "C:/evil.txt",
            "C:\\evil.txt",
            "\\\\server\\share\\x",
            "../",
        ] {
            let err = read_default(&[(INDEX_FILE, INDEX.as_bytes()), (evil, b"x")]).expect_err(evil);
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
        let warnings: Vec<String> = m.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "x.mrpack: warning: entry `README.txt` is outside the override folders; ignored, as launchers ignore it"
            ]
        );
        assert_eq!(m.index.loader().kind, LoaderKind::Fabric as i32);
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
            let msg = read_default(&[(INDEX_FILE, index.as_bytes())])
                .expect_err(want)
                .to_string();
            assert!(msg.contains(want), "{want}: {msg}");
        }
        let msg = read_default(&[("overrides/a", b"x")])
            .expect_err("no index")
            .to_string();
        assert!(msg.contains("no modrinth.index.json"), "{msg}");
        let big = vec![b' '; Limits::DEFAULT.mrpack_index_bytes as usize + 10];
        let msg = read_default(&[(INDEX_FILE, &big)])
            .expect_err("too big")
            .to_string();
        assert!(msg.contains("larger than"), "{msg}");
    }

    #[test]
    fn entry_total_and_count_caps_come_from_limits() {
        let dir = tempfile::tempdir().expect("tmp");
        let entries: &[(&str, &[u8])] = &[
            (INDEX_FILE, INDEX.as_bytes()),
            ("overrides/a", b"0123456789"),
            ("overrides/b", b"0123456789"),
        ];
        let limits = |f: &dyn Fn(&mut Limits)| {
            let mut l = Limits::DEFAULT;
            f(&mut l);
            l
        };
        let one = limits(&|l| l.mrpack_entry_bytes = 9);
        let msg = read_with(dir.path(), entries, &one)
            .expect_err("entry")
            .to_string();
        assert!(msg.contains("overrides/a") && msg.contains('9'), "{msg}");
        let all = limits(&|l| l.mrpack_total_bytes = 15);
        let msg = read_with(dir.path(), entries, &all)
            .expect_err("total")
            .to_string();
        assert!(msg.contains("exceed 15 bytes"), "{msg}");
        let few = limits(&|l| l.mrpack_entries = 2);
        let msg = read_with(dir.path(), entries, &few)
            .expect_err("count")
            .to_string();
        assert!(msg.contains("3 entries"), "{msg}");
        read_with(dir.path(), entries, &Limits::DEFAULT).expect("within the caps");
    }
}
