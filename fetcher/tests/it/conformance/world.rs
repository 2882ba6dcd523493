//! The world a conformance row runs in: a store served over loopback HTTP,
//! a pack with a keyset chain (root keys 1, 2, 3 with threshold 2; pointer
//! key 10), and a host configured with `keys/1.json` as its root of trust.

use std::path::PathBuf;

use atlas_fetcher::sync::keychain;
use atlas_fetcher::{NoProgress, Report, SyncError, Syncer};
use atlas_proto::keyset::{self, KEYSET_FORMAT, KeysetPayload, RoleKeys};
use atlas_proto::pointer::{self, PointerPayload};
use atlas_proto::{SecretKey, layout};
use atlas_testkit::http::StaticServer;

use crate::common::*;

/// Key number `n` (a fixed seed, so tests are reproducible).
pub fn k(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

#[derive(Debug)]
pub struct World {
    pub store: Store,
    pub srv: StaticServer,
    pub host: tempfile::TempDir,
    /// The host's root of trust (a copy of `keys/1.json`).
    pub root_file: PathBuf,
    /// The newest keyset written to the store.
    pub keyset: KeysetPayload,
    /// The host's clock.
    pub now: u64,
}

impl World {
    pub fn new() -> Self {
        let mut store = Store::new();
        store.key = k(10);
        let srv = StaticServer::start(store.root()).expect("server");
        let host = tempfile::tempdir().expect("tmp");
        let keyset = KeysetPayload {
            format: KEYSET_FORMAT,
            pack: PACK.into(),
            version: 1,
            issued_at: now(),
            root: role(&[1, 2, 3], 2),
            pointer: role(&[10], 1),
            revoked: Vec::new(),
        };
        let env = keyset::sign(&keyset, &[&k(1), &k(2)]);
        store.write(&layout::keyset_key(PACK, 1), &env);
        let root_file = host.path().join("root.json");
        std::fs::write(&root_file, &env).expect("write root");
        Self {
            store,
            srv,
            host,
            root_file,
            keyset,
            now: now(),
        }
    }

    /// The directory kept in sync (inside the host's temp dir).
    pub fn dir(&self) -> PathBuf {
        self.host.path().join("server")
    }

    /// Runs one sync as a host configured with `--root`.
    pub async fn sync(&self) -> Result<Report, SyncError> {
        let mut opts = options(&self.srv.url(), &self.dir(), Vec::new());
        opts.root = Some(keychain::load_root(&self.root_file, PACK)?);
        opts.now = Some(self.now);
        Syncer::new(opts)?.sync(false, &NoProgress).await
    }

    /// Publishes a build at the next version, signed by the current pointer key.
    pub fn publish(&mut self, content: &[u8]) -> PointerPayload {
        let (build, size) = self.store.put_build(&[f("mods/a.jar", content)]);
        self.store.version += 1;
        let p = self.store.payload(self.store.version, build, size);
        self.store.put_pointer(&p);
        p
    }

    /// Writes `payload` as the channel pointer, signed by `keys`.
    pub fn point(&self, payload: &PointerPayload, keys: &[&SecretKey]) -> Vec<u8> {
        let env = pointer::sign(payload, keys);
        self.store.write(&Store::pointer_key(), &env);
        env
    }

    /// Writes the next keyset: `edit` changes a copy of the current one,
    /// signed by the root keys numbered `signers`.
    pub fn rotate(&mut self, signers: &[u8], edit: impl FnOnce(&mut KeysetPayload)) {
        let mut next = self.keyset.clone();
        next.version += 1;
        edit(&mut next);
        let keys: Vec<SecretKey> = signers.iter().map(|n| k(*n)).collect();
        let refs: Vec<&SecretKey> = keys.iter().collect();
        let env = keyset::sign(&next, &refs);
        self.store.write(&layout::keyset_key(PACK, next.version), &env);
        self.keyset = next;
    }
}

/// A role of the keys numbered `keys`.
pub fn role(keys: &[u8], threshold: u32) -> RoleKeys {
    RoleKeys {
        keys: keys.iter().map(|n| k(*n).public().to_text()).collect(),
        threshold,
    }
}
