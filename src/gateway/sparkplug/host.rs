//! The Sparkplug B host application as a pure state machine: one MQTT
//! message in (topic, payload, receive time), records, quarantine entries
//! and commands out. The committer runs it in receipt order, appends its
//! records and quarantine entries in the same group commit as native
//! messages, and acks the message only once they are durable.
//!
//! Per edge node it keeps the session (`bdSeq` of the NBIRTH), the last
//! `seq` (0–255, wrapping), the metric alias map of the NBIRTH and of each
//! DBIRTH (name, alias, data type) and the last value of every metric of a
//! mapped device (so a report-by-exception DDATA still yields a whole
//! reading). What it does with each message type:
//!
//! - NBIRTH: a new session; every device's birth is void until its DBIRTH.
//! - DBIRTH: the device's aliases and values; a `birth` status record.
//! - NDATA/DDATA: metrics resolved by alias (or name); a record of the
//!   device's kind when a triggering metric came (see
//!   [`SparkplugDevice::triggers_record`]).
//! - DDEATH, and NDEATH whose bdSeq is the session's: a `last_will` status
//!   record per mapped device that was online, which the `device_offline`
//!   rule raises an alert on. An NDEATH of an older session (the broker
//!   publishing the will of a connection the node has already replaced) is
//!   ignored.
//! - A seq gap, an unknown alias or data before birth: a Rebirth request
//!   (NCMD `Node Control/Rebirth` = true, at most one per node per
//!   `rebirth_min_interval_ms` until the NBIRTH comes). A message whose
//!   metrics cannot be resolved is quarantined whole with its raw bytes; a
//!   message after a gap whose aliases are known is still stored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prost::Message as _;

use crate::decode::{validate, DecodeError, Decoder, ErrorKind, SCHEMA_VERSION};
use crate::pb::{self, envelope::Body};
use crate::registry::sparkplug::{empty_body, set_field, SparkplugDevice, SparkplugNode};
use wastewatch_contract::sparkplug::{
    self as sp, parse_topic, value_of, MessageType, SpTopic, Value,
};
use wastewatch_contract::sparkplug_pb::Payload;

/// Content type of quarantined Sparkplug B messages.
pub const CONTENT_TYPE: &str = "application/vnd.eclipse.sparkplug.b";

/// Host settings.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The host application id (`spBv1.0/STATE/{host_id}`).
    pub host_id: String,
    /// Groups handled; empty: every group.
    pub groups: Vec<String>,
    /// Least time between two rebirth requests to one edge node, ms.
    pub rebirth_min_interval_ms: i64,
}

/// A message to publish (QoS 1, not retained).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What one message produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Records to append.
    pub records: Vec<pb::LogRecord>,
    /// Quarantine entries, with their reason.
    pub quarantine: Vec<(ErrorKind, pb::QuarantineRecord)>,
    /// Commands to publish (rebirth requests).
    pub commands: Vec<Command>,
    /// A seq gap was seen.
    pub seq_gaps: u64,
    /// Metric values of mapped devices no field takes.
    pub unmapped_metrics: u64,
    /// An NDEATH of an older session was ignored.
    pub stale_deaths: u64,
}

/// The alias map and last values of one device (or of the node's own
/// metrics).
#[derive(Debug, Default)]
struct DevState {
    online: bool,
    /// alias → (name, data type).
    aliases: HashMap<u64, (String, u32)>,
    /// name → data type.
    types: HashMap<String, u32>,
    /// name → last value.
    values: HashMap<String, Value>,
}

#[derive(Debug, Default)]
struct NodeState {
    online: bool,
    bd_seq: Option<u64>,
    seq: u8,
    /// Device states by Sparkplug device id; `None`: the node's metrics.
    devices: HashMap<Option<String>, DevState>,
    last_rebirth_ms: Option<i64>,
}

/// The host application's state.
#[derive(Debug)]
pub struct Host {
    decoder: Arc<Decoder>,
    config: HostConfig,
    nodes: HashMap<(String, String), NodeState>,
    logged_unmapped: HashSet<String>,
}

