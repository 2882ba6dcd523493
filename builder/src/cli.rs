//! The `atlas-builder` command line: argument parsing, output (human or
//! `--json`) and exit codes. All work is done by the library modules.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::plan::{PlanError, PlanOptions};
use crate::pointer::PointerUpdateError;
use crate::promote::{PromoteError, PromoteFrom};
use crate::publish::{PublishError, PublishOptions, PublishReport};
use crate::repo::PackSource;
use crate::signing::{self, SigningError};
use crate::store::{self, S3Settings, StoreError};

/// Exit codes of `atlas-builder`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Unexpected error.
    pub const ERROR: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// The pack is invalid (pack.toml, files, paths) or the repository unreadable.
    pub const PACK: u8 = 3;
    /// The store could not be read or written.
    pub const STORE: u8 = 4;
    /// Another publish or promote changed the channel meanwhile; run again.
    pub const CONFLICT: u8 = 5;
    /// No usable signing key.
    pub const KEY: u8 = 6;
}

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 unexpected error; 2 bad command line; 3 invalid pack or repository;
4 store error; 5 the channel changed concurrently (run again); 6 no usable signing key.

Environment: ATLAS_SIGNING_KEY (secret key text), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL, AWS_REGION (S3 stores), RUST_LOG (log filter, e.g. atlas_builder=debug),
ATLAS_PUBLIC_URL (--public-url), ATLAS_MIRROR (--mirror), GITHUB_ACTIONS=true (turns on --github).";

