//! The alert store: applies the rule engine's [`Transition`]s to the alert
//! lifecycle and says which [`AlertEvent`]s to record and notify.
//!
//! Pure and synchronous: time is an argument, nothing is written anywhere.
//! The async shell around it persists [`AlertStore::snapshot`] together with
//! the rule engine's snapshot (same log offset), forwards events to the
//! notifiers' outbox and the TSDB, calls [`AlertStore::tick`] and
//! [`AlertStore::due_repeats`] on a timer, and serves `list` / `ack` to the
//! HTTP API.
//!
//! Guarantees:
//! - at most one active alert per (rule, entity) key;
//! - idempotent under replay: a raise at the current severity, a clear of a
//!   resolved alert, or any transition older than the last one applied to
//!   its key changes nothing and emits nothing — so re-applying transitions
//!   after a restart never duplicates a notification;
//! - every state change yields exactly one event.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::key::{AlertKey, RuleId, Severity};
use super::lifecycle::{Alert, AlertEvent, AlertState, EventReason};
use super::policy::AlertPolicy;
use super::transition::Transition;

/// Why an acknowledgement was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AckError {
    /// No alert has this id (never existed, or resolved and dropped).
    #[error("alert {id} not found; list alerts to get a current id")]
    NotFound {
        /// The id asked for.
        id: u64,
    },
    /// The alert is resolved.
    #[error("alert {id} is resolved; only active alerts can be acknowledged")]
    Resolved {
        /// The id asked for.
        id: u64,
    },
    /// The alert is still pending (nobody was notified yet).
    #[error("alert {id} is pending and has not fired yet; acknowledge it once it fires")]
    NotFiring {
        /// The id asked for.
        id: u64,
    },
}

/// Why a snapshot could not be written or read.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// serde_json failed (corrupt or incompatible snapshot).
    #[error("alert store snapshot is not valid: {0}")]
    Json(#[from] serde_json::Error),
}

/// Which alerts [`AlertStore::list`] returns; every `None` matches all.
/// Deserializable so the API can take it as query parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertFilter {
    /// Only alerts in this state.
    pub state: Option<AlertState>,
    /// Only active (`true`) or only resolved (`false`) alerts.
    pub active: Option<bool>,
    /// Only alerts of this rule.
    pub rule: Option<RuleId>,
    /// Only alerts whose entity starts with this (a device id also matches
    /// its `device/permit` entities).
    pub entity_prefix: Option<String>,
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// At most this many (after sorting).
    pub limit: Option<usize>,
}

impl AlertFilter {
    /// True when `a` passes the filter.
    pub fn matches(&self, a: &Alert) -> bool {
        self.state.is_none_or(|s| a.state == s)
            && self.active.is_none_or(|act| a.state.is_active() == act)
            && self.rule.is_none_or(|r| a.key.rule == r)
            && self
                .entity_prefix
                .as_deref()
                .is_none_or(|p| a.key.entity.starts_with(p))
            && self.min_severity.is_none_or(|s| a.severity >= s)
    }
}

/// The alerts, keyed by id, with an index by key.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AlertStore {
    /// Timing policy.
    policy: AlertPolicy,
    /// Next id to assign.
    next_id: u64,
    /// Every alert, active or retained resolved, by id.
    alerts: BTreeMap<u64, Alert>,
    /// Id of the alert of each key (rebuilt from `alerts` on restore).
    by_key: HashMap<AlertKey, u64>,
    /// When the service's clock saw each pending alert open (see
    /// [`AlertStore::mark_clock`]).
    pending_marks: BTreeMap<u64, ClockMark>,
    /// When the service's clock saw each held (flapping) alert go quiet.
    quiet_marks: BTreeMap<u64, ClockMark>,
}

/// The service-clock time at which a device-time instant was first seen:
/// `tick` measures a pending alert's `for` and a held alert's quiet time
/// from it, so that readings of a backlog (device times hours old) do not
/// make every timer look expired at the next tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ClockMark {
    /// The alert's device-time field it belongs to (`started_at_ms` or
    /// `quiet_since_ms`): a new episode gets a new mark.
    device_ms: i64,
    /// The service's clock when it was seen, Unix ms.
    clock_ms: i64,
}

