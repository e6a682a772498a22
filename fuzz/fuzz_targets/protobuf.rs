//! Protobuf decoding, validation and normalisation (`Decoder::decode` on a
//! protobuf topic, `src/decode/mod.rs` and `validate.rs`), with structured
//! input: the fuzzer's bytes choose a registered device of the shipped zone,
//! a topic (mostly its own, sometimes someone else's), an envelope and a body
//! whose every field is drawn from around the edges of what validation
//! accepts, with nasty device texts; a quarter of the cases then mutate the
//! encoded bytes.
//!
//! Properties, for every input:
//! - no panic;
//! - a refusal names a reason and a non-empty detail, and unmutated bytes
//!   are never refused as malformed protobuf;
//! - an accepted record carries the topic's ids, the receive time, device
//!   time as point time when the clock was in range, and encodes to exactly
//!   one line-protocol line that an independent reader parses back into its
//!   tags, point time and every device text byte-exact (`record::check_line`);
//! - normalisation is idempotent: the accepted envelope, encoded again,
//!   decodes to the very same record;
//! - protobuf and JSON agree: when JSON can carry the envelope exactly, its
//!   JSON form (on a `/json` topic, or announced by content type) yields the
//!   same record, or the same refusal with the same detail.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use wastewatch::decode::{json, Channel, Decoder, ErrorKind, Topic};
use wastewatch::pb::{self, envelope::Body, ClockCheck, DeviceKind};
use wastewatch_fuzz::gen::{self, f64_in, int, pick, text};
use wastewatch_fuzz::record::{channel_of, check_ids, check_line, json_faithful};
use wastewatch_fuzz::zone::{self, NOW_MS};

const KINDS: [DeviceKind; 4] = [
    DeviceKind::Weighbridge,
    DeviceKind::Bin,
    DeviceKind::Storage,
    DeviceKind::Truck,
];
const CHANNELS: [Channel; 3] = [Channel::Telemetry, Channel::Event, Channel::Status];

/// Mostly `usual`, now and then something else.
fn mostly<T>(
    u: &mut Unstructured<'_>,
    usual: T,
    other: impl FnOnce(&mut Unstructured<'_>) -> T,
) -> T {
    if u.ratio(1u8, 16).unwrap_or(false) {
        other(u)
    } else {
        usual
    }
}

fn opt<T>(u: &mut Unstructured<'_>, f: impl FnOnce(&mut Unstructured<'_>) -> T) -> Option<T> {
    if u.arbitrary::<bool>().unwrap_or(false) {
        Some(f(u))
    } else {
        None
    }
}

fn deci_c(u: &mut Unstructured<'_>) -> i32 {
    int(u, -600, 3000, i32::MIN, i32::MAX)
}

fn ticket(u: &mut Unstructured<'_>) -> pb::WeighbridgeTicket {
    let gross = f64_in(u, 0.0, 200_000.0);
    let tare = f64_in(u, 0.0, 200_000.0);
    let net = if u.ratio(3u8, 4).unwrap_or(true) {
        gross - tare + f64_in(u, -20.0, 20.0)
    } else {
        f64_in(u, 0.0, 200_000.0)
    };
    let category = int(u, 0, 17, i32::MIN, i32::MAX);
    let hazardous_waste_code = if u.arbitrary::<bool>().unwrap_or(false) {
        (*pick(u, &["900-249-08", " 900-041-49 ", "900-249-8", "", "HW08"])).to_owned()
    } else {
        text(u)
    };
    pb::WeighbridgeTicket {
        ticket_id: text(u),
        plate: text(u),
        gross_weight_kg: gross,
        tare_weight_kg: tare,
        net_weight_kg: net,
        category,
        hazardous_waste_code,
        catalogue_edition: text(u),
        origin_site_id: text(u),
        destination_site_id: text(u),
        destination_type: int(u, 0, 7, i32::MIN, i32::MAX),
        direction: int(u, 0, 2, i32::MIN, i32::MAX),
        weighed_in_at_unix_ms: int(u, 0, i128::from(NOW_MS), i64::MIN, i64::MAX),
        weighed_out_at_unix_ms: int(u, 0, i128::from(NOW_MS), i64::MIN, i64::MAX),
        operator_id: text(u),
        anpr_confirmed: u.arbitrary().unwrap_or(false),
        axle_count: int(u, 0, 12, 0, u32::MAX),
        permit_id: text(u),
        ..Default::default()
    }
}

fn bin(u: &mut Unstructured<'_>) -> pb::BinReading {
    pb::BinReading {
        fill_level_pct: f64_in(u, 0.0, 100.0),
        temperature_deci_c: deci_c(u),
        tilt_deg: f64_in(u, 0.0, 180.0),
        battery_mv: int(u, 0, 60_000, 0, u32::MAX),
        fire_flag: u.arbitrary().unwrap_or(false),
        battery_low_flag: u.arbitrary().unwrap_or(false),
        ..Default::default()
    }
}

