//! A TSDB that accepts connections and never answers (hung, as InfluxDB
//! stopped by SIGSTOP) must not delay alerts: a leak fires, reaches the real
//! Alertmanager and is acknowledged through the API within a few seconds —
//! well inside the TSDB request timeout, which this test sets to 60 s so a
//! path that waited for the TSDB would show. Then the TSDB answers again and
//! the alert points reach it through the same writer as every other point.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wastewatch::pb::{envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

/// A TCP endpoint that accepts and holds connections without a byte of
/// answer until `up`, then forwards new connections to `target`.
fn hung_tsdb(target: String) -> (u16, Arc<AtomicBool>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    tokio::spawn(async move {
        let l = tokio::net::TcpListener::from_std(l).unwrap();
        let mut held = Vec::new();
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            if !flag.load(Ordering::SeqCst) {
                held.push(s); // never answered
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut out).await;
                }
            });
        }
    });
    (port, up)
}

fn leak(zone: &Zone, seq: u64, on: bool) -> Msg {
    let mut e = zone.envelope(DeviceKind::Storage, seq, now_ms() - 500);
    if let Some(Body::StorageReading(s)) = e.body.as_mut() {
        s.leak_detected = on;
    }
    Msg::pb(zone, &e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_tsdb_delays_neither_notification_nor_acknowledgement() {
    let influx = env("WW_TEST_INFLUXDB");
    let (port, up) = hung_tsdb(influx.trim_start_matches("http://").to_owned());
    let hung = format!("http://127.0.0.1:{port}");
    let am = env("WW_TEST_ALERTMANAGER");
    let setup = V1Setup::new(
        "hungtsdb",
        &[
            ("WASTEWATCH__TSDB__URL", hung.as_str()),
            ("WASTEWATCH__TSDB__REQUEST_TIMEOUT_MS", "60000"),
            ("WASTEWATCH__NOTIFY__ALERTMANAGER_URL", am.as_str()),
            ("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "200"),
        ],
    );
    let svc = setup.start();
    let zone = &setup.zone;
    let t0 = Instant::now();
    assert_eq!(
        publish_all(
            format!("pub-{}", setup.tag),
            vec![leak(zone, 1, false), leak(zone, 2, true)],
            None
        )
        .await,
        2
    );
    let am_has = || {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&http_get(&format!("{am}/api/v2/alerts")).unwrap_or_default())
                .unwrap_or_default();
        v.iter().any(|x| {
            x["labels"]["alertname"] == "leak" && x["labels"]["entity"] == zone.storage.as_str()
        })
    };
    assert!(
        eventually(Duration::from_secs(10), am_has),
        "the leak did not reach Alertmanager within 10 s of publishing while the TSDB hangs; log:\n{}",
        setup.log()
    );
    let notified_after = t0.elapsed();
    assert!(notified_after < Duration::from_secs(10));

    // The TSDB writer is stuck in its first request all along.
    assert_eq!(
        svc.metric("tsdb_points_total"),
        0,
        "the hung TSDB stored nothing"
    );

    // An acknowledgement answers at once, persisted.
    let alerts: Vec<serde_json::Value> =
        serde_json::from_str(&http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap())
            .unwrap();
    let id = alerts
        .iter()
        .find(|a| a["key"]["rule"] == "leak")
        .and_then(|a| a["id"].as_u64())
        .expect("leak alert listed");
    let t = Instant::now();
    let (status, body) = http_post_json(
        &format!("http://{}/api/v1/alerts/{id}/ack", svc.http),
        "{\"by\":\"on-call\"}",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the acknowledgement took {:?} while the TSDB hangs",
        t.elapsed()
    );

    // The TSDB comes back: the alert points arrive through the writer (its
    // hung request times out and is retried).
    up.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(120), || {
            influx_rows(&setup.db, "SELECT * FROM \"alert\" WHERE \"rule\" = 'leak'")
                .iter()
                .any(|r| r["state"] == "acknowledged" && r["entity"] == zone.storage.as_str())
        }),
        "alert points never reached InfluxDB; metrics:\n{}",
        svc.metrics()
    );
    svc.stop();
}
