//! One function per subcommand: resolve its settings ([`super::settings`]),
//! call the library operation, write GitHub outputs when asked, and print
//! the report ([`super::render`]).

use anyhow::{Context as _, anyhow};

use atlas_proto::layout::{validate_channel, validate_pack_id};

use super::args::{
    CheckArgs, DiffArgs, GcArgs, KeyCommand, KeygenArgs, PageArgs, PlanArgs, PromoteArgs, PublishArgs,
    ResignArgs,
};
use super::error::CliError;
use super::render::{self, emit};
use super::settings::{self, now};
use crate::diff::BuildRef;
use crate::github::Github;
use crate::plan::PlanOptions;
use crate::promote::{PromoteFrom, PromoteRequest};
use crate::publish::{PublishRequest, Published};
use crate::repo::PackSource;
use crate::settings::AtlasSettings;
use crate::signing;

/// What every command may need from the global flags.
#[derive(Debug)]
pub struct Context {
    /// `--json`.
    pub json: bool,
    /// `--github` (or `GITHUB_ACTIONS=true`): where GitHub wants outputs.
    pub github: Option<Github>,
    /// `--public-url`, checked only by the commands that write exports.
    pub public_url: Option<String>,
}

impl Context {
    fn exports(&self) -> Result<Option<crate::export::ExportOptions>, CliError> {
        Ok(settings::exports(self.public_url.as_deref())?)
    }

    /// Mod options whose downloads and uploads show progress ([`super::transfer::Mode::detect`]).
    fn mods(&self, args: &super::args::ModArgs) -> crate::resolve::ModOptions {
        let mut o = args.options();
        let mode = super::transfer::Mode::detect(self.json);
        o.download.progress = std::sync::Arc::new(super::transfer::CliProgress::new(mode));
        o
    }

    /// `--player-tools`, read and hashed.
    fn player_tools(
        &self,
        dir: Option<&std::path::Path>,
    ) -> Result<Option<crate::export::player_tools::PlayerTools>, CliError> {
        Ok(dir
            .map(|d| crate::export::player_tools::load(d, &atlas_proto::Limits::DEFAULT))
            .transpose()?)
    }

    fn emit<T: serde::Serialize>(&self, value: &T, human: impl FnOnce() -> String) -> Result<(), CliError> {
        emit(self.json, value, human).map_err(CliError::other)
    }
}

/// `keygen`.
pub fn keygen(ctx: &Context, args: KeygenArgs) -> Result<(), CliError> {
    let out = signing::keygen(&args.out_dir, &args.name, args.force)?;
    ctx.emit(&out, || render::keygen(&out))
}

/// `publish`.
pub async fn publish(ctx: &Context, args: PublishArgs) -> Result<(), CliError> {
    let keys_dir = settings::keys_dir(args.keys_dir.as_deref(), &args.repo);
    if let Some(channel) = &args.channel {
        validate_channel(channel).map_err(CliError::other)?;
    }
    let key = match args.dry_run {
        true => None,
        false => Some(args.signing.load_key()?),
    };
    let source = PackSource::open(&args.repo, args.allow_dirty)?;
    let file = AtlasSettings::from_source(&source)?;
    let options = settings::publish_options(&args, &file);
    let channel = options.channel.clone();
    let exports = ctx.exports()?;
    let tools = ctx.player_tools(args.player_tools.as_deref())?;
    let store = args.store.open().await?;
    let published = crate::publish::run(PublishRequest {
        key: key.as_ref(),
        player_tools: tools.as_ref(),
        plan: PlanOptions {
            repository_url: args.repository_url.clone(),
            ..PlanOptions::default()
        },
        keys_dir: keys_dir.as_deref(),
        exports: exports.as_ref(),
        ..PublishRequest::new(&source, store.as_ref(), options, ctx.mods(&args.mods))
    })
    .await?;
    publish_outputs(ctx, store.as_ref(), &published, &channel).await
}

