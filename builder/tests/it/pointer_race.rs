//! A lost compare-and-swap on the channel pointer, against the testkit's S3
//! server (`race_next_put` stores a competing pointer just before ours): a
//! concurrent re-sign of the same build is retried from a fresh read; a
//! concurrent publish of another build fails with `Conflict` and is never
//! overwritten.

use std::time::Duration;

use atlas_builder::pointer::{self, PointerStatus, PointerUpdateError};
use atlas_builder::store::{S3Settings, S3Store, Store as _, StoreError};
use atlas_proto::pointer::{Exports, PointerPayload, SignedPointer};
use atlas_proto::{SecretKey, Sha256Digest};
use atlas_testkit::s3::{ACCESS_KEY, REGION, RaceTiming, S3Server, SECRET_KEY};

const PACK: &str = "p";
const CHANNEL: &str = "dev";
const DAY: Duration = Duration::from_secs(86_400);

fn build(n: u8) -> Sha256Digest {
    Sha256Digest::from_slice(&[n; 32]).expect("digest")
}

async fn store(server: &S3Server) -> S3Store {
    let settings = S3Settings {
        endpoint: Some(server.endpoint()),
        region: Some(REGION.to_owned()),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        session_token: None,
        force_path_style: true,
    };
    S3Store::connect(server.bucket(), "", &settings)
        .await
        .expect("connect")
}

fn stored(server: &S3Server) -> PointerPayload {
    let key = atlas_proto::layout::pointer_key(PACK, CHANNEL);
    let bytes = server.object(&key).expect("pointer");
    SignedPointer::parse(&bytes)
        .and_then(|p| p.payload_unverified())
        .expect("payload")
}

/// Another writer's pointer: the stored one with `version` and `build`.
fn competitor(server: &S3Server, key: &SecretKey, version: u64, build: &Sha256Digest) -> Vec<u8> {
    let mut payload = stored(server);
    payload.version = version;
    payload.build = build.to_hex();
    atlas_proto::pointer::sign(&payload, &[key])
}

async fn point(
    store: &S3Store,
    key: &SecretKey,
    b: &Sha256Digest,
) -> Result<pointer::PointerUpdate, PointerUpdateError> {
    pointer::point_channel(&pointer::PointerRequest {
        store,
        key,
        pack: PACK,
        channel: CHANNEL,
        build: *b,
        manifest_size: 100,
        now: 1_000,
        lifetime: DAY,
        force: false,
        exports: Exports::default(),
        tools: Default::default(),
    })
    .await
}

#[tokio::test]
async fn a_concurrent_resign_is_retried_from_a_fresh_read() {
    let server = S3Server::start("atlas").expect("server");
    let st = store(&server).await;
    let key = SecretKey::generate().expect("key");
    point(&st, &key, &build(1)).await.expect("v1");
    // A scheduled re-sign of build 1 lands between our read and our write.
    let key_path = atlas_proto::layout::pointer_key(PACK, CHANNEL);
    server.race_next_put(
        &key_path,
        RaceTiming::BeforeWrite,
        competitor(&server, &key, 2, &build(1)),
    );
    let update = point(&st, &key, &build(2)).await.expect("retried");
    assert_eq!(update.status, PointerStatus::Updated);
    assert_eq!(update.version, 3, "built on the fresh read (version 2)");
    assert_eq!(update.previous_build, Some(build(1).to_hex()));
    let now = stored(&server);
    assert_eq!((now.version, now.build), (3, build(2).to_hex()));
}

#[tokio::test]
async fn a_concurrent_publish_of_another_build_is_never_overwritten() {
    let server = S3Server::start("atlas").expect("server");
    let st = store(&server).await;
    let key = SecretKey::generate().expect("key");
    point(&st, &key, &build(1)).await.expect("v1");
    let key_path = atlas_proto::layout::pointer_key(PACK, CHANNEL);
    server.race_next_put(
        &key_path,
        RaceTiming::BeforeWrite,
        competitor(&server, &key, 2, &build(3)),
    );
    let err = point(&st, &key, &build(2)).await.expect_err("lost the race");
    assert!(
        matches!(err, PointerUpdateError::Store(StoreError::Conflict { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("run the command again"), "{err}");
    let now = stored(&server);
    assert_eq!(
        (now.version, now.build),
        (2, build(3).to_hex()),
        "the newer pointer stays"
    );

    // resign reads build 3, and a publish of build 4 lands before it writes: refused too.
    server.race_next_put(
        &key_path,
        RaceTiming::BeforeWrite,
        competitor(&server, &key, 3, &build(4)),
    );
    let err = pointer::resign(&st, &key, PACK, CHANNEL, 2_000, DAY)
        .await
        .expect_err("lost");
    assert!(
        matches!(err, PointerUpdateError::Store(StoreError::Conflict { .. })),
        "{err:?}"
    );
    let now = stored(&server);
    assert_eq!((now.version, now.build), (3, build(4).to_hex()));
    assert!(st.describe().starts_with("s3://"));
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = S3Server::start("atlas").expect("server");
    let st = store(&server).await;
    let key = SecretKey::generate().expect("key");
    point(&st, &key, &build(1)).await.expect("v1");
    // Every attempt loses to yet another re-sign of build 1.
    let key_path = atlas_proto::layout::pointer_key(PACK, CHANNEL);
    for v in 2..2 + pointer::CAS_ATTEMPTS as u64 {
        server.race_next_put(
            &key_path,
            RaceTiming::BeforeWrite,
            competitor(&server, &key, v, &build(1)),
        );
    }
    let err = point(&st, &key, &build(2)).await.expect_err("gave up");
    assert!(
        matches!(err, PointerUpdateError::Store(StoreError::Conflict { .. })),
        "{err:?}"
    );
    assert_eq!(stored(&server).build, build(1).to_hex(), "never overwritten");
}
