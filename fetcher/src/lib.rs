//! atlas-fetcher: keeps a directory at the signed build an Atlas channel points to.
//!
//! The library does everything; the binary is a thin wrapper around [`cli::main`].
//! A launcher embeds [`Syncer`]: [`Syncer::check`] fetches and verifies the
//! signed pointer and the manifest, [`Syncer::plan`] diffs it against the
//! install, [`Syncer::apply`] downloads, verifies and applies atomically, and
//! [`Syncer::sync`] composes the three. Progress arrives through [`Progress`]
//! callbacks; errors are [`SyncError`]s with an exit-code class.
//!
//! A launcher updating an instance before it starts the game:
//!
//! ```no_run
//! use atlas_fetcher::{CheckStatus, InstallSide, Phase, Progress, SyncOptions, Syncer, load_key};
//!
//! struct Ui;
//! impl Progress for Ui {
//!     fn phase(&self, phase: &Phase) {
//!         println!("{phase:?}");
//!     }
//!     fn bytes(&self, n: u64) {
//!         // advance a progress bar by n bytes
//!         let _ = n;
//!     }
//! }
//!
//! # async fn update() -> Result<(), atlas_fetcher::SyncError> {
//! let key = load_key("ed25519:AAAAC3NzaC1lZDI1NTE5AAAAIAbcdefghijklmnopqrstuvwxyz0123456789AB")?;
//! let dir = atlas_fetcher::instance::resolve("/home/me/.local/share/PrismLauncher/instances/MyPack".as_ref())?;
//! let mut opts = SyncOptions::new("https://cdn.example.com/", "my-pack", "production", vec![key], dir);
//! opts.side = InstallSide::Client;
//! let syncer = Syncer::new(opts)?;
//! let check = syncer.check(&Ui).await?; // pointer + manifest, verified
//! if check.status == CheckStatus::Changed {
//!     let plan = syncer.plan(&check, &Ui)?; // what would change: show it, ask the player
//!     let report = syncer.apply(&check, &plan, &Ui).await?; // staged, verified, atomic
//!     println!("{}", report.summary());
//! }
//! # Ok(())
//! # }
//! ```

pub mod cache;
pub mod cli;
pub mod config;
pub mod download;
pub mod durable;
pub mod error;
pub mod exit;
pub mod history;
pub mod inspect;
pub mod instance;
pub mod interrupt;
pub mod journal;
pub mod local;
pub mod lock;
pub mod lock_owner;
pub mod not_found;
pub mod partial;
pub mod place;
pub mod plan;
pub mod player;
pub mod progress;
pub mod provision;
pub mod report;
pub mod retry;
pub mod safe_dir;
pub mod select;
pub mod settings;
pub mod side;
pub mod source;
mod staging;
mod staging_file;
pub mod state;
pub mod sync;
pub mod verified;

pub use error::SyncError;
pub use interrupt::Interrupt;
pub use plan::{FileAction, OnModified, Plan, PlannedFile};
pub use progress::{NoProgress, Phase, Progress};
pub use provision::LaunchDescription;
pub use report::{Outcome, Report};
pub use retry::RetryPolicy;
pub use settings::SyncSettings;
pub use side::InstallSide;
pub use sync::keychain::{load_key, load_root};
pub use sync::prefetch::Prefetched;
pub use sync::{Check, CheckStatus, SyncOptions, Syncer};
