//! Webhook receivers: a plain JSON webhook, and the group-chat robots the
//! zone's on-call people use (DingTalk and WeCom custom robots).
//!
//! One POST per delivery round carries every alert due (robots are rate
//! limited — DingTalk allows 20 messages a minute — so alerts are batched
//! into one message, at most [`MAX_LINES`] lines, the rest counted). A robot
//! answers HTTP 200 even when it refuses a message, with a non-zero
//! `errcode` in the body; that counts as a failure and is retried.
//!
//! The URL carries the robot's access token, so it is a secret: it is never
//! logged, and errors name the receiver, never the URL.
//!
//! Signing: with `sign_secret` set, a JSON webhook carries
//! `X-Wastewatch-Timestamp` (Unix seconds) and `X-Wastewatch-Signature:
//! v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` over the exact body
//! bytes, so a receiver can tell our messages from forged ones and, by the
//! timestamp, refuse replays of old ones; DingTalk robots get their own
//! signature (加签) in the URL instead.

use std::time::Duration;

use serde_json::json;

use super::NotifyError;
use crate::alert::{Alert, AlertState, Severity};
use crate::secret::Secret;

/// Header of the JSON webhook's signature.
pub const SIGNATURE_HEADER: &str = "X-Wastewatch-Signature";
/// Header of the time the JSON webhook was signed at, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Wastewatch-Timestamp";

/// Most alert lines in one chat message.
pub const MAX_LINES: usize = 20;

/// The body a receiver understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"source": "wastewatch", "alerts": [...]}`, one object per alert.
    Json,
    /// DingTalk custom robot, markdown message; signed when a secret is set.
    Dingtalk,
    /// WeCom (企业微信) group robot, markdown message.
    Wecom,
}

/// A configured webhook.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Name, used in logs and as the outbox key.
    pub name: String,
    /// Full URL including any token (secret).
    pub url: Secret,
    /// Body format.
    pub format: Format,
    /// Only alerts at or above this severity are sent.
    pub min_severity: Severity,
    /// DingTalk signing secret ("加签"), if the robot uses one.
    pub sign_secret: Secret,
}

/// A webhook client.
#[derive(Clone)]
pub struct Webhook {
    s: WebhookSettings,
    /// `s.url`, parsed once (a secret too: never printed).
    url: url::Url,
    http: reqwest::Client,
}

impl Webhook {
    /// Client for `s`.
    pub fn new(s: WebhookSettings, timeout: Duration) -> Result<Self, NotifyError> {
        let setup = |source: Box<dyn std::error::Error + Send + Sync>| NotifyError::Setup {
            receiver: format!("webhook {}", s.name),
            source,
        };
        let url = url::Url::parse(s.url.expose())
            .map_err(|e| setup(format!("URL is not valid: {e}").into()))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| setup(Box::new(e.without_url())))?;
        Ok(Webhook { s, url, http })
    }

    /// The receiver's name.
    pub fn name(&self) -> &str {
        &self.s.name
    }

    /// True when `a` is for this receiver (severity filter).
    pub fn wants(&self, a: &Alert) -> bool {
        a.severity.max(a.peak_severity) >= self.s.min_severity
    }

    /// Posts `alerts` in one message; Err names the failure, never the URL.
    pub async fn post(&self, alerts: &[Alert], now_ms: i64) -> Result<(), NotifyError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let receiver = || format!("webhook {}", self.s.name);
        let mut url = self.url.clone();
        if self.s.format == Format::Dingtalk && !self.s.sign_secret.is_empty() {
            let sign = dingtalk_sign(self.s.sign_secret.expose(), now_ms);
            url.query_pairs_mut()
                .append_pair("timestamp", &now_ms.to_string())
                .append_pair("sign", &sign);
        }
        let body = serde_json::to_vec(&body(self.s.format, alerts)).map_err(|source| {
            NotifyError::Encode {
                receiver: receiver(),
                source,
            }
        })?;
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if self.s.format == Format::Json && !self.s.sign_secret.is_empty() {
            let ts = now_ms.div_euclid(1000);
            req = req.header(TIMESTAMP_HEADER, ts.to_string()).header(
                SIGNATURE_HEADER,
                json_signature(self.s.sign_secret.expose(), ts, &body),
            );
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| NotifyError::Unreachable {
                receiver: receiver(),
                source: e.without_url(),
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(NotifyError::Status {
                receiver: receiver(),
                status,
            });
        }
        if self.s.format == Format::Json {
            return Ok(());
        }
        // Robots: 200 with {"errcode": 0, "errmsg": "ok"} on success.
        let v: serde_json::Value = resp.json().await.map_err(|e| NotifyError::NotJson {
            receiver: receiver(),
            source: e.without_url(),
        })?;
        match v.get("errcode").and_then(serde_json::Value::as_i64) {
            Some(0) => Ok(()),
            Some(code) => Err(NotifyError::Refused {
                receiver: receiver(),
                code,
                message: v
                    .get("errmsg")
                    .and_then(|m| m.as_str())
                    .unwrap_or("")
                    .to_owned(),
            }),
            None => Err(NotifyError::NoErrcode {
                receiver: receiver(),
                answer: v.to_string(),
            }),
        }
    }
}

