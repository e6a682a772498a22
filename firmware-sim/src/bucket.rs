//! A token bucket for the overall publish rate (`--rate`).
//!
//! Pure: the caller passes the time, so the bucket is tested without
//! sleeping. Capacity is a tenth of a second's worth of tokens (at least
//! one), which keeps bursts short while letting a 10 ms tick publish at the
//! full rate.

use std::time::Instant;

/// Rate limiter: `take` succeeds at most `rate_per_s` times per second on
/// average.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_per_s: f64,
    capacity: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket refilled at `rate_per_s`, starting full.
    pub fn new(rate_per_s: f64) -> Self {
        let capacity = (rate_per_s / 10.0).max(1.0);
        TokenBucket {
            rate_per_s,
            capacity,
            tokens: capacity,
            last: None,
        }
    }

    /// Adds the tokens earned since the last refill.
    pub fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate_per_s).min(self.capacity);
        }
        self.last = Some(now);
    }

    /// Takes one token if there is one.
    pub fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_the_rate_over_a_second_of_ticks() {
        let mut b = TokenBucket::new(1000.0);
        let t0 = Instant::now();
        let mut taken = 0;
        for tick in 0..=100u64 {
            b.refill(t0 + Duration::from_millis(tick * 10));
            while b.take() {
                taken += 1;
            }
        }
        // A full bucket (100) plus one second of refill (1000).
        assert!((1090..=1110).contains(&taken), "{taken}");
    }

    #[test]
    fn a_slow_bucket_still_holds_one_token() {
        let mut b = TokenBucket::new(0.5);
        let t0 = Instant::now();
        b.refill(t0);
        assert!(b.take());
        assert!(!b.take());
        b.refill(t0 + Duration::from_secs(2));
        assert!(b.take());
    }
}
