//! `schemas/runner.schema.json` agrees with the daemon's config parser: the
//! example file passes both, and mistakes the parser refuses the schema
//! refuses too.

use std::path::{Path, PathBuf};

use atlas_runner::config::RunnerConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/runner.schema.json")).expect("read schema");
    let value: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&value).expect("schema compiles")
}

fn json(text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(text).expect("toml");
    serde_json::to_value(v).expect("json")
}

#[test]
fn the_example_config_passes_schema_and_parser() {
    let path = root().join("runner/runner.example.toml");
    let cfg = RunnerConfig::load(&path).expect("the parser accepts the example");
    assert_eq!(
        cfg.source.as_ref().map(|s| s.channel.as_str()),
        Some("production")
    );
    assert_eq!(cfg.server.crash_limit, 5);
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
    let base = "server_dir = \"/srv/mc\"\n";
    for case in [
        "server_dr = \"/srv/mc\"\n",
        "server_dir = \"/srv/mc\"\nautostrt = true\n",
        "server_dir = \"/srv/mc\"\n[server]\nmemory = \"lots\"\n",
        "server_dir = \"/srv/mc\"\n[server]\ncrash_limit = 0\n",
        "server_dir = \"/srv/mc\"\n[server]\ncommand = []\n",
        "server_dir = \"/srv/mc\"\n[server]\nstop_timeout = 60\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = []\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\nroot = \"keys-1.json\"\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\nparallelism = 0\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\nside = \"both\"\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\ntimeout = 60\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\nheader_timeout = 15\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\nlow_speed_limit = -1\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\nlow_speed_time = \"fast\"\n",
        "server_dir = \"/srv/mc\"\n[health]\npings = \"three\"\n",
        "server_dir = \"/srv/mc\"\n[backup]\nkeep = 3\n",
        "server_dir = \"/srv/mc\"\n[webhook]\nevents = [\"everything\"]\n",
        "server_dir = \"/srv/mc\"\n[metrics]\nlisten = \"not an address\"\n",
        "server_dir = \"/srv/mc\"\n[server]\non_unresponsive = \"panic\"\n",
        "server_dir = \"/srv/mc\"\n[server]\nready_pattern = \"\"\n",
        "server_dir = \"/srv/mc\"\n[server]\njava_version = 3\n",
        "server_dir = \"/srv/mc\"\n[schedule]\nwindow = \"3-5\"\n",
        "server_dir = \"/srv/mc\"\n[schedule]\nwindow = \"25:00-01:00\"\n",
        "server_dir = \"/srv/mc\"\n[announce]\nat = [5]\n",
        "server_dir = \"/srv/mc\"\n[announce]\ncommand = \"tell all\"\n",
        "server_dir = \"/srv/mc\"\n[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"k.pub\"]\non_modified = \"ignore\"\n",
    ] {
        assert!(!v.is_valid(&json(case)), "the schema accepted: {case}");
        assert!(
            RunnerConfig::parse(Path::new("r.toml"), case).is_err(),
            "the parser accepted: {case}"
        );
    }
    assert!(v.is_valid(&json(base)));
    RunnerConfig::parse(Path::new("r.toml"), base).expect("minimal config");
}
