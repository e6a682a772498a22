//! What a rule tells the alert store: "this condition holds now, this bad"
//! ([`Transition::Raise`]) or "it no longer holds" ([`Transition::Clear`]).
//!
//! The rule engine emits a transition only when its view of a key changes
//! (raised, severity changed, cleared), and the `at_ms` of successive
//! transitions for one key never decrease; the store relies on both to stay
//! idempotent under replay (see `store.rs`).

use serde::{Deserialize, Serialize};

use super::key::{AlertKey, Severity};

/// A change of a rule's verdict for one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transition {
    /// The condition holds (first time, or at a new severity).
    Raise {
        /// Rule and entity.
        key: AlertKey,
        /// How bad it is now.
        severity: Severity,
        /// The measured value that triggered it (unit per [`super::RuleId`]).
        value: f64,
        /// The threshold it was compared with (same unit as `value`).
        threshold: f64,
        /// Human-readable explanation for notifications and dashboards.
        message: String,
        /// Event time of the evidence, Unix ms.
        at_ms: i64,
    },
    /// The condition no longer holds (past the rule's clear threshold).
    Clear {
        /// Rule and entity.
        key: AlertKey,
        /// Event time of the evidence, Unix ms.
        at_ms: i64,
    },
}

impl Transition {
    /// The key the transition is about.
    pub fn key(&self) -> &AlertKey {
        match self {
            Transition::Raise { key, .. } | Transition::Clear { key, .. } => key,
        }
    }

    /// Event time of the transition, Unix ms.
    pub fn at_ms(&self) -> i64 {
        match self {
            Transition::Raise { at_ms, .. } | Transition::Clear { at_ms, .. } => *at_ms,
        }
    }

    /// The severity of a raise; `None` for a clear.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Transition::Raise { severity, .. } => Some(*severity),
            Transition::Clear { .. } => None,
        }
    }
}
