//! The pack page and the store index in a real browser (issue 21): a pack
//! is published twice to `dev` and promoted to `production`, with its
//! player exports, into a directory store served over loopback; headless
//! Chromium (the distribution's package) loads each generated page from the
//! store through the DevTools protocol (chromiumoxide) and the test checks
//! what the browser shows (channels, versions, changelog, downloads), that
//! every link into the store resolves to the stored object the pointers
//! name, that the CSP-locked stylesheet applied, that nothing logged an
//! error, that the page fits a phone's width, and that the browser
//! requested nothing outside the store.
//!
//! Chromium is `ATLAS_CHROMIUM`, else `chromium` or `chromium-browser` on
//! PATH. Without it the test says so and passes, unless
//! `ATLAS_REQUIRE_CHROMIUM=1` (CI sets it): then its absence fails.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::log::{self as cdp_log, EventEntryAdded};
use chromiumoxide::cdp::browser_protocol::network::EventRequestWillBeSent;
use chromiumoxide::cdp::js_protocol::runtime::EventExceptionThrown;
use chromiumoxide::page::Page;
use futures_util::StreamExt as _;
use serde::Deserialize;

use atlas_builder::export::ExportOptions;
use atlas_builder::export::player_tools;
use atlas_builder::promote::{PromoteFrom, PromoteRequest};
use atlas_builder::publish::{PublishOptions, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::DirStore;
use atlas_proto::pointer::{Expectation, PointerPayload, SignedPointer};
use atlas_proto::{Limits, SecretKey, layout};
use atlas_testkit::git::GitRepo;
use atlas_testkit::http::StaticServer;

const PACK: &str = "browser-pack";

/// The Chromium to drive, or `None` (with the test's verdict on that).
// The skip notice goes to stderr, where `cargo test -- --nocapture` shows it.
#[allow(clippy::print_stderr)]
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("ATLAS_CHROMIUM").map(PathBuf::from).or_else(|| {
        ["chromium", "chromium-browser"].iter().find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
    });
    if found.is_none() {
        let required = std::env::var("ATLAS_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "ATLAS_REQUIRE_CHROMIUM=1 but no Chromium was found (set ATLAS_CHROMIUM, or apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED: the pages' browser test needs Chromium (apt-get install chromium, or set ATLAS_CHROMIUM); set ATLAS_REQUIRE_CHROMIUM=1 to make its absence a failure"
        );
    }
    found
}

fn write_pack(repo: &GitRepo, version: &str, client_jar: &str) {
    repo.write(
        "pack.toml",
        format!(
            r#"id = "{PACK}"
name = "Browser <Pack> & Co"
version = "{version}"
minecraft = "1.21.1"
loader = {{ kind = "fabric", version = "0.16.9" }}
description = "A pack the browser test publishes."
author = "Atlas tests"

[[files]]
include = ["mods/*.jar", "config/**"]

[[files]]
include = ["mods/{client_jar}"]
side = "client"
"#
        ),
    )
    .expect("write pack.toml");
}

/// A player-tools folder with stand-in bytes (the browser never runs them).
fn tools(root: &Path) -> player_tools::PlayerTools {
    let dir = root.join("tools");
    let target = "x86_64-unknown-linux-musl";
    std::fs::create_dir_all(dir.join(target)).expect("mkdir");
    std::fs::write(dir.join("VERSION"), "0.1.0\n").expect("write");
    std::fs::write(dir.join("atlas-bootstrap.jar"), b"PK\x03\x04stand-in jar").expect("write");
    std::fs::write(dir.join(target).join("atlas-fetcher"), b"stand-in fetcher").expect("write");
    player_tools::load(&dir, &Limits::DEFAULT).expect("player tools")
}

struct World {
    _tmp: tempfile::TempDir,
    repo: GitRepo,
    store: DirStore,
    server: StaticServer,
    exports: ExportOptions,
    key: SecretKey,
    tools: player_tools::PlayerTools,
}

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let store_dir = tmp.path().join("store");
        std::fs::create_dir_all(&store_dir).expect("mkdir");
        let server = StaticServer::start(&store_dir).expect("server");
        let exports = ExportOptions::new(&server.url()).expect("public url");
        let repo = GitRepo::init().expect("git init");
        Self {
            tools: tools(tmp.path()),
            repo,
            store: DirStore::new(&store_dir),
            server,
            exports,
            key: SecretKey::from_seed(&[33; 32]),
            _tmp: tmp,
        }
    }

    async fn publish(&self, channel: &str, now: u64) {
        let source = PackSource::open(self.repo.path(), false).expect("open repo");
        let opts = PublishOptions {
            channel: channel.into(),
            now,
            pointer_lifetime: Duration::from_secs(30 * 86_400),
            dry_run: false,
            concurrency: 2,
            force_pointer: false,
        };
        let req = PublishRequest {
            key: Some(&self.key),
            exports: Some(&self.exports),
            player_tools: Some(&self.tools),
            ..PublishRequest::new(&source, &self.store, opts, ModOptions::default())
        };
        atlas_builder::publish::run(req).await.expect("publish");
    }

    fn pointer(&self, channel: &str) -> PointerPayload {
        let bytes =
            std::fs::read(self.store.root().join(layout::pointer_key(PACK, channel))).expect("pointer");
        let expect = Expectation {
            pack: PACK,
            channel,
            now: 0,
            last: None,
        };
        SignedPointer::parse(&bytes)
            .and_then(|p| p.verify(&[self.key.public()], 1, &expect))
            .expect("pointer verifies")
            .payload
    }

    /// The stored object a URL of the store names (`None`: not the store's).
    fn object(&self, url: &str) -> Option<Vec<u8>> {
        let key = url.strip_prefix(&self.server.url())?;
        let key = key.split(['#', '?']).next().unwrap_or(key);
        Some(
            std::fs::read(self.store.root().join(key))
                .unwrap_or_else(|e| panic!("{url}: not in the store ({e})")),
        )
    }
}

