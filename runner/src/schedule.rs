//! When an automatic update may stop the server: the maintenance window of
//! `[schedule] window` (`HH:MM-HH:MM` in the host's local time, possibly
//! across midnight), and how long until it opens.

use std::time::Duration;

use jiff::Zoned;
use jiff::civil::Time;

/// A daily window, `start` included, `end` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Time,
    pub end: Time,
}

fn parse_time(s: &str) -> Result<Time, String> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not a time of day: write HH:MM"))?;
    let num = |x: &str, max: i8| {
        x.parse::<i8>()
            .ok()
            .filter(|v| (0..=max).contains(v) && (1..=2).contains(&x.len()))
            .ok_or_else(|| format!("`{s}` is not a time of day: write HH:MM, 00:00 to 23:59"))
    };
    Time::new(num(h, 23)?, num(m, 59)?, 0, 0).map_err(|e| e.to_string())
}

impl Window {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (a, b) = text.split_once('-').ok_or_else(|| {
            format!("`{text}` is not a window: write HH:MM-HH:MM in the host's local time, like 03:00-05:00")
        })?;
        let w = Self {
            start: parse_time(a)?,
            end: parse_time(b)?,
        };
        if w.start == w.end {
            return Err(format!(
                "`{text}` is empty: the start and the end are the same time"
            ));
        }
        Ok(w)
    }

    /// Whether `t` is inside.
    pub fn contains(&self, t: Time) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// How long from `now` until the window is open (zero when it is).
    pub fn until_open(&self, now: &Zoned) -> Duration {
        if self.contains(now.time()) {
            return Duration::ZERO;
        }
        let today = now.with().time(self.start).build();
        let next = match today {
            Ok(t) if t > *now => Ok(t),
            Ok(t) => t.checked_add(jiff::Span::new().days(1)),
            Err(e) => Err(e),
        };
        next.ok()
            .and_then(|t| Duration::try_from(now.duration_until(&t)).ok())
            // A time-zone oddity: look again in a minute.
            .unwrap_or(Duration::from_secs(60))
    }

    /// `03:00-05:00`.
    pub fn describe(&self) -> String {
        format!(
            "{:02}:{:02}-{:02}:{:02}",
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

/// The host's local time now.
pub fn now() -> Zoned {
    Zoned::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn at(h: i8, m: i8) -> Zoned {
        jiff::civil::date(2025, 6, 1)
            .at(h, m, 0, 0)
            .to_zoned(TimeZone::UTC)
            .expect("zoned")
    }

    #[test]
    fn windows_parse_and_contain_across_midnight() {
        let w = Window::parse("03:00-05:30").expect("parse");
        assert!(w.contains(Time::constant(3, 0, 0, 0)));
        assert!(w.contains(Time::constant(5, 29, 0, 0)));
        assert!(!w.contains(Time::constant(5, 30, 0, 0)));
        let night = Window::parse("22:00-02:00").expect("parse");
        assert!(night.contains(Time::constant(23, 0, 0, 0)));
        assert!(night.contains(Time::constant(1, 0, 0, 0)));
        assert!(!night.contains(Time::constant(12, 0, 0, 0)));
        assert_eq!(night.describe(), "22:00-02:00");
        for bad in [
            "3-5",
            "03:00",
            "25:00-01:00",
            "03:00-03:00",
            "03:60-04:00",
            "a:b-c:d",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_until_the_window_opens() {
        let w = Window::parse("03:00-05:00").expect("parse");
        assert_eq!(w.until_open(&at(4, 0)), Duration::ZERO);
        assert_eq!(w.until_open(&at(2, 30)), Duration::from_secs(30 * 60));
        assert_eq!(w.until_open(&at(5, 0)), Duration::from_secs(22 * 3600));
    }
}
