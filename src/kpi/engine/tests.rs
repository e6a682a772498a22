//! Table tests of every computed KPI: exact numerators and denominators,
//! late data, duplicates and a formula-version change, on simulated time.

use std::collections::BTreeMap;

use super::*;
use crate::pb::{envelope::Body, DeviceKind};

/// 2026-10-01 00:00 China Standard Time.
const OCT: i64 = 1_790_784_000_000;
/// 2026-11-01 00:00 China Standard Time.
const NOV: i64 = 1_793_462_400_000;
const H: i64 = 3_600_000;
const D: i64 = 24 * H;

fn square(lon: f64, lat: f64) -> String {
    format!(
        r#"{{"type":"Polygon","coordinates":[[[{lon},{lat}],[{},{lat}],[{},{}],[{lon},{}],[{lon},{lat}]]]}}"#,
        lon + 0.002,
        lon + 0.002,
        lat + 0.002,
        lat + 0.002
    )
}

fn registry() -> Arc<Registry> {
    let sites: Vec<String> = [
        ("cs-a", "construction_site", 113.700),
        ("rp", "recycling_plant", 113.720),
        ("lf", "landfill", 113.740),
        ("bf", "backfill", 113.760),
        ("up", "utilisation_plant", 113.780),
        ("hz", "licensed_hazardous_facility", 113.800),
        ("fa", "factory", 113.820),
        ("ho", "hospital", 113.840),
        ("lab", "laboratory", 113.860),
        ("cp", "small_business_collection_point", 113.880),
    ]
    .iter()
    .map(|(id, ty, lon)| {
        format!(
            r#"{{"id":"{id}","name":"{id}","type":"{ty}","geofence":{}}}"#,
            square(*lon, 34.700)
        )
    })
    .collect();
    let mut devices: Vec<String> = ["cs-a", "rp", "lf", "bf", "up", "hz", "fa", "ho", "lab", "cp"]
        .iter()
        .map(|s| {
            format!(
                r#"{{"id":"wb-{s}","kind":"weighbridge","site_id":"{s}","expected_interval_s":3600,"weighbridge":{{}}}}"#
            )
        })
        .collect();
    devices.push(r#"{"id":"st-fa","kind":"storage","site_id":"fa","expected_interval_s":300,"storage":{"capacity_kg":3000,"small_storage_point":true,"medical":false}}"#.into());
    devices.push(r#"{"id":"st-ho","kind":"storage","site_id":"ho","expected_interval_s":60,"storage":{"capacity_kg":2000,"small_storage_point":false,"medical":true}}"#.into());
    devices.push(r#"{"id":"tr-1","kind":"truck","site_id":"cs-a","expected_interval_s":10,"truck":{"plate":"豫AD0001","registered_tare_kg":14000,"axle_count":3}}"#.into());
    let permits = r#"[{"id":"p-1","plates":["豫AD0001"],"origin_site_id":"cs-a","destination_site_ids":["rp"],
        "route":{"type":"LineString","coordinates":[[113.701,34.701],[113.721,34.701]]},
        "segments":[{"half_width_m":50,"speed_limit_kmh":40}],
        "time_windows":[{"start":"21:00","end":"06:00"}],
        "valid_from":"2026-01-01","valid_until":"2027-12-31"}]"#;
    let units = r#"[
        {"id":"lab-1","name":"lab 1","kind":"laboratory","site_id":"lab"},
        {"id":"lab-2","name":"lab 2","kind":"laboratory","site_id":"lab"},
        {"id":"sb-1","name":"sb 1","kind":"small_business","site_id":"cp"},
        {"id":"sb-2","name":"sb 2","kind":"small_business","site_id":"cp"},
        {"id":"sb-3","name":"sb 3","kind":"small_business","site_id":"cp"},
        {"id":"med-1","name":"hospital","kind":"medical","site_id":"ho"}]"#;
    Arc::new(
        Registry::from_json_strs_with_units(
            &format!("[{}]", sites.join(",")),
            &format!("[{}]", devices.join(",")),
            permits,
            units,
        )
        .unwrap(),
    )
}

fn engine(cfg: KpiConfig) -> KpiEngine {
    KpiEngine::new(registry(), cfg)
}

