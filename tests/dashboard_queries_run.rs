//! Every panel query of every dashboard in `dashboards/` runs against the
//! real InfluxDB 1.x started by scripts/services.sh, on a fixture this test
//! writes with the service's own encoders (device records, `alert` points of
//! `wastewatch::alert::stage::record`'s shape, `kpi` points, and the
//! `wastewatch_pipeline` point), and its result must equal what the fixture
//! implies, computed here independently from the model the fixture was made
//! from. Grafana cannot run here, so the test does what Grafana does before
//! a query reaches InfluxDB: it resolves the dashboard variables by running
//! their queries (regex and sort included), expands `$variables` with the
//! InfluxDB datasource's escaping, repeats repeated panels, and expands
//! `$timeFilter` and `$__interval` as Grafana's InfluxQL backend does; the
//! `groupBy` / `organize` transformations of a panel are applied to its
//! result before the comparison. Each dashboard runs twice: with its
//! defaults (every "All"), and with specific variable values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use wastewatch::metrics::Metrics;
use wastewatch::pb::{self, envelope::Body};
use wastewatch_test_kit::{env, influx_create_db, influx_query, now_ms, unique};

const S: i64 = 1_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const D: i64 = 24 * H;
/// Local time of the KPI periods (`kpi.utc_offset_min`, China Standard Time).
const UTC_OFFSET: i64 = 8 * H;
/// What Grafana takes as a panel's width in data points (its `maxDataPoints`
/// when it sets none): a half-width panel on a 1920-pixel screen.
const RESOLUTION: i64 = 1000;

// ======================================================== calendar helpers

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date (y, m, d) of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Start (local midnight) of the month `back` months before the one of `t`.
fn month_start(t: i64, back: i64) -> i64 {
    let (y, m, _) = civil_from_days((t + UTC_OFFSET).div_euclid(D));
    let idx = y * 12 + (m - 1) - back;
    days_from_civil(idx.div_euclid(12), idx.rem_euclid(12) + 1, 1) * D - UTC_OFFSET
}

/// Start (local midnight, 1 January) of the year `back` years before `t`'s.
fn year_start(t: i64, back: i64) -> i64 {
    let (y, _, _) = civil_from_days((t + UTC_OFFSET).div_euclid(D));
    days_from_civil(y - back, 1, 1) * D - UTC_OFFSET
}

/// `t` moved back by whole calendar units, as Grafana's date math does for
/// `now-1y` / `now-1M` (UTC calendar; a 29 February becomes the 28th).
fn calendar_back(t: i64, months: i64) -> i64 {
    let days = t.div_euclid(D);
    let ms = t.rem_euclid(D);
    let (y, m, d) = civil_from_days(days);
    let idx = y * 12 + (m - 1) - months;
    let (ny, nm) = (idx.div_euclid(12), idx.rem_euclid(12) + 1);
    let last =
        days_from_civil(ny + i64::from(nm == 12), nm % 12 + 1, 1) - days_from_civil(ny, nm, 1);
    days_from_civil(ny, nm, d.min(last)) * D + ms
}

// ================================================================= fixture

#[derive(Clone)]
struct Storage {
    t: i64,
    site: &'static str,
    device: &'static str,
    stock_kg: f64,
    age_s: u64,
    temp_deci: i32,
    gas: Option<f64>,
    toxic: Option<f64>,
    oxygen: Option<f64>,
    lot_s: Option<u64>,
    leak: bool,
    door: bool,
    containers: u32,
    restamped: bool,
}

#[derive(Clone)]
struct Bin {
    t: i64,
    site: &'static str,
    device: &'static str,
    fill: f64,
    temp_deci: i32,
    fire: bool,
    restamped: bool,
}

#[derive(Clone)]
struct Fix {
    t: i64,
    site: &'static str,
    device: &'static str,
    lat: f64,
    lon: f64,
    speed: f64,
    loaded: bool,
    cover_closed: bool,
    body_lifted: bool,
    gnss: bool,
    plate: &'static str,
    permit: &'static str,
}

#[derive(Clone)]
struct Ticket {
    t: i64,
    site: &'static str,
    device: &'static str,
    category: pb::WasteCategory,
    destination: pb::DestinationType,
    direction: pb::Direction,
    net: f64,
    plate: &'static str,
    permit: &'static str,
}

#[derive(Clone)]
struct Status {
    t: i64,
    site: &'static str,
    device: &'static str,
    kind: pb::DeviceKind,
    status: pb::StatusKind,
    uptime_s: u64,
    battery_mv: u32,
}

#[derive(Clone)]
struct Pipe {
    t: i64,
    instance: &'static str,
    values: BTreeMap<&'static str, u64>,
}

/// What was written, as the model the expectations are computed from.
struct Fixture {
    storage: Vec<Storage>,
    bins: Vec<Bin>,
    fixes: Vec<Fix>,
    tickets: Vec<Ticket>,
    statuses: Vec<Status>,
    alerts: Vec<pb::AlertRecord>,
    kpis: Vec<pb::KpiRecord>,
    pipes: Vec<Pipe>,
}

fn category_tag(c: pb::WasteCategory) -> String {
    c.as_str_name()
        .trim_start_matches("WASTE_CATEGORY_")
        .to_ascii_lowercase()
}

fn destination_tag(d: pb::DestinationType) -> String {
    d.as_str_name()
        .trim_start_matches("DESTINATION_TYPE_")
        .to_ascii_lowercase()
}

fn status_tag(s: pb::StatusKind) -> String {
    s.as_str_name()
        .trim_start_matches("STATUS_KIND_")
        .to_ascii_lowercase()
}

/// Weighbridge tickets: minutes from now, site, weighbridge, category,
/// destination type, direction, net kg, plate, permit (`-`: none). The first
/// is older than the 24 h ranges.
const TICKETS: &str = "
    -1800 site-a wb-a construction_spoil        recycling   out 15000 豫AD0001 permit-1
     -600 site-a wb-a construction_spoil        recycling   out 16000 豫AD0001 permit-1
     -540 site-b wb-b construction_spoil        recycling   in  15980 豫AD0001 permit-1
     -300 site-a wb-a construction_demolition   recycling   out 17500 豫AD0001 permit-1
     -240 site-b wb-b construction_demolition   recycling   in  17480 豫AD0001 permit-1
     -180 site-a wb-a construction_spoil        landfill    out 12000 豫AD0002 permit-2
     -150 site-b wb-b construction_mud          landfill    in   9000 豫AD0009 -
     -120 site-b wb-b general_industrial        utilisation in   4200 豫AD0010 -
      -90 site-b wb-b general_industrial        landfill    in   3100 豫AD0010 -
      -60 site-a wb-a construction_spoil        recycling   out 16400 豫AD0001 permit-1
";

/// Device status messages: minutes from now, site, device, kind, status,
/// uptime s, battery mV.
const STATUSES: &str = "
    -1800 site-a bin-1 bin     birth          10  3600
    -1200 site-a bin-1 bin     birth           5  3550
      -60 site-a bin-1 bin     heartbeat   68405  3500
      -30 site-a st-1  storage last_will       0     0
     -120 site-b tr-3  truck   heartbeat    7200 12600
";

