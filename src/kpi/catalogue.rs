//! The KPI catalogue: every KPI the report covers, its unit, the direction
//! of its target, the units of its numerator and denominator, where its
//! value comes from, and the 2025 target of the zone's plan (or our own
//! proposal where the plan sets none). Definitions, sources and denominator
//! caveats: docs/KPIS.md.

use serde::{Deserialize, Serialize};

/// Where a KPI's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Computed by the KPI stage from the records and the registry.
    Computed,
    /// Entered by operators (`wastewatch kpi import`): no sensor measures it.
    Imported,
}

impl Source {
    /// Tag value of the `kpi` measurement.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Computed => "computed",
            Source::Imported => "import",
        }
    }
}

/// Every KPI, computed ones first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KpiId {
    /// Construction waste to recycling ÷ to recycling, landfill and backfill.
    ConstructionUtilisation,
    /// General industrial solid waste to utilisation ÷ to any destination.
    IndustrialUtilisation,
    /// Hazardous waste received (matched by manifest) ÷ dispatched.
    HazardousClosure,
    /// Hazardous tickets whose manifest's other end agrees ÷ all.
    ManifestMatchRate,
    /// Medical lots collected within 48 h of sealing ÷ lots due.
    MedicalClearance48h,
    /// Medical waste received (matched by manifest) ÷ dispatched.
    MedicalDisposal,
    /// Registered medical institutions with a collection ÷ registered.
    MedicalCollectionCoverage,
    /// Registered laboratories with a collection ÷ registered.
    LabCollectionCoverage,
    /// Registered small businesses with a collection ÷ registered.
    SmallBusinessCollectionCoverage,
    /// Loaded km inside the permit corridor ÷ loaded km.
    RouteCompliance,
    /// Origin out-tickets matched to a disposal ticket ÷ origin tickets.
    ClosedLoopRate,
    /// Loaded km inside the permit's time window ÷ loaded km.
    TimeWindowCompliance,
    /// Stock-days ÷ outflow: average stock over average daily outflow, days.
    HazardousStockTurnover,
    /// Spot checks of standardised hazardous-waste management passed ÷ done.
    HazardousSpotCheckPass,
    /// Key enterprises that passed a clean-production audit ÷ key enterprises.
    CleanProductionAudit,
    /// Green buildings among new buildings.
    GreenBuildingShare,
    /// Prefabricated share of new buildings.
    PrefabricatedShare,
    /// Publicity reach.
    PublicityReach,
    /// Public participation.
    PublicParticipation,
    /// Public satisfaction.
    PublicSatisfaction,
}

/// What the catalogue says about one KPI.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The KPI.
    pub id: KpiId,
    /// English name.
    pub name: &'static str,
    /// Chinese name.
    pub name_zh: &'static str,
    /// "%" (100 × numerator ÷ denominator) or "d" (numerator ÷ denominator).
    pub unit: &'static str,
    /// ">=" or "<=".
    pub target_op: &'static str,
    /// Default target in `unit`.
    pub target: f64,
    /// Where the target comes from: "plan" (the zone's 2025 plan),
    /// "regulation" or "proposed".
    pub target_source: &'static str,
    /// Unit of the numerator.
    pub numerator_unit: &'static str,
    /// Unit of the denominator.
    pub denominator_unit: &'static str,
    /// Computed or imported.
    pub source: Source,
}

#[allow(clippy::too_many_arguments)] // one row of the catalogue table, field by field
const fn spec(
    id: KpiId,
    name: &'static str,
    name_zh: &'static str,
    target: f64,
    target_source: &'static str,
    numerator_unit: &'static str,
    denominator_unit: &'static str,
    source: Source,
) -> Spec {
    Spec {
        id,
        name,
        name_zh,
        unit: "%",
        target_op: ">=",
        target,
        target_source,
        numerator_unit,
        denominator_unit,
        source,
    }
}

use KpiId as K;
use Source::{Computed as C, Imported as I};

