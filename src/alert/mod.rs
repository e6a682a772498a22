//! Alerts: the lifecycle every rule's verdicts go through, between the rule
//! engine and the notifiers.
//!
//! `rules/` turns log records into [`Transition`]s (raise / clear per
//! (rule, entity) key); the [`AlertStore`] applies them to one lifecycle —
//! pending → firing → (acknowledged) → resolved — with "for" durations,
//! escalation, flapping suppression, repeats and retention, and returns the
//! [`AlertEvent`]s to record in InfluxDB and hand to the notifiers. Pure:
//! no I/O, time passed in; the whole store serializes for snapshots.

mod key;
mod lifecycle;
mod policy;
pub mod snapshot;
pub mod stage;
mod store;
mod transition;

pub use key::{AlertKey, RuleId, Severity};
pub use lifecycle::{Alert, AlertEvent, AlertState, EventReason, HistoryEntry, HISTORY_MAX};
pub use policy::AlertPolicy;
pub use store::{AckError, AlertFilter, AlertStore, SnapshotError};
pub use transition::Transition;
