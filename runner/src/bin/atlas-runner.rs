//! `atlas-runner`: the command line of atlas-runnerd (see [`atlas_runner::cli`]).
fn main() -> std::process::ExitCode {
    atlas_runner::cli::main()
}
