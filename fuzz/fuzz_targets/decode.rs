//! Fuzzes the whole decode path: topic parse, protobuf or JSON decode,
//! validation, normalisation, then line-protocol encoding of what passed.
//! The first input byte picks the topic and encoding; the rest is payload.
//! Properties: no panic; an accepted record carries the topic's ids and
//! encodes to exactly one line that reads back with its tags, point time and
//! every device text byte-exact (`record::check_line`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wastewatch_fuzz::record::{check_ids, check_line};
use wastewatch_fuzz::zone;

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
    if let Ok(rec) = zone::decoder().decode(topic, payload, ct, zone::NOW_MS) {
        check_ids(&rec, topic);
        check_line(&rec);
    }
});
