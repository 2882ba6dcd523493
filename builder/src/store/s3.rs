//! A store in an S3-compatible bucket (Cloudflare R2, AWS S3, MinIO, ...), through aws-sdk-s3.
//!
//! Immutable objects are written with `If-None-Match: *`; the channel pointer is replaced with
//! `If-None-Match: *` / `If-Match: <etag>` and always read back. Before its first write, a handle
//! probes whether the store honours those headers with a scratch object (never with a real
//! pointer): AWS S3 and Cloudflare R2 do (since 2024), but some S3-compatible servers accept the
//! headers and ignore them. On such a store writes are refused unless the handle was opened with
//! [`S3Store::allow_unconditional_writes`]. Requests are R2-compatible: checksums only when
//! required (no `aws-chunked` streaming uploads), plain `Content-Length` bodies, files streamed
//! from disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use base64::Engine as _;
use bytes::Bytes;
use md5::Digest as _;
use tokio::sync::OnceCell;

use super::api::{Body, Expected, Listed, Object, ObjectMeta, PutOutcome, Store, StoreError};

/// Connection settings for an S3-compatible store. Unset fields come from the standard AWS
/// environment variables and profile files (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, ...).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Endpoint URL, e.g. `https://<account>.r2.cloudflarestorage.com`.
    pub endpoint: Option<String>,
    /// Region; `auto` for R2.
    pub region: Option<String>,
    /// Explicit credentials; otherwise the standard AWS environment and profile chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Session token for temporary explicit credentials.
    pub session_token: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.
    pub force_path_style: bool,
}

/// What the probe learned about the store's conditional writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Conditional {
    Honoured,
    /// Ignored, and how that showed.
    Ignored(String),
}

/// Keys per `DeleteObjects` request (the S3 API's maximum).
const DELETE_BATCH: usize = 1000;

/// A bucket (and key prefix) on an S3-compatible service.
#[derive(Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    /// Where requests go, for error messages.
    endpoint: String,
    /// The probe's finding, once made.
    conditional: OnceCell<Conditional>,
    /// Write even if the store ignores conditional writes.
    allow_unconditional: bool,
    /// Warned that writes go on without conditional writes.
    warned: AtomicBool,
}

/// How a failed request should be read.
enum Failure {
    /// 412 Precondition Failed, or 409 ConditionalRequestConflict (a concurrent conditional write).
    Precondition,
    /// 404 / NoSuchKey / NotFound.
    NotFound,
    /// 501 NotImplemented: the store does not support the conditional header.
    NotImplemented,
    Other(StoreError),
}

