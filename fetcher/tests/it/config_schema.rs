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

#[test]
fn keys_are_spelled_like_the_flags_or_with_underscores_not_both() {
    let v = validator();
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("c.toml");
    let kebab = "connect-timeout = 3\nheader-timeout = 4\nlow-speed-limit = 5\nlow-speed-time = 6\n\
                 on-modified = \"backup\"\n";
    assert!(v.is_valid(&json(kebab)), "schema refused the flags' spelling");
    std::fs::write(&p, kebab).expect("write");
    let c = FetcherConfig::load(&p).expect("the flags' spelling");
    assert_eq!(
        (
            c.connect_timeout,
            c.header_timeout,
            c.low_speed_limit,
            c.low_speed_time
        ),
        (Some(3), Some(4), Some(5), Some(6))
    );
    let snake = kebab.replace('-', "_");
    assert!(v.is_valid(&json(&snake)));
    std::fs::write(&p, &snake).expect("write");
    assert_eq!(FetcherConfig::load(&p).expect("underscores"), c);
    let both = "connect-timeout = 3\nconnect_timeout = 4\n";
    assert!(!v.is_valid(&json(both)), "schema accepted both spellings");
    std::fs::write(&p, both).expect("write");
    assert!(FetcherConfig::load(&p).is_err(), "parser accepted both spellings");
}
