//! `atlas.toml`: Atlas's own settings, optional, beside either pack layout
//! (native or packwiz): publish channel defaults, the mirror policy and what
//! a server launches with. Never part of the pack's files (see
//! [`crate::build::native::CONFIG_FILES`]). JSON Schema: `schemas/atlas.schema.json`.

use std::time::Duration;

use serde::Deserialize;

use crate::pack::{PackError, syntax_error};
use crate::repo::PackSource;

/// File name of the settings, at the pack directory's root.
pub const ATLAS_FILE: &str = "atlas.toml";

/// Pointer lifetime when neither `--expires-in` nor `[channels] expires-in` says otherwise.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Channel a publish points when neither `--channel` nor `[channels] default` says otherwise.
pub const DEFAULT_CHANNEL: &str = "dev";

/// The whole `atlas.toml`; every table is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AtlasSettings {
    #[serde(default)]
    pub channels: ChannelSettings,
    #[serde(default)]
    pub mirror: MirrorPolicy,
    #[serde(default)]
    pub server: ServerSettings,
}

/// `[channels]`: defaults for `publish`; its flags override them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChannelSettings {
    /// Channel `publish` points at the build (`--channel` overrides).
    #[serde(default)]
    pub default: Option<String>,
    /// Lifetime of signed pointers, e.g. `"30d"` (`--expires-in` overrides).
    #[serde(default)]
    pub expires_in: Option<String>,
}

impl ChannelSettings {
    /// `expires-in` parsed; `None` when absent.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
    }
}

/// Where hosts get a mod from.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MirrorMode {
    /// Copied into the store: hosts need only the CDN.
    #[default]
    Mirror,
    /// Left upstream: the manifest keeps the upstream URL and hash.
    Upstream,
}

/// `[mirror]`: the default, and overrides per source. An entry's own
/// `mirror = false` and CurseForge's distribution-disabled files stay
/// upstream-only whatever this says; repository files are always mirrored.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MirrorPolicy {
    #[serde(default)]
    pub default: MirrorMode,
    /// Mods from Modrinth (native `modrinth = {...}`, packwiz `[update.modrinth]`).
    #[serde(default)]
    pub modrinth: Option<MirrorMode>,
    /// Mods from CurseForge (native `curseforge = {...}`, packwiz `[update.curseforge]`).
    #[serde(default)]
    pub curseforge: Option<MirrorMode>,
    /// Plain URL mods.
    #[serde(default)]
    pub url: Option<MirrorMode>,
}

/// `[server]`: what a dedicated server launches with. Validated here,
/// recorded in the manifest ([`ServerSettings::launch`]); the runner applies
/// it under the host's own settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerSettings {
    /// Java major version the server needs, e.g. 21.
    #[serde(default)]
    pub java: Option<u32>,
    #[serde(default)]
    pub memory: MemorySettings,
    /// Extra JVM arguments, before `-jar`.
    #[serde(default)]
    pub jvm_args: Vec<String>,
    /// Jar to launch instead of the loader's, relative to the server directory.
    #[serde(default)]
    pub main_jar: Option<String>,
}

impl ServerSettings {
    /// What the manifest records (`Manifest.server`); `None` when the pack
    /// sets nothing.
    pub fn launch(&self) -> Option<atlas_proto::v1::ServerLaunch> {
        let launch = atlas_proto::v1::ServerLaunch {
            java_major: self.java.unwrap_or(0),
            memory_min: self.memory.min.clone().unwrap_or_default(),
            memory_max: self.memory.max.clone().unwrap_or_default(),
            jvm_args: self.jvm_args.clone(),
            main_jar: self.main_jar.clone().unwrap_or_default(),
        };
        (launch != atlas_proto::v1::ServerLaunch::default()).then_some(launch)
    }
}

/// `[server.memory]`: heap sizes as the JVM writes them (`512M`, `4G`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    #[serde(default)]
    pub min: Option<String>,
    #[serde(default)]
    pub max: Option<String>,
}

/// Bytes of a JVM heap size (`512M`, `4G`, `1048576K`).
pub fn memory_bytes(text: &str) -> Option<u64> {
    let split = text.len().checked_sub(1)?;
    let (digits, unit) = (text.get(..split)?, text.get(split..)?);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return None,
    };
    (n > 0).then(|| n.saturating_mul(scale))
}

