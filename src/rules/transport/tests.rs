//! Fire / clear edges of every truck rule, one fix at a time. The reorder
//! window is set to 0 here so each fix is judged as it arrives; the
//! reorder behaviour itself is tested in `engine/tests.rs`.

use super::super::config::RuleConfig;
use super::super::testkit::*;
use crate::alert::{RuleId, Severity};
use crate::geo::LatLon;
use crate::pb::{envelope::Body, ClockCheck, DeviceKind, TruckFix};

const TRUCK: &str = "truck-d1234"; // 豫AD1234, on permit-2026-0001 (and 0004)
const PERMIT: &str = "permit-2026-0001";
const ENTITY: &str = "truck-d1234/permit-2026-0001";
const S: i64 = 1000;

fn harness() -> Harness {
    assert_kind(TRUCK, DeviceKind::Truck);
    let mut config = RuleConfig::default();
    config.engine.reorder_window_ms = 0;
    Harness::with_config(config)
}

/// A point `along_m` along the permit's route, then `north_m` north.
fn on_route(along_m: f64, north_m: f64) -> LatLon {
    let reg = zone();
    let p = reg.permit(PERMIT).unwrap();
    p.route.point_at_distance(along_m).0.offset_m(north_m, 0.0)
}

/// A loaded truck driving legally at `p`.
fn fix_at(p: LatLon) -> TruckFix {
    TruckFix {
        latitude_deg: p.lat,
        longitude_deg: p.lon,
        speed_kmh: 30.0,
        heading_deg: 90.0,
        accuracy_m: 5.0,
        loaded: true,
        cover_closed: true,
        ignition_on: true,
        plate: "豫AD1234".into(),
        permit_id: PERMIT.into(),
        gnss_fix: true,
        satellites: 12,
        ..Default::default()
    }
}

/// A point in the zone away from every site and route.
fn nowhere() -> LatLon {
    let p = LatLon::new(34.738, 113.79);
    assert!(zone().site_containing(p).is_none());
    p
}

#[test]
fn route_deviation_needs_two_fixes_and_60_seconds_outside() {
    let mut h = harness();
    // 2 km along the route is on the east-west road (a 50 m, 40 km/h
    // segment); 120 m north is outside the corridor.
    let steps: [(i64, f64, Option<Severity>); 9] = [
        (0, 0.0, None),
        (10, 120.0, None),
        (20, 120.0, None),
        (60, 120.0, None),
        (70, 120.0, Some(Severity::Warn)),
        (80, 120.0, Some(Severity::Warn)),
        (90, 0.0, Some(Severity::Warn)),
        (100, 120.0, Some(Severity::Warn)),
        (110, 0.0, Some(Severity::Warn)),
    ];
    for (s, north, want) in steps {
        h.fix(TRUCK, NIGHT_T0 + s * S, fix_at(on_route(2000.0, north)));
        assert_eq!(
            h.current(RuleId::RouteDeviation, ENTITY),
            want,
            "t={s}s north={north}"
        );
    }
    h.fix(TRUCK, NIGHT_T0 + 120 * S, fix_at(on_route(2000.0, 0.0)));
    assert_eq!(h.current(RuleId::RouteDeviation, ENTITY), None);
    assert_eq!(h.raises(RuleId::RouteDeviation), 1);
}

#[test]
fn a_fix_whose_error_radius_reaches_the_corridor_is_not_outside() {
    let mut h = harness();
    for i in 0..10 {
        let mut f = fix_at(on_route(2000.0, 95.0));
        f.accuracy_m = 46.0; // 95 - 46 = 49 m <= 50 m
        h.fix(TRUCK, NIGHT_T0 + i * 10 * S, f);
    }
    assert_eq!(h.raises(RuleId::RouteDeviation), 0);
    let mut f = fix_at(on_route(2000.0, 95.0));
    f.accuracy_m = 44.0; // 51 m
    for i in 10..20 {
        h.fix(TRUCK, NIGHT_T0 + i * 10 * S, f.clone());
    }
    assert_eq!(
        h.current(RuleId::RouteDeviation, ENTITY),
        Some(Severity::Warn)
    );
}

