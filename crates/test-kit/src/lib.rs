//! The test kit of the integration tests (`tests/`) and the load harness
//! (`benches/e2e_load.rs`): real servers started by `scripts/services.sh`
//! (the env vars below come from `scripts/test.sh`), the real `wastewatch`
//! binary, a real MQTT publisher. A missing server is a failure, never a
//! skip; a metric that does not exist is a failure, never a zero.
//!
//! The test broker authenticates every client, as the shipped config does
//! (deploy/mosquitto/wastewatch.conf): each service gets an ingest identity
//! of its own (its client id; the broker makes the user name the client id),
//! written for its zone by the real `wastewatch devices credentials`, and
//! each zone's devices get their passwords from the same run. Publishers
//! that must write outside one device's topics (malformed topics, the
//! simulated fleet over one connection) log in as test-only writer
//! identities that exist only in the test broker's ACL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod oracle;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use wastewatch_contract::pb::{self, envelope::Body, DeviceKind};
use wastewatch_contract::topic::{Channel, Topic};

/// The `wastewatch` binary cargo built next to the running test or bench
/// (`target/<profile>/wastewatch`; cargo builds a package's binaries before
/// its integration tests and benches), or `WASTEWATCH_BIN`.
pub fn wastewatch_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WASTEWATCH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    // target/<profile>/deps/<test> -> target/<profile>/wastewatch
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("wastewatch"))
        .expect("test executable under target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} not found: run the tests with cargo (it builds the binary first) or set WASTEWATCH_BIN",
        bin.display()
    );
    bin
}

/// Reads a required env var set by scripts/test.sh.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with scripts/test.sh, which starts the real servers"
        )
    })
}

/// host, port of the test broker.
pub fn mqtt_addr() -> (String, u16) {
    let a = env("WW_TEST_MQTT");
    let (h, p) = a.rsplit_once(':').expect("WW_TEST_MQTT is host:port");
    (h.to_owned(), p.parse().expect("port"))
}

