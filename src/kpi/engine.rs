//! The pure KPI core: records and the registry in, KPI values per period
//! and scope out. No I/O, no wall clock: time is the records' event time.
//!
//! Every record is turned into *facts*: an amount added to the sums of one
//! KPI at one event time for one site (and always for the zone). Facts of a
//! single record (a ticket's tonnage) are added once; facts that depend on
//! other records (a manifest's two ends, a lot's collection, an origin
//! ticket's closing ticket, two consecutive truck fixes or storage
//! readings) belong to an *item* whose facts are recomputed whenever the
//! item changes, and the difference is applied. So a late record changes
//! exactly the periods it belongs to, in any order of arrival.
//!
//! Each (KPI, scope, period) bucket holds raw sums; its value is computed
//! from them by the formula version pinned to the bucket when it was first
//! published. A changed formula (e.g. backfill counted as utilisation)
//! therefore applies to periods that had not been published yet; a period
//! already written keeps its version, also when late data rewrites it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::catalogue::KpiId;
use super::config::KpiConfig;
use super::period::{Period, PeriodKind};
use crate::geo::{haversine_m, LatLon};
use crate::pb::{self, envelope::Body, DestinationType, Direction, WasteCategory};
use crate::registry::{normalize_plate, IdHasher, Permit, Registry, SiteType, UnitKind};
use crate::rules::SeqWindow;

/// Formula version of every KPI but the construction variant.
pub const FORMULA_V1: &str = "1";
/// Construction-waste formula counting backfill as utilisation.
pub const FORMULA_BACKFILL: &str = "1-backfill";

const MS_PER_DAY: i64 = 86_400_000;
/// Sequence numbers remembered per device for duplicate detection.
const DEDUP_WINDOW: u32 = 64;

/// Counters of what the engine did and skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KpiStats {
    /// Device records taken into account.
    pub records: u64,
    /// (device, seq) already seen.
    pub duplicates: u64,
    /// Ticket ids a weighbridge already issued.
    pub duplicate_tickets: u64,
    /// Records of devices not in the registry.
    pub unknown_devices: u64,
    /// Tickets naming a unit not in the registry.
    pub unknown_units: u64,
    /// Facts for periods no longer kept, or fixes/readings older than the
    /// memory: not counted.
    pub late_dropped: u64,
    /// KPI points produced.
    pub points: u64,
}

/// Sums of one KPI over one period and scope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Bucket {
    sums: [f64; 3],
    /// Formula version pinned when the bucket was first published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default)]
    dirty: bool,
}

/// Which bucket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct BucketKey {
    kpi: KpiId,
    period: Period,
    /// `None`: the zone.
    site: Option<String>,
}

/// Registered units seen collected in one period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Coverage {
    units: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default)]
    dirty: bool,
}

/// An amount added to one KPI's sums at one time for one site.
#[derive(Clone, Debug, PartialEq)]
struct Fact {
    kpi: KpiId,
    site: String,
    at_ms: i64,
    delta: [f64; 3],
}

fn fact(kpi: KpiId, site: &str, at_ms: i64, delta: [f64; 3]) -> Fact {
    Fact {
        kpi,
        site: site.to_owned(),
        at_ms,
        delta,
    }
}

/// One weighing end of a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct End {
    at_ms: i64,
    net_kg: f64,
    site: String,
}

/// A transfer manifest: the generator's dispatch and the licensed
/// facility's receipt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Manifest {
    dispatch: Option<End>,
    receipt: Option<End>,
    medical: bool,
}

/// A medical-waste lot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Lot {
    site: String,
    sealed_ms: i64,
    collected_ms: Option<i64>,
    /// Not collected and past the limit at the engine's clock.
    overdue: bool,
}

/// An origin out-ticket of a construction-waste trip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Origin {
    at_ms: i64,
    site: String,
    matched: bool,
    /// Unmatched and past the match window at the engine's clock.
    expired: bool,
}

/// Trips of one plate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct PlateTrips {
    origins: Vec<Origin>,
    /// Disposal tickets no origin ticket claimed yet (event times).
    disposals: Vec<i64>,
}

