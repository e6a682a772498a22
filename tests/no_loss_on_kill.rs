//! Ingest killed with SIGKILL several times mid-stream and restarted: every
//! (device, seq) the broker acked to the publisher is stored.

use std::collections::BTreeSet;
use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_message_is_stored_across_repeated_sigkill() {
    let setup = V1Setup::new("kill", &[]);
    let (tag, zone, db, data, envs) = (
        &setup.tag,
        &setup.zone,
        &setup.db,
        &setup.data,
        setup.envs.clone(),
    );
    let log_path = data.path().join("service.log");
    let mut svc = Service::start(envs.clone(), log_path.clone());

    let t0 = now_ms() - 3_600_000;
    let n = 1500u64;
    let kinds = [DeviceKind::Bin, DeviceKind::Storage, DeviceKind::Truck];
    let mut msgs = Vec::new();
    let mut sent = BTreeSet::new();
    for seq in 1..=n {
        for k in kinds {
            let e = zone.envelope(k, seq, t0 + seq as i64 * 1000);
            sent.insert((e.device_id.clone(), seq));
            msgs.push(Msg::pb(zone, &e));
        }
    }
    let total = msgs.len();
    let publisher = tokio::spawn(publish_all(
        format!("pub-{tag}"),
        msgs,
        Some(Duration::from_micros(1500)),
    ));

    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(900 + round * 300)).await;
        svc.kill9();
        append_note(
            &log_path,
            &format!("---- test: SIGKILL #{} ----", round + 1),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        svc = Service::start(envs.clone(), log_path.clone());
    }
    let acked = publisher.await.unwrap();
    assert_eq!(acked, total, "the broker acked every publish");

    let stored = || {
        let mut s = stored_seqs(db, "bin_reading");
        s.extend(stored_seqs(db, "storage_reading"));
        s.extend(stored_seqs(db, "truck_fix"));
        s
    };
    let ok = eventually(Duration::from_secs(60), || stored().len() == sent.len());
    let got = stored();
    let missing: Vec<_> = sent.difference(&got).take(10).collect();
    assert!(
        ok,
        "{} of {} acked messages missing after SIGKILLs, e.g. {missing:?}; log:\n{}",
        sent.len() - got.len(),
        sent.len(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert_eq!(got, sent);
    let verdict = wastewatch_test_kit::oracle::exactly_once(
        db,
        &["bin_reading", "storage_reading", "truck_fix"],
        &sent,
        &Default::default(),
    );
    assert!(verdict.ok(), "{verdict:?}");
    svc.stop();
}
