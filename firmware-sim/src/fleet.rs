//! The fleet: every device of the zone, a time-ordered scheduler over them,
//! and the wrapper that turns a model's readings into wire messages.
//!
//! [`Fleet::next_batch`] advances simulated time to an instant and returns,
//! in order, every message published up to it. Pure: no I/O, no clock, no
//! global randomness. Each device owns a random stream derived from the seed
//! and its id, and events are processed in (time, insertion) order, so the
//! output depends only on the seed, the zone and the settings — never on how
//! time is sliced into batches.
//!
//! The wrapper gives each recorded reading the device's next `seq` (from 1,
//! plus one per reading), stamps `recorded_at_unix_ms` with the device clock
//! (simulated time, 2 h fast under `clock_skew`), encodes it as protobuf or
//! legacy JSON, and holds readings while the uplink is down
//! (`gps_dropout_burst`). A device announces itself with a BIRTH status and,
//! when it goes away (`device_offline`), with a LAST_WILL.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use prost::Message;
use rand::seq::SliceRandom;
use rand::Rng;

use super::config::{SimConfig, SimError};
use super::device::bin::{BinSim, BinTwist};
use super::device::storage::{StorageSim, StorageTwist};
use super::device::truck::{TripPlan, TruckSim, TruckTwist};
use super::device::weighbridge::WeighbridgeSim;
use super::device::{Cross, Inbound, Reading, StepOut, World};
use super::faults;
use super::rng::{self, ms_between, SimRng};
use super::scenario::Scenario;
use wastewatch_contract::json::encode_json;
use wastewatch_contract::pb::{self, envelope::Body, DeviceKind, StatusKind};
use wastewatch_contract::registry::{Device, Registry, SiteType};
use wastewatch_contract::topic::{Channel, Topic};
use wastewatch_contract::{ErrorKind, SCHEMA_VERSION};

/// The device clock offset of `clock_skew`, ms (2 h fast).
pub(crate) const CLOCK_SKEW_MS: i64 = 2 * 3_600_000;
/// Interval of the `malformed` injector, simulated ms.
pub(crate) const FAULT_INTERVAL_MS: i64 = 30_000;
/// How many recent senders the fault injector picks from.
const RECENT: usize = 256;
/// Share of messages `duplicate_redelivery` publishes twice.
pub(crate) const DUPLICATE_SHARE: f64 = 0.02;

/// One message to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct OutMsg {
    /// MQTT topic.
    pub topic: String,
    /// Payload bytes (protobuf `Envelope`, legacy JSON, or garbage).
    pub payload: Vec<u8>,
    /// True when the payload is JSON; the publisher sets the MQTT 5 content
    /// type `application/json` unless the topic already ends in `/json`.
    pub json: bool,
    /// Device the message claims to come from (the topic's device id).
    pub device_id: String,
    /// The envelope's seq (0 for garbage without an envelope).
    pub seq: u64,
    /// True when the service must quarantine this message.
    pub expect_quarantine: bool,
    /// The quarantine reason the service must give, when quarantined.
    pub expect_reason: Option<ErrorKind>,
    /// Device family from the topic.
    pub kind: DeviceKind,
    /// Simulated instant of publication, Unix ms.
    pub sim_time_ms: i64,
    /// The envelope's `recorded_at_unix_ms` (device clock; 0 for garbage).
    pub recorded_at_ms: i64,
    /// True for the second copy of a `duplicate_redelivery` message.
    pub duplicate: bool,
    /// True for a LAST_WILL status (with per-device connections the
    /// publisher drops the device's connection instead of publishing it, and
    /// the broker publishes the registered will).
    pub last_will: bool,
}

/// Which device a scenario took, and how it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The scenario.
    pub scenario: Scenario,
    /// The device it perturbs ("" for fleet-wide scenarios).
    pub device_id: String,
    /// What to expect and when.
    pub detail: String,
}

/// A device model.
#[derive(Debug)]
pub(crate) enum Model {
    /// Smart bin.
    Bin(BinSim),
    /// Storage point.
    Storage(StorageSim),
    /// Truck terminal.
    Truck(Box<TruckSim>),
    /// Weighbridge.
    Weighbridge(WeighbridgeSim),
}

impl Model {
    fn battery_mv(&self) -> u32 {
        match self {
            Model::Bin(b) => b.battery_mv(),
            Model::Storage(s) => s.battery_mv(),
            Model::Truck(t) => t.battery_mv(),
            Model::Weighbridge(_) => 0,
        }
    }
}

/// One device with its transport state.
#[derive(Debug)]
pub(crate) struct SimDevice {
    pub id: String,
    pub site_id: String,
    pub kind: DeviceKind,
    pub json: bool,
    json_suffix: bool,
    pub seq: u64,
    rng: SimRng,
    pub model: Model,
    born: bool,
    birth_ms: i64,
    boot_ms: i64,
    firmware: &'static str,
    signal_dbm: i32,
    pub skew_ms: i64,
    pub offline_at_ms: Option<i64>,
    gone: bool,
    link_down: bool,
    held: Vec<OutMsg>,
    /// The device times of the latest readings: a device never stamps two
    /// readings with the same millisecond (the service keys a point by
    /// device, measurement and time, so the second would overwrite the
    /// first).
    recent_stamps: std::collections::VecDeque<i64>,
    inbox: Vec<(i64, Inbound)>,
    will: Option<OutMsg>,
    model_due_ms: i64,
    wake_gen: u64,
    /// A scenario perturbs this device; the fault injector leaves it alone
    /// so the scenario's evidence stays clean.
    twisted: bool,
}

