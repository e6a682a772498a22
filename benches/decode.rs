//! Hot path: decode + validate + normalise + encode one message, per kind and
//! mixed. Run: `cargo bench --bench decode`. Results: docs/BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use wastewatch::decode::{json, Channel, DecodePolicy, Decoder, Topic};
use wastewatch::pb::{self, envelope::Body, DeviceKind};
use wastewatch::registry::Registry;
use wastewatch::sink::encode::encode_record;

const NOW: i64 = 1_790_000_000_000;

fn messages(reg: &Registry) -> Vec<(&'static str, String, Vec<u8>, Option<&'static str>)> {
    let pick = |k: DeviceKind| {
        let mut ids: Vec<_> = reg.devices.values().filter(|d| d.kind == k).collect();
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        let d = ids[0];
        (d.id.clone(), d.site_id.clone())
    };
    let env = |k: DeviceKind, body: Body| {
        let (id, site) = pick(k);
        pb::Envelope {
            site_id: site,
            device_id: id,
            device_kind: k as i32,
            seq: 123_456,
            recorded_at_unix_ms: NOW - 500,
            schema_version: 1,
            body: Some(body),
        }
    };
    let ticket = env(
        DeviceKind::Weighbridge,
        Body::WeighbridgeTicket(pb::WeighbridgeTicket {
            ticket_id: "RC-20261128-0117".into(),
            plate: "豫AD1234".into(),
            gross_weight_kg: 31_250.0,
            tare_weight_kg: 14_100.0,
            net_weight_kg: 17_150.0,
            category: 4,
            origin_site_id: "cs-a".into(),
            destination_site_id: "rp-b".into(),
            destination_type: 1,
            direction: 1,
            weighed_in_at_unix_ms: NOW - 60_000,
            weighed_out_at_unix_ms: NOW,
            operator_id: "op-07".into(),
            anpr_confirmed: true,
            axle_count: 3,
            permit_id: "permit-2026-0001".into(),
            ..Default::default()
        }),
    );
    let bin = env(
        DeviceKind::Bin,
        Body::BinReading(pb::BinReading {
            fill_level_pct: 82.5,
            temperature_deci_c: 214,
            tilt_deg: 1.5,
            battery_mv: 3580,
            ..Default::default()
        }),
    );
    let storage = env(
        DeviceKind::Storage,
        Body::StorageReading(pb::StorageReading {
            stock_kg: 2450.0,
            oldest_container_age_s: 25_920_000,
            temperature_deci_c: 263,
            combustible_gas_pct_lel: Some(3.0),
            oxygen_pct_vol: Some(20.8),
            container_count: 14,
            ..Default::default()
        }),
    );
    let truck = env(
        DeviceKind::Truck,
        Body::TruckFix(pb::TruckFix {
            latitude_deg: 34.7412,
            longitude_deg: 113.7805,
            speed_kmh: 36.5,
            heading_deg: 92.0,
            accuracy_m: 4.5,
            loaded: true,
            cover_closed: true,
            ignition_on: true,
            plate: "豫AD1234".into(),
            permit_id: "permit-2026-0001".into(),
            gnss_fix: true,
            satellites: 12,
            ..Default::default()
        }),
    );
    let status = env(
        DeviceKind::Bin,
        Body::DeviceStatus(pb::DeviceStatus {
            kind: 2,
            firmware_version: "2.4.1".into(),
            battery_mv: 3580,
            signal_dbm: Some(-87),
            uptime_s: 86_400,
        }),
    );
    let topic = |e: &pb::Envelope, ch| {
        Topic::format(
            &e.site_id,
            DeviceKind::try_from(e.device_kind).unwrap_or_default(),
            &e.device_id,
            ch,
            false,
        )
    };
    vec![
        (
            "weighbridge",
            topic(&ticket, Channel::Event),
            ticket.encode_to_vec(),
            None,
        ),
        (
            "bin",
            topic(&bin, Channel::Telemetry),
            bin.encode_to_vec(),
            None,
        ),
        (
            "storage",
            topic(&storage, Channel::Telemetry),
            storage.encode_to_vec(),
            None,
        ),
        (
            "truck",
            topic(&truck, Channel::Telemetry),
            truck.encode_to_vec(),
            None,
        ),
        (
            "status",
            topic(&status, Channel::Status),
            status.encode_to_vec(),
            None,
        ),
        (
            "truck_json",
            topic(&truck, Channel::Telemetry),
            json::encode_json(&truck).into_bytes(),
            Some("application/json"),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let reg = Registry::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("zone"))
        .expect("shipped zone loads");
    let msgs = messages(&reg);
    let dec = Decoder::new(Arc::new(reg), DecodePolicy::default());
    let mut g = c.benchmark_group("decode_normalise_encode");
    g.throughput(Throughput::Elements(1));
    for (name, topic, payload, ct) in &msgs {
        // Sanity: every benchmarked message must be valid, or we'd time the error path.
        dec.decode(topic, payload, *ct, NOW)
            .expect("benchmark message decodes");
        let mut buf = String::with_capacity(1024);
        g.bench_function(*name, |b| {
            b.iter(|| {
                buf.clear();
                let rec = dec
                    .decode(black_box(topic), black_box(payload), *ct, NOW)
                    .expect("valid");
                encode_record(&rec, &mut buf).expect("encodes");
                black_box(buf.len())
            })
        });
    }
    // Mixed: the five protobuf kinds in turn (JSON excluded: legacy path).
    let pb_msgs: Vec<_> = msgs.iter().filter(|m| m.3.is_none()).collect();
    let mut buf = String::with_capacity(1024);
    let mut i = 0usize;
    g.bench_function("mixed_protobuf", |b| {
        b.iter(|| {
            let (_, topic, payload, ct) = pb_msgs[i % pb_msgs.len()];
            i = i.wrapping_add(1);
            buf.clear();
            let rec = dec
                .decode(black_box(topic), black_box(payload), *ct, NOW)
                .expect("valid");
            encode_record(&rec, &mut buf).expect("encodes");
            black_box(buf.len())
        })
    });
    g.finish();
}

/// JT/T 808: a location report (0x0200) as bytes off the TCP stream →
/// splitter → unescape + check code + header → body → validated
/// `truck_fix` record → line protocol; the same work the gateway does per
/// report, before the durable append.
fn bench_jt808(c: &mut Criterion) {
    use wastewatch::gateway::jt808::frame::{self, Header, Piece, Splitter, Version};
    use wastewatch::gateway::jt808::message::{self, status, Location};
    use wastewatch::gateway::jt808::record::{fix_record, Terminal};

    let time_unix_ms = NOW - 2_000;
    let loc = Location {
        alarm: 0,
        status: status::ACC_ON | status::POSITIONED | status::LOAD_MASK,
        lat_e6: 34_741_200,
        lon_e6: 113_780_500,
        altitude_m: 96,
        speed_dkmh: 365,
        direction: 92,
        time_bcd: message::unix_ms_to_bcd_time(time_unix_ms),
        time_unix_ms,
        mileage_dkm: Some(1_234_567),
        satellites: Some(12),
        // 0x7E / 0x7D in the body exercise the escaping.
        body_sensors: Some(0x01),
        ..Default::default()
    };
    let terminal = Terminal {
        device_id: "truck-d1234".into(),
        site_id: "cs-hanghai-east".into(),
        plate: "豫AD1234".into(),
        phone: "13937100001".into(),
    };
    let clock = wastewatch::decode::ClockPolicy::default();
    let mut g = c.benchmark_group("jt808_decode_normalise_encode");
    g.throughput(Throughput::Elements(1));
    for (name, version) in [
        ("location_2013", Version::V2013),
        ("location_2019", Version::V2019 { protocol: 1 }),
    ] {
        let header = Header {
            msg_id: 0x0200,
            version,
            encryption: 0,
            phone: match version {
                Version::V2013 => "013937100001".into(),
                Version::V2019 { .. } => "00000000013937100001".into(),
            },
            serial: 0x7E7D,
            package: None,
        };
        let wire = frame::encode(&header, &loc.encode()).expect("frame encodes");
        let mut splitter = Splitter::new(2100);
        let mut pieces = Vec::with_capacity(4);
        let mut buf = String::with_capacity(1024);
        g.bench_function(name, |b| {
            b.iter(|| {
                pieces.clear();
                splitter.push(black_box(&wire), &mut pieces);
                let Some(Piece::Frame(raw)) = pieces.first() else {
                    panic!("one frame expected, got {pieces:?}");
                };
                let f = frame::parse(raw).expect("valid frame");
                let l = Location::parse(&f.body).expect("valid report");
                let rec = fix_record(&l, &terminal, NOW, &clock).expect("valid fix");
                buf.clear();
                encode_record(&rec, &mut buf).expect("encodes");
                black_box(buf.len())
            })
        });
    }
    g.finish();
}

/// Sparkplug B: a DDATA of the shipped zone's hazardous storage point
/// (`edge-hazard-east-01` / `HazStore` → `st-licensed-01`) with all ten
/// mapped metrics by alias, after its NBIRTH and DBIRTH: payload decode →
/// topic → seq and alias resolution → units → validated `storage_reading`
/// record → line protocol. The seq moves on with every message, as an edge
/// node's does.
fn bench_sparkplug(c: &mut Criterion) {
    use wastewatch::gateway::sparkplug::{Host, HostConfig};
    use wastewatch_contract::sparkplug::{self as sp, datatype as dt, MessageType, Value};
    use wastewatch_contract::sparkplug_pb::Payload;

    let reg = Registry::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("zone"))
        .expect("shipped zone loads");
    let dec = Arc::new(Decoder::new(Arc::new(reg), DecodePolicy::default()));
    let mut host = Host::new(
        dec,
        HostConfig {
            host_id: "bench".into(),
            groups: vec![],
            rebirth_min_interval_ms: 5_000,
        },
    );
    let (group, edge, dev) = ("licensed-facilities", "edge-hazard-east-01", "HazStore");
    let metrics: [(&str, u32, Value); 10] = [
        ("Stock", dt::DOUBLE, Value::Float(2.45)),
        ("Oldest Container Age", dt::DOUBLE, Value::Float(2_400.0)),
        ("Temperature", dt::FLOAT, Value::Float(26.3)),
        ("Gas/Combustible", dt::FLOAT, Value::Float(3.0)),
        ("Gas/Toxic", dt::FLOAT, Value::Float(5.0)),
        ("Gas/Oxygen", dt::FLOAT, Value::Float(20.8)),
        ("Leak", dt::BOOLEAN, Value::Bool(false)),
        ("Door Open", dt::BOOLEAN, Value::Bool(false)),
        ("Containers", dt::INT32, Value::Int(14)),
        ("Battery", dt::FLOAT, Value::Float(3.58)),
    ];
    let enc = |seq: u64, ms: Vec<wastewatch_contract::sparkplug_pb::payload::Metric>| {
        Payload {
            timestamp: Some((NOW - 500) as u64),
            seq: Some(seq),
            metrics: ms,
            ..Default::default()
        }
        .encode_to_vec()
    };
    let nbirth = enc(
        0,
        vec![sp::metric(Some("bdSeq"), None, dt::INT64, &Value::Int(1))],
    );
    let out = host.on_message(
        &sp::topic(group, MessageType::NBirth, edge, None),
        &nbirth,
        NOW,
    );
    assert!(out.quarantine.is_empty(), "{:?}", out.quarantine);
    let dbirth = enc(
        1,
        metrics
            .iter()
            .enumerate()
            .map(|(i, (n, t, v))| sp::metric(Some(n), Some(i as u64 + 1), *t, v))
            .collect(),
    );
    let out = host.on_message(
        &sp::topic(group, MessageType::DBirth, edge, Some(dev)),
        &dbirth,
        NOW,
    );
    assert!(out.quarantine.is_empty(), "{:?}", out.quarantine);
    // The 256 DDATA payloads of one seq cycle, prepared up front.
    let data: Vec<Vec<u8>> = (0..256u64)
        .map(|seq| {
            enc(
                seq,
                metrics
                    .iter()
                    .enumerate()
                    .map(|(i, (_, t, v))| sp::metric(None, Some(i as u64 + 1), *t, v))
                    .collect(),
            )
        })
        .collect();
    let topic = sp::topic(group, MessageType::DData, edge, Some(dev));
    let mut seq = 2usize;
    let mut buf = String::with_capacity(1024);
    let mut g = c.benchmark_group("sparkplug_decode_normalise_encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("storage_ddata_10_metrics", |b| {
        b.iter(|| {
            let out = host.on_message(black_box(&topic), black_box(&data[seq]), NOW);
            seq = (seq + 1) % 256;
            let rec = out.records.first().expect("a storage reading");
            debug_assert!(out.quarantine.is_empty() && out.commands.is_empty());
            buf.clear();
            encode_record(rec, &mut buf).expect("encodes");
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_jt808, bench_sparkplug);
criterion_main!(benches);
