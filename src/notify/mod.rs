//! Notifiers: where alert notifications go. Alertmanager (which routes on
//! to phone, e-mail and chat) and webhooks — plain JSON, DingTalk and WeCom
//! robots. Each receiver has its own outbox: notifications wait there until
//! the receiver has taken them, and the outboxes are part of the rules
//! snapshot, so a restart neither loses nor forgets them (what happened
//! after the snapshot is replayed from the log and queued again).

pub mod alertmanager;
pub mod dispatch;
pub mod webhook;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::Alert;

/// Most notifications an outbox holds; past that the oldest are dropped
/// (and counted): a receiver down for days must not grow memory forever.
pub const OUTBOX_LIMIT: usize = 10_000;

/// A receiver.
#[derive(Clone)]
pub enum Notifier {
    /// Prometheus Alertmanager.
    Alertmanager(alertmanager::Alertmanager),
    /// A webhook or chat robot.
    Webhook(webhook::Webhook),
}

impl Notifier {
    /// Name (the outbox key): `alertmanager`, or the webhook's name.
    pub fn name(&self) -> &str {
        match self {
            Notifier::Alertmanager(_) => "alertmanager",
            Notifier::Webhook(w) => w.name(),
        }
    }

    /// True when `a` is for this receiver.
    pub fn wants(&self, a: &Alert) -> bool {
        match self {
            Notifier::Alertmanager(_) => true,
            Notifier::Webhook(w) => w.wants(a),
        }
    }

    /// True when the receiver expects every active alert re-sent
    /// periodically (Alertmanager).
    pub fn resends(&self) -> bool {
        matches!(self, Notifier::Alertmanager(_))
    }

    /// Delivers `alerts`; Err says why not (never a secret).
    pub async fn post(&self, alerts: &[Alert], now_ms: i64) -> Result<(), NotifyError> {
        match self {
            Notifier::Alertmanager(a) => a.post(alerts).await,
            Notifier::Webhook(w) => w.post(alerts, now_ms).await,
        }
    }
}

