//! With the TSDB unreachable and a small log bound, ingest fills the durable
//! log, then stops acking (the broker holds the rest), says so in `/metrics`
//! and `/readyz`, and loses nothing: once the TSDB is reachable everything
//! published arrives.

use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_stops_acks_and_nothing_is_lost() {
    let tag = unique("logfull");
    let zone = Zone::new(&tag);
    let db = influx_create_db(&tag.replace('-', "_"));
    let data = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let url = env("WW_TEST_INFLUXDB");
    let base = service_env(
        &zone,
        &format!("ww-{tag}"),
        data.path(),
        &[
            ("WASTEWATCH__TSDB__KIND", "influxdb_v1"),
            ("WASTEWATCH__TSDB__DATABASE", &db),
            ("WASTEWATCH__LOG__MAX_BYTES", "1048576"),
        ],
    );
    let mut envs = base.clone();
    envs.push(("WASTEWATCH__TSDB__URL".into(), dead));
    let log_path = data.path().join("service.log");
    let svc = Service::start(envs, log_path.clone());

    // ~150 B per record: 12,000 records are well over the 1 MiB bound.
    let n = 12_000u64;
    let t0 = now_ms() - 86_400_000;
    let msgs: Vec<Msg> = (1..=n)
        .map(|s| {
            Msg::pb(
                &zone,
                &zone.envelope(DeviceKind::Truck, s, t0 + s as i64 * 1000),
            )
        })
        .collect();
    assert_eq!(
        publish_all(format!("pub-{tag}"), msgs, None).await,
        n as usize,
        "the broker accepts everything"
    );
    assert!(
        eventually(Duration::from_secs(30), || svc.metric("log_full") == 1),
        "log never reported full; metrics:\n{}",
        svc.metrics()
    );
    let acks = svc.metric("ingest_acks_total");
    assert!(
        acks < n,
        "ingest stopped acking before the end ({acks} of {n})"
    );
    assert!(svc.metric("log_bytes") <= 1_048_576);
    let ready = http_get(&format!("http://{}/readyz", svc.http)).unwrap();
    assert!(ready.contains("\"log_writable\":false"), "{ready}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(svc.metric("ingest_acks_total"), acks, "no acks while full");
    assert!(
        std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("durable log full"),
        "the stall is logged"
    );
    svc.stop();

    // Same session and log, TSDB reachable: the log drains, acks resume,
    // the broker delivers the rest, everything is stored.
    let mut envs = base;
    envs.push(("WASTEWATCH__TSDB__URL".into(), url));
    let svc = Service::start(envs, log_path.clone());
    let want: std::collections::BTreeSet<_> = (1..=n).map(|s| (zone.truck.clone(), s)).collect();
    let ok = eventually(Duration::from_secs(90), || {
        stored_seqs(&db, "truck_fix").len() == want.len()
    });
    let got = stored_seqs(&db, "truck_fix");
    assert!(
        ok,
        "{} of {n} missing; log:\n{}",
        want.len() - got.len(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert_eq!(got, want);
    // The one oracle: every acknowledged message exactly once (a second
    // point with another time would not show in the set above).
    let verdict =
        wastewatch_test_kit::oracle::exactly_once(&db, &["truck_fix"], &want, &Default::default());
    assert!(verdict.ok(), "{verdict:?}");
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("log_full")
        == 0));
    svc.stop();
}