/// Build a Minecraft modpack from git into a signed, content-addressed static store.
#[derive(Debug, Parser)]
#[command(name = "atlas-builder", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Print one JSON object on stdout instead of human-readable lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// GitHub Actions: write step outputs ($GITHUB_OUTPUT), a job summary
    /// ($GITHUB_STEP_SUMMARY) and error annotations. On when GITHUB_ACTIONS=true.
    #[arg(long, global = true)]
    pub github: bool,
    /// Public base URL of the store (e.g. the CDN): publish and promote then write the
    /// .mrpack and packwiz exports with download URLs under it; also the links of --github.
    #[arg(long, global = true, env = "ATLAS_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a signing key pair: NAME.key (secret, mode 0600) and NAME.pub.
    Keygen {
        /// Directory to write the key files into.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// Base name of the key files.
        #[arg(long, default_value = "atlas-signing")]
        name: String,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Build the pack at the repository's HEAD commit, upload what the store
    /// lacks, and point CHANNEL at the build.
    Publish {
        /// The pack directory (a git repository or a directory inside one).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Channel to point at the new build [default: `[channels] default` of atlas.toml, else dev].
        #[arg(long)]
        channel: Option<String>,
        /// Build the working tree as it is, uncommitted changes included (the manifest says so).
        #[arg(long)]
        allow_dirty: bool,
        /// Print what would be uploaded; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Re-sign the pointer even when the channel already points at this build.
        #[arg(long)]
        force_pointer: bool,
        /// Keyset files to upload before the pointer [default: REPO/.atlas/keys when it exists].
        #[arg(long)]
        keys_dir: Option<PathBuf>,
        /// Repository URL recorded in the manifest (default: remote.origin.url).
        #[arg(long, env = "ATLAS_REPOSITORY_URL")]
        repository_url: Option<String>,
        /// Parallel uploads.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[command(flatten)]
        signing: SigningArgs,
        #[command(flatten)]
        mods: ModArgs,
    },
    /// Check the pack offline (packwiz or native) and report every problem at once;
    /// exit 3 if any is an error.
    Check {
        /// The pack directory (a git repository or a directory inside one); checks HEAD's files.
        #[arg(long, default_value = ".", conflicts_with = "dir")]
        repo: PathBuf,
        /// Check the working tree as it is, uncommitted changes included.
        #[arg(long, conflicts_with = "dir")]
        allow_dirty: bool,
        /// Check a plain directory instead, which need not be a git repository.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Show what a publish would download and upload; writes nothing to the
    /// store and needs no signing key (mods are downloaded into the cache).
    Plan(PlanArgs),
    /// The changelog between two builds in the store: mods added, removed and
    /// updated (by name and version), and other files changed.
    Diff(DiffArgs),
    /// Point channel TO at the build channel FROM points to (or at --build).
    Promote {
        #[command(flatten)]
        store: StoreArgs,
        /// Pack id.
        #[arg(long)]
        pack: String,
        /// Channel whose current build is promoted.
        #[arg(long, conflicts_with = "build", required_unless_present = "build")]
        from: Option<String>,
        /// Build id (64 hex) to promote instead of a channel's current build; also how to roll back.
        #[arg(long)]
        build: Option<String>,
        /// Channel to point at the build.
        #[arg(long)]
        to: String,
        /// Extra public keys (`ed25519:...` or a .pub file) that may have signed the FROM pointer.
        #[arg(long = "trust-key")]
        trust_keys: Vec<String>,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Re-sign channel pointers with a fresh expiry (same build, next version).
    /// Run on a schedule shorter than --expires-in so hosts never see an expired pointer.
    Resign(ResignArgs),
    /// The pack's keyset chain (root keys, pointer keys): offline commands
    /// that write signed keys/<N>.json files for `publish` to upload.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `atlas-builder key ...`: each writes the next `<keys-dir>/<N>.json`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Start the chain: N root keys (secret files, mode 0600), one pointer
    /// key, and keys/1.json signed by the root keys. Give hosts 1.json (--root).
    InitRoot {
        /// Pack id.
        #[arg(long)]
        pack: String,
        /// Directory of the keyset files (commit it; `publish` uploads it).
        #[arg(long, default_value = crate::keyset::DEFAULT_KEYS_DIR)]
        keys_dir: PathBuf,
        /// Directory for the secret key files (keep it offline, never commit it).
        #[arg(long)]
        secret_dir: PathBuf,
        /// Number of root keys.
        #[arg(long, default_value_t = 3)]
        roots: u32,
        /// Root keys that must sign each next keyset.
        #[arg(long, default_value_t = 2)]
        threshold: u32,
        /// Overwrite existing secret key files.
        #[arg(long)]
        force: bool,
    },
    /// Write the next keyset with replaced pointer and/or root keys, signed
    /// by a threshold of the current root keys and of the new ones.
    Rotate {
        #[arg(long, default_value = crate::keyset::DEFAULT_KEYS_DIR)]
        keys_dir: PathBuf,
        /// Root secret key file to sign with (repeat).
        #[arg(long = "sign-with", value_name = "FILE")]
        sign_with: Vec<PathBuf>,
        /// New pointer public key (`ed25519:...` or a .pub file; repeat); replaces the current ones.
        #[arg(long = "pointer-key", value_name = "PUBLIC_KEY")]
        pointer_keys: Vec<String>,
        /// Pointer keys that must sign a channel pointer.
        #[arg(long)]
        pointer_threshold: Option<u32>,
        /// New root public key (repeat); replaces the current root keys.
        #[arg(long = "root-key", value_name = "PUBLIC_KEY")]
        root_keys: Vec<String>,
        /// Root keys that must sign the next keyset.
        #[arg(long)]
        root_threshold: Option<u32>,
    },
    /// Write the next keyset without KEYID (root or pointer key), listing it as revoked for good.
    Revoke {
        /// Key id (64 hex) to revoke.
        key_id: String,
        #[arg(long, default_value = crate::keyset::DEFAULT_KEYS_DIR)]
        keys_dir: PathBuf,
        /// Root secret key file to sign with (repeat).
        #[arg(long = "sign-with", value_name = "FILE")]
        sign_with: Vec<PathBuf>,
        /// Replacement pointer public key (repeat), needed when revoking the only pointer key.
        #[arg(long = "pointer-key", value_name = "PUBLIC_KEY")]
        pointer_keys: Vec<String>,
    },
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The pack directory (a git repository or a directory inside one).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Plan the working tree as it is, uncommitted changes included.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Repository URL recorded in the manifest (default: remote.origin.url).
    #[arg(long, env = "ATLAS_REPOSITORY_URL")]
    pub repository_url: Option<String>,
    /// Parallel store requests.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[command(flatten)]
    pub mods: ModArgs,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// BUILD_A and BUILD_B (64 hex build ids); either may be replaced by
    /// --from-channel / --to-channel.
    #[arg(value_name = "BUILD", num_args = 0..=2)]
    pub builds: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Pack id.
    #[arg(long)]
    pub pack: String,
    /// Compare from the build this channel points to (instead of BUILD_A).
    #[arg(long)]
    pub from_channel: Option<String>,
    /// Compare to the build this channel points to (instead of BUILD_B).
    #[arg(long)]
    pub to_channel: Option<String>,
}

/// Arguments of `resign`.
#[derive(Debug, Args)]
pub struct ResignArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Pack id.
    #[arg(long)]
    pub pack: String,
    /// Channels to re-sign (repeat the flag for several).
    #[arg(long = "channel", required = true)]
    pub channels: Vec<String>,
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// Where mods come from and where downloads are cached.
#[derive(Debug, Args)]
pub struct ModArgs {
    /// Download cache (default: $XDG_CACHE_HOME/atlas or ~/.cache/atlas); restore it in CI.
    #[arg(long, env = "ATLAS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Folder of manually downloaded files (CurseForge files whose distribution is disabled), matched by hash.
    #[arg(long)]
    pub manual_dir: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, default_value_t = 8)]
    pub downloads: usize,
    /// Modrinth API base URL.
    #[arg(long, default_value = crate::resolve::MODRINTH_API)]
    pub modrinth_api: String,
    /// CurseForge API base URL (key: the CURSEFORGE_API_KEY environment variable).
    #[arg(long, default_value = crate::resolve::CURSEFORGE_API)]
    pub curseforge_api: String,
    /// Pack id for packwiz packs (default: derived from the pack's name).
    #[arg(long)]
    pub pack_id: Option<String>,
    /// Dependency problems in Modrinth's metadata (missing required mods,
    /// incompatible mods, another Minecraft version or loader): `warn` or `error`.
    #[arg(long, default_value = "warn")]
    pub deps: crate::resolve::DepsPolicy,
    /// Override atlas.toml's `[mirror]` policy for every source: `mirror` (copy
    /// every mod into the store) or `upstream` (hosts download mods upstream).
    #[arg(long, env = "ATLAS_MIRROR", value_parser = parse_mirror)]
    pub mirror: Option<crate::settings::MirrorMode>,
}

