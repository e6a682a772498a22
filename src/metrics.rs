//! Pipeline counters: lock-free atomics, rendered as Prometheus text on
//! `/metrics` and written to InfluxDB as `wastewatch_pipeline` so the
//! pipeline-health dashboard needs nothing else. Label sets are bounded:
//! quarantine reasons come from the closed [`ErrorKind`] set, never ids.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::decode::ErrorKind;
use crate::log::LogStats;

/// Upper bounds of the TSDB write latency histogram, seconds.
pub const LATENCY_BUCKETS_S: [f64; 10] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// All counters of one process.
#[derive(Default)]
pub struct Metrics {
    /// MQTT messages received (including redeliveries).
    pub received: AtomicU64,
    /// Messages decoded into records.
    pub decoded: AtomicU64,
    /// Quarantined messages, by [`ErrorKind`] index; the extra last slot is
    /// "tsdb_rejected" (lines the TSDB refused with 400/422).
    pub quarantined: [AtomicU64; ErrorKind::ALL.len() + 1],
    /// PUBACKs handed to the MQTT client.
    pub acks: AtomicU64,
    /// Acks skipped because the connection they belonged to was gone.
    pub acks_stale_dropped: AtomicU64,
    /// Group commits to the durable log.
    pub log_commits: AtomicU64,
    /// Times an append was refused because the log was full.
    pub log_full_events: AtomicU64,
    /// 1 while ingest is stalled on a full log.
    pub log_full: AtomicU64,
    /// Appends that failed on a storage error (ENOSPC, EIO), each retried.
    pub log_append_errors: AtomicU64,
    /// Records lost to damage found on read (reported and quarantined).
    pub log_corrupt_records: AtomicU64,
    /// 1 while the MQTT session is connected.
    pub mqtt_connected: AtomicU64,
    /// MQTT connection errors (each followed by a reconnect attempt).
    pub mqtt_connection_errors: AtomicU64,
    /// TSDB batches written (2xx).
    pub tsdb_batches: AtomicU64,
    /// TSDB points written.
    pub tsdb_points: AtomicU64,
    /// TSDB request failures that will be retried.
    pub tsdb_retryable_errors: AtomicU64,
    /// TSDB batch splits after 413 or 400/422.
    pub tsdb_splits: AtomicU64,
    /// 1 when the last TSDB request succeeded.
    pub tsdb_up: AtomicU64,
    /// Latency histogram buckets (cumulative at render time).
    pub tsdb_latency_buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    /// Latency count.
    pub tsdb_latency_count: AtomicU64,
    /// Latency sum, microseconds.
    pub tsdb_latency_sum_us: AtomicU64,
    /// Alert state changes recorded.
    pub alert_events: AtomicU64,
    /// Alert notifications queued (fired, escalated, acknowledged,
    /// resolved; repeats and resends excluded), once per alert event.
    pub alerts_notified: AtomicU64,
    /// Notifications delivered to a receiver.
    pub notify_delivered: AtomicU64,
    /// Delivery attempts that failed (retried with backoff).
    pub notify_failures: AtomicU64,
    /// Notifications dropped from a full outbox.
    pub notify_dropped: AtomicU64,
    /// Notifications waiting in the outboxes.
    pub notify_outbox: AtomicU64,
    /// The rule engine's counters (records judged, and skipped by reason),
    /// copied by the rules task.
    pub rules: std::sync::Mutex<crate::rules::EngineStats>,
}

