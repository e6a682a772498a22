//! Every firmware-sim scenario at once through the real Mosquitto, the real
//! service and InfluxDB 1.x: each scenario's "must produce" alert
//! (firmware-sim/SCENARIOS.md) is raised on the device the scenario took,
//! and the devices left to `normal` raise nothing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use wastewatch::sim::{self, Fleet, Scenario, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scenario_raises_its_documented_alert_and_normal_devices_stay_quiet() {
    let tag = unique("scenalerts");
    let db = influx_create_db(&tag.replace('-', "_"));
    let data = tempfile::tempdir().unwrap();
    let zone_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zone");
    let registry = wastewatch::registry::Registry::load_dir(&zone_dir).unwrap();
    let url = env("WW_TEST_INFLUXDB");
    let zone_s = zone_dir.display().to_string();
    let mut envs = service_env(
        &Zone::new(&tag),
        &format!("ww-{tag}"),
        data.path(),
        &[
            ("WASTEWATCH__TSDB__KIND", "influxdb_v1"),
            ("WASTEWATCH__TSDB__URL", &url),
            ("WASTEWATCH__TSDB__DATABASE", &db),
            ("WASTEWATCH__DECODE__REGISTRY_DIR", &zone_s),
            // The simulated evening is replayed fast from the past: its readings
            // arrive hours after device time by design, so widen the staleness
            // check (the production default is 15 min).
            (
                "WASTEWATCH__RULES__THRESHOLDS__QUALITY__STALE_AFTER_MS",
                "172800000",
            ),
        ],
    );
    envs.push((
        "WASTEWATCH__MQTT__SUBSCRIBE".into(),
        "wastewatch/v1/#".into(),
    ));
    let log_path = data.path().join("service.log");
    let svc = Service::start(envs, log_path.clone());

    // Twelve hours back at least, so the whole simulated span is in the past
    // (future device times would be re-stamped and not judged).
    let start = sim::last_local_time_before(now_ms() - 86_400_000 / 2, 20 * 60 + 55);
    let cfg = SimConfig {
        seed: 11,
        scenarios: vec![
            Scenario::StorageOverfill,
            Scenario::StorageOverdue,
            Scenario::RouteDeviation,
            Scenario::IllegalDump,
            Scenario::BinFire,
            Scenario::BinFull,
            Scenario::Overload,
            Scenario::TimeWindow,
        ],
        speedup: 3600.0,
        // 20:55 → about 08:00 CST: the night window and the morning after
        // (the time_window truck only drives outside 21:00-06:00).
        duration: Some(Duration::from_secs(11)),
        start_unix_ms: start,
        ..SimConfig::default()
    };
    let fleet = Fleet::new(&registry, &cfg).unwrap();
    let taken: Vec<(Scenario, String)> = fleet
        .assignments()
        .iter()
        .map(|a| (a.scenario, a.device_id.clone()))
        .collect();
    let (host, port) = mqtt_addr();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let summary = sim::publish(
        fleet,
        &host,
        port,
        &format!("sim-{tag}"),
        &cfg,
        stop_rx,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.acked, summary.sent);
    assert!(eventually(Duration::from_secs(60), || svc
        .metric("ingest_received_total")
        >= summary.acked
        && svc.metric("log_depth_records") == 0));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The alert history in InfluxDB (every state change), not the API's
    // current list: resolved alerts of a replayed day are past retention.
    let raised: BTreeSet<(String, String)> = influx_rows(
        &db,
        "SELECT \"alert_id\", \"rule\", \"entity\" FROM \"alert\" WHERE \"state\" = 'firing'",
    )
    .iter()
    .map(|r| {
        (
            r["rule"].as_str().unwrap_or("").to_owned(),
            r["entity"].as_str().unwrap_or("").to_owned(),
        )
    })
    .collect();
    let has = |rule: &str, device: &str| {
        raised.iter().any(|(r, e)| {
            r == rule
                && (e == device
                    || e.starts_with(&format!("{device}/"))
                    || e.ends_with(&format!("/{device}")))
        })
    };
    let mut failures = Vec::new();
    for (scenario, device) in &taken {
        let want: &[&str] = match scenario {
            Scenario::StorageOverfill => &["storage_point_over_limit"],
            Scenario::StorageOverdue if device.contains("med") => &["medical_lot_age"],
            Scenario::StorageOverdue => &["storage_age"],
            Scenario::RouteDeviation => &["route_deviation"],
            Scenario::IllegalDump => &["suspected_dumping", "body_lifted_outside_site"],
            Scenario::BinFire => &["bin_fire"],
            Scenario::BinFull => &["bin_nearly_full"],
            Scenario::TimeWindow => &["outside_time_window"],
            _ => &[],
        };
        for rule in want {
            if !has(rule, device) {
                failures.push(format!(
                    "{} on {device}: no {rule} alert",
                    scenario.as_str()
                ));
            }
        }
    }
    if taken.iter().any(|(s, _)| *s == Scenario::Overload)
        && !raised.iter().any(|(r, _)| r == "overload")
    {
        failures.push("overload: no overload alert".into());
    }
    // Devices no scenario took behave as `normal`: no alert at all.
    let busy: BTreeSet<&str> = taken.iter().map(|(_, d)| d.as_str()).collect();
    for (rule, entity) in &raised {
        let device = entity.split('/').next().unwrap_or(entity);
        let plate_entity = rule == "overload" || rule == "unapproved_vehicle";
        if !plate_entity
            && !busy.contains(device)
            && !taken.iter().any(|(_, d)| entity.contains(d.as_str()))
        {
            failures.push(format!("normal device raised {rule} on {entity}"));
        }
    }
    let tw = taken
        .iter()
        .find(|(s, _)| *s == Scenario::TimeWindow)
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    let tw_fixes = influx_rows(&db, &format!("SELECT first(\"lat\"), last(\"lat\"), count(\"lat\") FROM truck_fix WHERE device = '{tw}' AND loaded = true"));
    assert!(
        failures.is_empty(),
        "{}\nassignments: {taken:?}\nalerts raised: {raised:?}\nsim {} .. {}\ntime-window truck loaded fixes: {tw_fixes:?}",
        failures.join("\n"),
        sim::format_local(summary.sim_start_unix_ms),
        sim::format_local(summary.sim_end_unix_ms)
    );
    // The API lists the alerts still within retention.
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap())
            .unwrap();
    assert!(!listed.is_empty());
    svc.stop();
}
