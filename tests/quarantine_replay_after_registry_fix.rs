//! A message refused because its device was not registered is kept in
//! quarantine; after the registry is fixed, `wastewatch quarantine replay`
//! moves it into the log and the next start writes it to InfluxDB.

use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_a_registry_fix_stores_the_quarantined_message() {
    let setup = V1Setup::new("replay", &[]);
    let (tag, zone, db, data, envs) = (
        &setup.tag,
        &setup.zone,
        &setup.db,
        &setup.data,
        setup.envs.clone(),
    );
    let svc = Service::start(envs.clone(), data.path().join("service.log"));
    let t0 = now_ms() - 60_000;
    let newcomer = format!("bin-new-{tag}");
    let mut e = zone.envelope(DeviceKind::Bin, 5, t0);
    e.device_id = newcomer.clone();
    let msg = Msg::pb(zone, &e);
    assert_eq!(
        msg.topic,
        format!("wastewatch/v1/{}/bin/{newcomer}/telemetry", zone.site)
    );
    assert_eq!(publish_all(format!("pub-{tag}"), vec![msg], None).await, 1);
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("ingest_quarantined_total{reason=\"unknown_device\"}")
        == 1));
    svc.stop();

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wastewatch"))
            .args(args)
            .envs(envs.iter().cloned())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = cli(&["quarantine", "replay"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("replayed: 0 message(s)") && text.contains("1 still quarantined"),
        "nothing changes before the fix: {text}"
    );

    // Fix the registry: register the device.
    let devices_path = zone.dir.path().join("devices.json");
    let devices = std::fs::read_to_string(&devices_path).unwrap();
    let fixed = devices.trim_end().trim_end_matches(']').to_owned()
        + &format!(
            r#",{{"id":"{newcomer}","kind":"bin","site_id":"{}","expected_interval_s":3600,"bin":{{"medical":false,"volume_l":240}}}}]"#,
            zone.site
        );
    std::fs::write(&devices_path, fixed).unwrap();
    let (ok, text) = cli(&["quarantine", "replay"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("replayed: 1 message(s)") && text.contains("0 still quarantined"),
        "{text}"
    );
    let (ok, text) = cli(&["quarantine", "list"]);
    assert!(
        ok && text.contains("0 quarantined message(s) shown"),
        "{text}"
    );

    let svc = Service::start(envs, data.path().join("service.log"));
    assert!(
        eventually(Duration::from_secs(20), || stored_seqs(db, "bin_reading")
            .contains(&(newcomer.clone(), 5))),
        "replayed message not written; log:\n{}",
        std::fs::read_to_string(data.path().join("service.log")).unwrap_or_default()
    );
    let row = &influx_rows(db, "SELECT * FROM bin_reading")[0];
    assert_eq!(row["time"].as_i64(), Some(t0), "replay keeps device time");
    svc.stop();
}
