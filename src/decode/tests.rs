//! Table-driven tests of the decode path and the protobuf/JSON equivalence.

use std::sync::Arc;

use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::pb::{self, envelope::Body};
use crate::registry::Registry;

pub(crate) const NOW: i64 = 1_790_000_000_000;

pub(crate) fn test_registry() -> Registry {
    let poly = r#"{"type":"Polygon","coordinates":[[[113.70,34.70],[113.71,34.70],[113.71,34.71],[113.70,34.71],[113.70,34.70]]]}"#;
    let sites = format!(
        r#"[{{"id":"site-a","name":"Site A","type":"recycling_plant","geofence":{poly}}},
            {{"id":"site-b","name":"Site B","type":"factory","geofence":{poly}}}]"#
    );
    let devices = r#"[
        {"id":"wb-1","kind":"weighbridge","site_id":"site-a","expected_interval_s":3600,"weighbridge":{}},
        {"id":"bin-1","kind":"bin","site_id":"site-a","expected_interval_s":3600,"bin":{"medical":false,"volume_l":240}},
        {"id":"st-1","kind":"storage","site_id":"site-b","expected_interval_s":60,"storage":{"capacity_kg":3000,"small_storage_point":true,"medical":false}},
        {"id":"tr-1","kind":"truck","site_id":"site-a","expected_interval_s":10,"truck":{"plate":"豫AD1234","registered_tare_kg":14000,"axle_count":3}}
    ]"#;
    Registry::from_json_strs(&sites, devices, "[]").expect("test registry is valid")
}

fn decoder() -> Decoder {
    Decoder::new(Arc::new(test_registry()), DecodePolicy::default())
}

pub(crate) fn envelope(
    device_id: &str,
    site_id: &str,
    kind: DeviceKind,
    body: Body,
) -> pb::Envelope {
    pb::Envelope {
        site_id: site_id.into(),
        device_id: device_id.into(),
        device_kind: kind as i32,
        seq: 42,
        recorded_at_unix_ms: NOW - 1000,
        schema_version: 1,
        body: Some(body),
    }
}

pub(crate) fn ticket() -> pb::WeighbridgeTicket {
    pb::WeighbridgeTicket {
        ticket_id: "T-0001".into(),
        plate: "豫A d1234".into(),
        gross_weight_kg: 30_000.0,
        tare_weight_kg: 14_000.0,
        net_weight_kg: 16_000.0,
        category: pb::WasteCategory::ConstructionSpoil as i32,
        destination_type: pb::DestinationType::Recycling as i32,
        direction: pb::Direction::In as i32,
        axle_count: 3,
        ..Default::default()
    }
}

pub(crate) fn bin() -> pb::BinReading {
    pb::BinReading {
        fill_level_pct: 55.0,
        temperature_deci_c: 215,
        tilt_deg: 2.0,
        battery_mv: 3600,
        ..Default::default()
    }
}

pub(crate) fn storage() -> pb::StorageReading {
    pb::StorageReading {
        stock_kg: 1200.0,
        oldest_container_age_s: 86_400 * 30,
        temperature_deci_c: 250,
        combustible_gas_pct_lel: Some(2.0),
        oxygen_pct_vol: Some(20.9),
        container_count: 12,
        ..Default::default()
    }
}

pub(crate) fn fix() -> pb::TruckFix {
    pb::TruckFix {
        latitude_deg: 34.72,
        longitude_deg: 113.75,
        speed_kmh: 35.0,
        heading_deg: 90.0,
        accuracy_m: 5.0,
        loaded: true,
        cover_closed: true,
        ignition_on: true,
        gnss_fix: true,
        satellites: 11,
        plate: "豫AD1234".into(),
        ..Default::default()
    }
}

fn status() -> pb::DeviceStatus {
    pb::DeviceStatus {
        kind: pb::StatusKind::Birth as i32,
        firmware_version: "2.4.1".into(),
        battery_mv: 3700,
        signal_dbm: Some(-70),
        uptime_s: 5,
    }
}

fn topic_of(env: &pb::Envelope, channel: Channel) -> String {
    Topic::format(
        &env.site_id,
        DeviceKind::try_from(env.device_kind).unwrap_or_default(),
        &env.device_id,
        channel,
        false,
    )
}

