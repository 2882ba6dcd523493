//! `atlas-builder key init-root / rotate / revoke` write a keyset chain that
//! verifies as hosts verify it; publishing uploads it without ever replacing a
//! published keyset; `resign` refuses a key the store's keyset does not list.

use std::path::Path;

use atlas_builder::keyset::{self, KeysetCmdError, Rotation};
use atlas_builder::store::dir::DirStore;
use atlas_proto::{PublicKey, SecretKey};

use crate::common::builder;

fn secret(path: &Path) -> SecretKey {
    SecretKey::parse(&std::fs::read_to_string(path).expect("read")).expect("parse")
}

#[test]
fn init_rotate_revoke_through_the_command_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (keys, secrets) = (tmp.path().join("repo/.atlas/keys"), tmp.path().join("offline"));
    let run = |args: &[&str]| {
        let out = builder().args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let k = keys.to_str().expect("utf8");
    let s = |name: &str| secrets.join(name).display().to_string();
    let v = run(&[
        "--json",
        "key",
        "init-root",
        "--pack",
        "demo",
        "--keys-dir",
        k,
        "--secret-dir",
        &s(""),
        "--roots",
        "3",
        "--threshold",
        "2",
    ]);
    assert_eq!(v["version"], 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(secrets.join("root-1.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let new_pointer = SecretKey::from_seed(&[5; 32]).public().to_text();
    let v = run(&[
        "--json",
        "key",
        "rotate",
        "--keys-dir",
        k,
        "--sign-with",
        &s("root-1.key"),
        "--sign-with",
        &s("root-3.key"),
        "--pointer-key",
        &new_pointer,
    ]);
    assert_eq!(v["version"], 2);
    // One root key is not enough: nothing is written.
    let out = builder()
        .args([
            "key",
            "rotate",
            "--keys-dir",
            k,
            "--sign-with",
            &s("root-2.key"),
            "--pointer-key",
            &new_pointer,
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed by enough"));
    assert!(!keys.join("3.json").exists());
    let root2 = secret(&secrets.join("root-2.key")).public().key_id();
    let v = run(&[
        "--json",
        "key",
        "revoke",
        &root2,
        "--keys-dir",
        k,
        "--sign-with",
        &s("root-1.key"),
        "--sign-with",
        &s("root-3.key"),
    ]);
    assert_eq!(v["version"], 3);
    assert_eq!(v["revoked"][0], root2.as_str());
    assert_eq!(v["root_key_ids"].as_array().expect("ids").len(), 2);
    let chain = keyset::read_chain(&keys).expect("chain verifies");
    assert_eq!(chain.len(), 3);
    assert!(chain[2].keyset.is_revoked(&root2));
}

#[tokio::test]
async fn upload_never_replaces_a_published_keyset_and_resign_checks_the_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (keys, secrets) = (tmp.path().join("keys"), tmp.path().join("offline"));
    let out = keyset::init_root(&keys, &secrets, "demo", 1, 1, 1, false).expect("init");
    let store = DirStore::new(tmp.path().join("store"));
    let ks = keyset::upload(&store, &keys)
        .await
        .expect("upload")
        .expect("a keyset");
    assert_eq!(ks.version(), 1);
    keyset::upload(&store, &keys)
        .await
        .expect("same bytes again: fine");
    let pointer = secret(&secrets.join("pointer-1.key")).public();
    keyset::check_signing_key(&store, "demo", &pointer)
        .await
        .expect("current key");
    let other: PublicKey = SecretKey::from_seed(&[9; 32]).public();
    assert!(matches!(
        keyset::check_signing_key(&store, "demo", &other).await,
        Err(KeysetCmdError::NotAPointerKey { version: 1, .. })
    ));
    // Rotate to `other`; now the old pointer key is refused.
    let change = Rotation {
        pointer_keys: Some(vec![other.clone()]),
        ..Rotation::default()
    };
    keyset::rotate(&keys, &change, &[secrets.join("root-1.key")], 2).expect("rotate");
    keyset::upload(&store, &keys).await.expect("upload 2");
    assert!(keyset::check_signing_key(&store, "demo", &pointer).await.is_err());
    keyset::check_signing_key(&store, "demo", &other)
        .await
        .expect("rotated key");
    // A different local keys/2.json (a second rotation prepared elsewhere) is refused.
    std::fs::remove_file(keys.join("2.json")).expect("rm");
    keyset::rotate(&keys, &Rotation::default(), &[secrets.join("root-1.key")], 3).expect("rotate again");
    assert!(matches!(
        keyset::upload(&store, &keys).await,
        Err(KeysetCmdError::Conflict { .. })
    ));
    assert_eq!(out.secret_key_files.len(), 2);
}

/// `publish` uploads the repository's `.atlas/keys/` before the pointer and
/// refuses a signing key the newest keyset does not list; `resign` too.
#[test]
fn publish_uploads_the_keys_dir_and_checks_the_signing_key() {
    let work = tempfile::tempdir().expect("tmp");
    let repo = atlas_testkit::git::GitRepo::init().expect("init");
    repo.write(
        "pack.toml",
        "id = \"kpack\"\nname = \"K\"\nversion = \"1\"\nminecraft = \"1.21.1\"\nloader = { kind = \"vanilla\" }\n[[files]]\ninclude = [\"**\"]\n",
    )
    .expect("write");
    repo.write("config/x.txt", "x").expect("write");
    repo.commit_all("c").expect("commit");
    let secrets = work.path().join("offline");
    keyset::init_root(
        &repo.path().join(".atlas/keys"),
        &secrets,
        "kpack",
        2,
        1,
        1,
        false,
    )
    .expect("init");
    // Committed (as creators do): `include = ["**"]` must still leave `.atlas/` out of the build.
    repo.commit_all("keys").expect("commit");
    let store = work.path().join("store");
    let publish = |key: &Path| {
        builder()
            .args(["--json", "publish", "--channel", "dev", "--repo"])
            .arg(repo.path())
            .arg("--store")
            .arg(format!("file://{}", store.display()))
            .env("ATLAS_SIGNING_KEY", std::fs::read_to_string(key).expect("key"))
            .output()
            .expect("run")
    };
    // A key outside the keyset: refused before anything names it.
    let stranger = work.path().join("stranger.key");
    std::fs::write(&stranger, SecretKey::from_seed(&[3; 32]).to_text()).expect("write");
    let out = publish(&stranger);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pointer key of keyset 1"));
    assert!(
        store.join("packs/kpack/keys/1.json").is_file(),
        "the keyset went up first"
    );
    assert!(!store.join("packs/kpack/channels/dev.json").exists());
    let out = publish(&secrets.join("pointer-1.key"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(store.join("packs/kpack/keys/1.json")).expect("read"),
        std::fs::read(repo.path().join(".atlas/keys/1.json")).expect("read")
    );
    let out = builder()
        .args(["resign", "--pack", "kpack", "--channel", "dev", "--store"])
        .arg(format!("file://{}", store.display()))
        .args(["--key-file"])
        .arg(&stranger)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
