//! The S3 store against the testkit's in-process S3 server, over real HTTP with SigV4.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use atlas_builder::store::{
    self, Body, Expected, ObjectMeta, PutOutcome, S3Settings, S3Store, Store, StoreError,
};
use atlas_proto::layout::{
    CACHE_IMMUTABLE, CACHE_POINTER, CONTENT_TYPE_BLOB, CONTENT_TYPE_MANIFEST, CONTENT_TYPE_POINTER,
};
use atlas_testkit::s3::{RaceTiming, S3Server};
use bytes::Bytes;

const BUCKET: &str = "atlas";

const BLOB: ObjectMeta = ObjectMeta {
    content_type: CONTENT_TYPE_BLOB,
    cache_control: CACHE_IMMUTABLE,
};
const POINTER: ObjectMeta = ObjectMeta {
    content_type: CONTENT_TYPE_POINTER,
    cache_control: CACHE_POINTER,
};

async fn connect(server: &S3Server, prefix: &str) -> S3Store {
    S3Store::connect(BUCKET, prefix, &crate::common::s3_settings(server))
        .await
        .expect("connect")
}

fn bytes(b: &'static [u8]) -> Bytes {
    Bytes::from_static(b)
}

/// The PUTs of real objects: not those of the conditional-write probe.
fn object_puts(server: &S3Server) -> Vec<atlas_testkit::s3::RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && !r.path.contains("/atlas-probe/"))
        .collect()
}

/// Asserts that no request used `aws-chunked` / `STREAMING-*` uploads, which R2 rejects.
fn assert_no_streaming(server: &S3Server) {
    let streaming = server.streaming_requests();
    assert!(streaming.is_empty(), "aws-chunked uploads: {streaming:#?}");
}

/// Captures `tracing` output of the current thread (tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn immutable_objects_are_written_once() {
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "").await;
    let key = "blobs/sha256/ab/abc";
    assert!(!store.exists(key).await.expect("exists"));
    let first = store.put_immutable(key, Body::Bytes(bytes(b"one")), BLOB).await;
    assert_eq!(first.expect("first put"), PutOutcome::Created);
    assert!(store.exists(key).await.expect("exists"));
    let second = store.put_immutable(key, Body::Bytes(bytes(b"two")), BLOB).await;
    assert_eq!(second.expect("second put"), PutOutcome::AlreadyExists);
    let got = store.get(key, 100).await.expect("get").expect("present");
    assert_eq!(&got.bytes[..], b"one");
    assert_eq!(server.object(key).as_deref(), Some(&b"one"[..]));

    let puts = object_puts(&server);
    assert_eq!(puts.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 412]);
    for put in &puts {
        assert_eq!(put.path, format!("/{BUCKET}/{key}"));
        assert_eq!(put.header("if-none-match"), Some("*"));
        assert!(put.signed());
    }
    assert_no_streaming(&server);
}

#[tokio::test]
async fn pointer_compare_and_swap() {
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "").await;
    let key = "packs/p/channels/dev.json";

    let stale_missing = store
        .put_cas(key, bytes(b"v0"), Expected::ETag("\"abc\"".into()), POINTER)
        .await;
    assert!(
        matches!(stale_missing, Err(StoreError::Conflict { .. })),
        "{stale_missing:?}"
    );

    let e1 = store
        .put_cas(key, bytes(b"v1"), Expected::Absent, POINTER)
        .await
        .expect("create");
    let lost = store.put_cas(key, bytes(b"v1b"), Expected::Absent, POINTER).await;
    assert!(matches!(lost, Err(StoreError::Conflict { .. })), "{lost:?}");

    let e2 = store
        .put_cas(key, bytes(b"v2"), Expected::ETag(e1.clone()), POINTER)
        .await
        .expect("swap");
    assert_ne!(e1, e2);
    let stale = store
        .put_cas(key, bytes(b"v3"), Expected::ETag(e1), POINTER)
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");

    let got = store.get(key, 100).await.expect("get").expect("present");
    assert_eq!((&got.bytes[..], got.etag), (&b"v2"[..], e2.clone()));

    // The conditional headers went out with the writes.
    let puts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert!(
        puts.iter()
            .any(|r| r.header("if-none-match") == Some("*") && r.status == 200)
    );
    assert!(
        puts.iter()
            .any(|r| r.header("if-match").is_some() && r.status == 200)
    );
    assert_no_streaming(&server);
}