/// Everything the engine remembers; serialised as its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct State {
    /// Newest event time seen, Unix ms.
    clock_ms: i64,
    /// Hashed, not ordered: every fact looks up six buckets, and string
    /// comparisons down a B-tree were a fifth of the engine's time. Written
    /// and flushed in key order all the same. Keys are registry ids (site
    /// ids), never device text, so the fast non-keyed hash is safe here.
    #[serde(with = "sorted_map")]
    buckets: BucketMap,
    #[serde(with = "vec_map")]
    coverage: BTreeMap<Period, Coverage>,
    /// Per period kind (day, month, year): periods starting before this
    /// were dropped from memory.
    evicted_before: [i64; 3],
    dedup: HashMap<String, SeqWindow>,
    /// `device/ticket-id` → event time.
    tickets: HashMap<String, i64>,
    manifests: HashMap<String, Manifest>,
    /// `device/lot-id` → lot.
    lots: HashMap<String, Lot>,
    /// Normalised plate → trips.
    trips: HashMap<String, PlateTrips>,
    /// Truck device → its recent fixes.
    tracks: HashMap<String, Track>,
    /// Permit and site ids the fixes of `tracks` name.
    names: Names,
    /// Fixes as snapshots written before `tracks` held them: read once at
    /// restore and converted, never written.
    #[serde(skip_serializing)]
    fixes: HashMap<String, BTreeMap<i64, track::LegacyFix>>,
    /// Storage device → stock kg by event time.
    stock: HashMap<String, BTreeMap<i64, f64>>,
    stats: KpiStats,
}

/// The buckets.
type BucketMap = HashMap<BucketKey, Bucket, BuildHasherDefault<IdHasher>>;

/// Serialises a hash map with structured keys as a list of pairs in key
/// order (as `vec_map` writes a `BTreeMap`, so the snapshot is the same).
mod sorted_map {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K, V, H, S>(m: &HashMap<K, V, H>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord,
        V: Serialize,
        S: Serializer,
    {
        let mut pairs: Vec<(&K, &V)> = m.iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(pairs)
    }

    pub fn deserialize<'de, K, V, H, D>(d: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

mod track;
use track::{FixLite, Names, Slot as FixSlot, Track};

/// Serialises a map with structured keys as a list of pairs (JSON object
/// keys must be strings).
mod vec_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        m: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// The KPI engine.
pub struct KpiEngine {
    registry: Arc<Registry>,
    cfg: KpiConfig,
    state: State,
    /// The periods of the local day last looked up (day number, periods):
    /// consecutive facts are nearly always on the same day.
    periods: (i64, [Period; 3]),
    /// A bucket key reused for lookups, so that finding an existing bucket
    /// allocates nothing.
    probe: BucketKey,
}

fn is_construction(c: WasteCategory) -> bool {
    matches!(
        c,
        WasteCategory::ConstructionSpoil
            | WasteCategory::ConstructionMud
            | WasteCategory::ConstructionEngineering
            | WasteCategory::ConstructionDemolition
            | WasteCategory::ConstructionDecoration
    )
}

fn is_catalogue_waste(c: WasteCategory) -> bool {
    matches!(
        c,
        WasteCategory::Hazardous | WasteCategory::Medical | WasteCategory::Laboratory
    )
}

fn kind_index(k: PeriodKind) -> usize {
    match k {
        PeriodKind::Day => 0,
        PeriodKind::Month => 1,
        PeriodKind::Year => 2,
    }
}

/// Where a new time series point goes.
enum Slot<V> {
    /// Older than everything kept: its neighbours are forgotten.
    Late,
    /// A point at this very time is there already.
    Seen,
    /// Between these neighbours (either may be missing).
    Between(Option<(i64, V)>, Option<(i64, V)>),
}

fn neighbours<V: Clone>(m: &BTreeMap<i64, V>, t: i64, memory: i64) -> Slot<V> {
    if m.contains_key(&t) {
        return Slot::Seen;
    }
    let oldest = m.first_key_value().map_or(i64::MIN, |(k, _)| *k);
    let newest = m.last_key_value().map_or(i64::MIN, |(k, _)| *k);
    if t < oldest && t < newest.saturating_sub(memory) {
        return Slot::Late;
    }
    Slot::Between(
        m.range(..t).next_back().map(|(k, v)| (*k, v.clone())),
        m.range(t + 1..).next().map(|(k, v)| (*k, v.clone())),
    )
}

/// Keeps the points of the last `memory` ms and the one just before them
/// (the left end of the first segment a late point could split).
fn trim<V>(m: &mut BTreeMap<i64, V>, memory: i64) {
    let Some((&newest, _)) = m.last_key_value() else {
        return;
    };
    let mut keep = m.split_off(&(newest - memory));
    if let Some((k, v)) = m.pop_last() {
        keep.insert(k, v);
    }
    *m = keep;
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl KpiEngine {
    /// An engine with empty state.
    pub fn new(registry: Arc<Registry>, cfg: KpiConfig) -> Self {
        KpiEngine {
            registry,
            cfg,
            state: State::default(),
            periods: (
                i64::MIN,
                PeriodKind::ALL.map(|kind| Period {
                    kind,
                    start_ms: i64::MIN,
                }),
            ),
            probe: BucketKey {
                kpi: KpiId::RouteCompliance,
                period: Period {
                    kind: PeriodKind::Day,
                    start_ms: i64::MIN,
                },
                site: None,
            },
        }
    }

    /// Counters.
    pub fn stats(&self) -> &KpiStats {
        &self.state.stats
    }

    /// The engine's event clock: the newest record time seen, Unix ms.
    pub fn clock_ms(&self) -> i64 {
        self.state.clock_ms
    }

    /// The state as JSON.
    pub fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.state)
    }

    /// The state, serialised as by [`KpiEngine::snapshot`], written to `w`
    /// (no buffer of its own).
    pub fn snapshot_to<W: std::io::Write>(&self, w: W) -> Result<(), serde_json::Error> {
        serde_json::to_writer(w, &self.state)
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), serde_json::Error> {
        let mut state: State = serde_json::from_slice(bytes)?;
        let legacy = std::mem::take(&mut state.fixes);
        state
            .tracks
            .extend(track::from_legacy(legacy, &mut state.names));
        if !state.names.covers(state.tracks.values()) {
            return Err(<serde_json::Error as serde::de::Error>::custom(
                "a truck fix names a permit or site index past the snapshot's `names`",
            ));
        }
        self.state = state;
        Ok(())
    }

    /// The formula version new periods of `kpi` get.
    pub fn current_version(&self, kpi: KpiId) -> &'static str {
        if kpi == KpiId::ConstructionUtilisation && self.cfg.backfill_counts_as_utilisation {
            FORMULA_BACKFILL
        } else {
            FORMULA_V1
        }
    }

