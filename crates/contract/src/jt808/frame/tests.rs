//! Golden frames of every message type the gateway speaks, in both
//! editions, worked out from JT/T 808-2019 §4.4 (delimiters, escaping, the
//! XOR check code, the 2013 and 2019 headers, sub-packages) with an
//! independent encoder, byte for byte; and the refusals, each with what it
//! names.

use super::super::message::{
    self, id, Authentication, Batch, Location, Registration, TerminalResponse,
};
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const PHONE: &str = "013937100001";
const PHONE19: &str = "00000000013937100001";
const V19: Version = Version::V2019 { protocol: 1 };

const HB13: &str = "7E0002000001393710000100011D7E";
const HB19: &str = "7E00024000010000000001393710000100025F7E";
const REG13: &str = "7E0100002D013937100001000300290064373031313157572D54310000000000000000000000000000005430303030303102D4A5414431323334257E";
const REG19: &str = "7E010040540100000000013937100001000400290064373031313100000000000057572D54312D32303139000000000000000000000000000000000000000054303030303031000000000000000000000000000000000000000000000002D4A54144313233343D7E";
const AUTH13: &str = "7E010200100139371000010005303132333435363738394142434445460E7E";
const AUTH19: &str = "7E01024034010000000001393710000100061030313233343536373839414243444546383630303030303030303030303031312E322E33000000000000000000000000000000777E";
const LOC13: &str = "7E0200002B013937100001000700000002000003030211AB1906C702CE00700145010E26112821300501040001E240300119310109E10101F87E";
const LOC19: &str = "7E0200402B0100000000013937100001000800000002000003030211AB1906C702CE00700145010E26112821300501040001E240300119310109E10101B67E";
const BATCH13: &str = "7E070400420139371000010009000201001C000000000000000E0204CC0009034554002800000000261128213015001F00000000000001030211AB5006C702E400710190005A26112821302531010BDD7E";
const PKG1: &str = "7E07042014013937100001000A00020001000201001C000000000000000E0204CC00090345B47E";
const PKG2: &str = "7E0704202E013937100001000B0002000254002800000000261128213015001F00000000000001030211AB5006C702E400710190005A26112821302531010B077E";
const PKG19_1: &str =
    "7E070460140100000000013937100001000A00020001000201001C000000000000000E0204CC00090345F57E";
const PKG19_2: &str = "7E0704602E0100000000013937100001000B0002000254002800000000261128213015001F00000000000001030211AB5006C702E400710190005A26112821302531010B467E";
const R8001_13: &str = "7E80010005013937100001000000070200009F7E";
const R8001_19: &str = "7E80014005010000000001393710000100000008020000D17E";
const R8100_OK: &str = "7E81000013013937100001000000030030313233343536373839414243444546897E";
const R8100_NO: &str = "7E8100000301999999999900000003041D7E";
const ESC: &str = "7E000200000139371000017D027D011F7E";

fn header(msg_id: u16, version: Version, phone: &str, serial: u16) -> Header {
    Header {
        msg_id,
        version,
        encryption: 0,
        phone: phone.into(),
        serial,
        package: None,
    }
}

/// Parses the golden frame, checks its header, and checks that encoding
/// the parsed frame gives the golden bytes back.
fn golden(hex: &str, want: &Header) -> Frame {
    let raw = unhex(hex);
    let f = parse(&raw).unwrap_or_else(|e| panic!("{hex}: {e}"));
    assert_eq!(&f.header, want, "{hex}");
    assert_eq!(
        encode(&f.header, &f.body).unwrap(),
        raw,
        "re-encoding {hex}"
    );
    f
}

#[test]
fn the_standards_own_escaping_example_round_trips() {
    // JT/T 808-2019 §4.4.1: content 30 7E 08 7D 55 is sent as
    // 7E 30 7D 02 08 7D 01 55 7E.
    let sent = [0x30, 0x7D, 0x02, 0x08, 0x7D, 0x01, 0x55];
    assert_eq!(unescape(&sent).unwrap(), [0x30, 0x7E, 0x08, 0x7D, 0x55]);
}