#[test]
fn every_message_kind_decodes_and_normalises() {
    let d = decoder();
    let cases = [
        (
            envelope(
                "wb-1",
                "site-a",
                DeviceKind::Weighbridge,
                Body::WeighbridgeTicket(ticket()),
            ),
            Channel::Event,
        ),
        (
            envelope("bin-1", "site-a", DeviceKind::Bin, Body::BinReading(bin())),
            Channel::Telemetry,
        ),
        (
            envelope(
                "st-1",
                "site-b",
                DeviceKind::Storage,
                Body::StorageReading(storage()),
            ),
            Channel::Telemetry,
        ),
        (
            envelope("tr-1", "site-a", DeviceKind::Truck, Body::TruckFix(fix())),
            Channel::Telemetry,
        ),
        (
            envelope(
                "tr-1",
                "site-a",
                DeviceKind::Truck,
                Body::DeviceStatus(status()),
            ),
            Channel::Status,
        ),
    ];
    for (env, ch) in cases {
        let rec = d
            .decode(&topic_of(&env, ch), &env.encode_to_vec(), None, NOW)
            .unwrap();
        assert_eq!(rec.time_unix_ms, NOW - 1000);
        assert_eq!(rec.clock_check, pb::ClockCheck::Ok as i32);
        assert_eq!(rec.received_at_unix_ms, NOW);
        assert!(!rec.from_json);
        let got = rec.envelope.unwrap();
        assert_eq!(got.seq, 42);
        if let Some(Body::WeighbridgeTicket(t)) = got.body {
            assert_eq!(t.plate, "豫AD1234", "plate is normalised");
        }
    }
}

/// One row: a mutation of a valid message and the error kind it must give,
/// plus a fragment the detail must contain.
type Mutation = fn(&mut String, &mut pb::Envelope);

#[test]
fn each_error_kind_is_reported_precisely() {
    let d = decoder();
    let cases: Vec<(&str, Mutation, ErrorKind, &str)> = vec![
        (
            "topic prefix",
            |t, _| *t = "foo/bar".into(),
            ErrorKind::MalformedTopic,
            "wastewatch/v1",
        ),
        (
            "topic kind",
            |t, _| *t = "wastewatch/v1/site-a/drone/bin-1/telemetry".into(),
            ErrorKind::UnknownKind,
            "drone",
        ),
        (
            "payload kind",
            |_, e| e.device_kind = 9,
            ErrorKind::UnknownKind,
            "device_kind 9",
        ),
        (
            "schema",
            |_, e| e.schema_version = 2,
            ErrorKind::UnsupportedSchemaVersion,
            "schema_version is 2",
        ),
        (
            "no body",
            |_, e| e.body = None,
            ErrorKind::MissingBody,
            "no body",
        ),
        (
            "body vs kind",
            |_, e| e.body = Some(Body::TruckFix(fix())),
            ErrorKind::BodyMismatch,
            "truck_fix body from a bin device",
        ),
        (
            "status body on telemetry",
            |_, e| e.body = Some(Body::DeviceStatus(status())),
            ErrorKind::BodyMismatch,
            "device_status body on the telemetry channel",
        ),
        (
            "reading on status",
            |t, _| *t = t.replace("/telemetry", "/status"),
            ErrorKind::BodyMismatch,
            "status channel",
        ),
        (
            "bad payload id",
            |_, e| e.device_id = "bin 1".into(),
            ErrorKind::InvalidId,
            "device_id in payload",
        ),
        (
            "speaks for another",
            |_, e| e.device_id = "bin-2".into(),
            ErrorKind::IdMismatch,
            "topic says site-a/bin/bin-1",
        ),
        (
            "site differs from topic",
            |_, e| e.site_id = "site-b".into(),
            ErrorKind::IdMismatch,
            "payload says site-b",
        ),
        (
            "unknown device",
            |t, e| {
                e.device_id = "bin-9".into();
                *t = t.replace("bin-1", "bin-9");
            },
            ErrorKind::UnknownDevice,
            "\"bin-9\"",
        ),
        (
            "registry site differs",
            |t, e| {
                e.site_id = "site-b".into();
                *t = t.replace("site-a", "site-b");
            },
            ErrorKind::IdMismatch,
            "registered as bin at site \"site-a\"",
        ),
        (
            "NaN fill",
            |_, e| set_bin(e, |b| b.fill_level_pct = f64::NAN),
            ErrorKind::NonFiniteValue,
            "fill_level_pct is NaN",
        ),
        (
            "infinite tilt",
            |_, e| set_bin(e, |b| b.tilt_deg = f64::INFINITY),
            ErrorKind::NonFiniteValue,
            "tilt_deg is inf",
        ),
        (
            "fill > 100",
            |_, e| set_bin(e, |b| b.fill_level_pct = 100.5),
            ErrorKind::FillOutOfRange,
            "100.5 %",
        ),
        (
            "fill < 0",
            |_, e| set_bin(e, |b| b.fill_level_pct = -0.1),
            ErrorKind::FillOutOfRange,
            "-0.1 %",
        ),
        (
            "tilt > 180",
            |_, e| set_bin(e, |b| b.tilt_deg = 181.0),
            ErrorKind::ValueOutOfRange,
            "181 deg",
        ),
        (
            "hot bin beyond sensor",
            |_, e| set_bin(e, |b| b.temperature_deci_c = 3001),
            ErrorKind::ValueOutOfRange,
            "300.1 °C",
        ),
    ];
    for (name, mutate, kind, fragment) in cases {
        let mut env = envelope("bin-1", "site-a", DeviceKind::Bin, Body::BinReading(bin()));
        let mut topic = topic_of(&env, Channel::Telemetry);
        mutate(&mut topic, &mut env);
        let err = d
            .decode(&topic, &env.encode_to_vec(), None, NOW)
            .unwrap_err();
        assert_eq!(err.kind, kind, "{name}: {err}");
        assert!(
            err.detail.contains(fragment),
            "{name}: {err:?} should mention {fragment:?}"
        );
    }
}

