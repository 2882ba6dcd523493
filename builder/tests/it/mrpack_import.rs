//! Importing a `.mrpack` that tries to write outside its folder (issue 17
//! item 7, docs/SECURITY.md): an archive entry or a `files[].path` that is
//! `..`, absolute, a drive or uses `\` refuses the whole archive, naming
//! the entry, with exit 3 (the pack's fault), and nothing outside the store
//! and the cache changes (a sibling directory is compared before and
//! after). Run through the real binary, as a creator's CI would.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use atlas_testkit::fs::{Entry, snapshot};
use atlas_testkit::git::GitRepo;

use crate::common::{builder, run, text};

type Snapshot = BTreeMap<PathBuf, Entry>;

const INDEX: &str = r#"{"formatVersion":1,"game":"minecraft","versionId":"1.0.0","name":"Evil",
"files":[],"dependencies":{"minecraft":"1.21.1","fabric-loader":"0.16.9"}}"#;

fn mrpack(index: &str, entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("modrinth.index.json", opts).expect("entry");
    zip.write_all(index.as_bytes()).expect("write");
    for (name, bytes) in entries {
        zip.start_file(*name, opts).expect("entry");
        zip.write_all(bytes).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

/// Publishes a repository holding only `pack.mrpack` (these bytes) to a
/// directory store under `work/target/`; returns the exit code and stderr.
/// Everything else in `work` (a sibling directory of files, the keys, the
/// repository) must be unchanged, and the store must hold no build.
fn publish_refused(archive: Vec<u8>, named: &str) {
    let work = tempfile::tempdir().expect("tmp");
    let out = run(builder()
        .args(["keygen", "--out-dir"])
        .arg(work.path().join("keys")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sibling = work.path().join("sibling");
    for (rel, bytes) in [
        ("evil.txt", "mine\n"),
        ("x", "x\n"),
        ("etc/cron.d/keep", "* * * * * true\n"),
    ] {
        let p = sibling.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write");
    }
    let repo = GitRepo::init().expect("git");
    repo.write("pack.mrpack", &archive).expect("write");
    repo.commit_all("import").expect("commit");
    let outside = |root: &Path| {
        let mut s = snapshot(root);
        s.retain(|p, _| !p.starts_with("target"));
        s
    };
    let target = work.path().join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let (before, repo_before) = (outside(work.path()), snapshot(repo.path()));

    let out = run(builder()
        .args(["publish", "--channel", "dev", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(target.join("store"))
        .arg("--cache-dir")
        .arg(target.join("cache"))
        .arg("--key-file")
        .arg(work.path().join("keys/atlas-signing.key")));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{named}: {stderr}");
    assert!(
        stderr.contains(&format!("`{named}`")) && stderr.contains("unsafe path"),
        "the error names `{named}`: {stderr}"
    );
    let changed = |a: &Snapshot, b: &Snapshot| -> Vec<PathBuf> {
        let keys: BTreeSet<&PathBuf> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect()
    };
    let outside_changed = changed(&before, &outside(work.path()));
    assert!(
        outside_changed.is_empty(),
        "{named}: changed outside the store and cache: {outside_changed:?}"
    );
    let repo_changed = changed(&repo_before, &snapshot(repo.path()));
    assert!(
        repo_changed.is_empty(),
        "{named}: changed in the repository: {repo_changed:?}"
    );
    assert!(
        !target.join("store/packs").exists(),
        "{named}: a build was published"
    );
    assert!(!Path::new("/etc/cron.d/evil").exists());
}

fn entry_refused(name: &str) {
    let archive = mrpack(INDEX, &[("overrides/config/ok.txt", b"fine"), (name, b"evil")]);
    publish_refused(archive, name);
}

fn file_path_refused(path: &str) {
    let sha512 = "ab".repeat(64);
    let files = format!(
        r#""files":[{{"path":{},"hashes":{{"sha1":"{}","sha512":"{sha512}"}},"downloads":["https://cdn.example/a.jar"],"fileSize":4}}]"#,
        serde_json::to_string(path).expect("json"),
        "cd".repeat(20)
    );
    publish_refused(mrpack(&INDEX.replace(r#""files":[]"#, &files), &[]), path);
}

#[test]
fn entry_climbing_out_of_the_archive_is_refused() {
    entry_refused("../../evil.txt");
}

#[test]
fn entry_with_an_absolute_path_is_refused() {
    entry_refused("/etc/cron.d/evil");
}

#[test]
fn entry_with_backslash_traversal_in_overrides_is_refused() {
    entry_refused(r"overrides\..\..\x");
}

#[test]
fn entry_climbing_out_of_the_overrides_folder_is_refused() {
    entry_refused("client-overrides/../../evil.txt");
}

#[test]
fn entry_with_a_drive_letter_is_refused() {
    entry_refused("C:/Windows/evil.txt");
    entry_refused(r"C:\evil.txt");
}

#[test]
fn entry_with_a_windows_absolute_path_is_refused() {
    entry_refused(r"\evil.txt");
    entry_refused(r"\\server\share\evil.txt");
}

#[test]
fn files_path_climbing_out_is_refused() {
    file_path_refused("../../evil.txt");
    file_path_refused("mods/../../evil.txt");
}

#[test]
fn files_path_absolute_or_on_a_drive_is_refused() {
    file_path_refused("/etc/cron.d/evil");
    file_path_refused("C:/evil.jar");
}

#[test]
fn files_path_with_backslash_traversal_is_refused() {
    file_path_refused(r"mods\..\..\x");
}

/// Issue 16's rule for foreign formats: a field `modrinth.index.json` does
/// not define is a warning naming the archive, the line and the field, and
/// the import goes on.
#[test]
fn unknown_index_fields_are_warnings_and_the_import_goes_on() {
    let index = INDEX
        .replace(
            r#""name":"Evil","#,
            "\"name\":\"Fine\",\n\"launcherMeta\":{\"x\":1},",
        )
        .replace(
            r#""fabric-loader":"0.16.9""#,
            r#""fabric-loader":"0.16.9","liteloader":"1""#,
        );
    let archive = mrpack(
        &index,
        &[("overrides/config/ok.txt", b"fine"), ("notes.txt", b"hi")],
    );
    let work = tempfile::tempdir().expect("tmp");
    let out = run(builder().args(["keygen", "--out-dir"]).arg(work.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let repo = GitRepo::init().expect("git");
    repo.write("pack.mrpack", &archive).expect("write");
    repo.commit_all("import").expect("commit");
    let out = run(builder()
        .args(["--json", "publish", "--channel", "dev", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(work.path().join("store"))
        .arg("--cache-dir")
        .arg(work.path().join("cache"))
        .arg("--key-file")
        .arg(work.path().join("atlas-signing.key")));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for want in [
        "pack.mrpack/modrinth.index.json:2: warning: unknown field `launcherMeta` is ignored",
        "warning: unknown dependency `dependencies.liteloader` is ignored",
        "pack.mrpack: warning: entry `notes.txt` is outside the override folders; ignored",
    ] {
        assert!(stderr.contains(want), "missing `{want}` in:\n{stderr}");
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["files"], 1, "the override, and nothing else");
}
