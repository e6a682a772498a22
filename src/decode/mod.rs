//! Decode, validate and normalise one MQTT message into a [`pb::LogRecord`].
//!
//! Sits between `ingest/` (which hands over topic, payload, content type and
//! receive time) and `log/` (which stores the record before the PUBACK). Pure:
//! no I/O, time passed in. Guarantees: any input, however broken, yields
//! either a normalised record or a [`DecodeError`] naming what was wrong —
//! never a panic; protobuf and JSON payloads of the same message yield the
//! same record; the ids in the topic, the payload and the registry agree, so
//! a device cannot speak for another.

pub mod clock;
pub mod validate;

// The topic grammar, the JSON codec and the refusal reasons are part of the
// contract shared with the devices (crates/contract).
pub use wastewatch_contract::{error, json, topic, SCHEMA_VERSION};

use std::sync::Arc;

use prost::Message;

pub use clock::{ClockAction, ClockPolicy};
pub use error::{DecodeError, ErrorKind};
pub use topic::{Channel, Topic};
pub use validate::ValidationLimits;

use crate::pb::{self, envelope::Body, DeviceKind};
use crate::registry::Registry;

/// Default largest payload accepted, bytes. The biggest valid message is a
/// few hundred bytes; the shipped broker config refuses packets > 256 KiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Decoder settings.
#[derive(Clone, Debug)]
pub struct DecodePolicy {
    /// Payloads larger than this are refused as `payload_too_large`.
    pub max_payload_bytes: usize,
    /// Device-clock window and action.
    pub clock: ClockPolicy,
    /// Range-check tunables.
    pub limits: ValidationLimits,
}

impl Default for DecodePolicy {
    fn default() -> Self {
        DecodePolicy {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            clock: ClockPolicy::default(),
            limits: ValidationLimits::default(),
        }
    }
}

/// Stateless decoder: registry plus policy.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Devices and sites the ids are checked against.
    pub registry: Arc<Registry>,
    /// Limits and clock policy.
    pub policy: DecodePolicy,
}

/// True when an MQTT 5 content type announces JSON.
pub fn is_json_content_type(ct: &str) -> bool {
    let base = ct.split(';').next().unwrap_or("").trim();
    base.eq_ignore_ascii_case("application/json")
}

impl Decoder {
    /// Builds a decoder.
    pub fn new(registry: Arc<Registry>, policy: DecodePolicy) -> Self {
        Decoder { registry, policy }
    }

