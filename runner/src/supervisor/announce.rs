//! What players see before an update stops the server: the countdown of
//! `[announce]` (its message repeated at the configured marks, naming the
//! pack version), and, for automatic updates with `[schedule]
//! wait_for_empty`, the wait for the last player to leave.

use std::time::Duration;

use super::actor::Actor;
use crate::config::AnnounceSettings;

/// How often the player count is read while waiting for an empty server.
const EMPTY_POLL: Duration = Duration::from_secs(10);

/// What the messages' placeholders stand for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars {
    /// The pack version being installed (`{version}`).
    pub version: String,
    pub pack: String,
    /// The build id (`{build}` shows its first 12 characters).
    pub build: String,
}

/// `5 minutes`, `1 minute 30 seconds`, `10 seconds`, `1 second`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs().max(u64::from(!d.is_zero()));
    let unit = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    match (secs / 60, secs % 60) {
        (0, s) => unit(s, "second"),
        (m, 0) => unit(m, "minute"),
        (m, s) => format!("{} {}", unit(m, "minute"), unit(s, "second")),
    }
}

/// A message with its placeholders filled, on one line.
pub fn render(template: &str, vars: &Vars, left: Duration) -> String {
    let short = vars.build.get(..12).unwrap_or(&vars.build);
    template
        .replace("{time}", &human(left))
        .replace("{version}", &vars.version)
        .replace("{pack}", &vars.pack)
        .replace("{build}", short)
        .replace(['\n', '\r', '\0'], " ")
}

/// The times (left before the stop) at which the message is sent, longest
/// first: the whole countdown, then every mark shorter than it.
pub fn marks(settings: &AnnounceSettings, total: Duration) -> Vec<Duration> {
    let mut out = vec![total];
    let mut at: Vec<Duration> = settings
        .at
        .iter()
        .copied()
        .filter(|m| *m < total && !m.is_zero())
        .collect();
    at.sort_unstable_by(|a, b| b.cmp(a));
    at.dedup();
    out.extend(at);
    out
}

impl Actor {
    async fn say(&self, text: &str) {
        let cmd = format!("{} {text}", self.cfg.announce.command);
        if let Err(e) = self.sup.console().send(&cmd).await {
            tracing::warn!("announcing the restart: {e}");
        }
    }

    /// Runs the countdown of `total` (the `[source] announce` time); false
    /// when the daemon's shutdown cut it short.
    pub(super) async fn countdown(&self, total: Duration, vars: &Vars) -> bool {
        let a = &self.cfg.announce;
        let start = tokio::time::Instant::now();
        if total.is_zero() {
            self.say(&render(&a.now, vars, Duration::ZERO)).await;
            return !self.shutdown.is_requested();
        }
        for left in marks(a, total) {
            let at = start + (total - left);
            if self.shutdown.unless(tokio::time::sleep_until(at)).await.is_none() {
                return false;
            }
            self.say(&render(&a.message, vars, left)).await;
        }
        if self
            .shutdown
            .unless(tokio::time::sleep_until(start + total))
            .await
            .is_none()
        {
            return false;
        }
        self.say(&render(&a.now, vars, Duration::ZERO)).await;
        true
    }

    /// Waits, at most `[schedule] max_wait`, until the Server List Ping
    /// says no player is online; false when the daemon's shutdown cut it short.
    pub(super) async fn wait_for_empty(&self) -> bool {
        let Some(addr) = self.props.as_ref().map(|p| p.game) else {
            return true;
        };
        let max = self.cfg.schedule.max_wait;
        let until = tokio::time::Instant::now() + max;
        let mut told = false;
        loop {
            let online = crate::slp::ping(addr, super::actor::PING_TIMEOUT)
                .await
                .map(|s| s.players_online)
                .unwrap_or(0);
            if online == 0 {
                if told {
                    self.sup.bus().event(
                        "update",
                        "no player is online any more: the update goes ahead",
                        serde_json::json!({"players_online": 0}),
                    );
                }
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                self.sup.bus().event(
                    "update",
                    format!(
                        "{online} player(s) still online after waiting {}: the update goes ahead",
                        human(max)
                    ),
                    serde_json::json!({"players_online": online, "waited_ms": crate::channel::ms(max)}),
                );
                return true;
            }
            if !told {
                told = true;
                self.sup.bus().event(
                    "update",
                    format!(
                        "waiting for the {online} player(s) online to leave before updating (at most {})",
                        human(max)
                    ),
                    serde_json::json!({"players_online": online, "max_wait_ms": crate::channel::ms(max)}),
                );
            }
            let nap = EMPTY_POLL.min(until - now);
            if self.shutdown.unless(tokio::time::sleep(nap)).await.is_none() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_people_write_them() {
        assert_eq!(human(Duration::from_secs(300)), "5 minutes");
        assert_eq!(human(Duration::from_secs(60)), "1 minute");
        assert_eq!(human(Duration::from_secs(90)), "1 minute 30 seconds");
        assert_eq!(human(Duration::from_secs(1)), "1 second");
        assert_eq!(human(Duration::from_millis(300)), "1 second");
        assert_eq!(human(Duration::ZERO), "0 seconds");
    }

    #[test]
    fn messages_name_the_version_and_marks_count_down() {
        let vars = Vars {
            version: "1.0.1".into(),
            pack: "demo".into(),
            build: "ab".repeat(32),
        };
        let a = AnnounceSettings::default();
        assert_eq!(
            render(&a.message, &vars, Duration::from_secs(30)),
            "The server restarts in 30 seconds to update the modpack to version 1.0.1"
        );
        assert_eq!(
            render("{pack} {build}\nop me", &vars, Duration::ZERO),
            "demo abababababab op me"
        );
        let secs = |v: Vec<Duration>| v.into_iter().map(|d| d.as_secs()).collect::<Vec<_>>();
        assert_eq!(secs(marks(&a, Duration::from_secs(30))), [30, 10, 5, 3, 2, 1]);
        assert_eq!(
            secs(marks(&a, Duration::from_secs(900))),
            [900, 600, 300, 120, 60, 30, 10, 5, 3, 2, 1]
        );
    }
}
