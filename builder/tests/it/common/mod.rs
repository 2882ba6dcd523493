//! Running the real `atlas-builder` binary in tests, with an environment
//! that does not depend on the developer's or CI's own settings.

#![allow(dead_code)] // each test file uses a different subset

pub mod consistency;

use std::process::{Command, Output};

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
