//! The one backoff of the service: MQTT reconnects, TSDB retries and
//! notification retries all use it. Jittered exponential. "Equal jitter": the delay is uniform in
//! [base/2, base], base doubling from `min` up to `max`, so a fleet of
//! restarted instances does not reconnect in lock-step.

use std::time::Duration;

use rand::Rng;

/// Backoff state.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// New backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// Next delay; grows until `max`.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let base = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = base / 2;
        let jitter_ns =
            rng.random_range(0..=u64::try_from((base - half).as_nanos()).unwrap_or(u64::MAX));
        half + Duration::from_nanos(jitter_ns)
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let bases = [100u64, 200, 400, 800, 1600, 2000, 2000, 2000];
        for base in bases {
            let d = b.next_delay(&mut rng).as_millis() as u64;
            assert!(
                d >= base / 2 && d <= base,
                "delay {d} ms outside [{}, {base}]",
                base / 2
            );
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(100));
    }

    #[test]
    fn two_clients_with_different_seeds_do_not_retry_in_lock_step() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut b = a.clone();
        let (mut ra, mut rb) = (
            rand::rngs::StdRng::seed_from_u64(1),
            rand::rngs::StdRng::seed_from_u64(2),
        );
        let same = (0..6)
            .filter(|_| a.next_delay(&mut ra) == b.next_delay(&mut rb))
            .count();
        assert!(same < 6);
    }
}
