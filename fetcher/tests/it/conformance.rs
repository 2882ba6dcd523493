//! The conformance suite: one row per attack of the TUF specification (and
//! Atlas's own), each run against the fetcher library over loopback HTTP by
//! a host configured with a root of trust (`--root keys/1.json`). Every row
//! starts from an install of build 1, then lets its setup play the attacker
//! (or the creator) and checks the next sync's outcome. docs/SECURITY.md maps
//! each threat to its row.

mod world;

use std::future::Future;
use std::pin::Pin;

use atlas_fetcher::SyncError;
use atlas_fetcher::exit;
use atlas_proto::keyset::{DEFAULT_CHAIN_CAP, KeysetError};
use atlas_proto::{PointerError, layout};

use crate::common::*;
use world::{World, k, role};

type Setup = for<'a> fn(&'a mut World) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// What the sync after a row's setup must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Install the new build.
    Accepted,
    Rollback,
    Expired,
    Untrusted,
    WrongPack,
    WrongChannel,
    PointerTooLarge,
    ManifestHash,
    ManifestTooLong,
    BlobHash,
    BlobTooLong,
    KeysetUntrusted,
    KeysetTooLarge,
    ChainTooLong,
    ClockBackwards,
}

fn classify(e: &SyncError) -> Option<Expect> {
    Some(match e {
        SyncError::Trust { reason, .. } => match reason {
            PointerError::Rollback { .. } => Expect::Rollback,
            PointerError::Expired { .. } => Expect::Expired,
            PointerError::Untrusted { .. } => Expect::Untrusted,
            PointerError::WrongPack { .. } => Expect::WrongPack,
            PointerError::WrongChannel { .. } => Expect::WrongChannel,
            PointerError::TooLarge => Expect::PointerTooLarge,
            _ => return None,
        },
        SyncError::Keyset { reason, .. } => match reason {
            KeysetError::Untrusted { .. } => Expect::KeysetUntrusted,
            KeysetError::TooLarge => Expect::KeysetTooLarge,
            _ => return None,
        },
        SyncError::KeysetChainTooLong { .. } => Expect::ChainTooLong,
        SyncError::ClockBackwards { .. } => Expect::ClockBackwards,
        SyncError::ManifestHash { .. } => Expect::ManifestHash,
        SyncError::ManifestTooLong { .. } => Expect::ManifestTooLong,
        SyncError::BlobHash { .. } => Expect::BlobHash,
        SyncError::BlobTooLong { .. } => Expect::BlobTooLong,
        _ => return None,
    })
}

struct Row {
    name: &'static str,
    setup: Setup,
    expect: Expect,
}

const ROWS: &[Row] = &[
    Row {
        name: "rollback to an older signed pointer",
        setup: rollback,
        expect: Expect::Rollback,
    },
    Row {
        name: "freeze: an expired pointer",
        setup: freeze,
        expect: Expect::Expired,
    },
    Row {
        name: "fast-forward recovery after a leaked key",
        setup: fast_forward,
        expect: Expect::Accepted,
    },
    Row {
        name: "mix-and-match: manifest of another build",
        setup: mix_and_match,
        expect: Expect::ManifestHash,
    },
    Row {
        name: "arbitrary file: blob replaced",
        setup: arbitrary_file,
        expect: Expect::BlobHash,
    },
    Row {
        name: "endless data: pointer",
        setup: endless_pointer,
        expect: Expect::PointerTooLarge,
    },
    Row {
        name: "endless data: manifest",
        setup: endless_manifest,
        expect: Expect::ManifestTooLong,
    },
    Row {
        name: "endless data: blob",
        setup: endless_blob,
        expect: Expect::BlobTooLong,
    },
    Row {
        name: "endless data: keyset",
        setup: endless_keyset,
        expect: Expect::KeysetTooLarge,
    },
    Row {
        name: "wrong pack",
        setup: wrong_pack,
        expect: Expect::WrongPack,
    },
    Row {
        name: "wrong channel",
        setup: wrong_channel,
        expect: Expect::WrongChannel,
    },
    Row {
        name: "pointer threshold not met",
        setup: pointer_threshold,
        expect: Expect::Untrusted,
    },
    Row {
        name: "keyset root threshold not met",
        setup: keyset_threshold,
        expect: Expect::KeysetUntrusted,
    },
    Row {
        name: "one key signing a pointer twice counts once",
        setup: duplicate_pointer_sigs,
        expect: Expect::Untrusted,
    },
    Row {
        name: "one root key signing a keyset twice counts once",
        setup: duplicate_keyset_sigs,
        expect: Expect::KeysetUntrusted,
    },
    Row {
        name: "revoked key",
        setup: revoked,
        expect: Expect::Untrusted,
    },
    Row {
        name: "rotated key: the old one is rejected",
        setup: rotated_old,
        expect: Expect::Untrusted,
    },
    Row {
        name: "rotated key: the new one is accepted",
        setup: rotated_new,
        expect: Expect::Accepted,
    },
    Row {
        name: "chain longer than the cap",
        setup: chain_too_long,
        expect: Expect::ChainTooLong,
    },
    Row {
        name: "clock stepped backwards",
        setup: clock_back,
        expect: Expect::ClockBackwards,
    },
];

