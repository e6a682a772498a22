//! Pipeline metrics: lock-free atomics, declared once in [`TABLE`] and
//! rendered from it twice under the same names — as Prometheus text on
//! `/metrics`, and as the fields of the `wastewatch_pipeline` point the TSDB
//! writer stores, so the pipeline-health dashboard needs nothing else. Label
//! sets are bounded: quarantine reasons come from the closed [`ErrorKind`]
//! set, rule-skip reasons from the engine's fixed counters; never ids.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

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
    /// PUBACKs written to the broker.
    pub acks: AtomicU64,
    /// MQTT messages read from the broker and not yet acknowledged (held in
    /// memory between the socket and the group commit).
    pub ingest_held: AtomicU64,
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
    /// Records the rule engine judged.
    pub rules_records: AtomicU64,
    /// The rule engine's skip counters, by reason, as the rules shell last
    /// copied them (a fixed set of names).
    pub rules_skipped: Mutex<Vec<(String, u64)>>,
    /// JT/T 808 terminals connected now.
    pub jt808_connections: AtomicU64,
    /// JT/T 808 connections accepted.
    pub jt808_connections_total: AtomicU64,
    /// JT/T 808 connections closed at once because `jt808.max_connections`
    /// were open.
    pub jt808_connections_refused: AtomicU64,
    /// JT/T 808 frames (and pieces outside frames) received.
    pub jt808_frames: AtomicU64,
    /// Truck fixes from JT/T 808 location reports made durable.
    pub jt808_fixes: AtomicU64,
    /// JT/T 808 messages answered failure or unsupported (not stored):
    /// before authentication, failed authentication, unknown terminal,
    /// unsupported message id.
    pub jt808_refused: AtomicU64,
    /// Sparkplug B messages handled by the host application.
    pub sparkplug_messages: AtomicU64,
    /// Sparkplug B records made (readings, tickets, births, deaths).
    pub sparkplug_records: AtomicU64,
    /// Rebirth requests (NCMD) sent to edge nodes.
    pub sparkplug_rebirth_requests: AtomicU64,
    /// Gaps in an edge node's seq.
    pub sparkplug_seq_gaps: AtomicU64,
    /// Metric values of mapped devices with no field mapping.
    pub sparkplug_unmapped_metrics: AtomicU64,
    /// NDEATHs ignored: their bdSeq was not the node's current session's.
    pub sparkplug_stale_deaths: AtomicU64,
}

/// Counter (only goes up) or gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// What a metric is read from at render time.
pub struct View<'a> {
    /// The counters.
    pub m: &'a Metrics,
    /// The log's numbers (absent when the log is not open).
    pub log: Option<LogStats>,
    /// Uncommitted records per log consumer.
    pub lags: &'a [(String, u64)],
}

