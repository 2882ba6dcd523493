//! Every real packwiz pack in the corpus folder named by `ATLAS_PACKWIZ_CORPUS`
//! loads and checks against the figures its SOURCES.md states: index entries,
//! metafiles, CRLF files, CurseForge-API files and listed-but-missing files.
//! Without the variable the test notes it and passes; with it, the folder must exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use atlas_builder::check;
use atlas_builder::packwiz::{DirFiles, DownloadMode, EntryStatus, PackFiles as _, PackwizPack};

const ENV: &str = "ATLAS_PACKWIZ_CORPUS";

/// The figures SOURCES.md states for one pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    metafiles: usize,
    index_entries: usize,
    crlf_toml: usize,
}

/// Number before `label` in `text` ("22 metafiles" -> 22 for "metafiles").
fn number_before(text: &str, label: &str) -> Option<usize> {
    let at = text.find(label)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// Parses "Facts worth testing against" lines:
/// `- NAME: N metafiles (.pw.toml), M index entries, K TOML files with CRLF line endings`,
/// and the "Removed" list (`- PACK/PATH`).
fn parse_sources(text: &str) -> (BTreeMap<String, Facts>, BTreeSet<String>) {
    let mut facts = BTreeMap::new();
    let mut removed = BTreeSet::new();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with("Facts worth testing") {
            section = "facts";
        } else if line.starts_with("Removed") {
            section = "removed";
        }
        let Some(item) = line.strip_prefix("- ") else {
            continue;
        };
        match section {
            "facts" => {
                let (name, rest) = item.split_once(": ").expect("`- name: figures`");
                let f = Facts {
                    metafiles: number_before(rest, "metafiles").expect("metafiles figure"),
                    index_entries: number_before(rest, "index entries").expect("index entries figure"),
                    crlf_toml: number_before(rest, "TOML files with CRLF").expect("CRLF figure"),
                };
                facts.insert(name.trim().to_owned(), f);
            }
            "removed" => {
                removed.insert(item.trim().to_owned());
            }
            _ => {}
        }
    }
    (facts, removed)
}

/// `.toml` files under `dir` containing a CRLF line ending.
fn crlf_toml_files(dir: &Path) -> usize {
    let files = DirFiles::open(dir).expect("list");
    files
        .list()
        .iter()
        .filter(|p| p.ends_with(".toml"))
        .filter(|p| {
            let bytes = files.read(p).expect("read").unwrap_or_default();
            bytes.windows(2).any(|w| w == b"\r\n")
        })
        .count()
}

#[test]
fn corpus_packs_match_their_sources() {
    let Some(root) = std::env::var_os(ENV) else {
        println!("note: {ENV} is not set; skipping the packwiz corpus (CI sets it to shared/corpus/packwiz)");
        return;
    };
    let root = Path::new(&root);
    assert!(root.is_dir(), "{ENV}={} is not a directory", root.display());
    let sources = std::fs::read_to_string(root.join("SOURCES.md")).expect("SOURCES.md in the corpus folder");
    let (facts, removed) = parse_sources(&sources);
    assert!(!facts.is_empty(), "no facts parsed from SOURCES.md");

    let dirs: BTreeSet<String> = std::fs::read_dir(root)
        .expect("read corpus")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        dirs,
        facts.keys().cloned().collect(),
        "corpus folders vs SOURCES.md facts"
    );

    let (mut crlf_total, mut crlf_expected) = (0, 0);
    for (name, want) in &facts {
        let dir = root.join(name);
        let files = DirFiles::open(&dir).expect("list pack");
        let (pack, diags) = PackwizPack::load(&files).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pack.entries.len(), want.index_entries, "{name}: index entries");
        assert_eq!(
            pack.entries.iter().filter(|e| e.metafile).count(),
            want.metafiles,
            "{name}: metafile entries"
        );
        assert_eq!(pack.metafiles.len(), want.metafiles, "{name}: metafiles read");
        let crlf = crlf_toml_files(&dir);
        assert_eq!(crlf, want.crlf_toml, "{name}: TOML files with CRLF");
        crlf_total += crlf;
        crlf_expected += want.crlf_toml;

        // Every metafile's side, hash and download mode were read, consistently.
        for m in &pack.metafiles {
            assert_eq!(
                m.download.hash.bytes.len(),
                m.download.hash.format.digest_len(),
                "{}",
                m.path
            );
            match m.download.mode {
                DownloadMode::Url => assert!(m.download.url.is_some(), "{}", m.path),
                DownloadMode::CurseForge => {
                    assert!(
                        m.download.url.is_none() && m.update.curseforge.is_some(),
                        "{}",
                        m.path
                    )
                }
            }
            assert!(m.install_path.ends_with(&m.filename), "{}", m.path);
        }

        // Only files SOURCES.md says were removed are missing; all else verifies.
        let missing: BTreeSet<String> = pack
            .entries
            .iter()
            .filter(|e| e.status == EntryStatus::Missing)
            .map(|e| format!("{name}/{}", e.path))
            .collect();
        assert!(
            missing.is_subset(&removed),
            "{name}: unexpectedly missing {:?}",
            missing.difference(&removed)
        );
        assert!(
            pack.entries
                .iter()
                .all(|e| matches!(e.status, EntryStatus::Verified | EntryStatus::Missing)),
            "{name}: every present entry verifies"
        );
        let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
        assert_eq!(
            errors.len(),
            missing.len(),
            "{name}: only missing files are errors: {errors:#?}"
        );

        let started = Instant::now();
        let report = check::check_dir(&dir).expect("check runs");
        let elapsed = started.elapsed();
        assert_eq!(report.summary.index_entries, want.index_entries);
        assert_eq!(report.summary.metafiles, want.metafiles);
        assert_eq!(report.summary.missing.len(), missing.len());
        let cf: Vec<&str> = pack
            .metafiles
            .iter()
            .filter(|m| m.needs_curseforge_api())
            .map(|m| m.path.as_str())
            .collect();
        assert_eq!(report.summary.curseforge_api, cf, "{name}: CurseForge API files");
        assert_eq!(report.ok(), missing.is_empty(), "{name}: {}", report.human());
        println!(
            "{name}: {} entries, {} metafiles ({} via CurseForge API), {} missing, {} CRLF; check {:?}",
            want.index_entries,
            want.metafiles,
            cf.len(),
            missing.len(),
            crlf,
            elapsed
        );
        if name == "gregtech-modern" {
            assert!(!missing.is_empty(), "gregtech-modern lists removed scripts");
            assert!(!cf.is_empty(), "gregtech-modern downloads through CurseForge");
        }
    }
    assert_eq!(crlf_total, crlf_expected, "CRLF files in total");
}