/// What the scheduler does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Device,
    Fault,
    Redelivery,
}

/// The simulated fleet.
#[derive(Debug)]
pub struct Fleet {
    pub(crate) devices: Vec<SimDevice>,
    index: HashMap<String, usize>,
    pub(crate) world: World,
    heap: BinaryHeap<Reverse<(i64, u64, usize, u64)>>,
    tie: u64,
    rng: SimRng,
    redeliveries: BTreeMap<(i64, u64), OutMsg>,
    fault_next_ms: Option<i64>,
    fault_cycle: usize,
    ghost_seq: [u64; 5],
    /// Devices of the last valid messages (at most [`RECENT`]), so faults
    /// follow the traffic.
    recent: std::collections::VecDeque<usize>,
    duplicates: bool,
    now_ms: i64,
    assignments: Vec<Assignment>,
    warnings: Vec<String>,
    wb_by_site: HashMap<String, usize>,
    store_by_site: HashMap<String, usize>,
}

/// Firmware version each family reports in its status messages.
fn firmware(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Weighbridge => "3.1.0",
        DeviceKind::Bin => "2.4.1",
        DeviceKind::Storage => "1.8.3",
        DeviceKind::Truck => "5.2.7",
        DeviceKind::Unspecified => "0.0.0",
    }
}

/// Scenario twists chosen for one device.
#[derive(Clone, Copy, Debug, Default)]
struct Twists {
    bin: Option<BinTwist>,
    storage: Option<StorageTwist>,
    truck: Option<TruckTwist>,
    wb_overload: bool,
    offline: bool,
    skew: bool,
}

impl Twists {
    fn taken(&self) -> bool {
        self.bin.is_some()
            || self.storage.is_some()
            || self.truck.is_some()
            || self.wb_overload
            || self.offline
            || self.skew
    }
}

