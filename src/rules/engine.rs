//! The rule engine: reads log records in log order, keeps per-device state,
//! and turns readings into alert [`Transition`]s.
//!
//! It sits on the log's rule cursor: the async shell feeds every record to
//! [`RuleEngine::on_record`], calls [`RuleEngine::on_tick`] every few
//! seconds, hands the transitions to the alert store, and periodically
//! stores [`RuleEngine::snapshot`] (with the alert store's snapshot) next
//! to the log offset it covers; after a restart it [`RuleEngine::restore`]s
//! and replays the log from that offset.
//!
//! Guarantees:
//! - event time: rules judge `time_unix_ms`, never the wall clock. Timers
//!   on tick (door, GNSS, trip, expiry of event alerts, reorder release)
//!   run on the device's event time extrapolated by the wall time since its
//!   newest record arrived; silence runs on receive times. Tick timers run
//!   only while the engine is live (the last record was processed within
//!   `live_lag_ms` of its receipt), so replaying a backlog never fires them;
//! - duplicates (same device and seq) are ignored, in a bounded window per
//!   device (`dedup.rs`);
//! - truck fixes are sorted in a reorder window before any rule sees them;
//!   late ones cannot regress state (`transport.rs`); readings of other
//!   kinds older than the newest judged one are not judged (they report
//!   minutes to hours apart, so a late reading is simply out of date);
//! - a truck fix the decoder had to re-stamp (device clock off) is not
//!   judged: its time is when it arrived, not when it was taken, so the
//!   time window, durations and speeds between fixes would be guesses;
//! - each key's transitions come in non-decreasing `at_ms` and only on
//!   change (`emit.rs`);
//! - no panics, no I/O; the whole state serializes to JSON.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::alert::{RuleId, Severity, Transition};
use crate::pb::{self, envelope::Body, DeviceKind, StatusKind};
use crate::registry::{Device, Registry};

use super::bins::{self, BinState};
use super::config::{RuleConfig, Scope};
use super::dedup::{Seq, SeqWindow};
use super::devices::{self, SilenceState};
use super::emit::{Alerts, Mark};
use super::quality::{self, Doubt};
use super::storage::{self, StorageState};
use super::transport::{self, Applied, Fix, TruckCtx, TruckState};
use super::{medical, weighbridge};

/// Why a snapshot could not be written or restored.
#[derive(Debug, Error)]
pub enum RuleError {
    /// serde_json failed: a corrupt or incompatible snapshot.
    #[error("rule engine snapshot is not valid: {0}; delete it to start from empty state")]
    Snapshot(#[from] serde_json::Error),
}

/// Counters of what the engine skipped and why (for metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineStats {
    /// Records processed (after dedup).
    pub records: u64,
    /// Records without an envelope.
    pub malformed: u64,
    /// Records from devices not in the registry.
    pub unknown_devices: u64,
    /// Bodies that do not match the device's kind.
    pub kind_mismatches: u64,
    /// Duplicates (device, seq) ignored.
    pub duplicates: u64,
    /// Sequence numbers too far below the window to tell, ignored.
    pub too_old: u64,
    /// Storage/bin readings older than the newest judged one, not judged.
    pub late_readings: u64,
    /// Readings not trusted (stale, low battery, impossible).
    pub untrusted_readings: u64,
    /// Truck fixes older than one already applied.
    pub late_fixes: u64,
    /// Late fixes that still counted toward an ongoing deviation.
    pub late_fixes_counted: u64,
    /// Fixes jumping implausibly far, not judged.
    pub implausible_fixes: u64,
    /// Truck fixes whose device clock was off (re-stamped by the decoder),
    /// not judged: every transport rule measures durations and time windows
    /// in device time, and a re-stamped fix carries its receive time.
    pub restamped_fixes: u64,
}

impl EngineStats {
    /// The skip counters, by reason (every counter but `records` and
    /// `late_fixes_counted`, which count judged records), for `/metrics`.
    pub fn skipped(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(self) {
            for (reason, v) in m {
                if reason != "records" && reason != "late_fixes_counted" {
                    out.push((reason, v.as_u64().unwrap_or(0)));
                }
            }
        }
        out
    }
}

