//! The daemon's event and log bus: recent server log lines and runner events
//! kept in bounded rings (for `logs -n` and crash reports) and broadcast to
//! followers (`logs -f`, `events`). A slow follower misses lines, never
//! slows the server down.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

/// Log lines kept for `logs -n` and crash reports.
pub const LOG_RING: usize = 2000;
/// Events kept for late subscribers.
pub const EVENT_RING: usize = 500;

/// One server output line (or a line the runner wrote about the server).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    pub unix_ms: u64,
    /// `stdout`, `stderr` or `runner`.
    pub stream: &'static str,
    pub line: String,
}

/// Something the runner did or saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventEntry {
    pub unix_ms: u64,
    /// `state`, `update.step`, `update`, `backup`, `crash`, `rollback`, `power`...
    pub kind: String,
    pub message: String,
    /// Structured fields (a JSON object).
    pub fields: serde_json::Value,
}

#[derive(Debug)]
struct Rings {
    logs: VecDeque<LogEntry>,
    events: VecDeque<EventEntry>,
}

/// Cheap to clone; all clones share the rings and channels.
#[derive(Debug, Clone)]
pub struct EventBus {
    rings: Arc<Mutex<Rings>>,
    logs: broadcast::Sender<LogEntry>,
    events: broadcast::Sender<EventEntry>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl EventBus {
    pub fn new() -> Self {
        Self {
            rings: Arc::new(Mutex::new(Rings {
                logs: VecDeque::with_capacity(LOG_RING),
                events: VecDeque::with_capacity(EVENT_RING),
            })),
            logs: broadcast::channel(1024).0,
            events: broadcast::channel(256).0,
        }
    }

    fn rings(&self) -> MutexGuard<'_, Rings> {
        self.rings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a server output line.
    pub fn log(&self, stream: &'static str, line: impl Into<String>) {
        let entry = LogEntry {
            unix_ms: unix_ms(),
            stream,
            line: line.into(),
        };
        {
            let mut r = self.rings();
            if r.logs.len() == LOG_RING {
                r.logs.pop_front();
            }
            r.logs.push_back(entry.clone());
        }
        let _ = self.logs.send(entry);
    }

    /// Records an event; it is also written to the daemon's own log.
    pub fn event(&self, kind: &str, message: impl Into<String>, fields: serde_json::Value) {
        let entry = EventEntry {
            unix_ms: unix_ms(),
            kind: kind.to_owned(),
            message: message.into(),
            fields,
        };
        tracing::info!(kind = %entry.kind, fields = %entry.fields, "{}", entry.message);
        {
            let mut r = self.rings();
            if r.events.len() == EVENT_RING {
                r.events.pop_front();
            }
            r.events.push_back(entry.clone());
        }
        let _ = self.events.send(entry);
    }

    /// The last `n` log lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogEntry> {
        let r = self.rings();
        r.logs
            .iter()
            .skip(r.logs.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The last `n` events, oldest first.
    pub fn recent_events(&self, n: usize) -> Vec<EventEntry> {
        let r = self.rings();
        r.events
            .iter()
            .skip(r.events.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The last `n` lines and a receiver for what follows, with nothing lost
    /// or repeated between the two.
    pub fn follow_logs(&self, n: usize) -> (Vec<LogEntry>, broadcast::Receiver<LogEntry>) {
        let r = self.rings();
        let rx = self.logs.subscribe();
        let tail = r
            .logs
            .iter()
            .skip(r.logs.len().saturating_sub(n))
            .cloned()
            .collect();
        (tail, rx)
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<EventEntry> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_bounded_and_keep_the_newest() {
        let bus = EventBus::new();
        for i in 0..(LOG_RING + 10) {
            bus.log("stdout", format!("line {i}"));
        }
        let tail = bus.tail(3);
        assert_eq!(
            tail.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
            [
                format!("line {}", LOG_RING + 7),
                format!("line {}", LOG_RING + 8),
                format!("line {}", LOG_RING + 9)
            ]
        );
        assert_eq!(bus.tail(usize::MAX).len(), LOG_RING);
    }

    #[tokio::test]
    async fn followers_see_the_tail_then_new_lines_without_gaps() {
        let bus = EventBus::new();
        bus.log("stdout", "a");
        bus.log("stdout", "b");
        let (tail, mut rx) = bus.follow_logs(1);
        assert_eq!(tail[0].line, "b");
        bus.log("stderr", "c");
        let next = rx.recv().await.expect("c");
        assert_eq!((next.stream, next.line.as_str()), ("stderr", "c"));
    }

    #[tokio::test]
    async fn events_are_kept_and_broadcast() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe_events();
        bus.event("state", "running", serde_json::json!({"state": "running"}));
        assert_eq!(rx.recv().await.expect("event").kind, "state");
        assert_eq!(bus.recent_events(10).len(), 1);
    }
}
