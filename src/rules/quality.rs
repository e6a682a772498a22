//! Data quality: whether a sensor reading can be trusted enough to raise
//! (or clear) its threshold alerts.
//!
//! A stale reading (received long after it was taken, or with a device
//! clock the decoder had to re-stamp), a reading from a device with a low
//! battery, or an impossible value (out of the sensor's range, a
//! temperature jump no store can make) is not judged by the threshold
//! rules: their state is frozen as it was. If the reading would have raised
//! or escalated something, `cannot_verify` is raised instead; an impossible
//! value raises it in any case. The next trusted reading clears it and is
//! judged normally. Applies to storage points and bins; truck fixes have
//! their own plausibility check (`transport.rs`).

use std::fmt;

use crate::pb::{self, ClockCheck};

use super::config::QualityThresholds;
use super::history::TempHistory;

/// Why a reading is not trusted.
#[derive(Clone, Debug, PartialEq)]
pub enum Doubt {
    /// Received this long after it was taken, ms.
    Stale {
        /// Receive time minus event time, ms.
        age_ms: i64,
    },
    /// The device clock was off; the decoder re-stamped the reading.
    ClockRestamped,
    /// The device reports a low battery (flag, or voltage in mV).
    LowBattery {
        /// Battery voltage, mV (0 when unknown).
        mv: u32,
    },
    /// A value the sensor cannot physically report.
    Impossible {
        /// What was impossible.
        what: String,
    },
}

impl Doubt {
    /// True when the doubt is itself worth an alert (the sensor is broken),
    /// even if the reading would not have raised anything.
    pub fn always_alert(&self) -> bool {
        matches!(self, Doubt::Impossible { .. })
    }
}

impl fmt::Display for Doubt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Doubt::Stale { age_ms } => {
                write!(f, "reading arrived {} s after it was taken", age_ms / 1000)
            }
            Doubt::ClockRestamped => f.write_str("device clock is off (reading re-stamped)"),
            Doubt::LowBattery { mv: 0 } => f.write_str("device battery is low"),
            Doubt::LowBattery { mv } => write!(f, "device battery is low ({mv} mV)"),
            Doubt::Impossible { what } => write!(f, "impossible value: {what}"),
        }
    }
}

/// Doubts about the record itself (timing), whatever its body.
pub fn record_doubt(rec: &pb::LogRecord, q: &QualityThresholds) -> Option<Doubt> {
    if rec.clock_check != ClockCheck::Ok as i32 {
        return Some(Doubt::ClockRestamped);
    }
    let age_ms = rec.received_at_unix_ms.saturating_sub(rec.time_unix_ms);
    (age_ms > q.stale_after_ms).then_some(Doubt::Stale { age_ms })
}

/// Doubt about a temperature `c` at `t_ms` given the sensor's trusted
/// history: outside the sensor range, or a jump from the last trusted
/// reading larger than `max_temperature_jump_c` within
/// `temperature_jump_window_ms`.
pub fn temperature_doubt(
    history: &TempHistory,
    t_ms: i64,
    c: f64,
    q: &QualityThresholds,
) -> Option<Doubt> {
    if !c.is_finite() || c < q.min_plausible_c || c > q.max_plausible_c {
        return Some(Doubt::Impossible {
            what: format!(
                "temperature {c:.1} °C outside {:.0}..{:.0} °C",
                q.min_plausible_c, q.max_plausible_c
            ),
        });
    }
    let (t0, c0) = history.last()?;
    let dt = t_ms - t0;
    ((0..=q.temperature_jump_window_ms).contains(&dt) && (c - c0).abs() > q.max_temperature_jump_c)
        .then(|| Doubt::Impossible {
            what: format!(
                "temperature jumped from {c0:.1} to {c:.1} °C in {} s",
                dt / 1000
            ),
        })
}

/// Doubt about a percentage outside `lo..=hi` (or not a number).
pub fn range_doubt(name: &str, v: f64, lo: f64, hi: f64) -> Option<Doubt> {
    (!(lo..=hi).contains(&v)).then(|| Doubt::Impossible {
        what: format!("{name} {v} outside {lo}..{hi}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(received: i64, time: i64, clock: ClockCheck) -> pb::LogRecord {
        pb::LogRecord {
            envelope: None,
            received_at_unix_ms: received,
            time_unix_ms: time,
            clock_check: clock as i32,
            from_json: false,
            alert: None,
            kpi: None,
        }
    }

    #[test]
    fn a_record_is_stale_past_the_limit_or_when_restamped() {
        let q = QualityThresholds::default();
        assert_eq!(record_doubt(&rec(900_000, 0, ClockCheck::Ok), &q), None);
        assert_eq!(
            record_doubt(&rec(900_001, 0, ClockCheck::Ok), &q),
            Some(Doubt::Stale { age_ms: 900_001 })
        );
        assert_eq!(
            record_doubt(&rec(0, 0, ClockCheck::FutureRestamped), &q),
            Some(Doubt::ClockRestamped)
        );
    }

    #[test]
    fn a_temperature_jump_over_50_c_within_a_minute_is_impossible() {
        let q = QualityThresholds::default();
        let mut h = TempHistory::default();
        h.push(0, 20.0, 600_000);
        let cases: [(i64, f64, bool); 6] = [
            (60_000, 70.0, false),
            (60_000, 70.1, true),
            (60_001, 90.0, false),
            (30_000, -30.1, true),
            (10, 151.0, true),
            (10, -51.0, true),
        ];
        for (t, c, impossible) in cases {
            assert_eq!(
                temperature_doubt(&h, t, c, &q).is_some(),
                impossible,
                "{c} at {t}"
            );
        }
    }
}
