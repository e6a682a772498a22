//! When the TSDB writer sends: the pure decision between "write now" and
//! "wait for more", by size and age, with time passed in.
//!
//! A batch opens when the first unwritten record is seen; it is written as
//! soon as it holds `max_lines` records, once it is `max_age` old, or at
//! once when stopping.

use std::time::Duration;

use tokio::time::Instant;

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to write: wait for records.
    Idle,
    /// Write what is there.
    Write,
    /// Wait for more records, at most until this instant.
    WaitUntil(Instant),
}

/// The batching policy and the age of the open batch.
#[derive(Clone, Debug)]
pub struct Batcher {
    max_lines: u64,
    max_age: Duration,
    opened: Option<Instant>,
}

impl Batcher {
    /// Batches of at most `max_lines`, held at most `max_age`.
    pub fn new(max_lines: usize, max_age: Duration) -> Batcher {
        Batcher {
            max_lines: max_lines.max(1) as u64,
            max_age,
            opened: None,
        }
    }

    /// Decides with `pending` unwritten records at `now`.
    pub fn decide(&mut self, pending: u64, now: Instant, stopping: bool) -> Decision {
        if pending == 0 {
            self.opened = None;
            return Decision::Idle;
        }
        let opened = *self.opened.get_or_insert(now);
        if stopping || pending >= self.max_lines || now >= opened + self.max_age {
            Decision::Write
        } else {
            Decision::WaitUntil(opened + self.max_age)
        }
    }

    /// The batch was written: the next one opens with the next record.
    pub fn written(&mut self) {
        self.opened = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        // A fixed origin: Instant has no zero, so offsets from one value.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    #[test]
    fn nothing_pending_is_idle() {
        let mut b = Batcher::new(100, Duration::from_secs(1));
        assert_eq!(b.decide(0, at(0), false), Decision::Idle);
    }

    #[test]
    fn a_partial_batch_waits_until_it_is_old_enough_counted_from_its_first_record() {
        let mut b = Batcher::new(100, Duration::from_millis(1000));
        assert_eq!(b.decide(3, at(0), false), Decision::WaitUntil(at(1000)));
        // More records later do not restart the clock.
        assert_eq!(b.decide(50, at(600), false), Decision::WaitUntil(at(1000)));
        assert_eq!(b.decide(50, at(1000), false), Decision::Write);
        b.written();
        assert_eq!(b.decide(1, at(1200), false), Decision::WaitUntil(at(2200)));
    }

    #[test]
    fn a_full_batch_or_a_stop_writes_at_once() {
        let mut b = Batcher::new(100, Duration::from_secs(60));
        assert_eq!(b.decide(100, at(0), false), Decision::Write);
        b.written();
        assert_eq!(b.decide(1, at(5), true), Decision::Write);
    }

    #[test]
    fn draining_to_zero_closes_the_batch() {
        let mut b = Batcher::new(100, Duration::from_millis(1000));
        assert_eq!(b.decide(3, at(0), false), Decision::WaitUntil(at(1000)));
        assert_eq!(b.decide(0, at(500), false), Decision::Idle);
        assert_eq!(b.decide(2, at(900), false), Decision::WaitUntil(at(1900)));
    }
}
