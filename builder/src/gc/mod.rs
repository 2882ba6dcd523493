//! Garbage collection of one pack (`atlas-builder gc`): lists the store,
//! works out what must stay ([`keep`]), and deletes (or, by default, only
//! lists) the rest that is older than the grace period: blobs no kept build
//! of any pack names (nor a kept pointer version pins as a player tool),
//! the pack's builds no channel keeps, packwiz files no kept build reaches,
//! instance archives no kept pointer version names, and probe and temporary
//! leftovers. Pointers, history entries, keysets, pack pages, the store
//! index and objects of unknown shape are never deleted.
//!
//! Deleting runs in steps, each after reading the store again
//! ([`keep::Keep::refresh`]): build objects, then packwiz files, then blobs
//! in batches of 1,000, so a publish or promote that ran meanwhile keeps
//! what it named (docs/FORMAT.md §9 says what remains to chance).

pub mod error;
pub mod keep;
pub mod scan;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use atlas_proto::Sha256Digest;

use crate::builds::BuildLookupError;
use crate::store::Store;
pub use error::GcError;
use keep::{ChannelKeep, Entry, Keep, Rules};
use scan::Kind;

/// Default grace period: objects younger than this are never deleted.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(48 * 3600);
/// The shortest grace period accepted (a publish must finish well within it).
pub const MIN_GRACE: Duration = Duration::from_secs(3600);
/// Default number of distinct builds kept per channel.
pub const DEFAULT_KEEP_BUILDS: usize = 10;
/// The fewest builds per channel: the current one and the three earlier
/// ones a host keeps for `rollback` (atlas-fetcher's `history::KEEP_BUILDS`).
pub const MIN_KEEP_BUILDS: usize = 4;
/// Objects deleted per step.
const BATCH: usize = 1000;

/// How to collect.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Objects written within this period before `now` are kept.
    pub grace: Duration,
    /// Distinct builds kept per channel (at least [`MIN_KEEP_BUILDS`]).
    pub keep_builds: usize,
    /// The current time (injected so tests control it).
    pub now: SystemTime,
    /// Delete; otherwise only report what would be deleted.
    pub delete: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
            keep_builds: DEFAULT_KEEP_BUILDS,
            now: SystemTime::now(),
            delete: false,
        }
    }
}

/// One object deleted (or that would be).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Doomed {
    pub key: String,
    pub size: u64,
    pub class: &'static str,
}

/// Objects and bytes of one class.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub objects: usize,
    pub bytes: u64,
}

/// What a collection found and did.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    pub store: String,
    pub pack: String,
    /// True when nothing was deleted (no `--delete`).
    pub dry_run: bool,
    pub grace_secs: u64,
    pub keep_builds: usize,
    /// Every object listed.
    pub scanned: Totals,
    /// The builds each channel keeps.
    pub channels: Vec<ChannelKeep>,
    /// Every kept build of the pack (channels' and young manifests').
    pub kept_builds: Vec<String>,
    /// Unreferenced objects kept only because they are younger than the grace period.
    pub kept_young: Totals,
    /// What was deleted (or would be, in a dry run).
    pub deleted: Vec<Doomed>,
    /// Totals of `deleted`, per class and in all.
    pub by_class: BTreeMap<&'static str, Totals>,
    pub freed: Totals,
    pub warnings: Vec<String>,
}

/// Collects `pack` in `store`.
pub async fn run(store: &dyn Store, pack: &str, opts: GcOptions) -> Result<GcReport, GcError> {
    atlas_proto::layout::validate_pack_id(pack).map_err(|e| GcError::Options(e.to_string()))?;
    if opts.keep_builds < MIN_KEEP_BUILDS {
        return Err(GcError::Options(format!(
            "--keep-builds {} is too few: hosts keep {} earlier builds to roll back to, so keep at least {MIN_KEEP_BUILDS}",
            opts.keep_builds,
            MIN_KEEP_BUILDS - 1
        )));
    }
    if opts.grace < MIN_GRACE {
        return Err(GcError::Options(format!(
            "--grace {} is too short: a publish running meanwhile could lose what it uploaded; use at least {}",
            humantime::format_duration(opts.grace),
            humantime::format_duration(MIN_GRACE)
        )));
    }
    if opts.delete {
        // Deletes are plain; but a store whose writes are unconditional is
        // one where concurrent writers are not safe either: say so first.
        store.check_conditional_writes().await?;
    }
    let rules = Rules {
        cutoff: opts.now.checked_sub(opts.grace).unwrap_or(SystemTime::UNIX_EPOCH),
        keep_builds: opts.keep_builds,
    };
    let entries: Vec<Entry> = store.list("").await?.into_iter().map(Entry::new).collect();
    // A mistyped pack (others are there, not this one) is refused with the
    // packs the store holds; a store with no pack at all is still collected
    // (the blobs of a first publish that failed).
    let own = format!("packs/{pack}/");
    if !entries.iter().any(|e| e.key.starts_with(&own)) {
        let missing = crate::builds::missing(store, pack, None).await;
        if matches!(
            missing,
            BuildLookupError::NoPack { .. } | BuildLookupError::Store(_)
        ) {
            return Err(GcError::Build(missing));
        }
    }
    let mut keep = Keep::compute(store, pack, &entries, rules).await?;
    let mut report = GcReport {
        store: store.describe(),
        pack: pack.to_owned(),
        dry_run: !opts.delete,
        grace_secs: opts.grace.as_secs(),
        keep_builds: opts.keep_builds,
        scanned: Totals {
            objects: entries.len(),
            bytes: entries.iter().map(|e| e.size).sum(),
        },
        channels: std::mem::take(&mut keep.channels),
        kept_builds: keep.builds.iter().map(Sha256Digest::to_hex).collect(),
        kept_young: Totals::default(),
        deleted: Vec::new(),
        by_class: BTreeMap::new(),
        freed: Totals::default(),
        warnings: std::mem::take(&mut keep.warnings),
    };
    let mut doomed = Vec::new();
    for e in entries {
        if !collectable(&keep, pack, &e) {
            continue;
        }
        if e.modified >= rules.cutoff {
            report.kept_young.objects += 1;
            report.kept_young.bytes += e.size;
        } else {
            doomed.push(e);
        }
    }
    if opts.delete {
        sweep(store, pack, rules, &mut keep, doomed, &mut report).await?;
    } else {
        for e in &doomed {
            record(&mut report, e);
        }
    }
    report.warnings.append(&mut keep.warnings);
    Ok(report)
}