#[tokio::test]
async fn concurrent_writer_between_check_and_swap_is_a_conflict() {
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "").await;
    let key = "packs/p/channels/dev.json";
    let e1 = store
        .put_cas(key, bytes(b"v1"), Expected::Absent, POINTER)
        .await
        .expect("create");

    // Another publisher writes after our HEAD and before our PUT: the store's If-Match rejects us.
    server.race_next_put(key, RaceTiming::BeforeWrite, &b"theirs"[..]);
    let raced = store
        .put_cas(key, bytes(b"ours"), Expected::ETag(e1), POINTER)
        .await;
    assert!(matches!(raced, Err(StoreError::Conflict { .. })), "{raced:?}");
    assert_eq!(server.object(key).as_deref(), Some(&b"theirs"[..]));
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.status == 412 && r.header("if-match").is_some())
    );
}

/// A store that accepts `If-None-Match` / `If-Match` and ignores them: every write is refused
/// before anything but the probe's scratch object is written, and the scratch object is gone.
#[tokio::test]
async fn store_ignoring_preconditions_is_refused() {
    let server = S3Server::start(BUCKET).expect("server");
    server.set_enforce_preconditions(false);
    let store = connect(&server, "cdn").await;
    let key = "packs/p/channels/dev.json";
    let err = store
        .put_cas(key, bytes(b"v1"), Expected::Absent, POINTER)
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::Unconditional { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("--allow-unconditional-store"), "{text}");
    assert!(
        text.contains("If-None-Match: * over an existing object succeeded"),
        "{text}"
    );
    let immutable = store
        .put_immutable("blobs/x", Body::Bytes(bytes(b"x")), BLOB)
        .await
        .expect_err("refused");
    assert!(
        matches!(immutable, StoreError::Unconditional { .. }),
        "{immutable:?}"
    );
    assert!(store.check_conditional_writes().await.is_err());
    // Probed once (create, a second create), with a scratch object that was then deleted;
    // no real object was written.
    assert!(object_puts(&server).is_empty(), "{:#?}", object_puts(&server));
    let probes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/atlas-probe/"))
        .map(|r| {
            (
                r.method.clone(),
                r.status,
                r.header("if-none-match").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        probes,
        [
            ("PUT".to_owned(), 200, Some("*".to_owned())),
            ("PUT".to_owned(), 200, Some("*".to_owned())),
            ("DELETE".to_owned(), 204, None),
        ]
    );
    let left = store.list("").await.expect("list");
    assert!(left.is_empty(), "{left:?}");
}

/// With `--allow-unconditional-store`, writes go on (with a warning), and compare-and-swap still
/// catches a stale expectation before writing and a competing write by reading back.
#[tokio::test]
async fn allowed_unconditional_store_still_catches_what_it_can() {
    let logs = Logs::default();
    let _guard = logs.install();
    let server = S3Server::start(BUCKET).expect("server");
    server.set_enforce_preconditions(false);
    let store = connect(&server, "").await.allow_unconditional_writes(true);
    let key = "packs/p/channels/dev.json";
    let e1 = store
        .put_cas(key, bytes(b"v1"), Expected::Absent, POINTER)
        .await
        .expect("create");
    assert!(
        logs.text().contains("ignores conditional writes"),
        "warned: {}",
        logs.text()
    );

    // Immutable writes over existing keys are not refused, but content-addressed bytes are equal.
    for _ in 0..2 {
        let put = store
            .put_immutable("blobs/x", Body::Bytes(bytes(b"x")), BLOB)
            .await;
        assert_eq!(put.expect("put"), PutOutcome::Created);
    }

    // A stale expectation is caught before writing.
    let e2 = store
        .put_cas(key, bytes(b"v2"), Expected::ETag(e1.clone()), POINTER)
        .await
        .expect("swap");
    let stale = store
        .put_cas(key, bytes(b"v3"), Expected::ETag(e1), POINTER)
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
    assert_eq!(server.object(key).as_deref(), Some(&b"v2"[..]));

    // Another writer right after our write: the read-back sees their bytes.
    server.race_next_put(key, RaceTiming::AfterWrite, &b"theirs"[..]);
    let raced = store
        .put_cas(key, bytes(b"v3"), Expected::ETag(e2), POINTER)
        .await;
    assert!(matches!(raced, Err(StoreError::Conflict { .. })), "{raced:?}");
    assert_eq!(server.object(key).as_deref(), Some(&b"theirs"[..]));
    assert_no_streaming(&server);
}

/// On a store that honours preconditions the probe is refused as it should be (a second create
/// and a wrong `If-Match` answer 412), nothing is reported, and the pointer is never sent again
/// after its write (the old check re-sent it with `If-None-Match: *`).
#[tokio::test]
async fn store_honouring_preconditions_is_not_reported() {
    let logs = Logs::default();
    let _guard = logs.install();
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "").await;
    let key = "packs/p/channels/dev.json";
    let e1 = store
        .put_cas(key, bytes(b"v1"), Expected::Absent, POINTER)
        .await
        .expect("create");
    store
        .put_cas(key, bytes(b"v2"), Expected::ETag(e1), POINTER)
        .await
        .expect("swap");
    assert!(!logs.text().contains("WARN"), "no warning: {}", logs.text());
    let probes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/atlas-probe/"))
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        probes,
        [
            ("PUT".to_owned(), 200),
            ("PUT".to_owned(), 412),
            ("PUT".to_owned(), 412),
            ("DELETE".to_owned(), 204),
        ],
        "probed once, then the scratch object deleted"
    );
    let pointer_puts: Vec<u16> = object_puts(&server).iter().map(|r| r.status).collect();
    assert_eq!(pointer_puts, [200, 200], "each pointer write sent once");
    assert_eq!(server.object(key).as_deref(), Some(&b"v2"[..]));
    assert!(store.list("atlas-probe/").await.expect("list").is_empty());
}

