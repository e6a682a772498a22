//! `firmware-sim replay`: publishes a capture (`capture.rs`) at a fixed
//! offered rate over one MQTT 5 connection and counts the broker's PUBACKs.
//!
//! - Device times are re-based first (unless `--no-rebase`): every
//!   `recorded_at_unix_ms` is shifted by the same amount so that the
//!   capture's last device time is the moment the replay starts (or
//!   `--rebase-end-ms`, so a caller knows the points' time range). All points
//!   then lie in the recent past (by at most the capture's simulated span,
//!   which `capture` keeps under 5 days), inside the service's clock window
//!   (`decode.max_past_ms`, 7 days; `src/decode/clock.rs`) and never in the
//!   future, so nothing is re-stamped or quarantined for its clock.
//! - Pacing is by message index (message i is due at start + i/rate), so
//!   the offered rate holds over the run; a publisher that falls behind
//!   (broker or client too slow) sends as fast as it can, and the summary
//!   reports the achieved rate.
//! - QoS 1 with a large outgoing in-flight window (`--inflight`, up to the
//!   broker's Receive Maximum) and a small request queue, so "published" is
//!   close to "on the wire".
//! - Clean start and session expiry 0: a replay leaves no session behind.
//!
//! stdout: a JSON summary. `--timeline FILE`: CSV `unix_ms,published,acked`
//! every 10 ms, for the benchmark's latency estimate.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde::Serialize;
use tokio::time::Instant;

use crate::capture::{read_file, rebase};

#[derive(Args)]
pub struct ReplayArgs {
    /// Capture file written by `firmware-sim capture`.
    #[arg(long)]
    file: PathBuf,
    /// Offered rate, messages per second.
    #[arg(long)]
    rate: f64,
    /// MQTT broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// MQTT broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Client id of the publishing connection.
    #[arg(long, default_value = "firmware-sim-replay")]
    client_id: String,
    /// MQTT user name (an identity the broker lets write for every device
    /// of the capture).
    #[arg(long, requires = "password_file")]
    username: Option<String>,
    /// File holding the password of --username (first line).
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,
    /// QoS of the publishes (0 or 1).
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Most unacked QoS 1 publishes in flight (the broker's Receive Maximum
    /// caps it).
    #[arg(long, default_value_t = 65_535)]
    inflight: u16,
    /// Publish only the first N messages of the file.
    #[arg(long)]
    limit: Option<usize>,
    /// Publish the device times as captured (no shift to now).
    #[arg(long, conflicts_with = "rebase_end_ms")]
    no_rebase: bool,
    /// Shift the device times so that the capture's last one is this Unix
    /// ms (default: the moment the replay starts). Must not be in the future.
    #[arg(long)]
    rebase_end_ms: Option<i64>,
    /// After the last publish, wait at most this long for the PUBACKs, s.
    #[arg(long, default_value_t = 120.0)]
    ack_timeout_s: f64,
    /// Write `unix_ms,published,acked` every 10 ms to this CSV file.
    #[arg(long)]
    timeline: Option<PathBuf>,
}

#[derive(Serialize)]
struct ReplaySummary {
    file: String,
    client_id: String,
    qos: u8,
    target_rate: f64,
    /// Messages handed to the MQTT client.
    published: u64,
    /// PUBACKs received from the broker (QoS 1).
    acked: u64,
    /// First to last publish, s.
    duration_s: f64,
    /// published / duration_s.
    achieved_rate: f64,
    first_publish_unix_ms: i64,
    last_publish_unix_ms: i64,
    last_ack_unix_ms: i64,
    /// Shift added to every device time, ms.
    rebase_shift_ms: i64,
    /// Device-time span of the capture after the shift.
    first_recorded_at_ms: i64,
    last_recorded_at_ms: i64,
    connection_errors: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub async fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    if !(a.rate.is_finite() && a.rate > 0.0) {
        bail!(
            "--rate {} must be a positive number of messages per second",
            a.rate
        );
    }
    let qos = match a.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => bail!("--qos {q}: only 0 and 1 are supported"),
    };
    let (header, mut records) = read_file(&a.file)?;
    if let Some(n) = a.limit {
        records.truncate(n);
    }
    if records.is_empty() {
        bail!("{}: no messages to publish", a.file.display());
    }
    let shift = match (a.no_rebase, a.rebase_end_ms) {
        (true, _) => 0,
        (false, Some(end)) if end > now_ms() + 1000 => {
            bail!("--rebase-end-ms {end} is in the future: the service would re-stamp the points")
        }
        (false, Some(end)) => end - header.last_recorded_at_ms,
        (false, None) => now_ms() - header.last_recorded_at_ms,
    };
    if shift != 0 {
        for (i, r) in records.iter_mut().enumerate() {
            rebase(r, shift).with_context(|| format!("record {i} ({})", r.topic))?;
        }
    }

