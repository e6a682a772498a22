//! The durable local log between MQTT and everything else.
//!
//! Ingest appends each group of decoded records (and quarantined messages)
//! in one `redb` write transaction with immediate durability (fsync) and only
//! then acks the MQTT messages: a PUBACK means "on local disk". Consumers
//! (the TSDB writer, the rule engine) each read from their own persisted
//! cursor; records below every registered cursor are deleted. The log is
//! bounded by `max_bytes` of unconsumed records: when an append would pass
//! it, [`LogError::Full`] is returned and nothing is written, so ingest stops
//! acking (backpressure to the broker) until a consumer catches up.
//!
//! `redb` is copy-on-write with checksummed commits, so a SIGKILL at any
//! instant leaves the last committed transaction intact and discards a torn
//! one on the next open; the crash tests in `tests/` check exactly that.

mod store;

pub use store::{Log, LogError, LogStats};

/// Cursor name of the TSDB writer.
pub const CURSOR_TSDB: &str = "tsdb";
/// Cursor name of the rule engine.
pub const CURSOR_RULES: &str = "rules";
