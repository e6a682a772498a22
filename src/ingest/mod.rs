//! MQTT 5 ingest: connection, decode, durable commit, ordered acks.
//!
//! Two tasks. The **connection** (`connection.rs`) owns the socket: it reads
//! publishes in bunches, tags each with the *epoch* of its connection, and
//! writes PUBACKs when told to. The **committer** takes whatever has
//! arrived (group commit, up to `log.commit_max_records` messages or
//! `log.commit_max_bytes`), decodes each message (good → record, bad →
//! quarantine with the precise reason), appends them to the durable log in
//! one fsynced group and only then sends their acks to the connection, in
//! receipt order. The flow is bounded by the Receive Maximum the broker must
//! honour, which is why the connection → committer channel needs no other
//! bound.
//!
//! An ack reaches only the connection its message came from (see the
//! connection's epoch check); a message of a dead connection stays unacked
//! and the broker redelivers it — a duplicate is harmless, points are
//! idempotent.

pub mod connection;
mod lowat;
pub mod restamp;
pub mod session;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::MqttSettings;
use crate::decode::Decoder;
use crate::log::{AppendBatch, Class, Log, LogError};
use crate::metrics::Metrics;
use crate::pb;
use connection::ToConnection;

/// Wall-clock now in Unix ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// State shared by the connection and the rest of the service.
#[derive(Debug, Default)]
pub struct Session {
    /// Connection epoch; a new connection gets the next one.
    pub epoch: AtomicU64,
    /// PUBACKs written to the socket.
    pub acks_flushed: AtomicU64,
    /// True once the broker acknowledged the subscription (SUBACK) of the
    /// live connection, false once the connection is lost.
    pub connected: AtomicBool,
}

/// A publish with the epoch of the connection it arrived on.
#[derive(Debug)]
pub struct Inbound {
    /// The packet (its packet id is what the ack carries).
    pub publish: Publish,
    /// Connection epoch at receipt.
    pub epoch: u64,
    /// Receive time, Unix ms.
    pub received_at_ms: i64,
}

/// Handles returned by [`start`].
pub struct Ingest {
    /// Shared session state.
    pub session: Arc<Session>,
    /// To the connection (shutdown sends `Disconnect` here).
    pub control: mpsc::UnboundedSender<ToConnection>,
    /// Connection task; ends after DISCONNECT (or a hard stop).
    pub connection: tokio::task::JoinHandle<()>,
    /// Committer task; ends after its final acks are handed over.
    pub committer: tokio::task::JoinHandle<()>,
}

