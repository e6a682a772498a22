//! Sparkplug B end to end, against the real service, the real broker (the
//! shipped ACL) and InfluxDB 1.x, with the edge node played by `pysparkplug`
//! (tests/sparkplug/edge_node.py; a client library this project did not
//! write, pinned in tests/sparkplug/requirements.txt): the host's retained
//! STATE birth; NBIRTH/DBIRTH then DDATA by alias landing exactly in
//! InfluxDB as the native records (units converted); a seq gap answered by
//! an NCMD Rebirth, and the rebirth accepted; an unknown alias quarantined;
//! a device of another edge node refused; DDEATH and the broker-published
//! NDEATH will raising `device_offline`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wastewatch_test_kit::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The venv holding pysparkplug, made if missing; panics (never skips) when
/// it cannot be installed.
fn python() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap();
    let venv = repo().join("target/sparkplug-venv");
    let py = venv.join("bin/python");
    let ok = |py: &Path| {
        Command::new(py)
            .args(["-c", "import pysparkplug; assert pysparkplug.__version__ == '0.6.1', pysparkplug.__version__"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&py) {
        return py;
    }
    let st = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .expect("python3 is needed for the Sparkplug edge node (pysparkplug)");
    assert!(st.success(), "python3 -m venv {} failed", venv.display());
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "-r"])
        .arg(repo().join("tests/sparkplug/requirements.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot install pysparkplug (tests/sparkplug/requirements.txt) into {}: {}",
        venv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ok(&py), "pysparkplug 0.6.1 not importable after install");
    py
}

