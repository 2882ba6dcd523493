//! Symbolic links inside the target directory are never written through: a
//! linked directory on a file's path (which could lead outside DIR) is
//! refused before anything changes, a managed file replaced by a link is
//! replaced as a link (its target untouched), and a linked `.atlas/` is refused.
#![cfg(unix)]

use std::os::unix::fs::symlink;

use crate::common::*;
use atlas_fetcher::{OnModified, Syncer, exit};
use atlas_testkit::http::StaticServer;

fn build(v: &str) -> Vec<Spec> {
    vec![
        f("mods/a.jar", format!("mod a {v}").as_bytes()),
        f("config/x.toml", format!("x = \"{v}\"\n").as_bytes()),
    ]
}

#[tokio::test]
async fn a_linked_directory_on_the_path_is_refused_and_its_target_untouched() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (dir, outside) = (work.path().join("server"), work.path().join("outside"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    symlink(&outside, dir.join("mods")).expect("symlink");
    store.publish(&build("v1"));
    let before = (snapshot(&dir), snapshot(&outside));
    let err = sync(&srv.url(), &dir, &store.public())
        .await
        .expect_err("refused");
    assert_eq!(err.exit_code(), exit::LOCAL);
    let msg = err.to_string();
    assert!(
        msg.contains("server/mods is a symbolic link") && msg.contains("outside"),
        "{msg}"
    );
    assert_eq!(
        (snapshot(&dir), snapshot(&outside)),
        before,
        "nothing written anywhere"
    );
}

#[tokio::test]
async fn a_directory_turned_into_a_link_after_install_is_refused_on_update() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (dir, outside) = (work.path().join("server"), work.path().join("outside"));
    store.publish(&build("v1"));
    sync(&srv.url(), &dir, &store.public()).await.expect("install");
    // Someone moves config/ away and links it to a directory outside.
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::rename(dir.join("config/x.toml"), outside.join("x.toml")).expect("mv");
    std::fs::remove_dir(dir.join("config")).expect("rmdir");
    symlink(&outside, dir.join("config")).expect("symlink");
    store.publish(&build("v2"));
    let outside_before = snapshot(&outside);
    let err = sync(&srv.url(), &dir, &store.public())
        .await
        .expect_err("refused");
    assert_eq!(err.exit_code(), exit::LOCAL);
    assert!(
        err.to_string().contains("server/config is a symbolic link"),
        "{err}"
    );
    assert_eq!(
        snapshot(&outside),
        outside_before,
        "the link's target is untouched"
    );
    assert_eq!(
        std::fs::read(dir.join("mods/a.jar")).expect("a"),
        b"mod a v1",
        "no partial update"
    );
}

#[tokio::test]
async fn a_managed_file_replaced_by_a_link_is_replaced_not_written_through() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (dir, secret) = (work.path().join("server"), work.path().join("secret.txt"));
    store.publish(&build("v1"));
    sync(&srv.url(), &dir, &store.public()).await.expect("install");
    std::fs::write(&secret, b"do not overwrite").expect("write");
    std::fs::remove_file(dir.join("mods/a.jar")).expect("rm");
    symlink(&secret, dir.join("mods/a.jar")).expect("symlink");
    store.publish(&build("v2"));
    let mut opts = options(&srv.url(), &dir, vec![store.public()]);
    opts.on_modified = OnModified::Replace;
    Syncer::new(opts)
        .expect("syncer")
        .sync(false, &atlas_fetcher::NoProgress)
        .await
        .expect("update");
    assert_eq!(std::fs::read(&secret).expect("secret"), b"do not overwrite");
    let meta = std::fs::symlink_metadata(dir.join("mods/a.jar")).expect("meta");
    assert!(meta.is_file(), "the link itself was replaced by the new file");
    assert_eq!(std::fs::read(dir.join("mods/a.jar")).expect("a"), b"mod a v2");
}

#[tokio::test]
async fn a_linked_state_directory_is_refused() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (dir, elsewhere) = (work.path().join("server"), work.path().join("elsewhere"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    symlink(&elsewhere, dir.join(".atlas")).expect("symlink");
    store.publish(&build("v1"));
    let before = snapshot(&elsewhere);
    let err = sync(&srv.url(), &dir, &store.public())
        .await
        .expect_err("refused");
    assert_eq!(err.exit_code(), exit::LOCAL);
    assert!(err.to_string().contains(".atlas is a symbolic link"), "{err}");
    assert_eq!(snapshot(&elsewhere), before, "nothing written through the link");
    assert!(!dir.join("mods").exists());
}