fn rec(device: &str, kind: DeviceKind, seq: u64, t: i64, body: Body) -> pb::LogRecord {
    let reg = registry();
    pb::LogRecord {
        envelope: Some(pb::Envelope {
            site_id: reg.device(device).unwrap().site_id.clone(),
            device_id: device.into(),
            device_kind: kind as i32,
            seq,
            recorded_at_unix_ms: t,
            schema_version: 1,
            body: Some(body),
        }),
        received_at_unix_ms: t,
        time_unix_ms: t,
        ..Default::default()
    }
}

/// A ticket at `wb` with `seq`, id `T{seq}`, at `t`.
fn ticket(
    wb: &str,
    seq: u64,
    t: i64,
    cat: WasteCategory,
    dir: Direction,
    net: f64,
    f: impl FnOnce(&mut pb::WeighbridgeTicket),
) -> pb::LogRecord {
    let mut tk = pb::WeighbridgeTicket {
        ticket_id: format!("T{seq}"),
        plate: "豫AD0001".into(),
        gross_weight_kg: net + 14_000.0,
        tare_weight_kg: 14_000.0,
        net_weight_kg: net,
        category: cat as i32,
        direction: dir as i32,
        origin_site_id: "cs-a".into(),
        ..Default::default()
    };
    f(&mut tk);
    rec(
        wb,
        DeviceKind::Weighbridge,
        seq,
        t,
        Body::WeighbridgeTicket(tk),
    )
}

fn reading(dev: &str, seq: u64, t: i64, stock: f64, lots: Vec<pb::MedicalLot>) -> pb::LogRecord {
    let lot_change = lots.into_iter().next();
    rec(
        dev,
        DeviceKind::Storage,
        seq,
        t,
        Body::StorageReading(pb::StorageReading {
            stock_kg: stock,
            lot_change,
            ..Default::default()
        }),
    )
}

fn fix(seq: u64, t: i64, lon: f64, lat: f64, loaded: bool) -> pb::LogRecord {
    rec(
        "tr-1",
        DeviceKind::Truck,
        seq,
        t,
        Body::TruckFix(pb::TruckFix {
            latitude_deg: lat,
            longitude_deg: lon,
            speed_kmh: 30.0,
            accuracy_m: 5.0,
            loaded,
            cover_closed: true,
            ignition_on: true,
            gnss_fix: true,
            plate: "豫AD0001".into(),
            permit_id: "p-1".into(),
            ..Default::default()
        }),
    )
}

type Key = (String, String, i64, String);

/// The points of one flush by (kpi, period, start, site or "zone").
fn flush(e: &mut KpiEngine) -> BTreeMap<Key, pb::KpiRecord> {
    e.flush()
        .into_iter()
        .map(|k| {
            let site = if k.scope == "zone" {
                "zone".to_owned()
            } else {
                k.site_id.clone()
            };
            (
                (
                    k.kpi.clone(),
                    k.period.clone(),
                    k.period_start_unix_ms,
                    site,
                ),
                k,
            )
        })
        .collect()
}

fn get<'a>(
    pts: &'a BTreeMap<Key, pb::KpiRecord>,
    kpi: KpiId,
    period: &str,
    start: i64,
    site: &str,
) -> &'a pb::KpiRecord {
    pts.get(&(kpi.as_str().into(), period.into(), start, site.into()))
        .unwrap_or_else(|| panic!("no {kpi:?} {period} {start} {site} in {:?}", pts.keys()))
}

fn nd(k: &pb::KpiRecord) -> (f64, f64) {
    (k.numerator, k.denominator)
}

use Direction::{In, Out};
use WasteCategory as C;

