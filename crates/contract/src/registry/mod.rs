//! The device registry: the zone's sites, devices and transport permits,
//! loaded from data files and validated, then queried read-only by the
//! pipeline.
//!
//! It sits beside the flow rather than in it: `decode/` checks each message's
//! site, device and kind against it (unknown or mismatched → quarantine),
//! `rules/` reads thresholds, geofences and permit corridors from it, and the
//! KPIs map sites to destination types. The firmware simulator loads the same
//! files to know what to simulate.
//!
//! Guarantees: a [`Registry`] only exists fully valid — every id unique and
//! well-formed, every site reference resolved, every device carrying the spec
//! of its kind, every geometry inside the world with closed geofences and a
//! route segment attribute per segment. Loading reports every problem of
//! every file at once ([`RegistryErrors`]), never just the first. Parsing is
//! pure ([`Registry::from_json_strs`]); [`Registry::load_dir`] only adds
//! reading the three files. The file formats are described in
//! `zone/README.md`.

mod calendar;
mod device;
mod error;
mod geojson;
mod load;
mod permit;
mod plate;
mod site;
pub mod sparkplug;
mod unit;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub use calendar::{
    local_days_since_epoch, local_minute_of_day, parse_hhmm, CivilDate, TimeWindow, MINUTES_PER_DAY,
};
pub use device::{
    normalize_terminal_phone, BinSpec, Device, StorageSpec, TruckSpec, WeighbridgeSpec,
    SMALL_STORAGE_POINT_LIMIT_KG,
};
pub use error::{DataFile, Entry, Problem, RegistryError, RegistryErrors};
pub use permit::{Permit, RouteSegment, CHINA_STANDARD_TIME_OFFSET_MIN};
pub use plate::normalize_plate;
pub use site::{Site, SiteType};
pub use unit::{Unit, UnitKind};

use crate::geo::LatLon;

/// A map keyed by registry id. The keys come from the operator's own
/// registry files, never from devices, so a fast non-keyed hash is safe
/// here (a device can only look up, not insert, and lookups cannot make a
/// fixed table collide); every message looks its device up, and SipHash was
/// ~4 % of the hot path.
pub type IdMap<V> = HashMap<String, V, BuildHasherDefault<IdHasher>>;

/// The multiply-rotate hash of rustc's `FxHasher`, eight bytes at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher {
    hash: u64,
}

impl IdHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The validated contents of a zone directory, keyed by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    /// Sites by id: topic and ticket site ids are checked against it, and
    /// geofences answer "which site is this position in".
    pub sites: IdMap<Site>,
    /// Devices by id: the decoder's allow-list and the rules' per-device
    /// settings.
    pub devices: IdMap<Device>,
    /// Permits by id: the transport rules' routes, windows and vehicles.
    pub permits: IdMap<Permit>,
    /// Permit ids by normalised plate ([`normalize_plate`]), sorted: answers
    /// "may this vehicle carry construction waste" at a gate without scanning
    /// every permit.
    pub permits_by_plate: IdMap<Vec<String>>,
    /// Registered generator units by id (laboratories, small businesses,
    /// medical institutions): the collection-coverage KPIs count them.
    /// Empty when the zone has no `units.json`.
    pub units: IdMap<Unit>,
    /// Sparkplug B edge nodes by `"{group_id}/{edge_node_id}"` (see
    /// [`sparkplug::node_key`]), with the devices each may speak for.
    /// Empty when the zone has no `sparkplug.json`.
    pub sparkplug: IdMap<sparkplug::SparkplugNode>,
}

impl Registry {
    /// A registry with nothing in it (every lookup misses), for a deployment
    /// without a zone directory and for tests.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The device with this id.
    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.get(id)
    }

    /// The Sparkplug B edge node `edge_node_id` of group `group_id`.
    pub fn sparkplug_node(
        &self,
        group_id: &str,
        edge_node_id: &str,
    ) -> Option<&sparkplug::SparkplugNode> {
        self.sparkplug
            .get(&sparkplug::node_key(group_id, edge_node_id))
    }

    /// The site with this id.
    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.get(id)
    }

    /// The permit with this id.
    pub fn permit(&self, id: &str) -> Option<&Permit> {
        self.permits.get(id)
    }

    /// The permits listing `plate` (any written form) that are valid on the
    /// local date of `unix_ms`, sorted by id. Time windows are not applied;
    /// see [`Permit::in_time_window`].
    pub fn active_permits_for_plate(&self, plate: &str, unix_ms: i64) -> Vec<&Permit> {
        self.permits_by_plate
            .get(plate::normalized(plate).as_ref())
            .into_iter()
            .flatten()
            .filter_map(|id| self.permits.get(id))
            .filter(|p| p.is_active_at(unix_ms))
            .collect()
    }

    /// The site whose geofence contains `p`. Where geofences overlap (a
    /// collection point inside a park) the smallest site wins, being the most
    /// specific; equal areas are broken by id, so the answer is
    /// deterministic.
    pub fn site_containing(&self, p: LatLon) -> Option<&Site> {
        self.sites
            .values()
            .filter(|s| s.contains(p))
            .map(|s| (s.area_m2(), s))
            .min_by(|(a, sa), (b, sb)| a.total_cmp(b).then_with(|| sa.id.cmp(&sb.id)))
            .map(|(_, s)| s)
    }

    /// The truck whose JT/T 808 terminal has this phone number (as the
    /// terminal reports it; leading zeros do not count); at most one, as the
    /// loader rejects a number on two trucks. A linear scan: call it when a
    /// terminal registers or authenticates, not per fix.
    pub fn truck_by_terminal_phone(&self, phone: &str) -> Option<&Device> {
        let wanted = normalize_terminal_phone(phone)?;
        self.devices.values().find(|d| {
            d.truck.as_ref().is_some_and(|t| {
                t.terminal_phone
                    .as_deref()
                    .and_then(normalize_terminal_phone)
                    == Some(wanted)
            })
        })
    }

    /// The truck device fitted to the vehicle with this plate (any written
    /// form); at most one, as the loader rejects a plate on two trucks. A
    /// linear scan: call it per ticket, not per fix.
    pub fn truck_by_plate(&self, plate: &str) -> Option<&Device> {
        let wanted = plate::normalized(plate);
        self.devices.values().find(|d| {
            d.truck
                .as_ref()
                .is_some_and(|t| plate::normalized(&t.plate) == wanted)
        })
    }
}

#[cfg(test)]
mod id_map_tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn ids_of_every_length_hash_apart_and_are_found() {
        let ids: Vec<String> = (0..20_000)
            .map(|i| match i % 4 {
                0 => format!("bin-{i}"),
                1 => format!("truck-d{i:05}"),
                2 => format!("st-factory-autoparts-{i}"),
                _ => "x".repeat(i % 40 + 1) + &i.to_string(),
            })
            .collect();
        let b = BuildHasherDefault::<IdHasher>::default();
        let hashes: std::collections::HashSet<u64> =
            ids.iter().map(|id| b.hash_one(id.as_str())).collect();
        assert_eq!(hashes.len(), ids.len(), "a 64-bit collision among 20k ids");
        // Same bytes, different length, must differ ("ab" vs "ab\0").
        assert_ne!(b.hash_one("ab"), b.hash_one("ab\0"));
        let map: IdMap<usize> = ids.iter().cloned().zip(0..).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(map.get(id.as_str()), Some(&i));
        }
        assert_eq!(map.get("ghost-bin-01"), None);
    }
}
