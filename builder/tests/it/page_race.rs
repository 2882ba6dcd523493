//! The pack page under concurrent writers (issue 21, docs/FORMAT.md §1a,
//! §10): three publishers write three channels of one pack at once, each
//! several builds in a row, while a reader keeps loading the page. Every
//! page read shows, for each channel, the build its pointer named at the
//! version the page claims, links only to those builds' objects, and never
//! shows an older pointer version than a page read before it; when the
//! writers are done, the page shows the live pointers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atlas_builder::export::ExportOptions;
use atlas_builder::page::write::{meta, pointer_versions};
use atlas_builder::publish::{PublishOptions, PublishRequest};
use atlas_builder::repo::PackSource;
use atlas_builder::resolve::ModOptions;
use atlas_builder::store::DirStore;
use atlas_proto::pointer::SignedPointer;
use atlas_proto::{SecretKey, layout};
use atlas_testkit::git::GitRepo;

const PACK: &str = "race-page";
const CHANNELS: [&str; 3] = ["dev", "beta", "production"];
const BUILDS: usize = 4;

fn repo(channel: &str) -> GitRepo {
    let r = GitRepo::init().expect("git");
    r.write(
        "pack.toml",
        format!(
            "id = \"{PACK}\"\nname = \"Race\"\nversion = \"1\"\nminecraft = \"1.21.1\"\n\
             loader = {{ kind = \"fabric\", version = \"0.16.9\" }}\n\
             [[files]]\ninclude = [\"config/**\"]\n"
        ),
    )
    .expect("write");
    r.write("config/channel.txt", format!("{channel} 0\n"))
        .expect("write");
    r.commit_all("0").expect("commit");
    r
}

/// The build a channel's pointer named at `version`: its history entry, or
/// the live pointer (its writer adds the history entry just after the swap).
fn build_at(root: &std::path::Path, channel: &str, version: u64) -> String {
    let payload = |key: String| {
        std::fs::read(root.join(key)).ok().map(|bytes| {
            SignedPointer::parse(&bytes)
                .and_then(|p| p.payload_unverified())
                .expect("a pointer envelope")
        })
    };
    for _ in 0..500 {
        if let Some(p) = payload(layout::history_key(PACK, channel, version)) {
            return p.build;
        }
        if let Some(p) = payload(layout::pointer_key(PACK, channel)).filter(|p| p.version == version) {
            return p.build;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("channel {channel} never had version {version}")
}

/// Checks one page read against the history; returns its pointer versions.
fn check_page(root: &std::path::Path, html: &str) -> BTreeMap<String, u64> {
    let shown: BTreeMap<String, u64> =
        pointer_versions(&meta(html, "atlas-pointers").expect("atlas-pointers"))
            .into_iter()
            .collect();
    let builds: Vec<String> = shown.iter().map(|(c, v)| build_at(root, c, *v)).collect();
    for b in &builds {
        assert!(html.contains(b.as_str()), "the page shows build {b}");
    }
    // Every build-specific link is to a build the shown pointers name.
    for (i, _) in html.match_indices("/builds/") {
        let hex = &html[i + "/builds/".len()..];
        let hex = &hex[..64.min(hex.len())];
        assert!(
            builds.iter().any(|b| b == hex),
            "the page links build {hex}, which no pointer version it shows names ({shown:?})"
        );
    }
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_follow_concurrent_writers_and_never_go_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("store");
    std::fs::create_dir_all(&root).expect("mkdir");
    let store = Arc::new(DirStore::new(&root));
    let exports = Arc::new(ExportOptions::new("https://cdn.example.com/").expect("url"));
    let key = Arc::new(SecretKey::from_seed(&[8; 32]));
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (root, done) = (root.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            let page = root.join(layout::pack_page_key(PACK));
            let mut last: BTreeMap<String, u64> = BTreeMap::new();
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                if let Ok(html) = std::fs::read_to_string(&page) {
                    let shown = check_page(&root, &html);
                    for (c, v) in &last {
                        let now = shown.get(c).copied().unwrap_or(0);
                        assert!(now >= *v, "channel {c} went back from version {v} to {now}");
                    }
                    last = shown;
                    reads += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            reads
        })
    };
    let writers: Vec<_> = CHANNELS
        .iter()
        .map(|channel| {
            let (store, exports, key) = (store.clone(), exports.clone(), key.clone());
            async move {
                let r = repo(channel);
                for i in 1..=BUILDS {
                    r.write("config/channel.txt", format!("{channel} {i}\n"))
                        .expect("write");
                    r.commit_all(&i.to_string()).expect("commit");
                    let source = PackSource::open(r.path(), false).expect("open");
                    let opts = PublishOptions {
                        channel: (*channel).into(),
                        now: 1_900_000_000 + i as u64,
                        pointer_lifetime: Duration::from_secs(86_400),
                        dry_run: false,
                        concurrency: 2,
                        force_pointer: false,
                    };
                    let req = PublishRequest {
                        key: Some(&key),
                        exports: Some(&exports),
                        ..PublishRequest::new(&source, store.as_ref(), opts, ModOptions::default())
                    };
                    atlas_builder::publish::run(req).await.expect("publish");
                }
            }
        })
        .collect();
    // Interleaved on this task at every store access (PackSource is not Send).
    futures_util::future::join_all(writers).await;
    done.store(true, Ordering::SeqCst);
    let reads = reader.await.expect("reader");
    assert!(reads > 0, "the reader saw pages");

    // The writers are done: the page shows every live pointer.
    let html = std::fs::read_to_string(root.join(layout::pack_page_key(PACK))).expect("page");
    let shown = check_page(&root, &html);
    for channel in CHANNELS {
        let bytes = std::fs::read(root.join(layout::pointer_key(PACK, channel))).expect("pointer");
        let live = SignedPointer::parse(&bytes)
            .and_then(|p| p.payload_unverified())
            .expect("pointer");
        assert_eq!(shown.get(channel), Some(&live.version), "{channel}: {shown:?}");
        assert_eq!(live.version, BUILDS as u64);
    }
    // And the store index lists the pack.
    let index = std::fs::read_to_string(root.join(layout::STORE_INDEX_KEY)).expect("index");
    assert_eq!(meta(&index, "atlas-packs").as_deref(), Some(PACK));
}
