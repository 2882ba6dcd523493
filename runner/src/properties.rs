//! Reading `server.properties` (Java properties format) for the ports and
//! RCON settings the runner needs to talk to the server.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use atlas_proto::Limits;
use atlas_proto::fmt::human_bytes;

/// Parses Java properties text: `key=value` or `key:value` or `key value`,
/// `#`/`!` comments, backslash escapes and line continuations.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (k, v) = split_entry(&logical);
        out.insert(unescape(&k), unescape(v.trim_start()));
        logical.clear();
    }
    out
}

fn split_entry(line: &str) -> (String, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (line[..i].trim_end().to_owned(), &line[i + 1..]),
            ' ' | '\t' => {
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                return (line[..i].to_owned(), rest);
            }
            _ => {}
        }
    }
    (line.to_owned(), "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// What the runner reads from `server.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProperties {
    /// Where Server List Ping reaches the server (loopback when `server-ip` is empty).
    pub game: SocketAddr,
    pub rcon_enabled: bool,
    pub rcon: SocketAddr,
    pub rcon_password: String,
    pub level_name: String,
}

impl ServerProperties {
    /// Reads `<dir>/server.properties`; a missing file gives Minecraft's defaults.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("server.properties");
        let limit = Limits::DEFAULT.properties_bytes;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::from_map(&BTreeMap::new()));
            }
            Err(e) => return Err(e),
        };
        // Capped while reading: the server's user owns the file.
        let mut text = String::new();
        file.take(limit + 1).read_to_string(&mut text)?;
        if text.len() as u64 > limit {
            return Err(std::io::Error::other(format!(
                "{} is larger than {}; is it a server.properties?",
                path.display(),
                human_bytes(limit)
            )));
        }
        Ok(Self::from_map(&parse(&text)))
    }

    pub fn from_map(p: &BTreeMap<String, String>) -> Self {
        let ip = p
            .get("server-ip")
            .and_then(|s| s.parse::<IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = |k: &str, d: u16| p.get(k).and_then(|s| s.trim().parse().ok()).unwrap_or(d);
        Self {
            game: SocketAddr::new(ip, port("server-port", 25565)),
            rcon_enabled: p.get("enable-rcon").is_some_and(|v| v.trim() == "true"),
            rcon: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port("rcon.port", 25575)),
            rcon_password: p.get("rcon.password").cloned().unwrap_or_default(),
            level_name: p
                .get("level-name")
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| "world".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_syntax() {
        let p = parse(
            "#Minecraft server properties\n! also a comment\nserver-port=25566\nrcon.password = s3cr\\=t\nmotd:A \\u00e9 server\nlevel-name world two\nlong=a\\\n    b\nempty=\n",
        );
        assert_eq!(p["server-port"], "25566");
        assert_eq!(p["rcon.password"], "s3cr=t");
        assert_eq!(p["motd"], "A é server");
        assert_eq!(p["level-name"], "world two");
        assert_eq!(p["long"], "ab");
        assert_eq!(p["empty"], "");
    }

    #[test]
    fn defaults_and_loopback() {
        let s = ServerProperties::from_map(&parse("server-ip=\nenable-rcon=true\nrcon.port=1234\n"));
        assert_eq!(s.game, "127.0.0.1:25565".parse().expect("addr"));
        assert!(s.rcon_enabled);
        assert_eq!(s.rcon.port(), 1234);
        assert_eq!(s.level_name, "world");
        let s = ServerProperties::from_map(&parse("server-ip=0.0.0.0\nserver-port=7\n"));
        assert_eq!(s.game, "127.0.0.1:7".parse().expect("addr"));
    }

    #[test]
    fn load_reads_at_most_the_cap() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(
            ServerProperties::load(dir.path()).expect("missing").level_name,
            "world"
        );
        let path = dir.path().join("server.properties");
        let cap = usize::try_from(Limits::DEFAULT.properties_bytes).expect("cap");
        let mut text = "level-name=big\n#".to_owned();
        text.push_str(&"x".repeat(cap - text.len()));
        std::fs::write(&path, &text).expect("write");
        assert_eq!(
            ServerProperties::load(dir.path()).expect("at the cap").level_name,
            "big"
        );
        text.push('x');
        std::fs::write(&path, &text).expect("write");
        let e = ServerProperties::load(dir.path()).expect_err("over the cap");
        assert!(e.to_string().contains("server.properties is larger than"), "{e}");
    }
}
