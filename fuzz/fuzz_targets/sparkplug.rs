//! The Sparkplug B host (`src/gateway/sparkplug/host.rs`) on a sequence of
//! messages against the shipped zone's `sparkplug.json`, with structured
//! input: each message picks a topic (mostly a mapped edge node and device,
//! sometimes another group, an unmapped node or device, STATE, a malformed
//! topic), a message type, and a payload that is either raw bytes or a
//! Sparkplug payload whose seq, bdSeq and metrics (mapped names, control
//! metrics, other names; aliases; every data type; values at the edges)
//! come from the input.
//!
//! Properties, for every input:
//! - no panic;
//! - a quarantine entry keeps the message's topic and exact bytes, with a
//!   reason and a detail;
//! - a record is only ever for a device the publishing edge node is mapped
//!   to (no device speaks for another), carries that device's site, and
//!   writes one line-protocol line that reads back byte-exact;
//! - a command (rebirth request) goes only to the edge node whose message
//!   caused it, as an NCMD asking for a rebirth.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use wastewatch::decode::{DecodePolicy, Decoder};
use wastewatch::gateway::sparkplug::host::{Host, HostConfig};
use wastewatch::registry::Registry;
use wastewatch_contract::sparkplug::{self as sp, datatype, Value};
use wastewatch_contract::sparkplug_pb::Payload;
use wastewatch_fuzz::gen::{pick, text};
use wastewatch_fuzz::record::check_line;
use wastewatch_fuzz::zone::NOW_MS;

/// The shipped zone with its Sparkplug mapping.
fn registry() -> &'static Arc<Registry> {
    static R: OnceLock<Arc<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zone");
        let r = Registry::load_dir(&dir)
            .unwrap_or_else(|e| panic!("the shipped zone does not load: {e}"));
        assert!(
            !r.sparkplug.is_empty(),
            "the shipped zone maps no Sparkplug node"
        );
        Arc::new(r)
    })
}

fn decoder() -> &'static Arc<Decoder> {
    static D: OnceLock<Arc<Decoder>> = OnceLock::new();
    D.get_or_init(|| Arc::new(Decoder::new(registry().clone(), DecodePolicy::default())))
}

/// (group, edge node, [(sparkplug device id, [metric names])]) of the
/// mapping, sorted so an input picks the same on every run.
type Node = (String, String, Vec<(Option<String>, Vec<String>)>);

fn nodes() -> &'static [Node] {
    static N: OnceLock<Vec<Node>> = OnceLock::new();
    N.get_or_init(|| {
        let mut v: Vec<Node> = registry()
            .sparkplug
            .values()
            .map(|n| {
                let mut devs: Vec<_> = n
                    .devices
                    .iter()
                    .map(|d| {
                        let mut m: Vec<String> = d.metrics.keys().cloned().collect();
                        m.sort();
                        (d.sparkplug_device_id.clone(), m)
                    })
                    .collect();
                devs.sort();
                (n.group_id.clone(), n.edge_node_id.clone(), devs)
            })
            .collect();
        v.sort();
        v
    })
}

const KINDS: [&str; 9] = [
    "NBIRTH", "NDATA", "DBIRTH", "DDATA", "DDEATH", "NDEATH", "NCMD", "DCMD", "NBIRTH",
];

fn value(u: &mut Unstructured<'_>) -> Value {
    match u.int_in_range(0u8..=6).unwrap_or(0) {
        0 => Value::Int(i128::from(u.arbitrary::<i64>().unwrap_or(0))),
        1 => Value::Int(i128::from(u.int_in_range(0u16..=400).unwrap_or(0))),
        2 => Value::Float(*pick(
            u,
            &[
                0.0,
                -0.0,
                1.5,
                2.45,
                3.2,
                -1.0,
                1e300,
                f64::NAN,
                f64::INFINITY,
                0.001,
            ],
        )),
        3 => Value::Float(f64::from(u.arbitrary::<i32>().unwrap_or(0)) / 100.0),
        4 => Value::Bool(u.arbitrary().unwrap_or(false)),
        5 => Value::Text(if u.arbitrary().unwrap_or(false) {
            (*pick(
                u,
                &["WB-0001", "豫AD1234", "HW49", "TRAIL\\", "a,b=c \"d\"", ""],
            ))
            .to_owned()
        } else {
            text(u)
        }),
        _ => Value::Null,
    }
}

