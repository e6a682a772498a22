//! The JSON variant of the contract, for legacy devices.
//!
//! A JSON message is the protobuf `Envelope` written with the same field
//! names (snake_case) and enum values as lowercase strings without their
//! prefix (`"device_kind": "truck"`, `"category": "construction_spoil"`).
//! Exactly one body key is present (`weighbridge_ticket`, `bin_reading`,
//! `storage_reading`, `truck_fix`, `device_status`). Unknown keys are
//! refused, absent keys take the protobuf default, so both encodings
//! normalise to the very same record. Examples: `docs/JSON.md`.

use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, ErrorKind};
use crate::pb;

/// JSON form of [`pb::Envelope`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonEnvelope {
    /// See [`pb::Envelope::site_id`].
    pub site_id: String,
    /// See [`pb::Envelope::device_id`].
    pub device_id: String,
    /// Lowercase kind: `weighbridge | bin | storage | truck`.
    pub device_kind: String,
    /// See [`pb::Envelope::seq`].
    pub seq: u64,
    /// See [`pb::Envelope::recorded_at_unix_ms`].
    pub recorded_at_unix_ms: i64,
    /// See [`pb::Envelope::schema_version`].
    pub schema_version: u32,
    /// Body: a weighing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighbridge_ticket: Option<JsonTicket>,
    /// Body: a bin reading (same fields as [`pb::BinReading`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_reading: Option<pb::BinReading>,
    /// Body: a storage reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_reading: Option<pb::StorageReading>,
    /// Body: a truck fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truck_fix: Option<pb::TruckFix>,
    /// Body: a device status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_status: Option<JsonStatus>,
}

/// JSON form of [`pb::WeighbridgeTicket`]; enums as lowercase strings.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonTicket {
    /// See [`pb::WeighbridgeTicket::ticket_id`].
    pub ticket_id: String,
    /// See [`pb::WeighbridgeTicket::plate`].
    pub plate: String,
    /// See [`pb::WeighbridgeTicket::gross_weight_kg`].
    pub gross_weight_kg: f64,
    /// See [`pb::WeighbridgeTicket::tare_weight_kg`].
    pub tare_weight_kg: f64,
    /// See [`pb::WeighbridgeTicket::net_weight_kg`].
    pub net_weight_kg: f64,
    /// e.g. `"construction_spoil"`, `"hazardous"`; empty = unspecified.
    pub category: String,
    /// See [`pb::WeighbridgeTicket::hazardous_waste_code`].
    pub hazardous_waste_code: String,
    /// See [`pb::WeighbridgeTicket::catalogue_edition`].
    pub catalogue_edition: String,
    /// See [`pb::WeighbridgeTicket::origin_site_id`].
    pub origin_site_id: String,
    /// See [`pb::WeighbridgeTicket::destination_site_id`].
    pub destination_site_id: String,
    /// e.g. `"recycling"`, `"landfill"`; empty = unspecified.
    pub destination_type: String,
    /// `"in"` or `"out"`; empty = unspecified.
    pub direction: String,
    /// See [`pb::WeighbridgeTicket::weighed_in_at_unix_ms`].
    pub weighed_in_at_unix_ms: i64,
    /// See [`pb::WeighbridgeTicket::weighed_out_at_unix_ms`].
    pub weighed_out_at_unix_ms: i64,
    /// See [`pb::WeighbridgeTicket::operator_id`].
    pub operator_id: String,
    /// See [`pb::WeighbridgeTicket::anpr_confirmed`].
    pub anpr_confirmed: bool,
    /// See [`pb::WeighbridgeTicket::axle_count`].
    pub axle_count: u32,
    /// See [`pb::WeighbridgeTicket::permit_id`].
    pub permit_id: String,
    /// See [`pb::WeighbridgeTicket::manifest_id`].
    pub manifest_id: String,
    /// See [`pb::WeighbridgeTicket::source_unit_id`].
    pub source_unit_id: String,
}

/// JSON form of [`pb::DeviceStatus`]; `kind` as a lowercase string.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonStatus {
    /// `"birth" | "heartbeat" | "last_will"`.
    pub kind: String,
    /// See [`pb::DeviceStatus::firmware_version`].
    pub firmware_version: String,
    /// See [`pb::DeviceStatus::battery_mv`].
    pub battery_mv: u32,
    /// See [`pb::DeviceStatus::signal_dbm`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_dbm: Option<i32>,
    /// See [`pb::DeviceStatus::uptime_s`].
    pub uptime_s: u64,
}