/// Everything the engine remembers about one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct DeviceState {
    /// Sequence numbers seen.
    dedup: SeqWindow,
    /// Alerts raised and not cleared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    marks: Vec<Mark>,
    /// When it was last heard from.
    silence: SilenceState,
    /// Event time of the newest judged storage/bin reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_reading_ms: Option<i64>,
    /// Storage rules' state (storage points).
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<StorageState>,
    /// Bin rules' state (bins).
    #[serde(skip_serializing_if = "Option::is_none")]
    bin: Option<BinState>,
    /// Transport rules' state (trucks).
    #[serde(skip_serializing_if = "Option::is_none")]
    truck: Option<Box<TruckState>>,
    /// The trip a truck is on (weighed out, not yet in).
    #[serde(skip_serializing_if = "Option::is_none")]
    trip: Option<Box<weighbridge::OpenTrip>>,
    /// Recent ticket ids (weighbridges).
    #[serde(skip_serializing_if = "Option::is_none")]
    tickets: Option<Box<weighbridge::TicketMemory>>,
    /// Event time of the newest record (last wills aside), Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    newest_event_ms: Option<i64>,
}

impl DeviceState {
    /// The device's "now" in its own event time at wall time `now_ms`: the
    /// newest event time plus the wall time since the newest record was
    /// received. Tick timers (door, GNSS, trip, event hold, reorder
    /// release) compare event times with this, never with the wall clock
    /// itself: a backlog or a compressed replay arrives hours behind wall
    /// time, and a door opened at 08:00 of that backlog has not been open
    /// for hours.
    fn event_now(&self, now_ms: i64) -> i64 {
        match (self.newest_event_ms, self.silence.last_seen_ms) {
            (Some(e), Some(r)) => e.saturating_add(now_ms.saturating_sub(r).max(0)),
            _ => now_ms,
        }
    }
}

/// The engine's whole mutable state: what a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct EngineState {
    /// Per device, by id (registry ids only: the decoder refuses others,
    /// so the registry's fast id hash is safe here).
    devices: crate::registry::IdMap<DeviceState>,
    /// Wall time minus receive time of the last record processed, ms.
    last_lag_ms: Option<i64>,
    /// Counters.
    stats: EngineStats,
}

/// The rule engine (see the module docs).
pub struct RuleEngine {
    /// Sites, devices, permits.
    registry: Arc<Registry>,
    /// Thresholds, overrides, engine settings.
    config: RuleConfig,
    /// Per-device state.
    state: EngineState,
}

/// The topic name of a device kind, as used for override scopes.
fn kind_name(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Weighbridge => "weighbridge",
        DeviceKind::Bin => "bin",
        DeviceKind::Storage => "storage",
        DeviceKind::Truck => "truck",
        DeviceKind::Unspecified => "unspecified",
    }
}

/// The override scope of a device (no permit).
fn scope(device: &Device) -> Scope<'_> {
    Scope {
        kind: kind_name(device.kind),
        site: &device.site_id,
        permit: None,
        device: &device.id,
    }
}

