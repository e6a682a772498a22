//! Every firmware-sim scenario, run together through the real Mosquitto into
//! the real service and InfluxDB 1.x: what arrives matches what the
//! simulator documents having sent — every valid (device, seq) stored
//! exactly once (duplicates collapse onto the same point), every deliberate
//! fault quarantined under its documented reason, nothing else.
//! (Alert expectations in SCENARIOS.md need the rule engine, not built yet.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use firmware_sim::{self as sim, Fleet, Scenario, SimConfig};
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_arrives_as_the_simulator_documents() {
    let setup = V1Setup::shipped_zone("scen", &[]);
    let (db, log_path) = (&setup.db, &setup.log_path);
    let (_, registry) = shipped_zone();
    let svc = setup.start();

    // Start just before the permits' night window so truck scenarios drive.
    let start = sim::last_local_time_before(now_ms() - 60_000, 20 * 60 + 55);
    let writer = writer();
    let publisher = writer.name.clone();
    let cfg = SimConfig {
        // One connection for the whole fleet: a test-only writer identity.
        auth: sim::MqttAuth {
            shared: Some((publisher.clone(), writer.password.clone())),
            client_id_prefix: CLIENT_ID_PREFIX.into(),
            ..Default::default()
        },
        seed: 7,
        scenarios: Scenario::ALL.to_vec(),
        speedup: 600.0,
        count: Some(4000),
        rate_per_s: Some(4000.0),
        start_unix_ms: start,
        ..SimConfig::default()
    };
    let fleet = Fleet::new(&registry, &cfg).unwrap();
    let (host, port) = mqtt_addr();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let summary = sim::publish(fleet, &host, port, &publisher, &cfg, stop_rx, |_| {})
        .await
        .unwrap();
    assert_eq!(summary.acked, summary.sent, "the broker acked everything");
    assert!(
        summary.expected_quarantined > 0 && summary.duplicates_sent > 0,
        "faults were exercised: {summary:?}"
    );

    let measurements = [
        "weighbridge_ticket",
        "bin_reading",
        "storage_reading",
        "truck_fix",
        "device_status",
    ];
    let stored = || -> BTreeSet<(String, u64)> {
        measurements
            .iter()
            .flat_map(|m| stored_seqs(db, m))
            .collect()
    };
    let mut want = BTreeSet::new();
    for (id, d) in &summary.devices {
        for &(a, b) in d.ranges.ranges() {
            for s in a..=b {
                want.insert((id.clone(), s));
            }
        }
    }
    let ok = eventually(Duration::from_secs(60), || {
        stored().len() >= want.len() && svc.metric("log_depth_records") == 0
    });
    let got = stored();
    let missing: Vec<_> = want.difference(&got).take(10).collect();
    let extra: Vec<_> = got.difference(&want).take(10).collect();
    assert!(
        ok && missing.is_empty() && extra.is_empty(),
        "missing {missing:?} extra {extra:?} ({} want, {} got); log:\n{}",
        want.len(),
        got.len(),
        std::fs::read_to_string(log_path).unwrap_or_default()
    );

    // Faults: quarantined under the documented reasons, and nothing else.
    let m = svc.metrics();
    let mut got_reasons = BTreeMap::new();
    for l in m
        .lines()
        .filter(|l| l.starts_with("ingest_quarantined_total{"))
    {
        let reason = l.split('"').nth(1).unwrap().to_owned();
        let v = metric_value(&m, l.split(' ').next().unwrap());
        if v > 0 {
            got_reasons.insert(reason, v);
        }
    }
    assert_eq!(
        got_reasons, summary.expected_quarantined_by_reason,
        "quarantine by reason"
    );
    svc.stop();
}
