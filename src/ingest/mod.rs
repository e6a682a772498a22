//! MQTT 5 ingest: session, decode, durable commit, ordered acks.
//!
//! Two tasks. The **poller** owns rumqttc's event loop and does nothing but
//! poll it (it must never block), forwarding publishes tagged with the
//! connection *epoch*. The **committer** takes whatever has arrived (group
//! commit), decodes each message (good → record, bad → quarantine), appends
//! them in one fsynced log transaction and only then acks them, in receipt
//! order. The flow is bounded by the Receive Maximum the broker must honour,
//! which is why the poller → committer channel needs no other bound.
//!
//! No stale ack: a PUBACK carries only a packet id, so an ack for a message
//! of a dead connection could acknowledge a different message on the next
//! one. On a connection error the poller bumps the epoch and purges queued
//! acks (`EventLoop::clean`) under a write lock; the committer checks the
//! epoch and enqueues acks under the read lock, so an ack is either sent on
//! the connection its message came from or not at all (the broker then
//! redelivers it, and the duplicate is harmless: points are idempotent).

pub mod backoff;
pub mod session;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::config::MqttSettings;
use crate::decode::Decoder;
use crate::log::{AppendBatch, Class, Log, LogError};
use crate::metrics::Metrics;
use crate::pb;

/// Wall-clock now in Unix ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// State shared by poller and committer.
pub struct Session {
    /// Connection epoch; bumped on every connection loss.
    epoch: AtomicU64,
    /// Held for reading while acks are enqueued, for writing while the
    /// epoch changes and queued acks are purged.
    ack_gate: RwLock<()>,
    /// PUBACKs actually written to the socket.
    pub acks_flushed: AtomicU64,
    /// True after CONNACK, false after an error.
    pub connected: AtomicBool,
}

/// A publish with the epoch of the connection it arrived on.
pub struct Inbound {
    /// The packet (kept whole for the ack).
    pub publish: Publish,
    /// Connection epoch at receipt.
    pub epoch: u64,
    /// Receive time, Unix ms.
    pub received_at_ms: i64,
}

/// Handles returned by [`start`].
pub struct Ingest {
    /// The MQTT client (for disconnect).
    pub client: AsyncClient,
    /// Shared session state.
    pub session: Arc<Session>,
    /// Poller task.
    pub poller: tokio::task::JoinHandle<()>,
    /// Committer task; finishes after its final acks.
    pub committer: tokio::task::JoinHandle<()>,
}

/// Starts the poller and committer. `stop_intake` ends the committer after
/// it has committed and acked what it holds; `stop_poll` ends the poller.
pub fn start(
    settings: &MqttSettings,
    decoder: Arc<Decoder>,
    log: Arc<Log>,
    metrics: Arc<Metrics>,
    limits: CommitLimits,
    stop_intake: watch::Receiver<bool>,
    stop_poll: watch::Receiver<bool>,
) -> Result<Ingest, session::SessionError> {
    let opts = session::mqtt_options(settings)?;
    // Request channel sized above Receive Maximum: at most that many acks
    // can be outstanding, so try_ack never finds it full.
    let cap = usize::from(settings.receive_maximum) + 64;
    let (client, eventloop) = AsyncClient::new(opts, cap);
    let session = Arc::new(Session::new());
    let (tx, rx) = mpsc::unbounded_channel();
    let poller = tokio::spawn(poll_loop(
        eventloop,
        client.clone(),
        settings.subscribe.clone(),
        tx,
        session.clone(),
        metrics.clone(),
        backoff::Backoff::new(settings.reconnect_min, settings.reconnect_max),
        stop_poll,
    ));
    let committer = tokio::spawn(commit_loop(
        rx,
        client.clone(),
        session.clone(),
        decoder,
        log,
        metrics,
        limits,
        stop_intake,
    ));
    Ok(Ingest {
        client,
        session,
        poller,
        committer,
    })
}

