//! Grafana cannot run here, so every panel query of every dashboard in
//! `dashboards/` is executed against the real InfluxDB 1.x, on data that went
//! through the real pipeline: each must succeed and return data.

use std::time::Duration;

use wastewatch::pb::{self, envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

fn panel_queries() -> Vec<(String, String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(d["uid"].is_string(), "{} has a uid", path.display());
        for p in d["panels"].as_array().unwrap() {
            assert_eq!(
                p["datasource"]["uid"], "wastewatch-influxdb",
                "panel {} uses the provisioned datasource",
                p["title"]
            );
            for t in p["targets"].as_array().unwrap() {
                out.push((
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    p["title"].as_str().unwrap().to_owned(),
                    t["query"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_query_runs_and_returns_data() {
    let queries = panel_queries();
    assert!(
        queries.len() >= 15,
        "dashboards have {} queries",
        queries.len()
    );
    let tag = unique("dash");
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
            ("WASTEWATCH__TSDB__STATS_INTERVAL_MS", "250"),
        ],
    );
    let svc = Service::start(envs, data.path().join("service.log"));
    let now = now_ms();
    let mut msgs = Vec::new();
    for seq in 1..=90u64 {
        let t = now - 3_600_000 + seq as i64 * 30_000;
        for k in [DeviceKind::Bin, DeviceKind::Storage, DeviceKind::Truck] {
            msgs.push(Msg::pb(&zone, &zone.envelope(k, seq, t)));
        }
        let mut ticket = zone.envelope(DeviceKind::Weighbridge, seq, t);
        if let (true, Some(Body::WeighbridgeTicket(tk))) = (seq % 3 == 0, ticket.body.as_mut()) {
            tk.destination_type = pb::DestinationType::Landfill as i32;
        }
        msgs.push(Msg::pb(&zone, &ticket));
    }
    let mut status = zone.envelope(DeviceKind::Bin, 1000, now - 1000);
    status.body = Some(Body::DeviceStatus(pb::DeviceStatus {
        kind: 2,
        firmware_version: "1.0".into(),
        battery_mv: 3600,
        signal_dbm: None,
        uptime_s: 10,
    }));
    msgs.push(Msg::pb(&zone, &status));
    // A device clock one hour fast: re-stamped (fill 85.25 %, the last reading).
    msgs.push(Msg::pb(
        &zone,
        &zone.envelope(DeviceKind::Bin, 1085, now + 3_600_000),
    ));
    let total = msgs.len();
    assert_eq!(publish_all(format!("pub-{tag}"), msgs, None).await, total);
    assert!(eventually(Duration::from_secs(30), || stored_seqs(
        &db,
        "bin_reading"
    )
    .len()
        == 91));
    // Two stats points at least, so derivatives have something to work on.
    tokio::time::sleep(Duration::from_millis(2600)).await;

    let mut failures = Vec::new();
    for (file, title, q) in &queries {
        let sql = q
            .replace("$timeFilter", "time > now() - 6h")
            .replace("$__interval", "1s");
        let v = influx_query(&db, &sql);
        let r = &v["results"][0];
        if let Some(e) = r["error"].as_str() {
            failures.push(format!("{file} / {title}: error {e}\n    {sql}"));
        } else if r["series"].as_array().is_none_or(|s| s.is_empty()) {
            failures.push(format!("{file} / {title}: no data\n    {sql}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} panel queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
    svc.stop();
}
