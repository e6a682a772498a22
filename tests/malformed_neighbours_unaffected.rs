//! Malformed and oversized payloads mixed into a stream: every valid
//! neighbour is stored, every bad message is quarantined with its reason,
//! and the counters match.

use std::time::Duration;

use prost::Message;
use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_quarantined_and_neighbours_are_unaffected() {
    let setup = V1Setup::new("malformed", &[]);
    let (tag, zone, db, data, envs) = (
        &setup.tag,
        &setup.zone,
        &setup.db,
        &setup.data,
        setup.envs.clone(),
    );
    let svc = Service::start(envs, data.path().join("service.log"));
    let t0 = now_ms() - 60_000;
    let bin_topic = zone.topic(&zone.envelope(DeviceKind::Bin, 1, t0));
    let mut msgs = Vec::new();
    let mut expected_bad = Vec::new();
    for seq in 1..=200u64 {
        msgs.push(Msg::pb(
            zone,
            &zone.envelope(DeviceKind::Bin, seq, t0 + seq as i64),
        ));
        match seq % 20 {
            3 => {
                msgs.push(Msg {
                    topic: bin_topic.clone(),
                    payload: vec![0xff, 0x01, 0x02, 0x03],
                    json: false,
                });
                expected_bad.push("malformed_protobuf");
            }
            7 => {
                // Oversized: above the decoder's 16 KiB limit, below the broker's.
                msgs.push(Msg {
                    topic: bin_topic.clone(),
                    payload: vec![0x0a; 20_000],
                    json: false,
                });
                expected_bad.push("payload_too_large");
            }
            11 => {
                let mut e = zone.envelope(DeviceKind::Bin, 10_000 + seq, t0);
                e.device_id = zone.truck.clone(); // speaks for another device
                msgs.push(Msg {
                    topic: bin_topic.clone(),
                    payload: e.encode_to_vec(),
                    json: false,
                });
                expected_bad.push("id_mismatch");
            }
            13 => {
                msgs.push(Msg {
                    topic: bin_topic.clone(),
                    payload: b"{\"fill\": NaN}".to_vec(),
                    json: true,
                });
                expected_bad.push("malformed_json");
            }
            17 => {
                let mut e = zone.envelope(DeviceKind::Bin, 20_000 + seq, t0);
                if let Some(wastewatch::pb::envelope::Body::BinReading(b)) = e.body.as_mut() {
                    b.fill_level_pct = f64::NAN;
                }
                msgs.push(Msg {
                    topic: bin_topic.clone(),
                    payload: e.encode_to_vec(),
                    json: false,
                });
                expected_bad.push("non_finite_value");
            }
            _ => {}
        }
    }
    let total = msgs.len();
    assert_eq!(publish_all(format!("pub-{tag}"), msgs, None).await, total);
    assert!(
        eventually(Duration::from_secs(30), || stored_seqs(db, "bin_reading")
            .len()
            == 200),
        "valid neighbours missing: {} of 200 stored; log:\n{}",
        stored_seqs(db, "bin_reading").len(),
        std::fs::read_to_string(data.path().join("service.log")).unwrap_or_default()
    );
    let stored = stored_seqs(db, "bin_reading");
    let want: std::collections::BTreeSet<_> = (1..=200u64).map(|s| (zone.bin.clone(), s)).collect();
    assert_eq!(stored, want, "exactly the valid messages are stored");
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("ingest_acks_total")
        == total as u64));

    // Counters by reason match what was sent.
    let m = svc.metrics();
    for reason in [
        "malformed_protobuf",
        "payload_too_large",
        "id_mismatch",
        "malformed_json",
        "non_finite_value",
    ] {
        let want = expected_bad.iter().filter(|r| **r == reason).count() as u64;
        assert_eq!(
            metric_value(
                &m,
                &format!("ingest_quarantined_total{{reason=\"{reason}\"}}")
            ),
            want,
            "{reason}"
        );
    }
    assert_eq!(metric_value(&m, "ingest_decoded_total"), 200);
    assert_eq!(
        metric_value(&m, "quarantine_records"),
        expected_bad.len() as u64
    );

    // The quarantine API holds them with topic, raw bytes and reason.
    let q: Vec<serde_json::Value> = serde_json::from_str(
        &http_get(&format!("http://{}/api/v1/quarantine?limit=1000", svc.http)).unwrap(),
    )
    .unwrap();
    assert_eq!(q.len(), expected_bad.len());
    let big = q
        .iter()
        .find(|e| e["reason"] == "payload_too_large")
        .unwrap();
    assert_eq!(big["payload_len"], 20_000);
    assert!(big["detail"].as_str().unwrap().contains("20000 bytes"));
    assert_eq!(big["topic"], bin_topic.as_str());
    svc.stop();

    // After the service stops, the CLI lists the same entries.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wastewatch"))
        .args(["quarantine", "list", "--limit", "1000"])
        .envs(service_env(zone, "cli", data.path(), &[]))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        expected_bad.len(),
        "{text}"
    );
    assert!(
        text.contains("id_mismatch") && text.contains("payload_too_large"),
        "{text}"
    );
}