impl Fleet {
    /// Builds the fleet of every device in `registry`.
    pub fn new(registry: &Registry, cfg: &SimConfig) -> Result<Fleet, SimError> {
        cfg.validate()?;
        if registry.devices.is_empty() {
            return Err(SimError::EmptyZone);
        }
        if cfg.per_device_connections
            && registry.devices.len() > SimConfig::MAX_PER_DEVICE_CONNECTIONS
        {
            return Err(SimError::TooManyConnections {
                devices: registry.devices.len(),
                max: SimConfig::MAX_PER_DEVICE_CONNECTIONS,
            });
        }
        let start = cfg.start_unix_ms;
        let registry = Arc::new(registry.clone());
        let world = World::new(registry.clone(), cfg.effective_gps_sigma_m());
        let mut devs: Vec<&Device> = registry.devices.values().collect();
        devs.sort_by(|a, b| a.id.cmp(&b.id));

        // Per-device streams and trip plans first: the assignment needs the
        // plans, and drawing them first keeps every stream's use fixed.
        let mut rngs: Vec<SimRng> = devs.iter().map(|d| rng::stream(cfg.seed, &d.id)).collect();
        let json: Vec<(bool, bool)> = rngs
            .iter_mut()
            .map(|r| {
                let j = r.random::<f64>() < cfg.json_share;
                (j, r.random_bool(0.5))
            })
            .collect();
        let shared: HashMap<&str, Arc<wastewatch_contract::registry::Permit>> = registry
            .permits
            .iter()
            .map(|(id, p)| (id.as_str(), Arc::new(p.clone())))
            .collect();
        let plans: Vec<Option<TripPlan>> = devs
            .iter()
            .zip(rngs.iter_mut())
            .map(|(d, r)| {
                let truck = d.truck.as_ref()?;
                let permit = registry
                    .active_permits_for_plate(&truck.plate, start)
                    .into_iter()
                    .next()?;
                let permit = shared.get(permit.id.as_str())?.clone();
                Some(TripPlan::new(&world, permit, r))
            })
            .collect();

        let scenarios = cfg.normalised_scenarios();
        let (twists, mut assignments) = assign(&scenarios, &devs, &plans, &world);
        let mut warnings = Vec::new();
        if scenarios.contains(&Scenario::GpsJitter) {
            assignments.push(Assignment {
                scenario: Scenario::GpsJitter,
                device_id: String::new(),
                detail: format!(
                    "all trucks: GNSS error σ = {} m per axis; no alert",
                    world.gps_sigma_m
                ),
            });
        }
        for (sc, what) in [
            (
                Scenario::Malformed,
                "one bad message every 30 s of simulated time, cycling through the five faults",
            ),
            (
                Scenario::DuplicateRedelivery,
                "about 2 % of messages published again 1-30 s later with the same (device, seq)",
            ),
        ] {
            if scenarios.contains(&sc) {
                assignments.push(Assignment {
                    scenario: sc,
                    device_id: String::new(),
                    detail: what.to_owned(),
                });
            }
        }

        let mut devices = Vec::with_capacity(devs.len());
        for (((d, mut r), plan), ((json, json_suffix), tw)) in devs
            .iter()
            .zip(rngs)
            .zip(plans)
            .zip(json.into_iter().zip(twists))
        {
            let birth_ms = start + ms_between(&mut r, 0.0, 5.0);
            let model_start = birth_ms + 1000;
            let model = match d.kind {
                DeviceKind::Bin => {
                    let site_type = world.site_type(&d.site_id).unwrap_or(SiteType::PublicArea);
                    let medical = d.bin.as_ref().is_some_and(|b| b.medical);
                    Model::Bin(BinSim::new(
                        &mut r,
                        site_type,
                        medical,
                        d.expected_interval_s,
                        model_start,
                        tw.bin.unwrap_or(BinTwist::None),
                    ))
                }
                DeviceKind::Storage => {
                    let site_type = world.site_type(&d.site_id).unwrap_or(SiteType::Factory);
                    let (cap, small, medical) =
                        d.storage.as_ref().map_or((3000.0, true, false), |s| {
                            (s.capacity_kg, s.small_storage_point, s.medical)
                        });
                    Model::Storage(StorageSim::new(
                        &mut r,
                        &d.site_id,
                        site_type,
                        cap,
                        small,
                        medical,
                        d.expected_interval_s,
                        model_start,
                        tw.storage.unwrap_or(StorageTwist::None),
                    ))
                }
                DeviceKind::Truck => {
                    let (plate, tare, axles) =
                        d.truck.as_ref().map_or((String::new(), 12_000.0, 3), |t| {
                            (
                                t.plate.clone(),
                                t.registered_tare_kg,
                                u32::from(t.axle_count),
                            )
                        });
                    Model::Truck(Box::new(TruckSim::new(
                        &mut r,
                        &world,
                        &plate,
                        tare,
                        axles,
                        &d.site_id,
                        plan,
                        d.expected_interval_s,
                        model_start,
                        tw.truck.unwrap_or(TruckTwist::None),
                    )))
                }
                DeviceKind::Weighbridge | DeviceKind::Unspecified => {
                    Model::Weighbridge(WeighbridgeSim::new(
                        &mut r,
                        &world,
                        &d.id,
                        &d.site_id,
                        d.expected_interval_s,
                        model_start,
                        tw.wb_overload,
                    ))
                }
            };
            let offline_at_ms = tw.offline.then(|| {
                let iv = i64::from(d.expected_interval_s.max(1)) * 1000;
                model_start
                    + if d.kind == DeviceKind::Storage {
                        3 * iv
                    } else {
                        iv + iv / 5
                    }
                    + 1000
            });
            let boot_ms = birth_ms - ms_between(&mut r, 60.0, 30.0 * 86_400.0);
            let signal_dbm = r.random_range(-95..=-55);
            devices.push(SimDevice {
                id: d.id.clone(),
                site_id: d.site_id.clone(),
                kind: d.kind,
                json,
                json_suffix,
                seq: 0,
                rng: r,
                model,
                born: false,
                birth_ms,
                boot_ms,
                firmware: firmware(d.kind),
                signal_dbm,
                skew_ms: if tw.skew { CLOCK_SKEW_MS } else { 0 },
                offline_at_ms,
                gone: false,
                link_down: false,
                held: Vec::new(),
                recent_stamps: std::collections::VecDeque::new(),
                inbox: Vec::new(),
                will: None,
                model_due_ms: model_start,
                wake_gen: 0,
                twisted: tw.taken(),
            });
        }

        let index: HashMap<String, usize> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        let mut wb_by_site = HashMap::new();
        let mut store_by_site = HashMap::new();
        for (i, d) in devices.iter().enumerate() {
            match d.kind {
                DeviceKind::Weighbridge => {
                    wb_by_site.entry(d.site_id.clone()).or_insert(i);
                }
                DeviceKind::Storage
                    if world.site_type(&d.site_id) == Some(SiteType::LicensedHazardousFacility) =>
                {
                    store_by_site.entry(d.site_id.clone()).or_insert(i);
                }
                _ => {}
            }
        }
        for a in &assignments {
            if a.device_id.is_empty()
                && !matches!(
                    a.scenario,
                    Scenario::GpsJitter | Scenario::Malformed | Scenario::DuplicateRedelivery
                )
            {
                warnings.push(format!(
                    "scenario {} found no suitable device: {}",
                    a.scenario, a.detail
                ));
            }
        }
        let mut fleet = Fleet {
            devices,
            index,
            world,
            heap: BinaryHeap::new(),
            tie: 0,
            rng: rng::stream(cfg.seed, "fleet"),
            redeliveries: BTreeMap::new(),
            fault_next_ms: scenarios
                .contains(&Scenario::Malformed)
                .then_some(start + 20_000),
            fault_cycle: 0,
            ghost_seq: [0; 5],
            recent: std::collections::VecDeque::with_capacity(RECENT),
            duplicates: scenarios.contains(&Scenario::DuplicateRedelivery),
            now_ms: start,
            assignments,
            warnings,
            wb_by_site,
            store_by_site,
        };
        for i in 0..fleet.devices.len() {
            let t = fleet.devices[i].birth_ms;
            fleet.schedule(i, t);
        }
        Ok(fleet)
    }

