//! Prometheus Alertmanager receiver (`POST /api/v2/alerts`).
//!
//! Alertmanager expects clients to re-send firing alerts regularly (it
//! resolves an alert it has not heard of for `resolve_timeout`) and to send
//! resolved alerts with `endsAt`. So: every notifiable event is posted at
//! once, all active alerts are re-posted every `resend_interval`, and alerts
//! resolved within the last `resolved_tail` are re-posted with their
//! `endsAt` so a lost POST is repaired. Failed posts are retried on the next
//! round (in memory; the alert store itself is persistent).

use std::time::Duration;

use serde_json::json;

use super::NotifyError;
use crate::alert::{Alert, AlertState};

/// The receiver's name in errors and metrics.
const RECEIVER: &str = "alertmanager";

/// An Alertmanager client.
#[derive(Clone)]
pub struct Alertmanager {
    http: reqwest::Client,
    url: url::Url,
}

impl Alertmanager {
    /// Client for the Alertmanager at `base` (e.g. `http://127.0.0.1:9093`).
    pub fn new(base: &url::Url, timeout: Duration) -> Result<Self, NotifyError> {
        let setup = |source: Box<dyn std::error::Error + Send + Sync>| NotifyError::Setup {
            receiver: RECEIVER.to_owned(),
            source,
        };
        let url = base.join("api/v2/alerts").map_err(|e| setup(Box::new(e)))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| setup(Box::new(e)))?;
        Ok(Alertmanager { http, url })
    }

    /// Posts alerts; Err names the failure.
    pub async fn post(&self, alerts: &[Alert]) -> Result<(), NotifyError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let body: Vec<serde_json::Value> = alerts.iter().map(am_alert).collect();
        match self.http.post(self.url.clone()).json(&body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(NotifyError::Status {
                receiver: RECEIVER.to_owned(),
                status: r.status(),
            }),
            Err(source) => Err(NotifyError::Unreachable {
                receiver: RECEIVER.to_owned(),
                source,
            }),
        }
    }
}

/// The Alertmanager JSON of one alert.
pub fn am_alert(a: &Alert) -> serde_json::Value {
    let mut v = json!({
        "labels": {
            "alertname": a.key.rule.as_str(),
            "entity": a.key.entity,
            "severity": a.severity.as_str(),
            "source": "wastewatch",
        },
        "annotations": {
            "summary": a.message,
            "value": a.value.to_string(),
            "threshold": a.threshold.to_string(),
            "alert_id": a.id.to_string(),
            "state": a.state.as_str(),
        },
        "startsAt": crate::notify::rfc3339_ms(a.fired_at_ms.unwrap_or(a.started_at_ms)),
    });
    if a.state == AlertState::Resolved {
        v["endsAt"] = json!(crate::notify::rfc3339_ms(
            a.resolved_at_ms.unwrap_or(a.last_change_ms)
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use crate::alert::Severity;

    /// The shipped Alertmanager config may only match severities the
    /// service sends: an inhibit rule on `warning` never matched `warn`.
    #[test]
    fn the_shipped_config_matches_only_severities_the_service_sends() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/alertmanager/alertmanager.yml");
        let text = std::fs::read_to_string(path).unwrap();
        let sent: Vec<&str> = [
            Severity::Info,
            Severity::Warn,
            Severity::Major,
            Severity::Critical,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        let mut seen = 0;
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let Some(i) = line.find("severity") else {
                continue;
            };
            let rest = &line[i + "severity".len()..];
            let value = rest
                .trim_start_matches([' ', '=', '~', '!'])
                .trim_start_matches('"')
                .split(['"', '\'', ']', ' '])
                .next()
                .unwrap_or("");
            for v in value.split('|').filter(|v| !v.is_empty()) {
                seen += 1;
                assert!(
                    sent.contains(&v),
                    "alertmanager.yml matches severity {v:?}; the service sends {sent:?}"
                );
            }
        }
        assert!(seen >= 2, "no severity matcher found in alertmanager.yml");
    }
}