/// One declared metric.
pub struct Def {
    /// Name in `/metrics` and field name in `wastewatch_pipeline`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// `# HELP` text.
    pub help: &'static str,
    /// Its value now; `None` when it does not apply (no log).
    pub read: fn(&View<'_>) -> Option<u64>,
}

fn lag(v: &View<'_>, consumer: &str) -> Option<u64> {
    v.lags.iter().find(|(n, _)| n == consumer).map(|(_, l)| *l)
}

macro_rules! atomic {
    ($name:literal, $kind:ident, $help:literal, $field:ident) => {
        Def {
            name: $name,
            kind: Kind::$kind,
            help: $help,
            read: |v| Some(v.m.$field.load(Relaxed)),
        }
    };
}

/// Every unlabelled metric, in rendering order. The labelled families
/// (`ingest_quarantined_total{reason}`, `rules_skipped_total{reason}`) and
/// the latency histogram are rendered after them; their totals are in the
/// pipeline point.
pub const TABLE: &[Def] = &[
    atomic!(
        "ingest_received_total",
        Counter,
        "MQTT messages received, redeliveries included.",
        received
    ),
    atomic!(
        "ingest_decoded_total",
        Counter,
        "Messages decoded into records.",
        decoded
    ),
    Def {
        name: "ingest_quarantined_total",
        kind: Kind::Counter,
        help: "Messages quarantined (every reason; by reason: the labelled family).",
        read: |v| Some(v.m.quarantined_total()),
    },
    atomic!(
        "ingest_acks_total",
        Counter,
        "PUBACKs written after the durable commit.",
        acks
    ),
    atomic!(
        "ingest_acks_stale_dropped_total",
        Counter,
        "Acks not sent because their connection was gone (the broker redelivers).",
        acks_stale_dropped
    ),
    atomic!(
        "log_commits_total",
        Counter,
        "Group commits to the durable log.",
        log_commits
    ),
    atomic!(
        "log_full_events_total",
        Counter,
        "Appends refused because the log was full.",
        log_full_events
    ),
    atomic!(
        "log_append_errors_total",
        Counter,
        "Appends that failed on a storage error (retried; messages stay unacked).",
        log_append_errors
    ),
    atomic!(
        "log_corrupt_records_total",
        Counter,
        "Records found damaged on read, skipped and quarantined.",
        log_corrupt_records
    ),
    atomic!(
        "mqtt_connection_errors_total",
        Counter,
        "MQTT connection errors.",
        mqtt_connection_errors
    ),
    atomic!(
        "tsdb_batches_total",
        Counter,
        "Batches written to the TSDB.",
        tsdb_batches
    ),
    atomic!(
        "tsdb_points_total",
        Counter,
        "Points written to the TSDB.",
        tsdb_points
    ),
    atomic!(
        "tsdb_retryable_errors_total",
        Counter,
        "TSDB requests that failed and will be retried.",
        tsdb_retryable_errors
    ),
    atomic!(
        "tsdb_splits_total",
        Counter,
        "Batches split after 413 or 400/422.",
        tsdb_splits
    ),
    atomic!(
        "alert_events_total",
        Counter,
        "Alert state changes recorded.",
        alert_events
    ),
    atomic!(
        "notify_queued_total",
        Counter,
        "Alert events queued for notification (once per event).",
        alerts_notified
    ),
    atomic!(
        "notify_delivered_total",
        Counter,
        "Notifications delivered to a receiver.",
        notify_delivered
    ),
    atomic!(
        "notify_failures_total",
        Counter,
        "Delivery attempts that failed (retried with backoff).",
        notify_failures
    ),
    atomic!(
        "notify_dropped_total",
        Counter,
        "Notifications dropped from a full outbox (oldest first).",
        notify_dropped
    ),
    atomic!(
        "rules_records_total",
        Counter,
        "Records the rule engine judged.",
        rules_records
    ),
    atomic!(
        "jt808_connections_total",
        Counter,
        "JT/T 808 terminal connections accepted.",
        jt808_connections_total
    ),
    atomic!(
        "jt808_connections_refused_total",
        Counter,
        "JT/T 808 connections closed at once: jt808.max_connections were open.",
        jt808_connections_refused
    ),
    atomic!(
        "jt808_frames_total",
        Counter,
        "JT/T 808 frames received (and byte runs outside frames).",
        jt808_frames
    ),
    atomic!(
        "jt808_fixes_total",
        Counter,
        "Truck fixes from JT/T 808 location reports made durable (then answered 0x8001).",
        jt808_fixes
    ),
    atomic!(
        "jt808_refused_total",
        Counter,
        "JT/T 808 messages answered failure or unsupported, not stored (unauthenticated, unknown terminal, unsupported id).",
        jt808_refused
    ),
    atomic!(
        "sparkplug_messages_total",
        Counter,
        "Sparkplug B messages the host application handled.",
        sparkplug_messages
    ),
    atomic!(
        "sparkplug_records_total",
        Counter,
        "Records made from Sparkplug B messages (readings, tickets, device births and deaths).",
        sparkplug_records
    ),
    atomic!(
        "sparkplug_rebirth_requests_total",
        Counter,
        "Rebirth requests (NCMD Node Control/Rebirth) sent to edge nodes after a seq gap, an unknown alias or data before birth.",
        sparkplug_rebirth_requests
    ),
    atomic!(
        "sparkplug_seq_gaps_total",
        Counter,
        "Gaps in the 0-255 message sequence of an edge node.",
        sparkplug_seq_gaps
    ),
    atomic!(
        "sparkplug_unmapped_metrics_total",
        Counter,
        "Metric values of mapped Sparkplug devices that no field mapping in sparkplug.json takes (logged once per name at debug).",
        sparkplug_unmapped_metrics
    ),
    atomic!(
        "sparkplug_stale_deaths_total",
        Counter,
        "NDEATHs ignored because their bdSeq is not the edge node's current session's.",
        sparkplug_stale_deaths
    ),
    atomic!(
        "jt808_connections",
        Gauge,
        "JT/T 808 terminals connected now.",
        jt808_connections
    ),
    atomic!(
        "notify_outbox",
        Gauge,
        "Notifications waiting for their receiver.",
        notify_outbox
    ),
    atomic!(
        "ingest_held_messages",
        Gauge,
        "MQTT messages read from the broker and not yet acked (bounded by mqtt.receive_maximum).",
        ingest_held
    ),
    atomic!(
        "mqtt_connected",
        Gauge,
        "1 while the MQTT session is up and subscribed (from SUBACK until the connection is lost).",
        mqtt_connected
    ),
    atomic!(
        "log_full",
        Gauge,
        "1 while ingest is stalled on a full log.",
        log_full
    ),
    atomic!(
        "tsdb_up",
        Gauge,
        "1 when the last TSDB request succeeded.",
        tsdb_up
    ),
    Def {
        name: "log_depth_records",
        kind: Kind::Gauge,
        help: "Records not yet consumed by every consumer.",
        read: |v| v.log.map(|s| s.depth),
    },
    Def {
        name: "log_tsdb_lag_records",
        kind: Kind::Gauge,
        help: "Records the TSDB writer has still to commit (grows while the TSDB is away).",
        read: |v| lag(v, crate::log::CURSOR_TSDB),
    },
    Def {
        name: "log_rules_lag_records",
        kind: Kind::Gauge,
        help: "Records the rule engine has still to commit (its cursor moves with each snapshot).",
        read: |v| lag(v, crate::log::CURSOR_RULES),
    },
    Def {
        name: "log_bytes",
        kind: Kind::Gauge,
        help: "Bytes of unconsumed records.",
        read: |v| v.log.map(|s| s.live_bytes),
    },
    Def {
        name: "log_max_bytes",
        kind: Kind::Gauge,
        help: "Byte bound of the log (records + quarantine).",
        read: |v| v.log.map(|s| s.max_bytes),
    },
    Def {
        name: "log_head_offset",
        kind: Kind::Gauge,
        help: "Next log offset.",
        read: |v| v.log.map(|s| s.head),
    },
    Def {
        name: "log_read_tail_records_total",
        kind: Kind::Counter,
        help: "Records the consumers (rules, KPI, TSDB writer) took decoded from the log's in-memory tail.",
        read: |v| v.log.map(|s| s.read_tail),
    },
    Def {
        name: "log_read_file_records_total",
        kind: Kind::Counter,
        help: "Records read from the segment files: by a consumer behind the decoded tail or at records not in it (alert and KPI records), and at start-up.",
        read: |v| v.log.map(|s| s.read_file),
    },
    Def {
        name: "log_segments",
        kind: Kind::Gauge,
        help: "Record segment files on disk.",
        read: |v| v.log.map(|s| s.segments),
    },
    Def {
        name: "log_storage_error",
        kind: Kind::Gauge,
        help: "1 while log writes fail (ENOSPC, EIO); ingest is not acking.",
        read: |v| v.log.map(|s| u64::from(s.storage_error)),
    },
    Def {
        name: "quarantine_records",
        kind: Kind::Gauge,
        help: "Messages held in quarantine.",
        read: |v| v.log.map(|s| s.quarantined),
    },
    Def {
        name: "quarantine_bytes",
        kind: Kind::Gauge,
        help: "Bytes of the quarantine on disk (counted in the log bound).",
        read: |v| v.log.map(|s| s.quarantine_bytes),
    },
];

/// Names of the labelled families and the histogram (for the checks that
/// every name the dashboards and docs use exists).
pub const FAMILIES: &[&str] = &[
    "ingest_quarantined_total",
    "rules_skipped_total",
    "tsdb_write_latency_seconds",
];

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