fn storage(u: &mut Unstructured<'_>) -> pb::StorageReading {
    const TEN_YEARS_S: i128 = 10 * 366 * 86_400;
    pb::StorageReading {
        stock_kg: f64_in(u, 0.0, 200_000.0),
        oldest_container_age_s: int(u, 0, TEN_YEARS_S, 0, u64::MAX),
        temperature_deci_c: deci_c(u),
        combustible_gas_pct_lel: opt(u, |u| f64_in(u, 0.0, 100.0)),
        toxic_gas_pct_of_limit: opt(u, |u| f64_in(u, 0.0, 100_000.0)),
        oxygen_pct_vol: opt(u, |u| f64_in(u, 0.0, 100.0)),
        leak_detected: u.arbitrary().unwrap_or(false),
        door_open: u.arbitrary().unwrap_or(false),
        container_count: u.arbitrary().unwrap_or(0),
        oldest_medical_lot_age_s: opt(u, |u| int(u, 0, TEN_YEARS_S, 0, u64::MAX)),
        outside_temperature_deci_c: opt(u, deci_c),
        battery_mv: int(u, 0, 60_000, 0, u32::MAX),
        ..Default::default()
    }
}

fn truck(u: &mut Unstructured<'_>) -> pb::TruckFix {
    pb::TruckFix {
        latitude_deg: f64_in(u, -90.0, 90.0),
        longitude_deg: f64_in(u, -180.0, 180.0),
        speed_kmh: f64_in(u, 0.0, 250.0),
        heading_deg: f64_in(u, -360.0, 720.0),
        accuracy_m: f64_in(u, 0.0, 100_000.0),
        loaded: u.arbitrary().unwrap_or(false),
        cover_closed: u.arbitrary().unwrap_or(false),
        body_lifted: u.arbitrary().unwrap_or(false),
        ignition_on: u.arbitrary().unwrap_or(false),
        plate: text(u),
        permit_id: text(u),
        load_kg: opt(u, |u| f64_in(u, 0.0, 200_000.0)),
        terminal_alarm_bits: u.arbitrary().unwrap_or(0),
        gnss_fix: u.arbitrary().unwrap_or(false),
        satellites: int(u, 0, 200, 0, u32::MAX),
        ..Default::default()
    }
}

fn status(u: &mut Unstructured<'_>) -> pb::DeviceStatus {
    pb::DeviceStatus {
        kind: int(u, 1, 3, i32::MIN, i32::MAX),
        firmware_version: text(u),
        battery_mv: int(u, 0, 60_000, 0, u32::MAX),
        signal_dbm: opt(u, |u| int(u, -150, 0, i32::MIN, i32::MAX)),
        uptime_s: u.arbitrary().unwrap_or(0),
        ..Default::default()
    }
}

fn body(u: &mut Unstructured<'_>, kind: DeviceKind) -> Option<Body> {
    let kind = mostly(u, kind, |u| *pick(u, &KINDS));
    Some(match u.int_in_range(0u8..=19).unwrap_or(0) {
        0 => return None,
        1..=3 => Body::DeviceStatus(status(u)),
        _ => match kind {
            DeviceKind::Weighbridge | DeviceKind::Unspecified => Body::WeighbridgeTicket(ticket(u)),
            DeviceKind::Bin => Body::BinReading(bin(u)),
            DeviceKind::Storage => Body::StorageReading(storage(u)),
            DeviceKind::Truck => Body::TruckFix(truck(u)),
        },
    })
}

/// Device time: around the receive time, at the edges of the clock window,
/// or anywhere.
fn recorded_at(u: &mut Unstructured<'_>) -> i64 {
    let c = zone::decoder().policy.clock;
    let (fut, past) = (i128::from(c.max_future_ms), i128::from(c.max_past_ms));
    let offset = match u.int_in_range(0u8..=5).unwrap_or(0) {
        0..=2 => gen::int_in(u, -past, fut),
        3 => *pick(u, &[fut, fut + 1, -past, -past - 1, 0]),
        4 => return *pick(u, &[0, i64::MIN, i64::MAX, -1]),
        _ => return u.arbitrary().unwrap_or(0),
    };
    NOW_MS.saturating_add(i64::try_from(offset).unwrap_or(0))
}

struct Case {
    topic: String,
    env: pb::Envelope,
}

fn case(u: &mut Unstructured<'_>) -> Case {
    let devs = zone::devices();
    let dev = pick(u, devs).clone();
    let body = body(u, dev.kind);
    let site = mostly(u, dev.site_id.clone(), |u| {
        if u.arbitrary().unwrap_or(false) {
            pick(u, zone::site_ids()).clone()
        } else {
            text(u)
        }
    });
    let device = mostly(u, dev.id.clone(), |u| {
        if u.arbitrary().unwrap_or(false) {
            pick(u, devs).id.clone()
        } else {
            text(u)
        }
    });
    let kind = mostly(u, dev.kind, |u| *pick(u, &KINDS));
    let channel = mostly(u, channel_of(body.as_ref()), |u| *pick(u, &CHANNELS));
    let topic = Topic::format(&site, kind, &device, channel, false);
    let env = pb::Envelope {
        site_id: mostly(u, site.clone(), text),
        device_id: mostly(u, device.clone(), text),
        device_kind: mostly(u, kind as i32, |u| int(u, 0, 4, i32::MIN, i32::MAX)),
        seq: int(u, 0, i128::from(i64::MAX), 0, u64::MAX),
        recorded_at_unix_ms: recorded_at(u),
        schema_version: mostly(u, 1, |u| int(u, 0, 2, 0, u32::MAX)),
        body,
        ..Default::default()
    };
    Case { topic, env }
}

