//! `kpi` points: one per KPI, period and scope (docs/SCHEMA.md, `kpi`).
//!
//! The series key is (kpi, period, scope, site, formula_version, source)
//! and the time is the period's start, so recomputing a period rewrites
//! its point, and a value computed with another formula version is another
//! series: it can never overwrite one of a different version.

use crate::pb;
use crate::sink::line_protocol::{FieldValue as F, LineBuilder, LineError};

/// Measurement of KPI values.
pub const M_KPI: &str = "kpi";

/// Tag keys of `kpi`.
pub const TAGS: [&str; 6] = [
    "kpi",
    "period",
    "scope",
    "site",
    "formula_version",
    "source",
];

/// Field keys of `kpi` (`value`, `target` and `met` absent when unknown).
pub const FIELDS: [&str; 10] = [
    "value",
    "numerator",
    "denominator",
    "target",
    "target_op",
    "met",
    "unit",
    "numerator_unit",
    "denominator_unit",
    "note",
];

/// Appends the point of one KPI record.
pub fn encode(k: &pb::KpiRecord, buf: &mut String) -> Result<(), LineError> {
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let mut b = LineBuilder::new(buf, M_KPI)
        .tag("kpi", &k.kpi)
        .tag("period", &k.period)
        .tag("scope", &k.scope)
        .tag("site", &k.site_id)
        .tag("formula_version", &k.formula_version)
        .tag("source", &k.source)
        .field_opt_f64("value", k.value.filter(|v| v.is_finite()))
        .field("numerator", F::F64(finite(k.numerator)))
        .field("denominator", F::F64(finite(k.denominator)))
        .field_opt_f64("target", k.target.filter(|v| v.is_finite()));
    if let (Some(v), Some(t)) = (k.value, k.target) {
        let met = if k.target_op == "<=" { v <= t } else { v >= t };
        b = b.field("met", F::Bool(met));
    }
    b.field("target_op", F::Str(&k.target_op))
        .field("unit", F::Str(&k.unit))
        .field("numerator_unit", F::Str(&k.numerator_unit))
        .field("denominator_unit", F::Str(&k.denominator_unit))
        .field("note", F::Str(&k.note))
        .finish(k.period_start_unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kpi_record_becomes_one_point_keyed_by_kpi_period_scope_site_version_and_source() {
        let k = pb::KpiRecord {
            kpi: "construction_utilisation".into(),
            period: "month".into(),
            period_start_unix_ms: 1_790_784_000_000,
            scope: "site".into(),
            site_id: "cs-hanghai-east".into(),
            formula_version: "1".into(),
            source: "computed".into(),
            numerator: 6000.0,
            denominator: 10000.0,
            value: Some(60.0),
            target: Some(60.0),
            target_op: ">=".into(),
            unit: "%".into(),
            numerator_unit: "kg".into(),
            denominator_unit: "kg".into(),
            note: String::new(),
        };
        let mut buf = String::new();
        encode(&k, &mut buf).unwrap();
        assert_eq!(
            buf,
            "kpi,kpi=construction_utilisation,period=month,scope=site,site=cs-hanghai-east,formula_version=1,source=computed value=60.0,numerator=6000.0,denominator=10000.0,target=60.0,met=true,target_op=\">=\",unit=\"%\",numerator_unit=\"kg\",denominator_unit=\"kg\",note=\"\" 1790784000000\n"
        );
        // The zone has no site tag, and no value without a denominator.
        let zone = pb::KpiRecord {
            scope: "zone".into(),
            site_id: String::new(),
            numerator: 0.0,
            denominator: 0.0,
            value: None,
            ..k
        };
        let mut buf = String::new();
        encode(&zone, &mut buf).unwrap();
        assert!(buf.starts_with("kpi,kpi=construction_utilisation,period=month,scope=zone,formula_version=1,source=computed numerator=0.0,denominator=0.0,target=60.0,target_op="), "{buf}");
    }
}