/// The JSON webhook's signature header value: `v1=` and the hex HMAC-SHA256
/// of `"{ts_s}." + body` under `secret`.
pub fn json_signature(secret: &str, ts_s: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(format!("{ts_s}.").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// DingTalk robot signature: base64(HMAC-SHA256(secret, "{ts}\n{secret}")).
pub fn dingtalk_sign(secret: &str, ts_ms: i64) -> String {
    use base64::Engine as _;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{ts_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// One line of a chat message.
fn line(a: &Alert) -> String {
    let what = match a.state {
        AlertState::Resolved => "RESOLVED",
        AlertState::Acknowledged => "acknowledged",
        AlertState::Pending => "pending",
        AlertState::Firing => "FIRING",
    };
    format!(
        "- **{what}** [{}] {} `{}`: {} (#{} since {})",
        a.severity.as_str(),
        a.key.rule.as_str(),
        a.key.entity,
        a.message.replace(['\n', '\r'], " "),
        a.id,
        crate::notify::rfc3339_ms(a.fired_at_ms.unwrap_or(a.started_at_ms)),
    )
}

/// The chat text of `alerts`: a title line, then up to [`MAX_LINES`] alert
/// lines, most severe first, and how many more there are.
pub fn chat_text(alerts: &[Alert]) -> (String, String) {
    let mut sorted: Vec<&Alert> = alerts.iter().collect();
    sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
    let firing = alerts
        .iter()
        .filter(|a| a.state != AlertState::Resolved)
        .count();
    let title = format!(
        "wastewatch: {firing} active, {} resolved",
        alerts.len() - firing
    );
    let mut text = format!("### {title}\n");
    for a in sorted.iter().take(MAX_LINES) {
        text.push_str(&line(a));
        text.push('\n');
    }
    if sorted.len() > MAX_LINES {
        text.push_str(&format!(
            "- … and {} more (GET /api/v1/alerts)\n",
            sorted.len() - MAX_LINES
        ));
    }
    (title, text)
}

/// The request body for `format`.
pub fn body(format: Format, alerts: &[Alert]) -> serde_json::Value {
    match format {
        Format::Json => json!({
            "source": "wastewatch",
            "alerts": alerts.iter().map(|a| json!({
                "id": a.id,
                "rule": a.key.rule.as_str(),
                "entity": a.key.entity,
                "severity": a.severity.as_str(),
                "state": a.state.as_str(),
                "value": a.value,
                "threshold": a.threshold,
                "message": a.message,
                "acknowledged_by": a.acknowledged_by,
                "started_at": crate::notify::rfc3339_ms(a.started_at_ms),
                "resolved_at": a.resolved_at_ms.map(crate::notify::rfc3339_ms),
            })).collect::<Vec<_>>(),
        }),
        Format::Dingtalk => {
            let (title, text) = chat_text(alerts);
            json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
        }
        Format::Wecom => {
            let (_, text) = chat_text(alerts);
            json!({"msgtype": "markdown", "markdown": {"content": text}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::RuleId;

    use crate::notify::sample_alert as alert;

    #[test]
    fn the_dingtalk_signature_matches_the_documented_algorithm() {
        // Python: base64(hmac.new(b"SECabc", b"1700000000000\nSECabc", sha256)).
        assert_eq!(
            dingtalk_sign("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
        );
    }

    #[test]
    fn the_json_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"whsec-test", b"1700000000." + b'{"a":1}', sha256).hexdigest()
        assert_eq!(
            json_signature("whsec-test", 1_700_000_000, br#"{"a":1}"#),
            "v1=fed7a1a6c799a6367d73724d76bc70c16678908a32a879cd1ded6565ac05cece"
        );
    }

    #[test]
    fn robot_messages_are_markdown_most_severe_first_and_bounded() {
        let mut alerts: Vec<Alert> = (1..=25)
            .map(|i| alert(i, RuleId::BinNearlyFull, Severity::Info, AlertState::Firing))
            .collect();
        alerts.push(alert(
            99,
            RuleId::Leak,
            Severity::Critical,
            AlertState::Firing,
        ));
        alerts.push(alert(
            100,
            RuleId::BinFire,
            Severity::Critical,
            AlertState::Resolved,
        ));
        let d = body(Format::Dingtalk, &alerts);
        assert_eq!(d["msgtype"], "markdown");
        let text = d["markdown"]["text"].as_str().unwrap();
        assert_eq!(d["markdown"]["title"], "wastewatch: 26 active, 1 resolved");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains("**FIRING** [critical] leak `dev-99`"),
            "{text}"
        );
        assert!(
            lines[2].contains("**RESOLVED** [critical] bin_fire"),
            "{text}"
        );
        // Title + 20 alert lines + "and 7 more"; the message's own line
        // break cannot start a new markdown line.
        assert_eq!(lines.len(), 1 + MAX_LINES + 1, "{text}");
        assert!(lines.last().unwrap().contains("and 7 more"));
        assert!(lines[1].contains("line one line two"));
        let w = body(Format::Wecom, &alerts);
        assert_eq!(w["markdown"]["content"].as_str(), Some(text));
    }

    #[test]
    fn the_json_body_carries_every_alert_with_its_fields() {
        let a = alert(7, RuleId::Leak, Severity::Critical, AlertState::Firing);
        let v = body(Format::Json, std::slice::from_ref(&a));
        assert_eq!(v["source"], "wastewatch");
        let x = &v["alerts"][0];
        assert_eq!(x["id"], 7);
        assert_eq!(x["rule"], "leak");
        assert_eq!(x["entity"], "dev-7");
        assert_eq!(x["severity"], "critical");
        assert_eq!(x["state"], "firing");
        assert_eq!(x["started_at"], "2023-11-14T22:13:20.000Z");
        assert!(x["resolved_at"].is_null());
    }

    #[test]
    fn a_webhook_takes_alerts_at_or_above_its_severity_and_never_shows_its_url() {
        let s = WebhookSettings {
            name: "chat".into(),
            url: Secret::new("https://oapi.example/robot/send?access_token=T0KEN"),
            format: Format::Dingtalk,
            min_severity: Severity::Major,
            sign_secret: Secret::new("S3CRET"),
        };
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("T0KEN") && !dbg.contains("S3CRET"), "{dbg}");
        let w = Webhook::new(s, Duration::from_secs(1)).unwrap();
        assert!(!w.wants(&alert(
            1,
            RuleId::BinNearlyFull,
            Severity::Warn,
            AlertState::Firing
        )));
        assert!(w.wants(&alert(2, RuleId::Leak, Severity::Major, AlertState::Firing)));
        assert!(w.wants(&alert(
            3,
            RuleId::Leak,
            Severity::Critical,
            AlertState::Resolved
        )));
    }

    #[tokio::test]
    async fn an_unreachable_robot_is_an_error_that_names_it_but_not_its_token() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let w = Webhook::new(
            WebhookSettings {
                name: "chat".into(),
                url: Secret::new(format!("http://127.0.0.1:{port}/send?access_token=T0KEN")),
                format: Format::Wecom,
                min_severity: Severity::Info,
                sign_secret: Secret::default(),
            },
            Duration::from_secs(2),
        )
        .unwrap();
        let a = alert(1, RuleId::Leak, Severity::Critical, AlertState::Firing);
        let err = w.post(&[a], 0).await.unwrap_err();
        assert!(matches!(err, NotifyError::Unreachable { .. }), "{err:?}");
        // The message and every source under it.
        let mut e = err.to_string();
        let mut src = std::error::Error::source(&err);
        while let Some(s) = src {
            e.push_str(&format!(" / {s} / {s:?}"));
            src = s.source();
        }
        assert!(e.contains("webhook chat unreachable"), "{e}");
        assert!(!e.contains("T0KEN"), "{e}");
    }
}