    /// Takes one log record into account. Alert and KPI records, duplicates
    /// and records of unknown devices are skipped.
    pub fn on_record(&mut self, rec: &pb::LogRecord) {
        let Some(env) = rec.envelope.as_ref() else {
            return;
        };
        let Some(body) = env.body.as_ref() else {
            return;
        };
        let t = rec.time_unix_ms;
        let dedup = match self.state.dedup.get_mut(&env.device_id) {
            Some(d) => d,
            None => self.state.dedup.entry(env.device_id.clone()).or_default(),
        };
        if dedup.accept(env.seq, t, DEDUP_WINDOW) != crate::rules::Seq::New {
            self.state.stats.duplicates += 1;
            return;
        }
        let registry = self.registry.clone();
        let Some(device) = registry.device(&env.device_id) else {
            self.state.stats.unknown_devices += 1;
            return;
        };
        self.state.stats.records += 1;
        let restamped = rec.clock_check != pb::ClockCheck::Ok as i32;
        if !restamped {
            self.state.clock_ms = self.state.clock_ms.max(t);
        }
        if !registry.units.is_empty() {
            self.touch_coverage(t);
        }
        match body {
            Body::WeighbridgeTicket(tk) => self.ticket(&device.id, &device.site_id, t, tk),
            Body::StorageReading(r) => {
                if let Some(lot) = &r.lot_change {
                    self.lot(&device.id, &device.site_id, lot);
                }
                if !restamped {
                    self.reading(&device.id, &device.site_id, t, r.stock_kg);
                }
            }
            Body::TruckFix(f) if !restamped && f.gnss_fix => {
                self.fix(&device.id, &device.site_id, t, f);
            }
            Body::TruckFix(_) | Body::BinReading(_) | Body::DeviceStatus(_) => {}
        }
    }

    /// Adds (`sign` 1) or removes (`sign` -1) facts.
    fn apply(&mut self, facts: &[Fact], sign: f64) {
        for f in facts {
            for (k, period) in self.periods_containing(f.at_ms).into_iter().enumerate() {
                if period.start_ms < self.state.evicted_before[k] {
                    if sign > 0.0 {
                        self.state.stats.late_dropped += 1;
                    }
                    continue;
                }
                self.add_to_bucket(f, period, false, sign);
                if !f.site.is_empty() {
                    self.add_to_bucket(f, period, true, sign);
                }
            }
        }
    }

    /// Adds `sign` × the fact's delta to its bucket for `period`, the
    /// zone's or (`per_site`) its site's.
    fn add_to_bucket(&mut self, f: &Fact, period: Period, per_site: bool, sign: f64) {
        let probe = &mut self.probe;
        probe.kpi = f.kpi;
        probe.period = period;
        match (&mut probe.site, per_site) {
            (Some(s), true) => {
                s.clear();
                s.push_str(&f.site);
            }
            (site, true) => *site = Some(f.site.clone()),
            (site, false) => *site = None,
        }
        let b = match self.state.buckets.get_mut(probe) {
            Some(b) => b,
            None => self.state.buckets.entry(probe.clone()).or_default(),
        };
        for (s, d) in b.sums.iter_mut().zip(f.delta) {
            *s += sign * d;
        }
        b.dirty = true;
    }

