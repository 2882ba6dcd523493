//! Running the real `atlas-builder` binary in tests, with an environment
//! that does not depend on the developer's or CI's own settings.

#![allow(dead_code)] // each test file uses a different subset

pub mod consistency;

use std::process::{Command, Output};

use atlas_builder::store::S3Settings;
use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

/// `atlas-builder` with Atlas's environment variables cleared and quiet logs.
pub fn builder() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas-builder"));
    c.env_remove("ATLAS_SIGNING_KEY")
        .env_remove("ATLAS_STORE")
        .env_remove("ATLAS_PUBLIC_URL")
        // Hermetic under GitHub Actions too: no outputs, summary or annotations.
        .env_remove("GITHUB_ACTIONS")
        .env("RUST_LOG", "warn");
    c
}

pub fn run(c: &mut Command) -> Output {
    c.output().expect("run atlas-builder")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Settings that reach the in-process S3 test server (path-style, its keys).
pub fn s3_settings(server: &S3Server) -> S3Settings {
    S3Settings {
        endpoint: Some(server.endpoint()),
        region: Some(REGION.to_owned()),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        session_token: None,
        force_path_style: true,
    }
}