/// The catalogue, in report order.
pub const CATALOGUE: [Spec; 20] = [
    spec(
        K::ConstructionUtilisation,
        "Construction-waste resource utilisation (hauled proxy)",
        "建筑垃圾资源化利用率",
        60.0,
        "plan",
        "kg",
        "kg",
        C,
    ),
    spec(
        K::IndustrialUtilisation,
        "General industrial solid-waste utilisation (hauled proxy)",
        "一般工业固废综合利用率",
        85.0,
        "plan",
        "kg",
        "kg",
        C,
    ),
    spec(
        K::HazardousClosure,
        "Hazardous-waste closure (received ÷ dispatched)",
        "危险废物转移闭环率",
        100.0,
        "proposed",
        "kg",
        "kg",
        C,
    ),
    spec(
        K::ManifestMatchRate,
        "Transfer-manifest match rate",
        "转移联单匹配率",
        100.0,
        "proposed",
        "tickets",
        "tickets",
        C,
    ),
    spec(
        K::MedicalClearance48h,
        "Medical waste cleared within 48 h",
        "医疗废物48小时清运率",
        100.0,
        "regulation",
        "lots",
        "lots",
        C,
    ),
    spec(
        K::MedicalDisposal,
        "Medical waste harmless disposal (received ÷ dispatched)",
        "医疗废物无害化处置率",
        100.0,
        "plan",
        "kg",
        "kg",
        C,
    ),
    spec(
        K::MedicalCollectionCoverage,
        "Medical waste collection coverage",
        "医疗废物收集覆盖率",
        100.0,
        "plan",
        "units",
        "units",
        C,
    ),
    spec(
        K::LabCollectionCoverage,
        "Laboratory waste collection coverage",
        "实验室废物收集覆盖率",
        95.0,
        "plan",
        "units",
        "units",
        C,
    ),
    spec(
        K::SmallBusinessCollectionCoverage,
        "Small-business hazardous-waste collection coverage",
        "小微企业危废收集覆盖率",
        95.0,
        "proposed",
        "units",
        "units",
        C,
    ),
    spec(
        K::RouteCompliance,
        "Construction-waste route compliance (loaded km in corridor)",
        "渣土车路线合规率",
        98.0,
        "proposed",
        "km",
        "km",
        C,
    ),
    spec(
        K::ClosedLoopRate,
        "Construction-waste closed-loop trips",
        "渣土运输闭环率",
        98.0,
        "proposed",
        "tickets",
        "tickets",
        C,
    ),
    spec(
        K::TimeWindowCompliance,
        "Construction-waste time-window compliance (loaded km)",
        "渣土车时段合规率",
        98.0,
        "proposed",
        "km",
        "km",
        C,
    ),
    Spec {
        id: K::HazardousStockTurnover,
        name: "Hazardous-waste stock turnover",
        name_zh: "危险废物库存周转天数",
        unit: "d",
        target_op: "<=",
        target: 180.0,
        target_source: "proposed",
        numerator_unit: "kg·d",
        denominator_unit: "kg",
        source: C,
    },
    spec(
        K::HazardousSpotCheckPass,
        "Hazardous-waste standardised-management spot checks passed",
        "危险废物规范化管理抽查合格率",
        100.0,
        "plan",
        "checks",
        "checks",
        I,
    ),
    spec(
        K::CleanProductionAudit,
        "Key enterprises passing a clean-production audit",
        "重点企业清洁生产审核通过率",
        100.0,
        "plan",
        "enterprises",
        "enterprises",
        I,
    ),
    spec(
        K::GreenBuildingShare,
        "Green buildings among new buildings",
        "新建绿色建筑占比",
        100.0,
        "plan",
        "m²",
        "m²",
        I,
    ),
    spec(
        K::PrefabricatedShare,
        "Prefabricated share of new buildings",
        "装配式建筑占比",
        40.0,
        "plan",
        "m²",
        "m²",
        I,
    ),
    spec(
        K::PublicityReach,
        "Publicity reach",
        "宣传普及率",
        90.0,
        "plan",
        "people",
        "people",
        I,
    ),
    spec(
        K::PublicParticipation,
        "Public participation",
        "公众参与率",
        90.0,
        "plan",
        "people",
        "people",
        I,
    ),
    spec(
        K::PublicSatisfaction,
        "Public satisfaction",
        "公众满意度",
        90.0,
        "plan",
        "respondents",
        "respondents",
        I,
    ),
];

