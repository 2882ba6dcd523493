//! The download of a build staged while the server runs, as `status` shows
//! it (`staging`: bytes and blobs done of the total) and as
//! `update.progress` events: when the download starts, at most every
//! [`EVENT_EVERY`] while it runs, and when it ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_fetcher::{Phase, Progress};

use super::{Inner, StageProgress};

/// The shortest time between two progress events.
pub const EVENT_EVERY: Duration = Duration::from_secs(2);

/// Feeds the fetcher's download progress into the supervisor's status and events.
#[derive(Debug)]
pub(crate) struct StageReporter {
    inner: Arc<Inner>,
    last_event: Mutex<Option<Instant>>,
}

impl StageReporter {
    /// Starts reporting the staging of `build` (pack version `version`).
    pub fn new(inner: Arc<Inner>, build: &str, version: &str) -> Self {
        inner.lock().staging = Some(StageProgress {
            build: build.to_owned(),
            version: version.to_owned(),
            ..StageProgress::default()
        });
        Self {
            inner,
            last_event: Mutex::new(None),
        }
    }

    fn update(&self, f: impl FnOnce(&mut StageProgress)) -> Option<StageProgress> {
        let mut s = self.inner.lock();
        let p = s.staging.as_mut()?;
        f(p);
        Some(p.clone())
    }

    fn event(&self, p: &StageProgress, force: bool) {
        {
            let mut last = self
                .last_event
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !force && last.is_some_and(|t| t.elapsed() < EVENT_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.inner.bus.event(
            "update.progress",
            describe(p),
            serde_json::to_value(p).unwrap_or_default(),
        );
    }

    /// The download is over (done or not): a last event, and `status`
    /// stops showing it.
    pub fn finish(&self) {
        let p = self.inner.lock().staging.take();
        if let Some(p) = p
            && p.bytes_total > 0
        {
            self.event(&p, true);
        }
    }
}

impl Drop for StageReporter {
    fn drop(&mut self) {
        self.inner.lock().staging = None;
    }
}

/// `staging build ab12… (version 1.0.1): 12.0 MiB of 40.0 MiB (30%), 3 of 10 files`.
pub fn describe(p: &StageProgress) -> String {
    use atlas_proto::fmt::human_bytes;
    let pct = (p.bytes_done.saturating_mul(100))
        .checked_div(p.bytes_total)
        .unwrap_or(100);
    let short = p.build.get(..12).unwrap_or(&p.build);
    format!(
        "staging build {short} (version {}): {} of {} ({pct}%), {} of {} files",
        p.version,
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        p.blobs_done,
        p.blobs_total
    )
}

impl Progress for StageReporter {
    fn phase(&self, phase: &Phase) {
        if let Phase::Download { blobs, bytes } = phase
            && let Some(p) = self.update(|p| {
                p.blobs_total = *blobs as u64;
                p.bytes_total = *bytes;
            })
        {
            self.event(&p, true);
        }
    }

    fn bytes(&self, n: u64) {
        if let Some(p) = self.update(|p| p.bytes_done = p.bytes_done.saturating_add(n)) {
            self.event(&p, false);
        }
    }

    fn blob_done(&self, _path: &str) {
        self.update(|p| p.blobs_done += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBus;
    use crate::supervisor::Supervisor;

    #[test]
    fn status_and_events_follow_the_download() {
        let sup = Supervisor::new(EventBus::new());
        let mut rx = sup.bus().subscribe_events();
        let r = StageReporter::new(sup.inner.clone(), "ab".repeat(32).as_str(), "1.0.1");
        r.phase(&Phase::Download {
            blobs: 2,
            bytes: 4096,
        });
        r.bytes(1024);
        r.blob_done("mods/a.jar");
        let s = sup.status().staging.expect("staging shows");
        assert_eq!(
            (s.bytes_done, s.bytes_total, s.blobs_done, s.blobs_total),
            (1024, 4096, 1, 2)
        );
        assert!(describe(&s).contains("(25%)"), "{}", describe(&s));
        r.bytes(3072);
        r.finish();
        assert!(sup.status().staging.is_none());
        let first = rx.try_recv().expect("start event");
        assert_eq!(first.kind, "update.progress");
        assert_eq!(first.fields["bytes_total"], 4096);
        let mut last = first;
        while let Ok(e) = rx.try_recv() {
            last = e;
        }
        assert_eq!(last.fields["bytes_done"], 4096);
        assert!(last.message.contains("version 1.0.1"), "{}", last.message);
    }
}