/// Whether `e` is garbage, age aside.
fn collectable(keep: &Keep, pack: &str, e: &Entry) -> bool {
    match &e.kind {
        Kind::Blob(d) => !keep.blobs.contains(d),
        Kind::Build { pack: p, build, .. } => p == pack && !keep.builds.contains(build),
        Kind::Packwiz {
            pack: p,
            channel,
            name,
        } => {
            p == pack
                && name != "pack.toml"
                && !keep.packwiz.contains(&e.key)
                && !keep.packwiz_frozen(p, channel, name)
        }
        Kind::Instance { pack: p } => p == pack && !keep.instances.contains(&e.key),
        Kind::Probe | Kind::Temp => true,
        Kind::Pointer { .. } | Kind::History { .. } | Kind::Other => false,
    }
}

fn record(report: &mut GcReport, e: &Entry) {
    let class = e.kind.class();
    let t = report.by_class.entry(class).or_default();
    t.objects += 1;
    t.bytes += e.size;
    report.freed.objects += 1;
    report.freed.bytes += e.size;
    report.deleted.push(Doomed {
        key: e.key.clone(),
        size: e.size,
        class,
    });
}

/// Deletes `doomed` in steps, reading the store again before each.
async fn sweep(
    store: &dyn Store,
    pack: &str,
    rules: Rules,
    keep: &mut Keep,
    doomed: Vec<Entry>,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let (mut builds, rest): (Vec<Entry>, Vec<Entry>) = doomed
        .into_iter()
        .partition(|e| matches!(e.kind, Kind::Build { .. } | Kind::Instance { .. }));
    let (packwiz, rest): (Vec<Entry>, Vec<Entry>) = rest
        .into_iter()
        .partition(|e| matches!(e.kind, Kind::Packwiz { .. }));
    let (blobs, leftovers): (Vec<Entry>, Vec<Entry>) =
        rest.into_iter().partition(|e| matches!(e.kind, Kind::Blob(_)));
    // 1. Leftovers of killed writers, and the builds and instance archives
    //    no channel keeps (each build's manifest last, so a half-deleted
    //    build is still found).
    delete_batch(store, leftovers, report).await?;
    keep.refresh(store, pack, rules, &HashSet::new()).await?;
    builds.retain(|e| collectable(keep, pack, e));
    builds.sort_by_key(|e| matches!(e.kind, Kind::Build { manifest: true, .. }));
    let deleted_builds: HashSet<Sha256Digest> = builds
        .iter()
        .filter_map(|e| match e.kind {
            Kind::Build { build, .. } => Some(build),
            _ => None,
        })
        .collect();
    for batch in chunks(builds) {
        delete_batch(store, batch, report).await?;
    }
    // 2. Packwiz files, then 3. blobs, a batch at a time.
    for group in [packwiz, blobs] {
        for mut batch in chunks(group) {
            keep.refresh(store, pack, rules, &deleted_builds).await?;
            batch.retain(|e| collectable(keep, pack, e));
            delete_batch(store, batch, report).await?;
        }
    }
    Ok(())
}

fn chunks(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut out = Vec::new();
    let mut it = entries.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(BATCH).collect());
    }
    out
}

async fn delete_batch(store: &dyn Store, batch: Vec<Entry>, report: &mut GcReport) -> Result<(), GcError> {
    if batch.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = batch.iter().map(|e| e.key.clone()).collect();
    store.delete(&keys).await?;
    for e in &batch {
        record(report, e);
    }
    Ok(())
}
