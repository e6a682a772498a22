//! An alert end to end: a leak reading through the real broker fires the
//! `leak` alert; it is listed by the API, written to InfluxDB as an `alert`
//! point and posted to the real Alertmanager; it is acknowledged through the
//! API; it survives a restart of the service (same id, no duplicate); and it
//! resolves when the sump is dry again.

use std::time::Duration;

use wastewatch::pb::{envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

fn alerts(svc: &Service) -> Vec<serde_json::Value> {
    serde_json::from_str(
        &http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap_or_default(),
    )
    .unwrap_or_default()
}

fn leak_alerts(svc: &Service) -> Vec<serde_json::Value> {
    alerts(svc)
        .into_iter()
        .filter(|a| a["key"]["rule"] == "leak")
        .collect()
}

fn storage(zone: &Zone, seq: u64, leak: bool) -> Msg {
    let mut e = zone.envelope(DeviceKind::Storage, seq, now_ms() - 500);
    if let Some(Body::StorageReading(s)) = e.body.as_mut() {
        s.leak_detected = leak;
    }
    Msg::pb(zone, &e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_fires_is_recorded_notified_acknowledged_persisted_and_resolved() {
    let tag = unique("alerts");
    let zone = Zone::new(&tag);
    let db = influx_create_db(&tag.replace('-', "_"));
    let data = tempfile::tempdir().unwrap();
    let url = env("WW_TEST_INFLUXDB");
    let am = env("WW_TEST_ALERTMANAGER");
    let envs = service_env(
        &zone,
        &format!("ww-{tag}"),
        data.path(),
        &[
            ("WASTEWATCH__TSDB__KIND", "influxdb_v1"),
            ("WASTEWATCH__TSDB__URL", &url),
            ("WASTEWATCH__TSDB__DATABASE", &db),
            ("WASTEWATCH__NOTIFY__ALERTMANAGER_URL", &am),
            ("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "200"),
        ],
    );
    let log_path = data.path().join("service.log");
    let svc = Service::start(envs.clone(), log_path.clone());
    let msgs = vec![
        storage(&zone, 1, false),
        storage(&zone, 2, false),
        storage(&zone, 3, true),
    ];
    assert_eq!(publish_all(format!("pub-{tag}-1"), msgs, None).await, 3);

    assert!(
        eventually(Duration::from_secs(20), || leak_alerts(&svc)
            .iter()
            .any(|a| a["state"] == "firing")),
        "no firing leak alert; alerts {:?}\nlog:\n{}",
        alerts(&svc),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let a = leak_alerts(&svc).remove(0);
    assert_eq!(a["key"]["entity"], zone.storage.as_str());
    assert_eq!(a["severity"], "critical");
    let id = a["id"].as_u64().unwrap();

    // Recorded in InfluxDB.
    assert!(eventually(Duration::from_secs(10), || {
        influx_rows(&db, "SELECT * FROM \"alert\" WHERE \"rule\" = 'leak'")
            .iter()
            .any(|r| r["state"] == "firing" && r["entity"] == zone.storage.as_str())
    }));
    // Notified to the real Alertmanager.
    let am_has = || {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&http_get(&format!("{am}/api/v2/alerts")).unwrap_or_default())
                .unwrap_or_default();
        v.iter().any(|x| {
            x["labels"]["alertname"] == "leak"
                && x["labels"]["entity"] == zone.storage.as_str()
                && x["labels"]["severity"] == "critical"
        })
    };
    assert!(
        eventually(Duration::from_secs(15), am_has),
        "alertmanager did not receive the alert"
    );

    // Acknowledge through the API: who is the token's name.
    let (status, answer) = http_post_json(
        &format!("http://{}/api/v1/alerts/{id}/ack", svc.http),
        "{\"reason\":\"on-call is on it\"}",
    );
    assert_eq!(status, 200, "{answer}");
    let acked: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], API_TOKEN_NAME);
    assert_eq!(acked["history"][0]["reason"], "on-call is on it");
    let (status, _) = http_post_json(
        &format!("http://{}/api/v1/alerts/999999/ack", svc.http),
        "{}",
    );
    assert_eq!(status, 404);

    // Restart: the alert survives with its id and state, and is not raised again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    svc.stop();
    let svc = Service::start(envs, log_path.clone());
    let again = leak_alerts(&svc);
    assert_eq!(
        again.len(),
        1,
        "exactly one leak alert after restart: {again:?}"
    );
    assert_eq!(again[0]["id"].as_u64(), Some(id));
    assert_eq!(again[0]["state"], "acknowledged");

    // Dry sump: resolved.
    assert_eq!(
        publish_all(format!("pub-{tag}-2"), vec![storage(&zone, 4, false)], None).await,
        1
    );
    assert!(
        eventually(Duration::from_secs(20), || leak_alerts(&svc)
            .iter()
            .any(|a| a["state"] == "resolved")),
        "leak alert not resolved: {:?}",
        leak_alerts(&svc)
    );
    assert!(eventually(Duration::from_secs(10), || {
        influx_rows(&db, "SELECT * FROM \"alert\" WHERE \"rule\" = 'leak'")
            .iter()
            .any(|r| r["state"] == "resolved")
    }));
    svc.stop();
}
