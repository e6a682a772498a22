//! wastewatch: MQTT telemetry from waste facilities → durable local log →
//! InfluxDB and rule evaluators → alerts.
//!
//! The module tree follows the data flow (see README.md): `ingest` receives,
//! `decode` turns a message into a normalised record, `log` makes it durable
//! before the ack, `sink` writes records to the TSDB as line protocol.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// Types generated from `proto/wastewatch/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/wastewatch.v1.rs"));
}

pub mod alert;
pub mod api;
pub mod app;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod decode;
pub mod demo;
pub mod geo;
pub mod ingest;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod registry;
pub mod rules;
#[path = "../firmware-sim/src/sim/mod.rs"]
pub mod sim;
pub mod sink;
