//! JT/T 808 gateway: construction-waste truck terminals that speak the
//! transport ministry's terminal protocol (JT/T 808-2013 and -2019) over TCP
//! report into the same durable log as native MQTT devices, as the same
//! `truck_fix` records.
//!
//! Pure: the wire format from the contract (`wastewatch_contract::jt808`:
//! [`frame`], [`message`], [`reassembly`]), [`record`] (location report →
//! record), [`session`] (one connection's state machine). The async shell
//! is [`server`]. docs/PROTOCOLS.md says
//! how to connect a terminal and what of the standard is supported.

pub use wastewatch_contract::jt808::{frame, message, reassembly};

pub mod record;
pub mod server;
pub mod session;

pub use session::{Conn, Output, Policy};
