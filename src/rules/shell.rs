//! The rules shell: the async task around the pure rule engine.
//!
//! It reads the durable log from the rules cursor, feeds each device record
//! to the engine, and hands the transitions to the alert stage over a
//! bounded channel (full: the shell waits, which only delays its reading of
//! the log — nothing is lost). Time-driven evaluation (silence, door, GNSS
//! and trip timers) runs on its own one-second tick, taken before any
//! record whenever it is due, so a sustained stream of records cannot
//! starve the timers. Every `snapshot_interval` the engine state and the
//! log position it covers go down the same channel as a checkpoint, after
//! the transitions it covers; the alert stage saves it with the store.
//! Alert records in the log (the alert stage's own points) are skipped.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::RuleEngine;
use crate::alert::snapshot::Checkpoint;
use crate::alert::stage::RulesOut;
use crate::alert::Transition;
use crate::clock::Clock;
use crate::log::{LogError, LogReader};
use crate::metrics::Metrics;
use crate::pb;

/// Most records handled between two looks at the tick and the channel.
const READ_BATCH: usize = 2000;

/// Runs until cancelled; then reads up to the head, sends a last
/// checkpoint and returns.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut engine: RuleEngine,
    mut reader: LogReader,
    mut head: watch::Receiver<u64>,
    out: mpsc::Sender<RulesOut>,
    snapshot_interval: Duration,
    metrics: Arc<Metrics>,
    clock: Clock,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpoint_at = tokio::time::Instant::now();
    loop {
        let stopping = cancel.is_cancelled();
        let behind = *head.borrow() > reader.offset();
        tokio::select! {
            biased;
            _ = tick.tick(), if !stopping => {
                let tr = engine.on_tick(clock.now_ms());
                if !tr.is_empty() && out.send(RulesOut::Transitions(tr)).await.is_err() {
                    break;
                }
            }
            _ = ready(&mut head, reader.offset()), if behind || !stopping => {
                match read_batch(&mut engine, &mut reader, &metrics, &clock) {
                    Ok(tr) => {
                        if !tr.is_empty() && out.send(RulesOut::Transitions(tr)).await.is_err() {
                            break;
                        }
                    }
                    // Logged; do not spin on a failing disk.
                    Err(()) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
            _ = cancel.cancelled(), if !stopping => {}
            // Stopping and caught up.
            else => {}
        }
        let stats = engine.stats();
        metrics.set_rules(stats.records, stats.skipped());
        let caught_up = *head.borrow() <= reader.offset();
        let due = tokio::time::Instant::now() >= checkpoint_at;
        if due || (stopping && caught_up) {
            match engine.snapshot() {
                Ok(bytes) => {
                    let c = Checkpoint {
                        engine: bytes,
                        offset: reader.offset(),
                        position: reader.position(),
                    };
                    if out.send(RulesOut::Checkpoint(c)).await.is_err() {
                        break;
                    }
                }
                Err(e) => error!(error = %e, "rule engine snapshot failed"),
            }
            checkpoint_at = tokio::time::Instant::now() + snapshot_interval;
        }
        if stopping && caught_up {
            break;
        }
    }
    info!("rule engine stopped");
}

/// Resolves when the log has a record at or after `offset`, letting a
/// small batch fill for a few milliseconds (see
/// [`crate::log::wait_for_records`]); alerts are notified in seconds, so 5
/// ms does not show.
async fn ready(head: &mut watch::Receiver<u64>, offset: u64) {
    crate::log::wait_for_records(head, offset, 256, Duration::from_millis(5)).await;
}

/// Reads one batch and runs the engine over it.
fn read_batch(
    engine: &mut RuleEngine,
    reader: &mut LogReader,
    metrics: &Metrics,
    clock: &Clock,
) -> Result<Vec<Transition>, ()> {
    let mut out = Vec::new();
    // One reading of the clock per batch (a batch is milliseconds).
    let now = clock.now_ms();
    let mut judge = |rec: &pb::LogRecord| {
        if rec.envelope.is_some() {
            out.extend(engine.on_record(rec, now));
        }
    };
    // The newest records, still decoded in memory: no read, no decode.
    if let Some(run) = reader.take_decoded(READ_BATCH) {
        run.iter().for_each(|(_, rec)| judge(rec));
        return Ok(out);
    }
    // A page-cache read of at most the reader's buffer: done inline.
    match reader.read(READ_BATCH) {
        Ok(batch) => {
            for (_, bytes) in batch.iter() {
                if let Ok(rec) = pb::LogRecord::decode(bytes) {
                    judge(&rec);
                }
            }
        }
        Err(e @ LogError::Corrupt { .. }) => {
            error!(error = %e, "rules: durable log damaged; skipping to the next intact record");
            match reader.skip_damaged() {
                Ok(lost) => {
                    metrics
                        .log_corrupt_records
                        .fetch_add(lost.end - lost.start, Relaxed);
                    error!(
                        from = lost.start,
                        to = lost.end,
                        "rules: log records lost to damage"
                    );
                }
                Err(e) => error!(error = %e, "rules: cannot skip the damaged log region"),
            }
        }
        Err(e) => {
            error!(error = %e, "rules cannot read the durable log");
            return Err(());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{RuleId, Transition};
    use crate::log::{Log, CURSOR_RULES};
    use crate::pb::{envelope::Body, TruckFix};
    use crate::rules::testkit::{envelope, record};
    use crate::rules::RuleConfig;

    const BUSY: &str = "truck-d1234";
    const QUIET: &str = "truck-d5678";

    fn fix(device: &str, seq: u64, t_ms: i64) -> Vec<u8> {
        // Where does not matter here: only that the truck reports.
        let p = crate::geo::LatLon::new(34.738, 113.79);
        let f = TruckFix {
            latitude_deg: p.lat,
            longitude_deg: p.lon,
            accuracy_m: 5.0,
            gnss_fix: true,
            satellites: 12,
            // Driving: a parked truck is allowed an hour of silence.
            speed_kmh: 30.0,
            ignition_on: true,
            ..Default::default()
        };
        prost::Message::encode_to_vec(&record(
            envelope(device, seq, t_ms, Body::TruckFix(f)),
            t_ms,
        ))
    }

    /// The old rules task ran time-driven rules only when a log read came
    /// back empty, so a steady stream starved them. Here one truck reports
    /// every 50 ms without pause while another falls silent: its
    /// `device_silent` must come within about a tick of its deadline. Real
    /// time (the log's writer thread does real I/O, which paused tokio time
    /// would skip over); the quiet truck is registered at a 1 s interval so
    /// its deadline is 2 s with floor and margin at 0.
    #[tokio::test]
    async fn timers_fire_on_time_while_records_keep_coming() {
        let engine = quiet_truck_engine();
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(d.path(), 1 << 26, &[CURSOR_RULES]).unwrap());
        let clock = Clock::system();
        let t0 = clock.now_ms();
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let shell = tokio::spawn(run(
            engine,
            log.reader(CURSOR_RULES).unwrap(),
            log.subscribe_head(),
            tx,
            Duration::from_secs(3600),
            Arc::new(Metrics::default()),
            clock.clone(),
            cancel.clone(),
        ));
        // The quiet truck reports once; registered every 10 s, it is
        // allowed 2 x 10 s = 20 s of silence with floor and margin at 0.
        let append = |bytes: Vec<u8>| {
            let mut b = crate::log::AppendBatch::new(crate::log::Class::Ingest);
            b.records.push(&bytes).unwrap();
            log.append_async(b)
        };
        append(fix(QUIET, 1, t0)).await.unwrap().result.unwrap();
        let mut silent_at = None;
        for seq in 1..=100u64 {
            let now = clock.now_ms();
            append(fix(BUSY, seq, now)).await.unwrap().result.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            while let Ok(out) = rx.try_recv() {
                if let RulesOut::Transitions(tr) = out {
                    for t in tr {
                        if let Transition::Raise { key, at_ms, .. } = t {
                            if key.rule == RuleId::DeviceSilent {
                                assert_eq!(key.entity, QUIET, "only the quiet truck is silent");
                                silent_at.get_or_insert(at_ms);
                            }
                        }
                    }
                }
            }
        }
        let at = silent_at.expect("device_silent never raised while records kept coming");
        assert!(
            (t0 + 2_000..=t0 + 3_500).contains(&at),
            "raised {} ms after the last message, deadline 2000 ms",
            at - t0
        );
        cancel.cancel();
        shell.await.unwrap();
    }

    /// The shipped zone with the quiet truck expected every second, and an
    /// engine whose silence deadline is exactly 2 x that (floor, margin and
    /// reorder window 0).
    fn quiet_truck_engine() -> RuleEngine {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zone");
        let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
        let mut devices: serde_json::Value = serde_json::from_str(&read("devices.json")).unwrap();
        for d in devices.as_array_mut().unwrap() {
            if d["id"] == QUIET {
                d["expected_interval_s"] = serde_json::json!(1);
            }
        }
        let registry = Arc::new(
            crate::registry::Registry::from_json_strs(
                &read("sites.json"),
                &devices.to_string(),
                &read("permits.json"),
            )
            .unwrap(),
        );
        let mut config = RuleConfig::default();
        config.thresholds.devices.silent_floor_ms = 0;
        config.thresholds.devices.silent_margin_ms = 0;
        config.engine.reorder_window_ms = 0;
        RuleEngine::new(registry, config)
    }

    /// The same deadline on paused tokio time, driven by the injected
    /// clock: nothing before 2 s of silence, `device_silent` at the first
    /// tick after it, stamped with the clock's time. The record is in the
    /// log before the clock starts, and the test only advances time and
    /// yields (never waits on the log's writer thread, which would let
    /// tokio auto-advance the paused clock).
    #[tokio::test(start_paused = true)]
    async fn on_paused_time_silence_is_raised_at_its_deadline_by_the_injected_clock() {
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(d.path(), 1 << 26, &[CURSOR_RULES]).unwrap());
        let t0 = 1_800_000_000_000;
        let mut b = crate::log::AppendBatch::new(crate::log::Class::Ingest);
        b.records.push(&fix(QUIET, 1, t0)).unwrap();
        log.append_async(b).await.unwrap().result.unwrap();
        let clock = Clock::tokio_at(t0);
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let shell = tokio::spawn(run(
            quiet_truck_engine(),
            log.reader(CURSOR_RULES).unwrap(),
            log.subscribe_head(),
            tx,
            Duration::from_secs(3600),
            Arc::new(Metrics::default()),
            clock.clone(),
            cancel.clone(),
        ));
        let mut raised = None;
        for _ in 0..50 {
            tokio::time::advance(Duration::from_millis(100)).await;
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            while let Ok(out) = rx.try_recv() {
                if let RulesOut::Transitions(tr) = out {
                    for t in tr {
                        if let Transition::Raise { key, at_ms, .. } = t {
                            assert_eq!(key.rule, RuleId::DeviceSilent, "{key:?}");
                            assert_eq!(key.entity, QUIET);
                            raised.get_or_insert((at_ms, clock.now_ms()));
                        }
                    }
                }
            }
        }
        let (at, seen) = raised.expect("device_silent never raised in 5 s of paused time");
        assert!(
            (t0 + 2_000..=t0 + 3_000).contains(&at),
            "raised at t0 + {} ms, deadline t0 + 2000 ms",
            at - t0
        );
        assert!(
            seen - at <= 200,
            "raised at t0 + {} ms, seen at t0 + {} ms",
            at - t0,
            seen - t0
        );
        cancel.cancel();
        shell.await.unwrap();
    }
}
