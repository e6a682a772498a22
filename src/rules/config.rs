//! Rule configuration: the thresholds of every rule family with their
//! defaults and sources (catalogue: docs/RULES.md), the per-scope override
//! layer, and the engine's own timing settings.
//!
//! Source tags as in docs/RULES.md: [V] read in the regulation or protocol,
//! [S] secondary source or common platform practice, [P] our proposed
//! default. Every struct deserializes with defaults and
//! `deny_unknown_fields`, so a config file only names what it changes and a
//! typo is an error. Overrides are layered most general first: device kind,
//! site, permit (trucks), device.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Declares a thresholds struct with its defaults, plus a "patch" twin whose
/// fields are all optional, for the override layer.
macro_rules! thresholds {
    (
        $(#[$meta:meta])*
        pub struct $name:ident / $patch:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $default:expr,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        #[doc = concat!("Partial [`", stringify!($name), "`]: the fields an override sets.")]
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $patch {
            $(
                $(#[$fmeta])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl $patch {
            /// Problems with the values set, each naming the field,
            /// prefixed by `scope`.
            pub fn problems(&self, scope: &str) -> Vec<String> {
                let mut out = Vec::new();
                $( if let Some(v) = &self.$field {
                    check_value(&mut out, scope, stringify!($field), v);
                } )*
                out
            }
        }

        impl $name {
            /// Applies the fields `patch` sets.
            pub fn apply(&mut self, patch: &$patch) {
                $( if let Some(v) = &patch.$field { self.$field = v.clone(); } )*
            }

            /// Problems with the values (not finite, negative durations), each naming
            /// the field, prefixed by `scope`.
            pub fn problems(&self, scope: &str) -> Vec<String> {
                let mut out = Vec::new();
                $( check_value(&mut out, scope, stringify!($field), &self.$field); )*
                out
            }
        }
    };
}

/// A threshold value that can be checked for sanity.
trait ThresholdValue {
    /// A description of what is wrong, if anything.
    fn problem(&self) -> Option<String>;
}

impl ThresholdValue for f64 {
    fn problem(&self) -> Option<String> {
        (!self.is_finite()).then(|| format!("{self} is not a finite number"))
    }
}

impl ThresholdValue for i64 {
    fn problem(&self) -> Option<String> {
        (*self < 0).then(|| format!("{self} is negative"))
    }
}

impl ThresholdValue for u32 {
    fn problem(&self) -> Option<String> {
        None
    }
}

impl ThresholdValue for bool {
    fn problem(&self) -> Option<String> {
        None
    }
}

impl ThresholdValue for u16 {
    fn problem(&self) -> Option<String> {
        (*self >= 1440).then(|| format!("{self} is not a minute of the day (0..=1439)"))
    }
}

impl ThresholdValue for i16 {
    fn problem(&self) -> Option<String> {
        (!(-720..=840).contains(self)).then(|| format!("{self} is not a UTC offset in minutes"))
    }
}

/// Pushes a problem for `field` if `value` has one.
fn check_value(out: &mut Vec<String>, scope: &str, field: &str, value: &impl ThresholdValue) {
    if let Some(p) = value.problem() {
        out.push(format!("{scope}.{field}: {p}"));
    }
}

thresholds! {
    /// Hazardous-waste storage rules (docs/RULES.md "Hazardous-waste storage").
    pub struct StorageThresholds / StoragePatch {
        /// Most a small storage point (贮存点) may hold, kg: critical above
        /// it. GB 18597-2023 §8.3.5 [V].
        small_point_limit_kg: f64 = 3000.0,
        /// Warn at this share of the small-storage-point limit. [P]
        small_point_warn_ratio: f64 = 0.8,
        /// Warn at this share of the permitted capacity. [P]
        capacity_warn_ratio: f64 = 0.9,
        /// Critical at this share of the permitted capacity. [P]
        capacity_critical_ratio: f64 = 1.0,
        /// Stock alerts clear this share of the limit / capacity below their
        /// raise point (hysteresis). [P]
        stock_clear_margin_ratio: f64 = 0.05,
        /// Warn when the oldest container is this old, days. Solid Waste Law
        /// art. 81 one-year limit [V]; 30 days' notice [P].
        age_warn_days: f64 = 335.0,
        /// Critical at the one-year limit, days. Solid Waste Law art. 81 [V].
        age_critical_days: f64 = 365.0,
        /// Combustible gas major alarm, % LEL. GB/T 50493-2019 [V].
        lel_major_pct: f64 = 25.0,
        /// Combustible gas critical alarm, % LEL. GB/T 50493-2019 [V].
        lel_critical_pct: f64 = 50.0,
        /// Gas alerts clear this many % LEL below their raise point. [P]
        lel_clear_margin_pct: f64 = 5.0,
        /// Toxic gas major alarm, % of the occupational limit. GB/T
        /// 50493-2019 [V].
        toxic_major_pct: f64 = 100.0,
        /// Toxic gas critical alarm, % of the occupational limit. GB/T
        /// 50493-2019 [V].
        toxic_critical_pct: f64 = 200.0,
        /// Toxic alerts clear this many points below their raise point. [P]
        toxic_clear_margin_pct: f64 = 10.0,
        /// Oxygen deficiency below this, %vol. GB/T 50493-2019 [V].
        oxygen_low_pct: f64 = 19.5,
        /// Oxygen enrichment above this, %vol. GB/T 50493-2019 [V].
        oxygen_high_pct: f64 = 23.5,
        /// Oxygen alerts clear this far inside the bounds, %vol. [P]
        oxygen_clear_margin_pct: f64 = 0.3,
        /// Store temperature warning, °C. [P]
        temperature_warn_c: f64 = 40.0,
        /// Store temperature critical, °C. [P]
        temperature_critical_c: f64 = 50.0,
        /// Temperature alerts clear this many °C below their raise point. [P]
        temperature_clear_margin_c: f64 = 2.0,
        /// Rate-of-rise alarm: this many °C ... [P]
        temperature_rise_c: f64 = 10.0,
        /// ... within this window, ms (10 min). [P]
        temperature_rise_window_ms: i64 = 600_000,
        /// The rate-of-rise alert clears when the rise over the window falls
        /// below this, °C. [P]
        temperature_rise_clear_c: f64 = 5.0,
        /// Door open longer than this warns, ms (15 min). [P]
        door_open_max_ms: i64 = 900_000,
        /// Door hours start, local minute of the day (07:00); a door open
        /// outside the hours is major at once. [P]
        door_hours_start_min: u16 = 420,
        /// Door hours end, local minute of the day, inclusive (18:59). [P]
        door_hours_end_min: u16 = 1139,
        /// Offset of local time from UTC for the door hours, minutes (China
        /// Standard Time).
        door_utc_offset_min: i16 = 480,
    }
}

thresholds! {
    /// Medical-waste store rules (docs/RULES.md "Medical-waste stores").
    pub struct MedicalThresholds / MedicalPatch {
        /// Warn when the oldest lot is this old, hours. Medical waste
        /// regulation art. 17 [V] (48 h limit; 12 h notice [P]).
        lot_age_warn_h: f64 = 36.0,
        /// Critical at the 48 h limit, hours. Medical waste regulation art.
        /// 17 [V].
        lot_age_critical_h: f64 = 48.0,
        /// Store too warm at or above this, °C ... medical waste technical
        /// spec [V].
        store_warm_c: f64 = 20.0,
        /// ... while it is above this outside, °C. Medical waste technical
        /// spec [V].
        outside_warm_c: f64 = 25.0,
        /// The warm-store alert clears this many °C below both bounds. [P]
        warm_clear_margin_c: f64 = 1.0,
    }
}

thresholds! {
    /// Construction-waste transport rules (docs/RULES.md "Construction-waste
    /// trucks").
    pub struct TransportThresholds / TransportPatch {
        /// Route deviation needs at least this many consecutive fixes
        /// outside the corridor ... JT/T 808 corridor [V]; 2 fixes [S].
        deviation_min_fixes: u32 = 2,
        /// ... spanning at least this long, ms (60 s). [S]
        deviation_min_duration_ms: i64 = 60_000,
        /// Deviation is critical beyond this distance from the centreline
        /// (less the GPS error), m. [P]
        deviation_critical_distance_m: f64 = 500.0,
        /// ... or after this long outside, ms (15 min). Platform practice [S].
        deviation_critical_duration_ms: i64 = 900_000,
        /// A firing deviation clears after this many consecutive fixes
        /// inside (hysteresis). [P]
        deviation_clear_fixes: u32 = 2,
        /// Route deviation only applies to a loaded truck (an empty truck
        /// may return by any road). [P]
        deviation_requires_loaded: bool = true,
        /// "Moving" is at or above this speed, km/h (time window, dumping,
        /// cover). Platform practice [S].
        moving_kmh: f64 = 5.0,
        /// Outside-window driving must last this long to alert, ms. [P]
        time_window_min_duration_ms: i64 = 60_000,
        /// A window alert of a truck that stopped (still loaded, still
        /// outside the window) clears after this long stopped, ms. [P]
        time_window_clear_ms: i64 = 300_000,
        /// Suspected dumping: stopped outside approved sites this long, ms
        /// (5 min). [S]/[P]
        dumping_still_ms: i64 = 300_000,
        /// ... and the load dropped by more than this share (or the body
        /// was lifted). [P]
        dumping_load_drop_ratio: f64 = 0.5,
        /// Cover open on a loaded, moving truck longer than this, ms (30 s).
        /// [S]/[P]
        cover_open_max_ms: i64 = 30_000,
        /// Speed limit where the permit's segment has none or the truck is
        /// off its route, km/h. [P]
        default_speed_limit_kmh: f64 = 40.0,
        /// Overspeed must last at least this long, ms (10 s). JT/T 808 [V].
        overspeed_min_duration_ms: i64 = 10_000,
        /// Major above this multiple of the limit (+20 %). JT/T 808 [V].
        overspeed_major_ratio: f64 = 1.2,
        /// Overspeed clears this many km/h below the limit. [P]
        overspeed_clear_margin_kmh: f64 = 5.0,
        /// No GNSS fix with ignition on for longer than this, ms (5 min).
        /// JT/T 808 alarm bits [V]; 5 min [P].
        gnss_lost_ms: i64 = 300_000,
        /// Terminal alarm bits meaning GNSS trouble: bit 4 module fault, bit
        /// 5 antenna disconnected. JT/T 808 table 24 [V].
        gnss_alarm_mask: u32 = 0b11_0000,
        /// A fix implying a faster jump from the last good one (beyond both
        /// error radii) is a GNSS glitch and is not judged, km/h. [P]
        max_plausible_speed_kmh: f64 = 200.0,
    }
}

thresholds! {
    /// Weighbridge rules (docs/RULES.md "Weighbridges": overload, unapproved
    /// vehicle, trip not closed, and the ticket data-quality checks).
    pub struct WeighbridgeThresholds / WeighbridgePatch {
        /// Legal gross vehicle weight, 2 axles, kg. GB 1589-2016 [V].
        legal_gross_2_axles_kg: f64 = 18_000.0,
        /// Legal gross vehicle weight, 3 axles, kg. GB 1589-2016 [V].
        legal_gross_3_axles_kg: f64 = 25_000.0,
        /// Legal gross vehicle weight, 4 axles, kg. GB 1589-2016 [V].
        legal_gross_4_axles_kg: f64 = 31_000.0,
        /// Legal gross vehicle weight, 5 axles, kg. GB 1589-2016 [V].
        legal_gross_5_axles_kg: f64 = 43_000.0,
        /// Legal gross vehicle weight, 6 axles, kg. GB 1589-2016 [V].
        legal_gross_6_axles_kg: f64 = 49_000.0,
        /// Weighing tolerance added to the legal weight before alerting, kg
        /// (0: the scale's class III error is not granted). [P]
        overload_tolerance_kg: f64 = 0.0,
        /// Ticket tare further than this from the registered tare, kg. [S]
        tare_drift_kg: f64 = 100.0,
        /// A trip must close within this multiple of its ETA. [S]/[P]
        trip_eta_factor: f64 = 1.5,
        /// ... and never later than this after the truck weighed out, ms
        /// (4 h). [S]/[P]
        trip_max_ms: i64 = 14_400_000,
        /// ETA speed: this share of each segment's limit (of the default
        /// 40 km/h where a segment has none); trucks drive below the limit
        /// and stop at lights. [P]
        trip_eta_speed_share: f64 = 0.7,
        /// Ticket ids remembered per weighbridge for the duplicate check. [P]
        duplicate_ticket_memory: u32 = 512,
    }
}

thresholds! {
    /// Smart-bin rules (docs/RULES.md "Smart bins").
    pub struct BinThresholds / BinPatch {
        /// Nearly full at this fill, %. Practice [S].
        nearly_full_pct: f64 = 80.0,
        /// Nearly full for medical bins, %: the 3/4 rule [V].
        medical_nearly_full_pct: f64 = 75.0,
        /// Nearly-full clears this many points below its raise point. [P]
        nearly_full_clear_margin_pct: f64 = 10.0,
        /// Overflowing at this fill, %. [P]
        overflowing_pct: f64 = 95.0,
        /// Overflowing clears this many points below its raise point. [P]
        overflowing_clear_margin_pct: f64 = 5.0,
        /// Fire at or above this temperature, °C. [P]
        fire_c: f64 = 60.0,
        /// Fire on a rise of this many °C ... [P]
        fire_rise_c: f64 = 10.0,
        /// ... within this window, ms (10 min). [P]
        fire_rise_window_ms: i64 = 600_000,
        /// The fire alert clears below this temperature (and with the rise
        /// under half its threshold and no flag), °C. [P]
        fire_clear_c: f64 = 50.0,
        /// Tilted at or above this angle, degrees. Device range 15-90° [S].
        tilt_deg: f64 = 45.0,
        /// The tilt alert clears below this angle, degrees. [P]
        tilt_clear_deg: f64 = 40.0,
    }
}

thresholds! {
    /// Device health rules: silence and battery (docs/RULES.md "Device
    /// health, all kinds"; they apply to every device).
    pub struct DeviceThresholds / DevicePatch {
        /// Silent after this many expected intervals ... [P]
        silent_interval_factor: f64 = 2.0,
        /// ... plus this margin, ms (5 min). [P]
        silent_margin_ms: i64 = 300_000,
        /// The expected interval is never taken shorter than this, ms,
        /// whatever the registry says or the device shows (1 min). [P]
        silent_floor_ms: i64 = 60_000,
        /// A truck whose last fix had the ignition off is expected at least
        /// this often, ms (JT/T 808 terminals report rarely when parked). [P]
        truck_parked_interval_ms: i64 = 3_600_000,
        /// Battery low below this voltage, mV (0 = mains, never low). [P];
        /// the device flag [S] counts too.
        battery_low_mv: u32 = 3300,
        /// The battery alert clears at or above this voltage, mV. [P]
        battery_clear_mv: u32 = 3400,
    }
}

thresholds! {
    /// Data quality: when a reading cannot be trusted, its threshold alerts
    /// are replaced by `cannot_verify` (docs/RULES.md "Data quality").
    pub struct QualityThresholds / QualityPatch {
        /// A reading received more than this after it was taken is stale,
        /// ms (15 min). [P]
        stale_after_ms: i64 = 900_000,
        /// A temperature jump larger than this ... °C [P]
        max_temperature_jump_c: f64 = 50.0,
        /// ... within this time is impossible, ms (1 min). [P]
        temperature_jump_window_ms: i64 = 60_000,
        /// Temperatures below this are impossible for the sensors, °C: the
        /// decoder's own bound (`decode::validate`), so any reading it stores
        /// can be judged; lower per device kind for narrower sensors. [P]
        min_plausible_c: f64 = -60.0,
        /// Temperatures above this are impossible for the sensors, °C: the
        /// decoder's bound too. A burning bin reads well above 150 °C, and
        /// calling that "impossible" would turn a fire into `cannot_verify`.
        /// [P]
        max_plausible_c: f64 = 300.0,
    }
}

/// Every family's thresholds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Hazardous-waste storage.
    pub storage: StorageThresholds,
    /// Medical-waste stores.
    pub medical: MedicalThresholds,
    /// Trucks.
    pub transport: TransportThresholds,
    /// Weighbridges.
    pub weighbridge: WeighbridgeThresholds,
    /// Smart bins.
    pub bins: BinThresholds,
    /// Device health (all kinds).
    pub devices: DeviceThresholds,
    /// Data quality (all kinds).
    pub quality: QualityThresholds,
}

/// The thresholds an override changes, per family; absent families and
/// fields keep the value from the layer below.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThresholdPatch {
    /// Storage fields to change.
    pub storage: Option<StoragePatch>,
    /// Medical fields to change.
    pub medical: Option<MedicalPatch>,
    /// Transport fields to change.
    pub transport: Option<TransportPatch>,
    /// Weighbridge fields to change.
    pub weighbridge: Option<WeighbridgePatch>,
    /// Bin fields to change.
    pub bins: Option<BinPatch>,
    /// Device-health fields to change.
    pub devices: Option<DevicePatch>,
    /// Data-quality fields to change.
    pub quality: Option<QualityPatch>,
}

/// Overrides by scope. Applied in this order, later winning: device kind,
/// site, permit, device. In TOML, e.g.
/// `[rules.overrides.device."st-lab-univ-01".storage]
/// temperature_warn_c = 35.0`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    /// By device kind: `weighbridge`, `bin`, `storage`, `truck`.
    pub device_kind: BTreeMap<String, ThresholdPatch>,
    /// By site id (the device's site).
    pub site: BTreeMap<String, ThresholdPatch>,
    /// By permit id (the permit a truck runs under).
    pub permit: BTreeMap<String, ThresholdPatch>,
    /// By device id.
    pub device: BTreeMap<String, ThresholdPatch>,
}

