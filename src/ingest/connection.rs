//! The ingest client's MQTT 5 connection: one task that owns the socket,
//! reads publishes in bunches and writes each committed group's PUBACKs in
//! one write.
//!
//! Why not rumqttc's `EventLoop`: it handles one request per loop turn and
//! flushes after each, so every PUBACK is its own `write` syscall and its own
//! TCP segment for the broker to read, and every ack comes back to the
//! caller as an event (bytebeamio/rumqtt#810, open). At 20,000 messages/s
//! that loop was a third of wastewatch's CPU. This task speaks the same
//! protocol with rumqttc's packet codec (`rumqttc::v5::mqttbytes`), and acks
//! a whole group commit with one write.
//!
//! Guarantees:
//! - **No stale ack.** A PUBACK carries only a packet id, so an ack for a
//!   message of a dead connection could acknowledge a different message on
//!   the next one. Every inbound message carries the *epoch* of its
//!   connection; the task writes an ack batch only if its epoch is the live
//!   connection's, and drops it otherwise (the broker redelivers those
//!   messages; points are idempotent). Only this task writes to the socket,
//!   so the check and the write cannot race.
//! - **Order.** Acks are written in the order the committer sends them,
//!   which is receipt order (MQTT 5 §4.6 requires PUBACKs in the order the
//!   PUBLISH packets were received).
//! - **Keep-alive.** A PINGREQ every `keep_alive`; no PINGRESP by the next
//!   one means the connection is dead (§3.1.2.10).
//! - **Reconnect** with jittered exponential backoff (rumqtt has none).
//! - **Shutdown.** `Disconnect` is queued behind the last acks, so they are
//!   written before the DISCONNECT.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Connect, ConnectProperties, ConnectReturnCode, Disconnect, DisconnectReasonCode,
    Filter, LastWill, Login, Packet, PingReq, PubAckReason, Publish, Subscribe,
    SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::lowat::LowWater;
use super::{Inbound, Session};
use crate::backoff::Backoff;
use crate::config::MqttSettings;
use crate::metrics::Metrics;

/// Bytes reserved for reading at a time.
const READ_CHUNK: usize = 256 << 10;

/// While the read linger runs, this many queued bytes wake the reader
/// before the timer (about 200 truck fixes).
const LINGER_WAKE_BYTES: usize = 32 << 10;

/// Messages to the connection task.
#[derive(Debug, PartialEq, Eq)]
pub enum ToConnection {
    /// PUBACKs for these packet ids, of messages received on connection
    /// `epoch`, in receipt order.
    Acks {
        /// Connection the messages came from.
        epoch: u64,
        /// Packet ids.
        pkids: Vec<u16>,
    },
    /// Publish this message (QoS 1, not retained) on the live connection,
    /// e.g. a Sparkplug B rebirth request; dropped while disconnected.
    Publish {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Send DISCONNECT (after everything queued before it) and stop.
    Disconnect,
}

/// The Sparkplug B STATE will registered in CONNECT and the birth published
/// after CONNACK (Sparkplug 3.0 §7.2: retained, QoS 1, the same timestamp
/// in both).
fn sparkplug_state(s: &MqttSettings, online: bool, ts_ms: i64) -> Option<(String, Vec<u8>)> {
    s.sparkplug.as_ref().map(|sp| {
        (
            wastewatch_contract::sparkplug::state_topic(&sp.host_id),
            wastewatch_contract::sparkplug::state_payload(online, ts_ms),
        )
    })
}

/// Writes a QoS 1 PUBLISH into `out`.
fn write_publish(
    out: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    retain: bool,
    pkid: u16,
) -> Result<(), String> {
    let mut p = Publish::new(topic, QoS::AtLeastOnce, payload.to_vec(), None);
    p.retain = retain;
    p.pkid = pkid;
    Packet::Publish(p)
        .write(out, None)
        .map(|_| ())
        .map_err(|e| format!("cannot encode PUBLISH to {topic}: {e:?}"))
}

/// The next packet id of our own publishes (1 is the SUBSCRIBE's).
fn next_pkid(pkid: &mut u16) -> u16 {
    *pkid = if *pkid == u16::MAX { 2 } else { *pkid + 1 };
    (*pkid).max(2)
}

/// Why the connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect or I/O failed.
    #[error("cannot reach the broker {addr}: {source}")]
    Io {
        /// host:port.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS set-up or handshake failed.
    #[error("TLS to the broker failed: {0}")]
    Tls(String),
    /// The broker refused the CONNECT.
    #[error(
        "broker refused the connection: {0:?} (check mqtt.username/password and the broker's ACL)"
    )]
    Refused(ConnectReturnCode),
    /// The broker answered something else.
    #[error("broker protocol error: {0}")]
    Protocol(String),
    /// No CONNACK in time.
    #[error("no CONNACK within {0:?}")]
    Timeout(Duration),
}

