//! Unit tests of the GitHub formatting: workflow-command escaping,
//! `$GITHUB_OUTPUT` blocks, markdown escaping and the summaries.

use super::*;
use std::path::PathBuf;

use crate::check::{CheckSummary, PackFormat};
use crate::diff::{BuildInfo, Changelog, ModEntry, ModUpdate};
use crate::packwiz::Diagnostic;
use crate::plan::PlanSummary;
use crate::pointer::{PointerStatus, PointerUpdate};

fn gh() -> Github {
    Github {
        output: None,
        summary: None,
        workspace: Some(PathBuf::from("/ws")),
        repository_url: Some("https://github.com/me/pack".into()),
        public_url: Some("https://cdn.example.com/atlas/".into()),
    }
}

#[test]
fn data_escapes_percent_and_line_breaks() {
    assert_eq!(escape_data("100% done\r\nnext"), "100%25 done%0D%0Anext");
    // `%` first, so an escape is never escaped twice.
    assert_eq!(escape_data("%0A"), "%250A");
    // Colons and commas are fine in a message.
    assert_eq!(escape_data("a: b, c"), "a: b, c");
}

#[test]
fn properties_also_escape_colon_and_comma() {
    assert_eq!(escape_property("C:\\a,b%\n"), "C%3A\\a%2Cb%25%0A");
}

#[test]
fn annotation_names_file_line_and_column() {
    let mut d = Diagnostic::error("mods/x.pw.toml", Some(3), "bad hash: 50%\nsee docs, please");
    d.column = Some(7);
    assert_eq!(
        annotation(&d, "pack/mods/x.pw.toml"),
        "::error file=pack/mods/x.pw.toml,line=3,col=7,title=atlas error::bad hash: 50%25%0Asee docs, please"
    );
    let w = Diagnostic::warning("we,ird:name.toml", None, "unused");
    assert_eq!(
        annotation(&w, "we,ird:name.toml"),
        "::warning file=we%2Cird%3Aname.toml,title=atlas warning::unused"
    );
}

#[test]
fn annotation_paths_are_relative_to_the_workspace() {
    let g = gh();
    let p = |base: &str, file: &str| g.annotation_path(Path::new(base), file);
    assert_eq!(p("/ws", "packs/a/pack.toml"), "packs/a/pack.toml");
    assert_eq!(p("/ws/packs/a", "pack.toml"), "packs/a/pack.toml");
    assert_eq!(p("./packs/a", "mods/b.pw.toml"), "packs/a/mods/b.pw.toml");
    assert_eq!(p(".", "pack.toml"), "pack.toml");
    assert_eq!(p("/elsewhere", "pack.toml"), "/elsewhere/pack.toml");
}

