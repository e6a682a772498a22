//! Hazardous-waste storage rules (docs/RULES.md "Hazardous-waste storage"):
//! small-storage-point limit, permitted capacity, storage age, combustible
//! and toxic gas, oxygen, temperature (level and rate of rise), leak and
//! door.
//!
//! Called by the engine with each trusted storage reading, in event-time
//! order per device; the door timer is also checked on tick. Every graded
//! rule has a separate, looser hold threshold (hysteresis), so a value
//! hovering at a threshold raises once.

use serde::{Deserialize, Serialize};

use crate::alert::{RuleId, Severity};
use crate::pb::StorageReading;
use crate::registry::{local_minute_of_day, StorageSpec, TimeWindow};

use super::config::StorageThresholds;
use super::emit::Alerts;
use super::history::TempHistory;
use super::level::{graded, Cmp, Level};

/// Seconds in a day.
const S_PER_DAY: f64 = 86_400.0;

/// What the storage rules remember between readings of one point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageState {
    /// Trusted temperatures, for the rate-of-rise rule and the jump check.
    pub temps: TempHistory,
    /// Event time the door was first seen open (in the current opening).
    pub door_open_since_ms: Option<i64>,
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

/// Evaluates every storage rule on a trusted reading taken at `at_ms`, with
/// the store temperature `temp_c`.
pub fn evaluate(
    th: &StorageThresholds,
    spec: &StorageSpec,
    st: &mut StorageState,
    r: &StorageReading,
    temp_c: f64,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    stock(th, spec, r.stock_kg, at_ms, alerts);
    age(th, r.oldest_container_age_s, at_ms, alerts);
    gas(th, r, at_ms, alerts);
    temperature(th, st, temp_c, at_ms, alerts);
    alerts.set(
        RuleId::Leak,
        r.leak_detected.then_some((Severity::Critical, 1.0, 1.0)),
        at_ms,
        || "leak sensor wet in the sump / bund (GB 18597-2023 §6.2.2)".to_owned(),
    );
    if r.door_open {
        st.door_open_since_ms.get_or_insert(at_ms);
    } else {
        st.door_open_since_ms = None;
    }
    door(th, st, at_ms, alerts);
}

/// Small-storage-point limit and permitted capacity.
fn stock(th: &StorageThresholds, spec: &StorageSpec, kg: f64, at_ms: i64, alerts: &mut Alerts<'_>) {
    if spec.small_storage_point {
        let lim = th.small_point_limit_kg;
        let margin = th.stock_clear_margin_ratio * lim;
        let warn = lim * th.small_point_warn_ratio;
        let levels = [
            at_least(Severity::Warn, warn, warn - margin),
            Level {
                severity: Severity::Critical,
                raise: Cmp::Above(lim),
                hold: Cmp::Above(lim - margin),
                threshold: lim,
            },
        ];
        let v = graded(kg, alerts.current(RuleId::StoragePointOverLimit), &levels);
        alerts.set(
            RuleId::StoragePointOverLimit,
            v.map(|l| (l.severity, kg, l.threshold)),
            at_ms,
            || {
                format!(
                    "small storage point holds {kg:.0} kg, {:.0} % of its {lim:.0} kg limit (GB 18597-2023 §8.3.5)",
                    kg / lim * 100.0
                )
            },
        );
    }
    if spec.capacity_kg > 0.0 {
        let ratio = kg / spec.capacity_kg;
        let m = th.stock_clear_margin_ratio;
        let levels = [
            at_least(
                Severity::Warn,
                th.capacity_warn_ratio,
                th.capacity_warn_ratio - m,
            ),
            at_least(
                Severity::Critical,
                th.capacity_critical_ratio,
                th.capacity_critical_ratio - m,
            ),
        ];
        let v = graded(ratio, alerts.current(RuleId::StorageOverCapacity), &levels);
        alerts.set(
            RuleId::StorageOverCapacity,
            v.map(|l| (l.severity, ratio, l.threshold)),
            at_ms,
            || {
                format!(
                    "stock {kg:.0} kg is {:.0} % of the permitted {:.0} kg",
                    ratio * 100.0,
                    spec.capacity_kg
                )
            },
        );
    }
}