impl Fixture {
    fn new(n: i64) -> Fixture {
        let mut f = Fixture {
            storage: Vec::new(),
            bins: Vec::new(),
            fixes: Vec::new(),
            tickets: Vec::new(),
            statuses: Vec::new(),
            alerts: Vec::new(),
            kpis: Vec::new(),
            pipes: Vec::new(),
        };
        // Storage readings every 30 min for 26 h (the first 2 h before the
        // 24 h range of the storage dashboard).
        for i in 0..52i64 {
            let t = n - 26 * H + i * 30 * M;
            f.storage.push(Storage {
                t,
                site: "site-a",
                device: "st-1",
                stock_kg: 2000.0 + 25.0 * i as f64,
                age_s: (300 * 86_400 + i * 43_200) as u64,
                temp_deci: 200 + (i % 7) as i32 * 10,
                gas: Some((i % 10) as f64 * 3.0),
                toxic: Some((i % 5) as f64 * 30.0),
                oxygen: Some(20.9 - (i % 4) as f64 * 0.5),
                lot_s: None,
                leak: false,
                door: i == 40,
                containers: (i % 6 + 1) as u32,
                restamped: i == 45 || i == 47,
            });
            f.storage.push(Storage {
                t: t + 5 * M,
                site: "site-b",
                device: "st-2",
                stock_kg: 1500.0 - 10.0 * i as f64,
                age_s: (10 * 86_400 + i * 8_640) as u64,
                temp_deci: 250 + (i % 3) as i32,
                gas: None,
                toxic: None,
                oxygen: None,
                lot_s: None,
                leak: i == 51,
                door: false,
                containers: 3,
                restamped: false,
            });
            f.storage.push(Storage {
                t: t + 10 * M,
                site: "site-b",
                device: "st-med",
                stock_kg: 200.0 + i as f64,
                age_s: 86_400,
                temp_deci: 180,
                gas: None,
                toxic: None,
                oxygen: None,
                lot_s: Some(((i % 60) * 3_600 + 1_800) as u64),
                leak: false,
                door: false,
                containers: 2,
                restamped: false,
            });
        }
        // Bins hourly for 30 h.
        for i in 0..30i64 {
            let t = n - 30 * H + i * H + 7 * M;
            for (k, (site, device)) in [
                ("site-a", "bin-1"),
                ("site-a", "bin-2"),
                ("site-c", "bin-3"),
            ]
            .into_iter()
            .enumerate()
            {
                let k = k as i64;
                f.bins.push(Bin {
                    t: t + k * M,
                    site,
                    device,
                    fill: ((i * 7 + k * 31) % 100) as f64 + 0.5,
                    temp_deci: 200 + (i * 3 + k * 50) as i32,
                    fire: device == "bin-3" && (i == 3 || i == 20 || i == 28),
                    restamped: device == "bin-1" && i == 25,
                });
            }
        }
        // Truck fixes every 15 min for 8 h.
        for i in 0..32i64 {
            let t = n - 8 * H + i * 15 * M + 2 * M;
            let trucks = [
                ("site-a", "tr-1", "豫AD0001", "permit-1"),
                ("site-a", "tr-2", "豫AD0002", "permit-2"),
                ("site-b", "tr-3", "豫AD0003", "permit-3"),
            ];
            for (k, (site, device, plate, permit)) in trucks.into_iter().enumerate() {
                let k = k as i64;
                f.fixes.push(Fix {
                    t: t + k * 20 * S,
                    site,
                    device,
                    lat: 34.72 + (i as f64) * 0.001,
                    lon: 113.74 + (k as f64) * 0.01,
                    speed: ((i * 5 + k * 11) % 60) as f64,
                    loaded: (i + k) % 3 != 0,
                    cover_closed: !(device == "tr-2" && i == 30),
                    body_lifted: device == "tr-1" && i == 31,
                    // tr-2's last fix has no GNSS fix: the map leaves it out.
                    gnss: !(device == "tr-2" && i == 31),
                    plate,
                    permit,
                });
            }
        }
        let enum_of = |prefix: &str, name: &str| format!("{prefix}{}", name.to_ascii_uppercase());
        for l in TICKETS.lines().filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(c.len(), 9, "{l}");
            f.tickets.push(Ticket {
                t: n + c[0].parse::<i64>().unwrap() * M,
                site: c[1],
                device: c[2],
                category: pb::WasteCategory::from_str_name(&enum_of("WASTE_CATEGORY_", c[3]))
                    .unwrap(),
                destination: pb::DestinationType::from_str_name(&enum_of(
                    "DESTINATION_TYPE_",
                    c[4],
                ))
                .unwrap(),
                direction: pb::Direction::from_str_name(&enum_of("DIRECTION_", c[5])).unwrap(),
                net: c[6].parse().unwrap(),
                plate: c[7],
                permit: if c[8] == "-" { "" } else { c[8] },
            });
        }
        for l in STATUSES.lines().filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(c.len(), 7, "{l}");
            f.statuses.push(Status {
                t: n + c[0].parse::<i64>().unwrap() * M,
                site: c[1],
                device: c[2],
                kind: pb::DeviceKind::from_str_name(&enum_of("DEVICE_KIND_", c[3])).unwrap(),
                status: pb::StatusKind::from_str_name(&enum_of("STATUS_KIND_", c[4])).unwrap(),
                uptime_s: c[5].parse().unwrap(),
                battery_mv: c[6].parse().unwrap(),
            });
        }
        f.alerts = alerts(n);
        f.kpis = kpis(n);
        f.pipes = pipes(n);
        f
    }

    /// The line protocol of everything, made by the service's encoders.
    fn line_protocol(&self) -> String {
        let mut buf = String::new();
        let record = |site: &str,
                      device: &str,
                      kind: pb::DeviceKind,
                      seq: u64,
                      t: i64,
                      restamped: bool,
                      body: Body| pb::LogRecord {
            envelope: Some(pb::Envelope {
                site_id: site.into(),
                device_id: device.into(),
                device_kind: kind as i32,
                seq,
                recorded_at_unix_ms: if restamped { t + 3 * H } else { t },
                schema_version: 1,
                body: Some(body),
            }),
            received_at_unix_ms: t,
            time_unix_ms: t,
            clock_check: if restamped {
                pb::ClockCheck::FutureRestamped as i32
            } else {
                pb::ClockCheck::Ok as i32
            },
            from_json: false,
            alert: None,
            kpi: None,
        };
        let mut seq = 0u64;
        let put = |rec: pb::LogRecord, buf: &mut String| {
            wastewatch::sink::encode::encode_record(&rec, buf).unwrap();
        };
        for r in &self.storage {
            seq += 1;
            let body = Body::StorageReading(pb::StorageReading {
                stock_kg: r.stock_kg,
                oldest_container_age_s: r.age_s,
                temperature_deci_c: r.temp_deci,
                combustible_gas_pct_lel: r.gas,
                toxic_gas_pct_of_limit: r.toxic,
                oxygen_pct_vol: r.oxygen,
                leak_detected: r.leak,
                door_open: r.door,
                container_count: r.containers,
                oldest_medical_lot_age_s: r.lot_s,
                outside_temperature_deci_c: r.lot_s.map(|_| 280),
                battery_mv: 0,
                ..Default::default()
            });
            put(
                record(
                    r.site,
                    r.device,
                    pb::DeviceKind::Storage,
                    seq,
                    r.t,
                    r.restamped,
                    body,
                ),
                &mut buf,
            );
        }
        for r in &self.bins {
            seq += 1;
            let body = Body::BinReading(pb::BinReading {
                fill_level_pct: r.fill,
                temperature_deci_c: r.temp_deci,
                tilt_deg: 1.0,
                battery_mv: 3_600,
                fire_flag: r.fire,
                battery_low_flag: false,
            });
            put(
                record(
                    r.site,
                    r.device,
                    pb::DeviceKind::Bin,
                    seq,
                    r.t,
                    r.restamped,
                    body,
                ),
                &mut buf,
            );
        }
        for r in &self.fixes {
            seq += 1;
            let body = Body::TruckFix(pb::TruckFix {
                latitude_deg: r.lat,
                longitude_deg: r.lon,
                speed_kmh: r.speed,
                heading_deg: 90.0,
                accuracy_m: 5.0,
                loaded: r.loaded,
                cover_closed: r.cover_closed,
                body_lifted: r.body_lifted,
                ignition_on: true,
                gnss_fix: r.gnss,
                satellites: 9,
                plate: r.plate.into(),
                permit_id: r.permit.into(),
                ..Default::default()
            });
            put(
                record(
                    r.site,
                    r.device,
                    pb::DeviceKind::Truck,
                    seq,
                    r.t,
                    false,
                    body,
                ),
                &mut buf,
            );
        }
        for (i, r) in self.tickets.iter().enumerate() {
            seq += 1;
            let body = Body::WeighbridgeTicket(pb::WeighbridgeTicket {
                ticket_id: format!("T-{i}"),
                plate: r.plate.into(),
                gross_weight_kg: r.net + 14_000.0,
                tare_weight_kg: 14_000.0,
                net_weight_kg: r.net,
                category: r.category as i32,
                destination_type: r.destination as i32,
                direction: r.direction as i32,
                permit_id: r.permit.into(),
                axle_count: 3,
                ..Default::default()
            });
            put(
                record(
                    r.site,
                    r.device,
                    pb::DeviceKind::Weighbridge,
                    seq,
                    r.t,
                    false,
                    body,
                ),
                &mut buf,
            );
        }
        for r in &self.statuses {
            seq += 1;
            let body = Body::DeviceStatus(pb::DeviceStatus {
                kind: r.status as i32,
                firmware_version: "2.1.0".into(),
                battery_mv: r.battery_mv,
                signal_dbm: None,
                uptime_s: r.uptime_s,
            });
            put(
                record(r.site, r.device, r.kind, seq, r.t, false, body),
                &mut buf,
            );
        }
        for a in &self.alerts {
            wastewatch::sink::encode::encode_alert(a, &mut buf).unwrap();
        }
        for k in &self.kpis {
            wastewatch::kpi::point::encode(k, &mut buf).unwrap();
        }
        for p in &self.pipes {
            let values: Vec<(&'static str, u64)> = p.values.iter().map(|(k, v)| (*k, *v)).collect();
            wastewatch::sink::task::pipeline_point(p.instance, &values, p.t, &mut buf);
        }
        buf
    }
}

/// Alert state changes, as the alert stage records them (`firing` is derived
/// from the state by `encode_alert`, as in the service). Columns: id, rule,
/// entity, site, minutes from now, severity, state, from state, reason,
/// value, threshold, acknowledged by (`-`: empty).
const ALERTS: &str = "
    101 storage_point_over_limit st-1          site-a   -300 warn     firing       -            fired        2450 2400 -
    101 storage_point_over_limit st-1          site-a   -240 critical firing       firing       escalated    3050 3000 -
    101 storage_point_over_limit st-1          site-a   -210 critical acknowledged firing       acknowledged 3050 3000 ops-li
    102 route_deviation          tr-1/permit-1 site-a   -180 warn     firing       -            fired        120  50   -
    102 route_deviation          tr-1/permit-1 site-a   -170 warn     acknowledged firing       acknowledged 120  50   ops-wang
    102 route_deviation          tr-1/permit-1 site-a   -120 warn     resolved     acknowledged resolved     10   50   -
    102 route_deviation          tr-1/permit-1 site-a    -60 warn     firing       resolved     fired        80   50   -
    102 route_deviation          tr-1/permit-1 site-a    -40 warn     acknowledged firing       acknowledged 80   50   ops-li
    103 outside_time_window      tr-2/permit-2 site-a   -330 major    firing       -            fired        30   5    -
    103 outside_time_window      tr-2/permit-2 site-a   -290 major    resolved     firing       resolved     0    5    -
    104 bin_nearly_full          bin-2         site-a   -120 info     pending      -            opened       82   80   -
    104 bin_nearly_full          bin-2         site-a   -110 info     firing       pending      fired        84   80   -
    105 bin_fire                 bin-3         site-c    -30 critical firing       -            fired        65   60   -
    106 bin_overflowing          bin-1         site-a   -600 warn     firing       -            fired        96   95   -
    106 bin_overflowing          bin-1         site-a   -540 warn     resolved     firing       resolved     70   95   -
    106 bin_overflowing          bin-1         site-a   -480 warn     firing       resolved     fired        97   95   -
    106 bin_overflowing          bin-1         site-a   -450 warn     acknowledged firing       acknowledged 97   95   ops-zhao
    106 bin_overflowing          bin-1         site-a   -420 warn     resolved     acknowledged resolved     60   95   -
    107 device_silent            st-2          site-b -28800 warn     firing       -            fired        3600 900  -
    108 trip_not_closed          tr-3/permit-3 site-b  -2880 major    firing       -            fired        200  180  -
    108 trip_not_closed          tr-3/permit-3 site-b  -2850 major    acknowledged firing       acknowledged 200  180  ops-wang
    108 trip_not_closed          tr-3/permit-3 site-b  -1440 major    resolved     acknowledged resolved     0    180  -
    109 leak                     st-2          site-b    -20 critical pending      -            opened       1    1    -
    110 suspected_dumping        tr-1          site-a -144000 critical firing     -            fired        1    1    -
    111 route_deviation          tr-3/permit-3 site-b -11520 warn     firing       -            fired        75   50   -
    111 route_deviation          tr-3/permit-3 site-b  -8640 warn     acknowledged firing       acknowledged 75   50   ops-li
    112 overspeed                tr-3/permit-3 site-b    -15 major    firing       -            fired        72   60   -
    113 trip_not_closed          tr-1/permit-1 site-a   -420 major    firing       -            fired        190  180  -
    113 trip_not_closed          tr-1/permit-1 site-a   -360 major    resolved     firing       resolved     0    180  -
";

fn alerts(n: i64) -> Vec<pb::AlertRecord> {
    let text = |s: &str| {
        if s == "-" {
            String::new()
        } else {
            s.to_owned()
        }
    };
    ALERTS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(c.len(), 12, "{l}");
            pb::AlertRecord {
                alert_id: c[0].parse().unwrap(),
                rule: c[1].into(),
                entity: c[2].into(),
                site_id: c[3].into(),
                at_unix_ms: n + c[4].parse::<i64>().unwrap() * M,
                severity: c[5].into(),
                state: c[6].into(),
                from_state: text(c[7]),
                reason: c[8].into(),
                value: c[9].parse().unwrap(),
                threshold: c[10].parse().unwrap(),
                message: format!("{} on {}", c[1], c[2]),
                acknowledged_by: text(c[11]),
            }
        })
        .collect()
}

