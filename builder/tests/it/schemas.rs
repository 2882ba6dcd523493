//! The JSON Schemas in `schemas/` agree with what the code accepts: the demo
//! pack validates, documents the parser refuses are refused by the schema
//! too, and a real signed pointer payload matches the payload schema.

use std::path::PathBuf;

use atlas_builder::pack::NativePack;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas").join(name)).expect("read schema");
    let value: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&value).expect("schema compiles")
}

fn toml_to_json(text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(text).expect("toml");
    serde_json::to_value(v).expect("json")
}

#[test]
fn demo_pack_matches_schema_and_parser() {
    let text = std::fs::read_to_string(root().join("examples/demo-pack/pack.toml")).expect("read");
    NativePack::parse(&text, "pack.toml").expect("parser accepts the demo pack");
    let v = schema("pack.schema.json");
    let doc = toml_to_json(&text);
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn schema_and_parser_refuse_the_same_mistakes() {
    let v = schema("pack.schema.json");
    let base = "id = \"p\"\nname = \"P\"\nversion = \"1\"\nminecraft = \"1.21.1\"\n";
    let cases = [
        format!("{base}loader = {{ kind = \"fabric\" }}\n"),
        format!("{base}loader = {{ kind = \"vanilla\", version = \"1\" }}\n"),
        format!("{base}loader = {{ kind = \"rift\", version = \"1\" }}\n"),
        format!("{base}loader = {{ kind = \"vanilla\" }}\nunknown = 1\n"),
        format!("{base}loader = {{ kind = \"vanilla\" }}\n[[files]]\ninclude = []\n"),
        format!("{base}loader = {{ kind = \"vanilla\" }}\n[[files]]\ninclude = [\"a\"]\nside = \"up\"\n"),
        "id = \"Bad Id\"\nname = \"P\"\nversion = \"1\"\nminecraft = \"1\"\nloader = { kind = \"vanilla\" }\n"
            .to_owned(),
    ];
    for case in &cases {
        assert!(
            NativePack::parse(case, "pack.toml").is_err(),
            "parser accepted:\n{case}"
        );
        assert!(!v.is_valid(&toml_to_json(case)), "schema accepted:\n{case}");
    }
    let ok = format!("{base}loader = {{ kind = \"vanilla\" }}\n");
    assert!(NativePack::parse(&ok, "pack.toml").is_ok());
    assert!(v.is_valid(&toml_to_json(&ok)));
}

#[test]
fn signed_payload_matches_pointer_schema() {
    let payload = atlas_proto::PointerPayload {
        format: 1,
        pack: "p".into(),
        channel: "dev".into(),
        version: 3,
        build: atlas_proto::Sha256Digest::of(b"m").to_hex(),
        manifest_size: 123,
        issued_at: 1,
        expires_at: 2,
        exports: atlas_proto::pointer::Exports {
            mrpack: Some(atlas_proto::layout::mrpack_key(
                "p",
                &atlas_proto::Sha256Digest::of(b"m"),
            )),
            packwiz: Some(atlas_proto::layout::packwiz_pack_key("p", "dev")),
            instance: Some(atlas_proto::layout::instance_key(
                "p",
                &atlas_proto::Sha256Digest::of(b"zip"),
                "dev",
            )),
        },
        tools: atlas_proto::tools::Tools {
            atlas_fetcher: Some(atlas_proto::tools::ToolRelease {
                version: "0.1.0".into(),
                targets: std::collections::BTreeMap::from([(
                    "aarch64-apple-darwin".to_owned(),
                    atlas_proto::tools::ToolPin {
                        sha256: atlas_proto::Sha256Digest::of(b"bin").to_hex(),
                        size: 3,
                    },
                )]),
            }),
        },
    };
    let key = atlas_proto::SecretKey::from_seed(&[3; 32]);
    let envelope = atlas_proto::pointer::sign(&payload, &[&key]);
    let parsed = atlas_proto::SignedPointer::parse(&envelope).expect("parse");
    let value = serde_json::to_value(parsed.payload_unverified().expect("payload")).expect("json");
    let v = schema("pointer-payload.schema.json");
    let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // Format 1.3 names the build's immutable pack file; anything else in the folder is refused.
    let mut v13 = value.clone();
    let pack_file = format!(
        "{}{}",
        atlas_proto::layout::packwiz_prefix("p", "dev"),
        atlas_proto::layout::packwiz_pack_file(&atlas_proto::Sha256Digest::of(b"x"))
    );
    v13["exports"]["packwiz"] = pack_file.into();
    assert!(v.is_valid(&v13), "{v13}");
    v13["exports"]["packwiz"] = "packs/p/channels/dev/packwiz/index.toml".into();
    assert!(!v.is_valid(&v13));
}

#[test]
fn atlas_settings_schema_agrees_with_the_parser() {
    use atlas_builder::settings::AtlasSettings;
    let v = schema("atlas.schema.json");
    let example = std::fs::read_to_string(root().join("examples/demo-pack/atlas.toml")).expect("read");
    let good = [
        example.as_str(),
        "",
        "[mirror]\ndefault = \"upstream\"\nmodrinth = \"mirror\"\nurl = \"mirror\"\n",
        "[channels]\nexpires-in = \"12h\"\n",
        "[server]\nmain-jar = \"libraries/net/server.jar\"\n",
    ];
    for case in good {
        AtlasSettings::parse(case, "atlas.toml").unwrap_or_else(|e| panic!("parser refused:\n{case}\n{e}"));
        let errors: Vec<String> = v
            .iter_errors(&toml_to_json(case))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "schema refused:\n{case}\n{errors:?}");
    }
    let bad = [
        "[mirorr]\ndefault = \"mirror\"\n",
        "[mirror]\ndefault = \"cdn\"\n",
        "[mirror]\ncurseforg = \"upstream\"\n",
        "[channels]\ndefault = \"Beta Channel\"\n",
        "[channels]\nexpires-in = \"soon\"\n",
        "[channels]\nexpires_in = \"1d\"\n",
        "[server]\njava = 3\n",
        "[server]\njava = \"21\"\n",
        "[server.memory]\nmin = \"lots\"\n",
        "[server.memory]\nmax = \"0G\"\n",
        "[server]\nmain-jar = \"../server.jar\"\n",
        "[server]\nmain-jar = \"/srv/server.jar\"\n",
        "[server]\njvm-args = [\" \"]\n",
        "[server]\njvm_args = [\"-Xss1M\"]\n",
    ];
    for case in bad {
        assert!(
            AtlasSettings::parse(case, "atlas.toml").is_err(),
            "parser accepted:\n{case}"
        );
        assert!(!v.is_valid(&toml_to_json(case)), "schema accepted:\n{case}");
    }
}