#[test]
fn route_deviation_is_critical_beyond_500_m_or_after_15_minutes() {
    let mut h = harness();
    for (i, north) in [501.0 + 5.0, 506.0].into_iter().enumerate() {
        h.fix(
            TRUCK,
            NIGHT_T0 + i as i64 * 60 * S,
            fix_at(on_route(2000.0, north)),
        );
    }
    assert_eq!(
        h.current(RuleId::RouteDeviation, ENTITY),
        Some(Severity::Critical)
    );

    let mut h = harness();
    for i in 0..=15 {
        h.fix(
            TRUCK,
            NIGHT_T0 + i * 60 * S,
            fix_at(on_route(2000.0, 200.0)),
        );
        let want = match i {
            0 => None,
            1..=14 => Some(Severity::Warn),
            _ => Some(Severity::Critical),
        };
        assert_eq!(
            h.current(RuleId::RouteDeviation, ENTITY),
            want,
            "minute {i}"
        );
    }
}

#[test]
fn route_deviation_does_not_apply_to_an_empty_truck_and_clears_when_unloaded() {
    let mut h = harness();
    let mut f = fix_at(on_route(2000.0, 300.0));
    f.loaded = false;
    for i in 0..10 {
        h.fix(TRUCK, NIGHT_T0 + i * 10 * S, f.clone());
    }
    assert_eq!(h.raises(RuleId::RouteDeviation), 0);
    for i in 10..20 {
        h.fix(
            TRUCK,
            NIGHT_T0 + i * 10 * S,
            fix_at(on_route(2000.0, 300.0)),
        );
    }
    assert_eq!(
        h.current(RuleId::RouteDeviation, ENTITY),
        Some(Severity::Warn)
    );
    h.fix(TRUCK, NIGHT_T0 + 200 * S, f);
    assert_eq!(h.current(RuleId::RouteDeviation, ENTITY), None);
}

#[test]
fn a_fix_without_a_permit_id_is_judged_against_the_plates_nearest_permit() {
    let mut h = harness();
    for i in 0..10 {
        let mut f = fix_at(on_route(2000.0, 300.0));
        f.permit_id.clear();
        h.fix(TRUCK, NIGHT_T0 + i * 10 * S, f);
    }
    // 豫AD1234 is on 0001 and 0004, which share this road; 0001 sorts first.
    assert_eq!(
        h.current(RuleId::RouteDeviation, ENTITY),
        Some(Severity::Warn)
    );
}

#[test]
fn driving_loaded_outside_the_permit_window_for_a_minute_is_major() {
    let mut h = harness();
    let entity = ENTITY;
    // DAY_T0 is 10:00 local: outside 21:00-06:00.
    let steps: [(i64, f64, bool, Option<Severity>); 7] = [
        (0, 30.0, true, None),
        (50, 30.0, true, None),
        (60, 30.0, true, Some(Severity::Major)),
        (70, 0.0, true, Some(Severity::Major)),
        // Stopped 5 minutes: clears.
        (370, 0.0, true, None),
        (380, 30.0, false, None),
        (500, 30.0, false, None),
    ];
    for (s, speed, loaded, want) in steps {
        let mut f = fix_at(on_route(2000.0, 0.0));
        f.speed_kmh = speed;
        f.loaded = loaded;
        h.fix(TRUCK, DAY_T0 + s * S, f);
        assert_eq!(h.current(RuleId::OutsideTimeWindow, entity), want, "t={s}s");
    }
    // Inside the window nothing is raised.
    let mut h = harness();
    for i in 0..20 {
        h.fix(TRUCK, NIGHT_T0 + i * 10 * S, fix_at(on_route(2000.0, 0.0)));
    }
    assert_eq!(h.raises(RuleId::OutsideTimeWindow), 0);
}

