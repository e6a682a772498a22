//! Runs the decode + normalise + encode path N times, for profilers with
//! deterministic counts (`valgrind --tool=callgrind`), e.g.
//! `cargo build --release --example hotpath && valgrind --tool=callgrind target/release/examples/hotpath 20000 mixed`.
//!
//! The second argument picks the messages: `bin` (the default, one smart-bin
//! reading) or `mixed` (the five protobuf kinds of `benches/decode.rs` in
//! turn, the same messages from the same devices). Subtract a run with N = 0
//! to remove start-up and registry loading.

use std::sync::Arc;

use prost::Message;
use wastewatch::decode::{Channel, DecodePolicy, Decoder, Topic};
use wastewatch::pb::{self, envelope::Body, DeviceKind};
use wastewatch::registry::Registry;
use wastewatch::sink::encode::encode_record;

const NOW: i64 = 1_790_000_000_000;

/// The mixed set: one message per protobuf kind, as in `benches/decode.rs`.
fn mixed(reg: &Registry) -> Vec<(String, Vec<u8>)> {
    let pick = |k: DeviceKind| {
        let mut ids: Vec<_> = reg.devices.values().filter(|d| d.kind == k).collect();
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        ids.first().map(|d| (d.id.clone(), d.site_id.clone()))
    };
    let msg = |k: DeviceKind, ch: Channel, body: Body| {
        let (id, site) = pick(k)?;
        let env = pb::Envelope {
            site_id: site,
            device_id: id,
            device_kind: k as i32,
            seq: 123_456,
            recorded_at_unix_ms: NOW - 500,
            schema_version: 1,
            body: Some(body),
        };
        let topic = Topic::format(&env.site_id, k, &env.device_id, ch, false);
        Some((topic, env.encode_to_vec()))
    };
    [
        msg(
            DeviceKind::Weighbridge,
            Channel::Event,
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
        ),
        msg(
            DeviceKind::Bin,
            Channel::Telemetry,
            Body::BinReading(pb::BinReading {
                fill_level_pct: 82.5,
                temperature_deci_c: 214,
                tilt_deg: 1.5,
                battery_mv: 3580,
                ..Default::default()
            }),
        ),
        msg(
            DeviceKind::Storage,
            Channel::Telemetry,
            Body::StorageReading(pb::StorageReading {
                stock_kg: 2450.0,
                oldest_container_age_s: 25_920_000,
                temperature_deci_c: 263,
                combustible_gas_pct_lel: Some(3.0),
                oxygen_pct_vol: Some(20.8),
                container_count: 14,
                ..Default::default()
            }),
        ),
        msg(
            DeviceKind::Truck,
            Channel::Telemetry,
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
        ),
        msg(
            DeviceKind::Bin,
            Channel::Status,
            Body::DeviceStatus(pb::DeviceStatus {
                kind: 2,
                firmware_version: "2.4.1".into(),
                battery_mv: 3580,
                signal_dbm: Some(-87),
                uptime_s: 86_400,
            }),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The single smart-bin reading the first recorded figures were taken with.
fn bin() -> Vec<(String, Vec<u8>)> {
    let env = pb::Envelope {
        site_id: "res-jingbei".into(),
        device_id: "bin-res-jingbei-01".into(),
        device_kind: DeviceKind::Bin as i32,
        seq: 99,
        recorded_at_unix_ms: NOW - 100,
        schema_version: 1,
        body: Some(Body::BinReading(pb::BinReading {
            fill_level_pct: 82.5,
            temperature_deci_c: 214,
            tilt_deg: 1.5,
            battery_mv: 3580,
            ..Default::default()
        })),
    };
    let topic = Topic::format(
        &env.site_id,
        DeviceKind::Bin,
        &env.device_id,
        Channel::Telemetry,
        false,
    );
    vec![(topic, env.encode_to_vec())]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mode = args.next().unwrap_or_else(|| "bin".to_owned());
    let reg =
        match Registry::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zone")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
    let msgs = match mode.as_str() {
        "bin" => bin(),
        "mixed" => mixed(&reg),
        other => {
            eprintln!("unknown mode {other:?}; use bin or mixed");
            std::process::exit(2);
        }
    };
    if msgs.is_empty() {
        eprintln!("the zone has no devices for these messages");
        std::process::exit(1);
    }
    let dec = Decoder::new(Arc::new(reg), DecodePolicy::default());
    let mut buf = String::with_capacity(512);
    let mut total = 0usize;
    for i in 0..n {
        let (topic, payload) = &msgs[i % msgs.len()];
        buf.clear();
        match dec.decode(topic, payload, None, NOW) {
            Ok(rec) => {
                if encode_record(&rec, &mut buf).is_ok() {
                    total += buf.len();
                }
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
    println!("{total}");
}
