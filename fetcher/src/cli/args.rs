//! The command line's shape: every subcommand, flag, `ATLAS_*` variable and
//! its help text (clap derive). Nothing here runs anything; `settings.rs`
//! turns these into library options and `commands.rs` runs them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit;
use crate::inspect;
use crate::plan::OnModified;
use crate::side::InstallSide;

/// Keeps a Minecraft server or client directory at the signed build an Atlas channel points to.
#[derive(Debug, Parser)]
#[command(name = "atlas-fetcher", version, about, long_about = None, after_help = exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install or update DIR to the build the channel points to, verifying
    /// the signed pointer, the manifest and every file. Safe to run from cron:
    /// nothing is written when the directory is already current.
    #[command(after_help = exit::HELP)]
    Sync(Box<SyncArgs>),
    /// Show what is installed in DIR: pack, channel, version, build, side,
    /// file count, pointer expiry, and whether an interrupted apply is pending.
    /// Reads only DIR/.atlas/; no network.
    #[command(after_help = exit::HELP)]
    Status(StatusArgs),
    /// Re-hash every managed file of DIR and report files changed or missing
    /// (exit 9 on drift). With --repair, download them again through the
    /// normal verified sync (drifted files are replaced).
    #[command(after_help = exit::HELP)]
    Verify(VerifyArgs),
    /// Re-install the build DIR had before the current one (the last 3 are
    /// kept), verified against its build id, with files from the store. The
    /// build rolled back from is then held: `sync` leaves DIR alone while
    /// the channel still points at it and installs the next build as usual.
    #[command(after_help = exit::HELP)]
    Rollback(RollbackArgs),
    /// Bound the shared blob cache (`sync --cache DIR`): delete the oldest
    /// blobs no installed instance uses until the rest fit in --max-mib.
    #[command(after_help = exit::HELP)]
    CacheGc(CacheGcArgs),
    /// Make the server in DIR launchable for the installed build's Minecraft
    /// version and loader (vanilla server jar, Fabric or Quilt launcher,
    /// Forge or NeoForge installed headless) and write DIR/.atlas/launch.json.
    /// Exit 3 when it already was.
    #[command(after_help = exit::HELP)]
    Provision(ProvisionArgs),
}

/// Arguments of `atlas-fetcher provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The synced server directory.
    #[arg(long, env = "ATLAS_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
    /// Per-request timeout in seconds (default 60).
    #[arg(long, env = "ATLAS_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub upstreams: ProvisionFlags,
}

/// How provisioning runs installers and where it downloads from (`provision`
/// and `sync --provision`).
#[derive(Debug, Clone, Args)]
pub struct ProvisionFlags {
    /// Java executable that runs the Quilt, Forge and NeoForge installers.
    #[arg(long, env = "ATLAS_JAVA", value_name = "PATH", default_value = "java")]
    pub java: PathBuf,
    /// Longest run of a loader installer, in seconds.
    #[arg(long, env = "ATLAS_INSTALLER_TIMEOUT", value_name = "SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub installer_timeout: u64,
    /// Mojang's version metadata (serves /mc/game/version_manifest_v2.json).
    #[arg(
        long,
        env = "ATLAS_MOJANG_META",
        value_name = "URL",
        default_value = "https://piston-meta.mojang.com"
    )]
    pub mojang_meta: String,
    /// Fabric meta.
    #[arg(
        long,
        env = "ATLAS_FABRIC_META",
        value_name = "URL",
        default_value = "https://meta.fabricmc.net"
    )]
    pub fabric_meta: String,
    /// Quilt meta.
    #[arg(
        long,
        env = "ATLAS_QUILT_META",
        value_name = "URL",
        default_value = "https://meta.quiltmc.org"
    )]
    pub quilt_meta: String,
    /// Forge's Maven repository.
    #[arg(
        long,
        env = "ATLAS_FORGE_MAVEN",
        value_name = "URL",
        default_value = "https://maven.minecraftforge.net"
    )]
    pub forge_maven: String,
    /// NeoForge's Maven repository.
    #[arg(
        long,
        env = "ATLAS_NEOFORGE_MAVEN",
        value_name = "URL",
        default_value = "https://maven.neoforged.net/releases"
    )]
    pub neoforge_maven: String,
}

