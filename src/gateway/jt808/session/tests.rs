//! Conversations with one terminal, through the pure state machine: what is
//! stored, quarantined and answered, in which order.

use std::sync::Arc;

use super::super::frame::{self, Header, Package, Piece, Version};
use super::super::message::{self, id, Authentication, Batch, Location, Registration};
use super::*;
use crate::pb::envelope::Body;

const PHONE: &str = "013937100001";

fn registry() -> Arc<Registry> {
    let sites = r#"[{"id":"cs-a","name":"A","type":"construction_site","geofence":{"type":"Polygon","coordinates":[[[113.70,34.70],[113.71,34.70],[113.71,34.71],[113.70,34.71],[113.70,34.70]]]}}]"#;
    let devices = r#"[{"id":"truck-1","kind":"truck","site_id":"cs-a","expected_interval_s":10,"truck":{"plate":"豫AD1234","registered_tare_kg":15000,"axle_count":4,"terminal_phone":"13937100001"}}]"#;
    Arc::new(Registry::from_json_strs(sites, devices, "[]").unwrap())
}

fn conn() -> Conn {
    let policy = Policy {
        auth_key: b"a test key of sufficient length".to_vec(),
        clock: ClockPolicy::default(),
        max_pending_messages: 2,
        max_message_bytes: 64 * 1024,
        subpackage_timeout_ms: 60_000,
    };
    Conn::new(registry(), Arc::new(policy), "192.0.2.7:40000".into())
}

fn header(msg_id: u16, version: Version, serial: u16) -> Header {
    Header {
        msg_id,
        version,
        encryption: 0,
        phone: match version {
            Version::V2013 => PHONE.into(),
            Version::V2019 { .. } => format!("{PHONE:0>20}"),
        },
        serial,
        package: None,
    }
}

fn send(c: &mut Conn, h: &Header, body: &[u8], now: i64) -> Output {
    let raw = frame::encode(h, body).unwrap();
    c.on_piece(&Piece::Frame(raw), now)
}

/// The replies of an output: (message id, body).
fn replies(out: &Output) -> Vec<(u16, Vec<u8>)> {
    let mut pieces = Vec::new();
    frame::Splitter::new(4096).push(&out.replies, &mut pieces);
    pieces
        .iter()
        .map(|p| match p {
            Piece::Frame(raw) => {
                let f = frame::parse(raw).unwrap();
                (f.header.msg_id, f.body)
            }
            other => panic!("reply is not a frame: {other:?}"),
        })
        .collect()
}

fn registration(plate: &str) -> Registration {
    Registration {
        province: 41,
        city: 100,
        manufacturer: "70111".into(),
        model: "WW-T1".into(),
        terminal_id: "T000001".into(),
        plate_color: 2,
        plate: plate.into(),
    }
}

/// Registers and authenticates; returns the code.
fn log_in(c: &mut Conn, v: Version, now: i64) -> String {
    let out = send(
        c,
        &header(id::REGISTER, v, 1),
        &registration("豫AD1234").encode(v),
        now,
    );
    let r = replies(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, id::REGISTER_RESPONSE);
    let (serial, result, code) = message::parse_register_response(&r[0].1).unwrap();
    assert_eq!((serial, result), (1, message::register_result::OK));
    assert_eq!(code.len(), 16);
    let auth = Authentication {
        code: code.clone(),
        imei: "860000000000001".into(),
        software: "1.0".into(),
    };
    let out = send(c, &header(id::AUTHENTICATE, v, 2), &auth.encode(v), now);
    assert_eq!(
        replies(&out),
        [(
            id::PLATFORM_RESPONSE,
            message::platform_response(2, id::AUTHENTICATE, message::result::OK)
        )]
    );
    assert!(c.terminal().is_some());
    code
}

fn location(lat_e6: u32, bcd: [u8; 6]) -> Location {
    Location {
        alarm: 0x2,
        status: 1 | 2 | (3 << 8),
        lat_e6,
        lon_e6: 113_705_678,
        altitude_m: 112,
        speed_dkmh: 325,
        direction: 270,
        time_bcd: bcd,
        mileage_dkm: Some(123_456),
        satellites: Some(9),
        body_sensors: Some(0b10),
        ..Location::default()
    }
}

const T0_BCD: [u8; 6] = [0x26, 0x11, 0x28, 0x21, 0x30, 0x05];
const T0_MS: i64 = 1_795_872_605_000;

