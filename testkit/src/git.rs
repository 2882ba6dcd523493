//! Git repository fixtures: create a repository, write files, commit, all
//! through the `git` command line (what a creator would do).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// A throwaway git repository in a temporary directory.
#[derive(Debug)]
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    /// `git init` in a fresh temporary directory, with a fixed identity and
    /// branch so tests do not depend on the machine's git configuration.
    pub fn init() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let repo = Self { dir };
        repo.git(&["init", "-q", "-b", "main"])?;
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` at `rel` (creating parent directories).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> anyhow::Result<PathBuf> {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, contents).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    /// Marks `rel` executable (unix).
    pub fn make_executable(&self, rel: &str) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(self.path().join(rel), std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    /// `git add -A && git commit -m msg`; returns the new commit id.
    pub fn commit_all(&self, msg: &str) -> anyhow::Result<String> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "-m", msg])?;
        self.git(&["rev-parse", "HEAD"])
    }

    /// Runs git in the repository with a fixed identity and dates; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Atlas Test")
            .env("GIT_AUTHOR_EMAIL", "test@atlas.invalid")
            .env("GIT_COMMITTER_NAME", "Atlas Test")
            .env("GIT_COMMITTER_EMAIL", "test@atlas.invalid")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .context("running git (is it installed?)")?;
        if !out.status.success() {
            bail!("git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}
