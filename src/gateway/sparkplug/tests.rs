//! The host state machine, message by message.

use std::sync::Arc;

use prost::Message;
use wastewatch_contract::sparkplug::{self as sp, datatype as dt, MessageType, Value};
use wastewatch_contract::sparkplug_pb::{payload::Metric, Payload};

use super::*;
use crate::decode::{DecodePolicy, Decoder, ErrorKind};
use crate::pb::{self, envelope::Body};
use crate::registry::Registry;

const SITES: &str = r#"[{"id":"fa-1","name":"F","type":"factory","geofence":{"type":"Polygon","coordinates":[[[113.7,34.7],[113.71,34.7],[113.71,34.71],[113.7,34.71],[113.7,34.7]]]}}]"#;
const DEVICES: &str = r#"[
  {"id":"wb-1","kind":"weighbridge","site_id":"fa-1","expected_interval_s":3600,"weighbridge":{}},
  {"id":"st-1","kind":"storage","site_id":"fa-1","expected_interval_s":60,"storage":{"capacity_kg":3000,"small_storage_point":true,"medical":false}},
  {"id":"st-2","kind":"storage","site_id":"fa-1","expected_interval_s":60,"storage":{"capacity_kg":3000,"small_storage_point":true,"medical":false}}
]"#;
const MAPPING: &str = r#"[
  {"group_id":"g","edge_node_id":"edge-1","devices":[
    {"sparkplug_device_id":"Scale1","device_id":"wb-1","metrics":[
      {"name":"Ticket/Number","field":"ticket_id"},
      {"name":"Ticket/Plate","field":"plate"},
      {"name":"Ticket/Gross","field":"gross_weight_kg","unit":"t"},
      {"name":"Ticket/Tare","field":"tare_weight_kg","unit":"t"},
      {"name":"Ticket/Net","field":"net_weight_kg","unit":"t"},
      {"name":"Ticket/Category","field":"category"},
      {"name":"Ticket/Direction","field":"direction"}]},
    {"sparkplug_device_id":"Store","device_id":"st-1","metrics":[
      {"name":"Stock","field":"stock_kg","unit":"t"},
      {"name":"Temperature","field":"temperature_deci_c","unit":"°C"},
      {"name":"Door","field":"door_open"}]}]},
  {"group_id":"g","edge_node_id":"edge-2","devices":[
    {"sparkplug_device_id":"Store","device_id":"st-2","metrics":[
      {"name":"Stock","field":"stock_kg"}]}]}
]"#;

const T0: i64 = 1_780_000_000_000;

fn host() -> Host {
    let reg = Registry::from_json_strs_with_sparkplug(SITES, DEVICES, "[]", "[]", MAPPING).unwrap();
    let dec = Arc::new(Decoder::new(Arc::new(reg), DecodePolicy::default()));
    Host::new(
        dec,
        HostConfig {
            host_id: "ww".into(),
            groups: vec![],
            rebirth_min_interval_ms: 5_000,
        },
    )
}

fn m(name: Option<&str>, alias: Option<u64>, ty: u32, v: Value) -> Metric {
    sp::metric(name, alias, ty, &v)
}

fn payload(seq: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(T0 as u64),
        seq,
        metrics,
        ..Default::default()
    }
    .encode_to_vec()
}

fn topic(kind: MessageType, edge: &str, dev: Option<&str>) -> String {
    sp::topic("g", kind, edge, dev)
}

fn nbirth(h: &mut Host, edge: &str, bd: i128) -> Output {
    let p = payload(
        Some(0),
        vec![m(Some("bdSeq"), None, dt::INT64, Value::Int(bd))],
    );
    h.on_message(&topic(MessageType::NBirth, edge, None), &p, T0)
}

fn store_birth(h: &mut Host, seq: u64) -> Output {
    let p = payload(
        Some(seq),
        vec![
            m(Some("Stock"), Some(1), dt::DOUBLE, Value::Float(1.25)),
            m(Some("Temperature"), Some(2), dt::FLOAT, Value::Float(21.5)),
            m(Some("Door"), Some(3), dt::BOOLEAN, Value::Bool(false)),
            m(
                Some("Vendor/Serial"),
                Some(4),
                dt::STRING,
                Value::Text("x".into()),
            ),
        ],
    );
    h.on_message(&topic(MessageType::DBirth, "edge-1", Some("Store")), &p, T0)
}

fn store_data(h: &mut Host, seq: u64, alias: u64, v: Value) -> Output {
    let ty = if alias == 3 { dt::BOOLEAN } else { dt::DOUBLE };
    let p = payload(Some(seq), vec![m(None, Some(alias), ty, v)]);
    h.on_message(
        &topic(MessageType::DData, "edge-1", Some("Store")),
        &p,
        T0 + 1000,
    )
}

