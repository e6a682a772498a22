//! JT/T 808 end to end, against the real service, broker and InfluxDB 1.x:
//! terminals of both editions connect over TCP, register, authenticate and
//! report (single reports and a sub-packaged batch upload); their fixes are
//! stored exactly as the native truck fixes are, a truck that leaves its
//! permit's route raises `route_deviation`, a frame with a bad check code is
//! quarantined and the connection carries on, an unknown terminal is
//! refused. Then SIGKILL while terminals report: every fix the service
//! answered with 0x8001 is stored.

use std::collections::BTreeSet;
use std::time::Duration;

use firmware_sim::jt808::{Jt808Faults, Jt808Summary, Terminal, TruckTerminal};
use wastewatch::gateway::jt808::frame::Version;
use wastewatch::gateway::jt808::message::{unix_ms_to_bcd_time, Location};
use wastewatch_test_kit::*;

const PHONE_1: &str = "013937200001";
const PHONE_2: &str = "13937200002";

/// The test zone with terminal phone numbers, a destination and a permit
/// whose route runs east along lat 34.705 from the origin site to it.
fn jt808_zone(setup: &V1Setup) -> (String, String) {
    let z = &setup.zone;
    let t2 = format!("tr2-{}", setup.tag);
    let dest = format!("dest-{}", setup.tag);
    let poly = |w: f64, e: f64| {
        format!(
            r#"{{"type":"Polygon","coordinates":[[[{w},34.70],[{e},34.70],[{e},34.71],[{w},34.71],[{w},34.70]]]}}"#
        )
    };
    std::fs::write(
        z.dir.path().join("sites.json"),
        format!(
            r#"[{{"id":"{}","name":"origin","type":"construction_site","geofence":{}}},
                {{"id":"{dest}","name":"plant","type":"recycling_plant","geofence":{}}}]"#,
            z.site,
            poly(113.70, 113.71),
            poly(113.75, 113.76)
        ),
    )
    .unwrap();
    let devices = std::fs::read_to_string(z.dir.path().join("devices.json")).unwrap();
    let devices = devices.replace(
        r#""axle_count":3}}"#,
        &format!(r#""axle_count":3,"terminal_phone":"{PHONE_1}"}}}}"#),
    );
    let devices = devices.trim_end().trim_end_matches(']').to_owned()
        + &format!(
            r#",{{"id":"{t2}","kind":"truck","site_id":"{}","expected_interval_s":10,"truck":{{"plate":"豫AD5678","registered_tare_kg":14000,"axle_count":3,"terminal_phone":"{PHONE_2}"}}}}]"#,
            z.site
        );
    std::fs::write(z.dir.path().join("devices.json"), devices).unwrap();
    std::fs::write(
        z.dir.path().join("permits.json"),
        format!(
            r#"[{{"id":"permit-{}","plates":["豫AD1234","豫AD5678"],"origin_site_id":"{}","destination_site_ids":["{dest}"],
                "route":{{"type":"LineString","coordinates":[[113.705,34.705],[113.73,34.705],[113.755,34.705]]}},
                "segments":[{{"half_width_m":50,"speed_limit_kmh":60}},{{"half_width_m":50,"speed_limit_kmh":60}}],
                "time_windows":[{{"start":"00:00","end":"23:59"}}],
                "valid_from":"2020-01-01","valid_until":"2099-12-31"}}]"#,
            setup.tag, z.site
        ),
    )
    .unwrap();
    (t2, dest)
}