fn set_bin(e: &mut pb::Envelope, f: impl Fn(&mut pb::BinReading)) {
    if let Some(Body::BinReading(b)) = e.body.as_mut() {
        f(b)
    }
}

#[test]
fn body_errors_name_the_field_and_value() {
    let d = decoder();
    type BodyCase = (
        &'static str,
        &'static str,
        DeviceKind,
        Body,
        ErrorKind,
        &'static str,
    );
    let mut neg = ticket();
    neg.tare_weight_kg = -5.0;
    let mut net = ticket();
    net.net_weight_kg = 15_900.0;
    let mut haz = ticket();
    haz.category = pb::WasteCategory::Hazardous as i32;
    haz.hazardous_waste_code = "900-249".into();
    let mut ctl = ticket();
    ctl.plate = "A\u{7}B".into();
    let mut long = ticket();
    long.operator_id = "x".repeat(129);
    let mut empty_ticket = ticket();
    empty_ticket.ticket_id.clear();
    let mut lat = fix();
    lat.latitude_deg = 91.0;
    let mut lon = fix();
    lon.longitude_deg = -180.5;
    let mut nan_lat = fix();
    nan_lat.latitude_deg = f64::NAN;
    let mut speed = fix();
    speed.speed_kmh = -1.0;
    let mut stock = storage();
    stock.stock_kg = -1.0;
    let mut lel = storage();
    lel.combustible_gas_pct_lel = Some(101.0);
    let mut o2 = storage();
    o2.oxygen_pct_vol = Some(f64::NAN);
    let mut st = status();
    st.kind = 0;
    let mut dbm = status();
    dbm.signal_dbm = Some(10);
    let cases: Vec<BodyCase> = vec![
        (
            "wb-1",
            "site-a",
            DeviceKind::Weighbridge,
            Body::WeighbridgeTicket(neg),
            ErrorKind::NegativeWeight,
            "tare_weight_kg is -5 kg",
        ),
        (
            "wb-1",
            "site-a",
            DeviceKind::Weighbridge,
            Body::WeighbridgeTicket(net),
            ErrorKind::NetWeightMismatch,
            "net_weight_kg 15900",
        ),
        (
            "wb-1",
            "site-a",
            DeviceKind::Weighbridge,
            Body::WeighbridgeTicket(haz),
            ErrorKind::InvalidWasteCode,
            "\"900-249\"",
        ),
        (
            "wb-1",
            "site-a",
            DeviceKind::Weighbridge,
            Body::WeighbridgeTicket(ctl),
            ErrorKind::InvalidText,
            "U+0007",
        ),
        (
            "wb-1",
            "site-a",
            DeviceKind::Weighbridge,
            Body::WeighbridgeTicket(long),
            ErrorKind::InvalidText,
            "129 bytes",
        ),
        (
            "wb-1",
            "site-a",
            DeviceKind::Weighbridge,
            Body::WeighbridgeTicket(empty_ticket),
            ErrorKind::InvalidText,
            "ticket_id is empty",
        ),
        (
            "tr-1",
            "site-a",
            DeviceKind::Truck,
            Body::TruckFix(lat),
            ErrorKind::InvalidCoordinate,
            "(91, 113.75)",
        ),
        (
            "tr-1",
            "site-a",
            DeviceKind::Truck,
            Body::TruckFix(lon),
            ErrorKind::InvalidCoordinate,
            "-180.5",
        ),
        (
            "tr-1",
            "site-a",
            DeviceKind::Truck,
            Body::TruckFix(nan_lat),
            ErrorKind::NonFiniteValue,
            "latitude_deg is NaN",
        ),
        (
            "tr-1",
            "site-a",
            DeviceKind::Truck,
            Body::TruckFix(speed),
            ErrorKind::ValueOutOfRange,
            "speed_kmh is -1 km/h",
        ),
        (
            "st-1",
            "site-b",
            DeviceKind::Storage,
            Body::StorageReading(stock),
            ErrorKind::NegativeWeight,
            "stock_kg is -1 kg",
        ),
        (
            "st-1",
            "site-b",
            DeviceKind::Storage,
            Body::StorageReading(lel),
            ErrorKind::ValueOutOfRange,
            "101 %LEL",
        ),
        (
            "st-1",
            "site-b",
            DeviceKind::Storage,
            Body::StorageReading(o2),
            ErrorKind::NonFiniteValue,
            "oxygen_pct_vol is NaN",
        ),
        (
            "st-1",
            "site-b",
            DeviceKind::Storage,
            Body::DeviceStatus(st),
            ErrorKind::ValueOutOfRange,
            "device_status.kind 0",
        ),
        (
            "st-1",
            "site-b",
            DeviceKind::Storage,
            Body::DeviceStatus(dbm),
            ErrorKind::ValueOutOfRange,
            "10 dBm",
        ),
    ];
    for (dev, site, kind, body, want, fragment) in cases {
        let ch = if matches!(body, Body::DeviceStatus(_)) {
            Channel::Status
        } else {
            Channel::Telemetry
        };
        let env = envelope(dev, site, kind, body);
        let err = d
            .decode(&topic_of(&env, ch), &env.encode_to_vec(), None, NOW)
            .unwrap_err();
        assert_eq!(err.kind, want, "{err}");
        assert!(
            err.detail.contains(fragment),
            "{err:?} should mention {fragment:?}"
        );
    }
}

