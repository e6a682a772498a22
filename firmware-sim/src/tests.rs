//! Fleet tests against the shipped zone (`zone/`): determinism, the decode
//! contract, and the message shapes each scenario promises in SCENARIOS.md.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use prost::Message;

use super::*;
use wastewatch::decode::{DecodePolicy, Decoder};
use wastewatch_contract::geo::LatLon;
use wastewatch_contract::json::decode_json;
use wastewatch_contract::pb::{self, envelope::Body, DeviceKind, StatusKind};
use wastewatch_contract::registry::Registry;
use wastewatch_contract::ErrorKind;

/// 2026-11-27T12:00:00Z, 20:00 China Standard Time: the night window opens
/// an hour in.
const START: i64 = 1_795_780_800_000;
const HOUR: i64 = 3_600_000;

fn zone() -> Registry {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zone");
    Registry::load_dir(&dir).unwrap_or_else(|e| panic!("shipped zone does not load: {e}"))
}

fn cfg(seed: u64, scenarios: &[Scenario]) -> SimConfig {
    SimConfig {
        seed,
        scenarios: scenarios.to_vec(),
        start_unix_ms: START,
        json_share: 0.3,
        ..SimConfig::default()
    }
}

/// Runs `hours` of simulated time in `step_ms` batches.
fn run(reg: &Registry, c: &SimConfig, hours: i64, step_ms: i64) -> (Fleet, Vec<OutMsg>) {
    let mut f = Fleet::new(reg, c).unwrap();
    let mut out = Vec::new();
    let mut t = START;
    while t < START + hours * HOUR {
        t += step_ms;
        out.extend(f.next_batch(t));
    }
    (f, out)
}

fn envelope(m: &OutMsg) -> Option<pb::Envelope> {
    if m.json {
        decode_json(&m.payload).ok()
    } else {
        pb::Envelope::decode(m.payload.as_slice()).ok()
    }
}

fn assigned(f: &Fleet, sc: Scenario) -> Vec<String> {
    f.assignments()
        .iter()
        .filter(|a| a.scenario == sc && !a.device_id.is_empty())
        .map(|a| a.device_id.clone())
        .collect()
}

fn fixes<'a>(msgs: &'a [OutMsg], id: &'a str) -> impl Iterator<Item = (i64, pb::TruckFix)> + 'a {
    msgs.iter()
        .filter(move |m| m.device_id == id && !m.expect_quarantine)
        .filter_map(|m| match envelope(m)?.body? {
            Body::TruckFix(f) => Some((m.recorded_at_ms, f)),
            _ => None,
        })
}

fn storage_readings<'a>(
    msgs: &'a [OutMsg],
    id: &'a str,
) -> impl Iterator<Item = (i64, pb::StorageReading)> + 'a {
    msgs.iter()
        .filter(move |m| m.device_id == id && !m.expect_quarantine)
        .filter_map(|m| match envelope(m)?.body? {
            Body::StorageReading(s) => Some((m.recorded_at_ms, s)),
            _ => None,
        })
}

fn bin_readings<'a>(msgs: &'a [OutMsg], id: &'a str) -> impl Iterator<Item = pb::BinReading> + 'a {
    msgs.iter()
        .filter(move |m| m.device_id == id && !m.expect_quarantine)
        .filter_map(|m| match envelope(m)?.body? {
            Body::BinReading(b) => Some(b),
            _ => None,
        })
}

fn corridor(reg: &Registry, f: &pb::TruckFix) -> (f64, f64) {
    let p = reg.permit(&f.permit_id).unwrap();
    let (d, hw, _) = p.corridor_distance(LatLon::new(f.latitude_deg, f.longitude_deg));
    (d, hw)
}

#[test]
fn two_fleets_with_the_same_seed_publish_identical_bytes_however_time_is_sliced() {
    let reg = zone();
    let c = cfg(42, &Scenario::ALL);
    let (_, a) = run(&reg, &c, 6, 1_000);
    let (_, b) = run(&reg, &c, 6, 97_000);
    assert!(a.len() > 1000, "only {} messages", a.len());
    // Batches end at different instants, so compare up to the shorter run.
    let n = a.len().min(b.len());
    assert!(n + 200 > a.len().max(b.len()));
    for (x, y) in a.iter().zip(&b).take(n) {
        assert_eq!((&x.topic, &x.payload, x.seq), (&y.topic, &y.payload, y.seq));
    }
}

