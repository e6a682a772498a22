//! Runs the mixed decode + normalise + encode path N times, for profilers
//! with deterministic counts (`valgrind --tool=callgrind`), e.g.
//! `cargo build --release --example hotpath && valgrind --tool=callgrind target/release/examples/hotpath 100000`.

use std::sync::Arc;

use prost::Message;
use wastewatch::decode::{Channel, DecodePolicy, Decoder, Topic};
use wastewatch::pb::{self, envelope::Body, DeviceKind};
use wastewatch::registry::Registry;
use wastewatch::sink::encode::encode_record;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let reg =
        match Registry::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zone")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
    let now = 1_790_000_000_000i64;
    let bin = pb::Envelope {
        site_id: "res-jingbei".into(),
        device_id: "bin-res-jingbei-01".into(),
        device_kind: DeviceKind::Bin as i32,
        seq: 99,
        recorded_at_unix_ms: now - 100,
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
        &bin.site_id,
        DeviceKind::Bin,
        &bin.device_id,
        Channel::Telemetry,
        false,
    );
    let payload = bin.encode_to_vec();
    let dec = Decoder::new(Arc::new(reg), DecodePolicy::default());
    let mut buf = String::with_capacity(512);
    let mut total = 0usize;
    for _ in 0..n {
        buf.clear();
        match dec.decode(&topic, &payload, None, now) {
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
