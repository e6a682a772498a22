//! The MQTT shell around the fleet: QoS 1 publishing over MQTT 5 with
//! persistent sessions, rate control, broker-ack accounting and a summary.
//!
//! Connections. By default the whole fleet shares [`SimConfig::connections`]
//! connections (device `i` of the sorted fleet uses connection
//! `i % connections`, client ids `{client_id}` or `{client_id}-{k}`), which
//! is what a 100 000-device load test needs: one TCP connection per device
//! would exhaust ports and the broker's connection limit long before the
//! message rate matters. The price is that an MQTT will belongs to a
//! connection, not a device, so shared connections carry no per-device will;
//! a device that goes offline (`device_offline`) publishes its LAST_WILL
//! itself, as a gateway does for the devices behind it. With
//! [`SimConfig::per_device_connections`] each device gets its own
//! connection, client id = device id, with its LAST_WILL registered as the
//! MQTT will; going offline then drops the connection without DISCONNECT
//! and the broker publishes the will. Every connection uses clean start off
//! and a session expiry, so unacked messages survive a reconnect.
//!
//! Shape: one task per connection does nothing but poll its rumqttc event
//! loop (it must never block) and account PUBACKs; the caller's task runs
//! the clock, the fleet and the token bucket and hands messages to the
//! clients, waiting when a client's request queue is full. Simulated time
//! advances at `speedup` × wall time while fewer than [`BACKLOG_LIMIT`]
//! generated messages wait for the rate limit, so a low `--rate` slows the
//! simulation down instead of growing memory.
//!
//! Acks: rumqttc reports `Outgoing::Publish(pkid)` in request order, so each
//! connection keeps a FIFO of message identities pushed before the request
//! and pops one per new packet id; a packet id already in flight is a
//! retransmission after a reconnect. On a reconnect without a session the
//! broker has dropped the in-flight messages; they stay in the unacked
//! lists of the summary.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{
    LastWill, LastWillProperties, Packet, PubAckReason, PublishProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::bucket::TokenBucket;
use super::config::SimConfig;
use super::fleet::{Fleet, OutMsg};
use super::summary::{DeviceSummary, RangeSet, Summary};
use super::time::wall_now_ms;
use wastewatch_contract::pb::DeviceKind;
use wastewatch_contract::topic::kind_segment;

/// Most generated messages kept waiting for the rate limit before
/// simulated time stops advancing.
pub const BACKLOG_LIMIT: usize = 50_000;
/// Clock tick of the publishing loop.
const TICK: Duration = Duration::from_millis(10);
/// How long the end of a run waits for outstanding PUBACKs.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Request queue of each MQTT client.
const CLIENT_QUEUE: usize = 10_000;

/// A snapshot for the progress line, once a second.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Wall time since publishing started.
    pub elapsed: Duration,
    /// Messages handed to MQTT clients.
    pub sent: u64,
    /// Messages acked by the broker.
    pub acked: u64,
    /// Messages sent per second over the last interval.
    pub rate_per_s: f64,
    /// Simulated time reached, Unix ms.
    pub sim_now_ms: i64,
    /// Generated messages waiting for the rate limit.
    pub backlog: usize,
    /// Connections currently up.
    pub connections_up: usize,
    /// Connections in total.
    pub connections: usize,
}

/// Identity of a message in flight.
#[derive(Clone, Copy, Debug)]
struct Meta {
    slot: usize,
    seq: u64,
}

/// Per-device accounting.
#[derive(Debug, Default)]
struct DevBook {
    kind: usize,
    sent: u64,
    acked: u64,
    first: u64,
    last: u64,
    ranges: RangeSet,
    quarantine: Vec<u64>,
    dups: Vec<u64>,
    unacked: BTreeMap<u64, u32>,
    unsequenced: u64,
    will_fired: bool,
}

/// Everything counted so far, shared with the pollers.
#[derive(Debug, Default)]
struct Book {
    names: Vec<String>,
    devs: Vec<DevBook>,
    others: HashMap<String, usize>,
    sent_by_kind: [u64; 5],
    acked_by_kind: [u64; 5],
    rejected: u64,
    expected_q: BTreeMap<String, u64>,
    duplicates: u64,
    wills_triggered: u64,
    sent: u64,
    acked: u64,
}