fn parse_mirror(s: &str) -> Result<crate::settings::MirrorMode, String> {
    match s {
        "mirror" => Ok(crate::settings::MirrorMode::Mirror),
        "upstream" => Ok(crate::settings::MirrorMode::Upstream),
        other => Err(format!("`{other}`: use `mirror` or `upstream`")),
    }
}

impl ModArgs {
    fn options(&self) -> crate::resolve::ModOptions {
        let cache_dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => crate::cache::default_dir().unwrap_or_else(|| std::env::temp_dir().join("atlas-cache")),
        };
        let mut o = crate::resolve::ModOptions::new(cache_dir);
        o.resolve.manual_dir = self.manual_dir.clone();
        o.resolve.modrinth_api = self.modrinth_api.clone();
        o.resolve.curseforge_api = self.curseforge_api.clone();
        o.download.concurrency = self.downloads.max(1);
        o.pack_id = self.pack_id.clone();
        o.deps = self.deps;
        o.mirror_override = self.mirror;
        o
    }
}

/// Where the store is.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Store URL: a directory path, file://PATH, or s3://BUCKET[/PREFIX].
    #[arg(long, env = "ATLAS_STORE")]
    pub store: String,
    /// S3 endpoint URL (Cloudflare R2: https://ACCOUNT.r2.cloudflarestorage.com).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region (`auto` for R2).
    #[arg(long, env = "AWS_REGION")]
    pub s3_region: Option<String>,
    /// Use path-style S3 URLs (ENDPOINT/BUCKET/KEY), as most non-AWS servers need.
    #[arg(long)]
    pub s3_path_style: bool,
}

impl StoreArgs {
    fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            force_path_style: self.s3_path_style,
            ..S3Settings::default()
        }
    }
}

/// How the pointer is signed.
#[derive(Debug, Args)]
pub struct SigningArgs {
    /// Secret key file (default: the ATLAS_SIGNING_KEY environment variable).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Lifetime of the signed pointer (e.g. 30d, 12h); hosts refuse it afterwards
    /// [default: publish: `[channels] expires-in` of atlas.toml, else 30d; others: 30d].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires_in: Option<Duration>,
}

