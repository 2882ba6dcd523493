//! The pack's keyset chain (docs/FORMAT.md §3a), offline: `key init-root`,
//! `key rotate` and `key revoke` write signed `keys/<N>.json` files into the
//! pack repository's keys directory (default `.atlas/keys/`), signed with
//! root secret key files given by path, so root keys never need to be
//! online. `publish` uploads those files ([`upload`]) before the pointer,
//! and `publish`/`resign` refuse a signing key the newest keyset does not list.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;

use atlas_proto::keyset::{self, KEYSET_FORMAT, Keyset, KeysetError, KeysetPayload, RoleKeys, SignedKeyset};
use atlas_proto::layout::{self, CACHE_KEYSET, CONTENT_TYPE_POINTER};
use atlas_proto::{PublicKey, SecretKey};

use crate::signing::{self, SigningError};
use crate::store::{Body, ObjectMeta, PutOutcome, Store, StoreError};

/// Keys directory of a pack repository, relative to its root.
pub const DEFAULT_KEYS_DIR: &str = ".atlas/keys";

#[derive(Debug, thiserror::Error)]
pub enum KeysetCmdError {
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}")]
    Keyset {
        path: String,
        #[source]
        source: KeysetError,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists: the chain is started; use `key rotate` to change keys", path.display())]
    Exists { path: PathBuf },
    #[error("no keyset in {}: run `atlas-builder key init-root` first", dir.display())]
    Empty { dir: PathBuf },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "store {store} already holds a different `{key}`: a published keyset is never replaced; \
         remove the local file and rotate again from the published chain"
    )]
    Conflict { store: String, key: String },
    #[error(
        "the signing key {key_id} is not a pointer key of keyset {version} of pack `{pack}` (in the store): hosts \
         following the chain would reject the pointer; sign with a current pointer key or `key rotate` first"
    )]
    NotAPointerKey {
        key_id: String,
        version: u64,
        pack: String,
    },
}

impl crate::exit::HasExitClass for KeysetCmdError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        use crate::exit::ExitClass;
        match self {
            Self::Store(_) | Self::Conflict { .. } => ExitClass::Store,
            Self::Signing(_)
            | Self::Keyset { .. }
            | Self::Io { .. }
            | Self::Exists { .. }
            | Self::Empty { .. }
            | Self::Invalid(_)
            | Self::NotAPointerKey { .. } => ExitClass::Key,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeysetCmdError + '_ {
    move |source| KeysetCmdError::Io {
        path: path.to_owned(),
        source,
    }
}

fn keyset_err(path: impl Into<String>) -> impl FnOnce(KeysetError) -> KeysetCmdError {
    let path = path.into();
    move |source| KeysetCmdError::Keyset { path, source }
}

/// A keyset file of the keys directory, verified from keys/1.json on.
#[derive(Debug)]
pub struct LocalKeyset {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub keyset: Keyset,
}

/// Reads `dir/1.json`, `dir/2.json`, ... and verifies the chain; empty if
/// the directory holds none.
pub fn read_chain(dir: &Path) -> Result<Vec<LocalKeyset>, KeysetCmdError> {
    let mut out: Vec<LocalKeyset> = Vec::new();
    for n in 1u64.. {
        let path = dir.join(format!("{n}.json"));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(io(&path)(e)),
        };
        let label = path.display().to_string();
        let signed = SignedKeyset::parse(&bytes).map_err(keyset_err(label.clone()))?;
        let keyset = match out.last() {
            None => {
                let pack = signed
                    .payload_unverified()
                    .map_err(keyset_err(label.clone()))?
                    .pack;
                signed.verify_self(&pack).map_err(keyset_err(label.clone()))?
            }
            Some(prev) => prev
                .keyset
                .verify_next(&signed)
                .map_err(keyset_err(label.clone()))?,
        };
        if keyset.version() != n {
            return Err(keyset_err(label)(KeysetError::WrongVersion {
                expected: n,
                got: keyset.version(),
            }));
        }
        out.push(LocalKeyset { path, bytes, keyset });
    }
    Ok(out)
}

/// What `key init-root`, `rotate` and `revoke` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct KeysetOutput {
    pub keyset_file: PathBuf,
    pub version: u64,
    pub root_key_ids: Vec<String>,
    pub root_threshold: u32,
    pub pointer_key_ids: Vec<String>,
    pub pointer_threshold: u32,
    pub revoked: Vec<String>,
    /// Secret key files written (init-root only).
    pub secret_key_files: Vec<PathBuf>,
}

fn role(keys: &[PublicKey], threshold: u32) -> RoleKeys {
    RoleKeys {
        keys: keys.iter().map(PublicKey::to_text).collect(),
        threshold,
    }
}

fn ids(role: &RoleKeys) -> Vec<String> {
    role.keys
        .iter()
        .filter_map(|t| PublicKey::parse(t).ok())
        .map(|k| k.key_id())
        .collect()
}