/// Arguments of `atlas-fetcher cache-gc`.
#[derive(Debug, Args)]
pub struct CacheGcArgs {
    /// The shared blob cache directory.
    #[arg(long, env = "ATLAS_CACHE", value_name = "DIR")]
    pub cache: PathBuf,
    /// Size the blobs only the cache holds may take, in MiB.
    #[arg(long, value_name = "MIB")]
    pub max_mib: u64,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `atlas-fetcher rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The synced directory.
    #[arg(long, env = "ATLAS_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Base of the store the files of the earlier build are downloaded from
    /// (as for `sync`).
    #[arg(long, env = "ATLAS_SOURCE", value_name = "URL")]
    pub source: String,
    /// Print what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON report on stdout instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `atlas-fetcher status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The synced directory.
    #[arg(long, env = "ATLAS_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `atlas-fetcher verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The synced directory.
    #[arg(long, env = "ATLAS_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Download drifted files again (needs --source and --key; pack, channel
    /// and side are those of the install). Files you changed are replaced.
    #[arg(long, requires_all = ["source", "keys"])]
    pub repair: bool,
    /// Base of the store, for --repair (as for `sync`).
    #[arg(long, env = "ATLAS_SOURCE", value_name = "URL")]
    pub source: Option<String>,
    /// Public key trusted to sign the channel, for --repair (as for `sync`).
    #[arg(
        long = "key",
        env = "ATLAS_KEY",
        value_name = "PUBLIC_KEY",
        value_delimiter = ','
    )]
    pub keys: Vec<String>,
    /// Files hashed at once.
    #[arg(long, default_value_t = inspect::default_threads(), value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub threads: usize,
}

