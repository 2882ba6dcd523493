//! The `atlas-builder` binary: exit codes, `--json` output, and the signing
//! key arriving through the environment as a CI secret would.

use crate::common::{builder, run, text};
use atlas_testkit::git::GitRepo;

fn pack_repo() -> GitRepo {
    let repo = GitRepo::init().expect("init");
    repo.write(
        "pack.toml",
        "id = \"clipack\"\nname = \"Cli\"\nversion = \"1\"\nminecraft = \"1.21.1\"\nloader = { kind = \"vanilla\" }\n[[files]]\ninclude = [\"config/**\"]\n",
    )
    .expect("write");
    repo.write("config/x.txt", "x").expect("write");
    repo.commit_all("c").expect("commit");
    repo
}

#[test]
fn keygen_publish_promote_with_json_and_env_key() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(builder().args(["--json", "keygen", "--out-dir"]).arg(work.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = std::fs::read_to_string(work.path().join("atlas-signing.key")).expect("secret");
    assert_eq!(keys["key_id"].as_str().map(str::len), Some(64));

    let repo = pack_repo();
    let store = work.path().join("store");
    let out = run(builder()
        .args(["--json", "publish", "--channel", "dev", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(format!("file://{}", store.display()))
        .env("ATLAS_SIGNING_KEY", &secret));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["pack"], "clipack");
    assert_eq!(report["blobs_new"], 1);
    assert_eq!(report["pointer"]["version"], 1);
    assert!(store.join("packs/clipack/channels/dev.json").is_file());

    let out = run(builder()
        .args([
            "promote",
            "--pack",
            "clipack",
            "--from",
            "dev",
            "--to",
            "production",
            "--store",
        ])
        .arg(&store)
        .arg("--key-file")
        .arg(work.path().join("atlas-signing.key")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("channel production"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn exit_codes_name_the_failure_class() {
    let work = tempfile::tempdir().expect("tempdir");
    // 2: bad command line.
    let out = run(builder().arg("publish").arg("--bogus"));
    assert_eq!(out.status.code(), Some(2));
    // 6: no signing key, and the message says how to provide one.
    let repo = pack_repo();
    let out = run(builder()
        .args(["publish", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(work.path()));
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ATLAS_SIGNING_KEY"),
        "{}",
        text(&out.stderr)
    );
    // 3: invalid pack, with file and line.
    repo.write("pack.toml", "id = \n").expect("write");
    repo.commit_all("broken").expect("commit");
    let out = run(builder()
        .args(["publish", "--dry-run", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(work.path()));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("pack.toml:1:"),
        "{}",
        text(&out.stderr)
    );
    // 4: store errors (an unknown scheme).
    let out = run(builder()
        .args(["publish", "--dry-run", "--store", "ftp://x", "--repo"])
        .arg(pack_repo().path()));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unsupported scheme"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plan_needs_no_key_and_diff_prints_the_changelog() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(builder().args(["keygen", "--out-dir"]).arg(work.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_file = work.path().join("atlas-signing.key");
    let store = work.path().join("store");
    let cache = work.path().join("cache");
    let repo = GitRepo::init().expect("init");
    let pack = |version: &str| {
        format!(
            "id = \"clipack\"\nname = \"Cli\"\nversion = \"{version}\"\nminecraft = \"1.21.1\"\n\
             loader = {{ kind = \"fabric\", version = \"0.16.9\" }}\n[[files]]\ninclude = [\"config/**\"]\n\n\
             [[mods]]\nname = \"Local Mod\"\npath = \"jars/local.jar\"\n"
        )
    };
    repo.write("pack.toml", pack("1.0")).expect("write");
    repo.write("jars/local.jar", "v1").expect("write");
    repo.write("config/x.txt", "x").expect("write");
    repo.commit_all("one").expect("commit");
    let publish = |channel: &str| {
        let out = run(builder()
            .args(["--json", "publish", "--channel", channel, "--repo"])
            .arg(repo.path())
            .arg("--store")
            .arg(&store)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--key-file")
            .arg(&key_file));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        report["build"].as_str().expect("build id").to_owned()
    };
    let first = publish("production");

    repo.write("pack.toml", pack("1.1")).expect("write");
    repo.write("jars/local.jar", "v2").expect("write");
    repo.write("config/y.txt", "y").expect("write");
    repo.commit_all("two").expect("commit");

    // plan: no key, nothing written, says what would be uploaded.
    let before = std::fs::read_dir(store.join("blobs/sha256"))
        .expect("blobs")
        .count();
    let out = run(builder()
        .args(["--json", "plan", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(&store)
        .arg("--cache-dir")
        .arg(&cache));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        (plan["blobs_new"].as_u64(), plan["blobs_reused"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(plan["manifest_new"], true);
    assert_eq!(plan["mods"]["mods"], 0, "repository mods are not downloads");
    assert!(plan["pointer"].is_null());
    let after = std::fs::read_dir(store.join("blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(before, after, "plan writes nothing");
    let out = run(builder()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(&store)
        .arg("--cache-dir")
        .arg(&cache));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("blobs: 2 new"),
        "{}",
        text(&out.stdout)
    );

    let second = publish("dev");
    let out = run(builder()
        .args(["--json", "diff", &first, &second, "--pack", "clipack", "--store"])
        .arg(&store));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(log["from"]["version"], "1.0");
    assert_eq!(log["to"]["version"], "1.1");
    assert_eq!(log["updated"][0]["name"], "Local Mod");
    assert_eq!(log["files_added"][0], "config/y.txt");

    let out = run(builder()
        .args([
            "diff",
            "--from-channel",
            "production",
            "--to-channel",
            "dev",
            "--pack",
            "clipack",
            "--store",
        ])
        .arg(&store));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(human.starts_with("clipack 1.0 -> 1.1"), "{human}");
    assert!(human.contains("- Local Mod: local.jar ("), "{human}");
    assert!(human.contains("- added config/y.txt"), "{human}");

    // An unknown build is a bad command line (2, as a mistyped pack or
    // channel is since issue 20) naming the build.
    let missing = "ab".repeat(32);
    let out = run(builder()
        .args(["diff", &first, &missing, "--pack", "clipack", "--store"])
        .arg(&store));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&missing), "{}", text(&out.stderr));
}

/// `publish` of a pack with URL mods, by the binary: to the S3 test server
/// (mods uploaded as they download), again (nothing uploaded), then to a
/// directory store from a cold cache (downloads written with O_DIRECT, one
/// syncfs): the same build, and every stored blob holds the bytes its name says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_mods_to_s3_then_to_a_directory_store() {
    // (The binary runs blocking on one worker; the file server on the other.)
    use atlas_testkit::http::StaticServer;
    use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};
    use sha2::Digest as _;

    let work = tempfile::tempdir().expect("tempdir");
    let files = work.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    // Sizes around the 1 MiB write block and the 4 KiB alignment.
    let sizes = [3 * 1024 * 1024 + 123, 1024 * 1024, 4096, 10];
    let mut toml = String::from(
        "id = \"s3pack\"\nname = \"S3\"\nversion = \"1\"\nminecraft = \"1.21.1\"\nloader = { kind = \"fabric\", version = \"0.16.9\" }\n[[files]]\ninclude = [\"config/**\"]\n",
    );
    let server = StaticServer::start(&files).expect("file server");
    let mut total = 0u64;
    for (i, n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*n)
            .map(|k| (k * 7 + i * 13) as u8 ^ (k >> 12) as u8)
            .collect();
        std::fs::write(files.join(format!("m{i}.jar")), &data).expect("write");
        toml.push_str(&format!(
            "[[mods]]\nurl = \"{}/m{i}.jar\"\nhash = \"sha256:{}\"\n",
            server.url().trim_end_matches('/'),
            hex::encode(sha2::Sha256::digest(&data))
        ));
        total += *n as u64;
    }
    let repo = GitRepo::init().expect("init");
    repo.write("pack.toml", toml).expect("write");
    repo.write("config/x.txt", "x").expect("write");
    repo.commit_all("c").expect("commit");
    let out = run(builder().args(["--json", "keygen", "--out-dir"]).arg(work.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = work.path().join("atlas-signing.key");

    let s3 = S3Server::start("atlas").expect("s3");
    let publish = |store: &str, cache: &str, extra: &[&str]| {
        let out = run(builder()
            .args(["--json", "publish", "--repo"])
            .arg(repo.path())
            .args(["--store", store, "--cache-dir"])
            .arg(work.path().join(cache))
            .arg("--key-file")
            .arg(&key)
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY));
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let endpoint = s3.endpoint();
    let s3_flags = [
        "--s3-endpoint",
        &endpoint,
        "--s3-region",
        REGION,
        "--s3-path-style",
    ];
    let first = publish("s3://atlas/p", "cache-a", &s3_flags);
    assert_eq!(
        (first["blobs_new"].as_u64(), first["blobs_reused"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(first["bytes_new"].as_u64(), Some(total + 1));
    assert_eq!(first["mods"]["downloaded"].as_u64(), Some(4));
    let again = publish("s3://atlas/p", "cache-a", &s3_flags);
    assert_eq!(
        (again["blobs_new"].as_u64(), again["blobs_reused"].as_u64()),
        (Some(0), Some(5))
    );
    assert_eq!(again["build"], first["build"]);

    let dir = work.path().join("store");
    let local = publish(dir.to_str().expect("utf-8 path"), "cache-b", &[]);
    assert_eq!(local["build"], first["build"]);
    assert_eq!(local["blobs_new"].as_u64(), Some(5));
    let mut checked = 0;
    for shard in std::fs::read_dir(dir.join("blobs/sha256")).expect("ls") {
        for f in std::fs::read_dir(shard.expect("shard").path()).expect("ls") {
            let path = f.expect("blob").path();
            let bytes = std::fs::read(&path).expect("read");
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), name);
            let in_s3 = s3.object(&format!("p/blobs/sha256/{}/{name}", &name[..2]));
            assert_eq!(in_s3.as_deref(), Some(bytes.as_slice()), "same blob in S3");
            checked += 1;
        }
    }
    assert_eq!(checked, 5);
}
