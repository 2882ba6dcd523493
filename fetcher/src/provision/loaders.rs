//! The per-loader installs: what is downloaded from where, which installer
//! runs with which arguments, and which file the server is then started from.

use std::path::Path;

use serde::Deserialize;

use atlas_proto::IoError;

use super::error::ProvisionError;
use super::launch::{LAUNCH_FORMAT, LaunchDescription, Loader};
use super::net::{Expect, Net, sha1_of};
use super::options::{ProvisionOptions, check_version};
use super::process::run_installer;
use crate::safe_dir::{SafeDir, split};

/// Where an install happens: `out` mirrors the server directory and is
/// copied into it on success; `work` (its parent) holds installers and
/// logs. Both are private to this user; `dir`, the server directory, is
/// only read here, through its handle.
#[derive(Debug)]
pub(super) struct Ctx<'a> {
    pub net: &'a Net,
    pub opts: &'a ProvisionOptions,
    pub dir: &'a SafeDir,
    pub work: &'a Path,
    pub out: &'a Path,
}

/// The vanilla server jar's name in the server directory.
const SERVER_JAR: &str = "server.jar";

/// Opens the regular file `rel` of the server directory, following no
/// link and never waiting on a FIFO; `None` when it is not such a file.
fn open_in(dir: &SafeDir, rel: &str) -> Option<std::fs::File> {
    let (parent, name) = split(rel);
    dir.walk(parent, false).ok()??.open_read(name).ok()?
}

/// Whether the files a launch description names exist (and, for Fabric,
/// the launcher is pointed at the verified server jar), as regular files
/// reached without following a link.
pub(super) fn files_present(dir: &SafeDir, d: &LaunchDescription) -> bool {
    let is_file = |p: &str| open_in(dir, p).is_some();
    let needs_server = matches!(d.loader.as_str(), "vanilla" | "fabric" | "quilt");
    let fabric_ok = d.loader != "fabric" || fabric_server_jar(dir).as_deref() == Some(SERVER_JAR);
    is_file(d.target()) && (!needs_server || is_file(SERVER_JAR)) && fabric_ok
}

/// The `serverJar` of `fabric-server-launcher.properties` (a Java
/// properties file: `key=value` or `key:value`, `#`/`!` comments).
fn fabric_server_jar(dir: &SafeDir) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    open_in(dir, FABRIC_PROPERTIES)?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .find_map(|l| {
            let (k, v) = l.split_once(['=', ':'])?;
            (k.trim() == "serverJar").then(|| v.trim().to_owned())
        })
}

/// Installs `ctx.opts.loader` into `ctx.out`; returns the launch description.
pub(super) async fn install(ctx: &Ctx<'_>) -> Result<LaunchDescription, ProvisionError> {
    let o = ctx.opts;
    let version = mojang_version(ctx).await?;
    let java_major = version.java_version.as_ref().map_or(8, |j| j.major_version);
    let describe = |jar: Option<String>, args_file: Option<String>| LaunchDescription {
        format: LAUNCH_FORMAT,
        minecraft: o.minecraft.clone(),
        loader: o.loader.as_str().to_owned(),
        loader_version: o.loader_version.clone(),
        java_major,
        jar,
        args_file,
    };
    match o.loader {
        Loader::Vanilla => {
            server_jar(ctx, &version).await?;
            Ok(describe(Some(SERVER_JAR.into()), None))
        }
        Loader::Fabric => {
            server_jar(ctx, &version).await?;
            fabric(ctx).await?;
            Ok(describe(Some(FABRIC_JAR.into()), None))
        }
        Loader::Quilt => {
            server_jar(ctx, &version).await?;
            quilt(ctx).await?;
            Ok(describe(Some(QUILT_JAR.into()), None))
        }
        Loader::Forge | Loader::Neoforge => {
            let (jar, args) = forge(ctx).await?;
            Ok(describe(jar, args))
        }
    }
}

#[derive(Debug, Deserialize)]
struct VersionManifest {
    versions: Vec<VersionRef>,
}