fn quarantine(
    out: &mut Output,
    topic: &str,
    raw: &[u8],
    kind: ErrorKind,
    detail: String,
    received_at_ms: i64,
) {
    tracing::debug!(%topic, reason = %kind, %detail, "sparkplug message quarantined");
    out.quarantine.push((
        kind,
        pb::QuarantineRecord {
            topic: topic.to_owned(),
            payload: raw.to_vec(),
            content_type: CONTENT_TYPE.to_owned(),
            reason: kind.as_str().to_owned(),
            detail,
            received_at_unix_ms: received_at_ms,
            ..Default::default()
        },
    ));
}

/// Metrics every edge node may send that belong to no device field.
fn is_control_metric(name: &str) -> bool {
    name == sp::BD_SEQ_METRIC
        || name.starts_with("Node Control/")
        || name.starts_with("Device Control/")
        || name.starts_with("Properties/")
}

impl Host {
    /// A host with no node known yet.
    pub fn new(decoder: Arc<Decoder>, config: HostConfig) -> Host {
        Host {
            decoder,
            config,
            nodes: HashMap::new(),
            logged_unmapped: HashSet::new(),
        }
    }

    /// True when the edge node is online (has a live NBIRTH).
    pub fn node_online(&self, group_id: &str, edge_node_id: &str) -> bool {
        self.nodes
            .get(&(group_id.to_owned(), edge_node_id.to_owned()))
            .is_some_and(|n| n.online)
    }