#[test]
fn a_serial_number_of_7e7d_is_escaped_in_the_header() {
    let f = golden(ESC, &header(id::HEARTBEAT, Version::V2013, PHONE, 0x7E7D));
    assert!(f.body.is_empty());
}

#[test]
fn heartbeats_of_both_editions_parse_and_encode_byte_for_byte() {
    golden(HB13, &header(id::HEARTBEAT, Version::V2013, PHONE, 1));
    golden(HB19, &header(id::HEARTBEAT, V19, PHONE19, 2));
}

#[test]
fn registrations_of_both_editions_carry_the_gbk_plate() {
    let f = golden(REG13, &header(id::REGISTER, Version::V2013, PHONE, 3));
    let r = Registration::parse(&f.body, Version::V2013).unwrap();
    let want = Registration {
        province: 41,
        city: 100,
        manufacturer: "70111".into(),
        model: "WW-T1".into(),
        terminal_id: "T000001".into(),
        plate_color: 2,
        plate: "豫AD1234".into(),
    };
    assert_eq!(r, want);
    assert_eq!(r.encode(Version::V2013), f.body);

    let f = golden(REG19, &header(id::REGISTER, V19, PHONE19, 4));
    let r = Registration::parse(&f.body, V19).unwrap();
    assert_eq!(
        r,
        Registration {
            model: "WW-T1-2019".into(),
            ..want
        }
    );
    assert_eq!(r.encode(V19), f.body);
}

#[test]
fn authentications_of_both_editions_carry_the_code() {
    let f = golden(AUTH13, &header(id::AUTHENTICATE, Version::V2013, PHONE, 5));
    let a = Authentication::parse(&f.body, Version::V2013).unwrap();
    assert_eq!(a.code, "0123456789ABCDEF");
    assert_eq!(a.encode(Version::V2013), f.body);

    let f = golden(AUTH19, &header(id::AUTHENTICATE, V19, PHONE19, 6));
    let a = Authentication::parse(&f.body, V19).unwrap();
    assert_eq!(
        a,
        Authentication {
            code: "0123456789ABCDEF".into(),
            imei: "860000000000001".into(),
            software: "1.2.3".into(),
        }
    );
    assert_eq!(a.encode(V19), f.body);
}

fn golden_location() -> Location {
    Location {
        alarm: 0x2,
        status: 0x0303,
        lat_e6: 34_712_345,
        lon_e6: 113_705_678,
        altitude_m: 112,
        speed_dkmh: 325,
        direction: 270,
        time_bcd: [0x26, 0x11, 0x28, 0x21, 0x30, 0x05],
        time_unix_ms: 1_795_872_605_000,
        mileage_dkm: Some(123_456),
        signal: Some(25),
        satellites: Some(9),
        body_sensors: Some(1),
        ..Location::default()
    }
}

#[test]
fn location_reports_of_both_editions_decode_every_field() {
    for (hex, h) in [
        (LOC13, header(id::LOCATION, Version::V2013, PHONE, 7)),
        (LOC19, header(id::LOCATION, V19, PHONE19, 8)),
    ] {
        let f = golden(hex, &h);
        let l = Location::parse(&f.body).unwrap();
        assert_eq!(l, golden_location(), "{hex}");
        assert_eq!(l.latitude_deg(), 34.712345);
        assert_eq!(l.longitude_deg(), 113.705678);
        assert_eq!(l.encode(), f.body);
    }
}

fn batch_items() -> [Location; 2] {
    [
        Location {
            status: 2 | 4 | 8,
            lat_e6: 33_868_800,
            lon_e6: 151_209_300,
            altitude_m: 40,
            time_bcd: [0x26, 0x11, 0x28, 0x21, 0x30, 0x15],
            time_unix_ms: 1_795_872_615_000,
            ..Location::default()
        },
        Location {
            status: 1 | 2 | (1 << 8),
            lat_e6: 34_712_400,
            lon_e6: 113_705_700,
            altitude_m: 113,
            speed_dkmh: 400,
            direction: 90,
            time_bcd: [0x26, 0x11, 0x28, 0x21, 0x30, 0x25],
            time_unix_ms: 1_795_872_625_000,
            satellites: Some(11),
            ..Location::default()
        },
    ]
}