    /// Number of devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Device ids in fleet order (sorted); connection sharding uses it.
    pub fn device_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.devices.iter().map(|d| d.id.as_str())
    }

    /// Fleet position of a device.
    pub fn device_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Kind of the device at `index`.
    pub fn device_kind(&self, index: usize) -> Option<DeviceKind> {
        self.devices.get(index).map(|d| d.kind)
    }

    /// True when the device at `index` speaks JSON.
    pub fn device_is_json(&self, index: usize) -> bool {
        self.devices.get(index).is_some_and(|d| d.json)
    }

    /// Which devices the scenarios took.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// Scenarios that could not find a device, and similar notes.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Simulated time reached so far, Unix ms.
    pub fn sim_now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Builds the LAST_WILL of a device for registration as its MQTT will
    /// (per-device connections), reserving a seq for it. The same message
    /// comes out of [`Fleet::next_batch`] if the device goes offline; if it
    /// never does, that seq is never seen by the service.
    pub fn register_will(&mut self, device_id: &str) -> Option<OutMsg> {
        let i = self.device_index(device_id)?;
        let now = self.now_ms;
        let dev = &mut self.devices[i];
        if let Some(w) = &dev.will {
            return Some(w.clone());
        }
        let body = status_body(dev, StatusKind::LastWill, now);
        let mut msg = encode(dev, Channel::Status, body, now, now);
        msg.last_will = true;
        dev.will = Some(msg.clone());
        Some(msg)
    }

    /// The registered will of a device, if any.
    pub fn registered_will(&self, device_id: &str) -> Option<&OutMsg> {
        self.device_index(device_id)
            .and_then(|i| self.devices[i].will.as_ref())
    }

    /// Advances simulated time to `sim_now_ms` and returns every message
    /// published up to it, in publication order. Time never goes back: an
    /// earlier instant returns nothing.
    pub fn next_batch(&mut self, sim_now_ms: i64) -> Vec<OutMsg> {
        let mut out = Vec::new();
        loop {
            let dev_t = self.heap.peek().map(|Reverse((t, ..))| *t);
            let red_t = self.redeliveries.keys().next().map(|(t, _)| *t);
            let next = [
                (dev_t, Source::Device),
                (self.fault_next_ms, Source::Fault),
                (red_t, Source::Redelivery),
            ]
            .into_iter()
            .filter_map(|(t, s)| t.map(|t| (t, s)))
            .min();
            let Some((t, source)) = next.filter(|(t, _)| *t <= sim_now_ms) else {
                break;
            };
            self.now_ms = self.now_ms.max(t);
            match source {
                Source::Device => {
                    if let Some(Reverse((t, _, i, gen))) = self.heap.pop() {
                        if self.devices.get(i).is_some_and(|d| d.wake_gen == gen) {
                            self.step_device(i, t, &mut out);
                        }
                    }
                }
                Source::Fault => {
                    self.inject_fault(t, &mut out);
                    self.fault_next_ms = Some(t + FAULT_INTERVAL_MS);
                }
                Source::Redelivery => {
                    if let Some((_, mut m)) = self.redeliveries.pop_first() {
                        m.duplicate = true;
                        m.sim_time_ms = t;
                        out.push(m);
                    }
                }
            }
        }
        self.now_ms = self.now_ms.max(sim_now_ms);
        out
    }

    fn schedule(&mut self, i: usize, t: i64) {
        self.tie += 1;
        let dev = &mut self.devices[i];
        dev.wake_gen += 1;
        self.heap.push(Reverse((t, self.tie, i, dev.wake_gen)));
    }

    /// Publishes `m` (and maybe schedules its redelivery).
    fn emit(&mut self, m: OutMsg, out: &mut Vec<OutMsg>) {
        if !m.expect_quarantine {
            if let Some(i) = self.device_index(&m.device_id) {
                if self.recent.len() == RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back(i);
            }
        }
        if self.duplicates
            && !m.expect_quarantine
            && !m.last_will
            && self.rng.random_bool(DUPLICATE_SHARE)
        {
            let at = m.sim_time_ms + ms_between(&mut self.rng, 1.0, 30.0);
            self.tie += 1;
            self.redeliveries.insert((at, self.tie), m.clone());
        }
        out.push(m);
    }

    fn step_device(&mut self, i: usize, now: i64, out: &mut Vec<OutMsg>) {
        let mut msgs = Vec::new();
        let mut cross = Vec::new();
        {
            let world = &self.world;
            let dev = &mut self.devices[i];
            if dev.gone {
                return;
            }
            if !dev.born && now >= dev.birth_ms {
                dev.born = true;
                let body = status_body(dev, StatusKind::Birth, now);
                msgs.push(encode(dev, Channel::Status, body, now, now));
            }
            if dev.offline_at_ms.is_some_and(|t| now >= t) {
                dev.gone = true;
                let will = match dev.will.take() {
                    Some(w) => OutMsg {
                        sim_time_ms: now,
                        ..w
                    },
                    None => {
                        let body = status_body(dev, StatusKind::LastWill, now);
                        let mut m = encode(dev, Channel::Status, body, now, now);
                        m.last_will = true;
                        m
                    }
                };
                msgs.push(will);
            } else {
                let mut step = StepOut::default();
                let due: Vec<Inbound> = {
                    let split = dev.inbox.partition_point(|(t, _)| *t <= now);
                    dev.inbox.drain(..split).map(|(_, e)| e).collect()
                };
                for ev in due {
                    match (&mut dev.model, ev) {
                        (Model::Weighbridge(w), Inbound::Ticket(req)) => {
                            let reading = w.ticket(&mut dev.rng, &req);
                            step.readings.push(reading);
                        }
                        (Model::Storage(s), Inbound::Delivery(kg)) => s.deliver(now, kg),
                        _ => {}
                    }
                }
                if now >= dev.model_due_ms {
                    dev.model_due_ms = match &mut dev.model {
                        Model::Bin(b) => b.advance(&mut dev.rng, now, &mut step),
                        Model::Storage(s) => s.advance(&mut dev.rng, world, now, &mut step),
                        Model::Truck(t) => t.advance(&mut dev.rng, world, now, &mut step),
                        Model::Weighbridge(w) => w.advance(&mut dev.rng, world, now, &mut step),
                    };
                }
                if step.heartbeat {
                    let body = status_body(dev, StatusKind::Heartbeat, now);
                    step.readings.push(Reading {
                        channel: Channel::Status,
                        body,
                        at_ms: now,
                    });
                }
                if step.link_up == Some(false) {
                    dev.link_down = true;
                }
                let mut fresh: Vec<OutMsg> = step
                    .readings
                    .into_iter()
                    .map(|rd| encode(dev, rd.channel, rd.body, rd.at_ms, now))
                    .collect();
                if dev.link_down {
                    dev.held.append(&mut fresh);
                }
                if step.link_up == Some(true) && dev.link_down {
                    dev.link_down = false;
                    // Back online: the live fix first, then the buffer in
                    // the order the terminal's store happens to give it.
                    let mut held = std::mem::take(&mut dev.held);
                    let live = held.pop();
                    held.shuffle(&mut dev.rng);
                    for m in &mut held {
                        m.sim_time_ms = now;
                    }
                    fresh.extend(live);
                    fresh.extend(held);
                }
                msgs.extend(fresh);
                cross = step.cross;
            }
        }
        for m in msgs {
            self.emit(m, out);
        }
        for c in cross {
            self.route(c);
        }
        let dev = &self.devices[i];
        if !dev.gone {
            let mut next = dev.model_due_ms;
            if !dev.born {
                next = next.min(dev.birth_ms);
            }
            if let Some((t, _)) = dev.inbox.first() {
                next = next.min(*t);
            }
            if let Some(t) = dev.offline_at_ms {
                next = next.min(t);
            }
            self.schedule(i, next.max(now + 1));
        }
    }

    /// Delivers an effect to the device it concerns.
    fn route(&mut self, c: Cross) {
        let (target, at, ev) = match c {
            Cross::Ticket { site_id, req } => {
                let Some(&i) = self.wb_by_site.get(&site_id) else {
                    return;
                };
                (i, req.weighed_out_ms, Inbound::Ticket(Box::new(req)))
            }
            Cross::Delivery { site_id, kg, at_ms } => {
                let Some(&i) = self.store_by_site.get(&site_id) else {
                    return;
                };
                (i, at_ms, Inbound::Delivery(kg))
            }
        };
        let at = at.max(self.now_ms);
        let dev = &mut self.devices[target];
        if dev.gone {
            return;
        }
        let pos = dev.inbox.partition_point(|(t, _)| *t <= at);
        dev.inbox.insert(pos, (at, ev));
        // Wake the target then too (an earlier wake stays valid: the
        // target re-schedules itself after every step).
        let earliest = dev.inbox.first().map_or(at, |(t, _)| *t);
        if earliest == at {
            self.tie += 1;
            dev.wake_gen += 1;
            let next = at
                .min(dev.model_due_ms)
                .min(if dev.born { i64::MAX } else { dev.birth_ms });
            self.heap
                .push(Reverse((next, self.tie, target, dev.wake_gen)));
        }
    }

    /// Publishes the next fault of the `malformed` cycle.
    fn inject_fault(&mut self, now: i64, out: &mut Vec<OutMsg>) {
        let kind = faults::CYCLE[self.fault_cycle % faults::CYCLE.len()];
        self.fault_cycle += 1;
        let eligible = |d: &SimDevice| {
            let ok_kind = kind != ErrorKind::NegativeWeight || d.kind != DeviceKind::Bin;
            d.born && !d.gone && !d.link_down && !d.twisted && ok_kind
        };
        // One of the devices that spoke recently, so faults follow the
        // traffic (a truck reporting every 5 s breaks more often than an
        // hourly bin).
        let recent: Vec<usize> = self
            .recent
            .iter()
            .copied()
            .filter(|&i| eligible(&self.devices[i]))
            .collect();
        let pick = (!recent.is_empty()).then(|| recent[self.rng.random_range(0..recent.len())]);
        let i = match pick {
            Some(i) => i,
            None => {
                let candidates: Vec<usize> = (0..self.devices.len())
                    .filter(|&i| eligible(&self.devices[i]))
                    .collect();
                if candidates.is_empty() {
                    return;
                }
                candidates[self.rng.random_range(0..candidates.len())]
            }
        };
        let other = if self.devices.len() > 1 {
            let j = self.rng.random_range(0..self.devices.len() - 1);
            Some(if j >= i { j + 1 } else { j })
        } else {
            None
        };
        let at = self
            .world
            .registry
            .site(&self.devices[i].site_id)
            .map_or(wastewatch_contract::geo::LatLon::new(34.7, 113.7), |s| {
                s.centre
            });
        let dev = &mut self.devices[i];
        let Some(base) = faults::plausible_body(dev.kind, at, now) else {
            return;
        };
        let msg = match kind {
            ErrorKind::MalformedProtobuf => {
                let n = dev.rng.random_range(16..64);
                let noise: Vec<u8> = (0..n).map(|_| dev.rng.random()).collect();
                OutMsg {
                    topic: Topic::format(
                        &dev.site_id,
                        dev.kind,
                        &dev.id,
                        Channel::Telemetry,
                        false,
                    ),
                    payload: faults::garbage(&noise),
                    json: false,
                    device_id: dev.id.clone(),
                    seq: 0,
                    expect_quarantine: true,
                    expect_reason: Some(kind),
                    kind: dev.kind,
                    sim_time_ms: now,
                    recorded_at_ms: 0,
                    duplicate: false,
                    last_will: false,
                }
            }
            ErrorKind::NonFiniteValue => {
                let (json, suffix) = (dev.json, dev.json_suffix);
                // JSON has no NaN (serde writes null, a different fault),
                // so this one always goes as protobuf.
                dev.json = false;
                dev.json_suffix = false;
                let m = encode(dev, Channel::Telemetry, faults::with_nan(base), now, now);
                dev.json = json;
                dev.json_suffix = suffix;
                m
            }
            ErrorKind::NegativeWeight => {
                let Some(body) = faults::with_negative_weight(base) else {
                    return;
                };
                encode(dev, Channel::Telemetry, body, now, now)
            }
            ErrorKind::IdMismatch => {
                let body = status_body(dev, StatusKind::Heartbeat, now);
                let mut m = encode(dev, Channel::Status, body, now, now);
                // Re-encode with another device's ids in the payload.
                let (oid, osite) = match other {
                    Some(j) => (self.devices[j].id.clone(), self.devices[j].site_id.clone()),
                    None => (
                        format!("{}-x", self.devices[i].id),
                        self.devices[i].site_id.clone(),
                    ),
                };
                let dev = &self.devices[i];
                let env = pb::Envelope {
                    site_id: osite,
                    device_id: oid,
                    device_kind: dev.kind as i32,
                    seq: m.seq,
                    recorded_at_unix_ms: m.recorded_at_ms,
                    schema_version: SCHEMA_VERSION,
                    body: Some(status_body(dev, StatusKind::Heartbeat, now)),
                };
                m.payload = if m.json {
                    encode_json(&env).into_bytes()
                } else {
                    env.encode_to_vec()
                };
                m
            }
            _ => {
                // Unknown device: an id nobody registered (one per kind),
                // at a real site.
                let dev = &self.devices[i];
                let k = (dev.kind as i32).clamp(0, 4) as usize;
                self.ghost_seq[k] += 1;
                let seq = self.ghost_seq[k];
                let ghost = format!(
                    "ghost-{}-01",
                    wastewatch_contract::topic::kind_segment(dev.kind)
                );
                let env = pb::Envelope {
                    site_id: dev.site_id.clone(),
                    device_id: ghost.clone(),
                    device_kind: dev.kind as i32,
                    seq,
                    recorded_at_unix_ms: now,
                    schema_version: SCHEMA_VERSION,
                    body: Some(base),
                };
                OutMsg {
                    topic: Topic::format(&dev.site_id, dev.kind, &ghost, Channel::Telemetry, false),
                    payload: env.encode_to_vec(),
                    json: false,
                    device_id: ghost,
                    seq,
                    expect_quarantine: true,
                    expect_reason: Some(kind),
                    kind: dev.kind,
                    sim_time_ms: now,
                    recorded_at_ms: now,
                    duplicate: false,
                    last_will: false,
                }
            }
        };
        out.push(OutMsg {
            expect_quarantine: true,
            expect_reason: Some(kind),
            ..msg
        });
    }
}

