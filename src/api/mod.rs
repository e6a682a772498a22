//! HTTP: `/healthz` (process alive), `/readyz` (broker connected, log
//! writable, TSDB reachable), `/metrics` (Prometheus text) and
//! `/api/v1/quarantine` (what was refused and why). Access: `auth.rs`
//! (bearer tokens; JSON-only mutations).

pub mod auth;
pub mod geo;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::log::Log;
use crate::metrics::Metrics;
use crate::pb;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The durable log.
    pub log: Arc<Log>,
    /// Alerts, when the rule engine runs.
    pub alerts: Option<crate::alert::stage::AlertsHandle>,
    /// Whether a TSDB is configured (readiness ignores it otherwise).
    pub tsdb_required: bool,
    /// Who may call what.
    pub auth: auth::ApiAuth,
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/quarantine", get(quarantine))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/{id}/ack", axum::routing::post(ack_alert))
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            auth::require,
        ))
        .with_state(state)
}

/// Readiness detail.
#[derive(Serialize)]
struct Ready {
    ready: bool,
    mqtt_connected: bool,
    log_writable: bool,
    tsdb_reachable: bool,
    /// Why the service is not ready, in words (empty when ready).
    reasons: Vec<String>,
}

async fn readyz(State(s): State<ApiState>) -> Response {
    let m = &s.metrics;
    let log = s.log.stats();
    let mut reasons = Vec::new();
    if log.full {
        reasons.push(format!(
            "durable log full: {} bytes of unconsumed records + {} bytes of quarantine against a bound of {} bytes; ingest is not acking (the broker holds the messages) until the TSDB writer catches up or the quarantine is purged",
            log.live_bytes, log.quarantine_bytes, log.max_bytes
        ));
    }
    if let Some(e) = s.log.storage_error() {
        reasons.push(format!(
            "durable log cannot write ({e}); ingest is not acking until a write succeeds"
        ));
    }
    let mqtt_connected = m.mqtt_connected.load(Relaxed) == 1;
    if !mqtt_connected {
        reasons.push("not connected to the MQTT broker".into());
    }
    // Before the first write there is nothing to judge: count as up.
    let tsdb_reachable =
        !s.tsdb_required || m.tsdb_up.load(Relaxed) == 1 || m.tsdb_latency_count.load(Relaxed) == 0;
    if !tsdb_reachable {
        reasons.push("the TSDB is not accepting writes; records wait in the durable log".into());
    }
    let log_writable = !log.full && !log.storage_error;
    let ready = mqtt_connected && log_writable && tsdb_reachable;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Ready {
            ready,
            mqtt_connected,
            log_writable,
            tsdb_reachable,
            reasons,
        }),
    )
        .into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let body = s
        .metrics
        .render_prometheus(Some(s.log.stats()), &s.log.consumer_lags());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Query of `/api/v1/alerts`.
#[derive(Deserialize)]
struct AlertsQuery {
    /// `pending`, `firing`, `acknowledged` or `resolved`.
    state: Option<String>,
    /// `true` for pending, firing and acknowledged alerts.
    active: Option<bool>,
}

fn no_alerts() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "rule engine not running\n").into_response()
}

async fn list_alerts(State(s): State<ApiState>, Query(q): Query<AlertsQuery>) -> Response {
    let Some(a) = &s.alerts else {
        return no_alerts();
    };
    let state = match q.state.as_deref() {
        None => None,
        Some("pending") => Some(crate::alert::AlertState::Pending),
        Some("firing") => Some(crate::alert::AlertState::Firing),
        Some("acknowledged") => Some(crate::alert::AlertState::Acknowledged),
        Some("resolved") => Some(crate::alert::AlertState::Resolved),
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("state {other:?} must be pending, firing, acknowledged or resolved\n"),
            )
                .into_response()
        }
    };
    let filter = crate::alert::AlertFilter {
        state,
        active: q.active,
        ..Default::default()
    };
    let list = a
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .list(&filter);
    Json(list).into_response()
}

