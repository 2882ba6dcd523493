//! Directory snapshots for tests that must prove a directory was left exactly
//! as it was: every entry's kind, bytes, modification time and mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Everything under a directory: kind, bytes, mtime and mode of every entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dir: bool,
    pub bytes: Vec<u8>,
    pub mtime: SystemTime,
    pub mode: u32,
}

pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    if let Ok(meta) = std::fs::symlink_metadata(root) {
        out.insert(PathBuf::from("."), entry(root, &meta));
        walk(root, root, &mut out);
    }
    out
}

fn entry(p: &Path, meta: &std::fs::Metadata) -> Entry {
    #[cfg(unix)]
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
    #[cfg(not(unix))]
    let mode = 0;
    Entry {
        dir: meta.is_dir(),
        bytes: if meta.is_file() {
            std::fs::read(p).expect("read")
        } else {
            vec![]
        },
        mtime: meta.modified().expect("mtime"),
        mode,
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).expect("meta");
        out.insert(p.strip_prefix(root).expect("prefix").to_owned(), entry(&p, &meta));
        if meta.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// Sets the modification time of every file under `root` to `by` ago (the
/// S3 test server reports a file's mtime as its `LastModified`): objects
/// that look old to gc's grace period.
pub fn age(root: &Path, by: std::time::Duration) {
    let when = SystemTime::now() - by;
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                std::fs::File::options()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_modified(when))
                    .expect("set mtime");
            }
        }
    }
}