#[test]
fn construction_utilisation_counts_disposal_tonnage_once_and_late_tickets_rewrite_only_their_periods(
) {
    let mut e = engine(KpiConfig::default());
    let day2 = OCT + D;
    e.on_record(&ticket(
        "wb-rp",
        1,
        day2 + H,
        C::ConstructionDemolition,
        In,
        6000.0,
        |_| {},
    ));
    e.on_record(&ticket(
        "wb-lf",
        1,
        day2 + 2 * H,
        C::ConstructionSpoil,
        In,
        3000.0,
        |_| {},
    ));
    e.on_record(&ticket(
        "wb-bf",
        1,
        day2 + 3 * H,
        C::ConstructionSpoil,
        In,
        1000.0,
        |_| {},
    ));
    // The origin's out-ticket is not a disposal: not counted.
    e.on_record(&ticket(
        "wb-cs-a",
        1,
        day2,
        C::ConstructionSpoil,
        Out,
        6000.0,
        |_| {},
    ));
    // Redelivered (same seq), and the same ticket id under a new seq.
    e.on_record(&ticket(
        "wb-rp",
        1,
        day2 + H,
        C::ConstructionDemolition,
        In,
        6000.0,
        |_| {},
    ));
    e.on_record(&ticket(
        "wb-lf",
        2,
        day2 + 2 * H,
        C::ConstructionSpoil,
        In,
        3000.0,
        |t| t.ticket_id = "T1".into(),
    ));
    // Other waste and other destinations are not construction disposal.
    e.on_record(&ticket(
        "wb-up",
        1,
        day2,
        C::GeneralIndustrial,
        In,
        5000.0,
        |_| {},
    ));
    let pts = flush(&mut e);
    let month = get(&pts, KpiId::ConstructionUtilisation, "month", OCT, "zone");
    assert_eq!(nd(month), (6000.0, 10000.0));
    assert_eq!(month.value, Some(60.0));
    assert_eq!(month.target, Some(60.0));
    assert_eq!(month.formula_version, "1");
    assert_eq!(
        nd(get(
            &pts,
            KpiId::ConstructionUtilisation,
            "day",
            day2,
            "cs-a"
        )),
        (6000.0, 10000.0)
    );
    assert_eq!(
        nd(get(
            &pts,
            KpiId::ConstructionUtilisation,
            "year",
            1_767_196_800_000,
            "zone"
        )),
        (6000.0, 10000.0)
    );
    assert_eq!(e.stats().duplicates, 1);
    assert_eq!(e.stats().duplicate_tickets, 1);
    // Nothing changed: nothing to write.
    assert!(flush(&mut e).is_empty());
    // A late landfill ticket of the 1st rewrites the 1st, October and 2026 only.
    e.on_record(&ticket(
        "wb-lf",
        3,
        OCT + 5 * H,
        C::ConstructionMud,
        In,
        2000.0,
        |_| {},
    ));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(
            &pts,
            KpiId::ConstructionUtilisation,
            "day",
            OCT,
            "zone"
        )),
        (0.0, 2000.0)
    );
    assert_eq!(
        nd(get(
            &pts,
            KpiId::ConstructionUtilisation,
            "month",
            OCT,
            "zone"
        )),
        (6000.0, 12000.0)
    );
    assert_eq!(
        get(&pts, KpiId::ConstructionUtilisation, "month", OCT, "zone").value,
        Some(50.0)
    );
    assert!(!pts.contains_key(&(
        "construction_utilisation".into(),
        "day".into(),
        day2,
        "zone".into()
    )));
}

#[test]
fn a_formula_change_applies_to_new_periods_and_never_rewrites_a_published_one() {
    let mut e = engine(KpiConfig::default());
    e.on_record(&ticket(
        "wb-rp",
        1,
        OCT + H,
        C::ConstructionSpoil,
        In,
        6000.0,
        |_| {},
    ));
    e.on_record(&ticket(
        "wb-bf",
        1,
        OCT + 2 * H,
        C::ConstructionSpoil,
        In,
        4000.0,
        |_| {},
    ));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(
            &pts,
            KpiId::ConstructionUtilisation,
            "month",
            OCT,
            "zone"
        )),
        (6000.0, 10000.0)
    );
    let snap = e.snapshot().unwrap();
    // Restart with backfill counted as utilisation.
    let mut e = engine(KpiConfig {
        backfill_counts_as_utilisation: true,
        ..KpiConfig::default()
    });
    e.restore(&snap).unwrap();
    // Late October data: October keeps version 1.
    e.on_record(&ticket(
        "wb-bf",
        2,
        OCT + 3 * H,
        C::ConstructionSpoil,
        In,
        1000.0,
        |_| {},
    ));
    // November is new: version 1-backfill.
    e.on_record(&ticket(
        "wb-rp",
        2,
        NOV + H,
        C::ConstructionSpoil,
        In,
        2000.0,
        |_| {},
    ));
    e.on_record(&ticket(
        "wb-bf",
        3,
        NOV + 2 * H,
        C::ConstructionSpoil,
        In,
        1000.0,
        |_| {},
    ));
    e.on_record(&ticket(
        "wb-lf",
        1,
        NOV + 3 * H,
        C::ConstructionSpoil,
        In,
        1000.0,
        |_| {},
    ));
    let pts = flush(&mut e);
    let oct = get(&pts, KpiId::ConstructionUtilisation, "month", OCT, "zone");
    assert_eq!(
        (oct.formula_version.as_str(), nd(oct)),
        ("1", (6000.0, 11000.0))
    );
    let nov = get(&pts, KpiId::ConstructionUtilisation, "month", NOV, "zone");
    assert_eq!(
        (nov.formula_version.as_str(), nd(nov)),
        ("1-backfill", (3000.0, 4000.0))
    );
    assert_eq!(nov.value, Some(75.0));
    // The year was published under version 1 in October: it stays so.
    let year = get(
        &pts,
        KpiId::ConstructionUtilisation,
        "year",
        1_767_196_800_000,
        "zone",
    );
    assert_eq!(
        (year.formula_version.as_str(), nd(year)),
        ("1", (8000.0, 15000.0))
    );
}