/// KPI points: 14 months of every KPI for the zone (the last two of the
/// construction KPI with the backfill formula), two years, day points,
/// site points, and a month whose denominator is 0 (no value).
fn kpis(n: i64) -> Vec<pb::KpiRecord> {
    let mut out = Vec::new();
    let point = |spec: &wastewatch::kpi::Spec,
                 period: &str,
                 start: i64,
                 scope: &str,
                 site: &str,
                 version: &str,
                 value: Option<f64>,
                 den: f64| {
        let num = match (value, spec.unit) {
            (Some(v), "%") => v * den / 100.0,
            (Some(v), _) => v * den,
            (None, _) => 0.0,
        };
        pb::KpiRecord {
            kpi: spec.id.as_str().into(),
            period: period.into(),
            period_start_unix_ms: start,
            scope: scope.into(),
            site_id: site.into(),
            formula_version: version.into(),
            source: spec.source.as_str().into(),
            numerator: num,
            denominator: den,
            value,
            target: Some(spec.target),
            target_op: spec.target_op.into(),
            unit: spec.unit.into(),
            numerator_unit: spec.numerator_unit.into(),
            denominator_unit: spec.denominator_unit.into(),
            note: if value.is_none() {
                "no dispatch in the period".into()
            } else {
                String::new()
            },
        }
    };
    for (j, spec) in wastewatch::kpi::CATALOGUE.iter().enumerate() {
        let j = j as i64;
        for k in 0..14i64 {
            let start = month_start(n, k);
            let v = if spec.unit == "%" {
                spec.target - 3.0 + ((j + k) % 5) as f64
            } else {
                150.0 + k as f64
            };
            let version = if j == 0 && k < 2 { "1-backfill" } else { "1" };
            let (value, den) = if spec.id.as_str() == "hazardous_closure" && k == 0 {
                (None, 0.0)
            } else {
                (Some(v), (1000 + 10 * j + k) as f64)
            };
            out.push(point(spec, "month", start, "zone", "", version, value, den));
        }
        for y in 0..2 {
            out.push(point(
                spec,
                "year",
                year_start(n, y),
                "zone",
                "",
                "1",
                Some(spec.target + 1.0 + y as f64),
                5000.0,
            ));
        }
        if matches!(
            spec.id.as_str(),
            "construction_utilisation" | "route_compliance"
        ) {
            for (s, site) in ["site-a", "site-b"].into_iter().enumerate() {
                out.push(point(
                    spec,
                    "month",
                    month_start(n, 0),
                    "site",
                    site,
                    "1",
                    Some(50.0 + 10.0 * s as f64 + j as f64),
                    800.0,
                ));
            }
            for d in 0..3 {
                let day = ((n + UTC_OFFSET).div_euclid(D) - d) * D - UTC_OFFSET;
                out.push(point(
                    spec,
                    "day",
                    day,
                    "zone",
                    "",
                    "1",
                    Some(99.0 - d as f64),
                    40.0,
                ));
            }
        }
    }
    out
}

/// `wastewatch_pipeline` points of two instances; ww-a restarts half-way.
fn pipes(n: i64) -> Vec<Pipe> {
    let mut out = Vec::new();
    let mut point = |instance: &'static str, t: i64, k: u64, restarted: bool| {
        let m = Metrics::default();
        use std::sync::atomic::Ordering::Relaxed;
        let received = if restarted { 5 * k } else { 1000 + 37 * k };
        let quarantined = k / 10;
        m.received.store(received, Relaxed);
        m.decoded.store(received - quarantined, Relaxed);
        m.quarantined[0].store(quarantined, Relaxed);
        m.acks.store(received, Relaxed);
        m.tsdb_points.store(3 * received, Relaxed);
        m.tsdb_batches.store(received / 10, Relaxed);
        m.tsdb_retryable_errors.store(k / 50, Relaxed);
        m.alert_events.store(k / 20, Relaxed);
        m.alerts_notified.store(k / 20, Relaxed);
        m.notify_delivered.store(k / 25, Relaxed);
        m.notify_failures.store(k / 60, Relaxed);
        m.notify_outbox.store(k % 5, Relaxed);
        m.mqtt_connected
            .store(u64::from(!(instance == "ww-a" && k == 149)), Relaxed);
        m.tsdb_up.store(1, Relaxed);
        let depth = (k * 13) % 500;
        let stats = wastewatch::log::LogStats {
            head: received,
            depth,
            live_bytes: depth * 200,
            max_bytes: 1 << 30,
            quarantined,
            quarantine_bytes: 4096 + k,
            segments: 1 + k / 100,
            full: false,
            storage_error: false,
            read_tail: received * 2,
            read_file: received,
        };
        let lags = vec![
            (wastewatch::log::CURSOR_TSDB.to_owned(), (k * 7) % 100),
            (wastewatch::log::CURSOR_RULES.to_owned(), (k * 3) % 50),
        ];
        let values = m.values(Some(stats), &lags).into_iter().collect();
        out.push(Pipe {
            t,
            instance,
            values,
        });
    };
    for k in 0..300u64 {
        let restarted = k >= 150;
        let kk = if restarted { k - 150 } else { k };
        point("ww-a", n - 50 * M + k as i64 * 10 * S, kk, restarted);
    }
    for k in 0..60u64 {
        point("ww-b", n - 3 * H + k as i64 * 10 * S, k, false);
    }
    out
}

/// Writes line protocol with the v1 /write API (precision ms).
fn write_lines(db: &str, lines: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("points.lp");
    std::fs::write(&file, lines).unwrap();
    let url = format!("{}/write?db={db}&precision=ms", env("WW_TEST_INFLUXDB"));
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "60",
            "-o",
            "/dev/stderr",
            "-w",
            "%{http_code}",
            "-XPOST",
            &url,
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        code,
        "204",
        "InfluxDB /write answered {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ================================================= what Grafana does first

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The datasource's minimum interval (`timeInterval` of the provisioned
/// datasource), in ms.
fn datasource_min_interval_ms() -> i64 {
    let text =
        std::fs::read_to_string(repo().join("dashboards/provisioning/datasources/wastewatch.yaml"))
            .unwrap();
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("timeInterval:"))
        .expect("timeInterval in the datasource provisioning")
        .trim();
    parse_duration_ms(v)
}

fn parse_duration_ms(v: &str) -> i64 {
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: i64 = num.parse().unwrap();
    n * match unit {
        "ms" => 1,
        "s" => S,
        "m" => M,
        "h" => H,
        "d" => D,
        "w" => 7 * D,
        other => panic!("unit {other}"),
    }
}

/// Grafana's rangeutil.roundInterval.
fn round_interval(ms: i64) -> i64 {
    let table: [(i64, i64); 28] = [
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (604_800_000, 86_400_000),
        (1_814_400_000, 604_800_000),
        (3_628_800_000, 2_592_000_000),
    ];
    table
        .iter()
        .find(|(below, _)| ms < *below)
        .map_or(31_536_000_000, |(_, v)| *v)
}

/// gtime.FormatInterval of Grafana's backend.
fn format_interval(ms: i64) -> String {
    if ms >= D {
        format!("{}d", ms / D)
    } else if ms >= H {
        format!("{}h", ms / H)
    } else if ms >= M {
        format!("{}m", ms / M)
    } else if ms >= S {
        format!("{}s", ms / S)
    } else {
        format!("{}ms", ms.max(1))
    }
}

/// Grafana's time range of a dashboard's `time.from` (`now-6h`, `now-1y` …).
fn range_of(from: &str, now: i64) -> (i64, i64) {
    let rel = from.strip_prefix("now-").expect("relative time range");
    let (num, unit) = rel.split_at(rel.len() - 1);
    let n: i64 = num.parse().unwrap();
    let start = match unit {
        "m" => now - n * M,
        "h" => now - n * H,
        "d" => now - n * D,
        "w" => now - n * 7 * D,
        "M" => calendar_back(now, n),
        "y" => calendar_back(now, 12 * n),
        u => panic!("range unit {u}"),
    };
    (start, now)
}

/// @grafana/data escapeRegex.
fn escape_regex(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        if "\\^$*+?.()|[]{}/".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// The InfluxDB datasource's influxSpecialRegexEscape.
fn influx_special_regex_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        if c == '\\' {
            o.push_str("\\\\\\\\");
        } else if "$^*{}[]'+?.()|".contains(c) {
            o.push_str("\\\\");
            o.push(c);
        } else {
            o.push(c);
        }
    }
    o
}

/// JavaScript's `isNaN(parseFloat(s))`.
fn js_not_a_number(s: &str) -> bool {
    let t = s.trim_start();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    !(t.starts_with("Infinity")
        || t.starts_with(|c: char| c.is_ascii_digit())
        || (t.starts_with('.') && t[1..].starts_with(|c: char| c.is_ascii_digit())))
}

/// A dashboard variable and its options as Grafana resolved them.
#[derive(Clone, Debug)]
struct Var {
    def: Value,
    options: Vec<String>,
}

impl Var {
    fn name(&self) -> &str {
        self.def["name"].as_str().unwrap()
    }
    fn multi_or_all(&self) -> bool {
        self.def["multi"].as_bool().unwrap_or(false)
            || self.def["includeAll"].as_bool().unwrap_or(false)
    }
}

/// A variable's value: its "All", chosen values, or the one value of a
/// repeated panel.
#[derive(Clone, Debug)]
enum Pick {
    All,
    Values(Vec<String>),
    Scoped(String),
}

/// The InfluxDB datasource's `interpolateQueryExpr` on one variable.
fn format_var(var: &Var, pick: &Pick) -> String {
    let values: Vec<String> = match pick {
        Pick::All => {
            if let Some(a) = var.def["allValue"].as_str().filter(|a| !a.is_empty()) {
                // A custom "All" value is used as it is (templateSrv).
                return a.to_owned();
            }
            var.options.clone()
        }
        Pick::Values(v) => v.clone(),
        Pick::Scoped(s) => {
            return if var.multi_or_all() {
                influx_special_regex_escape(s)
            } else if js_not_a_number(s) {
                escape_regex(s)
            } else {
                s.clone()
            };
        }
    };
    if !var.multi_or_all() {
        let s = values.first().cloned().unwrap_or_default();
        return if js_not_a_number(&s) {
            escape_regex(&s)
        } else {
            s
        };
    }
    let escaped: Vec<String> = values
        .iter()
        .map(|v| influx_special_regex_escape(v))
        .collect();
    if escaped.len() == 1 {
        escaped[0].clone()
    } else {
        escaped.join("|")
    }
}

/// Everything a query is expanded with.
struct Expand<'a> {
    vars: &'a [Var],
    picks: &'a BTreeMap<String, Pick>,
    from: i64,
    to: i64,
    interval_ms: i64,
}

impl Expand<'_> {
    /// templateSrv.replace with the datasource's formatter, then the
    /// backend's `$timeFilter`, `$interval`, `$__interval_ms`, `$__interval`.
    fn query(&self, q: &str) -> String {
        // templateSrv's `$name` / `${name}` (a name is JavaScript's \w+).
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut front = String::new();
        let mut rest = q;
        while let Some(i) = rest.find('$') {
            front.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, len) = if let Some(b) = after.strip_prefix('{') {
                match b.find('}') {
                    Some(e) if e > 0 && b[..e].chars().all(word) => (&b[..e], e + 2),
                    _ => ("", 0),
                }
            } else {
                let e = after.find(|c: char| !word(c)).unwrap_or(after.len());
                (&after[..e], e)
            };
            // The name and its braces are ASCII: byte slicing stays on
            // character boundaries.
            match self
                .vars
                .iter()
                .find(|v| !name.is_empty() && v.name() == name)
            {
                Some(v) => {
                    front.push_str(&format_var(v, self.picks.get(name).unwrap_or(&Pick::All)))
                }
                None => front.push_str(&rest[i..i + 1 + len]),
            }
            rest = &rest[i + 1 + len..];
        }
        front.push_str(rest);
        let interval = format_interval(self.interval_ms);
        front
            .replace(
                "$timeFilter",
                &format!("time >= {}ms and time <= {}ms", self.from, self.to),
            )
            .replace("$interval", &interval)
            .replace("$__interval_ms", &self.interval_ms.to_string())
            .replace("$__interval", &interval)
    }
}

