//! Benchmarks for the protocol codec: manifest size per entry and decode time
//! for a synthetic 5,000-file pack, and SHA-256 throughput of the streaming
//! hasher the fetcher verifies blobs with. Run: `cargo bench -p atlas-proto`.
//! Figures are recorded in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use atlas_proto::Sha256Digest;
use atlas_proto::digest::HashingCounter;
use atlas_proto::manifest::{self, ManifestLimits};
use atlas_proto::v1::{BuildSource, File, Hash, HashAlgorithm, Loader, LoaderKind, Manifest, Side, Upstream};

/// Median wall time of `runs` calls.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// 300 mods with Modrinth-style upstreams and 4,700 config files.
fn synthetic(files: usize, mods: usize) -> Manifest {
    let entries = (0..files)
        .map(|i| {
            let digest = Sha256Digest::of(&(i as u64).to_le_bytes());
            if i < mods {
                File {
                    path: format!("mods/example-mod-{i}-1.{}.{}+fabric-1.21.1.jar", i % 7, i % 13),
                    size: 200_000 + (i as u64 * 7919) % 3_000_000,
                    sha256: digest.0.to_vec(),
                    side: [Side::Both, Side::Client, Side::Server][i % 3] as i32,
                    upstreams: vec![Upstream {
                        url: format!(
                            "https://cdn.modrinth.com/data/{:08x}/versions/{:08x}/example-mod-{i}.jar",
                            i * 31,
                            i * 17
                        ),
                        hashes: vec![
                            Hash {
                                algorithm: HashAlgorithm::Sha1 as i32,
                                value: digest.0[..20].to_vec(),
                            },
                            Hash {
                                algorithm: HashAlgorithm::Sha512 as i32,
                                value: [digest.0, digest.0].concat(),
                            },
                        ],
                        origin: format!("modrinth:{:08x}/{:08x}", i * 31, i * 17),
                    }],
                    display_name: format!("Example Mod {i}"),
                    display_version: format!("1.{}.{}", i % 7, i % 13),
                    ..Default::default()
                }
            } else {
                File {
                    path: format!("config/mod{}/settings-{i}.toml", i % 120),
                    size: 300 + (i as u64 * 104_729) % 20_000,
                    sha256: digest.0.to_vec(),
                    side: Side::Both as i32,
                    ..Default::default()
                }
            }
        })
        .collect();
    Manifest {
        format_version: 1,
        pack_id: "bench".into(),
        name: "Benchmark pack".into(),
        version: "1.0.0".into(),
        source: Some(BuildSource {
            repository: "https://github.com/example/pack".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            commit_time: 1_767_225_600,
            dirty: false,
            subdirectory: String::new(),
        }),
        builder_version: "0.1.0".into(),
        minecraft_version: "1.21.1".into(),
        loader: Some(Loader {
            kind: LoaderKind::Fabric as i32,
            version: "0.16.9".into(),
        }),
        files: entries,
        ..Default::default()
    }
}

fn manifest_bench(label: &str, m: &Manifest) {
    let n = m.files.len();
    let encode_time = median(5, || {
        black_box(manifest::encode(m).expect("encode"));
    });
    let bytes = manifest::encode(m).expect("encode");
    let raw = prost::Message::encoded_len(m);
    let limits = ManifestLimits::default();
    let decode_time = median(21, || {
        black_box(manifest::decode(&bytes, &limits).expect("decode"));
    });
    println!(
        "manifest {label}: {n} files, protobuf {raw} B, zstd {} B = {:.1} B/entry; encode {:.1} ms; decode+validate {:.2} ms",
        bytes.len(),
        bytes.len() as f64 / n as f64,
        encode_time.as_secs_f64() * 1e3,
        decode_time.as_secs_f64() * 1e3,
    );
}

fn sha256_bench() {
    const TOTAL: usize = 512 << 20;
    let chunk = vec![0xa5u8; 64 << 10];
    let t = median(5, || {
        let mut h = HashingCounter::new();
        for _ in 0..TOTAL / chunk.len() {
            h.update(black_box(&chunk));
        }
        black_box(h.finish());
    });
    println!(
        "sha256 streaming verify (64 KiB chunks, 512 MiB): {:.0} MB/s",
        TOTAL as f64 / t.as_secs_f64() / 1e6
    );
}

fn main() {
    // `cargo test --benches` passes --bench; run quickly only under `cargo bench`.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    manifest_bench("5,000 files (300 mods with upstreams)", &synthetic(5000, 300));
    manifest_bench("5,000 repository files", &synthetic(5000, 0));
    sha256_bench();
}
