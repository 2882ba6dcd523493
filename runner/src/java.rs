//! Finding a Java runtime of the major version a server needs, and building
//! the server's command line from the fetcher's launch description (or the
//! config's own command), with the pack's launch settings (`atlas.toml
//! [server]`, carried in the manifest) under the host's runner config: each
//! setting comes from the runner config when it sets it, else from the
//! pack, else from the launch description or the default, and the
//! [`Applied`] list says which.

use std::path::{Path, PathBuf};

use atlas_fetcher::provision::LaunchDescription;
use atlas_proto::v1::ServerLaunch;

use crate::config::{ServerSettings, parse_memory};

/// The G1 flag set most Minecraft hosts use (Aikar's flags, for heaps up to 12G).
pub const G1_FLAGS: &[&str] = &[
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxGCPauseMillis=200",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+DisableExplicitGC",
    "-XX:+AlwaysPreTouch",
    "-XX:G1NewSizePercent=30",
    "-XX:G1MaxNewSizePercent=40",
    "-XX:G1HeapRegionSize=8M",
    "-XX:G1ReservePercent=20",
    "-XX:G1HeapWastePercent=5",
    "-XX:G1MixedGCCountTarget=4",
    "-XX:InitiatingHeapOccupancyPercent=15",
    "-XX:G1MixedGCLiveThresholdPercent=90",
    "-XX:G1RSetUpdatingPauseTimeTarget=5",
    "-XX:SurvivorRatio=32",
    "-XX:+PerfDisableSharedMem",
    "-XX:MaxTenuringThreshold=1",
];

/// Why the server cannot be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "no Java {need} found (looked at {}); install a Java {need} runtime (e.g. `apt install openjdk-{need}-jre-headless`) or set `server.java` in the runner config",
        describe(.found)
    )]
    NoMatchingJava {
        need: u32,
        found: Vec<(PathBuf, Option<u32>)>,
    },
    #[error(
        "{dir} has no launch description (.atlas/launch.json): run an update with `source.provision = true`, `atlas-fetcher provision`, or set `server.command` in the runner config"
    )]
    NoLaunchDescription { dir: PathBuf },
    #[error("cannot read the launch description in {dir}: {message}")]
    LaunchDescription { dir: PathBuf, message: String },
    #[error(
        "the launch description names `{file}`, which is not a safe relative path inside the server directory"
    )]
    UnsafePath { file: String },
    #[error("`server.memory`: {0}")]
    Memory(String),
    #[error(
        "the pack's [server] settings (in the build's manifest) are unusable: {0}; set the setting in the runner config's [server] to override it"
    )]
    Pack(String),
}

/// Where a launch setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The host's runner config (`[server]`).
    RunnerConfig,
    /// The pack's `atlas.toml [server]`, from the installed build's manifest.
    Pack,
    /// The launch description `provision` wrote (`.atlas/launch.json`).
    LaunchDescription,
    /// Nothing set it.
    Default,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunnerConfig => "runner config",
            Self::Pack => "pack",
            Self::LaunchDescription => "launch description",
            Self::Default => "default",
        }
    }
}

/// One launch setting as applied: `java`, `memory` or `jvm_args`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub name: &'static str,
    pub value: String,
    pub origin: Origin,
}

/// Most JVM arguments a pack may set, and their longest.
const PACK_JVM_ARGS: usize = 64;
const PACK_JVM_ARG_BYTES: usize = 1024;

/// The pack's settings, checked (they come from a manifest).
fn check_pack(pack: &ServerLaunch) -> Result<(), LaunchError> {
    if pack.java_major != 0 && !(8..=99).contains(&pack.java_major) {
        return Err(LaunchError::Pack(format!(
            "java {} is not a Java major version",
            pack.java_major
        )));
    }
    for m in [&pack.memory_min, &pack.memory_max] {
        if !m.is_empty() {
            parse_memory(m).map_err(|e| LaunchError::Pack(format!("memory: {e}")))?;
        }
    }
    if !pack.main_jar.is_empty() {
        atlas_proto::validate_path(&pack.main_jar)
            .map_err(|e| LaunchError::Pack(format!("main-jar `{}`: {}", pack.main_jar, e.reason)))?;
    }
    if pack.jvm_args.len() > PACK_JVM_ARGS
        || pack
            .jvm_args
            .iter()
            .any(|a| a.is_empty() || a.len() > PACK_JVM_ARG_BYTES || a.contains('\0'))
    {
        return Err(LaunchError::Pack(format!(
            "jvm-args must be at most {PACK_JVM_ARGS} non-empty arguments of at most {PACK_JVM_ARG_BYTES} bytes"
        )));
    }
    Ok(())
}

