//! End-to-end engine scenarios on the shipped zone: a long noisy drive, a
//! detour, late and out-of-order delivery, a restart, duplicates.

use std::f64::consts::PI;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::testkit::*;
use super::*;
use crate::alert::{AlertEvent, AlertStore, EventReason};
use crate::geo::LatLon;
use crate::pb::TruckFix;

const TRUCK: &str = "truck-d1234";
const PERMIT: &str = "permit-2026-0001";
const ENTITY: &str = "truck-d1234/permit-2026-0001";
const S: i64 = 1000;

/// A standard normal sample (Box-Muller).
fn gauss(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// A fix record of the test truck at `p`, loaded and legal, taken and
/// received at `t_ms`.
fn fix_record(seq: u64, t_ms: i64, p: LatLon, accuracy_m: f64) -> pb::LogRecord {
    let f = TruckFix {
        latitude_deg: p.lat,
        longitude_deg: p.lon,
        speed_kmh: 30.0,
        heading_deg: 90.0,
        accuracy_m,
        loaded: true,
        cover_closed: true,
        ignition_on: true,
        plate: "豫AD1234".into(),
        permit_id: PERMIT.into(),
        gnss_fix: true,
        satellites: 10,
        ..Default::default()
    };
    record(envelope(TRUCK, seq, t_ms, Body::TruckFix(f)), t_ms)
}

/// Feeds `recs` in order, each processed when received.
fn feed(h: &mut Harness, recs: &[pb::LogRecord]) {
    for r in recs {
        h.record_at(r.clone(), r.received_at_unix_ms);
    }
}

/// Ticks past the reorder window after the newest record, so every held
/// fix is judged.
fn flush(h: &mut Harness, recs: &[pb::LogRecord]) {
    let last = recs.iter().map(|r| r.time_unix_ms).max().unwrap_or(0);
    h.tick(last + 31 * S);
}

/// Route-deviation store events by reason.
fn deviation_events(events: &[AlertEvent]) -> Vec<EventReason> {
    events
        .iter()
        .filter(|e| e.alert.key.rule == RuleId::RouteDeviation)
        .map(|e| e.reason)
        .collect()
}

/// The detour drive: a fix every 10 s at 30 km/h along permit-2026-0001's
/// east-west road from 600 m along, with 20 m σ noise; fixes 10..=21 (two
/// minutes) are 300 m north of the road. Returns the records and the time
/// of the first fix outside and of the first fix back.
fn detour_drive(seed: u64) -> (Vec<pb::LogRecord>, i64, i64) {
    let reg = zone();
    let route = &reg.permit(PERMIT).unwrap().route;
    let mut rng = StdRng::seed_from_u64(seed);
    let recs = (0..40u64)
        .map(|i| {
            let t = NIGHT_T0 + i as i64 * 10 * S;
            let along = 600.0 + i as f64 * 83.3;
            let north = if (10..=21).contains(&i) { 300.0 } else { 0.0 };
            let p = route
                .point_at_distance(along)
                .0
                .offset_m(north + 20.0 * gauss(&mut rng), 20.0 * gauss(&mut rng));
            fix_record(i + 1, t, p, 20.0)
        })
        .collect();
    (recs, NIGHT_T0 + 100 * S, NIGHT_T0 + 220 * S)
}

#[test]
fn ten_thousand_noisy_fixes_along_the_route_raise_nothing() {
    let reg = zone();
    let permit = reg.permit(PERMIT).unwrap();
    let route = &permit.route;
    let len = route.length_m();
    let mut rng = StdRng::seed_from_u64(20_260_302);
    let mut h = Harness::zone();
    let step_m = 30.0 / 3.6 * 2.0; // 30 km/h, a fix every 2 s
    let mut outside_raw = 0;
    let recs: Vec<pb::LogRecord> = (0..10_000u64)
        .map(|i| {
            // Back and forth along the whole route, starting at 21:00 local.
            let d = (i as f64 * step_m) % (2.0 * len);
            let along = if d <= len { d } else { 2.0 * len - d };
            let p = route
                .point_at_distance(along)
                .0
                .offset_m(20.0 * gauss(&mut rng), 20.0 * gauss(&mut rng));
            let (dist, hw, _) = permit.corridor_distance(p);
            if dist > hw {
                outside_raw += 1;
            }
            fix_record(i + 1, NIGHT_T0 + i as i64 * 2 * S, p, 20.0)
        })
        .collect();
    feed(&mut h, &recs);
    flush(&mut h, &recs);
    // The noise does push fixes out of the corridor, just never for long.
    assert!(outside_raw > 20, "only {outside_raw} fixes outside");
    assert!(h.transitions.is_empty(), "{:#?}", h.transitions);
    assert_eq!(h.engine.stats().records, 10_000);
}

#[test]
fn a_300_m_detour_for_two_minutes_raises_one_alert_within_60_s_that_resolves_on_return() {
    let (recs, left, back) = detour_drive(7);
    let mut h = Harness::zone();
    let mut fired_processing_ms = None;
    for r in &recs {
        let now = r.received_at_unix_ms;
        h.record_at(r.clone(), now);
        if fired_processing_ms.is_none() && h.current(RuleId::RouteDeviation, ENTITY).is_some() {
            fired_processing_ms = Some(now);
        }
    }
    flush(&mut h, &recs);
    let dev: Vec<&Transition> = h
        .transitions
        .iter()
        .filter(|t| t.key().rule == RuleId::RouteDeviation)
        .collect();
    assert_eq!(dev.len(), 2, "{dev:#?}");
    let (raise, clear) = (dev[0], dev[1]);
    assert_eq!(raise.key().entity, ENTITY);
    assert_eq!(raise.severity(), Some(Severity::Warn));
    assert!(
        raise.at_ms() - left <= 60 * S,
        "fired {} s after leaving",
        (raise.at_ms() - left) / S
    );
    assert!(clear.severity().is_none() && clear.at_ms() >= back);
    // Processing latency adds at most the 30 s reorder window.
    let processed = fired_processing_ms.unwrap();
    assert!(
        processed - left <= 90 * S,
        "processed {} s after leaving",
        (processed - left) / S
    );
    assert_eq!(
        deviation_events(&h.events),
        [EventReason::Fired, EventReason::Resolved]
    );
    assert_eq!(h.store.active_count(), 0);
}

#[test]
fn a_burst_of_late_out_of_order_fixes_does_not_flap() {
    let (recs, _, _) = detour_drive(7);
    // Reverse every group of three (up to 20 s out of order, inside the
    // reorder window); hold back four fixes from before the detour (inside
    // the corridor) and deliver them in the middle of it, and four from the
    // detour (outside) and deliver them just after the truck is back — each
    // would clear or re-raise the alert if judged as it arrives.
    let mut order: Vec<pb::LogRecord> = Vec::new();
    let held_detour: Vec<pb::LogRecord> = recs[12..16].to_vec();
    let held_before: Vec<pb::LogRecord> = recs[4..8].to_vec();
    let main: Vec<pb::LogRecord> = recs
        .iter()
        .enumerate()
        .filter(|(i, _)| !(4..8).contains(i) && !(12..16).contains(i))
        .map(|(_, r)| r.clone())
        .collect();
    for (i, chunk) in main.chunks(3).enumerate() {
        order.extend(chunk.iter().rev().cloned());
        if i == 3 {
            order.extend(held_before.iter().rev().cloned());
        }
        if i == 5 {
            order.extend(held_detour.iter().rev().cloned());
        }
    }
    assert_eq!(order.len(), recs.len());
    let mut h = Harness::zone();
    // Each record is received (and processed) no earlier than the newest
    // one before it: held-back ones arrive late.
    let mut arrival = i64::MIN;
    for r in &order {
        arrival = arrival.max(r.time_unix_ms);
        let mut late = r.clone();
        late.received_at_unix_ms = arrival;
        h.record_at(late, arrival);
    }
    flush(&mut h, &order);
    assert!(h.engine.stats().late_fixes >= 4, "{:?}", h.engine.stats());
    let raises = h.raises(RuleId::RouteDeviation);
    assert_eq!(raises, 1, "{:#?}", h.transitions);
    assert_eq!(
        deviation_events(&h.events),
        [EventReason::Fired, EventReason::Resolved]
    );
}

#[test]
fn a_restart_in_the_middle_of_a_deviation_neither_loses_nor_duplicates_the_alert() {
    let (recs, _, _) = detour_drive(7);
    for cut in 0..=recs.len() {
        let mut a = Harness::zone();
        feed(&mut a, &recs[..cut]);
        let engine_snap = a.engine.snapshot().unwrap();
        let store_snap = a.store.snapshot().unwrap();

        let mut b = Harness::zone();
        b.engine.restore(&engine_snap).unwrap();
        b.store = AlertStore::restore(&store_snap).unwrap();
        feed(&mut b, &recs[cut..]);
        flush(&mut b, &recs);

        let mut events = a.events.clone();
        events.extend(b.events.iter().cloned());
        assert_eq!(
            deviation_events(&events),
            [EventReason::Fired, EventReason::Resolved],
            "restart after {cut} records"
        );
    }
}

#[test]
fn a_replay_from_an_older_engine_snapshot_does_not_duplicate_the_alert() {
    // The engine snapshot covers the log up to `from`; the alert store had
    // already applied transitions up to `to` when the process died. The log
    // is replayed from `from`.
    let (recs, _, _) = detour_drive(7);
    for from in (0..recs.len()).step_by(3) {
        for to in (from..=recs.len()).step_by(4) {
            let mut a = Harness::zone();
            feed(&mut a, &recs[..from]);
            let engine_snap = a.engine.snapshot().unwrap();
            feed(&mut a, &recs[from..to]);
            let store_snap = a.store.snapshot().unwrap();

            let mut b = Harness::zone();
            b.engine.restore(&engine_snap).unwrap();
            b.store = AlertStore::restore(&store_snap).unwrap();
            feed(&mut b, &recs[from..]);
            flush(&mut b, &recs);

            let mut events = a.events.clone();
            events.extend(b.events.iter().cloned());
            assert_eq!(
                deviation_events(&events),
                [EventReason::Fired, EventReason::Resolved],
                "engine from {from}, store to {to}"
            );
        }
    }
}

#[test]
fn duplicated_records_are_ignored() {
    let (recs, _, _) = detour_drive(7);
    let mut once = Harness::zone();
    feed(&mut once, &recs);
    flush(&mut once, &recs);

    let mut twice = Harness::zone();
    for r in &recs {
        twice.record_at(r.clone(), r.received_at_unix_ms);
        twice.record_at(r.clone(), r.received_at_unix_ms + 500);
    }
    // A redelivery of an earlier batch after a reconnect.
    let last = recs.last().unwrap().received_at_unix_ms;
    for r in &recs[20..30] {
        twice.record_at(r.clone(), last + S);
    }
    flush(&mut twice, &recs);
    assert_eq!(twice.transitions, once.transitions);
    assert_eq!(twice.engine.stats().duplicates, recs.len() as u64 + 10);
    assert_eq!(twice.engine.stats().records, once.engine.stats().records);
}

#[test]
fn a_snapshot_restores_an_identical_state() {
    let (recs, _, _) = detour_drive(3);
    let mut h = Harness::zone();
    feed(&mut h, &recs[..15]);
    h.bin("bin-res-jingbei-01", NIGHT_T0, bin_ok());
    let snap = h.engine.snapshot().unwrap();
    let mut other = RuleEngine::new(zone(), RuleConfig::default());
    other.restore(&snap).unwrap();
    let a: serde_json::Value = serde_json::from_slice(&snap).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&other.snapshot().unwrap()).unwrap();
    assert_eq!(a, b);
    assert_eq!(other.tracked_devices(), 2);
    assert!(other.restore(b"{not json").is_err());
    assert_eq!(other.tracked_devices(), 2);
}