#[test]
fn a_different_seed_gives_different_messages() {
    let reg = zone();
    let (_, a) = run(&reg, &cfg(1, &[Scenario::Normal]), 1, 10_000);
    let (_, b) = run(&reg, &cfg(2, &[Scenario::Normal]), 1, 10_000);
    let same = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.payload == y.payload)
        .count();
    assert!(same < a.len() / 10, "{same} of {} identical", a.len());
}

#[test]
fn every_valid_message_decodes_against_the_shipped_zone_and_every_fault_is_refused_for_its_reason()
{
    let reg = zone();
    let decoder = Decoder::new(Arc::new(reg.clone()), DecodePolicy::default());
    let (_, msgs) = run(&reg, &cfg(7, &Scenario::ALL), 30, 60_000);
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    let mut json = 0;
    for m in &msgs {
        let ct = (m.json && !m.topic.ends_with("/json")).then_some("application/json");
        let got = decoder.decode(&m.topic, &m.payload, ct, m.sim_time_ms);
        if m.expect_quarantine {
            let err = got.expect_err(&format!("fault accepted: {m:?}"));
            assert_eq!(Some(err.kind), m.expect_reason, "{m:?}: {err}");
            *by_reason.entry(err.kind.as_str()).or_default() += 1;
        } else {
            let rec = got
                .unwrap_or_else(|e| panic!("valid message refused: {e}\n{m:?}\n{:?}", envelope(m)));
            json += usize::from(rec.from_json);
            assert_eq!(rec.envelope.as_ref().map(|e| e.schema_version), Some(1));
        }
    }
    assert!(json > 100, "only {json} JSON messages");
    for k in [
        "malformed_protobuf",
        "non_finite_value",
        "negative_weight",
        "id_mismatch",
        "unknown_device",
    ] {
        assert!(
            by_reason.get(k).copied().unwrap_or(0) > 10,
            "{k}: {by_reason:?}"
        );
    }
}

#[test]
fn every_message_has_a_body_fitting_its_kind_and_topic() {
    let reg = zone();
    let (_, msgs) = run(&reg, &cfg(3, &[Scenario::Normal]), 12, 60_000);
    let mut kinds: HashMap<DeviceKind, usize> = HashMap::new();
    for m in &msgs {
        let env = envelope(m).unwrap();
        assert_eq!(env.device_id, m.device_id);
        assert_eq!(env.seq, m.seq);
        let ok = matches!(
            (m.kind, env.body.as_ref().unwrap()),
            (_, Body::DeviceStatus(_))
                | (DeviceKind::Bin, Body::BinReading(_))
                | (DeviceKind::Storage, Body::StorageReading(_))
                | (DeviceKind::Truck, Body::TruckFix(_))
                | (DeviceKind::Weighbridge, Body::WeighbridgeTicket(_))
        );
        assert!(ok, "{m:?}");
        assert_eq!(
            matches!(env.body, Some(Body::DeviceStatus(_))),
            m.topic.contains("/status"),
            "{}",
            m.topic
        );
        *kinds.entry(m.kind).or_default() += 1;
    }
    assert_eq!(kinds.len(), 4, "{kinds:?}");
}

#[test]
fn seq_starts_at_one_and_grows_by_one_per_device_in_publish_order() {
    let reg = zone();
    let c = cfg(
        5,
        &[
            Scenario::Normal,
            Scenario::StorageOverfill,
            Scenario::BinFire,
            Scenario::ClockSkew,
            Scenario::Overload,
        ],
    );
    let (_, msgs) = run(&reg, &c, 12, 30_000);
    let mut last: HashMap<&str, u64> = HashMap::new();
    for m in &msgs {
        let prev = last.insert(&m.device_id, m.seq).unwrap_or(0);
        assert_eq!(m.seq, prev + 1, "{}: {} after {}", m.device_id, m.seq, prev);
    }
}