/// Runs scripts/services.sh with args; panics on failure.
pub fn services(args: &[&str]) {
    let script = env("WW_SERVICES_SCRIPT");
    let out = Command::new(&script)
        .args(args)
        .output()
        .expect("run services.sh");
    assert!(
        out.status.success(),
        "services.sh {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A unique name for this test run.
pub fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}-{}-{}", std::process::id(), t % 1_000_000_000)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A throw-away zone: one site, devices of each kind with the given prefix.
pub struct Zone {
    pub dir: tempfile::TempDir,
    pub site: String,
    pub bin: String,
    pub storage: String,
    pub truck: String,
    pub weighbridge: String,
}

impl Zone {
    pub fn new(tag: &str) -> Zone {
        let dir = tempfile::tempdir().unwrap();
        let site = format!("site-{tag}");
        let z = Zone {
            site: site.clone(),
            bin: format!("bin-{tag}"),
            storage: format!("st-{tag}"),
            truck: format!("tr-{tag}"),
            weighbridge: format!("wb-{tag}"),
            dir,
        };
        let poly = r#"{"type":"Polygon","coordinates":[[[113.70,34.70],[113.71,34.70],[113.71,34.71],[113.70,34.71],[113.70,34.70]]]}"#;
        std::fs::write(
            z.dir.path().join("sites.json"),
            format!(r#"[{{"id":"{site}","name":"t","type":"recycling_plant","geofence":{poly}}}]"#),
        )
        .unwrap();
        let devices = format!(
            r#"[{{"id":"{}","kind":"weighbridge","site_id":"{site}","expected_interval_s":3600,"weighbridge":{{}}}},
               {{"id":"{}","kind":"bin","site_id":"{site}","expected_interval_s":3600,"bin":{{"medical":false,"volume_l":240}}}},
               {{"id":"{}","kind":"storage","site_id":"{site}","expected_interval_s":60,"storage":{{"capacity_kg":3000,"small_storage_point":true,"medical":false}}}},
               {{"id":"{}","kind":"truck","site_id":"{site}","expected_interval_s":10,"truck":{{"plate":"豫AD1234","registered_tare_kg":14000,"axle_count":3}}}}]"#,
            z.weighbridge, z.bin, z.storage, z.truck
        );
        std::fs::write(z.dir.path().join("devices.json"), devices).unwrap();
        std::fs::write(z.dir.path().join("permits.json"), "[]").unwrap();
        z
    }

    /// A valid envelope of `kind` with `seq`, values derived from seq.
    pub fn envelope(&self, kind: DeviceKind, seq: u64, t_ms: i64) -> pb::Envelope {
        let s = seq as f64;
        let (device, body) = match kind {
            DeviceKind::Weighbridge => (
                &self.weighbridge,
                Body::WeighbridgeTicket(pb::WeighbridgeTicket {
                    ticket_id: format!("T-{seq}"),
                    plate: "豫A D1234".into(),
                    gross_weight_kg: 30_000.0 + s,
                    tare_weight_kg: 14_000.0,
                    net_weight_kg: 16_000.0 + s,
                    category: pb::WasteCategory::ConstructionDemolition as i32,
                    destination_type: pb::DestinationType::Recycling as i32,
                    direction: pb::Direction::In as i32,
                    operator_id: "op \"7\", gate=2".into(),
                    axle_count: 3,
                    ..Default::default()
                }),
            ),
            DeviceKind::Bin => (
                &self.bin,
                Body::BinReading(pb::BinReading {
                    fill_level_pct: (seq % 100) as f64 + 0.25,
                    temperature_deci_c: 215,
                    tilt_deg: 1.5,
                    battery_mv: 3600,
                    ..Default::default()
                }),
            ),
            DeviceKind::Storage => (
                &self.storage,
                Body::StorageReading(pb::StorageReading {
                    stock_kg: 1000.0 + s,
                    oldest_container_age_s: 86_400,
                    temperature_deci_c: 251,
                    combustible_gas_pct_lel: Some(2.5),
                    oxygen_pct_vol: Some(20.9),
                    container_count: 4,
                    ..Default::default()
                }),
            ),
            _ => (
                &self.truck,
                Body::TruckFix(pb::TruckFix {
                    latitude_deg: format!("34.7{:05}", seq % 100_000).parse().unwrap(),
                    longitude_deg: 113.7,
                    speed_kmh: 32.5,
                    heading_deg: 90.0,
                    accuracy_m: 4.0,
                    loaded: true,
                    cover_closed: true,
                    ignition_on: true,
                    gnss_fix: true,
                    satellites: 9,
                    plate: "豫AD1234".into(),
                    ..Default::default()
                }),
            ),
        };
        pb::Envelope {
            site_id: self.site.clone(),
            device_id: device.clone(),
            device_kind: kind as i32,
            seq,
            recorded_at_unix_ms: t_ms,
            schema_version: 1,
            body: Some(body),
        }
    }

    /// Where `wastewatch devices credentials` writes this zone's credentials.
    pub fn credentials_dir(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    /// Runs the real `wastewatch devices credentials` for this zone with
    /// `ingest_user` and registers the resulting password file (every
    /// device of the zone, and the ingest identity with read access to
    /// `wastewatch/v1/#`) with the test broker. Returns the file holding
    /// the ingest identity's password (for `mqtt.password_file`). Once per
    /// name and process.
    pub fn ingest_identity(&self, ingest_user: &str) -> PathBuf {
        let out = self.credentials_dir();
        let file = out.join(format!("{ingest_user}.password"));
        if REGISTERED.lock().unwrap().contains_key(ingest_user) {
            return file;
        }
        let cmd = Command::new(wastewatch_bin())
            .args(["devices", "credentials", "--zone"])
            .arg(self.dir.path())
            .arg("--out")
            .arg(&out)
            .args(["--ingest-user", ingest_user])
            .output()
            .expect("run wastewatch devices credentials");
        assert!(
            cmd.status.success(),
            "wastewatch devices credentials failed:\n{}{}",
            String::from_utf8_lossy(&cmd.stdout),
            String::from_utf8_lossy(&cmd.stderr)
        );
        let pw = std::fs::read_to_string(&file).unwrap().trim().to_owned();
        register_with_broker(
            &out.join("mosquitto.passwd"),
            &format!("user {ingest_user}\ntopic read wastewatch/v1/#\n"),
            (ingest_user, &pw),
        );
        REGISTERED
            .lock()
            .unwrap()
            .insert(ingest_user.to_owned(), pw);
        file
    }

    /// The broker password of one of this zone's devices (registered with
    /// the test broker by [`Zone::ingest_identity`]).
    pub fn device_password(&self, device_id: &str) -> String {
        let text =
            std::fs::read_to_string(self.credentials_dir().join("device-secrets.txt")).unwrap();
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(d, _)| *d == device_id)
            .map(|(_, pw)| pw.trim().to_owned())
            .unwrap_or_else(|| {
                panic!("no password for device {device_id}: call ingest_identity first")
            })
    }

    pub fn topic(&self, env: &pb::Envelope) -> String {
        let kind = DeviceKind::try_from(env.device_kind).unwrap_or_default();
        let ch = if matches!(env.body, Some(Body::DeviceStatus(_))) {
            Channel::Status
        } else {
            Channel::Telemetry
        };
        Topic::format(&self.site, kind, &env.device_id, ch, false)
    }
}

/// One message to publish.
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub json: bool,
}

