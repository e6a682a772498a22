//! The `malformed` scenario's bad messages, one builder per fault.
//!
//! Each fault is built so that the decoder refuses it for exactly one
//! reason ([`ErrorKind`]), which the fleet records with the message so a
//! checker can compare the service's quarantine counts per reason:
//! garbage bytes (`malformed_protobuf`: the first byte is a tag with the
//! invalid wire type 7), a NaN reading (`non_finite_value`; protobuf, as
//! JSON cannot carry NaN), a negative weight (`negative_weight`), a payload
//! naming another device than its topic (`id_mismatch`) and a device the
//! registry does not know (`unknown_device`).

use wastewatch_contract::geo::LatLon;
use wastewatch_contract::pb::{self, envelope::Body, DeviceKind};
use wastewatch_contract::ErrorKind;

/// The faults in the order the injector cycles through them.
pub(crate) const CYCLE: [ErrorKind; 5] = [
    ErrorKind::MalformedProtobuf,
    ErrorKind::NonFiniteValue,
    ErrorKind::NegativeWeight,
    ErrorKind::IdMismatch,
    ErrorKind::UnknownDevice,
];

/// A valid body of `kind` with plausible values, the base the faults spoil.
pub(crate) fn plausible_body(kind: DeviceKind, at: LatLon, now_ms: i64) -> Option<Body> {
    Some(match kind {
        DeviceKind::Bin => Body::BinReading(pb::BinReading {
            fill_level_pct: 42.0,
            temperature_deci_c: 180,
            tilt_deg: 2.0,
            battery_mv: 3600,
            fire_flag: false,
            battery_low_flag: false,
        }),
        DeviceKind::Storage => Body::StorageReading(pb::StorageReading {
            stock_kg: 800.0,
            oldest_container_age_s: 30 * 86_400,
            temperature_deci_c: 200,
            container_count: 8,
            ..Default::default()
        }),
        DeviceKind::Truck => Body::TruckFix(pb::TruckFix {
            latitude_deg: at.lat,
            longitude_deg: at.lon,
            accuracy_m: 3.0,
            ignition_on: true,
            gnss_fix: true,
            satellites: 10,
            load_kg: Some(0.0),
            cover_closed: true,
            ..Default::default()
        }),
        DeviceKind::Weighbridge => Body::WeighbridgeTicket(pb::WeighbridgeTicket {
            ticket_id: format!("fault-{now_ms}"),
            plate: "豫AX0000".to_owned(),
            gross_weight_kg: 20_000.0,
            tare_weight_kg: 12_000.0,
            net_weight_kg: 8_000.0,
            category: pb::WasteCategory::GeneralIndustrial as i32,
            direction: pb::Direction::In as i32,
            axle_count: 3,
            ..Default::default()
        }),
        DeviceKind::Unspecified => return None,
    })
}

/// `body` with a NaN in its main measurement.
pub(crate) fn with_nan(body: Body) -> Body {
    match body {
        Body::BinReading(mut b) => {
            b.fill_level_pct = f64::NAN;
            Body::BinReading(b)
        }
        Body::StorageReading(mut s) => {
            s.stock_kg = f64::NAN;
            Body::StorageReading(s)
        }
        Body::TruckFix(mut t) => {
            t.latitude_deg = f64::NAN;
            Body::TruckFix(t)
        }
        Body::WeighbridgeTicket(mut t) => {
            t.gross_weight_kg = f64::NAN;
            Body::WeighbridgeTicket(t)
        }
        other => other,
    }
}

/// `body` with a negative weight; `None` for bodies without a weight.
pub(crate) fn with_negative_weight(body: Body) -> Option<Body> {
    match body {
        Body::StorageReading(mut s) => {
            s.stock_kg = -250.0;
            Some(Body::StorageReading(s))
        }
        Body::TruckFix(mut t) => {
            t.load_kg = Some(-500.0);
            Some(Body::TruckFix(t))
        }
        Body::WeighbridgeTicket(mut t) => {
            t.gross_weight_kg = -1_000.0;
            t.net_weight_kg = -13_000.0;
            Some(Body::WeighbridgeTicket(t))
        }
        _ => None,
    }
}

/// Bytes no protobuf decoder accepts: a tag with wire type 7, then noise.
pub(crate) fn garbage(noise: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(noise.len() + 1);
    v.push(0x0F);
    v.extend_from_slice(noise);
    v
}