#[test]
fn duplicates_and_dropouts_are_the_only_breaks_in_seq_order_and_leave_no_gap() {
    let reg = zone();
    let c = cfg(
        5,
        &[Scenario::DuplicateRedelivery, Scenario::GpsDropoutBurst],
    );
    let (f, msgs) = run(&reg, &c, 14, 30_000);
    let dropout = assigned(&f, Scenario::GpsDropoutBurst);
    let mut seen: HashMap<&str, Vec<u64>> = HashMap::new();
    let (mut dups, mut late) = (0, 0);
    for m in &msgs {
        let v = seen.entry(&m.device_id).or_default();
        if m.duplicate {
            dups += 1;
            let orig = msgs
                .iter()
                .find(|o| !o.duplicate && o.device_id == m.device_id && o.seq == m.seq)
                .unwrap();
            assert_eq!(orig.payload, m.payload);
            assert!(m.sim_time_ms > orig.sim_time_ms);
            continue;
        }
        if v.last().is_some_and(|&l| m.seq != l + 1) {
            assert!(
                dropout.contains(&m.device_id),
                "{} out of order outside a dropout",
                m.device_id
            );
        }
        if m.sim_time_ms - m.recorded_at_ms >= 60_000 {
            late += 1;
        }
        v.push(m.seq);
    }
    assert!(dups > 50, "{dups} duplicates");
    assert!(late > 10, "{late} late fixes");
    for (id, mut v) in seen {
        v.sort_unstable();
        assert_eq!(v, (1..=v.len() as u64).collect::<Vec<_>>(), "{id} has gaps");
    }
}

#[test]
fn under_gps_jitter_moving_trucks_stay_in_their_corridor_most_of_the_time() {
    let reg = zone();
    let c = SimConfig {
        gps_sigma_m: 20.0,
        ..cfg(11, &[Scenario::GpsJitter])
    };
    let (f, msgs) = run(&reg, &c, 12, 60_000);
    let trucks: Vec<String> = f
        .device_ids()
        .filter(|id| id.starts_with("truck"))
        .map(str::to_owned)
        .collect();
    let (mut n, mut inside, mut within_accuracy) = (0, 0, 0);
    for id in &trucks {
        for (_, fx) in
            fixes(&msgs, id).filter(|(_, fx)| fx.speed_kmh > 0.0 && !fx.permit_id.is_empty())
        {
            let (d, hw) = corridor(&reg, &fx);
            n += 1;
            inside += usize::from(d <= hw);
            within_accuracy += usize::from(d <= hw + 2.0 * fx.accuracy_m);
            assert!(
                (16.0..=26.0).contains(&fx.accuracy_m),
                "accuracy {}",
                fx.accuracy_m
            );
        }
    }
    assert!(n > 1000, "{n} moving fixes");
    assert!(inside as f64 / n as f64 > 0.95, "{inside}/{n} inside");
    assert!(
        within_accuracy as f64 / n as f64 > 0.999,
        "{within_accuracy}/{n} within accuracy"
    );
}

#[test]
fn route_deviation_leaves_the_corridor_by_about_300_m_for_minutes_not_a_quarter_hour() {
    let reg = zone();
    let (f, msgs) = run(&reg, &cfg(13, &[Scenario::RouteDeviation]), 12, 60_000);
    let ids = assigned(&f, Scenario::RouteDeviation);
    assert_eq!(ids.len(), 1);
    let mut max_d: f64 = 0.0;
    let mut outside: Vec<i64> = Vec::new();
    for (t, fx) in fixes(&msgs, &ids[0]) {
        let (d, hw) = corridor(&reg, &fx);
        max_d = max_d.max(d);
        if d > hw {
            assert!(fx.loaded, "outside the corridor while empty");
            outside.push(t);
        }
    }
    assert!((250.0..=360.0).contains(&max_d), "max distance {max_d} m");
    // The first excursion: at least 2 fixes and 60 s, under 15 min.
    let first = outside[0];
    let run_end = outside
        .windows(2)
        .find(|w| w[1] - w[0] > 60_000)
        .map_or(*outside.last().unwrap(), |w| w[0]);
    let fixes_out = outside.iter().filter(|&&t| t <= run_end).count();
    assert!(
        fixes_out >= 2 && run_end - first >= 60_000 && run_end - first < 15 * 60_000,
        "{fixes_out} fixes over {} s",
        (run_end - first) / 1000
    );
    // Every other truck stays inside.
    for id in f
        .device_ids()
        .filter(|id| id.starts_with("truck") && *id != ids[0])
    {
        for (_, fx) in fixes(&msgs, id).filter(|(_, fx)| !fx.permit_id.is_empty()) {
            let (d, hw) = corridor(&reg, &fx);
            assert!(d <= hw, "{id} outside by {} m", d - hw);
        }
    }
}

