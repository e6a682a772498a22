//! Test helpers: the shipped zone, record builders and a harness that runs
//! the engine and an alert store side by side on simulated time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::alert::{AlertEvent, AlertKey, AlertPolicy, AlertStore, RuleId, Severity, Transition};
use crate::pb::{self, envelope::Body, ClockCheck, DeviceKind};
use crate::registry::Registry;

use super::config::RuleConfig;
use super::engine::RuleEngine;

/// A minute, ms.
pub const MIN: i64 = 60_000;
/// 2026-03-02 10:00 local (UTC+8): inside door hours, outside the city
/// permits' 21:00-06:00 window.
pub const DAY_T0: i64 = 1_772_416_800_000;
/// 2026-03-02 21:00 local: the city permits' window opens.
pub const NIGHT_T0: i64 = 1_772_456_400_000;

/// The shipped example zone, loaded once.
pub fn zone() -> Arc<Registry> {
    static ZONE: OnceLock<Arc<Registry>> = OnceLock::new();
    ZONE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zone");
        Arc::new(Registry::load_dir(&dir).unwrap())
    })
    .clone()
}

/// An envelope from registered device `device` (site and kind from the
/// registry).
pub fn envelope(device: &str, seq: u64, t_ms: i64, body: Body) -> pb::Envelope {
    let reg = zone();
    let d = reg.device(device).unwrap();
    pb::Envelope {
        site_id: d.site_id.clone(),
        device_id: device.to_owned(),
        device_kind: d.kind as i32,
        seq,
        recorded_at_unix_ms: t_ms,
        schema_version: 1,
        body: Some(body),
    }
}

/// A log record taken at `t_ms` and received at `received_ms`.
pub fn record(env: pb::Envelope, received_ms: i64) -> pb::LogRecord {
    pb::LogRecord {
        time_unix_ms: env.recorded_at_unix_ms,
        envelope: Some(env),
        received_at_unix_ms: received_ms,
        clock_check: ClockCheck::Ok as i32,
        from_json: false,
        alert: None,
        kpi: None,
    }
}

/// A bin reading record received when taken.
pub fn bin_record(device: &str, seq: u64, t_ms: i64, r: pb::BinReading) -> pb::LogRecord {
    record(envelope(device, seq, t_ms, Body::BinReading(r)), t_ms)
}

/// A healthy bin reading.
pub fn bin_ok() -> pb::BinReading {
    pb::BinReading {
        fill_level_pct: 20.0,
        temperature_deci_c: 200,
        tilt_deg: 1.0,
        battery_mv: 3600,
        ..Default::default()
    }
}

/// Engine plus alert store on simulated time.
pub struct Harness {
    /// The engine under test.
    pub engine: RuleEngine,
    /// Where its transitions go.
    pub store: AlertStore,
    /// Every transition so far.
    pub transitions: Vec<Transition>,
    /// Every store event so far.
    pub events: Vec<AlertEvent>,
    /// Next sequence number per device.
    seq: HashMap<String, u64>,
}

impl Harness {
    /// Over the shipped zone with the default config.
    pub fn zone() -> Self {
        Self::with_config(RuleConfig::default())
    }

    /// Over the shipped zone with `config`.
    pub fn with_config(config: RuleConfig) -> Self {
        Self {
            engine: RuleEngine::new(zone(), config),
            store: AlertStore::new(AlertPolicy::default()),
            transitions: Vec::new(),
            events: Vec::new(),
            seq: HashMap::new(),
        }
    }

    /// The next sequence number of `device`.
    pub fn next_seq(&mut self, device: &str) -> u64 {
        let s = self.seq.entry(device.to_owned()).or_insert(0);
        *s += 1;
        *s
    }

    /// Feeds `rec` at wall time `now_ms`.
    pub fn record_at(&mut self, rec: pb::LogRecord, now_ms: i64) {
        let ts = self.engine.on_record(&rec, now_ms);
        self.apply(ts);
    }

    fn apply(&mut self, ts: Vec<Transition>) {
        for t in ts {
            self.events.extend(self.store.apply(t.clone()));
            self.transitions.push(t);
        }
    }

    /// Ticks engine and store at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) {
        let ts = self.engine.on_tick(now_ms);
        self.apply(ts);
        let ev = self.store.tick(now_ms);
        self.events.extend(ev);
    }

    fn body(&mut self, device: &str, t_ms: i64, received_ms: i64, body: Body) {
        let seq = self.next_seq(device);
        self.record_at(
            record(envelope(device, seq, t_ms, body), received_ms),
            received_ms,
        );
    }

    /// A storage reading taken and received at `t_ms`.
    pub fn storage(&mut self, device: &str, t_ms: i64, r: pb::StorageReading) {
        self.storage_received(device, t_ms, t_ms, r);
    }

    /// A storage reading taken at `t_ms`, received at `received_ms`.
    pub fn storage_received(
        &mut self,
        device: &str,
        t_ms: i64,
        received_ms: i64,
        r: pb::StorageReading,
    ) {
        self.body(device, t_ms, received_ms, Body::StorageReading(r));
    }

    /// A bin reading taken and received at `t_ms`.
    pub fn bin(&mut self, device: &str, t_ms: i64, r: pb::BinReading) {
        self.body(device, t_ms, t_ms, Body::BinReading(r));
    }

    /// A status message at `t_ms`.
    pub fn status(&mut self, device: &str, t_ms: i64, s: pb::DeviceStatus) {
        self.body(device, t_ms, t_ms, Body::DeviceStatus(s));
    }

    /// A weighbridge ticket at `t_ms`.
    pub fn ticket(&mut self, device: &str, t_ms: i64, t: pb::WeighbridgeTicket) {
        self.body(device, t_ms, t_ms, Body::WeighbridgeTicket(t));
    }

    /// A truck fix taken and received at `t_ms`.
    pub fn fix(&mut self, device: &str, t_ms: i64, f: pb::TruckFix) {
        self.body(device, t_ms, t_ms, Body::TruckFix(f));
    }

    /// Severity of the active alert of (`rule`, `entity`) in the store.
    pub fn current(&self, rule: RuleId, entity: &str) -> Option<Severity> {
        self.store
            .get_by_key(&AlertKey::new(rule, entity))
            .filter(|a| a.state.is_active())
            .map(|a| a.severity)
    }

    /// Raise transitions of `rule` so far.
    pub fn raises(&self, rule: RuleId) -> usize {
        self.transitions
            .iter()
            .filter(|t| t.key().rule == rule && t.severity().is_some())
            .count()
    }
}

/// Asserts the zone's device `id` has kind `kind` (guards the tests'
/// assumptions about the shipped zone).
pub fn assert_kind(id: &str, kind: DeviceKind) {
    assert_eq!(zone().device(id).map(|d| d.kind), Some(kind), "{id}");
}
