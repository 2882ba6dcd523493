//! The `atlas-fetcher` command line: argument parsing, logging setup, output
//! (human lines, a progress bar on a terminal, or one JSON report) and exit codes.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::SyncError;
use crate::exit;
use crate::plan::OnModified;
use crate::progress::{Phase, Progress};
use crate::provision::{ProvisionError, ProvisionOptions, Provisioned};
use crate::report::Report;
use crate::side::InstallSide;
use crate::sync::keychain::load_key;
use crate::sync::{SyncOptions, Syncer};

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

impl ProvisionFlags {
    /// Provisioning options for the build installed in `dir`.
    pub fn options(
        &self,
        dir: &std::path::Path,
        timeout: std::time::Duration,
    ) -> Result<ProvisionOptions, ProvisionError> {
        let mut o = ProvisionOptions::for_install(dir)?;
        o.java = self.java.clone();
        o.timeout = timeout;
        o.installer_timeout = std::time::Duration::from_secs(self.installer_timeout);
        o.upstreams = crate::provision::Upstreams {
            mojang_meta: self.mojang_meta.clone(),
            fabric_meta: self.fabric_meta.clone(),
            quilt_meta: self.quilt_meta.clone(),
            forge_maven: self.forge_maven.clone(),
            neoforge_maven: self.neoforge_maven.clone(),
        };
        Ok(o)
    }
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
    #[arg(long, default_value_t = crate::inspect::default_threads(), value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
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

    /// Per-request timeout in seconds (default 60): the longest wait for a
    /// connection, a response, or the next bytes of a body (the pointer request as a whole).
    #[arg(long, env = "ATLAS_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Overall deadline in seconds for checking and downloading; when it
    /// passes, the run stops and the directory is left as it was. Once files
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

impl SyncArgs {
    /// Whether to provision after the sync: `--provision` (or
    /// `ATLAS_PROVISION`), else `provision` in the config file.
    pub fn wants_provision(&self) -> Result<bool, SyncError> {
        if self.provision {
            return Ok(true);
        }
        Ok(match &self.config {
            Some(p) => crate::config::FetcherConfig::load(p)?.provision.unwrap_or(false),
            None => false,
        })
    }

    /// The options of this run: flags (and `ATLAS_*`) over the config file
    /// over the defaults. Loads the keys.
    pub fn options(&self) -> Result<SyncOptions, SyncError> {
        let cfg = match &self.config {
            Some(p) => crate::config::FetcherConfig::load(p)?,
            None => crate::config::FetcherConfig::default(),
        };
        let required = |flag: &str, key: &str| {
            SyncError::Usage(format!("--{flag} is required (or `{key}` in the --config file)"))
        };
        let source = self
            .source
            .clone()
            .or(cfg.source)
            .ok_or_else(|| required("source", "source"))?;
        let pack = self
            .pack
            .clone()
            .or(cfg.pack)
            .ok_or_else(|| required("pack", "pack"))?;
        let channel = self
            .channel
            .clone()
            .or(cfg.channel)
            .ok_or_else(|| required("channel", "channel"))?;
        let instance = self
            .instance
            .as_deref()
            .map(crate::instance::resolve)
            .transpose()?;
        let dir = match instance.clone() {
            Some(game) => game,
            None => self
                .dir
                .clone()
                .or(cfg.dir)
                .ok_or_else(|| required("dir", "dir"))?,
        };
        let names = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let pick = |flag: &[String], file: &[String]| {
            let f = names(flag);
            if f.is_empty() { names(file) } else { f }
        };
        // A flag (--key or --root) wins over both settings of the file.
        let root = match (&self.root, names(&self.keys).is_empty()) {
            (Some(r), _) => Some(r.clone()),
            (None, true) => cfg.root.clone(),
            (None, false) => None,
        };
        let keys = match root {
            Some(_) => Vec::new(),
            None => pick(&self.keys, &cfg.keys)
                .iter()
                .map(|k| load_key(k))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if keys.is_empty() && root.is_none() {
            return Err(SyncError::Usage(
                "--root or --key is required (or `root` or `keys` in the --config file)".into(),
            ));
        }
        let root = root
            .map(|r| crate::sync::keychain::load_root(&r, &pack))
            .transpose()?;
        let mut opts = SyncOptions::new(source, pack, channel, keys, dir);
        opts.root = root;
        let default_side = if instance.is_some() {
            InstallSide::Client
        } else {
            InstallSide::Server
        };
        opts.side = self.side.or(cfg.side).unwrap_or(default_side);
        opts.selection = crate::select::Selection {
            enable: pick(&self.enable, &cfg.enable).into_iter().collect(),
            disable: pick(&self.disable, &cfg.disable).into_iter().collect(),
        };
        opts.parallelism = self
            .parallelism
            .or(cfg.parallelism)
            .unwrap_or(crate::download::DEFAULT_PARALLELISM);
        opts.timeout = std::time::Duration::from_secs(self.timeout.or(cfg.timeout).unwrap_or(60));
        opts.deadline = self.deadline.or(cfg.deadline).map(std::time::Duration::from_secs);
        opts.retry.retries = self.retries.or(cfg.retries).unwrap_or(5);
        opts.on_modified = self.on_modified.or(cfg.on_modified).unwrap_or_default();
        opts.cache = self.cache.clone().or(cfg.cache);
        Ok(opts)
    }
}

/// Entry point of the binary: parses arguments, sets up logging, runs, and
/// returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::UPDATED
            };
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    runtime.block_on(run(cli))
}

