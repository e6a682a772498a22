//! The alert store's timing policy: "for" durations, repeat interval,
//! flapping suppression and retention, with their defaults.
//!
//! All values are [P] (our proposed defaults, docs/RULES.md notation) except
//! where noted; the owner maps them from the config file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::key::RuleId;

/// Timing policy of an [`super::AlertStore`].
///
/// Flapping: an alert that resolves and re-fires more than
/// `flap_max_refires` times within `flap_window_ms` is marked flapping and
/// held firing (its clears are not applied) until its condition has been
/// quiet for `flap_quiet_ms`; only then does it resolve. This trades a late
/// "resolved" for not paging someone every few minutes about the same
/// borderline sensor. While held, re-raises are counted in `flap_count` but
/// not notified; escalations still are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertPolicy {
    /// "For" duration of rules without an entry in `pending_for_ms`, ms; 0
    /// fires on the first raise (our rules debounce themselves). [P]
    pub default_pending_for_ms: i64,
    /// "For" duration per rule, ms: a raise stays pending this long before it
    /// fires, and vanishes (expired) if cleared before. [P]
    pub pending_for_ms: BTreeMap<RuleId, i64>,
    /// Re-notify firing, unacknowledged alerts this often, ms; 4 h. [P]
    /// (Alertmanager's default `repeat_interval` is also 4 h [S].)
    pub repeat_interval_ms: i64,
    /// Window in which re-fires are counted, ms; 30 min. [P]
    pub flap_window_ms: i64,
    /// More re-fires than this within the window is flapping; 3. [P]
    pub flap_max_refires: u32,
    /// A flapping alert resolves after its condition has been quiet this
    /// long, ms; 10 min. [P]
    pub flap_quiet_ms: i64,
    /// Resolved alerts are kept (listable, reopened on re-fire) this long,
    /// ms; 24 h, and never less than `flap_window_ms`. [P]
    pub retain_resolved_ms: i64,
    /// At most this many resolved alerts are kept; the oldest go first. [P]
    pub max_retained_resolved: usize,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            default_pending_for_ms: 0,
            pending_for_ms: BTreeMap::new(),
            repeat_interval_ms: 4 * 3_600_000,
            flap_window_ms: 30 * 60_000,
            flap_max_refires: 3,
            flap_quiet_ms: 10 * 60_000,
            retain_resolved_ms: 24 * 3_600_000,
            max_retained_resolved: 10_000,
        }
    }
}

impl AlertPolicy {
    /// The "for" duration of `rule`, ms (never negative).
    pub fn pending_for(&self, rule: RuleId) -> i64 {
        self.pending_for_ms
            .get(&rule)
            .copied()
            .unwrap_or(self.default_pending_for_ms)
            .max(0)
    }

    /// How long resolved alerts are kept, ms: at least the flap window, so
    /// that re-fires can be counted.
    pub fn retention_ms(&self) -> i64 {
        self.retain_resolved_ms.max(self.flap_window_ms)
    }
}
