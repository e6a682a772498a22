//! Eclipse Sparkplug B (3.0) as wastewatch speaks it: the topic namespace
//! `spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`, the
//! host application's `spBv1.0/STATE/{host_id}`, metric values out of the
//! payload ([`sparkplug_pb`](crate::sparkplug_pb)), and the few payloads
//! both sides build (the host's Rebirth request and STATE, an edge node's
//! births and data). Pure; docs/PROTOCOLS.md says what of the
//! specification wastewatch supports.

use crate::sparkplug_pb::payload::{metric, Metric};
use crate::sparkplug_pb::Payload;

/// The namespace (first topic level) of Sparkplug B.
pub const NAMESPACE: &str = "spBv1.0";

/// The name of the node-control metric that asks for a rebirth (§6.4.21).
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// The name of the birth/death sequence metric of NBIRTH and NDEATH.
pub const BD_SEQ_METRIC: &str = "bdSeq";

/// Data type codes (§6.4.16) used here.
pub mod datatype {
    /// Int8.
    pub const INT8: u32 = 1;
    /// Int16.
    pub const INT16: u32 = 2;
    /// Int32.
    pub const INT32: u32 = 3;
    /// Int64.
    pub const INT64: u32 = 4;
    /// UInt8.
    pub const UINT8: u32 = 5;
    /// UInt16.
    pub const UINT16: u32 = 6;
    /// UInt32.
    pub const UINT32: u32 = 7;
    /// UInt64.
    pub const UINT64: u32 = 8;
    /// Float.
    pub const FLOAT: u32 = 9;
    /// Double.
    pub const DOUBLE: u32 = 10;
    /// Boolean.
    pub const BOOLEAN: u32 = 11;
    /// String.
    pub const STRING: u32 = 12;
    /// DateTime (Unix ms).
    pub const DATETIME: u32 = 13;
    /// Text.
    pub const TEXT: u32 = 14;
}

/// The Sparkplug message types (§6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Edge node birth certificate.
    NBirth,
    /// Edge node death certificate.
    NDeath,
    /// Device birth certificate.
    DBirth,
    /// Device death certificate.
    DDeath,
    /// Edge node data.
    NData,
    /// Device data.
    DData,
    /// Command to an edge node.
    NCmd,
    /// Command to a device.
    DCmd,
}

impl MessageType {
    /// The topic level.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    fn parse(s: &str) -> Option<MessageType> {
        Some(match s {
            "NBIRTH" => MessageType::NBirth,
            "NDEATH" => MessageType::NDeath,
            "DBIRTH" => MessageType::DBirth,
            "DDEATH" => MessageType::DDeath,
            "NDATA" => MessageType::NData,
            "DDATA" => MessageType::DData,
            "NCMD" => MessageType::NCmd,
            "DCMD" => MessageType::DCmd,
            _ => return None,
        })
    }

    /// True for the device-level types (their topic has a device id).
    pub const fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
}

/// A parsed Sparkplug topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpTopic<'a> {
    /// `spBv1.0/STATE/{host_id}`: a host application's state.
    State {
        /// The host id.
        host_id: &'a str,
    },
    /// An edge node's or device's message.
    Node {
        /// Group id.
        group_id: &'a str,
        /// Message type.
        kind: MessageType,
        /// Edge node id.
        edge_node_id: &'a str,
        /// Device id, for the device-level types.
        device_id: Option<&'a str>,
    },
}

/// True when a topic is in the Sparkplug B namespace.
pub fn is_sparkplug_topic(topic: &str) -> bool {
    topic
        .strip_prefix(NAMESPACE)
        .is_some_and(|r| r.starts_with('/'))
}

/// An id is valid in a topic level: non-empty UTF-8 without `/`, `+` or `#`
/// (§4.1.1), and without NUL, which no MQTT topic may hold (MQTT 5 §1.5.4).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && !id.contains(['/', '+', '#', '\0'])
}

