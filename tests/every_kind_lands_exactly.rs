//! Every message kind published over MQTT lands with exact values: in
//! InfluxDB 1.x through the v1 path (read back with InfluxQL) and in
//! VictoriaMetrics through the `influxdb2` v2 path (read back through its
//! export API).

use std::time::Duration;

use wastewatch::pb::{self, envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

fn messages(zone: &Zone, t0: i64) -> (Vec<Msg>, Vec<pb::Envelope>) {
    let mut envs = Vec::new();
    for (i, kind) in [
        DeviceKind::Weighbridge,
        DeviceKind::Bin,
        DeviceKind::Storage,
        DeviceKind::Truck,
    ]
    .into_iter()
    .enumerate()
    {
        envs.push(zone.envelope(kind, 10 + i as u64, t0 + i as i64));
    }
    let mut status = zone.envelope(DeviceKind::Bin, 20, t0 + 10);
    status.body = Some(Body::DeviceStatus(pb::DeviceStatus {
        kind: pb::StatusKind::Heartbeat as i32,
        firmware_version: "2.4.1 \"beta\"".into(),
        battery_mv: 3550,
        signal_dbm: Some(-87),
        uptime_s: 3600,
    }));
    envs.push(status);
    // One JSON message: same record as protobuf.
    let mut msgs: Vec<Msg> = envs.iter().map(|e| Msg::pb(zone, e)).collect();
    let json_env = zone.envelope(DeviceKind::Bin, 30, t0 + 20);
    msgs.push(Msg {
        topic: zone.topic(&json_env),
        payload: wastewatch::decode::json::encode_json(&json_env).into_bytes(),
        json: true,
    });
    envs.push(json_env);
    (msgs, envs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_lands_with_exact_values_in_influxdb_v1() {
    let tag = unique("kinds1");
    let zone = Zone::new(&tag);
    let db = influx_create_db(&tag.replace('-', "_"));
    let data = tempfile::tempdir().unwrap();
    let url = env("WW_TEST_INFLUXDB");
    let envs = service_env(
        &zone,
        &format!("ww-{tag}"),
        data.path(),
        &[
            ("WASTEWATCH__TSDB__KIND", "influxdb_v1"),
            ("WASTEWATCH__TSDB__URL", &url),
            ("WASTEWATCH__TSDB__DATABASE", &db),
        ],
    );
    let svc = Service::start(envs, data.path().join("service.log"));
    let t0 = now_ms() - 60_000;
    let (msgs, _) = messages(&zone, t0);
    assert_eq!(publish_all(format!("pub-{tag}"), msgs, None).await, 6);
    assert!(
        eventually(Duration::from_secs(20), || influx_rows(
            &db,
            "SELECT count(\"seq\") FROM /.*/"
        )
        .len()
            == 5
            && stored_seqs(&db, "bin_reading").len() == 2),
        "not all points arrived; log:\n{}",
        std::fs::read_to_string(data.path().join("service.log")).unwrap_or_default()
    );

    let t = &influx_rows(&db, "SELECT * FROM weighbridge_ticket")[0];
    assert_eq!(t["time"].as_i64(), Some(t0), "point time is device time");
    assert_eq!(t["gross_kg"].as_f64(), Some(30_010.0));
    assert_eq!(t["net_kg"].as_f64(), Some(16_010.0));
    assert_eq!(t["plate"].as_str(), Some("豫AD1234"), "plate normalised");
    assert_eq!(
        t["operator"].as_str(),
        Some("op \"7\", gate=2"),
        "escaped text round-trips"
    );
    assert_eq!(t["category"].as_str(), Some("construction_demolition"));
    assert_eq!(t["destination_type"].as_str(), Some("recycling"));
    assert_eq!(t["direction"].as_str(), Some("in"));
    assert_eq!(t["device"].as_str(), Some(zone.weighbridge.as_str()));
    assert_eq!(t["seq"].as_i64(), Some(10));
    assert_eq!(t["axle_count"].as_i64(), Some(3));

    let b = influx_rows(&db, "SELECT * FROM bin_reading WHERE seq = 11")[0].clone();
    assert_eq!(b["fill_pct"].as_f64(), Some(11.25));
    assert_eq!(b["temperature_c"].as_f64(), Some(21.5));
    assert_eq!(b["battery_v"].as_f64(), Some(3.6));
    assert_eq!(b["clock_restamped"].as_bool(), Some(false));
    let bj = influx_rows(&db, "SELECT * FROM bin_reading WHERE seq = 30")[0].clone();
    assert_eq!(
        bj["fill_pct"].as_f64(),
        Some(30.25),
        "JSON message stored like protobuf"
    );

    let s = &influx_rows(&db, "SELECT * FROM storage_reading")[0];
    assert_eq!(s["stock_kg"].as_f64(), Some(1012.0));
    assert_eq!(s["combustible_gas_pct_lel"].as_f64(), Some(2.5));
    assert_eq!(s["oxygen_pct_vol"].as_f64(), Some(20.9));
    assert_eq!(s["oldest_container_age_d"].as_f64(), Some(1.0));
    assert!(
        s.get("toxic_gas_pct_of_limit").is_none_or(|v| v.is_null()),
        "absent sensor writes no field"
    );

    let f = &influx_rows(&db, "SELECT * FROM truck_fix")[0];
    assert_eq!(f["lat"].as_f64(), Some(34.700013));
    assert_eq!(f["speed_kmh"].as_f64(), Some(32.5));
    assert_eq!(f["loaded"].as_bool(), Some(true));
    assert_eq!(f["satellites"].as_i64(), Some(9));

    let st = &influx_rows(&db, "SELECT * FROM device_status")[0];
    assert_eq!(st["status"].as_str(), Some("heartbeat"));
    assert_eq!(st["device_kind"].as_str(), Some("bin"));
    assert_eq!(st["firmware"].as_str(), Some("2.4.1 \"beta\""));
    assert_eq!(st["signal_dbm"].as_i64(), Some(-87));
    assert_eq!(svc.metric("ingest_acks_total"), 6);
    svc.stop();
}

fn vm_export(base: &str, matcher: &str) -> Vec<serde_json::Value> {
    let _ = http_get(&format!("{base}/internal/force_flush"));
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("{base}/api/v1/export"),
            "--data-urlencode",
            &format!("match[]={matcher}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn vm_value(series: &[serde_json::Value], name: &str) -> Option<(f64, i64)> {
    series
        .iter()
        .find(|s| s["metric"]["__name__"] == name)
        .map(|s| {
            (
                s["values"][0].as_f64().unwrap(),
                s["timestamps"][0].as_i64().unwrap(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_lands_with_exact_values_in_victoriametrics_through_the_v2_api() {
    let tag = unique("kinds2");
    let zone = Zone::new(&tag);
    let data = tempfile::tempdir().unwrap();
    let vm = env("WW_TEST_VM");
    let envs = service_env(
        &zone,
        &format!("ww-{tag}"),
        data.path(),
        &[
            ("WASTEWATCH__TSDB__KIND", "influxdb_v2"),
            ("WASTEWATCH__TSDB__URL", &vm),
            ("WASTEWATCH__TSDB__ORG", "zone"),
            ("WASTEWATCH__TSDB__BUCKET", "wastewatch"),
            ("WASTEWATCH__TSDB__TOKEN", "secret-token"),
        ],
    );
    let svc = Service::start(envs, data.path().join("service.log"));
    let t0 = now_ms() - 60_000;
    let (msgs, _) = messages(&zone, t0);
    assert_eq!(publish_all(format!("pub-{tag}"), msgs, None).await, 6);
    let matcher = format!("{{site=\"{}\"}}", zone.site);
    assert!(
        eventually(Duration::from_secs(20), || vm_value(
            &vm_export(&vm, &matcher),
            "device_status_uptime_s"
        )
        .is_some()
            && vm_export(&vm, &matcher)
                .iter()
                .filter(|s| s["metric"]["__name__"] == "bin_reading_fill_pct")
                .map(|s| s["values"].as_array().map_or(0, |v| v.len()))
                .sum::<usize>()
                == 2),
        "series did not arrive in VictoriaMetrics; log:\n{}",
        std::fs::read_to_string(data.path().join("service.log")).unwrap_or_default()
    );
    let series = vm_export(&vm, &matcher);
    assert_eq!(
        vm_value(&series, "weighbridge_ticket_gross_kg"),
        Some((30_010.0, t0))
    );
    assert_eq!(
        vm_value(&series, "weighbridge_ticket_net_kg"),
        Some((16_010.0, t0))
    );
    assert_eq!(
        vm_value(&series, "storage_reading_stock_kg"),
        Some((1012.0, t0 + 2))
    );
    assert_eq!(
        vm_value(&series, "storage_reading_combustible_gas_pct_lel"),
        Some((2.5, t0 + 2))
    );
    assert_eq!(
        vm_value(&series, "truck_fix_speed_kmh"),
        Some((32.5, t0 + 3))
    );
    assert_eq!(
        vm_value(&series, "truck_fix_lat"),
        Some((34.700013, t0 + 3))
    );
    assert_eq!(
        vm_value(&series, "device_status_uptime_s"),
        Some((3600.0, t0 + 10))
    );
    let ticket = series
        .iter()
        .find(|s| s["metric"]["__name__"] == "weighbridge_ticket_gross_kg")
        .unwrap();
    assert_eq!(ticket["metric"]["category"], "construction_demolition");
    assert_eq!(ticket["metric"]["device"], zone.weighbridge.as_str());
    svc.stop();
}
