//! Devices as a Sparkplug B edge node: the storage points, weighbridges and
//! bins that `sparkplug.json` maps to one edge node, played the way a PLC
//! gateway publishes them — NBIRTH (seq 0, bdSeq, `Node Control/Rebirth`),
//! a DBIRTH per device declaring every mapped metric with its alias and
//! data type, then DDATA by alias only, seq 0–255 per node, and an NDEATH
//! with the session's bdSeq registered as the MQTT will.
//!
//! The readings are the fleet's own (the native envelopes [`crate::Fleet`]
//! makes), each body field turned into its metric in the metric's unit, so
//! a test can check that the host's record equals the native one.
//!
//! Faults: a seq gap (the node skips seq numbers, the host must answer with
//! an NCMD Rebirth, which the node answers with new births) and a reconnect
//! (the connection dropped without DISCONNECT: the broker publishes the
//! NDEATH will; the node comes back with bdSeq + 1 and new births).
//!
//! [`EdgeNodeSim`] is pure (payloads in, bytes out); [`play`] is the MQTT
//! shell.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use wastewatch_contract::pb::{self, envelope::Body};
use wastewatch_contract::registry::sparkplug::{field_value, metric_datatype, MetricMap};
use wastewatch_contract::registry::Registry;
use wastewatch_contract::sparkplug::{self as sp, datatype as dt, MessageType, Value};
use wastewatch_contract::sparkplug_pb::Payload;

/// One mapped device of the node.
#[derive(Clone, Debug)]
struct SimDevice {
    /// Sparkplug device id; `None`: the node's own metrics.
    sp_id: Option<String>,
    /// wastewatch device id.
    device_id: String,
    /// (alias, mapping), sorted by metric name.
    metrics: Vec<(u64, MetricMap)>,
    /// The last body published (the birth certificate's values).
    last: Option<Body>,
}

/// A message to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpMsg {
    /// Topic.
    pub topic: String,
    /// Encoded Sparkplug B payload.
    pub payload: Vec<u8>,
}

/// The edge node's state: session, seq, the devices and their aliases.
#[derive(Clone, Debug)]
pub struct EdgeNodeSim {
    /// Group id.
    pub group_id: String,
    /// Edge node id (also the broker user name).
    pub edge_node_id: String,
    /// bdSeq of the current session.
    pub bd_seq: u64,
    seq: u8,
    devices: Vec<SimDevice>,
}

impl EdgeNodeSim {
    /// The edge node `edge_node_id` of the registry's `sparkplug.json`.
    pub fn from_registry(registry: &Registry, edge_node_id: &str) -> Option<EdgeNodeSim> {
        let node = registry
            .sparkplug
            .values()
            .find(|n| n.edge_node_id == edge_node_id)?;
        let mut next_alias = 1u64;
        let mut devices: Vec<SimDevice> = node
            .devices
            .iter()
            .map(|d| {
                let mut names: Vec<&String> = d.metrics.keys().collect();
                names.sort();
                let metrics = names
                    .into_iter()
                    .map(|n| {
                        let a = next_alias;
                        next_alias += 1;
                        (a, d.metrics[n].clone())
                    })
                    .collect();
                SimDevice {
                    sp_id: d.sparkplug_device_id.clone(),
                    device_id: d.device_id.clone(),
                    metrics,
                    last: None,
                }
            })
            .collect();
        devices.sort_by(|a, b| a.sp_id.cmp(&b.sp_id));
        Some(EdgeNodeSim {
            group_id: node.group_id.clone(),
            edge_node_id: node.edge_node_id.clone(),
            bd_seq: 0,
            seq: 0,
            devices,
        })
    }