/// Starts the connection and the committer. `stop_intake` ends the
/// committer after it has committed and handed over the acks of what it
/// holds; `stop_poll` ends the connection at once (a hard stop, for when
/// the DISCONNECT cannot be sent).
pub fn start(
    settings: &MqttSettings,
    decoder: Arc<Decoder>,
    log: Arc<Log>,
    metrics: Arc<Metrics>,
    limits: CommitLimits,
    stop_intake: CancellationToken,
    stop_poll: CancellationToken,
) -> Result<Ingest, session::SessionError> {
    let connector = connection::Connector::new(settings)?;
    let host = settings.sparkplug.as_ref().map(|sp| {
        crate::gateway::sparkplug::Host::new(
            decoder.clone(),
            crate::gateway::sparkplug::HostConfig {
                host_id: sp.host_id.clone(),
                groups: sp.groups.clone(),
                rebirth_min_interval_ms: i64::try_from(sp.rebirth_min_interval.as_millis())
                    .unwrap_or(i64::MAX),
            },
        )
    });
    let session = Arc::new(Session::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let connection = tokio::spawn(connection::run(
        connector,
        tx,
        control_rx,
        session.clone(),
        metrics.clone(),
        stop_poll,
    ));
    let committer = tokio::spawn(commit_loop(
        rx,
        control.clone(),
        decoder,
        host,
        log,
        metrics,
        limits,
        stop_intake,
    ));
    Ok(Ingest {
        session,
        control,
        connection,
        committer,
    })
}

fn quarantine_record(
    p: &Publish,
    ct: Option<&str>,
    received_at_ms: i64,
    kind: &str,
    detail: String,
) -> pb::QuarantineRecord {
    pb::QuarantineRecord {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload.to_vec(),
        content_type: ct.unwrap_or("").to_owned(),
        reason: kind.to_owned(),
        detail,
        received_at_unix_ms: received_at_ms,
        ..Default::default()
    }
}

/// Decodes one inbound message into `batch`: a record frame if it decodes,
/// a quarantine frame (raw bytes and the precise reason) if not.
pub fn decode_into(
    decoder: &Decoder,
    restamper: &mut restamp::Restamper,
    m: &Inbound,
    metrics: &Metrics,
    batch: &mut AppendBatch,
) {
    metrics.received.fetch_add(1, Relaxed);
    let p = &m.publish;
    let ct = p
        .properties
        .as_ref()
        .and_then(|pr| pr.content_type.as_deref());
    let refused = match std::str::from_utf8(&p.topic) {
        Err(_) => {
            metrics.quarantine(crate::decode::ErrorKind::MalformedTopic);
            quarantine_record(
                p,
                ct,
                m.received_at_ms,
                "malformed_topic",
                "topic is not UTF-8".into(),
            )
        }
        Ok(topic) => match decoder.decode(topic, &p.payload, ct, m.received_at_ms) {
            Ok(mut rec) => {
                metrics.decoded.fetch_add(1, Relaxed);
                restamper.apply(&mut rec);
                // A record is at most a few KiB (payloads are capped by
                // decode.max_payload_bytes), far below the frame limit.
                if batch.push_record(rec).is_ok() {
                    return;
                }
                quarantine_record(
                    p,
                    ct,
                    m.received_at_ms,
                    "too_large",
                    "decoded record is larger than a log frame".into(),
                )
            }
            Err(e) => {
                metrics.quarantine(e.kind);
                debug!(topic, reason = %e.kind, detail = %e.detail, "message quarantined");
                quarantine_record(p, ct, m.received_at_ms, e.kind.as_str(), e.detail)
            }
        },
    };
    if let Err(e) = batch.quarantine.push_with(|b| {
        let _ = refused.encode(b);
    }) {
        // Cannot happen with max_packet_bytes below the frame limit (the
        // config checks it); keep the message unacked rather than lose it.
        error!(error = %e, "quarantine entry too large for the log");
    }
}

/// Runs one Sparkplug B message through the host state machine into
/// `batch`: its records (re-stamped like native ones) and quarantine
/// entries; its rebirth requests go to the connection at once (they need
/// nothing durable).
pub fn sparkplug_into(
    host: &mut crate::gateway::sparkplug::Host,
    restamper: &mut restamp::Restamper,
    m: &Inbound,
    metrics: &Metrics,
    batch: &mut AppendBatch,
    control: &mpsc::UnboundedSender<ToConnection>,
) {
    metrics.received.fetch_add(1, Relaxed);
    metrics.sparkplug_messages.fetch_add(1, Relaxed);
    let p = &m.publish;
    let topic = String::from_utf8_lossy(&p.topic);
    let out = host.on_message(&topic, &p.payload, m.received_at_ms);
    if out.quarantine.is_empty() {
        metrics.decoded.fetch_add(1, Relaxed);
    }
    metrics.sparkplug_seq_gaps.fetch_add(out.seq_gaps, Relaxed);
    metrics
        .sparkplug_unmapped_metrics
        .fetch_add(out.unmapped_metrics, Relaxed);
    metrics
        .sparkplug_stale_deaths
        .fetch_add(out.stale_deaths, Relaxed);
    for mut rec in out.records {
        restamper.apply(&mut rec);
        if batch.push_record(rec).is_err() {
            error!(topic = %topic, "sparkplug record too large for the log; dropped");
            continue;
        }
        metrics.sparkplug_records.fetch_add(1, Relaxed);
    }
    for (kind, q) in out.quarantine {
        metrics.quarantine(kind);
        if let Err(e) = batch.quarantine.push_with(|b| {
            let _ = q.encode(b);
        }) {
            error!(error = %e, "quarantine entry too large for the log");
        }
    }
    for c in out.commands {
        info!(topic = %c.topic, "sparkplug rebirth requested");
        metrics.sparkplug_rebirth_requests.fetch_add(1, Relaxed);
        let _ = control.send(ToConnection::Publish {
            topic: c.topic,
            payload: c.payload,
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn commit_loop(
    mut rx: mpsc::UnboundedReceiver<Vec<Inbound>>,
    control: mpsc::UnboundedSender<ToConnection>,
    decoder: Arc<Decoder>,
    mut host: Option<crate::gateway::sparkplug::Host>,
    log: Arc<Log>,
    metrics: Arc<Metrics>,
    limits: CommitLimits,
    stop: CancellationToken,
) {
    // Arrived but not yet in a group.
    let mut waiting: VecDeque<Inbound> = VecDeque::new();
    let mut group: Vec<Inbound> = Vec::with_capacity(limits.max_records);
    let mut batch = AppendBatch::new(Class::Ingest);
    let mut restamper = seed_restamper(&log);
    loop {
        if stop.is_cancelled() {
            break;
        }
        if waiting.is_empty() {
            tokio::select! {
                m = rx.recv() => match m { Some(m) => waiting.extend(m), None => break },
                _ = stop.cancelled() => break,
            }
            // Linger: at moderate load the first messages of a group would
            // otherwise get an fsync (and every consumer a wake-up) of their
            // own. A group already full, or a backlog, does not wait.
            if !limits.linger.is_zero() && waiting.len() < limits.max_records {
                tokio::select! {
                    _ = tokio::time::sleep(limits.linger) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
        // Group commit: whatever has arrived, up to the limits.
        while let Ok(m) = rx.try_recv() {
            waiting.extend(m);
        }
        while group.len() < limits.max_records && batch.bytes() < limits.max_bytes {
            let Some(m) = waiting.pop_front() else { break };
            match host.as_mut() {
                // The host's state machine sees its messages in receipt order.
                Some(h)
                    if wastewatch_contract::sparkplug::is_sparkplug_topic(
                        &String::from_utf8_lossy(&m.publish.topic),
                    ) =>
                {
                    sparkplug_into(h, &mut restamper, &m, &metrics, &mut batch, &control)
                }
                _ => decode_into(&decoder, &mut restamper, &m, &metrics, &mut batch),
            }
            group.push(m);
        }
        batch = match commit(&log, &metrics, batch, &stop).await {
            Ok(b) => b,
            Err(_) => {
                // Shutdown while the log was full or failing: nothing was
                // acked, the broker keeps the messages for the next session.
                warn!(
                    messages = group.len() + waiting.len(),
                    "shutdown before commit; messages left unacked for redelivery"
                );
                break;
            }
        };
        // Before the acks go: the connection, woken by them, must see the
        // room they make (it stops reading while too many are held).
        metrics.ingest_held.fetch_sub(group.len() as u64, Relaxed);
        send_acks(&control, &group);
        group.clear();
    }
    info!("ingest intake stopped");
}

/// The re-stamp memory, seeded from the newest log segments (where any
/// message the broker may still redeliver was written).
pub fn seed_restamper(log: &Log) -> restamp::Restamper {
    let mut r = restamp::Restamper::default();
    let mut seen = 0u64;
    if let Ok(mut reader) = log.reader_recent(2) {
        loop {
            match reader.read(4096) {
                Ok(b) if !b.is_empty() => {
                    for (_, bytes) in b.iter() {
                        if let Ok(rec) = pb::LogRecord::decode(bytes) {
                            r.seed(&rec);
                            seen += 1;
                        }
                    }
                }
                _ => break,
            }
        }
    }
    debug!(records = seen, "re-stamp memory seeded from the log");
    r
}

/// Limits of one group commit.
#[derive(Clone, Copy, Debug)]
pub struct CommitLimits {
    /// Most messages.
    pub max_records: usize,
    /// Bytes after which no further message is taken.
    pub max_bytes: u64,
    /// How long a group waits for more messages once its first has arrived
    /// (`log.commit_linger_ms`).
    pub linger: std::time::Duration,
}

/// Appends, waiting out a full or failing log. Returns the emptied batch,
/// or (Err) the unwritten batch if shutdown came first.
async fn commit(
    log: &Arc<Log>,
    metrics: &Metrics,
    mut batch: AppendBatch,
    stop: &CancellationToken,
) -> Result<AppendBatch, AppendBatch> {
    let mut full_logged = false;
    loop {
        let reply = match log.append_async(batch).await {
            Ok(r) => r,
            Err(_) => {
                error!("durable log writer gone; messages stay unacked");
                return Err(AppendBatch::new(Class::Ingest));
            }
        };
        batch = reply.batch;
        let wait = match reply.result {
            Ok(_) => {
                metrics.log_commits.fetch_add(1, Relaxed);
                if full_logged {
                    info!("durable log has space again; ingest resumed");
                }
                metrics.log_full.store(0, Relaxed);
                return Ok(batch);
            }
            Err(e @ LogError::Full { .. }) => {
                metrics.log_full_events.fetch_add(1, Relaxed);
                metrics.log_full.store(1, Relaxed);
                if !full_logged {
                    error!(error = %e, "durable log full; not acking, broker holds the messages");
                    full_logged = true;
                }
                Duration::from_millis(200)
            }
            Err(e) => {
                // The writer logs a storage error once per episode.
                metrics.log_append_errors.fetch_add(1, Relaxed);
                debug!(error = %e, "durable log append failed; retrying, messages stay unacked");
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Err(batch),
        }
    }
}

/// Hands the acks of a committed group to the connection, in receipt
/// order, one batch per run of messages of the same connection; QoS 0
/// messages need none.
pub fn send_acks(control: &mpsc::UnboundedSender<ToConnection>, group: &[Inbound]) {
    let mut i = 0;
    while i < group.len() {
        let epoch = group[i].epoch;
        let mut pkids = Vec::new();
        while i < group.len() && group[i].epoch == epoch {
            if group[i].publish.qos != QoS::AtMostOnce {
                pkids.push(group[i].publish.pkid);
            }
            i += 1;
        }
        if !pkids.is_empty() && control.send(ToConnection::Acks { epoch, pkids }).is_err() {
            debug!("connection gone; acks dropped, the broker redelivers");
            return;
        }
    }
}

#[cfg(test)]
mod tests;
