//! wastewatch
pub mod pb { include!(concat!(env!("OUT_DIR"), "/wastewatch.v1.rs")); }