#[test]
fn illegal_dump_stops_loaded_outside_any_site_and_lifts_the_body() {
    let reg = zone();
    let (f, msgs) = run(&reg, &cfg(17, &[Scenario::IllegalDump]), 12, 60_000);
    let id = &assigned(&f, Scenario::IllegalDump)[0];
    let lifted: Vec<(i64, pb::TruckFix)> =
        fixes(&msgs, id).filter(|(_, fx)| fx.body_lifted).collect();
    assert!(!lifted.is_empty());
    let outside = lifted
        .iter()
        .filter(|(_, fx)| {
            reg.site_containing(LatLon::new(fx.latitude_deg, fx.longitude_deg))
                .is_none()
        })
        .count();
    assert!(outside > 0, "body never lifted outside a site");
    // Loaded and standing for at least 5 min before the lift.
    let lift_t = lifted
        .iter()
        .find(|(_, fx)| {
            reg.site_containing(LatLon::new(fx.latitude_deg, fx.longitude_deg))
                .is_none()
        })
        .unwrap()
        .0;
    let standing = fixes(&msgs, id)
        .filter(|(t, fx)| *t <= lift_t && lift_t - *t <= 5 * 60_000 + 5_000 && fx.speed_kmh < 5.0)
        .count();
    assert!(standing >= 30, "{standing} slow fixes in the 5 min before");
}

#[test]
fn the_time_window_truck_drives_loaded_only_outside_the_window_and_the_others_only_inside() {
    let reg = zone();
    let (f, msgs) = run(&reg, &cfg(19, &[Scenario::TimeWindow]), 30, 60_000);
    let id = &assigned(&f, Scenario::TimeWindow)[0];
    for truck in f.device_ids().filter(|t| t.starts_with("truck")) {
        let moving: Vec<(i64, pb::TruckFix)> = fixes(&msgs, truck)
            .filter(|(_, fx)| fx.loaded && fx.speed_kmh > 5.0)
            .collect();
        for (t, fx) in &moving {
            let inside = reg.permit(&fx.permit_id).unwrap().in_time_window(*t);
            assert_eq!(
                inside,
                truck != id,
                "{truck} loaded and moving at {}",
                format_local(*t)
            );
        }
        if truck == id {
            assert!(
                !moving.is_empty(),
                "the time-window truck never drove loaded"
            );
        }
    }
}

#[test]
fn overload_tickets_exceed_the_legal_gross_weight_for_the_axles() {
    let reg = zone();
    let (f, msgs) = run(&reg, &cfg(23, &[Scenario::Overload]), 12, 60_000);
    let id = &assigned(&f, Scenario::Overload)[0];
    let plate = reg
        .device(id)
        .unwrap()
        .truck
        .as_ref()
        .unwrap()
        .plate
        .clone();
    let mut over = 0;
    for m in &msgs {
        if let Some(Body::WeighbridgeTicket(t)) = envelope(m).and_then(|e| e.body) {
            let legal = [0.0, 18_000.0, 18_000.0, 25_000.0, 31_000.0][t.axle_count.min(4) as usize];
            if t.plate == plate {
                assert!(t.gross_weight_kg > legal, "{t:?}");
                over += 1;
            } else {
                assert!(t.gross_weight_kg <= legal, "{t:?}");
            }
            assert!((t.net_weight_kg - (t.gross_weight_kg - t.tare_weight_kg)).abs() < 1e-6);
        }
    }
    assert!(over > 0);
}

