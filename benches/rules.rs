//! Rule engine (and KPI engine) cost per record with a large synthetic zone: 10 000 trucks,
//! each on its own permit (10 000 permits, 8-segment routes), plus memory
//! per tracked truck. Run:
//! `cargo bench --bench rules -- --warm-up-time 1 --measurement-time 3`.
//!
//! Memory is reported two ways before the timings: bytes held by the
//! engine's state per truck (a counting global allocator, HashMap overhead
//! included) and the JSON snapshot size per truck.

// The counting allocator below is the one unsafe code of the workspace:
// measuring memory per tracked truck needs a global allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wastewatch::geo::LatLon;
use wastewatch::kpi::{KpiConfig, KpiEngine};
use wastewatch::pb::{self, envelope::Body, ClockCheck, DeviceKind};
use wastewatch::registry::Registry;
use wastewatch::rules::{RuleConfig, RuleEngine};

/// Counts bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TRUCKS: usize = 10_000;
/// 2026-03-02 21:00 local.
const T0: i64 = 1_772_456_400_000;
/// Fix interval, ms.
const EVERY_MS: i64 = 10_000;
/// Positions precomputed per truck (driven there and back).
const STEPS: usize = 64;

/// Zone origin (south-west corner of the grid).
const LAT0: f64 = 34.60;
const LON0: f64 = 113.60;

/// A closed square GeoJSON ring of `side` degrees at (lat, lon).
fn square(lat: f64, lon: f64, side: f64) -> String {
    format!(
        "[[[{lon},{lat}],[{},{lat}],[{},{}],[{lon},{}],[{lon},{lat}]]]",
        lon + side,
        lon + side,
        lat + side,
        lat + side
    )
}

/// The route of permit `i`: a staircase of 8 segments of about 1 km from
/// its origin square, each permit on its own row.
fn route(i: usize) -> Vec<LatLon> {
    let start = LatLon::new(
        LAT0 + (i % 100) as f64 * 0.002,
        LON0 + (i / 100) as f64 * 0.01,
    );
    let mut pts = vec![start];
    for k in 0..8 {
        let last = pts[pts.len() - 1];
        pts.push(if k % 2 == 0 {
            last.offset_m(0.0, 1000.0)
        } else {
            last.offset_m(200.0, 0.0)
        });
    }
    pts
}

