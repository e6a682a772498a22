//! Topic parsing (`Topic::parse`, `crates/contract/src/topic.rs`) against a
//! model of the grammar written the plain way (split on `/`, check in the
//! documented order), on raw bytes (seeds `fuzz/seeds/topic/`, dictionary
//! `fuzz/dicts/topic.dict`).
//!
//! Properties, for every input:
//! - no panic;
//! - the parser accepts exactly what the model accepts, with the same parts,
//!   and refuses with the model's reason (`malformed_topic`, `unknown_kind`,
//!   `invalid_id`);
//! - an accepted topic round-trips: `Topic::format(parts) == input`, and both
//!   ids pass `check_id`;
//! - a refusal names the offending segment: the topic itself when the
//!   prefix or the number of segments is wrong, the quoted segment for an
//!   unexpected fifth segment, an unknown kind or channel, and which id
//!   (site or device) for a bad id;
//! - the decoder refuses a message on a refused topic with the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wastewatch::decode::topic::{check_id, parse_kind, MAX_ID_LEN, PREFIX};
use wastewatch::decode::{Channel, ErrorKind, Topic};
use wastewatch::pb::DeviceKind;
use wastewatch_fuzz::zone::{self, NOW_MS};

/// The model's verdict: the parts, or the reason and a text the error
/// detail must contain.
type Model<'a> = Result<(&'a str, DeviceKind, &'a str, Channel, bool), (ErrorKind, String)>;

fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

fn model(topic: &str) -> Model<'_> {
    let whole = format!("{topic:?}");
    let Some(rest) = topic.strip_prefix(PREFIX) else {
        return Err((ErrorKind::MalformedTopic, whole));
    };
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.len() < 4 {
        return Err((ErrorKind::MalformedTopic, whole));
    }
    let json = match segs.get(4) {
        None => false,
        Some(&"json") => true,
        Some(other) => return Err((ErrorKind::MalformedTopic, format!("{other:?}"))),
    };
    if segs.len() > 5 {
        return Err((ErrorKind::MalformedTopic, "too many segments".into()));
    }
    let Some(kind) = parse_kind(segs[1]) else {
        return Err((ErrorKind::UnknownKind, format!("{:?}", segs[1])));
    };
    let channel = match segs[3] {
        "telemetry" => Channel::Telemetry,
        "event" => Channel::Event,
        "status" => Channel::Status,
        other => return Err((ErrorKind::MalformedTopic, format!("{other:?}"))),
    };
    if !valid_id(segs[0]) {
        return Err((ErrorKind::InvalidId, "site id in topic".into()));
    }
    if !valid_id(segs[2]) {
        return Err((ErrorKind::InvalidId, "device id in topic".into()));
    }
    Ok((segs[0], kind, segs[2], channel, json))
}

fuzz_target!(|data: &[u8]| {
    let Ok(topic) = std::str::from_utf8(data) else {
        // MQTT topics are UTF-8; the broker and our codec refuse others.
        return;
    };
    let got = Topic::parse(topic);
    match (&got, model(topic)) {
        (Ok(t), Ok((site, kind, device, channel, json))) => {
            assert_eq!(
                (t.site_id, t.kind, t.device_id, t.channel, t.json_suffix),
                (site, kind, device, channel, json),
                "{topic:?}"
            );
            let again = Topic::format(t.site_id, t.kind, t.device_id, t.channel, t.json_suffix);
            assert_eq!(
                again, topic,
                "format(parse(topic)) must give the topic back"
            );
            assert_eq!(Topic::parse(&again), got);
            assert!(check_id("site", t.site_id).is_ok());
            assert!(check_id("device", t.device_id).is_ok());
        }
        (Err(e), Err((kind, named))) => {
            assert_eq!(e.kind, kind, "{topic:?}: {e}");
            assert!(
                e.detail.contains(&named),
                "{topic:?}: the refusal {e} does not name {named}"
            );
            if kind == ErrorKind::InvalidId {
                // The id itself, quoted, or its length when it is too long
                // or empty.
                let seg = topic[PREFIX.len()..]
                    .split('/')
                    .nth(if named.starts_with("site") { 0 } else { 2 })
                    .unwrap_or_default();
                assert!(
                    e.detail.contains(&format!("{seg:?}"))
                        || e.detail.contains(&format!("{} bytes", seg.len()))
                        || (seg.is_empty() && e.detail.contains("empty")),
                    "{topic:?}: the refusal {e} does not show the id"
                );
            }
            let via = zone::decoder().decode(topic, b"", None, NOW_MS);
            assert_eq!(
                via,
                Err(e.clone()),
                "the decoder must refuse as the topic parser does"
            );
        }
        (got, want) => panic!("{topic:?}: parser gave {got:?}, model {want:?}"),
    }
});
