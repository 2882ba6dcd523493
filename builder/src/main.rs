//! `atlas-builder` binary: see `atlas_builder::cli`.

fn main() -> std::process::ExitCode {
    atlas_builder::cli::main()
}
