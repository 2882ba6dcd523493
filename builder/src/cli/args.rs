//! The command line's arguments (clap derive): every subcommand and flag,
//! with the help text users read. Turning them into settings is
//! [`super::settings`]' job.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
    Keygen(KeygenArgs),
    /// Build the pack at the repository's HEAD commit, upload what the store
    /// lacks, and point CHANNEL at the build.
    Publish(PublishArgs),
    /// Check the pack offline (packwiz or native) and report every problem at once;
    /// exit 3 if any is an error.
    Check(CheckArgs),
    /// Show what a publish would download and upload; writes nothing to the
    /// store and needs no signing key (mods are downloaded into the cache).
    Plan(PlanArgs),
    /// The changelog between two builds in the store: mods added, removed and
    /// updated (by name and version), and other files changed.
    Diff(DiffArgs),
    /// Point channel TO at the build channel FROM points to (or at --build).
    Promote(PromoteArgs),
    /// Re-sign channel pointers with a fresh expiry (same build, next version).
    /// Run on a schedule shorter than --expires-in so hosts never see an expired pointer.
    Resign(ResignArgs),
    /// Write the pack's page (packs/PACK/index.html) and the store's index
    /// again from the channels' verified pointers; publish, promote and
    /// resign do it themselves when given --public-url.
    Page(PageArgs),
    /// Delete what no channel of PACK needs any more: its builds no channel
    /// keeps, blobs no kept build of any pack names, packwiz files no kept
    /// build reaches. Lists what it would delete unless --delete is given.
    Gc(GcArgs),
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

/// Arguments of `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory to write the key files into.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Base name of the key files.
    #[arg(long, default_value = "atlas-signing")]
    pub name: String,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The pack directory (a git repository or a directory inside one).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Channel to point at the new build [default: `[channels] default` of atlas.toml, else dev].
    #[arg(long)]
    pub channel: Option<String>,
    /// Build the working tree as it is, uncommitted changes included (the manifest says so).
    #[arg(long)]
    pub allow_dirty: bool,
    /// Print what would be uploaded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-sign the pointer even when the channel already points at this build.
    #[arg(long)]
    pub force_pointer: bool,
    /// Keyset files to upload before the pointer [default: REPO/.atlas/keys when it exists].
    #[arg(long)]
    pub keys_dir: Option<PathBuf>,
    /// Repository URL recorded in the manifest (default: remote.origin.url).
    #[arg(long, env = "ATLAS_REPOSITORY_URL")]
    pub repository_url: Option<String>,
    /// Parallel uploads.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The player tools of an Atlas release (VERSION, atlas-bootstrap.jar,
    /// <target>/atlas-fetcher[.exe]; the GitHub Action fills it): also write
    /// the channel's instance archive for Prism Launcher and MultiMC and pin
    /// the fetcher in the pointer. Needs --public-url.
    #[arg(long, env = "ATLAS_PLAYER_TOOLS", value_name = "DIR")]
    pub player_tools: Option<PathBuf>,
    #[command(flatten)]
    pub signing: SigningArgs,
    #[command(flatten)]
    pub mods: ModArgs,
}

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The pack directory (a git repository or a directory inside one); checks HEAD's files.
    #[arg(long, default_value = ".", conflicts_with = "dir")]
    pub repo: PathBuf,
    /// Check the working tree as it is, uncommitted changes included.
    #[arg(long, conflicts_with = "dir")]
    pub allow_dirty: bool,
    /// Check a plain directory instead, which need not be a git repository.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Arguments of `promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Pack id.
    #[arg(long)]
    pub pack: String,
    /// Channel whose current build is promoted.
    #[arg(long, conflicts_with = "build", required_unless_present = "build")]
    pub from: Option<String>,
    /// Build id (64 hex) to promote instead of a channel's current build; also how to roll back.
    #[arg(long)]
    pub build: Option<String>,
    /// Channel to point at the build.
    #[arg(long)]
    pub to: String,
    /// Extra public keys (`ed25519:...` or a .pub file) that may have signed the FROM pointer.
    #[arg(long = "trust-key")]
    pub trust_keys: Vec<String>,
    /// The player tools (as for publish): the target channel gets its
    /// instance archive and its pointer pins the fetcher. Without them the
    /// target channel names no instance archive. Needs --public-url.
    #[arg(long, env = "ATLAS_PLAYER_TOOLS", value_name = "DIR")]
    pub player_tools: Option<PathBuf>,
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// Arguments of `page`.
#[derive(Debug, Args)]
pub struct PageArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Pack id.
    #[arg(long)]
    pub pack: String,
    /// Public key (`ed25519:...` or a .pub file) the channels' pointers are
    /// checked against when the pack has no keyset chain [default: the
    /// public half of the signing key].
    #[arg(long = "trust-key")]
    pub trust_key: Option<String>,
    #[command(flatten)]
    pub signing: SigningArgs,
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

/// Arguments of `gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Pack id whose builds and packwiz files are collected (blobs are shared
    /// by every pack in the store: a blob stays while any pack's kept build names it).
    #[arg(long)]
    pub pack: String,
    /// Never delete an object younger than this (a publish running meanwhile
    /// must finish within it; at least 1h).
    #[arg(long, default_value = "48h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Distinct builds kept per channel, the current one included (at least
    /// 4: hosts keep 3 earlier builds to roll back to). Builds a channel
    /// pointed to within the grace period are kept too.
    #[arg(long, default_value_t = crate::gc::DEFAULT_KEEP_BUILDS)]
    pub keep_builds: usize,
    /// Delete. Without it, gc only lists what it would delete and the bytes freed.
    #[arg(long)]
    pub delete: bool,
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
    /// Write to an S3-compatible store that ignores conditional writes
    /// (If-None-Match / If-Match on PutObject), which writers otherwise refuse.
    /// Only safe when one writer at a time ever runs (e.g. one CI concurrency group).
    #[arg(long, env = "ATLAS_ALLOW_UNCONDITIONAL_STORE")]
    pub allow_unconditional_store: bool,
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
