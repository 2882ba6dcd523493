//! The daemon's shutdown as long work sees it: a token async code selects on
//! (the actor's waits, downloads, the start and health window of a new
//! build) and a flag that work on blocking threads polls between steps
//! (backup archives; the fetcher's apply once its `Syncer` takes one), as
//! gitoxide's `should_interrupt` does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

/// Cheap to clone; every clone sees the same request.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything to stop: waits end, and the flag reads true.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.token.cancel();
    }

    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once [`Shutdown::request`] was called.
    pub async fn requested(&self) {
        self.token.cancelled().await
    }

    /// `fut`'s output, or `None` when the shutdown is requested first (at
    /// once if it already was). Only for futures whose drop leaves nothing
    /// half done.
    pub async fn unless<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.token.cancelled() => None,
            out = fut => Some(out),
        }
    }

    /// The token, for tasks that take one (the control socket's server).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The flag work on blocking threads polls between steps.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unless_ends_a_wait_when_the_shutdown_comes() {
        let s = Shutdown::new();
        assert_eq!(s.unless(async { 7 }).await, Some(7));
        let flag = s.flag();
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.unless(tokio::time::sleep(Duration::from_secs(3600))).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!flag.load(Ordering::SeqCst));
        s.request();
        assert_eq!(waiting.await.expect("task"), None);
        assert!(flag.load(Ordering::SeqCst) && s.is_requested());
        assert_eq!(s.unless(async { 7 }).await, None, "already requested");
    }
}
