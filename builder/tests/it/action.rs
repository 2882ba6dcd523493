//! The GitHub Action (`action.yml`) run locally the way a runner runs a
//! composite action: each step's `env` is expanded from the inputs, step
//! outputs and `github` context read from action.yml itself (so the test and
//! the file cannot drift), its `run:` goes to `bash -eo pipefail` with the
//! variables GitHub gives (`GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`,
//! `GITHUB_WORKSPACE`, `GITHUB_SHA`, `RUNNER_*`), and a failing step stops
//! the run. The builder is installed from a local release (an archive of the
//! real binary plus `SHA256SUMS`) served on 127.0.0.1. Also: the file's own
//! consistency, and that the release matrix builds what the action installs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;
use serde_yaml_ng::Value;
use sha2::{Digest as _, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn yaml(rel: &str) -> Value {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

fn map_of(v: &Value) -> Vec<(String, &Value)> {
    v.as_mapping()
        .map(|m| m.iter().map(|(k, v)| (str_of(k), v)).collect())
        .unwrap_or_default()
}

/// The `${{ ... }}` expressions in `s`, trimmed.
fn expressions(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${{") {
        let after = &rest[i + 3..];
        let j = after.find("}}").expect("unterminated ${{");
        out.push(after[..j].trim().to_owned());
        rest = &after[j + 2..];
    }
    out
}

/// What a run of the action saw.
#[derive(Debug, Default)]
struct Run {
    /// The action's outputs, as `outputs.*.value` of action.yml maps them.
    outputs: BTreeMap<String, String>,
    step_outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// Every step's summary, concatenated (as the job summary shows them).
    summary: String,
    /// stdout + stderr of every step that ran.
    log: String,
    /// The id of the step that failed, if one did.
    failed: Option<String>,
    steps_run: Vec<String>,
}

/// The environment of one job: workspace, runner and context values.
struct Job {
    workspace: PathBuf,
    temp: tempfile::TempDir,
    sha: String,
    base_env: Vec<(String, String)>,
}

impl Job {
    fn new(workspace: &Path, sha: &str) -> Self {
        let temp = tempfile::tempdir().expect("runner temp");
        let cache = temp.path().join("cache");
        Job {
            workspace: workspace.to_owned(),
            sha: sha.to_owned(),
            base_env: vec![("ATLAS_CACHE_DIR".into(), cache.display().to_string())],
            temp,
        }
    }

    fn github_context(&self, key: &str) -> String {
        match key {
            "action_repository" => "atlas-modpacks/atlas".into(),
            "action_ref" => "v1".into(),
            "action_path" => root().display().to_string(),
            "workspace" => self.workspace.display().to_string(),
            "sha" => self.sha.clone(),
            other => panic!("action.yml uses github.{other}, which this test does not model"),
        }
    }

    /// Runs the composite steps of action.yml with `inputs` (`with:`).
    fn run(&self, inputs: &[(&str, &str)]) -> Run {
        let action = yaml("action.yml");
        let declared: BTreeMap<String, String> = map_of(&action["inputs"])
            .into_iter()
            .map(|(k, v)| (k, str_of(&v["default"])))
            .collect();
        for (k, _) in inputs {
            assert!(
                declared.contains_key(*k),
                "input `{k}` is not declared in action.yml"
            );
        }
        let input = |name: &str| -> String {
            let default = declared
                .get(name)
                .unwrap_or_else(|| panic!("action.yml uses inputs.{name}, which it does not declare"));
            inputs
                .iter()
                .find(|(k, _)| *k == name)
                .map_or_else(|| default.clone(), |(_, v)| (*v).to_owned())
        };
        let mut run = Run::default();
        let expand = |s: &str, run: &Run| -> String {
            let mut out = s.to_owned();
            for e in expressions(s) {
                let parts: Vec<&str> = e.split('.').collect();
                let value = match parts.as_slice() {
                    ["inputs", name] => input(name),
                    ["steps", id, "outputs", name] => run
                        .step_outputs
                        .get(*id)
                        .and_then(|o| o.get(*name))
                        .cloned()
                        .unwrap_or_default(),
                    ["github", key] => self.github_context(key),
                    _ => panic!("action.yml uses `${{{{ {e} }}}}`, which this test does not model"),
                };
                out = out.replace(&format!("${{{{ {e} }}}}"), &value);
            }
            out
        };
        let (runner_os, runner_arch) = runner();
        for (n, step) in action["runs"]["steps"]
            .as_sequence()
            .expect("runs.steps")
            .iter()
            .enumerate()
        {
            let id = step["id"]
                .as_str()
                .map_or_else(|| format!("step{n}"), str::to_owned);
            assert_eq!(step["shell"].as_str(), Some("bash"), "step {id}: shell");
            let script = step["run"].as_str().expect("run");
            assert!(
                expressions(script).is_empty(),
                "step {id}: `${{{{ }}}}` inside run:"
            );
            let dir = self.temp.path().join(format!("_step_{id}"));
            std::fs::create_dir_all(&dir).expect("step dir");
            let (output, summary, file) = (dir.join("output"), dir.join("summary"), dir.join("script.sh"));
            std::fs::write(&output, "").expect("output file");
            std::fs::write(&summary, "").expect("summary file");
            std::fs::write(&file, script).expect("script");
            let mut c = Command::new("bash");
            c.args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&file)
                .current_dir(&self.workspace)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", self.temp.path())
                .env("RUST_LOG", "warn")
                .env("CI", "true")
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_ACTION_PATH", root())
                .env("GITHUB_WORKSPACE", &self.workspace)
                .env("GITHUB_SHA", &self.sha)
                .env("GITHUB_SERVER_URL", "https://github.com")
                .env("GITHUB_REPOSITORY", "creator/my-pack")
                .env("GITHUB_OUTPUT", &output)
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("RUNNER_OS", runner_os)
                .env("RUNNER_ARCH", runner_arch)
                .env("RUNNER_TEMP", self.temp.path());
            for (k, v) in &self.base_env {
                c.env(k, v);
            }
            for (k, v) in map_of(&step["env"]) {
                c.env(k, expand(&str_of(v), &run));
            }
            let out = c.output().expect("run bash");
            run.steps_run.push(id.clone());
            run.log.push_str(&String::from_utf8_lossy(&out.stdout));
            run.log.push_str(&String::from_utf8_lossy(&out.stderr));
            run.summary
                .push_str(&std::fs::read_to_string(&summary).expect("summary"));
            let outputs = parse_output_file(&std::fs::read_to_string(&output).expect("output"));
            run.step_outputs.insert(id.clone(), outputs);
            if !out.status.success() {
                run.failed = Some(id);
                break;
            }
        }
        for (name, v) in map_of(&action["outputs"]) {
            let value = expand(&str_of(&v["value"]), &run);
            run.outputs.insert(name, value);
        }
        run
    }
}

/// `name=value` lines and `name<<DELIM` blocks, as GitHub reads them.
fn parse_output_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_owned(), value.to_owned());
        } else if !line.is_empty() {
            panic!("malformed GITHUB_OUTPUT line {line:?}");
        }
    }
    out
}