    /// Handles one message received at `received_at_ms`.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], received_at_ms: i64) -> Output {
        let mut out = Output::default();
        let (group, kind, edge, device) = match parse_topic(topic) {
            Err(detail) => {
                quarantine(
                    &mut out,
                    topic,
                    payload,
                    ErrorKind::MalformedTopic,
                    detail,
                    received_at_ms,
                );
                return out;
            }
            // Host states (ours among them) need nothing.
            Ok(SpTopic::State { .. }) => return out,
            Ok(SpTopic::Node {
                group_id,
                kind,
                edge_node_id,
                device_id,
            }) => (group_id, kind, edge_node_id, device_id),
        };
        if matches!(kind, MessageType::NCmd | MessageType::DCmd)
            || (!self.config.groups.is_empty() && !self.config.groups.iter().any(|g| g == group))
        {
            return out;
        }
        let limit = self.decoder.policy.max_payload_bytes;
        if payload.len() > limit {
            quarantine(
                &mut out,
                topic,
                payload,
                ErrorKind::PayloadTooLarge,
                format!(
                    "payload is {} bytes, the limit is {limit} bytes",
                    payload.len()
                ),
                received_at_ms,
            );
            return out;
        }
        let p = match Payload::decode(payload) {
            Ok(p) => p,
            Err(e) => {
                quarantine(
                    &mut out,
                    topic,
                    payload,
                    ErrorKind::MalformedProtobuf,
                    format!(
                        "payload of {} bytes is not a Sparkplug B payload: {e}",
                        payload.len()
                    ),
                    received_at_ms,
                );
                return out;
            }
        };
        let registry = self.decoder.registry.clone();
        let Some(node_map) = registry.sparkplug_node(group, edge) else {
            quarantine(
                &mut out,
                topic,
                payload,
                ErrorKind::UnknownDevice,
                format!("edge node {group}/{edge} is not in sparkplug.json"),
                received_at_ms,
            );
            return out;
        };
        let msg = Msg {
            topic,
            raw: payload,
            p: &p,
            group,
            edge,
            device,
            received_at_ms,
        };
        match kind {
            MessageType::NBirth => self.nbirth(&msg, node_map, &mut out),
            MessageType::NDeath => self.ndeath(&msg, node_map, &mut out),
            MessageType::DBirth | MessageType::DData | MessageType::NData | MessageType::DDeath => {
                self.node_message(kind, &msg, node_map, &mut out)
            }
            MessageType::NCmd | MessageType::DCmd => {}
        }
        out
    }

    fn nbirth(&mut self, m: &Msg<'_>, node_map: &SparkplugNode, out: &mut Output) {
        let node = self
            .nodes
            .entry((m.group.to_owned(), m.edge.to_owned()))
            .or_default();
        // A new session: the births of the old one are void. Devices that
        // were online and did not die are reported offline by the rules'
        // silence check, or come back with their DBIRTH.
        node.devices.clear();
        node.online = true;
        node.bd_seq = sp::bd_seq(m.p);
        node.seq = m.p.seq.unwrap_or(0) as u8;
        node.last_rebirth_ms = None;
        let mut st = DevState {
            online: true,
            ..Default::default()
        };
        learn_birth(&mut st, m.p);
        let mapped = node_map.device(None);
        node.devices.insert(None, st);
        if let Some(dev) = mapped {
            let n = count_unmapped(&mut self.logged_unmapped, m, dev, m.p);
            out.unmapped_metrics += n;
            push_status(m, dev, pb::StatusKind::Birth, out);
        }
    }

    fn ndeath(&mut self, m: &Msg<'_>, node_map: &SparkplugNode, out: &mut Output) {
        let Some(node) = self.nodes.get_mut(&(m.group.to_owned(), m.edge.to_owned())) else {
            // Never born since we started: nothing of it is online here.
            out.stale_deaths += 1;
            return;
        };
        let bd = sp::bd_seq(m.p);
        if !node.online || bd != node.bd_seq {
            tracing::debug!(topic = m.topic, death_bd_seq = ?bd, session_bd_seq = ?node.bd_seq, "sparkplug NDEATH of another session ignored");
            out.stale_deaths += 1;
            return;
        }
        node.online = false;
        let mut dead: Vec<Option<String>> = node
            .devices
            .iter()
            .filter(|(_, d)| d.online)
            .map(|(k, _)| k.clone())
            .collect();
        dead.sort();
        node.devices.clear();
        for d in dead {
            if let Some(dev) = node_map.device(d.as_deref()) {
                push_status(m, dev, pb::StatusKind::LastWill, out);
            }
        }
    }

    /// Requests a rebirth of the node unless one was requested recently.
    fn rebirth(&mut self, m: &Msg<'_>, out: &mut Output) {
        let interval = self.config.rebirth_min_interval_ms;
        let node = self
            .nodes
            .entry((m.group.to_owned(), m.edge.to_owned()))
            .or_default();
        if node
            .last_rebirth_ms
            .is_some_and(|t| m.received_at_ms - t < interval && m.received_at_ms >= t)
        {
            return;
        }
        node.last_rebirth_ms = Some(m.received_at_ms);
        out.commands.push(Command {
            topic: sp::topic(m.group, MessageType::NCmd, m.edge, None),
            payload: sp::rebirth_request(u64::try_from(m.received_at_ms).unwrap_or(0))
                .encode_to_vec(),
        });
    }

    fn node_message(
        &mut self,
        kind: MessageType,
        m: &Msg<'_>,
        node_map: &SparkplugNode,
        out: &mut Output,
    ) {
        let key = (m.group.to_owned(), m.edge.to_owned());
        let online = self.nodes.get(&key).is_some_and(|n| n.online);
        if !online {
            quarantine(
                out,
                m.topic,
                m.raw,
                ErrorKind::NoBirth,
                format!(
                    "{} from edge node {}/{} before its NBIRTH; a rebirth is requested",
                    kind.as_str(),
                    m.group,
                    m.edge
                ),
                m.received_at_ms,
            );
            self.rebirth(m, out);
            return;
        }
        // seq: NBIRTH 0, then +1 per message of the node, wrapping at 255.
        let mut gap = false;
        if let Some(node) = self.nodes.get_mut(&key) {
            let expected = node.seq.wrapping_add(1);
            match m.p.seq {
                Some(s) if s == u64::from(expected) => node.seq = expected,
                got => {
                    tracing::debug!(topic = m.topic, expected, ?got, "sparkplug seq gap");
                    node.seq = got.map_or(expected, |s| s as u8);
                    gap = true;
                }
            }
        }
        if gap {
            out.seq_gaps += 1;
            self.rebirth(m, out);
        }
        let dev_key = m.device.map(str::to_owned);
        if kind == MessageType::NData && node_map.device(None).is_none() {
            // The node's own metrics (diagnostics, control) belong to no
            // wastewatch device: counted as unmapped, not refused.
            if let Some(st) = self.nodes.get(&key).and_then(|n| n.devices.get(&None)) {
                for metric in &m.p.metrics {
                    let name = metric.name.clone().filter(|n| !n.is_empty()).or_else(|| {
                        metric
                            .alias
                            .and_then(|a| st.aliases.get(&a))
                            .map(|(n, _)| n.clone())
                    });
                    match name {
                        Some(n) if is_control_metric(&n) => {}
                        Some(n) => {
                            out.unmapped_metrics += 1;
                            log_unmapped(&mut self.logged_unmapped, m, &n);
                        }
                        None => out.unmapped_metrics += 1,
                    }
                }
            }
            return;
        }
        let Some(dev_map) = node_map.device(m.device) else {
            quarantine(
                out,
                m.topic,
                m.raw,
                ErrorKind::UnknownDevice,
                format!(
                    "edge node {}/{} has no device {:?} in sparkplug.json; an edge node may speak only for the devices mapped to it",
                    m.group,
                    m.edge,
                    m.device.unwrap_or("(the node itself)")
                ),
                m.received_at_ms,
            );
            return;
        };
        let Some(node) = self.nodes.get_mut(&key) else {
            return;
        };
        match kind {
            MessageType::DBirth => {
                let mut st = DevState {
                    online: true,
                    ..Default::default()
                };
                learn_birth(&mut st, m.p);
                node.devices.insert(dev_key, st);
                out.unmapped_metrics += count_unmapped(&mut self.logged_unmapped, m, dev_map, m.p);
                push_status(m, dev_map, pb::StatusKind::Birth, out);
            }
            MessageType::DDeath => match node.devices.remove(&dev_key) {
                Some(st) if st.online => push_status(m, dev_map, pb::StatusKind::LastWill, out),
                _ => {}
            },
            _ => {
                let Some(st) = node.devices.get_mut(&dev_key).filter(|d| d.online) else {
                    quarantine(
                        out,
                        m.topic,
                        m.raw,
                        ErrorKind::NoBirth,
                        format!(
                            "{} for {} before its DBIRTH; a rebirth is requested",
                            kind.as_str(),
                            m.device.unwrap_or("the node")
                        ),
                        m.received_at_ms,
                    );
                    self.rebirth(m, out);
                    return;
                };
                // Resolve every metric first: a message is stored whole or
                // quarantined whole.
                let mut resolved = Vec::with_capacity(m.p.metrics.len());
                for metric in &m.p.metrics {
                    let by_name = metric.name.as_deref().filter(|n| !n.is_empty());
                    let found = match (by_name, metric.alias) {
                        (Some(n), _) => st.types.get(n).map(|t| (n.to_owned(), *t)),
                        (None, Some(a)) => st.aliases.get(&a).cloned(),
                        (None, None) => None,
                    };
                    match found {
                        Some((name, ty)) => {
                            let ty = metric.datatype.unwrap_or(ty);
                            resolved.push((name, value_of(metric, ty), metric.timestamp));
                        }
                        None => {
                            let what = match (by_name, metric.alias) {
                                (Some(n), _) => format!("metric name {n:?}"),
                                (None, Some(a)) => format!("alias {a}"),
                                (None, None) => "a metric with neither name nor alias".into(),
                            };
                            quarantine(
                                out,
                                m.topic,
                                m.raw,
                                ErrorKind::UnknownAlias,
                                format!(
                                    "{what} is not in the {} of {}; a rebirth is requested",
                                    if m.device.is_some() {
                                        "DBIRTH"
                                    } else {
                                        "NBIRTH"
                                    },
                                    m.device.unwrap_or("the node")
                                ),
                                m.received_at_ms,
                            );
                            self.rebirth(m, out);
                            return;
                        }
                    }
                }
                let mut trigger = false;
                let mut latest_metric_ts = None;
                for (name, v, ts) in resolved {
                    if !dev_map.metrics.contains_key(&name) && !is_control_metric(&name) {
                        out.unmapped_metrics += 1;
                        log_unmapped(&mut self.logged_unmapped, m, &name);
                    }
                    trigger |= dev_map.triggers_record(&name);
                    latest_metric_ts = latest_metric_ts.max(ts);
                    st.values.insert(name, v);
                }
                if !trigger {
                    return;
                }
                let t_ms =
                    m.p.timestamp
                        .or(latest_metric_ts)
                        .and_then(|t| i64::try_from(t).ok())
                        .unwrap_or(m.received_at_ms);
                match reading(&self.decoder, dev_map, &st.values, t_ms, m.received_at_ms) {
                    Ok(rec) => out.records.push(rec),
                    Err(e) => quarantine(out, m.topic, m.raw, e.kind, e.detail, m.received_at_ms),
                }
            }
        }
    }
}