impl ClockMark {
    /// The service time to measure from for `device_ms`: the mark's when it
    /// belongs to that instant, else the device time itself (an alert never
    /// marked: unit use without a service clock, or an older snapshot).
    fn since(mark: Option<&ClockMark>, device_ms: i64) -> i64 {
        mark.filter(|m| m.device_ms == device_ms)
            .map_or(device_ms, |m| m.clock_ms)
    }
}

/// The serialized form of the store: JSON maps need string keys, so the
/// alerts travel as a list and the key index is rebuilt.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSnapshot {
    /// See [`AlertStore::policy`].
    policy: AlertPolicy,
    /// See [`AlertStore::next_id`].
    next_id: u64,
    /// Every alert, by ascending id.
    alerts: Vec<Alert>,
    /// See [`AlertStore::pending_marks`] (absent in older snapshots).
    #[serde(default)]
    pending_marks: Vec<(u64, ClockMark)>,
    /// See [`AlertStore::quiet_marks`].
    #[serde(default)]
    quiet_marks: Vec<(u64, ClockMark)>,
}

/// Borrowing twin of [`StoreSnapshot`] for serializing without a copy.
#[derive(Serialize)]
struct StoreSnapshotRef<'a> {
    /// See [`AlertStore::policy`].
    policy: &'a AlertPolicy,
    /// See [`AlertStore::next_id`].
    next_id: u64,
    /// Every alert, by ascending id.
    alerts: Vec<&'a Alert>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pending_marks: Vec<(u64, ClockMark)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quiet_marks: Vec<(u64, ClockMark)>,
}

impl Serialize for AlertStore {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoreSnapshotRef {
            policy: &self.policy,
            next_id: self.next_id,
            alerts: self.alerts.values().collect(),
            pending_marks: self.pending_marks.iter().map(|(k, v)| (*k, *v)).collect(),
            quiet_marks: self.quiet_marks.iter().map(|(k, v)| (*k, *v)).collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for AlertStore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let snap = StoreSnapshot::deserialize(d)?;
        let mut store = AlertStore::new(snap.policy);
        for a in snap.alerts {
            store.next_id = store.next_id.max(a.id + 1);
            store.by_key.insert(a.key.clone(), a.id);
            store.alerts.insert(a.id, a);
        }
        store.next_id = store.next_id.max(snap.next_id);
        let known = |(id, _): &(u64, ClockMark)| store.alerts.contains_key(id);
        let pending: BTreeMap<_, _> = snap.pending_marks.into_iter().filter(known).collect();
        let quiet: BTreeMap<_, _> = snap.quiet_marks.into_iter().filter(known).collect();
        store.pending_marks = pending;
        store.quiet_marks = quiet;
        Ok(store)
    }
}

/// Replaces NaN with 0 and infinities with the largest finite values, so
/// every alert survives a JSON snapshot (JSON has no NaN).
fn finite(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(f64::MIN, f64::MAX)
    }
}

impl AlertStore {
    /// An empty store with this policy.
    pub fn new(policy: AlertPolicy) -> Self {
        Self {
            policy,
            next_id: 1,
            alerts: BTreeMap::new(),
            by_key: HashMap::new(),
            pending_marks: BTreeMap::new(),
            quiet_marks: BTreeMap::new(),
        }
    }

    /// The timing policy.
    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Replaces the timing policy (after a config reload or a restore).
    pub fn set_policy(&mut self, policy: AlertPolicy) {
        self.policy = policy;
    }