/// RUNNER_OS and RUNNER_ARCH of this machine.
fn runner() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "macOS",
        "windows" => "Windows",
        other => panic!("no GitHub runner OS for {other}"),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        other => panic!("no GitHub runner arch for {other}"),
    };
    (os, arch)
}

/// install.sh's `OS-ARCH) target=TRIPLE ;;` lines.
fn install_mapping() -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(root().join("scripts/action/install.sh")).expect("install.sh");
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (pattern, rest) = l.split_once(") target=")?;
            let target = rest.strip_suffix(" ;;")?;
            let (os, arch) = pattern.split_once('-')?;
            Some((os.to_owned(), arch.to_owned(), target.to_owned()))
        })
        .collect()
}

fn asset_for_this_machine() -> String {
    let (os, arch) = runner();
    let target = install_mapping()
        .into_iter()
        .find(|(o, a, _)| o == os && a == arch)
        .map(|(_, _, t)| t)
        .expect("install.sh maps this machine");
    format!("atlas-{target}.tar.gz")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A release directory: `atlas-<target>.tar.gz` holding `binary` as
/// `atlas-builder`, and SHA256SUMS (of `summed`, when given: a tampered
/// archive keeps the sums of the genuine one).
fn release(dir: &Path, binary: &Path, summed: Option<&[u8]>) -> String {
    let asset = asset_for_this_machine();
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).expect("staging");
    std::fs::copy(binary, staging.join("atlas-builder")).expect("copy binary");
    let release = dir.join("release");
    std::fs::create_dir_all(&release).expect("release dir");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(release.join(&asset))
        .arg("-C")
        .arg(&staging)
        .arg("atlas-builder")
        .status()
        .expect("tar");
    assert!(st.success());
    let bytes = std::fs::read(release.join(&asset)).expect("archive");
    let sum = sha256_hex(summed.unwrap_or(&bytes));
    std::fs::write(
        release.join("SHA256SUMS"),
        format!("{sum}  {asset}\n{}  atlas-other.tar.gz\n", "0".repeat(64)),
    )
    .expect("SHA256SUMS");
    asset
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn keygen(dir: &Path) -> String {
    let out = super::common::run(super::common::builder().args(["keygen", "--out-dir"]).arg(dir));
    assert!(out.status.success(), "{}", super::common::text(&out.stderr));
    std::fs::read_to_string(dir.join("atlas-signing.key")).expect("key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_the_demo_pack_and_reports_outputs_and_summary() {
    let tmp = tempfile::tempdir().expect("tmp");
    release(tmp.path(), Path::new(env!("CARGO_BIN_EXE_atlas-builder")), None);
    let server = StaticServer::start(tmp.path().join("release")).expect("server");
    let key = keygen(&tmp.path().join("keys"));
    let key_line = key.lines().next().unwrap_or_default().to_owned();
    let store = tmp.path().join("store");
    let repo = GitRepo::init().expect("repo");
    copy_dir(
        &root().join("examples/demo-pack"),
        &repo.path().join("packs/demo"),
    );
    let sha = repo.commit_all("demo pack").expect("commit");
    let job = Job::new(repo.path(), &sha);
    let store_s = store.display().to_string();
    let url = server.url();
    let run = job.run(&[
        ("pack-path", "packs/demo"),
        ("store", store_s.as_str()),
        ("channel", "dev"),
        ("release-url", url.as_str()),
        ("public-url", "https://cdn.example.com/atlas/"),
        ("mirror-policy", "mirror"),
        ("signing-key", key.as_str()),
    ]);
    assert_eq!(run.failed, None, "log:\n{}", run.log);
    assert_eq!(run.steps_run, ["install", "run"]);
    let o = &run.outputs;
    let build = o["build-id"].clone();
    assert_eq!(build.len(), 64, "{o:?}");
    assert_eq!(o["pack"], "atlas-demo");
    assert_eq!(o["pack-version"], "1.0.0");
    assert_eq!(o["channel"], "dev");
    assert_eq!(o["pointer-version"], "1");
    assert_eq!(
        o["pointer-url"],
        "https://cdn.example.com/atlas/packs/atlas-demo/channels/dev.json"
    );
    assert!(o["manifest-url"].starts_with(&format!(
        "https://cdn.example.com/atlas/packs/atlas-demo/builds/{build}"
    )));
    assert!(o["files-new"].parse::<u64>().expect("files-new") > 0);
    assert_eq!(o["files-reused"], "0");
    assert!(o["bytes-new"].parse::<u64>().expect("bytes-new") > 0);
    assert_eq!(o["bytes-reused"], "0");
    assert!(o["builder-path"].contains("atlas-action"), "{o:?}");
    for (name, value) in o {
        let check_only = ["errors", "warnings"].contains(&name.as_str());
        assert_eq!(value.is_empty(), check_only, "output {name}: {value:?}");
    }
    assert!(store.join("packs/atlas-demo/channels/dev.json").is_file());
    let manifest_key = o["manifest-url"].trim_start_matches("https://cdn.example.com/atlas/");
    assert!(store.join(manifest_key).is_file(), "{manifest_key}");
    let s = &run.summary;
    for needle in [
        "## Atlas: Published atlas-demo 1.0.0 to `dev`".to_owned(),
        format!(
            "[`{}`](https://github.com/creator/my-pack/commit/{sha})",
            &sha[..12]
        ),
        format!("| Build | `{build}` |"),
        "`dev` → version 1 (updated)".into(),
        "First build on this channel.".into(),
        "- Pointer: <https://cdn.example.com/atlas/packs/atlas-demo/channels/dev.json>".into(),
    ] {
        assert!(s.contains(&needle), "summary lacks {needle:?}:\n{s}");
    }
    // The release was fetched over HTTP, checked, and the secret never logged.
    assert!(run.log.contains("matches SHA256SUMS"), "{}", run.log);
    assert!(
        run.log.contains(&format!("::add-mask::{key_line}")),
        "{}",
        run.log
    );
    let unmasked = run.log.replace(&format!("::add-mask::{key_line}"), "");
    assert!(!unmasked.contains(&key_line), "the signing key reached the log");
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p.ends_with("SHA256SUMS")), "{paths:?}");

    // 2. A change: the summary lists it against the build `dev` had.
    repo.write("packs/demo/config/atlas-demo.json", "{\"changed\": true}\n")
        .expect("write");
    let sha2 = repo.commit_all("tweak config").expect("commit");
    let job2 = Job::new(repo.path(), &sha2);
    let mut inputs = vec![
        ("pack-path", "packs/demo"),
        ("store", store_s.as_str()),
        ("channel", "dev"),
        ("release-url", url.as_str()),
        ("public-url", "https://cdn.example.com/atlas/"),
        ("signing-key", key.as_str()),
    ];
    let run = job2.run(&inputs);
    assert_eq!(run.failed, None, "log:\n{}", run.log);
    let o = &run.outputs;
    assert_eq!(o["pointer-version"], "2");
    assert_eq!(o["files-new"], "1", "{o:?}");
    assert!(o["files-reused"].parse::<u64>().expect("reused") > 0);
    let s = &run.summary;
    assert!(s.contains("### Changes against `dev`"), "{s}");
    assert!(s.contains(&format!("build `{}`", &build[..12])), "{s}");
    assert!(s.contains("- Changed `config/atlas-demo.json`"), "{s}");

    // 3. A pull request: dry run without a key; the store is untouched.
    repo.write("packs/demo/config/new.json", "{}\n").expect("write");
    let sha3 = repo.commit_all("add a file").expect("commit");
    let pointer_before = std::fs::read(store.join("packs/atlas-demo/channels/dev.json")).expect("pointer");
    inputs.retain(|(k, _)| *k != "signing-key");
    inputs.push(("dry-run", "true"));
    let run = Job::new(repo.path(), &sha3).run(&inputs);
    assert_eq!(run.failed, None, "log:\n{}", run.log);
    assert!(run.summary.contains("Dry run of atlas-demo"), "{}", run.summary);
    assert!(
        run.summary.contains("- Added `config/new.json`"),
        "{}",
        run.summary
    );
    assert_eq!(run.outputs["files-new"], "1");
    assert_eq!(run.outputs["pointer-version"], "", "a dry run signs nothing");
    assert_eq!(
        std::fs::read(store.join("packs/atlas-demo/channels/dev.json")).expect("pointer"),
        pointer_before
    );

    // 4. Publishing without a key is refused before the builder runs.
    inputs.retain(|(k, _)| *k != "dry-run");
    let run = Job::new(repo.path(), &sha3).run(&inputs);
    assert_eq!(run.failed.as_deref(), Some("run"));
    assert!(run.log.contains("input signing-key is empty"), "{}", run.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_binary_is_refused_and_nothing_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The "binary" would leave a marker if it ever ran.
    let marker = tmp.path().join("it-ran");
    let evil = tmp.path().join("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).expect("evil");
    // SHA256SUMS lists the genuine archive's sum; the archive served is another.
    let genuine = std::fs::read(env!("CARGO_BIN_EXE_atlas-builder")).expect("binary");
    let asset = release(tmp.path(), &evil, Some(&genuine));
    let server = StaticServer::start(tmp.path().join("release")).expect("server");
    let repo = GitRepo::init().expect("repo");
    copy_dir(&root().join("examples/demo-pack"), repo.path());
    let sha = repo.commit_all("demo").expect("commit");
    let store = tmp.path().join("store");
    let run = Job::new(repo.path(), &sha).run(&[
        ("store", &store.display().to_string()),
        ("release-url", &server.url()),
        ("command", "check"),
    ]);
    assert_eq!(run.failed.as_deref(), Some("install"), "{}", run.log);
    assert_eq!(run.steps_run, ["install"], "no step after a refused install");
    assert!(
        run.log.contains(&format!("SHA-256 mismatch for {asset}"))
            && run.log.contains("refusing to install it"),
        "{}",
        run.log
    );
    assert!(!marker.exists(), "the tampered binary ran");
    assert!(!run.step_outputs["install"].contains_key("bin"));
    assert!(!store.exists());

    // An archive SHA256SUMS does not list is refused too (here over file://).
    std::fs::write(
        tmp.path().join("release/SHA256SUMS"),
        format!("{}  other\n", "1".repeat(64)),
    )
    .expect("sums");
    let file_url = format!("file://{}", tmp.path().join("release").display());
    let run = Job::new(repo.path(), &sha).run(&[("release-url", &file_url), ("command", "check")]);
    assert_eq!(run.failed.as_deref(), Some("install"));
    assert!(run.log.contains(&format!("lists no {asset}")), "{}", run.log);
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_errors_become_annotations_on_the_pack_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    release(tmp.path(), Path::new(env!("CARGO_BIN_EXE_atlas-builder")), None);
    let release_dir = tmp.path().join("release").display().to_string();
    let repo = GitRepo::init().expect("repo");
    copy_dir(&root().join("examples/demo-pack"), &repo.path().join("pack"));
    let toml = std::fs::read_to_string(repo.path().join("pack/pack.toml")).expect("pack.toml");
    repo.write(
        "pack/pack.toml",
        toml.replace("minecraft = \"1.21.1\"", "minecraft = 1.21"),
    )
    .expect("write");
    let sha = repo.commit_all("broken").expect("commit");
    // release-url as a plain directory.
    let run = Job::new(repo.path(), &sha).run(&[
        ("command", "check"),
        ("pack-path", "pack"),
        ("release-url", &release_dir),
    ]);
    assert_eq!(run.failed.as_deref(), Some("run"), "{}", run.log);
    assert!(
        run.log.contains("::error file=pack/pack.toml,line="),
        "{}",
        run.log
    );
    assert!(run.summary.contains("## Atlas check failed"), "{}", run.summary);
    assert_eq!(run.outputs.get("errors").map(String::as_str), Some("1"));

    // Extra arguments over several lines all arrive.
    let run = Job::new(repo.path(), &sha).run(&[
        ("command", "check"),
        ("pack-path", "pack"),
        ("release-url", &release_dir),
        ("args", "--allow-dirty\n--json"),
    ]);
    assert_eq!(run.failed.as_deref(), Some("run"), "{}", run.log);
    assert!(
        run.log
            .contains("check --repo pack --allow-dirty --json --github"),
        "{}",
        run.log
    );
    assert!(
        run.log.contains("\"errors\": 1"),
        "--json took effect: {}",
        run.log
    );
}

#[test]
fn action_yml_is_consistent() {
    let action = yaml("action.yml");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let inputs: BTreeSet<String> = map_of(&action["inputs"]).into_iter().map(|(k, _)| k).collect();
    for (name, v) in map_of(&action["inputs"]) {
        assert!(
            v["description"].as_str().is_some_and(|d| !d.is_empty()),
            "input {name}: description"
        );
        assert!(
            !v["default"].is_null(),
            "input {name}: give a default (\"\" when none)"
        );
    }
    let steps = action["runs"]["steps"].as_sequence().expect("steps");
    let ids: Vec<String> = steps
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    let mut used = BTreeSet::new();
    for (i, step) in steps.iter().enumerate() {
        let script = step["run"].as_str().expect("every step is a run: step");
        assert!(
            expressions(script).is_empty(),
            "step {i}: an expression inside run: is a script-injection hole"
        );
        // `bash "$GITHUB_ACTION_PATH/…"`: no reliance on the executable bit.
        let called = script
            .strip_prefix("bash ")
            .unwrap_or_else(|| panic!("step {i} must run `bash \"$GITHUB_ACTION_PATH/…\"`: {script}"))
            .trim_matches('"');
        let rel = called.strip_prefix("$GITHUB_ACTION_PATH/").unwrap_or_else(|| {
            panic!("step {i} must only call a script under $GITHUB_ACTION_PATH: {script}")
        });
        assert!(root().join(rel).is_file(), "{rel} is missing");
        for (var, value) in map_of(&step["env"]) {
            for e in expressions(&str_of(value)) {
                if let Some(name) = e.strip_prefix("inputs.") {
                    assert!(inputs.contains(name), "{var}: inputs.{name} is not declared");
                    used.insert(name.to_owned());
                } else if let Some(rest) = e.strip_prefix("steps.") {
                    let id = rest.split('.').next().unwrap_or_default();
                    assert!(
                        ids[..i].contains(&id.to_owned()),
                        "{var}: step `{id}` does not run before"
                    );
                } else {
                    assert!(e.starts_with("github."), "{var}: unexpected expression {e}");
                }
            }
        }
    }
    assert_eq!(used, inputs, "every input reaches a step");
    for (name, v) in map_of(&action["outputs"]) {
        let exprs = expressions(&str_of(&v["value"]));
        assert_eq!(exprs.len(), 1, "output {name}");
        let parts: Vec<&str> = exprs[0].split('.').collect();
        assert!(
            matches!(parts.as_slice(), ["steps", id, "outputs", _] if ids.contains(&(*id).to_owned())),
            "output {name} must map to a step output: {}",
            exprs[0]
        );
    }
}

#[test]
fn the_release_matrix_builds_what_the_action_installs() {
    let wf = yaml(".github/workflows/release.yml");
    let include = wf["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("jobs.build.strategy.matrix.include");
    let built: BTreeSet<(String, String, String)> = include
        .iter()
        .map(|e| {
            (
                str_of(&e["runner-os"]),
                str_of(&e["runner-arch"]),
                str_of(&e["target"]),
            )
        })
        .collect();
    let mapped = install_mapping();
    assert_eq!(mapped.len(), 5, "{mapped:?}");
    assert_eq!(
        built, mapped,
        "release.yml's matrix and install.sh's mapping differ"
    );
    for e in include {
        let (os, target) = (str_of(&e["runner-os"]), str_of(&e["target"]));
        let archive = str_of(&e["archive"]);
        let want = if os == "Windows" { "zip" } else { "tar.gz" };
        assert_eq!(archive, want, "{target}: install.sh expects .{want}");
    }
}

#[test]
fn example_workflows_serialise_each_channel() {
    let dir = root().join("examples/workflows");
    let mut writers = BTreeSet::new();
    for e in std::fs::read_dir(&dir).expect("examples/workflows") {
        let path = e.expect("entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).expect("read");
        let wf: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (job, j) in map_of(&wf["jobs"]) {
            for step in j["steps"].as_sequence().expect("steps") {
                if !step["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("atlas-modpacks/atlas@"))
                {
                    continue;
                }
                let command = step["with"]["command"].as_str().unwrap_or("publish");
                let dry = step["with"]["dry-run"].as_str() == Some("true");
                if matches!(command, "check" | "plan" | "diff") || dry {
                    assert!(
                        step["with"]["signing-key"].is_null(),
                        "{name}: {job}: a read-only step gets no key"
                    );
                    continue;
                }
                // A writer: one run per channel at a time, never cancelled midway.
                let c = if j["concurrency"].is_null() {
                    &wf["concurrency"]
                } else {
                    &j["concurrency"]
                };
                let group = c["group"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: {job}: no concurrency group"));
                let channel = str_of(&step["with"]["channel"]);
                assert_eq!(
                    group,
                    format!("atlas-{channel}"),
                    "{name}: {job}: group per channel"
                );
                assert_eq!(c["cancel-in-progress"].as_bool(), Some(false), "{name}: {job}");
                writers.insert(command.to_owned());
            }
        }
    }
    let want: BTreeSet<String> = ["publish", "promote", "resign"].map(String::from).into();
    assert_eq!(writers, want);
}