#[test]
fn malformed_and_oversized_payloads_are_refused() {
    let d = decoder();
    let t = "wastewatch/v1/site-a/bin/bin-1/telemetry";
    let err = d.decode(t, &[0xff, 0xff, 0xff], None, NOW).unwrap_err();
    assert_eq!(err.kind, ErrorKind::MalformedProtobuf);
    assert!(err.detail.contains("3 bytes"), "{err}");
    let err = d
        .decode(t, b"{not json", Some("application/json"), NOW)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::MalformedJson);
    let err = d
        .decode(
            &format!("{t}/json"),
            br#"{"site_id":"site-a","colour":"red"}"#,
            None,
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::MalformedJson);
    assert!(err.detail.contains("colour"), "{err}");
    let big = vec![0u8; DEFAULT_MAX_PAYLOAD_BYTES + 1];
    let err = d.decode(t, &big, None, NOW).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PayloadTooLarge);
    assert!(err
        .detail
        .contains(&format!("{} bytes", DEFAULT_MAX_PAYLOAD_BYTES + 1)));
}

#[test]
fn json_with_two_bodies_or_unknown_enum_is_refused() {
    let d = decoder();
    let t = "wastewatch/v1/site-a/bin/bin-1/telemetry/json";
    let two = r#"{"site_id":"site-a","device_id":"bin-1","device_kind":"bin","seq":1,"recorded_at_unix_ms":1,"schema_version":1,"bin_reading":{},"truck_fix":{}}"#;
    assert_eq!(
        d.decode(t, two.as_bytes(), None, NOW).unwrap_err().kind,
        ErrorKind::MalformedJson
    );
    let kind = r#"{"site_id":"site-a","device_id":"bin-1","device_kind":"BIN","seq":1,"schema_version":1,"bin_reading":{}}"#;
    assert_eq!(
        d.decode(t, kind.as_bytes(), None, NOW).unwrap_err().kind,
        ErrorKind::UnknownKind
    );
}