/// Where a reading comes from, for choosing overrides.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// Device kind name (`storage`, ...).
    pub kind: &'a str,
    /// Site id of the device.
    pub site: &'a str,
    /// Permit id the truck runs under, if any.
    pub permit: Option<&'a str>,
    /// Device id.
    pub device: &'a str,
}

/// A thresholds family the override layer can patch.
pub trait Family: Clone {
    /// Its partial twin.
    type Patch;
    /// The family's part of a patch.
    fn pick(p: &ThresholdPatch) -> Option<&Self::Patch>;
    /// Applies a partial.
    fn patch(&mut self, p: &Self::Patch);
}

macro_rules! family {
    ($ty:ty, $patch:ty, $field:ident) => {
        impl Family for $ty {
            type Patch = $patch;
            fn pick(p: &ThresholdPatch) -> Option<&$patch> {
                p.$field.as_ref()
            }
            fn patch(&mut self, p: &$patch) {
                self.apply(p);
            }
        }
    };
}

family!(StorageThresholds, StoragePatch, storage);
family!(MedicalThresholds, MedicalPatch, medical);
family!(TransportThresholds, TransportPatch, transport);
family!(WeighbridgeThresholds, WeighbridgePatch, weighbridge);
family!(BinThresholds, BinPatch, bins);
family!(DeviceThresholds, DevicePatch, devices);
family!(QualityThresholds, QualityPatch, quality);