#[test]
fn a_batch_upload_holds_each_item_and_south_and_west_are_negative() {
    let f = golden(
        BATCH13,
        &header(id::BATCH_LOCATION, Version::V2013, PHONE, 9),
    );
    let b = Batch::parse(&f.body).unwrap();
    assert_eq!(b.kind, 1, "blind-area backfill");
    let items: Vec<Location> = b
        .items
        .iter()
        .map(|i| Location::parse(i).unwrap())
        .collect();
    assert_eq!(items, batch_items());
    assert_eq!(items[0].latitude_deg(), -33.8688);
    assert_eq!(items[0].longitude_deg(), -151.2093);
    let bodies: Vec<Vec<u8>> = batch_items().iter().map(Location::encode).collect();
    assert_eq!(Batch::encode(1, &bodies), f.body);
}

#[test]
fn sub_packages_of_both_editions_reassemble_into_the_batch_in_any_order() {
    use super::super::reassembly::{Fed, Reassembly};
    let whole = parse(&unhex(BATCH13)).unwrap().body;
    for (v, phone, p1, p2) in [
        (Version::V2013, PHONE, PKG1, PKG2),
        (V19, PHONE19, PKG19_1, PKG19_2),
    ] {
        let mut h1 = header(id::BATCH_LOCATION, v, phone, 10);
        h1.package = Some(Package { total: 2, index: 1 });
        let mut h2 = header(id::BATCH_LOCATION, v, phone, 11);
        h2.package = Some(Package { total: 2, index: 2 });
        let f1 = golden(p1, &h1);
        let f2 = golden(p2, &h2);
        let mut evicted = Vec::new();

        // Last package first.
        let mut r = Reassembly::new(2, 64 * 1024, 60_000);
        assert_eq!(
            r.feed(f2.clone(), &unhex(p2), 0, &mut evicted),
            Fed::Incomplete
        );
        let Fed::Complete(a) = r.feed(f1.clone(), &unhex(p1), 1, &mut evicted) else {
            panic!("two packages of two did not complete")
        };
        assert_eq!(a.body, whole);
        assert_eq!(a.serials, [10, 11]);
        assert_eq!(
            a.raw,
            [unhex(p1), unhex(p2)].concat(),
            "raw frames in package order"
        );
        assert_eq!(a.header.serial, 10);
        assert_eq!(a.header.package, None);
        assert!(r.is_empty());

        // A package sent twice replaces the first copy.
        let mut r = Reassembly::new(2, 64 * 1024, 60_000);
        assert_eq!(
            r.feed(f1.clone(), &unhex(p1), 0, &mut evicted),
            Fed::Incomplete
        );
        assert_eq!(
            r.feed(f1.clone(), &unhex(p1), 1, &mut evicted),
            Fed::Incomplete
        );
        assert!(
            matches!(r.feed(f2, &unhex(p2), 2, &mut evicted), Fed::Complete(a) if a.body == whole)
        );
        assert!(evicted.is_empty());
    }
}

#[test]
fn an_incomplete_message_expires_naming_the_missing_packages() {
    use super::super::reassembly::{Fed, Reassembly};
    let raw = unhex(PKG1);
    let f = parse(&raw).unwrap();
    let mut r = Reassembly::new(2, 64 * 1024, 60_000);
    let mut evicted = Vec::new();
    assert_eq!(r.feed(f, &raw, 1_000, &mut evicted), Fed::Incomplete);
    assert!(r.expire(60_999).is_empty());
    let gone = r.expire(61_000);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].0, raw, "the raw frames received are handed back");
    assert!(
        gone[0].1.contains("packages 2 of 2 missing"),
        "{}",
        gone[0].1
    );
}

