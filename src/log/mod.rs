//! The durable local log between MQTT and everything else.
//!
//! Ingest hands each group of decoded records (and quarantined messages)
//! to the log's single writer thread, which gives them offsets, appends
//! them to the newest segment file as CRC-32C framed entries and
//! `fdatasync`s once per group; only then does ingest ack the MQTT
//! messages: a PUBACK means "on local disk". Consumers (the TSDB writer,
//! the rule engine) read batches from their own cursor; whole segments are
//! deleted once every saved cursor has passed them. The log is bounded by
//! bytes held (unconsumed records plus the quarantine): an append that
//! would pass the bound is refused with [`LogError::Full`] and nothing is
//! written, so ingest stops acking (backpressure to the broker) until a
//! consumer catches up.
//!
//! After a crash, the newest segment is verified frame by frame and cut at
//! the first torn or damaged frame; everything before it was fsynced before
//! it was acknowledged. The format and the recovery rules are in
//! `docs/LOG.md`.
//!
//! Layout: [`frame`] (one entry on disk), [`segment`] (files and the
//! scan), [`writer`] (the single writer and group commit), [`reader`]
//! (batched reads), [`cursor`] (durable cursors), [`store`] (state, open and
//! recovery, deletion, quarantine), `tail` (the newest ingest records,
//! kept decoded for the consumers that keep up).

pub mod cursor;
pub mod frame;
pub mod reader;
pub mod segment;
mod store;
mod tail;
mod writer;

pub use cursor::Position;
pub use frame::{FrameBuf, Kind};
pub use reader::{Batch, LogReader};
pub use tail::DecodedRun;

/// Resolves when the log has a record at or after `offset` (`head` is the
/// log's head), then, when fewer than `min` records are there, lets the
/// batch fill for `linger` more. A consumer woken for every group commit
/// read a few records per wake-up at moderate load, and the wake-ups cost
/// more than the records: per message, the service used twice the CPU at
/// 20,000 messages/s that it used under a heavier load with larger batches.
pub async fn wait_for_records(
    head: &mut tokio::sync::watch::Receiver<u64>,
    offset: u64,
    min: u64,
    linger: std::time::Duration,
) {
    let _ = head.wait_for(|h| *h > offset).await;
    let available = head.borrow().saturating_sub(offset);
    if available < min {
        tokio::time::sleep(linger).await;
    }
}
pub use store::{
    AppendBatch, AppendReply, Appended, Class, Durability, Log, LogError, LogOptions, LogStats,
    DEFAULT_DECODED_TAIL_RECORDS, DEFAULT_DISK_RESERVE_BYTES,
};

/// Cursor name of the TSDB writer.
pub const CURSOR_TSDB: &str = "tsdb";
/// Cursor name of the rule engine.
pub const CURSOR_RULES: &str = "rules";
/// Cursor name of the KPI stage.
pub const CURSOR_KPI: &str = "kpi";
/// Every consumer of the log. Always open the log with all of them: a
/// consumer left out does not hold back deletion.
pub const CONSUMERS: [&str; 3] = [CURSOR_TSDB, CURSOR_RULES, CURSOR_KPI];

#[cfg(test)]
mod tests;
