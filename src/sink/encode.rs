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
/// Measurement of alert state changes.
pub const M_ALERT: &str = "alert";

/// Measurements as compile-time-checked names (copied, never scanned).
mod measurement {
    use crate::sink::line_protocol::Measurement;
    pub const TICKET: Measurement = Measurement::new(super::M_TICKET);
    pub const BIN: Measurement = Measurement::new(super::M_BIN);
    pub const STORAGE: Measurement = Measurement::new(super::M_STORAGE);
    pub const TRUCK: Measurement = Measurement::new(super::M_TRUCK);
    pub const STATUS: Measurement = Measurement::new(super::M_STATUS);
    pub const ALERT: Measurement = Measurement::new(super::M_ALERT);
}

/// Tag and field keys of `docs/SCHEMA.md`, checked when the crate compiles
/// to need no escaping, so they are copied without a per-message scan.
mod k {
    use crate::sink::line_protocol::Key;
    pub const SITE: Key = Key::new("site");
    pub const RULE: Key = Key::new("rule");
    pub const SEVERITY: Key = Key::new("severity");
    pub const STATE: Key = Key::new("state");
    pub const ID: Key = Key::new("id");
    pub const ALERT_ID: Key = Key::new("alert_id");
    pub const ENTITY: Key = Key::new("entity");
    pub const VALUE: Key = Key::new("value");
    pub const THRESHOLD: Key = Key::new("threshold");
    pub const FROM_STATE: Key = Key::new("from_state");
    pub const REASON: Key = Key::new("reason");
    pub const MESSAGE: Key = Key::new("message");
    pub const ACKNOWLEDGED_BY: Key = Key::new("acknowledged_by");
    pub const FIRING: Key = Key::new("firing");
    pub const DEVICE: Key = Key::new("device");
    pub const CATEGORY: Key = Key::new("category");
    pub const DESTINATION_TYPE: Key = Key::new("destination_type");
    pub const DIRECTION: Key = Key::new("direction");
    pub const GROSS_KG: Key = Key::new("gross_kg");
    pub const TARE_KG: Key = Key::new("tare_kg");
    pub const NET_KG: Key = Key::new("net_kg");
    pub const TICKET_ID: Key = Key::new("ticket_id");
    pub const PLATE: Key = Key::new("plate");
    pub const HAZARDOUS_CODE: Key = Key::new("hazardous_code");
    pub const CATALOGUE_EDITION: Key = Key::new("catalogue_edition");
    pub const ORIGIN_SITE: Key = Key::new("origin_site");
    pub const DESTINATION_SITE: Key = Key::new("destination_site");
    pub const OPERATOR: Key = Key::new("operator");
    pub const PERMIT_ID: Key = Key::new("permit_id");
    pub const ANPR_CONFIRMED: Key = Key::new("anpr_confirmed");
    pub const AXLE_COUNT: Key = Key::new("axle_count");
    pub const WEIGHED_IN_MS: Key = Key::new("weighed_in_ms");
    pub const WEIGHED_OUT_MS: Key = Key::new("weighed_out_ms");
    pub const SEQ: Key = Key::new("seq");
    pub const DEVICE_TIME_MS: Key = Key::new("device_time_ms");
    pub const CLOCK_RESTAMPED: Key = Key::new("clock_restamped");
    pub const CLOCK: Key = Key::new("clock");
    pub const FILL_PCT: Key = Key::new("fill_pct");
    pub const TEMPERATURE_C: Key = Key::new("temperature_c");
    pub const TILT_DEG: Key = Key::new("tilt_deg");
    pub const BATTERY_V: Key = Key::new("battery_v");
    pub const FIRE_FLAG: Key = Key::new("fire_flag");
    pub const BATTERY_LOW: Key = Key::new("battery_low");
    pub const STOCK_KG: Key = Key::new("stock_kg");
    pub const OLDEST_CONTAINER_AGE_D: Key = Key::new("oldest_container_age_d");
    pub const COMBUSTIBLE_GAS_PCT_LEL: Key = Key::new("combustible_gas_pct_lel");
    pub const TOXIC_GAS_PCT_OF_LIMIT: Key = Key::new("toxic_gas_pct_of_limit");
    pub const OXYGEN_PCT_VOL: Key = Key::new("oxygen_pct_vol");
    pub const OLDEST_MEDICAL_LOT_AGE_H: Key = Key::new("oldest_medical_lot_age_h");
    pub const OUTSIDE_TEMPERATURE_C: Key = Key::new("outside_temperature_c");
    pub const LEAK: Key = Key::new("leak");
    pub const DOOR_OPEN: Key = Key::new("door_open");
    pub const CONTAINER_COUNT: Key = Key::new("container_count");
    pub const LAT: Key = Key::new("lat");
    pub const LON: Key = Key::new("lon");
    pub const SPEED_KMH: Key = Key::new("speed_kmh");
    pub const HEADING_DEG: Key = Key::new("heading_deg");
    pub const ACCURACY_M: Key = Key::new("accuracy_m");
    pub const LOADED: Key = Key::new("loaded");
    pub const COVER_CLOSED: Key = Key::new("cover_closed");
    pub const BODY_LIFTED: Key = Key::new("body_lifted");
    pub const IGNITION_ON: Key = Key::new("ignition_on");
    pub const GNSS_FIX: Key = Key::new("gnss_fix");
    pub const SATELLITES: Key = Key::new("satellites");
    pub const ALARM_BITS: Key = Key::new("alarm_bits");
    pub const LOAD_KG: Key = Key::new("load_kg");
    pub const ALTITUDE_M: Key = Key::new("altitude_m");
    pub const ODOMETER_KM: Key = Key::new("odometer_km");
    pub const DEVICE_KIND: Key = Key::new("device_kind");
    pub const STATUS: Key = Key::new("status");
    pub const FIRMWARE: Key = Key::new("firmware");
    pub const UPTIME_S: Key = Key::new("uptime_s");
    pub const SIGNAL_DBM: Key = Key::new("signal_dbm");
}

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

