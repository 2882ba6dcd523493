//! What the stand-in claims to be, what `standin.toml` scripts, and what it
//! takes from `server.properties`.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// The Minecraft version the stand-in claims to be.
pub const VERSION: &str = "1.21.1";
/// Its protocol number (1.21.1).
pub const PROTOCOL: i32 = 767;

/// `standin.toml`: scripted behaviour. Unknown keys are errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Extra time spent preparing the level before "Done".
    pub start_delay_ms: u64,
    /// Print an error and exit 1 before "Done".
    pub fail_start: bool,
    /// Exit 1 abruptly (no save) this long after "Done".
    pub crash_after_ms: Option<u64>,
    /// Ignore SIGTERM, and hang after `stop` (only SIGKILL ends it).
    pub hang_on_stop: bool,
    /// The exit code of a graceful stop (`stop` or SIGTERM).
    pub exit_code_on_stop: u8,
    /// Overrides `max-players` in the status (0: never "ready").
    pub players_max: Option<u32>,
    /// Damage the world while preparing the level (a bad build).
    pub corrupt_world_on_start: bool,
    /// Players the status reports online.
    pub players_online: u32,
    /// Refuse to run until `eula.txt` says `eula=true`, like vanilla.
    pub require_eula: bool,
}

impl Behaviour {
    /// Reads `<dir>/standin.toml`; a missing file is the default behaviour.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("standin.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// What the stand-in takes from `server.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// `rcon.port` and `rcon.password` when RCON is enabled with a password.
    pub rcon: Option<(u16, String)>,
    pub level_name: String,
    pub max_players: u32,
    pub motd: String,
}

impl Settings {
    pub fn from_properties(text: &str) -> Self {
        let p = atlas_runner::properties::parse(text);
        let get = |k: &str| p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let num = |k: &str, d: u16| get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let rcon = (get("enable-rcon") == Some("true"))
            .then(|| get("rcon.password").map(|pw| (num("rcon.port", 25575), pw.to_owned())))
            .flatten();
        Self {
            ip: get("server-ip").and_then(|v| v.parse().ok()),
            port: num("server-port", 25565),
            rcon,
            level_name: get("level-name").unwrap_or("world").to_owned(),
            max_players: get("max-players").and_then(|v| v.parse().ok()).unwrap_or(20),
            motd: get("motd").unwrap_or("A Minecraft Server").to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn properties_give_ports_rcon_and_level() {
        let s = Settings::from_properties(
            "server-port=25570\nenable-rcon=true\nrcon.port=25580\nrcon.password=hunter2\nlevel-name=my world\nmax-players=7\n",
        );
        assert_eq!(s.port, 25570);
        assert_eq!(s.rcon, Some((25580, "hunter2".into())));
        assert_eq!(
            (s.level_name.as_str(), s.max_players, s.ip),
            ("my world", 7, None)
        );
        // RCON needs both enable-rcon and a password, like vanilla.
        assert_eq!(Settings::from_properties("enable-rcon=true\n").rcon, None);
        assert_eq!(
            Settings::from_properties("enable-rcon=false\nrcon.password=x\n").rcon,
            None
        );
        let d = Settings::from_properties("server-ip=127.0.0.1\n");
        assert_eq!(
            (d.port, d.level_name.as_str(), d.max_players),
            (25565, "world", 20)
        );
        assert_eq!(d.ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn behaviour_file() {
        let b: Behaviour = toml::from_str(
            "start_delay_ms = 5\nfail_start = true\ncrash_after_ms = 7\nhang_on_stop = true\nexit_code_on_stop = 3\nplayers_max = 0\ncorrupt_world_on_start = true\n",
        )
        .expect("all keys");
        assert_eq!(b.crash_after_ms, Some(7));
        assert_eq!((b.exit_code_on_stop, b.players_max), (3, Some(0)));
        assert_eq!(
            toml::from_str::<Behaviour>("").expect("empty"),
            Behaviour::default()
        );
        assert!(
            toml::from_str::<Behaviour>("crash_after = 1\n").is_err(),
            "typos are errors"
        );
    }
}
