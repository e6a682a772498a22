//! The TSDB stopped for a while mid-stream, then restarted: every published
//! (device, seq) arrives, and ingest kept acking meanwhile (the outage is
//! absorbed by the durable log, not pushed back onto the broker).

use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_after_an_influxdb_outage() {
    let setup = V1Setup::new("outage", &[]);
    let (tag, zone, db, data, envs) = (
        &setup.tag,
        &setup.zone,
        &setup.db,
        &setup.data,
        setup.envs.clone(),
    );
    let log_path = data.path().join("service.log");
    let svc = Service::start(envs, log_path.clone());
    let t0 = now_ms() - 3_600_000;
    let n = 3000u64;
    let msgs: Vec<Msg> = (1..=n)
        .map(|seq| {
            Msg::pb(
                zone,
                &zone.envelope(DeviceKind::Truck, seq, t0 + seq as i64 * 1000),
            )
        })
        .collect();
    let publisher = tokio::spawn(publish_all(
        format!("pub-{tag}"),
        msgs,
        Some(Duration::from_millis(2)),
    ));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    services(&["stop", "influxdb"]);
    append_note(&log_path, "---- test: influxdb stopped ----");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = svc.metrics();
    assert_eq!(
        metric_value(&during, "tsdb_up"),
        0,
        "writer noticed the outage"
    );
    assert!(metric_value(&during, "tsdb_retryable_errors_total") > 0);
    assert!(
        metric_value(&during, "log_depth_records") > 0,
        "records wait in the log"
    );
    let acks_during = metric_value(&during, "ingest_acks_total");
    services(&["start", "influxdb"]);
    append_note(&log_path, "---- test: influxdb started ----");

    assert_eq!(publisher.await.unwrap(), n as usize);
    assert!(
        acks_during > 0,
        "ingest kept acking while the TSDB was down"
    );
    let want: std::collections::BTreeSet<_> = (1..=n).map(|s| (zone.truck.clone(), s)).collect();
    let ok = eventually(Duration::from_secs(60), || {
        stored_seqs(db, "truck_fix").len() == want.len()
    });
    let got = stored_seqs(db, "truck_fix");
    assert!(
        ok,
        "{} of {n} missing after the outage; log:\n{}",
        want.len() - got.len(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert_eq!(got, want);
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("tsdb_up")
        == 1
        && svc.metric("log_depth_records") == 0));
    svc.stop();
}