/// The `clock` tag: `restamped` on a re-stamped point, absent otherwise.
/// A re-stamped point's time is a receive time, which can equal the device
/// time of one of the same device's trusted readings; in a series of its
/// own it can never overwrite one (the restamper keeps re-stamped times
/// distinct within that series, src/ingest/restamp.rs).
fn clock_tag(rec: &pb::LogRecord) -> &'static str {
    if clock_flag(rec) {
        "restamped"
    } else {
        ""
    }
}

fn seq_i64(seq: u64) -> i64 {
    // Validation refuses seq > i64::MAX; saturate defensively.
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Appends the point of one alert state change. Tags are only values the
/// service itself defines (rule, severity, state, registry site, alert id);
/// the entity and the message, which come from device text, are string
/// fields, so no device-supplied byte can break or split a tag. The alert
/// id tag keeps two alerts changing state in the same millisecond apart,
/// and makes a replayed change rewrite the same point.
pub fn encode_alert(a: &pb::AlertRecord, buf: &mut String) -> Result<(), LineError> {
    let mut id = itoa::Buffer::new();
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    LineBuilder::with_measurement(buf, measurement::ALERT)
        .tag_key(k::RULE, &a.rule)
        .tag_key(k::SEVERITY, &a.severity)
        .tag_key(k::STATE, &a.state)
        .tag_key(k::SITE, &a.site_id)
        .tag_key(k::ID, id.format(a.alert_id))
        .field_key(
            k::ALERT_ID,
            F::I64(i64::try_from(a.alert_id).unwrap_or(i64::MAX)),
        )
        .field_key(k::ENTITY, F::Str(&a.entity))
        .field_key(k::VALUE, F::F64(finite(a.value)))
        .field_key(k::THRESHOLD, F::F64(finite(a.threshold)))
        .field_key(k::FROM_STATE, F::Str(&a.from_state))
        .field_key(k::REASON, F::Str(&a.reason))
        .field_key(k::MESSAGE, F::Str(&a.message))
        .field_key(k::ACKNOWLEDGED_BY, F::Str(&a.acknowledged_by))
        .field_key(
            k::FIRING,
            F::Bool(matches!(a.state.as_str(), "firing" | "acknowledged")),
        )
        .finish(a.at_unix_ms)
}

/// Appends the point of `rec` to `buf`. Returns the measurement written.
pub fn encode_record(rec: &pb::LogRecord, buf: &mut String) -> Result<&'static str, LineError> {
    let Some(env) = rec.envelope.as_ref() else {
        return match (&rec.alert, &rec.kpi) {
            (Some(a), _) => encode_alert(a, buf).map(|()| M_ALERT),
            (None, Some(k)) => crate::kpi::point::encode(k, buf).map(|()| crate::kpi::point::M_KPI),
            (None, None) => Err(LineError::NoField),
        };
    };
    let Some(body) = env.body.as_ref() else {
        return Err(LineError::NoField);
    };
    let ts = rec.time_unix_ms;
    let seq = F::I64(seq_i64(env.seq));
    let restamped = F::Bool(clock_flag(rec));
    let clock = clock_tag(rec);
    let device_ms = F::I64(env.recorded_at_unix_ms);
    match body {
        Body::WeighbridgeTicket(t) => {
            let (mut a, mut b, mut c) = ([0u8; 64], [0u8; 64], [0u8; 64]);
            let cat = pb::WasteCategory::try_from(t.category).unwrap_or_default();
            let dest = pb::DestinationType::try_from(t.destination_type).unwrap_or_default();
            let dir = pb::Direction::try_from(t.direction).unwrap_or_default();
            LineBuilder::with_measurement(buf, measurement::TICKET)
                .tag_key(k::SITE, &env.site_id)
                .tag_key(k::DEVICE, &env.device_id)
                .tag_key(
                    k::CATEGORY,
                    enum_tag(cat.as_str_name(), "WASTE_CATEGORY_", &mut a),
                )
                .tag_key(
                    k::DESTINATION_TYPE,
                    enum_tag(dest.as_str_name(), "DESTINATION_TYPE_", &mut b),
                )
                .tag_key(
                    k::DIRECTION,
                    enum_tag(dir.as_str_name(), "DIRECTION_", &mut c),
                )
                .tag_key(k::CLOCK, clock)
                .field_key(k::GROSS_KG, F::F64(t.gross_weight_kg))
                .field_key(k::TARE_KG, F::F64(t.tare_weight_kg))
                .field_key(k::NET_KG, F::F64(t.net_weight_kg))
                .field_key(k::TICKET_ID, F::Str(&t.ticket_id))
                .field_key(k::PLATE, F::Str(&t.plate))
                .field_key(k::HAZARDOUS_CODE, F::Str(&t.hazardous_waste_code))
                .field_key(k::CATALOGUE_EDITION, F::Str(&t.catalogue_edition))
                .field_key(k::ORIGIN_SITE, F::Str(&t.origin_site_id))
                .field_key(k::DESTINATION_SITE, F::Str(&t.destination_site_id))
                .field_key(k::OPERATOR, F::Str(&t.operator_id))
                .field_key(k::PERMIT_ID, F::Str(&t.permit_id))
                .field_key(k::ANPR_CONFIRMED, F::Bool(t.anpr_confirmed))
                .field_key(k::AXLE_COUNT, F::I64(i64::from(t.axle_count)))
                .field_key(k::WEIGHED_IN_MS, F::I64(t.weighed_in_at_unix_ms))
                .field_key(k::WEIGHED_OUT_MS, F::I64(t.weighed_out_at_unix_ms))
                .field_key(k::SEQ, seq)
                .field_key(k::DEVICE_TIME_MS, device_ms)
                .field_key(k::CLOCK_RESTAMPED, restamped)
                .finish(ts)?;
            Ok(M_TICKET)
        }
        Body::BinReading(r) => {
            LineBuilder::with_measurement(buf, measurement::BIN)
                .tag_key(k::SITE, &env.site_id)
                .tag_key(k::DEVICE, &env.device_id)
                .tag_key(k::CLOCK, clock)
                .field_key(k::FILL_PCT, F::F64(r.fill_level_pct))
                .field_key(
                    k::TEMPERATURE_C,
                    F::F64(f64::from(r.temperature_deci_c) / 10.0),
                )
                .field_key(k::TILT_DEG, F::F64(r.tilt_deg))
                .field_key(k::BATTERY_V, F::F64(f64::from(r.battery_mv) / 1000.0))
                .field_key(k::FIRE_FLAG, F::Bool(r.fire_flag))
                .field_key(k::BATTERY_LOW, F::Bool(r.battery_low_flag))
                .field_key(k::SEQ, seq)
                .field_key(k::DEVICE_TIME_MS, device_ms)
                .field_key(k::CLOCK_RESTAMPED, restamped)
                .finish(ts)?;
            Ok(M_BIN)
        }
        Body::StorageReading(r) => {
            LineBuilder::with_measurement(buf, measurement::STORAGE)
                .tag_key(k::SITE, &env.site_id)
                .tag_key(k::DEVICE, &env.device_id)
                .tag_key(k::CLOCK, clock)
                .field_key(k::STOCK_KG, F::F64(r.stock_kg))
                .field_key(
                    k::OLDEST_CONTAINER_AGE_D,
                    F::F64(r.oldest_container_age_s as f64 / 86_400.0),
                )
                .field_key(
                    k::TEMPERATURE_C,
                    F::F64(f64::from(r.temperature_deci_c) / 10.0),
                )
                .field_key_opt_f64(k::COMBUSTIBLE_GAS_PCT_LEL, r.combustible_gas_pct_lel)
                .field_key_opt_f64(k::TOXIC_GAS_PCT_OF_LIMIT, r.toxic_gas_pct_of_limit)
                .field_key_opt_f64(k::OXYGEN_PCT_VOL, r.oxygen_pct_vol)
                .field_key_opt_f64(
                    k::OLDEST_MEDICAL_LOT_AGE_H,
                    r.oldest_medical_lot_age_s.map(|s| s as f64 / 3600.0),
                )
                .field_key_opt_f64(
                    k::OUTSIDE_TEMPERATURE_C,
                    r.outside_temperature_deci_c.map(|d| f64::from(d) / 10.0),
                )
                .field_key(k::LEAK, F::Bool(r.leak_detected))
                .field_key(k::DOOR_OPEN, F::Bool(r.door_open))
                .field_key(k::CONTAINER_COUNT, F::I64(i64::from(r.container_count)))
                .field_key(k::BATTERY_V, F::F64(f64::from(r.battery_mv) / 1000.0))
                .field_key(k::SEQ, seq)
                .field_key(k::DEVICE_TIME_MS, device_ms)
                .field_key(k::CLOCK_RESTAMPED, restamped)
                .finish(ts)?;
            Ok(M_STORAGE)
        }
        Body::TruckFix(f) => {
            LineBuilder::with_measurement(buf, measurement::TRUCK)
                .tag_key(k::SITE, &env.site_id)
                .tag_key(k::DEVICE, &env.device_id)
                .tag_key(k::CLOCK, clock)
                .field_key(k::LAT, F::F64(f.latitude_deg))
                .field_key(k::LON, F::F64(f.longitude_deg))
                .field_key(k::SPEED_KMH, F::F64(f.speed_kmh))
                .field_key(k::HEADING_DEG, F::F64(f.heading_deg))
                .field_key(k::ACCURACY_M, F::F64(f.accuracy_m))
                .field_key(k::LOADED, F::Bool(f.loaded))
                .field_key(k::COVER_CLOSED, F::Bool(f.cover_closed))
                .field_key(k::BODY_LIFTED, F::Bool(f.body_lifted))
                .field_key(k::IGNITION_ON, F::Bool(f.ignition_on))
                .field_key(k::GNSS_FIX, F::Bool(f.gnss_fix))
                .field_key(k::SATELLITES, F::I64(i64::from(f.satellites)))
                .field_key(k::ALARM_BITS, F::I64(i64::from(f.terminal_alarm_bits)))
                .field_key_opt_f64(k::LOAD_KG, f.load_kg)
                .field_key_opt_f64(k::ALTITUDE_M, f.altitude_m)
                .field_key_opt_f64(k::ODOMETER_KM, f.odometer_km)
                .field_key(k::PLATE, F::Str(&f.plate))
                .field_key(k::PERMIT_ID, F::Str(&f.permit_id))
                .field_key(k::SEQ, seq)
                .field_key(k::DEVICE_TIME_MS, device_ms)
                .field_key(k::CLOCK_RESTAMPED, restamped)
                .finish(ts)?;
            Ok(M_TRUCK)
        }
        Body::DeviceStatus(s) => {
            let mut a = [0u8; 64];
            let kind = pb::StatusKind::try_from(s.kind).unwrap_or_default();
            let dk = pb::DeviceKind::try_from(env.device_kind).unwrap_or_default();
            let b = LineBuilder::with_measurement(buf, measurement::STATUS)
                .tag_key(k::SITE, &env.site_id)
                .tag_key(k::DEVICE, &env.device_id)
                .tag_key(k::DEVICE_KIND, kind_segment(dk))
                .tag_key(
                    k::STATUS,
                    enum_tag(kind.as_str_name(), "STATUS_KIND_", &mut a),
                )
                .tag_key(k::CLOCK, clock)
                .field_key(k::FIRMWARE, F::Str(&s.firmware_version))
                .field_key(k::BATTERY_V, F::F64(f64::from(s.battery_mv) / 1000.0))
                .field_key(
                    k::UPTIME_S,
                    F::I64(i64::try_from(s.uptime_s).unwrap_or(i64::MAX)),
                );
            let b = match s.signal_dbm {
                Some(d) => b.field_key(k::SIGNAL_DBM, F::I64(i64::from(d))),
                None => b,
            };
            b.field_key(k::SEQ, seq)
                .field_key(k::DEVICE_TIME_MS, device_ms)
                .field_key(k::CLOCK_RESTAMPED, restamped)
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
            alert: None,
            kpi: None,
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
            ..Default::default()
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
            ..Default::default()
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
            altitude_m: Some(112.0),
            odometer_km: Some(12_345.6),
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
            r#"bin_reading,site=site\ a\,b,device=dev\=1\\,clock=restamped fill_pct=82.5,temperature_c=21.4,tilt_deg=1.5,battery_v=3.58,fire_flag=true,battery_low=false,seq=9i,device_time_ms=1700000000123i,clock_restamped=true 1700000000123"#,
            r#"storage_reading,site=site-a,device=dev-1 stock_kg=2450.25,oldest_container_age_d=300.0,temperature_c=-26.3,combustible_gas_pct_lel=3.0,toxic_gas_pct_of_limit=0.000001,oxygen_pct_vol=20.8,oldest_medical_lot_age_h=2.0,outside_temperature_c=-5.1,leak=true,door_open=false,container_count=14i,battery_v=3.601,seq=9i,device_time_ms=1700000000123i,clock_restamped=false 1700000000123"#,
            r#"truck_fix,site=site-a,device=dev-1 lat=34.741234567,lon=-113.7805,speed_kmh=1e-7,heading_deg=359.9999999,accuracy_m=4.5,loaded=true,cover_closed=true,body_lifted=false,ignition_on=true,gnss_fix=true,satellites=12i,alarm_bits=32769i,load_kg=17150.0,altitude_m=112.0,odometer_km=12345.6,plate="ABC123",permit_id="p=1 x",seq=9i,device_time_ms=1700000000123i,clock_restamped=false 1700000000123"#,
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