/// A byte stream to the broker (plain TCP or TLS).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How to reach the broker (built once from the settings).
pub struct Connector {
    settings: MqttSettings,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Connector {
    /// Builds the connector; reads the CA file now so a bad one is a start-
    /// up error, not a reconnect loop.
    pub fn new(settings: &MqttSettings) -> Result<Connector, super::session::SessionError> {
        let tls = match &settings.tls {
            Some(ca) => Some(super::session::tls_connector(
                ca,
                settings
                    .client_auth
                    .as_ref()
                    .map(|(c, k)| (c.as_path(), k.as_path())),
            )?),
            None => None,
        };
        Ok(Connector {
            settings: settings.clone(),
            tls,
        })
    }

    /// TCP (+TLS) connect, CONNECT, CONNACK.
    /// Also returns the connect time (Unix ms), which the Sparkplug STATE
    /// will and birth both carry.
    async fn connect(
        &self,
    ) -> Result<(Box<dyn Stream>, ConnAck, BytesMut, i64, Option<LowWater>), ConnectError> {
        let s = &self.settings;
        let addr = format!("{}:{}", s.host, s.port);
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|source| ConnectError::Io {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let lowat = if s.read_linger.is_zero() {
            None
        } else {
            match LowWater::new(&tcp, LINGER_WAKE_BYTES, s.read_linger) {
                Ok(l) => Some(l),
                Err(e) => {
                    warn!(error = %e, "cannot duplicate the broker socket for its low-water mark; reading without a linger");
                    None
                }
            }
        };
        let mut stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(c) => {
                let name = rustls::pki_types::ServerName::try_from(s.host.clone())
                    .map_err(|e| ConnectError::Tls(format!("mqtt.host {:?}: {e}", s.host)))?;
                Box::new(
                    c.connect(name, tcp)
                        .await
                        .map_err(|e| ConnectError::Tls(e.to_string()))?,
                )
            }
        };
        let mut props = ConnectProperties::new();
        props.session_expiry_interval = Some(s.session_expiry_s);
        props.receive_maximum = Some(s.receive_maximum);
        props.max_packet_size = Some(s.max_packet_bytes);
        let connect = Connect {
            keep_alive: u16::try_from(s.keep_alive.as_secs()).unwrap_or(u16::MAX),
            client_id: s.client_id.clone(),
            clean_start: false,
            properties: Some(props),
        };
        let login = s.credentials.as_ref().map(|(u, p)| Login {
            username: u.clone(),
            password: p.expose().to_owned(),
        });
        let connect_ms = super::now_ms();
        let will = sparkplug_state(s, false, connect_ms)
            .map(|(topic, payload)| LastWill::new(topic, payload, QoS::AtLeastOnce, true, None));
        let mut out = BytesMut::with_capacity(256);
        Packet::Connect(connect, will, login)
            .write(&mut out, None)
            .map_err(|e| ConnectError::Protocol(format!("cannot encode CONNECT: {e:?}")))?;
        stream
            .write_all(&out)
            .await
            .map_err(|source| ConnectError::Io {
                addr: addr.clone(),
                source,
            })?;
        let timeout = Duration::from_secs(10);
        let mut buf = BytesMut::with_capacity(64 << 10);
        let first = tokio::time::timeout(timeout, async {
            loop {
                match Packet::read(&mut buf, Some(s.max_packet_bytes)) {
                    Ok(p) => return Ok(p),
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(e) => return Err(ConnectError::Protocol(format!("{e:?}"))),
                }
                let n = stream
                    .read_buf(&mut buf)
                    .await
                    .map_err(|source| ConnectError::Io {
                        addr: addr.clone(),
                        source,
                    })?;
                if n == 0 {
                    return Err(ConnectError::Protocol(
                        "broker closed the connection before CONNACK".into(),
                    ));
                }
            }
        })
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
        match first {
            Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {
                Ok((stream, ack, buf, connect_ms, lowat))
            }
            Packet::ConnAck(ack) => Err(ConnectError::Refused(ack.code)),
            other => Err(ConnectError::Protocol(format!(
                "expected CONNACK, got {other:?}"
            ))),
        }
    }
}

/// How a served connection ended.
enum End {
    /// DISCONNECT sent on request: stop.
    Disconnected,
    /// The committer is gone or a hard stop came: stop.
    Stopped,
    /// The connection failed: reconnect.
    Lost(String),
    /// It could not be set up: retry.
    Refused(String),
}

/// Runs the connection until `Disconnect` (or a hard `stop`), reconnecting
/// with backoff when it fails.
pub async fn run(
    connector: Connector,
    inbound: mpsc::UnboundedSender<Vec<Inbound>>,
    mut control: mpsc::UnboundedReceiver<ToConnection>,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let s = &connector.settings;
    let mut backoff = Backoff::new(s.reconnect_min, s.reconnect_max);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    loop {
        let attempt = tokio::select! {
            r = connector.connect() => r,
            _ = stop.cancelled() => break,
        };
        let end = match attempt {
            Ok((stream, ack, leftover, connect_ms, lowat)) => {
                let epoch = session.epoch.fetch_add(1, SeqCst) + 1;
                // `connected` (and readiness) wait for the SUBACK: a
                // message published before the broker took the
                // subscription of a new session would not reach us.
                backoff.reset();
                info!(session_present = ack.session_present, "mqtt connected");
                if !ack.session_present && epoch > 1 {
                    // Reconnected, but the broker has no session for us: what
                    // it queued while we were away is gone (broker restarted
                    // without its persistence, session expired, or cleared by
                    // another client — see docs/SECURITY.md "Ingest takeover").
                    error!(client_id = %s.client_id, "mqtt session lost: the broker had no session for us after a reconnect; messages queued meanwhile are not delivered");
                } else if !ack.session_present {
                    debug!("new broker session (nothing was queued for us)");
                }
                let end = serve(
                    stream,
                    lowat,
                    leftover,
                    connect_ms,
                    epoch,
                    s,
                    &inbound,
                    &mut control,
                    &session,
                    &metrics,
                    &stop,
                )
                .await;
                session.connected.store(false, SeqCst);
                metrics.mqtt_connected.store(0, Relaxed);
                end
            }
            Err(e) => End::Refused(e.to_string()),
        };
        match end {
            End::Disconnected | End::Stopped => break,
            End::Lost(ref reason) | End::Refused(ref reason) => {
                metrics.mqtt_connection_errors.fetch_add(1, Relaxed);
                let delay = backoff.next_delay(&mut rng);
                if matches!(end, End::Lost(_)) {
                    warn!(error = %reason, retry_in_ms = delay.as_millis() as u64, "mqtt connection lost; unacked messages will be redelivered");
                } else {
                    warn!(error = %reason, retry_in_ms = delay.as_millis() as u64, "mqtt connect failed");
                }
                let wake = tokio::time::sleep(delay);
                tokio::pin!(wake);
                // While disconnected, acks of the old connection are
                // dropped (the broker redelivers their messages).
                loop {
                    tokio::select! {
                        _ = &mut wake => break,
                        c = control.recv() => match c {
                            Some(ToConnection::Acks { pkids, .. }) => {
                                metrics.acks_stale_dropped.fetch_add(pkids.len() as u64, Relaxed);
                            }
                            Some(ToConnection::Publish { topic, .. }) => {
                                debug!(%topic, "not connected; publish dropped");
                            }
                            Some(ToConnection::Disconnect) | None => return,
                        },
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    stream: Box<dyn Stream>,
    mut lowat: Option<LowWater>,
    mut buf: BytesMut,
    connect_ms: i64,
    epoch: u64,
    s: &MqttSettings,
    inbound: &mpsc::UnboundedSender<Vec<Inbound>>,
    control: &mut mpsc::UnboundedReceiver<ToConnection>,
    session: &Session,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> End {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut out = BytesMut::with_capacity(16 << 10);
    let filters = s.subscribe.iter().map(|f| {
        let mut filter = Filter::new(f.clone(), QoS::AtLeastOnce);
        // Our own STATE and NCMD need not come back to us.
        filter.nolocal = wastewatch_contract::sparkplug::is_sparkplug_topic(f);
        filter
    });
    let mut sub = Subscribe::new_many(filters, None);
    sub.pkid = 1;
    if let Err(e) = Packet::Subscribe(sub).write(&mut out, None) {
        return End::Lost(format!("cannot encode SUBSCRIBE: {e:?}"));
    }
    let mut pkid: u16 = 1;
    // Sparkplug 3.0 §7.2: after subscribing, the retained STATE birth with
    // the timestamp of the will registered in CONNECT.
    if let Some((topic, payload)) = sparkplug_state(s, true, connect_ms) {
        if let Err(e) = write_publish(&mut out, &topic, &payload, true, next_pkid(&mut pkid)) {
            return End::Lost(e);
        }
        info!(%topic, "sparkplug STATE birth published");
    }
    if let Err(e) = wr.write_all(&out).await {
        return End::Lost(format!("cannot send SUBSCRIBE: {e}"));
    }
    out.clear();
    let keep_alive = s.keep_alive.max(Duration::from_secs(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    let mut awaiting_pong = false;
    let mut batch: Vec<Inbound> = Vec::new();
    // Flow control on our side too: the broker should never have more than
    // our Receive Maximum unacknowledged (MQTT 5 §3.3.4), but Mosquitto 2.0
    // was measured sending 70,000 ahead of a 10,000 Receive Maximum while
    // the log writer lagged, all held in memory here. Past the limit the
    // socket is not read until acks make room, so the excess waits in the
    // broker's queue (and TCP), not in our memory.
    let held_limit = u64::from(s.receive_maximum);
    let mut overrun_logged = false;
    loop {
        // One receive time per read: the messages of one read arrived
        // together.
        let received_at_ms = super::now_ms();
        // Packets already in the buffer (the CONNACK read may have pulled
        // some in) are handled before reading more.
        loop {
            // rumqttc's codec cannot read a DISCONNECT of remaining length 0
            // (valid in MQTT 5, §3.14.2.1: normal disconnection).
            if buf.starts_with(&[0xE0, 0x00]) {
                return End::Lost("broker sent DISCONNECT (normal disconnection)".into());
            }
            match Packet::read(&mut buf, Some(s.max_packet_bytes)) {
                Ok(Packet::Publish(p)) => {
                    if p.qos == QoS::ExactlyOnce {
                        return End::Lost("broker sent QoS 2 on a QoS 1 subscription".into());
                    }
                    batch.push(Inbound {
                        publish: p,
                        epoch,
                        received_at_ms,
                    });
                }
                Ok(Packet::SubAck(ack)) => {
                    session.connected.store(true, SeqCst);
                    metrics.mqtt_connected.store(1, Relaxed);
                    for (f, code) in s.subscribe.iter().zip(&ack.return_codes) {
                        match code {
                            SubscribeReasonCode::Success(_) => {
                                debug!(filter = %f, "mqtt subscribed")
                            }
                            other => {
                                error!(filter = %f, reason = ?other, "mqtt subscription refused; check the broker ACL for the ingest identity")
                            }
                        }
                    }
                }
                Ok(Packet::PingResp(_)) => awaiting_pong = false,
                // Our own publishes (Sparkplug STATE, rebirth requests).
                Ok(Packet::PubAck(ack))
                    if !matches!(
                        ack.reason,
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                    ) =>
                {
                    warn!(pkid = ack.pkid, reason = ?ack.reason, "the broker refused a publish of ours (Sparkplug STATE or NCMD); check the broker ACL for the ingest identity");
                }
                Ok(Packet::Disconnect(d)) => {
                    return End::Lost(format!("broker sent DISCONNECT ({:?})", d.reason_code))
                }
                Ok(other) => debug!(packet = ?other, "mqtt packet ignored"),
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => return End::Lost(format!("malformed packet from broker: {e:?}")),
            }
        }
        if !batch.is_empty() {
            metrics.ingest_held.fetch_add(batch.len() as u64, Relaxed);
            if inbound.send(std::mem::take(&mut batch)).is_err() {
                // Committer gone (shutdown): leave the messages unacked.
                return End::Stopped;
            }
        }
        // The publishes handed on keep slices of the buffer alive, so a
        // small reserve would reallocate (and copy the partial packet) on
        // almost every read; reserve in large steps instead.
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let paused = metrics.ingest_held.load(Relaxed) >= held_limit;
        if paused && !overrun_logged {
            overrun_logged = true;
            info!(
                receive_maximum = held_limit,
                "as many messages held unacknowledged as our Receive Maximum; reading paused until acks make room (logged once per connection)"
            );
        }
        let due = lowat.as_ref().and_then(LowWater::due);
        let linger = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rd.read_buf(&mut buf), if !paused => match n {
                Ok(0) => return End::Lost("broker closed the connection".into()),
                Ok(_) => {
                    // Messages are flowing: the next read waits for the
                    // linger (or a full wake of bytes) instead of the next
                    // single PUBLISH.
                    if let Some(Err(e)) = lowat.as_mut().map(LowWater::raise) {
                        warn!(error = %e, "cannot raise the socket's receive low-water mark; reading on every arrival");
                        lowat = None;
                    }
                }
                Err(e) => return End::Lost(format!("read failed: {e}")),
            },
            () = linger => {
                // A raised mark that cannot be lowered would leave a
                // trickle unread: start over on a new socket.
                if let Some(Err(e)) = lowat.as_mut().map(LowWater::lower) {
                    return End::Lost(format!("cannot lower the socket's receive low-water mark: {e}"));
                }
            }
            c = control.recv() => match c {
                Some(ToConnection::Acks { epoch: e, pkids }) => {
                    if e != epoch {
                        metrics.acks_stale_dropped.fetch_add(pkids.len() as u64, Relaxed);
                        continue;
                    }
                    for id in &pkids {
                        // PUBACK, success, no properties: remaining length 2
                        // (MQTT 5 §3.4.2.1).
                        out.extend_from_slice(&[0x40, 0x02, (id >> 8) as u8, *id as u8]);
                    }
                    let mut n_acks = pkids.len() as u64;
                    // More ack batches already waiting go in the same write.
                    let mut disconnect = false;
                    while let Ok(c) = control.try_recv() {
                        match c {
                            ToConnection::Acks { epoch: e, pkids: more } if e == epoch => {
                                n_acks += more.len() as u64;
                                for id in &more {
                                    out.extend_from_slice(&[0x40, 0x02, (id >> 8) as u8, *id as u8]);
                                }
                            }
                            ToConnection::Acks { pkids: more, .. } => {
                                metrics.acks_stale_dropped.fetch_add(more.len() as u64, Relaxed);
                            }
                            ToConnection::Publish { topic, payload } => {
                                if let Err(e) = write_publish(&mut out, &topic, &payload, false, next_pkid(&mut pkid)) {
                                    warn!(error = %e, "publish dropped");
                                }
                            }
                            ToConnection::Disconnect => {
                                disconnect = true;
                                break;
                            }
                        }
                    }
                    let n = n_acks;
                    if let Err(e) = wr.write_all(&out).await {
                        return End::Lost(format!("write of acks failed: {e}"));
                    }
                    out.clear();
                    metrics.acks.fetch_add(n, Relaxed);
                    session.acks_flushed.fetch_add(n, Relaxed);
                    if disconnect {
                        return disconnect_now(&mut wr, &mut out).await;
                    }
                }
                Some(ToConnection::Publish { topic, payload }) => {
                    if let Err(e) = write_publish(&mut out, &topic, &payload, false, next_pkid(&mut pkid)) {
                        warn!(error = %e, "publish dropped");
                        out.clear();
                        continue;
                    }
                    if let Err(e) = wr.write_all(&out).await {
                        return End::Lost(format!("write of PUBLISH to {topic} failed: {e}"));
                    }
                    out.clear();
                    debug!(%topic, "published");
                }
                Some(ToConnection::Disconnect) => return disconnect_now(&mut wr, &mut out).await,
                None => return End::Stopped,
            },
            _ = ping.tick() => {
                // While reading is paused the PINGRESP waits unread in the
                // socket; the PINGREQ still tells the broker we are alive.
                if awaiting_pong && !paused {
                    return End::Lost(format!("no PINGRESP within the keep-alive of {keep_alive:?}"));
                }
                let _ = Packet::PingReq(PingReq).write(&mut out, None);
                if let Err(e) = wr.write_all(&out).await {
                    return End::Lost(format!("write of PINGREQ failed: {e}"));
                }
                out.clear();
                awaiting_pong = true;
            }
            _ = stop.cancelled() => return End::Stopped,
        }
    }
}

async fn disconnect_now(wr: &mut (impl AsyncWrite + Unpin), out: &mut BytesMut) -> End {
    out.clear();
    let d = Disconnect {
        reason_code: DisconnectReasonCode::NormalDisconnection,
        properties: None,
    };
    let _ = Packet::Disconnect(d).write(out, None);
    let _ = wr.write_all(out).await;
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    info!("mqtt disconnect sent");
    End::Disconnected
}