/// Parses a Sparkplug B topic, or says what is wrong with it.
pub fn parse_topic(topic: &str) -> Result<SpTopic<'_>, String> {
    let mut it = topic.split('/');
    if it.next() != Some(NAMESPACE) {
        return Err(format!("topic {topic:?} is not under {NAMESPACE}/"));
    }
    let levels: Vec<&str> = it.collect();
    if levels.first() == Some(&"STATE") {
        return match levels.as_slice() {
            [_, host] if valid_id(host) => Ok(SpTopic::State { host_id: host }),
            _ => Err(format!(
                "topic {topic:?} is not {NAMESPACE}/STATE/{{host_id}}"
            )),
        };
    }
    let (group, kind, edge, device) = match levels.as_slice() {
        [g, k, e] => (*g, *k, *e, None),
        [g, k, e, d] => (*g, *k, *e, Some(*d)),
        _ => {
            return Err(format!(
                "topic {topic:?} has {} levels after {NAMESPACE}/; expected {{group_id}}/{{message_type}}/{{edge_node_id}}[/{{device_id}}]",
                levels.len()
            ))
        }
    };
    let kind = MessageType::parse(kind).ok_or_else(|| {
        format!("topic {topic:?}: message type {kind:?} is not one of NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA, NCMD, DCMD")
    })?;
    for (what, id) in [("group_id", group), ("edge_node_id", edge)]
        .into_iter()
        .chain(device.map(|d| ("device_id", d)))
    {
        if !valid_id(id) {
            return Err(format!(
                "topic {topic:?}: {what} {id:?} is empty or invalid"
            ));
        }
    }
    if kind.is_device() != device.is_some() {
        return Err(format!(
            "topic {topic:?}: {} {} a device id",
            kind.as_str(),
            if kind.is_device() {
                "needs"
            } else {
                "must not have"
            }
        ));
    }
    Ok(SpTopic::Node {
        group_id: group,
        kind,
        edge_node_id: edge,
        device_id: device,
    })
}

/// The topic of a node-level or device-level message.
pub fn topic(
    group_id: &str,
    kind: MessageType,
    edge_node_id: &str,
    device_id: Option<&str>,
) -> String {
    match device_id {
        Some(d) => format!(
            "{NAMESPACE}/{group_id}/{}/{edge_node_id}/{d}",
            kind.as_str()
        ),
        None => format!("{NAMESPACE}/{group_id}/{}/{edge_node_id}", kind.as_str()),
    }
}

/// The STATE topic of a host application.
pub fn state_topic(host_id: &str) -> String {
    format!("{NAMESPACE}/STATE/{host_id}")
}

/// The STATE payload (§7.2, JSON): `{"online":…,"timestamp":…}`.
pub fn state_payload(online: bool, timestamp_ms: i64) -> Vec<u8> {
    format!("{{\"online\":{online},\"timestamp\":{timestamp_ms}}}").into_bytes()
}

/// A metric value, whatever its wire form.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Any integer type (signed types come sign-extended from their
    /// unsigned wire form).
    Int(i128),
    /// Float or Double.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// String or Text.
    Text(String),
    /// The metric says `is_null`, or carries no value.
    Null,
    /// A type wastewatch does not map (bytes, data sets, templates, arrays).
    Unsupported(&'static str),
}

/// The value of `m`, read as its data type `datatype` (the birth
/// certificate's, when the data message leaves it out) says.
pub fn value_of(m: &Metric, datatype: u32) -> Value {
    if m.is_null == Some(true) {
        return Value::Null;
    }
    let Some(v) = &m.value else {
        return Value::Null;
    };
    match v {
        metric::Value::IntValue(i) => Value::Int(match datatype {
            datatype::INT8 => i128::from(*i as u8 as i8),
            datatype::INT16 => i128::from(*i as u16 as i16),
            datatype::INT32 => i128::from(*i as i32),
            _ => i128::from(*i),
        }),
        metric::Value::LongValue(l) => Value::Int(match datatype {
            datatype::INT8 => i128::from(*l as u8 as i8),
            datatype::INT16 => i128::from(*l as u16 as i16),
            datatype::INT32 => i128::from(*l as u32 as i32),
            datatype::INT64 => i128::from(*l as i64),
            _ => i128::from(*l),
        }),
        metric::Value::FloatValue(f) => Value::Float(f64::from(*f)),
        metric::Value::DoubleValue(d) => Value::Float(*d),
        metric::Value::BooleanValue(b) => Value::Bool(*b),
        metric::Value::StringValue(s) => Value::Text(s.clone()),
        metric::Value::BytesValue(_) => Value::Unsupported("bytes"),
        metric::Value::DatasetValue(_) => Value::Unsupported("data set"),
        metric::Value::TemplateValue(_) => Value::Unsupported("template"),
        metric::Value::ExtensionValue(_) => Value::Unsupported("extension"),
    }
}