#[test]
fn records_of_unknown_devices_and_mismatched_kinds_are_counted_not_judged() {
    let mut h = Harness::zone();
    let mut env = envelope(TRUCK, 1, NIGHT_T0, Body::BinReading(bin_ok()));
    h.record_at(record(env.clone(), NIGHT_T0), NIGHT_T0);
    env.device_id = "no-such-device".into();
    h.record_at(record(env, NIGHT_T0), NIGHT_T0);
    let mut empty = record(
        envelope(TRUCK, 2, NIGHT_T0, Body::BinReading(bin_ok())),
        NIGHT_T0,
    );
    empty.envelope = None;
    h.record_at(empty, NIGHT_T0);
    let s = h.engine.stats();
    assert_eq!(
        (s.kind_mismatches, s.unknown_devices, s.malformed),
        (1, 1, 1)
    );
    assert!(h.transitions.is_empty());
}

#[test]
fn a_storage_reading_older_than_the_newest_judged_one_is_not_judged() {
    let mut h = Harness::zone();
    let hot = pb::StorageReading {
        temperature_deci_c: 450,
        ..Default::default()
    };
    let cool = pb::StorageReading {
        temperature_deci_c: 250,
        ..Default::default()
    };
    h.storage("st-licensed-01", DAY_T0 + 10 * MIN, cool);
    h.storage("st-licensed-01", DAY_T0 + 5 * MIN, hot);
    assert_eq!(
        h.current(RuleId::StorageTemperature, "st-licensed-01"),
        None
    );
    assert_eq!(h.engine.stats().late_readings, 1);
}