/// Writes a secret key file (mode 0600) and its `.pub`.
fn write_key_pair(
    dir: &Path,
    name: &str,
    what: &str,
    force: bool,
) -> Result<(SecretKey, PathBuf), KeysetCmdError> {
    let key = SecretKey::generate().map_err(|source| SigningError::Key {
        origin: "key generation".into(),
        source,
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let id = key.public().key_id();
    let secret = dir.join(format!("{name}.key"));
    let text = format!("# Atlas {what} key (SECRET). Key id {id}\n{}\n", key.to_text());
    signing::write_new(&secret, text.as_bytes(), 0o600, force)?;
    let public = format!(
        "# Atlas {what} public key. Key id {id}\n{}\n",
        key.public().to_text()
    );
    signing::write_new(&dir.join(format!("{name}.pub")), public.as_bytes(), 0o644, force)?;
    Ok((key, secret))
}

fn write_keyset(
    dir: &Path,
    payload: &KeysetPayload,
    signers: &[SecretKey],
    prev: Option<&Keyset>,
) -> Result<KeysetOutput, KeysetCmdError> {
    let refs: Vec<&SecretKey> = signers.iter().collect();
    let bytes = keyset::sign(payload, &refs);
    let path = dir.join(format!("{}.json", payload.version));
    let label = path.display().to_string();
    // Verify as a host would before writing anything.
    let signed = SignedKeyset::parse(&bytes).map_err(keyset_err(label.clone()))?;
    match prev {
        None => signed.verify_self(&payload.pack).map(drop),
        Some(p) => p.verify_next(&signed).map(drop),
    }
    .map_err(keyset_err(label))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    signing::write_new(&path, &bytes, 0o644, false).map_err(|e| match e {
        SigningError::Exists { path } => KeysetCmdError::Exists { path },
        e => e.into(),
    })?;
    Ok(KeysetOutput {
        keyset_file: path,
        version: payload.version,
        root_key_ids: ids(&payload.root),
        root_threshold: payload.root.threshold,
        pointer_key_ids: ids(&payload.pointer),
        pointer_threshold: payload.pointer.threshold,
        revoked: payload.revoked.clone(),
        secret_key_files: Vec::new(),
    })
}

/// `key init-root`: `roots` root keys (`threshold` of them sign each next
/// keyset) and one pointer key, into `secret_dir`; `keys_dir/1.json`.
pub fn init_root(
    keys_dir: &Path,
    secret_dir: &Path,
    pack: &str,
    roots: u32,
    threshold: u32,
    now: u64,
    force: bool,
) -> Result<KeysetOutput, KeysetCmdError> {
    layout::validate_pack_id(pack).map_err(|e| KeysetCmdError::Invalid(e.to_string()))?;
    if threshold == 0 || threshold > roots {
        return Err(KeysetCmdError::Invalid(format!(
            "--threshold {threshold} must be from 1 to --roots ({roots})"
        )));
    }
    let first = keys_dir.join("1.json");
    if first.exists() {
        return Err(KeysetCmdError::Exists { path: first });
    }
    let mut root_keys = Vec::new();
    let mut files = Vec::new();
    for i in 1..=roots {
        let (k, f) = write_key_pair(secret_dir, &format!("root-{i}"), "root", force)?;
        root_keys.push(k);
        files.push(f);
    }
    let (pointer, f) = write_key_pair(secret_dir, "pointer-1", "channel signing (pointer)", force)?;
    files.push(f);
    let publics: Vec<PublicKey> = root_keys.iter().map(SecretKey::public).collect();
    let payload = KeysetPayload {
        format: KEYSET_FORMAT,
        pack: pack.to_owned(),
        version: 1,
        issued_at: now,
        root: role(&publics, threshold),
        pointer: role(&[pointer.public()], 1),
        revoked: Vec::new(),
    };
    let mut out = write_keyset(keys_dir, &payload, &root_keys, None)?;
    out.secret_key_files = files;
    Ok(out)
}

/// Changes to make in the next keyset.
#[derive(Debug, Default, Clone)]
pub struct Rotation {
    /// New pointer keys (replacing the current ones), if any.
    pub pointer_keys: Option<Vec<PublicKey>>,
    pub pointer_threshold: Option<u32>,
    /// New root keys (replacing the current ones), if any.
    pub root_keys: Option<Vec<PublicKey>>,
    pub root_threshold: Option<u32>,
    /// Key id to remove from both roles and list as revoked.
    pub revoke: Option<String>,
}

/// `key rotate` / `key revoke`: writes keyset N+1 after the newest in
/// `keys_dir`, signed by the root secret key files `sign_with` (a threshold
/// of the current root keys and of the new ones).
pub fn rotate(
    keys_dir: &Path,
    change: &Rotation,
    sign_with: &[PathBuf],
    now: u64,
) -> Result<KeysetOutput, KeysetCmdError> {
    let chain = read_chain(keys_dir)?;
    let last = chain.last().ok_or_else(|| KeysetCmdError::Empty {
        dir: keys_dir.to_owned(),
    })?;
    let mut next = last.keyset.payload().clone();
    next.version += 1;
    next.issued_at = now;
    if let Some(keys) = &change.pointer_keys {
        next.pointer.keys = keys.iter().map(PublicKey::to_text).collect();
        next.pointer.threshold = next.pointer.threshold.min(keys.len() as u32).max(1);
    }
    if let Some(t) = change.pointer_threshold {
        next.pointer.threshold = t;
    }
    if let Some(keys) = &change.root_keys {
        next.root.keys = keys.iter().map(PublicKey::to_text).collect();
        next.root.threshold = next.root.threshold.min(keys.len() as u32).max(1);
    }
    if let Some(t) = change.root_threshold {
        next.root.threshold = t;
    }
    if let Some(id) = &change.revoke {
        let listed = |r: &RoleKeys| ids(r).contains(id);
        let was = last.keyset.payload();
        if !listed(&was.root) && !listed(&was.pointer) {
            return Err(KeysetCmdError::Invalid(format!(
                "key id {id} is not a key of keyset {}",
                last.keyset.version()
            )));
        }
        for r in [&mut next.root, &mut next.pointer] {
            r.keys
                .retain(|t| PublicKey::parse(t).map(|k| &k.key_id() != id).unwrap_or(true));
        }
        if !next.revoked.contains(id) {
            next.revoked.push(id.clone());
        }
        if next.pointer.keys.is_empty() {
            return Err(KeysetCmdError::Invalid(
                "revoking it leaves no pointer key: pass --pointer-key with the replacement".into(),
            ));
        }
    }
    if sign_with.is_empty() {
        return Err(KeysetCmdError::Invalid(
            "give the root secret key files to sign with (--sign-with FILE, repeated)".into(),
        ));
    }
    let signers = sign_with
        .iter()
        .map(|p| signing::load_secret_key(Some(p)))
        .collect::<Result<Vec<_>, _>>()?;
    write_keyset(keys_dir, &next, &signers, Some(&last.keyset))
}

/// Uploads every keyset file of `keys_dir` the store lacks, verified as a
/// chain first; an existing different `keys/N.json` is an error, never
/// overwritten. Returns the newest keyset, if any.
pub async fn upload(store: &dyn Store, keys_dir: &Path) -> Result<Option<Keyset>, KeysetCmdError> {
    let chain = read_chain(keys_dir)?;
    for k in &chain {
        let key = layout::keyset_key(k.keyset.pack(), k.keyset.version());
        let meta = ObjectMeta {
            content_type: CONTENT_TYPE_POINTER,
            cache_control: CACHE_KEYSET,
        };
        let outcome = store
            .put_immutable(&key, Body::Bytes(Bytes::from(k.bytes.clone())), meta)
            .await?;
        if outcome == PutOutcome::AlreadyExists {
            let same = store
                .get(&key, atlas_proto::Limits::DEFAULT.keyset_bytes)
                .await?
                .is_some_and(|o| o.bytes.as_ref() == k.bytes.as_slice());
            if !same {
                return Err(KeysetCmdError::Conflict {
                    store: store.describe(),
                    key,
                });
            }
        } else {
            tracing::info!(%key, "keyset uploaded");
        }
    }
    Ok(chain.into_iter().last().map(|k| k.keyset))
}

/// The newest keyset of `pack` in the store (verified from keys/1.json), or
/// `None` when the pack publishes no keyset chain.
pub async fn store_keyset(store: &dyn Store, pack: &str) -> Result<Option<Keyset>, KeysetCmdError> {
    let mut current: Option<Keyset> = None;
    for n in 1u64.. {
        let key = layout::keyset_key(pack, n);
        let Some(obj) = store.get(&key, atlas_proto::Limits::DEFAULT.keyset_bytes).await? else {
            break;
        };
        let label = format!("{} `{key}`", store.describe());
        let signed = SignedKeyset::parse(&obj.bytes).map_err(keyset_err(label.clone()))?;
        current = Some(
            match &current {
                None => signed.verify_self(pack),
                Some(prev) => prev.verify_next(&signed),
            }
            .map_err(keyset_err(label))?,
        );
    }
    Ok(current)
}

/// Refuses to sign `pack`'s pointers with `key` when the store's newest
/// keyset does not list it as a pointer key (hosts would reject the pointer).
pub async fn check_signing_key(store: &dyn Store, pack: &str, key: &PublicKey) -> Result<(), KeysetCmdError> {
    let Some(ks) = store_keyset(store, pack).await? else {
        return Ok(());
    };
    if ks.pointer_keys().contains(key) {
        return Ok(());
    }
    Err(KeysetCmdError::NotAPointerKey {
        key_id: key.key_id(),
        version: ks.version(),
        pack: pack.to_owned(),
    })
}
