//! Sparkplug B host application: edge nodes and devices that publish
//! Eclipse Sparkplug B (3.0) over the same broker report into the same
//! durable log as native devices, as the same records.
//!
//! Pure: the topic grammar and payload types from the contract
//! (`wastewatch_contract::sparkplug`, `sparkplug_pb`), the mapping from the
//! registry (`sparkplug.json`), and [`host`], the state machine the
//! committer runs in receipt order. The MQTT side (subscription, STATE birth
//! and will, NCMD publishing) is in `ingest/connection.rs`.
//! docs/PROTOCOLS.md says how to connect an edge node and what of the
//! specification is supported.

pub mod host;

pub use host::{Command, Host, HostConfig, Output};

#[cfg(test)]
mod tests;