#[test]
fn storage_scenarios_cross_their_thresholds() {
    let reg = zone();
    let (f, msgs) = run(
        &reg,
        &cfg(29, &[Scenario::StorageOverfill, Scenario::StorageOverdue]),
        8,
        60_000,
    );
    let overfill = &assigned(&f, Scenario::StorageOverfill)[0];
    let stock: Vec<f64> = storage_readings(&msgs, overfill)
        .map(|(_, s)| s.stock_kg)
        .collect();
    assert!(stock[0] > 2000.0 && stock[0] < 2400.0, "{}", stock[0]);
    assert!(stock.iter().any(|&s| s > 2400.0) && stock.iter().any(|&s| s > 3000.0));
    assert!(
        stock.windows(2).all(|w| w[1] >= w[0]),
        "overfill stock fell"
    );
    for id in assigned(&f, Scenario::StorageOverdue) {
        let r: Vec<pb::StorageReading> = storage_readings(&msgs, &id).map(|(_, s)| s).collect();
        if let Some(lot) = r[0].oldest_medical_lot_age_s {
            assert!(
                lot > 36 * 3600
                    && r.iter()
                        .any(|s| s.oldest_medical_lot_age_s.unwrap_or(0) > 48 * 3600)
            );
        } else {
            assert!(r[0].oldest_container_age_s > 335 * 86_400);
            assert!(r.iter().any(|s| s.oldest_container_age_s > 365 * 86_400));
        }
    }
}

#[test]
fn bin_scenarios_burn_and_overflow() {
    let reg = zone();
    let (f, msgs) = run(
        &reg,
        &cfg(31, &[Scenario::BinFire, Scenario::BinFull]),
        6,
        60_000,
    );
    let fire = &assigned(&f, Scenario::BinFire)[0];
    assert!(bin_readings(&msgs, fire).any(|b| b.fire_flag && b.temperature_deci_c >= 600));
    let full = &assigned(&f, Scenario::BinFull)[0];
    let fills: Vec<f64> = bin_readings(&msgs, full)
        .map(|b| b.fill_level_pct)
        .collect();
    assert!(
        fills.iter().any(|&v| v >= 80.0) && fills.iter().any(|&v| v >= 95.0),
        "{fills:?}"
    );
}

#[test]
fn an_offline_device_sends_a_last_will_and_then_nothing() {
    let reg = zone();
    let (f, msgs) = run(&reg, &cfg(37, &[Scenario::DeviceOffline]), 4, 60_000);
    let ids = assigned(&f, Scenario::DeviceOffline);
    assert_eq!(ids.len(), 2);
    for id in ids {
        let mine: Vec<&OutMsg> = msgs.iter().filter(|m| m.device_id == id).collect();
        let last = mine.last().unwrap();
        assert!(last.last_will);
        assert!(
            matches!(envelope(last).unwrap().body, Some(Body::DeviceStatus(s)) if s.kind == StatusKind::LastWill as i32)
        );
        assert!(
            mine.len() >= 3,
            "{id}: only {} messages before going offline",
            mine.len()
        );
    }
}

#[test]
fn clock_skew_devices_stamp_two_hours_ahead_and_no_other_does() {
    let reg = zone();
    let (f, msgs) = run(&reg, &cfg(41, &[Scenario::ClockSkew]), 2, 60_000);
    let ids = assigned(&f, Scenario::ClockSkew);
    assert_eq!(ids.len(), 2);
    for m in &msgs {
        let ahead = m.recorded_at_ms - m.sim_time_ms;
        if ids.contains(&m.device_id) {
            // A reading that shares its millisecond with an earlier one of
            // the device is stamped a few ms earlier (fleet::encode).
            assert!((2 * HOUR - 64..=2 * HOUR).contains(&ahead), "{m:?}");
        } else {
            assert!(ahead <= 0, "{m:?}");
        }
    }
}

