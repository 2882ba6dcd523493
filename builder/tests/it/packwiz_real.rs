//! Real packwiz packs, vendored as small samples in
//! `tests/fixtures/packwiz-real/` (repository, commit and licence of each in
//! its SOURCES.md): packwiz's formats from 2021 (`packwiz:1.0.0`, `.toml`
//! metafiles) to today, Modrinth-mode and CurseForge-mode metafiles,
//! Fabric, Quilt, Forge and NeoForge, no-internal-hashes indexes, `pin`, and
//! `acceptable-game-versions`. `atlas-builder check` accepts every one
//! (warnings allowed) and reads what packwiz reads. Timings are printed, not
//! asserted (`scripts/bench-check.sh` measures them; see docs/BENCHMARKS.md).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atlas_builder::check;
use atlas_builder::packwiz::{DirFiles, DownloadMode, EntryStatus, HashFormat, PackwizLoader, PackwizPack};
use atlas_builder::resolve::deps::Accepts;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packwiz-real")
}

/// The folders SOURCES.md's table lists (`| folder | repository | ...`).
fn listed() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("SOURCES.md")).expect("SOURCES.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

fn load(name: &str) -> (PackwizPack, Vec<String>) {
    let files = DirFiles::open(&root().join(name)).expect("fixture folder");
    let (pack, diags) = PackwizPack::load(&files).unwrap_or_else(|e| panic!("{name}: {e}"));
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
    (pack, diags.iter().map(ToString::to_string).collect())
}

#[test]
fn every_real_pack_checks_without_errors() {
    let names = listed();
    let on_disk: BTreeSet<String> = std::fs::read_dir(root())
        .expect("fixtures")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().cloned().collect::<BTreeSet<_>>(),
        on_disk,
        "SOURCES.md lists every fixture folder"
    );
    assert!(names.len() >= 7);
    for name in &names {
        let started = Instant::now();
        let report = check::check_dir(&root().join(name)).expect("check runs");
        let elapsed = started.elapsed();
        assert!(report.ok(), "{name}: {}", report.human());
        assert!(report.summary.index_entries > 0, "{name}");
        assert_eq!(report.summary.missing, Vec::<String>::new(), "{name}");
        println!(
            "{name}: {} entries, {} metafiles, {} warnings; check {elapsed:?}",
            report.summary.index_entries, report.summary.metafiles, report.warnings
        );
    }
}

#[test]
fn packwiz_1_0_0_from_2021_with_toml_metafiles() {
    let (pw, _) = load("example-pack-2021");
    assert_eq!(pw.pack.pack_format, "packwiz:1.0.0");
    assert_eq!(pw.metafiles.len(), 2);
    assert!(
        pw.metafiles
            .iter()
            .all(|m| m.path.ends_with(".toml") && !m.path.ends_with(".pw.toml"))
    );
    // A CurseForge file by URL, with its murmur2 fingerprint.
    let cf = pw
        .metafiles
        .iter()
        .find(|m| m.update.curseforge.is_some())
        .expect("curseforge metafile");
    assert_eq!(cf.download.hash.format, HashFormat::Murmur2);
    assert_eq!(cf.download.mode, DownloadMode::Url);
    assert!(pw.entries.iter().all(|e| e.status == EntryStatus::Verified));
}

#[test]
fn quilt_and_fabric_modrinth_packs() {
    let (quilt, _) = load("adrenaline-quilt-2022");
    assert_eq!(
        quilt.pack.loader.as_ref().map(|l| l.loader),
        Some(PackwizLoader::Quilt)
    );
    assert_eq!(Accepts::for_packwiz(&quilt.pack).loaders(), ["quilt", "fabric"]);
    assert!(quilt.metafiles.iter().all(|m| m.update.modrinth.is_some()));
    let (fabric, _) = load("additive-fabric-pinned");
    assert_eq!(
        fabric.pack.loader.as_ref().map(|l| l.loader),
        Some(PackwizLoader::Fabric)
    );
}

#[test]
fn no_internal_hashes_entries_are_installed_unverified_with_one_warning() {
    let (pw, diags) = load("adrenaline-fabric-2026");
    assert!(pw.pack.index_hash.is_none());
    assert!(!pw.entries.is_empty());
    assert!(
        pw.entries
            .iter()
            .all(|e| e.hash.is_none() && e.status == EntryStatus::Unchecked)
    );
    let unhashed: Vec<&String> = diags.iter().filter(|d| d.contains("without `hash`")).collect();
    assert_eq!(unhashed.len(), 1, "{diags:#?}");
    assert!(
        unhashed[0].contains(&format!("{} entries", pw.entries.len())),
        "{}",
        unhashed[0]
    );
}

#[test]
fn pinned_metafiles_are_read_without_complaint() {
    let (pw, diags) = load("additive-fabric-pinned");
    let text =
        |p: &str| std::fs::read_to_string(root().join("additive-fabric-pinned").join(p)).expect("read");
    let pinned: Vec<&str> = pw
        .metafiles
        .iter()
        .map(|m| m.path.as_str())
        .filter(|p| text(p).contains("pin = true"))
        .collect();
    assert!(!pinned.is_empty(), "the sample holds `pin = true` metafiles");
    assert!(
        !diags.iter().any(|d| d.contains("`pin`")),
        "pin is a packwiz field: {diags:#?}"
    );
}

#[test]
fn curseforge_mode_packs_for_forge_neoforge_and_fabric() {
    for (name, loader, minecraft) in [
        ("gtceu-modern-forge-2024", PackwizLoader::Forge, "1.20.1"),
        ("plain-create-neoforge", PackwizLoader::Neoforge, "1.20.1"),
        ("toralia-fabric-cf", PackwizLoader::Fabric, "1.21.1"),
    ] {
        let (pw, _) = load(name);
        assert_eq!(pw.pack.loader.as_ref().map(|l| l.loader), Some(loader), "{name}");
        assert_eq!(pw.pack.minecraft, minecraft, "{name}");
        let cf: Vec<_> = pw.metafiles.iter().filter(|m| m.needs_curseforge_api()).collect();
        assert!(!cf.is_empty(), "{name}");
        assert!(
            cf.iter()
                .all(|m| m.download.url.is_none() && m.update.curseforge.is_some()),
            "{name}"
        );
    }
    // NeoForge for 1.20.1 uses Forge's numbering (47.1.x), and takes Forge mods.
    let (neo, _) = load("plain-create-neoforge");
    assert_eq!(
        neo.pack.loader.as_ref().map(|l| l.version.as_str()),
        Some("47.1.106")
    );
    assert_eq!(Accepts::for_packwiz(&neo.pack).loaders(), ["neoforge", "forge"]);
    // Toralia takes 1.21 mods in its 1.21.1 pack.
    let (toralia, _) = load("toralia-fabric-cf");
    assert_eq!(toralia.pack.acceptable_game_versions(), ["1.21"]);
}