#[test]
fn industrial_utilisation_is_tonnage_to_utilisation_over_tonnage_to_any_known_destination() {
    let mut e = engine(KpiConfig::default());
    let from_fa = |t: &mut pb::WeighbridgeTicket| t.origin_site_id = "fa".into();
    e.on_record(&ticket(
        "wb-up",
        1,
        OCT + H,
        C::GeneralIndustrial,
        In,
        8000.0,
        from_fa,
    ));
    e.on_record(&ticket(
        "wb-lf",
        1,
        OCT + H,
        C::GeneralIndustrial,
        In,
        2000.0,
        from_fa,
    ));
    // Dispatch tickets at the generator are not counted again.
    e.on_record(&ticket(
        "wb-fa",
        1,
        OCT,
        C::GeneralIndustrial,
        Out,
        8000.0,
        from_fa,
    ));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(
            &pts,
            KpiId::IndustrialUtilisation,
            "month",
            OCT,
            "zone"
        )),
        (8000.0, 10000.0)
    );
    assert_eq!(
        nd(get(&pts, KpiId::IndustrialUtilisation, "day", OCT, "fa")),
        (8000.0, 10000.0)
    );
    assert_eq!(
        get(&pts, KpiId::IndustrialUtilisation, "day", OCT, "fa").value,
        Some(80.0)
    );
}

#[test]
fn manifests_close_when_both_ends_are_weighed_in_either_order() {
    let mut e = engine(KpiConfig::default());
    let m = |id: &'static str| {
        move |t: &mut pb::WeighbridgeTicket| {
            t.manifest_id = id.into();
            t.origin_site_id = "fa".into();
            t.hazardous_waste_code = "900-249-08".into();
        }
    };
    let hw = C::Hazardous;
    // M1: within tolerance (20 kg); M2: 100 kg apart; M3: receipt first.
    e.on_record(&ticket("wb-fa", 1, OCT + 9 * H, hw, Out, 1000.0, m("M1")));
    e.on_record(&ticket("wb-hz", 1, OCT + 11 * H, hw, In, 980.0, m("M1")));
    e.on_record(&ticket("wb-fa", 2, OCT + 9 * H, hw, Out, 500.0, m("M2")));
    e.on_record(&ticket("wb-hz", 2, OCT + 11 * H, hw, In, 400.0, m("M2")));
    e.on_record(&ticket("wb-hz", 3, OCT + 12 * H, hw, In, 300.0, m("M3")));
    // A receipt without a manifest id.
    e.on_record(&ticket("wb-hz", 4, OCT + 12 * H, hw, In, 250.0, |t| {
        t.origin_site_id = "fa".into()
    }));
    let pts = flush(&mut e);
    let closure = get(&pts, KpiId::HazardousClosure, "day", OCT, "fa");
    assert_eq!(nd(closure), (1380.0, 1500.0));
    assert_eq!(closure.value, Some(92.0));
    assert_eq!(
        closure.note,
        "1 receipt ticket(s) without a manifest id not counted"
    );
    // Tickets: M1 2 of 2, M2 0 of 2, M3 0 of 1 (no dispatch yet), one without id.
    let m = get(&pts, KpiId::ManifestMatchRate, "day", OCT, "zone");
    assert_eq!(nd(m), (2.0, 6.0));
    assert_eq!(
        m.note,
        "1 ticket(s) without a manifest id counted as unmatched"
    );
    // M3's dispatch arrives late, weighed the day before.
    e.on_record(&ticket("wb-fa", 3, OCT - 2 * H, hw, Out, 310.0, m_id("M3")));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(&pts, KpiId::ManifestMatchRate, "month", OCT, "zone")),
        (3.0, 6.0)
    );
    assert_eq!(
        nd(get(&pts, KpiId::ManifestMatchRate, "day", OCT - D, "fa")),
        (1.0, 1.0)
    );
    assert_eq!(
        nd(get(&pts, KpiId::HazardousClosure, "day", OCT - D, "fa")),
        (300.0, 310.0)
    );
    // Medical waste counts toward both closures.
    e.on_record(&ticket(
        "wb-ho",
        1,
        OCT + 10 * H,
        C::Medical,
        Out,
        800.0,
        m_id("M4"),
    ));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(&pts, KpiId::MedicalDisposal, "day", OCT, "ho")),
        (0.0, 800.0)
    );
    e.on_record(&ticket(
        "wb-hz",
        5,
        OCT + 13 * H,
        C::Medical,
        In,
        800.0,
        m_id("M4"),
    ));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(&pts, KpiId::MedicalDisposal, "month", OCT, "zone")),
        (800.0, 800.0)
    );
    assert_eq!(
        nd(get(&pts, KpiId::HazardousClosure, "day", OCT, "zone")),
        (2180.0, 2300.0)
    );
}