impl Msg {
    pub fn pb(zone: &Zone, env: &pb::Envelope) -> Msg {
        Msg {
            topic: zone.topic(env),
            payload: env.encode_to_vec(),
            json: false,
        }
    }
}

/// Adds identities to the test broker: the password file `passwd` (Mosquitto
/// format) and the ACL lines `acl`, then waits until `probe` (user,
/// password) can log in — the broker applies the change asynchronously,
/// and re-reads the ACL in the same reload as the passwords.
fn register_with_broker(passwd: &Path, acl: &str, probe: (&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let acl_path = dir.path().join("acl");
    std::fs::write(&acl_path, acl).unwrap();
    let register = || {
        services(&[
            "mqtt-users",
            passwd.to_str().unwrap(),
            acl_path.to_str().unwrap(),
        ])
    };
    register();
    let t0 = Instant::now();
    let mut registered = Instant::now();
    loop {
        match try_login(probe.0, probe.1) {
            Ok(()) => return,
            Err(e) if t0.elapsed() > Duration::from_secs(30) => {
                panic!(
                    "test identity {} cannot log in 30 s after registering it: {e}",
                    probe.0
                )
            }
            Err(_) if registered.elapsed() > Duration::from_secs(3) => {
                // Mosquitto reloads on SIGHUP; signals sent by parallel
                // tests close together can merge into one reload that read
                // the files before our entry was in: register (and signal)
                // again, which is idempotent.
                register();
                registered = Instant::now();
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One MQTT 5 login to the test broker (clean start, no session kept). On a
/// thread of its own, so it can be called from async tests too.
pub fn try_login(user: &str, password: &str) -> Result<(), String> {
    let (host, port) = mqtt_addr();
    let mut o = MqttOptions::new(client_id(user), host, port);
    o.set_credentials(user, password);
    o.set_clean_start(true);
    std::thread::spawn(move || login_blocking(o))
        .join()
        .unwrap()
}

fn login_blocking(o: MqttOptions) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (client, mut el) = AsyncClient::new(o, 10);
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err("no CONNACK in 5 s".into()));
        if r.is_ok() {
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), el.poll()).await;
        }
        r
    })
}

/// The prefix every client id needs on the shipped broker config
/// (`clientid_prefixes`; the broker replaces the id by the user name).
pub const CLIENT_ID_PREFIX: &str = "ww:";

/// The client id to send when logging in as `user`.
pub fn client_id(user: &str) -> String {
    format!("{CLIENT_ID_PREFIX}{user}")
}

/// Identities registered by this process, with their passwords.
static REGISTERED: std::sync::Mutex<BTreeMap<String, String>> =
    std::sync::Mutex::new(BTreeMap::new());

/// A leased test-only writer identity that may publish anywhere under
/// `wastewatch/v1/` (a gateway of the whole zone; the shipped ACL has none):
/// one of the `ww-writer-NN` of scripts/services.sh, held through a lock file
/// until dropped, so no two publishers share it (the broker would let them
/// take each other's session) and publishing needs no reload of the broker.
pub struct Writer {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    _lease: std::fs::File,
}

impl Writer {
    /// The client id to log in with.
    pub fn client_id(&self) -> String {
        client_id(&self.name)
    }
}