#[test]
fn a_fix_with_a_restamped_clock_is_not_judged() {
    // The same minute loaded and moving outside the window that raises a
    // major alert above, but the decoder had to re-stamp every fix: their
    // time is when they arrived, so no window, duration or speed is judged.
    let mut h = harness();
    for s in [0, 30, 60, 90, 120] {
        let t = DAY_T0 + s * S;
        let seq = h.next_seq(TRUCK);
        let mut rec = record(
            envelope(TRUCK, seq, t, Body::TruckFix(fix_at(on_route(2000.0, 0.0)))),
            t,
        );
        rec.clock_check = ClockCheck::FutureRestamped as i32;
        h.record_at(rec, t);
    }
    assert_eq!(h.raises(RuleId::OutsideTimeWindow), 0);
    assert_eq!(h.engine.stats().restamped_fixes, 5);
    // The same fixes with a sound clock do raise it (the test can fail).
    for s in [150, 180, 210] {
        h.fix(TRUCK, DAY_T0 + s * S, fix_at(on_route(2000.0, 0.0)));
    }
    assert_eq!(
        h.current(RuleId::OutsideTimeWindow, ENTITY),
        Some(Severity::Major)
    );
}

#[test]
fn the_window_alert_clears_when_the_window_opens_or_the_truck_unloads() {
    let mut h = harness();
    let opening = NIGHT_T0; // 21:00
    for s in [-120, -60] {
        h.fix(TRUCK, opening + s * S, fix_at(on_route(2000.0, 0.0)));
    }
    assert_eq!(
        h.current(RuleId::OutsideTimeWindow, ENTITY),
        Some(Severity::Major)
    );
    h.fix(TRUCK, opening, fix_at(on_route(2000.0, 0.0)));
    assert_eq!(h.current(RuleId::OutsideTimeWindow, ENTITY), None);
}

#[test]
fn stopping_loaded_outside_sites_for_5_minutes_and_tipping_is_suspected_dumping() {
    let p = nowhere();
    // (name, body lifted, load at the stop, load after, verdict at 5 min)
    type Case = (
        &'static str,
        bool,
        Option<f64>,
        Option<f64>,
        Option<Severity>,
    );
    let cases: [Case; 4] = [
        ("body lifted", true, None, None, Some(Severity::Critical)),
        (
            "load dropped by more than half",
            false,
            Some(10_000.0),
            Some(4_000.0),
            Some(Severity::Critical),
        ),
        (
            "load dropped by half exactly",
            false,
            Some(10_000.0),
            Some(5_000.0),
            None,
        ),
        ("just parked", false, Some(10_000.0), Some(10_000.0), None),
    ];
    for (name, lift, load0, load1, want) in cases {
        let mut h = harness();
        for s in (0..=300).step_by(30) {
            let mut f = fix_at(p);
            f.permit_id.clear();
            f.speed_kmh = 0.0;
            f.load_kg = if s == 0 { load0 } else { load1 };
            f.body_lifted = lift && s >= 240;
            h.fix(TRUCK, NIGHT_T0 + s * S, f);
            let expect = if s < 300 { None } else { want };
            assert_eq!(
                h.current(RuleId::SuspectedDumping, TRUCK),
                expect,
                "{name} at {s}s"
            );
        }
    }
}

#[test]
fn a_stop_inside_an_approved_site_or_of_an_empty_truck_is_not_dumping() {
    let reg = zone();
    let dest = reg.site("rp-jingnan-recycle").unwrap().centre;
    for (p, loaded) in [(dest, true), (nowhere(), false)] {
        let mut h = harness();
        for s in (0..=600).step_by(30) {
            let mut f = fix_at(p);
            f.speed_kmh = 0.0;
            f.loaded = loaded;
            f.body_lifted = true;
            h.fix(TRUCK, NIGHT_T0 + s * S, f);
        }
        assert_eq!(
            h.raises(RuleId::SuspectedDumping),
            0,
            "{p:?} loaded={loaded}"
        );
    }
}