fn m_id(id: &'static str) -> impl FnOnce(&mut pb::WeighbridgeTicket) {
    move |t| {
        t.manifest_id = id.into();
        if t.origin_site_id == "cs-a" {
            t.origin_site_id = "fa".into();
        }
    }
}

fn lot(id: u64, sealed: i64, collected: i64) -> pb::MedicalLot {
    pb::MedicalLot {
        lot_id: id,
        sealed_at_unix_ms: sealed,
        collected_at_unix_ms: collected,
        weight_kg: 10.0,
    }
}

#[test]
fn medical_lots_count_when_collected_or_when_their_48_hours_are_up() {
    let mut e = engine(KpiConfig::default());
    let t = OCT + 8 * H;
    e.on_record(&reading("st-ho", 1, t, 10.0, vec![lot(1, t, 0)]));
    e.on_record(&reading("st-ho", 2, t, 20.0, vec![lot(2, t, 0)]));
    e.on_record(&reading("st-ho", 3, t + H, 30.0, vec![lot(3, t + H, 0)]));
    e.on_record(&reading(
        "st-ho",
        4,
        t + 20 * H,
        20.0,
        vec![lot(1, t, t + 20 * H)],
    ));
    let pts = flush(&mut e);
    // Lots 2 and 3 are still within their 48 h: not counted yet.
    assert_eq!(
        nd(get(&pts, KpiId::MedicalClearance48h, "day", OCT, "ho")),
        (1.0, 1.0)
    );
    // At t + 50 h lot 2 leaves (too late) and lot 3, sealed 49 h ago, is overdue.
    e.on_record(&reading(
        "st-ho",
        5,
        t + 50 * H,
        10.0,
        vec![lot(2, t, t + 50 * H)],
    ));
    let pts = flush(&mut e);
    let k = get(&pts, KpiId::MedicalClearance48h, "month", OCT, "zone");
    assert_eq!(nd(k), (1.0, 3.0));
    assert_eq!(k.unit, "%");
    // Lot 3 collected late stays a miss; nothing changes.
    e.on_record(&reading(
        "st-ho",
        6,
        t + 51 * H,
        0.0,
        vec![lot(3, t + H, t + 51 * H)],
    ));
    assert!(flush(&mut e).keys().all(|k| k.0 != "medical_clearance_48h"));
}

