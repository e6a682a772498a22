//! Smart-bin rules (docs/RULES.md "Smart bins"): nearly full (75 % for medical
//! bins, the 3/4 rule), overflowing, fire (temperature, rate of rise or the
//! device's own flag) and tilt.
//!
//! Called by the engine with each trusted bin reading, in event-time order
//! per bin. Bins report every 1-24 h and on events, so the rate-of-rise
//! rule only sees a rise when the bin reports on its own (it usually does
//! when heating up).

use serde::{Deserialize, Serialize};

use crate::alert::{RuleId, Severity};
use crate::pb::BinReading;
use crate::registry::BinSpec;

use super::config::BinThresholds;
use super::emit::Alerts;
use super::history::TempHistory;
use super::level::{graded, Cmp, Level};

/// What the bin rules remember between readings of one bin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BinState {
    /// Trusted temperatures, for the rate-of-rise rule and the jump check.
    pub temps: TempHistory,
}

/// A rising level: raise at `raise`, hold down to `hold`.
fn at_least(severity: Severity, raise: f64, hold: f64) -> Level {
    Level {
        severity,
        raise: Cmp::AtLeast(raise),
        hold: Cmp::AtLeast(hold),
        threshold: raise,
    }
}

/// Evaluates every bin rule on a trusted reading taken at `at_ms`.
pub fn evaluate(
    th: &BinThresholds,
    spec: &BinSpec,
    st: &mut BinState,
    r: &BinReading,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    let fill = r.fill_level_pct;
    let full = if spec.medical {
        th.medical_nearly_full_pct
    } else {
        th.nearly_full_pct
    };
    let v = graded(
        fill,
        alerts.current(RuleId::BinNearlyFull),
        &[at_least(
            Severity::Info,
            full,
            full - th.nearly_full_clear_margin_pct,
        )],
    );
    alerts.set(
        RuleId::BinNearlyFull,
        v.map(|l| (l.severity, fill, l.threshold)),
        at_ms,
        || format!("bin {fill:.0} % full; schedule a pickup"),
    );
    let v = graded(
        fill,
        alerts.current(RuleId::BinOverflowing),
        &[at_least(
            Severity::Warn,
            th.overflowing_pct,
            th.overflowing_pct - th.overflowing_clear_margin_pct,
        )],
    );
    alerts.set(
        RuleId::BinOverflowing,
        v.map(|l| (l.severity, fill, l.threshold)),
        at_ms,
        || format!("bin {fill:.0} % full: overflowing"),
    );

    let c = f64::from(r.temperature_deci_c) / 10.0;
    let rise = st.temps.rise(at_ms, c, th.fire_rise_window_ms);
    let fire = if alerts.current(RuleId::BinFire).is_some() {
        r.fire_flag || c >= th.fire_clear_c || rise >= th.fire_rise_c / 2.0
    } else {
        r.fire_flag || c >= th.fire_c || rise >= th.fire_rise_c
    };
    alerts.set(
        RuleId::BinFire,
        fire.then_some((Severity::Critical, c, th.fire_c)),
        at_ms,
        || {
            let flag = if r.fire_flag {
                ", device fire flag set"
            } else {
                ""
            };
            format!("possible bin fire: {c:.1} °C, +{rise:.1} °C within 10 min{flag}")
        },
    );
    st.temps.push(at_ms, c, th.fire_rise_window_ms);

    let tilt = r.tilt_deg;
    let v = graded(
        tilt,
        alerts.current(RuleId::BinTilted),
        &[at_least(Severity::Warn, th.tilt_deg, th.tilt_clear_deg)],
    );
    alerts.set(
        RuleId::BinTilted,
        v.map(|l| (l.severity, tilt, l.threshold)),
        at_ms,
        || format!("bin tilted {tilt:.0}° (knocked over?)"),
    );
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::alert::{RuleId, Severity};
    use crate::pb::BinReading;

    const BIN: &str = "bin-res-jingbei-01";
    const MED_BIN: &str = "bin-hosp-med-01";

    fn base() -> BinReading {
        BinReading {
            fill_level_pct: 10.0,
            temperature_deci_c: 200,
            tilt_deg: 2.0,
            battery_mv: 3600,
            ..Default::default()
        }
    }

    fn fill(r: &mut BinReading, v: f64) {
        r.fill_level_pct = v;
    }
    fn temp(r: &mut BinReading, v: f64) {
        r.temperature_deci_c = (v * 10.0).round() as i32;
    }
    fn tilt(r: &mut BinReading, v: f64) {
        r.tilt_deg = v;
    }
    fn flag(r: &mut BinReading, v: f64) {
        r.fire_flag = v > 0.0;
    }

    type Step = (fn(&mut BinReading, f64), f64, Option<Severity>);

    #[test]
    fn bin_rules_fire_and_clear_at_their_edges() {
        use Severity::*;
        // (name, bin, rule, minutes between readings, steps); 11 minutes
        // keeps readings out of each other's rate-of-rise window.
        let cases: Vec<(&str, &str, RuleId, i64, Vec<Step>)> = vec![
            (
                "nearly full at 80 %, clears under 70 %",
                BIN,
                RuleId::BinNearlyFull,
                11,
                vec![
                    (fill, 79.9, None),
                    (fill, 80.0, Some(Info)),
                    (fill, 70.0, Some(Info)),
                    (fill, 69.9, None),
                ],
            ),
            (
                "a medical bin is nearly full at 75 %",
                MED_BIN,
                RuleId::BinNearlyFull,
                11,
                vec![(fill, 74.9, None), (fill, 75.0, Some(Info))],
            ),
            (
                "overflowing at 95 %, clears under 90 %",
                BIN,
                RuleId::BinOverflowing,
                11,
                vec![
                    (fill, 94.9, None),
                    (fill, 95.0, Some(Warn)),
                    (fill, 90.0, Some(Warn)),
                    (fill, 89.9, None),
                ],
            ),
            (
                "fire at 60 °C, clears under 50 °C",
                BIN,
                RuleId::BinFire,
                11,
                vec![
                    (temp, 40.0, None),
                    (temp, 49.9, None),
                    (temp, 59.9, None),
                    (temp, 60.0, Some(Critical)),
                    (temp, 50.0, Some(Critical)),
                    (temp, 49.9, None),
                ],
            ),
            (
                "fire on +10 °C within 10 minutes",
                BIN,
                RuleId::BinFire,
                5,
                vec![
                    (temp, 20.0, None),
                    (temp, 29.9, None),
                    (temp, 30.0, Some(Critical)),
                ],
            ),
            (
                "fire on the device flag alone",
                BIN,
                RuleId::BinFire,
                11,
                vec![
                    (flag, 0.0, None),
                    (flag, 1.0, Some(Critical)),
                    (flag, 0.0, None),
                ],
            ),
            (
                "tilted at 45°, clears under 40°",
                BIN,
                RuleId::BinTilted,
                11,
                vec![
                    (tilt, 44.9, None),
                    (tilt, 45.0, Some(Warn)),
                    (tilt, 40.0, Some(Warn)),
                    (tilt, 39.9, None),
                ],
            ),
        ];
        for (name, device, rule, every_min, steps) in cases {
            let mut h = Harness::zone();
            let mut r = base();
            for (i, (set, v, want)) in steps.iter().enumerate() {
                set(&mut r, *v);
                h.bin(device, DAY_T0 + i as i64 * every_min * MIN, r);
                assert_eq!(h.current(rule, device), *want, "{name}: step {i} ({v})");
            }
        }
    }

    #[test]
    fn a_bin_with_the_low_battery_flag_cannot_verify_a_fire() {
        let mut h = Harness::zone();
        let mut r = base();
        r.battery_low_flag = true;
        r.temperature_deci_c = 700;
        h.bin(BIN, DAY_T0, r);
        assert_eq!(h.current(RuleId::BinFire, BIN), None);
        assert_eq!(h.current(RuleId::CannotVerify, BIN), Some(Severity::Major));
        assert_eq!(h.current(RuleId::BatteryLow, BIN), Some(Severity::Info));
    }

    #[test]
    fn a_fire_burning_past_150_c_stays_a_fire_and_is_never_called_impossible() {
        // firmware-sim's bin_fire: +2.5 °C/min from the air up to 250 °C,
        // reported every 2 min, the flag set from 55 °C.
        let mut h = Harness::zone();
        let mut r = base();
        for i in 0..100i64 {
            let c = (20.0 + 5.0 * i as f64).min(250.0);
            r.temperature_deci_c = (c * 10.0) as i32;
            r.fire_flag = c >= 55.0;
            h.bin(BIN, DAY_T0 + i * 2 * MIN, r);
        }
        assert_eq!(h.current(RuleId::BinFire, BIN), Some(Severity::Critical));
        assert_eq!(h.raises(RuleId::CannotVerify), 0);
        // Above the decoder's own bound it is impossible (the check can fire).
        r.temperature_deci_c = 3010;
        h.bin(BIN, DAY_T0 + 201 * MIN, r);
        assert_eq!(h.raises(RuleId::CannotVerify), 1);
    }

    #[test]
    fn an_impossible_fill_level_raises_cannot_verify() {
        let mut h = Harness::zone();
        let mut r = base();
        r.fill_level_pct = 180.0;
        h.bin(BIN, DAY_T0, r);
        assert_eq!(h.current(RuleId::BinOverflowing, BIN), None);
        assert_eq!(h.current(RuleId::CannotVerify, BIN), Some(Severity::Warn));
    }
}