    /// [`Period::all_containing`], remembered for the last local day.
    fn periods_containing(&mut self, t: i64) -> [Period; 3] {
        let offset = self.cfg.utc_offset_min;
        let day = crate::registry::local_days_since_epoch(t, offset);
        if self.periods.0 != day {
            self.periods = (day, Period::all_containing(t, offset));
        }
        self.periods.1
    }

    fn touch_coverage(&mut self, t: i64) {
        for (k, period) in self.periods_containing(t).into_iter().enumerate() {
            if period.start_ms < self.state.evicted_before[k] {
                continue;
            }
            self.state
                .coverage
                .entry(period)
                .or_insert_with(|| Coverage {
                    dirty: true,
                    ..Coverage::default()
                });
        }
    }

    fn ticket(&mut self, device: &str, site: &str, t: i64, tk: &pb::WeighbridgeTicket) {
        let key = format!("{device}/{}", tk.ticket_id);
        if self.state.tickets.contains_key(&key) {
            self.state.stats.duplicate_tickets += 1;
            return;
        }
        self.state.tickets.insert(key.clone(), t);
        let registry = self.registry.clone();
        let site_type = registry.site(site).map(|s| s.site_type);
        let cat = WasteCategory::try_from(tk.category).unwrap_or_default();
        let dir = Direction::try_from(tk.direction).unwrap_or_default();
        let net = tk.net_weight_kg;
        // Per-site scope: the site the waste comes from when it is a
        // registry site, else the weighbridge's.
        let origin = if registry.site(&tk.origin_site_id).is_some() {
            tk.origin_site_id.as_str()
        } else {
            site
        };
        if !tk.source_unit_id.is_empty() {
            if registry.units.contains_key(&tk.source_unit_id) {
                let offset = self.cfg.utc_offset_min;
                for kind in PeriodKind::ALL {
                    let period = Period::containing(kind, t, offset);
                    if period.start_ms < self.state.evicted_before[kind_index(kind)] {
                        continue;
                    }
                    let c = self.state.coverage.entry(period).or_default();
                    if c.units.insert(tk.source_unit_id.clone()) {
                        c.dirty = true;
                    }
                }
            } else {
                self.state.stats.unknown_units += 1;
            }
        }
        let dest = match DestinationType::try_from(tk.destination_type).unwrap_or_default() {
            DestinationType::Unspecified => site_type
                .and_then(SiteType::destination_type)
                .unwrap_or(DestinationType::Unspecified),
            d => d,
        };
        if is_construction(cat) {
            if dir == Direction::Out && site_type == Some(SiteType::ConstructionSite) {
                self.origin_ticket(&tk.plate, site, t);
            } else if dir != Direction::Out {
                let delta = match dest {
                    DestinationType::Recycling => Some([net, 0.0, 0.0]),
                    DestinationType::Landfill => Some([0.0, net, 0.0]),
                    DestinationType::Backfill => Some([0.0, 0.0, net]),
                    _ => None,
                };
                if let Some(delta) = delta {
                    self.apply(
                        &[fact(KpiId::ConstructionUtilisation, origin, t, delta)],
                        1.0,
                    );
                    self.disposal_ticket(&tk.plate, t);
                }
            }
        } else if cat == WasteCategory::GeneralIndustrial {
            if dir != Direction::Out && dest != DestinationType::Unspecified {
                let used = if dest == DestinationType::Utilisation {
                    net
                } else {
                    0.0
                };
                self.apply(
                    &[fact(
                        KpiId::IndustrialUtilisation,
                        origin,
                        t,
                        [used, net, 0.0],
                    )],
                    1.0,
                );
            }
        } else if is_catalogue_waste(cat) {
            let licensed = site_type == Some(SiteType::LicensedHazardousFacility);
            let medical = cat == WasteCategory::Medical;
            let end = if dir == Direction::Out && !licensed {
                Some((
                    true,
                    End {
                        at_ms: t,
                        net_kg: net,
                        site: site.to_owned(),
                    },
                ))
            } else if dir != Direction::Out && licensed {
                Some((
                    false,
                    End {
                        at_ms: t,
                        net_kg: net,
                        site: origin.to_owned(),
                    },
                ))
            } else {
                // A unit's delivery to a collection point: coverage only.
                None
            };
            let Some((dispatch, end)) = end else {
                return;
            };
            if tk.manifest_id.is_empty() {
                let mut facts = vec![fact(
                    KpiId::ManifestMatchRate,
                    &end.site,
                    t,
                    [0.0, 1.0, 1.0],
                )];
                let closure = if dispatch {
                    [0.0, end.net_kg, 0.0]
                } else {
                    [0.0, 0.0, 1.0]
                };
                facts.push(fact(KpiId::HazardousClosure, &end.site, t, closure));
                if medical {
                    facts.push(fact(KpiId::MedicalDisposal, &end.site, t, closure));
                }
                self.apply(&facts, 1.0);
            } else {
                let old = self
                    .state
                    .manifests
                    .get(&tk.manifest_id)
                    .cloned()
                    .unwrap_or_default();
                let mut new = old.clone();
                new.medical |= medical;
                let slot = if dispatch {
                    &mut new.dispatch
                } else {
                    &mut new.receipt
                };
                if slot.is_none() {
                    *slot = Some(end);
                }
                let (before, after) = (self.manifest_facts(&old), self.manifest_facts(&new));
                self.replace(&before, &after);
                self.state.manifests.insert(tk.manifest_id.clone(), new);
            }
        }
    }