#[test]
fn an_authenticated_terminals_location_becomes_the_native_truck_fix_answered_after_it() {
    for v in [Version::V2013, Version::V2019 { protocol: 1 }] {
        let mut c = conn();
        log_in(&mut c, v, T0_MS);
        let out = send(
            &mut c,
            &header(id::LOCATION, v, 3),
            &location(34_712_345, T0_BCD).encode(),
            T0_MS + 500,
        );
        assert!(out.quarantine.is_empty(), "{:?}", out.quarantine);
        assert_eq!(out.records.len(), 1);
        let rec = &out.records[0];
        let env = rec.envelope.as_ref().unwrap();
        assert_eq!(env.device_id, "truck-1");
        assert_eq!(env.site_id, "cs-a");
        assert_eq!(
            env.seq,
            (T0_MS / 1000) as u64,
            "seq is the fix time in seconds"
        );
        assert_eq!(env.recorded_at_unix_ms, T0_MS);
        assert_eq!(rec.time_unix_ms, T0_MS);
        assert_eq!(rec.received_at_unix_ms, T0_MS + 500);
        let Some(Body::TruckFix(f)) = &env.body else {
            panic!("not a truck fix")
        };
        let want = pb::TruckFix {
            latitude_deg: 34.712345,
            longitude_deg: 113.705678,
            speed_kmh: 32.5,
            heading_deg: 270.0,
            accuracy_m: 0.0,
            loaded: true,
            cover_closed: false,
            body_lifted: true,
            ignition_on: true,
            plate: "豫AD1234".into(),
            permit_id: String::new(),
            load_kg: None,
            terminal_alarm_bits: 2,
            gnss_fix: true,
            satellites: 9,
            altitude_m: Some(112.0),
            odometer_km: Some(12_345.6),
        };
        assert_eq!(f, &want);
        // The reply is in the same output: the shell writes it only after
        // the record is durable.
        assert_eq!(
            replies(&out),
            [(
                id::PLATFORM_RESPONSE,
                message::platform_response(3, id::LOCATION, message::result::OK)
            )]
        );
    }
}

#[test]
fn a_terminal_without_body_sensors_reports_cover_closed_and_body_down_and_empty_is_unloaded() {
    let mut c = conn();
    log_in(&mut c, Version::V2013, T0_MS);
    let mut l = location(34_712_345, T0_BCD);
    l.body_sensors = None;
    l.status = 1 | 2; // load bits 00: empty
    let out = send(
        &mut c,
        &header(id::LOCATION, Version::V2013, 3),
        &l.encode(),
        T0_MS,
    );
    let Some(Body::TruckFix(f)) = &out.records[0].envelope.as_ref().unwrap().body else {
        panic!()
    };
    assert!(f.cover_closed && !f.body_lifted && !f.loaded);
}

#[test]
fn a_location_before_authentication_is_answered_failure_and_not_stored() {
    let mut c = conn();
    let out = send(
        &mut c,
        &header(id::LOCATION, Version::V2013, 9),
        &location(34_712_345, T0_BCD).encode(),
        T0_MS,
    );
    assert!(out.records.is_empty() && out.quarantine.is_empty());
    assert_eq!(out.refused, 1);
    assert_eq!(
        replies(&out),
        [(
            id::PLATFORM_RESPONSE,
            message::platform_response(9, id::LOCATION, message::result::FAILURE)
        )]
    );
}

#[test]
fn an_unknown_terminal_and_a_wrong_plate_are_refused_with_the_standard_codes() {
    let mut c = conn();
    let mut h = header(id::REGISTER, Version::V2013, 1);
    h.phone = "013900000000".into();
    let out = send(
        &mut c,
        &h,
        &registration("豫AD1234").encode(Version::V2013),
        T0_MS,
    );
    let r = replies(&out);
    assert_eq!(
        message::parse_register_response(&r[0].1).unwrap(),
        (1, message::register_result::NO_SUCH_TERMINAL, String::new())
    );
    let out = send(
        &mut c,
        &header(id::REGISTER, Version::V2013, 2),
        &registration("豫AD9999").encode(Version::V2013),
        T0_MS,
    );
    assert_eq!(
        message::parse_register_response(&replies(&out)[0].1).unwrap(),
        (2, message::register_result::NO_SUCH_VEHICLE, String::new())
    );
    assert_eq!(c.terminal(), None);
}