fn describe(found: &[(PathBuf, Option<u32>)]) -> String {
    if found.is_empty() {
        return "config, JAVA_HOME, PATH and /usr/lib/jvm: none found".into();
    }
    found
        .iter()
        .map(|(p, v)| match v {
            Some(v) => format!("{} = Java {v}", p.display()),
            None => format!("{} = unknown version", p.display()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The major version in `java -version` output: `"17.0.15"` → 17, `"1.8.0_392"` → 8.
pub fn parse_java_version(output: &str) -> Option<u32> {
    let line = output.lines().find(|l| l.contains("version \""))?;
    let quoted = line.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        return parts.next()?.parse().ok();
    }
    Some(first)
}

/// Runs `java -version` (a few hundred ms) and reads its major version.
pub fn java_major(java: &Path) -> Option<u32> {
    let out = std::process::Command::new(java).arg("-version").output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    parse_java_version(&text)
}

/// Java executables to try, best first: the configured one, `JAVA_HOME`,
/// `PATH`, then the usual install folders.
pub fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(c) = configured {
        out.push(c.to_owned());
        return out;
    }
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        out.push(Path::new(&home).join("bin").join("java"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let j = dir.join("java");
            if j.is_file() {
                out.push(j);
            }
        }
    }
    for root in ["/usr/lib/jvm", "/opt/java", "/usr/local/java"] {
        if let Ok(rd) = std::fs::read_dir(root) {
            let mut found: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin").join("java"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            out.extend(found);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    out
}

/// The first candidate of exactly major `need`, else the lowest newer one
/// (Minecraft runs on newer Java; an older one never works).
pub fn find_java(configured: Option<&Path>, need: u32) -> Result<PathBuf, LaunchError> {
    let found: Vec<(PathBuf, Option<u32>)> = candidates(configured)
        .into_iter()
        .map(|p| {
            let v = java_major(&p);
            (p, v)
        })
        .collect();
    if let Some((p, _)) = found.iter().find(|(_, v)| *v == Some(need)) {
        return Ok(p.clone());
    }
    let newer = found
        .iter()
        .filter_map(|(p, v)| v.filter(|v| *v > need).map(|v| (v, p)))
        .min_by_key(|(v, _)| *v);
    match newer {
        Some((_, p)) => Ok(p.clone()),
        None => Err(LaunchError::NoMatchingJava { need, found }),
    }
}

/// A program and its arguments, run in the server directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The Java major version chosen, when Java runs from a launch description.
    pub java_major: Option<u32>,
    /// Which setting came from where (for `status`).
    pub applied: Vec<Applied>,
}

fn safe_rel(file: &str) -> Result<&str, LaunchError> {
    atlas_proto::validate_path(file).map_err(|_| LaunchError::UnsafePath {
        file: file.to_owned(),
    })?;
    Ok(file)
}

/// The Java major version to run: the runner config's `java_version`, the
/// pack's `java`, else the launch description's.
pub fn java_version(
    desc: &LaunchDescription,
    server: &ServerSettings,
    pack: Option<&ServerLaunch>,
) -> Result<Applied, LaunchError> {
    if let Some(p) = pack {
        check_pack(p)?;
    }
    let (major, origin) = match (
        server.java_version,
        pack.map(|p| p.java_major).filter(|v| *v != 0),
    ) {
        (Some(v), _) => (v, Origin::RunnerConfig),
        (None, Some(v)) => (v, Origin::Pack),
        (None, None) => (desc.java_major, Origin::LaunchDescription),
    };
    Ok(Applied {
        name: "java",
        value: major.to_string(),
        origin,
    })
}

/// The JVM arguments for a launch description: memory, G1 flags, extra
/// arguments, then `-jar JAR` or `@ARGS_FILE`, then the server arguments;
/// and where the memory and JVM arguments came from.
pub fn java_args(
    desc: &LaunchDescription,
    server: &ServerSettings,
    pack: Option<&ServerLaunch>,
) -> Result<(Vec<String>, Vec<Applied>), LaunchError> {
    if let Some(p) = pack {
        check_pack(p)?;
    }
    let mut args = Vec::new();
    let mut applied = Vec::new();
    let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
    let (min, max, origin) = match (&server.memory, pack) {
        (Some(m), _) => {
            let m = parse_memory(m).map_err(LaunchError::Memory)?;
            (Some(m.clone()), Some(m), Origin::RunnerConfig)
        }
        (None, Some(p)) if !p.memory_min.is_empty() || !p.memory_max.is_empty() => {
            let norm = |m: Option<String>| m.map(|m| parse_memory(&m).unwrap_or(m));
            (
                norm(nonempty(&p.memory_min)),
                norm(nonempty(&p.memory_max)),
                Origin::Pack,
            )
        }
        _ => (None, None, Origin::Default),
    };
    if let Some(m) = &min {
        args.push(format!("-Xms{m}"));
    }
    if let Some(m) = &max {
        args.push(format!("-Xmx{m}"));
    }
    applied.push(Applied {
        name: "memory",
        value: match (&min, &max) {
            (None, None) => "the JVM's default".into(),
            (Some(a), Some(b)) if a == b => a.clone(),
            (a, b) => format!(
                "{} to {}",
                a.as_deref().unwrap_or("default"),
                b.as_deref().unwrap_or("default")
            ),
        },
        origin,
    });
    if server.g1_flags {
        args.extend(G1_FLAGS.iter().map(|s| s.to_string()));
    }
    let (jvm, origin) = match (&server.jvm_args, pack) {
        (Some(a), _) => (a.clone(), Origin::RunnerConfig),
        (None, Some(p)) if !p.jvm_args.is_empty() => (p.jvm_args.clone(), Origin::Pack),
        _ => (Vec::new(), Origin::Default),
    };
    applied.push(Applied {
        name: "jvm_args",
        value: if jvm.is_empty() {
            "none".into()
        } else {
            jvm.join(" ")
        },
        origin,
    });
    args.extend(jvm);
    let pack_jar = pack.map(|p| p.main_jar.as_str()).filter(|j| !j.is_empty());
    let (target, origin) = match (pack_jar, &desc.jar, &desc.args_file) {
        (Some(jar), _, _) => (vec!["-jar".to_owned(), safe_rel(jar)?.to_owned()], Origin::Pack),
        (None, Some(jar), _) => (
            vec!["-jar".to_owned(), safe_rel(jar)?.to_owned()],
            Origin::LaunchDescription,
        ),
        (None, None, Some(file)) => (vec![format!("@{}", safe_rel(file)?)], Origin::LaunchDescription),
        (None, None, None) => {
            return Err(LaunchError::LaunchDescription {
                dir: PathBuf::new(),
                message: "it names neither a jar nor an args file".into(),
            });
        }
    };
    // One argument per item: a path with a space stays one argument.
    let value = target.join(" ");
    args.extend(target);
    applied.push(Applied {
        name: "jar",
        value,
        origin,
    });
    args.extend(server.args.iter().cloned());
    Ok((args, applied))
}

/// What to run for `server_dir`: the configured command, or Java per the
/// launch description, with the pack's launch settings (`pack`) under the
/// runner config's.
pub fn launch_command(
    server_dir: &Path,
    server: &ServerSettings,
    pack: Option<&ServerLaunch>,
) -> Result<LaunchCommand, LaunchError> {
    if let Some(cmd) = &server.command {
        let (program, args) = cmd.split_first().ok_or(LaunchError::NoLaunchDescription {
            dir: server_dir.to_owned(),
        })?;
        return Ok(LaunchCommand {
            program: PathBuf::from(program),
            args: args.to_vec(),
            java_major: None,
            applied: vec![Applied {
                name: "command",
                value: cmd.join(" "),
                origin: Origin::RunnerConfig,
            }],
        });
    }
    let desc = LaunchDescription::load(server_dir)
        .map_err(|e| LaunchError::LaunchDescription {
            dir: server_dir.to_owned(),
            message: e.to_string(),
        })?
        .ok_or_else(|| LaunchError::NoLaunchDescription {
            dir: server_dir.to_owned(),
        })?;
    let java = java_version(&desc, server, pack)?;
    let need: u32 = java.value.parse().unwrap_or(desc.java_major);
    let program = find_java(server.java.as_deref(), need)?;
    let (args, mut applied) = java_args(&desc, server, pack)?;
    applied.insert(0, java);
    Ok(LaunchCommand {
        program,
        args,
        java_major: Some(need),
        applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_version_strings() {
        let cases = [
            (
                "openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime Environment",
                Some(17),
            ),
            (
                "java version \"1.8.0_392\"\nJava(TM) SE Runtime Environment",
                Some(8),
            ),
            ("openjdk version \"21\" 2023-09-19", Some(21)),
            ("openjdk version \"21-ea\" 2023-09-19", Some(21)),
            ("openjdk version \"25.0.1+8-LTS\"", Some(25)),
            (
                "Picked up JAVA_TOOL_OPTIONS: x\nopenjdk version \"11.0.2\"",
                Some(11),
            ),
            ("garbage", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_java_version(text), want, "{text}");
        }
    }

    fn desc(jar: Option<&str>, args_file: Option<&str>) -> LaunchDescription {
        LaunchDescription {
            format: 1,
            minecraft: "1.21.1".into(),
            loader: "neoforge".into(),
            loader_version: "21.1.1".into(),
            java_major: 21,
            jar: jar.map(str::to_owned),
            args_file: args_file.map(str::to_owned),
        }
    }

    #[test]
    fn java_arguments_from_a_launch_description() {
        let server = ServerSettings {
            memory: Some("4g".into()),
            g1_flags: true,
            jvm_args: Some(vec!["-Dfoo=bar".into()]),
            ..ServerSettings::default()
        };
        let (args, _) = java_args(&desc(Some("server.jar"), None), &server, None).expect("args");
        assert_eq!(&args[..2], ["-Xms4G", "-Xmx4G"]);
        assert!(args.contains(&"-XX:+UseG1GC".to_string()));
        assert_eq!(
            &args[args.len() - 4..],
            ["-Dfoo=bar", "-jar", "server.jar", "nogui"]
        );
        let (args, _) = java_args(
            &desc(
                None,
                Some("libraries/net/neoforged/neoforge/21.1.1/unix_args.txt"),
            ),
            &ServerSettings::default(),
            None,
        )
        .expect("args");
        assert_eq!(
            args,
            ["@libraries/net/neoforged/neoforge/21.1.1/unix_args.txt", "nogui"]
        );
        // A path with a space stays one argument (it was split in two).
        let (args, _) = java_args(
            &desc(None, Some("my libs/unix_args.txt")),
            &ServerSettings::default(),
            None,
        )
        .expect("args");
        assert_eq!(args, ["@my libs/unix_args.txt", "nogui"]);
        let (args, _) = java_args(
            &desc(Some("my server.jar"), None),
            &ServerSettings::default(),
            None,
        )
        .expect("args");
        assert_eq!(args, ["-jar", "my server.jar", "nogui"]);
    }

    #[test]
    fn a_launch_description_cannot_point_outside_the_server() {
        for bad in ["../x.jar", "/etc/x.jar"] {
            let e = java_args(&desc(Some(bad), None), &ServerSettings::default(), None).expect_err(bad);
            assert!(matches!(e, LaunchError::UnsafePath { .. }), "{e}");
        }
    }

    #[test]
    fn no_matching_java_lists_what_was_found() {
        let e = find_java(Some(Path::new("/nonexistent/java")), 21).expect_err("none");
        let msg = e.to_string();
        assert!(
            msg.contains("no Java 21") && msg.contains("/nonexistent/java"),
            "{msg}"
        );
    }

    #[test]
    fn the_configured_command_wins() {
        let server = ServerSettings {
            command: Some(vec!["/bin/echo".into(), "hi".into()]),
            ..ServerSettings::default()
        };
        let c = launch_command(Path::new("/nowhere"), &server, None).expect("command");
        assert_eq!(
            (c.program, c.args),
            (PathBuf::from("/bin/echo"), vec!["hi".to_string()])
        );
    }

    fn pack() -> ServerLaunch {
        ServerLaunch {
            java_major: 17,
            memory_min: "2G".into(),
            memory_max: "4g".into(),
            jvm_args: vec!["-XX:+UseG1GC".into(), "-Dpack=1".into()],
            main_jar: String::new(),
        }
    }

    #[test]
    fn the_packs_settings_apply_and_the_runner_config_overrides_each() {
        let d = desc(Some("server.jar"), None);
        let server = ServerSettings::default();
        let (args, applied) = java_args(&d, &server, Some(&pack())).expect("args");
        assert_eq!(
            args,
            [
                "-Xms2G",
                "-Xmx4G",
                "-XX:+UseG1GC",
                "-Dpack=1",
                "-jar",
                "server.jar",
                "nogui"
            ]
        );
        assert_eq!(
            applied.iter().map(|a| (a.name, a.origin)).collect::<Vec<_>>(),
            [
                ("memory", Origin::Pack),
                ("jvm_args", Origin::Pack),
                ("jar", Origin::LaunchDescription)
            ]
        );
        assert_eq!(applied[0].value, "2G to 4G");
        let with_jar = ServerLaunch {
            main_jar: "custom/server.jar".into(),
            ..pack()
        };
        let (args, applied) = java_args(&d, &server, Some(&with_jar)).expect("args");
        assert!(
            args.windows(2).any(|w| w == ["-jar", "custom/server.jar"]),
            "{args:?}"
        );
        assert_eq!((applied[2].name, applied[2].origin), ("jar", Origin::Pack));
        let java = java_version(&d, &server, Some(&pack())).expect("java");
        assert_eq!((java.value.as_str(), java.origin), ("17", Origin::Pack));
        assert_eq!(
            java_version(&d, &server, None).expect("java").origin,
            Origin::LaunchDescription
        );

        let host = ServerSettings {
            memory: Some("6G".into()),
            jvm_args: Some(Vec::new()),
            java_version: Some(21),
            ..ServerSettings::default()
        };
        let (args, applied) = java_args(&d, &host, Some(&pack())).expect("args");
        assert_eq!(args, ["-Xms6G", "-Xmx6G", "-jar", "server.jar", "nogui"]);
        assert!(
            applied[..2].iter().all(|a| a.origin == Origin::RunnerConfig),
            "{applied:?}"
        );
        let java = java_version(&d, &host, Some(&pack())).expect("java");
        assert_eq!((java.value.as_str(), java.origin), ("21", Origin::RunnerConfig));
    }

    #[test]
    fn unusable_pack_settings_are_refused_by_name() {
        let d = desc(Some("server.jar"), None);
        for bad in [
            ServerLaunch {
                memory_max: "lots".into(),
                ..Default::default()
            },
            ServerLaunch {
                java_major: 3,
                ..Default::default()
            },
            ServerLaunch {
                jvm_args: vec![String::new()],
                ..Default::default()
            },
            ServerLaunch {
                main_jar: "../outside.jar".into(),
                ..Default::default()
            },
        ] {
            let e = java_args(&d, &ServerSettings::default(), Some(&bad))
                .map(drop)
                .and_then(|()| java_version(&d, &ServerSettings::default(), Some(&bad)).map(drop))
                .expect_err("bad pack settings");
            assert!(e.to_string().contains("pack's [server]"), "{e}");
        }
    }
}