/// Oldest-container age against the one-year limit.
fn age(th: &StorageThresholds, age_s: u64, at_ms: i64, alerts: &mut Alerts<'_>) {
    let days = age_s as f64 / S_PER_DAY;
    let levels = [
        at_least(Severity::Warn, th.age_warn_days, th.age_warn_days),
        at_least(
            Severity::Critical,
            th.age_critical_days,
            th.age_critical_days,
        ),
    ];
    let v = graded(days, alerts.current(RuleId::StorageAge), &levels);
    alerts.set(
        RuleId::StorageAge,
        v.map(|l| (l.severity, days, l.threshold)),
        at_ms,
        || {
            format!(
                "oldest container stored {days:.0} days; the limit is one year (Solid Waste Law art. 81)"
            )
        },
    );
}

/// Combustible gas, toxic gas and oxygen; a rule whose sensor is absent
/// from the reading keeps its state.
fn gas(th: &StorageThresholds, r: &StorageReading, at_ms: i64, alerts: &mut Alerts<'_>) {
    if let Some(lel) = r.combustible_gas_pct_lel {
        let m = th.lel_clear_margin_pct;
        let levels = [
            at_least(Severity::Major, th.lel_major_pct, th.lel_major_pct - m),
            at_least(
                Severity::Critical,
                th.lel_critical_pct,
                th.lel_critical_pct - m,
            ),
        ];
        let v = graded(lel, alerts.current(RuleId::CombustibleGas), &levels);
        alerts.set(
            RuleId::CombustibleGas,
            v.map(|l| (l.severity, lel, l.threshold)),
            at_ms,
            || format!("combustible gas at {lel:.0} % LEL (GB/T 50493-2019)"),
        );
    }
    if let Some(tox) = r.toxic_gas_pct_of_limit {
        let m = th.toxic_clear_margin_pct;
        let levels = [
            at_least(Severity::Major, th.toxic_major_pct, th.toxic_major_pct - m),
            at_least(
                Severity::Critical,
                th.toxic_critical_pct,
                th.toxic_critical_pct - m,
            ),
        ];
        let v = graded(tox, alerts.current(RuleId::ToxicGas), &levels);
        alerts.set(
            RuleId::ToxicGas,
            v.map(|l| (l.severity, tox, l.threshold)),
            at_ms,
            || format!("toxic gas at {tox:.0} % of its occupational limit (GB/T 50493-2019)"),
        );
    }
    if let Some(o2) = r.oxygen_pct_vol {
        let m = th.oxygen_clear_margin_pct;
        let cur = alerts.current(RuleId::Oxygen);
        let low = Level {
            severity: Severity::Major,
            raise: Cmp::Below(th.oxygen_low_pct),
            hold: Cmp::Below(th.oxygen_low_pct + m),
            threshold: th.oxygen_low_pct,
        };
        let high = Level {
            severity: Severity::Major,
            raise: Cmp::Above(th.oxygen_high_pct),
            hold: Cmp::Above(th.oxygen_high_pct - m),
            threshold: th.oxygen_high_pct,
        };
        let v = graded(o2, cur, &[low]).or_else(|| graded(o2, cur, &[high]));
        alerts.set(
            RuleId::Oxygen,
            v.map(|l| (l.severity, o2, l.threshold)),
            at_ms,
            || {
                format!(
                    "oxygen at {o2:.1} %vol, outside {}-{} %vol (GB/T 50493-2019)",
                    th.oxygen_low_pct, th.oxygen_high_pct
                )
            },
        );
    }
}

