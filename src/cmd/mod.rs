//! The commands' I/O around the library: where `wastewatch report` and
//! `wastewatch kpi import` read and write, and `wastewatch demo` (cargo
//! feature `demo`). Part of the binary, not of the product library, so
//! `anyhow` stays here.

#[cfg(feature = "demo")]
pub mod demo;
pub mod kpi;
