//! The async shell of the JT/T 808 gateway: a TCP listener in the service,
//! one task per terminal connection around a pure [`Conn`].
//!
//! Guarantee: a location report is answered 0x8001 only after the records
//! (or quarantine entries) it produced are durable in the log — each step's
//! output is appended with `Log::append_async` and its replies written only
//! when the writer thread answers with success. A full or failing log is
//! waited out (the replies wait, and nothing more is read from that
//! terminal meanwhile): an unanswered terminal keeps its data and
//! retransmits, so nothing acknowledged is lost.
//!
//! Limits: at most `max_connections` terminals (further ones are closed at
//! once and counted), a frame of at most `max_frame_bytes`, at most
//! `max_messages_per_s` frames per connection (reading pauses beyond it),
//! authentication within `auth_timeout`, a frame at least every
//! `idle_timeout` (a terminal heartbeats every 60 s by default), and writes
//! that must finish within `write_timeout`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::Jt808Settings;
use crate::ingest::restamp::Restamper;
use crate::log::{AppendBatch, Class, Log, LogError};
use crate::metrics::Metrics;
use crate::registry::Registry;

use super::frame::Splitter;
use super::session::{Conn, Output, Policy};

/// The running gateway.
pub struct Gateway {
    /// The address it listens on (port 0 resolved).
    pub local_addr: SocketAddr,
    /// Ends after `stop` once every connection has finished its current
    /// message (appended and answered) and closed.
    pub task: tokio::task::JoinHandle<()>,
}

/// Everything a connection task shares.
struct Shared {
    registry: Arc<Registry>,
    policy: Arc<Policy>,
    log: Arc<Log>,
    metrics: Arc<Metrics>,
    restamper: Arc<Mutex<Restamper>>,
    settings: Jt808Settings,
}

/// Binds the listener and starts accepting.
pub async fn start(
    settings: &Jt808Settings,
    policy: Policy,
    registry: Arc<Registry>,
    log: Arc<Log>,
    metrics: Arc<Metrics>,
    restamper: Arc<Mutex<Restamper>>,
    stop: CancellationToken,
) -> std::io::Result<Gateway> {
    let listener = TcpListener::bind(settings.listen).await?;
    let local_addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        registry,
        policy: Arc::new(policy),
        log,
        metrics,
        restamper,
        settings: settings.clone(),
    });
    info!(addr = %local_addr, max_connections = settings.max_connections, "jt808 gateway listening");
    let task = tokio::spawn(accept_loop(listener, shared, stop));
    Ok(Gateway { local_addr, task })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let mut conns = JoinSet::new();
    let mut refused_logged = false;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    // Reap finished connections so the count is current.
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= shared.settings.max_connections {
                        shared.metrics.jt808_connections_refused.fetch_add(1, Relaxed);
                        if !refused_logged {
                            warn!(%peer, max = shared.settings.max_connections, "jt808 connection refused: jt808.max_connections reached");
                            refused_logged = true;
                        }
                        drop(sock);
                        continue;
                    }
                    refused_logged = false;
                    let _ = sock.set_nodelay(true);
                    conns.spawn(serve(sock, peer, shared.clone(), stop.clone()));
                }
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    warn!(error = %e, "jt808 accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.cancelled() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    info!("jt808 gateway stopped");
}

/// A token bucket of `rate` per second with a burst of twice that.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let rate = f64::from(rate.max(1));
        Bucket {
            rate,
            tokens: rate * 2.0,
            at: tokio::time::Instant::now(),
        }
    }

    /// How long to wait before the next frame may be handled.
    fn take(&mut self) -> Duration {
        let now = tokio::time::Instant::now();
        self.tokens =
            (self.tokens + (now - self.at).as_secs_f64() * self.rate).min(self.rate * 2.0);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

async fn serve(
    mut sock: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let m = &shared.metrics;
    m.jt808_connections.fetch_add(1, Relaxed);
    m.jt808_connections_total.fetch_add(1, Relaxed);
    let peer_s = peer.to_string();
    debug!(peer = %peer_s, "jt808 terminal connected");
    let reason = serve_inner(&mut sock, &peer_s, &shared, &stop).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), sock.shutdown()).await;
    m.jt808_connections.fetch_sub(1, Relaxed);
    info!(peer = %peer_s, %reason, "jt808 connection closed");
}