#[test]
fn a_wrong_authentication_code_fails_and_the_third_failure_closes_the_connection() {
    let mut c = conn();
    let bad = Authentication {
        code: "0000000000000000".into(),
        imei: String::new(),
        software: String::new(),
    };
    for i in 1..=3u16 {
        let out = send(
            &mut c,
            &header(id::AUTHENTICATE, Version::V2013, i),
            &bad.encode(Version::V2013),
            T0_MS,
        );
        assert_eq!(
            replies(&out),
            [(
                id::PLATFORM_RESPONSE,
                message::platform_response(i, id::AUTHENTICATE, message::result::FAILURE)
            )]
        );
        assert_eq!(out.close.is_some(), i == 3, "attempt {i}");
    }
    assert_eq!(c.terminal(), None);
}

#[test]
fn the_authentication_code_is_the_same_across_connections_and_editions() {
    let a = log_in(&mut conn(), Version::V2013, T0_MS);
    let b = log_in(&mut conn(), Version::V2019 { protocol: 1 }, T0_MS);
    assert_eq!(
        a, b,
        "derived from the key and the phone number, not stored"
    );
}

#[test]
fn a_frame_with_a_bad_check_code_is_quarantined_raw_unanswered_and_the_connection_goes_on() {
    let mut c = conn();
    log_in(&mut c, Version::V2013, T0_MS);
    let mut raw = frame::encode(
        &header(id::LOCATION, Version::V2013, 3),
        &location(34_712_345, T0_BCD).encode(),
    )
    .unwrap();
    let n = raw.len();
    raw[n - 2] ^= 0x55;
    let out = c.on_piece(&Piece::Frame(raw.clone()), T0_MS);
    assert!(out.records.is_empty() && out.replies.is_empty());
    let [(kind, q)] = &out.quarantine[..] else {
        panic!("{:?}", out.quarantine)
    };
    assert_eq!(*kind, ErrorKind::MalformedFrame);
    assert_eq!(q.payload, raw, "the raw bytes as received");
    assert_eq!(q.reason, "malformed_frame");
    assert!(q.detail.starts_with("check code is"), "{}", q.detail);
    assert_eq!(q.content_type, CONTENT_TYPE);
    // The retransmission arrives intact and is stored.
    let out = send(
        &mut c,
        &header(id::LOCATION, Version::V2013, 3),
        &location(34_712_345, T0_BCD).encode(),
        T0_MS,
    );
    assert_eq!(out.records.len(), 1);
}

#[test]
fn an_out_of_range_fix_is_quarantined_with_the_validation_reason_and_answered() {
    let mut c = conn();
    log_in(&mut c, Version::V2013, T0_MS);
    let out = send(
        &mut c,
        &header(id::LOCATION, Version::V2013, 3),
        &location(95_000_000, T0_BCD).encode(),
        T0_MS,
    );
    assert!(out.records.is_empty());
    let [(kind, q)] = &out.quarantine[..] else {
        panic!()
    };
    assert_eq!(*kind, ErrorKind::InvalidCoordinate);
    assert!(q.detail.contains("(95, 113.705678)"), "{}", q.detail);
    assert_eq!(q.topic, "jt808/013937100001/0x0200");
    // Kept in the quarantine, so answered: retransmitting cannot help.
    assert_eq!(
        replies(&out),
        [(
            id::PLATFORM_RESPONSE,
            message::platform_response(3, id::LOCATION, 0)
        )]
    );
}

