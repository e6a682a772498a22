//! When InfluxDB refuses some lines (400: a field type conflict), only those
//! lines are quarantined as `tsdb_rejected`; the rest of the batch is written
//! and the cursor moves on (no retry loop, no loss of neighbours). Also checks
//! that the pipeline counters reach InfluxDB as `wastewatch_pipeline`.

use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_lines_are_quarantined_and_the_rest_is_written() {
    let tag = unique("rejected");
    let zone = Zone::new(&tag);
    let db = influx_create_db(&tag.replace('-', "_"));
    // Make `storage_reading.stock_kg` a string field: every later float
    // write of it is a type conflict (HTTP 400, "partial write").
    let base = env("WW_TEST_INFLUXDB");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-XPOST",
            &format!("{base}/write?db={db}&precision=ms"),
            "--data-binary",
            &format!(
                "storage_reading,site=x stock_kg=\"text\" {}",
                now_ms() - 60_000
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204");

    let data = tempfile::tempdir().unwrap();
    let envs = service_env(
        &zone,
        &format!("ww-{tag}"),
        data.path(),
        &[
            ("WASTEWATCH__TSDB__KIND", "influxdb_v1"),
            ("WASTEWATCH__TSDB__URL", &base),
            ("WASTEWATCH__TSDB__DATABASE", &db),
            ("WASTEWATCH__TSDB__STATS_INTERVAL_MS", "300"),
            ("WASTEWATCH__TSDB__BATCH_MAX_AGE_MS", "500"),
        ],
    );
    let svc = Service::start(envs, data.path().join("service.log"));
    let t0 = now_ms() - 30_000;
    let mut msgs = Vec::new();
    for seq in 1..=50u64 {
        msgs.push(Msg::pb(
            &zone,
            &zone.envelope(DeviceKind::Bin, seq, t0 + seq as i64),
        ));
        if seq % 10 == 0 {
            msgs.push(Msg::pb(
                &zone,
                &zone.envelope(DeviceKind::Storage, seq, t0 + seq as i64),
            ));
        }
    }
    assert_eq!(publish_all(format!("pub-{tag}"), msgs, None).await, 55);
    assert!(
        eventually(Duration::from_secs(30), || stored_seqs(&db, "bin_reading")
            .len()
            == 50
            && svc.metric("ingest_quarantined_total{reason=\"tsdb_rejected\"}")
                == 5),
        "bins stored: {}, metrics:\n{}\nlog:\n{}",
        stored_seqs(&db, "bin_reading").len(),
        svc.metrics(),
        std::fs::read_to_string(data.path().join("service.log")).unwrap_or_default()
    );
    assert!(svc.metric("tsdb_splits_total") > 0);
    // The TSDB writer's cursor moves past the batch with the refused lines
    // (the other stages' cursors move with their snapshots, and the KPI
    // stage appends points of its own, so the log's depth is not the
    // measure here).
    assert!(
        eventually(Duration::from_secs(10), || svc
            .metric("log_tsdb_lag_records")
            == 0),
        "the TSDB cursor did not move past the batch; metrics:\n{}",
        svc.metrics()
    );
    let q: Vec<serde_json::Value> =
        serde_json::from_str(&http_get(&format!("http://{}/api/v1/quarantine", svc.http)).unwrap())
            .unwrap();
    let rejected: Vec<_> = q
        .iter()
        .filter(|e| e["reason"] == "tsdb_rejected")
        .collect();
    assert_eq!(rejected.len(), 5);
    assert!(
        rejected
            .iter()
            .all(|e| e["detail"].as_str().unwrap().contains("conflict")),
        "{rejected:?}"
    );

    // Pipeline counters arrive as a measurement of their own.
    assert!(
        eventually(Duration::from_secs(10), || {
            influx_rows(
            &db,
            &format!(
                "SELECT last(\"ingest_decoded_total\") FROM wastewatch_pipeline WHERE instance = '{CLIENT_ID_PREFIX}ww-{tag}'"
            )
        )
        .first()
        .and_then(|r| r["last"].as_i64())
            == Some(55)
        }),
        "wastewatch_pipeline point with ingest_decoded_total=55 not found"
    );
    svc.stop();
}
