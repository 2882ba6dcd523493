//! Generates Rust types from `proto/**/*.proto` with protox (pure Rust, no system `protoc`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/atlas/v1/manifest.proto", "proto/atlas/runner/v1/ipc.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    prost_build::Config::new().out_dir(&out).compile_fds(fds)?;
    Ok(())
}