#[test]
fn a_dumping_alert_is_held_for_an_hour() {
    let mut h = harness();
    for s in (0..=300).step_by(60) {
        let mut f = fix_at(nowhere());
        f.speed_kmh = 0.0;
        f.body_lifted = true;
        h.fix(TRUCK, NIGHT_T0 + s * S, f);
    }
    let raised = NIGHT_T0 + 300 * S;
    h.tick(raised + 59 * MIN);
    assert_eq!(
        h.current(RuleId::SuspectedDumping, TRUCK),
        Some(Severity::Critical)
    );
    h.tick(raised + 60 * MIN);
    assert_eq!(h.current(RuleId::SuspectedDumping, TRUCK), None);
}

#[test]
fn a_body_lifted_outside_every_site_is_critical_at_once() {
    let reg = zone();
    let mut h = harness();
    let mut f = fix_at(nowhere());
    f.body_lifted = true;
    h.fix(TRUCK, NIGHT_T0, f.clone());
    assert_eq!(
        h.current(RuleId::BodyLiftedOutsideSite, TRUCK),
        Some(Severity::Critical)
    );
    f.body_lifted = false;
    h.fix(TRUCK, NIGHT_T0 + 10 * S, f);
    assert_eq!(h.current(RuleId::BodyLiftedOutsideSite, TRUCK), None);
    // Inside a site, or with the error radius reaching one, it is fine.
    let mut h = harness();
    let site = reg.site("bf-quarry-east").unwrap();
    let corner = site.geofence[0];
    let mut f = fix_at(site.centre);
    f.body_lifted = true;
    h.fix(TRUCK, NIGHT_T0 + 20 * S, f.clone());
    let outside = corner.offset_m(-30.0, 0.0);
    assert!(!site.contains(outside));
    f.latitude_deg = outside.lat;
    f.longitude_deg = outside.lon;
    f.accuracy_m = 35.0;
    h.fix(TRUCK, NIGHT_T0 + 80 * S, f);
    assert_eq!(h.raises(RuleId::BodyLiftedOutsideSite), 0);
    assert_eq!(h.engine.stats().implausible_fixes, 0);
}

#[test]
fn a_cover_open_on_a_loaded_moving_truck_for_more_than_30_seconds_is_major() {
    let mut h = harness();
    let steps: [(i64, bool, f64, bool, Option<Severity>); 7] = [
        (0, false, 30.0, true, None),
        (30, false, 30.0, true, None),
        (40, false, 30.0, true, Some(Severity::Major)),
        (50, false, 0.0, true, Some(Severity::Major)),
        (60, true, 30.0, true, None),
        (70, false, 5.0, true, None),
        (110, false, 5.0, true, None),
    ];
    for (s, closed, speed, loaded, want) in steps {
        let mut f = fix_at(on_route(2000.0, 0.0));
        f.cover_closed = closed;
        f.speed_kmh = speed;
        f.loaded = loaded;
        h.fix(TRUCK, NIGHT_T0 + s * S, f);
        assert_eq!(h.current(RuleId::CoverOpen, TRUCK), want, "t={s}s");
    }
}

#[test]
fn overspeed_warns_after_10_seconds_over_the_segment_limit_and_is_major_at_20_percent() {
    let mut h = harness();
    // Segment 1 of permit-2026-0001 has a 40 km/h limit.
    let steps: [(i64, f64, Option<Severity>); 9] = [
        (0, 40.0, None),
        (5, 41.0, None),
        (15, 41.0, Some(Severity::Warn)),
        (20, 48.5, Some(Severity::Warn)),
        (30, 48.5, Some(Severity::Major)),
        (35, 44.0, Some(Severity::Major)),
        (40, 43.0, Some(Severity::Warn)),
        (45, 35.1, Some(Severity::Warn)),
        (50, 35.0, None),
    ];
    for (s, speed, want) in steps {
        let mut f = fix_at(on_route(2000.0, 0.0));
        f.speed_kmh = speed;
        h.fix(TRUCK, NIGHT_T0 + s * S, f);
        assert_eq!(
            h.current(RuleId::Overspeed, TRUCK),
            want,
            "t={s}s {speed} km/h"
        );
    }
}