/// Why a receiver's client was not built or a delivery failed. Names the
/// receiver (`alertmanager`, `webhook NAME`), never its URL: a robot's URL
/// carries its access token.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The client cannot be built (URL, TLS set-up).
    #[error("{receiver}: {source}")]
    Setup {
        /// The receiver.
        receiver: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The message body cannot be encoded.
    #[error("{receiver}: cannot encode the body: {source}")]
    Encode {
        /// The receiver.
        receiver: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// No answer: connection refused, timeout, TLS.
    #[error("{receiver} unreachable: {source}")]
    Unreachable {
        /// The receiver.
        receiver: String,
        /// The HTTP client's error, without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not a 2xx.
    #[error("{receiver} answered HTTP {status}")]
    Status {
        /// The receiver.
        receiver: String,
        /// The status.
        status: reqwest::StatusCode,
    },
    /// A robot's answer that is not JSON.
    #[error("{receiver}: answer is not JSON: {source}")]
    NotJson {
        /// The receiver.
        receiver: String,
        /// The HTTP client's error, without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// A robot that answered with a non-zero `errcode`.
    #[error("{receiver} refused the message: errcode {code} ({message})")]
    Refused {
        /// The receiver.
        receiver: String,
        /// The robot's errcode.
        code: i64,
        /// Its errmsg.
        message: String,
    },
    /// A robot's JSON answer without an `errcode`.
    #[error("{receiver}: answer has no errcode: {answer}")]
    NoErrcode {
        /// The receiver.
        receiver: String,
        /// The answer.
        answer: String,
    },
}

/// Undelivered notifications per receiver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Outboxes(pub BTreeMap<String, Vec<Alert>>);

impl Outboxes {
    /// Queues `a` for `receiver`. A queued notification of the same alert
    /// in the same state is replaced by the newer one (a repeat or a
    /// resend adds nothing). Returns how many old ones were dropped to
    /// stay within [`OUTBOX_LIMIT`].
    pub fn push(&mut self, receiver: &str, a: &Alert) -> usize {
        let q = self.0.entry(receiver.to_owned()).or_default();
        if let Some(old) = q.iter_mut().find(|o| o.id == a.id && o.state == a.state) {
            *old = a.clone();
            return 0;
        }
        q.push(a.clone());
        let excess = q.len().saturating_sub(OUTBOX_LIMIT);
        q.drain(..excess);
        excess
    }

    /// The queue of `receiver`.
    pub fn queue(&self, receiver: &str) -> &[Alert] {
        self.0.get(receiver).map_or(&[], Vec::as_slice)
    }

    /// Removes what `receiver` took: each queued notification equal to one
    /// of `batch` (same alert, state and last change). One replaced by a
    /// newer version while the batch was in flight stays queued.
    pub fn delivered(&mut self, receiver: &str, batch: &[Alert]) {
        if let Some(q) = self.0.get_mut(receiver) {
            q.retain(|a| {
                !batch.iter().any(|b| {
                    b.id == a.id
                        && b.state == a.state
                        && b.last_change_ms == a.last_change_ms
                        && b.severity == a.severity
                })
            });
            if q.is_empty() {
                self.0.remove(receiver);
            }
        }
    }

    /// Notifications waiting, all receivers.
    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// RFC 3339 UTC timestamp with milliseconds from Unix ms.
pub fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let d = crate::registry::CivilDate::from_days_since_epoch(days);
    let (h, m, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!(
        "{:04}-{:02}-{:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z",
        d.year, d.month, d.day
    )
}

/// An alert as the store makes it (entity `dev-{id}`, raised at
/// 2023-11-14T22:13:20Z), in `state`: for the notifiers' tests.
#[cfg(test)]
pub(crate) fn sample_alert(
    id: u64,
    rule: crate::alert::RuleId,
    severity: crate::alert::Severity,
    state: crate::alert::AlertState,
) -> Alert {
    let mut store = crate::alert::AlertStore::new(crate::alert::AlertPolicy::default());
    let ev = store.apply(crate::alert::Transition::Raise {
        key: crate::alert::AlertKey::new(rule, format!("dev-{id}")),
        severity,
        value: 1.0,
        threshold: 0.5,
        message: "line one\nline two".into(),
        at_ms: 1_700_000_000_000,
    });
    let mut a = ev.last().expect("raised").alert.clone();
    a.id = id;
    a.state = state;
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertState, RuleId, Severity};

    fn alert(id: u64, state: AlertState, change: i64) -> Alert {
        let mut a = sample_alert(id, RuleId::Leak, Severity::Critical, state);
        a.last_change_ms = change;
        a
    }

    #[test]
    fn an_outbox_keeps_one_notification_per_alert_and_state() {
        let mut o = Outboxes::default();
        o.push("am", &alert(1, AlertState::Firing, 1));
        o.push("am", &alert(1, AlertState::Firing, 2));
        o.push("am", &alert(1, AlertState::Resolved, 3));
        o.push("chat", &alert(1, AlertState::Firing, 1));
        assert_eq!(o.queue("am").len(), 2);
        assert_eq!(o.queue("am")[0].last_change_ms, 2);
        assert_eq!(o.len(), 3);
    }

    #[test]
    fn delivery_removes_exactly_what_was_taken() {
        let mut o = Outboxes::default();
        o.push("am", &alert(1, AlertState::Firing, 1));
        o.push("am", &alert(2, AlertState::Firing, 1));
        let batch = o.queue("am").to_vec();
        // While the batch is in flight alert 2 changes again: that newer
        // version was not delivered and stays.
        o.push("am", &alert(2, AlertState::Firing, 5));
        o.push("am", &alert(3, AlertState::Firing, 1));
        o.delivered("am", &batch);
        let left: Vec<(u64, i64)> = o
            .queue("am")
            .iter()
            .map(|a| (a.id, a.last_change_ms))
            .collect();
        assert_eq!(left, [(2, 5), (3, 1)]);
        let all = o.queue("am").to_vec();
        o.delivered("am", &all);
        assert!(o.is_empty());
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_says_how_many() {
        let mut o = Outboxes::default();
        let mut dropped = 0;
        for id in 0..(OUTBOX_LIMIT as u64 + 3) {
            dropped += o.push("am", &alert(id, AlertState::Firing, 0));
        }
        assert_eq!(dropped, 3);
        assert_eq!(o.queue("am").len(), OUTBOX_LIMIT);
        assert_eq!(o.queue("am")[0].id, 3);
    }

    #[test]
    fn outboxes_round_trip_through_json() {
        let mut o = Outboxes::default();
        o.push("am", &alert(1, AlertState::Firing, 1));
        let back: Outboxes = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339_ms(1_795_000_000_123),
            "2026-11-18T11:06:40.123Z"
        );
    }
}
