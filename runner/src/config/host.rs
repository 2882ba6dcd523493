//! What `atlas-runnerd --check` (and the daemon before it starts anything)
//! checks against the host, beyond the file's own syntax: that the paths it
//! names exist, that the keys are public keys that parse (a secret key is
//! refused without echoing it), and that the ports do not collide. Every
//! error names the config key.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use atlas_proto::keys::PublicKey;

use super::{ConfigError, RunnerConfig};
use crate::properties::ServerProperties;

/// The largest key file read.
const KEY_FILE_BYTES: u64 = 64 * 1024;
/// How a secret key's text form begins (`atlas-builder key generate`).
const SECRET_PREFIX: &str = "ed25519-secret:";

impl RunnerConfig {
    /// Checks the config against the host (`path` names the file in
    /// errors): paths, keys and ports. Reads files; writes nothing.
    pub fn check_host(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field: String, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            problem,
        };
        match std::fs::metadata(&self.server_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad(
                    "server_dir".into(),
                    format!("`{}` is not a directory", self.server_dir.display()),
                ));
            }
            Err(e) => {
                return Err(bad(
                    "server_dir".into(),
                    format!(
                        "`{}` cannot be used ({e}): create it, owned by the user the server runs as, or fix the path",
                        self.server_dir.display()
                    ),
                ));
            }
        }
        if let Some(java) = &self.server.java {
            program_exists(java).map_err(|p| bad("server.java".into(), p))?;
        }
        if let Some(program) = self.server.command.as_ref().and_then(|c| c.first()) {
            program_exists(Path::new(program)).map_err(|p| bad("server.command".into(), p))?;
        }
        if let Some(src) = &self.source {
            for (i, spec) in src.keys.iter().enumerate() {
                check_key(spec).map_err(|p| bad(format!("source.keys[{i}]"), p))?;
            }
            if let Some(root) = &src.root {
                atlas_fetcher::load_root(root, &src.pack).map_err(|e| {
                    let e = e.to_string();
                    let e = e.strip_prefix("--root: ").unwrap_or(&e);
                    bad("source.root".into(), e.to_owned())
                })?;
            }
        }
        if let Some(dir) = &self.backup.dir
            && let Ok(m) = std::fs::metadata(self.server_dir.join(dir))
            && !m.is_dir()
        {
            return Err(bad(
                "backup.dir".into(),
                format!("`{}` exists and is not a directory", dir.display()),
            ));
        }
        if let Some(parent) = self.socket.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(m) = std::fs::metadata(parent)
        {
            if !m.is_dir() {
                return Err(bad(
                    "socket".into(),
                    format!("`{}` is not a directory", parent.display()),
                ));
            }
            crate::ipc::socket_dir_problem(parent, &m).map_or(Ok(()), |p| Err(bad("socket".into(), p)))?;
        }
        if let Some(url) = &self.webhook.url {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err(bad(
                        "webhook.url".into(),
                        "is not an http(s) URL: copy the webhook's URL from the channel's settings".into(),
                    ));
                }
            }
        }
        self.check_ports(path)
    }

    /// The game, RCON and metrics ports must differ; the metrics endpoint
    /// stays on loopback unless `allow_remote`.
    fn check_ports(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field: &str, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let props = match ServerProperties::load(&self.server_dir) {
            Ok(p) => Some(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(bad(
                    "server_dir",
                    format!("{}: {e}", self.server_dir.join("server.properties").display()),
                ));
            }
        };
        let game = props.as_ref().map(|p| p.game.port());
        let rcon_on = props.as_ref().is_some_and(|p| p.rcon_enabled) && self.rcon.enabled != Some(false);
        let rcon = rcon_on.then(|| {
            self.rcon
                .port
                .or(props.as_ref().map(|p| p.rcon.port()))
                .unwrap_or(25575)
        });
        if let (Some(g), Some(r)) = (game, rcon)
            && g == r
        {
            let field = if self.rcon.port.is_some() {
                "rcon.port"
            } else {
                "server_dir"
            };
            return Err(bad(
                field,
                format!(
                    "the RCON port {r} is the game port (server.properties `server-port`): give RCON another port"
                ),
            ));
        }
        if let Some(addr) = self.metrics.listen {
            if !addr.ip().is_loopback() && !self.metrics.allow_remote {
                return Err(bad(
                    "metrics.listen",
                    format!(
                        "{addr} is not a loopback address; the endpoint has no authentication, so use 127.0.0.1, \
                         or set `metrics.allow_remote = true` behind a firewall"
                    ),
                ));
            }
            for (name, port) in [("the game port", game), ("the RCON port", rcon)] {
                if port == Some(addr.port()) && addr.port() != 0 {
                    return Err(bad(
                        "metrics.listen",
                        format!("{addr} uses {name} ({}): pick another port", addr.port()),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `program` can be run: a path that exists and is executable, or
/// a bare name found on `PATH`.
fn program_exists(program: &Path) -> Result<(), String> {
    let executable =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.components().count() > 1 {
        if executable(program) {
            return Ok(());
        }
        return Err(format!(
            "`{}` is not an executable file: install it, or fix the path",
            program.display()
        ));
    }
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| executable(&d.join(program))))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not on PATH ({}): give its full path",
            program.display(),
            std::env::var("PATH").unwrap_or_default()
        ))
    }
}

/// One entry of `[source] keys`: an inline public key or a file holding one.
/// A secret key is refused, never echoed.
fn check_key(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    let secret = || {
        "is a secret (signing) key: the runner needs only the pack's public key. Give the `ed25519:...` \
         public key or the `.pub` file written beside the secret one, and keep the secret key off this host"
            .to_owned()
    };
    if spec.starts_with(SECRET_PREFIX) {
        return Err(secret());
    }
    if spec.starts_with("ed25519:") {
        return PublicKey::parse(spec)
            .map(drop)
            .map_err(|e| format!("`{spec}` is not a public key: {e}"));
    }
    let path = PathBuf::from(spec);
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(KEY_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the key file `{spec}`: {e}"))?;
    if text.trim_start().starts_with(SECRET_PREFIX) {
        return Err(format!("`{spec}` {}", secret()));
    }
    PublicKey::parse(text.trim())
        .map(drop)
        .map_err(|e| format!("the key file `{spec}` holds no public key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, extra: &str) -> RunnerConfig {
        let text = format!("server_dir = \"{}\"\n{extra}", dir.display());
        RunnerConfig::parse(Path::new("r.toml"), &text).expect("parse")
    }

    #[test]
    fn a_secret_key_is_refused_by_its_config_key_and_never_echoed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let secret = atlas_proto::keys::SecretKey::generate().expect("key");
        let secret_text = secret.to_text();
        let public = secret.public().to_text();
        let key_file = tmp.path().join("pack.key");
        std::fs::write(&key_file, format!("{secret_text}\n")).expect("key");
        for keys in [
            format!("[\"{public}\", \"{secret_text}\"]"),
            format!("[\"{public}\", \"{}\"]", key_file.display()),
        ] {
            let c = cfg(
                tmp.path(),
                &format!("[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = {keys}\n"),
            );
            let e = c.check_host(Path::new("r.toml")).expect_err("secret key");
            let msg = e.to_string();
            assert!(msg.contains("`source.keys[1]`"), "{msg}");
            assert!(msg.contains("secret"), "{msg}");
            assert!(!msg.contains(&secret_text[16..]), "the secret is echoed: {msg}");
            assert!(!msg.contains("--key"), "{msg}");
        }
        let c = cfg(
            tmp.path(),
            &format!("[source]\nurl = \"https://c/\"\npack = \"p\"\nkeys = [\"{public}\"]\n"),
        );
        c.check_host(Path::new("r.toml")).expect("a public key is fine");
    }

    #[test]
    fn paths_and_ports_are_checked_by_config_key() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = cfg(&tmp.path().join("nope"), "")
            .check_host(Path::new("r.toml"))
            .expect_err("missing dir");
        assert!(e.to_string().contains("`server_dir`"), "{e}");
        let e = cfg(tmp.path(), "[server]\njava = \"/nonexistent/bin/java\"\n")
            .check_host(Path::new("r.toml"))
            .expect_err("java");
        assert!(e.to_string().contains("`server.java`"), "{e}");
        let e = cfg(tmp.path(), "[server]\ncommand = [\"no-such-program-xyz\"]\n")
            .check_host(Path::new("r.toml"))
            .expect_err("command");
        assert!(e.to_string().contains("`server.command`"), "{e}");
        std::fs::write(
            tmp.path().join("server.properties"),
            "server-port=25565\nenable-rcon=true\nrcon.port=25565\nrcon.password=x\n",
        )
        .expect("props");
        let e = cfg(tmp.path(), "")
            .check_host(Path::new("r.toml"))
            .expect_err("ports");
        assert!(e.to_string().contains("RCON port 25565"), "{e}");
        std::fs::write(tmp.path().join("server.properties"), "server-port=25565\n").expect("props");
        let e = cfg(tmp.path(), "[metrics]\nlisten = \"127.0.0.1:25565\"\n")
            .check_host(Path::new("r.toml"))
            .expect_err("metrics");
        assert!(e.to_string().contains("`metrics.listen`"), "{e}");
        cfg(tmp.path(), "[metrics]\nlisten = \"127.0.0.1:9325\"\n")
            .check_host(Path::new("r.toml"))
            .expect("fine");
    }
}
