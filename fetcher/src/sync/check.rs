//! [`Syncer::check`]: the signed channel pointer (conditional on the ETag
//! when the install is intact), its keys (configured, or the keyset chain
//! of [`super::keychain`]), rollback, freeze and clock checks against
//! `trust.json`, and the manifest the pointer names, verified by size and
//! build id. Writes nothing.

use tokio::time::Instant;

use atlas_proto::pointer::{Expectation, PointerError};
use atlas_proto::v1::Manifest;
use atlas_proto::{Sha256Digest, SignedPointer, VerifiedPointer, layout, manifest};

use super::{CLOCK_SLACK_SECS, Check, CheckStatus, REVALIDATE_AFTER_SECS, Syncer};
use crate::durable;
use crate::error::SyncError;
use crate::place;
use crate::progress::{Phase, Progress};
use crate::retry::Retrier;
use crate::source::PointerFetch;
use crate::state::{self, InstallState, Sha256Hex, TrustEntry};

/// Whether the saved ETag may still be sent as `If-None-Match`: the pointer
/// was fetched in full less than [`REVALIDATE_AFTER_SECS`] ago (by a clock
/// that has not gone back since), and does not expire within that time. A
/// server's validator can collide: nginx's and Caddy's ETag is the file's
/// modification time in whole seconds and its size, so a pointer written
/// twice within a second at the same size keeps its ETag, and every host
/// would be answered 304 for the old pointer until the next write. Fetching
/// in full once in a while bounds how long a host can stay behind.
pub(super) fn validator_fresh(e: &TrustEntry, now: u64) -> bool {
    e.fetched_at.is_some_and(|at| {
        now >= at
            && now - at < REVALIDATE_AFTER_SECS
            && e.expires_at > now.saturating_add(REVALIDATE_AFTER_SECS)
    })
}

impl Syncer {
    /// Whether every file of `install` is on disk exactly as recorded: same
    /// size and mtime (no hashing here). A differing or unknown mtime (older
    /// `install.json`) is not intact, so the plan hashes the file and records
    /// the new mtime (or the change). Preserved files are not checked; a file
    /// kept as user-modified is intact while its mtime is the one last seen
    /// (touching it, e.g. restoring it, makes the plan look at it again).
    fn intact(&self, install: &InstallState) -> bool {
        install.side == self.opts.side
            && install.selection == self.opts.selection
            && install.files.iter().all(|f| {
                f.preserve
                    || place::safe_dest(&self.opts.dir, &f.path)
                        .ok()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .is_some_and(|m| {
                            m.is_file()
                                && (f.modified || m.len() == f.size)
                                && f.mtime_ns.is_some()
                                && durable::mtime_ns(&m) == f.mtime_ns
                        })
            })
    }

    /// Fetches and verifies the pointer, and the manifest if the installed
    /// build is not the channel's (or needs repair). Writes nothing.
    ///
    /// Dropping the future is always safe: nothing was written.
    pub async fn check(&self, progress: &dyn Progress) -> Result<Check, SyncError> {
        let deadline = self.deadline();
        self.by(deadline, self.check_by(deadline, progress)).await
    }