fn status_kinds(o: &Output) -> Vec<(String, i32)> {
    o.records
        .iter()
        .filter_map(|r| {
            let e = r.envelope.as_ref()?;
            match &e.body {
                Some(Body::DeviceStatus(s)) => Some((e.device_id.clone(), s.kind)),
                _ => None,
            }
        })
        .collect()
}

fn storage(o: &Output) -> &pb::StorageReading {
    match o
        .records
        .first()
        .and_then(|r| r.envelope.as_ref())
        .and_then(|e| e.body.as_ref())
    {
        Some(Body::StorageReading(s)) => s,
        other => panic!("no storage reading: {other:?} {:?}", o.quarantine),
    }
}

fn is_rebirth(o: &Output, edge: &str) -> bool {
    o.commands.len() == 1
        && o.commands[0].topic == format!("spBv1.0/g/NCMD/{edge}")
        && sp::is_rebirth_request(&Payload::decode(o.commands[0].payload.as_slice()).unwrap())
}

#[test]
fn births_then_data_by_alias_make_the_native_record_with_units_converted() {
    let mut h = host();
    assert!(nbirth(&mut h, "edge-1", 3).records.is_empty());
    let b = store_birth(&mut h, 1);
    assert_eq!(
        status_kinds(&b),
        vec![("st-1".into(), pb::StatusKind::Birth as i32)]
    );
    assert_eq!(b.unmapped_metrics, 1, "Vendor/Serial has no field");
    let d = store_data(&mut h, 2, 1, Value::Float(2.5));
    assert!(d.commands.is_empty() && d.quarantine.is_empty());
    let s = storage(&d);
    // 2.5 t → 2500 kg; the temperature and door kept from the birth.
    assert_eq!(s.stock_kg, 2500.0);
    assert_eq!(s.temperature_deci_c, 215);
    assert!(!s.door_open);
    let e = d.records[0].envelope.as_ref().unwrap();
    assert_eq!((e.site_id.as_str(), e.device_id.as_str()), ("fa-1", "st-1"));
    assert_eq!(e.recorded_at_unix_ms, T0);
}

#[test]
fn seq_wraps_from_255_to_0_without_a_gap() {
    let mut h = host();
    nbirth(&mut h, "edge-1", 0);
    store_birth(&mut h, 1);
    for seq in 2..=255u64 {
        let o = store_data(&mut h, seq, 3, Value::Bool(seq % 2 == 0));
        assert!(o.commands.is_empty(), "seq {seq}");
    }
    let o = store_data(&mut h, 0, 3, Value::Bool(true));
    assert!(o.commands.is_empty() && o.seq_gaps == 0);
    assert!(storage(&o).door_open);
}

#[test]
fn a_seq_gap_requests_one_rebirth_and_keeps_the_data() {
    let mut h = host();
    nbirth(&mut h, "edge-1", 0);
    store_birth(&mut h, 1);
    let o = store_data(&mut h, 5, 1, Value::Float(1.0));
    assert_eq!(o.seq_gaps, 1);
    assert!(is_rebirth(&o, "edge-1"));
    assert_eq!(storage(&o).stock_kg, 1000.0);
    // The next gap within the interval asks no second time.
    let o = store_data(&mut h, 9, 1, Value::Float(1.0));
    assert_eq!(o.seq_gaps, 1);
    assert!(o.commands.is_empty());
    // A new NBIRTH answers it; the device needs its DBIRTH again.
    nbirth(&mut h, "edge-1", 1);
    let o = store_data(&mut h, 1, 1, Value::Float(1.0));
    assert_eq!(o.quarantine[0].0, ErrorKind::NoBirth);
}

#[test]
fn an_unknown_alias_is_quarantined_whole_with_its_bytes_and_asks_a_rebirth() {
    let mut h = host();
    nbirth(&mut h, "edge-1", 0);
    store_birth(&mut h, 1);
    let p = payload(
        Some(2),
        vec![
            m(None, Some(1), dt::DOUBLE, Value::Float(1.0)),
            m(None, Some(77), dt::DOUBLE, Value::Float(9.0)),
        ],
    );
    let t = topic(MessageType::DData, "edge-1", Some("Store"));
    let o = h.on_message(&t, &p, T0);
    assert!(o.records.is_empty());
    let (kind, q) = &o.quarantine[0];
    assert_eq!(*kind, ErrorKind::UnknownAlias);
    assert_eq!(q.payload, p);
    assert_eq!(q.topic, t);
    assert!(q.detail.contains("alias 77"), "{}", q.detail);
    assert!(is_rebirth(&o, "edge-1"));
}