#[test]
fn diagnostics_base_strips_the_pack_subdirectory() {
    let dir = tempfile::tempdir().expect("tmp");
    let pack = dir.path().join("packs/a");
    std::fs::create_dir_all(&pack).expect("mkdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(diagnostics_base(&pack, Some("packs/a")), root);
    assert_eq!(diagnostics_base(&pack, None), root.join("packs/a"));
}

#[test]
fn outputs_use_heredoc_blocks_for_multiline_values() {
    let text = output_lines(&[
        ("build-id", "abc".into()),
        ("notes", "one\ntwo".into()),
        ("tricky", "ATLAS_EOF_0\nx".into()),
    ]);
    assert_eq!(
        text,
        "build-id=abc\nnotes<<ATLAS_EOF_0\none\ntwo\nATLAS_EOF_0\ntricky<<ATLAS_EOF_1\nATLAS_EOF_0\nx\nATLAS_EOF_1\n"
    );
}

#[test]
fn markdown_is_escaped() {
    assert_eq!(
        md("a|b <script> *x* `y`\nz"),
        "a\\|b \\<script\\> \\*x\\* \\`y\\` z"
    );
}

#[test]
fn object_urls_prefer_the_public_url() {
    let mut g = gh();
    assert_eq!(
        g.object_url("s3://b/p", "packs/x/channels/dev.json"),
        "https://cdn.example.com/atlas/packs/x/channels/dev.json"
    );
    g.public_url = None;
    assert_eq!(g.object_url("s3://b/p/", "k"), "s3://b/p/k");
    assert_eq!(g.object_url("/srv/store", "k"), "file:///srv/store/k");
}

fn report(dry_run: bool) -> PublishReport {
    PublishReport {
        plan: PlanSummary {
            pack: "demo".into(),
            version: "1.2.0".into(),
            build: "b".repeat(64),
            commit: "c".repeat(40),
            dirty: false,
            files: 12,
            blobs: 10,
            bytes: 4096,
            manifest_bytes: 300,
        },
        store: "s3://bucket/atlas".into(),
        dry_run,
        blobs_new: 3,
        blobs_reused: 7,
        bytes_new: 2048,
        bytes_reused: 2048,
        manifest_key: format!("packs/demo/builds/{}/manifest.pb.zst", "b".repeat(64)),
        manifest_new: true,
        pointer: (!dry_run).then(|| PointerUpdate {
            channel: "dev".into(),
            key: "packs/demo/channels/dev.json".into(),
            status: PointerStatus::Updated,
            version: 4,
            previous_version: Some(3),
            previous_build: Some("a".repeat(64)),
            expires_at: 1,
        }),
        mods: Default::default(),
        exports: None,
        pages: None,
        early: None,
    }
}

fn changelog() -> Changelog {
    Changelog {
        pack: "demo".into(),
        from: BuildInfo {
            build: "a".repeat(64),
            version: "1.1.0".into(),
            minecraft: "1.21.1".into(),
        },
        to: BuildInfo {
            build: "b".repeat(64),
            version: "1.2.0".into(),
            minecraft: "1.21.1".into(),
        },
        added: vec![ModEntry {
            name: "Sodium".into(),
            version: "0.6.0".into(),
            path: "mods/sodium.jar".into(),
        }],
        removed: vec![ModEntry {
            name: "Old|Mod".into(),
            version: "1".into(),
            path: "mods/old.jar".into(),
        }],
        updated: vec![ModUpdate {
            name: "Lithium".into(),
            from: "0.12".into(),
            to: "0.13".into(),
            path: "mods/lithium.jar".into(),
        }],
        files_added: vec![],
        files_removed: vec![],
        files_changed: vec!["config/a.json".into()],
    }
}

#[test]
fn publish_outputs_and_summary() {
    let g = gh();
    let r = report(false);
    let outputs = publish_outputs(&g, &r, "dev");
    let get = |k: &str| outputs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("build-id"), Some("b".repeat(64).as_str()));
    assert_eq!(get("pack-version"), Some("1.2.0"));
    assert_eq!(get("files-new"), Some("3"));
    assert_eq!(get("bytes-reused"), Some("2048"));
    assert_eq!(get("pointer-version"), Some("4"));
    assert_eq!(
        get("pointer-url"),
        Some("https://cdn.example.com/atlas/packs/demo/channels/dev.json")
    );
    let s = publish_summary(&g, &r, "dev", Some(&changelog()));
    for needle in [
        "## Atlas: Published demo 1.2.0 to `dev`",
        "| Commit | [`cccccccccccc`](https://github.com/me/pack/commit/cccccccc",
        "| Build | `bbbb",
        "`dev` → version 4 (updated)",
        "| new | 3 | 2.0 KiB |",
        "| reused | 7 | 2.0 KiB |",
        "Mods: 1 added, 1 removed, 1 updated. Other files: 0 added, 0 removed, 1 changed.",
        "- Added **Sodium** 0.6.0",
        "- Removed **Old\\|Mod** 1",
        "- Updated **Lithium** 0.12 → 0.13",
        "- Changed `config/a.json`",
        "- Pointer: <https://cdn.example.com/atlas/packs/demo/channels/dev.json>",
        "- Manifest: <https://cdn.example.com/atlas/packs/demo/builds/bbbb",
    ] {
        assert!(s.contains(needle), "summary lacks {needle:?}:\n{s}");
    }
}

#[test]
fn dry_run_summary_says_nothing_changed() {
    let s = publish_summary(&gh(), &report(true), "dev", None);
    assert!(s.contains("Dry run of demo 1.2.0"), "{s}");
    assert!(s.contains("not changed (dry run)"), "{s}");
    assert!(s.contains("| to upload | 3 |"), "{s}");
}

#[test]
fn first_build_on_a_channel() {
    let mut r = report(false);
    if let Some(p) = r.pointer.as_mut() {
        p.previous_build = None;
    }
    let s = publish_summary(&gh(), &r, "dev", None);
    assert!(s.contains("First build on this channel."), "{s}");
}

#[test]
fn check_summary_lists_every_problem() {
    let r = CheckReport {
        pack_dir: "/ws/pack".into(),
        format: PackFormat::Packwiz,
        id: Some("demo".into()),
        name: Some("Demo".into()),
        version: Some("1.0".into()),
        minecraft: None,
        loader: None,
        errors: 1,
        warnings: 1,
        diagnostics: vec![
            Diagnostic::error("index.toml", Some(4), "missing file"),
            Diagnostic::warning("mods/a.pw.toml", None, "odd"),
        ],
        summary: CheckSummary::default(),
        elapsed_ms: 0,
    };
    let g = gh();
    let (outputs, s) = check_summary(&g, &r, Path::new("/ws/pack"));
    assert!(outputs.contains(&("errors", "1".to_owned())));
    assert!(s.contains("## Atlas check failed: Demo 1.0"), "{s}");
    assert!(
        s.contains("| error | `pack/index.toml:4` | missing file |"),
        "{s}"
    );
    let ann = g.annotations(&r, Path::new("/ws/pack"));
    assert_eq!(
        ann[0],
        "::error file=pack/index.toml,line=4,title=atlas error::missing file"
    );
    assert_eq!(
        ann[1],
        "::warning file=pack/mods/a.pw.toml,title=atlas warning::odd"
    );
}
