//! The invariant of docs/FORMAT.md §1a, checked on a store: a channel's
//! pointer, its packwiz tree and its `.mrpack` describe one build.

use std::io::Read as _;

use atlas_builder::export::ExportOptions;
use atlas_builder::export::packwiz::tree;
use atlas_builder::store::Store;
use atlas_proto::pointer::SignedPointer;
use atlas_proto::{Sha256Digest, layout};

/// Checks that the channel's pointer, packwiz tree and `.mrpack` describe one
/// build, and returns it.
pub async fn check_one_build(
    store: &dyn Store,
    exports: &ExportOptions,
    pack: &str,
    channel: &str,
) -> Sha256Digest {
    let pointer_key = layout::pointer_key(pack, channel);
    let obj = store
        .get(&pointer_key, 65_536)
        .await
        .expect("get")
        .expect("pointer");
    let payload = SignedPointer::parse(&obj.bytes)
        .and_then(|p| p.payload_unverified())
        .expect("payload");
    let build: Sha256Digest = payload.build.parse().expect("build id");
    let manifest_bytes = atlas_builder::builds::manifest_bytes(store, pack, &build)
        .await
        .expect("manifest");
    let manifest = atlas_proto::manifest::decode(&manifest_bytes, &atlas_proto::Limits::DEFAULT.manifest)
        .expect("decode");
    // The history entry of the live version is the pointer itself.
    let hist = store
        .get(&layout::history_key(pack, channel, payload.version), 65_536)
        .await
        .expect("get")
        .expect("history entry of the live version");
    assert_eq!(hist.bytes, obj.bytes);
    // The .mrpack: named by the pointer, the build's own, stored.
    let mrpack_key = layout::mrpack_key(pack, &build);
    assert_eq!(payload.exports.mrpack.as_deref(), Some(mrpack_key.as_str()));
    let mrpack = store
        .get(&mrpack_key, 1 << 26)
        .await
        .expect("get")
        .expect("mrpack");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(mrpack.bytes.to_vec())).expect("zip");
    let mut index = String::new();
    zip.by_name("modrinth.index.json")
        .expect("index")
        .read_to_string(&mut index)
        .expect("read");
    let index: serde_json::Value = serde_json::from_str(&index).expect("json");
    assert_eq!(index["summary"], format!("Atlas build {build}"));
    // The packwiz tree: the pointer names this build's pack file, pack.toml is that file,
    // its index hash is the SHA-256 of the index it names, and every metafile is there.
    let t = tree(&manifest, &build, exports).expect("tree");
    assert_eq!(payload.exports.packwiz, Some(t.pack_key(pack, channel)));
    let prefix = layout::packwiz_prefix(pack, channel);
    let read = |k: String| async move {
        store
            .get(&k, 1 << 22)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("`{k}` missing"))
            .bytes
    };
    let pack_toml = read(layout::packwiz_pack_key(pack, channel)).await;
    assert_eq!(
        pack_toml.as_ref(),
        t.pack.1.as_slice(),
        "pack.toml describes build {build}"
    );
    let parsed: toml::Table = toml::from_str(std::str::from_utf8(&pack_toml).expect("utf8")).expect("toml");
    let index_file = parsed["index"]["file"].as_str().expect("index file");
    let index_hash = parsed["index"]["hash"].as_str().expect("index hash");
    let index_bytes = read(format!("{prefix}{index_file}")).await;
    assert_eq!(Sha256Digest::of(&index_bytes).to_hex(), index_hash);
    let index: toml::Table = toml::from_str(std::str::from_utf8(&index_bytes).expect("utf8")).expect("toml");
    let files = index["files"].as_array().expect("files");
    assert_eq!(files.len(), manifest.files.len());
    for f in files {
        let name = f["file"].as_str().expect("file");
        let bytes = read(format!("{prefix}{name}")).await;
        assert_eq!(
            Sha256Digest::of(&bytes).to_hex(),
            f["hash"].as_str().expect("hash"),
            "{name}"
        );
    }
    build
}

/// Every blob the manifest of `build` names is in the store with its bytes.
pub async fn check_blobs(store: &dyn Store, pack: &str, build: &Sha256Digest) {
    let bytes = atlas_builder::builds::manifest_bytes(store, pack, build)
        .await
        .expect("manifest");
    let m = atlas_proto::manifest::decode(&bytes, &atlas_proto::Limits::DEFAULT.manifest).expect("decode");
    for f in m.files.iter().filter(|f| !f.upstream_only) {
        let d = Sha256Digest::from_slice(&f.sha256).expect("digest");
        let blob = store
            .get(&layout::blob_key(&d), 1 << 30)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("blob of {} ({d}) of build {build} is missing", f.path));
        assert_eq!(Sha256Digest::of(&blob.bytes), d, "{}", f.path);
    }
}
