//! The alert stage: the async task around the alert store, between the
//! rules shell and notification dispatch.
//!
//! In: the rules shell's transitions and checkpoints (bounded channel), and
//! acknowledgements from the HTTP API (bounded; full answers 503). Out, for
//! every event of the store: an `alert` record appended to the durable log
//! — the TSDB writer stores it like every other point, with the one status
//! policy, so a slow, hung or refusing TSDB never delays an alert — and,
//! when someone must be told, the alert to notification dispatch (bounded;
//! dispatch never blocks, it only queues). Its own one-second tick drives
//! pending → firing, flap release, repeats and Alertmanager re-sends,
//! whatever the rules are doing.
//!
//! Persistence: on each checkpoint of the rules shell (and after each
//! acknowledgement) the stage makes its alert records durable, has dispatch
//! save its outboxes, writes the rules snapshot (engine state of the last
//! checkpoint + the store now), and only then moves the rules cursor and
//! answers the acknowledgements it applied.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{error, info, warn};

use super::snapshot::{self, Checkpoint};
use super::{AckError, Alert, AlertEvent, AlertFilter, AlertState, AlertStore, EventReason};
use crate::clock::Clock;
use crate::log::{AppendBatch, Class, Durability, Log, CURSOR_RULES};
use crate::metrics::Metrics;
use crate::pb;
use crate::registry::Registry;

/// What the rules shell hands to the alert stage.
#[derive(Debug)]
pub enum RulesOut {
    /// Transitions, in the order the engine made them.
    Transitions(Vec<super::Transition>),
    /// Engine state covering everything sent before it.
    Checkpoint(Checkpoint),
}

/// What the alert stage hands to notification dispatch.
#[derive(Debug)]
pub enum ToDispatch {
    /// Tell the receivers that want it about this alert's new state.
    Queue(Box<Alert>),
    /// Re-post these (Alertmanager expects active alerts again and a tail
    /// of resolved ones; webhooks are not re-sent).
    Resend(Vec<Alert>),
    /// Save the outboxes, then answer.
    Flush(oneshot::Sender<std::io::Result<()>>),
}

/// Shared alert state, for the HTTP API and the demo.
#[derive(Clone)]
pub struct AlertsHandle {
    /// The store (lock briefly; no I/O under the lock).
    pub store: Arc<Mutex<AlertStore>>,
    /// Acknowledgements, applied and persisted by the stage.
    pub acks: mpsc::Sender<AckRequest>,
    /// Every event, for live displays (lossy: a slow reader skips).
    pub broadcast: broadcast::Sender<AlertEvent>,
}

/// An acknowledgement: the stage applies it, saves a snapshot holding it,
/// and only then replies.
pub struct AckRequest {
    /// Alert id.
    pub id: u64,
    /// Who acknowledges (the API token's name).
    pub by: String,
    /// Why, if they said (kept in the alert's history).
    pub reason: Option<String>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<AckReply>,
}

/// The answer to an [`AckRequest`].
#[derive(Debug)]
pub enum AckReply {
    /// Done and on disk (or nothing to do): the alert as it now is.
    Done(Result<Box<Alert>, AckError>),
    /// Applied in memory, but the snapshot could not be written.
    NotPersisted(String),
}

/// Settings of the stage.
#[derive(Clone, Debug)]
pub struct StageSettings {
    /// Where the rules snapshot lives (the log directory).
    pub dir: PathBuf,
    /// How often active alerts are re-sent to receivers that want it.
    pub resend_interval: Duration,
}

/// Locks the store (a poisoned lock only means a panic elsewhere between
/// plain field updates).
pub fn lock(m: &Mutex<AlertStore>) -> std::sync::MutexGuard<'_, AlertStore> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `alert` record of one event. The message is made single-line (line
/// protocol strings cannot hold a line break).
pub fn record(ev: &AlertEvent, registry: &Registry) -> pb::AlertRecord {
    let a = &ev.alert;
    let first = a.key.entity.split('/').next().unwrap_or_default();
    let site_id = registry
        .devices
        .get(first)
        .map(|d| d.site_id.clone())
        .unwrap_or_default();
    pb::AlertRecord {
        alert_id: a.id,
        rule: a.key.rule.as_str().to_owned(),
        entity: a.key.entity.clone(),
        site_id,
        severity: a.severity.as_str().to_owned(),
        state: ev.to_state.as_str().to_owned(),
        from_state: ev.from_state.map(|s| s.as_str()).unwrap_or("").to_owned(),
        reason: reason_str(ev.reason).to_owned(),
        value: a.value,
        threshold: a.threshold,
        message: a.message.replace(['\n', '\r'], " "),
        acknowledged_by: if ev.reason == EventReason::Acknowledged {
            a.acknowledged_by.clone().unwrap_or_default()
        } else {
            String::new()
        },
        at_unix_ms: ev.at_ms,
    }
}