    let mut o = MqttOptions::new(a.client_id.clone(), a.host.clone(), a.port);
    if let (Some(user), Some(file)) = (&a.username, &a.password_file) {
        o.set_credentials(user.clone(), firmware_sim::read_password_file(file)?);
    }
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_start(true);
    o.set_session_expiry_interval(Some(0));
    o.set_max_packet_size(Some(1 << 20));
    o.set_outgoing_inflight_upper_limit(a.inflight.max(1));
    o.set_pending_throttle(Duration::ZERO);
    // A small request queue: publish() waits while the in-flight window is
    // full, so the "published" count is what went to the socket.
    let (client, mut el) = AsyncClient::new(o, 256);

    // Connected before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("cannot connect to {}:{}: {e}", a.host, a.port),
            Err(_) => bail!("no CONNACK from {}:{} within 10 s", a.host, a.port),
        }
    }

    let published = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let last_ack = Arc::new(AtomicI64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let poller = {
        let (acked, last_ack, errors) = (acked.clone(), last_ack.clone(), errors.clone());
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                        last_ack.store(now_ms(), Ordering::Relaxed);
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("replay: connection error: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    };
    let timeline = {
        let (published, acked) = (published.clone(), acked.clone());
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut rows: Vec<(i64, u64, u64)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                rows.push((
                    now_ms(),
                    published.load(Ordering::Relaxed),
                    acked.load(Ordering::Relaxed),
                ));
                if *stop_rx.borrow() {
                    break;
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => {}
                }
            }
            rows
        });
        (stop_tx, task)
    };

    let total = records.len() as u64;
    let first_publish = now_ms();
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / a.rate);
    for (i, r) in records.into_iter().enumerate() {
        let due = start + period.mul_f64(i as f64);
        if due > Instant::now() + Duration::from_millis(1) {
            tokio::time::sleep_until(due).await;
        }
        let res = if r.content_type.is_empty() {
            client.publish(r.topic, qos, false, r.payload).await
        } else {
            let props = PublishProperties {
                content_type: Some(r.content_type),
                ..Default::default()
            };
            client
                .publish_with_properties(r.topic, qos, false, r.payload, props)
                .await
        };
        res.context("publish")?;
        published.fetch_add(1, Ordering::Relaxed);
    }
    let last_publish = now_ms();
    let duration_s = start.elapsed().as_secs_f64();

    if qos == QoS::AtLeastOnce {
        let until = Instant::now() + Duration::from_secs_f64(a.ack_timeout_s.max(0.0));
        while acked.load(Ordering::Relaxed) < total && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    } else {
        // Give the event loop a moment to write the tail.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    let (stop_tx, task) = timeline;
    let _ = stop_tx.send(true);
    let rows = task.await.unwrap_or_default();
    if let Some(path) = &a.timeline {
        let mut s = String::from("unix_ms,published,acked\n");
        for (t, p, k) in rows {
            s.push_str(&format!("{t},{p},{k}\n"));
        }
        std::fs::write(path, s).with_context(|| format!("cannot write {}", path.display()))?;
    }

    let published = published.load(Ordering::Relaxed);
    let summary = ReplaySummary {
        file: a.file.display().to_string(),
        client_id: a.client_id,
        qos: a.qos,
        target_rate: a.rate,
        published,
        acked: acked.load(Ordering::Relaxed),
        duration_s,
        achieved_rate: if duration_s > 0.0 {
            published as f64 / duration_s
        } else {
            0.0
        },
        first_publish_unix_ms: first_publish,
        last_publish_unix_ms: last_publish,
        last_ack_unix_ms: last_ack.load(Ordering::Relaxed),
        rebase_shift_ms: shift,
        first_recorded_at_ms: header.first_recorded_at_ms + shift,
        last_recorded_at_ms: header.last_recorded_at_ms + shift,
        connection_errors: errors.load(Ordering::Relaxed),
    };
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
