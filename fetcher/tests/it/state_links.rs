//! Links inside `.atlas/` and the shared blob cache are never followed
//! (issue 17 item 1). Hosts run the fetcher as root over a directory the
//! server's user owns, so that user may replace anything in `.atlas/` with a
//! link, a FIFO, or a whole new `.atlas/`, before or during a run: each case
//! is refused (exit 7, naming the link) or handled without following it, and
//! a sibling directory the links point to is byte-for-byte unchanged.
#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::common::*;
use atlas_fetcher::cache::BlobCache;
use atlas_fetcher::{NoProgress, OnModified, Phase, Progress, SyncError, Syncer, exit};
use atlas_testkit::http::StaticServer;

fn build(v: &str) -> Vec<Spec> {
    vec![
        f("mods/a.jar", format!("mod a {v}").as_bytes()),
        f("config/x.toml", format!("x = \"{v}\"\n").as_bytes()),
    ]
}

/// A store serving v1, a server directory with v1 installed, and a sibling
/// directory `outside` holding a file, which no run may change.
struct Host {
    store: Store,
    srv: StaticServer,
    work: tempfile::TempDir,
}

impl Host {
    async fn installed() -> Self {
        let mut store = Store::new();
        store.publish(&build("v1"));
        let srv = StaticServer::start(store.root()).expect("server");
        let work = tempfile::tempdir().expect("tmp");
        let h = Self { store, srv, work };
        std::fs::create_dir_all(h.outside()).expect("mkdir");
        std::fs::write(h.outside().join("precious.txt"), b"not yours").expect("write");
        sync(&h.srv.url(), &h.dir(), &h.store.public())
            .await
            .expect("install v1");
        h
    }

    fn dir(&self) -> PathBuf {
        self.work.path().join("server")
    }

    fn outside(&self) -> PathBuf {
        self.work.path().join("outside")
    }

    fn state(&self, name: &str) -> PathBuf {
        self.dir().join(".atlas").join(name)
    }

    /// Replaces `.atlas/<name>` with a link to `target`.
    fn link(&self, name: &str, target: &Path) {
        let p = self.state(name);
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            if m.is_dir() {
                std::fs::remove_dir_all(&p).expect("rm");
            } else {
                std::fs::remove_file(&p).expect("rm");
            }
        }
        symlink(target, &p).expect("symlink");
    }

    fn syncer(&self, policy: OnModified) -> Syncer {
        let mut opts = options(&self.srv.url(), &self.dir(), vec![self.store.public()]);
        opts.on_modified = policy;
        Syncer::new(opts).expect("syncer")
    }

    async fn update(&mut self, policy: OnModified) -> Result<atlas_fetcher::Report, SyncError> {
        self.store.publish(&build("v2"));
        self.syncer(policy).sync(false, &NoProgress).await
    }
}

fn assert_refused(err: &SyncError, link: &str) {
    assert_eq!(err.exit_code(), exit::LOCAL, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{link} is a symbolic link")) && msg.contains("remove the link"),
        "the message names the link and what to do: {msg}"
    );
}

#[tokio::test]
async fn a_linked_builds_directory_is_refused_and_its_target_untouched() {
    let mut h = Host::installed().await;
    h.link("builds", &h.outside());
    let before = snapshot(&h.outside());
    let err = h.update(OnModified::Keep).await.expect_err("refused");
    assert_refused(&err, ".atlas/builds");
    assert_eq!(snapshot(&h.outside()), before, "nothing written or deleted there");
    assert_eq!(files(&h.dir()), expected(&build("v1")), "no partial update");
}

#[tokio::test]
async fn a_linked_backups_directory_is_refused() {
    let mut h = Host::installed().await;
    std::fs::write(h.dir().join("config/x.toml"), b"x = \"mine\"\n").expect("edit");
    h.link("backups", &h.outside());
    let before = snapshot(&h.outside());
    let err = h.update(OnModified::Backup).await.expect_err("refused");
    assert_refused(&err, ".atlas/backups");
    assert_eq!(snapshot(&h.outside()), before);
    assert_eq!(
        std::fs::read(h.dir().join("config/x.toml")).expect("read"),
        b"x = \"mine\"\n"
    );
}

#[tokio::test]
async fn a_dangling_lock_link_is_refused_and_creates_nothing() {
    let mut h = Host::installed().await;
    h.link("lock", &h.outside().join("created-by-the-lock"));
    let before = snapshot(&h.outside());
    let err = h.update(OnModified::Keep).await.expect_err("refused");
    assert_refused(&err, ".atlas/lock");
    assert_eq!(snapshot(&h.outside()), before, "no file created through the link");
}

#[tokio::test]
async fn a_linked_prefetch_directory_is_refused() {
    let mut h = Host::installed().await;
    h.link("prefetch", &h.outside());
    h.store.publish(&build("v2"));
    let before = snapshot(&h.outside());
    let syncer = h.syncer(OnModified::Keep);
    let check = syncer.check(&NoProgress).await.expect("check");
    let plan = syncer.plan(&check, &NoProgress).expect("plan");
    let err = syncer
        .prefetch(&check, &plan, &NoProgress)
        .await
        .expect_err("refused");
    assert_refused(&err, ".atlas/prefetch");
    assert_eq!(snapshot(&h.outside()), before, "no blob written there");
}

