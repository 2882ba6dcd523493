//! Signing keys for channel pointers: `keygen`, and loading the secret key
//! from a file or from the `ATLAS_SIGNING_KEY` environment variable (how a CI
//! secret arrives).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use atlas_proto::{KeyError, SecretKey};

/// Environment variable holding the secret key's text (`ed25519-secret:...`).
pub const SIGNING_KEY_ENV: &str = "ATLAS_SIGNING_KEY";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(
        "no signing key: set {SIGNING_KEY_ENV} to the content of the secret key file, or pass --key-file (create a key pair with `atlas-builder keygen`)"
    )]
    NoKey,
    #[error("{origin}")]
    Key {
        origin: String,
        #[source]
        source: KeyError,
    },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} holds a public key (`ed25519:...`), not a secret key: pass the secret key file \
         (`NAME.key`, `ed25519-secret:...`) made by `atlas-builder keygen`; the `.pub` file is for hosts (--key)",
        path.display()
    )]
    PublicKeyGiven { path: PathBuf },
    #[error(
        "{path} already exists; pass --force to overwrite it (the old key stops working for hosts that trust it)"
    )]
    Exists { path: PathBuf },
}

impl crate::exit::HasExitClass for SigningError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Key
    }
}

/// Loads the secret key from `file` if given, else from `ATLAS_SIGNING_KEY`.
pub fn load_secret_key(file: Option<&Path>) -> Result<SecretKey, SigningError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| SigningError::Io {
            path: path.to_owned(),
            source,
        })?;
        if atlas_proto::PublicKey::parse(&text).is_ok() {
            return Err(SigningError::PublicKeyGiven {
                path: path.to_owned(),
            });
        }
        warn_if_readable_by_others(path);
        return SecretKey::parse(&text).map_err(|source| SigningError::Key {
            origin: path.display().to_string(),
            source,
        });
    }
    match std::env::var(SIGNING_KEY_ENV) {
        Ok(text) if atlas_proto::PublicKey::parse(&text).is_ok() => Err(SigningError::PublicKeyGiven {
            path: PathBuf::from(SIGNING_KEY_ENV),
        }),
        Ok(text) if !text.trim().is_empty() => SecretKey::parse(&text).map_err(|source| SigningError::Key {
            origin: SIGNING_KEY_ENV.to_owned(),
            source,
        }),
        _ => Err(SigningError::NoKey),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{} is readable by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Parses a public key given on the command line: inline `ed25519:...` text
/// or the path of a `.pub` file.
pub fn parse_public_key_arg(arg: &str) -> Result<atlas_proto::PublicKey, SigningError> {
    let text = if arg.trim_start().starts_with("ed25519:") {
        arg.to_owned()
    } else {
        std::fs::read_to_string(arg).map_err(|source| SigningError::Io {
            path: PathBuf::from(arg),
            source,
        })?
    };
    atlas_proto::PublicKey::parse(&text).map_err(|source| SigningError::Key {
        origin: arg.to_owned(),
        source,
    })
}

/// Paths written by [`keygen`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeygenOutput {
    pub secret_key_file: PathBuf,
    pub public_key_file: PathBuf,
    pub key_id: String,
    pub public_key: String,
}

/// Generates a key pair: `<dir>/<name>.key` (mode 0600) and `<dir>/<name>.pub`.
pub fn keygen(dir: &Path, name: &str, force: bool) -> Result<KeygenOutput, SigningError> {
    let key = SecretKey::generate().map_err(|source| SigningError::Key {
        origin: "key generation".into(),
        source,
    })?;
    std::fs::create_dir_all(dir).map_err(|source| SigningError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let secret_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    let public = key.public();
    let secret_text = format!(
        "# Atlas channel signing key (SECRET). Key id {}\n# Store it as the CI secret {SIGNING_KEY_ENV}; never commit it.\n{}\n",
        public.key_id(),
        key.to_text()
    );
    let public_text = format!(
        "# Atlas channel signing public key. Key id {}\n{}\n",
        public.key_id(),
        public.to_text()
    );
    write_new(&secret_path, secret_text.as_bytes(), 0o600, force)?;
    write_new(&public_path, public_text.as_bytes(), 0o644, force)?;
    Ok(KeygenOutput {
        secret_key_file: secret_path,
        public_key_file: public_path,
        key_id: public.key_id(),
        public_key: public.to_text(),
    })
}

pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<(), SigningError> {
    let io = |source| SigningError::Io {
        path: path.to_owned(),
        source,
    };
    if path.exists() && !force {
        return Err(SigningError::Exists {
            path: path.to_owned(),
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-key-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode; // Windows: the file inherits the directory's ACL.
    let mut tmp = builder.tempfile_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_private_and_public_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = keygen(dir.path(), "k", false).expect("keygen");
        let sk = load_secret_key(Some(&out.secret_key_file)).expect("load");
        assert_eq!(sk.public().key_id(), out.key_id);
        let pubtext = std::fs::read_to_string(&out.public_key_file).expect("read");
        assert_eq!(
            atlas_proto::PublicKey::parse(&pubtext).expect("parse"),
            sk.public()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out.secret_key_file)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            keygen(dir.path(), "k", false),
            Err(SigningError::Exists { .. })
        ));
        assert!(keygen(dir.path(), "k", true).is_ok());
    }
}