impl Metrics {
    /// Counts one quarantined message.
    pub fn quarantine(&self, kind: ErrorKind) {
        if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.quarantined[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts one line refused by the TSDB.
    pub fn quarantine_tsdb_rejected(&self) {
        self.quarantined[ErrorKind::ALL.len()].fetch_add(1, Relaxed);
    }

    /// Total quarantined.
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.iter().map(|a| a.load(Relaxed)).sum()
    }

    /// Records a TSDB request latency.
    pub fn observe_tsdb_latency(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|b| s <= *b) {
            self.tsdb_latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.tsdb_latency_count.fetch_add(1, Relaxed);
        self.tsdb_latency_sum_us
            .fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn reason(i: usize) -> &'static str {
        ErrorKind::ALL
            .get(i)
            .map(|k| k.as_str())
            .unwrap_or("tsdb_rejected")
    }

    /// Prometheus text exposition.
    pub fn render_prometheus(&self, log: Option<LogStats>) -> String {
        let mut o = String::with_capacity(4096);
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut o,
            "ingest_received_total",
            "MQTT messages received, redeliveries included.",
            self.received.load(Relaxed),
        );
        counter(
            &mut o,
            "ingest_decoded_total",
            "Messages decoded into records.",
            self.decoded.load(Relaxed),
        );
        counter(
            &mut o,
            "ingest_acks_total",
            "PUBACKs sent after the durable commit.",
            self.acks.load(Relaxed),
        );
        counter(
            &mut o,
            "ingest_acks_stale_dropped_total",
            "Acks not sent because their connection was gone (the broker redelivers).",
            self.acks_stale_dropped.load(Relaxed),
        );
        counter(
            &mut o,
            "log_commits_total",
            "Group commits to the durable log.",
            self.log_commits.load(Relaxed),
        );
        counter(
            &mut o,
            "log_full_events_total",
            "Appends refused because the log was full.",
            self.log_full_events.load(Relaxed),
        );
        counter(
            &mut o,
            "log_append_errors_total",
            "Appends that failed on a storage error (retried; messages stay unacked).",
            self.log_append_errors.load(Relaxed),
        );
        counter(
            &mut o,
            "log_corrupt_records_total",
            "Records found damaged on read, skipped and quarantined.",
            self.log_corrupt_records.load(Relaxed),
        );
        counter(
            &mut o,
            "mqtt_connection_errors_total",
            "MQTT connection errors.",
            self.mqtt_connection_errors.load(Relaxed),
        );
        counter(
            &mut o,
            "tsdb_batches_total",
            "Batches written to the TSDB.",
            self.tsdb_batches.load(Relaxed),
        );
        counter(
            &mut o,
            "tsdb_points_total",
            "Points written to the TSDB.",
            self.tsdb_points.load(Relaxed),
        );
        counter(
            &mut o,
            "tsdb_retryable_errors_total",
            "TSDB requests that failed and will be retried.",
            self.tsdb_retryable_errors.load(Relaxed),
        );
        counter(
            &mut o,
            "tsdb_splits_total",
            "Batches split after 413 or 400/422.",
            self.tsdb_splits.load(Relaxed),
        );
        counter(
            &mut o,
            "alert_events_total",
            "Alert state changes recorded.",
            self.alert_events.load(Relaxed),
        );
        counter(
            &mut o,
            "notify_queued_total",
            "Alert events queued for notification.",
            self.alerts_notified.load(Relaxed),
        );
        counter(
            &mut o,
            "notify_delivered_total",
            "Notifications a receiver accepted.",
            self.notify_delivered.load(Relaxed),
        );
        counter(
            &mut o,
            "notify_failures_total",
            "Notification deliveries that failed and will be retried.",
            self.notify_failures.load(Relaxed),
        );
        counter(
            &mut o,
            "notify_dropped_total",
            "Notifications dropped from a full outbox.",
            self.notify_dropped.load(Relaxed),
        );
        let rules = self
            .rules
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        counter(
            &mut o,
            "rules_records_total",
            "Records judged by the rule engine (after dedup).",
            rules.records,
        );
        let _ = writeln!(
            o,
            "# HELP rules_skipped_total Records or fixes the rule engine did not judge, by reason.\n# TYPE rules_skipped_total counter"
        );
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&rules) {
            for (reason, v) in m {
                if reason == "records" || reason == "late_fixes_counted" {
                    continue;
                }
                let _ = writeln!(
                    o,
                    "rules_skipped_total{{reason=\"{reason}\"}} {}",
                    v.as_u64().unwrap_or(0)
                );
            }
        }
        let _ = writeln!(o, "# HELP ingest_quarantined_total Messages quarantined, by reason.\n# TYPE ingest_quarantined_total counter");
        for (i, a) in self.quarantined.iter().enumerate() {
            let _ = writeln!(
                o,
                "ingest_quarantined_total{{reason=\"{}\"}} {}",
                Self::reason(i),
                a.load(Relaxed)
            );
        }
        let gauge = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut o,
            "notify_outbox",
            "Notifications waiting for their receiver.",
            self.notify_outbox.load(Relaxed),
        );
        gauge(
            &mut o,
            "mqtt_connected",
            "1 while the MQTT session is up.",
            self.mqtt_connected.load(Relaxed),
        );
        gauge(
            &mut o,
            "log_full",
            "1 while ingest is stalled on a full log.",
            self.log_full.load(Relaxed),
        );
        gauge(
            &mut o,
            "tsdb_up",
            "1 when the last TSDB request succeeded.",
            self.tsdb_up.load(Relaxed),
        );
        if let Some(s) = log {
            gauge(
                &mut o,
                "log_depth_records",
                "Records not yet consumed by every consumer.",
                s.depth,
            );
            gauge(
                &mut o,
                "log_bytes",
                "Bytes of unconsumed records.",
                s.live_bytes,
            );
            gauge(
                &mut o,
                "log_max_bytes",
                "Byte bound of the log.",
                s.max_bytes,
            );
            gauge(&mut o, "log_head_offset", "Next log offset.", s.head);
            gauge(
                &mut o,
                "quarantine_records",
                "Messages held in quarantine.",
                s.quarantined,
            );
            gauge(
                &mut o,
                "quarantine_bytes",
                "Bytes of the quarantine on disk (counted in the log bound).",
                s.quarantine_bytes,
            );
            gauge(
                &mut o,
                "log_segments",
                "Record segment files on disk.",
                s.segments,
            );
            gauge(
                &mut o,
                "log_storage_error",
                "1 while log writes fail (ENOSPC, EIO); ingest is not acking.",
                u64::from(s.storage_error),
            );
        }
        let _ = writeln!(o, "# HELP tsdb_write_latency_seconds TSDB write request latency.\n# TYPE tsdb_write_latency_seconds histogram");
        let mut cum = 0;
        for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
            cum += self.tsdb_latency_buckets[i].load(Relaxed);
            let _ = writeln!(o, "tsdb_write_latency_seconds_bucket{{le=\"{b}\"}} {cum}");
        }
        let count = self.tsdb_latency_count.load(Relaxed);
        let _ = writeln!(
            o,
            "tsdb_write_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "tsdb_write_latency_seconds_sum {}",
            self.tsdb_latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "tsdb_write_latency_seconds_count {count}");
        o
    }

    /// One `wastewatch_pipeline` line-protocol point with the same counters.
    pub fn pipeline_point(
        &self,
        instance: &str,
        log: Option<LogStats>,
        now_ms: i64,
        buf: &mut String,
    ) {
        use crate::sink::line_protocol::{FieldValue as F, LineBuilder};
        let i = |a: &AtomicU64| F::I64(i64::try_from(a.load(Relaxed)).unwrap_or(i64::MAX));
        let mut b = LineBuilder::new(buf, "wastewatch_pipeline")
            .tag("instance", instance)
            .field("received", i(&self.received))
            .field("decoded", i(&self.decoded))
            .field("quarantined", F::I64(self.quarantined_total() as i64))
            .field("acks", i(&self.acks))
            .field("log_commits", i(&self.log_commits))
            .field("log_full", i(&self.log_full))
            .field("mqtt_connected", i(&self.mqtt_connected))
            .field("mqtt_connection_errors", i(&self.mqtt_connection_errors))
            .field("tsdb_batches", i(&self.tsdb_batches))
            .field("tsdb_points", i(&self.tsdb_points))
            .field("tsdb_retryable_errors", i(&self.tsdb_retryable_errors));
        if let Some(s) = log {
            b = b
                .field("log_depth_records", F::I64(s.depth as i64))
                .field("log_bytes", F::I64(s.live_bytes as i64))
                .field("quarantine_records", F::I64(s.quarantined as i64))
                .field("quarantine_bytes", F::I64(s.quarantine_bytes as i64))
                .field("log_storage_error", F::I64(i64::from(s.storage_error)));
        }
        let _ = b.finish(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_engine_counters_are_rendered_by_reason() {
        let m = Metrics::default();
        {
            let mut r = m.rules.lock().unwrap();
            r.records = 5;
            r.duplicates = 3;
            r.restamped_fixes = 2;
            r.late_fixes_counted = 9;
        }
        let text = m.render_prometheus(None);
        for want in [
            "rules_records_total 5",
            "rules_skipped_total{reason=\"duplicates\"} 3",
            "rules_skipped_total{reason=\"restamped_fixes\"} 2",
            "rules_skipped_total{reason=\"implausible_fixes\"} 0",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        assert!(!text.contains("late_fixes_counted"));
        assert!(!text.contains("reason=\"records\""));
    }
}
