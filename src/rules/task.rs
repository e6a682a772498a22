//! The async shell around the rule engine and the alert store.
//!
//! Reads the durable log from its own cursor (`rules`), feeds each record to
//! the pure engine, applies the transitions to the alert store, and for each
//! resulting event writes an `alert` point to the TSDB and notifies
//! Alertmanager. A tick drives time-based rules, pending→firing, flapping
//! release and repeats. Every few seconds the engine state, the alert store
//! and the log offset they cover are written together to one snapshot file
//! (write, fsync, rename); only then does the log cursor move. After a crash
//! the engine restarts from the snapshot and replays the log from its
//! offset, so rule timers and geofence state survive and alerts are neither
//! lost nor duplicated (the store ignores transitions it has already seen).
//! A TSDB outage never delays an alert: the two consumers are independent.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{error, info, warn};

use super::{RuleConfig, RuleEngine};
use crate::alert::{AlertEvent, AlertPolicy, AlertState, AlertStore};
use crate::log::{Log, CURSOR_RULES};
use crate::metrics::Metrics;
use crate::notify::alertmanager::Alertmanager;
use crate::pb;
use crate::registry::Registry;
use crate::sink::line_protocol::{FieldValue as F, LineBuilder};
use crate::sink::writer::{WriteOutcome, Writer};

/// Measurement of alert state changes.
pub const M_ALERT: &str = "alert";

/// Shared alert state, for the HTTP API.
#[derive(Clone)]
pub struct AlertsHandle {
    /// The store (lock briefly; no I/O under the lock).
    pub store: Arc<Mutex<AlertStore>>,
    /// Events created outside the task (acks from the API) for recording.
    pub events_tx: mpsc::UnboundedSender<AlertEvent>,
    /// Every event, for live displays (the demo).
    pub broadcast: broadcast::Sender<AlertEvent>,
}

/// Settings of the alerting task.
#[derive(Clone, Debug)]
pub struct AlertingSettings {
    /// Rule thresholds, overrides, engine settings.
    pub rules: RuleConfig,
    /// Alert lifecycle policy.
    pub policy: AlertPolicy,
    /// Alertmanager base URL, if any.
    pub alertmanager: Option<url::Url>,
    /// How often active alerts are re-posted to Alertmanager.
    pub resend_interval: Duration,
    /// How often state is snapshotted.
    pub snapshot_interval: Duration,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Next log offset the state does not yet cover.
    offset: u64,
    /// Engine state (its own JSON).
    engine: String,
    /// Alert store (its own JSON).
    alerts: String,
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("rules-snapshot.json")
}

fn lock(m: &Mutex<AlertStore>) -> std::sync::MutexGuard<'_, AlertStore> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads the snapshot (if any) into a fresh engine and store.
pub fn restore(
    dir: &Path,
    registry: Arc<Registry>,
    s: &AlertingSettings,
    log: &Log,
) -> anyhow::Result<(RuleEngine, AlertStore, u64)> {
    let mut engine = RuleEngine::new(registry, s.rules.clone());
    let path = snapshot_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("rules snapshot {} is unreadable: {e}", path.display())
            })?;
            engine
                .restore(snap.engine.as_bytes())
                .map_err(|e| anyhow::anyhow!("rules snapshot {}: {e}", path.display()))?;
            let store = AlertStore::restore(snap.alerts.as_bytes())
                .map_err(|e| anyhow::anyhow!("alert snapshot {}: {e}", path.display()))?;
            info!(offset = snap.offset, "rule state restored from snapshot");
            Ok((engine, store, snap.offset))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((
            engine,
            AlertStore::new(s.policy.clone()),
            log.cursor(CURSOR_RULES),
        )),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read rules snapshot {}: {e}",
            path.display()
        )),
    }
}

