//! Validation of relative install paths that come from a manifest or a pack.
//!
//! A path is accepted only if writing it under a target directory can never
//! land outside that directory, on any platform Atlas supports. Rules (also in
//! docs/FORMAT.md, "Paths"): non-empty; at most 1024 bytes and 255 bytes per
//! segment; `/` separators only (no `\`); relative (no leading `/`, no drive
//! or `:` anywhere); no empty, `.` or `..` segments; no control characters; no
//! Windows reserved device names (`CON`, `NUL`, `COM1`, ...) and no segment
//! ending in `.` or space; and never inside the client's `.atlas/` state
//! directory.

/// Longest accepted path segment, in bytes (every filesystem Atlas supports).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Name of the state directory a client keeps inside its target directory.
pub const STATE_DIR: &str = ".atlas";

/// Why a path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsafe path `{path}`: {reason}")]
pub struct PathError {
    /// The path as given (escaped for display).
    pub path: String,
    pub reason: &'static str,
}

const RESERVED: [&str; 4] = ["con", "prn", "aux", "nul"];

fn is_reserved_windows_name(segment: &str) -> bool {
    let stem = segment.split('.').next().unwrap_or(segment).to_ascii_lowercase();
    if RESERVED.contains(&stem.as_str()) {
        return true;
    }
    let b = stem.as_bytes();
    b.len() == 4 && (stem.starts_with("com") || stem.starts_with("lpt")) && (b'1'..=b'9').contains(&b[3])
}

/// Checks that `path` is a safe relative install path.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    let fail = |reason| {
        Err(PathError {
            path: path.escape_debug().take(200).collect(),
            reason,
        })
    };
    if path.is_empty() {
        return fail("the path is empty");
    }
    if path.len() > crate::limits::Limits::DEFAULT.path_bytes {
        return fail("longer than 1024 bytes");
    }
    if path.chars().any(char::is_control) {
        return fail("contains a control character");
    }
    if path.contains('\\') {
        return fail("contains `\\`; paths use `/` separators");
    }
    if path.starts_with('/') {
        return fail("absolute paths are not allowed");
    }
    if path.contains(':') {
        return fail("contains `:` (a drive letter or stream name on Windows)");
    }
    for (i, segment) in path.split('/').enumerate() {
        match segment {
            "" => return fail("contains an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return fail("contains a `.` or `..` segment"),
            _ => {}
        }
        if segment.len() > MAX_SEGMENT_BYTES {
            return fail("has a segment longer than 255 bytes");
        }
        if segment.ends_with('.') || segment.ends_with(' ') {
            return fail("has a segment ending in `.` or a space (not portable to Windows)");
        }
        if is_reserved_windows_name(segment) {
            return fail("uses a reserved Windows device name (CON, NUL, COM1, ...)");
        }
        if i == 0 && segment.eq_ignore_ascii_case(STATE_DIR) {
            return fail("points into the client's `.atlas/` state directory");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for ok in [
            "mods/sodium-0.6.0.jar",
            "config/my mod/settings.json5",
            "server.properties",
            ".hidden/file",
            "a/b/c/d.e.f",
            "kubejs/data/ünïcode.js",
            "console/x.txt",
            "comments/com10",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_escapes_and_unportable_names() {
        for bad in [
            "",
            "../x",
            "/abs",
            "C:\\x",
            "C:/x",
            "a/../../b",
            "a\\..\\b",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "..",
            "a\0b",
            "a\nb",
            "NUL",
            "mods/con.txt",
            "COM1.jar",
            "lpt9",
            "trailing./x",
            "space /x",
            ".atlas/state.json",
            ".ATLAS/x",
            "file:stream",
        ] {
            assert!(validate_path(bad).is_err(), "accepted {bad:?}");
        }
        assert!(validate_path(&"a/".repeat(600)).is_err());
        assert!(validate_path(&"x".repeat(256)).is_err());
    }

    #[test]
    fn error_names_path_and_reason() {
        let e = validate_path("../x").expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "unsafe path `../x`: contains a `.` or `..` segment"
        );
    }
}
