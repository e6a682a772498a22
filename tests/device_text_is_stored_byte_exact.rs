//! Device-supplied text — ticket ids with backslashes (one at the end too),
//! commas, equals signs, quotes, spaces and CJK characters — is stored byte
//! for byte in every measurement it reaches: the `weighbridge_ticket` point
//! and, through a `duplicate_ticket` alert whose entity carries the ticket
//! id, the `alert` point. Read back through InfluxQL from the real InfluxDB
//! 1.x, which keeps `\\` literally in a tag value and refuses a tag value
//! ending in a backslash: so none of this text may be a tag. Nothing is
//! quarantined as refused by the TSDB.

use std::time::Duration;

use wastewatch::pb::{envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

const NASTY: &[&str] = &[
    "TRAIL\\",
    "A\\B",
    "a,b=c d",
    "say \"hi\"",
    "编号 票据=1,2",
    "\\\\\\",
    "x\\,y\\=z\\ ",
];

fn ticket(zone: &Zone, seq: u64, id: &str) -> Msg {
    let mut e = zone.envelope(DeviceKind::Weighbridge, seq, now_ms() - 60_000 + seq as i64);
    if let Some(Body::WeighbridgeTicket(t)) = e.body.as_mut() {
        t.ticket_id = id.to_owned();
    }
    Msg::pb(zone, &e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_ids_of_any_text_are_stored_byte_exact_in_every_measurement() {
    let setup = V1Setup::new(
        "devtext",
        &[("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "200")],
    );
    let svc = setup.start();
    let zone = &setup.zone;
    // Each id twice, in different messages: the second raises
    // duplicate_ticket with entity "<weighbridge>/<ticket id>".
    let mut msgs = Vec::new();
    let mut seq = 0;
    for id in NASTY {
        for _ in 0..2 {
            seq += 1;
            msgs.push(ticket(zone, seq, id));
        }
    }
    let n = msgs.len();
    assert_eq!(
        publish_all(format!("pub-{}", setup.tag), msgs, None).await,
        n
    );

    let stored = || -> Vec<String> {
        influx_rows(
            &setup.db,
            "SELECT \"ticket_id\" FROM \"weighbridge_ticket\"",
        )
        .iter()
        .filter_map(|r| r["ticket_id"].as_str().map(str::to_owned))
        .collect()
    };
    assert!(
        eventually(Duration::from_secs(30), || stored().len() == n),
        "{} of {n} tickets stored; log:\n{}",
        stored().len(),
        setup.log()
    );
    let mut got = stored();
    got.sort();
    let mut want: Vec<String> = NASTY
        .iter()
        .flat_map(|id| [id.to_string(), id.to_string()])
        .collect();
    want.sort();
    assert_eq!(got, want, "ticket ids byte-exact");

    let entities = || -> Vec<String> {
        influx_rows(
            &setup.db,
            "SELECT \"entity\" FROM \"alert\" WHERE \"rule\" = 'duplicate_ticket'",
        )
        .iter()
        .filter_map(|r| r["entity"].as_str().map(str::to_owned))
        .collect()
    };
    let want_entities: std::collections::BTreeSet<String> = NASTY
        .iter()
        .map(|id| format!("{}/{id}", zone.weighbridge))
        .collect();
    assert!(
        eventually(Duration::from_secs(30), || {
            let e: std::collections::BTreeSet<String> = entities().into_iter().collect();
            e == want_entities
        }),
        "alert entities {:?}, want {want_entities:?}; log:\n{}",
        entities(),
        setup.log()
    );
    assert_eq!(
        svc.metric("tsdb_splits_total"),
        0,
        "no line was refused by the TSDB"
    );
    let m = svc.metrics();
    assert!(
        m.contains("ingest_quarantined_total{reason=\"tsdb_rejected\"} 0"),
        "{m}"
    );
    svc.stop();
}