/// Leases a free writer identity, waiting while all are in use.
pub fn writer() -> Writer {
    let auth = PathBuf::from(env("WW_SERVICES_DIR")).join("mosquitto/auth");
    let password = std::fs::read_to_string(auth.join("writer.password"))
        .expect("writer.password of the test broker (scripts/services.sh start mosquitto)")
        .trim()
        .to_owned();
    let t0 = Instant::now();
    loop {
        for i in 0..64 {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(auth.join(format!("writer-{i:02}.lock")))
                .unwrap();
            if f.try_lock().is_ok() {
                return Writer {
                    name: format!("ww-writer-{i:02}"),
                    password,
                    _lease: f,
                };
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "all 64 test writer identities stayed leased for 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes messages with QoS 1 and waits for every PUBACK from the broker.
/// Returns how many the broker acked. `name` names the publisher in errors;
/// it logs in as a leased test-only [`Writer`].
pub async fn publish_all(name: String, msgs: Vec<Msg>, pace: Option<Duration>) -> usize {
    let writer = tokio::task::spawn_blocking(writer).await.unwrap();
    let (host, port) = mqtt_addr();
    let mut o = MqttOptions::new(writer.client_id(), host, port);
    o.set_credentials(writer.name.clone(), writer.password.clone());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_start(true);
    o.set_max_packet_size(Some(1 << 20));
    let (client, mut el) = AsyncClient::new(o, 1000);
    let total = msgs.len();
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a2 = acked.clone();
    let who = format!("{name} ({})", writer.name);
    let poller = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if a2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= total {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("publisher {who} connection error: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let start = tokio::time::Instant::now();
    for (i, m) in msgs.into_iter().enumerate() {
        let props = m.json.then(|| PublishProperties {
            content_type: Some("application/json".into()),
            ..Default::default()
        });
        match props {
            Some(p) => client
                .publish_with_properties(m.topic, QoS::AtLeastOnce, false, m.payload, p)
                .await
                .unwrap(),
            None => client
                .publish(m.topic, QoS::AtLeastOnce, false, m.payload)
                .await
                .unwrap(),
        }
        if let Some(p) = pace {
            // Schedule by message index so rates above the timer resolution
            // are met in small bursts instead of one message per tick.
            let due = start + p * (i as u32 + 1);
            if due > tokio::time::Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due).await;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), poller).await;
    let _ = client.disconnect().await;
    acked.load(std::sync::atomic::Ordering::SeqCst)
}

/// A running `wastewatch run` process.
pub struct Service {
    pub child: Child,
    pub http: String,
    pub envs: Vec<(String, String)>,
    pub log_path: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Settings for a service instance, as WASTEWATCH__ env vars. The service
/// logs in as the ingest identity `client_id`, registered for `zone` with the
/// test broker (see [`Zone::ingest_identity`]).
pub fn service_env(
    zone: &Zone,
    client_id: &str,
    data_dir: &Path,
    tsdb: &[(&str, &str)],
) -> Vec<(String, String)> {
    let (host, port) = mqtt_addr();
    let password_file = zone.ingest_identity(client_id);
    let tokens_file = zone.dir.path().join("api-tokens");
    std::fs::write(&tokens_file, format!("{API_TOKEN_NAME}:{}\n", api_token())).unwrap();
    let mut v: Vec<(String, String)> = vec![
        (
            "WASTEWATCH__HTTP__TOKENS_FILE".into(),
            tokens_file.display().to_string(),
        ),
        ("WASTEWATCH__MQTT__HOST".into(), host),
        ("WASTEWATCH__MQTT__PORT".into(), port.to_string()),
        (
            "WASTEWATCH__MQTT__CLIENT_ID".into(),
            self::client_id(client_id),
        ),
        ("WASTEWATCH__MQTT__USERNAME".into(), client_id.into()),
        (
            "WASTEWATCH__MQTT__PASSWORD_FILE".into(),
            password_file.display().to_string(),
        ),
        (
            "WASTEWATCH__MQTT__SUBSCRIBE".into(),
            format!("wastewatch/v1/{}/#", zone.site),
        ),
        ("WASTEWATCH__MQTT__RECONNECT_MIN_MS".into(), "100".into()),
        ("WASTEWATCH__MQTT__RECONNECT_MAX_MS".into(), "1000".into()),
        (
            "WASTEWATCH__DECODE__REGISTRY_DIR".into(),
            zone.dir.path().display().to_string(),
        ),
        (
            "WASTEWATCH__LOG__DIR".into(),
            data_dir.display().to_string(),
        ),
        ("WASTEWATCH__TSDB__BATCH_MAX_AGE_MS".into(), "100".into()),
        ("WASTEWATCH__TSDB__RETRY_MIN_MS".into(), "100".into()),
        ("WASTEWATCH__TSDB__RETRY_MAX_MS".into(), "1000".into()),
        ("WASTEWATCH__TSDB__STATS_INTERVAL_MS".into(), "0".into()),
        (
            "WASTEWATCH__HTTP__LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        ),
    ];
    for (k, val) in tsdb {
        v.push(((*k).into(), (*val).into()));
    }
    v
}

impl Service {
    pub fn start(envs: Vec<(String, String)>, log_path: PathBuf) -> Service {
        Service::start_args(&["run"], envs, log_path)
    }

    /// `wastewatch ARGS...` (e.g. `run --config FILE`) with `envs`.
    pub fn start_args(args: &[&str], envs: Vec<(String, String)>, log_path: PathBuf) -> Service {
        let http = envs
            .iter()
            .find(|(k, _)| k == "WASTEWATCH__HTTP__LISTEN")
            .map(|(_, v)| v.clone())
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        // RUST_LOG=info unless `envs` says otherwise.
        let child = Command::new(wastewatch_bin())
            .args(args)
            .env("RUST_LOG", "info")
            .envs(envs.iter().cloned())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn wastewatch");
        let s = Service {
            child,
            http,
            envs,
            log_path,
        };
        s.wait_ready(Duration::from_secs(30));
        s
    }

    /// Waits until /readyz says the broker is connected.
    pub fn wait_ready(&self, timeout: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(body) = http_get(&format!("http://{}/readyz", self.http)) {
                if body.contains("\"mqtt_connected\":true") {
                    // Give the SUBSCRIBE a moment to be processed.
                    std::thread::sleep(Duration::from_millis(300));
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "wastewatch not ready after {timeout:?}; log:\n{}",
            std::fs::read_to_string(&self.log_path).unwrap_or_default()
        );
    }

    pub fn metrics(&self) -> String {
        http_get(&format!("http://{}/metrics", self.http)).unwrap_or_default()
    }

    pub fn metric(&self, name: &str) -> u64 {
        metric_value(&self.metrics(), name)
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(
                    st.success(),
                    "wastewatch exited with {st}; log:\n{}",
                    std::fs::read_to_string(&self.log_path).unwrap_or_default()
                );
                return;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("wastewatch did not stop within 30 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

///
/// Panics when the metric is not there: a renamed or missing metric must
/// fail the test, not read as zero.
pub fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map(|v| v as u64)
        .unwrap_or_else(|| {
            let names: BTreeSet<&str> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split([' ', '{']).next())
                .collect();
            panic!("metric {name:?} not in /metrics; it has: {names:?}")
        })
}

/// Name of the API token every test service accepts (see [`service_env`]).
pub const API_TOKEN_NAME: &str = "test-operator";

/// The API bearer token of [`API_TOKEN_NAME`], random per test process.
pub fn api_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("api-{}-{}", unique("token"), now_ms()))
}

/// POSTs a JSON body as the test operator (bearer [`api_token`]); returns
/// the HTTP status and the response body.
pub fn http_post_json(url: &str, body: &str) -> (u16, String) {
    let auth = format!("authorization: Bearer {}", api_token());
    http_request(
        "POST",
        url,
        &["content-type: application/json", &auth],
        body,
    )
}

/// One HTTP request with these headers (`name: value`); returns the status
/// and the response body.
pub fn http_request(method: &str, url: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if !body.is_empty() || method == "POST" {
        cmd.args(["--data-binary", body]);
    }
    let out = cmd
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

pub fn http_get(url: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", url])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates a fresh InfluxDB 1.x database; returns its name.
pub fn influx_create_db(name: &str) -> String {
    influx_query("", &format!("CREATE DATABASE \"{name}\""));
    name.to_owned()
}

/// Runs InfluxQL; returns the JSON response.
pub fn influx_query(db: &str, q: &str) -> serde_json::Value {
    let base = env("WW_TEST_INFLUXDB");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-XPOST",
            &format!("{base}/query"),
            "--data-urlencode",
            &format!("db={db}"),
            "--data-urlencode",
            &format!("q={q}"),
            "--data-urlencode",
            "epoch=ms",
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "influx query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad influx JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Rows of the first series as maps column → value.
pub fn influx_rows(db: &str, q: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let v = influx_query(db, q);
    let mut rows = Vec::new();
    if let Some(series) = v["results"][0]["series"].as_array() {
        for s in series {
            let cols: Vec<String> = s["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            for vals in s["values"].as_array().unwrap() {
                let mut m = serde_json::Map::new();
                for (c, val) in cols.iter().zip(vals.as_array().unwrap()) {
                    m.insert(c.clone(), val.clone());
                }
                if let Some(tags) = s["tags"].as_object() {
                    for (k, t) in tags {
                        m.insert(k.clone(), t.clone());
                    }
                }
                rows.push(m);
            }
        }
    }
    rows
}

/// (device, seq) pairs stored in a measurement.
pub fn stored_seqs(db: &str, measurement: &str) -> BTreeSet<(String, u64)> {
    influx_rows(
        db,
        &format!("SELECT \"seq\", \"device\" FROM \"{measurement}\""),
    )
    .into_iter()
    .map(|r| {
        (
            r["device"].as_str().unwrap_or("").to_owned(),
            r["seq"].as_u64().unwrap_or(u64::MAX),
        )
    })
    .collect()
}

/// Polls `f` until it returns true or the timeout passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

pub fn append_note(path: &Path, s: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let _ = writeln!(f, "{s}");
}

/// The zone shipped in `zone/`: its directory and the loaded registry.
pub fn shipped_zone() -> (String, wastewatch_contract::registry::Registry) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zone");
    let registry = wastewatch_contract::registry::Registry::load_dir(&dir).unwrap();
    (dir.display().to_string(), registry)
}

/// The usual set-up: a throw-away zone, a fresh InfluxDB 1.x database and a
/// data dir, and the environment of a service writing there through the v1
/// API (plus `extra` settings, which win).
pub struct V1Setup {
    pub tag: String,
    pub zone: Zone,
    pub db: String,
    pub data: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
    pub log_path: PathBuf,
}

impl V1Setup {
    pub fn new(prefix: &str, extra: &[(&str, &str)]) -> V1Setup {
        let tag = unique(prefix);
        let zone = Zone::new(&tag);
        let db = influx_create_db(&tag.replace('-', "_"));
        let data = tempfile::tempdir().unwrap();
        let url = env("WW_TEST_INFLUXDB");
        let mut settings = vec![
            ("WASTEWATCH__TSDB__KIND", "influxdb_v1"),
            ("WASTEWATCH__TSDB__URL", url.as_str()),
            ("WASTEWATCH__TSDB__DATABASE", db.as_str()),
        ];
        settings.extend_from_slice(extra);
        let envs = service_env(&zone, &format!("ww-{tag}"), data.path(), &settings);
        let log_path = data.path().join("service.log");
        V1Setup {
            tag,
            zone,
            db,
            data,
            envs,
            log_path,
        }
    }

    /// A service on the zone shipped in `zone/` (what firmware-sim plays),
    /// subscribed to every site, plus `extra` settings (which win).
    pub fn shipped_zone(prefix: &str, extra: &[(&str, &str)]) -> V1Setup {
        let (dir, _) = shipped_zone();
        let mut settings = vec![
            ("WASTEWATCH__DECODE__REGISTRY_DIR", dir.as_str()),
            ("WASTEWATCH__MQTT__SUBSCRIBE", "wastewatch/v1/#"),
        ];
        settings.extend_from_slice(extra);
        V1Setup::new(prefix, &settings)
    }

    /// Starts the service with this set-up.
    pub fn start(&self) -> Service {
        Service::start(self.envs.clone(), self.log_path.clone())
    }

    /// The service's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}
