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
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::encode::encode_record;
use super::writer::{WriteOutcome, Writer};
use crate::ingest::backoff::Backoff;
use crate::log::{Log, CURSOR_TSDB};
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
        encode_record(rec, &mut self.body)?;
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
        /// Lines refused by the server (quarantined).
        rejected: Vec<(String, String)>,
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
    stop: &mut watch::Receiver<bool>,
    give_up_on_stop: bool,
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
                        lines.slice(r.clone()).to_owned(),
                        "single line larger than the server accepts (413)".to_owned(),
                    ));
                    break;
                }
                WriteOutcome::Rejected { reason } => {
                    rejected.push((lines.slice(r.clone()).to_owned(), reason));
                    break;
                }
                WriteOutcome::Retry { after, reason } => {
                    metrics.tsdb_up.store(0, Relaxed);
                    metrics.tsdb_retryable_errors.fetch_add(1, Relaxed);
                    let delay = after.unwrap_or_else(|| backoff.next_delay(&mut rng));
                    warn!(writer = writer.name(), error = %reason, retry_in_ms = delay.as_millis() as u64, "tsdb write failed; data stays in the log");
                    if give_up_on_stop && *stop.borrow() {
                        return BatchResult::Interrupted;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|s| *s), if give_up_on_stop => return BatchResult::Interrupted,
                    }
                }
            }
        }
    }
    BatchResult::Done { written, rejected }
}

/// Runs the writer until `stop`; then makes one last flush attempt within
/// `flush_deadline` and returns.
pub async fn run(
    log: Arc<Log>,
    writer: Arc<Writer>,
    metrics: Arc<Metrics>,
    settings: crate::config::TsdbSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut head_rx = log.subscribe_head();
    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max);
    let max = settings.batch_max_lines.get();
    loop {
        let stopping = *stop.borrow();
        let cursor = log.cursor(CURSOR_TSDB);
        let head = *head_rx.borrow_and_update();
        if head <= cursor {
            if stopping {
                break;
            }
            tokio::select! {
                _ = head_rx.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // Let a partial batch fill up until it is old enough.
        if !stopping && head - cursor < max as u64 {
            let deadline = tokio::time::Instant::now() + settings.batch_max_age;
            loop {
                let h = *head_rx.borrow_and_update();
                if h - cursor >= max as u64 || *stop.borrow() {
                    break;
                }
                tokio::select! {
                    _ = head_rx.changed() => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = stop.changed() => {}
                }
            }
        }
        let l = log.clone();
        let recs = match tokio::task::spawn_blocking(move || l.read(cursor, max)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                error!(error = %e, "cannot read the durable log");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                error!(error = %e, "log read task failed");
                continue;
            }
        };
        let Some(last) = recs.last().map(|r| r.0) else {
            continue;
        };
        let mut lines = Lines::default();
        let mut undecodable = Vec::new();
        for (off, bytes) in &recs {
            match pb::LogRecord::decode(bytes.as_slice()) {
                Ok(rec) => {
                    if let Err(e) = lines.push_record(&rec) {
                        undecodable
                            .push((format!("log offset {off}"), format!("cannot encode: {e}")));
                    }
                }
                Err(e) => undecodable.push((
                    format!("log offset {off}"),
                    format!("corrupt log record: {e}"),
                )),
            }
        }
        let res = if lines.is_empty() {
            BatchResult::Done {
                written: 0,
                rejected: Vec::new(),
            }
        } else {
            write_batch(&writer, &lines, &metrics, &mut backoff, &mut stop, stopping).await
        };
        match res {
            BatchResult::Interrupted => {
                info!("tsdb writer stopping with unwritten records; they stay in the durable log");
                return;
            }
            BatchResult::Done {
                written,
                mut rejected,
            } => {
                rejected.append(&mut undecodable);
                if !rejected.is_empty() {
                    let q: Vec<Vec<u8>> = rejected
                        .iter()
                        .map(|(line, reason)| {
                            metrics.quarantine_tsdb_rejected();
                            pb::QuarantineRecord {
                                topic: String::new(),
                                payload: line.clone().into_bytes(),
                                content_type: "text/plain; influx line protocol".into(),
                                reason: "tsdb_rejected".into(),
                                detail: reason.clone(),
                                received_at_unix_ms: crate::ingest::now_ms(),
                            }
                            .encode_to_vec()
                        })
                        .collect();
                    warn!(
                        lines = q.len(),
                        "tsdb refused lines; quarantined, rest of the batch kept"
                    );
                    let l = log.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || l.append(&[], &q)).await
                    {
                        error!(error = %e, "could not quarantine refused lines");
                    }
                }
                metrics.tsdb_batches.fetch_add(1, Relaxed);
                metrics.tsdb_points.fetch_add(written as u64, Relaxed);
                let l = log.clone();
                match tokio::task::spawn_blocking(move || l.commit_cursor(CURSOR_TSDB, last + 1))
                    .await
                {
                    Ok(Ok(())) => debug!(next = last + 1, written, "tsdb cursor committed"),
                    Ok(Err(e)) => {
                        error!(error = %e, "cannot commit tsdb cursor; batch will be rewritten (idempotent)")
                    }
                    Err(e) => error!(error = %e, "cursor commit task failed"),
                }
            }
        }
    }
}

/// Periodically writes the pipeline counters as `wastewatch_pipeline`.
pub async fn run_stats(
    writer: Arc<Writer>,
    metrics: Arc<Metrics>,
    log: Arc<Log>,
    instance: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut buf = String::new();
        metrics.pipeline_point(
            &instance,
            Some(log.stats()),
            crate::ingest::now_ms(),
            &mut buf,
        );
        if let WriteOutcome::Retry { reason, .. } = writer.write(&buf).await {
            debug!(error = %reason, "pipeline stats not written");
        }
    }
}
