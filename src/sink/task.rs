//! The TSDB writer task: log cursor → batches → writer, with the status
//! policy in one place.
//!
//! Batches close at `batch_max_lines` or `batch_max_age`. Policy per answer:
//! 2xx → move the cursor; retryable (network, 429, 5xx, 401/403/404) → wait
//! (Retry-After if given, else jittered exponential backoff) and resend, the
//! cursor stays; 413 → split in halves; 400/422 → split in halves until the
//! offending single lines are found, quarantine those with the server's
//! reason, keep the rest. The cursor moves only once every line of the batch
//! is stored or quarantined. Point time is device time, so resending a half
//! the server had partly stored rewrites the same points.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::batcher::{Batcher, Decision};
use super::encode::encode_record;
use super::writer::{WriteOutcome, Writer};
use crate::backoff::Backoff;
use crate::log::{AppendBatch, Class, Durability, Log, LogError, CURSOR_TSDB};
use crate::metrics::Metrics;
use crate::pb;

/// Lines of one batch: a body plus the byte range of each line.
#[derive(Default)]
pub struct Lines {
    body: String,
    ends: Vec<usize>,
}

impl Lines {
    fn push_record(&mut self, rec: &pb::LogRecord) -> Result<(), super::line_protocol::LineError> {
        let start = self.body.len();
        if let Err(e) = encode_record(rec, &mut self.body) {
            // Never leave half a line behind for the next one.
            self.body.truncate(start);
            return Err(e);
        }
        self.ends.push(self.body.len());
        Ok(())
    }
    fn slice(&self, r: std::ops::Range<usize>) -> &str {
        let start = if r.start == 0 {
            0
        } else {
            self.ends[r.start - 1]
        };
        &self.body[start..self.ends[r.end - 1]]
    }
    /// Line `i` (with its newline).
    pub fn line(&self, i: usize) -> &str {
        if i >= self.ends.len() {
            return "";
        }
        self.slice(i..i + 1)
    }
    /// Drops every line, keeping the allocations.
    pub fn clear(&mut self) {
        self.body.clear();
        self.ends.clear();
    }
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Result of pushing one batch through the policy.
#[derive(Debug, PartialEq)]
pub enum BatchResult {
    /// Every line stored or quarantined.
    Done {
        /// Lines stored.
        written: usize,
        /// Lines refused by the server: (line index, server's reason).
        rejected: Vec<(usize, String)>,
    },
    /// Shutdown while still retrying; the cursor must stay.
    Interrupted,
}

/// Writes all lines with the retry/split policy.
pub async fn write_batch(
    writer: &Writer,
    lines: &Lines,
    metrics: &Metrics,
    backoff: &mut Backoff,
    stop: &CancellationToken,
) -> BatchResult {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    #[allow(clippy::single_range_in_vec_init)] // a work stack of ranges, not a range of indices
    let mut todo = vec![0..lines.len()];
    let mut written = 0;
    let mut rejected = Vec::new();
    while let Some(r) = todo.pop() {
        if r.is_empty() {
            continue;
        }
        loop {
            let t0 = Instant::now();
            let outcome = writer.write(lines.slice(r.clone())).await;
            metrics.observe_tsdb_latency(t0.elapsed());
            match outcome {
                WriteOutcome::Ok => {
                    metrics.tsdb_up.store(1, Relaxed);
                    backoff.reset();
                    written += r.len();
                    break;
                }
                WriteOutcome::TooLarge | WriteOutcome::Rejected { .. } if r.len() > 1 => {
                    metrics.tsdb_up.store(1, Relaxed);
                    metrics.tsdb_splits.fetch_add(1, Relaxed);
                    let mid = r.start + r.len() / 2;
                    // Push the second half first so the first is written first.
                    todo.push(mid..r.end);
                    todo.push(r.start..mid);
                    break;
                }
                WriteOutcome::TooLarge => {
                    rejected.push((
                        r.start,
                        "single line larger than the server accepts (413)".to_owned(),
                    ));
                    break;
                }
                WriteOutcome::Rejected { reason } => {
                    rejected.push((r.start, reason));
                    break;
                }
                WriteOutcome::Retry { after, reason } => {
                    metrics.tsdb_up.store(0, Relaxed);
                    metrics.tsdb_retryable_errors.fetch_add(1, Relaxed);
                    let delay = after.unwrap_or_else(|| backoff.next_delay(&mut rng));
                    warn!(writer = writer.name(), error = %reason, retry_in_ms = delay.as_millis() as u64, "tsdb write failed; data stays in the log");
                    // On shutdown a failing TSDB is not waited for: the
                    // records stay in the durable log for the next start.
                    if stop.is_cancelled() {
                        return BatchResult::Interrupted;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return BatchResult::Interrupted,
                    }
                }
            }
        }
    }
    BatchResult::Done { written, rejected }
}

/// Adds `rec`'s line to the batch, or, when it has none, refuses it with
/// its frame's bytes.
fn add_line(
    lines: &mut Lines,
    line_offsets: &mut Vec<u64>,
    refused: &mut Vec<Refused>,
    offset: u64,
    rec: &pb::LogRecord,
    bytes: impl FnOnce() -> Vec<u8>,
) {
    match lines.push_record(rec) {
        Ok(()) => line_offsets.push(offset),
        Err(e) => refused.push(Refused {
            offset,
            line: String::new(),
            reason: "cannot_encode",
            detail: format!("cannot encode as line protocol: {e}"),
            record: bytes(),
        }),
    }
}

/// One line (or record) the TSDB writer could not store: quarantined with
/// the record's bytes.
struct Refused {
    /// Log offset of the record.
    offset: u64,
    /// The line, when one was built.
    line: String,
    /// `tsdb_rejected`, `cannot_encode` or `log_corrupt`.
    reason: &'static str,
    /// The server's message or the encoder's error.
    detail: String,
    /// The record, byte for byte (empty when the log itself lost it).
    record: Vec<u8>,
}

/// Runs the writer until `stop`; then makes one last flush attempt within
/// `flush_deadline` and returns.
pub async fn run(
    log: Arc<Log>,
    writer: Arc<Writer>,
    metrics: Arc<Metrics>,
    settings: crate::config::TsdbSettings,
    stop: CancellationToken,
) {
    let mut head_rx = log.subscribe_head();
    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max);
    let max = settings.batch_max_lines.get();
    let mut reader = match log.reader(CURSOR_TSDB) {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "tsdb writer cannot open its log cursor");
            return;
        }
    };
    let mut batcher = Batcher::new(max, settings.batch_max_age);
    let mut lines = Lines::default();
    // Line index -> log offset, to find a refused line's record.
    let mut line_offsets: Vec<u64> = Vec::with_capacity(max);
    loop {
        let stopping = stop.is_cancelled();
        let cursor = reader.offset();
        let head = *head_rx.borrow_and_update();
        if head <= cursor {
            if stopping {
                break;
            }
            // Caught up: save the lazily committed cursor now, so the
            // segments behind it can be deleted while no batch comes to do
            // it (a full log waits for exactly that).
            if log.has_unsaved_cursor(CURSOR_TSDB) {
                let l = log.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || l.flush_cursors()).await {
                    error!(error = %e, "cannot save tsdb cursor");
                }
            }
            tokio::select! {
                _ = head_rx.changed() => {}
                _ = stop.cancelled() => {}
            }
            continue;
        }
        // Let a partial batch fill up until it is old enough.
        loop {
            let pending = head_rx.borrow_and_update().saturating_sub(cursor);
            match batcher.decide(pending, tokio::time::Instant::now(), stop.is_cancelled()) {
                Decision::Write | Decision::Idle => break,
                Decision::WaitUntil(deadline) => tokio::select! {
                    _ = head_rx.changed() => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = stop.cancelled() => {}
                },
            }
        }
        batcher.written();
        lines.clear();
        line_offsets.clear();
        let mut refused: Vec<Refused> = Vec::new();
        // The newest records, still decoded in memory: no read, no decode.
        let decoded = reader.take_decoded(max);
        let next = if let Some(run) = decoded {
            for (off, rec) in run.iter() {
                // The bytes of the frame: prost encodes the same record to
                // the same bytes.
                add_line(
                    &mut lines,
                    &mut line_offsets,
                    &mut refused,
                    off,
                    rec,
                    || rec.encode_to_vec(),
                );
            }
            reader.position()
        } else {
            // A page-cache read of at most the reader's buffer: done inline.
            match reader.read(max) {
                Ok(batch) => {
                    for (off, bytes) in batch.iter() {
                        match pb::LogRecord::decode(bytes) {
                            Ok(rec) => add_line(
                                &mut lines,
                                &mut line_offsets,
                                &mut refused,
                                off,
                                &rec,
                                || bytes.to_vec(),
                            ),
                            Err(e) => refused.push(Refused {
                                offset: off,
                                line: String::new(),
                                reason: "cannot_encode",
                                detail: format!("log record does not decode: {e}"),
                                record: bytes.to_vec(),
                            }),
                        }
                    }
                    if batch.is_empty() {
                        continue;
                    }
                    batch.next
                }
                Err(e @ LogError::Corrupt { .. }) => {
                    error!(error = %e, "durable log damaged; skipping to the next intact record");
                    match reader.skip_damaged() {
                        Ok(lost) if !lost.is_empty() => {
                            metrics
                                .log_corrupt_records
                                .fetch_add(lost.end - lost.start, Relaxed);
                            refused.push(Refused {
                                offset: lost.start,
                                line: String::new(),
                                reason: "log_corrupt",
                                detail: format!(
                                    "log offsets {}..{} unreadable: {e}",
                                    lost.start, lost.end
                                ),
                                record: Vec::new(),
                            });
                            reader.position()
                        }
                        Ok(_) => continue,
                        Err(e) => {
                            error!(error = %e, "cannot skip the damaged log region");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    error!(error = %e, "cannot read the durable log");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        };
        let res = if lines.is_empty() {
            BatchResult::Done {
                written: 0,
                rejected: Vec::new(),
            }
        } else {
            write_batch(&writer, &lines, &metrics, &mut backoff, &stop).await
        };
        let written = match res {
            BatchResult::Interrupted => {
                info!("tsdb writer stopping with unwritten records; they stay in the durable log");
                break;
            }
            BatchResult::Done { written, rejected } => {
                for (i, reason) in rejected {
                    let offset = line_offsets.get(i).copied().unwrap_or(0);
                    refused.push(Refused {
                        offset,
                        line: lines.line(i).to_owned(),
                        reason: "tsdb_rejected",
                        detail: reason,
                        record: record_at(&log, offset),
                    });
                }
                written
            }
        };
        if !refused.is_empty() && !quarantine_refused(&log, &metrics, &refused, &stop).await {
            info!("tsdb writer stopping before the refused lines were quarantined; they stay in the durable log");
            break;
        }
        metrics.tsdb_batches.fetch_add(1, Relaxed);
        metrics.tsdb_points.fetch_add(written as u64, Relaxed);
        let l = log.clone();
        // Lazy: the points are idempotent, so a crash at most rewrites what
        // was written since the last save (log.cursor_sync).
        match tokio::task::spawn_blocking(move || {
            l.commit_cursor(CURSOR_TSDB, next, Durability::Lazy)
        })
        .await
        {
            Ok(Ok(())) => debug!(next = next.offset, written, "tsdb cursor committed"),
            Ok(Err(e)) => {
                error!(error = %e, "cannot save tsdb cursor; batch may be rewritten (idempotent)")
            }
            Err(e) => error!(error = %e, "cursor commit task failed"),
        }
    }
    let l = log.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || l.flush_cursors()).await {
        error!(error = %e, "cannot save log cursors at shutdown; some points will be rewritten");
    }
}

/// The bytes of the record at `offset` (a rare path: a refused line).
fn record_at(log: &Log, offset: u64) -> Vec<u8> {
    let Ok(mut r) = log.reader_at(offset) else {
        return Vec::new();
    };
    match r.read(1) {
        Ok(b) => b
            .iter()
            .find(|(o, _)| *o == offset)
            .map(|(_, p)| p.to_vec())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Quarantines the refused lines through the log's writer, retrying until
/// they are durable: the cursor must never pass a record that is neither
/// stored nor quarantined. False if shutdown came first.
async fn quarantine_refused(
    log: &Arc<Log>,
    metrics: &Metrics,
    refused: &[Refused],
    stop: &CancellationToken,
) -> bool {
    let mut batch = AppendBatch::new(Class::Internal);
    let now = crate::ingest::now_ms();
    for r in refused {
        let q = pb::QuarantineRecord {
            topic: String::new(),
            payload: r.line.clone().into_bytes(),
            content_type: "text/plain; influx line protocol".into(),
            reason: r.reason.into(),
            detail: r.detail.clone(),
            received_at_unix_ms: now,
            log_record: r.record.clone(),
            log_offset: r.offset,
        };
        if let Err(e) = batch.quarantine.push_with(|b| {
            let _ = q.encode(b);
        }) {
            error!(offset = r.offset, error = %e, "refused line too large to quarantine; dropped");
        }
    }
    let mut logged = false;
    loop {
        let reply = match log.append_async(batch).await {
            Ok(r) => r,
            Err(_) => return false,
        };
        batch = reply.batch;
        match reply.result {
            Ok(_) => {
                for r in refused {
                    metrics.quarantine_tsdb_rejected();
                    debug!(
                        offset = r.offset,
                        reason = r.reason,
                        "refused line quarantined"
                    );
                }
                warn!(
                    lines = refused.len(),
                    "tsdb refused lines; quarantined with their records, rest of the batch kept"
                );
                return true;
            }
            Err(e) => {
                if !logged {
                    error!(error = %e, "cannot quarantine refused lines; the tsdb cursor waits");
                    logged = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.cancelled() => return false,
                }
            }
        }
    }
}

/// The `wastewatch_pipeline` point: every metric of
/// [`crate::metrics::TABLE`] as an integer field under its `/metrics` name.
pub fn pipeline_point(
    instance: &str,
    values: &[(&'static str, u64)],
    now_ms: i64,
    buf: &mut String,
) {
    use super::line_protocol::{FieldValue as F, LineBuilder};
    let mut b = LineBuilder::new(buf, "wastewatch_pipeline").tag("instance", instance);
    for (name, v) in values {
        b = b.field(name, F::I64(i64::try_from(*v).unwrap_or(i64::MAX)));
    }
    let _ = b.finish(now_ms);
}

/// Periodically writes the pipeline counters as `wastewatch_pipeline`
/// (best effort: a point that cannot be written is skipped, the next one
/// carries the counters on).
pub async fn run_stats(
    writer: Arc<Writer>,
    metrics: Arc<Metrics>,
    log: Arc<Log>,
    instance: String,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let mut buf = String::new();
        pipeline_point(
            &instance,
            &metrics.values(Some(log.stats()), &log.consumer_lags()),
            crate::ingest::now_ms(),
            &mut buf,
        );
        if let WriteOutcome::Retry { reason, .. } = writer.write(&buf).await {
            debug!(error = %reason, "pipeline stats not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_without_a_line_is_refused_with_its_frame_bytes_and_leaves_no_half_line() {
        let mut lines = Lines::default();
        let mut offsets = Vec::new();
        let mut refused = Vec::new();
        // An envelope without a body has no field to write.
        let bad = pb::LogRecord {
            envelope: Some(pb::Envelope {
                device_id: "bin-1".into(),
                ..Default::default()
            }),
            time_unix_ms: 7,
            ..Default::default()
        };
        add_line(&mut lines, &mut offsets, &mut refused, 41, &bad, || {
            bad.encode_to_vec()
        });
        assert!(lines.is_empty() && offsets.is_empty());
        assert_eq!(refused.len(), 1);
        let r = &refused[0];
        assert_eq!((r.offset, r.reason), (41, "cannot_encode"));
        assert!(r.detail.contains("no field"), "{}", r.detail);
        assert_eq!(pb::LogRecord::decode(r.record.as_slice()).unwrap(), bad);
    }
}
