//! packwiz packs built in a temporary directory: CRLF files, spaces in paths,
//! every hash format verified right and wrong, index and pack.toml hash
//! mismatches, syntax errors and unknown fields with their lines, missing
//! files, `metadata:curseforge` downloads, and the `check` command on them.

use crate::common::builder;

use std::path::Path;

use atlas_builder::check::{self, PackFormat};
use atlas_builder::packwiz::{
    DirFiles, DownloadMode, EntryStatus, HashFormat, MetaSide, PackwizError, PackwizPack, UpstreamHash,
};
use atlas_testkit::git::GitRepo;
use sha2::{Digest as _, Sha256};

/// Digests of the bytes `abc`: FIPS 180 (SHA) and RFC 1321 (MD5) test
/// vectors, and packwiz's pinned murmur2 fingerprint (curseforge/murmur2/hash_test.go).
const ABC: [(&str, &str); 5] = [
    ("sha1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (
        "sha256",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ),
    (
        "sha512",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    ),
    ("md5", "900150983cd24fb0d6963f7d28e17f72"),
    ("murmur2", "1621425345"),
];

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A pack under construction: files, then index.toml and pack.toml with real hashes.
struct PackBuilder {
    dir: tempfile::TempDir,
    crlf: bool,
    index: String,
}

impl PackBuilder {
    fn new(crlf: bool) -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            crlf,
            index: "hash-format = \"sha256\"\n".into(),
        }
    }

    fn eol(&self, text: &str) -> String {
        if self.crlf {
            text.replace('\n', "\r\n")
        } else {
            text.to_owned()
        }
    }

    fn write_raw(&self, rel: &str, bytes: &[u8]) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    /// Writes a file and lists it in the index with its sha256.
    fn file(&mut self, rel: &str, text: &str, metafile: bool) -> &mut Self {
        let bytes = self.eol(text).into_bytes();
        self.write_raw(rel, &bytes);
        let entry = format!(
            "\n[[files]]\nfile = \"{rel}\"\nhash = \"{}\"\n{}",
            sha256_hex(&bytes),
            if metafile { "metafile = true\n" } else { "" }
        );
        self.index.push_str(&entry);
        self
    }

    /// Lists a file in the index with the given format and hash, as written.
    fn entry(&mut self, rel: &str, format: &str, hash: &str) -> &mut Self {
        self.index.push_str(&format!(
            "\n[[files]]\nfile = \"{rel}\"\nhash-format = \"{format}\"\nhash = \"{hash}\"\n"
        ));
        self
    }

    /// Writes index.toml and pack.toml (with `extra` appended to pack.toml).
    fn finish(&self, extra: &str) -> &Path {
        let index = self.eol(&self.index).into_bytes();
        self.write_raw("index.toml", &index);
        let pack = format!(
            "name = \"Test Pack\"\nauthor = \"me\"\nversion = \"1.2.3\"\npack-format = \"packwiz:1.1.0\"\n\n\
             [index]\nfile = \"index.toml\"\nhash-format = \"sha256\"\nhash = \"{}\"\n\n\
             [versions]\nminecraft = \"1.21.1\"\nfabric = \"0.16.9\"\n\n[options]\nacceptable-game-versions = [\"1.21\"]\n{extra}",
            sha256_hex(&index)
        );
        self.write_raw("pack.toml", self.eol(&pack).as_bytes());
        self.dir.path()
    }
}

fn load(dir: &Path) -> (PackwizPack, Vec<String>) {
    let files = DirFiles::open(dir).expect("open");
    let (pack, diags) = PackwizPack::load(&files).expect("loads");
    (pack, diags.iter().map(ToString::to_string).collect())
}

const SODIUM: &str = "name = \"Sodium\"\nfilename = \"sodium fabric 0.5.jar\"\nside = \"client\"\n\n[download]\n\
    url = \"https://cdn.modrinth.com/data/AANobbMI/versions/x/sodium%20fabric%2B0.5.jar\"\n\
    hash-format = \"sha1\"\nhash = \"a9993e364706816aba3e25717850c26c9cd0d89d\"\n\n\
    [update]\n[update.modrinth]\nmod-id = \"AANobbMI\"\nversion = \"x\"\n";