    /// Removes `old` facts and adds `new` ones.
    fn replace(&mut self, old: &[Fact], new: &[Fact]) {
        if old != new {
            self.apply(old, -1.0);
            self.apply(new, 1.0);
        }
    }

    fn manifest_facts(&self, m: &Manifest) -> Vec<Fact> {
        let mut out = Vec::new();
        let agree = match (&m.dispatch, &m.receipt) {
            (Some(d), Some(r)) => (d.net_kg - r.net_kg).abs() <= self.cfg.manifest_tolerance_kg,
            _ => false,
        };
        let agree = f64::from(u8::from(agree));
        if let Some(d) = &m.dispatch {
            let received = m.receipt.as_ref().map_or(0.0, |r| r.net_kg);
            out.push(fact(
                KpiId::HazardousClosure,
                &d.site,
                d.at_ms,
                [received, d.net_kg, 0.0],
            ));
            if m.medical {
                out.push(fact(
                    KpiId::MedicalDisposal,
                    &d.site,
                    d.at_ms,
                    [received, d.net_kg, 0.0],
                ));
            }
            out.push(fact(
                KpiId::ManifestMatchRate,
                &d.site,
                d.at_ms,
                [agree, 1.0, 0.0],
            ));
        }
        if let Some(r) = &m.receipt {
            out.push(fact(
                KpiId::ManifestMatchRate,
                &r.site,
                r.at_ms,
                [agree, 1.0, 0.0],
            ));
        }
        out
    }

    fn lot_facts(&self, lot: &Lot) -> Vec<Fact> {
        let limit = (self.cfg.medical_lot_limit_h * 3_600_000.0) as i64;
        let within = match lot.collected_ms {
            Some(c) => c - lot.sealed_ms <= limit,
            None if lot.overdue => false,
            None => return Vec::new(),
        };
        vec![fact(
            KpiId::MedicalClearance48h,
            &lot.site,
            lot.sealed_ms,
            [f64::from(u8::from(within)), 1.0, 0.0],
        )]
    }

    fn lot(&mut self, device: &str, site: &str, l: &pb::MedicalLot) {
        let key = format!("{device}/{}", l.lot_id);
        let old = self.state.lots.get(&key).cloned();
        let mut new = old.clone().unwrap_or(Lot {
            site: site.to_owned(),
            sealed_ms: l.sealed_at_unix_ms,
            collected_ms: None,
            overdue: false,
        });
        if l.collected_at_unix_ms > 0 && new.collected_ms.is_none() {
            new.collected_ms = Some(l.collected_at_unix_ms);
            new.overdue = false;
        }
        let before = old.as_ref().map(|o| self.lot_facts(o)).unwrap_or_default();
        let after = self.lot_facts(&new);
        self.replace(&before, &after);
        self.state.lots.insert(key, new);
    }

    fn origin_facts(o: &Origin) -> Vec<Fact> {
        if o.matched {
            vec![fact(
                KpiId::ClosedLoopRate,
                &o.site,
                o.at_ms,
                [1.0, 1.0, 0.0],
            )]
        } else if o.expired {
            vec![fact(
                KpiId::ClosedLoopRate,
                &o.site,
                o.at_ms,
                [0.0, 1.0, 0.0],
            )]
        } else {
            Vec::new()
        }
    }

    fn origin_ticket(&mut self, plate: &str, site: &str, t: i64) {
        let max = self.cfg.trip_match_max_ms;
        let trips = self.state.trips.entry(normalize_plate(plate)).or_default();
        let mut o = Origin {
            at_ms: t,
            site: site.to_owned(),
            matched: false,
            expired: false,
        };
        // The first unclaimed disposal ticket after it closes it.
        if let Some(i) = (0..trips.disposals.len())
            .filter(|&i| (t..=t + max).contains(&trips.disposals[i]))
            .min_by_key(|&i| trips.disposals[i])
        {
            trips.disposals.remove(i);
            o.matched = true;
        }
        trips.origins.push(o.clone());
        self.apply(&Self::origin_facts(&o), 1.0);
    }

