//! Bytes verified at the moment of use. A blob found on disk rather than
//! downloaded in this run (prefetched into `.atlas/prefetch/`, in the shared
//! cache, a partial download resumed) may have been planted or changed by
//! whoever can write there: the server's user owns the directory the fetcher
//! (often root) works in. Such a blob is used only when
//!
//! 1. its bytes were hashed through an open descriptor of the very file
//!    that ends up in staging (not re-opened by name afterwards), and
//! 2. nobody else can change those bytes afterwards: the file is this
//!    process's own and writable by no one else ([`is_private`]), or it is a
//!    copy this process just wrote from that descriptor.
//!
//! [`take`] does both for a file that is moved, hard-linked or kept in
//! place into staging. A resumed partial download follows the same rule
//! with these pieces: open the partial file with
//! [`SafeDir::open_read`]/`open_with`, keep it only if [`is_private`] (else
//! start from zero), hash its prefix through that descriptor
//! ([`hash_reader`]), and append to the same file; the final digest then
//! covers exactly the bytes the staged file holds.

use std::io::{Read, Write as _};

use atlas_proto::Sha256Digest;

use crate::error::SyncError;
use crate::safe_dir::SafeDir;

/// Whether nobody but this process's user (and root) can change the bytes
/// of the file `meta` describes: a regular file owned by the effective user,
/// not writable by its group or others. Elsewhere than unix: never (copies
/// are made instead).
pub fn is_private(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        meta.is_file() && meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// Whether two descriptions are of the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &cap_std::fs::Metadata) -> bool {
    use cap_std::fs::MetadataExt as _;
    use std::os::unix::fs::MetadataExt as _;
    b.is_file() && a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &cap_std::fs::Metadata) -> bool {
    false
}

/// How [`take`] gets a file into staging when it may use the file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Rename it (a prefetched blob: same filesystem, used once).
    Move,
    /// Hard-link it (a cache entry, which stays in the cache).
    Link,
    /// It already is where it belongs (`from` and `to` are the same name).
    InPlace,
}

/// What [`take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Verified and in staging.
    Verified,
    /// Nothing usable there (absent, a link, not a regular file).
    Missing,
    /// A regular file of the wrong size or hash; it was removed from `from`.
    Mismatch,
}

/// Puts the blob `name` of `from` into staging as `to/to_name` if, and only
/// if, it is `size` bytes hashing to `blob`, checked as the module docs say:
/// when the file is private it is moved or linked (`how`), the name in `to`
/// is checked to be the very file that was opened (device and inode), and
/// the bytes are hashed through the descriptor opened before; otherwise its
/// bytes are copied from that descriptor into a new file of this process
/// in `to`, hashed as they are copied. `to` must be a directory only this
/// process writes (staging). A mismatching file is removed from `from` and
/// nothing is left in `to`.
pub fn take(
    from: &SafeDir,
    name: &str,
    to: &SafeDir,
    to_name: &str,
    blob: &Sha256Digest,
    size: u64,
    how: Take,
) -> Result<Taken, SyncError> {
    let src = match from.open_read(name) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(Taken::Missing),
        Err(e @ (SyncError::Link { .. } | SyncError::NotARegularFile { .. })) => {
            tracing::warn!("not using {}: {e}", from.join(name).display());
            return Ok(Taken::Missing);
        }
        Err(e) => return Err(e),
    };
    let io = |what: &'static str, p: std::path::PathBuf| {
        move |e| SyncError::from(atlas_proto::IoError::at(what, p)(e))
    };
    let meta = src.metadata().map_err(io("reading", from.join(name)))?;
    let mismatch = || {
        tracing::warn!(
            "{} is not the blob {blob} it is named after; not using it",
            from.join(name).display()
        );
        from.remove_file(name).map(|_| Taken::Mismatch)
    };
    if meta.len() != size {
        return mismatch();
    }
    if is_private(&meta) {
        let placed = match how {
            Take::Move => from.rename(name, to, to_name).is_ok(),
            Take::Link => from.hard_link(name, to, to_name).is_ok(),
            Take::InPlace => true,
        };
        if placed {
            if to.entry(to_name)?.is_some_and(|m| same_file(&meta, &m)) {
                let (d, n) = crate::durable::hash_open(&src).map_err(io("reading", from.join(name)))?;
                if d == *blob && n == size {
                    return Ok(Taken::Verified);
                }
                to.remove_file(to_name)?;
                if how == Take::Move {
                    return Ok(Taken::Mismatch);
                }
                return mismatch();
            }
            // Swapped between the open and the move: drop whatever landed
            // in staging and copy from the file that was opened.
            if how != Take::InPlace {
                to.remove_file(to_name)?;
            }
        }
    }
    let (tmp, mut out) = to.create_temp()?;
    let copied = copy_hashing(&src, &mut out).map_err(io("copying into", to.join(&tmp)));
    let ok = match copied {
        Ok((d, n)) => d == *blob && n == size,
        Err(e) => {
            let _ = to.remove_file(&tmp);
            return Err(e);
        }
    };
    if !ok {
        to.remove_file(&tmp)?;
        return mismatch();
    }
    out.sync_all().map_err(io("syncing", to.join(&tmp)))?;
    to.rename(&tmp, to, to_name)?;
    if how == Take::Move {
        from.remove_file(name)?;
    }
    Ok(Taken::Verified)
}