impl SigningArgs {
    /// `--expires-in`, else the file's value, else 30 days.
    fn expires_in(&self, file: Option<Duration>) -> Duration {
        self.expires_in
            .or(file)
            .unwrap_or(crate::settings::DEFAULT_EXPIRES_IN)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Maps an error chain to an exit code.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::Conflict { .. } => exit::CONFLICT,
                _ => exit::STORE,
            };
        }
        if cause.is::<PlanError>()
            || cause.is::<crate::repo::RepoError>()
            || cause.is::<crate::pack::PackError>()
            || cause.is::<crate::check::CheckFailed>()
            || cause.is::<crate::check::CheckError>()
            || cause.is::<crate::resolve::BuildError>()
        {
            return exit::PACK;
        }
        if cause.is::<crate::builds::BuildLookupError>() {
            return exit::STORE;
        }
        if let Some(e) = cause.downcast_ref::<crate::keyset::KeysetCmdError>() {
            return match e {
                crate::keyset::KeysetCmdError::Store(_) | crate::keyset::KeysetCmdError::Conflict { .. } => {
                    exit::STORE
                }
                _ => exit::KEY,
            };
        }
        if cause.is::<SigningError>() {
            return exit::KEY;
        }
        if cause.is::<PointerUpdateError>() {
            return exit::STORE;
        }
        if let Some(e) = cause.downcast_ref::<PromoteError>() {
            return match e {
                PromoteError::Store(StoreError::Conflict { .. }) => exit::CONFLICT,
                PromoteError::Pointer(PointerUpdateError::Store(StoreError::Conflict { .. })) => {
                    exit::CONFLICT
                }
                _ => exit::STORE,
            };
        }
        if let Some(e) = cause.downcast_ref::<PublishError>() {
            return match e {
                PublishError::Repo(_) => exit::PACK,
                PublishError::Store(StoreError::Conflict { .. })
                | PublishError::Pointer(PointerUpdateError::Store(StoreError::Conflict { .. })) => {
                    exit::CONFLICT
                }
                _ => exit::STORE,
            };
        }
    }
    exit::ERROR
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln_error(&anyhow::anyhow!("starting the async runtime: {e}"));
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln_error(&e);
            ExitCode::from(exit_code(&e))
        }
    }
}