/// One series of an InfluxQL answer.
#[derive(Clone, Debug, PartialEq)]
struct Series {
    name: String,
    tags: BTreeMap<String, String>,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

fn run(db: &str, q: &str) -> Result<Vec<Series>, String> {
    let v = influx_query(db, q);
    let r = &v["results"][0];
    if let Some(e) = r["error"].as_str() {
        return Err(e.to_owned());
    }
    if let Some(e) = v["error"].as_str() {
        return Err(e.to_owned());
    }
    Ok(r["series"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| Series {
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    tags: s["tags"]
                        .as_object()
                        .map(|t| {
                            t.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    columns: s["columns"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c.as_str().unwrap().to_owned())
                        .collect(),
                    rows: s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_array().unwrap().clone())
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Options of a variable, as Grafana gets them: its query's values (SHOW
/// TAG VALUES: the value column; a SELECT: the first string column), the
/// variable's regex (group 1 when it has one), duplicates dropped, sorted.
fn resolve_options(db: &str, def: &Value, expand: &Expand<'_>) -> Vec<String> {
    let mut values: Vec<String> = match def["type"].as_str().unwrap() {
        "custom" => def["query"]
            .as_str()
            .unwrap()
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect(),
        "query" => {
            let q = expand.query(def["query"].as_str().unwrap());
            let series = run(db, &q)
                .unwrap_or_else(|e| panic!("variable {} query failed: {e}\n{q}", def["name"]));
            let mut out = Vec::new();
            for s in &series {
                let col = if q
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("SHOW TAG VALUES")
                {
                    s.columns.iter().position(|c| c == "value")
                } else {
                    (0..s.columns.len()).find(|&i| {
                        s.columns[i] != "time"
                            && s.rows
                                .iter()
                                .find_map(|r| r.get(i).filter(|v| !v.is_null()))
                                .is_some_and(Value::is_string)
                    })
                };
                let col = col.expect("a column of values");
                for r in &s.rows {
                    if let Some(v) = r[col].as_str() {
                        out.push(v.to_owned());
                    }
                }
            }
            out
        }
        t => panic!("variable type {t}"),
    };
    if let Some(re) = def["regex"].as_str().filter(|r| !r.is_empty()) {
        values = js_regex_values(re, &values);
    }
    let mut seen = BTreeSet::new();
    values.retain(|v| seen.insert(v.clone()));
    if def["sort"].as_i64().unwrap_or(0) == 1 {
        values.sort();
    }
    values
}

/// A variable's regex applied as Grafana applies it in the browser: a
/// JavaScript RegExp (from "/body/flags"); values that do not match are
/// dropped, a match with a group gives the group. Run by node, so the
/// regex has JavaScript's semantics.
fn js_regex_values(re: &str, values: &[String]) -> Vec<String> {
    let script = r#"
        const [re, values] = JSON.parse(process.argv[1]);
        const m = re.match(/^\/(.*)\/([gimsuy]*)$/);
        const rx = m ? new RegExp(m[1], m[2]) : new RegExp(re);
        const out = [];
        for (const v of values) {
            const r = rx.exec(v);
            if (!r) continue;
            out.push(r.length > 1 && r[1] !== undefined ? r[1] : v);
        }
        console.log(JSON.stringify(out));
    "#;
    let out = Command::new("node")
        .args(["-e", script, &json!([re, values]).to_string()])
        .output()
        .expect("node (Node.js) runs the variable regex as Grafana's browser would: install it (scripts/test.sh needs it for the dashboard checks)");
    assert!(
        out.status.success(),
        "node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Grafana's groupBy and organize transformations on a table frame.
fn transform(panel: &Value, table: Table) -> Table {
    let mut t = table;
    for tr in panel["transformations"].as_array().into_iter().flatten() {
        match tr["id"].as_str().unwrap() {
            "groupBy" => {
                let fields = tr["options"]["fields"].as_object().unwrap();
                let keys: Vec<&String> = fields
                    .keys()
                    .filter(|k| fields[*k]["operation"] == "groupby")
                    .collect();
                let aggs: Vec<(&String, Vec<String>)> = fields
                    .iter()
                    .filter(|(_, f)| f["operation"] == "aggregate")
                    .map(|(k, f)| {
                        (
                            k,
                            f["aggregations"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|a| a.as_str().unwrap().to_owned())
                                .collect(),
                        )
                    })
                    .collect();
                let mut groups: Groups<'_> = Vec::new();
                for row in &t {
                    let key: Vec<Value> = keys
                        .iter()
                        .map(|k| row.get(*k).cloned().unwrap_or(Value::Null))
                        .collect();
                    match groups.iter_mut().find(|(g, _)| *g == key) {
                        Some((_, rows)) => rows.push(row),
                        None => groups.push((key, vec![row])),
                    }
                }
                t = groups
                    .into_iter()
                    .map(|(key, rows)| {
                        let mut out: BTreeMap<String, Value> =
                            keys.iter().map(|k| (*k).clone()).zip(key).collect();
                        for (field, reducers) in &aggs {
                            let vals: Vec<&Value> = rows
                                .iter()
                                .map(|r| r.get(*field).unwrap_or(&Value::Null))
                                .collect();
                            let nums: Vec<f64> = vals.iter().filter_map(|v| v.as_f64()).collect();
                            for r in reducers {
                                let v = match r.as_str() {
                                    "count" => json!(vals.len()),
                                    "sum" => json!(nums.iter().sum::<f64>()),
                                    "max" => json!(nums
                                        .iter()
                                        .copied()
                                        .fold(f64::NEG_INFINITY, f64::max)),
                                    "min" => {
                                        json!(nums.iter().copied().fold(f64::INFINITY, f64::min))
                                    }
                                    other => panic!("reducer {other} not emulated"),
                                };
                                out.insert(format!("{field} ({r})"), v);
                            }
                        }
                        out
                    })
                    .collect();
            }
            "organize" => {
                let rename = tr["options"]["renameByName"].as_object().unwrap();
                let exclude = tr["options"]["excludeByName"].as_object().unwrap();
                t = t
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .filter(|(k, _)| {
                                !exclude.get(k).and_then(Value::as_bool).unwrap_or(false)
                            })
                            .map(|(k, v)| {
                                (
                                    rename
                                        .get(&k)
                                        .and_then(Value::as_str)
                                        .map_or(k, str::to_owned),
                                    v,
                                )
                            })
                            .collect()
                    })
                    .collect();
            }
            other => panic!("transformation {other} not emulated"),
        }
    }
    t
}

/// Rows of a table grouped by the values of the group-by fields.
type Groups<'a> = Vec<(Vec<Value>, Vec<&'a BTreeMap<String, Value>>)>;

/// A table frame: rows of column → value (Grafana's table format: the
/// series' tags become columns).
type Table = Vec<BTreeMap<String, Value>>;

fn to_table(series: &[Series]) -> Table {
    let mut t = Vec::new();
    for s in series {
        for r in &s.rows {
            let mut row: BTreeMap<String, Value> =
                s.columns.iter().cloned().zip(r.iter().cloned()).collect();
            for (k, v) in &s.tags {
                row.insert(k.clone(), json!(v));
            }
            t.push(row);
        }
    }
    t
}

// ============================================================ expectations

/// One expected series.
fn series(name: &str, tags: &[(&str, &str)], columns: &[&str], rows: Vec<Vec<Value>>) -> Series {
    Series {
        name: name.into(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    }
}

enum Expected {
    /// The series InfluxDB must answer.
    Series(Vec<Series>),
    /// The table the panel shows after its transformations (any row order).
    Table(Table),
}

/// What the test knows when it computes an expectation.
struct Ctx<'a> {
    f: &'a Fixture,
    from: i64,
    to: i64,
    interval: i64,
    picks: &'a BTreeMap<String, Pick>,
    /// Resolved options of the dashboard's variables.
    options: &'a BTreeMap<String, Vec<String>>,
}

impl Ctx<'_> {
    fn within(&self, t: i64) -> bool {
        t >= self.from && t <= self.to
    }

    /// Does the variable's value let `value` through (`=~ /^(…)$/`)?
    fn lets(&self, var: &str, value: &str) -> bool {
        match self.picks.get(var).unwrap_or(&Pick::All) {
            // The dashboards' "All" is `.*` (or every option).
            Pick::All => true,
            Pick::Values(v) => v.iter().any(|x| x == value),
            Pick::Scoped(s) => s == value,
        }
    }

    /// Bucket start of `t` for GROUP BY time(`every`).
    fn bucket(t: i64, every: i64) -> i64 {
        t.div_euclid(every) * every
    }

    /// Buckets of GROUP BY time(`every`) over the range (for fill(0)).
    fn buckets(&self, every: i64) -> Vec<i64> {
        let mut b = Vec::new();
        let mut t = Self::bucket(self.from, every);
        while t <= self.to {
            b.push(t);
            t += every;
        }
        b
    }
}

fn f(x: f64) -> Value {
    json!(x)
}

/// `last()` of each group: the newest item by time.
fn newest<T: Clone, K: Ord>(
    items: impl Iterator<Item = T>,
    key: impl Fn(&T) -> K,
    time: impl Fn(&T) -> i64,
) -> BTreeMap<K, T> {
    let mut out: BTreeMap<K, T> = BTreeMap::new();
    for it in items {
        let k = key(&it);
        match out.get(&k) {
            Some(old) if time(old) >= time(&it) => {}
            _ => {
                out.insert(k, it);
            }
        }
    }
    out
}

/// Time-bucketed aggregate of (time, value) per bucket, in time order.
fn bucketed(points: &[(i64, f64)], every: i64, agg: &str) -> Vec<(i64, f64)> {
    let mut by: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for (t, v) in points {
        by.entry(Ctx::bucket(*t, every)).or_default().push((*t, *v));
    }
    by.into_iter()
        .map(|(b, mut vs)| {
            vs.sort_by_key(|(t, _)| *t);
            let v = match agg {
                "last" => vs.last().unwrap().1,
                "max" => vs.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max),
                "min" => vs.iter().map(|x| x.1).fold(f64::INFINITY, f64::min),
                "count" => vs.len() as f64,
                "sum" => vs.iter().map(|x| x.1).sum(),
                other => panic!("{other}"),
            };
            (b, v)
        })
        .collect()
}

fn rows2(points: Vec<(i64, f64)>) -> Vec<Vec<Value>> {
    points
        .into_iter()
        .map(|(t, v)| vec![json!(t), f(v)])
        .collect()
}

/// Alert ids' latest change within 90 days, kept when firing (active).
fn active_alerts<'a>(
    c: &Ctx<'a>,
    filter: impl Fn(&pb::AlertRecord) -> bool,
) -> Vec<&'a pb::AlertRecord> {
    let now = now_ms();
    let recent =
        c.f.alerts
            .iter()
            .filter(|a| a.at_unix_ms > now - 90 * D && filter(a));
    let last = newest(recent, |a| a.alert_id, |a| a.at_unix_ms);
    // The outer query keeps the inner series' order: by alert id (as text).
    let mut v: Vec<&pb::AlertRecord> = last
        .into_values()
        .filter(|a| matches!(a.state.as_str(), "firing" | "acknowledged"))
        .collect();
    v.sort_by_key(|a| a.alert_id.to_string());
    v
}

fn alert_col(a: &pb::AlertRecord, col: &str) -> Value {
    match col {
        "severity" => json!(a.severity),
        "rule" => json!(a.rule),
        "site" => json!(a.site_id),
        "entity" => json!(a.entity),
        "state" => json!(a.state),
        "message" => json!(a.message),
        "value" => f(a.value),
        "threshold" => f(a.threshold),
        other => panic!("{other}"),
    }
}

fn active_table(
    c: &Ctx<'_>,
    cols: &[&str],
    filter: impl Fn(&pb::AlertRecord) -> bool,
) -> Vec<Series> {
    let rows: Vec<Vec<Value>> = active_alerts(c, filter)
        .into_iter()
        .map(|a| {
            std::iter::once(json!(a.at_unix_ms))
                .chain(cols.iter().map(|col| alert_col(a, col)))
                .collect()
        })
        .collect();
    if rows.is_empty() {
        return vec![];
    }
    let mut columns = vec!["time"];
    columns.extend_from_slice(cols);
    vec![series("alert", &[], &columns, rows)]
}

fn count_series(name: &str, n: usize, time: i64) -> Vec<Series> {
    if n == 0 {
        vec![]
    } else {
        vec![series(
            name,
            &[],
            &["time", "count"],
            vec![vec![json!(time), json!(n)]],
        )]
    }
}

/// Per-second non-negative derivative / difference of the last value per
/// bucket, per instance.
fn pipeline_series(c: &Ctx<'_>, field: &str, how: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for inst in ["ww-a", "ww-b"] {
        if !c.lets("instance", inst) {
            continue;
        }
        let pts: Vec<(i64, f64)> =
            c.f.pipes
                .iter()
                .filter(|p| p.instance == inst && c.within(p.t))
                .map(|p| (p.t, p.values[field] as f64))
                .collect();
        if pts.is_empty() {
            continue;
        }
        let b = bucketed(&pts, c.interval, "last");
        let (col, rows): (&str, Vec<(i64, f64)>) = match how {
            "last" => ("last", b),
            "rate" => (
                "non_negative_derivative",
                b.windows(2)
                    .map(|w| {
                        (
                            w[1].0,
                            (w[1].1 - w[0].1) / ((w[1].0 - w[0].0) as f64 / 1000.0),
                        )
                    })
                    .filter(|(_, v)| *v >= 0.0)
                    .collect(),
            ),
            "diff" => (
                "non_negative_difference",
                b.windows(2)
                    .map(|w| (w[1].0, w[1].1 - w[0].1))
                    .filter(|(_, v)| *v >= 0.0)
                    .collect(),
            ),
            other => panic!("{other}"),
        };
        if !rows.is_empty() {
            out.push(series(
                "wastewatch_pipeline",
                &[("instance", inst)],
                &["time", col],
                rows2(rows),
            ));
        }
    }
    out
}