impl KpiId {
    /// The id as written in tags, config keys and CSV files.
    pub const fn as_str(self) -> &'static str {
        match self {
            K::ConstructionUtilisation => "construction_utilisation",
            K::IndustrialUtilisation => "industrial_utilisation",
            K::HazardousClosure => "hazardous_closure",
            K::ManifestMatchRate => "manifest_match_rate",
            K::MedicalClearance48h => "medical_clearance_48h",
            K::MedicalDisposal => "medical_disposal",
            K::MedicalCollectionCoverage => "medical_collection_coverage",
            K::LabCollectionCoverage => "lab_collection_coverage",
            K::SmallBusinessCollectionCoverage => "small_business_collection_coverage",
            K::RouteCompliance => "route_compliance",
            K::ClosedLoopRate => "closed_loop_rate",
            K::TimeWindowCompliance => "time_window_compliance",
            K::HazardousStockTurnover => "hazardous_stock_turnover",
            K::HazardousSpotCheckPass => "hazardous_spot_check_pass",
            K::CleanProductionAudit => "clean_production_audit",
            K::GreenBuildingShare => "green_building_share",
            K::PrefabricatedShare => "prefabricated_share",
            K::PublicityReach => "publicity_reach",
            K::PublicParticipation => "public_participation",
            K::PublicSatisfaction => "public_satisfaction",
        }
    }

    /// The KPI named `s`.
    pub fn parse(s: &str) -> Option<KpiId> {
        CATALOGUE.iter().map(|c| c.id).find(|k| k.as_str() == s)
    }

    /// Its catalogue entry.
    pub fn spec(self) -> &'static Spec {
        // Every id has exactly one entry (tested).
        CATALOGUE
            .iter()
            .find(|c| c.id == self)
            .unwrap_or(&CATALOGUE[0])
    }

    /// `value` from a numerator and a denominator, in the KPI's unit;
    /// `None` when the denominator is 0.
    pub fn value(self, numerator: f64, denominator: f64) -> Option<f64> {
        if denominator <= 0.0 || !numerator.is_finite() || !denominator.is_finite() {
            return None;
        }
        let v = numerator / denominator;
        Some(if self.spec().unit == "%" {
            100.0 * v
        } else {
            v
        })
    }

    /// True when `value` meets `target` in this KPI's direction.
    pub fn met(self, value: f64, target: f64) -> bool {
        if self.spec().target_op == "<=" {
            value <= target
        } else {
            value >= target
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kpi_has_one_catalogue_entry_and_its_name_parses_back() {
        for (i, c) in CATALOGUE.iter().enumerate() {
            assert_eq!(
                CATALOGUE.iter().filter(|d| d.id == c.id).count(),
                1,
                "{:?}",
                c.id
            );
            assert_eq!(KpiId::parse(c.id.as_str()), Some(c.id));
            assert_eq!(c.id.spec().name, c.name);
            if i > 0 {
                assert!(CATALOGUE[i - 1].id < c.id, "catalogue in enum order");
            }
        }
        assert_eq!(KpiId::parse("nope"), None);
    }

    #[test]
    fn a_rate_is_a_percentage_and_turnover_is_days_and_zero_denominators_have_no_value() {
        assert_eq!(KpiId::RouteCompliance.value(3.0, 4.0), Some(75.0));
        assert_eq!(KpiId::HazardousStockTurnover.value(900.0, 5.0), Some(180.0));
        assert_eq!(KpiId::RouteCompliance.value(0.0, 0.0), None);
        assert!(KpiId::HazardousStockTurnover.met(180.0, 180.0));
        assert!(!KpiId::HazardousStockTurnover.met(180.5, 180.0));
        assert!(!KpiId::ConstructionUtilisation.met(59.9, 60.0));
    }
}
