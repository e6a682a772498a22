//! Notifier outboxes and acknowledgements are durable.
//!
//! A leak fires while the chat robot (a DingTalk-style webhook, served here
//! by a small HTTP server standing in for the chat service) refuses every
//! message. The service is killed with SIGKILL and restarted; once the
//! robot accepts, the queued notification arrives, signed, with the robot's
//! token, and neither the token nor the signing secret appears in the log.
//! Then an acknowledgement answered 200 is killed right after: it survives,
//! although the periodic snapshot is minutes away.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wastewatch::pb::{envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

const TOKEN: &str = "tok-7f3a9c21";
const SIGN_SECRET: &str = "SEC0d1e2f3a4b5c";

/// A minimal HTTP/1.1 receiver: records each request's target and body and
/// answers with the status currently in `status`.
struct Robot {
    port: u16,
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<(String, String, u16)>>>,
}

impl Robot {
    fn start() -> Robot {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(503));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, sn) = (status.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if r.read_line(&mut request_line).is_err() {
                    continue;
                }
                let target = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let code = st.load(Ordering::SeqCst);
                sn.lock().unwrap().push((
                    target,
                    String::from_utf8_lossy(&body).into_owned(),
                    code,
                ));
                let answer = if code == 200 {
                    r#"{"errcode":0,"errmsg":"ok"}"#
                } else {
                    "unavailable"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Robot { port, status, seen }
    }

    fn seen(&self) -> Vec<(String, String, u16)> {
        self.seen.lock().unwrap().clone()
    }
}

fn storage(zone: &Zone, seq: u64, leak: bool) -> Msg {
    let mut e = zone.envelope(DeviceKind::Storage, seq, now_ms() - 500);
    if let Some(Body::StorageReading(s)) = e.body.as_mut() {
        s.leak_detected = leak;
    }
    Msg::pb(zone, &e)
}

fn leak_alert(svc: &Service) -> Option<serde_json::Value> {
    let all: Vec<serde_json::Value> = serde_json::from_str(
        &http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap_or_default(),
    )
    .unwrap_or_default();
    all.into_iter().find(|a| a["key"]["rule"] == "leak")
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(&format!("http://x{target}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_notification_and_an_acknowledgement_survive_sigkill() {
    let robot = Robot::start();
    let setup = V1Setup::new(
        "notify",
        &[("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "100")],
    );
    let config = setup.data.path().join("notify.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify.webhooks]]\nname = \"oncall-chat\"\nurl = \"http://127.0.0.1:{}/robot/send?access_token={TOKEN}\"\nformat = \"dingtalk\"\nmin_severity = \"major\"\nsign_secret = \"{SIGN_SECRET}\"\n",
            robot.port
        ),
    )
    .unwrap();
    let args = ["run", "--config", config.to_str().unwrap()];
    let svc = Service::start_args(&args, setup.envs.clone(), setup.log_path.clone());
    let zone = &setup.zone;
    let msgs = vec![storage(zone, 1, false), storage(zone, 2, true)];
    assert_eq!(
        publish_all(format!("pub-{}-1", setup.tag), msgs, None).await,
        2
    );

    // The robot refuses: at least one failed attempt, then the crash.
    assert!(
        eventually(Duration::from_secs(20), || robot
            .seen()
            .iter()
            .any(|(_, b, c)| *c == 503 && b.contains("leak"))),
        "no delivery attempt; log:\n{}",
        setup.log()
    );
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("notify_failures_total")
        >= 1));
    assert!(svc.metric("notify_outbox") >= 1);
    // Two snapshot intervals: the outbox is on disk.
    tokio::time::sleep(Duration::from_millis(400)).await;
    svc.kill9();
    let attempts_before = robot.seen().len();

    // The robot is back; the service restarts and delivers from its outbox.
    robot.status.store(200, Ordering::SeqCst);
    let svc = Service::start_args(&args, setup.envs.clone(), setup.log_path.clone());
    assert!(
        eventually(Duration::from_secs(20), || robot.seen()[attempts_before..]
            .iter()
            .any(|(_, b, c)| *c == 200 && b.contains("leak"))),
        "queued notification not delivered after the restart: {:?}\nlog:\n{}",
        robot.seen(),
        setup.log()
    );
    let (target, body, _) = robot.seen()[attempts_before..]
        .iter()
        .find(|(_, b, c)| *c == 200 && b.contains("leak"))
        .cloned()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["msgtype"], "markdown");
    let text = v["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("FIRING") && text.contains(&format!("`{}`", zone.storage)),
        "{text}"
    );
    assert_eq!(query_param(&target, "access_token").as_deref(), Some(TOKEN));
    let ts: i64 = query_param(&target, "timestamp").unwrap().parse().unwrap();
    assert_eq!(
        query_param(&target, "sign"),
        Some(wastewatch::notify::webhook::dingtalk_sign(SIGN_SECRET, ts))
    );
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("notify_outbox")
        == 0));

    // An acknowledgement answered 200 is on disk: SIGKILL right after. The
    // periodic snapshot is set to 10 min here, so only the snapshot the
    // acknowledgement itself forces can have saved it.
    let id = leak_alert(&svc).unwrap()["id"].as_u64().unwrap();
    svc.stop();
    let mut slow = setup.envs.clone();
    slow.push((
        "WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS".into(),
        "600000".into(),
    ));
    let svc = Service::start_args(&args, slow, setup.log_path.clone());
    let (status, answer) = http_post_json(
        &format!("http://{}/api/v1/alerts/{id}/ack", svc.http),
        "{\"reason\":\"night shift\"}",
    );
    assert_eq!(status, 200, "{answer}");
    svc.kill9();
    let svc = Service::start_args(&args, setup.envs.clone(), setup.log_path.clone());
    let a = leak_alert(&svc).unwrap();
    assert_eq!(a["id"].as_u64(), Some(id));
    assert_eq!(a["state"], "acknowledged", "{a}");
    assert_eq!(a["acknowledged_by"], API_TOKEN_NAME);
    assert_eq!(a["history"][0]["reason"], "night shift", "{a}");
    svc.stop();

    let log = setup.log();
    assert!(!log.contains(TOKEN), "the robot token was logged");
    assert!(!log.contains(SIGN_SECRET), "the signing secret was logged");
    assert!(
        log.contains("oncall-chat"),
        "failures should name the receiver"
    );
}