/// JSON name of a protobuf enum value: prefix stripped, lowercase.
fn enum_json_name(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .to_ascii_lowercase()
}

/// Parses a JSON enum name; `""` is the unspecified value 0.
fn enum_from_json<T>(
    field: &str,
    value: &str,
    prefix: &str,
    from_str_name: impl Fn(&str) -> Option<T>,
    unspecified: T,
    kind: ErrorKind,
) -> Result<T, DecodeError> {
    if value.is_empty() {
        return Ok(unspecified);
    }
    let upper = format!("{prefix}{}", value.to_ascii_uppercase());
    match from_str_name(&upper) {
        Some(v) if value.bytes().all(|c| c.is_ascii_lowercase() || c == b'_') => Ok(v),
        _ => Err(DecodeError::new(
            kind,
            format!("{field} {value:?} is not a known value"),
        )),
    }
}

/// Decodes a JSON payload into the same [`pb::Envelope`] protobuf would give.
pub fn decode_json(payload: &[u8]) -> Result<pb::Envelope, DecodeError> {
    let j: JsonEnvelope = serde_json::from_slice(payload).map_err(|e| {
        DecodeError::new(
            ErrorKind::MalformedJson,
            format!("invalid JSON envelope: {e}"),
        )
    })?;
    let device_kind = enum_from_json(
        "device_kind",
        &j.device_kind,
        "DEVICE_KIND_",
        pb::DeviceKind::from_str_name,
        pb::DeviceKind::Unspecified,
        ErrorKind::UnknownKind,
    )?;
    let mut bodies = Vec::with_capacity(1);
    if let Some(t) = j.weighbridge_ticket {
        bodies.push(pb::envelope::Body::WeighbridgeTicket(ticket_from_json(t)?));
    }
    if let Some(b) = j.bin_reading {
        bodies.push(pb::envelope::Body::BinReading(b));
    }
    if let Some(s) = j.storage_reading {
        bodies.push(pb::envelope::Body::StorageReading(s));
    }
    if let Some(t) = j.truck_fix {
        bodies.push(pb::envelope::Body::TruckFix(t));
    }
    if let Some(s) = j.device_status {
        bodies.push(pb::envelope::Body::DeviceStatus(pb::DeviceStatus {
            kind: enum_from_json(
                "device_status.kind",
                &s.kind,
                "STATUS_KIND_",
                pb::StatusKind::from_str_name,
                pb::StatusKind::Unspecified,
                ErrorKind::MalformedJson,
            )? as i32,
            firmware_version: s.firmware_version,
            battery_mv: s.battery_mv,
            signal_dbm: s.signal_dbm,
            uptime_s: s.uptime_s,
        }));
    }
    if bodies.len() > 1 {
        return Err(DecodeError::new(
            ErrorKind::MalformedJson,
            format!(
                "JSON envelope has {} bodies, exactly one is allowed",
                bodies.len()
            ),
        ));
    }
    Ok(pb::Envelope {
        site_id: j.site_id,
        device_id: j.device_id,
        device_kind: device_kind as i32,
        seq: j.seq,
        recorded_at_unix_ms: j.recorded_at_unix_ms,
        schema_version: j.schema_version,
        body: bodies.pop(),
    })
}

fn ticket_from_json(t: JsonTicket) -> Result<pb::WeighbridgeTicket, DecodeError> {
    Ok(pb::WeighbridgeTicket {
        ticket_id: t.ticket_id,
        plate: t.plate,
        gross_weight_kg: t.gross_weight_kg,
        tare_weight_kg: t.tare_weight_kg,
        net_weight_kg: t.net_weight_kg,
        category: enum_from_json(
            "weighbridge_ticket.category",
            &t.category,
            "WASTE_CATEGORY_",
            pb::WasteCategory::from_str_name,
            pb::WasteCategory::Unspecified,
            ErrorKind::MalformedJson,
        )? as i32,
        hazardous_waste_code: t.hazardous_waste_code,
        catalogue_edition: t.catalogue_edition,
        origin_site_id: t.origin_site_id,
        destination_site_id: t.destination_site_id,
        destination_type: enum_from_json(
            "weighbridge_ticket.destination_type",
            &t.destination_type,
            "DESTINATION_TYPE_",
            pb::DestinationType::from_str_name,
            pb::DestinationType::Unspecified,
            ErrorKind::MalformedJson,
        )? as i32,
        direction: enum_from_json(
            "weighbridge_ticket.direction",
            &t.direction,
            "DIRECTION_",
            pb::Direction::from_str_name,
            pb::Direction::Unspecified,
            ErrorKind::MalformedJson,
        )? as i32,
        weighed_in_at_unix_ms: t.weighed_in_at_unix_ms,
        weighed_out_at_unix_ms: t.weighed_out_at_unix_ms,
        operator_id: t.operator_id,
        anpr_confirmed: t.anpr_confirmed,
        axle_count: t.axle_count,
        permit_id: t.permit_id,
        manifest_id: t.manifest_id,
        source_unit_id: t.source_unit_id,
    })
}