    /// The wastewatch devices this node speaks for.
    pub fn device_ids(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.device_id.clone()).collect()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        u64::from(self.seq)
    }

    /// Fault: the next message's seq is `n` higher than it should be.
    pub fn skip_seq(&mut self, n: u8) {
        self.seq = self.seq.wrapping_add(n);
    }

    fn bd_seq_metric(&self) -> pb_metric::Metric {
        sp::metric(
            Some(sp::BD_SEQ_METRIC),
            None,
            dt::INT64,
            &Value::Int(i128::from(self.bd_seq)),
        )
    }

    /// The NDEATH of the current session (registered as the will).
    pub fn ndeath(&self, ts_ms: i64) -> SpMsg {
        SpMsg {
            topic: sp::topic(
                &self.group_id,
                MessageType::NDeath,
                &self.edge_node_id,
                None,
            ),
            payload: Payload {
                timestamp: Some(ts_ms as u64),
                metrics: vec![self.bd_seq_metric()],
                ..Default::default()
            }
            .encode_to_vec(),
        }
    }

    /// NBIRTH (seq 0) and a DBIRTH per device with every mapped metric,
    /// its alias, data type and last value.
    pub fn births(&mut self, ts_ms: i64) -> Vec<SpMsg> {
        self.seq = 0;
        let mut node_metrics = vec![
            self.bd_seq_metric(),
            sp::metric(
                Some(sp::REBIRTH_METRIC),
                None,
                dt::BOOLEAN,
                &Value::Bool(false),
            ),
        ];
        let mut out = Vec::new();
        if let Some(d) = self.devices.iter().find(|d| d.sp_id.is_none()) {
            node_metrics.extend(birth_metrics(d));
        }
        out.push(SpMsg {
            topic: sp::topic(
                &self.group_id,
                MessageType::NBirth,
                &self.edge_node_id,
                None,
            ),
            payload: Payload {
                timestamp: Some(ts_ms as u64),
                seq: Some(0),
                metrics: node_metrics,
                ..Default::default()
            }
            .encode_to_vec(),
        });
        for i in 0..self.devices.len() {
            let Some(sp_id) = self.devices[i].sp_id.clone() else {
                continue;
            };
            let seq = self.next_seq();
            out.push(SpMsg {
                topic: sp::topic(
                    &self.group_id,
                    MessageType::DBirth,
                    &self.edge_node_id,
                    Some(&sp_id),
                ),
                payload: Payload {
                    timestamp: Some(ts_ms as u64),
                    seq: Some(seq),
                    metrics: birth_metrics(&self.devices[i]),
                    ..Default::default()
                }
                .encode_to_vec(),
            });
        }
        out
    }

    /// The DDATA (or NDATA) carrying a native envelope's body by alias, or
    /// `None` when the envelope's device is not this node's or its body is
    /// not a mapped reading.
    pub fn data(&mut self, env: &pb::Envelope) -> Option<SpMsg> {
        let i = self
            .devices
            .iter()
            .position(|d| d.device_id == env.device_id)?;
        let body = env.body.as_ref()?;
        if matches!(body, Body::DeviceStatus(_) | Body::TruckFix(_)) {
            return None;
        }
        let metrics: Vec<_> = self.devices[i]
            .metrics
            .iter()
            .filter_map(|(alias, m)| {
                let v = field_value(body, m)?;
                let mut metric = sp::metric(None, Some(*alias), metric_datatype(m), &v);
                // By alias only: the data type is the birth's.
                metric.datatype = None;
                Some(metric)
            })
            .collect();
        self.devices[i].last = Some(body.clone());
        let seq = self.next_seq();
        let d = &self.devices[i];
        let (kind, dev) = match &d.sp_id {
            Some(s) => (MessageType::DData, Some(s.as_str())),
            None => (MessageType::NData, None),
        };
        Some(SpMsg {
            topic: sp::topic(&self.group_id, kind, &self.edge_node_id, dev),
            payload: Payload {
                timestamp: Some(env.recorded_at_unix_ms as u64),
                seq: Some(seq),
                metrics,
                ..Default::default()
            }
            .encode_to_vec(),
        })
    }

    /// The DDEATH of one device (by wastewatch id).
    pub fn ddeath(&mut self, device_id: &str, ts_ms: i64) -> Option<SpMsg> {
        let sp_id = self
            .devices
            .iter()
            .find(|d| d.device_id == device_id)?
            .sp_id
            .clone()?;
        let seq = self.next_seq();
        Some(SpMsg {
            topic: sp::topic(
                &self.group_id,
                MessageType::DDeath,
                &self.edge_node_id,
                Some(&sp_id),
            ),
            payload: Payload {
                timestamp: Some(ts_ms as u64),
                seq: Some(seq),
                ..Default::default()
            }
            .encode_to_vec(),
        })
    }
}

mod pb_metric {
    pub use wastewatch_contract::sparkplug_pb::payload::Metric;
}

fn birth_metrics(d: &SimDevice) -> Vec<pb_metric::Metric> {
    d.metrics
        .iter()
        .map(|(alias, m)| {
            let v = d
                .last
                .as_ref()
                .and_then(|b| field_value(b, m))
                .unwrap_or(Value::Null);
            sp::metric(Some(&m.name), Some(*alias), metric_datatype(m), &v)
        })
        .collect()
}

/// Faults of [`play`].
#[derive(Clone, Debug, Default)]
pub struct EdgeFaults {
    /// Before the reading with this index, skip 3 seq numbers.
    pub seq_gap_before: Option<usize>,
    /// Before the reading with this index, drop the connection without
    /// DISCONNECT and reconnect (new session, bdSeq + 1).
    pub reconnect_before: Option<usize>,
}

