//! Duplicate detection by (device, seq): a bounded sliding window per
//! device, like the anti-replay window of IPsec (RFC 4303 §3.4.3).
//!
//! QoS 1 redelivers, and a device may resend after a reconnect; a record
//! seen before must not advance timers or counters twice. Each device keeps
//! its highest sequence number and a 64-bit mask of which of the numbers
//! just below it were seen: constant memory, O(1) per record.

use serde::{Deserialize, Serialize};

/// The sequence numbers recently seen from one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeqWindow {
    /// Highest sequence number accepted; `None` before the first record.
    highest: Option<u64>,
    /// Bit `i` set: `highest - i` was seen.
    seen: u64,
    /// Newest record time accepted, Unix ms (tells a reboot from a replay).
    newest_ms: i64,
}

/// What [`SeqWindow::accept`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seq {
    /// Not seen before: process it.
    New,
    /// Seen before: skip it.
    Duplicate,
    /// Older than the window and not newer in time: cannot tell, skip it.
    TooOld,
}

impl SeqWindow {
    /// Records `seq` (taken at `time_ms`) and says whether it is new.
    /// `window` (1..=64) is how many numbers below the highest are
    /// remembered.
    ///
    /// A number far below the window whose record is newer than anything
    /// seen means the device restarted its counter (a reboot): the window
    /// restarts there. Otherwise it is too old to tell and is skipped.
    /// Limitation: after such a restart, a redelivered message from before
    /// it whose number is above the new counter is taken as new once.
    pub fn accept(&mut self, seq: u64, time_ms: i64, window: u32) -> Seq {
        let width = u64::from(window.clamp(1, 64));
        let Some(high) = self.highest else {
            self.restart(seq, time_ms);
            return Seq::New;
        };
        if seq > high {
            let shift = seq - high;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = Some(seq);
            self.newest_ms = self.newest_ms.max(time_ms);
            return Seq::New;
        }
        let back = high - seq;
        if back < width {
            let bit = 1u64 << back;
            if self.seen & bit != 0 {
                return Seq::Duplicate;
            }
            self.seen |= bit;
            self.newest_ms = self.newest_ms.max(time_ms);
            return Seq::New;
        }
        if time_ms > self.newest_ms {
            self.restart(seq, time_ms);
            return Seq::New;
        }
        Seq::TooOld
    }

    fn restart(&mut self, seq: u64, time_ms: i64) {
        self.highest = Some(seq);
        self.seen = 1;
        self.newest_ms = time_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_accepts_each_number_once_in_any_order() {
        let mut w = SeqWindow::default();
        let cases: [(u64, i64, Seq); 9] = [
            (10, 100, Seq::New),
            (10, 100, Seq::Duplicate),
            (12, 120, Seq::New),
            (11, 110, Seq::New),
            (11, 110, Seq::Duplicate),
            (80, 800, Seq::New),
            (17, 170, Seq::New),    // 63 below 80: still in the window
            (16, 160, Seq::TooOld), // 64 below: out of it, and older
            (1, 900, Seq::New),     // far below but newer: a reboot
        ];
        for (seq, t, want) in cases {
            assert_eq!(w.accept(seq, t, 64), want, "seq {seq}");
        }
        assert_eq!(w.accept(1, 900, 64), Seq::Duplicate);
        assert_eq!(w.accept(2, 910, 64), Seq::New);
    }

    #[test]
    fn a_jump_of_more_than_64_forgets_the_old_window() {
        let mut w = SeqWindow::default();
        w.accept(5, 1, 64);
        assert_eq!(w.accept(500, 2, 64), Seq::New);
        assert_eq!(w.accept(499, 2, 64), Seq::New);
        assert_eq!(w.accept(500, 2, 64), Seq::Duplicate);
    }
}
