//! Normalised records → InfluxDB points, following `docs/SCHEMA.md`.
//!
//! One point per record; point time = the record's `time_unix_ms` (device
//! time unless re-stamped), so a redelivered message rewrites the same point.
//! Tags are low-cardinality and fixed per measurement (site, device and
//! enum-valued dimensions); every free text a device supplies (plate, ticket
//! id, operator, permit, firmware…) is a string field, escaped by
//! [`LineBuilder`]. Timestamps are written in milliseconds.

use super::line_protocol::{FieldValue as F, LineBuilder, LineError};
use crate::decode::topic::kind_segment;
use crate::pb::{self, envelope::Body};

/// Measurement of weighbridge tickets.
pub const M_TICKET: &str = "weighbridge_ticket";
/// Measurement of smart-bin readings.
pub const M_BIN: &str = "bin_reading";
/// Measurement of hazardous-storage readings.
pub const M_STORAGE: &str = "storage_reading";
/// Measurement of truck fixes.
pub const M_TRUCK: &str = "truck_fix";
/// Measurement of device status messages.
pub const M_STATUS: &str = "device_status";

/// JSON/tag name of an enum value: prefix stripped, lowercase (allocation-free
/// for the names prost generates, which are ASCII upper snake case).
fn enum_tag<'a>(name: &'a str, prefix: &str, scratch: &'a mut [u8; 64]) -> &'a str {
    let s = name.strip_prefix(prefix).unwrap_or(name);
    let n = s.len().min(scratch.len());
    for (d, c) in scratch.iter_mut().zip(s.bytes()) {
        *d = c.to_ascii_lowercase();
    }
    // Lower-casing ASCII keeps UTF-8 validity; prost names are ASCII.
    std::str::from_utf8(&scratch[..n]).unwrap_or("unknown")
}

fn clock_flag(rec: &pb::LogRecord) -> bool {
    rec.clock_check != pb::ClockCheck::Ok as i32
}