fn expected(uid: &str, title: &str, ref_id: &str, c: &Ctx<'_>) -> Option<Expected> {
    let fx = c.f;
    use Expected::{Series as Ser, Table as Tab};
    Some(match (uid, title, ref_id) {
        // ------------------------------------------------------------- zone
        ("wastewatch-zone", "Zone map: trucks, permit routes, corridors and sites", r) => {
            let alerting: BTreeSet<String> = c.options["alerting_trucks"].iter().cloned().collect();
            let last = newest(
                fx.fixes.iter().filter(|x| {
                    c.within(x.t)
                        && x.gnss
                        && c.lets("site", x.site)
                        && (r == "A" || alerting.contains(x.device))
                }),
                |x| x.device,
                |x| x.t,
            );
            Ser(last
                .values()
                .map(|x| {
                    series(
                        "truck_fix",
                        &[("device", x.device)],
                        &[
                            "time",
                            "lat",
                            "lon",
                            "loaded",
                            "speed_kmh",
                            "plate",
                            "permit_id",
                        ],
                        vec![vec![
                            json!(x.t),
                            f(x.lat),
                            f(x.lon),
                            json!(x.loaded),
                            f(x.speed),
                            json!(x.plate),
                            json!(x.permit),
                        ]],
                    )
                })
                .collect())
        }
        ("wastewatch-zone", "Alerts firing now", "A") => Ser(active_table(
            c,
            &[
                "severity",
                "rule",
                "site",
                "entity",
                "state",
                "message",
                "value",
                "threshold",
            ],
            |a| c.lets("site", &a.site_id),
        )),
        ("wastewatch-zone", "Alerts firing now by severity", r) => {
            let sev = ["critical", "major", "warn", "info"][(r.as_bytes()[0] - b'A') as usize];
            Ser(count_series(
                "alert",
                active_alerts(c, |a| c.lets("site", &a.site_id))
                    .into_iter()
                    .filter(|a| a.severity == sev)
                    .count(),
                0,
            ))
        }
        ("wastewatch-zone", "Trucks reporting and loaded", r) => {
            let last = newest(
                fx.fixes
                    .iter()
                    .filter(|x| c.within(x.t) && x.gnss && c.lets("site", x.site)),
                |x| x.device,
                |x| x.t,
            );
            Ser(count_series(
                "truck_fix",
                last.values().filter(|x| r == "A" || x.loaded).count(),
                0,
            ))
        }
        // -------------------------------------------------------- hazardous
        ("wastewatch-hazardous", t, "A") => {
            let rows = fx
                .storage
                .iter()
                .filter(|r| c.within(r.t) && c.lets("site", r.site) && c.lets("storage", r.device));
            let last = newest(rows.clone(), |r| (r.site, r.device), |r| r.t);
            let per_device = |col: &str, v: &dyn Fn(&Storage) -> Option<f64>| -> Vec<Series> {
                newest(
                    rows.clone().filter(|r| v(r).is_some()),
                    |r| r.device,
                    |r| r.t,
                )
                .values()
                .map(|r| {
                    series(
                        "storage_reading",
                        &[("device", r.device)],
                        &["time", col],
                        vec![vec![json!(r.t), f(v(r).unwrap())]],
                    )
                })
                .collect()
            };
            let over_time = |agg: &str, v: &dyn Fn(&Storage) -> Option<f64>| -> Vec<Series> {
                let mut devices: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
                for r in rows.clone() {
                    if let Some(x) = v(r) {
                        devices.entry(r.device).or_default().push((r.t, x));
                    }
                }
                devices
                    .into_iter()
                    .map(|(d, pts)| {
                        series(
                            "storage_reading",
                            &[("device", d)],
                            &["time", agg],
                            rows2(bucketed(&pts, c.interval, agg)),
                        )
                    })
                    .collect()
            };
            match t {
                "Stock as % of the 3 t limit" => {
                    Ser(per_device("pct_of_limit", &|r| Some(r.stock_kg / 30.0)))
                }
                "Oldest container age vs 365 days" => {
                    Ser(per_device("age_d", &|r| Some(r.age_s as f64 / 86_400.0)))
                }
                "Oldest medical-waste lot vs 48 h" => Ser(per_device("lot_age_h", &|r| {
                    r.lot_s.map(|s| s as f64 / 3600.0)
                })),
                "Stock by storage point" => Ser(over_time("last", &|r| Some(r.stock_kg))),
                "Combustible gas" => Ser(over_time("max", &|r| r.gas)),
                "Toxic gas" => Ser(over_time("max", &|r| r.toxic)),
                "Oxygen" => Ser(over_time("min", &|r| r.oxygen)),
                "Store temperature" => {
                    Ser(over_time("max", &|r| Some(f64::from(r.temp_deci) / 10.0)))
                }
                "Storage points now" => Ser(last
                    .values()
                    .map(|r| {
                        series(
                            "storage_reading",
                            &[("site", r.site), ("device", r.device)],
                            &[
                                "time",
                                "stock_kg",
                                "oldest_container_age_d",
                                "container_count",
                                "temperature_c",
                                "leak",
                                "door_open",
                            ],
                            vec![vec![
                                json!(r.t),
                                f(r.stock_kg),
                                f(r.age_s as f64 / 86_400.0),
                                json!(r.containers),
                                f(f64::from(r.temp_deci) / 10.0),
                                json!(r.leak),
                                json!(r.door),
                            ]],
                        )
                    })
                    .collect()),
                _ => return None,
            }
        }
        // -------------------------------------------------------- transport
        ("wastewatch-transport", "Trips weighed under a permit", r) => {
            let dir = if r == "A" {
                pb::Direction::Out
            } else {
                pb::Direction::In
            };
            let n = fx
                .tickets
                .iter()
                .filter(|t| {
                    c.within(t.t)
                        && t.direction == dir
                        && !t.permit.is_empty()
                        && category_tag(t.category).starts_with("construction_")
                })
                .count();
            Ser(count_series("weighbridge_ticket", n, c.from))
        }
        ("wastewatch-transport", "Trips per permit and truck", "A") => {
            let mut groups: BTreeMap<(String, String, String), (usize, f64)> = BTreeMap::new();
            for t in fx.tickets.iter().filter(|t| {
                c.within(t.t)
                    && !t.permit.is_empty()
                    && category_tag(t.category).starts_with("construction_")
            }) {
                let dir = if t.direction == pb::Direction::Out {
                    "out"
                } else {
                    "in"
                };
                let g = groups
                    .entry((t.permit.into(), t.plate.into(), dir.into()))
                    .or_default();
                g.0 += 1;
                g.1 += t.net;
            }
            Tab(groups
                .into_iter()
                .map(|((permit, plate, dir), (n, kg))| {
                    BTreeMap::from([
                        ("Permit · 许可证".to_owned(), json!(permit)),
                        ("Plate · 车牌".to_owned(), json!(plate)),
                        ("Direction · 方向".to_owned(), json!(dir)),
                        ("Tickets · 磅单".to_owned(), json!(n)),
                        ("Net kg · 净重（千克）".to_owned(), f(kg)),
                    ])
                })
                .collect())
        }
        (
            "wastewatch-transport",
            t @ ("Corridor deviations per truck and permit"
            | "Out-of-window driving per truck and permit"
            | "Trips not closed per truck and permit"),
            "A",
        ) => {
            let rule = match t {
                "Corridor deviations per truck and permit" => "route_deviation",
                "Out-of-window driving per truck and permit" => "outside_time_window",
                _ => "trip_not_closed",
            };
            let mut groups: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
            for a in fx.alerts.iter().filter(|a| {
                c.within(a.at_unix_ms)
                    && a.rule == rule
                    && a.reason == "fired"
                    && c.lets("truck", a.entity.split('/').next().unwrap())
            }) {
                let g = groups.entry(&a.entity).or_insert((0, f64::NEG_INFINITY));
                g.0 += 1;
                g.1 = g.1.max(a.value);
            }
            Tab(groups
                .into_iter()
                .map(|(e, (n, max))| {
                    BTreeMap::from([
                        ("Truck / permit · 车辆/许可证".to_owned(), json!(e)),
                        ("Times · 次数".to_owned(), json!(n)),
                        ("Largest value at raise · 触发时最大值".to_owned(), f(max)),
                    ])
                })
                .collect())
        }
        ("wastewatch-transport", "Transport alerts raised per hour", "A") => {
            let rules = [
                "route_deviation",
                "outside_time_window",
                "trip_not_closed",
                "suspected_dumping",
                "body_lifted_outside_site",
                "cover_open",
                "overspeed",
            ];
            let mut by_rule: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
            for a in fx.alerts.iter().filter(|a| {
                c.within(a.at_unix_ms)
                    && a.reason == "fired"
                    && rules.contains(&a.rule.as_str())
                    && c.lets("truck", a.entity.split('/').next().unwrap())
            }) {
                by_rule
                    .entry(&a.rule)
                    .or_default()
                    .push((a.at_unix_ms, 1.0));
            }
            Ser(by_rule
                .into_iter()
                .map(|(rule, pts)| {
                    let counts = bucketed(&pts, H, "count");
                    let rows = c
                        .buckets(H)
                        .into_iter()
                        .map(|b| (b, counts.iter().find(|(t, _)| *t == b).map_or(0.0, |x| x.1)))
                        .collect();
                    series("alert", &[("rule", rule)], &["time", "count"], rows2(rows))
                })
                .collect())
        }
        ("wastewatch-transport", "Trucks now", "A") => {
            let last = newest(
                fx.fixes
                    .iter()
                    .filter(|x| c.within(x.t) && c.lets("truck", x.device)),
                |x| (x.site, x.device),
                |x| x.t,
            );
            Ser(last
                .values()
                .map(|x| {
                    series(
                        "truck_fix",
                        &[("site", x.site), ("device", x.device)],
                        &[
                            "time",
                            "speed_kmh",
                            "loaded",
                            "cover_closed",
                            "body_lifted",
                            "gnss_fix",
                            "plate",
                            "permit_id",
                            "lat",
                            "lon",
                        ],
                        vec![vec![
                            json!(x.t),
                            f(x.speed),
                            json!(x.loaded),
                            json!(x.cover_closed),
                            json!(x.body_lifted),
                            json!(x.gnss),
                            json!(x.plate),
                            json!(x.permit),
                            f(x.lat),
                            f(x.lon),
                        ]],
                    )
                })
                .collect())
        }
        // ------------------------------------------------------------- bins
        ("wastewatch-bins", t, r) => {
            let rows = fx
                .bins
                .iter()
                .filter(|b| c.within(b.t) && c.lets("site", b.site));
            let bin_rules = |a: &pb::AlertRecord, rules: &[&str]| {
                rules.contains(&a.rule.as_str()) && c.lets("site", &a.site_id)
            };
            let collect = ["bin_nearly_full", "bin_overflowing"];
            let over_time = |agg: &str, v: &dyn Fn(&Bin) -> f64| -> Vec<Series> {
                let mut devices: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
                for b in rows.clone() {
                    devices.entry(b.device).or_default().push((b.t, v(b)));
                }
                devices
                    .into_iter()
                    .map(|(d, pts)| {
                        series(
                            "bin_reading",
                            &[("device", d)],
                            &["time", agg],
                            rows2(bucketed(&pts, c.interval, agg)),
                        )
                    })
                    .collect()
            };
            match (t, r) {
                ("Fill level by bin", "A") => Ser(newest(rows.clone(), |b| b.device, |b| b.t)
                    .values()
                    .map(|b| {
                        series(
                            "bin_reading",
                            &[("device", b.device)],
                            &["time", "fill_pct"],
                            vec![vec![json!(b.t), f(b.fill)]],
                        )
                    })
                    .collect()),
                ("Bins needing collection", "A") => Ser(active_table(
                    c,
                    &["entity", "rule", "severity", "site", "value"],
                    |a| bin_rules(a, &collect),
                )),
                ("Bin fires now", "A") => Ser(active_table(
                    c,
                    &["entity", "rule", "severity", "site", "value"],
                    |a| bin_rules(a, &["bin_fire"]),
                )),
                ("Bins needing collection and bins on fire", r) => {
                    let rules: &[&str] = if r == "A" { &collect } else { &["bin_fire"] };
                    Ser(count_series(
                        "alert",
                        active_alerts(c, |a| bin_rules(a, rules)).len(),
                        0,
                    ))
                }
                ("Fire flags reported", "A") => {
                    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
                    for b in rows.clone().filter(|b| b.fire) {
                        *n.entry(b.device).or_default() += 1;
                    }
                    Ser(n
                        .into_iter()
                        .map(|(d, k)| {
                            series(
                                "bin_reading",
                                &[("device", d)],
                                &["time", "fire_flags"],
                                vec![vec![json!(c.from), json!(k)]],
                            )
                        })
                        .collect())
                }
                ("Bin temperature", "A") => {
                    Ser(over_time("max", &|b| f64::from(b.temp_deci) / 10.0))
                }
                ("Fill level over time", "A") => Ser(over_time("last", &|b| b.fill)),
                _ => return None,
            }
        }
        // ----------------------------------------------------------- alerts
        ("wastewatch-alerts", t, r) => {
            let fa = |a: &pb::AlertRecord| c.lets("site", &a.site_id) && c.lets("rule", &a.rule);
            let sel = |a: &pb::AlertRecord| fa(a) && c.lets("severity", &a.severity);
            let changes = |a: &pb::AlertRecord| {
                c.within(a.at_unix_ms)
                    && matches!(a.reason.as_str(), "fired" | "acknowledged" | "resolved")
                    && sel(a)
            };
            // Time to acknowledge: per alert id, fired/acknowledged points in
            // the range in time order; an acknowledgement right after a
            // firing ends a wait.
            let waits = || -> Vec<(&pb::AlertRecord, i64)> {
                let mut by_id: BTreeMap<u64, Vec<&pb::AlertRecord>> = BTreeMap::new();
                for a in fx.alerts.iter().filter(|a| {
                    c.within(a.at_unix_ms)
                        && matches!(a.reason.as_str(), "fired" | "acknowledged")
                        && fa(a)
                }) {
                    by_id.entry(a.alert_id).or_default().push(a);
                }
                let mut out = Vec::new();
                for (_, mut evs) in by_id {
                    evs.sort_by_key(|a| a.at_unix_ms);
                    for w in evs.windows(2) {
                        if w[0].reason == "fired" && w[1].reason == "acknowledged" {
                            out.push((w[1], (w[1].at_unix_ms - w[0].at_unix_ms) / 1000));
                        }
                    }
                }
                out
            };
            match (t, r) {
                ("Fired, acknowledged, resolved", r) => {
                    let reason =
                        ["fired", "acknowledged", "resolved"][(r.as_bytes()[0] - b'A') as usize];
                    Ser(count_series(
                        "alert",
                        fx.alerts
                            .iter()
                            .filter(|a| c.within(a.at_unix_ms) && a.reason == reason && sel(a))
                            .count(),
                        c.from,
                    ))
                }
                ("By site, rule and severity", "A") => {
                    let mut n: BTreeMap<(&str, &str, &str, &str), usize> = BTreeMap::new();
                    for a in fx.alerts.iter().filter(|a| changes(a)) {
                        *n.entry((&a.site_id, &a.rule, &a.severity, &a.state))
                            .or_default() += 1;
                    }
                    Ser(n
                        .into_iter()
                        .map(|((site, rule, sev, state), k)| {
                            series(
                                "alert",
                                &[
                                    ("site", site),
                                    ("rule", rule),
                                    ("severity", sev),
                                    ("state", state),
                                ],
                                &["time", "changes"],
                                vec![vec![json!(c.from), json!(k)]],
                            )
                        })
                        .collect())
                }
                ("Alert state changes", "A") => {
                    let mut by: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
                    for a in fx.alerts.iter().filter(|a| changes(a)) {
                        by.entry(&a.state).or_default().push((a.at_unix_ms, 1.0));
                    }
                    Ser(by
                        .into_iter()
                        .map(|(s, pts)| {
                            series(
                                "alert",
                                &[("state", s)],
                                &["time", "count"],
                                rows2(bucketed(&pts, c.interval, "count")),
                            )
                        })
                        .collect())
                }
                ("Active alerts", "A") => Ser(active_table(
                    c,
                    &["state", "severity", "rule", "site", "entity", "message"],
                    sel,
                )),
                ("Acknowledgements", "A") => {
                    let rows: Vec<Vec<Value>> = fx
                        .alerts
                        .iter()
                        .filter(|a| c.within(a.at_unix_ms) && a.reason == "acknowledged" && sel(a))
                        .map(|a| {
                            vec![
                                json!(a.at_unix_ms),
                                json!(a.rule),
                                json!(a.severity),
                                json!(a.site_id),
                                json!(a.entity),
                                json!(a.acknowledged_by),
                                json!(a.message),
                            ]
                        })
                        .collect();
                    let mut rows = rows;
                    rows.sort_by_key(|r| r[0].as_i64());
                    Ser(if rows.is_empty() {
                        vec![]
                    } else {
                        vec![series(
                            "alert",
                            &[],
                            &[
                                "time",
                                "rule",
                                "severity",
                                "site",
                                "entity",
                                "acknowledged_by",
                                "message",
                            ],
                            rows,
                        )]
                    })
                }
                ("Time to acknowledge per alert", "A") => {
                    let mut by: BTreeMap<(String, String, String), Vec<Vec<Value>>> =
                        BTreeMap::new();
                    for (a, w) in waits() {
                        by.entry((a.alert_id.to_string(), a.rule.clone(), a.site_id.clone()))
                            .or_default()
                            .push(vec![json!(a.at_unix_ms), json!(w)]);
                    }
                    Ser(by
                        .into_iter()
                        .map(|((id, rule, site), rows)| {
                            series(
                                "alert",
                                &[("id", &id), ("rule", &rule), ("site", &site)],
                                &["time", "wait_s"],
                                rows,
                            )
                        })
                        .collect())
                }
                ("Time to acknowledge by rule", "A") => {
                    let mut by: BTreeMap<String, Vec<i64>> = BTreeMap::new();
                    for (a, w) in waits() {
                        by.entry(a.rule.clone()).or_default().push(w);
                    }
                    Ser(by
                        .into_iter()
                        .map(|(rule, ws)| {
                            let mean = ws.iter().sum::<i64>() as f64 / ws.len() as f64;
                            series(
                                "alert",
                                &[("rule", &rule)],
                                &["time", "mean_s", "max_s", "acknowledged"],
                                vec![vec![
                                    json!(0),
                                    f(mean),
                                    json!(ws.iter().max().unwrap()),
                                    json!(ws.len()),
                                ]],
                            )
                        })
                        .collect())
                }
                _ => return None,
            }
        }
        // ------------------------------------------------------------- KPIs
        ("wastewatch-kpis", t, "A") => {
            let period = match c.picks.get("period") {
                Some(Pick::Values(v)) => v[0].clone(),
                _ => "month".to_owned(),
            };
            let zone = |k: &&pb::KpiRecord| {
                c.within(k.period_start_unix_ms) && k.scope == "zone" && k.period == period
            };
            let val = |v: Option<f64>| v.map_or(Value::Null, f);
            if let Some(kpi) = t.strip_prefix("Monthly trend: ") {
                assert!(
                    !kpi.contains('$'),
                    "the repeated panel's title names its KPI: {t}"
                );
                let mut rows: Vec<(i64, Vec<Value>)> = fx
                    .kpis
                    .iter()
                    .filter(|k| {
                        c.within(k.period_start_unix_ms)
                            && k.kpi == kpi
                            && k.period == "month"
                            && k.scope == "zone"
                    })
                    .map(|k| {
                        (
                            k.period_start_unix_ms,
                            vec![json!(k.period_start_unix_ms), val(k.value), val(k.target)],
                        )
                    })
                    .collect();
                rows.sort_by_key(|r| r.0);
                return Some(Ser(if rows.is_empty() {
                    vec![]
                } else {
                    vec![series(
                        "kpi",
                        &[],
                        &["time", "value", "target"],
                        rows.into_iter().map(|r| r.1).collect(),
                    )]
                }));
            }
            match t {
                "Every KPI against its target" => {
                    let last = newest(
                        fx.kpis.iter().filter(zone),
                        |k| (k.kpi.clone(), k.formula_version.clone(), k.source.clone()),
                        |k| k.period_start_unix_ms,
                    );
                    Ser(last
                        .iter()
                        .map(|((kpi, v, s), k)| {
                            let met = match (k.value, k.target) {
                                (Some(v), Some(t)) => {
                                    json!(if k.target_op == "<=" { v <= t } else { v >= t })
                                }
                                _ => Value::Null,
                            };
                            series(
                                "kpi",
                                &[("kpi", kpi), ("formula_version", v), ("source", s)],
                                &[
                                    "time",
                                    "denominator",
                                    "numerator",
                                    "value",
                                    "target",
                                    "target_op",
                                    "met",
                                    "unit",
                                    "numerator_unit",
                                    "denominator_unit",
                                    "note",
                                ],
                                vec![vec![
                                    json!(k.period_start_unix_ms),
                                    f(k.denominator),
                                    f(k.numerator),
                                    val(k.value),
                                    val(k.target),
                                    json!(k.target_op),
                                    met,
                                    json!(k.unit),
                                    json!(k.numerator_unit),
                                    json!(k.denominator_unit),
                                    json!(k.note),
                                ]],
                            )
                        })
                        .collect())
                }
                "KPIs per site" => {
                    let last = newest(
                        fx.kpis.iter().filter(|k| {
                            c.within(k.period_start_unix_ms)
                                && k.scope == "site"
                                && k.period == period
                                && c.lets("site", &k.site_id)
                        }),
                        |k| (k.kpi.clone(), k.site_id.clone()),
                        |k| k.period_start_unix_ms,
                    );
                    Ser(last
                        .iter()
                        .map(|((kpi, site), k)| {
                            let met = match (k.value, k.target) {
                                (Some(v), Some(t)) => {
                                    json!(if k.target_op == "<=" { v <= t } else { v >= t })
                                }
                                _ => Value::Null,
                            };
                            series(
                                "kpi",
                                &[("kpi", kpi), ("site", site)],
                                &["time", "denominator", "numerator", "value", "target", "met"],
                                vec![vec![
                                    json!(k.period_start_unix_ms),
                                    f(k.denominator),
                                    f(k.numerator),
                                    val(k.value),
                                    val(k.target),
                                    met,
                                ]],
                            )
                        })
                        .collect())
                }
                gauge => {
                    let spec = wastewatch::kpi::CATALOGUE
                        .iter()
                        .find(|s| gauge_title_matches(gauge, s))?;
                    let last = newest(
                        fx.kpis
                            .iter()
                            .filter(zone)
                            .filter(|k| k.kpi == spec.id.as_str()),
                        |_| (),
                        |k| k.period_start_unix_ms,
                    );
                    Ser(last
                        .values()
                        .map(|k| {
                            series(
                                "kpi",
                                &[],
                                &["time", "denominator", "value", "target"],
                                vec![vec![
                                    json!(k.period_start_unix_ms),
                                    f(k.denominator),
                                    val(k.value),
                                    val(k.target),
                                ]],
                            )
                        })
                        .collect())
                }
            }
        }
        // --------------------------------------------------------- pipeline
        ("wastewatch-pipeline", t, r) => {
            let i = (r.as_bytes()[0] - b'A') as usize;
            let (field, how) = match t {
                "Ingest rate" => (
                    [
                        "ingest_received_total",
                        "ingest_decoded_total",
                        "ingest_quarantined_total",
                    ][i],
                    "rate",
                ),
                "Durable log depth" => ("log_depth_records", "last"),
                "Durable log bytes" => (
                    ["log_bytes", "log_max_bytes", "quarantine_bytes"][i],
                    "last",
                ),
                "TSDB lag and rules lag" => {
                    (["log_tsdb_lag_records", "log_rules_lag_records"][i], "last")
                }
                "TSDB writes" => (
                    ["tsdb_points_total", "tsdb_retryable_errors_total"][i],
                    ["rate", "diff"][i],
                ),
                "Notifier outbox" => ("notify_outbox", "last"),
                "Notifier deliveries and failures" => (
                    [
                        "notify_delivered_total",
                        "notify_failures_total",
                        "notify_dropped_total",
                    ][i],
                    "diff",
                ),
                "Alert events" => (["alert_events_total", "notify_queued_total"][i], "diff"),
                "Quarantine" => ("quarantine_records", "last"),
                "Connections and stalls now" => {
                    let field = ["mqtt_connected", "tsdb_up", "log_full", "log_storage_error"][i];
                    let last = newest(
                        fx.pipes
                            .iter()
                            .filter(|p| c.within(p.t) && c.lets("instance", p.instance)),
                        |p| p.instance,
                        |p| p.t,
                    );
                    return Some(Ser(last
                        .values()
                        .map(|p| {
                            series(
                                "wastewatch_pipeline",
                                &[("instance", p.instance)],
                                &["time", "last"],
                                vec![vec![json!(p.t), json!(p.values[field])]],
                            )
                        })
                        .collect()));
                }
                _ => return None,
            };
            Ser(pipeline_series(c, field, how))
        }
        // ------------------------------------------------------- operations
        ("wastewatch-operations", t, "A") => {
            let tickets_in = fx.tickets.iter().filter(|t| {
                c.within(t.t) && t.direction == pb::Direction::In && c.lets("site", t.site)
            });
            match t {
                "Net tonnes weighed in per hour by category" => {
                    let mut by: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
                    for t in tickets_in {
                        by.entry(category_tag(t.category))
                            .or_default()
                            .push((t.t, t.net));
                    }
                    Ser(by
                        .into_iter()
                        .map(|(cat, pts)| {
                            let sums = bucketed(&pts, H, "sum");
                            let rows = c
                                .buckets(H)
                                .into_iter()
                                .map(|b| {
                                    (
                                        b,
                                        sums.iter().find(|(t, _)| *t == b).map_or(0.0, |x| x.1)
                                            / 1000.0,
                                    )
                                })
                                .collect();
                            series(
                                "weighbridge_ticket",
                                &[("category", &cat)],
                                &["time", "sum"],
                                rows2(rows),
                            )
                        })
                        .collect())
                }
                "Net tonnes in by category and destination" => {
                    let mut by: BTreeMap<(String, String), (f64, usize)> = BTreeMap::new();
                    for t in tickets_in {
                        let e = by
                            .entry((category_tag(t.category), destination_tag(t.destination)))
                            .or_default();
                        e.0 += t.net;
                        e.1 += 1;
                    }
                    Ser(by
                        .into_iter()
                        .map(|((cat, dest), (kg, n))| {
                            series(
                                "weighbridge_ticket",
                                &[("category", &cat), ("destination_type", &dest)],
                                &["time", "net_t", "tickets"],
                                vec![vec![json!(c.from), f(kg / 1000.0), json!(n)]],
                            )
                        })
                        .collect())
                }
                "Devices: last status message" => {
                    let last = newest(
                        fx.statuses
                            .iter()
                            .filter(|s| c.within(s.t) && c.lets("site", s.site)),
                        |s| (s.site, s.device),
                        |s| s.t,
                    );
                    Ser(last
                        .values()
                        .map(|s| {
                            let kind = match s.kind {
                                pb::DeviceKind::Bin => "bin",
                                pb::DeviceKind::Storage => "storage",
                                pb::DeviceKind::Truck => "truck",
                                _ => "weighbridge",
                            };
                            series(
                                "device_status",
                                &[("site", s.site), ("device", s.device)],
                                &[
                                    "time",
                                    "uptime_s",
                                    "status",
                                    "device_kind",
                                    "firmware",
                                    "battery_v",
                                ],
                                vec![vec![
                                    json!(s.t),
                                    json!(s.uptime_s),
                                    json!(status_tag(s.status)),
                                    json!(kind),
                                    json!("2.1.0"),
                                    f(f64::from(s.battery_mv) / 1000.0),
                                ]],
                            )
                        })
                        .collect())
                }
                "Device clocks re-stamped" => {
                    let mut out = Vec::new();
                    let bins: Vec<(i64, f64)> = fx
                        .bins
                        .iter()
                        .filter(|b| b.restamped && c.within(b.t) && c.lets("site", b.site))
                        .map(|b| (b.t, 1.0))
                        .collect();
                    let storage: Vec<(i64, f64)> = fx
                        .storage
                        .iter()
                        .filter(|s| s.restamped && c.within(s.t) && c.lets("site", s.site))
                        .map(|s| (s.t, 1.0))
                        .collect();
                    for (name, pts) in [("bin_reading", bins), ("storage_reading", storage)] {
                        if !pts.is_empty() {
                            out.push(series(
                                name,
                                &[],
                                &["time", "count"],
                                rows2(bucketed(&pts, H, "count")),
                            ));
                        }
                    }
                    Ser(out)
                }
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// A KPI gauge's English title is its catalogue name, without what the
/// catalogue adds in brackets.
fn gauge_title_matches(title: &str, spec: &wastewatch::kpi::Spec) -> bool {
    spec.name.split(" (").next().unwrap() == title
        || (spec.id.as_str() == "hazardous_spot_check_pass"
            && title == "Hazardous-waste management spot checks passed")
}

// ================================================================== checks

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        _ => a == b,
    }
}

fn same_rows(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)))
}

