//! The broker SIGKILLed with a backlog queued for our session, under the
//! shipped config (persistence on, `autosave_interval 10`): what the broker
//! had saved before it died reaches the service exactly once when both come
//! back. docs/RELIABILITY.md "What the shipped broker config promises":
//! messages the broker acknowledged to their publisher *after* its last
//! autosave are lost with it (a broker property), so this test waits for an
//! autosave that covers the backlog before the kill.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

/// The test broker's persistence file (scripts/services.sh writes
/// `persistence_location <services dir>/mosquitto/data/`).
fn broker_db() -> PathBuf {
    PathBuf::from(env("WW_SERVICES_DIR")).join("mosquitto/data/mosquitto.db")
}

fn modified(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_the_broker_saved_survives_its_sigkill() {
    let setup = V1Setup::new("brokerkill", &[]);
    let (tag, zone, db) = (&setup.tag, &setup.zone, &setup.db);
    let log_path = setup.data.path().join("service.log");
    let t0 = now_ms() - 3_600_000;
    let msg = |s: u64| {
        Msg::pb(
            zone,
            &zone.envelope(DeviceKind::Storage, s, t0 + s as i64 * 1000),
        )
    };

    // The service subscribes (its first message stored proves it), then
    // goes away gracefully: its persistent session stays on the broker.
    let svc = Service::start(setup.envs.clone(), log_path.clone());
    assert_eq!(
        publish_all(format!("pub-{tag}-0"), vec![msg(1)], None).await,
        1
    );
    assert!(
        eventually(Duration::from_secs(30), || stored_seqs(
            db,
            "storage_reading"
        )
        .len()
            == 1),
        "the service never stored its first message"
    );
    svc.stop();

    // A backlog for the absent session, every message acked by the broker.
    let n = 2000u64;
    assert_eq!(
        publish_all(format!("pub-{tag}-a"), (2..=n).map(msg).collect(), None).await,
        (n - 1) as usize
    );
    let published = SystemTime::now();
    // Wait for an autosave after the last PUBACK (at most 10 s later with
    // the shipped config).
    let db_file = broker_db();
    assert!(
        eventually(Duration::from_secs(30), || modified(&db_file)
            .is_some_and(|m| m > published)),
        "the broker never saved its state to {} after the backlog",
        db_file.display()
    );
    services(&["crash", "mosquitto"]);
    append_note(&log_path, "---- test: mosquitto SIGKILLed and started ----");

    let svc = Service::start(setup.envs.clone(), log_path.clone());
    let want: std::collections::BTreeSet<_> = (1..=n).map(|s| (zone.storage.clone(), s)).collect();
    let ok = eventually(Duration::from_secs(60), || {
        stored_seqs(db, "storage_reading").len() == want.len()
    });
    let got = stored_seqs(db, "storage_reading");
    assert!(
        ok,
        "{} of {n} missing after the broker's SIGKILL; log:\n{}",
        want.len() - got.len(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let verdict = oracle::exactly_once(db, &["storage_reading"], &want, &Default::default());
    assert!(verdict.ok(), "{verdict:?}");
    svc.stop();
}
