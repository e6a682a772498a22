//! What every record the decoder accepts must satisfy, checked through the
//! line the sink writes for it and read back by [`crate::lp`].

use wastewatch::decode::{body_name, Topic};
use wastewatch::pb::{self, envelope::Body};
use wastewatch::sink::encode::encode_record;

use crate::lp::{self, Value};

/// True for a tag value that can never need escaping or be mangled by
/// InfluxDB: the id grammar's bytes only.
fn plain_tag(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The device-text string fields of a record that docs/SCHEMA.md promises,
/// with the text each must read back as.
fn promised_texts(body: &Body) -> Vec<(&'static str, &str)> {
    match body {
        Body::WeighbridgeTicket(t) => vec![
            ("ticket_id", &t.ticket_id),
            ("plate", &t.plate),
            ("hazardous_code", &t.hazardous_waste_code),
            ("catalogue_edition", &t.catalogue_edition),
            ("origin_site", &t.origin_site_id),
            ("destination_site", &t.destination_site_id),
            ("operator", &t.operator_id),
            ("permit_id", &t.permit_id),
        ],
        Body::TruckFix(f) => vec![("plate", &f.plate), ("permit_id", &f.permit_id)],
        Body::DeviceStatus(s) => vec![("firmware", &s.firmware_version)],
        Body::BinReading(_) | Body::StorageReading(_) => Vec::new(),
    }
}

/// Checks the line of an accepted record: it encodes, as exactly one line
/// with no raw line break, which an independent reader parses into the
/// measurement of its body, the site and device tags of its envelope (no
/// other tag carries anything but id-grammar bytes), its point time,
/// sequence number and device time, and every device text byte-exact in
/// its string field. Returns the parsed point.
pub fn check_line(rec: &pb::LogRecord) -> lp::Point {
    let env = rec
        .envelope
        .as_ref()
        .expect("an accepted record has an envelope");
    let body = env.body.as_ref().expect("an accepted record has a body");
    let mut buf = String::new();
    let m = encode_record(rec, &mut buf)
        .unwrap_or_else(|e| panic!("an accepted record must encode: {e}; record {rec:?}"));
    assert_eq!(
        buf.matches('\n').count(),
        1,
        "an accepted record must be exactly one line: {buf:?}"
    );
    assert!(
        buf.ends_with('\n'),
        "the line must end in a line feed: {buf:?}"
    );
    assert!(!buf.contains('\r'), "a raw carriage return in {buf:?}");
    let p = lp::parse(&buf).unwrap_or_else(|e| panic!("unreadable line {buf:?}: {e}"));
    assert_eq!(m, body_name(body), "measurement of {buf:?}");
    assert_eq!(p.measurement, m, "{buf:?}");
    for (i, (k, v)) in p.tags.iter().enumerate() {
        assert!(
            plain_tag(v),
            "tag {k}={v:?} is not an id-grammar value: {buf:?}"
        );
        assert!(
            !p.tags[..i].iter().any(|(k2, _)| k2 == k),
            "tag {k} twice: {buf:?}"
        );
    }
    for (i, (k, _)) in p.fields.iter().enumerate() {
        assert!(
            !p.fields[..i].iter().any(|(k2, _)| k2 == k),
            "field {k} twice: {buf:?}"
        );
    }
    assert_eq!(p.tag("site"), Some(env.site_id.as_str()), "{buf:?}");
    assert_eq!(p.tag("device"), Some(env.device_id.as_str()), "{buf:?}");
    assert_eq!(p.timestamp, rec.time_unix_ms, "point time of {buf:?}");
    let seq = i64::try_from(env.seq).expect("an accepted seq fits i64");
    assert_eq!(p.field("seq"), Some(&Value::Int(seq)), "{buf:?}");
    assert_eq!(
        p.field("device_time_ms"),
        Some(&Value::Int(env.recorded_at_unix_ms)),
        "{buf:?}"
    );
    for (key, want) in promised_texts(body) {
        match p.field(key) {
            Some(Value::Str(got)) => assert_eq!(
                got, want,
                "string field {key} does not read back byte-exact from {buf:?}"
            ),
            other => panic!("string field {key} missing or not a string ({other:?}) in {buf:?}"),
        }
    }
    p
}

/// Checks that the record's ids are those of the topic it came on.
pub fn check_ids(rec: &pb::LogRecord, topic: &str) {
    let t = Topic::parse(topic).expect("an accepted record came on a valid topic");
    let env = rec.envelope.as_ref().expect("envelope");
    assert_eq!(env.site_id, t.site_id);
    assert_eq!(env.device_id, t.device_id);
    assert_eq!(env.device_kind, t.kind as i32);
}

/// True when JSON carries `env` without loss: the JSON codec gives back
/// exactly this envelope (JSON has no NaN or infinity, and an unknown enum
/// number is written as unspecified, so not every envelope qualifies).
pub fn json_faithful(env: &pb::Envelope) -> bool {
    let json = wastewatch::decode::json::encode_json(env);
    wastewatch::decode::json::decode_json(json.as_bytes()).is_ok_and(|back| back == *env)
}

/// The channel a body naturally travels on.
pub fn channel_of(body: Option<&Body>) -> wastewatch::decode::Channel {
    use wastewatch::decode::Channel;
    match body {
        Some(Body::DeviceStatus(_)) => Channel::Status,
        Some(Body::WeighbridgeTicket(_)) => Channel::Event,
        _ => Channel::Telemetry,
    }
}
