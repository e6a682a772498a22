//! Re-stamped points, made idempotent.
//!
//! A record whose device clock is out of range gets its receive time as
//! point time (decode/clock.rs). Two problems follow: a burst of messages
//! received in one millisecond would become one point (same measurement,
//! tags and time), and a message redelivered after a crash (logged, not yet
//! acked) would get a second receive time and so a second point. The
//! committer therefore keeps, per device, the last re-stamped time it gave
//! and, per (device, seq), the time a message got: a new message gets
//! `max(receive time, last + 1 ms)`, a message seen before gets its time
//! again. The memory is seeded at start from the newest log segments, where
//! anything the broker can still redeliver was written.

use std::collections::{HashMap, VecDeque};

use crate::pb::{self, ClockCheck};

/// Most (device, seq) pairs remembered.
pub const CAPACITY: usize = 100_000;

/// The memory (see the module docs).
#[derive(Debug)]
pub struct Restamper {
    by_message: HashMap<(String, u64), i64>,
    order: VecDeque<(String, u64)>,
    last: HashMap<String, i64>,
    capacity: usize,
}

impl Default for Restamper {
    fn default() -> Self {
        Restamper::new(CAPACITY)
    }
}

fn key(rec: &pb::LogRecord) -> Option<(String, u64)> {
    let env = rec.envelope.as_ref()?;
    let restamped = rec.clock_check == ClockCheck::FutureRestamped as i32
        || rec.clock_check == ClockCheck::AncientRestamped as i32;
    restamped.then(|| (env.device_id.clone(), env.seq))
}

impl Restamper {
    /// Remembers at most `capacity` messages.
    pub fn new(capacity: usize) -> Restamper {
        Restamper {
            by_message: HashMap::new(),
            order: VecDeque::new(),
            last: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn remember(&mut self, k: (String, u64), time: i64) {
        let last = self.last.entry(k.0.clone()).or_insert(i64::MIN);
        *last = (*last).max(time);
        if self.by_message.insert(k.clone(), time).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.by_message.remove(&old);
                }
            }
        }
    }

    /// Learns a record already in the log (at start).
    pub fn seed(&mut self, rec: &pb::LogRecord) {
        if let Some(k) = key(rec) {
            self.remember(k, rec.time_unix_ms);
        }
    }

    /// Fixes the point time of a re-stamped record; returns true when it
    /// changed it. Records with a trusted clock are left alone.
    pub fn apply(&mut self, rec: &mut pb::LogRecord) -> bool {
        let Some(k) = key(rec) else { return false };
        if let Some(&t) = self.by_message.get(&k) {
            let changed = t != rec.time_unix_ms;
            rec.time_unix_ms = t;
            return changed;
        }
        let t = match self.last.get(&k.0) {
            Some(&last) if last >= rec.time_unix_ms => last.saturating_add(1),
            _ => rec.time_unix_ms,
        };
        let changed = t != rec.time_unix_ms;
        rec.time_unix_ms = t;
        self.remember(k, t);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(device: &str, seq: u64, time: i64, restamped: bool) -> pb::LogRecord {
        pb::LogRecord {
            envelope: Some(pb::Envelope {
                device_id: device.into(),
                seq,
                ..Default::default()
            }),
            time_unix_ms: time,
            clock_check: if restamped {
                ClockCheck::FutureRestamped as i32
            } else {
                ClockCheck::Ok as i32
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_burst_in_one_millisecond_gets_distinct_times() {
        let mut r = Restamper::default();
        let times: Vec<i64> = (1..=4)
            .map(|seq| {
                let mut x = rec("d", seq, 1000, true);
                r.apply(&mut x);
                x.time_unix_ms
            })
            .collect();
        assert_eq!(times, vec![1000, 1001, 1002, 1003]);
        // Another device is not pushed along.
        let mut y = rec("e", 1, 1000, true);
        r.apply(&mut y);
        assert_eq!(y.time_unix_ms, 1000);
    }

    #[test]
    fn a_redelivered_message_gets_the_time_it_got_first() {
        let mut r = Restamper::default();
        let mut first = rec("d", 7, 1000, true);
        r.apply(&mut first);
        let mut again = rec("d", 7, 90_000, true);
        assert!(r.apply(&mut again));
        assert_eq!(again.time_unix_ms, 1000);
    }

    #[test]
    fn a_redelivery_after_a_restart_gets_the_time_in_the_log() {
        let mut r = Restamper::default();
        r.seed(&rec("d", 7, 1234, true));
        r.seed(&rec("d", 8, 5000, false));
        let mut again = rec("d", 7, 99_999, true);
        r.apply(&mut again);
        assert_eq!(again.time_unix_ms, 1234);
        let mut next = rec("d", 9, 1000, true);
        r.apply(&mut next);
        assert_eq!(next.time_unix_ms, 1235, "after the last re-stamped time");
    }

    #[test]
    fn trusted_clocks_are_left_alone() {
        let mut r = Restamper::default();
        let mut x = rec("d", 1, 1000, false);
        assert!(!r.apply(&mut x));
        let mut y = rec("d", 2, 1000, false);
        assert!(!r.apply(&mut y));
        assert_eq!((x.time_unix_ms, y.time_unix_ms), (1000, 1000));
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Restamper::new(3);
        for seq in 0..10 {
            let mut x = rec("d", seq, 1000, true);
            r.apply(&mut x);
        }
        assert_eq!(r.by_message.len(), 3);
        assert_eq!(r.order.len(), 3);
    }
}