    fn disposal_ticket(&mut self, plate: &str, t: i64) {
        let max = self.cfg.trip_match_max_ms;
        let trips = self.state.trips.entry(normalize_plate(plate)).or_default();
        // It closes the latest unmatched origin ticket before it.
        let pick = (0..trips.origins.len())
            .filter(|&i| {
                let o = &trips.origins[i];
                !o.matched && o.at_ms <= t && t <= o.at_ms + max
            })
            .max_by_key(|&i| trips.origins[i].at_ms);
        match pick {
            Some(i) => {
                let old = trips.origins[i].clone();
                trips.origins[i].matched = true;
                trips.origins[i].expired = false;
                let new = trips.origins[i].clone();
                self.replace(&Self::origin_facts(&old), &Self::origin_facts(&new));
            }
            None => trips.disposals.push(t),
        }
    }

    /// True when `p` is inside the permit's corridor (less the fix's error
    /// radius) or inside its origin or a destination site.
    fn inside_corridor(&self, permit: &Permit, f: &FixLite) -> bool {
        let p = LatLon::new(f.lat, f.lon);
        let (d, half, _) = permit.corridor_distance(p);
        if d - f.accuracy_m <= half {
            return true;
        }
        std::iter::once(&permit.origin_site_id)
            .chain(&permit.destination_site_ids)
            .filter_map(|id| self.registry.site(id))
            .any(|s| s.contains(p))
    }

    fn segment_facts(&self, ta: i64, a: &FixLite, tb: i64, b: &FixLite) -> Vec<Fact> {
        if tb - ta > self.cfg.max_fix_gap_ms || !(a.loaded && b.loaded) {
            return Vec::new();
        }
        let km = haversine_m(LatLon::new(a.lat, a.lon), LatLon::new(b.lat, b.lon)) / 1000.0;
        let names = &self.state.names;
        let permit = (a.permit == b.permit && !names.get(a.permit).is_empty())
            .then(|| self.registry.permit(names.get(a.permit)))
            .flatten();
        let Some(p) = permit else {
            let home = names.get(a.home);
            return vec![
                fact(KpiId::RouteCompliance, home, ta, [0.0, 0.0, km]),
                fact(KpiId::TimeWindowCompliance, home, ta, [0.0, 0.0, km]),
            ];
        };
        let half = |x: bool| if x { 0.5 } else { 0.0 };
        let inside = half(self.inside_corridor(p, a)) + half(self.inside_corridor(p, b));
        let in_window = half(p.in_time_window(ta)) + half(p.in_time_window(tb));
        vec![
            fact(
                KpiId::RouteCompliance,
                &p.origin_site_id,
                ta,
                [km * inside, km, 0.0],
            ),
            fact(
                KpiId::TimeWindowCompliance,
                &p.origin_site_id,
                ta,
                [km * in_window, km, 0.0],
            ),
        ]
    }

    fn fix(&mut self, device: &str, home: &str, t: i64, f: &pb::TruckFix) {
        let registry = self.registry.clone();
        let named = registry
            .permit(&f.permit_id)
            .filter(|p| p.covers_plate(&f.plate) && p.is_active_at(t));
        let permit = named
            .or_else(|| {
                registry
                    .active_permits_for_plate(&f.plate, t)
                    .into_iter()
                    .next()
            })
            .map(|p| p.id.as_str())
            .unwrap_or_default();
        let lite = FixLite {
            lat: f.latitude_deg,
            lon: f.longitude_deg,
            accuracy_m: f.accuracy_m,
            loaded: f.loaded,
            permit: self.state.names.intern(permit),
            home: self.state.names.intern(home),
        };
        // Taken out (its key stays, so no new key is allocated) while the
        // segment facts borrow the engine.
        let mut fixes = self
            .state
            .tracks
            .get_mut(device)
            .map(std::mem::take)
            .unwrap_or_default();
        match fixes.slot(t, self.cfg.reading_memory_ms) {
            FixSlot::Late => self.state.stats.late_dropped += 1,
            FixSlot::Seen => {}
            FixSlot::Between(at, prev, next) => {
                let mut old = Vec::new();
                let mut new = Vec::new();
                if let (Some((ta, a)), Some((tc, c))) = (&prev, &next) {
                    old = self.segment_facts(*ta, a, *tc, c);
                }
                if let Some((ta, a)) = &prev {
                    new.extend(self.segment_facts(*ta, a, t, &lite));
                }
                if let Some((tc, c)) = &next {
                    new.extend(self.segment_facts(t, &lite, *tc, c));
                }
                self.replace(&old, &new);
                fixes.insert(at, t, lite, self.cfg.reading_memory_ms);
            }
        }
        match self.state.tracks.get_mut(device) {
            Some(slot) => *slot = fixes,
            None => {
                self.state.tracks.insert(device.to_owned(), fixes);
            }
        }
    }

