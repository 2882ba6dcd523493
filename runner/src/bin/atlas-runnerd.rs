//! `atlas-runnerd`: see [`atlas_runner::daemon`].

fn main() -> std::process::ExitCode {
    atlas_runner::daemon::main()
}