#[test]
fn a_reading_with_a_restamped_clock_cannot_be_verified() {
    let mut h = Harness::zone();
    let hot = pb::StorageReading {
        temperature_deci_c: 450,
        ..Default::default()
    };
    let mut rec = record(
        envelope("st-licensed-01", 1, DAY_T0, Body::StorageReading(hot)),
        DAY_T0,
    );
    rec.clock_check = pb::ClockCheck::FutureRestamped as i32;
    h.record_at(rec, DAY_T0);
    assert_eq!(
        h.current(RuleId::StorageTemperature, "st-licensed-01"),
        None
    );
    assert_eq!(
        h.current(RuleId::CannotVerify, "st-licensed-01"),
        Some(Severity::Warn)
    );
}

#[test]
fn overrides_change_a_threshold_for_one_device_only() {
    let config: RuleConfig = serde_json::from_value(serde_json::json!({
        "overrides": {"device": {"st-licensed-01": {"storage": {"temperature_warn_c": 30.0}}}}
    }))
    .unwrap();
    let mut h = Harness::with_config(config);
    let warm = pb::StorageReading {
        temperature_deci_c: 320,
        ..Default::default()
    };
    h.storage("st-licensed-01", DAY_T0, warm);
    h.storage("st-collect-point-01", DAY_T0, warm);
    assert_eq!(
        h.current(RuleId::StorageTemperature, "st-licensed-01"),
        Some(Severity::Warn)
    );
    assert_eq!(
        h.current(RuleId::StorageTemperature, "st-collect-point-01"),
        None
    );
}
