//! The token bucket of `rate_limit_per_second` as `claim_batch` computes it (pure):
//! burst one second's worth, refilled by elapsed time, never running back when a
//! node's clock is behind the stored row. It never reads or writes the database.

use crate::model::UnixMs;

/// A token bucket row: burst one second's worth, refilled by elapsed time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) updated_at: UnixMs,
}

impl Bucket {
    /// The bucket as of `now` (full when it has no row yet; time never runs back).
    pub(super) fn refill(stored: Option<Bucket>, rate: f64, now: UnixMs) -> Bucket {
        match stored {
            None => Bucket {
                tokens: rate,
                updated_at: now,
            },
            Some(b) => {
                let at = now.max(b.updated_at);
                let elapsed = (at - b.updated_at) as f64 / 1000.0;
                Bucket {
                    tokens: (b.tokens + elapsed * rate).min(rate),
                    updated_at: at,
                }
            }
        }
    }

    /// Whole tokens available.
    pub(super) fn whole(&self) -> u32 {
        self.tokens.max(0.0).floor() as u32
    }

    /// When the next whole token is there.
    pub(super) fn next_token_at(&self, rate: f64) -> UnixMs {
        let missing = (1.0 - self.tokens.fract()).max(0.0);
        self.updated_at + (missing * 1000.0 / rate).ceil() as UnixMs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_starts_full_refills_by_elapsed_time_and_never_runs_back() {
        let b = Bucket::refill(None, 20.0, 1_000);
        assert_eq!((b.whole(), b.updated_at), (20, 1_000));
        let spent = Bucket {
            tokens: 0.0,
            updated_at: 1_000,
        };
        // 20/s: one token per 50 ms, burst one second's worth.
        assert_eq!(Bucket::refill(Some(spent), 20.0, 1_049).whole(), 0);
        assert_eq!(Bucket::refill(Some(spent), 20.0, 1_050).whole(), 1);
        assert_eq!(Bucket::refill(Some(spent), 20.0, 60_000).whole(), 20);
        assert_eq!(spent.next_token_at(20.0), 1_050);
        // A caller whose clock is behind the bucket's gets nothing extra.
        let behind = Bucket::refill(Some(spent), 20.0, 900);
        assert_eq!((behind.whole(), behind.updated_at), (0, 1_000));
    }
}