#[test]
fn data_before_birth_is_quarantined_and_asks_a_rebirth() {
    let mut h = host();
    let o = store_data(&mut h, 4, 1, Value::Float(1.0));
    assert_eq!(o.quarantine[0].0, ErrorKind::NoBirth);
    assert!(is_rebirth(&o, "edge-1"));
}

#[test]
fn ndeath_of_another_session_is_ignored_and_of_this_one_marks_devices_offline() {
    let mut h = host();
    nbirth(&mut h, "edge-1", 7);
    store_birth(&mut h, 1);
    let death = |bd| {
        payload(
            None,
            vec![m(Some("bdSeq"), None, dt::INT64, Value::Int(bd))],
        )
    };
    let t = topic(MessageType::NDeath, "edge-1", None);
    let o = h.on_message(&t, &death(6), T0 + 5);
    assert_eq!(o.stale_deaths, 1);
    assert!(o.records.is_empty());
    assert!(h.node_online("g", "edge-1"));
    let o = h.on_message(&t, &death(7), T0 + 6);
    assert_eq!(
        status_kinds(&o),
        vec![("st-1".into(), pb::StatusKind::LastWill as i32)]
    );
    assert_eq!(o.records[0].received_at_unix_ms, T0 + 6);
    assert!(!h.node_online("g", "edge-1"));
    // A second copy changes nothing.
    assert!(h.on_message(&t, &death(7), T0 + 7).records.is_empty());
}

#[test]
fn ddeath_marks_the_device_offline() {
    let mut h = host();
    nbirth(&mut h, "edge-1", 0);
    store_birth(&mut h, 1);
    let p = payload(Some(2), vec![]);
    let o = h.on_message(&topic(MessageType::DDeath, "edge-1", Some("Store")), &p, T0);
    assert_eq!(
        status_kinds(&o),
        vec![("st-1".into(), pb::StatusKind::LastWill as i32)]
    );
}

#[test]
fn an_edge_node_cannot_speak_for_a_device_of_another() {
    let mut h = host();
    nbirth(&mut h, "edge-2", 0);
    // edge-2 claims edge-1's scale.
    let p = payload(
        Some(1),
        vec![m(
            Some("Ticket/Number"),
            Some(1),
            dt::STRING,
            Value::Text("T1".into()),
        )],
    );
    let o = h.on_message(
        &topic(MessageType::DBirth, "edge-2", Some("Scale1")),
        &p,
        T0,
    );
    assert!(o.records.is_empty());
    assert_eq!(o.quarantine[0].0, ErrorKind::UnknownDevice);
    // An edge node not in the mapping at all.
    let o = nbirth(&mut h, "edge-9", 0);
    assert_eq!(o.quarantine[0].0, ErrorKind::UnknownDevice);
}

#[test]
fn a_ticket_is_made_when_its_number_arrives_and_validated_like_a_native_one() {
    let mut h = host();
    nbirth(&mut h, "edge-1", 0);
    let text = |n: &str, a, s: &str| m(Some(n), Some(a), dt::STRING, Value::Text(s.into()));
    let num = |n: &str, a, x| m(Some(n), Some(a), dt::DOUBLE, Value::Float(x));
    let p = payload(
        Some(1),
        vec![
            text("Ticket/Number", 1, ""),
            text("Ticket/Plate", 2, ""),
            num("Ticket/Gross", 3, 0.0),
            num("Ticket/Tare", 4, 0.0),
            num("Ticket/Net", 5, 0.0),
            text("Ticket/Category", 6, "CONSTRUCTION_SPOIL"),
            text("Ticket/Direction", 7, "IN"),
        ],
    );
    let t = topic(MessageType::DBirth, "edge-1", Some("Scale1"));
    assert_eq!(status_kinds(&h.on_message(&t, &p, T0)).len(), 1);
    let dd = topic(MessageType::DData, "edge-1", Some("Scale1"));
    // Weights first: no ticket yet.
    let p = payload(
        Some(2),
        vec![
            m(None, Some(2), dt::STRING, Value::Text("豫AD1234".into())),
            m(None, Some(3), dt::DOUBLE, Value::Float(31.5)),
            m(None, Some(4), dt::DOUBLE, Value::Float(15.25)),
            m(None, Some(5), dt::DOUBLE, Value::Float(16.25)),
        ],
    );
    let o = h.on_message(&dd, &p, T0 + 1);
    assert!(o.records.is_empty() && o.quarantine.is_empty());
    let p = payload(
        Some(3),
        vec![m(None, Some(1), dt::STRING, Value::Text("T-0001".into()))],
    );
    let o = h.on_message(&dd, &p, T0 + 2);
    let Some(Body::WeighbridgeTicket(tk)) = o.records[0].envelope.as_ref().unwrap().body.as_ref()
    else {
        panic!("{o:?}")
    };
    assert_eq!(tk.ticket_id, "T-0001");
    assert_eq!(
        (tk.gross_weight_kg, tk.tare_weight_kg, tk.net_weight_kg),
        (31_500.0, 15_250.0, 16_250.0)
    );
    assert_eq!(tk.category, pb::WasteCategory::ConstructionSpoil as i32);
    // A net weight that is not gross - tare is refused as natively.
    let p = payload(
        Some(4),
        vec![
            m(None, Some(5), dt::DOUBLE, Value::Float(10.0)),
            m(None, Some(1), dt::STRING, Value::Text("T-0002".into())),
        ],
    );
    let o = h.on_message(&dd, &p, T0 + 3);
    assert_eq!(o.quarantine[0].0, ErrorKind::NetWeightMismatch);
}