fn setup(prefix: &str, port: u16) -> V1Setup {
    let listen = format!("127.0.0.1:{port}");
    let s = V1Setup::new(
        prefix,
        &[
            ("WASTEWATCH__JT808__ENABLED", "true"),
            ("WASTEWATCH__JT808__LISTEN", listen.as_str()),
            (
                "WASTEWATCH__JT808__AUTH_KEY",
                "an end-to-end test key, 32 chars",
            ),
            ("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "200"),
        ],
    );
    s
}

fn loc(lat_e6: u32, lon_e6: u32, t_ms: i64, speed_dkmh: u16, i: u16) -> Location {
    Location {
        alarm: if i.is_multiple_of(5) { 0x10 } else { 0 },
        status: 1 | 2 | (3 << 8),
        lat_e6,
        lon_e6,
        altitude_m: 100 + i,
        speed_dkmh,
        direction: 90,
        time_bcd: unix_ms_to_bcd_time(t_ms),
        time_unix_ms: t_ms,
        mileage_dkm: Some(100_000 + u32::from(i) * 3),
        satellites: Some(7 + (i % 5) as u8),
        body_sensors: Some(1),
        ..Location::default()
    }
}

fn alerts(svc: &Service) -> Vec<serde_json::Value> {
    serde_json::from_str(
        &http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap_or_default(),
    )
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminals_register_authenticate_and_report_fixes_stored_exactly_and_judged_by_the_route_rules(
) {
    let port = free_port();
    let setup = setup("jt808", port);
    let (t2, _) = jt808_zone(&setup);
    let svc = setup.start();
    let addr = format!("127.0.0.1:{port}");

    // An unknown terminal is refused with "no such terminal" (4).
    let mut stranger = Terminal::connect(&addr, "013900000000", Version::V2013)
        .await
        .unwrap();
    let e = stranger.register("豫AD1234").await.unwrap_err().to_string();
    assert!(e.contains("result 4"), "{e}");

    // Truck 1, 2013 edition: on the route, then 1.1 km north of it, loaded.
    let mut t = Terminal::connect(&addr, PHONE_1, Version::V2013)
        .await
        .unwrap();
    let code = t.register("豫A·D1234").await.unwrap();
    t.authenticate(&code).await.unwrap();
    let t0 = (now_ms() / 1000 - 240) * 1000;
    let mut sent = Vec::new();
    for i in 0..20u16 {
        let lat = if i < 5 { 34_705_000 } else { 34_715_000 };
        let l = loc(
            lat,
            113_706_000 + u32::from(i) * 1_100,
            t0 + i64::from(i) * 10_000,
            396,
            i,
        );
        if i == 7 {
            // A corrupted copy first: quarantined, unanswered; the
            // connection carries on and the intact copy is stored.
            let (mut f, _) = t.frame(0x0200, &l.encode());
            let k = f.len() - 2;
            f[k] ^= 0x01;
            t.send_raw(&f).await.unwrap();
        }
        assert_eq!(
            t.report(&l, Duration::from_secs(10)).await.unwrap(),
            0,
            "fix {i}"
        );
        sent.push(l);
    }

    // Truck 2, 2019 edition: a blind-area batch of three fixes in
    // sub-packages of 40 bytes.
    let mut t2c = Terminal::connect(&addr, PHONE_2, Version::V2019 { protocol: 1 })
        .await
        .unwrap();
    let code2 = t2c.register("豫AD5678").await.unwrap();
    t2c.authenticate(&code2).await.unwrap();
    let batch: Vec<Location> = (0..3u16)
        .map(|i| {
            loc(
                34_705_000,
                113_720_000 + u32::from(i) * 500,
                t0 + i64::from(i) * 10_000,
                200,
                i,
            )
        })
        .collect();
    let body = wastewatch::gateway::jt808::message::Batch::encode(
        1,
        &batch.iter().map(Location::encode).collect::<Vec<_>>(),
    );
    let frames = t2c.packaged(0x0704, &body, 40);
    assert!(frames.len() >= 3, "{} packages", frames.len());
    for (f, _) in frames.iter().rev() {
        t2c.send_raw(f).await.unwrap();
    }
    for (_, serial) in &frames {
        assert_eq!(
            t2c.general_response(*serial, Duration::from_secs(10))
                .await
                .unwrap(),
            0
        );
    }

    let db = setup.db.clone();
    assert!(
        eventually(Duration::from_secs(30), || stored_seqs(&db, "truck_fix")
            .len()
            == 23),
        "fixes missing: {:?}; log:\n{}",
        stored_seqs(&db, "truck_fix"),
        setup.log()
    );
    let rows = influx_rows(
        &db,
        &format!(
            "SELECT * FROM truck_fix WHERE device = '{}'",
            setup.zone.truck
        ),
    );
    assert_eq!(rows.len(), 20);
    for (r, l) in rows.iter().zip(&sent) {
        assert_eq!(
            r["time"].as_i64(),
            Some(l.time_unix_ms),
            "point time is the fix time"
        );
        assert_eq!(r["seq"].as_i64(), Some(l.time_unix_ms / 1000));
        assert_eq!(r["lat"].as_f64(), Some(f64::from(l.lat_e6) / 1e6));
        assert_eq!(r["lon"].as_f64(), Some(f64::from(l.lon_e6) / 1e6));
        assert_eq!(r["speed_kmh"].as_f64(), Some(39.6));
        assert_eq!(r["heading_deg"].as_f64(), Some(90.0));
        assert_eq!(r["altitude_m"].as_f64(), Some(f64::from(l.altitude_m)));
        assert_eq!(
            r["odometer_km"].as_f64(),
            Some(f64::from(l.mileage_dkm.unwrap()) / 10.0)
        );
        assert_eq!(
            r["satellites"].as_i64(),
            Some(i64::from(l.satellites.unwrap()))
        );
        assert_eq!(r["alarm_bits"].as_i64(), Some(i64::from(l.alarm)));
        assert_eq!(r["loaded"].as_bool(), Some(true));
        assert_eq!(r["ignition_on"].as_bool(), Some(true));
        assert_eq!(r["gnss_fix"].as_bool(), Some(true));
        assert_eq!(r["cover_closed"].as_bool(), Some(true));
        assert_eq!(r["body_lifted"].as_bool(), Some(false));
        assert_eq!(r["plate"].as_str(), Some("豫AD1234"));
        assert_eq!(r["site"].as_str(), Some(setup.zone.site.as_str()));
        assert_eq!(r["clock_restamped"].as_bool(), Some(false));
    }
    let rows2 = influx_rows(
        &db,
        &format!("SELECT * FROM truck_fix WHERE device = '{t2}'"),
    );
    let times: Vec<i64> = rows2.iter().filter_map(|r| r["time"].as_i64()).collect();
    assert_eq!(
        times,
        batch.iter().map(|l| l.time_unix_ms).collect::<Vec<_>>()
    );

    // The route rule judged the fixes: off the corridor, loaded, for more
    // than a minute.
    let truck = setup.zone.truck.clone();
    assert!(
        eventually(Duration::from_secs(30), || alerts(&svc).iter().any(|a| a
            ["key"]["rule"]
            == "route_deviation"
            && a["key"]["entity"]
                .as_str()
                .is_some_and(|e| e.contains(truck.as_str())))),
        "no route_deviation for {truck}: {:?}\nlog:\n{}",
        alerts(&svc),
        setup.log()
    );

    // The corrupted frame is in the quarantine, raw, with the reason.
    let q = http_get(&format!(
        "http://{}/api/v1/quarantine?from=0&limit=100",
        svc.http
    ))
    .unwrap();
    assert!(
        q.contains("malformed_frame") && q.contains("check code"),
        "{q}"
    );
    assert_eq!(svc.metric("jt808_fixes_total"), 23);
    svc.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_terminals_report_loses_no_answered_fix() {
    let port = free_port();
    let setup = setup("jt808kill", port);
    jt808_zone(&setup);
    let mut svc = setup.start();
    let addr = format!("127.0.0.1:{port}");
    let registry = wastewatch::registry::Registry::load_dir(setup.zone.dir.path()).unwrap();
    let trucks = TruckTerminal::from_registry(&registry);
    assert_eq!(trucks.len(), 2);
    let t0 = (now_ms() / 1000 - 3_000) * 1000;
    let faults = Jt808Faults {
        bad_check_every: Some(17),
        subpackage_every: Some(5),
        reconnect_every: Some(40),
    };
    let mut tasks = Vec::new();
    for (k, mut truck) in trucks.into_iter().enumerate() {
        let addr = addr.clone();
        let faults = faults.clone();
        tasks.push(tokio::spawn(async move {
            let mut summary = Jt808Summary::default();
            for i in 0..250u32 {
                let t = t0 + i64::from(i) * 10_000 + k as i64 * 1_000;
                let l = loc(34_705_000, 113_706_000 + i * 10, t, 300, (i % 100) as u16);
                truck.deliver(&addr, &l, &faults, &mut summary, 60).await;
                // Paced so that the reports span the SIGKILLs.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            summary
        }));
    }
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500 + round * 500)).await;
        svc.kill9();
        append_note(
            &setup.log_path,
            &format!("---- test: SIGKILL #{} ----", round + 1),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        svc = setup.start();
    }
    let mut acked = BTreeSet::new();
    let (mut bad, mut retries) = (0, 0);
    for t in tasks {
        let s = t.await.unwrap();
        bad += s.bad_frames;
        retries += s.retries;
        for (dev, secs) in s.acked_by_device {
            for sec in secs {
                acked.insert((dev.clone(), sec));
            }
        }
    }
    assert!(bad > 0, "the fault of a bad check code was injected");
    assert!(
        retries >= 3,
        "the SIGKILLs hit reports in flight ({retries} retries)"
    );
    assert_eq!(acked.len(), 500, "every fix answered in the end");
    let db = setup.db.clone();
    let ok = eventually(Duration::from_secs(60), || {
        stored_seqs(&db, "truck_fix").is_superset(&acked)
    });
    let stored = stored_seqs(&db, "truck_fix");
    let missing: Vec<_> = acked.difference(&stored).take(10).collect();
    assert!(
        ok,
        "answered fixes missing after SIGKILLs, e.g. {missing:?}; log:\n{}",
        setup.log()
    );
    let verdict = oracle::exactly_once(&db, &["truck_fix"], &acked, &Default::default());
    assert!(verdict.ok(), "{verdict:?}");
    svc.stop();
}