/// Listing follows ListObjectsV2's pages (1,000 keys each) and keeps the prefix out of the keys;
/// deleting sends batches of at most 1,000 keys with the Content-MD5 S3 requires.
#[tokio::test]
async fn listing_pages_and_batched_deletes() {
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "pre").await;
    let n = 2345;
    let keys: Vec<String> = (0..n)
        .map(|i| format!("blobs/sha256/{:02x}/k{i:05}", i % 256))
        .collect();
    for k in &keys {
        let p = server.object_path(&format!("pre/{k}"));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"12345").expect("write");
    }
    std::fs::write(server.object_path("outside"), b"x").expect("write");
    let listed = store.list("blobs/").await.expect("list");
    assert_eq!(listed.len(), n);
    let mut got: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    got.sort_unstable();
    let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(listed.iter().all(|l| l.size == 5));
    let lists = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.query.as_deref().is_some_and(|q| q.contains("list-type=2")))
        .count();
    assert_eq!(lists, 3, "three pages of at most 1,000 keys");

    server.clear_requests();
    store.delete(&keys).await.expect("delete");
    let deletes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(deletes.len(), 3);
    assert!(
        deletes
            .iter()
            .all(|r| r.status == 200 && r.header("content-md5").is_some())
    );
    assert!(store.list("").await.expect("list").is_empty());
    assert!(
        server.object("outside").is_some(),
        "outside the prefix: untouched"
    );

    // The stand-in is as strict as S3: a multi-object delete without Content-MD5 is refused.
    let bare = store
        .client()
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key("outside")
                        .build()
                        .expect("id"),
                )
                .build()
                .expect("delete"),
        )
        .send()
        .await;
    let err = bare.expect_err("refused without Content-MD5");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("InvalidRequest"),
        "{err:?}"
    );
    assert!(server.object("outside").is_some());
}

