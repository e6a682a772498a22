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

/// Resolves when the log has a record at or after `offset`.
async fn ready(head: &mut watch::Receiver<u64>, offset: u64) {
    let _ = head.wait_for(|h| *h > offset).await;
}

/// Reads one batch and runs the engine over it.
fn read_batch(
    engine: &mut RuleEngine,
    reader: &mut LogReader,
    metrics: &Metrics,
    clock: &Clock,
) -> Result<Vec<Transition>, ()> {
    let mut out = Vec::new();
    // A page-cache read of at most the reader's buffer: done inline.
    match reader.read(READ_BATCH) {
        Ok(batch) => {
            for (_, bytes) in batch.iter() {
                if let Ok(rec) = pb::LogRecord::decode(bytes) {
                    if rec.envelope.is_some() {
                        out.extend(engine.on_record(&rec, clock.now_ms()));
                    }
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
