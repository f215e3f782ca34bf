//! The token bucket of a webhook's `rate_limit_per_second`, for the dispatcher.
//! Pure: the clock is a parameter (Unix ms); it never sleeps or reads time.

/// A token bucket for `rate_limit_per_second` (burst = one second's worth).
pub(super) struct Bucket {
    /// The rate it was made for; a changed limit makes a new bucket.
    pub(super) rate: u32,
    tokens: f64,
    at: i64,
}

impl Bucket {
    /// A full bucket for `rate` per second.
    pub(super) fn new(rate: u32, now: i64) -> Self {
        Bucket {
            rate,
            tokens: f64::from(rate),
            at: now,
        }
    }

    fn refill(&mut self, now: i64) {
        let elapsed_ms = (now - self.at).max(0) as f64;
        let cap = f64::from(self.rate.max(1));
        self.tokens = (self.tokens + elapsed_ms * f64::from(self.rate) / 1000.0).min(cap);
        self.at = self.at.max(now);
    }

    /// Whether the bucket is full again, so forgetting it changes nothing.
    pub(super) fn is_full(&mut self, now: i64) -> bool {
        self.refill(now);
        self.tokens >= f64::from(self.rate.max(1))
    }

    /// Takes a token, or says when (Unix ms) one will be there.
    pub(super) fn take(&mut self, now: i64) -> Result<(), i64> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - self.tokens) * 1000.0 / f64::from(self.rate.max(1));
            Err(now + (wait_ms.ceil() as i64).max(1))
        }
    }
}