fn compare_series(got: &[Series], want: &[Series]) -> Result<(), String> {
    let key = |s: &Series| (s.name.clone(), s.tags.clone());
    let mut g: Vec<&Series> = got.iter().collect();
    let mut w: Vec<&Series> = want.iter().collect();
    g.sort_by_key(|s| key(s));
    w.sort_by_key(|s| key(s));
    if g.len() != w.len() {
        return Err(format!(
            "{} series, expected {}:\n  got  {:?}\n  want {:?}",
            g.len(),
            w.len(),
            g.iter().map(|s| key(s)).collect::<Vec<_>>(),
            w.iter().map(|s| key(s)).collect::<Vec<_>>()
        ));
    }
    for (a, b) in g.iter().zip(&w) {
        if key(a) != key(b) || a.columns != b.columns || !same_rows(&a.rows, &b.rows) {
            return Err(format!("series differs:\n  got  {a:?}\n  want {b:?}"));
        }
    }
    Ok(())
}

fn compare_tables(got: &Table, want: &Table) -> Result<(), String> {
    let norm = |t: &Table| {
        let mut v: Vec<String> = t
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        v.sort();
        v
    };
    let (g, w) = (norm(got), norm(want));
    if g.len() == w.len()
        && got.iter().all(|r| {
            want.iter().any(|x| {
                x.len() == r.len() && r.iter().all(|(k, v)| x.get(k).is_some_and(|y| close(v, y)))
            })
        })
    {
        Ok(())
    } else {
        Err(format!("table differs:\n  got  {g:?}\n  want {w:?}"))
    }
}