/// Arguments of `atlas-fetcher sync`. Each setting can also come from the
/// `--config` file; a flag (or its `ATLAS_*` variable) wins over the file.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// TOML file with any of the settings below (keys named like the flags,
    /// with `_` for `-`; `keys`, `enable` and `disable` are arrays). Schema:
    /// schemas/fetcher.schema.json.
    #[arg(long, env = "ATLAS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Base of the store: an http(s):// URL (e.g. https://cdn.example.com/ or
    /// http://127.0.0.1:9000/bucket/prefix), a file:// URL, or a local directory.
    #[arg(long, env = "ATLAS_SOURCE", value_name = "URL")]
    pub source: Option<String>,

    /// Pack id, as published by the creator (e.g. `my-pack`).
    #[arg(long, env = "ATLAS_PACK", value_name = "ID")]
    pub pack: Option<String>,

    /// Channel to follow (e.g. `production`, `beta`, `dev`).
    #[arg(long, env = "ATLAS_CHANNEL", value_name = "NAME")]
    pub channel: Option<String>,

    /// Public key trusted to sign the channel: the inline `ed25519:<base64>`
    /// text or a path to a `.pub` file holding it. Repeat for several keys
    /// (any one valid signature suffices); in ATLAS_KEY, separate with commas.
    #[arg(
        long = "key",
        env = "ATLAS_KEY",
        value_name = "PUBLIC_KEY",
        value_delimiter = ','
    )]
    pub keys: Vec<String>,

    /// Root of trust instead of --key: a trusted `keys/<N>.json` of the pack
    /// (or a JSON file naming root keys and a threshold). The fetcher follows
    /// the pack's keyset chain from it, so key rotations need no change here.
    #[arg(long, env = "ATLAS_ROOT", value_name = "FILE", conflicts_with = "keys")]
    pub root: Option<PathBuf>,

    /// Directory to keep in sync (created if missing). Files the pack never
    /// installed (worlds, your own files) are never touched. State lives in DIR/.atlas/.
    #[arg(long, env = "ATLAS_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// A Prism Launcher or MultiMC instance folder (the one holding
    /// instance.cfg) to keep in sync instead of --dir: the pack goes into its
    /// game directory (`.minecraft` or `minecraft`), and --side defaults to
    /// client. Wins over --dir.
    #[arg(long, env = "ATLAS_INSTANCE", value_name = "DIR")]
    pub instance: Option<PathBuf>,

    /// With --instance: run as the instance's pre-launch command and answer
    /// the launcher. Exit 0 starts the game (updated, current, or the store
    /// is unreachable and a build is installed); exit 1 stops the launch (a
    /// check failed, the first install is offline, the channel does not
    /// exist, or the instance's Minecraft or loader was switched: launch
    /// again). Lines start with `!![Info]!`, `!![Warning]!` or `!![Error]!`,
    /// the levels Prism Launcher and MultiMC show. The Minecraft and loader
    /// versions in the instance's mmc-pack.json follow the build's.
    #[arg(long, requires = "instance", conflicts_with_all = ["dry_run", "json"])]
    pub before_launch: bool,

    /// Which files to install: `server` (the default) skips client-only
    /// files, `client` skips server-only ones.
    #[arg(long, env = "ATLAS_SIDE", value_enum)]
    pub side: Option<InstallSide>,

    /// Verify the channel and print what would change, without downloading files or writing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON report on stdout (also for errors) instead of human-readable lines.
    #[arg(long)]
    pub json: bool,

    /// How many files to download at once (1 to 64; default 8).
    #[arg(long, env = "ATLAS_PARALLELISM", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub parallelism: Option<usize>,

    /// Per-request timeout in seconds (default 60): the longest wait for the
    /// next bytes of a body, and for the whole channel pointer request.
    #[arg(long, env = "ATLAS_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Longest wait for a connection to the store, in seconds (default 10).
    #[arg(long, env = "ATLAS_CONNECT_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: Option<u64>,

    /// Longest wait for a response's headers after sending the request,
    /// connecting included, in seconds (default 15). A server that accepts
    /// connections and never answers fails here, and the request is retried.
    #[arg(long, env = "ATLAS_HEADER_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: Option<u64>,

    /// Low-speed limit in bytes per second (default 1024; 0 turns it off): a
    /// transfer that brings fewer bytes than this per second over
    /// --low-speed-time fails and is retried from where it stopped (as curl's
    /// --speed-limit). Such retries do not renew the retry budget.
    #[arg(long, env = "ATLAS_LOW_SPEED_LIMIT", value_name = "BYTES_PER_SEC")]
    pub low_speed_limit: Option<u64>,

    /// The stretch of time, in seconds, the low-speed limit is measured over (default 30).
    #[arg(long, env = "ATLAS_LOW_SPEED_TIME", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub low_speed_time: Option<u64>,

    /// Overall deadline in seconds for checking and downloading (default
    /// 1800, 30 minutes); when it passes, the run stops, releases the lock
    /// and exits 4, with the directory as it was (big downloads cut short are
    /// kept in DIR/.atlas/partial/ and resumed by the next run). Once files
    /// start moving into place, the apply always completes.
    #[arg(long, env = "ATLAS_DEADLINE", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline: Option<u64>,

    /// Retries of a failed request (default 5: connection error, timeout,
    /// broken body, HTTP 408/429/5xx), with exponential backoff; never on 404
    /// or a hash mismatch.
    #[arg(long, env = "ATLAS_RETRIES", value_name = "N")]
    pub retries: Option<u32>,

    /// What to do with a managed file you changed: `keep` (the default) leaves
    /// it (reported, and not updated until you restore it), `backup` copies it
    /// to DIR/.atlas/backups/<unix-time>/ then replaces it, `replace` overwrites it.
    /// Files the pack drops are removed only if unchanged, whatever the policy.
    #[arg(long, env = "ATLAS_ON_MODIFIED", value_enum)]
    pub on_modified: Option<OnModified>,

    /// Optional file to install even if the pack leaves it off, named by its
    /// path, file name or display name (e.g. `complementary.zip`). Repeat the
    /// flag or separate names with commas. Unknown names are an error that
    /// lists the build's optional files.
    #[arg(
        long = "enable",
        env = "ATLAS_ENABLE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub enable: Vec<String>,

    /// Optional file to leave out even if the pack turns it on (named as for
    /// --enable). A file left out later is removed like any dropped file.
    #[arg(
        long = "disable",
        env = "ATLAS_DISABLE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub disable: Vec<String>,

    /// A blob cache shared by the instances on this host: mods, resource and
    /// shader packs downloaded once are taken from it (hard-linked where the
    /// filesystem allows, re-hashed each time). Bound it with `cache-gc`.
    #[arg(long, env = "ATLAS_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// After a successful server sync, make the server launchable for the
    /// build's Minecraft version and loader (as `atlas-fetcher provision`)
    /// and write DIR/.atlas/launch.json.
    #[arg(long, env = "ATLAS_PROVISION", value_parser = clap::builder::BoolishValueParser::new())]
    pub provision: bool,

    #[command(flatten)]
    pub provisioning: ProvisionFlags,
}