#[test]
fn a_batch_in_two_sub_packages_gives_each_fix_and_answers_each_package() {
    let mut c = conn();
    log_in(&mut c, Version::V2013, T0_MS);
    let items = [
        location(34_712_345, T0_BCD).encode(),
        location(95_000_000, [0x26, 0x11, 0x28, 0x21, 0x30, 0x15]).encode(),
        location(34_712_400, [0x26, 0x11, 0x28, 0x21, 0x30, 0x25]).encode(),
    ];
    let body = Batch::encode(1, &items);
    let (a, b) = body.split_at(30);
    let mut h1 = header(id::BATCH_LOCATION, Version::V2013, 40);
    h1.package = Some(Package { total: 2, index: 1 });
    let mut h2 = header(id::BATCH_LOCATION, Version::V2013, 41);
    h2.package = Some(Package { total: 2, index: 2 });
    let out = send(&mut c, &h1, a, T0_MS);
    assert!(
        out.records.is_empty() && out.replies.is_empty(),
        "nothing before the message is whole"
    );
    let out = send(&mut c, &h2, b, T0_MS);
    assert_eq!(out.records.len(), 2);
    let [(kind, q)] = &out.quarantine[..] else {
        panic!()
    };
    assert_eq!(*kind, ErrorKind::InvalidCoordinate);
    assert!(q.detail.starts_with("item 2 of 3: "), "{}", q.detail);
    assert_eq!(
        q.payload,
        [
            frame::encode(&h1, a).unwrap(),
            frame::encode(&h2, b).unwrap()
        ]
        .concat()
    );
    assert_eq!(
        replies(&out),
        [
            (
                id::PLATFORM_RESPONSE,
                message::platform_response(40, id::BATCH_LOCATION, 0)
            ),
            (
                id::PLATFORM_RESPONSE,
                message::platform_response(41, id::BATCH_LOCATION, 0)
            ),
        ]
    );
}

#[test]
fn heartbeats_are_answered_unsupported_messages_say_so_and_logout_closes() {
    let mut c = conn();
    log_in(&mut c, Version::V2013, T0_MS);
    let out = send(
        &mut c,
        &header(id::HEARTBEAT, Version::V2013, 5),
        &[],
        T0_MS,
    );
    assert_eq!(
        replies(&out),
        [(
            id::PLATFORM_RESPONSE,
            message::platform_response(5, id::HEARTBEAT, 0)
        )]
    );
    let out = send(
        &mut c,
        &header(0x0900, Version::V2013, 6),
        &[1, 2, 3],
        T0_MS,
    );
    assert_eq!(out.refused, 1);
    assert_eq!(
        replies(&out),
        [(
            id::PLATFORM_RESPONSE,
            message::platform_response(6, 0x0900, message::result::UNSUPPORTED)
        )]
    );
    let out = send(&mut c, &header(id::LOGOUT, Version::V2013, 7), &[], T0_MS);
    assert!(out.close.is_some());
    assert_eq!(c.terminal(), None);
}

#[test]
fn a_location_under_another_phone_number_than_the_one_authenticated_is_refused() {
    let mut c = conn();
    log_in(&mut c, Version::V2013, T0_MS);
    let mut h = header(id::LOCATION, Version::V2013, 3);
    h.phone = "013937100002".into();
    let out = send(&mut c, &h, &location(34_712_345, T0_BCD).encode(), T0_MS);
    assert!(out.records.is_empty());
    assert_eq!(out.refused, 1);
}

#[test]
fn bytes_outside_frames_and_expired_sub_packages_are_quarantined() {
    let mut c = conn();
    let out = c.on_piece(&Piece::Outside(b"GET / HTTP/1.1".to_vec()), T0_MS);
    assert_eq!(out.quarantine[0].1.payload, b"GET / HTTP/1.1");
    assert!(out.quarantine[0].1.detail.contains("14 byte(s) outside"));
    log_in(&mut c, Version::V2013, T0_MS);
    let mut h1 = header(id::BATCH_LOCATION, Version::V2013, 40);
    h1.package = Some(Package { total: 3, index: 1 });
    let out = send(&mut c, &h1, &[0, 1], T0_MS);
    assert!(out.quarantine.is_empty());
    assert!(c.on_tick(T0_MS + 59_999).quarantine.is_empty());
    let out = c.on_tick(T0_MS + 60_000);
    assert!(
        out.quarantine[0]
            .1
            .detail
            .contains("packages 2, 3 of 3 missing"),
        "{}",
        out.quarantine[0].1.detail
    );
    assert!(
        out.replies.is_empty(),
        "an incomplete message is not answered"
    );
}

#[test]
fn an_encrypted_body_is_quarantined_and_answered_unsupported() {
    let mut c = conn();
    let mut h = header(id::LOCATION, Version::V2013, 3);
    h.encryption = 1;
    let out = send(&mut c, &h, &[0; 28], T0_MS);
    assert!(out.quarantine[0].1.detail.contains("encrypted"));
    assert_eq!(
        replies(&out)[0].1,
        message::platform_response(3, id::LOCATION, message::result::UNSUPPORTED)
    );
}