#[test]
fn garbage_payloads_and_topics_are_quarantined_never_panic() {
    let mut h = host();
    let o = h.on_message("spBv1.0/g/NDATA/edge-1", b"\xff\xff\xff", T0);
    assert_eq!(o.quarantine[0].0, ErrorKind::MalformedProtobuf);
    let o = h.on_message("spBv1.0/g/BOGUS/edge-1", b"", T0);
    assert_eq!(o.quarantine[0].0, ErrorKind::MalformedTopic);
    // Our own STATE and commands are not data.
    let o = h.on_message("spBv1.0/STATE/ww", br#"{"online":true,"timestamp":1}"#, T0);
    assert!(o.records.is_empty() && o.quarantine.is_empty());
    let o = h.on_message(
        "spBv1.0/g/NCMD/edge-1",
        &sp::rebirth_request(1).encode_to_vec(),
        T0,
    );
    assert!(o.records.is_empty() && o.quarantine.is_empty());
    // Arbitrary bytes on every message type.
    let mut seed = 0x1234_5678_u64;
    for i in 0..4000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|k| (seed >> (k % 8 * 8)) as u8 ^ k as u8)
            .collect();
        let kinds = [
            "NBIRTH",
            "NDATA",
            "DBIRTH/Store",
            "DDATA/Store",
            "DDEATH/Store",
            "NDEATH",
        ];
        let k = kinds[i % kinds.len()];
        let (kind, dev) = k.split_once('/').map_or((k, None), |(a, b)| (a, Some(b)));
        let t = match dev {
            Some(d) => format!("spBv1.0/g/{kind}/edge-1/{d}"),
            None => format!("spBv1.0/g/{kind}/edge-1"),
        };
        let _ = h.on_message(&t, &bytes, T0 + i as i64);
    }
}

#[test]
fn the_sparkplug_section_adds_its_filters_and_refuses_bad_ids() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let off = crate::config::load(None, &env(&[])).unwrap();
    assert!(off.mqtt.sparkplug.is_none());
    assert!(!off.mqtt.subscribe.iter().any(|f| f.starts_with("spBv1.0")));
    let on = crate::config::load(
        None,
        &env(&[
            ("WASTEWATCH__SPARKPLUG__ENABLED", "true"),
            ("WASTEWATCH__SPARKPLUG__HOST_ID", "plant-host"),
        ]),
    )
    .unwrap();
    assert_eq!(on.mqtt.sparkplug.as_ref().unwrap().host_id, "plant-host");
    assert!(on.mqtt.subscribe.contains(&"spBv1.0/#".to_owned()));
    let err = crate::config::load(
        None,
        &env(&[
            ("WASTEWATCH__SPARKPLUG__ENABLED", "true"),
            ("WASTEWATCH__SPARKPLUG__HOST_ID", "a/b"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sparkplug.host_id \"a/b\""), "{err}");
}

#[test]
fn ndata_of_a_node_whose_own_metrics_are_unmapped_is_counted_not_refused() {
    let mut h = host();
    let p = payload(
        Some(0),
        vec![
            m(Some("bdSeq"), None, dt::INT64, Value::Int(0)),
            m(Some("Diag/CPU"), Some(50), dt::DOUBLE, Value::Float(3.0)),
        ],
    );
    h.on_message(&topic(MessageType::NBirth, "edge-1", None), &p, T0);
    let p = payload(
        Some(1),
        vec![m(None, Some(50), dt::DOUBLE, Value::Float(4.0))],
    );
    let o = h.on_message(&topic(MessageType::NData, "edge-1", None), &p, T0);
    assert!(o.quarantine.is_empty() && o.records.is_empty() && o.commands.is_empty());
    assert_eq!(o.unmapped_metrics, 1);
    // The node's seq went on: the next device message is not a gap.
    let o = store_birth(&mut h, 2);
    assert!(o.commands.is_empty() && o.seq_gaps == 0);
}
