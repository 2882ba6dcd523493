//! The `atlas-fetcher` binary; all logic lives in the library.

fn main() -> std::process::ExitCode {
    let code = atlas_fetcher::cli::main();
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
