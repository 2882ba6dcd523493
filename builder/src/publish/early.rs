//! Uploads mirrored blobs while the rest of the pack is still downloading,
//! for stores that are not the download cache's own disk (S3, R2): a cold
//! build then costs about the longer of the downloads and the uploads
//! instead of their sum.
//!
//! Blobs are content-addressed and unreferenced until a manifest names them,
//! so uploading one before the plan is complete is safe: if the build fails
//! later, the blob waits in the store for the next build, which finds it
//! there. Nothing else is written early: the manifest and the pointer still
//! follow every blob ([`super::run`]). An early upload that fails is
//! logged and left to the rest of the publish, which uploads what the store
//! still lacks and reports any error then.

use std::collections::HashSet;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use atlas_proto::Sha256Digest;
use atlas_proto::layout;

use crate::resolve::fetch::LandedBlob;
use crate::store::{Body, ObjectMeta, PutOutcome, Store};

/// What the early uploads did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlyUploads {
    /// Blobs this run wrote to the store (counted as new by the publish).
    pub created: HashSet<Sha256Digest>,
    pub bytes: u64,
    /// Uploads that failed (the publish tries them again).
    pub failed: usize,
}

/// Uploads each blob announced on `landed` that `store` lacks, `concurrency`
/// at a time, until every sender is gone.
pub async fn upload_landed(
    store: &dyn Store,
    mut landed: mpsc::UnboundedReceiver<LandedBlob>,
    concurrency: usize,
) -> EarlyUploads {
    let mut seen = HashSet::new();
    let blobs = futures_util::stream::poll_fn(move |cx| landed.poll_recv(cx))
        .filter(move |b| std::future::ready(seen.insert(b.sha256)));
    let mut uploads = blobs
        .map(|blob| async move {
            let key = layout::blob_key(&blob.sha256);
            let result = match store.exists(&key).await {
                Ok(true) => Ok(PutOutcome::AlreadyExists),
                Ok(false) => {
                    let body = Body::CachedFile(blob.path.clone());
                    store.put_immutable(&key, body, ObjectMeta::BLOB).await
                }
                Err(e) => Err(e),
            };
            (blob, result)
        })
        .buffer_unordered(concurrency.max(1));
    let mut out = EarlyUploads::default();
    while let Some((blob, result)) = uploads.next().await {
        match result {
            Ok(PutOutcome::Created) => {
                tracing::debug!(dest = %blob.dest, "uploaded while downloading");
                out.bytes += blob.size;
                out.created.insert(blob.sha256);
            }
            Ok(PutOutcome::AlreadyExists) => {}
            Err(e) => {
                tracing::warn!(
                    "early upload of {} failed (publishing tries again): {e}",
                    blob.dest
                );
                out.failed += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::fetch::landed_channel;
    use crate::store::DirStore;

    fn blob(dir: &std::path::Path, data: &[u8]) -> LandedBlob {
        let sha256 = Sha256Digest::of(data);
        let path = dir.join(sha256.to_hex());
        std::fs::write(&path, data).expect("write");
        LandedBlob {
            sha256,
            size: data.len() as u64,
            path,
            dest: "mods/x.jar".into(),
        }
    }

    #[tokio::test]
    async fn uploads_each_blob_once_skips_stored_ones_and_survives_failures() {
        let cache = tempfile::tempdir().expect("tmp");
        let root = tempfile::tempdir().expect("tmp");
        let store = DirStore::new(root.path());
        let stored = blob(cache.path(), b"already in the store");
        store
            .put_immutable(
                &layout::blob_key(&stored.sha256),
                Body::CachedFile(stored.path.clone()),
                ObjectMeta::BLOB,
            )
            .await
            .expect("put");
        let new = blob(cache.path(), b"a new jar");
        let mut gone = blob(cache.path(), b"deleted before upload");
        gone.path = cache.path().join("missing");
        let (tx, rx) = landed_channel();
        for b in [&new, &stored, &new, &gone] {
            tx.send(b.clone()).expect("send");
        }
        drop(tx);
        let early = upload_landed(&store, rx, 4).await;
        assert_eq!(early.created, HashSet::from([new.sha256]));
        assert_eq!((early.bytes, early.failed), (new.size, 1));
        let key = layout::blob_key(&new.sha256);
        assert_eq!(
            std::fs::read(root.path().join(key)).expect("stored"),
            b"a new jar"
        );
    }
}