/// What the page shows, read through the DevTools protocol.
#[derive(Debug, Deserialize)]
struct Shown {
    title: String,
    text: String,
    h1: String,
    /// Body margin after the stylesheet (the browser's default is 8px).
    body_margin: String,
    style_sheets: usize,
    links: Vec<Link>,
    images: Vec<Image>,
    changes: Vec<String>,
    /// Every element id (fragment links' targets).
    ids: Vec<String>,
    /// Document width and viewport width, in CSS pixels.
    scroll_width: u32,
    client_width: u32,
}

#[derive(Debug, Deserialize)]
struct Link {
    href: String,
    raw: String,
    class: String,
}

#[derive(Debug, Deserialize)]
struct Image {
    src: String,
    loaded: bool,
}

const READ_PAGE: &str = r#"() => JSON.stringify({
    title: document.title,
    text: document.body.innerText,
    h1: (document.querySelector('h1') || {}).textContent || '',
    body_margin: getComputedStyle(document.body).marginTop,
    style_sheets: document.styleSheets.length,
    links: [...document.querySelectorAll('a[href], link[href]')].map(a => ({
        href: a.href, raw: a.getAttribute('href'), class: a.getAttribute('class') || a.getAttribute('rel') || ''
    })),
    images: [...document.images].map(i => ({ src: i.src, loaded: i.complete && i.naturalWidth > 0 })),
    changes: [...document.querySelectorAll('ul.changes')].map(u => u.innerText),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    scroll_width: document.documentElement.scrollWidth,
    client_width: document.documentElement.clientWidth,
})"#;

/// Everything the browser asked for and complained about.
#[derive(Default)]
struct Seen {
    requests: Vec<String>,
    errors: Vec<String>,
}

struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch(exe: &Path) -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(exe)
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            // Nothing may reach past loopback even if a page asked for it
            // (the request would still be seen, and fail the test).
            .args([
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-gpu",
            ])
            .build()
            .expect("browser config");
        let (browser, mut handler) = Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("launching {}: {e}", exe.display()));
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Self {
            browser,
            handler,
            _profile: profile,
        }
    }

    /// Loads `url` in a new tab of `width` CSS pixels and reads what it shows.
    async fn load(&self, url: &str, width: Option<i64>) -> (Shown, Seen) {
        let page: Page = self.browser.new_page("about:blank").await.expect("new tab");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut requests = page
            .event_listener::<EventRequestWillBeSent>()
            .await
            .expect("listen");
        let mut entries = page.event_listener::<EventEntryAdded>().await.expect("listen");
        let mut exceptions = page
            .event_listener::<EventExceptionThrown>()
            .await
            .expect("listen");
        page.execute(cdp_log::EnableParams::default())
            .await
            .expect("Log.enable");
        if let Some(w) = width {
            page.execute(SetDeviceMetricsOverrideParams::new(w, 800, 3.0, true))
                .await
                .expect("phone metrics");
        }
        let s = seen.clone();
        let collect = tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(r) = requests.next() => s.lock().expect("lock").requests.push(r.request.url.clone()),
                    Some(e) = entries.next() => {
                        if matches!(e.entry.level, cdp_log::LogEntryLevel::Error | cdp_log::LogEntryLevel::Warning) {
                            s.lock().expect("lock").errors.push(format!("{:?}: {} ({})", e.entry.level, e.entry.text, e.entry.url.clone().unwrap_or_default()));
                        }
                    }
                    Some(x) = exceptions.next() => s.lock().expect("lock").errors.push(format!("exception: {:?}", x.exception_details.text)),
                    else => break,
                }
            }
        });
        page.goto(url)
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
        page.wait_for_navigation().await.expect("navigation");
        // Let the icon and any stray subresource requests land.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let json: String = page
            .evaluate_function(READ_PAGE)
            .await
            .expect("read the page")
            .into_value()
            .expect("a string");
        let shown: Shown = serde_json::from_str(&json).expect("page JSON");
        page.close().await.expect("close tab");
        collect.abort();
        let seen = std::mem::take(&mut *seen.lock().expect("lock"));
        (shown, seen)
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// No request left the store, none failed, and nothing was logged.
fn only_the_store(w: &World, what: &str, seen: &Seen) {
    assert!(!seen.requests.is_empty(), "{what}: no request seen");
    // (The tab's own about:blank is no request.)
    for r in &seen.requests {
        assert!(
            r.starts_with(&w.server.url()),
            "{what}: the browser requested {r}, outside the store {}",
            w.server.url()
        );
    }
    assert!(
        seen.errors.is_empty(),
        "{what}: the browser logged {:#?}",
        seen.errors
    );
}

/// Every link into the store names a stored object; links out go only to
/// mods' pages; every other link is within the page.
fn links_resolve(w: &World, what: &str, page_url: &str, shown: &Shown) -> usize {
    let mut into_store = 0;
    for l in &shown.links {
        if l.href.starts_with(&format!("{page_url}#")) {
            let id = &l.href[page_url.len() + 1..];
            assert!(
                shown.ids.iter().any(|i| i == id),
                "{what}: {l:?} points at no element of the page"
            );
        } else if l.href.starts_with(&w.server.url()) {
            assert!(
                !l.raw.starts_with("http"),
                "{what}: links into the store are relative: {l:?}"
            );
            let body = w.object(&l.href).expect("a store URL");
            assert!(!body.is_empty(), "{what}: {} is empty", l.href);
            into_store += 1;
        } else {
            assert!(
                l.href.starts_with("https://modrinth.com/")
                    || l.href.starts_with("https://www.curseforge.com/"),
                "{what}: link out of the store to {}",
                l.href
            );
        }
    }
    into_store
}