/// A status body of `kind` for `dev` at `now`.
fn status_body(dev: &SimDevice, kind: StatusKind, now: i64) -> Body {
    Body::DeviceStatus(pb::DeviceStatus {
        kind: kind as i32,
        firmware_version: dev.firmware.to_owned(),
        battery_mv: dev.model.battery_mv(),
        signal_dbm: Some(dev.signal_dbm),
        uptime_s: ((now - dev.boot_ms).max(0) / 1000) as u64,
    })
}

/// How many of a device's latest device times [`encode`] keeps distinct.
const RECENT_STAMPS: usize = 64;

/// Gives a reading the device's next seq and a device time none of its
/// latest readings has, and encodes it.
fn encode(dev: &mut SimDevice, channel: Channel, body: Body, at_ms: i64, now: i64) -> OutMsg {
    dev.seq += 1;
    let mut recorded = at_ms + dev.skew_ms;
    // Earlier, never later: a reading is never stamped ahead of the clock.
    while dev.recent_stamps.contains(&recorded) {
        recorded -= 1;
    }
    if dev.recent_stamps.len() == RECENT_STAMPS {
        dev.recent_stamps.pop_front();
    }
    dev.recent_stamps.push_back(recorded);
    let env = pb::Envelope {
        site_id: dev.site_id.clone(),
        device_id: dev.id.clone(),
        device_kind: dev.kind as i32,
        seq: dev.seq,
        recorded_at_unix_ms: recorded,
        schema_version: SCHEMA_VERSION,
        body: Some(body),
    };
    let payload = if dev.json {
        encode_json(&env).into_bytes()
    } else {
        env.encode_to_vec()
    };
    OutMsg {
        topic: Topic::format(
            &dev.site_id,
            dev.kind,
            &dev.id,
            channel,
            dev.json && dev.json_suffix,
        ),
        payload,
        json: dev.json,
        device_id: dev.id.clone(),
        seq: dev.seq,
        expect_quarantine: false,
        expect_reason: None,
        kind: dev.kind,
        sim_time_ms: now,
        recorded_at_ms: recorded,
        duplicate: false,
        last_will: false,
    }
}

