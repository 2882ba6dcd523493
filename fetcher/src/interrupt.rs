//! Asking a running sync to stop, as gitoxide's `should_interrupt` does: a
//! shared flag the caller sets (from a signal handler, a shutdown path, a
//! "cancel" button) and the long steps read between two units of work (a
//! blob, a chunk of it, a keyset, a file hashed). A run that sees it stops
//! with [`SyncError::Interrupted`] and leaves the directory as it was.
//!
//! Dropping the future stops a run too (see `crate::sync`); the flag suits
//! callers that cannot drop it (another task awaits it, a shutdown must
//! wait for the run's clean-up) and gives them a typed error. Once the
//! journaled apply has started moving files it is not interrupted: it
//! finishes (milliseconds to seconds), so the directory holds exactly one
//! build.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::SyncError;

/// A flag shared between a caller and the work it may stop. Clones share it;
/// the default one is never set unless someone sets it.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the work holding a clone of this flag to stop at its next step.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Interrupt::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(SyncError::Interrupted)` once triggered: `interrupt.check()?`
    /// between two steps.
    pub fn check(&self) -> Result<(), SyncError> {
        if self.is_triggered() {
            Err(SyncError::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Shares a flag the caller already has (one a signal handler sets, say).
impl From<Arc<AtomicBool>> for Interrupt {
    fn from(flag: Arc<AtomicBool>) -> Self {
        Self(flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_and_shared_flags_see_the_trigger() {
        let flag = Arc::new(AtomicBool::new(false));
        let i = Interrupt::from(Arc::clone(&flag));
        let clone = i.clone();
        assert!(clone.check().is_ok());
        flag.store(true, Ordering::Relaxed);
        assert!(matches!(clone.check(), Err(SyncError::Interrupted)));
        let fresh = Interrupt::new();
        fresh.clone().trigger();
        assert!(fresh.is_triggered());
    }
}
