//! How Prism Launcher reads an instance's `instance.cfg`, for tests of the
//! instance archives Atlas writes: the old-format rules of Prism's
//! `launcher/settings/INIFile.cpp` (`parseOldFileFormat`, `unescape`,
//! `unquote`), ported line by line, so a value Atlas writes is tested
//! against what the launcher reads back, not against our own writer.

use std::collections::BTreeMap;

/// `instance.cfg` as Prism reads a file without `ConfigVersion`.
pub fn read_instance_cfg(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for raw in text.split('\n') {
        // A `#` not preceded by a backslash starts a comment; Prism then
        // cuts the raw line at its first `#`.
        let mut line = raw.to_owned();
        let mut from = 0;
        while let Some(i) = line
            .get(from + 1..)
            .and_then(|s| s.find('#'))
            .map(|i| i + from + 1)
        {
            from = i;
            if line.as_bytes()[i - 1] == b'\\' {
                continue;
            }
            line = raw[..raw.find('#').unwrap_or(raw.len())].trim().to_owned();
        }
        let Some(eq) = line.find('=') else { continue };
        let key = line[..eq].trim().to_owned();
        let mut out = String::new();
        let mut escaped = false;
        for c in line[eq + 1..].trim().chars() {
            match (escaped, c) {
                (true, 'n') => out.push('\n'),
                (true, 't') => out.push('\t'),
                (true, c) => out.push(c),
                (false, '\\') => {
                    escaped = true;
                    continue;
                }
                (false, c) => out.push(c),
            }
            escaped = false;
        }
        if (out.contains(';') || out.contains('=') || out.contains(','))
            && out.len() >= 2
            && out.starts_with('"')
            && out.ends_with('"')
        {
            out = out[1..out.len() - 1].to_owned();
        }
        map.insert(key, out);
    }
    map
}