#[test]
fn a_future_device_time_is_restamped_and_flagged() {
    let d = decoder();
    let mut env = envelope("bin-1", "site-a", DeviceKind::Bin, Body::BinReading(bin()));
    env.recorded_at_unix_ms = NOW + 3_600_000;
    let rec = d
        .decode(
            &topic_of(&env, Channel::Telemetry),
            &env.encode_to_vec(),
            None,
            NOW,
        )
        .unwrap();
    assert_eq!(rec.time_unix_ms, NOW);
    assert_eq!(rec.clock_check, pb::ClockCheck::FutureRestamped as i32);
    assert_eq!(
        rec.envelope.unwrap().recorded_at_unix_ms,
        NOW + 3_600_000,
        "device time is kept"
    );
}

// ---- property tests -------------------------------------------------------

fn finite(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    prop_oneof![lo..=hi, Just(lo), Just(hi), Just(0.0)]
}

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 豫·\\-\"\\\\,=]{0,20}"
}

fn arb_body() -> impl Strategy<Value = (&'static str, &'static str, DeviceKind, Channel, Body)> {
    let ticket = (
        finite(0.0, 60_000.0),
        finite(0.0, 20_000.0),
        0i32..18,
        0i32..8,
        0i32..3,
        text(),
        text(),
        any::<bool>(),
        0u32..7,
    )
        .prop_map(|(gross, tare, cat, dest, dir, plate, op, anpr, axles)| {
            let hazardous = cat == pb::WasteCategory::Hazardous as i32;
            (
                "wb-1",
                "site-a",
                DeviceKind::Weighbridge,
                Channel::Event,
                Body::WeighbridgeTicket(pb::WeighbridgeTicket {
                    ticket_id: format!("T{cat}"),
                    plate,
                    gross_weight_kg: gross.max(tare),
                    tare_weight_kg: tare,
                    net_weight_kg: gross.max(tare) - tare,
                    category: cat,
                    hazardous_waste_code: if hazardous {
                        "900-249-08".into()
                    } else {
                        String::new()
                    },
                    destination_type: dest,
                    direction: dir,
                    operator_id: op,
                    anpr_confirmed: anpr,
                    axle_count: axles,
                    ..Default::default()
                }),
            )
        });
    let bin = (
        finite(0.0, 100.0),
        -600i32..3000,
        finite(0.0, 180.0),
        0u32..5000,
        any::<bool>(),
    )
        .prop_map(|(fill, t, tilt, mv, fire)| {
            (
                "bin-1",
                "site-a",
                DeviceKind::Bin,
                Channel::Telemetry,
                Body::BinReading(pb::BinReading {
                    fill_level_pct: fill,
                    temperature_deci_c: t,
                    tilt_deg: tilt,
                    battery_mv: mv,
                    fire_flag: fire,
                    battery_low_flag: !fire,
                }),
            )
        });
    let storage = (
        finite(0.0, 100_000.0),
        0u64..400 * 86_400,
        prop::option::of(finite(0.0, 100.0)),
        prop::option::of(finite(0.0, 100.0)),
        any::<bool>(),
        prop::option::of(-600i32..600),
    )
        .prop_map(|(stock, age, lel, o2, leak, out)| {
            (
                "st-1",
                "site-b",
                DeviceKind::Storage,
                Channel::Telemetry,
                Body::StorageReading(pb::StorageReading {
                    stock_kg: stock,
                    oldest_container_age_s: age,
                    combustible_gas_pct_lel: lel,
                    oxygen_pct_vol: o2,
                    leak_detected: leak,
                    outside_temperature_deci_c: out,
                    ..Default::default()
                }),
            )
        });
    let truck = (
        finite(-90.0, 90.0),
        finite(-180.0, 180.0),
        finite(0.0, 120.0),
        finite(0.0, 359.9),
        finite(0.0, 50.0),
        any::<bool>(),
        prop::option::of(finite(0.0, 30_000.0)),
        text(),
    )
        .prop_map(|(lat, lon, speed, heading, acc, loaded, load, permit)| {
            (
                "tr-1",
                "site-a",
                DeviceKind::Truck,
                Channel::Telemetry,
                Body::TruckFix(pb::TruckFix {
                    latitude_deg: lat,
                    longitude_deg: lon,
                    speed_kmh: speed,
                    heading_deg: heading,
                    accuracy_m: acc,
                    loaded,
                    load_kg: load,
                    permit_id: permit,
                    plate: "豫AD1234".into(),
                    gnss_fix: true,
                    ..Default::default()
                }),
            )
        });
    let status = (1i32..4, text(), prop::option::of(-150i32..0), any::<u64>()).prop_map(
        |(k, fw, dbm, up)| {
            (
                "tr-1",
                "site-a",
                DeviceKind::Truck,
                Channel::Status,
                Body::DeviceStatus(pb::DeviceStatus {
                    kind: k,
                    firmware_version: fw,
                    battery_mv: 3000,
                    signal_dbm: dbm,
                    uptime_s: up,
                }),
            )
        },
    );
    prop_oneof![ticket, bin, storage, truck, status]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn json_and_protobuf_normalise_to_the_same_record(
        (dev, site, kind, ch, body) in arb_body(), seq in any::<u64>().prop_map(|s| s >> 1), dt in -10_000_000i64..10_000_000,
    ) {
        let d = decoder();
        let mut env = envelope(dev, site, kind, body);
        env.seq = seq;
        env.recorded_at_unix_ms = NOW + dt;
        let topic = topic_of(&env, ch);
        let from_pb = d.decode(&topic, &env.encode_to_vec(), None, NOW);
        let json = json::encode_json(&env);
        let from_json = d.decode(&topic, json.as_bytes(), Some("application/json"), NOW);
        let from_suffix = d.decode(&format!("{topic}/json"), json.as_bytes(), None, NOW);
        match (from_pb, from_json, from_suffix) {
            (Ok(a), Ok(mut b), Ok(mut c)) => {
                prop_assert!(b.from_json && c.from_json && !a.from_json);
                b.from_json = false;
                c.from_json = false;
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(&a, &c);
            }
            (Err(a), Err(b), Err(c)) => {
                prop_assert_eq!(a.kind, b.kind);
                prop_assert_eq!(a.kind, c.kind);
            }
            (a, b, c) => prop_assert!(false, "encodings disagree: {:?} / {:?} / {:?} for {}", a, b, c, json),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(topic in "wastewatch/v1/[a-z-]{0,8}/(bin|truck|x)/[a-z0-9-]{0,6}/(telemetry|status)(/json)?", payload in prop::collection::vec(any::<u8>(), 0..300), json in any::<bool>()) {
        let d = decoder();
        let ct = if json { Some("application/json") } else { None };
        let _ = d.decode(&topic, &payload, ct, NOW);
    }

    #[test]
    fn a_mutated_valid_message_never_panics((dev, site, kind, ch, body) in arb_body(), idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let d = decoder();
        let env = envelope(dev, site, kind, body);
        let topic = topic_of(&env, ch);
        let mut bytes = env.encode_to_vec();
        let i = idx.index(bytes.len());
        bytes[i] = byte;
        let _ = d.decode(&topic, &bytes, None, NOW);
        let mut j = json::encode_json(&env).into_bytes();
        let k = idx.index(j.len());
        j[k] = byte;
        let _ = d.decode(&topic, &j, Some("application/json"), NOW);
    }
}