#[test]
fn a_message_that_could_pass_the_size_limit_is_refused_before_any_package_is_held() {
    use super::super::reassembly::{Fed, Reassembly};
    let raw = unhex(PKG1);
    let f = parse(&raw).unwrap();
    let mut r = Reassembly::new(2, 1500, 60_000);
    let Fed::Refused { detail, .. } = r.feed(f, &raw, 0, &mut Vec::new()) else {
        panic!("accepted")
    };
    assert!(
        detail.contains("2046 bytes") && detail.contains("1500"),
        "{detail}"
    );
    assert!(r.is_empty());
}

#[test]
fn platform_replies_of_both_editions_encode_byte_for_byte() {
    let cases = [
        (
            R8001_13,
            header(id::PLATFORM_RESPONSE, Version::V2013, PHONE, 0),
            message::platform_response(7, id::LOCATION, message::result::OK),
        ),
        (
            R8001_19,
            header(id::PLATFORM_RESPONSE, V19, PHONE19, 0),
            message::platform_response(8, id::LOCATION, message::result::OK),
        ),
        (
            R8100_OK,
            header(id::REGISTER_RESPONSE, Version::V2013, PHONE, 0),
            message::register_response(3, message::register_result::OK, "0123456789ABCDEF"),
        ),
        (
            R8100_NO,
            header(id::REGISTER_RESPONSE, Version::V2013, "019999999999", 0),
            message::register_response(
                3,
                message::register_result::NO_SUCH_TERMINAL,
                "ignored when refused",
            ),
        ),
    ];
    for (hex, h, body) in cases {
        assert_eq!(encode(&h, &body).unwrap(), unhex(hex), "{hex}");
    }
    let f = parse(&unhex(R8100_OK)).unwrap();
    assert_eq!(
        message::parse_register_response(&f.body).unwrap(),
        (3, 0, "0123456789ABCDEF".into())
    );
    let f = parse(&unhex(R8001_19)).unwrap();
    assert_eq!(
        message::parse_platform_response(&f.body).unwrap(),
        (8, id::LOCATION, 0)
    );
}

#[test]
fn a_terminal_general_response_parses() {
    assert_eq!(
        TerminalResponse::parse(&[0x00, 0x05, 0x81, 0x03, 0x00]).unwrap(),
        TerminalResponse {
            serial: 5,
            msg_id: 0x8103,
            result: 0
        }
    );
}