/// Name of an enum value as written in JSON (`""` for unspecified).
fn name_or_empty(proto_name: &str, prefix: &str, is_zero: bool) -> String {
    if is_zero {
        String::new()
    } else {
        enum_json_name(proto_name, prefix)
    }
}

/// Encodes an envelope as legacy JSON (used by firmware-sim and the
/// equivalence property test). Unknown enum numbers are written as `""`.
pub fn encode_json(env: &pb::Envelope) -> String {
    let kind = pb::DeviceKind::try_from(env.device_kind).unwrap_or(pb::DeviceKind::Unspecified);
    let mut j = JsonEnvelope {
        site_id: env.site_id.clone(),
        device_id: env.device_id.clone(),
        device_kind: name_or_empty(
            kind.as_str_name(),
            "DEVICE_KIND_",
            kind == pb::DeviceKind::Unspecified,
        ),
        seq: env.seq,
        recorded_at_unix_ms: env.recorded_at_unix_ms,
        schema_version: env.schema_version,
        ..JsonEnvelope::default()
    };
    match &env.body {
        Some(pb::envelope::Body::WeighbridgeTicket(t)) => {
            let cat = pb::WasteCategory::try_from(t.category).unwrap_or_default();
            let dest = pb::DestinationType::try_from(t.destination_type).unwrap_or_default();
            let dir = pb::Direction::try_from(t.direction).unwrap_or_default();
            j.weighbridge_ticket = Some(JsonTicket {
                ticket_id: t.ticket_id.clone(),
                plate: t.plate.clone(),
                gross_weight_kg: t.gross_weight_kg,
                tare_weight_kg: t.tare_weight_kg,
                net_weight_kg: t.net_weight_kg,
                category: name_or_empty(cat.as_str_name(), "WASTE_CATEGORY_", cat as i32 == 0),
                hazardous_waste_code: t.hazardous_waste_code.clone(),
                catalogue_edition: t.catalogue_edition.clone(),
                origin_site_id: t.origin_site_id.clone(),
                destination_site_id: t.destination_site_id.clone(),
                destination_type: name_or_empty(
                    dest.as_str_name(),
                    "DESTINATION_TYPE_",
                    dest as i32 == 0,
                ),
                direction: name_or_empty(dir.as_str_name(), "DIRECTION_", dir as i32 == 0),
                weighed_in_at_unix_ms: t.weighed_in_at_unix_ms,
                weighed_out_at_unix_ms: t.weighed_out_at_unix_ms,
                operator_id: t.operator_id.clone(),
                anpr_confirmed: t.anpr_confirmed,
                axle_count: t.axle_count,
                permit_id: t.permit_id.clone(),
                manifest_id: t.manifest_id.clone(),
                source_unit_id: t.source_unit_id.clone(),
            });
        }
        Some(pb::envelope::Body::BinReading(b)) => j.bin_reading = Some(*b),
        Some(pb::envelope::Body::StorageReading(s)) => j.storage_reading = Some(*s),
        Some(pb::envelope::Body::TruckFix(t)) => j.truck_fix = Some(t.clone()),
        Some(pb::envelope::Body::DeviceStatus(s)) => {
            let k = pb::StatusKind::try_from(s.kind).unwrap_or_default();
            j.device_status = Some(JsonStatus {
                kind: name_or_empty(k.as_str_name(), "STATUS_KIND_", k as i32 == 0),
                firmware_version: s.firmware_version.clone(),
                battery_mv: s.battery_mv,
                signal_dbm: s.signal_dbm,
                uptime_s: s.uptime_s,
            });
        }
        None => {}
    }
    // Serialising plain structs of strings and numbers cannot fail; a NaN
    // float becomes `null`, which decode_json then refuses.
    serde_json::to_string(&j).unwrap_or_default()
}