/// Chooses the devices each scenario perturbs: in scenario order, the first
/// suitable device by id that no earlier scenario took.
fn assign(
    scenarios: &[Scenario],
    devs: &[&Device],
    plans: &[Option<TripPlan>],
    world: &World,
) -> (Vec<Twists>, Vec<Assignment>) {
    let mut tw = vec![Twists::default(); devs.len()];
    let mut out = Vec::new();
    let window = |p: &TripPlan| {
        p.permit
            .time_windows
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for &sc in scenarios {
        let mut take = |tw: &mut Vec<Twists>,
                        pred: &dyn Fn(usize) -> bool,
                        set: &dyn Fn(&mut Twists),
                        detail: &dyn Fn(usize) -> String,
                        none: &str| {
            match (0..devs.len()).find(|&i| !tw[i].taken() && pred(i)) {
                Some(i) => {
                    set(&mut tw[i]);
                    out.push(Assignment {
                        scenario: sc,
                        device_id: devs[i].id.clone(),
                        detail: detail(i),
                    });
                }
                None => out.push(Assignment {
                    scenario: sc,
                    device_id: String::new(),
                    detail: none.to_owned(),
                }),
            }
        };
        let storage = |i: usize| devs[i].storage.as_ref();
        let has_plan = |i: usize| plans[i].is_some();
        match sc {
            Scenario::StorageOverfill => take(
                &mut tw,
                &|i| storage(i).is_some_and(|s| s.small_storage_point && !s.medical),
                &|t| t.storage = Some(StorageTwist::Overfill),
                &|_| {
                    "stock starts at 78 % of the 3 t limit and gains ~200 kg/h: over 80 % within ~20 min, over 100 % within ~4 h; never collected".to_owned()
                },
                "no small, non-medical storage point in the zone",
            ),
            Scenario::StorageOverdue => {
                take(
                    &mut tw,
                    &|i| storage(i).is_some_and(|s| !s.medical),
                    &|t| t.storage = Some(StorageTwist::OverdueContainers),
                    &|_| {
                        "oldest container 364 d 22 h at the start (past 335 d), 365 d ~2 h later; never collected".to_owned()
                    },
                    "no non-medical storage in the zone",
                );
                take(
                    &mut tw,
                    &|i| storage(i).is_some_and(|s| s.medical),
                    &|t| t.storage = Some(StorageTwist::OverdueMedicalLot),
                    &|_| {
                        "oldest medical lot 46 h at the start (past 36 h), 48 h ~2 h later; never collected".to_owned()
                    },
                    "no medical store in the zone (container age only)",
                );
            }
            Scenario::RouteDeviation => take(
                &mut tw,
                &|i| {
                    plans[i]
                        .as_ref()
                        .is_some_and(|p| p.longest_segment().1 >= 1000.0)
                },
                &|t| t.truck = Some(TruckTwist::RouteDeviation),
                &|i| {
                    format!("~300 m detour for ~3 min on every loaded trip; trips run in the permit window {}", plans[i].as_ref().map(window).unwrap_or_default())
                },
                "no truck with an active permit whose route has a segment of 1 km or more",
            ),
            Scenario::IllegalDump => take(
                &mut tw,
                &has_plan,
                &|t| t.truck = Some(TruckTwist::IllegalDump),
                &|i| {
                    format!("dumps halfway on every loaded trip (9 min stop, body lifted 3 min); trips run in the permit window {}", plans[i].as_ref().map(window).unwrap_or_default())
                },
                "no truck with an active permit",
            ),
            Scenario::TimeWindow => take(
                &mut tw,
                &|i| {
                    plans[i]
                        .as_ref()
                        .is_some_and(|p| p.window_minutes_per_day() <= 20 * 60)
                },
                &|t| t.truck = Some(TruckTwist::TimeWindow),
                &|i| {
                    format!(
                        "drives loaded only outside the permit window {}",
                        plans[i].as_ref().map(window).unwrap_or_default()
                    )
                },
                "no truck whose permit window leaves 4 h or more of the day closed",
            ),
            Scenario::GpsDropoutBurst => take(
                &mut tw,
                &has_plan,
                &|t| t.truck = Some(TruckTwist::GpsDropout),
                &|i| {
                    format!("uplink lost 3 min at 30 % of every loaded trip; buffered fixes arrive late, shuffled; trips run in the permit window {}", plans[i].as_ref().map(window).unwrap_or_default())
                },
                "no truck with an active permit",
            ),
            Scenario::Overload => {
                let found = (0..devs.len()).any(|i| {
                    !tw[i].taken()
                        && plans[i]
                            .as_ref()
                            .is_some_and(|p| world.weighbridge_sites.contains(&p.dest_site_id))
                });
                if found {
                    take(
                        &mut tw,
                        &|i| {
                            plans[i]
                                .as_ref()
                                .is_some_and(|p| world.weighbridge_sites.contains(&p.dest_site_id))
                        },
                        &|t| t.truck = Some(TruckTwist::Overload),
                        &|i| {
                            format!(
                                "loaded 2.5-5 t above the GB 1589 limit; weighed at {}",
                                plans[i]
                                    .as_ref()
                                    .map(|p| p.dest_site_id.as_str())
                                    .unwrap_or_default()
                            )
                        },
                        "",
                    );
                } else {
                    take(
                        &mut tw,
                        &|i| devs[i].kind == DeviceKind::Weighbridge,
                        &|t| t.wb_overload = true,
                        &|_| {
                            "no fleet truck delivers to a weighbridge: one overloaded independent vehicle per hour instead".to_owned()
                        },
                        "no weighbridge and no truck delivering to one",
                    );
                }
            }
            Scenario::BinFire => take(
                &mut tw,
                &|i| devs[i].bin.as_ref().is_some_and(|b| !b.medical),
                &|t| t.bin = Some(BinTwist::Fire),
                &|_| {
                    "ignites 10-30 min after the start: +2.5 °C/min, fire flag from 55 °C, reports every 2 min".to_owned()
                },
                "no non-medical bin",
            ),
            Scenario::BinFull => {
                // A general bin if there is one (80 % threshold), else a
                // medical one (75 %).
                let general = (0..devs.len())
                    .any(|i| !tw[i].taken() && devs[i].bin.as_ref().is_some_and(|b| !b.medical));
                take(
                    &mut tw,
                    &|i| devs[i].bin.as_ref().is_some_and(|b| !general || !b.medical),
                    &|t| t.bin = Some(BinTwist::Full),
                    &|i| {
                        let th = if devs[i].bin.as_ref().is_some_and(|b| b.medical) {
                            75
                        } else {
                            80
                        };
                        format!("65 % at the start, +8 %/h, never emptied: {th} % after ~{} h, 95 % after ~4 h", if th == 75 { 1 } else { 2 })
                    },
                    "no bin",
                )
            }
            Scenario::DeviceOffline => {
                take(
                    &mut tw,
                    &|i| devs[i].kind == DeviceKind::Storage,
                    &|t| t.offline = true,
                    &|i| {
                        format!(
                            "LAST_WILL after 3 reports (~{} s), then silent",
                            3 * devs[i].expected_interval_s
                        )
                    },
                    "no storage point",
                );
                take(
                    &mut tw,
                    &|i| devs[i].kind == DeviceKind::Bin,
                    &|t| t.offline = true,
                    &|i| {
                        format!(
                            "LAST_WILL after ~{} s, then silent",
                            devs[i].expected_interval_s + devs[i].expected_interval_s / 5
                        )
                    },
                    "no bin",
                );
            }
            Scenario::ClockSkew => {
                take(
                    &mut tw,
                    &|i| devs[i].kind == DeviceKind::Storage,
                    &|t| t.skew = true,
                    &|_| {
                        "device clock 2 h fast: the service re-stamps (clock_check future_restamped)".to_owned()
                    },
                    "no storage point",
                );
                take(
                    &mut tw,
                    &has_plan,
                    &|t| t.skew = true,
                    &|_| {
                        "device clock 2 h fast: the service re-stamps (clock_check future_restamped)".to_owned()
                    },
                    "no truck with an active permit",
                );
            }
            Scenario::Normal
            | Scenario::GpsJitter
            | Scenario::Malformed
            | Scenario::DuplicateRedelivery => {}
        }
    }
    (tw, out)
}
