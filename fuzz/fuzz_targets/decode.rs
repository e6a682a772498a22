//! Fuzzes the whole decode path: topic parse, protobuf or JSON decode,
//! validation, normalisation, then line-protocol encoding of what passed.
//! The first input byte picks the topic and encoding; the rest is payload.
//! Properties: no panic; an accepted record always encodes to exactly one line.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use wastewatch::decode::{DecodePolicy, Decoder};
use wastewatch::registry::Registry;
use wastewatch::sink::encode::encode_record;

const TOPICS: [&str; 8] = [
    "wastewatch/v1/cs-hanghai-east/truck/truck-d1234/telemetry",
    "wastewatch/v1/rp-jingnan-recycle/weighbridge/wb-recycle-01/event",
    "wastewatch/v1/res-jingbei/bin/bin-res-jingbei-01/telemetry",
    "wastewatch/v1/fa-autoparts-jingnan/storage/st-factory-autoparts-01/telemetry",
    "wastewatch/v1/res-jingbei/bin/bin-res-jingbei-01/status",
    "wastewatch/v1/res-jingbei/bin/bin-res-jingbei-01/telemetry/json",
    "wastewatch/v1/x/y/z",
    "wastewatch/v1/res-jingbei/bin/unknown/telemetry",
];

fn decoder() -> &'static Decoder {
    static D: OnceLock<Decoder> = OnceLock::new();
    D.get_or_init(|| {
        let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zone");
        let reg = Registry::load_dir(&zone).unwrap_or_else(|_| Registry::empty());
        Decoder::new(Arc::new(reg), DecodePolicy::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let topic = TOPICS[usize::from(sel) % TOPICS.len()];
    let ct = if sel & 0x80 != 0 {
        Some("application/json")
    } else {
        None
    };
    if let Ok(rec) = decoder().decode(topic, payload, ct, 1_790_000_000_000) {
        let mut buf = String::new();
        encode_record(&rec, &mut buf).expect("a validated record always encodes");
        assert_eq!(buf.matches('\n').count(), 1);
    }
});
