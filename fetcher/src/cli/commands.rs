//! One function per subcommand: build the library's options from the
//! arguments (`settings.rs`), call the library, print (`render.rs`), and
//! return the exit code. Errors carry their own exit class ([`Failure`]).

use std::io::Write as _;
use std::time::Duration;

use super::args::{CacheGcArgs, ProvisionArgs, RollbackArgs, StatusArgs, SyncArgs, VerifyArgs};
use super::failure::Failure;
use super::progress::CliProgress;
use super::render;
use crate::cache::BlobCache;
use crate::error::SyncError;
use crate::exit;
use crate::inspect;
use crate::not_found;
use crate::player::{self, LaunchOptions, LaunchOutcome, Level, Line, tools::BootstrapEnv};
use crate::progress::NoProgress;
use crate::provision;
use crate::side::InstallSide;
use crate::source::{DEFAULT_TIMEOUT, Source};
use crate::sync::Syncer;

/// `sync`: the sync, then (with `--provision`) provisioning; with
/// `--before-launch`, the launcher's pre-launch answer instead.
pub(super) async fn sync(args: SyncArgs) -> Result<i32, Failure> {
    if args.before_launch {
        return Ok(before_launch(&args).await);
    }
    let opts = args.options()?;
    let provision = args.wants_provision()? && !args.dry_run;
    if provision && opts.side != InstallSide::Server {
        return Err(SyncError::Usage("--provision is for server installs (--side server)".into()).into());
    }
    let (dir, timeout) = (opts.dir.clone(), opts.timeout);
    let (pack, channel) = (opts.pack.clone(), opts.channel.clone());
    let source = Source::parse_with(&opts.source, opts.net_limits())?;
    let syncer = Syncer::new(opts)?;
    let progress = CliProgress::new(args.json);
    let result = syncer.sync(args.dry_run, &progress).await;
    progress.finish();
    let report = match result {
        Ok(r) => r,
        // A pointer that is not there: say whether the store, the pack or
        // the channel is wrong, and what exists.
        Err(e) => return Err(not_found::explain(e, &source, &pack, &channel).await.into()),
    };
    if !provision {
        render::report(&report, args.json)?;
        return Ok(report.exit_code());
    }
    let p = provision::provision(&args.provisioning.options(&dir, timeout)?).await?;
    render::report_and_provisioned(&report, &p, args.json)?;
    // Provisioning that changed the directory is an update even when the build was current.
    Ok(if p.changed {
        exit::UPDATED
    } else {
        report.exit_code()
    })
}

/// Retries of a failed request before a launch (`--retries` overrides).
const LAUNCH_RETRIES: u32 = 2;
/// Per-request timeout before a launch (`--timeout` overrides).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);

/// `sync --instance DIR --before-launch`: the sync as an instance's
/// pre-launch command. Every outcome, errors included, is lines for the
/// launcher's log and exit 0 (start the game) or 1 (stop the launch).
async fn before_launch(args: &SyncArgs) -> i32 {
    let outcome = match (args.options(), &args.instance) {
        (Ok(mut sync), Some(instance)) => {
            // A player waits for this: give up on an unreachable store
            // sooner than cron would (the game then starts as it is).
            if args.retries.is_none() {
                sync.retry.retries = LAUNCH_RETRIES;
            }
            if args.timeout.is_none() {
                sync.timeout = LAUNCH_TIMEOUT;
            }
            let o = LaunchOptions {
                sync,
                instance: instance.clone(),
                bootstrap: BootstrapEnv::from_env(),
            };
            player::before_launch(&o, &NoProgress).await
        }
        (Err(e), _) => LaunchOutcome {
            code: player::STOP,
            lines: vec![Line {
                level: Level::Error,
                text: format!("Atlas: {e}"),
            }],
            report: None,
        },
        (Ok(_), None) => LaunchOutcome {
            code: exit::USAGE,
            lines: vec![Line {
                level: Level::Error,
                text: "Atlas: --before-launch needs --instance DIR".into(),
            }],
            report: None,
        },
    };
    let mut out = std::io::stdout().lock();
    for line in &outcome.lines {
        let _ = writeln!(out, "{line}");
    }
    outcome.code
}

/// `status`: the install's state files, read only.
pub(super) fn status(args: &StatusArgs) -> Result<i32, Failure> {
    let s = inspect::status(&args.dir)?;
    render::status(&s, &args.dir, args.json)?;
    Ok(exit::UPDATED)
}

/// `verify`: re-hash every managed file; with `--repair`, sync the drifted
/// ones back.
pub(super) async fn verify(args: VerifyArgs) -> Result<i32, Failure> {
    let (dir, threads) = (args.dir.clone(), args.threads);
    let v = tokio::task::spawn_blocking(move || inspect::verify(&dir, threads))
        .await
        .map_err(|e| SyncError::Internal(format!("verify task failed: {e}")))??;
    let repaired = if args.repair && !v.clean() {
        let syncer = Syncer::for_repair(args.repair_options()?, v.drifted().cloned())?;
        Some(syncer.sync(false, &CliProgress::new(true)).await?)
    } else {
        None
    };
    let code = match &repaired {
        Some(r) => r.exit_code(),
        None if v.clean() => exit::UPDATED,
        None => exit::DRIFT,
    };
    render::verify(&v, repaired.as_ref(), code, args.json)?;
    Ok(code)
}

/// `cache-gc`: bound the shared blob cache.
pub(super) fn cache_gc(args: &CacheGcArgs) -> Result<i32, Failure> {
    // `open` creates the cache for `sync`; gc on a mistyped path must not.
    if !args.cache.is_dir() {
        return Err(SyncError::NoCache {
            path: args.cache.clone(),
        }
        .into());
    }
    let cache = BlobCache::open(&args.cache)?;
    let r = cache.gc(args.max_mib.saturating_mul(1024 * 1024))?;
    render::cache_gc(&r, args.json)?;
    Ok(exit::UPDATED)
}

/// `rollback`: re-install the build before the current one.
pub(super) async fn rollback(args: RollbackArgs) -> Result<i32, Failure> {
    let syncer = Syncer::for_rollback(args.options())?;
    let progress = CliProgress::new(args.json);
    let result = syncer.rollback(args.dry_run, &progress).await;
    progress.finish();
    let report = result?;
    render::rollback(&report, args.json)?;
    Ok(report.exit_code())
}

/// `provision`: make the installed build's server launchable.
pub(super) async fn provision(args: ProvisionArgs) -> Result<i32, Failure> {
    let timeout = args.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let p = provision::provision(&args.upstreams.options(&args.dir, timeout)?).await?;
    let code = if p.changed { exit::UPDATED } else { exit::CURRENT };
    render::provision(&p, code, args.json)?;
    Ok(code)
}
