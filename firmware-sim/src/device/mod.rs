//! Device models: one pure state machine per device family.
//!
//! A model is advanced to a simulated instant and answers with the readings
//! the device records at that instant, any effect on other devices (a truck
//! arriving at a weighbridge, a collected load reaching a licensed store),
//! and the next instant it needs to be woken. Models know nothing of seq
//! numbers, encodings or MQTT; the fleet wraps them with that.

pub(crate) mod bin;
pub(crate) mod storage;
pub(crate) mod truck;
pub(crate) mod weighbridge;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::Rng;

use super::rng::SimRng;
use wastewatch_contract::pb::{envelope::Body, DestinationType, Direction, WasteCategory};
use wastewatch_contract::registry::{normalize_plate, Registry, SiteType};
use wastewatch_contract::topic::Channel;

/// One reading a device records.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reading {
    /// Topic channel it is published on.
    pub channel: Channel,
    /// The envelope body.
    pub body: Body,
    /// Simulated instant it was taken (before any clock skew), Unix ms.
    pub at_ms: i64,
}

/// A weighing another device asks a weighbridge to record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TicketReq {
    /// First weighing (gross, vehicle arrives), Unix ms.
    pub weighed_in_ms: i64,
    /// Second weighing (tare, vehicle leaves); the ticket is issued then.
    pub weighed_out_ms: i64,
    /// Plate as written on the vehicle.
    pub plate: String,
    /// Axle count (GB 1589 legal gross weight).
    pub axles: u32,
    /// Tare, kg.
    pub tare_kg: f64,
    /// Load, kg.
    pub net_kg: f64,
    /// Waste category.
    pub category: WasteCategory,
    /// Catalogue code for hazardous, medical and laboratory waste.
    pub hazardous_code: &'static str,
    /// Where the load comes from.
    pub origin_site_id: String,
    /// Transport permit, if any.
    pub permit_id: String,
    /// In (a delivery, the default) or out (a dispatch at the generator).
    pub direction: Direction,
    /// Where the load goes; empty: the weighbridge's own site.
    pub destination_site_id: String,
    /// Destination type; `None`: from the weighbridge's site type.
    pub destination_type: Option<DestinationType>,
    /// Transfer manifest number (hazardous, medical, laboratory loads).
    pub manifest_id: String,
    /// Registered unit the load comes from, if any.
    pub source_unit_id: String,
    /// One weighing against the stored tare: the ticket is issued at
    /// `weighed_in_ms` and has no second weighing.
    pub single_weighing: bool,
}

impl TicketReq {
    /// A delivery in, with no manifest, unit or stated destination.
    #[allow(clippy::too_many_arguments)]
    pub fn delivery(
        weighed_in_ms: i64,
        weighed_out_ms: i64,
        plate: String,
        axles: u32,
        tare_kg: f64,
        net_kg: f64,
        category: WasteCategory,
        hazardous_code: &'static str,
        origin_site_id: String,
        permit_id: String,
    ) -> Self {
        TicketReq {
            weighed_in_ms,
            weighed_out_ms,
            plate,
            axles,
            tare_kg,
            net_kg,
            category,
            hazardous_code,
            origin_site_id,
            permit_id,
            direction: Direction::In,
            destination_site_id: String::new(),
            destination_type: None,
            manifest_id: String::new(),
            source_unit_id: String::new(),
            single_weighing: false,
        }
    }
}

/// An effect of one device on another.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cross {
    /// A weighing at the weighbridge of `site_id` (dropped when the site has
    /// none).
    Ticket {
        /// Site whose weighbridge weighs.
        site_id: String,
        /// The weighing.
        req: TicketReq,
    },
    /// `kg` of waste delivered into the store at `site_id` at `at_ms`.
    Delivery {
        /// Receiving site.
        site_id: String,
        /// Amount, kg.
        kg: f64,
        /// When, Unix ms.
        at_ms: i64,
    },
}

/// An effect delivered to a device.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Inbound {
    /// Record this weighing (weighbridges).
    Ticket(Box<TicketReq>),
    /// Receive this much waste (storage).
    Delivery(f64),
}

/// What one step of a model produced.
#[derive(Debug, Default)]
pub(crate) struct StepOut {
    /// Readings recorded, in time order.
    pub readings: Vec<Reading>,
    /// Effects on other devices.
    pub cross: Vec<Cross>,
    /// `Some(false)` when the uplink drops (readings are buffered),
    /// `Some(true)` when it comes back.
    pub link_up: Option<bool>,
    /// True when a status heartbeat is due.
    pub heartbeat: bool,
}