fn push_status(m: &Msg<'_>, dev: &SparkplugDevice, kind: pb::StatusKind, out: &mut Output) {
    let t = m.received_at_ms;
    out.records.push(pb::LogRecord {
        envelope: Some(pb::Envelope {
            site_id: dev.site_id.clone(),
            device_id: dev.device_id.clone(),
            device_kind: dev.kind as i32,
            seq: u64::try_from(t).unwrap_or(0),
            recorded_at_unix_ms: t,
            schema_version: SCHEMA_VERSION,
            body: Some(Body::DeviceStatus(pb::DeviceStatus {
                kind: kind as i32,
                ..Default::default()
            })),
        }),
        received_at_unix_ms: t,
        time_unix_ms: t,
        clock_check: pb::ClockCheck::Ok as i32,
        from_json: false,
        alert: None,
        kpi: None,
    });
}

/// One message being handled.
struct Msg<'a> {
    topic: &'a str,
    raw: &'a [u8],
    p: &'a Payload,
    group: &'a str,
    edge: &'a str,
    device: Option<&'a str>,
    received_at_ms: i64,
}

fn learn_birth(st: &mut DevState, p: &Payload) {
    for metric in &p.metrics {
        let Some(name) = metric.name.clone().filter(|n| !n.is_empty()) else {
            continue;
        };
        let ty = metric.datatype.unwrap_or(0);
        if let Some(a) = metric.alias {
            st.aliases.insert(a, (name.clone(), ty));
        }
        st.types.insert(name.clone(), ty);
        st.values.insert(name, value_of(metric, ty));
    }
}

