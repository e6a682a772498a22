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