#[test]
fn overspeed_uses_60_km_h_on_suburban_segments_and_40_off_the_route() {
    // Segment 5 (southward at 113.78) is 100 m wide with 60 km/h.
    let reg = zone();
    let p = reg.permit(PERMIT).unwrap();
    let seg5 = p.route.points()[5].offset_m(-300.0, 0.0);
    assert_eq!(p.corridor_distance(seg5).2, 5);
    for (pos, speed, over) in [
        (seg5, 60.0, false),
        (seg5, 61.0, true),
        (nowhere(), 41.0, true),
    ] {
        let mut h = harness();
        for s in [0, 10] {
            let mut f = fix_at(pos);
            f.speed_kmh = speed;
            f.loaded = false;
            h.fix(TRUCK, NIGHT_T0 + s * S, f);
        }
        assert_eq!(
            h.current(RuleId::Overspeed, TRUCK).is_some(),
            over,
            "{pos:?} {speed}"
        );
    }
}

#[test]
fn no_gnss_fix_with_the_ignition_on_for_over_5_minutes_is_major() {
    let mut h = harness();
    let steps: [(i64, bool, bool, Option<Severity>); 6] = [
        (0, false, true, None),
        (300, false, true, None),
        (310, false, true, Some(Severity::Major)),
        (320, true, true, None),
        (330, false, false, None),
        (700, false, false, None),
    ];
    for (s, gnss, ignition, want) in steps {
        let mut f = fix_at(on_route(2000.0, 0.0));
        f.gnss_fix = gnss;
        f.ignition_on = ignition;
        h.fix(TRUCK, NIGHT_T0 + s * S, f);
        assert_eq!(h.current(RuleId::GnssLost, TRUCK), want, "t={s}s");
    }
}

#[test]
fn gnss_loss_fires_on_tick_when_fixes_stop() {
    let mut h = harness();
    let mut f = fix_at(on_route(2000.0, 0.0));
    f.gnss_fix = false;
    h.fix(TRUCK, NIGHT_T0, f);
    h.tick(NIGHT_T0 + 5 * MIN);
    assert_eq!(h.current(RuleId::GnssLost, TRUCK), None);
    h.tick(NIGHT_T0 + 5 * MIN + 1);
    assert_eq!(h.current(RuleId::GnssLost, TRUCK), Some(Severity::Major));
}

#[test]
fn jt808_gnss_alarm_bits_4_and_5_raise_gnss_lost() {
    for (bits, want) in [
        (1u32 << 4, Some(Severity::Major)),
        (1 << 5, Some(Severity::Major)),
        (1 << 0, None),
        (1 << 6, None),
    ] {
        let mut h = harness();
        let mut f = fix_at(on_route(2000.0, 0.0));
        f.terminal_alarm_bits = bits;
        h.fix(TRUCK, NIGHT_T0, f);
        assert_eq!(h.current(RuleId::GnssLost, TRUCK), want, "bits {bits:#b}");
    }
}

#[test]
fn a_fix_jumping_faster_than_200_km_h_is_not_judged() {
    let mut h = harness();
    h.fix(TRUCK, NIGHT_T0, fix_at(on_route(2000.0, 0.0)));
    // 5 km in 10 s.
    let mut f = fix_at(nowhere());
    f.body_lifted = true;
    h.fix(TRUCK, NIGHT_T0 + 10 * S, f);
    assert_eq!(h.raises(RuleId::BodyLiftedOutsideSite), 0);
    assert_eq!(h.engine.stats().implausible_fixes, 1);
}