    fn pair_facts(&self, site: &str, ta: i64, a: f64, tb: i64, b: f64) -> Vec<Fact> {
        if tb - ta > self.cfg.max_reading_gap_ms {
            return Vec::new();
        }
        let stock_days = a * (tb - ta) as f64 / MS_PER_DAY as f64;
        vec![fact(
            KpiId::HazardousStockTurnover,
            site,
            ta,
            [stock_days, (a - b).max(0.0), 0.0],
        )]
    }

    fn reading(&mut self, device: &str, site: &str, t: i64, stock_kg: f64) {
        let mut readings = self.state.stock.remove(device).unwrap_or_default();
        match neighbours(&readings, t, self.cfg.reading_memory_ms) {
            Slot::Late => self.state.stats.late_dropped += 1,
            Slot::Seen => {}
            Slot::Between(prev, next) => {
                let mut old = Vec::new();
                let mut new = Vec::new();
                if let (Some((ta, a)), Some((tc, c))) = (prev, next) {
                    old = self.pair_facts(site, ta, a, tc, c);
                }
                if let Some((ta, a)) = prev {
                    new.extend(self.pair_facts(site, ta, a, t, stock_kg));
                }
                if let Some((tc, c)) = next {
                    new.extend(self.pair_facts(site, t, stock_kg, tc, c));
                }
                self.replace(&old, &new);
                readings.insert(t, stock_kg);
                trim(&mut readings, self.cfg.reading_memory_ms);
            }
        }
        self.state.stock.insert(device.to_owned(), readings);
    }