const JEI: &str = "name = \"JEI\"\nfilename = \"jei.jar\"\nside = \"server\"\n\n[download]\n\
    hash-format = \"murmur2\"\nhash = \"1621425345\"\nmode = \"metadata:curseforge\"\n\n\
    [option]\noptional = true\ndefault = true\ndescription = \"Recipes\"\n\n\
    [update]\n[update.curseforge]\nfile-id = 4712866\nproject-id = 238222\n";

#[test]
fn crlf_pack_with_spaces_in_paths_loads_clean() {
    let mut b = PackBuilder::new(true);
    b.file("config/my config.json", "{\n  \"a\": 1\n}\n", false)
        .file("mods/sodium fabric.pw.toml", SODIUM, true)
        .file("mods/jei.pw.toml", JEI, true);
    let dir = b.finish("");
    let (pack, diags) = load(dir);
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(pack.pack.name, "Test Pack");
    assert_eq!(pack.pack.minecraft, "1.21.1");
    assert_eq!(
        pack.pack.loader.as_ref().map(|l| l.version.as_str()),
        Some("0.16.9")
    );
    assert_eq!(pack.entries.len(), 3);
    assert!(pack.entries.iter().all(|e| e.status == EntryStatus::Verified));
    assert_eq!(pack.metafiles.len(), 2);
    let sodium = &pack.metafiles[0];
    assert_eq!(sodium.install_path, "mods/sodium fabric 0.5.jar");
    assert_eq!(sodium.side, MetaSide::Client);
    assert_eq!(sodium.download.mode, DownloadMode::Url);
    assert!(
        sodium
            .download
            .url
            .as_deref()
            .is_some_and(|u| u.contains("sodium%20fabric%2B0.5.jar"))
    );
    let jei = &pack.metafiles[1];
    assert_eq!(jei.side, MetaSide::Server);
    assert!(jei.needs_curseforge_api());
    assert_eq!(jei.download.hash.format, HashFormat::Murmur2);
    assert_eq!(jei.download.hash.bytes, 1_621_425_345u32.to_be_bytes());
    assert_eq!(
        jei.option.as_ref().map(|o| (o.optional, o.default)),
        Some((true, true))
    );

    let report = check::check_dir(dir).expect("check");
    assert!(report.ok(), "{}", report.human());
    assert_eq!(report.format, PackFormat::Packwiz);
    assert_eq!(report.summary.curseforge_api, ["mods/jei.pw.toml"]);
    assert_eq!(
        report.summary.by_download_mode.get("metadata:curseforge"),
        Some(&1)
    );
    assert_eq!(report.summary.by_side.get("client"), Some(&1));
    assert_eq!(report.summary.optional, 1);
}

#[test]
fn every_hash_format_is_verified_right_and_wrong() {
    let mut b = PackBuilder::new(false);
    b.write_raw("data/abc.txt", b"abc");
    // murmur2 skips whitespace: the same fingerprint for a file with spaces and newlines.
    b.write_raw("data/abc-spaced.txt", b"a b\r\nc\n");
    b.entry("data/abc-spaced.txt", "murmur2", "1621425345");
    for (format, good) in ABC {
        b.entry("data/abc.txt", format, good);
        let wrong = UpstreamHash::of(format.parse().expect("format"), b"abd").to_string();
        b.entry("data/abc.txt", format, &wrong);
    }
    let dir = b.finish("");
    let (pack, diags) = load(dir);
    let statuses: Vec<EntryStatus> = pack.entries.iter().map(|e| e.status).collect();
    let mut expected = vec![EntryStatus::Verified];
    expected.extend([EntryStatus::Verified, EntryStatus::Mismatch].repeat(5));
    assert_eq!(statuses, expected);
    let mismatches: Vec<&String> = diags
        .iter()
        .filter(|d| d.contains("does not match its hash"))
        .collect();
    assert_eq!(mismatches.len(), 5, "{diags:#?}");
    for (format, good) in ABC {
        assert!(
            mismatches
                .iter()
                .any(|m| m.contains(&format!("actual {good} ({format})"))),
            "{format}: {mismatches:#?}"
        );
    }
    // The first wrong entry (sha1) starts at line 13 of index.toml.
    assert!(
        mismatches[0].starts_with("index.toml:13: error: `data/abc.txt` does not match"),
        "{}",
        mismatches[0]
    );
}

