//! Integration tests for atlas-fetcher, linked into one test binary: one link of the
//! dependency tree instead of one per file, which keeps CI's disk and time in check.

mod cache;
mod cancel;
mod clock;
mod common;
mod config_schema;
mod conflicts;
mod conformance;
mod e2e;
mod faults;
mod inspect;
mod install_script;
mod kill;
mod mistakes;
mod modified;
mod optional;
mod player;
mod prefetch;
mod provision;
mod rejections;
mod resume;
mod rollback;
mod serve;
mod slow;
mod state_links;
mod symlinks;
mod sync;
mod terminal;
mod upstream;
mod validators;
