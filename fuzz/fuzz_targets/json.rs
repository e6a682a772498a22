//! JSON decoding (`decode_json`, `crates/contract/src/json.rs`) and the
//! JSON path of `Decoder::decode`, on raw bytes (seeds: one document per
//! body for devices of the shipped zone, `fuzz/seeds/json/`; dictionary
//! `fuzz/dicts/json.dict`).
//!
//! Properties, for every input:
//! - no panic;
//! - a refusal is `malformed_json` or `unknown_kind` with a detail, and the
//!   decoder on a JSON topic refuses the same payload with the same error;
//! - an accepted envelope has a known (or unspecified) device kind and
//!   re-encodes: `decode_json(encode_json(env)) == env`;
//! - on the topic its own ids name, the payload decodes the same whether
//!   announced by the `/json` suffix or by content type; an accepted record
//!   is marked `from_json`, carries the topic's ids, writes exactly one line
//!   that reads back with every device text byte-exact, and its envelope
//!   sent as protobuf yields the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use wastewatch::decode::{json, ErrorKind, Topic};
use wastewatch::pb::{self, DeviceKind};
use wastewatch_fuzz::record::{channel_of, check_ids, check_line};
use wastewatch_fuzz::zone::{self, NOW_MS};

/// A topic of the shipped zone, for payloads whose own ids do not make one.
const FALLBACK_TOPIC: &str = "wastewatch/v1/res-jingbei/bin/bin-res-jingbei-01/telemetry";

fuzz_target!(|data: &[u8]| {
    let d = zone::decoder();
    let small = data.len() <= d.policy.max_payload_bytes;
    let env = match json::decode_json(data) {
        Ok(env) => env,
        Err(e) => {
            assert!(
                matches!(e.kind, ErrorKind::MalformedJson | ErrorKind::UnknownKind),
                "decode_json refused with {e}"
            );
            assert!(!e.detail.is_empty());
            if small {
                let via = d.decode(&format!("{FALLBACK_TOPIC}/json"), data, None, NOW_MS);
                assert_eq!(via, Err(e), "the decoder must refuse as decode_json does");
            }
            return;
        }
    };
    let kind = DeviceKind::try_from(env.device_kind).expect("decode_json yields a known kind");
    let back = json::decode_json(json::encode_json(&env).as_bytes());
    assert_eq!(back.as_ref(), Ok(&env), "JSON does not round-trip");

    if !small {
        return;
    }
    let channel = channel_of(env.body.as_ref());
    let own = Topic::format(&env.site_id, kind, &env.device_id, channel, false);
    let topic = if kind != DeviceKind::Unspecified && Topic::parse(&own).is_ok() {
        own
    } else {
        FALLBACK_TOPIC.to_owned()
    };
    let by_suffix = d.decode(&format!("{topic}/json"), data, None, NOW_MS);
    let by_ct = d.decode(
        &topic,
        data,
        Some("Application/JSON ; charset=utf-8"),
        NOW_MS,
    );
    assert_eq!(
        by_suffix, by_ct,
        "the /json suffix and the content type disagree"
    );
    if let Ok(rec) = &by_suffix {
        assert!(rec.from_json);
        check_ids(rec, &topic);
        check_line(rec);
        let e = rec.envelope.as_ref().expect("envelope");
        let as_pb: Result<pb::LogRecord, _> = d.decode(&topic, &e.encode_to_vec(), None, NOW_MS);
        let mut want = rec.clone();
        want.from_json = false;
        assert_eq!(
            as_pb,
            Ok(want),
            "the same envelope as protobuf decodes differently"
        );
    }
});