/// Runs a parsed command line; returns the exit code. Output goes to stdout/stderr.
pub async fn run(cli: Cli) -> i32 {
    let (json, result) = match cli.command {
        Command::Sync(args) => (args.json, run_sync(*args).await),
        Command::Status(args) => (args.json, run_status(&args)),
        Command::Verify(args) => (args.json, run_verify(args).await),
        Command::Rollback(args) => (args.json, run_rollback(args).await),
        Command::CacheGc(args) => (args.json, run_cache_gc(&args)),
        Command::Provision(args) => (args.json, run_provision(args).await),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let provision = e.downcast_ref::<ProvisionError>();
            let code = e.downcast_ref::<SyncError>().map_or(
                provision.map_or(exit::INTERNAL, ProvisionError::exit_code),
                SyncError::exit_code,
            );
            let kind = e.downcast_ref::<SyncError>().map_or(
                provision.map_or("internal", ProvisionError::kind),
                SyncError::kind,
            );
            let msg = format!("{e:#}");
            if json {
                let v = serde_json::json!({
                    "outcome": "error", "kind": kind, "exit_code": code, "error": msg,
                });
                let _ = writeln!(std::io::stdout(), "{v}");
            }
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            code
        }
    }
}

fn run_status(args: &StatusArgs) -> anyhow::Result<i32> {
    let s = crate::inspect::status(&args.dir)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&s)?)?;
        return Ok(exit::UPDATED);
    }
    if !s.installed {
        writeln!(out, "{}: nothing installed", args.dir.display())?;
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    if s.installed {
        writeln!(out, "pack      {}", opt(s.pack.clone()))?;
        writeln!(out, "channel   {}", opt(s.channel.clone()))?;
        writeln!(out, "version   {}", opt(s.version.map(|v| v.to_string())))?;
        writeln!(out, "build     {}", opt(s.build.clone()))?;
        writeln!(out, "side      {}", opt(s.side.map(|v| v.as_str().to_owned())))?;
        writeln!(
            out,
            "files     {} ({} changed by you and kept)",
            s.files, s.kept_modified
        )?;
        writeln!(
            out,
            "expires   {}",
            opt(s.pointer_expires_at.map(|t| format!("{t} (unix seconds)")))
        )?;
    }
    if s.journal_pending {
        writeln!(
            out,
            "journal   pending: an apply was interrupted; the next sync finishes or undoes it"
        )?;
    }
    Ok(exit::UPDATED)
}