#[tokio::test]
async fn get_is_capped() {
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "").await;
    let key = "packs/p/builds/b/manifest.pb.zst";
    assert!(store.get(key, 100).await.expect("get").is_none());
    let body = Bytes::from(vec![7u8; 100]);
    store
        .put_immutable(key, Body::Bytes(body.clone()), BLOB)
        .await
        .expect("put");
    let too_large = store.get(key, 99).await;
    assert!(
        matches!(too_large, Err(StoreError::TooLarge { limit: 99, .. })),
        "{too_large:?}"
    );
    let got = store.get(key, 100).await.expect("get").expect("present");
    assert_eq!(got.bytes, body);
    assert!(!got.etag.is_empty());
}

#[tokio::test]
async fn files_are_streamed_with_a_plain_content_length() {
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "").await;
    let mut file = tempfile::NamedTempFile::new().expect("tempfile");
    let content: Vec<u8> = (0..6 * 1024 * 1024 + 123).map(|i: u32| (i % 251) as u8).collect();
    file.write_all(&content).expect("write");
    file.flush().expect("flush");

    let key = "blobs/sha256/cd/cdef";
    let put = store
        .put_immutable(key, Body::File(file.path().to_owned()), BLOB)
        .await;
    assert_eq!(put.expect("put"), PutOutcome::Created);
    assert!(server.object(key) == Some(content.clone()), "stored bytes differ");
    let again = store
        .put_immutable(key, Body::File(file.path().to_owned()), BLOB)
        .await;
    assert_eq!(again.expect("put again"), PutOutcome::AlreadyExists);

    let puts = object_puts(&server);
    assert_eq!(puts.len(), 2);
    for put in &puts {
        assert_eq!(
            put.header("content-length"),
            Some(content.len().to_string().as_str()),
            "{put:#?}"
        );
        assert_eq!(put.header("transfer-encoding"), None, "{put:#?}");
    }
    assert_no_streaming(&server);

    let missing = store
        .put_immutable("blobs/y", Body::File(file.path().join("nope")), BLOB)
        .await;
    assert!(matches!(missing, Err(StoreError::Io { .. })), "{missing:?}");
}

#[tokio::test]
async fn headers_are_stored_and_anonymous_reads_work() {
    let server = S3Server::start(BUCKET).expect("server");
    let store = connect(&server, "pub").await;
    let manifest = "packs/p/builds/b/manifest.pb.zst";
    let manifest_meta = ObjectMeta {
        content_type: CONTENT_TYPE_MANIFEST,
        cache_control: CACHE_IMMUTABLE,
    };
    store
        .put_immutable(manifest, Body::Bytes(bytes(b"manifest")), manifest_meta)
        .await
        .expect("put");
    let pointer = "packs/p/channels/dev.json";
    store
        .put_cas(pointer, bytes(b"{}"), Expected::Absent, POINTER)
        .await
        .expect("cas");

    let http = reqwest::Client::new();
    let base = server.public_url("pub");
    for (key, meta, body) in [
        (manifest, manifest_meta, &b"manifest"[..]),
        (pointer, POINTER, &b"{}"[..]),
    ] {
        let resp = http
            .get(format!("{base}{key}"))
            .send()
            .await
            .expect("anonymous GET");
        assert_eq!(resp.status(), 200);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("content-type").as_deref(), Some(meta.content_type));
        assert_eq!(header("cache-control").as_deref(), Some(meta.cache_control));
        assert!(header("etag").is_some());
        assert_eq!(&resp.bytes().await.expect("body")[..], body);
        let head = http
            .head(format!("{base}{key}"))
            .send()
            .await
            .expect("anonymous HEAD");
        assert_eq!(head.status(), 200);
    }
    // Anonymous writes are refused.
    let put = http
        .put(format!("{base}evil"))
        .body("x")
        .send()
        .await
        .expect("anonymous PUT");
    assert_eq!(put.status(), 403);
    assert!(!store.exists("evil").await.expect("exists"));
}