/// A metric carrying `v` as data type `datatype`, with a name and/or alias.
pub fn metric(name: Option<&str>, alias: Option<u64>, datatype: u32, v: &Value) -> Metric {
    let value = match v {
        Value::Int(i) => Some(match datatype {
            datatype::INT8 | datatype::INT16 | datatype::INT32 => {
                metric::Value::IntValue(*i as i32 as u32)
            }
            datatype::UINT8 | datatype::UINT16 | datatype::UINT32 => {
                metric::Value::IntValue(*i as u32)
            }
            _ => metric::Value::LongValue(*i as i64 as u64),
        }),
        Value::Float(f) if datatype == datatype::FLOAT => {
            Some(metric::Value::FloatValue(*f as f32))
        }
        Value::Float(f) => Some(metric::Value::DoubleValue(*f)),
        Value::Bool(b) => Some(metric::Value::BooleanValue(*b)),
        Value::Text(s) => Some(metric::Value::StringValue(s.clone())),
        Value::Null | Value::Unsupported(_) => None,
    };
    Metric {
        name: name.map(str::to_owned),
        alias,
        datatype: Some(datatype),
        is_null: value.is_none().then_some(true),
        value,
        ..Default::default()
    }
}

/// The NCMD payload asking an edge node to publish its births again.
pub fn rebirth_request(timestamp_ms: u64) -> Payload {
    Payload {
        timestamp: Some(timestamp_ms),
        metrics: vec![metric(
            Some(REBIRTH_METRIC),
            None,
            datatype::BOOLEAN,
            &Value::Bool(true),
        )],
        ..Default::default()
    }
}

/// True when an NCMD payload asks for a rebirth.
pub fn is_rebirth_request(p: &Payload) -> bool {
    p.metrics.iter().any(|m| {
        m.name.as_deref() == Some(REBIRTH_METRIC)
            && m.value == Some(metric::Value::BooleanValue(true))
    })
}

/// The bdSeq of an NBIRTH or NDEATH payload, if it has one.
pub fn bd_seq(p: &Payload) -> Option<u64> {
    p.metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(BD_SEQ_METRIC))
        .and_then(
            |m| match value_of(m, m.datatype.unwrap_or(datatype::INT64)) {
                Value::Int(i) => u64::try_from(i).ok(),
                _ => None,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn topics_parse_and_format_back() {
        let t = "spBv1.0/plant/DDATA/edge-1/Scale1";
        assert_eq!(
            parse_topic(t),
            Ok(SpTopic::Node {
                group_id: "plant",
                kind: MessageType::DData,
                edge_node_id: "edge-1",
                device_id: Some("Scale1"),
            })
        );
        assert_eq!(
            topic("plant", MessageType::DData, "edge-1", Some("Scale1")),
            t
        );
        assert_eq!(
            parse_topic("spBv1.0/STATE/ww"),
            Ok(SpTopic::State { host_id: "ww" })
        );
        for bad in [
            "spBv1.0/plant/DDATA/edge-1",
            "spBv1.0/plant/NDATA/edge-1/x",
            "spBv1.0/plant/XDATA/edge-1",
            "spBv1.0//NDATA/edge-1",
            "spBv1.0/STATE",
            "spBv2.0/plant/NDATA/e",
            "spBv1.0/a/NDATA/b/c/d",
        ] {
            assert!(parse_topic(bad).is_err(), "{bad}");
        }
        assert!(is_sparkplug_topic("spBv1.0/x"));
        assert!(!is_sparkplug_topic("spBv1.0x/x"));
    }

    #[test]
    fn signed_values_are_sign_extended_by_their_datatype() {
        let m = metric(Some("t"), None, datatype::INT16, &Value::Int(-12));
        assert_eq!(value_of(&m, datatype::INT16), Value::Int(-12));
        let m = metric(Some("t"), None, datatype::INT64, &Value::Int(-5));
        assert_eq!(value_of(&m, datatype::INT64), Value::Int(-5));
        let m = metric(Some("t"), None, datatype::UINT64, &Value::Int(7));
        assert_eq!(value_of(&m, datatype::UINT64), Value::Int(7));
    }

    #[test]
    fn the_rebirth_request_round_trips() {
        let p = rebirth_request(5);
        let back = Payload::decode(p.encode_to_vec().as_slice()).unwrap();
        assert!(is_rebirth_request(&back));
        assert_eq!(state_payload(true, 7), br#"{"online":true,"timestamp":7}"#);
    }

    /// Property style, no fuzzer: arbitrary bytes never make the payload
    /// decoder or the value reader panic.
    #[test]
    fn arbitrary_bytes_never_panic_the_payload_decoder() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
                if let Ok(p) = Payload::decode(bytes.as_slice()) {
                    let _ = bd_seq(&p);
                    for m in &p.metrics {
                        let _ = value_of(m, m.datatype.unwrap_or(0));
                    }
                }
                Ok(())
            })
            .unwrap();
        // Valid payloads with one byte flipped.
        let good = rebirth_request(1_700_000_000_000).encode_to_vec();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                if let Ok(p) = Payload::decode(b.as_slice()) {
                    let _ = is_rebirth_request(&p);
                }
            }
        }
    }
}