impl S3Store {
    /// Configures a client for `bucket`; keys are stored under `prefix/` (none if empty).
    /// Makes no request: bad credentials or endpoints surface on the first operation.
    pub async fn connect(bucket: &str, prefix: &str, settings: &S3Settings) -> Result<Self, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = settings.region.as_deref().filter(|r| !r.is_empty()) {
            loader = loader.region(Region::new(region.to_owned()));
        }
        if let Some(endpoint) = settings.endpoint.as_deref().filter(|e| !e.is_empty()) {
            loader = loader.endpoint_url(endpoint);
        }
        match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(id), Some(secret)) => {
                let creds =
                    Credentials::new(id, secret, settings.session_token.clone(), None, "atlas-settings");
                loader = loader.credentials_provider(creds);
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Url {
                    url: format!("s3://{bucket}/{prefix}"),
                    message: "give both an access key id and a secret access key, or neither (to use \
                              AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile)"
                        .into(),
                });
            }
        }
        let sdk_config = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(settings.force_path_style)
            // Cloudflare R2 rejects aws-chunked uploads and trailing checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if sdk_config.region().is_none() {
            // S3 needs a region to sign with; `us-east-1` is what S3-compatible servers expect
            // when none is configured.
            config = config.region(Region::new("us-east-1"));
        }
        let endpoint = sdk_config
            .endpoint_url()
            .map_or_else(|| "the default AWS S3 endpoint".to_owned(), str::to_owned);
        Ok(Self {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint,
            conditional: OnceCell::new(),
            allow_unconditional: false,
            warned: AtomicBool::new(false),
        })
    }

    /// Allows (or not, the default) writing to a store that ignores conditional writes
    /// (`--allow-unconditional-store`). Compare-and-swap then compares with a HEAD, writes
    /// without a working precondition and reads back: safe only with one writer at a time.
    pub fn allow_unconditional_writes(mut self, allow: bool) -> Self {
        self.allow_unconditional = allow;
        self
    }

    /// The client, for callers that need other operations on the same bucket.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The object key of `key` in the bucket.
    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{}", self.prefix, key)
        }
    }

    fn io(&self, key: &str, message: impl Into<String>) -> StoreError {
        StoreError::Io {
            store: self.describe(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn conflict(&self, key: &str) -> StoreError {
        StoreError::Conflict {
            store: self.describe(),
            key: key.to_owned(),
        }
    }

    /// Classifies a failed request; `op` names it in the message (`PutObject`, ...).
    fn classify<E>(&self, key: &str, op: &str, err: SdkError<E>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        match (status, code.as_deref()) {
            (Some(412), _) | (_, Some("PreconditionFailed" | "ConditionalRequestConflict")) => {
                return Failure::Precondition;
            }
            (Some(404), _) | (_, Some("NoSuchKey" | "NotFound")) => return Failure::NotFound,
            (Some(501), _) | (_, Some("NotImplemented")) => return Failure::NotImplemented,
            _ => {}
        }
        let message = match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                let chain = error_chain(&err);
                if chain.contains("loading credentials") {
                    format!(
                        "{op}: no usable credentials: {chain}; set AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or give the access key settings"
                    )
                } else {
                    format!(
                        "{op}: could not reach the S3 endpoint {}: {chain}; check AWS_ENDPOINT_URL (or the \
                         endpoint setting) and the network",
                        self.endpoint
                    )
                }
            }
            SdkError::ConstructionFailure(_) => format!(
                "{op}: could not build the request: {}; check the region, endpoint and credentials \
                 (AWS_REGION, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
                error_chain(&err)
            ),
            SdkError::ServiceError(_) => {
                let mut m = format!("{op} failed:");
                if let Some(status) = status {
                    m.push_str(&format!(" HTTP {status}"));
                }
                m.push_str(&format!(" {}", code.as_deref().unwrap_or("(no error code)")));
                if let Some(text) = err.message().filter(|t| !t.is_empty()) {
                    m.push_str(&format!(": {text}"));
                }
                if status == Some(403) || code.as_deref().is_some_and(is_credentials_code) {
                    m.push_str(&format!(
                        "; the store refused the credentials: check AWS_ACCESS_KEY_ID / \
                         AWS_SECRET_ACCESS_KEY (or the access key settings), and that AWS_ENDPOINT_URL \
                         ({}) is the service and account the keys belong to, with access to bucket `{}`",
                        self.endpoint, self.bucket
                    ));
                }
                m
            }
            // An unparseable response, or a future kind of failure.
            _ => format!("{op} failed: {}", DisplayErrorContext(&err)),
        };
        Failure::Other(self.io(key, message))
    }

    /// Turns a classified failure that the caller does not handle into an error.
    fn unexpected(&self, key: &str, op: &str, failure: Failure) -> StoreError {
        match failure {
            Failure::Other(e) => e,
            Failure::Precondition => self.io(key, format!("{op}: unexpected 412 Precondition Failed")),
            Failure::NotFound => self.io(
                key,
                format!(
                    "{op}: not found (HTTP 404); check that bucket `{}` exists",
                    self.bucket
                ),
            ),
            Failure::NotImplemented => {
                self.io(key, format!("{op}: the store does not implement this request"))
            }
        }
    }

    async fn body_stream(&self, key: &str, body: &Body) -> Result<ByteStream, StoreError> {
        match body {
            Body::Bytes(b) => Ok(ByteStream::from(b.clone())),
            // Streamed from disk with a known Content-Length: never read whole into memory.
            Body::File(path) | Body::CachedFile(path) => ByteStream::from_path(path)
                .await
                .map_err(|e| self.io(key, format!("opening {}: {e}", path.display()))),
        }
    }

    fn put_request(&self, key: &str, body: ByteStream, meta: ObjectMeta) -> PutObjectFluentBuilder {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_type(meta.content_type)
            .cache_control(meta.cache_control)
            .body(body)
    }

    /// The current ETag of `key`, `None` if absent.
    async fn head_etag(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.e_tag.unwrap_or_default())),
            Err(e) => match self.classify(key, "HeadObject", e) {
                Failure::NotFound => Ok(None),
                f => Err(self.unexpected(key, "HeadObject", f)),
            },
        }
    }

    /// Notes (from a 501 on a real write) that the store ignores a conditional header: refused
    /// unless allowed.
    fn preconditions_not_implemented(&self, key: &str, op: &str) -> Result<(), StoreError> {
        let how = format!("{op} answered 501 Not Implemented to a conditional header");
        if !self.allow_unconditional {
            return Err(StoreError::Unconditional {
                store: self.describe(),
                how,
            });
        }
        self.warn_unconditional(&how);
        tracing::debug!(key, "writing without a conditional header");
        Ok(())
    }

    fn warn_unconditional(&self, how: &str) {
        if !self.warned.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                store = %self.describe(),
                "the store ignores conditional writes ({how}); writing anyway as \
                 --allow-unconditional-store asks: concurrent writers to one channel are not \
                 protected against overwriting each other"
            );
        }
    }

    /// Probes with a scratch object `atlas-probe/<random>` (never a real object): created with
    /// `If-None-Match: *`, written again with `If-None-Match: *` (must be refused with 412), then
    /// with a wrong `If-Match` (must be refused with 412), then deleted.
    async fn probe(&self) -> Result<Conditional, StoreError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| self.io(atlas_proto::layout::PROBE_PREFIX, e.to_string()))?;
        let key = format!("{}{}", atlas_proto::layout::PROBE_PREFIX, hex::encode(id));
        let meta = ObjectMeta {
            content_type: "text/plain",
            cache_control: "no-store",
        };
        let body = || ByteStream::from(Bytes::from_static(b"atlas: conditional-write probe\n"));
        // 1. Create.
        match self
            .put_request(&key, body(), meta)
            .if_none_match("*")
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => match self.classify(&key, "PutObject", e) {
                Failure::NotImplemented => {
                    return Ok(Conditional::Ignored(
                        "PutObject with If-None-Match: * answered 501 Not Implemented".into(),
                    ));
                }
                f => return Err(self.unexpected(&key, "PutObject", f)),
            },
        }
        let verdict = self.probe_refusals(&key, meta, body).await;
        // 4. Clean up (a leftover is collected by `gc`).
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(&key))
            .send()
            .await;
        if let Err(e) = deleted {
            let f = self.classify(&key, "DeleteObject", e);
            let e = self.unexpected(&key, "DeleteObject", f);
            tracing::warn!("could not delete the probe object (gc removes it later): {e}");
        }
        verdict
    }

    /// Steps 2 and 3 of [`Self::probe`] on the existing scratch object `key`.
    async fn probe_refusals(
        &self,
        key: &str,
        meta: ObjectMeta,
        body: impl Fn() -> ByteStream,
    ) -> Result<Conditional, StoreError> {
        let attempts = [
            ("If-None-Match: * over an existing object", None),
            (
                "a non-matching If-Match",
                Some("\"00000000000000000000000000000000\""),
            ),
        ];
        for (what, if_match) in attempts {
            let request = self.put_request(key, body(), meta);
            let request = match if_match {
                None => request.if_none_match("*"),
                Some(etag) => request.if_match(etag),
            };
            match request.send().await {
                Ok(_) => return Ok(Conditional::Ignored(format!("a PutObject with {what} succeeded"))),
                Err(e) => match self.classify(key, "PutObject", e) {
                    Failure::Precondition => {}
                    Failure::NotImplemented => {
                        return Ok(Conditional::Ignored(format!(
                            "a PutObject with {what} answered 501 Not Implemented"
                        )));
                    }
                    f => return Err(self.unexpected(key, "PutObject", f)),
                },
            }
        }
        Ok(Conditional::Honoured)
    }
}

