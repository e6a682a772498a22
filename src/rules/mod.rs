//! Rules: typed evaluators that turn log records into alert transitions.
//!
//! Sits on the durable log's rule cursor, beside the TSDB writer: the
//! [`RuleEngine`] reads each [`crate::pb::LogRecord`] in log order, keeps
//! per-device state (dedup window, truck reorder buffer, timers, the alerts
//! it has raised), and emits [`crate::alert::Transition`]s for the alert
//! store. One file per rule family — `storage.rs`, `medical.rs`,
//! `transport.rs`, `weighbridge.rs`, `bins.rs`, `devices.rs` — each with
//! hysteresis and thresholds from [`config`] (docs/RULES.md: defaults with their
//! sources, overridable per device kind, site, permit and device), and
//! `quality.rs` deciding when a reading cannot be trusted and
//! `cannot_verify` is raised instead.
//!
//! Pure: no I/O, no async, time passed in; the engine's state snapshots to
//! JSON so it can be stored with the log offset it covers.

mod bins;
pub mod config;
mod dedup;
mod devices;
mod emit;
mod engine;
mod history;
mod level;
mod medical;
mod quality;
mod storage;
mod transport;
mod weighbridge;

#[cfg(test)]
mod testkit;

pub mod shell;

pub use crate::alert::RuleId;
pub use config::{
    BinThresholds, DeviceThresholds, EngineSettings, MedicalThresholds, Overrides,
    QualityThresholds, RuleConfig, StorageThresholds, ThresholdPatch, Thresholds,
    TransportThresholds, WeighbridgeThresholds,
};
pub use dedup::{Seq, SeqWindow};
pub use engine::{EngineStats, RuleEngine, RuleError};