/// Copies `from` into `to`, hashing the bytes as they pass.
fn copy_hashing(mut from: &std::fs::File, to: &mut std::fs::File) -> std::io::Result<(Sha256Digest, u64)> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                to.write_all(&buf[..k])?;
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let d = Sha256Digest::from_slice(&h.finalize()).map_err(std::io::Error::other)?;
    Ok((d, n))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    fn dirs() -> (tempfile::TempDir, SafeDir, SafeDir) {
        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(root.path().join("from")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("to")).expect("mkdir");
        let from = SafeDir::open_ambient(&root.path().join("from")).expect("open");
        let to = SafeDir::open_ambient(&root.path().join("to")).expect("open");
        (root, from, to)
    }

    #[test]
    fn private_files_are_moved_or_linked_and_hashed_through_the_descriptor() {
        let (root, from, to) = dirs();
        let blob = Sha256Digest::of(b"good bytes");
        std::fs::write(root.path().join("from/a"), b"good bytes").expect("write");
        let ino = std::fs::metadata(root.path().join("from/a")).expect("meta").ino();
        assert_eq!(
            take(&from, "a", &to, "b", &blob, 10, Take::Link).expect("take"),
            Taken::Verified
        );
        assert_eq!(
            std::fs::metadata(root.path().join("to/b")).expect("meta").ino(),
            ino
        );
        assert_eq!(
            take(&from, "a", &to, "c", &blob, 10, Take::Move).expect("take"),
            Taken::Verified
        );
        assert!(!root.path().join("from/a").exists(), "moved");
        assert_eq!(
            std::fs::metadata(root.path().join("to/c")).expect("meta").ino(),
            ino
        );
        assert_eq!(
            take(&to, "c", &to, "c", &blob, 10, Take::InPlace).expect("take"),
            Taken::Verified
        );
    }

    #[test]
    fn files_others_can_write_are_copied_and_bad_ones_removed() {
        let (root, from, to) = dirs();
        let blob = Sha256Digest::of(b"good bytes");
        let a = root.path().join("from/a");
        std::fs::write(&a, b"good bytes").expect("write");
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert_eq!(
            take(&from, "a", &to, "b", &blob, 10, Take::Link).expect("take"),
            Taken::Verified
        );
        let (ma, mb) = (
            std::fs::metadata(&a).expect("meta"),
            std::fs::metadata(root.path().join("to/b")).expect("meta"),
        );
        assert_ne!(ma.ino(), mb.ino(), "a copy of our own");
        assert_eq!(
            std::fs::read(root.path().join("to/b")).expect("read"),
            b"good bytes"
        );

        for (content, mode) in [
            (&b"evil bytes"[..], 0o644),
            (b"evil bytes", 0o666),
            (b"short", 0o644),
        ] {
            for how in [Take::Move, Take::Link] {
                std::fs::write(&a, content).expect("write");
                std::fs::set_permissions(&a, std::fs::Permissions::from_mode(mode)).expect("chmod");
                assert_eq!(
                    take(&from, "a", &to, "x", &blob, 10, how).expect("take"),
                    Taken::Mismatch,
                    "{content:?} {mode:o} {how:?}"
                );
                assert!(!a.exists(), "the bad file is removed");
                assert!(to.entry("x").expect("entry").is_none(), "nothing staged");
            }
        }
        assert_eq!(to.entries().expect("ls").len(), 1, "no temporary file left");
        std::os::unix::fs::symlink(root.path().join("to/b"), &a).expect("symlink");
        assert_eq!(
            take(&from, "a", &to, "y", &blob, 10, Take::Move).expect("take"),
            Taken::Missing,
            "a link is never used"
        );
    }
}