/// Whether an S3 error code is about the credentials (wrong key, wrong secret, wrong account).
fn is_credentials_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "NotSignedUp"
            | "InvalidToken"
            | "ExpiredToken"
            | "Unauthorized"
    )
}

/// `error: cause: cause ...`, without the Debug dump that `DisplayErrorContext` appends.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

/// An ETag without quotes or weak marker, for comparisons.
fn etag_value(etag: &str) -> &str {
    etag.strip_prefix("W/").unwrap_or(etag).trim_matches('"')
}

#[async_trait::async_trait]
impl Store for S3Store {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.head_etag(key).await?.is_some())
    }

    async fn check_conditional_writes(&self) -> Result<(), StoreError> {
        match self.conditional.get_or_try_init(|| self.probe()).await? {
            Conditional::Honoured => Ok(()),
            Conditional::Ignored(how) if self.allow_unconditional => {
                self.warn_unconditional(how);
                Ok(())
            }
            Conditional::Ignored(how) => Err(StoreError::Unconditional {
                store: self.describe(),
                how: how.clone(),
            }),
        }
    }

    async fn put_immutable(&self, key: &str, body: Body, meta: ObjectMeta) -> Result<PutOutcome, StoreError> {
        self.check_conditional_writes().await?;
        let stream = self.body_stream(key, &body).await?;
        let sent = self
            .put_request(key, stream, meta)
            .if_none_match("*")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) => match self.classify(key, "PutObject", e) {
                Failure::Precondition => Ok(PutOutcome::AlreadyExists),
                Failure::NotImplemented => {
                    // Content-addressed: check, then write without the header.
                    self.preconditions_not_implemented(key, "PutObject")?;
                    if self.exists(key).await? {
                        return Ok(PutOutcome::AlreadyExists);
                    }
                    let stream = self.body_stream(key, &body).await?;
                    match self.put_request(key, stream, meta).send().await {
                        Ok(_) => Ok(PutOutcome::Created),
                        Err(e) => {
                            let f = self.classify(key, "PutObject", e);
                            Err(self.unexpected(key, "PutObject", f))
                        }
                    }
                }
                f => Err(self.unexpected(key, "PutObject", f)),
            },
        }
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Object>, StoreError> {
        let too_large = || StoreError::TooLarge {
            store: self.describe(),
            key: key.to_owned(),
            limit: max_bytes,
        };
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match self.classify(key, "GetObject", e) {
                    Failure::NotFound => Ok(None),
                    f => Err(self.unexpected(key, "GetObject", f)),
                };
            }
        };
        let declared = out.content_length.and_then(|n| u64::try_from(n).ok());
        if declared.is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let etag = out.e_tag.ok_or_else(|| {
            self.io(
                key,
                "GetObject: the store returned no ETag, which compare-and-swap needs",
            )
        })?;
        let capacity = usize::try_from(declared.unwrap_or(0).min(max_bytes)).unwrap_or(0);
        let mut buf = Vec::with_capacity(capacity);
        let mut body = out.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| self.io(key, format!("GetObject: reading the body: {}", error_chain(&e))))?
        {
            if (buf.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(Object {
            bytes: Bytes::from(buf),
            etag,
        }))
    }

    async fn put_cas(
        &self,
        key: &str,
        bytes: Bytes,
        expected: Expected,
        meta: ObjectMeta,
    ) -> Result<String, StoreError> {
        self.check_conditional_writes().await?;
        // 1. Compare: a stale expectation fails here without writing, even on stores that ignore
        //    conditional headers.
        let current = self.head_etag(key).await?;
        let still_expected = match (&expected, &current) {
            (Expected::Absent, None) => true,
            (Expected::ETag(want), Some(have)) => etag_value(want) == etag_value(have),
            _ => false,
        };
        if !still_expected {
            return Err(self.conflict(key));
        }

        // 2. Swap, conditionally: the store rejects it if another writer got in since step 1.
        let request = self.put_request(key, ByteStream::from(bytes.clone()), meta);
        let request = match &expected {
            Expected::Absent => request.if_none_match("*"),
            Expected::ETag(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(_) => {}
            Err(e) => match self.classify(key, "PutObject", e) {
                Failure::Precondition => return Err(self.conflict(key)),
                Failure::NotImplemented => {
                    self.preconditions_not_implemented(key, "PutObject")?;
                    let sent = self
                        .put_request(key, ByteStream::from(bytes.clone()), meta)
                        .send()
                        .await;
                    if let Err(e) = sent {
                        let f = self.classify(key, "PutObject", e);
                        return Err(self.unexpected(key, "PutObject", f));
                    }
                }
                f => return Err(self.unexpected(key, "PutObject", f)),
            },
        }

        // 3. Read back: if another writer replaced the object (on a store that ignored the
        //    precondition, or right after us), the bytes differ.
        let limit = bytes.len() as u64;
        let stored = match self.get(key, limit).await {
            Ok(Some(obj)) if obj.bytes == bytes => obj,
            Ok(_) | Err(StoreError::TooLarge { .. }) => return Err(self.conflict(key)),
            Err(e) => return Err(e),
        };
        Ok(stored.etag)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let full = self.full_key(prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let f = self.classify(prefix, "ListObjectsV2", e);
                self.unexpected(prefix, "ListObjectsV2", f)
            })?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&strip)) else {
                    continue;
                };
                let modified = object
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok())
                    .ok_or_else(|| self.io(key, "ListObjectsV2: the store gave no LastModified"))?;
                out.push(Listed {
                    key: key.to_owned(),
                    size: object.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    modified,
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let first = batch.first().map_or("", String::as_str);
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.io(first, format!("DeleteObjects: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.io(first, format!("DeleteObjects: {e}")))?;
            let sent = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .customize()
                // S3 requires Content-MD5 on multi-object deletes (general purpose buckets; the
                // SDK sends only a CRC32, which several S3-compatible servers refuse).
                .mutate_request(|req| {
                    if let Some(body) = req.body().bytes() {
                        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
                        req.headers_mut().insert("Content-MD5", md5);
                    }
                })
                .send()
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(e) => {
                    let f = self.classify(first, "DeleteObjects", e);
                    return Err(self.unexpected(first, "DeleteObjects", f));
                }
            };
            if let Some(err) = out.errors().first() {
                let key = err.key().unwrap_or(first);
                return Err(self.io(
                    key,
                    format!(
                        "DeleteObjects: {} {} ({} of {} keys refused)",
                        err.code().unwrap_or("(no code)"),
                        err.message().unwrap_or_default(),
                        out.errors().len(),
                        batch.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}