async fn run_verify(args: VerifyArgs) -> anyhow::Result<i32> {
    let (dir, threads) = (args.dir.clone(), args.threads);
    let v = tokio::task::spawn_blocking(move || crate::inspect::verify(&dir, threads))
        .await
        .context("verify task")??;
    let mut repaired = None;
    if args.repair && !v.clean() {
        let install = crate::state::load_install(&crate::state::StatePaths::new(&args.dir).install)?
            .context("no install.json to repair")?;
        let keys = args
            .keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| load_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        let source = args.source.clone().context("--repair needs --source")?;
        let mut opts = SyncOptions::new(source, install.pack, install.channel, keys, args.dir.clone());
        opts.side = install.side;
        opts.selection = install.selection.clone();
        opts.on_modified = OnModified::Replace;
        opts.treat_as_modified = v.drifted().cloned().collect();
        let report = Syncer::new(opts)?.sync(false, &CliProgress::new(true)).await?;
        repaired = Some(report);
    }
    let code = match &repaired {
        Some(r) => r.exit_code(),
        None if v.clean() => exit::UPDATED,
        None => exit::DRIFT,
    };
    let outcome = match (&repaired, v.clean()) {
        (Some(_), _) => "repaired",
        (None, true) => "clean",
        (None, false) => "drift",
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let j = serde_json::json!({
            "outcome": outcome, "exit_code": code, "verify": v, "repair": repaired,
        });
        writeln!(out, "{j}")?;
        return Ok(code);
    }
    for p in &v.modified {
        writeln!(out, "modified {p}")?;
    }
    for p in &v.missing {
        writeln!(out, "missing  {p}")?;
    }
    if v.journal_pending {
        writeln!(
            out,
            "an interrupted apply is pending; the next sync finishes or undoes it"
        )?;
    }
    writeln!(
        out,
        "verified {} files, {} bytes: {}",
        v.checked,
        v.bytes,
        if v.clean() {
            "clean".to_owned()
        } else {
            format!("{} modified, {} missing", v.modified.len(), v.missing.len())
        }
    )?;
    if let Some(r) = &repaired {
        writeln!(out, "repair: {}", r.summary())?;
    }
    Ok(code)
}

fn run_cache_gc(args: &CacheGcArgs) -> anyhow::Result<i32> {
    let cache = crate::cache::BlobCache::open(&args.cache)?;
    let r = cache.gc(args.max_mib.saturating_mul(1024 * 1024))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else {
        writeln!(
            out,
            "removed {} blobs ({} bytes); {} bytes held only by the cache; {} blobs in use by instances kept",
            r.removed, r.freed_bytes, r.cache_only_bytes, r.in_use
        )?;
    }
    Ok(exit::UPDATED)
}

async fn run_rollback(args: RollbackArgs) -> anyhow::Result<i32> {
    // Pack, channel, side and choices come from the install; no key is used.
    let opts = SyncOptions::new(args.source, "unknown", "unknown", Vec::new(), args.dir);
    let syncer = Syncer::for_rollback(opts)?;
    let progress = CliProgress::new(args.json);
    let result = syncer.rollback(args.dry_run, &progress).await;
    progress.finish();
    let report = result?;
    print_report(&report, args.json).context("writing the report to stdout")?;
    if !args.json && !args.dry_run {
        let from = report.previous_build.as_deref().unwrap_or("?");
        writeln!(
            std::io::stdout(),
            "rolled back from build {from}; `sync` stays here until the channel points to another build"
        )?;
    }
    Ok(report.exit_code())
}

async fn run_sync(args: SyncArgs) -> anyhow::Result<i32> {
    let opts = args.options()?;
    let provision = args.wants_provision()? && !args.dry_run;
    if provision && opts.side != InstallSide::Server {
        return Err(SyncError::Usage("--provision is for server installs (--side server)".into()).into());
    }
    let (dir, timeout) = (opts.dir.clone(), opts.timeout);
    let syncer = Syncer::new(opts)?;
    let progress = CliProgress::new(args.json);
    let result = syncer.sync(args.dry_run, &progress).await;
    progress.finish();
    let report = result?;
    if !provision {
        print_report(&report, args.json).context("writing the report to stdout")?;
        return Ok(report.exit_code());
    }
    let p = crate::provision::provision(&args.provisioning.options(&dir, timeout)?).await?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("provision".into(), serde_json::to_value(&p)?);
        }
        writeln!(std::io::stdout(), "{v}")?;
    } else {
        print_report(&report, false).context("writing the report to stdout")?;
        print_provisioned(&p)?;
    }
    // Provisioning that changed the directory is an update even when the build was current.
    Ok(if p.changed {
        exit::UPDATED
    } else {
        report.exit_code()
    })
}