    /// Applies one transition; returns the events it caused (zero or one).
    pub fn apply(&mut self, t: Transition) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        match t {
            Transition::Raise {
                key,
                severity,
                value,
                threshold,
                message,
                at_ms,
            } => self.raise(
                key,
                severity,
                finite(value),
                finite(threshold),
                message,
                at_ms,
                &mut events,
            ),
            Transition::Clear { key, at_ms } => self.clear(&key, at_ms, &mut events),
        }
        events
    }

    /// Applies transitions in order; returns all their events in order.
    pub fn apply_all(&mut self, ts: impl IntoIterator<Item = Transition>) -> Vec<AlertEvent> {
        ts.into_iter().flat_map(|t| self.apply(t)).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        key: AlertKey,
        severity: Severity,
        value: f64,
        threshold: f64,
        message: String,
        at_ms: i64,
        events: &mut Vec<AlertEvent>,
    ) {
        let pending_for = self.policy.pending_for(key.rule);
        let existing = self.by_key.get(&key).copied();
        let Some(a) = existing.and_then(|id| self.alerts.get_mut(&id)) else {
            let id = self.next_id;
            self.next_id += 1;
            let mut a = Alert {
                id,
                key: key.clone(),
                severity,
                peak_severity: severity,
                state: AlertState::Pending,
                value,
                threshold,
                message,
                started_at_ms: at_ms,
                last_change_ms: at_ms,
                fired_at_ms: None,
                acknowledged_at_ms: None,
                acknowledged_by: None,
                resolved_at_ms: None,
                last_notified_ms: None,
                flap_count: 0,
                flapping: false,
                last_transition_at_ms: at_ms,
                recent_fires_ms: Vec::new(),
                quiet_since_ms: None,
                retained_since_ms: None,
                history: Vec::new(),
            };
            let (to, reason) = if pending_for > 0 {
                (AlertState::Pending, EventReason::Opened)
            } else {
                fire(&self.policy, &mut a, at_ms);
                (AlertState::Firing, EventReason::Fired)
            };
            events.push(event(&a, None, to, reason, at_ms));
            self.by_key.insert(key, id);
            self.alerts.insert(id, a);
            return;
        };
        if at_ms < a.last_transition_at_ms {
            return; // older than what we already know: a replay
        }
        a.last_transition_at_ms = at_ms;
        a.value = value;
        a.threshold = threshold;
        a.message = message;
        let from = a.state;
        match a.state {
            AlertState::Resolved => {
                // Re-open the same record: a new episode.
                a.severity = severity;
                a.peak_severity = severity;
                a.started_at_ms = at_ms;
                a.fired_at_ms = None;
                a.acknowledged_at_ms = None;
                a.acknowledged_by = None;
                a.resolved_at_ms = None;
                a.quiet_since_ms = None;
                a.retained_since_ms = None;
                a.last_change_ms = at_ms;
                if pending_for > 0 {
                    a.state = AlertState::Pending;
                    events.push(event(a, Some(from), a.state, EventReason::Opened, at_ms));
                } else {
                    fire(&self.policy, a, at_ms);
                    events.push(event(a, Some(from), a.state, EventReason::Fired, at_ms));
                }
            }
            AlertState::Pending => {
                a.severity = severity;
                a.peak_severity = a.peak_severity.max(severity);
                if at_ms - a.started_at_ms >= pending_for {
                    fire(&self.policy, a, at_ms);
                    events.push(event(a, Some(from), a.state, EventReason::Fired, at_ms));
                }
            }
            AlertState::Firing | AlertState::Acknowledged => {
                if a.quiet_since_ms.take().is_some() {
                    // Flapping and held: the condition is back. Count the
                    // cycle, tell nobody.
                    a.flap_count = a.flap_count.saturating_add(1);
                    push_fire(&self.policy, a, at_ms);
                }
                if severity > a.severity {
                    a.severity = severity;
                    a.peak_severity = a.peak_severity.max(severity);
                    a.state = AlertState::Firing;
                    a.acknowledged_at_ms = None;
                    a.acknowledged_by = None;
                    a.last_change_ms = at_ms;
                    a.last_notified_ms = Some(at_ms);
                    events.push(event(a, Some(from), a.state, EventReason::Escalated, at_ms));
                } else if severity < a.severity {
                    a.severity = severity;
                    a.last_change_ms = at_ms;
                    events.push(event(
                        a,
                        Some(from),
                        a.state,
                        EventReason::Deescalated,
                        at_ms,
                    ));
                }
            }
        }
    }

    fn clear(&mut self, key: &AlertKey, at_ms: i64, events: &mut Vec<AlertEvent>) {
        let Some(a) = self
            .by_key
            .get(key)
            .copied()
            .and_then(|id| self.alerts.get_mut(&id))
        else {
            return;
        };
        if at_ms < a.last_transition_at_ms || !a.state.is_active() {
            return;
        }
        a.last_transition_at_ms = at_ms;
        let from = a.state;
        match a.state {
            AlertState::Pending => {
                resolve(a, at_ms, at_ms);
                events.push(event(a, Some(from), a.state, EventReason::Expired, at_ms));
            }
            AlertState::Firing | AlertState::Acknowledged if a.flapping => {
                // Held: resolve only after `flap_quiet_ms` of quiet (tick).
                a.quiet_since_ms.get_or_insert(at_ms);
            }
            AlertState::Firing | AlertState::Acknowledged => {
                resolve(a, at_ms, at_ms);
                events.push(event(a, Some(from), a.state, EventReason::Resolved, at_ms));
            }
            AlertState::Resolved => {}
        }
    }

    /// Time-driven changes at `now_ms`: pending alerts whose "for" duration
    /// has passed fire, flapping alerts quiet for `flap_quiet_ms` resolve,
    /// resolved alerts past retention (counted from the first tick that saw
    /// them resolved, in wall time) are dropped. Call it every few seconds.
    pub fn tick(&mut self, now_ms: i64) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let mut drop_ids = Vec::new();
        let retention = self.policy.retention_ms();
        for a in self.alerts.values_mut() {
            let from = a.state;
            match a.state {
                AlertState::Pending => {
                    let since = ClockMark::since(self.pending_marks.get(&a.id), a.started_at_ms);
                    if now_ms - since >= self.policy.pending_for(a.key.rule) {
                        fire(&self.policy, a, now_ms);
                        events.push(event(a, Some(from), a.state, EventReason::Fired, now_ms));
                    }
                }
                AlertState::Firing | AlertState::Acknowledged => {
                    if let Some(quiet) = a.quiet_since_ms {
                        let since = ClockMark::since(self.quiet_marks.get(&a.id), quiet);
                        if now_ms - since >= self.policy.flap_quiet_ms {
                            resolve(a, quiet, now_ms);
                            events.push(event(
                                a,
                                Some(from),
                                a.state,
                                EventReason::Resolved,
                                now_ms,
                            ));
                        }
                    }
                }
                AlertState::Resolved => {
                    let since = *a.retained_since_ms.get_or_insert(now_ms);
                    if now_ms.saturating_sub(since) >= retention {
                        drop_ids.push(a.id);
                    }
                }
            }
        }
        let resolved = self
            .alerts
            .values()
            .filter(|a| a.state == AlertState::Resolved && !drop_ids.contains(&a.id))
            .count();
        if resolved > self.policy.max_retained_resolved {
            let mut oldest: Vec<(i64, u64)> = self
                .alerts
                .values()
                .filter(|a| a.state == AlertState::Resolved && !drop_ids.contains(&a.id))
                .map(|a| (a.resolved_at_ms.unwrap_or(i64::MIN), a.id))
                .collect();
            oldest.sort_unstable();
            let excess = resolved - self.policy.max_retained_resolved;
            drop_ids.extend(oldest.into_iter().take(excess).map(|(_, id)| id));
        }
        self.forget_stale_marks();
        for id in drop_ids {
            if let Some(a) = self.alerts.remove(&id) {
                if self.by_key.get(&a.key) == Some(&id) {
                    self.by_key.remove(&a.key);
                }
            }
        }
        events
    }

    /// Acknowledges firing alert `id` at `at_ms` on behalf of `by`: it stays
    /// active but is not repeated. `Ok(None)` when it already was
    /// acknowledged (idempotent).
    pub fn ack(&mut self, id: u64, at_ms: i64, by: &str) -> Result<Option<AlertEvent>, AckError> {
        self.ack_with_reason(id, at_ms, by, None)
    }

    /// [`AlertStore::ack`], keeping who and why in the alert's history.
    pub fn ack_with_reason(
        &mut self,
        id: u64,
        at_ms: i64,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Option<AlertEvent>, AckError> {
        let a = self.alerts.get_mut(&id).ok_or(AckError::NotFound { id })?;
        match a.state {
            AlertState::Resolved => Err(AckError::Resolved { id }),
            AlertState::Pending => Err(AckError::NotFiring { id }),
            AlertState::Acknowledged => Ok(None),
            AlertState::Firing => {
                a.state = AlertState::Acknowledged;
                a.acknowledged_at_ms = Some(at_ms);
                a.acknowledged_by = Some(by.to_owned());
                a.last_change_ms = at_ms;
                if a.history.len() >= super::lifecycle::HISTORY_MAX {
                    a.history.remove(0);
                }
                a.history.push(super::lifecycle::HistoryEntry {
                    at_ms,
                    event: EventReason::Acknowledged,
                    by: by.to_owned(),
                    reason: reason.map(str::to_owned),
                });
                Ok(Some(event(
                    a,
                    Some(AlertState::Firing),
                    a.state,
                    EventReason::Acknowledged,
                    at_ms,
                )))
            }
        }
    }

    /// Records, on the clock [`Self::tick`] is called with, when each pending
    /// alert opened and each held alert went quiet (call after applying
    /// transitions). `tick` then measures `for` and the flap quiet time from
    /// these marks: for readings of a backlog or a replay (device times
    /// hours old) it would otherwise fire every pending alert at the next
    /// tick, before the rest of the backlog could clear it, and resolve
    /// every held alert at once.
    pub fn mark_clock(&mut self, now_ms: i64) {
        // A mark stays while it belongs to the same device-time instant.
        fn mark(marks: &mut BTreeMap<u64, ClockMark>, id: u64, device_ms: i64, now_ms: i64) {
            let m = marks.entry(id).or_insert(ClockMark {
                device_ms,
                clock_ms: now_ms,
            });
            if m.device_ms != device_ms {
                *m = ClockMark {
                    device_ms,
                    clock_ms: now_ms,
                };
            }
        }
        for a in self.alerts.values() {
            if a.state == AlertState::Pending {
                mark(&mut self.pending_marks, a.id, a.started_at_ms, now_ms);
            }
            if let (AlertState::Firing | AlertState::Acknowledged, Some(q)) =
                (a.state, a.quiet_since_ms)
            {
                mark(&mut self.quiet_marks, a.id, q, now_ms);
            }
        }
        self.forget_stale_marks();
    }

    /// Drops the marks of alerts no longer pending or held quiet.
    fn forget_stale_marks(&mut self) {
        let alerts = &self.alerts;
        self.pending_marks.retain(|id, m| {
            alerts
                .get(id)
                .is_some_and(|a| a.state == AlertState::Pending && a.started_at_ms == m.device_ms)
        });
        self.quiet_marks.retain(|id, m| {
            alerts.get(id).is_some_and(|a| {
                a.state.is_active()
                    && a.state != AlertState::Pending
                    && a.quiet_since_ms == Some(m.device_ms)
            })
        });
    }

    /// Records that the notifications of `events` went out at `now_ms` on
    /// the clock [`Self::due_repeats`] is asked with. Transitions carry the
    /// device time of the reading that caused them, which for a backlog or
    /// a replay is hours or days before `now_ms`: without this, an alert
    /// raised from old readings would look overdue for its repeat at the
    /// next tick and be notified twice within a second.
    pub fn mark_notified(&mut self, events: &[AlertEvent], now_ms: i64) {
        for ev in events.iter().filter(|e| e.notify()) {
            if let Some(a) = self.alerts.get_mut(&ev.alert.id) {
                if a.state == AlertState::Firing {
                    a.last_notified_ms = Some(now_ms);
                }
            }
        }
    }

    /// Firing, unacknowledged alerts whose last notification is at least
    /// `repeat_interval_ms` before `now_ms`; marks them notified at `now_ms`
    /// (the caller sends them).
    pub fn due_repeats(&mut self, now_ms: i64) -> Vec<Alert> {
        let every = self.policy.repeat_interval_ms.max(1);
        let mut out = Vec::new();
        for a in self.alerts.values_mut() {
            let due = a.state == AlertState::Firing
                && a.last_notified_ms.is_none_or(|n| now_ms - n >= every);
            if due {
                a.last_notified_ms = Some(now_ms);
                out.push(a.clone());
            }
        }
        out
    }

    /// Alerts passing `filter`, most severe first, then most recently
    /// changed.
    pub fn list(&self, filter: &AlertFilter) -> Vec<Alert> {
        let mut out: Vec<&Alert> = self.alerts.values().filter(|a| filter.matches(a)).collect();
        out.sort_by(|a, b| {
            b.state
                .is_active()
                .cmp(&a.state.is_active())
                .then(b.severity.cmp(&a.severity))
                .then(b.last_change_ms.cmp(&a.last_change_ms))
                .then(a.id.cmp(&b.id))
        });
        out.into_iter()
            .take(filter.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// The alert with this id.
    pub fn get(&self, id: u64) -> Option<&Alert> {
        self.alerts.get(&id)
    }

    /// The alert of this key (active or retained resolved).
    pub fn get_by_key(&self, key: &AlertKey) -> Option<&Alert> {
        self.by_key.get(key).and_then(|id| self.alerts.get(id))
    }

    /// Number of active (not resolved) alerts.
    pub fn active_count(&self) -> usize {
        self.alerts.values().filter(|a| a.state.is_active()).count()
    }

    /// Number of alerts held, resolved ones included.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// True when no alert is held.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// The whole store (policy, id counter, alerts) as JSON.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// A store from [`AlertStore::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Most fire times kept per alert (a sensor flapping every few seconds
/// must not grow the record without bound).
const MAX_RECENT_FIRES: usize = 64;

/// Records a (re-)fire at `at_ms` in the flap window and decides flapping.
fn push_fire(policy: &AlertPolicy, a: &mut Alert, at_ms: i64) {
    a.recent_fires_ms
        .retain(|&t| at_ms - t < policy.flap_window_ms);
    if a.recent_fires_ms.len() >= MAX_RECENT_FIRES {
        a.recent_fires_ms.remove(0);
    }
    a.recent_fires_ms.push(at_ms);
    let refires = u32::try_from(a.recent_fires_ms.len().saturating_sub(1)).unwrap_or(u32::MAX);
    a.flap_count = a.flap_count.max(refires);
    if refires > policy.flap_max_refires {
        a.flapping = true;
    }
}

/// Moves `a` to firing at `at_ms`.
fn fire(policy: &AlertPolicy, a: &mut Alert, at_ms: i64) {
    a.state = AlertState::Firing;
    a.fired_at_ms = Some(at_ms);
    a.last_change_ms = at_ms;
    a.last_notified_ms = Some(at_ms);
    // The count is of re-fires in the window, so start over once it passed.
    if a.recent_fires_ms
        .last()
        .is_none_or(|&t| at_ms - t >= policy.flap_window_ms)
    {
        a.flap_count = 0;
    }
    push_fire(policy, a, at_ms);
}

/// Moves `a` to resolved: the condition cleared at `cleared_ms`, decided at
/// `at_ms`.
fn resolve(a: &mut Alert, cleared_ms: i64, at_ms: i64) {
    a.state = AlertState::Resolved;
    a.resolved_at_ms = Some(cleared_ms);
    a.last_change_ms = at_ms;
    a.flapping = false;
    a.quiet_since_ms = None;
}

/// An event with a snapshot of `a`.
fn event(
    a: &Alert,
    from_state: Option<AlertState>,
    to_state: AlertState,
    reason: EventReason,
    at_ms: i64,
) -> AlertEvent {
    AlertEvent {
        alert: a.clone(),
        from_state,
        to_state,
        reason,
        at_ms,
    }
}

#[cfg(test)]
mod tests;