impl Overrides {
    /// True when no override is configured (the fast path borrows the
    /// defaults).
    pub fn is_empty(&self) -> bool {
        self.device_kind.is_empty()
            && self.site.is_empty()
            && self.permit.is_empty()
            && self.device.is_empty()
    }

    /// `base` with the overrides matching `scope` applied; borrowed when
    /// none applies.
    pub fn resolve<'a, F: Family>(&self, base: &'a F, scope: Scope<'_>) -> Cow<'a, F> {
        let mut out = Cow::Borrowed(base);
        if self.is_empty() {
            return out;
        }
        let layers = [
            self.device_kind.get(scope.kind),
            self.site.get(scope.site),
            scope.permit.and_then(|p| self.permit.get(p)),
            self.device.get(scope.device),
        ];
        for p in layers.into_iter().flatten().filter_map(F::pick) {
            out.to_mut().patch(p);
        }
        out
    }
}

/// The engine's own timing and memory bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Sequence numbers remembered per device for duplicate detection (at
    /// most 64). [P]
    pub dedup_window: u32,
    /// Truck fixes are held this long (device time) and processed in time
    /// order, ms. [P]
    pub reorder_window_ms: i64,
    /// At most this many fixes are held per truck; beyond, the oldest is
    /// processed early. [P]
    pub max_buffered_fixes: usize,
    /// The engine counts as live (timers and silence checks run on tick)
    /// when the last record was processed at most this long after it was
    /// received, ms; during a replay of a backlog it is not. [P]
    pub live_lag_ms: i64,
    /// Event alerts (dumping, overload, unapproved vehicle) clear this long
    /// after they were raised, ms (1 h). [P]
    pub event_hold_ms: i64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            dedup_window: 64,
            reorder_window_ms: 30_000,
            max_buffered_fixes: 64,
            live_lag_ms: 60_000,
            event_hold_ms: 3_600_000,
        }
    }
}