async fn run_provision(args: ProvisionArgs) -> anyhow::Result<i32> {
    let timeout = std::time::Duration::from_secs(args.timeout.unwrap_or(60));
    let p = crate::provision::provision(&args.upstreams.options(&args.dir, timeout)?).await?;
    let code = if p.changed { exit::UPDATED } else { exit::CURRENT };
    if args.json {
        let v = serde_json::json!({
            "outcome": if p.changed { "provisioned" } else { "current" },
            "exit_code": code, "changed": p.changed, "launch": p.launch,
        });
        writeln!(std::io::stdout(), "{v}")?;
    } else {
        print_provisioned(&p)?;
    }
    Ok(code)
}

fn print_provisioned(p: &Provisioned) -> std::io::Result<()> {
    let l = &p.launch;
    let what = if p.changed {
        "provisioned"
    } else {
        "already provisioned:"
    };
    let run = match (&l.jar, &l.args_file) {
        (Some(j), _) => format!("java -jar {j}"),
        (None, Some(a)) => format!("java @{a}"),
        (None, None) => "?".into(),
    };
    let loader = if l.loader_version.is_empty() {
        l.loader.clone()
    } else {
        format!("{} {}", l.loader, l.loader_version)
    };
    writeln!(
        std::io::stdout(),
        "{what} {loader} for Minecraft {}; needs Java {}+; starts with `{run}` (.atlas/launch.json)",
        l.minecraft,
        l.java_major
    )
}

fn print_report(report: &Report, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::to_string(report).map_err(std::io::Error::other)?;
        return writeln!(out, "{v}");
    }
    if report.dry_run {
        let lines = [
            ("add", &report.files.added),
            ("update", &report.files.updated),
            ("repair", &report.files.repaired),
            ("remove", &report.files.removed),
        ];
        for (verb, paths) in lines {
            for p in paths {
                writeln!(out, "{verb:<7}{p}")?;
            }
        }
    }
    for p in &report.files.modified {
        writeln!(
            out,
            "kept   {p} (changed locally; not updated: restore it or use --on-modified backup|replace)"
        )?;
    }
    for p in &report.files.dropped_modified {
        writeln!(
            out,
            "kept   {p} (dropped by the pack but changed locally; no longer managed)"
        )?;
    }
    if let Some(d) = &report.backup_dir {
        writeln!(out, "backed up your changed files to {d}")?;
    }
    writeln!(out, "{}", report.summary())
}

/// Progress for the terminal: a bar when stderr is a terminal, plain phase
/// lines otherwise, nothing with `--json`.
#[derive(Debug)]
struct CliProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    started: AtomicBool,
}

