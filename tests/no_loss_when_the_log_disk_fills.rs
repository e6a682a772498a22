//! The durable log on a small file system (an 8 MiB tmpfs) while the TSDB is
//! unreachable: the disk fills (ENOSPC, long before `log.max_bytes`),
//! ingest stops acking, `/readyz` says why, an ERROR is logged once for the
//! episode; when the TSDB comes back the log drains, segments are deleted,
//! ingest resumes by itself, and every message the broker accepted is
//! stored.
//!
//! Needs root (to mount the tmpfs), as CI and scripts/test.sh run; without
//! it the test fails, it does not skip.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

/// An 8 MiB tmpfs, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let d = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for the disk-full test (run as root, as scripts/test.sh does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(d)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A TCP forwarder to InfluxDB that refuses connections until `up`.
fn tsdb_gate(target: String) -> (u16, Arc<AtomicBool>) {
    let port = free_port();
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    tokio::spawn(async move {
        while !flag.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        loop {
            let (mut inbound, _) = l.accept().await.unwrap();
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (port, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_acks_then_recovers_without_loss_or_restart() {
    let fs = Tmpfs::mount("8m");
    let influx = env("WW_TEST_INFLUXDB");
    let (port, up) = tsdb_gate(influx.trim_start_matches("http://").to_owned());
    let gate = format!("http://127.0.0.1:{port}");
    let log_dir = fs.0.path().join("log");
    let log_dir_s = log_dir.display().to_string();
    let setup = V1Setup::new(
        "diskfull",
        &[
            ("WASTEWATCH__TSDB__URL", gate.as_str()),
            ("WASTEWATCH__LOG__DIR", log_dir_s.as_str()),
            ("WASTEWATCH__LOG__MAX_BYTES", "1073741824"),
            ("WASTEWATCH__LOG__SEGMENT_BYTES", "524288"),
            ("WASTEWATCH__LOG__COMMIT_MAX_BYTES", "131072"),
            // The KPI stage keeps an hour of each truck's fixes in its
            // snapshot; this test's one truck sends 80 000 in 800 s (a
            // 4 MB snapshot, half the file system). A minute keeps the
            // snapshots small, as a real zone's 5 s fixes would.
            ("WASTEWATCH__KPI__READING_MEMORY_MS", "60000"),
            // Released when the disk fills (docs/LOG.md "A full disk").
            ("WASTEWATCH__LOG__DISK_RESERVE_BYTES", "1048576"),
        ],
    );
    let svc = setup.start();
    let n = 80_000u64; // ≈ 11 MB of records: more than the file system
    let t0 = now_ms() - 3_600_000;
    let msgs: Vec<Msg> = (1..=n)
        .map(|s| {
            Msg::pb(
                &setup.zone,
                &setup
                    .zone
                    .envelope(DeviceKind::Truck, s, t0 + s as i64 * 10),
            )
        })
        .collect();
    assert_eq!(
        publish_all(format!("pub-{}", setup.tag), msgs, None).await,
        n as usize,
        "the broker accepts everything"
    );
    assert!(
        eventually(Duration::from_secs(60), || svc.metric("log_storage_error")
            == 1),
        "the log never reported the full disk; metrics:\n{}\nlog:\n{}",
        svc.metrics(),
        setup.log()
    );
    let ready = http_get(&format!("http://{}/readyz", svc.http)).unwrap_or_else(|e| e);
    assert!(ready.contains("\"log_writable\":false"), "{ready}");
    assert!(ready.contains("No space left on device"), "{ready}");
    let acks = svc.metric("ingest_acks_total");
    assert!(acks < n, "ingest stopped acking ({acks} of {n})");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        svc.metric("ingest_acks_total"),
        acks,
        "no acks while the disk is full"
    );

    // The TSDB comes back: the log drains and ingest resumes by itself.
    up.store(true, Ordering::SeqCst);
    let want: std::collections::BTreeSet<_> =
        (1..=n).map(|s| (setup.zone.truck.clone(), s)).collect();
    let ok = eventually(Duration::from_secs(180), || {
        stored_seqs(&setup.db, "truck_fix").len() == want.len()
    });
    let got = stored_seqs(&setup.db, "truck_fix");
    assert!(
        ok,
        "{} of {n} missing after recovery; metrics:\n{}\nfiles: {:?}\nlog:\n{}",
        want.len() - got.len(),
        svc.metrics(),
        std::fs::read_dir(&log_dir).map(|d| d
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name(), e.metadata().map(|m| m.len()).unwrap_or(0)))
            .collect::<Vec<_>>()),
        setup.log()
    );
    assert_eq!(got, want);
    // The one oracle: every acknowledged message exactly once (a second
    // point with another time would not show in the set above).
    let verdict = wastewatch_test_kit::oracle::exactly_once(
        &setup.db,
        &["truck_fix"],
        &want,
        &Default::default(),
    );
    assert!(verdict.ok(), "{verdict:?}");
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("log_storage_error")
        == 0));
    // Once per episode: one ERROR when writes start failing, one INFO when
    // they work again (the backlog the broker then delivers may fill the
    // small disk again: another episode, logged the same way), never one
    // per retry.
    let text = setup.log();
    let failed = text.matches("durable log write failed").count();
    let again = text.matches("durable log writable again").count();
    assert!(failed >= 1, "{text}");
    assert_eq!(
        failed, again,
        "each episode logged once, and closed:\n{text}"
    );
    assert!(
        svc.metric("log_append_errors_total") > failed as u64,
        "appends were retried within each episode"
    );
    svc.stop();
    drop(fs);
}