/// Longest acknowledgement reason kept, characters.
const MAX_REASON_CHARS: usize = 500;

/// Body of an acknowledgement. Who acknowledges is the token's name, not
/// something the caller says.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// Why (kept in the alert's history), optional.
    reason: Option<String>,
    /// The acknowledger's name of earlier versions: accepted and ignored
    /// (a caller could write anything there).
    #[serde(default, rename = "by")]
    _by: Option<serde::de::IgnoredAny>,
}

async fn ack_alert(
    State(s): State<ApiState>,
    axum::extract::Path(id): axum::extract::Path<u64>,
    caller: Option<axum::Extension<auth::Caller>>,
    Json(body): Json<AckBody>,
) -> Response {
    let Some(a) = &s.alerts else {
        return no_alerts();
    };
    // The middleware lets no mutation through without a token.
    let Some(axum::Extension(auth::Caller(by))) = caller else {
        return (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
    };
    let reason = body
        .reason
        .map(|r| {
            r.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_REASON_CHARS)
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .filter(|r| !r.is_empty());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = crate::alert::stage::AckRequest {
        id,
        by,
        reason,
        reply: tx,
    };
    if let Err(e) = a.acks.try_send(req) {
        let why = match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => {
                "too many acknowledgements waiting; try again\n"
            }
            tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                "the alert stage is not running; try again\n"
            }
        };
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    use crate::alert::stage::AckReply;
    match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
        Ok(Ok(AckReply::Done(Ok(alert)))) => Json(alert).into_response(),
        Ok(Ok(AckReply::Done(Err(e @ crate::alert::AckError::NotFound { .. })))) => {
            (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Ok(Ok(AckReply::Done(Err(e)))) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
        Ok(Ok(AckReply::NotPersisted(e))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("acknowledged in memory but not saved ({e}); repeat the request\n"),
        )
            .into_response(),
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the alert task did not answer in 10 s; repeat the request\n",
        )
            .into_response(),
    }
}

/// Query of `/api/v1/quarantine`.
#[derive(Deserialize)]
struct QuarantineQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// One quarantined message as JSON.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct QuarantineEntry {
    /// Quarantine id.
    pub id: u64,
    /// Topic it arrived on.
    pub topic: String,
    /// Reason code.
    pub reason: String,
    /// Precise detail.
    pub detail: String,
    /// Receive time, Unix ms.
    pub received_at_unix_ms: i64,
    /// Payload size, bytes.
    pub payload_len: usize,
    /// First 256 payload bytes, hex.
    pub payload_hex_prefix: String,
}

/// Converts a stored quarantine record.
pub fn entry(id: u64, bytes: &[u8]) -> QuarantineEntry {
    match pb::QuarantineRecord::decode(bytes) {
        Ok(q) => QuarantineEntry {
            id,
            payload_len: q.payload.len(),
            payload_hex_prefix: q
                .payload
                .iter()
                .take(256)
                .map(|b| format!("{b:02x}"))
                .collect(),
            topic: q.topic,
            reason: q.reason,
            detail: q.detail,
            received_at_unix_ms: q.received_at_unix_ms,
        },
        Err(e) => QuarantineEntry {
            id,
            topic: String::new(),
            reason: "corrupt_quarantine_record".into(),
            detail: e.to_string(),
            received_at_unix_ms: 0,
            payload_len: bytes.len(),
            payload_hex_prefix: String::new(),
        },
    }
}

async fn quarantine(State(s): State<ApiState>, Query(q): Query<QuarantineQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let from = q.from.unwrap_or(0);
    let log = s.log.clone();
    match tokio::task::spawn_blocking(move || log.quarantine_list(from, limit)).await {
        Ok(Ok(list)) => {
            Json(list.iter().map(|(id, b)| entry(*id, b)).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