#[test]
fn pack_toml_index_hash_mismatch_is_reported() {
    let mut b = PackBuilder::new(false);
    b.file("config/a.txt", "a", false);
    let dir = b.finish("");
    std::fs::write(dir.join("index.toml"), format!("{}\n# edited\n", b.index)).expect("edit");
    let (pack, diags) = load(dir);
    assert_eq!(pack.entries.len(), 1);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(
        diags[0].starts_with("pack.toml:9: error: [index] hash does not match index.toml"),
        "{}",
        diags[0]
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    let mut b = PackBuilder::new(true);
    b.file(
        "mods/broken.pw.toml",
        "name = \"x\"\nfilename = \"x.jar\"\nside = \n",
        true,
    )
    .file("mods/jei.pw.toml", JEI, true);
    let dir = b.finish("");
    let (pack, diags) = load(dir);
    assert_eq!(pack.metafiles.len(), 1, "the other metafile is still read");
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(diags[0].starts_with("mods/broken.pw.toml:3:"), "{}", diags[0]);

    // A broken pack.toml stops the load, with its line.
    std::fs::write(
        dir.join("pack.toml"),
        "name = \"x\"\r\npack-format = \"packwiz:1.1.0\"\r\n[index\r\n",
    )
    .expect("write");
    let files = DirFiles::open(dir).expect("open");
    match PackwizPack::load(&files) {
        Err(PackwizError::Invalid(d)) => {
            let last = d.last().expect("a diagnostic");
            assert_eq!((last.file.as_str(), last.line), ("pack.toml", Some(3)), "{last}");
            assert!(last.column.is_some());
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let report = check::check_dir(dir).expect("check");
    assert_eq!(report.errors, 1);
    assert!(report.human().contains("pack.toml:3:"), "{}", report.human());
}

#[test]
fn unknown_metafile_field_names_the_nearest() {
    let mut b = PackBuilder::new(false);
    b.file(
        "mods/sodium.pw.toml",
        &SODIUM.replace("filename =", "filname ="),
        true,
    );
    let (pack, diags) = load(b.finish(""));
    assert!(pack.metafiles.is_empty(), "`filename` is still missing: an error");
    assert!(
        diags.contains(
            &"mods/sodium.pw.toml:2: warning: unknown field `filname` is ignored; did you mean `filename`?"
                .to_owned()
        ),
        "{diags:#?}"
    );
    assert!(
        diags.iter().any(|d| d.contains("error: `filename` is required")),
        "{diags:#?}"
    );
}

#[test]
fn listed_but_missing_files_are_reported() {
    let mut b = PackBuilder::new(false);
    b.file("config/a.txt", "a", false)
        .entry("kubejs/server_scripts/gone.js", "sha256", &sha256_hex(b"x"))
        .entry("mods/gone.pw.toml", "sha256", &sha256_hex(b"x"));
    let dir = b.finish("");
    let report = check::check_dir(dir).expect("check");
    assert_eq!(report.errors, 2, "{}", report.human());
    assert_eq!(
        report.summary.missing,
        ["kubejs/server_scripts/gone.js", "mods/gone.pw.toml"]
    );
    let listed_missing = report
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("is listed but missing"));
    assert_eq!(listed_missing.count(), 2, "{}", report.human());
    // The second entry ends in .pw.toml without `metafile = true`: a warning, not an error.
    assert_eq!(report.warnings, 1, "{}", report.human());
    assert!(report.result().is_err());
}

#[test]
fn unknown_pack_format_major_is_refused() {
    let mut b = PackBuilder::new(false);
    b.file("config/a.txt", "a", false);
    let dir = b.finish("");
    let text = std::fs::read_to_string(dir.join("pack.toml")).expect("read");
    std::fs::write(
        dir.join("pack.toml"),
        text.replace("packwiz:1.1.0", "packwiz:2.0.0"),
    )
    .expect("write");
    let report = check::check_dir(dir).expect("check");
    assert_eq!(report.errors, 1);
    let msg = report.diagnostics[0].to_string();
    assert!(
        msg.starts_with("pack.toml:4: error: pack-format `packwiz:2.0.0`"),
        "{msg}"
    );
    assert!(msg.contains("Atlas cannot read"), "{msg}");
}

#[test]
fn check_command_exit_codes_and_json() {
    let mut b = PackBuilder::new(false);
    b.file("mods/jei.pw.toml", JEI, true);
    let dir = b.finish("");
    let out = builder()
        .args(["--json", "check", "--dir"])
        .arg(dir)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["format"], "packwiz");
    assert_eq!(report["summary"]["curseforge_api"][0], "mods/jei.pw.toml");

    std::fs::write(dir.join("mods/jei.pw.toml"), "changed").expect("write");
    let out = builder().args(["check", "--dir"]).arg(dir).output().expect("run");
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("index.toml:3: error: `mods/jei.pw.toml` does not match its hash"),
        "{stdout}"
    );
}