fn log_unmapped(logged: &mut HashSet<String>, m: &Msg<'_>, name: &str) {
    let key = format!("{}/{}/{}/{name}", m.group, m.edge, m.device.unwrap_or(""));
    // Bounded: one entry per metric name of a mapped device.
    if logged.len() < 10_000 && logged.insert(key) {
        tracing::debug!(group = m.group, edge_node = m.edge, device = m.device.unwrap_or(""), metric = name, "sparkplug metric has no field mapping in sparkplug.json; counted in sparkplug_unmapped_metrics_total");
    }
}

fn count_unmapped(
    logged: &mut HashSet<String>,
    m: &Msg<'_>,
    dev: &SparkplugDevice,
    p: &Payload,
) -> u64 {
    let mut n = 0;
    for metric in &p.metrics {
        if let Some(name) = metric.name.as_deref() {
            if !dev.metrics.contains_key(name) && !is_control_metric(name) {
                n += 1;
                log_unmapped(logged, m, name);
            }
        }
    }
    n
}

/// The record of a mapped device from its metrics' last values: the same
/// envelope a native device would publish, validated by the same checks
/// and dated by the same clock policy.
pub fn reading(
    decoder: &Decoder,
    dev: &SparkplugDevice,
    values: &HashMap<String, Value>,
    t_ms: i64,
    received_at_ms: i64,
) -> Result<pb::LogRecord, DecodeError> {
    let mut body = empty_body(dev.kind).ok_or_else(|| {
        DecodeError::new(
            ErrorKind::BodyMismatch,
            "device kind is not mapped from Sparkplug",
        )
    })?;
    let mut names: Vec<&String> = dev.metrics.keys().collect();
    names.sort();
    for name in names {
        if let Some(v) = values.get(name) {
            set_field(&mut body, &dev.metrics[name], v)
                .map_err(|d| DecodeError::new(ErrorKind::ValueOutOfRange, d))?;
        }
    }
    match &mut body {
        Body::WeighbridgeTicket(t) => validate::ticket(t, &decoder.policy.limits)?,
        Body::StorageReading(s) => validate::storage(s)?,
        Body::BinReading(b) => validate::bin(b)?,
        _ => {}
    }
    let (time_unix_ms, check) = decoder.policy.clock.check(t_ms, received_at_ms)?;
    Ok(pb::LogRecord {
        envelope: Some(pb::Envelope {
            site_id: dev.site_id.clone(),
            device_id: dev.device_id.clone(),
            device_kind: dev.kind as i32,
            seq: u64::try_from(t_ms).unwrap_or(0),
            recorded_at_unix_ms: t_ms,
            schema_version: SCHEMA_VERSION,
            body: Some(body),
        }),
        received_at_unix_ms: received_at_ms,
        time_unix_ms,
        clock_check: check as i32,
        from_json: false,
        alert: None,
        kpi: None,
    })
}