/// Everything the rule engine is configured with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// Default thresholds.
    pub thresholds: Thresholds,
    /// Per-scope overrides of the thresholds.
    pub overrides: Overrides,
    /// Engine timing and bounds.
    pub engine: EngineSettings,
}

impl RuleConfig {
    /// Every problem with the configuration at once (empty when valid):
    /// non-finite numbers, negative durations, unknown device kinds in
    /// overrides.
    pub fn problems(&self) -> Vec<String> {
        let mut out = thresholds_problems(&self.thresholds, "thresholds");
        let layers = [
            ("device_kind", &self.overrides.device_kind),
            ("site", &self.overrides.site),
            ("permit", &self.overrides.permit),
            ("device", &self.overrides.device),
        ];
        for (layer, map) in layers {
            for (id, patch) in map {
                let scope = format!("overrides.{layer}.{id:?}");
                if layer == "device_kind"
                    && !["weighbridge", "bin", "storage", "truck"].contains(&id.as_str())
                {
                    out.push(format!(
                        "{scope}: not a device kind (weighbridge, bin, storage, truck)"
                    ));
                }
                out.extend(patch_problems(patch, &scope));
            }
        }
        let e = &self.engine;
        if e.dedup_window == 0 || e.dedup_window > 64 {
            out.push(format!(
                "engine.dedup_window: {} is not in 1..=64",
                e.dedup_window
            ));
        }
        for (name, v) in [
            ("reorder_window_ms", e.reorder_window_ms),
            ("live_lag_ms", e.live_lag_ms),
            ("event_hold_ms", e.event_hold_ms),
        ] {
            if v < 0 {
                out.push(format!("engine.{name}: {v} is negative"));
            }
        }
        if e.max_buffered_fixes == 0 {
            out.push("engine.max_buffered_fixes: must be at least 1".to_owned());
        }
        out
    }
}

