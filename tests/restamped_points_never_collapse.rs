//! Re-stamped readings (device clock out of range) through the real broker,
//! service and InfluxDB 1.x: distinct messages never collapse into one
//! point, and a redelivered message rewrites its own point.
//!
//! The collision this guards against was seen in the scenario test: a
//! truck whose clock runs 2 h fast sends some readings just inside the
//! accepted window (trusted, point time = device time) and later ones
//! outside it (point time = receive time). A receive time can equal the
//! device time of a trusted reading of the same device, and in one series
//! the later write replaced the earlier reading.

use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

const DAY_MS: i64 = 24 * 3600 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restamped_readings_never_overwrite_a_neighbour() {
    let setup = V1Setup::new("restamp", &[]);
    let (tag, zone, db) = (&setup.tag, &setup.zone, &setup.db);
    let svc = setup.start();

    // 1. A reading stamped a day ahead: stored at its receive time R.
    let before = now_ms();
    let first = zone.envelope(DeviceKind::Bin, 1, now_ms() + DAY_MS);
    assert_eq!(
        publish_all(format!("pub1-{tag}"), vec![Msg::pb(zone, &first)], None).await,
        1
    );
    assert!(
        eventually(Duration::from_secs(20), || stored_seqs(db, "bin_reading")
            .len()
            == 1),
        "the re-stamped reading never arrived; log:\n{}",
        setup.log()
    );
    let row = influx_rows(db, "SELECT * FROM bin_reading WHERE seq = 1")[0].clone();
    let r = row["time"].as_i64().unwrap();
    assert!(
        (before..=now_ms()).contains(&r),
        "point time {r} is the receive time"
    );
    assert_eq!(row["clock_restamped"].as_bool(), Some(true));
    assert_eq!(
        row["device_time_ms"].as_i64(),
        Some(first.recorded_at_unix_ms)
    );

    // 2. A trusted reading of the same device whose own time is exactly R,
    //    then a burst of re-stamped readings (most land in one millisecond),
    //    then the burst's first message again (a redelivery).
    let mut msgs = vec![Msg::pb(zone, &zone.envelope(DeviceKind::Bin, 2, r))];
    let ahead = now_ms() + DAY_MS;
    for seq in 3..=40 {
        msgs.push(Msg::pb(zone, &zone.envelope(DeviceKind::Bin, seq, ahead)));
    }
    msgs.push(Msg::pb(zone, &zone.envelope(DeviceKind::Bin, 3, ahead)));
    assert_eq!(publish_all(format!("pub2-{tag}"), msgs, None).await, 40);

    let want: std::collections::BTreeSet<u64> = (1..=40).collect();
    let seqs = || -> std::collections::BTreeSet<u64> {
        stored_seqs(db, "bin_reading")
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    };
    let ok = eventually(Duration::from_secs(30), || {
        seqs() == want && svc.metric("log_depth_records") == 0
    });
    assert!(
        ok,
        "every distinct reading is its own point: missing {:?}; log:\n{}",
        want.difference(&seqs()).collect::<Vec<_>>(),
        setup.log()
    );
    let points = influx_rows(db, "SELECT seq, \"clock\", time FROM bin_reading");
    assert_eq!(
        points.len(),
        40,
        "one point per message, the redelivery rewrote its own: {points:?}"
    );
    let trusted = influx_rows(db, "SELECT * FROM bin_reading WHERE seq = 2")[0].clone();
    assert_eq!(trusted["time"].as_i64(), Some(r), "trusted: device time");
    assert!(
        trusted.get("clock").is_none_or(|v| v.is_null()),
        "a trusted point carries no clock tag: {trusted:?}"
    );
    let restamped = influx_rows(
        db,
        "SELECT count(seq) FROM bin_reading WHERE \"clock\" = 'restamped'",
    );
    assert_eq!(restamped[0]["count"].as_i64(), Some(39));
    svc.stop();
}