#[allow(clippy::too_many_arguments)]
async fn poll_loop(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<String>,
    tx: mpsc::UnboundedSender<Inbound>,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
    mut backoff: backoff::Backoff,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = stop.wait_for(|s| *s) => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                session.connected.store(true, SeqCst);
                metrics.mqtt_connected.store(1, Relaxed);
                backoff.reset();
                info!(session_present = ack.session_present, "mqtt connected");
                for f in &filters {
                    if let Err(e) = client.try_subscribe(f.clone(), QoS::AtLeastOnce) {
                        error!(filter = %f, error = %e, "mqtt subscribe request failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let epoch = session.epoch.load(SeqCst);
                if tx
                    .send(Inbound {
                        publish: p,
                        epoch,
                        received_at_ms: now_ms(),
                    })
                    .is_err()
                {
                    // Committer gone (shutdown): leave the message unacked;
                    // the broker redelivers it to the next session.
                    debug!("publish after intake stopped; left for redelivery");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                debug!(reasons = ?s.return_codes, "mqtt subscribed");
            }
            Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                session.acks_flushed.fetch_add(1, Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                info!("mqtt disconnect sent");
                break;
            }
            Ok(_) => {}
            Err(e) => {
                // Purge acks queued for the dead connection.
                session.connection_lost(|| eventloop.clean());
                let was = session.connected.swap(false, SeqCst);
                metrics.mqtt_connected.store(0, Relaxed);
                metrics.mqtt_connection_errors.fetch_add(1, Relaxed);
                let delay = backoff.next_delay(&mut rng);
                if was {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt connection lost; unacked messages will be redelivered");
                } else {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt connect failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }
    }
    session.connected.store(false, SeqCst);
    metrics.mqtt_connected.store(0, Relaxed);
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
pub fn decode_into(decoder: &Decoder, m: &Inbound, metrics: &Metrics, batch: &mut AppendBatch) {
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
            Ok(rec) => {
                metrics.decoded.fetch_add(1, Relaxed);
                // A record is at most a few KiB (payloads are capped by
                // decode.max_payload_bytes), far below the frame limit.
                if batch
                    .records
                    .push_with(|b| {
                        // Encoding into a Vec cannot run out of space.
                        let _ = rec.encode(b);
                    })
                    .is_ok()
                {
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

#[allow(clippy::too_many_arguments)]
async fn commit_loop(
    mut rx: mpsc::UnboundedReceiver<Inbound>,
    client: AsyncClient,
    session: Arc<Session>,
    decoder: Arc<Decoder>,
    log: Arc<Log>,
    metrics: Arc<Metrics>,
    limits: CommitLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut inbound: Vec<Inbound> = Vec::with_capacity(limits.max_records);
    let mut batch = AppendBatch::new(Class::Ingest);
    loop {
        if *stop.borrow() {
            break;
        }
        let first = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = stop.wait_for(|s| *s) => break,
        };
        decode_into(&decoder, &first, &metrics, &mut batch);
        inbound.push(first);
        // Group commit: whatever has arrived, up to the limits.
        while inbound.len() < limits.max_records && batch.bytes() < limits.max_bytes {
            match rx.try_recv() {
                Ok(m) => {
                    decode_into(&decoder, &m, &metrics, &mut batch);
                    inbound.push(m);
                }
                Err(_) => break,
            }
        }
        batch = match commit(&log, &metrics, batch, &mut stop).await {
            Ok(b) => b,
            Err(b) => {
                // Shutdown while the log was full or failing: nothing was
                // acked, the broker keeps the messages for the next session.
                warn!(
                    messages = inbound.len(),
                    "shutdown before commit; messages left unacked for redelivery"
                );
                drop(b);
                break;
            }
        };
        send_acks(&client, &session, &metrics, &inbound);
        inbound.clear();
    }
    info!("ingest intake stopped");
}

/// Limits of one group commit.
#[derive(Clone, Copy, Debug)]
pub struct CommitLimits {
    /// Most messages.
    pub max_records: usize,
    /// Bytes after which no further message is taken.
    pub max_bytes: u64,
}

/// Appends, waiting out a full or failing log. Returns the emptied batch,
/// or (Err) the unwritten batch if shutdown came first.
async fn commit(
    log: &Arc<Log>,
    metrics: &Metrics,
    mut batch: AppendBatch,
    stop: &mut watch::Receiver<bool>,
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
            _ = stop.wait_for(|s| *s) => return Err(batch),
        }
    }
}

/// Where acks go: the MQTT client, or a recorder in tests.
pub trait AckSink {
    /// Queues a PUBACK for `p`.
    fn try_ack(&self, p: &Publish) -> Result<(), String>;
}

impl AckSink for AsyncClient {
    fn try_ack(&self, p: &Publish) -> Result<(), String> {
        AsyncClient::try_ack(self, p).map_err(|e| e.to_string())
    }
}

impl Session {
    /// A fresh session state at epoch 0, disconnected.
    pub fn new() -> Self {
        Session {
            epoch: AtomicU64::new(0),
            ack_gate: RwLock::new(()),
            acks_flushed: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        }
    }

    /// Current connection epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Marks the connection lost: bumps the epoch and runs `purge` (which
    /// drops acks already queued) while no ack can be enqueued.
    pub fn connection_lost(&self, purge: impl FnOnce()) {
        let _g = self.ack_gate.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, SeqCst);
        purge();
    }
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

/// Acks a committed batch in receipt order, skipping QoS 0 and every message
/// that arrived on an earlier connection.
pub fn send_acks(client: &impl AckSink, session: &Session, metrics: &Metrics, batch: &[Inbound]) {
    let _g = session.ack_gate.read().unwrap_or_else(|p| p.into_inner());
    let epoch = session.epoch.load(SeqCst);
    for m in batch {
        if m.publish.qos == QoS::AtMostOnce {
            continue;
        }
        if m.epoch != epoch {
            metrics.acks_stale_dropped.fetch_add(1, Relaxed);
            continue;
        }
        match client.try_ack(&m.publish) {
            Ok(()) => {
                metrics.acks.fetch_add(1, Relaxed);
            }
            Err(e) => {
                metrics.acks_stale_dropped.fetch_add(1, Relaxed);
                warn!(error = %e, "ack not queued; broker will redeliver");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<u16>>);
    impl AckSink for Recorder {
        fn try_ack(&self, p: &Publish) -> Result<(), String> {
            self.0.lock().unwrap().push(p.pkid);
            Ok(())
        }
    }

    fn inbound(pkid: u16, qos: QoS, epoch: u64) -> Inbound {
        let mut p = Publish::new("wastewatch/v1/s/bin/d/telemetry", qos, vec![1u8], None);
        p.pkid = pkid;
        Inbound {
            publish: p,
            epoch,
            received_at_ms: 0,
        }
    }

    #[test]
    fn acks_go_out_in_receipt_order_and_skip_qos0() {
        let (rec, session, m) = (Recorder::default(), Session::new(), Metrics::default());
        let batch = [
            inbound(5, QoS::AtLeastOnce, 0),
            inbound(0, QoS::AtMostOnce, 0),
            inbound(3, QoS::AtLeastOnce, 0),
            inbound(9, QoS::AtLeastOnce, 0),
        ];
        send_acks(&rec, &session, &m, &batch);
        assert_eq!(*rec.0.lock().unwrap(), vec![5, 3, 9]);
        assert_eq!(m.acks.load(Relaxed), 3);
    }

    #[test]
    fn no_ack_is_sent_for_a_message_of_an_earlier_connection() {
        let (rec, session, m) = (Recorder::default(), Session::new(), Metrics::default());
        let old = [
            inbound(1, QoS::AtLeastOnce, 0),
            inbound(2, QoS::AtLeastOnce, 0),
        ];
        let mut purged = false;
        session.connection_lost(|| purged = true);
        assert!(purged, "queued acks are purged under the gate");
        let new = [inbound(1, QoS::AtLeastOnce, 1)];
        send_acks(&rec, &session, &m, &old);
        send_acks(&rec, &session, &m, &new);
        assert_eq!(
            *rec.0.lock().unwrap(),
            vec![1],
            "only the message of the live connection is acked"
        );
        assert_eq!(m.acks_stale_dropped.load(Relaxed), 2);
    }

    #[test]
    fn an_ack_racing_a_connection_loss_is_either_purged_or_skipped() {
        // Many threads ack while the connection is lost repeatedly: every ack
        // enqueued under epoch e is either purged by the loss that ends e or
        // was enqueued before it; none is enqueued after its epoch ended.
        use std::sync::atomic::AtomicUsize;
        struct Checker<'a> {
            session: &'a Session,
            late: AtomicUsize,
            queued: Mutex<Vec<u64>>,
        }
        impl AckSink for Checker<'_> {
            fn try_ack(&self, p: &Publish) -> Result<(), String> {
                if u64::from(p.pkid) != self.session.epoch() {
                    self.late.fetch_add(1, SeqCst);
                }
                self.queued.lock().unwrap().push(u64::from(p.pkid));
                Ok(())
            }
        }
        let session = Session::new();
        let checker = Checker {
            session: &session,
            late: AtomicUsize::new(0),
            queued: Mutex::new(Vec::new()),
        };
        let m = Metrics::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..200 {
                    session.connection_lost(|| checker.queued.lock().unwrap().clear());
                    std::thread::yield_now();
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        let e = session.epoch();
                        // pkid carries the epoch the message arrived on.
                        send_acks(
                            &checker,
                            &session,
                            &m,
                            &[inbound(e as u16, QoS::AtLeastOnce, e)],
                        );
                    }
                });
            }
        });
        assert_eq!(
            checker.late.load(SeqCst),
            0,
            "an ack was enqueued after its connection ended"
        );
    }
}
