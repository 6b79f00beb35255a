//! `Retry-After` (RFC 9110 §10.2.3): delay seconds or an HTTP-date, and the retry backoff.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;

/// A server's `Retry-After`, as given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RetryAfter {
    /// `Retry-After: 120`: wait this long.
    Seconds(Duration),
    /// `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`: wait until then (this is what is left of
    /// it when the answer arrived; zero for a date in the past).
    Date(Duration),
}

/// Parses a `Retry-After` value received at `now`; `None` for anything else.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<RetryAfter> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| RetryAfter::Seconds(Duration::from_secs_f64(secs.min(1e9))));
    }
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(parse_http_date(v)?).ok()?);
    Some(RetryAfter::Date(
        at.duration_since(now).unwrap_or(Duration::ZERO),
    ))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since 1970 of an HTTP-date in any of its three forms (all GMT):
/// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and
/// asctime `Sun Nov  6 08:49:37 1994`. The weekday is not checked.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let month = |m: &str| MONTHS.iter().position(|x| x.eq_ignore_ascii_case(m));
    let (year, mon, day, time) = if let Some(rest) = s.split_once(", ").map(|(_, r)| r) {
        let w: Vec<&str> = rest.split_whitespace().collect();
        match w.as_slice() {
            // IMF-fixdate: day month year time GMT
            [d, m, y, t, "GMT"] => (y.parse::<i64>().ok()?, month(m)?, d.parse().ok()?, *t),
            // RFC 850: dd-Mon-yy time GMT (two-digit years: 70-99 are 19xx, the rest 20xx)
            [dmy, t, "GMT"] => {
                let mut p = dmy.split('-');
                let (d, m, y) = (p.next()?, p.next()?, p.next()?);
                let y: i64 = y.parse().ok()?;
                let y = match y {
                    0..=69 => 2000 + y,
                    70..=99 => 1900 + y,
                    _ => y,
                };
                (y, month(m)?, d.parse().ok()?, *t)
            }
            _ => return None,
        }
    } else {
        // asctime: weekday month day time year
        match s.split_whitespace().collect::<Vec<_>>().as_slice() {
            [_, m, d, t, y] => (y.parse().ok()?, month(m)?, d.parse().ok()?, *t),
            _ => return None,
        }
    };
    let mut hms = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..61).contains(&sec)
    {
        return None;
    }
    Some(days_from_civil(year, mon as i64 + 1, day) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Backoff of retries: `min(max, base * 2^retry)`, scaled by a random factor in [0.5, 1). A
/// server's `Retry-After` replaces it: the seconds form as given, the date form plus a random
/// jitter in [0, base) (so that clients told the same instant do not all return at once); both
/// capped at `max_retry_after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Longest delay (before jitter).
    pub max: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<RetryAfter>) -> Duration {
        self.delay_with(retry, retry_after, rand::thread_rng().gen::<f64>())
    }

    /// The delay for a uniform draw `u` in [0, 1).
    fn delay_with(&self, retry: u32, retry_after: Option<RetryAfter>, u: f64) -> Duration {
        match retry_after {
            Some(RetryAfter::Seconds(d)) => d.min(self.max_retry_after),
            Some(RetryAfter::Date(d)) => d.min(self.max_retry_after) + self.base.mul_f64(u),
            None => {
                let exp = self
                    .base
                    .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX));
                exp.min(self.max).mul_f64(0.5 + 0.5 * u)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_in_all_three_forms() {
        // RFC 9110's example instant.
        let t = 784_111_777;
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        // A leap day after the century rule.
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        for bad in [
            "",
            "tomorrow",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after(" 2 ", now),
            Some(RetryAfter::Seconds(Duration::from_secs(2)))
        );
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(RetryAfter::Seconds(Duration::from_millis(500)))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(RetryAfter::Date(Duration::from_secs(3)))
        );
        // A date in the past means: now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(RetryAfter::Date(Duration::ZERO))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_honours_retry_after_and_jitters_dates_only() {
        let b = Backoff::default();
        let s = Some(RetryAfter::Seconds(Duration::from_secs(3)));
        let d = Some(RetryAfter::Date(Duration::from_secs(3)));
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(b.delay_with(0, s, u), Duration::from_secs(3));
            let got = b.delay_with(0, d, u);
            assert!(
                got >= Duration::from_secs(3) && got < Duration::from_millis(3500),
                "{got:?}"
            );
        }
        assert!(b.delay_with(0, d, 0.9) > b.delay_with(0, d, 0.1));
        let long = Some(RetryAfter::Date(Duration::from_secs(1000)));
        assert_eq!(b.delay_with(0, long, 0.0), b.max_retry_after);
        // Exponential without a Retry-After: 500 ms, 1 s, 2 s ... capped at 30 s, times [0.5, 1).
        assert_eq!(b.delay_with(0, None, 0.0), Duration::from_millis(250));
        assert_eq!(b.delay_with(2, None, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay_with(30, None, 0.0), Duration::from_secs(15));
    }
}