#[derive(Debug, Deserialize)]
struct VersionRef {
    id: String,
    url: String,
    #[serde(default)]
    sha1: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionJson {
    #[serde(default)]
    downloads: Downloads,
    #[serde(default)]
    java_version: Option<JavaVersion>,
}

#[derive(Debug, Default, Deserialize)]
struct Downloads {
    server: Option<Download>,
}

#[derive(Debug, Deserialize)]
struct Download {
    sha1: String,
    size: u64,
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JavaVersion {
    major_version: u32,
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The version JSON of the Minecraft version, found through Mojang's
/// version manifest and checked against the SHA-1 the manifest gives.
async fn mojang_version(ctx: &Ctx<'_>) -> Result<VersionJson, ProvisionError> {
    use sha1::Digest as _;
    let url = format!(
        "{}/mc/game/version_manifest_v2.json",
        base(&ctx.opts.upstreams.mojang_meta)
    );
    let m: VersionManifest = ctx.net.get_json(&url, "").await?;
    let v = m
        .versions
        .into_iter()
        .find(|v| v.id == ctx.opts.minecraft)
        .ok_or_else(|| ProvisionError::UnknownVersion {
            url: url.clone(),
            version: ctx.opts.minecraft.clone(),
        })?;
    let bytes = ctx
        .net
        .get_capped(&v.url, ctx.opts.limits.provision_metadata_bytes, "")
        .await?;
    if let Some(want) = &v.sha1 {
        let actual = hex::encode(sha1::Sha1::digest(&bytes));
        if !want.eq_ignore_ascii_case(&actual) {
            return Err(ProvisionError::Hash {
                url: v.url,
                algorithm: "sha1",
                expected: want.clone(),
                actual,
            });
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| ProvisionError::BadMetadata {
        url: v.url.clone(),
        message: format!("not a Minecraft version JSON: {e}"),
    })
}

/// Stages the vanilla server jar, unless the server directory already holds
/// exactly that file.
async fn server_jar(ctx: &Ctx<'_>, version: &VersionJson) -> Result<(), ProvisionError> {
    let d = version
        .downloads
        .server
        .as_ref()
        .ok_or_else(|| ProvisionError::BadMetadata {
            url: format!("Mojang's version JSON of {}", ctx.opts.minecraft),
            message: "it lists no server download (this version has no server jar)".into(),
        })?;
    let same = open_in(ctx.dir, SERVER_JAR).is_some_and(|f| {
        f.metadata().is_ok_and(|m| m.len() == d.size)
            && sha1_of(f).is_some_and(|h| h.eq_ignore_ascii_case(&d.sha1))
    });
    if same {
        return Ok(());
    }
    let expect = Expect {
        sha1: Some(d.sha1.clone()),
        sha256: None,
        size: Some(d.size),
    };
    ctx.net
        .download(
            &d.url,
            &ctx.out.join(SERVER_JAR),
            ctx.opts.limits.provision_jar_bytes,
            &expect,
        )
        .await?;
    Ok(())
}

const FABRIC_JAR: &str = "fabric-server-launch.jar";
/// Read by fabric-loader's `FabricServerLauncher` (`serverJar`).
const FABRIC_PROPERTIES: &str = "fabric-server-launcher.properties";
const QUILT_JAR: &str = "quilt-server-launch.jar";

#[derive(Debug, Deserialize)]
struct InstallerRef {
    version: String,
    #[serde(default)]
    stable: Option<bool>,
    #[serde(default)]
    url: Option<String>,
}

/// Default Fabric meta, where fabric-installer looks unless told `-metaurl`.
const FABRIC_META: &str = "https://meta.fabricmc.net";

/// Fabric's headless server install: fabric-installer (the stable one Fabric
/// meta lists, checked against its Maven's sidecar hash) run as `server -dir
/// <dir> -mcversion <mc> -loader <version>` (fabric-installer
/// `ServerHandler.installCli`), which downloads the loader's libraries now
/// and writes `fabric-server-launch.jar`. That launcher is fabric-loader's
/// `FabricServerLauncher`: without `-Dfabric.gameJarPath` it runs the jar
/// named by `serverJar` in `fabric-server-launcher.properties` (default
/// `server.jar`), so Atlas writes `serverJar=server.jar`, the jar it
/// verified, and the first boot needs no network. (Fabric meta's
/// ready-made `/server/jar` launcher is not used: it runs
/// `.fabric/server/<mc>-server.jar` unless `-Dfabric.installer.server.gameJar`
/// is given, downloads Mojang's jar itself when that is missing, and
/// installs the libraries on first boot.)
async fn fabric(ctx: &Ctx<'_>) -> Result<(), ProvisionError> {
    let meta = base(&ctx.opts.upstreams.fabric_meta);
    let url = format!("{meta}/v2/versions/installer");
    let list: Vec<InstallerRef> = ctx.net.get_json(&url, "").await?;
    let installer = list
        .iter()
        .find(|i| i.stable == Some(true))
        .or(list.first())
        .ok_or_else(|| ProvisionError::BadMetadata {
            url: url.clone(),
            message: "lists no installer version".into(),
        })?;
    check_version("Fabric installer version", &installer.version)?;
    let jar_url = installer.url.clone().ok_or_else(|| ProvisionError::BadMetadata {
        url: url.clone(),
        message: format!("installer {} has no url", installer.version),
    })?;
    let jar = installer_jar(ctx, &jar_url).await?;
    let mut args = vec![
        "server".to_owned(),
        "-dir".to_owned(),
        ctx.out.display().to_string(),
        "-mcversion".to_owned(),
        ctx.opts.minecraft.clone(),
        "-loader".to_owned(),
        ctx.opts.loader_version.clone(),
    ];
    if meta != FABRIC_META {
        // fabric-installer `Main`: "Ensure you include the trailing /".
        args.extend(["-metaurl".to_owned(), format!("{meta}/")]);
    }
    run_installer(ctx.opts, ctx.work, &jar, &args).await?;
    if !ctx.out.join(FABRIC_JAR).is_file() {
        return Err(ProvisionError::InstallerOutput {
            loader: "fabric",
            message: format!("wrote no {FABRIC_JAR}"),
        });
    }
    let props = ctx.out.join(FABRIC_PROPERTIES);
    std::fs::write(&props, format!("serverJar={SERVER_JAR}\n")).map_err(IoError::at("writing", &props))?;
    Ok(())
}

/// A jar is a zip: refuses anything else (an HTML error page with status 200).
fn check_zip(url: &str, path: &Path) -> Result<(), ProvisionError> {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    let ok = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04";
    if ok {
        Ok(())
    } else {
        Err(ProvisionError::BadMetadata {
            url: url.to_owned(),
            message: "the answer is not a jar".into(),
        })
    }
}

/// Downloads an installer jar, checked against its Maven sidecar hash.
async fn installer_jar(ctx: &Ctx<'_>, url: &str) -> Result<std::path::PathBuf, ProvisionError> {
    let expect = ctx.net.sidecar(url).await?;
    let dest = ctx.work.join("installer.jar");
    ctx.net
        .download(url, &dest, ctx.opts.limits.provision_jar_bytes, &expect)
        .await?;
    check_zip(url, &dest)?;
    Ok(dest)
}

/// quilt-installer's headless server install (`install server <mc> <loader>`).
async fn quilt(ctx: &Ctx<'_>) -> Result<(), ProvisionError> {
    let url = format!("{}/v3/versions/installer", base(&ctx.opts.upstreams.quilt_meta));
    let list: Vec<InstallerRef> = ctx.net.get_json(&url, "").await?;
    let jar_url = list
        .first()
        .and_then(|i| i.url.clone())
        .ok_or_else(|| ProvisionError::BadMetadata {
            url: url.clone(),
            message: "lists no installer with a url".into(),
        })?;
    let jar = installer_jar(ctx, &jar_url).await?;
    let args = [
        "install".to_owned(),
        "server".to_owned(),
        ctx.opts.minecraft.clone(),
        ctx.opts.loader_version.clone(),
        format!("--install-dir={}", ctx.out.display()),
    ];
    run_installer(ctx.opts, ctx.work, &jar, &args).await?;
    if !ctx.out.join(QUILT_JAR).is_file() {
        return Err(ProvisionError::InstallerOutput {
            loader: "quilt",
            message: format!("wrote no {QUILT_JAR}"),
        });
    }
    Ok(())
}

/// `maven-metadata.xml` (Maven's repository metadata), the part read.
#[derive(Debug, Default, Deserialize)]
struct MavenMetadata {
    #[serde(default)]
    versioning: Versioning,
}

#[derive(Debug, Default, Deserialize)]
struct Versioning {
    #[serde(default)]
    versions: Versions,
}

#[derive(Debug, Default, Deserialize)]
struct Versions {
    #[serde(default)]
    version: Vec<String>,
}

/// The Maven version of Forge `v` for Minecraft `mc`. Forge's coordinates
/// changed over the years: `{mc}-{v}` today, `{mc}-{v}-{mc}` for 1.7.10 to
/// 1.9.4 (e.g. `1.7.10-10.13.4.1614-1.7.10`), `{mc}-{v}-mc172` for 1.7.2,
/// `-1.10.0`, `-new`, `-prerelease` for a few builds. The repository's
/// `maven-metadata.xml` lists the real ones: the version `{mc}-{v}` if listed,
/// else the only one starting `{mc}-{v}-`. Without metadata, `{mc}-{v}`.
async fn forge_coordinate(
    ctx: &Ctx<'_>,
    maven: &str,
    group: &str,
    mc: &str,
    v: &str,
) -> Result<String, ProvisionError> {
    let plain = format!("{mc}-{v}");
    let url = format!("{}/{group}/maven-metadata.xml", base(maven));
    let bytes = match ctx
        .net
        .get_capped(&url, ctx.opts.limits.provision_metadata_bytes, "")
        .await
    {
        Ok(b) => b,
        Err(ProvisionError::NotFound { .. }) => return Ok(plain),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&bytes);
    let meta: MavenMetadata = quick_xml::de::from_str(&text).map_err(|e| ProvisionError::BadMetadata {
        url: url.clone(),
        message: format!("not Maven metadata: {e}"),
    })?;
    let listed = meta.versioning.versions.version;
    if listed.contains(&plain) {
        return Ok(plain);
    }
    let prefix = format!("{plain}-");
    let mut suffixed: Vec<&String> = listed.iter().filter(|l| l.starts_with(&prefix)).collect();
    match suffixed.len() {
        1 => Ok(suffixed.remove(0).clone()),
        0 => Err(ProvisionError::UnknownLoaderVersion {
            url,
            loader: "Forge",
            version: v.to_owned(),
            minecraft: mc.to_owned(),
        }),
        _ => Err(ProvisionError::BadMetadata {
            url,
            message: format!(
                "several Forge builds match {v} for Minecraft {mc} ({}); name one in full as the loader version",
                suffixed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// The Forge or NeoForge installer run with `--installServer`; returns the
/// jar (old versions) or the args file (1.17 and later) to start.
async fn forge(ctx: &Ctx<'_>) -> Result<(Option<String>, Option<String>), ProvisionError> {
    let o = ctx.opts;
    let mc = o.minecraft.as_str();
    let v = o
        .loader_version
        .strip_prefix(&format!("{mc}-"))
        .unwrap_or(&o.loader_version);
    // (maven base, group path, artifact, artifact version)
    let (maven, group, artifact, full) = match o.loader {
        Loader::Neoforge if v.starts_with("47.") => (
            &o.upstreams.neoforge_maven,
            "net/neoforged/forge",
            "forge",
            format!("{mc}-{v}"),
        ),
        Loader::Neoforge => (
            &o.upstreams.neoforge_maven,
            "net/neoforged/neoforge",
            "neoforge",
            v.to_owned(),
        ),
        _ => {
            let group = "net/minecraftforge/forge";
            let full = forge_coordinate(ctx, &o.upstreams.forge_maven, group, mc, v).await?;
            (&o.upstreams.forge_maven, group, "forge", full)
        }
    };
    check_version("Forge version", &full)?;
    let url = format!("{}/{group}/{full}/{artifact}-{full}-installer.jar", base(maven));
    let jar = installer_jar(ctx, &url).await?;
    let args = ["--installServer".to_owned(), ctx.out.display().to_string()];
    run_installer(ctx.opts, ctx.work, &jar, &args).await?;
    let args_name = if cfg!(windows) {
        "win_args.txt"
    } else {
        "unix_args.txt"
    };
    let args_file = format!("libraries/{group}/{full}/{args_name}");
    if ctx.out.join(&args_file).is_file() {
        return Ok((None, Some(args_file)));
    }
    for jar in [
        format!("{artifact}-{full}.jar"),
        format!("{artifact}-{full}-universal.jar"),
    ] {
        if ctx.out.join(&jar).is_file() {
            return Ok((Some(jar), None));
        }
    }
    Err(ProvisionError::InstallerOutput {
        loader: o.loader.as_str(),
        message: format!("wrote neither {args_file} nor {artifact}-{full}.jar"),
    })
}