impl CliProgress {
    fn new(json: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (!json && tty).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            plain: !json && !tty,
            started: AtomicBool::new(false),
        }
    }

    fn line(&self, msg: &str) {
        if self.plain {
            let _ = writeln!(std::io::stderr(), "{msg}");
        } else if let Some(bar) = &self.bar {
            bar.set_message(msg.to_owned());
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for CliProgress {
    fn phase(&self, phase: &Phase) {
        match phase {
            // Not shown: a run that ends "current" prints a single line.
            Phase::Pointer { .. } => {}
            Phase::Manifest { url } => self.line(&format!("fetching manifest {url}")),
            Phase::Planning => self.line("comparing with the installed files"),
            Phase::Download { blobs, bytes } => {
                self.line(&format!("downloading {blobs} files, {bytes} bytes"));
                if let Some(bar) = &self.bar {
                    bar.set_length(*bytes);
                    let style = ProgressStyle::with_template(
                        "{msg}\n{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                    );
                    if let Ok(style) = style {
                        bar.set_style(style);
                    }
                    self.started.store(true, Ordering::Relaxed);
                }
            }
            Phase::Apply { files, removals } => {
                self.line(&format!("installing {files} files, removing {removals}"))
            }
            Phase::State => self.line("writing install state"),
        }
    }

    fn bytes(&self, n: u64) {
        if let Some(bar) = &self.bar
            && self.started.load(Ordering::Relaxed)
        {
            bar.inc(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed_and_help_lists_exit_codes() {
        Cli::command().debug_assert();
        let help = Cli::command()
            .find_subcommand_mut("sync")
            .expect("sync")
            .render_long_help()
            .to_string();
        assert!(help.contains("Exit codes"));
        assert!(help.contains("ATLAS_SOURCE"));
    }

    #[test]
    fn parses_repeated_keys_and_side() {
        let cli = Cli::try_parse_from([
            "atlas-fetcher",
            "sync",
            "--source",
            "http://x/",
            "--pack",
            "p",
            "--channel",
            "dev",
            "--key",
            "a.pub",
            "--key",
            "b.pub",
            "--dir",
            "/tmp/x",
            "--side",
            "client",
        ])
        .expect("parse");
        let Command::Sync(a) = cli.command else {
            panic!("sync expected");
        };
        assert_eq!(a.keys, ["a.pub", "b.pub"]);
        let o = a.options().expect_err("key files do not exist").to_string();
        assert!(o.contains("a.pub"), "{o}");
        assert_eq!(a.side, Some(InstallSide::Client));
        assert_eq!(
            (a.parallelism, a.on_modified),
            (None, None),
            "defaults are applied in options()"
        );
        let v = Cli::try_parse_from(["atlas-fetcher", "verify", "--dir", "/tmp/x", "--threads", "3"])
            .expect("verify");
        let Command::Verify(v) = v.command else {
            panic!("verify expected")
        };
        assert_eq!((v.threads, v.repair, v.json), (3, false, false));
        let sync = Cli::try_parse_from(["atlas-fetcher", "sync", "--pack", "p"]).expect("parses");
        let Command::Sync(a) = sync.command else {
            panic!("sync expected")
        };
        let err = a.options().expect_err("no source");
        assert_eq!(err.exit_code(), exit::USAGE);
        assert!(
            err.to_string()
                .contains("--source is required (or `source` in the --config file)"),
            "{err}"
        );
    }

    #[test]
    fn flags_override_the_config_file_which_overrides_defaults() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = atlas_proto::SecretKey::generate()
            .expect("key")
            .public()
            .to_text();
        let cfg = tmp.path().join("fetcher.toml");
        std::fs::write(
            &cfg,
            format!(
                "source = \"http://cdn/\"\npack = \"p\"\nchannel = \"beta\"\nkeys = [\"{key}\"]\n\
                 dir = \"srv\"\nretries = 2\nparallelism = 3\nenable = [\"shiny.zip\"]\n"
            ),
        )
        .expect("write");
        let cfg_arg = cfg.display().to_string();
        let parse = |extra: &[&str]| {
            let mut v = vec!["atlas-fetcher", "sync", "--config", cfg_arg.as_str()];
            v.extend_from_slice(extra);
            let Command::Sync(a) = Cli::try_parse_from(v).expect("parse").command else {
                panic!("sync expected")
            };
            a.options().expect("options")
        };
        let o = parse(&[]);
        assert_eq!(
            (o.channel.as_str(), o.retry.retries, o.parallelism),
            ("beta", 2, 3)
        );
        assert_eq!(o.dir, tmp.path().join("srv"), "relative to the config file");
        assert_eq!(o.timeout, std::time::Duration::from_secs(60), "built-in default");
        assert!(o.selection.enable.contains("shiny.zip"));
        let o = parse(&[
            "--channel",
            "production",
            "--retries",
            "0",
            "--enable",
            "other.jar",
        ]);
        assert_eq!((o.channel.as_str(), o.retry.retries), ("production", 0));
        assert_eq!(o.selection.enable.iter().collect::<Vec<_>>(), ["other.jar"]);
    }
}