async fn serve_inner(
    sock: &mut TcpStream,
    peer: &str,
    shared: &Shared,
    stop: &CancellationToken,
) -> String {
    let s = &shared.settings;
    let mut conn = Conn::new(
        shared.registry.clone(),
        shared.policy.clone(),
        peer.to_owned(),
    );
    let mut splitter = Splitter::new(s.max_frame_bytes);
    let mut buf = vec![0u8; 4096];
    let mut pieces = Vec::new();
    let mut bucket = Bucket::new(s.max_messages_per_s);
    let mut batch = AppendBatch::new(Class::Ingest);
    let connected = tokio::time::Instant::now();
    let mut last_frame = connected;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let read = tokio::select! {
            r = sock.read(&mut buf) => r,
            _ = tick.tick() => {
                let now = tokio::time::Instant::now();
                if conn.terminal().is_none() && now - connected > s.auth_timeout {
                    return format!("not authenticated within {:?} (jt808.auth_timeout_s)", s.auth_timeout);
                }
                if now - last_frame > s.idle_timeout {
                    return format!("no frame for {:?} (jt808.idle_timeout_s)", s.idle_timeout);
                }
                let out = conn.on_tick(crate::ingest::now_ms());
                if let Err(r) = execute(sock, out, &mut batch, shared, stop).await {
                    return r;
                }
                continue;
            }
            _ = stop.cancelled() => return "service stopping".into(),
        };
        let n = match read {
            Ok(0) => return "terminal closed the connection".into(),
            Ok(n) => n,
            Err(e) => return format!("read failed: {e}"),
        };
        let received_at_ms = crate::ingest::now_ms();
        pieces.clear();
        splitter.push(&buf[..n], &mut pieces);
        for piece in &pieces {
            last_frame = tokio::time::Instant::now();
            shared.metrics.jt808_frames.fetch_add(1, Relaxed);
            let wait = bucket.take();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let out = conn.on_piece(piece, received_at_ms);
            if let Err(r) = execute(sock, out, &mut batch, shared, stop).await {
                return r;
            }
        }
    }
}

/// Makes an output's records and quarantine durable, then writes its
/// replies. `Err` ends the connection with that reason.
async fn execute(
    sock: &mut TcpStream,
    mut out: Output,
    batch: &mut AppendBatch,
    shared: &Shared,
    stop: &CancellationToken,
) -> Result<(), String> {
    let m = &shared.metrics;
    m.jt808_refused.fetch_add(out.refused, Relaxed);
    if !out.nothing_to_store() {
        batch.clear();
        if !out.records.is_empty() {
            let mut r = shared.restamper.lock().unwrap_or_else(|p| p.into_inner());
            for rec in &mut out.records {
                r.apply(rec);
            }
        }
        let records = out.records.len() as u64;
        for rec in out.records.drain(..) {
            if let Err(e) = batch.push_record(rec) {
                // A fix is a few hundred bytes: cannot happen.
                error!(error = %e, "jt808 record too large for the log");
                return Err("record too large for the log".into());
            }
        }
        for (kind, q) in &out.quarantine {
            m.quarantine(*kind);
            if let Err(e) = batch.quarantine.push_with(|b| {
                let _ = q.encode(b);
            }) {
                error!(error = %e, "jt808 quarantine entry too large for the log");
                return Err("quarantine entry too large for the log".into());
            }
        }
        commit(shared, batch, stop).await?;
        m.received.fetch_add(records, Relaxed);
        m.decoded.fetch_add(records, Relaxed);
        m.jt808_fixes.fetch_add(records, Relaxed);
    }
    if !out.replies.is_empty() {
        match tokio::time::timeout(shared.settings.write_timeout, sock.write_all(&out.replies))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("write failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "write not done within {:?} (jt808.write_timeout_s)",
                    shared.settings.write_timeout
                ))
            }
        }
    }
    match out.close {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// Appends `batch`, waiting out a full or failing log while the service
/// runs. On success `batch` comes back emptied.
async fn commit(
    shared: &Shared,
    batch: &mut AppendBatch,
    stop: &CancellationToken,
) -> Result<(), String> {
    let m = &shared.metrics;
    let mut full_logged = false;
    loop {
        let taken = std::mem::replace(batch, AppendBatch::new(Class::Ingest));
        let reply = match shared.log.append_async(taken).await {
            Ok(r) => r,
            Err(_) => return Err("durable log writer gone".into()),
        };
        *batch = reply.batch;
        let wait = match reply.result {
            Ok(_) => {
                m.log_commits.fetch_add(1, Relaxed);
                return Ok(());
            }
            Err(LogError::Full { .. }) => {
                m.log_full_events.fetch_add(1, Relaxed);
                if !full_logged {
                    warn!("durable log full; jt808 replies wait (terminals keep their data)");
                    full_logged = true;
                }
                Duration::from_millis(200)
            }
            Err(LogError::Closed) => return Err("durable log closed".into()),
            Err(e) => {
                m.log_append_errors.fetch_add(1, Relaxed);
                debug!(error = %e, "jt808 append failed; retrying");
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Err("service stopping before the log took the data; not answered".into()),
        }
    }
}
