//! The retry schedule: how long to wait before each attempt of a delivery, with
//! jitter and `Retry-After`. Pure: it must never read the clock or draw randomness
//! itself (both are parameters) and never touch the store or the network.

use std::time::Duration;

use crate::config::DeliveryConfig;
use crate::model::UnixMs;

/// A retry policy that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// With no entries there would be no first attempt.
    #[error("the retry schedule needs at least one entry")]
    EmptySchedule,
    /// Jitter is a fraction of each delay.
    #[error("jitter must be between 0 and 1, got {0}")]
    Jitter(f64),
}

/// When each attempt of a delivery happens.
///
/// `schedule[0]` is the delay of the first attempt after ingest (normally zero).
/// After attempt `n` (1-based) fails, the next one waits `schedule[n]`; once
/// `n == schedule.len()` attempts have failed, the delivery is exhausted.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
    jitter: f64,
    retry_after_max: Duration,
}

impl RetryPolicy {
    /// Builds a policy; `schedule` must not be empty and `jitter` must be in `0..=1`.
    pub fn new(
        schedule: Vec<Duration>,
        jitter: f64,
        retry_after_max: Duration,
    ) -> Result<Self, PolicyError> {
        if schedule.is_empty() {
            return Err(PolicyError::EmptySchedule);
        }
        // The negated range check also refuses NaN.
        if !(0.0..=1.0).contains(&jitter) {
            return Err(PolicyError::Jitter(jitter));
        }
        Ok(Self {
            schedule,
            jitter,
            retry_after_max,
        })
    }

    /// The policy of the `[delivery]` section of the configuration.
    pub fn from_config(delivery: &DeliveryConfig) -> Result<Self, PolicyError> {
        Self::new(
            delivery.retry_schedule.clone(),
            delivery.jitter,
            delivery.retry_after_max,
        )
    }

    /// How many attempts the schedule allows in all.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len()).unwrap_or(u32::MAX)
    }

    /// The delay of the first attempt after ingest, without jitter, so that the
    /// normal "deliver now" stays immediate.
    pub fn first_delay(&self) -> Duration {
        // Invariant: `new` refuses an empty schedule.
        self.schedule[0]
    }

    /// The wait before the next attempt once `attempts_made` attempts have failed,
    /// or `None` when the schedule is exhausted. `unit` is a random draw in `[0, 1)`
    /// that picks the jitter factor uniformly in `[1 - jitter, 1 + jitter]`.
    pub fn next_delay(&self, attempts_made: u32, unit: f64) -> Option<Duration> {
        let base = *self.schedule.get(usize::try_from(attempts_made).ok()?)?;
        Some(self.jittered(base, unit))
    }

    /// Scales `base` by the jitter factor that `unit` selects.
    fn jittered(&self, base: Duration, unit: f64) -> Duration {
        // A draw outside [0, 1] (or NaN) from a careless caller must not stretch the
        // delay beyond the configured bounds.
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit;
        // Whole milliseconds keep results exact and comparable; zero stays zero. The
        // cast is lossy only beyond 2^53 ms (285,000 years), where precision is moot.
        let scaled_ms = (base.as_millis() as f64 * factor).round();
        if scaled_ms.is_finite() && scaled_ms < u64::MAX as f64 {
            // In range and non-negative (factor >= 0), so the cast is exact enough.
            Duration::from_millis(scaled_ms as u64)
        } else {
            base
        }
    }

    /// The wait actually used after a reply carrying `Retry-After`: never shorter
    /// than the schedule, and the receiver's wish capped at `retry_after_max` so a
    /// receiver cannot park deliveries for days.
    pub fn honour_retry_after(
        &self,
        scheduled: Duration,
        retry_after: Option<Duration>,
    ) -> Duration {
        match retry_after {
            Some(wish) => scheduled.max(wish.min(self.retry_after_max)),
            None => scheduled,
        }
    }
}

/// Parses a `Retry-After` header value: delta-seconds or an HTTP-date (RFC 9110
/// 5.6.7: the IMF-fixdate `Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850
/// and asctime forms every recipient must still accept). A negative delay or a date
/// in the past gives zero; anything unparseable gives `None`.
pub fn parse_retry_after(value: &str, now_ms: UnixMs) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<i64>() {
        return Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)));
    }
    let at = parse_http_date(value)?;
    let ahead_ms = at.as_millisecond().saturating_sub(now_ms);
    Some(Duration::from_millis(u64::try_from(ahead_ms).unwrap_or(0)))
}

