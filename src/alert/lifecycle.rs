//! One alert and its life: [`AlertState`] pending → firing →
//! (acknowledged) → resolved, and the [`AlertEvent`] recorded at each step.
//!
//! Events are what leaves the store: each goes to the InfluxDB `alert`
//! measurement, and those with [`AlertEvent::notify`] to the notifiers.

use serde::{Deserialize, Serialize};

use super::key::{AlertKey, Severity};

/// Where an alert is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Raised, waiting out the rule's "for" duration; nobody notified yet.
    Pending,
    /// Active and notified; repeats every `repeat_interval_ms` until acked.
    Firing,
    /// Active, a person has taken it; no repeats (an escalation re-fires).
    Acknowledged,
    /// The condition cleared; kept for `retain_resolved_ms`, then dropped.
    Resolved,
}

impl AlertState {
    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    /// True while the condition is considered to hold (not resolved).
    pub const fn is_active(self) -> bool {
        !matches!(self, AlertState::Resolved)
    }
}

/// An alert: the store's record of one (rule, entity) key.
///
/// The same record (and id) is reused when a resolved alert re-fires while
/// still retained: that is what makes flapping countable. After it has been
/// dropped, a new raise opens a new id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Store-assigned id, unique for the life of the store (snapshots keep
    /// the counter); the API acknowledges by it.
    pub id: u64,
    /// Rule and entity.
    pub key: AlertKey,
    /// Current severity (follows the rule up and down).
    pub severity: Severity,
    /// Highest severity of the current episode.
    pub peak_severity: Severity,
    /// Lifecycle state.
    pub state: AlertState,
    /// Latest measured value reported by the rule.
    pub value: f64,
    /// Threshold the latest value was compared with.
    pub threshold: f64,
    /// Latest human-readable explanation.
    pub message: String,
    /// Event time the current episode was first raised, Unix ms.
    pub started_at_ms: i64,
    /// When the state or severity last changed, Unix ms.
    pub last_change_ms: i64,
    /// When the current episode started firing; `None` while pending.
    pub fired_at_ms: Option<i64>,
    /// When it was acknowledged; `None` unless acknowledged in this episode.
    pub acknowledged_at_ms: Option<i64>,
    /// Who acknowledged it (as given to [`super::AlertStore::ack`]).
    pub acknowledged_by: Option<String>,
    /// When the episode resolved; `None` while active.
    pub resolved_at_ms: Option<i64>,
    /// When a notification (fire, escalation, repeat) was last due, Unix
    /// ms; drives the repeat interval.
    pub last_notified_ms: Option<i64>,
    /// Re-fires (resolved → firing) within the flap window.
    pub flap_count: u32,
    /// True while flapping suppression holds the alert firing.
    pub flapping: bool,
    /// Event time of the latest transition applied; older transitions are
    /// ignored (replay idempotence).
    pub last_transition_at_ms: i64,
    /// Times the alert (re-)fired within the flap window, Unix ms.
    pub recent_fires_ms: Vec<i64>,
    /// While flapping: when the rule last cleared it (the condition has been
    /// quiet since); `None` while the condition holds.
    pub quiet_since_ms: Option<i64>,
    /// Wall time of the first store tick that saw it resolved, Unix ms:
    /// retention counts from here, not from the event time it resolved
    /// at, so the alerts of a replayed backlog stay listed for the whole
    /// retention period. `None` while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_since_ms: Option<i64>,
    /// What people did to it, every episode, oldest first (at most
    /// [`HISTORY_MAX`]): who acknowledged it, when, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// Entries kept in [`Alert::history`]; the oldest go first.
pub const HISTORY_MAX: usize = 50;

/// One thing a person did to an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, Unix ms.
    pub at_ms: i64,
    /// What (`acknowledged`).
    pub event: EventReason,
    /// Who: the name of the API token used.
    pub by: String,
    /// Why, as they said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why an event was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventReason {
    /// A raise opened a pending alert.
    Opened,
    /// The alert started firing (directly, after its "for" duration, or
    /// re-fired after being resolved).
    Fired,
    /// Severity went up while active.
    Escalated,
    /// Severity went down while active (recorded, not notified).
    Deescalated,
    /// A person acknowledged it.
    Acknowledged,
    /// The condition cleared (for a flapping alert: after the quiet period).
    Resolved,
    /// A pending alert cleared before it fired (recorded, not notified).
    Expired,
}

/// A change to record (InfluxDB) and possibly notify.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// The alert after the change.
    pub alert: Alert,
    /// State before; `None` when the alert was created by this event.
    pub from_state: Option<AlertState>,
    /// State after.
    pub to_state: AlertState,
    /// What happened.
    pub reason: EventReason,
    /// When it happened, Unix ms (event time of the transition, or the time
    /// passed to `tick` / `ack`).
    pub at_ms: i64,
}

impl AlertEvent {
    /// True when notifiers should tell someone: firing, escalation,
    /// acknowledgement and resolution of an alert that had fired. Pending,
    /// expired and de-escalation events are only recorded.
    pub fn notify(&self) -> bool {
        matches!(
            self.reason,
            EventReason::Fired
                | EventReason::Escalated
                | EventReason::Acknowledged
                | EventReason::Resolved
        )
    }
}