#[test]
fn coverage_counts_registered_units_with_a_collection_in_the_period() {
    let mut e = engine(KpiConfig::default());
    let unit = |u: &'static str| move |t: &mut pb::WeighbridgeTicket| t.source_unit_id = u.into();
    e.on_record(&ticket(
        "wb-lab",
        1,
        OCT + H,
        C::Laboratory,
        In,
        12.5,
        unit("lab-1"),
    ));
    e.on_record(&ticket(
        "wb-cp",
        1,
        OCT + H,
        C::Hazardous,
        In,
        40.0,
        unit("sb-1"),
    ));
    e.on_record(&ticket(
        "wb-cp",
        2,
        OCT + 2 * H,
        C::Hazardous,
        In,
        40.0,
        unit("sb-2"),
    ));
    e.on_record(&ticket(
        "wb-cp",
        3,
        OCT + 3 * H,
        C::Hazardous,
        In,
        40.0,
        unit("sb-2"),
    ));
    e.on_record(&ticket(
        "wb-cp",
        4,
        OCT + 3 * H,
        C::Hazardous,
        In,
        40.0,
        unit("sb-9"),
    ));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(
            &pts,
            KpiId::LabCollectionCoverage,
            "month",
            OCT,
            "zone"
        )),
        (1.0, 2.0)
    );
    assert_eq!(
        nd(get(&pts, KpiId::LabCollectionCoverage, "month", OCT, "lab")),
        (1.0, 2.0)
    );
    assert_eq!(
        nd(get(
            &pts,
            KpiId::SmallBusinessCollectionCoverage,
            "day",
            OCT,
            "cp"
        )),
        (2.0, 3.0)
    );
    assert_eq!(
        nd(get(
            &pts,
            KpiId::MedicalCollectionCoverage,
            "year",
            1_767_196_800_000,
            "zone"
        )),
        (0.0, 1.0)
    );
    assert_eq!(e.stats().unknown_units, 1);
    // The next day starts from nobody.
    e.on_record(&ticket(
        "wb-lab",
        2,
        OCT + D + H,
        C::Laboratory,
        In,
        10.0,
        unit("lab-2"),
    ));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(
            &pts,
            KpiId::LabCollectionCoverage,
            "day",
            OCT + D,
            "zone"
        )),
        (1.0, 2.0)
    );
    assert_eq!(
        nd(get(
            &pts,
            KpiId::LabCollectionCoverage,
            "month",
            OCT,
            "zone"
        )),
        (2.0, 2.0)
    );
}

fn km(a: (f64, f64), b: (f64, f64)) -> f64 {
    haversine_m(LatLon::new(a.1, a.0), LatLon::new(b.1, b.0)) / 1000.0
}

#[test]
fn route_compliance_is_loaded_km_inside_the_corridor_and_a_late_fix_splits_its_segment() {
    let mut e = engine(KpiConfig::default());
    let t = OCT + 22 * H; // 22:00, inside the 21:00-06:00 window
    let a = (113.701, 34.701);
    let b = (113.706, 34.701);
    let c = (113.711, 34.701);
    let d = (113.716, 34.705); // ~444 m off the centreline
    let x = (113.721, 34.701); // inside the destination
    for (i, p) in [a, b, c, d, x].iter().enumerate() {
        e.on_record(&fix(i as u64 + 1, t + i as i64 * 60_000, p.0, p.1, true));
    }
    // Empty and after a 10-minute gap: not loaded km.
    e.on_record(&fix(6, t + 5 * 60_000, 113.721, 34.701, false));
    e.on_record(&fix(7, t + 16 * 60_000, 113.716, 34.701, true));
    let pts = flush(&mut e);
    let total = km(a, b) + km(b, c) + km(c, d) + km(d, x);
    let inside = km(a, b) + km(b, c) + 0.5 * km(c, d) + 0.5 * km(d, x);
    let r = get(&pts, KpiId::RouteCompliance, "day", OCT, "cs-a");
    assert_eq!(nd(r), (round3(inside), round3(total)));
    let w = get(&pts, KpiId::TimeWindowCompliance, "month", OCT, "zone");
    assert_eq!(nd(w), (round3(total), round3(total)));
    // A fix between a and b, 300 m off the route, arrives late.
    let late = (113.7035, 34.7037);
    e.on_record(&fix(8, t + 30_000, late.0, late.1, true));
    let pts = flush(&mut e);
    let total2 = km(a, late) + km(late, b) + km(b, c) + km(c, d) + km(d, x);
    let inside2 =
        0.5 * km(a, late) + 0.5 * km(late, b) + km(b, c) + 0.5 * km(c, d) + 0.5 * km(d, x);
    let r = get(&pts, KpiId::RouteCompliance, "day", OCT, "zone");
    assert_eq!(nd(r), (round3(inside2), round3(total2)));
}