#[allow(clippy::print_stderr)]
fn eprintln_error(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,atlas_builder=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn emit<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).context("serialising the report")?
        );
    } else {
        println!("{}", human());
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Plans the pack (resolving and downloading mods) and publishes it, or with
/// `opts.dry_run` reports what would be uploaded.
#[allow(clippy::too_many_arguments)]
async fn plan_and_publish(
    source: &PackSource,
    repository_url: Option<String>,
    store: &StoreArgs,
    mods: &ModArgs,
    key: Option<&atlas_proto::SecretKey>,
    opts: &PublishOptions,
    gh: Option<&crate::github::Github>,
    exports: Option<&crate::export::ExportOptions>,
) -> anyhow::Result<PublishReport> {
    let st = store::open(&store.store, &store.settings()).await?;
    let mut mod_opts = mods.options();
    let plan_opts = PlanOptions { repository_url };
    let (plan, early) = if opts.dry_run || st.keeps_cached_files() {
        if !opts.dry_run {
            // The store links the cache's files: write them straight to disk.
            mod_opts.download.write_mode = crate::download::WriteMode::Direct;
        }
        let (plan, _) = crate::resolve::plan_pack(source, &plan_opts, &mod_opts).await?;
        (plan, None)
    } else {
        // A remote store: upload each mirrored download as it lands, while
        // the rest download (the channel closes when planning drops `mod_opts`).
        let (tx, rx) = crate::early::channel();
        mod_opts.landed = Some(tx);
        let planning = async move { crate::resolve::plan_pack(source, &plan_opts, &mod_opts).await };
        let (planned, early) = tokio::join!(
            planning,
            crate::early::upload_landed(st.as_ref(), rx, opts.concurrency)
        );
        (planned?.0, Some(early))
    };
    let report =
        crate::publish::publish_with_exports(&plan, source, st.as_ref(), key, opts, exports, early.as_ref())
            .await?;
    if let Some(gh) = gh {
        crate::github::publish(gh, st.as_ref(), &plan, &report, &opts.channel).await?;
    }
    Ok(report)
}

fn publish_human(report: &PublishReport) -> String {
    let mut s = format!(
        "{} {} ({} files) build {}\n  blobs: {} new ({}), {} reused ({})\n  manifest: {} ({})",
        report.plan.pack,
        report.plan.version,
        report.plan.files,
        report.plan.build,
        report.blobs_new,
        human_bytes(report.bytes_new),
        report.blobs_reused,
        human_bytes(report.bytes_reused),
        report.manifest_key,
        if report.manifest_new {
            "new"
        } else {
            "already stored"
        },
    );
    if let Some(line) = mods_line(&report.mods) {
        s.push_str(&line);
    }
    match (&report.pointer, report.dry_run) {
        (_, true) => s.push_str("\n  dry run: nothing was written to the store"),
        (Some(p), false) => s.push_str(&format!(
            "\n  channel {}: version {} ({}) -> {}",
            p.channel,
            p.version,
            p.status.as_str(),
            p.key
        )),
        (None, false) => {}
    }
    s
}

async fn diff(json: bool, args: DiffArgs) -> anyhow::Result<()> {
    use crate::diff::BuildRef;
    atlas_proto::layout::validate_pack_id(&args.pack)?;
    let mut builds = args.builds.into_iter();
    let mut pick = |channel: Option<String>, what: &str, flag: &str| -> anyhow::Result<BuildRef> {
        if let Some(c) = channel {
            atlas_proto::layout::validate_channel(&c)?;
            return Ok(BuildRef::Channel(c));
        }
        let b = builds
            .next()
            .with_context(|| format!("give {what} as a build id, or {flag} CHANNEL"))?;
        Ok(BuildRef::Build(
            b.parse().with_context(|| format!("{what} `{b}`"))?,
        ))
    };
    let from = pick(args.from_channel, "BUILD_A", "--from-channel")?;
    let to = pick(args.to_channel, "BUILD_B", "--to-channel")?;
    if let Some(extra) = builds.next() {
        anyhow::bail!("unexpected argument `{extra}`: give two builds, or one build and a channel");
    }
    let st = store::open(&args.store.store, &args.store.settings()).await?;
    let log = crate::diff::diff_builds(st.as_ref(), &args.pack, &from, &to).await?;
    emit(json, &log, || log.human())
}

/// The mods line of a publish or plan report (`None` for packs without mods).
fn mods_line(m: &crate::resolve::ModsReport) -> Option<String> {
    (m.mods > 0).then(|| {
        let mut s = format!(
            "\n  mods: {} ({} downloaded, {}; {} cached; {} manual; {} upstream-only)",
            m.mods,
            m.downloaded,
            human_bytes(m.bytes_downloaded),
            m.cached,
            m.manual,
            m.upstream_only
        );
        for p in &m.deps {
            s.push_str(&format!("\n  warning: {p}"));
        }
        s
    })
}

async fn resign(json: bool, args: ResignArgs, gh: Option<&crate::github::Github>) -> anyhow::Result<()> {
    atlas_proto::layout::validate_pack_id(&args.pack)?;
    let key = signing::load_secret_key(args.signing.key_file.as_deref())?;
    let st = store::open(&args.store.store, &args.store.settings()).await?;
    crate::keyset::check_signing_key(st.as_ref(), &args.pack, &key.public()).await?;
    let mut updates = Vec::new();
    for channel in &args.channels {
        atlas_proto::layout::validate_channel(channel)?;
        let update = crate::pointer::resign(
            st.as_ref(),
            &key,
            &args.pack,
            channel,
            now(),
            args.signing.expires_in(None),
        )
        .await?
        .with_context(|| {
            format!(
                "channel `{channel}` of pack `{}` has no pointer in {}",
                args.pack,
                st.describe()
            )
        })?;
        updates.push(update);
    }
    if let Some(gh) = gh {
        let (outputs, summary) = crate::github::resign_summary(gh, &st.describe(), &args.pack, &updates);
        gh.emit(&outputs, &summary)?;
    }
    emit(json, &updates, || {
        updates
            .iter()
            .map(|u| {
                format!(
                    "{}: version {} expires at {} (Unix seconds)",
                    u.channel, u.version, u.expires_at
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn key_command(json: bool, cmd: KeyCommand) -> anyhow::Result<()> {
    use crate::keyset::{Rotation, init_root, rotate};
    let keys = |v: &[String]| -> anyhow::Result<Option<Vec<atlas_proto::PublicKey>>> {
        if v.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            v.iter()
                .map(|k| signing::parse_public_key_arg(k))
                .collect::<Result<Vec<_>, _>>()?,
        ))
    };
    let out = match cmd {
        KeyCommand::InitRoot {
            pack,
            keys_dir,
            secret_dir,
            roots,
            threshold,
            force,
        } => init_root(&keys_dir, &secret_dir, &pack, roots, threshold, now(), force)?,
        KeyCommand::Rotate {
            keys_dir,
            sign_with,
            pointer_keys,
            pointer_threshold,
            root_keys,
            root_threshold,
        } => {
            let change = Rotation {
                pointer_keys: keys(&pointer_keys)?,
                pointer_threshold,
                root_keys: keys(&root_keys)?,
                root_threshold,
                revoke: None,
            };
            rotate(&keys_dir, &change, &sign_with, now())?
        }
        KeyCommand::Revoke {
            key_id,
            keys_dir,
            sign_with,
            pointer_keys,
        } => {
            let change = Rotation {
                pointer_keys: keys(&pointer_keys)?,
                revoke: Some(key_id.trim().to_ascii_lowercase()),
                ..Rotation::default()
            };
            rotate(&keys_dir, &change, &sign_with, now())?
        }
    };
    emit(json, &out, || {
        let mut s = format!(
            "wrote {} (keyset {}): root keys {} of [{}], pointer keys {} of [{}]",
            out.keyset_file.display(),
            out.version,
            out.root_threshold,
            out.root_key_ids.join(", "),
            out.pointer_threshold,
            out.pointer_key_ids.join(", ")
        );
        if !out.revoked.is_empty() {
            s.push_str(&format!("\nrevoked: {}", out.revoked.join(", ")));
        }
        for f in &out.secret_key_files {
            let pointer = f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pointer"));
            let home = if pointer {
                format!("store its content as the CI secret {}", signing::SIGNING_KEY_ENV)
            } else {
                "a root key: keep it offline".to_owned()
            };
            s.push_str(&format!("\nsecret key: {} (mode 0600; {home})", f.display()));
        }
        s.push_str("\ncommit the keyset file; `publish` uploads it before the next pointer");
        s
    })
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let gh = crate::github::Github::detect(cli.github, cli.public_url.clone());
    let gh = gh.as_ref();
    // Checked only by the commands that write exports.
    let public_url = cli.public_url.clone();
    let exports = || {
        public_url
            .as_deref()
            .map(crate::export::ExportOptions::new)
            .transpose()
    };
    match cli.command {
        Command::Resign(args) => resign(cli.json, args, gh).await,
        Command::Key(cmd) => key_command(cli.json, cmd),
        Command::Keygen { out_dir, name, force } => {
            let out = signing::keygen(&out_dir, &name, force)?;
            emit(cli.json, &out, || {
                format!(
                    "secret key: {} (mode 0600; store its content as the CI secret {})\npublic key: {} (give it to hosts: --key)\nkey id:     {}\n{}",
                    out.secret_key_file.display(),
                    signing::SIGNING_KEY_ENV,
                    out.public_key_file.display(),
                    out.key_id,
                    out.public_key
                )
            })
        }
        Command::Publish {
            repo,
            store,
            channel,
            allow_dirty,
            dry_run,
            force_pointer,
            keys_dir,
            repository_url,
            concurrency,
            signing,
            mods,
        } => {
            let keys_dir = keys_dir.or_else(|| {
                let d = repo.join(crate::keyset::DEFAULT_KEYS_DIR);
                d.join("1.json").exists().then_some(d)
            });
            if let Some(channel) = &channel {
                atlas_proto::layout::validate_channel(channel)?;
            }
            let key = if dry_run {
                None
            } else {
                Some(signing::load_secret_key(signing.key_file.as_deref())?)
            };
            if let (Some(dir), Some(key), false) = (&keys_dir, &key, dry_run) {
                // Keysets go up before anything names them; the key must be current.
                let st = store::open(&store.store, &store.settings()).await?;
                if let Some(ks) = crate::keyset::upload(st.as_ref(), dir).await? {
                    crate::keyset::check_signing_key(st.as_ref(), ks.pack(), &key.public()).await?;
                }
            }
            let source = PackSource::open(&repo, allow_dirty)?;
            let settings = crate::settings::AtlasSettings::from_source(&source)?;
            let channel = channel
                .or(settings.channels.default.clone())
                .unwrap_or_else(|| crate::settings::DEFAULT_CHANNEL.to_owned());
            let opts = PublishOptions {
                channel,
                now: now(),
                pointer_lifetime: signing.expires_in(settings.channels.expires_in()),
                dry_run,
                concurrency,
                force_pointer,
            };
            let report = plan_and_publish(
                &source,
                repository_url,
                &store,
                &mods,
                key.as_ref(),
                &opts,
                gh,
                exports()?.as_ref(),
            )
            .await?;
            emit(cli.json, &report, || publish_human(&report))
        }
        Command::Plan(args) => {
            let source = PackSource::open(&args.repo, args.allow_dirty)?;
            let opts = PublishOptions {
                channel: "dev".to_owned(),
                now: now(),
                pointer_lifetime: Duration::ZERO,
                dry_run: true,
                concurrency: args.concurrency,
                force_pointer: false,
            };
            let report = plan_and_publish(
                &source,
                args.repository_url,
                &args.store,
                &args.mods,
                None,
                &opts,
                gh,
                exports()?.as_ref(),
            )
            .await?;
            emit(cli.json, &report, || publish_human(&report))
        }
        Command::Diff(args) => diff(cli.json, args).await,
        Command::Check {
            repo,
            allow_dirty,
            dir,
        } => {
            let (report, base) = match dir {
                Some(dir) => (
                    crate::check::check_dir(&dir)?,
                    crate::github::diagnostics_base(&dir, None),
                ),
                None => {
                    let source = PackSource::open(&repo, allow_dirty)?;
                    let sub = Some(source.commit.subdirectory.as_str());
                    let base = crate::github::diagnostics_base(&repo, sub);
                    (
                        crate::check::check_source(&source, &repo.display().to_string())?,
                        base,
                    )
                }
            };
            emit(cli.json, &report, || report.human())?;
            if let Some(gh) = gh {
                crate::github::check(gh, &report, &base, cli.json)?;
            }
            Ok(report.result()?)
        }
        Command::Promote {
            store,
            pack,
            from,
            build,
            to,
            trust_keys,
            signing,
        } => {
            atlas_proto::layout::validate_pack_id(&pack)?;
            atlas_proto::layout::validate_channel(&to)?;
            let from = match (from, build) {
                (_, Some(b)) => PromoteFrom::Build(b.parse().with_context(|| format!("--build {b}"))?),
                (Some(c), None) => PromoteFrom::Channel(c),
                (None, None) => anyhow::bail!("give --from CHANNEL or --build ID"),
            };
            let trusted = trust_keys
                .iter()
                .map(|k| signing::parse_public_key_arg(k))
                .collect::<Result<Vec<_>, _>>()?;
            let key = signing::load_secret_key(signing.key_file.as_deref())?;
            let st = store::open(&store.store, &store.settings()).await?;
            crate::keyset::check_signing_key(st.as_ref(), &pack, &key.public()).await?;
            let report = crate::promote::promote_with_exports(
                st.as_ref(),
                &key,
                &trusted,
                &pack,
                &from,
                &to,
                now(),
                signing.expires_in(None),
                exports()?.as_ref(),
            )
            .await?;
            if let Some(gh) = gh {
                crate::github::promote(gh, st.as_ref(), &report).await?;
            }
            emit(cli.json, &report, || {
                format!(
                    "{}: channel {} -> build {} (version {}, {})",
                    report.pack,
                    report.pointer.channel,
                    report.build,
                    report.pointer.version,
                    report.pointer.status.as_str()
                )
            })
        }
    }
}
