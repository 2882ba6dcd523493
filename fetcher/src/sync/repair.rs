//! `verify --repair`: a sync of the install's own pack, channel, side and
//! optional files that treats the files `verify` found drifted as changed
//! by the user and replaces them (see [`crate::inspect`]).

use super::{SyncOptions, Syncer};
use crate::error::SyncError;
use crate::plan::OnModified;

impl Syncer {
    /// A syncer that downloads `drifted` files of `opts.dir` again through
    /// the normal verified sync: pack, channel, side and optional files are
    /// those of the install, whatever `opts` says; drifted files are
    /// replaced. Source, keys and the rest come from `opts`.
    pub fn for_repair(
        mut opts: SyncOptions,
        drifted: impl IntoIterator<Item = String>,
    ) -> Result<Self, SyncError> {
        opts.follow_install("repair")?;
        opts.on_modified = OnModified::Replace;
        opts.treat_as_modified = drifted.into_iter().collect();
        Self::new(opts)
    }
}