impl RuleEngine {
    /// An engine with empty state.
    pub fn new(registry: Arc<Registry>, config: RuleConfig) -> Self {
        Self {
            registry,
            config,
            state: EngineState::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Counters of skipped input.
    pub fn stats(&self) -> &EngineStats {
        &self.state.stats
    }

    /// Number of devices with state.
    pub fn tracked_devices(&self) -> usize {
        self.state.devices.len()
    }

    /// Swaps in a new registry (after a zone reload); state is kept, and
    /// devices no longer registered are ignored from now on.
    pub fn set_registry(&mut self, registry: Arc<Registry>) {
        self.registry = registry;
    }

    /// The whole state as JSON, to store with the log offset it covers.
    pub fn snapshot(&self) -> Result<Vec<u8>, RuleError> {
        Ok(serde_json::to_vec(&self.state)?)
    }

    /// Replaces the state with a [`RuleEngine::snapshot`]; on error the
    /// state is unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), RuleError> {
        self.state = serde_json::from_slice(bytes)?;
        Ok(())
    }

    /// True when the last record was processed soon after it was received,
    /// i.e. the engine is not replaying a backlog.
    fn live(&self) -> bool {
        self.state
            .last_lag_ms
            .is_some_and(|lag| lag <= self.config.engine.live_lag_ms)
    }

    /// Judges one log record processed at wall time `now_ms`; returns the
    /// alert transitions it causes, in order.
    pub fn on_record(&mut self, rec: &pb::LogRecord, now_ms: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        let Self {
            registry,
            config,
            state,
        } = self;
        let (registry, config): (&Registry, &RuleConfig) = (registry, config);
        let stats = &mut state.stats;
        let Some(env) = rec.envelope.as_ref() else {
            stats.malformed += 1;
            return out;
        };
        let Some(device) = registry.device(&env.device_id) else {
            stats.unknown_devices += 1;
            return out;
        };
        if !state.devices.contains_key(&device.id) {
            state
                .devices
                .insert(device.id.clone(), DeviceState::default());
        }
        let Some(ds) = state.devices.get_mut(&device.id) else {
            return out;
        };
        let at = rec.time_unix_ms;
        match ds.dedup.accept(env.seq, at, config.engine.dedup_window) {
            Seq::New => {}
            Seq::Duplicate => {
                stats.duplicates += 1;
                return out;
            }
            Seq::TooOld => {
                stats.too_old += 1;
                return out;
            }
        }
        stats.records += 1;
        state.last_lag_ms = Some(now_ms.saturating_sub(rec.received_at_unix_ms));

        let mut alerts = Alerts::new(&device.id, &mut ds.marks, &mut out);
        let body = env.body.as_ref();
        let mut trip = None;
        let last_will =
            matches!(body, Some(Body::DeviceStatus(s)) if s.kind == StatusKind::LastWill as i32);
        if !last_will {
            ds.newest_event_ms = Some(ds.newest_event_ms.map_or(at, |e| e.max(at)));
            ds.silence.observe(rec.received_at_unix_ms);
            devices::heard(&mut alerts, at);
        }
        let sc = scope(device);
        let dth = config.overrides.resolve(&config.thresholds.devices, sc);
        let qth = config.overrides.resolve(&config.thresholds.quality, sc);

        match body {
            Some(Body::DeviceStatus(s)) if !last_will => {
                devices::battery(&dth, false, s.battery_mv, at, &mut alerts);
            }
            Some(Body::DeviceStatus(_)) => devices::last_will(&mut alerts, rec.received_at_unix_ms),
            Some(Body::StorageReading(r)) if device.kind == DeviceKind::Storage => {
                let Some(spec) = device.storage.as_ref() else {
                    return out;
                };
                devices::battery(&dth, false, r.battery_mv, at, &mut alerts);
                if ds.last_reading_ms.is_some_and(|l| at < l) {
                    stats.late_readings += 1;
                    return out;
                }
                ds.last_reading_ms = Some(at);
                let st = ds.storage.get_or_insert_with(StorageState::default);
                let temp_c = f64::from(r.temperature_deci_c) / 10.0;
                let doubt = quality::record_doubt(rec, &qth)
                    .or_else(|| {
                        devices::battery_is_low(&dth, false, r.battery_mv)
                            .then_some(Doubt::LowBattery { mv: r.battery_mv })
                    })
                    .or_else(|| quality::temperature_doubt(&st.temps, at, temp_c, &qth))
                    .or_else(|| storage_range_doubt(r));
                let sth = config.overrides.resolve(&config.thresholds.storage, sc);
                let mth = config.overrides.resolve(&config.thresholds.medical, sc);
                judge(doubt, st, &mut alerts, at, stats, |st, a| {
                    storage::evaluate(&sth, spec, st, r, temp_c, at, a);
                    if spec.medical {
                        medical::evaluate(&mth, r, temp_c, at, a);
                    }
                });
            }
            Some(Body::BinReading(r)) if device.kind == DeviceKind::Bin => {
                let Some(spec) = device.bin.as_ref() else {
                    return out;
                };
                devices::battery(&dth, r.battery_low_flag, r.battery_mv, at, &mut alerts);
                if ds.last_reading_ms.is_some_and(|l| at < l) {
                    stats.late_readings += 1;
                    return out;
                }
                ds.last_reading_ms = Some(at);
                let st = ds.bin.get_or_insert_with(BinState::default);
                let temp_c = f64::from(r.temperature_deci_c) / 10.0;
                let doubt = quality::record_doubt(rec, &qth)
                    .or_else(|| {
                        devices::battery_is_low(&dth, r.battery_low_flag, r.battery_mv)
                            .then_some(Doubt::LowBattery { mv: r.battery_mv })
                    })
                    .or_else(|| quality::temperature_doubt(&st.temps, at, temp_c, &qth))
                    .or_else(|| quality::range_doubt("fill level %", r.fill_level_pct, 0.0, 100.0))
                    .or_else(|| quality::range_doubt("tilt °", r.tilt_deg, 0.0, 180.0));
                let bth = config.overrides.resolve(&config.thresholds.bins, sc);
                judge(doubt, st, &mut alerts, at, stats, |st, a| {
                    bins::evaluate(&bth, spec, st, r, at, a);
                });
            }
            Some(Body::WeighbridgeTicket(t)) if device.kind == DeviceKind::Weighbridge => {
                let wth = config.overrides.resolve(&config.thresholds.weighbridge, sc);
                let w = weighbridge::Weighing::new(registry, t);
                weighbridge::evaluate(&wth, registry, device, &w, at, &mut alerts);
                let memory = ds.tickets.get_or_insert_with(Default::default);
                weighbridge::ticket_quality(&wth, device, memory, &w, at, &mut alerts);
                let tth = config.overrides.resolve(&config.thresholds.transport, sc);
                trip = weighbridge::trip_event(
                    &wth,
                    registry,
                    device,
                    &w,
                    at,
                    tth.default_speed_limit_kmh,
                );
            }
            Some(Body::TruckFix(f)) if device.kind == DeviceKind::Truck => {
                let Some(spec) = device.truck.as_ref() else {
                    return out;
                };
                ds.silence.parked = !f.ignition_on;
                if rec.clock_check != pb::ClockCheck::Ok as i32 {
                    stats.restamped_fixes += 1;
                    return out;
                }
                let st = ds.truck.get_or_insert_with(Box::default);
                let ctx = TruckCtx {
                    registry,
                    device,
                    plate: &spec.plate,
                    config,
                };
                if let Err(late) = st.push(Fix::from_pb(at, env.seq, f)) {
                    stats.late_fixes += 1;
                    if transport::apply_late(&ctx, st, &late) {
                        stats.late_fixes_counted += 1;
                    }
                }
                let watermark = st.newest_ms.unwrap_or(at);
                while let Some(fix) = st.pop_due(watermark, &config.engine) {
                    if transport::apply(&ctx, st, &fix, &mut alerts) == Applied::Implausible {
                        stats.implausible_fixes += 1;
                    }
                }
            }
            Some(_) => stats.kind_mismatches += 1,
            None => {}
        }
        // A ticket about a truck's trip: the trip and its alert live on the
        // truck.
        if let Some((truck, ev)) = trip {
            let tds = state.devices.entry(truck.id.clone()).or_default();
            let mut alerts = Alerts::new(&truck.id, &mut tds.marks, &mut out);
            weighbridge::apply_trip(registry, &mut tds.trip, &truck.id, ev, at, &mut alerts);
        }
        out
    }

    /// Time-driven rules at wall time `now_ms`, while live (see the module
    /// docs): event alerts clear `event_hold_ms` after they were raised
    /// (stamped at that event time), silence, door timers, GNSS loss of
    /// trucks with nothing in their reorder buffer, and the release of
    /// truck fixes held longer than the reorder window.
    pub fn on_tick(&mut self, now_ms: i64) -> Vec<Transition> {
        let live = self.live();
        let mut out = Vec::new();
        let Self {
            registry,
            config,
            state,
        } = self;
        let (registry, config): (&Registry, &RuleConfig) = (registry, config);
        let stats = &mut state.stats;
        let hold = config.engine.event_hold_ms;
        for (id, ds) in &mut state.devices {
            let Some(device) = registry.device(id) else {
                continue;
            };
            let ev_now = ds.event_now(now_ms);
            let mut alerts = Alerts::new(&device.id, &mut ds.marks, &mut out);
            alerts.prune(now_ms);
            if !live {
                continue;
            }
            let expired: Vec<(RuleId, Option<String>, i64)> = alerts
                .marks()
                .iter()
                .filter(|m| !m.cleared && m.rule.is_event() && ev_now - m.at_ms >= hold)
                .map(|m| (m.rule, m.entity.clone(), m.at_ms + hold))
                .collect();
            for (rule, entity, at) in expired {
                alerts.clear(rule, entity.as_deref(), at);
            }
            let sc = scope(device);
            let dth = config.overrides.resolve(&config.thresholds.devices, sc);
            devices::check_silence(&dth, device, &ds.silence, now_ms, &mut alerts);
            if let Some(trip) = &ds.trip {
                weighbridge::trip_overdue(trip, &device.id, ev_now, &mut alerts);
            }
            if let Some(st) = &ds.storage {
                let sth = config.overrides.resolve(&config.thresholds.storage, sc);
                if st.door_open_since_ms.is_some() {
                    storage::door(&sth, st, ev_now, &mut alerts);
                }
            }
            if let (Some(st), Some(spec)) = (ds.truck.as_deref_mut(), device.truck.as_ref()) {
                let ctx = TruckCtx {
                    registry,
                    device,
                    plate: &spec.plate,
                    config,
                };
                while let Some(fix) = st.pop_due(ev_now, &config.engine) {
                    if transport::apply(&ctx, st, &fix, &mut alerts) == Applied::Implausible {
                        stats.implausible_fixes += 1;
                    }
                }
                // Fixes still held will bring news; judge loss only without.
                if st.buffer.is_empty() {
                    let tth = config.overrides.resolve(&config.thresholds.transport, sc);
                    transport::gnss_on_tick(&tth, st, ev_now, &mut alerts);
                }
            }
        }
        out
    }
}

/// Doubt about a storage reading's values outside any sensor's range.
fn storage_range_doubt(r: &pb::StorageReading) -> Option<Doubt> {
    let pct = |name, v: Option<f64>, hi| v.and_then(|v| quality::range_doubt(name, v, 0.0, hi));
    quality::range_doubt("stock kg", r.stock_kg, 0.0, f64::MAX)
        .or_else(|| pct("combustible gas % LEL", r.combustible_gas_pct_lel, 100.0))
        .or_else(|| pct("toxic gas % of limit", r.toxic_gas_pct_of_limit, 10_000.0))
        .or_else(|| pct("oxygen %vol", r.oxygen_pct_vol, 100.0))
}

/// Runs `run` (the rules of one reading) if the reading is trusted;
/// otherwise runs it on copies of the state, and raises `cannot_verify`
/// when it would have raised or escalated anything (or always, for an
/// impossible value, which is not run at all). Severity: warn, major when
/// a critical alert was held back.
fn judge<S: Clone>(
    doubt: Option<Doubt>,
    st: &mut S,
    alerts: &mut Alerts<'_>,
    at_ms: i64,
    stats: &mut EngineStats,
    run: impl Fn(&mut S, &mut Alerts<'_>),
) {
    let Some(doubt) = doubt else {
        alerts.clear(RuleId::CannotVerify, None, at_ms);
        run(st, alerts);
        return;
    };
    stats.untrusted_readings += 1;
    // An impossible value means nothing: do not even ask what it would raise.
    let mut dry_out = Vec::new();
    if !doubt.always_alert() {
        let mut dry_state = st.clone();
        let mut dry_marks = alerts.marks().to_vec();
        run(
            &mut dry_state,
            &mut Alerts::new(alerts.device_id(), &mut dry_marks, &mut dry_out),
        );
    }
    let held_back: Vec<(RuleId, Severity)> = dry_out
        .iter()
        .filter_map(|t| match t {
            Transition::Raise { key, severity, .. }
                if alerts.current(key.rule).is_none_or(|c| *severity > c) =>
            {
                Some((key.rule, *severity))
            }
            _ => None,
        })
        .collect();
    if held_back.is_empty() && !doubt.always_alert() {
        return;
    }
    let severity = if held_back.iter().any(|(_, s)| *s == Severity::Critical) {
        Severity::Major
    } else {
        Severity::Warn
    };
    alerts.raise(
        RuleId::CannotVerify,
        None,
        severity,
        0.0,
        0.0,
        at_ms,
        || {
            let would: Vec<String> = held_back
                .iter()
                .map(|(r, s)| format!("{r} ({s})"))
                .collect();
            if would.is_empty() {
                format!("cannot verify the reading: {doubt}")
            } else {
                format!(
                    "cannot verify the reading: {doubt}; it would raise {}",
                    would.join(", ")
                )
            }
        },
    );
}

#[cfg(test)]
mod tests;