/// One pysparkplug edge node process.
struct Edge {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Edge {
    fn spawn() -> Edge {
        let mut child = Command::new(python())
            .arg(repo().join("tests/sparkplug/edge_node.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut e = Edge {
            child,
            stdin,
            events,
            seen: Vec::new(),
        };
        e.wait(|v| v["event"] == "ready", "ready");
        e
    }

    fn send(&mut self, c: Value) {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for an event matching `pred` (among those seen too); panics
    /// on an error event or after 20 s.
    fn wait(&mut self, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            match self.events.recv_timeout(Duration::from_millis(100)) {
                Ok(v) if v["event"] == "error" => panic!("edge node error: {v}"),
                Ok(v) if pred(&v) => return v,
                Ok(v) => self.seen.push(v),
                Err(_) => {}
            }
        }
        panic!("no {what} from the edge node in 20 s; seen {:?}", self.seen)
    }

    fn publish(&mut self, kind: &str, device: Option<&str>, seq: u64, metrics: Value) {
        self.send(json!({"op": "publish", "type": kind, "device": device, "seq": seq, "qos": 1, "metrics": metrics}));
        self.wait(|v| v["event"] == "published", "published");
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alerts(svc: &Service) -> Vec<Value> {
    serde_json::from_str(
        &http_get(&format!("http://{}/api/v1/alerts", svc.http)).unwrap_or_default(),
    )
    .unwrap_or_default()
}

fn offline(svc: &Service, device: &str) -> bool {
    alerts(svc)
        .iter()
        .any(|a| a["key"]["rule"] == "device_offline" && a["key"]["entity"] == device)
}

fn quarantine(svc: &Service) -> String {
    http_get(&format!(
        "http://{}/api/v1/quarantine?from=0&limit=1000",
        svc.http
    ))
    .unwrap()
}

const STORE_BIRTH: fn() -> Value = || {
    json!([
        {"name": "Stock", "alias": 1, "datatype": "DOUBLE", "value": 1.25},
        {"name": "Temperature", "alias": 2, "datatype": "FLOAT", "value": 21.5},
        {"name": "Door Open", "alias": 3, "datatype": "BOOLEAN", "value": false},
        {"name": "Vendor/Serial", "alias": 4, "datatype": "STRING", "value": "SN-1"}
    ])
};

const SCALE_BIRTH: fn() -> Value = || {
    json!([
        {"name": "Ticket/Number", "alias": 10, "datatype": "STRING", "value": ""},
        {"name": "Ticket/Plate", "alias": 11, "datatype": "STRING", "value": ""},
        {"name": "Ticket/Gross", "alias": 12, "datatype": "DOUBLE", "value": 0.0},
        {"name": "Ticket/Tare", "alias": 13, "datatype": "DOUBLE", "value": 0.0},
        {"name": "Ticket/Net", "alias": 14, "datatype": "DOUBLE", "value": 0.0},
        {"name": "Ticket/Category", "alias": 15, "datatype": "STRING", "value": "CONSTRUCTION_SPOIL"},
        {"name": "Ticket/Direction", "alias": 16, "datatype": "STRING", "value": "IN"},
        {"name": "Ticket/Axles", "alias": 17, "datatype": "UINT32", "value": 3}
    ])
};

/// A throw-away zone whose storage point and weighbridge belong to edge
/// node A and whose bin to edge node B, both registered with the broker,
/// and the service's settings with the host enabled.
struct Ctx {
    setup: V1Setup,
    host_id: String,
    group: String,
    edge_a: String,
    pw_a: String,
    edge_b: String,
    pw_b: String,
}

fn prepare(prefix: &str) -> Ctx {
    let tag = unique(prefix);
    let host_id = format!("ww-host-{tag}");
    let group = format!("g-{tag}");
    let setup = V1Setup::new(
        prefix,
        &[
            ("WASTEWATCH__SPARKPLUG__ENABLED", "true"),
            ("WASTEWATCH__SPARKPLUG__HOST_ID", host_id.as_str()),
            ("WASTEWATCH__SPARKPLUG__REBIRTH_MIN_INTERVAL_MS", "0"),
            ("WASTEWATCH__NOTIFY__SNAPSHOT_INTERVAL_MS", "200"),
        ],
    );
    let z = &setup.zone;
    let (edge_a, edge_b) = (format!("ea-{}", setup.tag), format!("eb-{}", setup.tag));
    std::fs::write(
        z.dir.path().join("sparkplug.json"),
        json!([
            {"group_id": group, "edge_node_id": edge_a, "devices": [
                {"sparkplug_device_id": "Store", "device_id": z.storage, "metrics": [
                    {"name": "Stock", "field": "stock_kg", "unit": "t"},
                    {"name": "Temperature", "field": "temperature_deci_c", "unit": "°C"},
                    {"name": "Door Open", "field": "door_open"}]},
                {"sparkplug_device_id": "Scale1", "device_id": z.weighbridge, "metrics": [
                    {"name": "Ticket/Number", "field": "ticket_id"},
                    {"name": "Ticket/Plate", "field": "plate"},
                    {"name": "Ticket/Gross", "field": "gross_weight_kg", "unit": "t"},
                    {"name": "Ticket/Tare", "field": "tare_weight_kg", "unit": "t"},
                    {"name": "Ticket/Net", "field": "net_weight_kg", "unit": "t"},
                    {"name": "Ticket/Category", "field": "category"},
                    {"name": "Ticket/Direction", "field": "direction"},
                    {"name": "Ticket/Axles", "field": "axle_count"}]}]},
            {"group_id": group, "edge_node_id": edge_b, "devices": [
                {"sparkplug_device_id": "Bin", "device_id": z.bin, "metrics": [
                    {"name": "Fill", "field": "fill_level_pct"}]}]}
        ])
        .to_string(),
    )
    .unwrap();
    // The edge nodes' broker identities, and the ingest identity's Sparkplug
    // grants (as deploy/mosquitto/wastewatch.acl gives wastewatch-ingest).
    // `wastewatch devices credentials` again, now that the zone has its
    // edge nodes: it keeps the passwords it issued and adds theirs.
    let ingest_user = format!("ww-{}", setup.tag);
    let out = z.credentials_dir();
    let cmd = Command::new(wastewatch_bin())
        .args(["devices", "credentials", "--zone"])
        .arg(z.dir.path())
        .arg("--out")
        .arg(&out)
        .args(["--ingest-user", ingest_user.as_str()])
        .output()
        .unwrap();
    assert!(
        cmd.status.success(),
        "wastewatch devices credentials: {}",
        String::from_utf8_lossy(&cmd.stderr)
    );
    let passwd = out.join("mosquitto.passwd");
    let (pw_a, pw_b) = (z.device_password(&edge_a), z.device_password(&edge_b));
    let auth = tempfile::tempdir().unwrap();
    let acl = auth.path().join("acl");
    std::fs::write(
        &acl,
        format!(
            "user ww-{}\ntopic read spBv1.0/#\ntopic write spBv1.0/STATE/{host_id}\ntopic write spBv1.0/+/NCMD/+\n",
            setup.tag
        ),
    )
    .unwrap();
    // Mosquitto can miss a reload signal that arrives while it reloads
    // (parallel tests register identities too), so registering again is the
    // cure when the identity does not log in soon.
    let registered = (0..4).any(|_| {
        services(&[
            "mqtt-users",
            passwd.to_str().unwrap(),
            acl.to_str().unwrap(),
        ]);
        eventually(Duration::from_secs(5), || {
            try_login(&edge_a, &pw_a).is_ok() && try_login(&edge_b, &pw_b).is_ok()
        })
    });
    assert!(
        registered,
        "edge node identities not accepted by the broker"
    );
    Ctx {
        setup,
        host_id,
        group,
        edge_a,
        pw_a,
        edge_b,
        pw_b,
    }
}

#[test]
fn an_edge_node_of_pysparkplug_births_reports_by_alias_is_rebirthed_and_dies_into_device_offline() {
    let Ctx {
        setup,
        host_id,
        group,
        edge_a,
        pw_a,
        edge_b,
        pw_b,
    } = prepare("spb");
    let z = &setup.zone;
    let svc = setup.start();
    let (host, port) = mqtt_addr();
    let connect = |e: &mut Edge, edge: &str, pw: &str, bd: u64| {
        e.send(
            json!({"op": "connect", "host": host, "port": port, "user": edge, "password": pw,
                      "group": group, "edge": edge, "bd_seq": bd, "host_id": host_id}),
        );
        e.wait(|v| v["event"] == "connected", "connected");
    };

    // 1. The host's STATE birth, retained: a node connecting later gets it.
    let mut a = Edge::spawn();
    connect(&mut a, &edge_a, &pw_a, 1);
    let st = a.wait(|v| v["event"] == "state", "STATE");
    assert_eq!(st["online"], true, "{st}");
    assert_eq!(st["retain"], true, "STATE must be retained: {st}");
    assert!(
        st["timestamp"].as_i64().unwrap() > 1_700_000_000_000,
        "{st}"
    );

    // 2. Births, then data by alias only.
    a.publish("NBIRTH", None, 0, json!([]));
    a.publish("DBIRTH", Some("Store"), 1, STORE_BIRTH());
    a.publish("DBIRTH", Some("Scale1"), 2, SCALE_BIRTH());
    a.publish(
        "DDATA",
        Some("Store"),
        3,
        json!([{"alias": 1, "datatype": "DOUBLE", "value": 2.375}]),
    );
    a.publish(
        "DDATA",
        Some("Scale1"),
        4,
        json!([
            {"alias": 11, "datatype": "STRING", "value": "豫AD1234"},
            {"alias": 12, "datatype": "DOUBLE", "value": 31.52},
            {"alias": 13, "datatype": "DOUBLE", "value": 15.25},
            {"alias": 14, "datatype": "DOUBLE", "value": 16.27}
        ]),
    );
    a.publish(
        "DDATA",
        Some("Scale1"),
        5,
        json!([{"alias": 10, "datatype": "STRING", "value": "SPB-0001"}]),
    );
    let db = setup.db.clone();
    assert!(
        eventually(Duration::from_secs(20), || !influx_rows(
            &db,
            "SELECT * FROM weighbridge_ticket"
        )
        .is_empty()
            && !influx_rows(&db, "SELECT * FROM storage_reading").is_empty()),
        "no Sparkplug records in InfluxDB\nlog:\n{}",
        setup.log()
    );
    let s = &influx_rows(&db, "SELECT * FROM storage_reading")[0];
    assert_eq!(s["device"].as_str(), Some(z.storage.as_str()));
    assert_eq!(
        s["stock_kg"].as_f64(),
        Some(2375.0),
        "2.375 t → kg exactly: {s:?}"
    );
    assert_eq!(
        s["temperature_c"].as_f64(),
        Some(21.5),
        "from the DBIRTH value: {s:?}"
    );
    assert_eq!(s["door_open"].as_bool(), Some(false));
    let t = &influx_rows(&db, "SELECT * FROM weighbridge_ticket")[0];
    assert_eq!(t["ticket_id"].as_str(), Some("SPB-0001"), "{t:?}");
    assert_eq!(t["gross_kg"].as_f64(), Some(31_520.0), "{t:?}");
    assert_eq!(t["tare_kg"].as_f64(), Some(15_250.0), "{t:?}");
    assert_eq!(t["net_kg"].as_f64(), Some(16_270.0), "{t:?}");
    assert_eq!(t["plate"].as_str(), Some("豫AD1234"));
    assert_eq!(t["category"].as_str(), Some("construction_spoil"));
    assert_eq!(t["direction"].as_str(), Some("in"));
    assert_eq!(t["axle_count"].as_i64(), Some(3));

    // 3. A seq gap (6 expected, 9 sent): the host asks for a rebirth; the
    //    data itself is mapped (its aliases are known) and stored.
    a.publish(
        "DDATA",
        Some("Store"),
        9,
        json!([{"alias": 1, "datatype": "DOUBLE", "value": 2.5}]),
    );
    let cmd = a.wait(|v| v["event"] == "ncmd", "NCMD Rebirth after the seq gap");
    assert_eq!(cmd["metrics"]["Node Control/Rebirth"], true, "{cmd}");
    assert_eq!(cmd["topic"], format!("spBv1.0/{group}/NCMD/{edge_a}"));
    // The node answers with new births (seq from 0 again).
    a.publish("NBIRTH", None, 0, json!([]));
    a.publish("DBIRTH", Some("Store"), 1, STORE_BIRTH());
    a.publish("DBIRTH", Some("Scale1"), 2, SCALE_BIRTH());
    a.publish(
        "DDATA",
        Some("Store"),
        3,
        json!([{"alias": 3, "datatype": "BOOLEAN", "value": true}]),
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            let rows = influx_rows(&db, "SELECT stock_kg, door_open FROM storage_reading");
            rows.iter().any(|r| r["stock_kg"].as_f64() == Some(2500.0))
                && rows.iter().any(|r| {
                    r["door_open"].as_bool() == Some(true) && r["stock_kg"].as_f64() == Some(1250.0)
                })
        }),
        "the gap's data and the data after the rebirth are not stored: {:?}\nlog:\n{}",
        influx_rows(&db, "SELECT * FROM storage_reading"),
        setup.log()
    );

    // 4. An unknown alias: quarantined with the reason, a rebirth asked.
    a.publish(
        "DDATA",
        Some("Store"),
        4,
        json!([{"alias": 99, "datatype": "DOUBLE", "value": 9.0}]),
    );
    let cmd = a.wait(
        |v| v["event"] == "ncmd",
        "NCMD Rebirth after an unknown alias",
    );
    assert_eq!(cmd["metrics"]["Node Control/Rebirth"], true);
    assert!(
        eventually(Duration::from_secs(10), || quarantine(&svc)
            .contains("unknown_alias")),
        "unknown alias not quarantined: {}",
        quarantine(&svc)
    );
    assert!(quarantine(&svc).contains("alias 99"));

    // 5. Edge node B claims A's storage point ("Store" is not B's device).
    let mut b = Edge::spawn();
    connect(&mut b, &edge_b, &pw_b, 0);
    b.publish("NBIRTH", None, 0, json!([]));
    b.publish(
        "DBIRTH",
        Some("Store"),
        1,
        json!([{"name": "Stock", "alias": 1, "datatype": "DOUBLE", "value": 0.777}]),
    );
    b.publish(
        "DDATA",
        Some("Store"),
        2,
        json!([{"alias": 1, "datatype": "DOUBLE", "value": 0.777}]),
    );
    assert!(
        eventually(Duration::from_secs(10), || quarantine(&svc)
            .contains(&format!("edge node {group}/{edge_b} has no device"))),
        "B's claim on A's device not refused: {}",
        quarantine(&svc)
    );
    assert!(
        !influx_rows(&db, "SELECT stock_kg FROM storage_reading")
            .iter()
            .any(|r| r["stock_kg"].as_f64() == Some(777.0)),
        "a device was spoken for by another edge node"
    );
    // B cannot publish under A's name either: the broker's ACL drops it
    // (QoS 1: MQTT 3.1.1 has no refusal code, the broker acks and drops).
    b.send(json!({"op": "publish", "type": "DDATA", "device": "Store", "seq": 5, "qos": 1,
                  "as_edge": edge_a, "metrics": [{"alias": 1, "datatype": "DOUBLE", "value": 0.555}]}));
    b.wait(|v| v["event"] == "published", "published");

    // A's next message is no gap: B's attempt never reached the host.
    a.publish(
        "DDATA",
        Some("Store"),
        5,
        json!([{"alias": 2, "datatype": "FLOAT", "value": 22.5}]),
    );
    assert!(
        eventually(Duration::from_secs(10), || influx_rows(
            &db,
            "SELECT temperature_c FROM storage_reading"
        )
        .iter()
        .any(|r| r["temperature_c"].as_f64() == Some(22.5))),
        "A's reading after B's attempt not stored"
    );
    assert!(
        !influx_rows(&db, "SELECT stock_kg FROM storage_reading")
            .iter()
            .any(|r| r["stock_kg"].as_f64() == Some(555.0)),
        "B published under A's id"
    );
    let gaps = svc.metric("sparkplug_seq_gaps_total");
    assert_eq!(
        gaps, 1,
        "only the deliberate gap; B's message under A's id must not count"
    );

    // 6. DDEATH: the storage point goes offline.
    a.publish("DDEATH", Some("Store"), 6, json!([]));
    assert!(
        eventually(Duration::from_secs(20), || offline(&svc, &z.storage)),
        "no device_offline for {} after DDEATH: {:?}\nlog:\n{}",
        z.storage,
        alerts(&svc),
        setup.log()
    );
    assert!(!offline(&svc, &z.weighbridge));
    // 7. The node dies without DISCONNECT: the broker publishes its NDEATH
    //    will (bdSeq 1, this session's), and the scale goes offline too.
    a.send(json!({"op": "die"}));
    assert!(
        eventually(Duration::from_secs(30), || offline(&svc, &z.weighbridge)),
        "no device_offline for {} after the NDEATH will: {:?}\nlog:\n{}",
        z.weighbridge,
        alerts(&svc),
        setup.log()
    );
    assert!(svc.metric("sparkplug_rebirth_requests_total") >= 2);
    assert!(svc.metric("sparkplug_seq_gaps_total") >= 1);
    assert!(
        svc.metric("sparkplug_unmapped_metrics_total") >= 2,
        "Vendor/Serial of two DBIRTHs"
    );
    let log = setup.log();
    assert!(log.contains("sparkplug STATE birth published"), "{log}");
    assert!(
        !log.contains("refused a publish of ours"),
        "the broker refused the host's STATE or NCMD:\n{log}"
    );
    drop(b);
    svc.stop();
}

/// firmware-sim's edge node (`firmware_sim::sparkplug`) with its faults, a
/// seq gap and a reconnect without DISCONNECT, against the real service:
/// the gap is answered by a rebirth the node answers, the reconnect's
/// NDEATH will and new session are taken, and every reading it sent is
/// stored exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_sim_edge_node_with_a_seq_gap_and_a_reconnect_loses_no_reading() {
    use firmware_sim::sparkplug::{play, EdgeFaults, EdgeNodeSim, EdgeTarget};
    use wastewatch_contract::pb::{envelope::Body, DeviceKind};

