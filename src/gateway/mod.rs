//! Gateways for devices that do not speak wastewatch's own MQTT topics and
//! envelope: JT/T 808 truck terminals over TCP ([`jt808`]) and Sparkplug B
//! edge nodes over the broker ([`sparkplug`]). Their messages become the
//! same records, through the same durable log, as native ones.

pub mod jt808;
pub mod sparkplug;