#[test]
fn time_window_compliance_halves_a_segment_that_leaves_the_window() {
    let mut e = engine(KpiConfig::default());
    let t = OCT + D + 6 * H - 20_000; // 05:59:40
    let a = (113.701, 34.701);
    let b = (113.702, 34.701);
    let c = (113.703, 34.701);
    e.on_record(&fix(1, t, a.0, a.1, true));
    e.on_record(&fix(2, t + 10_000, b.0, b.1, true)); // 05:59:50
    e.on_record(&fix(3, t + 80_000, c.0, c.1, true)); // 06:01:00
    let pts = flush(&mut e);
    let w = get(&pts, KpiId::TimeWindowCompliance, "day", OCT + D, "cs-a");
    assert_eq!(
        nd(w),
        (
            round3(km(a, b) + 0.5 * km(b, c)),
            round3(km(a, b) + km(b, c))
        )
    );
}

#[test]
fn closed_loop_matches_origin_tickets_to_disposal_tickets_of_the_same_plate_within_four_hours() {
    let mut e = engine(KpiConfig::default());
    let t = OCT + 22 * H;
    let cw = C::ConstructionSpoil;
    e.on_record(&ticket("wb-cs-a", 1, t, cw, Out, 9000.0, |_| {}));
    e.on_record(&ticket("wb-rp", 1, t + 40 * 60_000, cw, In, 9000.0, |_| {}));
    // Second trip: never closed.
    e.on_record(&ticket("wb-cs-a", 2, t + 2 * H, cw, Out, 9000.0, |_| {}));
    // Third trip: the disposal ticket is in the log before the origin's.
    e.on_record(&ticket("wb-rp", 2, t + 3 * H, cw, In, 9000.0, |_| {}));
    e.on_record(&ticket(
        "wb-cs-a",
        3,
        t + 2 * H + 30 * 60_000,
        cw,
        Out,
        9000.0,
        |_| {},
    ));
    let pts = flush(&mut e);
    // The disposal ticket of trip 3 arrived first and closed trip 2 (the
    // latest open one before it); trip 3 is still open: not counted yet.
    assert_eq!(
        nd(get(&pts, KpiId::ClosedLoopRate, "month", OCT, "cs-a")),
        (2.0, 2.0)
    );
    // Four hours after trip 3 started it counts as open.
    e.on_record(&reading("st-fa", 1, t + 7 * H, 100.0, vec![]));
    let pts = flush(&mut e);
    let k = get(&pts, KpiId::ClosedLoopRate, "month", OCT, "zone");
    assert_eq!(nd(k), (2.0, 3.0));
}

#[test]
fn stock_turnover_is_stock_days_over_outflow_and_a_late_reading_is_slotted_in() {
    let cfg = KpiConfig {
        reading_memory_ms: 3 * D,
        max_reading_gap_ms: 13 * H,
        ..KpiConfig::default()
    };
    let mut e = engine(cfg);
    let t = OCT + 4 * D;
    e.on_record(&reading("st-fa", 1, t, 1000.0, vec![]));
    e.on_record(&reading("st-fa", 2, t + 12 * H, 1000.0, vec![]));
    e.on_record(&reading("st-fa", 3, t + 24 * H, 400.0, vec![]));
    e.on_record(&reading("st-fa", 4, t + 36 * H, 400.0, vec![]));
    let pts = flush(&mut e);
    let month = get(&pts, KpiId::HazardousStockTurnover, "month", OCT, "fa");
    assert_eq!(nd(month), (1200.0, 600.0));
    assert_eq!(
        (month.value, month.unit.as_str(), month.target_op.as_str()),
        (Some(2.0), "d", "<=")
    );
    let day = get(&pts, KpiId::HazardousStockTurnover, "day", t, "zone");
    assert_eq!(nd(day), (1000.0, 600.0));
    // The second day has stock but no outflow: no value.
    assert_eq!(
        get(&pts, KpiId::HazardousStockTurnover, "day", t + D, "zone").value,
        None
    );
    // A late reading at t + 18 h shows the collection happened then.
    e.on_record(&reading("st-fa", 5, t + 18 * H, 400.0, vec![]));
    let pts = flush(&mut e);
    assert_eq!(
        nd(get(
            &pts,
            KpiId::HazardousStockTurnover,
            "month",
            OCT,
            "zone"
        )),
        (1050.0, 600.0)
    );
}

