//! A location report as a wastewatch record: the same `truck_fix` envelope a
//! native terminal publishes over MQTT, validated by the same
//! `decode::validate::truck` and dated by the same clock policy.
//!
//! Mapping (docs/PROTOCOLS.md has the table): latitude and longitude from
//! millionths of a degree with the sign of status bits 2 and 3; speed from
//! 1/10 km/h; heading = direction; altitude; odometer from item 0x01
//! (1/10 km); satellites from item 0x31; ignition = status bit 0 (ACC);
//! GNSS fix = status bit 1; loaded = status bits 8–9 not `00` (empty);
//! cover closed and body lifted from the custom item 0xE1 when present
//! (without it: cover closed, body down, so a terminal without those
//! sensors raises no cover or tipping alert); alarm bits as sent; plate
//! from the registry. `seq` is the fix time in Unix seconds: a terminal's
//! own serial number wraps at 65535 and restarts on reboot, while the fix
//! time identifies the fix, so a retransmitted report is the same record.

use crate::decode::SCHEMA_VERSION;
use crate::decode::{validate, ClockPolicy, DecodeError};
use crate::pb::{self, envelope::Body, DeviceKind};

use super::message::{status, Location};

/// The truck an authenticated terminal belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminal {
    /// Registry device id.
    pub device_id: String,
    /// Its home site.
    pub site_id: String,
    /// Its registered plate.
    pub plate: String,
    /// Terminal phone number, normalised (no leading zeros).
    pub phone: String,
}

/// The truck fix of a location report.
pub fn truck_fix(l: &Location, plate: &str) -> pb::TruckFix {
    let (cover_closed, body_lifted) = match l.body_sensors {
        Some(b) => (b & 0x01 != 0, b & 0x02 != 0),
        None => (true, false),
    };
    pb::TruckFix {
        latitude_deg: l.latitude_deg(),
        longitude_deg: l.longitude_deg(),
        speed_kmh: f64::from(l.speed_dkmh) / 10.0,
        heading_deg: f64::from(l.direction),
        accuracy_m: 0.0,
        loaded: l.status & status::LOAD_MASK != 0,
        cover_closed,
        body_lifted,
        ignition_on: l.status & status::ACC_ON != 0,
        plate: plate.to_owned(),
        permit_id: String::new(),
        load_kg: None,
        terminal_alarm_bits: l.alarm,
        gnss_fix: l.status & status::POSITIONED != 0,
        satellites: l.satellites.map_or(0, u32::from),
        altitude_m: Some(f64::from(l.altitude_m)),
        odometer_km: l.mileage_dkm.map(|m| f64::from(m) / 10.0),
    }
}

/// The log record of a location report from `t`, received at
/// `received_at_ms`, or why it is refused.
pub fn fix_record(
    l: &Location,
    t: &Terminal,
    received_at_ms: i64,
    clock: &ClockPolicy,
) -> Result<pb::LogRecord, DecodeError> {
    let mut fix = truck_fix(l, &t.plate);
    validate::truck(&mut fix)?;
    let (time_unix_ms, check) = clock.check(l.time_unix_ms, received_at_ms)?;
    Ok(pb::LogRecord {
        envelope: Some(pb::Envelope {
            site_id: t.site_id.clone(),
            device_id: t.device_id.clone(),
            device_kind: DeviceKind::Truck as i32,
            seq: u64::try_from(l.time_unix_ms.div_euclid(1000)).unwrap_or(0),
            recorded_at_unix_ms: l.time_unix_ms,
            schema_version: SCHEMA_VERSION,
            body: Some(Body::TruckFix(fix)),
        }),
        received_at_unix_ms: received_at_ms,
        time_unix_ms,
        clock_check: check as i32,
        from_json: false,
        alert: None,
        kpi: None,
    })
}
