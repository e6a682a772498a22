//! The firmware simulator engine: a deterministic fleet of weighbridges,
//! smart bins, hazardous-waste storage points and truck terminals that
//! produces the exact MQTT messages real devices would publish.
//!
//! It sits in front of the whole pipeline — it is what `ingest/` receives.
//! It depends only on the contract (`wastewatch-contract`: schema, topic
//! grammar, JSON codec, registry, geometry), never on the service; the
//! `firmware-sim` binary is a thin CLI over it, and `wastewatch demo` uses
//! it behind its `demo` feature. The core ([`Fleet`]) is pure:
//! it reads the zone [`Registry`](wastewatch_contract::registry::Registry), takes simulated
//! time as an argument and returns [`OutMsg`]s, so every behaviour is unit
//! tested without a broker. [`publish`] is the async shell that sends those
//! messages over MQTT 5 with QoS 1, rate control and broker-ack accounting.
//!
//! Guarantees: the same seed, zone and configuration give byte-identical
//! messages; every message not marked [`OutMsg::expect_quarantine`] decodes
//! cleanly with the service's decoder (checked by this crate's tests)
//! against the zone it was built from; `seq` starts at 1 per device and grows by one per recorded message.
//! Scenarios and the alerts they must and must not produce are documented in
//! `firmware-sim/SCENARIOS.md`.

mod auth;
mod bucket;
mod config;
mod device;
mod faults;
mod fleet;
pub mod genzone;
pub mod jt808;
mod publish;
mod rng;
mod scenario;
pub mod sparkplug;
mod summary;
mod time;

#[cfg(test)]
mod tests;

pub use auth::{read_device_secrets, read_password_file, MqttAuth};
pub use bucket::TokenBucket;
pub use config::{SimConfig, SimError};
pub use fleet::{Assignment, Fleet, OutMsg};
pub use publish::{dry_run, publish, Progress, BACKLOG_LIMIT};
pub use scenario::Scenario;
pub use summary::{DeviceSummary, RangeSet, Summary};
pub use time::{format_local, last_local_time_before, CST_OFFSET_MIN};
