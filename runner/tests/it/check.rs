//! `atlas-runnerd --check` (issue 19 item 11): what would fail later fails
//! here, naming the config key: a secret key among `[source] keys` (never
//! echoed), a `server_dir` that does not exist.

use std::path::Path;
use std::process::Output;

fn check(config: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_atlas-runnerd"))
        .arg("--check")
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .expect("run atlas-runnerd --check")
}

#[test]
fn check_names_the_config_key_of_what_would_fail() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = dir.path().join("server");
    std::fs::create_dir(&server).expect("mkdir");
    let secret = atlas_proto::SecretKey::generate().expect("key");
    let key_file = dir.path().join("pack.key");
    std::fs::write(&key_file, format!("{}\n", secret.to_text())).expect("key file");
    let config = dir.path().join("runner.toml");
    let source = |keys: &str| {
        format!("[source]\nurl = \"https://cdn.example.com/\"\npack = \"demo\"\nkeys = [{keys}]\n")
    };

    std::fs::write(
        &config,
        format!(
            "server_dir = \"{}\"\n{}",
            server.display(),
            source(&format!("\"{}\"", key_file.display()))
        ),
    )
    .expect("config");
    let o = check(&config);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`source.keys[0]`") && err.contains("secret"),
        "{err}"
    );
    assert!(!err.contains("--key"), "names the fetcher's flag: {err}");
    assert!(!err.contains(&secret.to_text()[20..]), "echoes the secret: {err}");

    std::fs::write(
        &config,
        format!(
            "server_dir = \"{}\"\n{}",
            dir.path().join("typo").display(),
            source(&format!("\"{}\"", secret.public().to_text()))
        ),
    )
    .expect("config");
    let o = check(&config);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`server_dir`") && err.contains("typo"), "{err}");

    std::fs::write(
        &config,
        format!(
            "server_dir = \"{}\"\n{}",
            server.display(),
            source(&format!("\"{}\"", secret.public().to_text()))
        ),
    )
    .expect("config");
    let o = check(&config);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unresponsive_pings = 4"));
}
