//! JT/T 808 gateway: construction-waste truck terminals that speak the
//! transport ministry's terminal protocol (JT/T 808-2013 and -2019) over TCP
//! report into the same durable log as native MQTT devices, as the same
//! `truck_fix` records.
//!
//! Pure codec: [`frame`] (delimiters, escaping, check code, the two
//! headers), [`message`] (bodies), [`reassembly`] (sub-packages),
//! [`record`] (location report → record), [`session`] (one connection's
//! state machine). The async shell is [`server`]. docs/PROTOCOLS.md says
//! how to connect a terminal and what of the standard is supported.

pub mod frame;
pub mod message;
pub mod reassembly;
pub mod record;
pub mod server;
pub mod session;

pub use session::{Conn, Output, Policy};
