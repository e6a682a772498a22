//! The TSDB sink: line-protocol encoding, batching and the InfluxDB writers.
//!
//! Reads records from the durable log through its own cursor; the cursor
//! moves only after the TSDB answered 2xx, so a TSDB outage delays data but
//! never loses it.

pub mod batcher;
pub mod encode;
pub mod line_protocol;
pub mod task;
pub mod writer;
