//! Simulation settings: what to simulate (seed, scenarios, encodings, GPS
//! noise), how fast (speed-up, rate, limits) and how to connect.
//!
//! One plain struct with public fields and a `Default`, so tests and the demo
//! set only what they care about; [`SimConfig::validate`] reports every bad
//! value at once, naming the value, its unit and the fix.

use std::time::Duration;

use super::scenario::Scenario;

/// Everything the fleet and the publisher need.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice; same seed, zone and settings give
    /// byte-identical messages.
    pub seed: u64,
    /// Active scenarios; order and duplicates do not matter. Empty or
    /// `[Normal]` is the well-behaved zone.
    pub scenarios: Vec<Scenario>,
    /// Share of devices (0..=1) speaking the legacy JSON encoding instead of
    /// protobuf; half of them mark it with the MQTT 5 content type, half with
    /// the `/json` topic suffix (devices that cannot set properties).
    pub json_share: f64,
    /// Standard deviation of the GNSS position error per axis, metres. The
    /// `gps_jitter` scenario raises it to at least
    /// [`SimConfig::JITTER_SIGMA_M`].
    pub gps_sigma_m: f64,
    /// Cap on messages per second over the whole fleet (token bucket); `None`
    /// publishes as fast as the broker acks. When the cap is below what the
    /// fleet produces, simulated time slows down instead of queueing without
    /// bound.
    pub rate_per_s: Option<f64>,
    /// Stop after this many messages published.
    pub count: Option<u64>,
    /// Stop after this much wall-clock time.
    pub duration: Option<Duration>,
    /// Simulated seconds per wall-clock second.
    pub speedup: f64,
    /// Simulated time at the start, Unix ms UTC.
    pub start_unix_ms: i64,
    /// Never let simulated time run ahead of the wall clock: with a start in
    /// the past and a speed-up above 1 the simulation catches up and then
    /// runs in real time, so the service never sees future timestamps (which
    /// it would re-stamp, see `decode/clock.rs`).
    pub clamp_to_wall_clock: bool,
    /// Number of shared MQTT connections the devices are spread over (device
    /// `i` of the sorted fleet uses connection `i % connections`). One
    /// connection carries tens of thousands of messages per second; more
    /// help when the broker limits per-connection throughput.
    pub connections: usize,
    /// One MQTT connection per device, client id = device id, each with the
    /// device's LAST_WILL registered as its MQTT will. Only for small fleets
    /// (at most [`SimConfig::MAX_PER_DEVICE_CONNECTIONS`]).
    pub per_device_connections: bool,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// MQTT 5 session expiry, seconds: the broker keeps the session (and the
    /// unacked QoS 1 messages) across reconnects for this long.
    pub session_expiry_s: u32,
    /// Who to log in to the broker as (none: anonymous).
    pub auth: super::auth::MqttAuth,
}

impl SimConfig {
    /// Position error per axis used by `gps_jitter`, metres (an urban canyon
    /// receiver; still inside a 50 m corridor most of the time).
    pub const JITTER_SIGMA_M: f64 = 20.0;
    /// Largest fleet allowed with per-device connections.
    pub const MAX_PER_DEVICE_CONNECTIONS: usize = 500;

    /// True when `s` is active (`normal` is always implied).
    pub fn has(&self, s: Scenario) -> bool {
        self.scenarios.contains(&s)
    }

    /// GNSS error per axis in effect, metres.
    pub fn effective_gps_sigma_m(&self) -> f64 {
        if self.has(Scenario::GpsJitter) {
            self.gps_sigma_m.max(Self::JITTER_SIGMA_M)
        } else {
            self.gps_sigma_m
        }
    }

    /// The active scenarios, sorted and without duplicates (their effect
    /// does not depend on the order they were named in).
    pub fn normalised_scenarios(&self) -> Vec<Scenario> {
        let mut s = self.scenarios.clone();
        s.sort();
        s.dedup();
        s
    }

    /// Checks every value, reporting all problems at once.
    pub fn validate(&self) -> Result<(), SimError> {
        let mut e = Vec::new();
        if !(0.0..=1.0).contains(&self.json_share) {
            e.push(format!(
                "json_share is {}; it must be between 0 and 1",
                self.json_share
            ));
        }
        if !(self.gps_sigma_m.is_finite() && (0.0..=1000.0).contains(&self.gps_sigma_m)) {
            e.push(format!(
                "gps_sigma_m is {} m; it must be between 0 and 1000 m",
                self.gps_sigma_m
            ));
        }
        if let Some(r) = self.rate_per_s {
            if !(r.is_finite() && r > 0.0) {
                e.push(format!(
                    "rate is {r} messages/s; it must be above 0 (omit it for no cap)"
                ));
            }
        }
        if !(self.speedup.is_finite() && self.speedup > 0.0 && self.speedup <= 1e6) {
            e.push(format!(
                "speedup is {}; it must be above 0 and at most 1000000",
                self.speedup
            ));
        }
        if self.connections == 0 {
            e.push("connections is 0; use at least 1".to_owned());
        }
        if self.connections > 1 && !self.per_device_connections && self.auth.shared.is_some() {
            // A broker that makes the user name the client id (the shipped
            // Mosquitto config does) would let them take each other's
            // session in turn.
            e.push(format!(
                "connections is {} with one user name; brokers that use the user name as the client id (use_username_as_clientid) let such connections take each other's session: use 1 connection, or per-device connections with device credentials",
                self.connections
            ));
        }
        if self.session_expiry_s == 0 {
            e.push(
                "session_expiry_s is 0; a persistent session needs a non-zero expiry".to_owned(),
            );
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(SimError::Config(e))
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            scenarios: vec![Scenario::Normal],
            json_share: 0.1,
            gps_sigma_m: 3.0,
            rate_per_s: None,
            count: None,
            duration: None,
            speedup: 1.0,
            start_unix_ms: super::time::wall_now_ms(),
            clamp_to_wall_clock: false,
            connections: 1,
            per_device_connections: false,
            keep_alive: Duration::from_secs(30),
            session_expiry_s: 3600,
            auth: super::auth::MqttAuth::default(),
        }
    }
}

/// Why a simulation cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Invalid settings, all of them.
    #[error("{} invalid simulator setting(s): {}", .0.len(), .0.join("; "))]
    Config(Vec<String>),
    /// The zone has nothing to simulate.
    #[error("the zone has no devices; add some to devices.json or generate a zone with `firmware-sim gen-zone`")]
    EmptyZone,
    /// Per-device connections asked for a fleet too large for them.
    #[error("per-device connections asked for {devices} devices, at most {max} are allowed; use shared connections (--connections N) for large fleets")]
    TooManyConnections {
        /// Devices in the fleet.
        devices: usize,
        /// The limit.
        max: usize,
    },
    /// A zone file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A zone file is not the JSON the registry expects.
    #[error("{path}: {message}")]
    ZoneFormat {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The generated zone failed the registry's own validation.
    #[error("generated zone does not load: {0}")]
    Registry(String),
}