#[tokio::test]
async fn keys_live_under_the_prefix() {
    let server = S3Server::start(BUCKET).expect("server");
    let s = crate::common::s3_settings(&server);
    let nested = store::open(&format!("s3://{BUCKET}/some/prefix/"), &s)
        .await
        .expect("open");
    assert_eq!(nested.describe(), format!("s3://{BUCKET}/some/prefix"));
    let root = store::open(&format!("s3://{BUCKET}"), &s).await.expect("open");
    assert_eq!(root.describe(), format!("s3://{BUCKET}"));

    nested
        .put_immutable("blobs/a", Body::Bytes(bytes(b"nested")), BLOB)
        .await
        .expect("put");
    root.put_immutable("blobs/a", Body::Bytes(bytes(b"root")), BLOB)
        .await
        .expect("put");
    assert_eq!(
        server.object("some/prefix/blobs/a").as_deref(),
        Some(&b"nested"[..])
    );
    assert_eq!(server.object("blobs/a").as_deref(), Some(&b"root"[..]));
    assert!(nested.exists("blobs/a").await.expect("exists"));
    assert!(root.get("some/prefix/blobs/a", 10).await.expect("get").is_some());
    assert!(!nested.exists("some/prefix/blobs/a").await.expect("exists"));

    let paths: Vec<_> = object_puts(&server).into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/{BUCKET}/some/prefix/blobs/a"),
            format!("/{BUCKET}/blobs/a")
        ]
    );
}

#[tokio::test]
async fn wrong_credentials_are_explained() {
    let server = S3Server::start(BUCKET).expect("server");
    let wrong_secret = S3Settings {
        secret_access_key: Some("not-the-secret".into()),
        ..crate::common::s3_settings(&server)
    };
    let store = S3Store::connect(BUCKET, "", &wrong_secret)
        .await
        .expect("connect");
    let err = store
        .put_immutable("blobs/a", Body::Bytes(bytes(b"a")), BLOB)
        .await
        .expect_err("refused");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    for needle in [
        "SignatureDoesNotMatch",
        "403",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(message.contains(needle), "`{needle}` in: {message}");
    }
    let err = store.get("blobs/a", 10).await.expect_err("refused");
    assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert!(server.object("blobs/a").is_none());

    let unknown_key = S3Settings {
        access_key_id: Some("AKIAUNKNOWN".into()),
        ..crate::common::s3_settings(&server)
    };
    let store = S3Store::connect(BUCKET, "", &unknown_key).await.expect("connect");
    let err = store.exists("blobs/a").await.expect_err("refused");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");

    // Without explicit keys the standard chain is used; with none anywhere, the message says what
    // to set (on a machine with AWS credentials, the test server refuses them instead).
    let from_env = S3Settings {
        access_key_id: None,
        secret_access_key: None,
        ..crate::common::s3_settings(&server)
    };
    let store = S3Store::connect(BUCKET, "", &from_env).await.expect("connect");
    let err = store.exists("blobs/a").await.expect_err("refused");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");

    let half = S3Settings {
        secret_access_key: None,
        ..crate::common::s3_settings(&server)
    };
    assert!(S3Store::connect(BUCKET, "", &half).await.is_err());
}

#[tokio::test]
async fn unreachable_endpoint_is_named() {
    let server = S3Server::start(BUCKET).expect("server");
    let s = crate::common::s3_settings(&server);
    let endpoint = server.endpoint();
    drop(server);
    let store = S3Store::connect(BUCKET, "", &s).await.expect("connect");
    let err = store.exists("blobs/a").await.expect_err("unreachable");
    let message = err.to_string();
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("AWS_ENDPOINT_URL"), "{message}");
}