fn kind_index(k: DeviceKind) -> usize {
    (k as i32).clamp(0, 4) as usize
}

impl Book {
    fn slot(&mut self, fleet: &Fleet, m: &OutMsg) -> usize {
        if let Some(i) = fleet.device_index(&m.device_id) {
            return i;
        }
        if let Some(&i) = self.others.get(&m.device_id) {
            return i;
        }
        let i = self.devs.len();
        self.names.push(m.device_id.clone());
        self.devs.push(DevBook {
            kind: kind_index(m.kind),
            ..DevBook::default()
        });
        self.others.insert(m.device_id.clone(), i);
        i
    }

    fn record_sent(&mut self, slot: usize, m: &OutMsg) {
        self.record(slot, m, true);
    }

    /// Counts a message; `await_ack` tracks it until its PUBACK.
    fn record(&mut self, slot: usize, m: &OutMsg, await_ack: bool) {
        self.sent += 1;
        self.sent_by_kind[kind_index(m.kind)] += 1;
        if m.duplicate {
            self.duplicates += 1;
        }
        if let Some(r) = m.expect_reason.filter(|_| m.expect_quarantine) {
            *self.expected_q.entry(r.as_str().to_owned()).or_default() += 1;
        }
        let Some(d) = self.devs.get_mut(slot) else {
            return;
        };
        d.sent += 1;
        if await_ack {
            *d.unacked.entry(m.seq).or_default() += 1;
        }
        if m.seq > 0 {
            d.first = if d.first == 0 {
                m.seq
            } else {
                d.first.min(m.seq)
            };
            d.last = d.last.max(m.seq);
        }
        if m.seq == 0 {
            d.unsequenced += 1;
        } else if m.duplicate {
            d.dups.push(m.seq);
        } else if m.expect_quarantine {
            d.quarantine.push(m.seq);
        } else {
            d.ranges.insert(m.seq);
        }
    }

    fn record_ack(&mut self, meta: Meta, ok: bool) {
        self.acked += 1;
        if !ok {
            self.rejected += 1;
        }
        let Some(d) = self.devs.get_mut(meta.slot) else {
            return;
        };
        d.acked += 1;
        self.acked_by_kind[d.kind] += 1;
        if let Some(n) = d.unacked.get_mut(&meta.seq) {
            *n -= 1;
            if *n == 0 {
                d.unacked.remove(&meta.seq);
            }
        }
    }

    fn outstanding(&self) -> u64 {
        self.sent.saturating_sub(self.acked)
    }
}

fn lock(book: &Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    // A poisoned lock only means a poller panicked mid-update of counters;
    // the counts are still the best we have.
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One MQTT connection and its poller.
struct Conn {
    client: AsyncClient,
    meta_tx: mpsc::UnboundedSender<Meta>,
    poller: JoinHandle<()>,
    kill: watch::Sender<bool>,
    up: Arc<AtomicBool>,
    killed: bool,
}

fn options(
    client_id: &str,
    host: &str,
    port: u16,
    cfg: &SimConfig,
    will: Option<&OutMsg>,
    login: Option<(&str, &str)>,
) -> MqttOptions {
    let mut o = MqttOptions::new(
        format!("{}{client_id}", cfg.auth.client_id_prefix),
        host,
        port,
    );
    if let Some((user, password)) = login {
        o.set_credentials(user, password);
    }
    o.set_keep_alive(cfg.keep_alive);
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(cfg.session_expiry_s));
    o.set_pending_throttle(Duration::ZERO);
    if let Some(w) = will {
        let props = LastWillProperties {
            delay_interval: None,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: content_type(w).map(str::to_owned),
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        };
        o.set_last_will(LastWill::new(
            w.topic.clone(),
            w.payload.clone(),
            QoS::AtLeastOnce,
            false,
            Some(props),
        ));
    }
    o
}

/// The MQTT 5 content type a message is published with.
fn content_type(m: &OutMsg) -> Option<&'static str> {
    (m.json && !m.topic.ends_with("/json")).then_some("application/json")
}