fn payload(u: &mut Unstructured<'_>, names: &[String], seq: u64) -> Vec<u8> {
    if u.ratio(1u8, 8).unwrap_or(false) {
        let n = u.int_in_range(0usize..=64).unwrap_or(0);
        return u.bytes(n.min(u.len())).unwrap_or_default().to_vec();
    }
    let mut p = Payload {
        timestamp: u
            .arbitrary::<bool>()
            .unwrap_or(true)
            .then_some(NOW_MS as u64 - u.int_in_range(0u64..=86_400_000).unwrap_or(0)),
        seq: match u.int_in_range(0u8..=5).unwrap_or(0) {
            0 => None,
            1 => Some(u.arbitrary().unwrap_or(0)),
            _ => Some(seq),
        },
        ..Default::default()
    };
    for _ in 0..u.int_in_range(0u8..=8).unwrap_or(0) {
        let name: Option<String> = match u.int_in_range(0u8..=7).unwrap_or(0) {
            0..=3 if !names.is_empty() => Some(pick(u, names).clone()),
            4 => Some(sp::BD_SEQ_METRIC.to_owned()),
            5 => Some(sp::REBIRTH_METRIC.to_owned()),
            6 => None,
            _ => Some(text(u)),
        };
        let alias = u
            .arbitrary::<bool>()
            .unwrap_or(false)
            .then(|| u64::from(u.int_in_range(0u8..=12).unwrap_or(0)));
        let dt = if u.ratio(3u8, 4).unwrap_or(true) {
            *pick(
                u,
                &[
                    datatype::INT32,
                    datatype::INT64,
                    datatype::UINT32,
                    datatype::FLOAT,
                    datatype::DOUBLE,
                    datatype::BOOLEAN,
                    datatype::STRING,
                    datatype::TEXT,
                ],
            )
        } else {
            u.int_in_range(0u32..=40).unwrap_or(0)
        };
        let v = value(u);
        p.metrics.push(sp::metric(name.as_deref(), alias, dt, &v));
    }
    p.encode_to_vec()
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut host = Host::new(
        decoder().clone(),
        HostConfig {
            host_id: "fuzz-host".into(),
            groups: Vec::new(),
            rebirth_min_interval_ms: u.int_in_range(0i64..=10_000).unwrap_or(0),
        },
    );
    let nodes = nodes();
    let mut seqs = vec![0u64; nodes.len()];
    for i in 0..u.int_in_range(1u8..=24).unwrap_or(1) {
        let n = u.choose_index(nodes.len()).unwrap_or(0);
        let (group, edge, devs) = &nodes[n];
        let kind = *pick(&mut u, &KINDS);
        let (dev_id, names): (Option<String>, Vec<String>) = if kind.starts_with('D') {
            match u.int_in_range(0u8..=5).unwrap_or(0) {
                0 => (Some("NotMapped".into()), Vec::new()),
                _ => {
                    let d = pick(&mut u, devs);
                    (d.0.clone().or_else(|| Some("Scale1".into())), d.1.clone())
                }
            }
        } else {
            let own = devs.iter().find(|d| d.0.is_none());
            (None, own.map(|d| d.1.clone()).unwrap_or_default())
        };
        let (g, e) = match u.int_in_range(0u8..=9).unwrap_or(0) {
            0 => ("other-group".to_owned(), edge.clone()),
            1 => (group.clone(), "edge-not-mapped".to_owned()),
            _ => (group.clone(), edge.clone()),
        };
        let topic = match u.int_in_range(0u8..=19).unwrap_or(0) {
            0 => "spBv1.0/STATE/fuzz-host".to_owned(),
            1 => format!("spBv1.0/{g}/{kind}"),
            2 => format!(
                "spBv1.0/{g}/{kind}/{e}/{}/extra",
                dev_id.as_deref().unwrap_or("x")
            ),
            3 => format!("spBv1.0/{}/{kind}/{e}", text(&mut u)),
            _ => match &dev_id {
                Some(d) => format!("spBv1.0/{g}/{kind}/{e}/{d}"),
                None => format!("spBv1.0/{g}/{kind}/{e}"),
            },
        };
        let seq = if kind == "NBIRTH" {
            0
        } else {
            (seqs[n] + 1) % 256
        };
        let bytes = payload(&mut u, &names, seq);
        let mapped_node = registry().sparkplug_node(&g, &e);
        let out = host.on_message(&topic, &bytes, NOW_MS + i64::from(i));
        if out.records.is_empty() && out.quarantine.is_empty() {
            // Nothing stored: fine (STATE, NCMD, a birth, a death of an
            // unknown session …).
        } else {
            seqs[n] = seq;
        }
        for (kind, q) in &out.quarantine {
            assert_eq!(q.topic, topic, "quarantine topic");
            assert_eq!(q.payload, bytes, "quarantine must keep the exact bytes");
            assert!(!q.reason.is_empty() && q.reason == kind.as_str(), "{q:?}");
            assert!(
                !q.detail.trim().is_empty(),
                "quarantine without detail: {q:?}"
            );
        }
        for rec in &out.records {
            let env = rec.envelope.as_ref().expect("a record has an envelope");
            let node = mapped_node.unwrap_or_else(|| {
                panic!("a record from {topic}, whose edge node is not mapped: {env:?}")
            });
            let dev = node
                .devices
                .iter()
                .find(|d| d.device_id == env.device_id)
                .unwrap_or_else(|| {
                    panic!(
                        "{topic}: edge node {e} spoke for {}, not mapped to it",
                        env.device_id
                    )
                });
            assert_eq!(
                env.site_id, dev.site_id,
                "{topic}: site of {}",
                env.device_id
            );
            check_line(rec);
        }
        for c in &out.commands {
            assert_eq!(
                c.topic,
                format!("spBv1.0/{g}/NCMD/{e}"),
                "command for {topic}"
            );
            let p = Payload::decode(c.payload.as_slice()).expect("a command decodes");
            assert!(sp::is_rebirth_request(&p), "{p:?}");
        }
    }
});
