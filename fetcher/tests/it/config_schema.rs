//! `schemas/fetcher.schema.json` agrees with the config parser: the example
//! file passes both, and mistakes the parser refuses the schema refuses too.

use std::path::PathBuf;

use atlas_fetcher::config::FetcherConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/fetcher.schema.json")).expect("read schema");
    let value: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&value).expect("schema compiles")
}

fn json(text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(text).expect("toml");
    serde_json::to_value(v).expect("json")
}

#[test]
fn example_config_passes_schema_and_parser() {
    let path = root().join("fetcher/fetcher.example.toml");
    let cfg = FetcherConfig::load(&path).expect("parser accepts the example");
    assert_eq!(cfg.channel.as_deref(), Some("production"));
    let text = std::fs::read_to_string(&path).expect("read");
    let errors: Vec<String> = validator()
        .iter_errors(&json(&text))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn schema_and_parser_refuse_the_same_mistakes() {
    let v = validator();
    let tmp = tempfile::tempdir().expect("tmp");
    for case in [
        "chanel = \"dev\"\n",
        "side = \"both\"\n",
        "on_modified = \"overwrite\"\n",
        "parallelism = 0\n",
        "parallelism = 65\n",
        "timeout = 0\n",
        "connect_timeout = 0\n",
        "header_timeout = 0\n",
        "low_speed_time = 0\n",
        "low_speed_limit = -1\n",
        "keys = \"ed25519:AAAA\"\n",
        "retries = -1\n",
        "root = \"keys/1.json\"\nkeys = [\"ed25519:AAAA\"]\n",
    ] {
        assert!(!v.is_valid(&json(case)), "schema accepted: {case}");
        let p = tmp.path().join("c.toml");
        std::fs::write(&p, case).expect("write");
        assert!(FetcherConfig::load(&p).is_err(), "parser accepted: {case}");
    }
}