    /// Decodes one message received at `received_at_ms`.
    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        content_type: Option<&str>,
        received_at_ms: i64,
    ) -> Result<pb::LogRecord, DecodeError> {
        if payload.len() > self.policy.max_payload_bytes {
            return Err(DecodeError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "payload is {} bytes, the limit is {} bytes",
                    payload.len(),
                    self.policy.max_payload_bytes
                ),
            ));
        }
        let t = Topic::parse(topic)?;
        let from_json = t.json_suffix || content_type.is_some_and(is_json_content_type);
        // The record is built first and the payload decoded into it in
        // place: an envelope is a few hundred bytes, and moving it from the
        // decoder's result into the record was a measurable share of the
        // hot path.
        let mut rec = pb::LogRecord {
            envelope: None,
            received_at_unix_ms: received_at_ms,
            time_unix_ms: 0,
            clock_check: 0,
            from_json,
            alert: None,
            kpi: None,
        };
        let env = rec.envelope.insert(pb::Envelope::default());
        if from_json {
            *env = json::decode_json(payload)?;
        } else {
            // `merge` into a default message is what `decode` does.
            env.merge(payload).map_err(|e| {
                DecodeError::new(
                    ErrorKind::MalformedProtobuf,
                    format!(
                        "payload of {} bytes is not a wastewatch.v1.Envelope: {e}",
                        payload.len()
                    ),
                )
            })?;
        }
        self.check_envelope(&t, env)?;
        let (time_unix_ms, clock_check) = self
            .policy
            .clock
            .check(env.recorded_at_unix_ms, received_at_ms)?;
        rec.time_unix_ms = time_unix_ms;
        rec.clock_check = clock_check as i32;
        Ok(rec)
    }

    fn check_envelope(&self, t: &Topic<'_>, env: &mut pb::Envelope) -> Result<(), DecodeError> {
        if env.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::new(
                ErrorKind::UnsupportedSchemaVersion,
                format!(
                    "schema_version is {}, this build understands {SCHEMA_VERSION}",
                    env.schema_version
                ),
            ));
        }
        if i64::try_from(env.seq).is_err() {
            return Err(DecodeError::new(
                ErrorKind::ValueOutOfRange,
                format!(
                    "seq is {}, above the largest accepted {}",
                    env.seq,
                    i64::MAX
                ),
            ));
        }
        let kind = match DeviceKind::try_from(env.device_kind) {
            Ok(k) if k != DeviceKind::Unspecified => k,
            _ => {
                return Err(DecodeError::new(
                    ErrorKind::UnknownKind,
                    format!("device_kind {} in payload is not weighbridge (1), bin (2), storage (3) or truck (4)", env.device_kind),
                ))
            }
        };
        // Ids equal to the topic's were checked with the topic; only others
        // need the (then refusing) check, for a precise message.
        if env.site_id != t.site_id {
            topic::check_id("site_id in payload", &env.site_id)?;
        }
        if env.device_id != t.device_id {
            topic::check_id("device_id in payload", &env.device_id)?;
        }
        if env.device_id != t.device_id || env.site_id != t.site_id || kind != t.kind {
            return Err(DecodeError::new(
                ErrorKind::IdMismatch,
                format!(
                    "payload says {}/{}/{} but the topic says {}/{}/{}",
                    env.site_id,
                    topic::kind_segment(kind),
                    env.device_id,
                    t.site_id,
                    topic::kind_segment(t.kind),
                    t.device_id
                ),
            ));
        }
        let dev = self.registry.device(&env.device_id).ok_or_else(|| {
            DecodeError::new(
                ErrorKind::UnknownDevice,
                format!("device {:?} is not in the registry", env.device_id),
            )
        })?;
        if dev.site_id != env.site_id || dev.kind != kind {
            return Err(DecodeError::new(
                ErrorKind::IdMismatch,
                format!(
                    "device {:?} is registered as {} at site {:?}, not {} at {:?}",
                    env.device_id,
                    topic::kind_segment(dev.kind),
                    dev.site_id,
                    topic::kind_segment(kind),
                    env.site_id
                ),
            ));
        }
        let body = env.body.as_mut().ok_or_else(|| {
            DecodeError::new(ErrorKind::MissingBody, "envelope has no body (expected one of weighbridge_ticket, bin_reading, storage_reading, truck_fix, device_status)")
        })?;
        let body_kind = match body {
            Body::WeighbridgeTicket(_) => Some(DeviceKind::Weighbridge),
            Body::BinReading(_) => Some(DeviceKind::Bin),
            Body::StorageReading(_) => Some(DeviceKind::Storage),
            Body::TruckFix(_) => Some(DeviceKind::Truck),
            Body::DeviceStatus(_) => None,
        };
        match (t.channel, body_kind) {
            (Channel::Status, None) => {}
            (Channel::Status, Some(_)) => {
                return Err(DecodeError::new(
                    ErrorKind::BodyMismatch,
                    format!(
                        "{} body on the status channel; status carries device_status only",
                        body_name(body)
                    ),
                ))
            }
            (_, None) => {
                return Err(DecodeError::new(
                    ErrorKind::BodyMismatch,
                    format!(
                        "device_status body on the {} channel; use the status channel",
                        t.channel.as_str()
                    ),
                ))
            }
            (_, Some(bk)) if bk != kind => {
                return Err(DecodeError::new(
                    ErrorKind::BodyMismatch,
                    format!(
                        "{} body from a {} device",
                        body_name(body),
                        topic::kind_segment(kind)
                    ),
                ))
            }
            _ => {}
        }
        match body {
            Body::WeighbridgeTicket(tk) => validate::ticket(tk, &self.policy.limits),
            Body::BinReading(b) => validate::bin(b),
            Body::StorageReading(s) => validate::storage(s),
            Body::TruckFix(f) => validate::truck(f),
            Body::DeviceStatus(s) => validate::status(s),
        }
    }
}

/// Field name of a body variant.
pub fn body_name(body: &Body) -> &'static str {
    match body {
        Body::WeighbridgeTicket(_) => "weighbridge_ticket",
        Body::BinReading(_) => "bin_reading",
        Body::StorageReading(_) => "storage_reading",
        Body::TruckFix(_) => "truck_fix",
        Body::DeviceStatus(_) => "device_status",
    }
}

#[cfg(test)]
mod tests;