#[tokio::test]
async fn a_linked_apply_backup_directory_is_never_written_through() {
    // `.atlas/backup/` holds the replaced files during an apply; without a
    // journal it is a leftover, removed (the link itself, never its target).
    let mut h = Host::installed().await;
    h.link("backup", &h.outside());
    let before = snapshot(&h.outside());
    let r = h.update(OnModified::Keep).await;
    assert_eq!(snapshot(&h.outside()), before, "nothing moved there: {r:?}");
    r.expect("the update itself goes through");
    assert_eq!(files(&h.dir()), expected(&build("v2")));
}

#[tokio::test]
async fn state_files_that_are_links_are_refused() {
    for name in ["trust.json", "install.json", "journal.json"] {
        let mut h = Host::installed().await;
        let copy = h.outside().join(name);
        if let Ok(bytes) = std::fs::read(h.state(name)) {
            std::fs::write(&copy, bytes).expect("copy");
        }
        h.link(name, &copy);
        let before = snapshot(&h.outside());
        let err = h.update(OnModified::Keep).await.expect_err(name);
        assert_refused(&err, &format!(".atlas/{name}"));
        assert_eq!(snapshot(&h.outside()), before, "{name}");
    }
}

#[tokio::test]
async fn a_fifo_as_a_state_file_is_refused_instead_of_hanging_the_run() {
    for name in ["install.json", "trust.json"] {
        let mut h = Host::installed().await;
        std::fs::remove_file(h.state(name)).expect("rm");
        nix::unistd::mkfifo(&h.state(name), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let run = tokio::time::timeout(std::time::Duration::from_secs(20), h.update(OnModified::Keep));
        let err = run.await.expect("the run must not hang").expect_err(name);
        assert_eq!(err.exit_code(), exit::LOCAL, "{err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}

/// At the start of the downloads (after every check), replaces the whole
/// `.atlas/` with one whose entries are links to `outside`, as the server's
/// user can at any moment.
struct SwapStateDir {
    dir: PathBuf,
    outside: PathBuf,
}

impl Progress for SwapStateDir {
    fn phase(&self, phase: &Phase) {
        if !matches!(phase, Phase::Download { .. }) {
            return;
        }
        let state = self.dir.join(".atlas");
        std::fs::rename(&state, self.dir.join(".atlas-moved")).expect("move .atlas away");
        std::fs::create_dir_all(state.join("staging")).expect("mkdir");
        for shard in "0123456789abcdef".chars() {
            symlink(&self.outside, state.join("staging").join(shard.to_string())).expect("symlink");
        }
        for name in ["builds", "backup", "backups", "prefetch"] {
            symlink(&self.outside, state.join(name)).expect("symlink");
        }
        symlink(self.outside.join("journal.json"), state.join("journal.json")).expect("symlink");
        symlink(self.outside.join("install.json"), state.join("install.json")).expect("symlink");
    }
}

#[tokio::test]
async fn replacing_the_state_directory_mid_run_cannot_redirect_a_write() {
    let mut h = Host::installed().await;
    h.store.publish(&build("v2"));
    let before = snapshot(&h.outside());
    let swap = SwapStateDir {
        dir: h.dir(),
        outside: h.outside(),
    };
    let r = h.syncer(OnModified::Keep).sync(false, &swap).await;
    assert_eq!(
        snapshot(&h.outside()),
        before,
        "every write went to the directories opened before the swap: {r:?}"
    );
}

#[tokio::test]
async fn links_in_the_shared_cache_are_never_followed() {
    let store = {
        let mut s = Store::new();
        s.publish(&build("v1"));
        s
    };
    let srv = StaticServer::start(store.root()).expect("server");
    let work = tempfile::tempdir().expect("tmp");
    let (cache, outside) = (work.path().join("cache"), work.path().join("outside"));
    std::fs::create_dir_all(cache.join("sha256")).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("precious.txt"), b"not yours").expect("write");
    // Every shard of the cache is a link to `outside`.
    for i in 0..=255u8 {
        symlink(&outside, cache.join("sha256").join(format!("{i:02x}"))).expect("symlink");
    }
    let before = snapshot(&outside);
    let mut opts = options(&srv.url(), &work.path().join("server"), vec![store.public()]);
    opts.cache = Some(cache.clone());
    let r = Syncer::new(opts).expect("syncer").sync(false, &NoProgress).await;
    assert_eq!(snapshot(&outside), before, "no blob kept through a link: {r:?}");
    r.expect("a cache it cannot use costs downloads, not the sync");
    let err = BlobCache::open(&cache)
        .expect("open")
        .gc(0)
        .expect_err("gc refuses the links");
    assert_eq!(err.exit_code(), exit::LOCAL, "{err}");
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(snapshot(&outside), before, "gc deleted nothing there");
}

#[tokio::test]
async fn a_linked_partial_directory_is_not_used_and_its_target_untouched() {
    // `.atlas/partial/` keeps big downloads across runs; as a link it is
    // left alone (downloads go to staging), never written or cleaned through.
    let mut h = Host::installed().await;
    h.link("partial", &h.outside());
    let before = snapshot(&h.outside());
    let mut v2 = build("v2");
    v2.push(f("mods/big.jar", &vec![7u8; 2 << 20]));
    h.store.publish(&v2);
    let r = h.syncer(OnModified::Keep).sync(false, &NoProgress).await;
    assert_eq!(
        snapshot(&h.outside()),
        before,
        "nothing kept or removed there: {r:?}"
    );
    r.expect("the update goes through without keeping partial downloads");
    assert_eq!(files(&h.dir()), expected(&v2));
    assert!(
        std::fs::symlink_metadata(h.state("partial"))
            .expect("still there")
            .is_symlink(),
        "the link itself is left for the administrator"
    );
}