/// Damages encoded bytes: flips, deletions, insertions, truncation, an
/// appended field.
fn mutate(u: &mut Unstructured<'_>, bytes: &mut Vec<u8>) {
    let n = u.int_in_range(1u8..=4).unwrap_or(1);
    for _ in 0..n {
        let len = bytes.len();
        let at = if len == 0 {
            0
        } else {
            usize::from(u.arbitrary::<u16>().unwrap_or(0)) % (len + 1)
        };
        match u.int_in_range(0u8..=4).unwrap_or(0) {
            0 if at < len => bytes[at] ^= u.arbitrary::<u8>().unwrap_or(1).max(1),
            1 if at < len => {
                let k = usize::from(u.int_in_range(1u8..=8).unwrap_or(1)).min(len - at);
                bytes.drain(at..at + k);
            }
            2 => {
                let ins: Vec<u8> = (0..u.int_in_range(1u8..=8).unwrap_or(1))
                    .map(|_| u.arbitrary::<u8>().unwrap_or(0))
                    .collect();
                bytes.splice(at..at, ins);
            }
            3 => bytes.truncate(at),
            _ => {
                // A field of any number and wire type, possibly unknown.
                let tag: u32 = u.arbitrary().unwrap_or(0);
                prost::encoding::encode_varint(u64::from(tag), bytes);
                let tail: Vec<u8> = (0..u.int_in_range(0u8..=10).unwrap_or(0))
                    .map(|_| u.arbitrary::<u8>().unwrap_or(0))
                    .collect();
                bytes.extend(tail);
            }
        }
    }
}

fn same_outcome(
    what: &str,
    a: &Result<pb::LogRecord, wastewatch::decode::DecodeError>,
    b: &Result<pb::LogRecord, wastewatch::decode::DecodeError>,
) {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert!(b.from_json, "{what}: a JSON record must say so");
            let mut b = b.clone();
            b.from_json = false;
            assert_eq!(*a, b, "{what}: protobuf and JSON records differ");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{what}: protobuf and JSON refusals differ"),
        _ => panic!("{what}: protobuf gave {a:?}, JSON gave {b:?}"),
    }
}

fn run(d: &Decoder, u: &mut Unstructured<'_>) {
    let Case { topic, env } = case(u);
    let mut bytes = env.encode_to_vec();
    drop(env);
    let mutated = u.ratio(1u8, 4).unwrap_or(false);
    if mutated {
        mutate(u, &mut bytes);
    }
    let got = d.decode(&topic, &bytes, None, NOW_MS);
    match &got {
        Ok(rec) => {
            check_ids(rec, &topic);
            assert_eq!(rec.received_at_unix_ms, NOW_MS);
            assert!(!rec.from_json);
            let e = rec.envelope.as_ref().expect("envelope");
            if rec.clock_check == ClockCheck::Ok as i32 {
                assert_eq!(
                    rec.time_unix_ms, e.recorded_at_unix_ms,
                    "device time is point time"
                );
            }
            check_line(rec);
            let again = d.decode(&topic, &e.encode_to_vec(), None, NOW_MS);
            assert_eq!(
                again.as_ref(),
                Ok(rec),
                "normalising an accepted envelope again changed it"
            );
        }
        Err(e) => {
            assert!(!e.detail.is_empty(), "a refusal without detail: {e:?}");
            assert_eq!(ErrorKind::parse(e.kind.as_str()), Some(e.kind));
            if !mutated {
                assert_ne!(
                    e.kind,
                    ErrorKind::MalformedProtobuf,
                    "a well-formed encoding refused as malformed: {e}"
                );
            }
        }
    }
    // On a valid topic (a refused one is named in the refusal, and the
    // JSON topic differs from it by its suffix), the JSON form of what the
    // bytes say (not of `env`: protobuf drops the sign of a -0.0, JSON keeps
    // it).
    if mutated || Topic::parse(&topic).is_err() {
        return;
    }
    let said = pb::Envelope::decode(bytes.as_slice()).expect("unmutated bytes decode");
    if !json_faithful(&said) {
        return;
    }
    let j = json::encode_json(&said);
    if j.len() > d.policy.max_payload_bytes {
        return;
    }
    let by_suffix = d.decode(&format!("{topic}/json"), j.as_bytes(), None, NOW_MS);
    same_outcome("topic /json", &got, &by_suffix);
    if u.arbitrary().unwrap_or(false) {
        let by_ct = d.decode(
            &topic,
            j.as_bytes(),
            Some("application/json; charset=utf-8"),
            NOW_MS,
        );
        same_outcome("content type", &got, &by_ct);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let d = if u.ratio(1u8, 4).unwrap_or(false) {
        zone::rejecting_decoder()
    } else {
        zone::decoder()
    };
    run(d, &mut u);
});
