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

    // Stop InfluxDB once ingest is well under way (not after a fixed sleep).
    assert!(
        eventually(Duration::from_secs(20), || svc.metric("tsdb_points_total")
            > 0),
        "nothing written before the outage"
    );
    services(&["stop", "influxdb"]);
    append_note(&log_path, "---- test: influxdb stopped ----");
    let acks_at_stop = svc.metric("ingest_acks_total");
    // During the outage: the writer notices, records wait in the log, and
    // ingest goes on acking — acks made after the stop, not before it.
    assert!(
        eventually(Duration::from_secs(20), || {
            let m = svc.metrics();
            metric_value(&m, "tsdb_up") == 0
                && metric_value(&m, "tsdb_retryable_errors_total") > 0
                && metric_value(&m, "log_tsdb_lag_records") > 0
                && metric_value(&m, "ingest_acks_total") > acks_at_stop + 200
        }),
        "during the outage ingest must keep acking while records wait; metrics:\n{}",
        svc.metrics()
    );
    services(&["start", "influxdb"]);
    append_note(&log_path, "---- test: influxdb started ----");

    assert_eq!(publisher.await.unwrap(), n as usize);
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
    // The one oracle: every acknowledged message exactly once (a second
    // point with another time would not show in the set above).
    let verdict =
        wastewatch_test_kit::oracle::exactly_once(db, &["truck_fix"], &want, &Default::default());
    assert!(verdict.ok(), "{verdict:?}");
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("tsdb_up")
        == 1
        && svc.metric("log_depth_records") == 0));
    svc.stop();
}
