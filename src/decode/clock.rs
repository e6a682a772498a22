//! Device-clock sanity: the re-stamp policy.
//!
//! Point time is device time, so that a redelivered message rewrites the same
//! point. A device clock cannot be trusted blindly, though: a timestamp more
//! than `max_future_ms` ahead of the receive time, or more than `max_past_ms`
//! behind it, is flagged and (by default) re-stamped with the receive time.
//! The original device time is kept in the record's envelope, and the flag
//! is written with the point (`clock_check`), so nothing is silently trusted
//! and nothing is silently changed. With `action = reject` such messages are
//! quarantined instead.

use super::error::{DecodeError, ErrorKind};
use crate::pb::ClockCheck;

/// What to do with an out-of-window device timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockAction {
    /// Use the receive time as point time and flag the record (default).
    Restamp,
    /// Refuse the message (quarantined as `timestamp_out_of_range`).
    Reject,
}

/// The accepted window around the receive time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockPolicy {
    /// How far ahead of the receive time a device clock may be, ms.
    /// Default 5 min [P]: NTP-less devices drift seconds per day.
    pub max_future_ms: i64,
    /// How far behind the receive time a device time may be, ms. Default
    /// 7 days [P]: long enough for a truck terminal's store-and-forward
    /// buffer after a coverage gap, short enough to catch an unset clock.
    pub max_past_ms: i64,
    /// Re-stamp or reject.
    pub action: ClockAction,
}

impl Default for ClockPolicy {
    fn default() -> Self {
        ClockPolicy {
            max_future_ms: 5 * 60 * 1000,
            max_past_ms: 7 * 24 * 3600 * 1000,
            action: ClockAction::Restamp,
        }
    }
}

impl ClockPolicy {
    /// Returns the point time and the check result for a device time.
    pub fn check(
        &self,
        device_ms: i64,
        received_ms: i64,
    ) -> Result<(i64, ClockCheck), DecodeError> {
        let verdict = if device_ms > received_ms.saturating_add(self.max_future_ms) {
            ClockCheck::FutureRestamped
        } else if device_ms < received_ms.saturating_sub(self.max_past_ms) {
            ClockCheck::AncientRestamped
        } else {
            return Ok((device_ms, ClockCheck::Ok));
        };
        match self.action {
            ClockAction::Restamp => Ok((received_ms, verdict)),
            ClockAction::Reject => Err(DecodeError::new(
                ErrorKind::TimestampOutOfRange,
                format!(
                    "recorded_at_unix_ms {device_ms} is {} ms from the receive time {received_ms}; accepted window is -{} ms..+{} ms",
                    device_ms.saturating_sub(received_ms),
                    self.max_past_ms,
                    self.max_future_ms
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_policy_restamps_outside_the_window_and_keeps_inside() {
        let p = ClockPolicy::default();
        let now = 1_800_000_000_000;
        let cases = [
            (now, now, ClockCheck::Ok),
            (now + p.max_future_ms, now + p.max_future_ms, ClockCheck::Ok),
            (now + p.max_future_ms + 1, now, ClockCheck::FutureRestamped),
            (now - p.max_past_ms, now - p.max_past_ms, ClockCheck::Ok),
            (now - p.max_past_ms - 1, now, ClockCheck::AncientRestamped),
            (0, now, ClockCheck::AncientRestamped),
            (i64::MAX, now, ClockCheck::FutureRestamped),
            (i64::MIN, now, ClockCheck::AncientRestamped),
        ];
        for (dev, want_time, want_check) in cases {
            assert_eq!(
                p.check(dev, now).unwrap(),
                (want_time, want_check),
                "device time {dev}"
            );
        }
    }

    #[test]
    fn reject_policy_names_the_offset() {
        let p = ClockPolicy {
            action: ClockAction::Reject,
            ..ClockPolicy::default()
        };
        let err = p.check(10_000_000, 1_000).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TimestampOutOfRange);
        assert!(err.detail.contains("9999000 ms"), "{err}");
    }
}