/// `plan`: a dry-run publish.
pub async fn plan(ctx: &Context, args: PlanArgs) -> Result<(), CliError> {
    let source = PackSource::open(&args.repo, args.allow_dirty)?;
    let exports = ctx.exports()?;
    let store = args.store.open().await?;
    let published = crate::publish::run(PublishRequest {
        plan: PlanOptions {
            repository_url: args.repository_url.clone(),
            ..PlanOptions::default()
        },
        exports: exports.as_ref(),
        ..PublishRequest::new(
            &source,
            store.as_ref(),
            settings::plan_options(&args),
            ctx.mods(&args.mods),
        )
    })
    .await?;
    publish_outputs(ctx, store.as_ref(), &published, crate::settings::DEFAULT_CHANNEL).await
}

/// The GitHub outputs and the report of `publish` and `plan`.
async fn publish_outputs(
    ctx: &Context,
    store: &dyn crate::store::Store,
    published: &Published,
    channel: &str,
) -> Result<(), CliError> {
    let Published { plan, report } = published;
    if let Some(gh) = &ctx.github {
        crate::github::publish(gh, store, plan, report, channel).await?;
    }
    ctx.emit(report, || render::publish(report))
}

/// `check`.
pub fn check(ctx: &Context, args: CheckArgs) -> Result<(), CliError> {
    let (report, base) = match args.dir {
        Some(dir) => (
            crate::check::check_dir(&dir)?,
            crate::github::diagnostics_base(&dir, None),
        ),
        None => {
            let source = PackSource::open(&args.repo, args.allow_dirty)?;
            let sub = Some(source.commit.subdirectory.as_str());
            let base = crate::github::diagnostics_base(&args.repo, sub);
            (
                crate::check::check_source(&source, &args.repo.display().to_string())?,
                base,
            )
        }
    };
    ctx.emit(&report, || report.human())?;
    if let Some(gh) = &ctx.github {
        crate::github::check(gh, &report, &base, ctx.json)?;
    }
    Ok(report.result()?)
}

/// `diff`.
pub async fn diff(ctx: &Context, args: DiffArgs) -> Result<(), CliError> {
    validate_pack_id(&args.pack).map_err(CliError::other)?;
    let mut builds = args.builds.into_iter();
    let mut pick = |channel: Option<String>, what: &str, flag: &str| -> anyhow::Result<BuildRef> {
        if let Some(c) = channel {
            validate_channel(&c)?;
            return Ok(BuildRef::Channel(c));
        }
        let b = builds
            .next()
            .with_context(|| format!("give {what} as a build id, or {flag} CHANNEL"))?;
        Ok(BuildRef::Build(
            b.parse().with_context(|| format!("{what} `{b}`"))?,
        ))
    };
    let from = pick(args.from_channel, "BUILD_A", "--from-channel").map_err(CliError::other)?;
    let to = pick(args.to_channel, "BUILD_B", "--to-channel").map_err(CliError::other)?;
    if let Some(extra) = builds.next() {
        return Err(CliError::other(anyhow!(
            "unexpected argument `{extra}`: give two builds, or one build and a channel"
        )));
    }
    let store = args.store.open().await?;
    let log = crate::diff::diff_builds(store.as_ref(), &args.pack, &from, &to).await?;
    ctx.emit(&log, || log.human())
}

/// `promote`.
pub async fn promote(ctx: &Context, args: PromoteArgs) -> Result<(), CliError> {
    validate_pack_id(&args.pack).map_err(CliError::other)?;
    validate_channel(&args.to).map_err(CliError::other)?;
    let from = match (args.from, &args.build) {
        (_, Some(b)) => PromoteFrom::Build(
            b.parse()
                .with_context(|| format!("--build {b}"))
                .map_err(CliError::other)?,
        ),
        (Some(c), None) => PromoteFrom::Channel(c),
        (None, None) => return Err(CliError::other(anyhow!("give --from CHANNEL or --build ID"))),
    };
    let trusted = args
        .trust_keys
        .iter()
        .map(|k| signing::parse_public_key_arg(k))
        .collect::<Result<Vec<_>, _>>()?;
    let key = args.signing.load_key()?;
    let store = args.store.open().await?;
    crate::keyset::check_signing_key(store.as_ref(), &args.pack, &key.public()).await?;
    let exports = ctx.exports()?;
    let tools = ctx.player_tools(args.player_tools.as_deref())?;
    let report = crate::promote::run(PromoteRequest {
        store: store.as_ref(),
        key: &key,
        trusted: &trusted,
        pack: &args.pack,
        from,
        to: &args.to,
        now: now(),
        lifetime: args.signing.expires_in(None),
        exports: exports.as_ref(),
        player_tools: tools.as_ref(),
    })
    .await?;
    if let Some(gh) = &ctx.github {
        crate::github::promote(gh, store.as_ref(), &report).await?;
    }
    ctx.emit(&report, || render::promote(&report))
}