fn reason_str(r: EventReason) -> &'static str {
    match r {
        EventReason::Opened => "opened",
        EventReason::Fired => "fired",
        EventReason::Escalated => "escalated",
        EventReason::Deescalated => "deescalated",
        EventReason::Acknowledged => "acknowledged",
        EventReason::Resolved => "resolved",
        EventReason::Expired => "expired",
    }
}

/// Everything the stage owns.
pub struct Stage {
    /// Shared with the API.
    pub handle: AlertsHandle,
    /// Acknowledgements from the API.
    pub acks: mpsc::Receiver<AckRequest>,
    /// From the rules shell.
    pub rules: mpsc::Receiver<RulesOut>,
    /// To notification dispatch.
    pub notify: mpsc::Sender<ToDispatch>,
    /// Where alert records go.
    pub log: Arc<Log>,
    /// For the site of an alert's entity.
    pub registry: Arc<Registry>,
    /// Engine state of the latest checkpoint (from the snapshot at start).
    pub checkpoint: Option<Checkpoint>,
    /// Whether a receiver wants periodic re-sends (Alertmanager).
    pub resends: bool,
    /// Settings.
    pub settings: StageSettings,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Now.
    pub clock: Clock,
}

/// Runs until the rules shell has ended (shutdown) and everything is saved.
pub async fn run(mut s: Stage) {
    let mut points = AppendBatch::new(Class::Internal);
    let mut replies: Vec<(oneshot::Sender<AckReply>, Alert)> = Vec::new();
    let mut save_due = false;
    // Store changes since the last snapshot, and the offset it covered.
    let mut changed = false;
    let mut saved_offset = s.checkpoint.as_ref().map(|c| c.offset);
    let mut points_failing = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_resend = tokio::time::Instant::now();
    loop {
        let mut events = Vec::new();
        tokio::select! {
            biased;
            Some(req) = s.acks.recv() => {
                let now = s.clock.now_ms();
                let mut store = lock(&s.handle.store);
                match store.ack_with_reason(req.id, now, &req.by, req.reason.as_deref()) {
                    Ok(Some(ev)) => {
                        replies.push((req.reply, ev.alert.clone()));
                        events.push(ev);
                        save_due = true;
                    }
                    Ok(None) => {
                        let a = store.get(req.id).cloned();
                        let _ = req.reply.send(AckReply::Done(
                            a.map(Box::new).ok_or(AckError::NotFound { id: req.id }),
                        ));
                    }
                    Err(e) => {
                        let _ = req.reply.send(AckReply::Done(Err(e)));
                    }
                }
            }
            m = s.rules.recv() => match m {
                Some(RulesOut::Transitions(tr)) => {
                    let mut store = lock(&s.handle.store);
                    events = store.apply_all(tr);
                    let now = s.clock.now_ms();
                    store.mark_notified(&events, now);
                    store.mark_clock(now);
                }
                Some(RulesOut::Checkpoint(c)) => {
                    save_due |= changed || saved_offset != Some(c.offset);
                    s.checkpoint = Some(c);
                }
                None => break,
            },
            _ = tick.tick() => {
                let now = s.clock.now_ms();
                let repeats = {
                    let mut store = lock(&s.handle.store);
                    // Fired here at `now` already: no mark needed.
                    events = store.tick(now);
                    store.due_repeats(now)
                };
                for a in repeats {
                    let _ = s.notify.send(ToDispatch::Queue(Box::new(a))).await;
                }
                if s.resends && last_resend.elapsed() >= s.settings.resend_interval {
                    last_resend = tokio::time::Instant::now();
                    let _ = s.notify.send(ToDispatch::Resend(resend_set(&s.handle.store, now))).await;
                }
            }
        }
        changed |= !events.is_empty();
        handle(&s, &events, &mut points).await;
        if !points.is_empty() {
            points = append_points(&s, points, &mut points_failing).await;
        }
        if save_due && points.is_empty() {
            match save(&s).await {
                Ok(()) => {
                    save_due = false;
                    changed = false;
                    saved_offset = s.checkpoint.as_ref().map(|c| c.offset);
                    for (reply, alert) in replies.drain(..) {
                        let _ = reply.send(AckReply::Done(Ok(Box::new(alert))));
                    }
                }
                Err(e) => {
                    error!(error = %e, "rules snapshot failed; will retry");
                    for (reply, _) in replies.drain(..) {
                        let _ = reply.send(AckReply::NotPersisted(e.to_string()));
                    }
                }
            }
        }
    }
    // The rules shell has sent its last checkpoint: save once more.
    if !points.is_empty() {
        points = append_points(&s, points, &mut points_failing).await;
    }
    if points.is_empty() {
        if let Err(e) = save(&s).await {
            error!(error = %e, "final rules snapshot failed; the next start replays from the previous one");
        }
    } else {
        warn!("alert points not durable at shutdown; the next start replays them from the log");
    }
    for (reply, _) in replies.drain(..) {
        let _ = reply.send(AckReply::NotPersisted("shutting down".into()));
    }
    info!("alert stage stopped");
}