fn connect(
    client_id: &str,
    host: &str,
    port: u16,
    cfg: &SimConfig,
    will: Option<&OutMsg>,
    login: Option<(&str, &str)>,
    book: Arc<Mutex<Book>>,
) -> Conn {
    let (client, eventloop) = AsyncClient::new(
        options(client_id, host, port, cfg, will, login),
        CLIENT_QUEUE,
    );
    let (meta_tx, meta_rx) = mpsc::unbounded_channel();
    let (kill, kill_rx) = watch::channel(false);
    let up = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_loop(
        eventloop,
        meta_rx,
        book,
        up.clone(),
        kill_rx,
        client_id.to_owned(),
    ));
    Conn {
        client,
        meta_tx,
        poller,
        kill,
        up,
        killed: false,
    }
}

/// Polls one event loop until DISCONNECT is written or it is killed.
async fn poll_loop(
    mut el: EventLoop,
    mut meta_rx: mpsc::UnboundedReceiver<Meta>,
    book: Arc<Mutex<Book>>,
    up: Arc<AtomicBool>,
    mut kill: watch::Receiver<bool>,
    client_id: String,
) {
    let mut inflight: HashMap<u16, Meta> = HashMap::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        let ev = tokio::select! {
            ev = el.poll() => ev,
            _ = kill.wait_for(|k| *k) => return,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                up.store(true, Relaxed);
                backoff = Duration::from_millis(200);
                if !ack.session_present && !inflight.is_empty() {
                    warn!(client_id = %client_id, lost = inflight.len(), "broker has no session; in-flight messages are lost");
                    inflight.clear();
                }
                debug!(client_id = %client_id, session_present = ack.session_present, "mqtt connected");
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                // A packet id already in flight is a retransmission.
                if let std::collections::hash_map::Entry::Vacant(slot) = inflight.entry(pkid) {
                    if let Ok(m) = meta_rx.try_recv() {
                        slot.insert(m);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(m) = inflight.remove(&ack.pkid) {
                    let ok = matches!(
                        ack.reason,
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                    );
                    lock(&book).record_ack(m, ok);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                up.store(false, Relaxed);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                up.store(false, Relaxed);
                debug!(client_id = %client_id, error = %e, "mqtt connection error; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = kill.wait_for(|k| *k) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Resolves when `stop` turns true; never when its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Publishes the fleet's messages until `cfg.count` messages are sent,
/// `cfg.duration` passes or `stop` turns true, then waits (up to 10 s) for
/// outstanding PUBACKs, disconnects cleanly and returns the summary.
/// `progress` is called about once a second.
pub async fn publish(
    mut fleet: Fleet,
    mqtt_host: &str,
    port: u16,
    client_id: &str,
    cfg: &SimConfig,
    mut stop: watch::Receiver<bool>,
    progress: impl Fn(&Progress) + Send + Sync,
) -> anyhow::Result<Summary> {
    cfg.validate()?;
    let book = Arc::new(Mutex::new(Book::default()));
    {
        let mut b = lock(&book);
        for (i, id) in fleet.device_ids().enumerate() {
            b.names.push(id.to_owned());
            b.devs.push(DevBook {
                kind: fleet.device_kind(i).map_or(0, kind_index),
                ..DevBook::default()
            });
        }
    }
    let per_device = cfg.per_device_connections;
    let mut conns = Vec::new();
    if per_device {
        let ids: Vec<String> = fleet.device_ids().map(str::to_owned).collect();
        for id in &ids {
            let will = fleet.register_will(id);
            conns.push(connect(
                id,
                mqtt_host,
                port,
                cfg,
                will.as_ref(),
                cfg.auth.device(id),
                book.clone(),
            ));
        }
        // Messages of devices outside the registry (unknown_device faults).
        conns.push(connect(
            &format!("{client_id}-faults"),
            mqtt_host,
            port,
            cfg,
            None,
            cfg.auth.shared(),
            book.clone(),
        ));
    } else {
        let n = cfg.connections.min(fleet.device_count()).max(1);
        for k in 0..n {
            let cid = if n == 1 {
                client_id.to_owned()
            } else {
                format!("{client_id}-{k}")
            };
            conns.push(connect(
                &cid,
                mqtt_host,
                port,
                cfg,
                None,
                cfg.auth.shared(),
                book.clone(),
            ));
        }
    }
    info!(connections = conns.len(), devices = fleet.device_count(), host = %mqtt_host, port, "firmware-sim publishing");

    let started = Instant::now();
    let sim_start = cfg.start_unix_ms;
    let mut sim_ms = sim_start as f64;
    let mut backlog: VecDeque<OutMsg> = VecDeque::new();
    let mut bucket = cfg.rate_per_s.map(TokenBucket::new);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_wall = Instant::now();
    let mut last_progress = (Instant::now(), 0u64);
    let limit = cfg.count.unwrap_or(u64::MAX);
    let mut sent_total = 0u64;
    'run: loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stop) => break 'run,
        }
        let now = Instant::now();
        if cfg.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let dt = now.saturating_duration_since(last_wall);
        last_wall = now;
        if backlog.len() < BACKLOG_LIMIT {
            sim_ms += dt.as_secs_f64() * 1000.0 * cfg.speedup;
            if cfg.clamp_to_wall_clock {
                sim_ms = sim_ms
                    .min(wall_now_ms() as f64)
                    .max(fleet.sim_now_ms() as f64);
            }
            backlog.extend(fleet.next_batch(sim_ms as i64));
        }
        if let Some(b) = bucket.as_mut() {
            b.refill(now);
        }
        let slice_start = Instant::now();
        while sent_total < limit {
            if bucket.as_mut().is_some_and(|b| !b.take()) {
                break;
            }
            let Some(m) = backlog.pop_front() else { break };
            if send(&fleet, &mut conns, &book, per_device, m).await {
                sent_total += 1;
            }
            // Keep the tick, the stop signal and progress responsive.
            if slice_start.elapsed() >= Duration::from_millis(50) {
                break;
            }
        }
        if sent_total >= limit {
            break;
        }
        if last_progress.0.elapsed() >= Duration::from_secs(1) {
            let (sent, acked) = {
                let b = lock(&book);
                (b.sent, b.acked)
            };
            let secs = last_progress.0.elapsed().as_secs_f64();
            progress(&Progress {
                elapsed: started.elapsed(),
                sent,
                acked,
                rate_per_s: (sent - last_progress.1) as f64 / secs,
                sim_now_ms: fleet.sim_now_ms(),
                backlog: backlog.len(),
                connections_up: conns.iter().filter(|c| c.up.load(Relaxed)).count(),
                connections: conns.len(),
            });
            last_progress = (Instant::now(), sent);
        }
    }

    // Drain: wait for the broker to ack what was sent.
    let drain_start = Instant::now();
    while lock(&book).outstanding() > 0 && drain_start.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in &mut conns {
        if c.killed {
            continue;
        }
        let _ = c.client.try_disconnect();
    }
    for c in conns.iter_mut() {
        let finished = tokio::time::timeout(Duration::from_secs(2), &mut c.poller)
            .await
            .is_ok();
        if !finished {
            let _ = c.kill.send(true);
        }
    }

    let b = lock(&book);
    let summary = build_summary(&b, &fleet, cfg, started, backlog.len() as u64, per_device);
    drop(b);
    Ok(summary)
}

/// The summary of what `book` counted.
fn build_summary(
    b: &Book,
    fleet: &Fleet,
    cfg: &SimConfig,
    started: Instant,
    unsent: u64,
    per_device: bool,
) -> Summary {
    let mut summary = Summary {
        seed: cfg.seed,
        scenarios: cfg
            .normalised_scenarios()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        assignments: fleet
            .assignments()
            .iter()
            .map(|a| {
                (
                    a.scenario.as_str().to_owned(),
                    a.device_id.clone(),
                    a.detail.clone(),
                )
            })
            .collect(),
        sim_start_unix_ms: cfg.start_unix_ms,
        sim_end_unix_ms: fleet.sim_now_ms(),
        wall_seconds: started.elapsed().as_secs_f64(),
        connections: if per_device {
            fleet.device_count() + 1
        } else {
            cfg.connections.min(fleet.device_count()).max(1)
        },
        sent: b.sent,
        acked: b.acked,
        rejected_by_broker: b.rejected,
        expected_quarantined: b.expected_q.values().sum(),
        expected_quarantined_by_reason: b.expected_q.clone(),
        duplicates_sent: b.duplicates,
        wills_triggered: b.wills_triggered,
        unsent_backlog: unsent,
        ..Summary::default()
    };
    for (i, name) in ["unspecified", "weighbridge", "bin", "storage", "truck"]
        .iter()
        .enumerate()
    {
        if b.sent_by_kind[i] > 0 || i > 0 {
            summary
                .sent_by_kind
                .insert((*name).to_owned(), b.sent_by_kind[i]);
            summary
                .acked_by_kind
                .insert((*name).to_owned(), b.acked_by_kind[i]);
        }
    }
    for (i, (name, d)) in b.names.iter().zip(&b.devs).enumerate() {
        let will_seq = if per_device && !d.will_fired && i < fleet.device_count() {
            fleet.registered_will(name).map(|w| w.seq)
        } else {
            None
        };
        summary.devices.insert(
            name.clone(),
            DeviceSummary {
                kind: kind_segment(
                    DeviceKind::try_from(d.kind as i32).unwrap_or(DeviceKind::Unspecified),
                )
                .to_owned(),
                sent: d.sent,
                acked: d.acked,
                first_seq: d.first,
                last_seq: d.last,
                ranges: d.ranges.clone(),
                quarantine_seqs: d.quarantine.clone(),
                duplicate_seqs: d.dups.clone(),
                unacked_seqs: d.unacked.keys().copied().collect(),
                unsequenced_sent: d.unsequenced,
                unused_will_seq: will_seq,
            },
        );
    }
    summary
}

/// Runs the fleet without a broker, as fast as it computes: simulated time
/// advances from `cfg.start_unix_ms` for `cfg.duration` of *simulated* time
/// (default one hour) or until `cfg.count` messages. Returns the summary a
/// real run would give, with nothing acked. For checking scenarios offline.
pub fn dry_run(mut fleet: Fleet, cfg: &SimConfig) -> Summary {
    let mut book = Book::default();
    for (i, id) in fleet.device_ids().enumerate() {
        book.names.push(id.to_owned());
        book.devs.push(DevBook {
            kind: fleet.device_kind(i).map_or(0, kind_index),
            ..DevBook::default()
        });
    }
    let started = Instant::now();
    let sim_span = cfg
        .duration
        .unwrap_or(Duration::from_secs(3600))
        .as_millis() as i64;
    let end = cfg.start_unix_ms.saturating_add(sim_span);
    let limit = cfg.count.unwrap_or(u64::MAX);
    let mut t = cfg.start_unix_ms;
    'run: while t < end {
        t = (t + 1000).min(end);
        for m in fleet.next_batch(t) {
            if book.sent >= limit {
                break 'run;
            }
            let slot = book.slot(&fleet, &m);
            book.record(slot, &m, false);
        }
    }
    let mut summary = build_summary(&book, &fleet, cfg, started, 0, false);
    summary.connections = 0;
    summary
}

/// Hands one message to its connection; false when it could not be sent.
async fn send(
    fleet: &Fleet,
    conns: &mut [Conn],
    book: &Mutex<Book>,
    per_device: bool,
    m: OutMsg,
) -> bool {
    let slot = lock(book).slot(fleet, &m);
    let fleet_dev = fleet.device_index(&m.device_id);
    let ci = match (per_device, fleet_dev) {
        (true, Some(i)) => i,
        (true, None) => conns.len() - 1,
        (false, Some(i)) => i % conns.len(),
        (false, None) => 0,
    };
    let Some(conn) = conns.get_mut(ci) else {
        return false;
    };
    if conn.killed {
        return false;
    }
    if per_device && m.last_will && fleet_dev.is_some() {
        // Vanish without DISCONNECT: the broker publishes the registered
        // will (MQTT 5 §3.1.2.5).
        let _ = conn.kill.send(true);
        conn.killed = true;
        let mut b = lock(book);
        b.wills_triggered += 1;
        if let Some(d) = b.devs.get_mut(slot) {
            // The broker publishes it: a valid message the service must
            // store, though not one this client sent.
            d.will_fired = true;
            d.ranges.insert(m.seq);
        }
        return false;
    }
    if m.topic.is_empty() || m.topic.contains(['+', '#']) {
        return false;
    }
    lock(book).record_sent(slot, &m);
    if conn.meta_tx.send(Meta { slot, seq: m.seq }).is_err() {
        return false;
    }
    let props = PublishProperties {
        content_type: content_type(&m).map(str::to_owned),
        ..PublishProperties::default()
    };
    match conn
        .client
        .publish_with_properties(m.topic, QoS::AtLeastOnce, false, m.payload, props)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, "mqtt client refused a publish; its event loop has stopped");
            false
        }
    }
}
