//! Retry policy for transfers: which failures earn another attempt
//! ([`SyncError::is_transient`]), exponential backoff with jitter, the
//! server's `Retry-After` (seconds or HTTP-date), and the overall deadline.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::SyncError;

/// How often and how patiently to retry one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one (0 disables retries). A resumed download
    /// that made progress starts its count again.
    pub retries: u32,
    /// Delay before the first retry; doubles with each retry (with jitter).
    pub base_delay: Duration,
    /// Upper bound of one delay, also for a server's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `n` (0-based): `base * 2^n`, capped, then a
    /// uniformly random point in its upper half ("equal jitter"), so clients
    /// that failed together do not come back together.
    pub fn backoff(&self, n: u32) -> Duration {
        atlas_proto::retry::backoff(self.base_delay, self.max_delay, n, atlas_proto::retry::jitter())
    }
}

pub use atlas_proto::retry::parse_retry_after;

/// Retry state of one request (or one resumable download).
#[derive(Debug)]
pub(crate) struct Retrier<'a> {
    policy: &'a RetryPolicy,
    deadline: Option<Instant>,
    done: u32,
}

impl<'a> Retrier<'a> {
    pub(crate) fn new(policy: &'a RetryPolicy, deadline: Option<Instant>) -> Self {
        Self {
            policy,
            deadline,
            done: 0,
        }
    }

    /// Progress was made (a resumed body grew): the retry budget starts again.
    pub(crate) fn progressed(&mut self) {
        self.done = 0;
    }

    /// Whether to try again after `err`: if it is transient, retries are
    /// left and the wait ends before the deadline, waits and returns true.
    pub(crate) async fn again(&mut self, err: &SyncError) -> bool {
        if !err.is_transient() || self.done >= self.policy.retries {
            return false;
        }
        let delay = match err {
            SyncError::HttpStatus {
                retry_after: Some(d), ..
            } => (*d).min(self.policy.max_delay),
            _ => self.policy.backoff(self.done),
        };
        if self.deadline.is_some_and(|d| Instant::now() + delay >= d) {
            return false;
        }
        self.done += 1;
        tracing::warn!(
            attempt = self.done + 1,
            delay_ms = delay.as_millis() as u64,
            "retrying after: {err}"
        );
        tokio::time::sleep(delay).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for n in 0..8 {
            let full = (Duration::from_millis(100) * 2u32.pow(n)).min(Duration::from_secs(1));
            let d = p.backoff(n);
            assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
        }
    }

    #[test]
    fn transient_classes() {
        let status = |status| SyncError::HttpStatus {
            url: "u".into(),
            status,
            retry_after: None,
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(403).is_transient());
        assert!(
            SyncError::SourceRead {
                url: "u".into(),
                message: "reset".into()
            }
            .is_transient()
        );
        assert!(
            !SyncError::BlobSize {
                path: "p".into(),
                url: "u".into(),
                expected: 1,
                actual: 0
            }
            .is_transient()
        );
    }
}
