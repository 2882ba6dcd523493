//! The Minecraft EULA (<https://aka.ms/MinecraftEULA>). A vanilla, Fabric,
//! Forge or NeoForge server does not run until `eula.txt` says
//! `eula=true`; it prints why and exits. The runner never accepts it on its
//! own: the host sets `[server] eula = true` in the runner config, and the
//! runner then writes `eula.txt` before each start. Without it, a server
//! that needs the EULA is not started (or, when it says so itself, is not
//! restarted), and the state says why.

use std::path::Path;

/// The EULA's address, as vanilla writes it into `eula.txt`.
pub const EULA_URL: &str = "https://aka.ms/MinecraftEULA";

/// The file, in the server directory.
pub const EULA_FILE: &str = "eula.txt";

/// What the operator reads when the EULA is not accepted.
pub fn not_accepted_message() -> String {
    format!(
        "the Minecraft EULA is not accepted for this server: read {EULA_URL}, then set `eula = true` in \
         [server] of the runner config (the runner writes eula.txt), and `atlas-runner start`"
    )
}

/// Whether `eula.txt` in `dir` says `eula=true` (read as Java properties,
/// like the server does).
pub fn accepted(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(EULA_FILE)) else {
        return false;
    };
    crate::properties::parse(&text)
        .get("eula")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Writes `eula.txt` accepting the EULA (the host said so in its config).
/// Does nothing when it already says so.
pub fn accept(dir: &Path) -> Result<bool, atlas_fetcher::SyncError> {
    if accepted(dir) {
        return Ok(false);
    }
    let text = format!(
        "#By changing the setting below to TRUE you are indicating your agreement to our EULA ({EULA_URL}).\n\
         #Accepted by atlas-runnerd: `eula = true` in the runner config's [server].\n\
         eula=true\n"
    );
    // A temporary file of a fresh random name (created exclusively, so never
    // through a link the server's user planted), fsynced, renamed over
    // `eula.txt` (a link there is replaced), the directory fsynced.
    atlas_fetcher::durable::write_atomic(&dir.join(EULA_FILE), text.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepting_writes_what_vanilla_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(!accepted(dir.path()));
        std::fs::write(dir.path().join(EULA_FILE), "#x\neula=false\n").expect("write");
        assert!(!accepted(dir.path()));
        assert!(accept(dir.path()).expect("accept"));
        assert!(accepted(dir.path()));
        let text = std::fs::read_to_string(dir.path().join(EULA_FILE)).expect("read");
        assert!(text.contains(EULA_URL) && text.ends_with("eula=true\n"), "{text}");
        assert!(!accept(dir.path()).expect("again"), "already accepted");
        assert!(not_accepted_message().contains("eula = true"));
    }

    #[test]
    fn links_planted_by_the_servers_user_are_never_written_through() {
        let root = tempfile::tempdir().expect("tmp");
        let (dir, outside) = (root.path().join("server"), root.path().join("precious.txt"));
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(&outside, b"keep me").expect("write");
        std::os::unix::fs::symlink(&outside, dir.join(".eula.txt.atlas-tmp")).expect("link");
        std::os::unix::fs::symlink(&outside, dir.join(EULA_FILE)).expect("link");
        assert!(accept(&dir).expect("accept"));
        assert_eq!(std::fs::read(&outside).expect("read"), b"keep me");
        let m = std::fs::symlink_metadata(dir.join(EULA_FILE)).expect("stat");
        assert!(m.is_file(), "eula.txt is a file of its own now");
        assert!(accepted(&dir));
    }
}