fn refused(raw: &[u8]) -> String {
    match parse(raw) {
        Ok(f) => panic!("{} parsed: {f:?}", hex(raw)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_broken_frame_is_refused_with_what_is_wrong() {
    let good = unhex(HB13);
    // One flipped bit in the serial: the check code no longer matches.
    let mut flipped = good.clone();
    flipped[11] ^= 0x01;
    assert_eq!(
        refused(&flipped),
        "check code is 0x1D but the XOR of header and body is 0x1C"
    );
    // An escape followed by an undefined byte, and one at the end.
    let mut bad_escape = good.clone();
    bad_escape.insert(5, 0x7D);
    bad_escape.insert(6, 0x03);
    assert!(refused(&bad_escape).contains("0x7D at offset 4 is followed by 0x03"));
    assert!(refused(&[0x7E, 0x00, 0x7D, 0x7E]).contains("ends the frame"));
    // Too short for a header.
    assert!(refused(&[0x7E, 0x00, 0x02, 0x02, 0x7E]).contains("3 bytes after unescaping"));
    // A body length that is not what follows.
    let mut data = unhex("0002000301393710000100");
    data.push(0x01);
    data.push(check_code(&data));
    let mut framed = vec![FLAG];
    framed.extend_from_slice(&data);
    framed.push(FLAG);
    assert!(refused(&framed).contains("declares a body of 3 bytes but 0 bytes follow"));
    // A phone number that is not BCD.
    let mut data = unhex("000200000139371000AF0001");
    data.push(check_code(&data));
    let framed = [&[FLAG][..], &data, &[FLAG]].concat();
    assert!(refused(&framed).contains("01 39 37 10 00 AF is not BCD"));
    // Package 3 of 2.
    let mut data = unhex("00022000013937100001000100020003");
    data.push(check_code(&data));
    let framed = [&[FLAG][..], &data, &[FLAG]].concat();
    assert!(refused(&framed).contains("sub-package 3 of 2"));
}

#[test]
fn the_splitter_finds_frames_across_reads_and_reports_what_is_outside() {
    let mut s = Splitter::new(64);
    let mut out = Vec::new();
    let stream = [b"junk".as_slice(), &unhex(HB13), &unhex(HB19)].concat();
    // Fed one byte at a time: a frame split over any reads is found.
    for b in &stream {
        s.push(std::slice::from_ref(b), &mut out);
    }
    assert_eq!(
        out,
        [
            Piece::Outside(b"junk".to_vec()),
            Piece::Frame(unhex(HB13)),
            Piece::Frame(unhex(HB19)),
        ]
    );
    // Back-to-back frames sharing one delimiter (7E … 7E … 7E).
    out.clear();
    let hb13 = unhex(HB13);
    let shared = [&hb13[..hb13.len() - 1], &unhex(HB19)].concat();
    s.push(&shared, &mut out);
    assert_eq!(out, [Piece::Frame(unhex(HB13)), Piece::Frame(unhex(HB19))]);
}

#[test]
fn an_endless_frame_is_cut_at_the_limit_and_the_next_frame_still_parses() {
    let mut s = Splitter::new(32);
    let mut out = Vec::new();
    let mut stream = vec![FLAG];
    stream.extend(std::iter::repeat_n(0x11, 100));
    stream.extend_from_slice(&unhex(HB13));
    s.push(&stream, &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], Piece::TooLong(b) if b.len() == 32));
    assert_eq!(out[1], Piece::Frame(unhex(HB13)));
    assert!(parse(&unhex(HB13)).is_ok());
}

#[test]
fn bcd_times_outside_the_calendar_are_refused_and_times_round_trip() {
    use super::super::message::{bcd_time_to_unix_ms, unix_ms_to_bcd_time};
    assert_eq!(
        bcd_time_to_unix_ms(&[0x26, 0x11, 0x28, 0x21, 0x30, 0x05]).unwrap(),
        1_795_872_605_000
    );
    for bad in [
        [0x26, 0x13, 0x01, 0x00, 0x00, 0x00], // month 13
        [0x26, 0x02, 0x29, 0x00, 0x00, 0x00], // 2026 is not a leap year
        [0x26, 0x01, 0x01, 0x24, 0x00, 0x00], // hour 24
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // an unset clock
        [0x26, 0x1A, 0x01, 0x00, 0x00, 0x00], // not BCD
    ] {
        assert!(bcd_time_to_unix_ms(&bad).is_err(), "{bad:02X?}");
    }
    assert!(bcd_time_to_unix_ms(&[0x28, 0x02, 0x29, 0, 0, 0]).is_ok());
    // 2000-01-01 00:00:00 to 2099-12-31 23:59:59 China Standard Time.
    for ms in [
        946_656_000_000,
        1_795_872_605_000,
        1_798_732_800_000,
        4_102_415_999_000,
    ] {
        let t = unix_ms_to_bcd_time(ms);
        assert_eq!(bcd_time_to_unix_ms(&t).unwrap(), ms, "{t:02X?}");
    }
}

#[test]
fn an_additional_item_of_the_wrong_length_is_refused_by_name() {
    let mut body = golden_location().encode();
    // Mileage (0x01) given 3 bytes instead of 4.
    let at = 28;
    assert_eq!(body[at], 0x01);
    body[at + 1] = 3;
    body.remove(at + 2);
    let e = Location::parse(&body).unwrap_err().0;
    assert!(
        e.contains("0x01 (mileage)") && e.contains("has 3 bytes") && e.contains("gives it 4"),
        "{e}"
    );
    // An item running past the end of the body.
    let mut body = golden_location().encode();
    body.extend_from_slice(&[0x2A, 5, 0]);
    let e = Location::parse(&body).unwrap_err().0;
    assert!(e.contains("ends inside an additional item"), "{e}");
}
