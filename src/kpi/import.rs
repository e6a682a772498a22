//! `wastewatch kpi import`: the plan's targets that no sensor measures
//! (spot checks, clean-production audits, green and prefabricated
//! buildings, publicity) entered by operators from a CSV file, so the
//! report covers every 2025 target.
//!
//! The file (UTF-8, a header line, one value per line):
//!
//! ```text
//! kpi,period,site,numerator,denominator,note
//! hazardous_spot_check_pass,2026-10,,47,48,municipal spot check
//! ```
//!
//! Parsing is pure ([`parse`]) and reports every bad line at once. Each
//! line becomes one `kpi` point with `source=import`, stamped with the
//! period's start: importing the same file again rewrites the same points.
//! The CSV is the record of these values (they are not sensor data, so they
//! do not pass through the durable log); keep it.

use super::catalogue::{KpiId, Source};
use super::config::KpiConfig;
use super::period::Period;
use crate::pb;

/// Formula version of imported values: the operator's numbers as given.
pub const IMPORT_VERSION: &str = "1";

/// The header the file must start with.
pub const HEADER: &str = "kpi,period,site,numerator,denominator,note";

/// Splits one CSV line (RFC 4180 quoting).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => {
                quoted = false;
                if chars.peek().is_some_and(|c| *c != ',') {
                    return Err("text after a closing quote".into());
                }
            }
            (false, ',') => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
            }
            (_, c) => {
                cur.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(cur);
    Ok(out)
}