fn seq_i64(seq: u64) -> i64 {
    // Validation refuses seq > i64::MAX; saturate defensively.
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Appends the point of `rec` to `buf`. Returns the measurement written.
pub fn encode_record(rec: &pb::LogRecord, buf: &mut String) -> Result<&'static str, LineError> {
    let Some(env) = rec.envelope.as_ref() else {
        return Err(LineError::NoField);
    };
    let Some(body) = env.body.as_ref() else {
        return Err(LineError::NoField);
    };
    let ts = rec.time_unix_ms;
    let seq = F::I64(seq_i64(env.seq));
    let restamped = F::Bool(clock_flag(rec));
    let device_ms = F::I64(env.recorded_at_unix_ms);
    match body {
        Body::WeighbridgeTicket(t) => {
            let (mut a, mut b, mut c) = ([0u8; 64], [0u8; 64], [0u8; 64]);
            let cat = pb::WasteCategory::try_from(t.category).unwrap_or_default();
            let dest = pb::DestinationType::try_from(t.destination_type).unwrap_or_default();
            let dir = pb::Direction::try_from(t.direction).unwrap_or_default();
            LineBuilder::new(buf, M_TICKET)
                .tag("site", &env.site_id)
                .tag("device", &env.device_id)
                .tag(
                    "category",
                    enum_tag(cat.as_str_name(), "WASTE_CATEGORY_", &mut a),
                )
                .tag(
                    "destination_type",
                    enum_tag(dest.as_str_name(), "DESTINATION_TYPE_", &mut b),
                )
                .tag(
                    "direction",
                    enum_tag(dir.as_str_name(), "DIRECTION_", &mut c),
                )
                .field("gross_kg", F::F64(t.gross_weight_kg))
                .field("tare_kg", F::F64(t.tare_weight_kg))
                .field("net_kg", F::F64(t.net_weight_kg))
                .field("ticket_id", F::Str(&t.ticket_id))
                .field("plate", F::Str(&t.plate))
                .field("hazardous_code", F::Str(&t.hazardous_waste_code))
                .field("catalogue_edition", F::Str(&t.catalogue_edition))
                .field("origin_site", F::Str(&t.origin_site_id))
                .field("destination_site", F::Str(&t.destination_site_id))
                .field("operator", F::Str(&t.operator_id))
                .field("permit_id", F::Str(&t.permit_id))
                .field("anpr_confirmed", F::Bool(t.anpr_confirmed))
                .field("axle_count", F::I64(i64::from(t.axle_count)))
                .field("weighed_in_ms", F::I64(t.weighed_in_at_unix_ms))
                .field("weighed_out_ms", F::I64(t.weighed_out_at_unix_ms))
                .field("seq", seq)
                .field("device_time_ms", device_ms)
                .field("clock_restamped", restamped)
                .finish(ts)?;
            Ok(M_TICKET)
        }
        Body::BinReading(r) => {
            LineBuilder::new(buf, M_BIN)
                .tag("site", &env.site_id)
                .tag("device", &env.device_id)
                .field("fill_pct", F::F64(r.fill_level_pct))
                .field(
                    "temperature_c",
                    F::F64(f64::from(r.temperature_deci_c) / 10.0),
                )
                .field("tilt_deg", F::F64(r.tilt_deg))
                .field("battery_v", F::F64(f64::from(r.battery_mv) / 1000.0))
                .field("fire_flag", F::Bool(r.fire_flag))
                .field("battery_low", F::Bool(r.battery_low_flag))
                .field("seq", seq)
                .field("device_time_ms", device_ms)
                .field("clock_restamped", restamped)
                .finish(ts)?;
            Ok(M_BIN)
        }
        Body::StorageReading(r) => {
            LineBuilder::new(buf, M_STORAGE)
                .tag("site", &env.site_id)
                .tag("device", &env.device_id)
                .field("stock_kg", F::F64(r.stock_kg))
                .field(
                    "oldest_container_age_d",
                    F::F64(r.oldest_container_age_s as f64 / 86_400.0),
                )
                .field(
                    "temperature_c",
                    F::F64(f64::from(r.temperature_deci_c) / 10.0),
                )
                .field_opt_f64("combustible_gas_pct_lel", r.combustible_gas_pct_lel)
                .field_opt_f64("toxic_gas_pct_of_limit", r.toxic_gas_pct_of_limit)
                .field_opt_f64("oxygen_pct_vol", r.oxygen_pct_vol)
                .field_opt_f64(
                    "oldest_medical_lot_age_h",
                    r.oldest_medical_lot_age_s.map(|s| s as f64 / 3600.0),
                )
                .field_opt_f64(
                    "outside_temperature_c",
                    r.outside_temperature_deci_c.map(|d| f64::from(d) / 10.0),
                )
                .field("leak", F::Bool(r.leak_detected))
                .field("door_open", F::Bool(r.door_open))
                .field("container_count", F::I64(i64::from(r.container_count)))
                .field("battery_v", F::F64(f64::from(r.battery_mv) / 1000.0))
                .field("seq", seq)
                .field("device_time_ms", device_ms)
                .field("clock_restamped", restamped)
                .finish(ts)?;
            Ok(M_STORAGE)
        }
        Body::TruckFix(f) => {
            LineBuilder::new(buf, M_TRUCK)
                .tag("site", &env.site_id)
                .tag("device", &env.device_id)
                .field("lat", F::F64(f.latitude_deg))
                .field("lon", F::F64(f.longitude_deg))
                .field("speed_kmh", F::F64(f.speed_kmh))
                .field("heading_deg", F::F64(f.heading_deg))
                .field("accuracy_m", F::F64(f.accuracy_m))
                .field("loaded", F::Bool(f.loaded))
                .field("cover_closed", F::Bool(f.cover_closed))
                .field("body_lifted", F::Bool(f.body_lifted))
                .field("ignition_on", F::Bool(f.ignition_on))
                .field("gnss_fix", F::Bool(f.gnss_fix))
                .field("satellites", F::I64(i64::from(f.satellites)))
                .field("alarm_bits", F::I64(i64::from(f.terminal_alarm_bits)))
                .field_opt_f64("load_kg", f.load_kg)
                .field("plate", F::Str(&f.plate))
                .field("permit_id", F::Str(&f.permit_id))
                .field("seq", seq)
                .field("device_time_ms", device_ms)
                .field("clock_restamped", restamped)
                .finish(ts)?;
            Ok(M_TRUCK)
        }
        Body::DeviceStatus(s) => {
            let mut a = [0u8; 64];
            let kind = pb::StatusKind::try_from(s.kind).unwrap_or_default();
            let dk = pb::DeviceKind::try_from(env.device_kind).unwrap_or_default();
            let b = LineBuilder::new(buf, M_STATUS)
                .tag("site", &env.site_id)
                .tag("device", &env.device_id)
                .tag("device_kind", kind_segment(dk))
                .tag(
                    "status",
                    enum_tag(kind.as_str_name(), "STATUS_KIND_", &mut a),
                )
                .field("firmware", F::Str(&s.firmware_version))
                .field("battery_v", F::F64(f64::from(s.battery_mv) / 1000.0))
                .field(
                    "uptime_s",
                    F::I64(i64::try_from(s.uptime_s).unwrap_or(i64::MAX)),
                );
            let b = match s.signal_dbm {
                Some(d) => b.field("signal_dbm", F::I64(i64::from(d))),
                None => b,
            };
            b.field("seq", seq)
                .field("device_time_ms", device_ms)
                .field("clock_restamped", restamped)
                .finish(ts)?;
            Ok(M_STATUS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::line_protocol::tests::{oracle_parse, OField};
    use proptest::prelude::*;

    fn rec(body: Body, kind: pb::DeviceKind) -> pb::LogRecord {
        pb::LogRecord {
            envelope: Some(pb::Envelope {
                site_id: "site-a".into(),
                device_id: "dev-1".into(),
                device_kind: kind as i32,
                seq: 9,
                recorded_at_unix_ms: 1_700_000_000_123,
                schema_version: 1,
                body: Some(body),
            }),
            received_at_unix_ms: 1_700_000_000_500,
            time_unix_ms: 1_700_000_000_123,
            clock_check: 0,
            from_json: false,
        }
    }

    fn field<'a>(p: &'a crate::sink::line_protocol::tests::Parsed, k: &str) -> &'a OField {
        &p.fields
            .iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("no field {k}"))
            .1
    }

    #[test]
    fn a_bin_reading_becomes_one_point_with_si_units() {
        let mut buf = String::new();
        let b = pb::BinReading {
            fill_level_pct: 81.5,
            temperature_deci_c: -35,
            tilt_deg: 3.0,
            battery_mv: 3650,
            fire_flag: false,
            battery_low_flag: true,
        };
        assert_eq!(
            encode_record(&rec(Body::BinReading(b), pb::DeviceKind::Bin), &mut buf),
            Ok(M_BIN)
        );
        let p = &oracle_parse(&buf).unwrap()[0];
        assert_eq!(p.measurement, "bin_reading");
        assert_eq!(
            p.tags,
            vec![
                ("site".into(), "site-a".into()),
                ("device".into(), "dev-1".into())
            ]
        );
        assert_eq!(field(p, "fill_pct"), &OField::F(81.5));
        assert_eq!(field(p, "temperature_c"), &OField::F(-3.5));
        assert_eq!(field(p, "battery_v"), &OField::F(3.65));
        assert_eq!(field(p, "battery_low"), &OField::B(true));
        assert_eq!(field(p, "seq"), &OField::I(9));
        assert_eq!(p.timestamp, 1_700_000_000_123);
    }

    #[test]
    fn ticket_enums_become_lowercase_tags() {
        let mut buf = String::new();
        let t = pb::WeighbridgeTicket {
            ticket_id: "T1".into(),
            category: pb::WasteCategory::ConstructionDemolition as i32,
            destination_type: pb::DestinationType::LicensedHazardous as i32,
            direction: pb::Direction::Out as i32,
            net_weight_kg: 5.0,
            gross_weight_kg: 5.0,
            ..Default::default()
        };
        encode_record(
            &rec(Body::WeighbridgeTicket(t), pb::DeviceKind::Weighbridge),
            &mut buf,
        )
        .unwrap();
        let p = &oracle_parse(&buf).unwrap()[0];
        assert!(p
            .tags
            .contains(&("category".into(), "construction_demolition".into())));
        assert!(p
            .tags
            .contains(&("destination_type".into(), "licensed_hazardous".into())));
        assert!(p.tags.contains(&("direction".into(), "out".into())));
    }

    #[test]
    fn absent_optional_sensors_write_no_field() {
        let mut buf = String::new();
        encode_record(
            &rec(
                Body::StorageReading(pb::StorageReading::default()),
                pb::DeviceKind::Storage,
            ),
            &mut buf,
        )
        .unwrap();
        let p = &oracle_parse(&buf).unwrap()[0];
        assert!(!p
            .fields
            .iter()
            .any(|(k, _)| k == "oxygen_pct_vol" || k == "combustible_gas_pct_lel"));
    }

    /// One record of every kind with every field set, for the golden test.
    fn golden_records() -> Vec<pb::LogRecord> {
        let ticket = pb::WeighbridgeTicket {
            ticket_id: "RC-20261128-0117".into(),
            plate: "豫AD1234".into(),
            gross_weight_kg: 31_250.0,
            tare_weight_kg: 14_100.5,
            net_weight_kg: 17_149.5,
            category: pb::WasteCategory::Hazardous as i32,
            hazardous_waste_code: "900-249-08".into(),
            catalogue_edition: "2025".into(),
            origin_site_id: "cs-a".into(),
            destination_site_id: "rp-b".into(),
            destination_type: pb::DestinationType::Recycling as i32,
            direction: pb::Direction::In as i32,
            weighed_in_at_unix_ms: 1_699_999_940_000,
            weighed_out_at_unix_ms: 1_700_000_000_000,
            operator_id: "op 07, \"night\"".into(),
            anpr_confirmed: true,
            axle_count: 3,
            permit_id: "permit-2026-0001".into(),
        };
        let storage = pb::StorageReading {
            stock_kg: 2450.25,
            oldest_container_age_s: 25_920_000,
            temperature_deci_c: -263,
            combustible_gas_pct_lel: Some(3.0),
            toxic_gas_pct_of_limit: Some(0.000_001),
            oxygen_pct_vol: Some(20.8),
            oldest_medical_lot_age_s: Some(7_200),
            outside_temperature_deci_c: Some(-51),
            leak_detected: true,
            door_open: false,
            container_count: 14,
            battery_mv: 3_601,
        };
        let truck = pb::TruckFix {
            latitude_deg: 34.741_234_567,
            longitude_deg: -113.7805,
            speed_kmh: 1e-7,
            heading_deg: 359.999_999_9,
            accuracy_m: 4.5,
            loaded: true,
            cover_closed: true,
            body_lifted: false,
            ignition_on: true,
            gnss_fix: true,
            satellites: 12,
            terminal_alarm_bits: 0x8001,
            load_kg: Some(17_150.0),
            plate: "ABC123".into(),
            permit_id: "p=1 x".into(),
        };
        let status = pb::DeviceStatus {
            kind: pb::StatusKind::LastWill as i32,
            firmware_version: "2.4.1-rc\\".into(),
            battery_mv: 3_580,
            signal_dbm: Some(-87),
            uptime_s: 86_400,
        };
        let mut out = vec![
            rec(Body::WeighbridgeTicket(ticket), pb::DeviceKind::Weighbridge),
            rec(
                Body::BinReading(pb::BinReading {
                    fill_level_pct: 82.5,
                    temperature_deci_c: 214,
                    tilt_deg: 1.5,
                    battery_mv: 3580,
                    fire_flag: true,
                    battery_low_flag: false,
                }),
                pb::DeviceKind::Bin,
            ),
            rec(Body::StorageReading(storage), pb::DeviceKind::Storage),
            rec(Body::TruckFix(truck), pb::DeviceKind::Truck),
            rec(Body::DeviceStatus(status), pb::DeviceKind::Bin),
        ];
        // A re-stamped record with odd ids, which are escaped as tag values.
        out[1].clock_check = pb::ClockCheck::FutureRestamped as i32;
        if let Some(e) = out[1].envelope.as_mut() {
            e.site_id = "site a,b".into();
            e.device_id = "dev=1\\".into();
        }
        out
    }

    #[test]
    fn every_kind_encodes_to_exactly_the_documented_line() {
        let want = [
            r#"weighbridge_ticket,site=site-a,device=dev-1,category=hazardous,destination_type=recycling,direction=in gross_kg=31250.0,tare_kg=14100.5,net_kg=17149.5,ticket_id="RC-20261128-0117",plate="豫AD1234",hazardous_code="900-249-08",catalogue_edition="2025",origin_site="cs-a",destination_site="rp-b",operator="op 07, \"night\"",permit_id="permit-2026-0001",anpr_confirmed=true,axle_count=3i,weighed_in_ms=1699999940000i,weighed_out_ms=1700000000000i,seq=9i,device_time_ms=1700000000123i,clock_restamped=false 1700000000123"#,
            r#"bin_reading,site=site\ a\,b,device=dev\=1\\ fill_pct=82.5,temperature_c=21.4,tilt_deg=1.5,battery_v=3.58,fire_flag=true,battery_low=false,seq=9i,device_time_ms=1700000000123i,clock_restamped=true 1700000000123"#,
            r#"storage_reading,site=site-a,device=dev-1 stock_kg=2450.25,oldest_container_age_d=300.0,temperature_c=-26.3,combustible_gas_pct_lel=3.0,toxic_gas_pct_of_limit=0.000001,oxygen_pct_vol=20.8,oldest_medical_lot_age_h=2.0,outside_temperature_c=-5.1,leak=true,door_open=false,container_count=14i,battery_v=3.601,seq=9i,device_time_ms=1700000000123i,clock_restamped=false 1700000000123"#,
            r#"truck_fix,site=site-a,device=dev-1 lat=34.741234567,lon=-113.7805,speed_kmh=1e-7,heading_deg=359.9999999,accuracy_m=4.5,loaded=true,cover_closed=true,body_lifted=false,ignition_on=true,gnss_fix=true,satellites=12i,alarm_bits=32769i,load_kg=17150.0,plate="ABC123",permit_id="p=1 x",seq=9i,device_time_ms=1700000000123i,clock_restamped=false 1700000000123"#,
            r#"device_status,site=site-a,device=dev-1,device_kind=bin,status=last_will firmware="2.4.1-rc\\",battery_v=3.58,uptime_s=86400i,signal_dbm=-87i,seq=9i,device_time_ms=1700000000123i,clock_restamped=false 1700000000123"#,
        ];
        let mut buf = String::new();
        for r in golden_records() {
            encode_record(&r, &mut buf).unwrap();
        }
        let got: Vec<&str> = buf.lines().collect();
        assert_eq!(got, want);
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(vec![',', '=', ' ', '"', '\\', '#', 'a', '豫']),
                1 => any::<char>().prop_filter("no breaks", |c| *c != '\n' && *c != '\r'),
            ],
            0..16,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn device_strings_cannot_add_tags_fields_points_or_lines(
            site in any_text(), device in any_text(), plate in any_text(), ticket in any_text(),
            op in any_text(), permit in any_text(), origin in any_text(), code in any_text(),
        ) {
            let t = pb::WeighbridgeTicket {
                ticket_id: ticket.clone(), plate: plate.clone(), operator_id: op.clone(), permit_id: permit.clone(),
                origin_site_id: origin.clone(), hazardous_waste_code: code.clone(), ..Default::default()
            };
            let mut r = rec(Body::WeighbridgeTicket(t), pb::DeviceKind::Weighbridge);
            if let Some(e) = r.envelope.as_mut() { e.site_id = site.clone(); e.device_id = device.clone(); }
            let mut buf = String::new();
            encode_record(&r, &mut buf).unwrap();
            prop_assert_eq!(buf.matches('\n').count(), 1);
            let parsed = oracle_parse(&buf).map_err(TestCaseError::fail)?;
            prop_assert_eq!(parsed.len(), 1);
            let p = &parsed[0];
            // Three enum tags always present; site and device only when non-empty.
            let want_tags = 3 + usize::from(!site.is_empty()) + usize::from(!device.is_empty());
            prop_assert_eq!(p.tags.len(), want_tags);
            prop_assert_eq!(p.fields.len(), 18);
            if !site.is_empty() { prop_assert!(p.tags.contains(&("site".to_owned(), site.clone()))); }
            if !device.is_empty() { prop_assert!(p.tags.contains(&("device".to_owned(), device.clone()))); }
            prop_assert_eq!(field(p, "plate"), &OField::S(plate));
            prop_assert_eq!(field(p, "ticket_id"), &OField::S(ticket));
            prop_assert_eq!(field(p, "operator"), &OField::S(op));
            prop_assert_eq!(field(p, "permit_id"), &OField::S(permit));
            prop_assert_eq!(field(p, "origin_site"), &OField::S(origin));
            prop_assert_eq!(field(p, "hazardous_code"), &OField::S(code));
        }
    }
}