/// Where and as whom the node connects.
#[derive(Clone, Debug)]
pub struct EdgeTarget {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// User name (the edge node id) and password.
    pub login: Option<(String, String)>,
    /// Prefix of the client id (the shipped broker wants `ww:`).
    pub client_id_prefix: String,
}

/// What [`play`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeSummary {
    /// Data messages published, by wastewatch device id.
    pub data: BTreeMap<String, u64>,
    /// Rebirth requests (NCMD) received and answered with new births.
    pub rebirths: u64,
    /// Sessions (connects).
    pub sessions: u64,
}

/// Errors of [`play`].
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The broker refused or the connection failed.
    #[error("sparkplug edge node: {0}")]
    Mqtt(String),
}

struct Session {
    client: AsyncClient,
    ncmd: tokio::sync::mpsc::UnboundedReceiver<Payload>,
    task: tokio::task::JoinHandle<()>,
}

async fn open(sim: &EdgeNodeSim, target: &EdgeTarget, now_ms: i64) -> Result<Session, EdgeError> {
    let mut o = MqttOptions::new(
        format!("{}{}", target.client_id_prefix, sim.edge_node_id),
        target.host.clone(),
        target.port,
    );
    if let Some((u, p)) = &target.login {
        o.set_credentials(u.clone(), p.clone());
    }
    o.set_clean_start(true);
    o.set_keep_alive(Duration::from_secs(5));
    let will = sim.ndeath(now_ms);
    o.set_last_will(LastWill::new(
        will.topic,
        will.payload,
        QoS::AtMostOnce,
        false,
        None,
    ));
    let (client, mut el) = AsyncClient::new(o, 256);
    let (tx, ncmd) = tokio::sync::mpsc::unbounded_channel();
    let (up_tx, up_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let ncmd_topic = sp::topic(&sim.group_id, MessageType::NCmd, &sim.edge_node_id, None);
    let task = tokio::spawn(async move {
        let mut up = Some(up_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(u) = up.take() {
                        let _ = u.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(pl) = Payload::decode(p.payload.as_ref()) {
                        let _ = tx.send(pl);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(u) = up.take() {
                        let _ = u.send(Err(e.to_string()));
                    }
                    return;
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(10), up_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(EdgeError::Mqtt(e)),
        _ => return Err(EdgeError::Mqtt("no CONNACK within 10 s".into())),
    }
    client
        .subscribe(ncmd_topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| EdgeError::Mqtt(e.to_string()))?;
    Ok(Session { client, ncmd, task })
}

async fn send(s: &Session, m: SpMsg) -> Result<(), EdgeError> {
    s.client
        .publish(m.topic, QoS::AtMostOnce, false, m.payload)
        .await
        .map_err(|e| EdgeError::Mqtt(e.to_string()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Plays the node against a broker: connect (NDEATH will), births, then
/// one data message per reading `pace` apart, answering rebirth requests,
/// with `faults`; `linger` after the last reading for a late NCMD. Ends
/// with a clean NDEATH and DISCONNECT.
pub async fn play(
    sim: &mut EdgeNodeSim,
    target: &EdgeTarget,
    readings: &[pb::Envelope],
    faults: &EdgeFaults,
    pace: Duration,
    linger: Duration,
) -> Result<EdgeSummary, EdgeError> {
    let mut summary = EdgeSummary::default();
    let mut s = open(sim, target, now_ms()).await?;
    summary.sessions += 1;
    for m in sim.births(now_ms()) {
        send(&s, m).await?;
    }
    let answer = |s: &mut Session, sim: &mut EdgeNodeSim, summary: &mut EdgeSummary| {
        let mut births = Vec::new();
        while let Ok(p) = s.ncmd.try_recv() {
            if sp::is_rebirth_request(&p) {
                summary.rebirths += 1;
                births = sim.births(now_ms());
            }
        }
        births
    };
    for (i, env) in readings.iter().enumerate() {
        if faults.reconnect_before == Some(i) {
            // Gone without DISCONNECT: the broker publishes the will.
            s.task.abort();
            drop(s);
            tokio::time::sleep(Duration::from_millis(300)).await;
            sim.bd_seq = sim.bd_seq.wrapping_add(1);
            s = open(sim, target, now_ms()).await?;
            summary.sessions += 1;
            for m in sim.births(now_ms()) {
                send(&s, m).await?;
            }
        }
        if faults.seq_gap_before == Some(i) {
            sim.skip_seq(3);
        }
        for m in answer(&mut s, sim, &mut summary) {
            send(&s, m).await?;
        }
        if let Some(m) = sim.data(env) {
            send(&s, m).await?;
            *summary.data.entry(env.device_id.clone()).or_default() += 1;
        }
        // Commands are answered while waiting for the next reading.
        let next = tokio::time::Instant::now() + pace;
        while tokio::time::Instant::now() < next {
            for m in answer(&mut s, sim, &mut summary) {
                send(&s, m).await?;
            }
            tokio::time::sleep(Duration::from_millis(20).min(pace)).await;
        }
    }
    let t0 = tokio::time::Instant::now();
    while t0.elapsed() < linger {
        for m in answer(&mut s, sim, &mut summary) {
            send(&s, m).await?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send(&s, sim.ndeath(now_ms())).await?;
    let _ = s.client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.task.abort();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::{Fleet, SimConfig};
    use wastewatch::decode::{DecodePolicy, Decoder};
    use wastewatch::gateway::sparkplug::{Host, HostConfig};
    use wastewatch_contract::json::decode_json;

    const START: i64 = 1_795_780_800_000;

    fn zone() -> Registry {
        Registry::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../zone")).unwrap()
    }

    /// What the shipped edge node sends, through the service's own host
    /// state machine, gives the records the same devices' native messages
    /// give (every mapped field equal); a seq gap is answered by a rebirth.
    #[test]
    fn the_edge_node_of_the_shipped_zone_makes_the_native_records() {
        let reg = zone();
        let mut sim = EdgeNodeSim::from_registry(&reg, "edge-hazard-east-01").unwrap();
        let ids = sim.device_ids();
        assert_eq!(ids.len(), 2);
        let dec = Arc::new(Decoder::new(Arc::new(reg.clone()), DecodePolicy::default()));
        let mut host = Host::new(
            dec.clone(),
            HostConfig {
                host_id: "ww".into(),
                groups: vec![],
                rebirth_min_interval_ms: 0,
            },
        );
        let cfg = SimConfig {
            seed: 7,
            start_unix_ms: START,
            json_share: 0.3,
            ..SimConfig::default()
        };
        let mut fleet = Fleet::new(&reg, &cfg).unwrap();
        let mut msgs = Vec::new();
        let mut t = START;
        while t < START + 30 * 3_600_000 {
            t += 60_000;
            msgs.extend(
                fleet
                    .next_batch(t)
                    .into_iter()
                    .filter(|m| ids.contains(&m.device_id) && !m.expect_quarantine && !m.duplicate),
            );
        }
        for m in sim.births(START) {
            let o = host.on_message(&m.topic, &m.payload, START);
            assert!(o.quarantine.is_empty(), "{:?}", o.quarantine);
        }
        let mut compared = BTreeMap::<String, u64>::new();
        let mut i = 0;
        for m in &msgs {
            let env = if m.json {
                decode_json(&m.payload).unwrap()
            } else {
                pb::Envelope::decode(m.payload.as_slice()).unwrap()
            };
            if !sim.device_ids().contains(&env.device_id)
                || matches!(env.body, Some(Body::DeviceStatus(_)) | None)
            {
                continue;
            }
            i += 1;
            if i == 5 {
                sim.skip_seq(2);
            }
            let Some(sm) = sim.data(&env) else { continue };
            let out = host.on_message(&sm.topic, &sm.payload, m.sim_time_ms);
            assert!(out.quarantine.is_empty(), "{:?}", out.quarantine);
            if i == 5 {
                assert_eq!(out.commands.len(), 1, "a seq gap asks for a rebirth");
                for b in sim.births(m.sim_time_ms) {
                    host.on_message(&b.topic, &b.payload, m.sim_time_ms);
                }
            } else {
                assert!(out.commands.is_empty(), "message {i}: {:?}", out.commands);
            }
            let native = dec
                .decode(
                    &m.topic,
                    &m.payload,
                    m.json.then_some("application/json"),
                    m.sim_time_ms,
                )
                .unwrap();
            let (Some(rec), Some(nat)) = (out.records.first(), native.envelope.as_ref()) else {
                panic!("no record for {}", m.topic)
            };
            let got = rec.envelope.as_ref().unwrap();
            assert_eq!(got.device_id, nat.device_id);
            assert_eq!(got.recorded_at_unix_ms, nat.recorded_at_unix_ms);
            let node = reg.sparkplug.values().next().unwrap();
            let map = node
                .devices
                .iter()
                .find(|d| d.device_id == nat.device_id)
                .unwrap();
            for mm in map.metrics.values() {
                assert_eq!(
                    field_value(got.body.as_ref().unwrap(), mm),
                    field_value(nat.body.as_ref().unwrap(), mm),
                    "{} {}",
                    nat.device_id,
                    mm.name
                );
            }
            *compared.entry(nat.device_id.clone()).or_default() += 1;
        }
        assert!(
            compared.len() == 2 && compared.values().all(|n| *n >= 2),
            "{compared:?}"
        );
    }
}