/// Temperature level and rate of rise; records the reading in the history.
fn temperature(
    th: &StorageThresholds,
    st: &mut StorageState,
    c: f64,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    let m = th.temperature_clear_margin_c;
    let levels = [
        at_least(
            Severity::Warn,
            th.temperature_warn_c,
            th.temperature_warn_c - m,
        ),
        at_least(
            Severity::Critical,
            th.temperature_critical_c,
            th.temperature_critical_c - m,
        ),
    ];
    let v = graded(c, alerts.current(RuleId::StorageTemperature), &levels);
    alerts.set(
        RuleId::StorageTemperature,
        v.map(|l| (l.severity, c, l.threshold)),
        at_ms,
        || format!("store temperature {c:.1} °C"),
    );
    let window = th.temperature_rise_window_ms;
    let rise = st.temps.rise(at_ms, c, window);
    let v = graded(
        rise,
        alerts.current(RuleId::StorageTemperatureRise),
        &[at_least(
            Severity::Major,
            th.temperature_rise_c,
            th.temperature_rise_clear_c,
        )],
    );
    alerts.set(
        RuleId::StorageTemperatureRise,
        v.map(|l| (l.severity, rise, l.threshold)),
        at_ms,
        || {
            format!(
                "store temperature rose {rise:.1} °C to {c:.1} °C within {} min",
                window / 60_000
            )
        },
    );
    st.temps.push(at_ms, c, window);
}