/// What the normal zone must never show (the alert conditions of
/// docs/RULES.md), over two simulated days.
#[test]
fn the_normal_zone_stays_clear_of_every_alert_threshold() {
    let reg = zone();
    let (f, msgs) = run(&reg, &cfg(43, &[Scenario::Normal]), 48, 60_000);
    let mut last_seen: HashMap<&str, i64> = HashMap::new();
    let mut door_open_since: HashMap<&str, i64> = HashMap::new();
    let mut tickets = 0;
    let mut loaded_trips = 0;
    for m in &msgs {
        let dev = reg.device(&m.device_id).unwrap();
        if let Some(prev) = last_seen.insert(&m.device_id, m.recorded_at_ms) {
            let gap = m.recorded_at_ms - prev;
            assert!(
                gap <= 2 * 1000 * i64::from(dev.expected_interval_s) + 60_000,
                "{} silent for {} s",
                m.device_id,
                gap / 1000
            );
        }
        match envelope(m).unwrap().body.unwrap() {
            Body::BinReading(b) => {
                let limit = if dev.bin.as_ref().unwrap().medical {
                    75.0
                } else {
                    80.0
                };
                assert!(
                    b.fill_level_pct < limit,
                    "{} at {} %",
                    m.device_id,
                    b.fill_level_pct
                );
                assert!(
                    b.temperature_deci_c < 400
                        && !b.fire_flag
                        && b.tilt_deg < 45.0
                        && !b.battery_low_flag
                );
            }
            Body::StorageReading(s) => {
                let spec = dev.storage.as_ref().unwrap();
                let limit = if spec.small_storage_point {
                    spec.capacity_kg.min(3000.0)
                } else {
                    spec.capacity_kg
                };
                assert!(
                    s.stock_kg < 0.8 * limit,
                    "{} holds {} of {}",
                    m.device_id,
                    s.stock_kg,
                    limit
                );
                assert!(s.oldest_container_age_s < 335 * 86_400);
                assert!(
                    s.oldest_medical_lot_age_s.unwrap_or(0) < 36 * 3600,
                    "{} lot {} h",
                    m.device_id,
                    s.oldest_medical_lot_age_s.unwrap_or(0) / 3600
                );
                assert!(s.temperature_deci_c < 400 && !s.leak_detected);
                assert!(
                    s.combustible_gas_pct_lel.unwrap_or(0.0) < 25.0
                        && s.toxic_gas_pct_of_limit.unwrap_or(0.0) < 100.0
                );
                let o2 = s.oxygen_pct_vol.unwrap_or(20.9);
                assert!((19.5..=23.5).contains(&o2));
                if spec.medical {
                    assert!(s.temperature_deci_c < 200);
                }
                if s.door_open {
                    let since = *door_open_since
                        .entry(&m.device_id)
                        .or_insert(m.recorded_at_ms);
                    assert!(
                        m.recorded_at_ms - since < 15 * 60_000,
                        "{} door open {} min",
                        m.device_id,
                        (m.recorded_at_ms - since) / 60_000
                    );
                    let h = time::local_hour(m.recorded_at_ms);
                    assert!(
                        (8.0..18.5).contains(&h),
                        "{} door open at {}",
                        m.device_id,
                        format_local(m.recorded_at_ms)
                    );
                } else {
                    door_open_since.remove(m.device_id.as_str());
                }
            }
            Body::TruckFix(fx) => {
                if !fx.permit_id.is_empty() {
                    let permit = reg.permit(&fx.permit_id).unwrap();
                    let (d, hw, seg) =
                        permit.corridor_distance(LatLon::new(fx.latitude_deg, fx.longitude_deg));
                    assert!(d <= hw, "{} {} m off route", m.device_id, d);
                    let limit = permit.segments[seg].speed_limit_kmh.unwrap_or(40.0);
                    assert!(
                        fx.speed_kmh <= limit,
                        "{} at {} km/h",
                        m.device_id,
                        fx.speed_kmh
                    );
                    if fx.loaded && fx.speed_kmh > 0.0 {
                        assert!(
                            permit.in_time_window(m.recorded_at_ms),
                            "{} loaded at {}",
                            m.device_id,
                            format_local(m.recorded_at_ms)
                        );
                        loaded_trips += 1;
                    }
                    if fx.body_lifted {
                        assert!(
                            reg.site_containing(LatLon::new(fx.latitude_deg, fx.longitude_deg))
                                .is_some(),
                            "{} lifted outside a site",
                            m.device_id
                        );
                    }
                    if !fx.cover_closed && fx.loaded {
                        assert!(fx.speed_kmh <= 5.0);
                    }
                }
            }
            Body::WeighbridgeTicket(t) => {
                tickets += 1;
                let legal = [
                    18_000.0, 18_000.0, 18_000.0, 25_000.0, 31_000.0, 43_000.0, 49_000.0,
                ][t.axle_count.min(6) as usize];
                assert!(t.gross_weight_kg <= legal, "{t:?}");
                if let Some(truck) = reg.truck_by_plate(&t.plate) {
                    let tare = truck.truck.as_ref().unwrap().registered_tare_kg;
                    assert!((t.tare_weight_kg - tare).abs() <= 100.0);
                    assert!(!reg
                        .active_permits_for_plate(
                            &t.plate,
                            t.weighed_out_at_unix_ms.max(t.weighed_in_at_unix_ms)
                        )
                        .is_empty());
                }
            }
            Body::DeviceStatus(s) => assert_ne!(s.kind, StatusKind::LastWill as i32),
        }
    }
    assert!(tickets > 20, "{tickets} tickets");
    assert!(loaded_trips > 100, "{loaded_trips} loaded moving fixes");
    assert_eq!(f.device_count(), reg.devices.len());
}

