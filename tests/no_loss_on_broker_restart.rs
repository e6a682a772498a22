//! The broker restarted mid-stream (with the shipped config: persistence on):
//! nothing the broker acked to the publisher is lost.

use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_broker_restarts_mid_stream() {
    let setup = V1Setup::new("brokerrestart", &[]);
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

    // First half, then restart the broker, then the second half: each
    // publish_all waits for the broker's PUBACK of every message.
    let half = 1000u64;
    let first: Vec<Msg> = (1..=half)
        .map(|s| {
            Msg::pb(
                zone,
                &zone.envelope(DeviceKind::Storage, s, t0 + s as i64 * 1000),
            )
        })
        .collect();
    let publisher = tokio::spawn(publish_all(
        format!("pub-{tag}-a"),
        first,
        Some(Duration::from_millis(1)),
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(publisher.await.unwrap(), half as usize);
    services(&["restart", "mosquitto"]);
    append_note(&log_path, "---- test: mosquitto restarted ----");
    let second: Vec<Msg> = (half + 1..=2 * half)
        .map(|s| {
            Msg::pb(
                zone,
                &zone.envelope(DeviceKind::Storage, s, t0 + s as i64 * 1000),
            )
        })
        .collect();
    assert_eq!(
        publish_all(format!("pub-{tag}-b"), second, None).await,
        half as usize
    );

    let want: std::collections::BTreeSet<_> =
        (1..=2 * half).map(|s| (zone.storage.clone(), s)).collect();
    let ok = eventually(Duration::from_secs(60), || {
        stored_seqs(db, "storage_reading").len() == want.len()
    });
    let got = stored_seqs(db, "storage_reading");
    assert!(
        ok,
        "{} missing after the broker restart; log:\n{}",
        want.len() - got.len(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert_eq!(got, want);
    // The one oracle: every acknowledged message exactly once (a second
    // point with another time would not show in the set above).
    let verdict = wastewatch_test_kit::oracle::exactly_once(
        db,
        &["storage_reading"],
        &want,
        &Default::default(),
    );
    assert!(verdict.ok(), "{verdict:?}");
    assert!(
        svc.metric("mqtt_connection_errors_total") >= 1,
        "the service saw the broker go away"
    );
    svc.stop();
}