#[test]
fn check_command_reads_a_git_commit_in_a_subdirectory() {
    let repo = GitRepo::init().expect("init");
    let mut b = PackBuilder::new(false);
    b.file("mods/sodium.pw.toml", SODIUM, true);
    let src = b.finish("");
    for rel in ["pack.toml", "index.toml", "mods/sodium.pw.toml"] {
        repo.write(
            &format!("modpack/{rel}"),
            std::fs::read(src.join(rel)).expect("read"),
        )
        .expect("write");
    }
    repo.commit_all("pack").expect("commit");
    let out = builder()
        .args(["--json", "check", "--repo"])
        .arg(repo.path().join("modpack"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // An uncommitted edit is only seen with --allow-dirty, and named from the repository root.
    repo.write("modpack/mods/sodium.pw.toml", "x").expect("write");
    let out = builder()
        .args(["check", "--repo"])
        .arg(repo.path().join("modpack"))
        .output()
        .expect("run");
    assert!(out.status.success());
    let out = builder()
        .args(["check", "--allow-dirty", "--repo"])
        .arg(repo.path().join("modpack"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("modpack/index.toml:3: error: `mods/sodium.pw.toml` does not match"),
        "{stdout}"
    );
}

#[test]
fn what_packwiz_accepts_is_a_warning_never_an_error() {
    // Each as packwiz writes it: `pin = true` (`packwiz pin`), `release-channel`
    // under [update.curseforge] (packwiz before October 2021), an index
    // entry without `hash` (`no-internal-hashes`), an index without a
    // top-level `hash-format` (packwiz reads sha256), and a field from a
    // newer packwiz.
    let mut b = PackBuilder::new(true);
    b.index.clear();
    b.file(
        "mods/jei.pw.toml",
        &JEI.replace(
            "side = \"server\"\n",
            "side = \"server\"\npin = true\nfuture-field = 1\n",
        )
        .replace("project-id", "release-channel = \"release\"\nproject-id"),
        true,
    );
    b.write_raw("config/unhashed.json", b"{}");
    b.index.push_str("\n[[files]]\nfile = \"config/unhashed.json\"\n");
    let dir = b.finish("");
    let report = check::check_dir(dir).expect("check");
    assert!(report.ok(), "{}", report.human());
    let lines: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
    let has = |s: &str| lines.iter().any(|l| l.starts_with(s));
    assert!(
        has("mods/jei.pw.toml:5: warning: unknown field `future-field` is ignored"),
        "{lines:#?}"
    );
    assert!(
        has("mods/jei.pw.toml:20: warning: `update.curseforge.release-channel` was written by packwiz"),
        "{lines:#?}"
    );
    assert!(
        has("index.toml:7: warning: 1 entry without `hash` (packwiz's no-internal-hashes mode)"),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("field `pin`")), "{lines:#?}");
    assert_eq!(report.warnings, 3, "{lines:#?}");
    let (pack, _) = load(dir);
    assert_eq!(pack.entries[0].status, EntryStatus::Verified, "sha256 by default");
    assert_eq!(pack.entries[1].status, EntryStatus::Unchecked);
    assert_eq!(pack.metafiles.len(), 1);
}