/// Problems of the values an override sets, prefixed by `scope`.
fn patch_problems(p: &ThresholdPatch, scope: &str) -> Vec<String> {
    let at = |family: &str| format!("{scope}.{family}");
    [
        p.storage.as_ref().map(|x| x.problems(&at("storage"))),
        p.medical.as_ref().map(|x| x.problems(&at("medical"))),
        p.transport.as_ref().map(|x| x.problems(&at("transport"))),
        p.weighbridge
            .as_ref()
            .map(|x| x.problems(&at("weighbridge"))),
        p.bins.as_ref().map(|x| x.problems(&at("bins"))),
        p.devices.as_ref().map(|x| x.problems(&at("devices"))),
        p.quality.as_ref().map(|x| x.problems(&at("quality"))),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .collect()
}

/// Problems of every family, prefixed by `scope`.
fn thresholds_problems(t: &Thresholds, scope: &str) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(t.storage.problems(&format!("{scope}.storage")));
    out.extend(t.medical.problems(&format!("{scope}.medical")));
    out.extend(t.transport.problems(&format!("{scope}.transport")));
    out.extend(t.weighbridge.problems(&format!("{scope}.weighbridge")));
    out.extend(t.bins.problems(&format!("{scope}.bins")));
    out.extend(t.devices.problems(&format!("{scope}.devices")));
    out.extend(t.quality.problems(&format!("{scope}.quality")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(device: &'a str, permit: Option<&'a str>) -> Scope<'a> {
        Scope {
            kind: "storage",
            site: "fa-autoparts-jingnan",
            permit,
            device,
        }
    }

    #[test]
    fn defaults_are_valid_and_borrowed_when_nothing_overrides() {
        let c = RuleConfig::default();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let t = c
            .overrides
            .resolve(&c.thresholds.storage, scope("st-1", None));
        assert!(matches!(t, Cow::Borrowed(_)));
    }

    #[test]
    fn overrides_apply_kind_then_site_then_permit_then_device() {
        let toml_like = serde_json::json!({
            "overrides": {
                "device_kind": {"storage": {"storage": {"temperature_warn_c": 30.0, "temperature_critical_c": 45.0}}},
                "site": {"fa-autoparts-jingnan": {"storage": {"temperature_warn_c": 31.0}}},
                "device": {"st-1": {"storage": {"temperature_warn_c": 33.0}}},
                "permit": {"permit-1": {"storage": {"temperature_warn_c": 32.0, "door_open_max_ms": 1}}}
            }
        });
        let c: RuleConfig = serde_json::from_value(toml_like).unwrap();
        let base = &c.thresholds.storage;
        let t = c.overrides.resolve(base, scope("st-1", Some("permit-1")));
        assert_eq!(t.temperature_warn_c, 33.0);
        assert_eq!(t.temperature_critical_c, 45.0);
        assert_eq!(t.door_open_max_ms, 1);
        let t = c.overrides.resolve(base, scope("st-2", None));
        assert_eq!(t.temperature_warn_c, 31.0);
        assert_eq!(t.door_open_max_ms, 900_000);
        assert!(c.problems().is_empty());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_reported() {
        let typo = serde_json::json!({"thresholds": {"storage": {"temperature_warn": 30.0}}});
        assert!(serde_json::from_value::<RuleConfig>(typo).is_err());
        let bad = serde_json::json!({
            "thresholds": {"storage": {"door_open_max_ms": -1}},
            "overrides": {"device_kind": {"lorry": {}}, "site": {"x": {"bins": {"fire_rise_window_ms": -5}}}},
            "engine": {"dedup_window": 65}
        });
        let c: RuleConfig = serde_json::from_value(bad).unwrap();
        let p = c.problems();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("thresholds.storage.door_open_max_ms"));
        assert!(p[1].contains("lorry"));
        assert!(p[2].contains("overrides.site.\"x\".bins.fire_rise_window_ms"));
        assert!(p[3].contains("dedup_window"));
    }
}