#[test]
fn a_registered_will_is_the_message_published_when_the_device_goes_offline() {
    let reg = zone();
    let mut f = Fleet::new(&reg, &cfg(47, &[Scenario::DeviceOffline])).unwrap();
    let ids = assigned(&f, Scenario::DeviceOffline);
    let will = f.register_will(&ids[0]).unwrap();
    assert_eq!(will.seq, 1);
    let mut out = Vec::new();
    for h in 1..=4 {
        out.extend(f.next_batch(START + h * HOUR));
    }
    let published = out
        .iter()
        .find(|m| m.device_id == ids[0] && m.last_will)
        .unwrap();
    assert_eq!(
        (published.seq, &published.payload),
        (will.seq, &will.payload)
    );
}

#[test]
fn a_generated_zone_loads_and_the_fleet_drives_it() {
    let reg_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zone");
    let out = tempfile::tempdir().unwrap();
    let report =
        genzone::generate_zone(&reg_dir, out.path(), 1000, genzone::Mix::default()).unwrap();
    assert_eq!(
        (report.bins, report.storage, report.trucks),
        (600, 100, 300)
    );
    let reg = Registry::load_dir(out.path()).unwrap();
    assert_eq!(reg.devices.len(), report.devices_total);
    let decoder = Decoder::new(Arc::new(reg.clone()), DecodePolicy::default());
    let mut f = Fleet::new(&reg, &cfg(53, &[Scenario::Normal])).unwrap();
    let msgs = f.next_batch(START + 2 * HOUR);
    assert!(msgs.len() > 10_000, "{}", msgs.len());
    for m in msgs.iter().step_by(7) {
        let ct = (m.json && !m.topic.ends_with("/json")).then_some("application/json");
        decoder
            .decode(&m.topic, &m.payload, ct, m.sim_time_ms)
            .unwrap_or_else(|e| panic!("{e}: {m:?}"));
    }
}

#[test]
fn settings_errors_are_reported_together() {
    let c = SimConfig {
        json_share: 2.0,
        speedup: 0.0,
        connections: 0,
        ..SimConfig::default()
    };
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("json_share") && err.contains("speedup") && err.contains("connections"),
        "{err}"
    );
    assert_eq!(
        ErrorKind::parse("unknown_device"),
        Some(ErrorKind::UnknownDevice)
    );
}

/// A device never stamps two readings with the same millisecond — the
/// service keys a point by device, measurement and time — even when it
/// reports a burst at once (a medical store's lot register at start, the
/// lots of a collection, a door event next to a periodic report).
#[test]
fn no_device_stamps_two_readings_in_one_millisecond() {
    let reg = zone();
    let all = [
        Scenario::StorageOverdue,
        Scenario::StorageOverfill,
        Scenario::BinFire,
        Scenario::RouteDeviation,
    ];
    let (_, msgs) = run(&reg, &cfg(5, &all), 36, 60_000);
    let mut seen = std::collections::HashSet::new();
    let mut readings = 0;
    for m in msgs
        .iter()
        .filter(|m| !m.expect_quarantine && !m.duplicate && !m.last_will)
    {
        readings += 1;
        assert!(
            seen.insert((m.device_id.clone(), m.recorded_at_ms)),
            "{} stamped two readings at {} ms (seq {})",
            m.device_id,
            m.recorded_at_ms,
            m.seq
        );
    }
    assert!(readings > 10_000, "only {readings} readings");
}