/// Points, notifications and the live feed for `events`.
async fn handle(s: &Stage, events: &[AlertEvent], points: &mut AppendBatch) {
    for ev in events {
        let r = pb::LogRecord {
            alert: Some(Box::new(record(ev, &s.registry))),
            time_unix_ms: ev.at_ms,
            ..Default::default()
        };
        let _ = points.records.push_with(|b| {
            // Encoding into a Vec cannot run out of space.
            let _ = r.encode(b);
        });
        if ev.notify() {
            let _ = s
                .notify
                .send(ToDispatch::Queue(Box::new(ev.alert.clone())))
                .await;
            s.metrics.alerts_notified.fetch_add(1, Relaxed);
            if ev.to_state == AlertState::Firing && ev.from_state != Some(AlertState::Firing) {
                info!(rule = ev.alert.key.rule.as_str(), entity = %ev.alert.key.entity, severity = ev.alert.severity.as_str(), "alert firing");
            }
        }
        let _ = s.handle.broadcast.send(ev.clone());
    }
    s.metrics
        .alert_events
        .fetch_add(events.len() as u64, Relaxed);
}

/// Appends the alert records; on failure keeps them for the next loop (the
/// snapshot waits for them, so a crash cannot lose them).
async fn append_points(s: &Stage, points: AppendBatch, failing: &mut bool) -> AppendBatch {
    match s.log.append_async(points).await {
        Ok(reply) => {
            match reply.result {
                Ok(_) => {
                    if *failing {
                        info!("alert points are being written to the log again");
                    }
                    *failing = false;
                }
                Err(e) => {
                    if !*failing {
                        error!(error = %e, "alert points cannot be appended to the durable log; notifications go on, points and snapshots wait");
                    }
                    *failing = true;
                }
            }
            reply.batch
        }
        Err(_) => AppendBatch::new(Class::Internal),
    }
}

/// Active alerts and those resolved in the last 15 minutes (Alertmanager's
/// API expects firing alerts again and a tail of resolved ones).
fn resend_set(store: &Mutex<AlertStore>, now: i64) -> Vec<Alert> {
    let store = lock(store);
    let mut all = store.list(&AlertFilter {
        active: Some(true),
        ..Default::default()
    });
    let tail = now - 15 * 60 * 1000;
    all.extend(
        store
            .list(&AlertFilter {
                state: Some(AlertState::Resolved),
                ..Default::default()
            })
            .into_iter()
            .filter(|a| a.resolved_at_ms.unwrap_or(0) >= tail),
    );
    all
}

/// Why a rules snapshot was not saved.
#[derive(Debug, thiserror::Error)]
enum SaveError {
    #[error("no engine checkpoint yet")]
    NoCheckpoint,
    #[error("notification outbox not saved: {0}")]
    Outbox(#[source] std::io::Error),
    #[error("notification dispatch is gone")]
    DispatchGone,
    #[error("alert store snapshot failed: {0}")]
    Store(#[from] crate::alert::store::SnapshotError),
    #[error("rules snapshot not written: {0}")]
    Write(#[source] std::io::Error),
    #[error("rules cursor not committed: {0}")]
    Cursor(#[from] crate::log::LogError),
    #[error("snapshot task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Dispatch saves its outboxes, then the snapshot is written, then the
/// rules cursor moves.
async fn save(s: &Stage) -> Result<(), SaveError> {
    let Some(c) = s.checkpoint.clone() else {
        return Err(SaveError::NoCheckpoint);
    };
    let (tx, rx) = oneshot::channel();
    if s.notify.send(ToDispatch::Flush(tx)).await.is_ok() {
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(SaveError::Outbox(e)),
            Err(_) => return Err(SaveError::DispatchGone),
        }
    }
    let alerts = lock(&s.handle.store).snapshot()?;
    let (dir, log, pos, offset) = (s.settings.dir.clone(), s.log.clone(), c.position, c.offset);
    let engine = c.engine;
    tokio::task::spawn_blocking(move || -> Result<(), SaveError> {
        snapshot::write(&dir, offset, &engine, &alerts).map_err(SaveError::Write)?;
        Ok(log.commit_cursor(CURSOR_RULES, pos, Durability::Now)?)
    })
    .await?
}