/// `resign`.
pub async fn resign(ctx: &Context, args: ResignArgs) -> Result<(), CliError> {
    validate_pack_id(&args.pack).map_err(CliError::other)?;
    let key = args.signing.load_key()?;
    let store = args.store.open().await?;
    crate::keyset::check_signing_key(store.as_ref(), &args.pack, &key.public()).await?;
    let mut updates = Vec::new();
    for channel in &args.channels {
        validate_channel(channel).map_err(CliError::other)?;
        let lifetime = args.signing.expires_in(None);
        let Some(update) =
            crate::pointer::resign(store.as_ref(), &key, &args.pack, channel, now(), lifetime).await?
        else {
            return Err(crate::builds::missing(store.as_ref(), &args.pack, Some(channel))
                .await
                .into());
        };
        // A publish that stopped after its pointer left pack.toml behind: catch up.
        crate::export::packwiz::repair_channel_pack(store.as_ref(), &args.pack, channel)
            .await
            .map_err(|e| CliError::with_class(e.writer_class(), e))?;
        updates.push(update);
    }
    if let Some(gh) = &ctx.github {
        let (outputs, summary) = crate::github::resign_summary(gh, &store.describe(), &args.pack, &updates);
        gh.emit(&outputs, &summary)?;
    }
    // The page shows each pointer's expiry: bring it in step.
    if let Some(e) = ctx.exports()? {
        let keys = crate::page::write::PageKeys::for_pack(store.as_ref(), &args.pack, &key.public()).await?;
        crate::page::write::write_pages(store.as_ref(), &args.pack, None, &keys, &e).await?;
    }
    ctx.emit(&updates, || render::resign(&updates))
}

/// `page`: the pack page and the store index, rendered again.
pub async fn page(ctx: &Context, args: PageArgs) -> Result<(), CliError> {
    validate_pack_id(&args.pack).map_err(CliError::other)?;
    let exports = ctx.exports()?.ok_or_else(|| {
        CliError::other(anyhow!(
            "`page` needs the store's public URL: --public-url or ATLAS_PUBLIC_URL"
        ))
    })?;
    let signer = match &args.trust_key {
        Some(k) => signing::parse_public_key_arg(k)?,
        None => args.signing.load_key()?.public(),
    };
    let store = args.store.open().await?;
    let keys = crate::page::write::PageKeys::for_pack(store.as_ref(), &args.pack, &signer).await?;
    let report = crate::page::write::write_pages(store.as_ref(), &args.pack, None, &keys, &exports).await?;
    ctx.emit(&report, || render::page(&report))
}

/// `gc`.
pub async fn gc(ctx: &Context, args: GcArgs) -> Result<(), CliError> {
    let store = args.store.open().await?;
    let options = crate::gc::GcOptions {
        grace: args.grace,
        keep_builds: args.keep_builds,
        now: std::time::SystemTime::now(),
        delete: args.delete,
    };
    let report = crate::gc::run(store.as_ref(), &args.pack, options).await?;
    ctx.emit(&report, || render::gc(&report))
}

/// `key init-root`, `key rotate`, `key revoke`.
pub fn key(ctx: &Context, cmd: KeyCommand) -> Result<(), CliError> {
    use crate::keyset::{Rotation, init_root, rotate};
    let keys = |v: &[String]| -> Result<Option<Vec<atlas_proto::PublicKey>>, CliError> {
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
    ctx.emit(&out, || render::keyset(&out))
}