/// The synthetic zone as the three JSON files.
fn zone_json() -> (String, String, String) {
    let mut sites = String::from("[");
    for s in 0..100 {
        if s > 0 {
            sites.push(',');
        }
        let (lat, lon) = (LAT0 + s as f64 * 0.002 - 0.0005, LON0 - 0.0005);
        let _ = write!(
            sites,
            r#"{{"id":"cs-{s}","name":"site {s}","type":"construction_site","geofence":{{"type":"Polygon","coordinates":{}}}}},"#,
            square(lat, lon, 0.001)
        );
        let _ = write!(
            sites,
            r#"{{"id":"rp-{s}","name":"plant {s}","type":"recycling_plant","geofence":{{"type":"Polygon","coordinates":{}}}}}"#,
            square(lat, lon + 1.5, 0.001)
        );
    }
    sites.push(']');
    let mut devices = String::from("[");
    let mut permits = String::from("[");
    for i in 0..TRUCKS {
        if i > 0 {
            devices.push(',');
            permits.push(',');
        }
        let _ = write!(
            devices,
            r#"{{"id":"truck-{i}","kind":"truck","site_id":"cs-{}","expected_interval_s":10,"truck":{{"plate":"豫A{i:05}","registered_tare_kg":15000,"axle_count":4}}}}"#,
            i % 100
        );
        let coords: Vec<String> = route(i)
            .iter()
            .map(|p| format!("[{},{}]", p.lon, p.lat))
            .collect();
        let segs = [r#"{"half_width_m":50,"speed_limit_kmh":40}"#; 8].join(",");
        let _ = write!(
            permits,
            r#"{{"id":"permit-{i}","plates":["豫A{i:05}"],"origin_site_id":"cs-{o}","destination_site_ids":["rp-{o}"],"route":{{"type":"LineString","coordinates":[{}]}},"segments":[{segs}],"time_windows":[{{"start":"00:00","end":"23:59"}}],"valid_from":"2026-01-01","valid_until":"2027-12-31"}}"#,
            coords.join(","),
            o = i % 100
        );
    }
    devices.push(']');
    permits.push(']');
    (sites, devices, permits)
}

/// Per truck: a fix record to mutate in place, and its positions (`north_m`
/// off the route).
struct Fleet {
    records: Vec<pb::LogRecord>,
    positions: Vec<Vec<LatLon>>,
    /// Records fed so far (drives seq and time).
    n: usize,
}

impl Fleet {
    fn new(reg: &Registry, north_m: f64) -> Self {
        let mut records = Vec::with_capacity(TRUCKS);
        let mut positions = Vec::with_capacity(TRUCKS);
        for i in 0..TRUCKS {
            let permit = reg
                .permit(&format!("permit-{i}"))
                .expect("generated permit");
            let len = permit.route.length_m();
            positions.push(
                (0..STEPS)
                    .map(|k| {
                        let d = (k as f64 * 83.0 + 100.0) % len;
                        permit.route.point_at_distance(d).0.offset_m(north_m, 0.0)
                    })
                    .collect(),
            );
            let env = pb::Envelope {
                site_id: format!("cs-{}", i % 100),
                device_id: format!("truck-{i}"),
                device_kind: DeviceKind::Truck as i32,
                seq: 0,
                recorded_at_unix_ms: T0,
                schema_version: 1,
                body: Some(Body::TruckFix(pb::TruckFix {
                    speed_kmh: 30.0,
                    heading_deg: 90.0,
                    accuracy_m: 8.0,
                    loaded: true,
                    cover_closed: true,
                    ignition_on: true,
                    plate: format!("豫A{i:05}"),
                    permit_id: format!("permit-{i}"),
                    gnss_fix: true,
                    satellites: 12,
                    ..Default::default()
                })),
            };
            records.push(pb::LogRecord {
                envelope: Some(env),
                received_at_unix_ms: T0,
                time_unix_ms: T0,
                clock_check: ClockCheck::Ok as i32,
                from_json: false,
                alert: None,
                kpi: None,
            });
        }
        Self {
            records,
            positions,
            n: 0,
        }
    }

    /// The next record (trucks in turn, each one step further), and the
    /// wall time to process it at.
    fn next(&mut self) -> (&pb::LogRecord, i64) {
        let (i, k) = (self.n % TRUCKS, self.n / TRUCKS);
        self.n += 1;
        // Spread the trucks' fixes over the 10 s interval.
        let t = T0 + k as i64 * EVERY_MS + (i as i64 * EVERY_MS) / TRUCKS as i64;
        let step = k % (2 * STEPS);
        let p = self.positions[i][if step < STEPS {
            step
        } else {
            2 * STEPS - 1 - step
        }];
        let rec = &mut self.records[i];
        rec.time_unix_ms = t;
        rec.received_at_unix_ms = t;
        if let Some(env) = rec.envelope.as_mut() {
            env.seq = k as u64 + 1;
            env.recorded_at_unix_ms = t;
            if let Some(Body::TruckFix(f)) = env.body.as_mut() {
                f.latitude_deg = p.lat;
                f.longitude_deg = p.lon;
            }
        }
        (&self.records[i], t)
    }
}

fn rules(c: &mut Criterion) {
    let (sites, devices, permits) = zone_json();
    let reg = Arc::new(Registry::from_json_strs(&sites, &devices, &permits).expect("valid zone"));
    assert_eq!((reg.devices.len(), reg.permits.len()), (TRUCKS, TRUCKS));

    // Memory: every truck tracked, with a few fixes held in its reorder
    // buffer (the steady state at 10 s fixes and a 30 s window).
    let mut fleet = Fleet::new(&reg, 0.0);
    let before = ALLOCATED.load(Relaxed);
    let mut engine = RuleEngine::new(reg.clone(), RuleConfig::default());
    for _ in 0..TRUCKS * 8 {
        let (rec, now) = fleet.next();
        black_box(engine.on_record(rec, now));
    }
    let held = ALLOCATED.load(Relaxed) - before;
    let snapshot = engine.snapshot().expect("snapshot");
    println!(
        "memory per tracked truck: {} B held by the engine (counting allocator), {} B of JSON snapshot; {} trucks tracked",
        held / TRUCKS as isize,
        snapshot.len() / TRUCKS,
        engine.tracked_devices()
    );

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(1));
    group.bench_function("truck_fix_on_route_10k_trucks_10k_permits", |b| {
        b.iter(|| {
            let (rec, now) = fleet.next();
            black_box(engine.on_record(black_box(rec), now))
        })
    });
    let mut off = Fleet::new(&reg, 300.0);
    let mut engine_off = RuleEngine::new(reg.clone(), RuleConfig::default());
    group.bench_function("truck_fix_300m_off_route_10k_trucks_10k_permits", |b| {
        b.iter(|| {
            let (rec, now) = off.next();
            black_box(engine_off.on_record(black_box(rec), now))
        })
    });
    group.bench_function("tick_10k_trucks", |b| {
        let mut now = T0 + 3_600_000;
        b.iter(|| {
            now += 1000;
            black_box(engine.on_tick(now))
        })
    });
    group.finish();

    // The KPI engine on the same fixes (route and time-window compliance
    // per loaded segment, an hour of fixes kept per truck).
    let mut kpi_fleet = Fleet::new(&reg, 0.0);
    let mut kpi = KpiEngine::new(reg.clone(), KpiConfig::default());
    let mut group = c.benchmark_group("kpi");
    group.throughput(Throughput::Elements(1));
    group.bench_function("truck_fix_on_route_10k_trucks_10k_permits", |b| {
        b.iter(|| {
            let (rec, _) = kpi_fleet.next();
            kpi.on_record(black_box(rec))
        })
    });
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