#[tokio::test]
async fn pages_in_a_real_browser() {
    let Some(exe) = chromium() else { return };
    let w = World::new();
    // Build 1 on dev, promoted to production; build 2 on dev.
    write_pack(&w.repo, "1.0.0", "zoom.jar");
    w.repo.write("mods/alpha.jar", vec![0xA1; 4000]).expect("write");
    w.repo.write("mods/zoom.jar", vec![0x20; 3000]).expect("write");
    w.repo.write("config/alpha.toml", "on = true\n").expect("write");
    w.repo.commit_all("1.0.0").expect("commit");
    let t0 = 1_900_000_000;
    w.publish("dev", t0).await;
    atlas_builder::promote::run(PromoteRequest {
        store: &w.store,
        key: &w.key,
        trusted: &[],
        pack: PACK,
        from: PromoteFrom::Channel("dev".into()),
        to: "production",
        now: t0 + 60,
        lifetime: Duration::from_secs(30 * 86_400),
        exports: Some(&w.exports),
        player_tools: Some(&w.tools),
    })
    .await
    .expect("promote");
    write_pack(&w.repo, "1.1.0", "beta.jar");
    w.repo.write("mods/alpha.jar", vec![0xA2; 4100]).expect("write");
    w.repo.git(&["rm", "-q", "mods/zoom.jar"]).expect("git rm");
    w.repo.write("mods/beta.jar", vec![0xB0; 2500]).expect("write");
    w.repo.commit_all("1.1.0").expect("commit");
    w.publish("dev", t0 + 3600).await;
    let (dev, production) = (w.pointer("dev"), w.pointer("production"));
    assert_ne!(dev.build, production.build);

    let chromium = Chromium::launch(&exe).await;
    // The pack page.
    let page_url = w.exports.url_of(&layout::pack_page_key(PACK));
    w.server.reset_requests();
    let (shown, seen) = chromium.load(&page_url, None).await;
    only_the_store(&w, "pack page", &seen);
    assert!(
        w.server.requests().iter().all(|r| matches!(r.status, 200 | 304)),
        "every request the page made was answered: {:?}",
        w.server.requests()
    );
    assert_eq!(shown.h1, "Browser <Pack> & Co", "the name, as text");
    assert!(shown.title.contains("Browser <Pack> & Co"), "{}", shown.title);
    assert_eq!(shown.style_sheets, 1, "one inline stylesheet");
    assert_eq!(
        shown.body_margin, "0px",
        "the stylesheet applied under the page's CSP"
    );
    for needle in [
        "A pack the browser test publishes.",
        "Atlas tests",
        "1.21.1",
        "Channel dev",
        "Channel production",
        "1.1.0",
        "1.0.0",
        &dev.build[..12],
        &production.build[..12],
        "beta",
        "atlas-fetcher",
    ] {
        assert!(
            shown.text.contains(needle),
            "the page shows `{needle}`:\n{}",
            shown.text
        );
    }
    // dev's changelog: build 1 -> build 2, by file.
    let dev_changes = shown.changes.first().expect("dev has a changelog");
    for needle in ["beta", "zoom", "alpha"] {
        assert!(
            dev_changes.contains(needle),
            "dev's changes name `{needle}`: {dev_changes}"
        );
    }
    // Downloads: each channel's .mrpack and instance archive, the pointers' own.
    for (channel, p) in [("dev", &dev), ("production", &production)] {
        for key in [
            p.exports.mrpack.clone().expect("mrpack"),
            p.exports.instance.clone().expect("instance"),
        ] {
            let url = w.exports.url_of(&key);
            assert!(
                shown
                    .links
                    .iter()
                    .any(|l| l.href == url && l.class.contains("download")),
                "{channel}: the page links {key}: {:?}",
                shown.links
            );
        }
    }
    let into_store = links_resolve(&w, "pack page", &page_url, &shown);
    assert!(into_store >= 5, "downloads, icon and index: {into_store}");
    assert!(
        shown
            .images
            .iter()
            .all(|i| i.loaded && i.src.starts_with(&w.server.url())),
        "images load from the store: {:?}",
        shown.images
    );

    // On a phone: nothing wider than the screen.
    let (phone, seen) = chromium.load(&page_url, Some(390)).await;
    only_the_store(&w, "pack page on a phone", &seen);
    assert!(
        phone.scroll_width <= phone.client_width,
        "the page fits a 390 px screen: {} > {}",
        phone.scroll_width,
        phone.client_width
    );

    // The store index.
    let index_url = w.exports.url_of(layout::STORE_INDEX_KEY);
    let (index, seen) = chromium.load(&index_url, None).await;
    only_the_store(&w, "store index", &seen);
    assert_eq!(index.body_margin, "0px");
    assert!(index.text.contains("Browser <Pack> & Co"), "{}", index.text);
    assert!(index.text.contains("1.21.1"), "{}", index.text);
    assert!(
        index.links.iter().any(|l| l.href == page_url),
        "the index links the pack page: {:?}",
        index.links
    );
    links_resolve(&w, "store index", &index_url, &index);
    chromium.close().await;
}
