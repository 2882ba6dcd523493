//! Optional files: the pack's defaults, the host's `--enable` / `--disable`
//! choices (by path, file name or display name), re-planning when the choice
//! changes while the channel does not, and clear refusals of unknown names.

use crate::common::*;
use atlas_fetcher::cli::{Cli, run};
use atlas_fetcher::select::Selection;
use atlas_fetcher::{Outcome, Syncer, exit};
use atlas_testkit::http::StaticServer;
use clap::Parser as _;

fn optional(path: &str, content: &[u8], on: bool) -> Spec {
    Spec {
        optional: true,
        default_enabled: on,
        ..f(path, content)
    }
}

fn build() -> Vec<Spec> {
    vec![
        f("mods/core.jar", b"core"),
        optional("mods/minimap.jar", b"minimap", true),
        optional("shaderpacks/shiny.zip", b"shaders", false),
    ]
}

async fn sync_selecting(
    source: &str,
    dir: &std::path::Path,
    store: &Store,
    enable: &[&str],
    disable: &[&str],
) -> Result<atlas_fetcher::Report, atlas_fetcher::SyncError> {
    let mut opts = options(source, dir, vec![store.public()]);
    opts.selection = Selection {
        enable: enable.iter().map(|s| (*s).to_owned()).collect(),
        disable: disable.iter().map(|s| (*s).to_owned()).collect(),
    };
    Syncer::new(opts)?
        .sync(false, &atlas_fetcher::progress::NoProgress)
        .await
}

#[tokio::test]
async fn defaults_then_host_choices_replan_without_a_new_build() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    store.publish(&build());

    // Pack defaults: the minimap (on) but not the shaders (off).
    let r = sync_selecting(&srv.url(), &dir, &store, &[], &[])
        .await
        .expect("sync");
    assert_eq!(r.outcome, Outcome::Updated);
    let mut names: Vec<String> = files(&dir).into_keys().collect();
    assert_eq!(names, ["mods/core.jar", "mods/minimap.jar"]);

    // Same channel, new choice: shaders by file name, minimap off by path.
    let r = sync_selecting(&srv.url(), &dir, &store, &["shiny.zip"], &["mods/minimap.jar"])
        .await
        .expect("sync");
    assert_eq!(
        r.outcome,
        Outcome::Updated,
        "a changed choice re-plans at the same build"
    );
    names = files(&dir).into_keys().collect();
    assert_eq!(names, ["mods/core.jar", "shaderpacks/shiny.zip"]);

    // Same choice again: nothing to do, one conditional request.
    srv.reset_requests();
    let r = sync_selecting(&srv.url(), &dir, &store, &["shiny.zip"], &["mods/minimap.jar"])
        .await
        .expect("sync");
    assert_eq!(r.outcome, Outcome::Current);
    assert_eq!(srv.count(), 1);

    // Back to the defaults.
    let r = sync_selecting(&srv.url(), &dir, &store, &[], &[])
        .await
        .expect("sync");
    assert_eq!(r.outcome, Outcome::Updated);
    names = files(&dir).into_keys().collect();
    assert_eq!(names, ["mods/core.jar", "mods/minimap.jar"]);
}

#[tokio::test]
async fn unknown_or_non_optional_names_are_refused_and_nothing_changes() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    store.publish(&build());
    sync_selecting(&srv.url(), &dir, &store, &[], &[])
        .await
        .expect("install");
    let before = snapshot(&dir);
    let err = sync_selecting(&srv.url(), &dir, &store, &["shinny.zip"], &[])
        .await
        .expect_err("typo");
    assert_eq!(err.exit_code(), exit::USAGE);
    let msg = err.to_string();
    assert!(
        msg.contains("--enable `shinny.zip`") && msg.contains("shaderpacks/shiny.zip (off)"),
        "{msg}"
    );
    let err = sync_selecting(&srv.url(), &dir, &store, &[], &["core.jar"])
        .await
        .expect_err("not optional");
    assert!(err.to_string().contains("not optional"), "{err}");
    assert_eq!(snapshot(&dir), before);
}

#[tokio::test]
async fn cli_flags_take_comma_separated_names() {
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().join("server");
    store.publish(&build());
    let cli = Cli::try_parse_from([
        "atlas-fetcher",
        "sync",
        "--source",
        &srv.url(),
        "--pack",
        PACK,
        "--channel",
        CHANNEL,
        "--key",
        &store.public().to_text(),
        "--dir",
        &dir.display().to_string(),
        "--enable",
        "shiny.zip,mods/minimap.jar",
    ])
    .expect("parse");
    assert_eq!(run(cli).await, exit::UPDATED);
    assert_eq!(
        files(&dir).into_keys().collect::<Vec<_>>(),
        ["mods/core.jar", "mods/minimap.jar", "shaderpacks/shiny.zip"]
    );
}

#[tokio::test]
async fn instance_flag_installs_client_files_into_the_game_directory() {
    use atlas_proto::v1::Side;
    let mut store = Store::new();
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let inst = work.path().join("PrismLauncher/instances/MyPack");
    std::fs::create_dir_all(inst.join("minecraft")).expect("mkdir");
    std::fs::write(inst.join("instance.cfg"), "InstanceType=OneSix\n").expect("write");
    store.publish(&[
        f("mods/both.jar", b"both"),
        sided("mods/client-only.jar", b"client", Side::Client),
        sided("mods/server-only.jar", b"server", Side::Server),
    ]);
    let cli = Cli::try_parse_from([
        "atlas-fetcher",
        "sync",
        "--source",
        &srv.url(),
        "--pack",
        PACK,
        "--channel",
        CHANNEL,
        "--key",
        &store.public().to_text(),
        "--instance",
        &inst.display().to_string(),
    ])
    .expect("parse");
    assert_eq!(run(cli).await, exit::UPDATED);
    assert_eq!(
        files(&inst.join("minecraft")).into_keys().collect::<Vec<_>>(),
        ["mods/both.jar", "mods/client-only.jar"],
        "client side by default, into the instance's game directory"
    );
    assert!(inst.join("instance.cfg").exists() && !inst.join("mods").exists());
}