    let ctx = prepare("spbsim");
    let setup = &ctx.setup;
    let svc = setup.start();
    let registry =
        wastewatch_contract::registry::Registry::load_dir(setup.zone.dir.path()).unwrap();
    let mut sim = EdgeNodeSim::from_registry(&registry, &ctx.edge_a).unwrap();
    let t0 = now_ms() - 60_000;
    let readings: Vec<_> = (1..=12u64)
        .map(|i| {
            setup
                .zone
                .envelope(DeviceKind::Storage, i, t0 + i as i64 * 1000)
        })
        .collect();
    let (host, port) = mqtt_addr();
    let target = EdgeTarget {
        host,
        port,
        login: Some((ctx.edge_a.clone(), ctx.pw_a.clone())),
        client_id_prefix: CLIENT_ID_PREFIX.to_owned(),
    };
    // The rebirth request must reach the node before it drops its first
    // session (an NCMD to a gone session is lost, as on any broker).
    let faults = EdgeFaults {
        seq_gap_before: Some(2),
        reconnect_before: Some(9),
    };
    let summary = play(
        &mut sim,
        &target,
        &readings,
        &faults,
        Duration::from_millis(200),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(summary.sessions, 2, "{summary:?}");
    assert!(
        summary.rebirths >= 1,
        "the seq gap was not answered by an NCMD Rebirth: {summary:?}\nlog:\n{}",
        setup.log()
    );
    assert_eq!(summary.data.get(&setup.zone.storage), Some(&12));
    let want: std::collections::BTreeSet<u64> = readings
        .iter()
        .map(|e| match &e.body {
            Some(Body::StorageReading(s)) => s.stock_kg as u64,
            _ => unreachable!(),
        })
        .collect();
    let db = setup.db.clone();
    let stored = || -> std::collections::BTreeSet<u64> {
        influx_rows(&db, "SELECT stock_kg FROM storage_reading")
            .iter()
            .filter_map(|r| r["stock_kg"].as_f64())
            .map(|v| v as u64)
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(20), || stored() == want),
        "stored {:?}, sent {want:?}\nlog:\n{}",
        stored(),
        setup.log()
    );
    for r in influx_rows(&db, "SELECT stock_kg, temperature_c FROM storage_reading") {
        let kg = r["stock_kg"].as_f64().unwrap();
        assert_eq!(kg, kg.round(), "exact kg after t -> kg: {r:?}");
        assert_eq!(r["temperature_c"].as_f64(), Some(25.1), "{r:?}");
    }
    // The clean end (NDEATH of the second session) takes the store offline.
    assert!(
        eventually(Duration::from_secs(20), || offline(
            &svc,
            &setup.zone.storage
        )),
        "no device_offline after the final NDEATH: {:?}",
        alerts(&svc)
    );
    assert!(svc.metric("sparkplug_rebirth_requests_total") >= 1);
    svc.stop();
}
