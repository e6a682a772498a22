//! The bounded set of reasons a message can be refused.
//!
//! Every refusal carries an [`ErrorKind`] (a fixed, low-cardinality label for
//! counters and the quarantine) and a detail string that names the offending
//! field, value and unit so an operator can fix the device without guessing.

use std::fmt;

/// Why a message was refused. The set is closed: metrics label values and
/// quarantine reasons come from [`ErrorKind::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Topic is not `wastewatch/v1/{site}/{kind}/{device}/{channel}[/json]`.
    MalformedTopic,
    /// Device kind in the topic or payload is not one of the four families.
    UnknownKind,
    /// Payload is not a valid protobuf `Envelope`.
    MalformedProtobuf,
    /// Payload is not valid JSON of the legacy schema.
    MalformedJson,
    /// Payload larger than the configured maximum.
    PayloadTooLarge,
    /// `schema_version` is not one this build understands.
    UnsupportedSchemaVersion,
    /// The envelope has no body.
    MissingBody,
    /// The body does not fit the device kind or the channel.
    BodyMismatch,
    /// An id is empty, too long or uses characters outside `[A-Za-z0-9_.:-]`.
    InvalidId,
    /// Ids in the topic differ from ids in the payload, or from the registry:
    /// a device may not speak for another.
    IdMismatch,
    /// Device id is not in the registry.
    UnknownDevice,
    /// A measured value is NaN or infinite.
    NonFiniteValue,
    /// A weight is negative.
    NegativeWeight,
    /// Net weight differs from gross − tare by more than the tolerance.
    NetWeightMismatch,
    /// Fill level outside 0–100 %.
    FillOutOfRange,
    /// Latitude outside −90..90 or longitude outside −180..180.
    InvalidCoordinate,
    /// Another value outside its physical range (speed, tilt, gas, …).
    ValueOutOfRange,
    /// Hazardous-waste code missing or not `NNN-NNN-NN`.
    InvalidWasteCode,
    /// A text field contains a control character or is too long.
    InvalidText,
    /// Device timestamp outside the accepted window and the clock policy is
    /// `reject` (the default policy re-stamps instead).
    TimestampOutOfRange,
    /// A JT/T 808 frame that is not one: bad escape, check code, header,
    /// length or body (docs/PROTOCOLS.md).
    MalformedFrame,
    /// A Sparkplug B metric sent by an alias (or name) that the edge node's
    /// or device's birth certificate did not define (docs/PROTOCOLS.md).
    UnknownAlias,
    /// A Sparkplug B data or death message from an edge node or device whose
    /// birth certificate the host has not seen (since it started, or since
    /// the node's last death): it cannot be mapped, and a rebirth is asked
    /// for (docs/PROTOCOLS.md).
    NoBirth,
}

impl ErrorKind {
    /// Every kind, for exhaustive metrics export and docs.
    pub const ALL: [ErrorKind; 23] = [
        ErrorKind::MalformedTopic,
        ErrorKind::UnknownKind,
        ErrorKind::MalformedProtobuf,
        ErrorKind::MalformedJson,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UnsupportedSchemaVersion,
        ErrorKind::MissingBody,
        ErrorKind::BodyMismatch,
        ErrorKind::InvalidId,
        ErrorKind::IdMismatch,
        ErrorKind::UnknownDevice,
        ErrorKind::NonFiniteValue,
        ErrorKind::NegativeWeight,
        ErrorKind::NetWeightMismatch,
        ErrorKind::FillOutOfRange,
        ErrorKind::InvalidCoordinate,
        ErrorKind::ValueOutOfRange,
        ErrorKind::InvalidWasteCode,
        ErrorKind::InvalidText,
        ErrorKind::TimestampOutOfRange,
        ErrorKind::MalformedFrame,
        ErrorKind::UnknownAlias,
        ErrorKind::NoBirth,
    ];

    /// Stable snake_case name used as metric label and quarantine reason.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MalformedTopic => "malformed_topic",
            ErrorKind::UnknownKind => "unknown_kind",
            ErrorKind::MalformedProtobuf => "malformed_protobuf",
            ErrorKind::MalformedJson => "malformed_json",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedSchemaVersion => "unsupported_schema_version",
            ErrorKind::MissingBody => "missing_body",
            ErrorKind::BodyMismatch => "body_mismatch",
            ErrorKind::InvalidId => "invalid_id",
            ErrorKind::IdMismatch => "id_mismatch",
            ErrorKind::UnknownDevice => "unknown_device",
            ErrorKind::NonFiniteValue => "non_finite_value",
            ErrorKind::NegativeWeight => "negative_weight",
            ErrorKind::NetWeightMismatch => "net_weight_mismatch",
            ErrorKind::FillOutOfRange => "fill_out_of_range",
            ErrorKind::InvalidCoordinate => "invalid_coordinate",
            ErrorKind::ValueOutOfRange => "value_out_of_range",
            ErrorKind::InvalidWasteCode => "invalid_waste_code",
            ErrorKind::InvalidText => "invalid_text",
            ErrorKind::TimestampOutOfRange => "timestamp_out_of_range",
            ErrorKind::MalformedFrame => "malformed_frame",
            ErrorKind::UnknownAlias => "unknown_alias",
            ErrorKind::NoBirth => "no_birth",
        }
    }

    /// Inverse of [`ErrorKind::as_str`].
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the kind plus a precise, human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct DecodeError {
    /// Bounded reason, for counters and the quarantine.
    pub kind: ErrorKind,
    /// Names the field, the value and the unit or the expected form.
    pub detail: String,
}

impl DecodeError {
    /// Builds an error of `kind` with `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        DecodeError {
            kind,
            detail: detail.into(),
        }
    }
}
