//! Retry timing shared by every Atlas HTTP client (builder downloads, fetcher
//! transfers): exponential backoff with "equal jitter", a jitter source, and
//! the server's `Retry-After` header. Pure functions: no I/O, no sleeping.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, SystemTime};

/// Delay before retry number `n` (0-based): `base * 2^n`, capped at `max`,
/// then a point in its upper half chosen by `jitter` in `[0, 1)` ("equal
/// jitter"), so clients that failed together do not come back together.
pub fn backoff(base: Duration, max: Duration, n: u32, jitter: f64) -> Duration {
    let exp = base
        .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX))
        .min(max);
    exp / 2 + (exp / 2).mul_f64(jitter.clamp(0.0, 1.0))
}

/// A random fraction in `[0, 1)` from std's per-process randomly keyed hasher
/// (retry spreading needs no cryptographic randomness).
pub fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (relative to `now`; a
/// date in the past means "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_stays_in_the_upper_half() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(backoff(base, max, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(base, max, 0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(base, max, 2, 0.5), Duration::from_millis(300));
        assert_eq!(
            backoff(base, max, 30, 1.0),
            max,
            "capped, and no overflow for large n"
        );
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
