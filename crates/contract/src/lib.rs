//! The contract of wastewatch: what the service and the devices (and
//! `firmware-sim`, which plays them) agree on, and nothing else.
//!
//! - [`pb`]: the protobuf schema (`proto/wastewatch/v1/*.proto`), compiled by
//!   `protox` at build time (no system `protoc`);
//! - [`topic`]: the topic grammar
//!   `wastewatch/v1/{site_id}/{device_kind}/{device_id}/{channel}`;
//! - [`json`]: the JSON codec of legacy devices (same records as protobuf);
//! - [`error`]: the refusal reasons a message can be quarantined for;
//! - [`registry`]: the zone — sites, devices, permits and routes — as loaded
//!   from its data files;
//! - [`geo`]: positions, distances and route corridors;
//! - [`jt808`]: the JT/T 808 wire format of truck terminals;
//! - [`sparkplug`] and [`sparkplug_pb`]: Eclipse Sparkplug B topics and
//!   payloads (edge nodes and the host application).
//!
//! It does no I/O beyond reading the zone files it is asked to.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// Types generated from `proto/wastewatch/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/wastewatch.v1.rs"));
}

/// Types generated from `proto/sparkplug_b/sparkplug_b.proto` (Eclipse
/// Sparkplug B payloads).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod sparkplug_pb {
    include!(concat!(env!("OUT_DIR"), "/org.eclipse.tahu.protobuf.rs"));
}

pub mod error;
pub mod geo;
pub mod json;
pub mod jt808;
pub mod registry;
pub mod sparkplug;
pub mod topic;

pub use error::{DecodeError, ErrorKind};

/// Envelope schema version this contract defines.
pub const SCHEMA_VERSION: u32 = 1;
