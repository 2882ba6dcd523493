//! The binary's store contracts (issue 18): a store that ignores conditional
//! writes is refused unless `--allow-unconditional-store` is given, `resign`
//! losing its compare-and-swap exits 5, and `gc` lists (default) or deletes
//! (`--delete`) with `--json` too.

use std::process::Output;

use atlas_proto::pointer::SignedPointer;
use atlas_proto::{SecretKey, layout};
use atlas_testkit::git::GitRepo;
use atlas_testkit::s3::{ACCESS_KEY, REGION, RaceTiming, S3Server, SECRET_KEY};

use crate::common::{builder, run, text};

fn pack_repo() -> GitRepo {
    let repo = GitRepo::init().expect("init");
    repo.write(
        "pack.toml",
        "id = \"storecli\"\nname = \"Store CLI\"\nversion = \"1\"\nminecraft = \"1.21.1\"\nloader = { kind = \"vanilla\" }\n[[files]]\ninclude = [\"config/**\"]\n",
    )
    .expect("write");
    repo.write("config/x.txt", "x").expect("write");
    repo.commit_all("c").expect("commit");
    repo
}

/// `atlas-builder ARGS --store s3://atlas/p` against `s3`, signing with `key`.
fn s3_cmd(s3: &S3Server, key: &SecretKey, args: &[&str]) -> Output {
    run(builder()
        .args(args)
        .args(["--store", "s3://atlas/p", "--s3-path-style"])
        .env("ATLAS_SIGNING_KEY", key.to_text())
        .env(
            "ATLAS_CACHE_DIR",
            std::env::temp_dir().join("atlas-store-cli-cache"),
        )
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_ENDPOINT_URL", s3.endpoint())
        .env("AWS_REGION", REGION))
}

#[test]
fn a_store_ignoring_conditional_writes_is_refused_unless_allowed() {
    let s3 = S3Server::start("atlas").expect("s3");
    s3.set_enforce_preconditions(false);
    let key = SecretKey::from_seed(&[6; 32]);
    let repo = pack_repo();
    let repo_path = repo.path().display().to_string();
    let out = s3_cmd(&s3, &key, &["publish", "--repo", &repo_path]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("ignores conditional writes"), "{err}");
    assert!(err.contains("--allow-unconditional-store"), "{err}");
    // Nothing was written but the probe's scratch object, which is gone again.
    let written: Vec<_> = s3
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && !r.path.contains("/atlas-probe/"))
        .collect();
    assert!(written.is_empty(), "{written:#?}");
    let probes = std::fs::read_dir(s3.data_dir().join("atlas/p/atlas-probe"));
    assert!(probes.map_or(true, |mut d| d.next().is_none()), "probe deleted");

    // The creator who runs one writer at a time says so.
    let out = s3_cmd(
        &s3,
        &key,
        &[
            "--json",
            "publish",
            "--allow-unconditional-store",
            "--repo",
            &repo_path,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ignores conditional writes"), "warned");
    let pointer = s3.object(&format!("p/{}", layout::pointer_key("storecli", "dev")));
    assert!(pointer.is_some());
    // The environment variable does the same (for the GitHub Action's `args`-less use).
    let out = run(builder()
        .args(["resign", "--pack", "storecli", "--channel", "dev"])
        .args(["--store", "s3://atlas/p", "--s3-path-style"])
        .env("ATLAS_ALLOW_UNCONDITIONAL_STORE", "true")
        .env("ATLAS_SIGNING_KEY", key.to_text())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_ENDPOINT_URL", s3.endpoint())
        .env("AWS_REGION", REGION));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn resign_losing_the_race_exits_5() {
    let s3 = S3Server::start("atlas").expect("s3");
    let key = SecretKey::from_seed(&[6; 32]);
    let repo = pack_repo();
    let out = s3_cmd(
        &s3,
        &key,
        &["publish", "--repo", &repo.path().display().to_string()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Another build lands between resign's read and its write.
    let full = format!("p/{}", layout::pointer_key("storecli", "dev"));
    let stored = s3.object(&full).expect("pointer");
    let mut payload = SignedPointer::parse(&stored)
        .and_then(|p| p.payload_unverified())
        .expect("payload");
    payload.version += 1;
    payload.build = "ab".repeat(32);
    s3.race_next_put(
        &full,
        RaceTiming::BeforeWrite,
        atlas_proto::pointer::sign(&payload, &[&key]),
    );
    let out = s3_cmd(&s3, &key, &["resign", "--pack", "storecli", "--channel", "dev"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("run the command again"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn gc_lists_by_default_and_deletes_when_asked() {
    let work = tempfile::tempdir().expect("tmp");
    let store = work.path().join("store");
    let key = SecretKey::from_seed(&[6; 32]);
    let repo = pack_repo();
    let out = run(builder()
        .args(["publish", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(&store)
        .env("ATLAS_SIGNING_KEY", key.to_text()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A leftover blob, three days old.
    let orphan = atlas_proto::Sha256Digest::of(b"orphan");
    let path = store.join(layout::blob_key(&orphan));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, b"orphan").expect("write");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(old))
        .expect("mtime");
    let gc = |extra: &[&str]| {
        run(builder()
            .args(["gc", "--pack", "storecli", "--store"])
            .arg(&store)
            .args(extra))
    };
    let dry = gc(&[]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let human = text(&dry.stdout);
    assert!(
        human.contains(&format!("would delete {}", layout::blob_key(&orphan))),
        "{human}"
    );
    assert!(
        human.contains("would delete 1 object(s) (1 blob), freeing 6 B"),
        "{human}"
    );
    assert!(human.contains("pass --delete"), "{human}");
    assert!(path.exists());
    let json = gc(&["--json", "--grace", "2d"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["grace_secs"], 172_800);
    assert_eq!(report["freed"]["objects"], 1);
    assert_eq!(report["deleted"][0]["key"], layout::blob_key(&orphan));
    assert_eq!(report["deleted"][0]["class"], "blob");
    assert_eq!(report["channels"][0]["channel"], "dev");
    // A grace period longer than the orphan's age keeps it.
    let long = gc(&["--json", "--grace", "4d", "--delete"]);
    assert!(long.status.success(), "{}", text(&long.stderr));
    assert!(path.exists());
    let done = gc(&["--delete"]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains("deleted 1 object(s)"),
        "{}",
        text(&done.stdout)
    );
    assert!(!path.exists());
    // Settings out of range are a bad command line (exit 2).
    let few = gc(&["--keep-builds", "2"]);
    assert_eq!(few.status.code(), Some(2), "{}", text(&few.stderr));
    assert!(text(&few.stderr).contains("at least 4"), "{}", text(&few.stderr));
}
