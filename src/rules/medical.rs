//! Medical-waste store rules (docs/RULES.md "Medical-waste stores"): lot
//! age (48 h limit) and a store too warm on a hot day.
//!
//! Called by the engine, after the storage rules, for trusted readings of
//! storage points registered as medical stores. A reading without the
//! field a rule needs (no lot age, no outside temperature) leaves that
//! rule's state as it was.

use crate::alert::{RuleId, Severity};
use crate::pb::StorageReading;

use super::config::MedicalThresholds;
use super::emit::Alerts;
use super::level::{graded, Cmp, Level};

/// Seconds in an hour.
const S_PER_HOUR: f64 = 3600.0;

/// Evaluates the medical-store rules on a trusted reading taken at `at_ms`
/// with store temperature `temp_c`.
pub fn evaluate(
    th: &MedicalThresholds,
    r: &StorageReading,
    temp_c: f64,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    if let Some(age_s) = r.oldest_medical_lot_age_s {
        let hours = age_s as f64 / S_PER_HOUR;
        let level = |severity, h: f64| Level {
            severity,
            raise: Cmp::AtLeast(h),
            hold: Cmp::AtLeast(h),
            threshold: h,
        };
        let levels = [
            level(Severity::Warn, th.lot_age_warn_h),
            level(Severity::Critical, th.lot_age_critical_h),
        ];
        let v = graded(hours, alerts.current(RuleId::MedicalLotAge), &levels);
        alerts.set(
            RuleId::MedicalLotAge,
            v.map(|l| (l.severity, hours, l.threshold)),
            at_ms,
            || {
                format!(
                    "oldest medical-waste lot held {hours:.1} h; the limit is {:.0} h (medical waste regulation art. 17)",
                    th.lot_age_critical_h
                )
            },
        );
    }
    if let Some(outside_deci_c) = r.outside_temperature_deci_c {
        let outside = f64::from(outside_deci_c) / 10.0;
        let m = th.warm_clear_margin_c;
        let warm = if alerts.current(RuleId::MedicalStoreWarm).is_some() {
            temp_c >= th.store_warm_c - m && outside > th.outside_warm_c - m
        } else {
            temp_c >= th.store_warm_c && outside > th.outside_warm_c
        };
        alerts.set(
            RuleId::MedicalStoreWarm,
            warm.then_some((Severity::Major, temp_c, th.store_warm_c)),
            at_ms,
            || {
                format!(
                    "medical-waste store at {temp_c:.1} °C while {outside:.1} °C outside; keep it below {:.0} °C",
                    th.store_warm_c
                )
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::alert::{RuleId, Severity};
    use crate::pb::StorageReading;

    const MED: &str = "st-hospital-med-01";

    fn reading(lot_h: f64, store_c: f64, outside_c: f64) -> StorageReading {
        StorageReading {
            stock_kg: 100.0,
            temperature_deci_c: (store_c * 10.0).round() as i32,
            oldest_medical_lot_age_s: Some((lot_h * 3600.0) as u64),
            outside_temperature_deci_c: Some((outside_c * 10.0).round() as i32),
            ..Default::default()
        }
    }

    #[test]
    fn medical_lots_warn_at_36_hours_and_are_critical_at_48() {
        use Severity::*;
        let steps = [
            (35.9, None),
            (36.0, Some(Warn)),
            (47.9, Some(Warn)),
            (48.0, Some(Critical)),
            (1.0, None),
        ];
        let mut h = Harness::zone();
        for (i, (lot_h, want)) in steps.into_iter().enumerate() {
            h.storage(MED, DAY_T0 + i as i64 * MIN, reading(lot_h, 10.0, 10.0));
            assert_eq!(h.current(RuleId::MedicalLotAge, MED), want, "{lot_h} h");
        }
    }

    #[test]
    fn a_medical_store_at_20_c_on_a_day_over_25_c_is_major() {
        let steps = [
            (19.9, 30.0, None),
            (20.0, 25.0, None),
            (20.0, 25.1, Some(Severity::Major)),
            (19.0, 24.1, Some(Severity::Major)),
            (18.9, 30.0, None),
            (22.0, 30.0, Some(Severity::Major)),
            (22.0, 24.0, None),
        ];
        let mut h = Harness::zone();
        for (i, (store, outside, want)) in steps.into_iter().enumerate() {
            h.storage(MED, DAY_T0 + i as i64 * MIN, reading(1.0, store, outside));
            assert_eq!(
                h.current(RuleId::MedicalStoreWarm, MED),
                want,
                "store {store} outside {outside}"
            );
        }
    }

    #[test]
    fn medical_rules_do_not_apply_to_other_stores() {
        let mut h = Harness::zone();
        h.storage("st-licensed-01", DAY_T0, reading(60.0, 22.0, 30.0));
        assert_eq!(h.current(RuleId::MedicalLotAge, "st-licensed-01"), None);
        assert_eq!(h.current(RuleId::MedicalStoreWarm, "st-licensed-01"), None);
    }
}
