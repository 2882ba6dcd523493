//! `atlas-standin`: see [`atlas_runner::standin`].

fn main() -> std::process::ExitCode {
    atlas_runner::standin::main()
}