fn write_snapshot(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = snapshot_path(dir);
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(snap).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Line-protocol point of one alert event.
pub fn alert_point(ev: &AlertEvent, buf: &mut String) {
    let a = &ev.alert;
    let _ = LineBuilder::new(buf, M_ALERT)
        .tag("rule", a.key.rule.as_str())
        .tag("severity", a.severity.as_str())
        .tag("state", ev.to_state.as_str())
        .tag("entity", &a.key.entity)
        .field("alert_id", F::I64(i64::try_from(a.id).unwrap_or(i64::MAX)))
        .field(
            "value",
            F::F64(if a.value.is_finite() { a.value } else { 0.0 }),
        )
        .field(
            "threshold",
            F::F64(if a.threshold.is_finite() {
                a.threshold
            } else {
                0.0
            }),
        )
        .field(
            "from_state",
            F::Str(ev.from_state.map(|s| s.as_str()).unwrap_or("")),
        )
        .field("message", F::Str(&a.message.replace(['\n', '\r'], " ")))
        .field(
            "firing",
            F::Bool(matches!(
                ev.to_state,
                AlertState::Firing | AlertState::Acknowledged
            )),
        )
        .finish(ev.at_ms);
}

/// Everything the task owns.
pub struct AlertTask {
    /// The engine.
    pub engine: RuleEngine,
    /// Next offset to read.
    pub offset: u64,
    /// Where the snapshot lives.
    pub dir: PathBuf,
    /// Settings.
    pub settings: AlertingSettings,
}

/// Runs until `stop`, then writes a final snapshot.
pub async fn run(
    mut t: AlertTask,
    log: Arc<Log>,
    handle: AlertsHandle,
    mut events_rx: mpsc::UnboundedReceiver<AlertEvent>,
    writer: Arc<Writer>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let am = t.settings.alertmanager.as_ref().and_then(|u| {
        match Alertmanager::new(u, Duration::from_secs(10)) {
            Ok(a) => Some(a),
            Err(e) => {
                error!(error = %e, "alertmanager client not created; notifications off");
                None
            }
        }
    });
    let mut head_rx = log.subscribe_head();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_snapshot = tokio::time::Instant::now();
    let mut last_resend = tokio::time::Instant::now();
    let mut snapshot_offset = t.offset;
    let mut lines = String::new();
    let mut outbox: Vec<crate::alert::Alert> = Vec::new();
    // Store changed (e.g. an acknowledgement) since the last snapshot.
    let mut dirty = false;
    loop {
        let stopping = *stop.borrow();
        let mut events = Vec::new();
        // Records.
        let l = log.clone();
        let from = t.offset;
        let recs = tokio::task::spawn_blocking(move || l.read(from, 2000))
            .await
            .unwrap_or_else(|e| Err(crate::log::LogError::Storage(e.to_string())));
        let got_records = match recs {
            Ok(recs) => {
                let n = recs.len();
                for (off, bytes) in recs {
                    if let Ok(rec) = pb::LogRecord::decode(bytes.as_slice()) {
                        let tr = t.engine.on_record(&rec, crate::ingest::now_ms());
                        if !tr.is_empty() {
                            events.extend(lock(&handle.store).apply_all(tr));
                        }
                    }
                    t.offset = off + 1;
                }
                n
            }
            Err(e) => {
                error!(error = %e, "rules cannot read the durable log");
                0
            }
        };
        while let Ok(ev) = events_rx.try_recv() {
            events.push(ev);
        }
        let now = crate::ingest::now_ms();
        if got_records == 0 {
            // Idle: time-based rules and lifecycle timers.
            let tr = t.engine.on_tick(now);
            let mut store = lock(&handle.store);
            events.extend(store.apply_all(tr));
            events.extend(store.tick(now));
            outbox.extend(store.due_repeats(now));
        }
        for ev in &events {
            alert_point(ev, &mut lines);
            if ev.notify() {
                outbox.push(ev.alert.clone());
                metrics.alerts_notified.fetch_add(1, Relaxed);
                if ev.to_state == AlertState::Firing && ev.from_state != Some(AlertState::Firing) {
                    info!(rule = ev.alert.key.rule.as_str(), entity = %ev.alert.key.entity, severity = ev.alert.severity.as_str(), "alert firing");
                }
            }
            let _ = handle.broadcast.send(ev.clone());
        }
        metrics.alert_events.fetch_add(events.len() as u64, Relaxed);
        dirty |= !events.is_empty();
        if !lines.is_empty() {
            match writer.write(&lines).await {
                WriteOutcome::Ok => lines.clear(),
                WriteOutcome::Rejected { reason } | WriteOutcome::Retry { reason, .. } => {
                    warn!(error = %reason, "alert points not written yet; will retry");
                    // Keep them, bounded: ~1 MiB of alert points.
                    if lines.len() > 1 << 20 {
                        error!(
                            bytes = lines.len(),
                            "dropping unwritten alert points (alert state itself is kept)"
                        );
                        lines.clear();
                    }
                }
                WriteOutcome::TooLarge => lines.clear(),
            }
        }
        if let Some(am) = &am {
            if last_resend.elapsed() >= t.settings.resend_interval {
                last_resend = tokio::time::Instant::now();
                let store = lock(&handle.store);
                let mut all = store.list(&crate::alert::AlertFilter {
                    active: Some(true),
                    ..Default::default()
                });
                let tail = now - 15 * 60 * 1000;
                all.extend(
                    store
                        .list(&crate::alert::AlertFilter {
                            state: Some(AlertState::Resolved),
                            ..Default::default()
                        })
                        .into_iter()
                        .filter(|a| a.resolved_at_ms.unwrap_or(0) >= tail),
                );
                drop(store);
                outbox.extend(all);
            }
            if !outbox.is_empty() {
                match am.post(&outbox).await {
                    Ok(()) => outbox.clear(),
                    Err(e) => {
                        warn!(error = %e, "alertmanager post failed; retrying next round");
                        outbox.truncate(10_000);
                    }
                }
            }
        }
        // Snapshot, then move the cursor.
        if (dirty || t.offset != snapshot_offset)
            && (stopping || last_snapshot.elapsed() >= t.settings.snapshot_interval)
        {
            let engine = t.engine.snapshot();
            let alerts = lock(&handle.store).snapshot();
            match (engine, alerts) {
                (Ok(e), Ok(a)) => {
                    let snap = Snapshot {
                        offset: t.offset,
                        engine: String::from_utf8_lossy(&e).into_owned(),
                        alerts: String::from_utf8_lossy(&a).into_owned(),
                    };
                    let dir = t.dir.clone();
                    let l = log.clone();
                    let off = t.offset;
                    let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
                        write_snapshot(&dir, &snap).map_err(|e| e.to_string())?;
                        l.commit_cursor(CURSOR_RULES, off)
                            .map_err(|e| e.to_string())
                    })
                    .await;
                    match r {
                        Ok(Ok(())) => {
                            snapshot_offset = off;
                            dirty = false;
                        }
                        Ok(Err(e)) => error!(error = %e, "rules snapshot failed; will retry"),
                        Err(e) => error!(error = %e, "rules snapshot task failed"),
                    }
                }
                (Err(e), _) => error!(error = %e, "rule engine snapshot failed"),
                (_, Err(e)) => error!(error = %e, "alert store snapshot failed"),
            }
            last_snapshot = tokio::time::Instant::now();
        }
        if stopping && got_records == 0 {
            break;
        }
        if got_records == 0 {
            tokio::select! {
                _ = head_rx.changed() => {}
                _ = tick.tick() => {}
                ev = events_rx.recv() => if let Some(ev) = ev { let _ = handle.events_tx.send(ev); },
                _ = stop.changed() => {}
            }
        }
    }
    info!("rule engine stopped");
}