/// Door open too long (warn) or at all outside the door hours (major), as
/// of `at_ms` — a reading's time, or the tick's.
pub fn door(th: &StorageThresholds, st: &StorageState, at_ms: i64, alerts: &mut Alerts<'_>) {
    let verdict = st.door_open_since_ms.and_then(|since| {
        let open_ms = at_ms - since;
        let hours = TimeWindow {
            start_min: th.door_hours_start_min,
            end_min: th.door_hours_end_min,
        };
        let minute = local_minute_of_day(at_ms, th.door_utc_offset_min);
        let open_min = open_ms as f64 / 60_000.0;
        if !hours.contains_minute(minute) {
            Some((Severity::Major, open_min, 0.0))
        } else if open_ms > th.door_open_max_ms {
            Some((
                Severity::Warn,
                open_min,
                th.door_open_max_ms as f64 / 60_000.0,
            ))
        } else {
            None
        }
    });
    alerts.set(RuleId::DoorOpen, verdict, at_ms, || match verdict {
        Some((Severity::Major, m, _)) => {
            format!("store door open outside the door hours (open {m:.0} min)")
        }
        _ => format!(
            "store door open {:.0} min (limit {} min)",
            verdict.map_or(0.0, |v| v.1),
            th.door_open_max_ms / 60_000
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::alert::{RuleId, Severity};
    use crate::pb::StorageReading;

    /// A reading of a healthy store; cases change one field.
    fn base() -> StorageReading {
        StorageReading {
            stock_kg: 1000.0,
            oldest_container_age_s: 30 * 86_400,
            temperature_deci_c: 250,
            combustible_gas_pct_lel: Some(0.0),
            toxic_gas_pct_of_limit: Some(0.0),
            oxygen_pct_vol: Some(20.9),
            container_count: 10,
            ..Default::default()
        }
    }

    /// One step: set a field to a value, then expect this verdict.
    type Step = (fn(&mut StorageReading, f64), f64, Option<Severity>);

    /// One table row: readings (one per minute) on a device, and the
    /// verdict for `rule` after each.
    struct Case {
        name: &'static str,
        device: &'static str,
        rule: RuleId,
        steps: Vec<Step>,
    }

    fn stock(r: &mut StorageReading, v: f64) {
        r.stock_kg = v;
    }
    fn age_days(r: &mut StorageReading, v: f64) {
        r.oldest_container_age_s = (v * 86_400.0) as u64;
    }
    fn lel(r: &mut StorageReading, v: f64) {
        r.combustible_gas_pct_lel = Some(v);
    }
    fn toxic(r: &mut StorageReading, v: f64) {
        r.toxic_gas_pct_of_limit = Some(v);
    }
    fn o2(r: &mut StorageReading, v: f64) {
        r.oxygen_pct_vol = Some(v);
    }
    fn temp(r: &mut StorageReading, v: f64) {
        r.temperature_deci_c = (v * 10.0).round() as i32;
    }
    fn leak(r: &mut StorageReading, v: f64) {
        r.leak_detected = v > 0.0;
    }

    #[test]
    fn storage_threshold_rules_fire_and_clear_at_their_edges() {
        use Severity::*;
        const SMALL: &str = "st-factory-autoparts-01"; // small point, 3000 kg
        const BIG: &str = "st-licensed-01"; // 500 t licensed facility
        let cases = vec![
            Case {
                name: "small point warns at 80 % of 3 t and is critical above 3 t",
                device: SMALL,
                rule: RuleId::StoragePointOverLimit,
                steps: vec![
                    (stock, 2399.0, None),
                    (stock, 2400.0, Some(Warn)),
                    (stock, 3000.0, Some(Warn)),
                    (stock, 3000.1, Some(Critical)),
                    (stock, 2851.0, Some(Critical)),
                    (stock, 2850.0, Some(Warn)),
                    (stock, 2250.0, Some(Warn)),
                    (stock, 2249.0, None),
                ],
            },
            Case {
                name: "capacity warns at 90 % and is critical at 100 %",
                device: BIG,
                rule: RuleId::StorageOverCapacity,
                steps: vec![
                    (stock, 449_999.0, None),
                    (stock, 450_000.0, Some(Warn)),
                    (stock, 500_000.0, Some(Critical)),
                    (stock, 475_000.0, Some(Critical)),
                    (stock, 474_999.0, Some(Warn)),
                    (stock, 424_999.0, None),
                ],
            },
            Case {
                name: "storage age warns at 335 days and is critical at 365",
                device: BIG,
                rule: RuleId::StorageAge,
                steps: vec![
                    (age_days, 334.9, None),
                    (age_days, 335.0, Some(Warn)),
                    (age_days, 365.0, Some(Critical)),
                    (age_days, 10.0, None),
                ],
            },
            Case {
                name: "combustible gas is major at 25 % LEL and critical at 50 %",
                device: BIG,
                rule: RuleId::CombustibleGas,
                steps: vec![
                    (lel, 24.9, None),
                    (lel, 25.0, Some(Major)),
                    (lel, 50.0, Some(Critical)),
                    (lel, 45.0, Some(Critical)),
                    (lel, 44.9, Some(Major)),
                    (lel, 20.0, Some(Major)),
                    (lel, 19.9, None),
                ],
            },
            Case {
                name: "toxic gas is major at 100 % of its limit and critical at 200 %",
                device: BIG,
                rule: RuleId::ToxicGas,
                steps: vec![
                    (toxic, 99.0, None),
                    (toxic, 100.0, Some(Major)),
                    (toxic, 200.0, Some(Critical)),
                    (toxic, 90.0, Some(Major)),
                    (toxic, 89.0, None),
                ],
            },
            Case {
                name: "oxygen below 19.5 or above 23.5 %vol is major",
                device: BIG,
                rule: RuleId::Oxygen,
                steps: vec![
                    (o2, 19.5, None),
                    (o2, 19.4, Some(Major)),
                    (o2, 19.7, Some(Major)),
                    (o2, 19.8, None),
                    (o2, 23.5, None),
                    (o2, 23.6, Some(Major)),
                    (o2, 23.2, None),
                ],
            },
            Case {
                name: "store temperature warns at 40 °C and is critical at 50 °C",
                device: BIG,
                rule: RuleId::StorageTemperature,
                steps: vec![
                    (temp, 36.0, None),
                    (temp, 39.9, None),
                    (temp, 40.0, Some(Warn)),
                    (temp, 38.0, Some(Warn)),
                    (temp, 46.0, Some(Warn)),
                    (temp, 50.0, Some(Critical)),
                    (temp, 47.9, Some(Warn)),
                    (temp, 37.9, None),
                ],
            },
            Case {
                name: "a rise of 10 °C within 10 minutes is major until under 5 °C",
                device: BIG,
                rule: RuleId::StorageTemperatureRise,
                steps: vec![
                    (temp, 20.0, None),
                    (temp, 25.0, None),
                    (temp, 29.9, None),
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, Some(Major)),
                    // 11 min after the 20 °C reading, 10 after the 25 °C one.
                    (temp, 30.0, Some(Major)),
                    (temp, 30.0, None),
                ],
            },
            Case {
                name: "a wet leak sensor is critical until dry",
                device: BIG,
                rule: RuleId::Leak,
                steps: vec![
                    (leak, 0.0, None),
                    (leak, 1.0, Some(Critical)),
                    (leak, 0.0, None),
                ],
            },
        ];
        for case in cases {
            let mut h = Harness::zone();
            let mut r = base();
            for (i, (set, v, want)) in case.steps.iter().enumerate() {
                set(&mut r, *v);
                h.storage(case.device, DAY_T0 + i as i64 * MIN, r);
                assert_eq!(
                    h.current(case.rule, case.device),
                    *want,
                    "{}: step {i} ({v})",
                    case.name
                );
            }
        }
    }

    #[test]
    fn a_store_door_open_more_than_15_minutes_warns_and_after_hours_is_major() {
        const BIG: &str = "st-licensed-01";
        let mut h = Harness::zone();
        let mut r = base();
        r.door_open = true;
        // DAY_T0 is 10:00 local: within the door hours.
        h.storage(BIG, DAY_T0, r);
        h.tick(DAY_T0 + 15 * MIN);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), None);
        h.tick(DAY_T0 + 15 * MIN + 1);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), Some(Severity::Warn));
        r.door_open = false;
        h.storage(BIG, DAY_T0 + 16 * MIN, r);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), None);
        // 19:00 local is after hours: major on the first reading.
        let evening = DAY_T0 + 9 * 60 * MIN;
        r.door_open = true;
        h.storage(BIG, evening - MIN, r);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), None);
        h.storage(BIG, evening, r);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), Some(Severity::Major));
    }

    #[test]
    fn the_door_timer_runs_on_the_devices_event_time_not_the_wall_clock() {
        // A gateway uploads two hours of backlog: the door opened at 10:00
        // (event time) arrives at 12:00 and closes two minutes later.
        const BIG: &str = "st-licensed-01";
        let mut h = Harness::zone();
        let mut stale = crate::rules::RuleConfig::default();
        stale.thresholds.quality.stale_after_ms = 3 * 60 * MIN;
        h.engine = crate::rules::RuleEngine::new(zone(), stale);
        let late = 2 * 60 * MIN;
        let mut r = base();
        r.door_open = true;
        h.storage_received(BIG, DAY_T0, DAY_T0 + late, r);
        // Wall time is 12:00, but the door has been open 1 min, not 2 h.
        h.tick(DAY_T0 + late + MIN);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), None);
        r.door_open = false;
        h.storage_received(BIG, DAY_T0 + 2 * MIN, DAY_T0 + late + 2 * MIN, r);
        h.tick(DAY_T0 + late + 20 * MIN);
        assert_eq!(h.raises(RuleId::DoorOpen), 0);
        // Left open, it warns 15 min of event time after opening.
        r.door_open = true;
        h.storage_received(BIG, DAY_T0 + 30 * MIN, DAY_T0 + late + 30 * MIN, r);
        h.tick(DAY_T0 + late + 45 * MIN);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), None);
        h.tick(DAY_T0 + late + 45 * MIN + 1);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), Some(Severity::Warn));
    }

    #[test]
    fn a_raise_on_evidence_older_than_a_tick_stamped_clear_still_reaches_the_store() {
        const BIG: &str = "st-licensed-01";
        let mut h = Harness::zone();
        let mut r = base();
        r.door_open = true;
        let seven_pm = DAY_T0 + 9 * 60 * MIN;
        h.storage(BIG, seven_pm - 20 * MIN, r);
        // The tick at 19:00:30 (wall time) raises the after-hours alert...
        h.tick(seven_pm + 30_000);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), Some(Severity::Major));
        // ...readings taken before it but arriving after close and reopen.
        r.door_open = false;
        h.storage_received(BIG, seven_pm + 10_000, seven_pm + 31_000, r);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), None);
        r.door_open = true;
        h.storage_received(BIG, seven_pm + 20_000, seven_pm + 32_000, r);
        assert_eq!(h.current(RuleId::DoorOpen, BIG), Some(Severity::Major));
    }

    #[test]
    fn a_stale_reading_raises_cannot_verify_instead_of_its_threshold_alert() {
        const BIG: &str = "st-licensed-01";
        let mut h = Harness::zone();
        let mut r = base();
        r.temperature_deci_c = 550;
        h.storage_received(BIG, DAY_T0, DAY_T0 + 16 * MIN, r);
        assert_eq!(h.current(RuleId::StorageTemperature, BIG), None);
        assert_eq!(h.current(RuleId::CannotVerify, BIG), Some(Severity::Major));
        // A trusted reading judges normally and clears cannot_verify.
        h.storage(BIG, DAY_T0 + 17 * MIN, r);
        assert_eq!(h.current(RuleId::CannotVerify, BIG), None);
        assert_eq!(
            h.current(RuleId::StorageTemperature, BIG),
            Some(Severity::Critical)
        );
        // A stale reading cannot clear it either.
        r.temperature_deci_c = 200;
        h.storage_received(BIG, DAY_T0 + 18 * MIN, DAY_T0 + 40 * MIN, r);
        assert_eq!(
            h.current(RuleId::StorageTemperature, BIG),
            Some(Severity::Critical)
        );
    }

    #[test]
    fn a_stale_reading_that_would_raise_nothing_raises_nothing() {
        let mut h = Harness::zone();
        h.storage_received("st-licensed-01", DAY_T0, DAY_T0 + 60 * MIN, base());
        assert!(h.transitions.is_empty(), "{:?}", h.transitions);
    }

    #[test]
    fn a_low_battery_storage_point_cannot_verify_a_high_reading() {
        const BIG: &str = "st-licensed-01";
        let mut h = Harness::zone();
        let mut r = base();
        r.battery_mv = 3100;
        r.combustible_gas_pct_lel = Some(30.0);
        h.storage(BIG, DAY_T0, r);
        assert_eq!(h.current(RuleId::CombustibleGas, BIG), None);
        assert_eq!(h.current(RuleId::CannotVerify, BIG), Some(Severity::Warn));
        assert_eq!(h.current(RuleId::BatteryLow, BIG), Some(Severity::Info));
    }

    #[test]
    fn an_impossible_temperature_jump_raises_cannot_verify_and_is_not_judged() {
        const BIG: &str = "st-licensed-01";
        let mut h = Harness::zone();
        let mut r = base();
        h.storage(BIG, DAY_T0, r);
        r.temperature_deci_c = 800; // +55 °C in one minute
        h.storage(BIG, DAY_T0 + MIN, r);
        assert_eq!(h.current(RuleId::StorageTemperature, BIG), None);
        assert_eq!(h.current(RuleId::StorageTemperatureRise, BIG), None);
        assert_eq!(h.current(RuleId::CannotVerify, BIG), Some(Severity::Warn));
        r.temperature_deci_c = 260;
        h.storage(BIG, DAY_T0 + 2 * MIN, r);
        assert_eq!(h.current(RuleId::CannotVerify, BIG), None);
    }
}