/// An HTTP-date in any of its three forms (times are always UTC).
fn parse_http_date(value: &str) -> Option<jiff::Timestamp> {
    static IMF: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    if let Ok(at) = IMF.parse_timestamp(value) {
        return Some(at);
    }
    // RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37
    // 1994`); a run of spaces is one space, so asctime's padded day parses too.
    let squeezed = value.split_whitespace().collect::<Vec<_>>().join(" ");
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"]
        .iter()
        .find_map(|format| jiff::civil::DateTime::strptime(format, &squeezed).ok())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy::new(vec![s(0), s(5), s(300)], jitter, s(3600)).expect("valid policy")
    }

    #[test]
    fn constructor_refuses_bad_input() {
        let cases = [
            (vec![], 0.2, Some(PolicyError::EmptySchedule)),
            (vec![s(0)], -0.1, Some(PolicyError::Jitter(-0.1))),
            (vec![s(0)], 1.5, Some(PolicyError::Jitter(1.5))),
            (vec![s(0)], 0.0, None),
            (vec![s(0)], 1.0, None),
        ];
        for (schedule, jitter, want) in cases {
            let got = RetryPolicy::new(schedule, jitter, s(1)).err();
            assert_eq!(got, want, "jitter {jitter}");
        }
        assert!(RetryPolicy::new(vec![s(0)], f64::NAN, s(1)).is_err());
    }

    #[test]
    fn default_config_builds_a_ten_attempt_policy() {
        let p = RetryPolicy::from_config(&crate::config::Config::default().delivery)
            .expect("defaults are valid");
        assert_eq!(p.max_attempts(), 10);
        assert_eq!(p.first_delay(), Duration::ZERO);
        assert_eq!(p.next_delay(9, 0.5), Some(s(24 * 3600)));
        assert_eq!(p.next_delay(10, 0.5), None);
    }

    #[test]
    fn next_delay_without_jitter_walks_the_schedule() {
        let p = policy(0.0);
        let cases = [
            (0, Some(s(0))),
            (1, Some(s(5))),
            (2, Some(s(300))),
            (3, None),
            (u32::MAX, None),
        ];
        for (made, want) in cases {
            assert_eq!(p.next_delay(made, 0.9), want, "after {made} attempts");
        }
        assert_eq!(p.first_delay(), s(0));
    }

    #[test]
    fn jitter_spans_the_configured_band() {
        let p = policy(0.2);
        // (attempts made, unit draw, expected delay in ms)
        let cases = [
            (1, 0.0, 4_000),
            (1, 0.5, 5_000),
            (1, 0.75, 5_500),
            (2, 0.0, 240_000),
            (2, 1.0, 360_000),
            (0, 0.9, 0),
            (1, -3.0, 4_000),
            (1, 7.0, 6_000),
            (1, f64::NAN, 5_000),
        ];
        for (made, unit, want_ms) in cases {
            let got = p.next_delay(made, unit).expect("within the schedule");
            assert_eq!(got.as_millis(), want_ms, "after {made} with draw {unit}");
        }
    }

    #[test]
    fn retry_after_parsing() {
        // 2015-10-21T07:28:00Z in Unix milliseconds.
        let date_ms: i64 = 1_445_412_480_000;
        let cases = [
            ("120", 0, Some(s(120))),
            ("  7 ", 0, Some(s(7))),
            ("0", 0, Some(s(0))),
            ("-5", 0, Some(s(0))),
            (
                "Wed, 21 Oct 2015 07:28:00 GMT",
                date_ms - 90_000,
                Some(s(90)),
            ),
            ("Wed, 21 Oct 2015 07:28:00 GMT", date_ms + 1_000, Some(s(0))),
            ("Wed, 21 Oct 2015 07:28:00 +0000", date_ms, Some(s(0))),
            // The obsolete forms RFC 9110 still requires recipients to accept.
            (
                "Wednesday, 21-Oct-15 07:28:00 GMT",
                date_ms - 30_000,
                Some(s(30)),
            ),
            ("Wed Oct 21 07:28:00 2015", date_ms - 45_000, Some(s(45))),
            ("Thu Oct  1 07:28:00 2015", date_ms, Some(s(0))),
            (
                "Fri, 30 Oct 2026 11:00:00 GMT",
                1_793_358_000_000 - 600_000,
                Some(s(600)),
            ),
            ("Wed, 21 Oct 2015 07:28:00 GMT junk", 0, None),
            ("soon", 0, None),
            ("", 0, None),
            ("1.5", 0, None),
        ];
        for (value, now, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
    }

    #[test]
    fn honour_retry_after_is_clamped() {
        let p = policy(0.0);
        let cases = [
            (s(5), None, s(5)),
            (s(5), Some(s(60)), s(60)),
            (s(300), Some(s(60)), s(300)),
            (s(5), Some(s(86_400)), s(3600)),
            (s(7200), Some(s(86_400)), s(7200)),
        ];
        for (scheduled, wish, want) in cases {
            assert_eq!(
                p.honour_retry_after(scheduled, wish),
                want,
                "{scheduled:?} {wish:?}"
            );
        }
    }
}
