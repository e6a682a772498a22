//! wastewatch: MQTT telemetry from waste facilities → durable local log →
//! InfluxDB and rule evaluators → alerts.
//!
//! The module tree follows the data flow (see README.md): `ingest` receives,
//! `decode` turns a message into a normalised record, `log` makes it durable
//! before the ack, `sink` writes records to the TSDB as line protocol.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

// The contract shared with the devices and firmware-sim: the schema, the
// zone registry and its geometry (crates/contract).
pub use wastewatch_contract::{geo, pb, registry};

pub mod alert;
pub mod api;
pub mod app;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod decode;
pub mod fsutil;
pub mod gateway;
pub mod ingest;
pub mod kpi;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod rules;
pub mod secret;
pub mod sink;