struct Board {
    file: String,
    json: Value,
}

fn boards() -> Vec<Board> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            out.push(Board {
                file: p.file_name().unwrap().to_string_lossy().into_owned(),
                json: serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            });
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

fn english(title: &str) -> &str {
    title.split(" · ").next().unwrap()
}

/// Specific values per dashboard for the second run (multi-value where the
/// variable allows it, so the alternation is exercised too).
fn specific_picks(uid: &str) -> BTreeMap<String, Pick> {
    let v = |xs: &[&str]| Pick::Values(xs.iter().map(|s| (*s).to_owned()).collect());
    let picks: Vec<(&str, Pick)> = match uid {
        "wastewatch-zone" => vec![("site", v(&["site-b"]))],
        "wastewatch-hazardous" => vec![
            ("site", v(&["site-a", "site-b"])),
            ("storage", v(&["st-1", "st-2"])),
        ],
        "wastewatch-transport" => vec![("truck", v(&["tr-1"]))],
        "wastewatch-bins" => vec![("site", v(&["site-a"]))],
        "wastewatch-alerts" => vec![
            ("site", v(&["site-a"])),
            ("rule", v(&["route_deviation", "storage_point_over_limit"])),
            ("severity", v(&["warn"])),
        ],
        "wastewatch-kpis" => vec![
            ("period", v(&["year"])),
            ("kpi", v(&["route_compliance", "publicity_reach"])),
            ("site", v(&["site-b"])),
        ],
        "wastewatch-pipeline" => vec![("instance", v(&["ww-b"]))],
        "wastewatch-operations" => vec![("site", v(&["site-b"]))],
        other => panic!("no specific values for {other}"),
    };
    picks.into_iter().map(|(k, p)| (k.to_owned(), p)).collect()
}

