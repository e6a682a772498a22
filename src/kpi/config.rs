//! `[kpi]`: how the KPI stage computes, with every default and where it
//! comes from ([P]: our proposal; see docs/KPIS.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalogue::KpiId;

/// Settings of the KPI stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// Offset of local time from UTC, minutes: periods start at local
    /// midnight. 480 = China Standard Time.
    pub utc_offset_min: i16,
    /// KPI points of changed periods are written this often, ms.
    pub flush_interval_ms: u64,
    /// KPI state is snapshotted (and its cursor moved) this often, ms.
    pub snapshot_interval_ms: u64,
    /// The configurable variant of the construction-waste formula: count
    /// tonnage to backfill / earthwork-balance sites as utilised (formula
    /// version `1-backfill`). Off: only recycling counts (version `1`).
    pub backfill_counts_as_utilisation: bool,
    /// A manifest's dispatch and receipt nets agree when they differ by at
    /// most this, kg [P] (two class III weighings of one load, 20 kg each).
    pub manifest_tolerance_kg: f64,
    /// A disposal ticket closes an origin ticket of the same plate at most
    /// this long after it, ms [P] (the `trip_max_ms` of the trip rule).
    pub trip_match_max_ms: i64,
    /// Medical lots must be collected within this many hours of sealing
    /// (medical waste regulation art. 17: two days).
    pub medical_lot_limit_h: f64,
    /// Truck fixes and storage readings are kept this long behind the
    /// newest, so a late one is slotted in exactly, ms [P].
    pub reading_memory_ms: i64,
    /// Two fixes further apart than this do not make a driven segment, ms
    /// [P] (5 s when moving; a longer gap is a lost uplink or a stop).
    pub max_fix_gap_ms: i64,
    /// Two storage readings further apart than this do not count toward
    /// stock-days, ms [P].
    pub max_reading_gap_ms: i64,
    /// Day periods are kept (recomputed on late data) this many days, [P].
    pub day_retention_days: i64,
    /// Month periods are kept this many months, [P]; years always.
    pub month_retention_months: i64,
    /// Matching state (manifests, lots, trips) is kept this many days, [P].
    pub match_retention_days: i64,
    /// Targets by KPI id, overriding the catalogue's (same unit as the
    /// value: % or days).
    pub targets: BTreeMap<String, f64>,
}

impl Default for KpiConfig {
    fn default() -> Self {
        KpiConfig {
            utc_offset_min: 480,
            flush_interval_ms: 5_000,
            snapshot_interval_ms: 5_000,
            backfill_counts_as_utilisation: false,
            manifest_tolerance_kg: 40.0,
            trip_match_max_ms: 4 * 3_600_000,
            medical_lot_limit_h: 48.0,
            reading_memory_ms: 3_600_000,
            max_fix_gap_ms: 300_000,
            max_reading_gap_ms: 6 * 3_600_000,
            day_retention_days: 62,
            month_retention_months: 26,
            match_retention_days: 31,
            targets: BTreeMap::new(),
        }
    }
}

impl KpiConfig {
    /// Every problem, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(-720..=840).contains(&self.utc_offset_min) {
            p.push(format!(
                "kpi.utc_offset_min is {}; use -720 to 840",
                self.utc_offset_min
            ));
        }
        if self.flush_interval_ms < 100 || self.snapshot_interval_ms < 100 {
            p.push(format!(
                "kpi.flush_interval_ms ({}) and kpi.snapshot_interval_ms ({}) must be >= 100",
                self.flush_interval_ms, self.snapshot_interval_ms
            ));
        }
        if !(self.manifest_tolerance_kg.is_finite() && self.manifest_tolerance_kg >= 0.0) {
            p.push(format!(
                "kpi.manifest_tolerance_kg is {}; it must be a number >= 0",
                self.manifest_tolerance_kg
            ));
        }
        if !(self.medical_lot_limit_h.is_finite() && self.medical_lot_limit_h > 0.0) {
            p.push(format!(
                "kpi.medical_lot_limit_h is {}; it must be a number > 0",
                self.medical_lot_limit_h
            ));
        }
        for (key, v) in [
            ("kpi.trip_match_max_ms", self.trip_match_max_ms),
            ("kpi.reading_memory_ms", self.reading_memory_ms),
            ("kpi.max_fix_gap_ms", self.max_fix_gap_ms),
            ("kpi.max_reading_gap_ms", self.max_reading_gap_ms),
            ("kpi.day_retention_days", self.day_retention_days),
            ("kpi.month_retention_months", self.month_retention_months),
            ("kpi.match_retention_days", self.match_retention_days),
        ] {
            if v <= 0 {
                p.push(format!("{key} is {v}; it must be > 0"));
            }
        }
        for (k, v) in &self.targets {
            match KpiId::parse(k) {
                None => p.push(format!(
                    "kpi.targets.{k}: no such KPI (see docs/KPIS.md for the ids)"
                )),
                Some(_) if !v.is_finite() || *v < 0.0 => {
                    p.push(format!("kpi.targets.{k} is {v}; it must be a number >= 0"))
                }
                Some(_) => {}
            }
        }
        p
    }

    /// The target of `kpi`: the configured one, else the catalogue's.
    pub fn target(&self, kpi: KpiId) -> f64 {
        self.targets
            .get(kpi.as_str())
            .copied()
            .unwrap_or(kpi.spec().target)
    }
}