#[tokio::test]
async fn every_attack_is_refused_and_every_recovery_works() {
    let mut failures = Vec::new();
    for row in ROWS {
        let mut w = World::new();
        w.publish(b"build 1");
        w.sync()
            .await
            .unwrap_or_else(|e| panic!("{}: first install: {e}", row.name));
        (row.setup)(&mut w).await;
        let before = snapshot(&w.dir());
        let got = match w.sync().await {
            Ok(r) if r.exit_code() == exit::UPDATED => Some(Expect::Accepted),
            Ok(r) => {
                failures.push(format!(
                    "{}: synced but did not update ({:?})",
                    row.name, r.outcome
                ));
                continue;
            }
            Err(e) => {
                let class = classify(&e);
                if class.is_some_and(|c| c != Expect::Accepted)
                    && e.exit_code() != exit::TRUST
                    && e.exit_code() != exit::INTEGRITY
                {
                    failures.push(format!("{}: exit code {} for {e}", row.name, e.exit_code()));
                }
                if class != Some(row.expect) {
                    failures.push(format!("{}: expected {:?}, got {e}", row.name, row.expect));
                }
                if snapshot(&w.dir()) != before {
                    failures.push(format!("{}: the directory changed", row.name));
                }
                continue;
            }
        };
        if got != Some(row.expect) {
            failures.push(format!(
                "{}: expected {:?}, but the sync was accepted",
                row.name, row.expect
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
}

fn rollback(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let old = std::fs::read(w.store.root().join(Store::pointer_key())).expect("read");
        w.publish(b"build 2");
        w.sync().await.expect("build 2");
        w.store.write(&Store::pointer_key(), &old);
    })
}

fn freeze(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut p = w.publish(b"build 2");
        p.expires_at = w.now - 1;
        w.point(&p, &[&k(10)]);
    })
}

fn fast_forward(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        // Whoever stole pointer key 10 pushes the host's floor to version 1000.
        let mut p = w.publish(b"attacker's build");
        p.version = 1000;
        w.point(&p, &[&k(10)]);
        w.sync().await.expect("the leaked key is still trusted");
        // The creator rotates to key 11, revoking 10, and publishes version 3.
        w.rotate(&[1, 2], |ks| {
            ks.pointer = role(&[11], 1);
            ks.revoked = vec![k(10).public().key_id()];
        });
        w.store.key = k(11);
        w.publish(b"build 2");
    })
}

fn mix_and_match(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let p = w.publish(b"build 2");
        let (_, _) = w.store.put_build(&[f("mods/a.jar", b"another build")]);
        let other = w.store.manifest_for(&[f("mods/a.jar", b"another build")]);
        let bytes = atlas_proto::manifest::encode(&other).expect("encode");
        let mut q = p.clone();
        q.manifest_size = bytes.len() as u64;
        let build = p.build.parse().expect("digest");
        w.store.write(&layout::manifest_key(PACK, &build), &bytes);
        w.point(&q, &[&k(10)]);
    })
}