impl AtlasSettings {
    /// Parses and validates `atlas.toml` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, PackError> {
        let settings: Self = toml::from_str(text).map_err(|e| syntax_error(text, file, &e))?;
        settings.validate(file)?;
        Ok(settings)
    }

    /// The pack's `atlas.toml`, or the defaults when it has none.
    pub fn from_source(source: &PackSource) -> Result<Self, PackError> {
        if !source.files.contains_key(ATLAS_FILE) {
            return Ok(Self::default());
        }
        let file = match source.commit.subdirectory.as_str() {
            "" => ATLAS_FILE.to_owned(),
            sub => format!("{sub}/{ATLAS_FILE}"),
        };
        let invalid = |message: String| PackError::Invalid {
            file: file.clone(),
            field: "(file)".into(),
            message,
        };
        let bytes = source.read(ATLAS_FILE).map_err(|e| invalid(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| invalid("is not UTF-8 text".into()))?;
        Self::parse(text.trim_start_matches('\u{feff}'), &file)
    }

    fn validate(&self, file: &str) -> Result<(), PackError> {
        let invalid = |field: &str, message: String| PackError::Invalid {
            file: file.to_owned(),
            field: field.to_owned(),
            message,
        };
        if let Some(c) = &self.channels.default {
            atlas_proto::layout::validate_channel(c)
                .map_err(|e| invalid("channels.default", e.to_string()))?;
        }
        if let Some(t) = &self.channels.expires_in {
            let d = humantime::parse_duration(t).map_err(|e| {
                invalid(
                    "channels.expires-in",
                    format!("`{t}`: {e}; write e.g. \"30d\" or \"12h\""),
                )
            })?;
            if d.is_zero() {
                return Err(invalid("channels.expires-in", "must be longer than zero".into()));
            }
        }
        let s = &self.server;
        if let Some(j) = s.java
            && !(8..=99).contains(&j)
        {
            return Err(invalid(
                "server.java",
                format!("{j}: give the Java major version, e.g. 21"),
            ));
        }
        let mut sizes = [None, None];
        for (slot, (field, value)) in sizes.iter_mut().zip([
            ("server.memory.min", &s.memory.min),
            ("server.memory.max", &s.memory.max),
        ]) {
            if let Some(v) = value {
                *slot =
                    Some(memory_bytes(v).ok_or_else(|| {
                        invalid(field, format!("`{v}`: write a size like \"512M\" or \"4G\""))
                    })?);
            }
        }
        if let [Some(min), Some(max)] = sizes
            && min > max
        {
            return Err(invalid("server.memory", "`min` is larger than `max`".into()));
        }
        if let Some(arg) = s.jvm_args.iter().find(|a| a.trim().is_empty()) {
            return Err(invalid("server.jvm-args", format!("`{arg}`: empty argument")));
        }
        if let Some(jar) = &s.main_jar
            && (jar.is_empty()
                || jar.starts_with('/')
                || jar.contains('\\')
                || jar.split('/').any(|c| c.is_empty() || c == "." || c == ".."))
        {
            return Err(invalid(
                "server.main-jar",
                format!("`{jar}`: give a path relative to the server directory, e.g. \"server.jar\""),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"#:schema ../schemas/atlas.schema.json
[channels]
default = "beta"
expires-in = "14d"

[mirror]
default = "mirror"
curseforge = "upstream"

[server]
java = 21
jvm-args = ["-XX:+UseG1GC"]
main-jar = "server.jar"

[server.memory]
min = "2G"
max = "6G"
"#;

    #[test]
    fn parses_every_table() {
        let s = AtlasSettings::parse(FULL, "atlas.toml").expect("valid");
        assert_eq!(s.channels.default.as_deref(), Some("beta"));
        assert_eq!(s.channels.expires_in(), Some(Duration::from_secs(14 * 86400)));
        assert_eq!(s.mirror.curseforge, Some(MirrorMode::Upstream));
        assert_eq!(s.server.java, Some(21));
        assert_eq!(s.server.memory.max.as_deref(), Some("6G"));
        assert_eq!(s.server.main_jar.as_deref(), Some("server.jar"));
        assert_eq!(
            AtlasSettings::parse("", "atlas.toml").expect("empty"),
            AtlasSettings::default()
        );
    }

    #[test]
    fn unknown_fields_name_the_nearest_valid_name() {
        for (text, want) in [
            (
                "[mirorr]\ndefault = \"mirror\"\n",
                "atlas.toml:1:2: unknown field `mirorr`; did you mean `mirror`?",
            ),
            (
                "[mirror]\ncurseforg = \"upstream\"\n",
                "atlas.toml:2:1: unknown field `curseforg`; did you mean `curseforge`?",
            ),
            (
                "[channels]\nexpires_in = \"1d\"\n",
                "atlas.toml:2:1: unknown field `expires_in`; did you mean `expires-in`?",
            ),
            (
                "[server.memory]\nmxa = \"1G\"\n",
                "atlas.toml:2:1: unknown field `mxa`; did you mean `max`?",
            ),
        ] {
            let msg = AtlasSettings::parse(text, "atlas.toml")
                .expect_err("invalid")
                .to_string();
            assert_eq!(msg, want);
        }
    }

    #[test]
    fn refuses_bad_values() {
        for (text, field) in [
            ("[channels]\ndefault = \"Not A Channel\"\n", "channels.default"),
            ("[channels]\nexpires-in = \"soon\"\n", "channels.expires-in"),
            ("[channels]\nexpires-in = \"0s\"\n", "channels.expires-in"),
            ("[server]\njava = 3\n", "server.java"),
            ("[server.memory]\nmin = \"lots\"\n", "server.memory.min"),
            ("[server.memory]\nmin = \"8G\"\nmax = \"2G\"\n", "server.memory"),
            ("[server]\nmain-jar = \"../x.jar\"\n", "server.main-jar"),
            ("[server]\njvm-args = [\"\"]\n", "server.jvm-args"),
        ] {
            let msg = AtlasSettings::parse(text, "atlas.toml")
                .expect_err("invalid")
                .to_string();
            assert!(msg.contains(&format!("`{field}`")), "{text}: {msg}");
        }
        let msg = AtlasSettings::parse("[mirror]\ndefault = \"cdn\"\n", "atlas.toml")
            .expect_err("invalid")
            .to_string();
        assert!(msg.starts_with("atlas.toml:2:"), "{msg}");
    }
}