    /// Copies the rule engine's counters: records judged and skips by
    /// reason.
    pub fn set_rules(&self, records: u64, skipped: Vec<(String, u64)>) {
        self.rules_records.store(records, Relaxed);
        if let Ok(mut s) = self.rules_skipped.lock() {
            *s = skipped;
        }
    }

    fn reason(i: usize) -> &'static str {
        ErrorKind::ALL
            .get(i)
            .map(|k| k.as_str())
            .unwrap_or("tsdb_rejected")
    }

    /// Every table metric that applies, with its value now.
    pub fn values(
        &self,
        log: Option<LogStats>,
        lags: &[(String, u64)],
    ) -> Vec<(&'static str, u64)> {
        let v = View { m: self, log, lags };
        TABLE
            .iter()
            .filter_map(|d| (d.read)(&v).map(|x| (d.name, x)))
            .collect()
    }

    /// Prometheus text exposition.
    pub fn render_prometheus(&self, log: Option<LogStats>, lags: &[(String, u64)]) -> String {
        let mut o = String::with_capacity(4096);
        let v = View { m: self, log, lags };
        for d in TABLE {
            if let Some(x) = (d.read)(&v) {
                let kind = match d.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                };
                let _ = writeln!(
                    o,
                    "# HELP {n} {h}\n# TYPE {n} {kind}\n{n} {x}",
                    n = d.name,
                    h = d.help
                );
            }
        }
        // Labelled families: the totals above, the breakdown here.
        let _ = writeln!(o, "# HELP ingest_quarantined_total Messages quarantined, by reason.\n# TYPE ingest_quarantined_total counter");
        for (i, a) in self.quarantined.iter().enumerate() {
            let _ = writeln!(
                o,
                "ingest_quarantined_total{{reason=\"{}\"}} {}",
                Self::reason(i),
                a.load(Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP rules_skipped_total Records or fixes the rule engine did not judge, by reason.\n# TYPE rules_skipped_total counter");
        if let Ok(s) = self.rules_skipped.lock() {
            for (reason, n) in s.iter() {
                let _ = writeln!(o, "rules_skipped_total{{reason=\"{reason}\"}} {n}");
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_engine_counters_are_rendered_by_reason() {
        let m = Metrics::default();
        m.set_rules(
            5,
            vec![
                ("duplicates".into(), 3),
                ("restamped_fixes".into(), 2),
                ("implausible_fixes".into(), 0),
            ],
        );
        let text = m.render_prometheus(None, &[]);
        for want in [
            "rules_records_total 5",
            "rules_skipped_total{reason=\"duplicates\"} 3",
            "rules_skipped_total{reason=\"restamped_fixes\"} 2",
            "rules_skipped_total{reason=\"implausible_fixes\"} 0",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn metric_names_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for d in TABLE {
            assert!(seen.insert(d.name), "{} declared twice", d.name);
            assert!(
                d.name.starts_with(|c: char| c.is_ascii_lowercase())
                    && d.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                d.name
            );
            if d.kind == Kind::Counter {
                assert!(
                    d.name.ends_with("_total"),
                    "counter {} must end in _total",
                    d.name
                );
            }
        }
    }

    /// Every name the dashboards and the docs use is a metric we render:
    /// a renamed metric must not leave a panel or a doc line behind.
    #[test]
    fn every_metric_the_dashboards_and_docs_name_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let known: std::collections::BTreeSet<&str> = TABLE
            .iter()
            .map(|d| d.name)
            .chain(FAMILIES.iter().copied())
            .collect();
        let looks_like_metric = |w: &str| {
            let prefixes = [
                "ingest_",
                "log_",
                "tsdb_",
                "mqtt_",
                "notify_",
                "rules_",
                "alert_events",
                "quarantine_",
            ];
            prefixes.iter().any(|p| w.starts_with(p))
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let mut checked = 0;
        // Fields of the pipeline point the dashboards query.
        for entry in std::fs::read_dir(root.join("dashboards")).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&p).unwrap();
                for q in text.split("\"query\"").skip(1) {
                    let q = q.split('\n').next().unwrap_or("");
                    if !q.contains("wastewatch_pipeline") {
                        continue;
                    }
                    for w in q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                        if looks_like_metric(w) {
                            checked += 1;
                            assert!(
                                known.contains(w),
                                "{} queries {w:?}, which is not a metric",
                                p.display()
                            );
                        }
                    }
                }
            }
        }
        // Names in backticks in the operations and schema docs.
        for doc in [
            "docs/OPERATIONS.md",
            "docs/SCHEMA.md",
            "docs/ARCHITECTURE.md",
            "docs/DASHBOARDS.md",
        ] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            // Docs also name reasons and config keys with these prefixes:
            // check the names with a metric's suffix.
            let suffixed = |w: &str| {
                [
                    "_total",
                    "_records",
                    "_bytes",
                    "_offset",
                    "_segments",
                    "_seconds",
                    "_lag",
                ]
                .iter()
                .any(|s| w.ends_with(s))
            };
            for (i, part) in text.split('`').enumerate() {
                let w = part.split('{').next().unwrap_or("");
                if i % 2 == 1 && looks_like_metric(w) && suffixed(w) {
                    checked += 1;
                    assert!(
                        known.contains(w),
                        "{doc} names `{w}`, which is not a metric"
                    );
                }
            }
        }
        assert!(
            checked > 10,
            "the check found only {checked} names: is it still reading the right files?"
        );
    }
}