fn arbitrary_file(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.publish(b"build 2");
        let d = atlas_proto::Sha256Digest::of(b"build 2");
        w.store.write(&layout::blob_key(&d), b"malware");
    })
}

fn endless_pointer(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.publish(b"build 2");
        w.store.write(&Store::pointer_key(), &vec![b' '; 1 << 20]);
    })
}

fn endless_manifest(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let p = w.publish(b"build 2");
        let build = p.build.parse().expect("digest");
        let key = layout::manifest_key(PACK, &build);
        let mut bytes = std::fs::read(w.store.root().join(&key)).expect("read");
        bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
        w.store.write(&key, &bytes);
    })
}

fn endless_blob(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.publish(b"build 2");
        let d = atlas_proto::Sha256Digest::of(b"build 2");
        let mut bytes = b"build 2".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 1 << 20));
        w.store.write(&layout::blob_key(&d), &bytes);
    })
}

fn endless_keyset(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.publish(b"build 2");
        w.store.write(&layout::keyset_key(PACK, 2), &vec![b' '; 1 << 20]);
    })
}

fn wrong_pack(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut p = w.publish(b"build 2");
        p.pack = "other-pack".into();
        w.point(&p, &[&k(10)]);
    })
}

fn wrong_channel(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut p = w.publish(b"build 2");
        p.channel = "production".into();
        w.point(&p, &[&k(10)]);
    })
}

/// Keyset 2 requires two pointer signatures (keys 10 and 11).
fn two_pointer_keys(w: &mut World) {
    w.rotate(&[1, 2], |ks| ks.pointer = role(&[10, 11], 2));
}

fn pointer_threshold(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        two_pointer_keys(w);
        w.publish(b"build 2");
    })
}

fn keyset_threshold(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        // One root key alone (of 2 needed) tries to swap in its own pointer key.
        w.rotate(&[1], |ks| ks.pointer = role(&[66], 1));
        w.store.key = k(66);
        w.publish(b"build 2");
    })
}

fn duplicate_pointer_sigs(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        two_pointer_keys(w);
        let p = w.publish(b"build 2");
        w.point(&p, &[&k(10), &k(10)]);
    })
}

fn duplicate_keyset_sigs(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.rotate(&[1, 1], |ks| ks.pointer = role(&[66], 1));
        w.store.key = k(66);
        w.publish(b"build 2");
    })
}

fn revoked(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        // Keyset 2 keeps 10 and 11 (1 of 2); keyset 3 revokes 10.
        w.rotate(&[1, 2], |ks| ks.pointer = role(&[10, 11], 1));
        w.rotate(&[2, 3], |ks| {
            ks.pointer = role(&[11], 1);
            ks.revoked = vec![k(10).public().key_id()];
        });
        w.publish(b"build 2");
    })
}

fn rotated_old(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.rotate(&[1, 2], |ks| ks.pointer = role(&[11], 1));
        w.publish(b"build 2");
    })
}

fn rotated_new(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.rotate(&[1, 2], |ks| ks.pointer = role(&[11], 1));
        w.store.key = k(11);
        w.publish(b"build 2");
    })
}

fn chain_too_long(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        for _ in 0..=DEFAULT_CHAIN_CAP {
            w.rotate(&[1, 2], |_| {});
        }
        w.publish(b"build 2");
    })
}

fn clock_back(w: &mut World) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        w.publish(b"build 2");
        w.now -= 2 * 3600;
    })
}