    /// Moves lots and origin tickets past their limits to failed, and
    /// drops what is older than the retention.
    fn expire(&mut self) {
        let clock = self.state.clock_ms;
        if clock <= 0 {
            return;
        }
        let limit = (self.cfg.medical_lot_limit_h * 3_600_000.0) as i64;
        let due: Vec<String> = self
            .state
            .lots
            .iter()
            .filter(|(_, l)| l.collected_ms.is_none() && !l.overdue && clock - l.sealed_ms > limit)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(old) = self.state.lots.get(&key).cloned() {
                let new = Lot {
                    overdue: true,
                    ..old.clone()
                };
                let (before, after) = (self.lot_facts(&old), self.lot_facts(&new));
                self.replace(&before, &after);
                self.state.lots.insert(key, new);
            }
        }
        let max = self.cfg.trip_match_max_ms;
        let mut changes = Vec::new();
        for trips in self.state.trips.values_mut() {
            for o in &mut trips.origins {
                if !o.matched && !o.expired && clock > o.at_ms + max {
                    let old = o.clone();
                    o.expired = true;
                    changes.push((old, o.clone()));
                }
            }
        }
        for (old, new) in changes {
            self.replace(&Self::origin_facts(&old), &Self::origin_facts(&new));
        }
        // Retention.
        let offset = self.cfg.utc_offset_min;
        let day_cut = Period::containing(
            PeriodKind::Day,
            clock - self.cfg.day_retention_days * MS_PER_DAY,
            offset,
        )
        .start_ms;
        let month_cut = Period::containing(
            PeriodKind::Month,
            clock - self.cfg.month_retention_months * 31 * MS_PER_DAY,
            offset,
        )
        .start_ms;
        let cuts = [day_cut, month_cut, i64::MIN];
        for (i, cut) in cuts.into_iter().enumerate() {
            self.state.evicted_before[i] = self.state.evicted_before[i].max(cut);
        }
        let evicted = self.state.evicted_before;
        self.state
            .buckets
            .retain(|k, b| b.dirty || k.period.start_ms >= evicted[kind_index(k.period.kind)]);
        self.state
            .coverage
            .retain(|p, c| c.dirty || p.start_ms >= evicted[kind_index(p.kind)]);
        let old = clock - self.cfg.match_retention_days * MS_PER_DAY;
        self.state.tickets.retain(|_, t| *t >= old);
        self.state.manifests.retain(|_, m| {
            let last = [&m.dispatch, &m.receipt]
                .into_iter()
                .flatten()
                .map(|e| e.at_ms)
                .max()
                .unwrap_or(i64::MAX);
            last >= old
        });
        self.state.lots.retain(|_, l| {
            let pending = l.collected_ms.is_none() && !l.overdue;
            pending || l.collected_ms.unwrap_or(l.sealed_ms) >= old
        });
        for trips in self.state.trips.values_mut() {
            trips.origins.retain(|o| o.at_ms >= old);
            trips.disposals.retain(|t| *t >= old);
        }
        self.state
            .trips
            .retain(|_, t| !t.origins.is_empty() || !t.disposals.is_empty());
    }

    /// Numerator, denominator and note of `kpi` from its sums, by the
    /// formula `version`.
    fn formula(kpi: KpiId, version: &str, s: &[f64; 3]) -> (f64, f64, String) {
        match kpi {
            KpiId::ConstructionUtilisation => {
                let den = s[0] + s[1] + s[2];
                let num = if version == FORMULA_BACKFILL {
                    s[0] + s[2]
                } else {
                    s[0]
                };
                (num, den, String::new())
            }
            KpiId::HazardousClosure | KpiId::MedicalDisposal => {
                let note = if s[2] >= 0.5 {
                    format!(
                        "{} receipt ticket(s) without a manifest id not counted",
                        s[2].round()
                    )
                } else {
                    String::new()
                };
                (s[0], s[1], note)
            }
            KpiId::ManifestMatchRate => {
                let note = if s[2] >= 0.5 {
                    format!(
                        "{} ticket(s) without a manifest id counted as unmatched",
                        s[2].round()
                    )
                } else {
                    String::new()
                };
                (s[0], s[1], note)
            }
            KpiId::RouteCompliance | KpiId::TimeWindowCompliance => {
                let note = if s[2] > 0.0005 {
                    format!("{:.3} loaded km without a valid permit not counted", s[2])
                } else {
                    String::new()
                };
                (s[0], s[1], note)
            }
            _ => (s[0], s[1], String::new()),
        }
    }

    #[allow(clippy::too_many_arguments)] // the columns of one kpi point
    fn record(
        &self,
        kpi: KpiId,
        period: Period,
        site: Option<&str>,
        version: &str,
        num: f64,
        den: f64,
        note: String,
    ) -> pb::KpiRecord {
        let spec = kpi.spec();
        let (num, den) = (round3(num.max(0.0)), round3(den.max(0.0)));
        pb::KpiRecord {
            kpi: kpi.as_str().to_owned(),
            period: period.kind.as_str().to_owned(),
            period_start_unix_ms: period.start_ms,
            scope: if site.is_some() { "site" } else { "zone" }.to_owned(),
            site_id: site.unwrap_or_default().to_owned(),
            formula_version: version.to_owned(),
            source: spec.source.as_str().to_owned(),
            numerator: num,
            denominator: den,
            value: kpi.value(num, den).map(|v| (v * 1e6).round() / 1e6),
            target: Some(self.cfg.target(kpi)),
            target_op: spec.target_op.to_owned(),
            unit: spec.unit.to_owned(),
            numerator_unit: spec.numerator_unit.to_owned(),
            denominator_unit: spec.denominator_unit.to_owned(),
            note,
        }
    }

    /// The points of every period changed since the last flush (moving
    /// overdue lots and trips to failed first, at the engine's clock).
    pub fn flush(&mut self) -> Vec<pb::KpiRecord> {
        self.expire();
        let mut out = Vec::new();
        let mut buckets = std::mem::take(&mut self.state.buckets);
        let mut dirty: Vec<(&BucketKey, &mut Bucket)> =
            buckets.iter_mut().filter(|(_, b)| b.dirty).collect();
        dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, b) in dirty {
            b.dirty = false;
            let version = b
                .version
                .get_or_insert_with(|| self.current_version(k.kpi).to_owned())
                .clone();
            let (num, den, note) = Self::formula(k.kpi, &version, &b.sums);
            out.push(self.record(k.kpi, k.period, k.site.as_deref(), &version, num, den, note));
        }
        self.state.buckets = buckets;
        let registry = self.registry.clone();
        let mut coverage = std::mem::take(&mut self.state.coverage);
        for (period, c) in coverage.iter_mut().filter(|(_, c)| c.dirty) {
            c.dirty = false;
            let version = c
                .version
                .get_or_insert_with(|| FORMULA_V1.to_owned())
                .clone();
            for (kpi, kind) in [
                (KpiId::LabCollectionCoverage, UnitKind::Laboratory),
                (
                    KpiId::SmallBusinessCollectionCoverage,
                    UnitKind::SmallBusiness,
                ),
                (KpiId::MedicalCollectionCoverage, UnitKind::Medical),
            ] {
                // Zone first, then each collecting site, in id order.
                let mut per_site: BTreeMap<Option<&str>, (f64, f64)> = BTreeMap::new();
                for u in registry.units.values().filter(|u| u.kind == kind) {
                    let covered = f64::from(u8::from(c.units.contains(&u.id)));
                    for key in [None, Some(u.site_id.as_str())] {
                        let e = per_site.entry(key).or_default();
                        e.0 += covered;
                        e.1 += 1.0;
                    }
                }
                for (site, (num, den)) in per_site {
                    out.push(self.record(kpi, *period, site, &version, num, den, String::new()));
                }
            }
        }
        self.state.coverage = coverage;
        self.state.stats.points += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests;