/// An alert raised from a backlog (readings two days old, as after an
/// outage of the device's link or a replay) reaches the robot once: the
/// repeat timer counts from when the notification went out, not from the
/// reading's device time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_from_old_readings_is_notified_once() {
    let robot = Robot::start();
    robot.status.store(200, Ordering::SeqCst);
    let setup = V1Setup::new("notify-old", &[]);
    let config = setup.data.path().join("notify.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify.webhooks]]\nname = \"oncall-chat\"\nurl = \"http://127.0.0.1:{}/robot/send?access_token={TOKEN}\"\nformat = \"dingtalk\"\nmin_severity = \"major\"\n",
            robot.port
        ),
    )
    .unwrap();
    let args = ["run", "--config", config.to_str().unwrap()];
    let svc = Service::start_args(&args, setup.envs.clone(), setup.log_path.clone());
    let zone = &setup.zone;
    let two_days_ago = now_ms() - 2 * 86_400_000;
    let msgs: Vec<Msg> = [(1, false), (2, true)]
        .into_iter()
        .map(|(seq, leak)| {
            let mut e = zone.envelope(DeviceKind::Storage, seq, two_days_ago + seq as i64);
            if let Some(Body::StorageReading(s)) = e.body.as_mut() {
                s.leak_detected = leak;
            }
            Msg::pb(zone, &e)
        })
        .collect();
    assert_eq!(
        publish_all(format!("pub-{}-1", setup.tag), msgs, None).await,
        2
    );
    let firing_posts = || {
        robot
            .seen()
            .iter()
            .filter(|(_, b, c)| *c == 200 && b.contains("FIRING"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(20), || firing_posts() >= 1),
        "the alert was never notified; log:\n{}",
        setup.log()
    );
    // Readings this old raise `cannot_verify` (naming the leak they would
    // raise) rather than `leak`: either way, one firing alert.
    let listed = http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap();
    let alerts: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(alerts.len(), 1, "{listed}");
    assert_eq!(alerts[0]["state"], "firing", "{listed}");
    // The delivery is counted once dispatch has seen the POST complete.
    assert!(eventually(Duration::from_secs(10), || svc
        .metric("notify_delivered_total")
        >= 1));
    // The alert stage looks for due repeats every second: give it several.
    let delivered = svc.metric("notify_delivered_total");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        firing_posts(),
        1,
        "the same firing alert was notified more than once: {:?}",
        robot.seen()
    );
    assert_eq!(svc.metric("notify_delivered_total"), delivered);
    svc.stop();
}