/// Read-only facts about the zone the models consult.
#[derive(Debug)]
pub(crate) struct World {
    /// The zone.
    pub registry: Arc<Registry>,
    /// Site ids by type, sorted.
    pub sites_by_type: HashMap<SiteType, Vec<String>>,
    /// Sites that have a weighbridge.
    pub weighbridge_sites: HashSet<String>,
    /// Normalised plates of registered trucks and permits (independent
    /// vehicles never take one).
    pub registered_plates: HashSet<String>,
    /// GNSS error per axis, metres.
    pub gps_sigma_m: f64,
    /// Registered unit ids by the site that collects them, sorted.
    pub units_by_site: HashMap<String, Vec<String>>,
}

impl World {
    /// Builds the lookups from the registry.
    pub fn new(registry: Arc<Registry>, gps_sigma_m: f64) -> Self {
        let mut sites_by_type: HashMap<SiteType, Vec<String>> = HashMap::new();
        for s in registry.sites.values() {
            sites_by_type
                .entry(s.site_type)
                .or_default()
                .push(s.id.clone());
        }
        for v in sites_by_type.values_mut() {
            v.sort();
        }
        let weighbridge_sites = registry
            .devices
            .values()
            .filter(|d| d.weighbridge.is_some())
            .map(|d| d.site_id.clone())
            .collect();
        let mut registered_plates: HashSet<String> = registry
            .devices
            .values()
            .filter_map(|d| d.truck.as_ref())
            .map(|t| normalize_plate(&t.plate))
            .collect();
        registered_plates.extend(registry.permits_by_plate.keys().cloned());
        let mut units_by_site: HashMap<String, Vec<String>> = HashMap::new();
        for u in registry.units.values() {
            units_by_site
                .entry(u.site_id.clone())
                .or_default()
                .push(u.id.clone());
        }
        for v in units_by_site.values_mut() {
            v.sort();
        }
        World {
            units_by_site,
            registry,
            sites_by_type,
            weighbridge_sites,
            registered_plates,
            gps_sigma_m,
        }
    }

    /// Type of a site, if known.
    pub fn site_type(&self, id: &str) -> Option<SiteType> {
        self.registry.site(id).map(|s| s.site_type)
    }

    /// A random site of one of `types` (empty string when the zone has none).
    pub fn pick_site(&self, r: &mut SimRng, types: &[SiteType]) -> String {
        let all: Vec<&String> = types
            .iter()
            .filter_map(|t| self.sites_by_type.get(t))
            .flatten()
            .collect();
        if all.is_empty() {
            return String::new();
        }
        all[r.random_range(0..all.len())].clone()
    }

    /// A plate for a vehicle outside the registry: `豫A` + letter + 4
    /// digits, never one a registered truck or permit uses.
    pub fn independent_plate(&self, r: &mut SimRng) -> String {
        const LETTERS: &[u8] = b"HJKLMNPQRSTUVWXY";
        for _ in 0..64 {
            let letter = LETTERS[r.random_range(0..LETTERS.len())] as char;
            let plate = format!("豫A{letter}{:04}", r.random_range(0..10_000u32));
            if !self.registered_plates.contains(&normalize_plate(&plate)) {
                return plate;
            }
        }
        // 64 collisions in a row means the zone registered nearly every
        // plate of the pattern; fall back to a different province.
        format!("鄂A{:05}", r.random_range(0..100_000u32))
    }
}

/// Legal gross vehicle weight by axle count, kg (GB 1589-2016 table 3:
/// 18 t two axles, 25 t three, 31 t four, 43 t five, 49 t six).
pub(crate) fn legal_gross_kg(axles: u32) -> f64 {
    match axles {
        0..=2 => 18_000.0,
        3 => 25_000.0,
        4 => 31_000.0,
        5 => 43_000.0,
        _ => 49_000.0,
    }
}

/// Rounds a weight to the 20 kg verification interval of a class III truck
/// scale (GB/T 7723-2017).
pub(crate) fn scale_round(kg: f64) -> f64 {
    (kg / 20.0).round() * 20.0
}

/// Ambient air temperature in the zone, °C: a 15 °C daily mean swinging
/// ±7 °C, warmest at 15:00 local.
pub(crate) fn ambient_c(unix_ms: i64) -> f64 {
    let h = super::time::local_hour(unix_ms);
    15.0 + 7.0 * (std::f64::consts::TAU * (h - 9.0) / 24.0).sin()
}

/// °C to the contract's tenths of a degree.
pub(crate) fn deci_c(c: f64) -> i32 {
    (c * 10.0).round().clamp(-600.0, 3000.0) as i32
}

/// Rounds to one decimal, as the devices report.
pub(crate) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