    pub(super) async fn check_by(
        &self,
        deadline: Option<Instant>,
        progress: &dyn Progress,
    ) -> Result<Check, SyncError> {
        self.opts.interrupt.check()?;
        let (pack, channel) = (self.opts.pack.as_str(), self.opts.channel.as_str());
        let trust = state::load_trust(&self.paths.trust)?;
        let now = self.now();
        if let Some(last) = trust.last_time
            && now.saturating_add(CLOCK_SLACK_SECS) < last
        {
            return Err(SyncError::ClockBackwards {
                now,
                last,
                behind: last - now,
            });
        }
        // The keys a pointer must be signed by: the configured ones, or the
        // pointer keys of the newest keyset of the chain.
        let (keyset, keyset_changed, trusted, threshold, key_ids) = match &self.opts.root {
            Some(root) => {
                let cur = self.current_keyset(root, deadline).await?;
                let ids = cur.keyset.pointer_key_ids();
                let (keys, t) = (cur.keyset.pointer_keys(), cur.keyset.pointer_threshold());
                (Some(cur.keyset), cur.changed, keys, t, ids)
            }
            None => (None, false, self.opts.keys.clone(), 1, self.key_ids.clone()),
        };
        let install = state::load_install(&self.paths.install)?;
        let mut entry = trust.channels.get(&state::channel_key(pack, channel)).cloned();
        // Fast-forward recovery: the rollback floor (and the ETag) belong to
        // the signing keys that were trusted when it was set. Once those
        // change (a rotation, a revocation), a floor pushed up by a leaked
        // key must not lock the channel out, so it is reset.
        if entry.as_ref().is_some_and(|e| e.trusted_keys != key_ids) {
            tracing::warn!("the trusted signing keys changed: the channel's rollback floor is reset");
            entry = None;
        }
        // The build installed for this pack/channel, if it is intact on disk for this side.
        let ours: Option<Sha256Digest> = install
            .as_ref()
            .filter(|i| {
                i.pack == pack
                    && i.channel == channel
                    && self.opts.treat_as_modified.is_empty()
                    && self.intact(i)
            })
            .map(|i| i.build.0);
        let conditional = entry
            .as_ref()
            .filter(|e| ours == Some(e.build.0))
            .filter(|e| {
                let fresh = validator_fresh(e, now);
                if !fresh && e.etag.is_some() {
                    tracing::info!(
                        fetched_at = e.fetched_at,
                        "the pointer was last fetched in full too long ago: fetching it without If-None-Match"
                    );
                }
                fresh
            })
            .and_then(|e| e.etag.clone());

        let key = layout::pointer_key(pack, channel);
        let url = self.source.url_of(&key);
        progress.phase(&Phase::Pointer { url: url.clone() });
        tracing::info!(%url, conditional = conditional.is_some(), "fetching channel pointer");
        let trust_err = |source| SyncError::Trust {
            url: url.clone(),
            source,
        };
        let mut retry = Retrier::new(&self.opts.retry, deadline);
        let fetched = loop {
            match self
                .source
                .get_pointer(&key, conditional.as_deref(), self.opts.limits.pointer_bytes)
                .await
            {
                Ok(f) => break f,
                Err(e) if retry.again(&e).await => {}
                Err(e) => return Err(e),
            }
        };
        let (bytes, etag) = match fetched {
            PointerFetch::NotModified => {
                let Some(e) = entry.filter(|_| conditional.is_some()) else {
                    return Err(SyncError::HttpStatus {
                        url: url.clone(),
                        status: 304,
                        retry_after: None,
                    });
                };
                let now = self.now();
                if now >= e.expires_at {
                    return Err(trust_err(PointerError::Expired {
                        expires_at: e.expires_at,
                        now,
                    }));
                }
                return Ok(Check {
                    status: CheckStatus::NotModified,
                    version: e.version,
                    build: e.build.0,
                    manifest: None,
                    manifest_bytes: None,
                    held: false,
                    pointer: None,
                    etag: e.etag.clone(),
                    trust,
                    install,
                    trusted_keys: key_ids,
                    keyset,
                    keyset_changed,
                });
            }
            PointerFetch::Fetched { bytes, etag } => (bytes, etag),
        };
        let signed = SignedPointer::parse(&bytes).map_err(trust_err)?;
        let expect = Expectation {
            pack,
            channel,
            now: self.now(),
            last: entry.as_ref().map(TrustEntry::last_accepted),
        };
        let pointer = signed.verify(&trusted, threshold, &expect).map_err(trust_err)?;
        tracing::info!(version = pointer.payload.version, build = %pointer.build, "pointer verified");

        let held = install.as_ref().is_some_and(|i| {
            i.pack == pack && i.channel == channel && i.held == Some(Sha256Hex(pointer.build))
        });
        let mut check = Check {
            status: CheckStatus::Current,
            version: pointer.payload.version,
            build: pointer.build,
            manifest: None,
            manifest_bytes: None,
            held,
            pointer: None,
            etag,
            trust,
            install,
            trusted_keys: key_ids,
            keyset,
            keyset_changed,
        };
        if held {
            tracing::warn!(build = %pointer.build, "the channel still points at the build rolled back from; staying");
        } else if ours != Some(pointer.build) {
            let (m, bytes) = self.fetch_manifest(&pointer, deadline, progress).await?;
            check.manifest = Some(m);
            check.manifest_bytes = Some(bytes);
            check.status = CheckStatus::Changed;
        }
        check.pointer = Some(pointer);
        Ok(check)
    }

    async fn fetch_manifest(
        &self,
        pointer: &VerifiedPointer,
        deadline: Option<Instant>,
        progress: &dyn Progress,
    ) -> Result<(Manifest, Vec<u8>), SyncError> {
        let key = layout::manifest_key(&self.opts.pack, &pointer.build);
        let url = self.source.url_of(&key);
        let declared = pointer.payload.manifest_size;
        progress.phase(&Phase::Manifest { url: url.clone() });
        tracing::info!(%url, size = declared, "fetching manifest");
        self.opts.interrupt.check()?;
        if declared > self.opts.limits.manifest_stored_bytes {
            return Err(SyncError::ManifestTooLong { url, declared });
        }
        let mut retry = Retrier::new(&self.opts.retry, deadline);
        let bytes = loop {
            let attempt = async { self.source.open_key(&key).await?.read_capped(declared).await };
            match attempt.await {
                Ok(b) => break b,
                Err(e) if retry.again(&e).await => {}
                Err(e) => return Err(e),
            }
        };
        let actual = bytes.len() as u64;
        if actual > declared {
            return Err(SyncError::ManifestTooLong { url, declared });
        }
        if actual != declared {
            return Err(SyncError::ManifestSize {
                url,
                declared,
                actual,
            });
        }
        let digest = manifest::build_id(&bytes);
        if digest != pointer.build {
            return Err(SyncError::ManifestHash {
                url,
                expected: pointer.build.to_hex(),
                actual: digest.to_hex(),
            });
        }
        let m = manifest::decode(&bytes, &self.opts.limits.manifest).map_err(|source| {
            SyncError::ManifestInvalid {
                url: url.clone(),
                source,
            }
        })?;
        if m.pack_id != self.opts.pack {
            return Err(SyncError::ManifestWrongPack {
                url,
                expected: self.opts.pack.clone(),
                got: m.pack_id,
            });
        }
        Ok((m, bytes))
    }
}
