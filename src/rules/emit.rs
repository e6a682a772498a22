//! The engine's record of which alerts it has raised, and the only way
//! rules emit transitions.
//!
//! Rules state their verdict on every evaluation; [`Alerts`] turns verdicts
//! into [`Transition`]s only when something changed (new raise, other
//! severity, clear of a raised alert), and keeps each key's `at_ms`
//! non-decreasing. That is what makes the alert store's replay guard safe:
//! a later transition for a key never carries an earlier time. Tick-driven
//! transitions carry wall time while record-driven ones carry event time
//! (up to the reorder window behind), so a cleared key is remembered as a
//! tombstone for [`TOMBSTONE_MS`] and a new raise is stamped no earlier
//! than its clear. The marks live in each device's state, so they are
//! snapshotted with it.

use serde::{Deserialize, Serialize};

use crate::alert::{AlertKey, RuleId, Severity, Transition};

/// How long a cleared key's last transition time is remembered, ms (1 h):
/// longer than the reorder window and the live lag, the only sources of
/// record times running behind tick times.
pub const TOMBSTONE_MS: i64 = 3_600_000;

/// An alert the engine has raised (and not cleared, unless `cleared`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The rule.
    pub rule: RuleId,
    /// The entity when it is not the device id itself (`truck/permit`,
    /// `weighbridge/PLATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Severity last raised.
    pub severity: Severity,
    /// Event time of the last transition for the key, Unix ms.
    pub at_ms: i64,
    /// Cleared: kept only as a tombstone remembering `at_ms`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleared: bool,
}

/// Emits transitions for one device, deduplicated against its marks.
pub struct Alerts<'a> {
    /// Device id: the entity of marks without one.
    device_id: &'a str,
    /// The device's raised alerts.
    marks: &'a mut Vec<Mark>,
    /// Where transitions go.
    out: &'a mut Vec<Transition>,
}

impl<'a> Alerts<'a> {
    /// An emitter for `device_id`'s `marks`, appending to `out`.
    pub fn new(device_id: &'a str, marks: &'a mut Vec<Mark>, out: &'a mut Vec<Transition>) -> Self {
        Self {
            device_id,
            marks,
            out,
        }
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        self.device_id
    }

    /// Index of the mark (raised or tombstone) of (`rule`, `entity`).
    fn find(&self, rule: RuleId, entity: Option<&str>) -> Option<usize> {
        self.marks
            .iter()
            .position(|m| m.rule == rule && m.entity.as_deref() == entity)
    }

    /// Index of the raised (not cleared) mark of (`rule`, `entity`).
    fn find_raised(&self, rule: RuleId, entity: Option<&str>) -> Option<usize> {
        self.find(rule, entity).filter(|&i| !self.marks[i].cleared)
    }

    /// Severity raised for `rule` about the device, if any.
    pub fn current(&self, rule: RuleId) -> Option<Severity> {
        self.current_for(rule, None)
    }

    /// Severity raised for `rule` about `entity` (`None`: the device).
    pub fn current_for(&self, rule: RuleId, entity: Option<&str>) -> Option<Severity> {
        self.find_raised(rule, entity)
            .map(|i| self.marks[i].severity)
    }

    /// Raises `rule` about `entity` (`None`: the device) at `severity`;
    /// emits only when new or at another severity. `message` is built only
    /// then.
    #[allow(clippy::too_many_arguments)]
    pub fn raise(
        &mut self,
        rule: RuleId,
        entity: Option<&str>,
        severity: Severity,
        value: f64,
        threshold: f64,
        at_ms: i64,
        message: impl FnOnce() -> String,
    ) {
        let at_ms = match self.find(rule, entity) {
            Some(i) if !self.marks[i].cleared && self.marks[i].severity == severity => return,
            Some(i) => {
                let m = &mut self.marks[i];
                m.severity = severity;
                m.cleared = false;
                m.at_ms = m.at_ms.max(at_ms);
                m.at_ms
            }
            None => {
                self.marks.push(Mark {
                    rule,
                    entity: entity.map(str::to_owned),
                    severity,
                    at_ms,
                    cleared: false,
                });
                at_ms
            }
        };
        self.out.push(Transition::Raise {
            key: AlertKey::new(rule, entity.unwrap_or(self.device_id)),
            severity,
            value,
            threshold,
            message: message(),
            at_ms,
        });
    }

    /// Clears `rule` about `entity` if raised.
    pub fn clear(&mut self, rule: RuleId, entity: Option<&str>, at_ms: i64) {
        if let Some(i) = self.find_raised(rule, entity) {
            let m = &mut self.marks[i];
            m.cleared = true;
            m.at_ms = m.at_ms.max(at_ms);
            self.out.push(Transition::Clear {
                key: AlertKey::new(rule, entity.unwrap_or(self.device_id)),
                at_ms: m.at_ms,
            });
        }
    }

    /// Raises (`Some`) or clears (`None`) `rule` about the device.
    pub fn set(
        &mut self,
        rule: RuleId,
        verdict: Option<(Severity, f64, f64)>,
        at_ms: i64,
        message: impl FnOnce() -> String,
    ) {
        match verdict {
            Some((severity, value, threshold)) => {
                self.raise(rule, None, severity, value, threshold, at_ms, message)
            }
            None => self.clear(rule, None, at_ms),
        }
    }

    /// The raised marks (tombstones included; read-only).
    pub fn marks(&self) -> &[Mark] {
        self.marks
    }

    /// Forgets tombstones older than [`TOMBSTONE_MS`] before `now_ms`.
    pub fn prune(&mut self, now_ms: i64) {
        self.marks
            .retain(|m| !m.cleared || now_ms - m.at_ms <= TOMBSTONE_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_emitted_and_times_never_go_back() {
        let (mut marks, mut out) = (Vec::new(), Vec::new());
        let mut a = Alerts::new("st-1", &mut marks, &mut out);
        a.raise(
            RuleId::Leak,
            None,
            Severity::Critical,
            1.0,
            1.0,
            100,
            || "wet".into(),
        );
        a.raise(
            RuleId::Leak,
            None,
            Severity::Critical,
            1.0,
            1.0,
            200,
            || unreachable!(),
        );
        a.clear(RuleId::Leak, None, 50);
        a.clear(RuleId::Leak, None, 300);
        // Raised again by evidence older than the clear: stamped at the clear.
        a.raise(RuleId::Leak, None, Severity::Critical, 1.0, 1.0, 80, || {
            "wet".into()
        });
        a.prune(100 + TOMBSTONE_MS + 1);
        assert_eq!(a.marks().len(), 1);
        a.raise(
            RuleId::RouteDeviation,
            Some("t/p"),
            Severity::Warn,
            1.0,
            1.0,
            10,
            String::new,
        );
        assert_eq!(
            a.current_for(RuleId::RouteDeviation, Some("t/p")),
            Some(Severity::Warn)
        );
        assert_eq!(a.current(RuleId::RouteDeviation), None);
        a.clear(RuleId::RouteDeviation, Some("t/p"), 20);
        a.prune(20 + TOMBSTONE_MS + 1);
        assert_eq!(a.marks().len(), 1);
        let times: Vec<(String, i64)> = out
            .iter()
            .map(|t| (t.key().to_string(), t.at_ms()))
            .collect();
        assert_eq!(
            times,
            [
                ("leak:st-1".to_owned(), 100),
                ("leak:st-1".to_owned(), 100),
                ("leak:st-1".to_owned(), 100),
                ("route_deviation:t/p".to_owned(), 10),
                ("route_deviation:t/p".to_owned(), 20)
            ]
        );
    }
}