/// End to end: a host configured with `keys/1.json` follows two rotations
/// (pointer key 10 -> 11, then root keys 1,2,3 -> 2,3,4 and 11 revoked for
/// 12), keeps the newest keyset in `.atlas/keyset.json`, starts from it on
/// the next run, and refuses a pointer signed by the revoked key.
#[tokio::test]
async fn a_host_follows_two_rotations_and_refuses_a_revoked_key() {
    let mut w = World::new();
    w.publish(b"build 1");
    w.sync().await.expect("install with keyset 1");

    w.rotate(&[1, 2], |ks| ks.pointer = role(&[11], 1));
    w.store.key = k(11);
    w.publish(b"build 2");
    assert_eq!(w.sync().await.expect("keyset 2").exit_code(), exit::UPDATED);

    w.rotate(&[1, 2, 4], |ks| {
        ks.root = role(&[2, 3, 4], 2);
        ks.pointer = role(&[12], 1);
        ks.revoked = vec![k(11).public().key_id()];
    });
    w.store.key = k(12);
    w.publish(b"build 3");
    assert_eq!(w.sync().await.expect("keyset 3").exit_code(), exit::UPDATED);
    assert_eq!(files(&w.dir())["mods/a.jar"], b"build 3");
    let stored = std::fs::read_to_string(
        w.dir()
            .join(".atlas")
            .join(atlas_fetcher::sync::keychain::KEYSET_FILE),
    )
    .expect("keyset stored");
    assert!(stored.contains("keyset"), "{stored}");

    // The next run starts from keyset 3: it asks for keys/4.json only.
    w.srv.reset_requests();
    w.store.key = k(11);
    w.publish(b"signed by the revoked key");
    let before = snapshot(&w.dir());
    let err = w.sync().await.expect_err("revoked key");
    assert_eq!(err.exit_code(), exit::TRUST);
    assert!(matches!(classify(&err), Some(Expect::Untrusted)), "{err}");
    assert_eq!(snapshot(&w.dir()), before);
    let keyset_requests: Vec<String> = w
        .srv
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .filter(|p| p.contains("/keys/"))
        .collect();
    assert_eq!(keyset_requests, ["packs/demo/keys/4.json"]);

    // The current pointer key still works.
    w.store.key = k(12);
    w.publish(b"build 4");
    assert_eq!(w.sync().await.expect("build 4").exit_code(), exit::UPDATED);
}

/// The command line: `--root FILE` (and `root` in the config file) syncs
/// through the chain; a root for another pack or with too few signatures exits 5;
/// `--root` with `--key` is a usage error.
#[tokio::test]
async fn cli_root_flag_and_config() {
    use atlas_fetcher::cli::{Cli, run};
    use clap::Parser as _;
    let mut w = World::new();
    w.publish(b"build 1");
    let (url, dir) = (w.srv.url(), w.dir().display().to_string());
    let cli = |extra: &[&str]| {
        let mut a = vec!["atlas-fetcher", "sync", "--source", &url];
        a.extend(["--pack", PACK, "--channel", CHANNEL, "--dir", &dir]);
        a.extend(extra);
        Cli::try_parse_from(a)
    };
    let root = w.root_file.display().to_string();
    assert_eq!(run(cli(&["--root", &root]).expect("parse")).await, exit::UPDATED);
    assert!(
        cli(&["--root", &root, "--key", "ed25519:AAAA"]).is_err(),
        "conflicting flags"
    );

    // The config file's `root`, relative to the file.
    let cfg = w.host.path().join("fetcher.toml");
    std::fs::write(&cfg, "root = \"root.json\"\n").expect("write");
    w.rotate(&[1, 2], |ks| ks.pointer = role(&[11], 1));
    w.store.key = k(11);
    w.publish(b"build 2");
    let cfg = cfg.display().to_string();
    assert_eq!(run(cli(&["--config", &cfg]).expect("parse")).await, exit::UPDATED);

    // keys/1.json with one root signature of the two needed.
    let weak = atlas_proto::keyset::sign(
        &{
            let mut p = w.keyset.clone();
            p.version = 1;
            p
        },
        &[&k(1)],
    );
    let weak_file = w.host.path().join("weak.json");
    std::fs::write(&weak_file, weak).expect("write");
    let weak_file = weak_file.display().to_string();
    assert_eq!(
        run(cli(&["--root", &weak_file]).expect("parse")).await,
        exit::TRUST
    );
    assert_eq!(
        run(cli(&["--root", "/nonexistent/root.json"]).expect("parse")).await,
        exit::USAGE
    );
}
