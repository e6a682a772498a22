//! The ingest client connects over TLS (rustls, CA from `mqtt.ca_file`) with
//! username and password to a real Mosquitto that requires both, and the
//! password never appears in the service's output.

use std::process::{Command, Stdio};
use std::time::Duration;

use prost::Message;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Broker(std::process::Child);
impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_over_tls_with_credentials_and_no_secret_in_logs() {
    let tag = unique("tls");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |f: &str| d.join(f).display().to_string();
    // A throw-away CA and a server certificate for 127.0.0.1.
    sh(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=wastewatch-test-ca",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]));
    sh(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]));
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    sh(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("san.ext"),
        "-out",
        &p("server.pem"),
    ]));
    let password = "s3cr3t-Pa55-wastewatch";
    sh(Command::new("mosquitto_passwd").args(["-b", "-c", &p("passwd"), "ingest", password]));
    let port = free_port();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    std::fs::write(
        d.join("mosquitto.conf"),
        format!(
            "user {}\nper_listener_settings false\nallow_anonymous false\npassword_file {}\npersistence false\nlistener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            user.trim(), p("passwd"), p("ca.pem"), p("server.pem"), p("server.key")
        ),
    )
    .unwrap();
    let _broker = Broker(
        Command::new("mosquitto")
            .args(["-c", &p("mosquitto.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        eventually(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "TLS broker did not start"
    );

    let zone = Zone::new(&tag);
    let db = influx_create_db(&tag.replace('-', "_"));
    let url = env("WW_TEST_INFLUXDB");
    let port_s = port.to_string();
    let ca = p("ca.pem");
    let envs = service_env(
        &zone,
        &format!("ww-{tag}"),
        &d.join("data"),
        &[
            ("WASTEWATCH__MQTT__PORT", &port_s),
            ("WASTEWATCH__MQTT__TLS", "true"),
            ("WASTEWATCH__MQTT__CA_FILE", &ca),
            ("WASTEWATCH__MQTT__USERNAME", "ingest"),
            ("WASTEWATCH__MQTT__PASSWORD", password),
            ("WASTEWATCH__TSDB__KIND", "influxdb_v1"),
            ("WASTEWATCH__TSDB__URL", &url),
            ("WASTEWATCH__TSDB__DATABASE", &db),
        ],
    );
    let log_path = d.join("service.log");
    let svc = Service::start(envs.clone(), log_path.clone());

    // Publish over TLS with the same credentials.
    wastewatch::app::install_crypto_provider();
    let mut o = MqttOptions::new(format!("pub-{tag}"), "127.0.0.1", port);
    o.set_credentials("ingest", password);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: std::fs::read(&ca).unwrap(),
        alpn: None,
        client_auth: None,
    }));
    let (client, mut el) = AsyncClient::new(o, 10);
    let env = zone.envelope(DeviceKind::Storage, 1, now_ms() - 1000);
    client
        .publish(
            zone.topic(&env),
            QoS::AtLeastOnce,
            false,
            env.encode_to_vec(),
        )
        .await
        .unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = el.poll().await {
                break;
            }
        }
    })
    .await;
    assert!(acked.is_ok(), "TLS publisher got no PUBACK");
    assert!(
        eventually(Duration::from_secs(20), || stored_seqs(
            &db,
            "storage_reading"
        )
        .len()
            == 1),
        "log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    // Wrong password: refused, and the refusal is logged without secrets.
    let mut bad = envs.clone();
    bad.push((
        "WASTEWATCH__MQTT__PASSWORD".into(),
        "wrong-password-xyz".into(),
    ));
    bad.push((
        "WASTEWATCH__MQTT__CLIENT_ID".into(),
        format!("ww-{tag}-bad"),
    ));
    bad.push((
        "WASTEWATCH__LOG__DIR".into(),
        d.join("data-bad").display().to_string(),
    ));
    bad.push(("WASTEWATCH__HTTP__LISTEN".into(), "127.0.0.1:0".into()));
    let bad_log = d.join("bad.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wastewatch"))
        .arg("run")
        .envs(bad.iter().cloned())
        .stdout(Stdio::from(std::fs::File::create(&bad_log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(d.join("bad.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = child.kill();
    let _ = child.wait();
    let bad_text = std::fs::read_to_string(&bad_log).unwrap()
        + &std::fs::read_to_string(d.join("bad.err")).unwrap();
    assert!(bad_text.contains("mqtt connect failed"), "{bad_text}");
    svc.stop();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("mqtt connected"), "{text}");
    for secret in [password, "wrong-password-xyz"] {
        assert!(
            !text.contains(secret) && !bad_text.contains(secret),
            "a password was logged"
        );
    }
}