/// Parses the file into KPI records; every problem, one per line, on error.
pub fn parse(text: &str, cfg: &KpiConfig) -> Result<Vec<pb::KpiRecord>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, h)) if h.trim().trim_start_matches('\u{feff}') == HEADER => {}
        Some((_, h)) => errors.push(format!("line 1: header is {h:?}; it must be {HEADER:?}")),
        None => errors.push(format!("the file is empty; it must start with {HEADER:?}")),
    }
    let mut seen = std::collections::BTreeMap::new();
    for (i, line) in lines {
        let n = i + 1;
        let f = match fields(line) {
            Ok(f) => f,
            Err(e) => {
                errors.push(format!("line {n}: {e}"));
                continue;
            }
        };
        if f.len() != 6 {
            errors.push(format!(
                "line {n}: {} fields; expected 6 ({HEADER})",
                f.len()
            ));
            continue;
        }
        let mut bad = Vec::new();
        let kpi = match KpiId::parse(f[0].trim()) {
            Some(k) if k.spec().source == Source::Imported => Some(k),
            Some(k) => {
                bad.push(format!(
                    "{} is computed from the records, not imported",
                    k.as_str()
                ));
                None
            }
            None => {
                bad.push(format!(
                    "kpi {:?} is not one of {}",
                    f[0],
                    super::CATALOGUE
                        .iter()
                        .filter(|c| c.source == Source::Imported)
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                None
            }
        };
        let period = Period::parse(&f[1], cfg.utc_offset_min);
        if period.is_none() {
            bad.push(format!(
                "period {:?} is not YYYY, YYYY-MM or YYYY-MM-DD",
                f[1]
            ));
        }
        let site = f[2].trim().to_owned();
        let number = |name: &str, s: &str, bad: &mut Vec<String>| match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
            _ => {
                bad.push(format!("{name} {s:?} is not a number >= 0"));
                None
            }
        };
        let numerator = number("numerator", &f[3], &mut bad);
        let denominator = number("denominator", &f[4], &mut bad);
        if let (Some(a), Some(b)) = (numerator, denominator) {
            if b <= 0.0 {
                bad.push("denominator is 0".into());
            } else if a > b {
                bad.push(format!("numerator {a} is larger than denominator {b}"));
            }
        }
        if f[5].contains(['\r', '\n']) {
            bad.push("note has a line break".into());
        }
        if let (Some(k), Some(p), true) = (kpi, period, bad.is_empty()) {
            if let Some(first) = seen.insert((k, p, site.clone()), n) {
                bad.push(format!(
                    "{} {} {} is also on line {first}",
                    k.as_str(),
                    f[1].trim(),
                    if site.is_empty() { "(zone)" } else { &site }
                ));
            }
        }
        match (kpi, period, numerator, denominator) {
            (Some(k), Some(p), Some(a), Some(b)) if bad.is_empty() => {
                let spec = k.spec();
                out.push(pb::KpiRecord {
                    kpi: k.as_str().to_owned(),
                    period: p.kind.as_str().to_owned(),
                    period_start_unix_ms: p.start_ms,
                    scope: if site.is_empty() { "zone" } else { "site" }.to_owned(),
                    site_id: site,
                    formula_version: IMPORT_VERSION.to_owned(),
                    source: Source::Imported.as_str().to_owned(),
                    numerator: a,
                    denominator: b,
                    value: k.value(a, b),
                    target: Some(cfg.target(k)),
                    target_op: spec.target_op.to_owned(),
                    unit: spec.unit.to_owned(),
                    numerator_unit: spec.numerator_unit.to_owned(),
                    denominator_unit: spec.denominator_unit.to_owned(),
                    note: f[5].trim().to_owned(),
                });
            }
            _ => errors.extend(bad.into_iter().map(|b| format!("line {n}: {b}"))),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The line protocol of the records.
pub fn lines(records: &[pb::KpiRecord]) -> Result<String, String> {
    let mut buf = String::new();
    for r in records {
        super::point::encode(r, &mut buf).map_err(|e| format!("{}: {e:?}", r.kpi))?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_file_becomes_one_imported_point_per_line() {
        let text = "kpi,period,site,numerator,denominator,note\n\
            hazardous_spot_check_pass,2026-10,,47,48,\"municipal check, October\"\n\
            prefabricated_share,2026,,41000,100000,m² of floor area\n";
        let recs = parse(text, &KpiConfig::default()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].kpi, "hazardous_spot_check_pass");
        assert_eq!(recs[0].period, "month");
        assert_eq!(recs[0].period_start_unix_ms, 1_790_784_000_000);
        assert_eq!((recs[0].numerator, recs[0].denominator), (47.0, 48.0));
        assert_eq!(recs[0].source, "import");
        assert_eq!(recs[0].note, "municipal check, October");
        assert_eq!(recs[1].value, Some(41.0));
        assert_eq!(recs[1].target, Some(40.0));
        let lp = lines(&recs).unwrap();
        assert!(lp.starts_with("kpi,kpi=hazardous_spot_check_pass,period=month,scope=zone,formula_version=1,source=import value="), "{lp}");
    }

    #[test]
    fn every_bad_line_is_reported_at_once() {
        let text = "kpi,period,site,numerator,denominator,note\n\
            route_compliance,2026-10,,1,2,\n\
            nope,2026-13,,x,0,\n\
            public_satisfaction,2026,,95,90,\n\
            public_satisfaction,2026,,80,90,\n\
            public_satisfaction,2026,,81,90,\n\
            publicity_reach,2026,,1\n";
        let errors = parse(text, &KpiConfig::default()).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "line 2: route_compliance is computed from the records, not imported",
                "line 3: kpi \"nope\" is not one of hazardous_spot_check_pass, clean_production_audit, green_building_share, prefabricated_share, publicity_reach, public_participation, public_satisfaction",
                "line 3: period \"2026-13\" is not YYYY, YYYY-MM or YYYY-MM-DD",
                "line 3: numerator \"x\" is not a number >= 0",
                "line 4: numerator 95 is larger than denominator 90",
                "line 6: public_satisfaction 2026 (zone) is also on line 5",
                "line 7: 4 fields; expected 6 (kpi,period,site,numerator,denominator,note)",
            ]
        );
        assert!(parse("kpi,period\n", &KpiConfig::default()).is_err());
    }
}
