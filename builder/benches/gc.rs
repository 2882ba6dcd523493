//! `atlas-builder gc` over a store of 10,000 blobs (issue 18): a directory
//! store and the in-process S3 test server (s3s-fs, SigV4, loopback), each
//! with one pack whose `dev` channel had 12 builds of 2,000 files (a sliding
//! window over the blobs) and 2,500 orphan blobs, everything five days old.
//! With `--keep-builds 10` gc keeps builds 3-12 and deletes 3,500 blobs and
//! two manifests. Runs the real binary (release profile): a dry run (median
//! of 5 on one store) and `--delete` (3 runs, each on a fresh store).
//! Run: `cargo bench -p atlas-builder --bench gc`. Figures: docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use atlas_builder::pointer::{PointerRequest, point_channel};
use atlas_builder::store::{Body, DirStore, ObjectMeta, S3Settings, S3Store, Store};
use atlas_proto::v1::{File, Loader, LoaderKind, Manifest, Side};
use atlas_proto::{SecretKey, Sha256Digest, layout};
use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

const PACK: &str = "bench";
const BLOBS: usize = 10_000;
const BLOB_BYTES: usize = 1024;
const BUILDS: usize = 12;
const FILES: usize = 2_000;
const STEP: usize = 500;

fn blob(i: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..BLOB_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes the blobs straight into `root` (the store's files), then the
/// manifests and pointers through `store`, then ages everything.
async fn populate(root: &Path, store: &dyn Store) {
    let digests: Vec<Sha256Digest> = (0..BLOBS)
        .map(|i| {
            let bytes = blob(i);
            let d = Sha256Digest::of(&bytes);
            let path = root.join(layout::blob_key(&d));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write blob");
            d
        })
        .collect();
    let key = SecretKey::from_seed(&[1; 32]);
    for b in 0..BUILDS {
        let files = (b * STEP..b * STEP + FILES)
            .map(|i| File {
                path: format!("mods/f{i:05}.jar"),
                size: BLOB_BYTES as u64,
                sha256: digests[i].0.to_vec(),
                side: Side::Both as i32,
                ..Default::default()
            })
            .collect();
        let m = Manifest {
            format_version: 1,
            pack_id: PACK.into(),
            name: "Bench".into(),
            version: format!("{b}"),
            minecraft_version: "1.21.1".into(),
            loader: Some(Loader {
                kind: LoaderKind::Fabric as i32,
                version: "0.16.9".into(),
            }),
            files,
            ..Default::default()
        };
        let bytes = atlas_proto::manifest::encode(&m).expect("encode");
        let build = atlas_proto::manifest::build_id(&bytes);
        let size = bytes.len() as u64;
        store
            .put_immutable(
                &layout::manifest_key(PACK, &build),
                Body::Bytes(bytes.into()),
                ObjectMeta::MANIFEST,
            )
            .await
            .expect("manifest");
        point_channel(&PointerRequest {
            store,
            key: &key,
            pack: PACK,
            channel: "dev",
            build,
            manifest_size: size,
            now: 1_700_000_000,
            lifetime: Duration::from_secs(86_400 * 30),
            force: false,
            exports: Default::default(),
            tools: Default::default(),
        })
        .await
        .expect("pointer");
    }
    atlas_testkit::fs::age(root, Duration::from_secs(5 * 86_400));
}

struct Outcome {
    wall: Duration,
    deleted: u64,
    bytes: u64,
    scanned: u64,
}

fn gc(store_url: &str, endpoint: Option<&str>, delete: bool) -> Outcome {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-builder"));
    c.args(["--json", "gc", "--pack", PACK, "--store", store_url])
        .env("RUST_LOG", "warn");
    if delete {
        c.arg("--delete");
    }
    if let Some(e) = endpoint {
        c.arg("--s3-path-style")
            .env("AWS_ENDPOINT_URL", e)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    }
    let start = Instant::now();
    let out = c.output().expect("run atlas-builder");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "gc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    Outcome {
        wall,
        deleted: r["freed"]["objects"].as_u64().expect("objects"),
        bytes: r["freed"]["bytes"].as_u64().expect("bytes"),
        scanned: r["scanned"]["objects"].as_u64().expect("scanned"),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn s3_settings(server: &S3Server) -> S3Settings {
    S3Settings {
        endpoint: Some(server.endpoint()),
        region: Some(REGION.to_owned()),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        session_token: None,
        force_path_style: true,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();

    // Directory store.
    let mut dry = Vec::new();
    let mut del = Vec::new();
    let mut last = None;
    for run in 0..3 {
        let dir = tempfile::tempdir().expect("tmp");
        let root: PathBuf = dir.path().join("store");
        rt.block_on(populate(&root, &DirStore::new(&root)));
        let url = root.display().to_string();
        if run == 0 {
            for _ in 0..5 {
                let o = gc(&url, None, false);
                dry.push(o.wall);
                last = Some((o.deleted, o.bytes, o.scanned));
            }
        }
        let o = gc(&url, None, true);
        assert_eq!(
            Some(o.deleted),
            last.map(|l| l.0),
            "deletes what the dry run listed"
        );
        del.push(o.wall);
    }
    let (n, bytes, scanned) = last.expect("ran");
    rows.push(format!(
        "| directory | {scanned} | {n} ({bytes} B) | {} | {} |",
        ms(median(dry)),
        ms(median(del))
    ));

    // S3 test server.
    let mut dry = Vec::new();
    let mut del = Vec::new();
    let mut requests = (0, 0);
    let mut list = Vec::new();
    for run in 0..3 {
        let server = S3Server::start("atlas").expect("s3");
        let store = rt
            .block_on(S3Store::connect("atlas", "", &s3_settings(&server)))
            .expect("connect");
        rt.block_on(populate(&server.data_dir().join("atlas"), &store));
        let endpoint = server.endpoint();
        if run == 0 {
            // The listing alone (s3s-fs walks the whole bucket for every page).
            for _ in 0..3 {
                let start = Instant::now();
                let n = rt.block_on(store.list("")).expect("list").len();
                list.push(start.elapsed());
                assert!(n > BLOBS);
            }
            for _ in 0..5 {
                server.clear_requests();
                let o = gc("s3://atlas", Some(&endpoint), false);
                dry.push(o.wall);
                requests.0 = server.requests().len();
                last = Some((o.deleted, o.bytes, o.scanned));
            }
        }
        server.clear_requests();
        let o = gc("s3://atlas", Some(&endpoint), true);
        requests.1 = server.requests().len();
        assert_eq!(Some(o.deleted), last.map(|l| l.0));
        del.push(o.wall);
    }
    let (n, bytes, scanned) = last.expect("ran");
    rows.push(format!(
        "| S3 test server | {scanned} | {n} ({bytes} B) | {} ({} requests) | {} ({} requests) |",
        ms(median(dry)),
        requests.0,
        ms(median(del)),
        requests.1
    ));

    println!(
        "S3 listing alone (ListObjectsV2, 11 pages, in-process client): {} (median of 3)",
        ms(median(list))
    );
    println!("| store | objects listed | deleted | dry run (median of 5) | --delete (median of 3) |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