/// Options each variable must resolve to on the fixture.
fn expected_options(uid: &str, name: &str, picks: &BTreeMap<String, Pick>) -> Vec<&'static str> {
    match (uid, name) {
        ("wastewatch-zone", "site") => vec!["site-a", "site-b"],
        // Entities of the active alerts, up to the first '/'.
        ("wastewatch-zone", "alerting_trucks") => {
            vec!["bin-2", "bin-3", "st-1", "st-2", "tr-1", "tr-3"]
        }
        ("wastewatch-hazardous", "site") => vec!["site-a", "site-b"],
        ("wastewatch-hazardous", "storage") => match picks.get("site") {
            Some(Pick::Values(v)) if v == &["site-b".to_owned()] => vec!["st-2", "st-med"],
            _ => vec!["st-1", "st-2", "st-med"],
        },
        ("wastewatch-transport", "truck") => vec!["tr-1", "tr-2", "tr-3"],
        ("wastewatch-bins", "site") => vec!["site-a", "site-c"],
        ("wastewatch-alerts", "site") => vec!["site-a", "site-b", "site-c"],
        ("wastewatch-alerts", "rule") => {
            let mut r = vec![
                "bin_fire",
                "bin_nearly_full",
                "bin_overflowing",
                "device_silent",
                "leak",
                "outside_time_window",
                "overspeed",
                "route_deviation",
                "storage_point_over_limit",
                "suspected_dumping",
                "trip_not_closed",
            ];
            r.sort_unstable();
            r
        }
        ("wastewatch-alerts", "severity") => vec!["critical", "info", "major", "warn"],
        ("wastewatch-kpis", "period") => vec!["month", "year"],
        ("wastewatch-kpis", "kpi") => {
            let mut k: Vec<&'static str> = wastewatch::kpi::CATALOGUE
                .iter()
                .map(|s| s.id.as_str())
                .collect();
            k.sort_unstable();
            k
        }
        ("wastewatch-kpis", "site") => vec!["site-a", "site-b"],
        ("wastewatch-pipeline", "instance") => vec!["ww-a", "ww-b"],
        ("wastewatch-operations", "site") => vec!["site-a", "site-b"],
        other => panic!("no expected options for {other:?}"),
    }
}

#[test]
fn every_panel_query_returns_exactly_what_the_fixture_implies() {
    let db = influx_create_db(&unique("dash").replace('-', "_"));
    let n = now_ms();
    let fixture = Fixture::new(n);
    write_lines(&db, &fixture.line_protocol());
    let min_interval = datasource_min_interval_ms();

    let mut failures = Vec::new();
    let mut checked = 0usize;
    let mut seen_keys = BTreeSet::new();
    for board in boards() {
        let d = &board.json;
        let uid = d["uid"].as_str().unwrap().to_owned();
        for (run_name, picks) in [
            ("defaults", BTreeMap::new()),
            ("specific values", specific_picks(&uid)),
        ] {
            let to = now_ms();
            let (from, to) = range_of(d["time"]["from"].as_str().unwrap(), to);
            // Resolve the variables in order (a variable may use earlier ones).
            let mut vars: Vec<Var> = Vec::new();
            for def in d["templating"]["list"].as_array().unwrap() {
                let expand = Expand {
                    vars: &vars,
                    picks: &picks,
                    from,
                    to,
                    interval_ms: min_interval,
                };
                let options = resolve_options(&db, def, &expand);
                let name = def["name"].as_str().unwrap();
                let want = expected_options(&uid, name, &picks);
                if options != want {
                    failures.push(format!("{} [{run_name}]: variable {name} has options {options:?}, expected {want:?}", board.file));
                }
                vars.push(Var {
                    def: def.clone(),
                    options,
                });
            }
            let options: BTreeMap<String, Vec<String>> = vars
                .iter()
                .map(|v| (v.name().to_owned(), v.options.clone()))
                .collect();
            for panel in d["panels"].as_array().unwrap() {
                let title_template = panel["title"].as_str().unwrap();
                // A repeated panel is one panel per value of its variable.
                let instances: Vec<(String, BTreeMap<String, Pick>)> =
                    match panel["repeat"].as_str() {
                        Some(var) => {
                            let values = match picks.get(var) {
                                Some(Pick::Values(v)) => v.clone(),
                                _ => options[var].clone(),
                            };
                            values
                                .into_iter()
                                .map(|v| {
                                    let mut p = picks.clone();
                                    p.insert(var.to_owned(), Pick::Scoped(v.clone()));
                                    (title_template.replace(&format!("${var}"), &v), p)
                                })
                                .collect()
                        }
                        None => vec![(title_template.to_owned(), picks.clone())],
                    };
                for (title, panel_picks) in instances {
                    let interval_ms = {
                        let low = panel["interval"]
                            .as_str()
                            .map_or(min_interval, parse_duration_ms);
                        let points = panel["maxDataPoints"].as_i64().unwrap_or(RESOLUTION);
                        round_interval((to - from) / points).max(low)
                    };
                    let expand = Expand {
                        vars: &vars,
                        picks: &panel_picks,
                        from,
                        to,
                        interval_ms,
                    };
                    let ctx = Ctx {
                        f: &fixture,
                        from,
                        to,
                        interval: interval_ms,
                        picks: &panel_picks,
                        options: &options,
                    };
                    let targets = panel["targets"].as_array().unwrap();
                    for t in targets {
                        let ref_id = t["refId"].as_str().unwrap();
                        let en = english(&title);
                        seen_keys.insert((
                            uid.clone(),
                            english(title_template).to_owned(),
                            ref_id.to_owned(),
                        ));
                        let q = expand.query(t["query"].as_str().unwrap());
                        let want = match expected(&uid, en, ref_id, &ctx) {
                            Some(w) => w,
                            None => {
                                failures.push(format!(
                                    "{} / {en} / {ref_id}: no expectation in this test: add one",
                                    board.file
                                ));
                                continue;
                            }
                        };
                        let got = match run(&db, &q) {
                            Ok(g) => g,
                            Err(e) => {
                                failures.push(format!("{} [{run_name}] / {en} / {ref_id}: InfluxDB error {e}\n    {q}", board.file));
                                continue;
                            }
                        };
                        let outcome = match &want {
                            Expected::Series(w) => {
                                if run_name == "defaults" && w.is_empty() {
                                    failures.push(format!("{} / {en} / {ref_id}: the fixture gives this query nothing to return; give it data", board.file));
                                }
                                if targets.len() == 1 && panel.get("transformations").is_some() {
                                    failures.push(format!(
                                        "{} / {en}: has transformations, expect its table",
                                        board.file
                                    ));
                                }
                                compare_series(&got, w)
                            }
                            Expected::Table(w) => {
                                if run_name == "defaults" && w.is_empty() {
                                    failures.push(format!(
                                        "{} / {en} / {ref_id}: empty expected table",
                                        board.file
                                    ));
                                }
                                compare_tables(&transform(panel, to_table(&got)), w)
                            }
                        };
                        checked += 1;
                        if let Err(e) = outcome {
                            failures.push(format!(
                                "{} [{run_name}] / {en} / {ref_id}: {e}\n    {q}",
                                board.file
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems in {checked} query runs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked >= 150,
        "only {checked} query runs: are the dashboards still read?"
    );
    // Every dashboard, panel and query of the expectations is still there.
    assert!(seen_keys.len() >= 90, "{} panel queries", seen_keys.len());
}

/// Grafana's `$timeFilter`, `$__interval` and variable expansion as this test
/// emulates it, on examples worked out by hand from Grafana's sources.
#[test]
fn grafana_expansion_follows_the_influxdb_datasource() {
    assert_eq!(round_interval(21_600), 20_000);
    assert_eq!(round_interval(86_400), 60_000);
    assert_eq!(format_interval(20_000), "20s");
    assert_eq!(format_interval(3_600_000), "1h");
    assert_eq!(influx_special_regex_escape("a.b|c"), "a\\\\.b\\\\|c");
    assert_eq!(escape_regex("a/b.c"), "a\\/b\\.c");
    assert!(js_not_a_number("month") && !js_not_a_number("2026-10"));
    let var = |multi: bool, all: Option<&str>| Var {
        def: json!({"name": "site", "multi": multi, "includeAll": multi, "allValue": all}),
        options: vec!["s-1".into(), "s-2".into()],
    };
    assert_eq!(format_var(&var(true, Some(".*")), &Pick::All), ".*");
    assert_eq!(format_var(&var(true, None), &Pick::All), "s-1|s-2");
    assert_eq!(
        format_var(&var(true, None), &Pick::Values(vec!["s-2".into()])),
        "s-2"
    );
    assert_eq!(
        format_var(&var(false, None), &Pick::Values(vec!["a.b".into()])),
        "a\\.b"
    );
    let vars = vec![var(true, Some(".*"))];
    let picks = BTreeMap::from([(
        "site".to_owned(),
        Pick::Values(vec!["s-1".into(), "s-2".into()]),
    )]);
    let e = Expand {
        vars: &vars,
        picks: &picks,
        from: 1_000,
        to: 2_000,
        interval_ms: 20_000,
    };
    assert_eq!(
        e.query(r#"SELECT x FROM m WHERE $timeFilter AND "site" =~ /^($site)$/ AND "a" = '${site}' GROUP BY time($__interval), $other"#),
        r#"SELECT x FROM m WHERE time >= 1000ms and time <= 2000ms AND "site" =~ /^(s-1|s-2)$/ AND "a" = 's-1|s-2' GROUP BY time(20s), $other"#
    );
    assert_eq!(range_of("now-6h", 10 * H), (4 * H, 10 * H));
    // 2024-02-29 minus one year is 2023-02-28.
    let leap = days_from_civil(2024, 2, 29) * D;
    assert_eq!(range_of("now-1y", leap).0, days_from_civil(2023, 2, 28) * D);
    assert_eq!(
        civil_from_days(days_from_civil(2026, 10, 31)),
        (2026, 10, 31)
    );
}
