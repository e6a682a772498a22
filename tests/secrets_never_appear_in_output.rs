//! A distinct secret in every secret setting — the MQTT password, the TSDB
//! password and token, the webhook URLs' tokens, both signing secrets, the
//! API tokens from the tokens file and from the environment — and none of
//! them appears in anything the run prints: the service's log at debug
//! level (including a failed MQTT login, an unreachable robot and an
//! acknowledgement), `check-config` with and without errors, `/metrics` and
//! the API's answers. The JSON webhook arrives signed: its HMAC-SHA256
//! over timestamp and body verifies with the signing secret.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use wastewatch::pb::{envelope::Body, DeviceKind};
use wastewatch_test_kit::*;

/// One request a webhook receiver got: headers (lower-case names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A webhook receiver on loopback answering 200 to every POST.
fn receiver() -> (u16, mpsc::Receiver<Received>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            let _ = r.read_line(&mut line); // request line
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(Received { headers, body });
        }
    });
    (port, rx)
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_setting_ever_appears_in_logs_errors_metrics_or_answers() {
    let mark = unique("S3CR3T");
    let secret = |what: &str| format!("{mark}-{what}-0123456789abcdef");
    let setup = V1Setup::new("secrets", &[]);
    let dir = setup.data.path().to_owned();
    let ingest = format!("ww-{}", setup.tag);
    let mqtt_password = std::fs::read_to_string(
        setup
            .zone
            .credentials_dir()
            .join(format!("{ingest}.password")),
    )
    .unwrap()
    .trim()
    .to_owned();
    let (hook_port, hooks) = receiver();
    let closed_port = free_port();
    let config = dir.join("wastewatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify.webhooks]]\nname = \"signed-json\"\nurl = \"http://127.0.0.1:{hook_port}/hook?token={}\"\nformat = \"json\"\nmin_severity = \"info\"\nsign_secret = \"{}\"\n\n\
             [[notify.webhooks]]\nname = \"down-robot\"\nurl = \"http://127.0.0.1:{closed_port}/robot/send?access_token={}\"\nformat = \"dingtalk\"\nmin_severity = \"info\"\nsign_secret = \"{}\"\n",
            secret("json-url"),
            secret("json-sign"),
            secret("robot-url"),
            secret("robot-sign"),
        ),
    )
    .unwrap();
    let tokens_file = dir.join("api-tokens");
    std::fs::write(&tokens_file, format!("ops:{}\n", secret("api-file"))).unwrap();
    let mut envs: Vec<(String, String)> = setup
        .envs
        .iter()
        .filter(|(k, _)| {
            k != "WASTEWATCH__MQTT__PASSWORD_FILE" && k != "WASTEWATCH__HTTP__TOKENS_FILE"
        })
        .cloned()
        .collect();
    for (k, v) in [
        ("WASTEWATCH__MQTT__PASSWORD", mqtt_password.clone()),
        ("WASTEWATCH__TSDB__USERNAME", "writer".into()),
        ("WASTEWATCH__TSDB__PASSWORD", secret("tsdb-password")),
        ("WASTEWATCH__TSDB__TOKEN", secret("tsdb-token")),
        (
            "WASTEWATCH__HTTP__TOKENS_FILE",
            tokens_file.display().to_string(),
        ),
        (
            "WASTEWATCH_HTTP_TOKENS",
            format!("env-ops:{}", secret("api-env")),
        ),
        ("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "200".into()),
        ("RUST_LOG", "debug".into()),
    ] {
        envs.push((k.into(), v));
    }
    let secrets = [
        mqtt_password.clone(),
        secret("tsdb-password"),
        secret("tsdb-token"),
        secret("json-url"),
        secret("json-sign"),
        secret("robot-url"),
        secret("robot-sign"),
        secret("api-file"),
        secret("api-env"),
        secret("wrong-mqtt-password"),
    ];
    let mut printed = String::new();

    // check-config, passing and failing.
    let check = |extra: &[(&str, &str)]| {
        let out = Command::new(wastewatch_bin())
            .args(["check-config", "--config", config.to_str().unwrap()])
            .envs(envs.iter().cloned())
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = check(&[]);
    assert!(ok, "{text}");
    printed += &text;
    let (ok, text) = check(&[
        ("WASTEWATCH__LOG__CURSOR_SYNC_MS", "0"),
        ("WASTEWATCH__HTTP__LISTEN", "0.0.0.0:1"),
    ]);
    assert!(!ok && text.contains("log.cursor_sync_ms"), "{text}");
    printed += &text;

    // The service: an alert to notify and acknowledge.
    let args = ["run", "--config", config.to_str().unwrap()];
    let svc = Service::start_args(&args, envs.clone(), setup.log_path.clone());
    let mut leak = setup.zone.envelope(DeviceKind::Storage, 1, now_ms() - 500);
    if let Some(Body::StorageReading(s)) = leak.body.as_mut() {
        s.leak_detected = true;
    }
    assert_eq!(
        publish_all(
            format!("pub-{}", setup.tag),
            vec![Msg::pb(&setup.zone, &leak)],
            None
        )
        .await,
        1
    );
    let hook = hooks
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the JSON webhook got nothing; log:\n{}", setup.log()));
    // Signed: v1= hex HMAC-SHA256(secret, "{timestamp}.{body}").
    let ts = header(&hook, "x-wastewatch-timestamp");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret("json-sign").as_bytes());
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&hook.body);
    let want: String = ring::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        header(&hook, "x-wastewatch-signature"),
        format!("v1={want}")
    );
    let age = now_ms() / 1000 - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {ts} is {age} s old");
    let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(body["alerts"][0]["rule"], "leak");
    let alerts = http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap();
    let id = serde_json::from_str::<Vec<serde_json::Value>>(&alerts).unwrap()[0]["id"]
        .as_u64()
        .unwrap();
    printed += &alerts;
    let (code, answer) = http_request(
        "POST",
        &format!("http://{}/api/v1/alerts/{id}/ack", svc.http),
        &[
            "content-type: application/json",
            &format!("authorization: Bearer {}", secret("api-env")),
        ],
        r#"{"reason":"checked"}"#,
    );
    assert_eq!(code, 200, "{answer}");
    assert!(
        answer.contains("\"acknowledged_by\":\"env-ops\""),
        "{answer}"
    );
    printed += &answer;
    let (code, answer) = http_request(
        "POST",
        &format!("http://{}/api/v1/alerts/{id}/ack", svc.http),
        &[
            "content-type: application/json",
            &format!("authorization: Bearer {}", secret("api-file")),
        ],
        "{}",
    );
    assert_eq!(code, 200, "the file's token works too: {answer}");
    printed += &answer;
    // The robot is down: its failures are logged, by name.
    assert!(
        eventually(Duration::from_secs(20), || setup
            .log()
            .contains("down-robot")),
        "no delivery failure of the robot logged:\n{}",
        setup.log()
    );
    printed += &svc.metrics();

    // A second instance with a wrong MQTT password: refused, and it says so.
    let wrong_log = dir.join("wrong.log");
    let mut wrong = envs.clone();
    wrong.push((
        "WASTEWATCH__MQTT__PASSWORD".into(),
        secret("wrong-mqtt-password"),
    ));
    wrong.push((
        "WASTEWATCH__LOG__DIR".into(),
        dir.join("wrong-data").display().to_string(),
    ));
    wrong.push((
        "WASTEWATCH__HTTP__LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    ));
    let mut child = Command::new(wastewatch_bin())
        .args(args)
        .envs(wrong)
        .stdout(std::fs::File::create(&wrong_log).unwrap())
        .stderr(
            std::fs::File::options()
                .append(true)
                .open(&wrong_log)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || std::fs::read_to_string(
            &wrong_log
        )
        .unwrap_or_default()
        .contains("mqtt connect failed")),
        "no refusal logged"
    );
    let _ = child.kill();
    let _ = child.wait();
    printed += &std::fs::read_to_string(&wrong_log).unwrap();

    svc.stop();
    let log = setup.log();
    assert!(
        log.contains("DEBUG"),
        "the service did not log at debug level"
    );
    printed += &log;
    for s in &secrets {
        assert!(
            !printed.contains(s.as_str()),
            "a secret appeared in the output: {s}"
        );
    }
    // Not even a part of one: the marker is in every secret but the MQTT
    // password.
    assert!(
        !printed.contains(&mark),
        "part of a secret appeared in the output"
    );
}