#[test]
fn the_state_survives_a_snapshot_and_gives_the_same_points() {
    let mut a = engine(KpiConfig::default());
    a.on_record(&ticket(
        "wb-cs-a",
        1,
        OCT + 22 * H,
        C::ConstructionSpoil,
        Out,
        9000.0,
        |_| {},
    ));
    a.on_record(&fix(1, OCT + 22 * H, 113.701, 34.701, true));
    let _ = a.flush();
    let mut b = engine(KpiConfig::default());
    b.restore(&a.snapshot().unwrap()).unwrap();
    for e in [&mut a, &mut b] {
        e.on_record(&ticket(
            "wb-rp",
            1,
            OCT + 23 * H,
            C::ConstructionSpoil,
            In,
            9000.0,
            |_| {},
        ));
        e.on_record(&fix(2, OCT + 22 * H + 10_000, 113.702, 34.701, true));
    }
    assert_eq!(flush(&mut a), flush(&mut b));
    assert_eq!(a.stats(), b.stats());
}

/// A snapshot written before fixes were held as compact tracks (fixes as
/// a map of time → object with the permit and home ids) restores to an
/// engine that gives the same points as one that never restarted.
#[test]
fn a_snapshot_from_before_compact_tracks_restores_the_same_state() {
    let mut a = engine(KpiConfig::default());
    a.on_record(&ticket(
        "wb-cs-a",
        1,
        OCT + 22 * H,
        C::ConstructionSpoil,
        Out,
        9000.0,
        |_| {},
    ));
    a.on_record(&fix(1, OCT + 22 * H, 113.701, 34.701, true));
    a.on_record(&fix(2, OCT + 22 * H + 5_000, 113.7015, 34.701, true));
    let _ = a.flush();
    let mut v: serde_json::Value = serde_json::from_slice(&a.snapshot().unwrap()).unwrap();
    let names: Vec<String> = serde_json::from_value(v["names"].take()).unwrap();
    let tracks = v["tracks"].take();
    let mut legacy = serde_json::Map::new();
    for (device, rows) in tracks.as_object().unwrap() {
        let mut fixes = serde_json::Map::new();
        for r in rows.as_array().unwrap() {
            let name = |i: usize| names[r[i].as_u64().unwrap() as usize].clone();
            fixes.insert(
                r[0].as_i64().unwrap().to_string(),
                serde_json::json!({
                    "lat": r[1], "lon": r[2], "accuracy_m": r[3], "loaded": r[4],
                    "permit": name(5), "home": name(6),
                }),
            );
        }
        legacy.insert(device.clone(), fixes.into());
    }
    assert!(!legacy.is_empty(), "the engine holds fixes to convert");
    let obj = v.as_object_mut().unwrap();
    obj.remove("names");
    obj.remove("tracks");
    obj.insert("fixes".into(), legacy.into());
    let mut b = engine(KpiConfig::default());
    b.restore(&serde_json::to_vec(&v).unwrap()).unwrap();
    for e in [&mut a, &mut b] {
        e.on_record(&ticket(
            "wb-rp",
            1,
            OCT + 23 * H,
            C::ConstructionSpoil,
            In,
            9000.0,
            |_| {},
        ));
        // Between the two held fixes, and after them.
        e.on_record(&fix(3, OCT + 22 * H + 2_000, 113.7012, 34.7012, true));
        e.on_record(&fix(4, OCT + 22 * H + 10_000, 113.702, 34.701, true));
    }
    assert_eq!(flush(&mut a), flush(&mut b));
    assert_eq!(a.stats(), b.stats());
    // Written back in the new form only.
    let again: serde_json::Value = serde_json::from_slice(&b.snapshot().unwrap()).unwrap();
    assert!(again.get("fixes").is_none(), "{again}");
    assert!(again["tracks"].as_object().is_some_and(|t| !t.is_empty()));
}

#[test]
fn a_snapshot_whose_fix_names_an_unknown_permit_index_is_refused() {
    let mut a = engine(KpiConfig::default());
    a.on_record(&fix(1, OCT + 22 * H, 113.701, 34.701, true));
    let mut v: serde_json::Value = serde_json::from_slice(&a.snapshot().unwrap()).unwrap();
    for rows in v["tracks"].as_object_mut().unwrap().values_mut() {
        rows[0][5] = serde_json::json!(999);
    }
    let err = engine(KpiConfig::default())
        .restore(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("index"), "{err}");
}
