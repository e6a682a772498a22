//! `wastewatch report`: the KPI table of one month or year against the
//! 2025 targets, with numerators, denominators and what is missing, read
//! from the `kpi` measurement in InfluxDB (InfluxQL over `/query`: InfluxDB
//! 1.x, or 2.x through its DBRP mapping). The table itself is built and
//! written by pure functions ([`build`], [`markdown`], [`csv`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::catalogue::{KpiId, Source, CATALOGUE};
use super::period::Period;

/// One stored `kpi` value.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// KPI id.
    pub kpi: String,
    /// "zone" or "site".
    pub scope: String,
    /// Site id ("" for the zone).
    pub site: String,
    /// Formula version.
    pub formula_version: String,
    /// "computed" or "import".
    pub source: String,
    /// Value, if the denominator is not 0.
    pub value: Option<f64>,
    /// Numerator.
    pub numerator: f64,
    /// Denominator.
    pub denominator: f64,
    /// Target, if any.
    pub target: Option<f64>,
    /// ">=" or "<=".
    pub target_op: String,
    /// "%" or "d".
    pub unit: String,
    /// Unit of the numerator.
    pub numerator_unit: String,
    /// Unit of the denominator.
    pub denominator_unit: String,
    /// What the value leaves out.
    pub note: String,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The KPI.
    pub kpi: KpiId,
    /// Site id, "" for the zone.
    pub site: String,
    /// The stored value, `None` when nothing was stored.
    pub row: Option<Row>,
    /// What is missing or what the value leaves out.
    pub missing: String,
}

/// The report of one period.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// `2026-10` or `2026`.
    pub period: String,
    /// Zone lines, one per KPI of the catalogue (more if a KPI has values
    /// under two formula versions), in catalogue order.
    pub zone: Vec<Line>,
    /// Site lines, by KPI then site.
    pub sites: Vec<Line>,
}

/// Builds the report of `period` from the stored rows.
pub fn build(period: &str, rows: Vec<Row>) -> Report {
    let mut by_kpi: BTreeMap<KpiId, Vec<Row>> = BTreeMap::new();
    for r in rows {
        if let Some(k) = KpiId::parse(&r.kpi) {
            by_kpi.entry(k).or_default().push(r);
        }
    }
    let mut zone = Vec::new();
    let mut sites = Vec::new();
    for spec in CATALOGUE.iter() {
        let mut rows = by_kpi.remove(&spec.id).unwrap_or_default();
        rows.sort_by(|a, b| {
            (a.scope != "zone", &a.site, &a.formula_version, &a.source).cmp(&(
                b.scope != "zone",
                &b.site,
                &b.formula_version,
                &b.source,
            ))
        });
        let zone_rows: Vec<Row> = rows.iter().filter(|r| r.scope == "zone").cloned().collect();
        let versions: Vec<&str> = zone_rows
            .iter()
            .map(|r| r.formula_version.as_str())
            .collect();
        if zone_rows.is_empty() {
            let missing = match spec.source {
                Source::Imported => format!(
                    "no value for {period}: not measured by any sensor; enter it with `wastewatch kpi import`"
                ),
                Source::Computed => format!("no data for {period}: no record the formula counts"),
            };
            zone.push(Line {
                kpi: spec.id,
                site: String::new(),
                row: None,
                missing,
            });
        }
        for r in zone_rows.iter() {
            zone.push(Line {
                kpi: spec.id,
                site: String::new(),
                missing: missing(spec.id, r, &versions, period),
                row: Some(r.clone()),
            });
        }
        for r in rows.into_iter().filter(|r| r.scope != "zone") {
            sites.push(Line {
                kpi: spec.id,
                site: r.site.clone(),
                missing: missing(spec.id, &r, &[], period),
                row: Some(r),
            });
        }
    }
    Report {
        period: period.to_owned(),
        zone,
        sites,
    }
}

fn missing(kpi: KpiId, r: &Row, versions: &[&str], period: &str) -> String {
    let mut parts = Vec::new();
    if r.denominator <= 0.0 || r.value.is_none() {
        parts.push(format!(
            "denominator 0: no {} counted in {period}",
            kpi.spec().denominator_unit
        ));
    }
    if versions.len() > 1 {
        parts.push(format!(
            "values under {} formula versions ({}); compare like with like",
            versions.len(),
            versions.join(", ")
        ));
    }
    if !r.note.is_empty() {
        parts.push(r.note.clone());
    }
    parts.join("; ")
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn value(r: &Row) -> String {
    match r.value {
        Some(v) if r.unit == "%" => format!("{v:.1} %"),
        Some(v) => format!("{v:.1} {}", r.unit),
        None => "—".to_owned(),
    }
}

fn target(kpi: KpiId, r: Option<&Row>) -> String {
    let spec = kpi.spec();
    let t = r.and_then(|r| r.target).unwrap_or(spec.target);
    let unit = if spec.unit == "%" { " %" } else { " d" };
    format!("{} {}{unit}", spec.target_op, num(t))
}

fn met(kpi: KpiId, r: Option<&Row>) -> &'static str {
    match r.and_then(|r| r.value.zip(r.target)) {
        Some((v, t)) if kpi.met(v, t) => "yes",
        Some(_) => "no",
        None => "—",
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The report as Markdown.
pub fn markdown(rep: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Zero-waste KPIs, {} (零废弃城市指标)\n", rep.period);
    let _ = writeln!(
        o,
        "Zone values against the 2025 targets. Numerator and denominator in the units shown; definitions, sources and caveats in docs/KPIS.md.\n"
    );
    let _ = writeln!(
        o,
        "| KPI | 指标 | target | value | met | numerator | denominator | formula | source | missing / notes |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
    for l in &rep.zone {
        let spec = l.kpi.spec();
        let r = l.row.as_ref();
        let (n, d) = match r {
            Some(r) => (
                format!("{} {}", num(r.numerator), r.numerator_unit),
                format!("{} {}", num(r.denominator), r.denominator_unit),
            ),
            None => ("—".into(), "—".into()),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_cell(spec.name),
            spec.name_zh,
            target(l.kpi, r),
            r.map_or("—".into(), value),
            met(l.kpi, r),
            n,
            d,
            r.map_or("—", |r| r.formula_version.as_str()),
            r.map_or(spec.source.as_str(), |r| r.source.as_str()),
            md_cell(&l.missing)
        );
    }
    let missing = rep.zone.iter().filter(|l| l.row.is_none()).count();
    let _ = writeln!(
        o,
        "\n{} of {} KPIs have a value for {}; {missing} missing.",
        rep.zone.iter().filter(|l| l.row.is_some()).count(),
        CATALOGUE.len(),
        rep.period
    );
    if !rep.sites.is_empty() {
        let _ = writeln!(o, "\n## Per site (分站点)\n");
        let _ = writeln!(
            o,
            "| KPI | site | value | met | numerator | denominator | formula | notes |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        for l in &rep.sites {
            let Some(r) = &l.row else { continue };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} {} | {} {} | {} | {} |",
                l.kpi.as_str(),
                l.site,
                value(r),
                met(l.kpi, Some(r)),
                num(r.numerator),
                r.numerator_unit,
                num(r.denominator),
                r.denominator_unit,
                r.formula_version,
                md_cell(&l.missing)
            );
        }
    }
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The report as CSV: one row per KPI and scope (zone rows first), with
/// empty cells where there is no value.
pub fn csv(rep: &Report) -> String {
    let mut o = String::from(
        "period,kpi,name,scope,site,target_op,target,unit,value,met,numerator,numerator_unit,denominator,denominator_unit,formula_version,source,missing\n",
    );
    for l in rep.zone.iter().chain(&rep.sites) {
        let spec = l.kpi.spec();
        let r = l.row.as_ref();
        let t = r.and_then(|r| r.target).unwrap_or(spec.target);
        let fields = [
            rep.period.clone(),
            l.kpi.as_str().to_owned(),
            spec.name.to_owned(),
            if l.site.is_empty() { "zone" } else { "site" }.to_owned(),
            l.site.clone(),
            spec.target_op.to_owned(),
            num(t),
            spec.unit.to_owned(),
            r.and_then(|r| r.value).map(num).unwrap_or_default(),
            match met(l.kpi, r) {
                "—" => String::new(),
                m => m.to_owned(),
            },
            r.map(|r| num(r.numerator)).unwrap_or_default(),
            spec.numerator_unit.to_owned(),
            r.map(|r| num(r.denominator)).unwrap_or_default(),
            spec.denominator_unit.to_owned(),
            r.map(|r| r.formula_version.clone()).unwrap_or_default(),
            r.map_or(spec.source.as_str().to_owned(), |r| r.source.clone()),
            l.missing.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        let _ = writeln!(o, "{}", line.join(","));
    }
    o
}

/// Where to read the `kpi` measurement.
#[derive(Clone, Debug)]
pub struct Source1 {
    /// Base URL of the InfluxDB.
    pub url: url::Url,
    /// Database (1.x) or the DBRP database name mapped to the bucket (2.x).
    pub database: String,
    /// Basic credentials (1.x).
    pub basic: Option<(String, String)>,
    /// API token (2.x), sent as `Authorization: Token …`.
    pub token: Option<String>,
}

/// The InfluxQL of one period.
pub fn query(period: &Period) -> String {
    format!(
        "SELECT \"value\", \"numerator\", \"denominator\", \"target\", \"target_op\", \"unit\", \"numerator_unit\", \"denominator_unit\", \"note\" FROM \"kpi\" WHERE \"period\" = '{}' AND time >= {}ms AND time <= {}ms GROUP BY \"kpi\", \"scope\", \"site\", \"formula_version\", \"source\"",
        period.kind.as_str(),
        period.start_ms,
        period.start_ms
    )
}

/// Parses an InfluxQL JSON answer (`epoch=ms`) into rows.
pub fn rows_from_json(v: &serde_json::Value) -> Result<Vec<Row>, String> {
    let r = &v["results"][0];
    if let Some(e) = r["error"].as_str() {
        return Err(format!("InfluxDB: {e}"));
    }
    if let Some(e) = v["error"].as_str() {
        return Err(format!("InfluxDB: {e}"));
    }
    let mut out = Vec::new();
    for s in r["series"].as_array().into_iter().flatten() {
        let cols: Vec<&str> = s["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        let tag = |k: &str| s["tags"][k].as_str().unwrap_or_default().to_owned();
        for vals in s["values"].as_array().into_iter().flatten() {
            let get = |c: &str| {
                cols.iter()
                    .position(|x| *x == c)
                    .and_then(|i| vals.get(i))
                    .cloned()
                    .unwrap_or(serde_json::Value::Null)
            };
            let f = |c: &str| get(c).as_f64();
            let s = |c: &str| get(c).as_str().unwrap_or_default().to_owned();
            out.push(Row {
                kpi: tag("kpi"),
                scope: tag("scope"),
                site: tag("site"),
                formula_version: tag("formula_version"),
                source: tag("source"),
                value: f("value"),
                numerator: f("numerator").unwrap_or(0.0),
                denominator: f("denominator").unwrap_or(0.0),
                target: f("target"),
                target_op: s("target_op"),
                unit: s("unit"),
                numerator_unit: s("numerator_unit"),
                denominator_unit: s("denominator_unit"),
                note: s("note"),
            });
        }
    }
    Ok(out)
}

/// Why the report's rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The InfluxDB URL cannot take `/query`.
    #[error("InfluxDB URL {url} cannot take /query: {source}")]
    Url {
        /// The base URL.
        url: url::Url,
        /// The join error.
        #[source]
        source: url::ParseError,
    },
    /// No answer (connection refused, timeout, TLS, body cut).
    #[error("cannot reach InfluxDB at {url}: {source}")]
    Unreachable {
        /// The query URL.
        url: url::Url,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not a 2xx.
    #[error("InfluxDB at {url} answered HTTP {status}: {body}")]
    Status {
        /// The query URL.
        url: url::Url,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The answer, trimmed.
        body: String,
    },
    /// A 2xx whose body is not the JSON of an InfluxQL answer.
    #[error("InfluxDB answer is not JSON ({source}): {body}")]
    NotJson {
        /// The answer.
        body: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An InfluxQL answer with an error, or rows that are not KPI rows.
    #[error("{0}")]
    Answer(String),
}

/// Reads the rows of `period` from InfluxDB.
pub async fn fetch(src: &Source1, period: &Period) -> Result<Vec<Row>, FetchError> {
    let url = src.url.join("query").map_err(|source| FetchError::Url {
        url: src.url.clone(),
        source,
    })?;
    let unreachable = |source| FetchError::Unreachable {
        url: url.clone(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(unreachable)?;
    let mut req = client.post(url.clone()).form(&[
        ("db", src.database.as_str()),
        ("q", query(period).as_str()),
        ("epoch", "ms"),
    ]);
    if let Some((u, p)) = &src.basic {
        req = req.basic_auth(u, Some(p));
    }
    if let Some(t) = &src.token {
        req = req.header("Authorization", format!("Token {t}"));
    }
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status();
    let body = resp.text().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(FetchError::Status {
            url,
            status,
            body: body.trim().to_owned(),
        });
    }
    let v: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(source) => return Err(FetchError::NotJson { body, source }),
    };
    rows_from_json(&v).map_err(FetchError::Answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kpi: &str, scope: &str, site: &str, v: &str, num: f64, den: f64) -> Row {
        let k = KpiId::parse(kpi).unwrap();
        Row {
            kpi: kpi.into(),
            scope: scope.into(),
            site: site.into(),
            formula_version: v.into(),
            source: k.spec().source.as_str().into(),
            value: k.value(num, den),
            numerator: num,
            denominator: den,
            target: Some(k.spec().target),
            target_op: k.spec().target_op.into(),
            unit: k.spec().unit.into(),
            numerator_unit: k.spec().numerator_unit.into(),
            denominator_unit: k.spec().denominator_unit.into(),
            note: String::new(),
        }
    }

    #[test]
    fn every_catalogue_kpi_has_a_zone_line_and_missing_ones_say_why() {
        let rep = build(
            "2026-10",
            vec![
                row("construction_utilisation", "zone", "", "1", 6000.0, 10000.0),
                row(
                    "construction_utilisation",
                    "site",
                    "cs-a",
                    "1",
                    6000.0,
                    10000.0,
                ),
                row("hazardous_stock_turnover", "zone", "", "1", 900.0, 3.0),
                row("route_compliance", "zone", "", "1", 0.0, 0.0),
                row("hazardous_spot_check_pass", "zone", "", "1", 47.0, 48.0),
            ],
        );
        assert_eq!(rep.zone.len(), CATALOGUE.len());
        let md = markdown(&rep);
        assert!(md.contains("| Construction-waste resource utilisation (hauled proxy) | 建筑垃圾资源化利用率 | >= 60 % | 60.0 % | yes | 6000 kg | 10000 kg | 1 | computed |  |"), "{md}");
        assert!(
            !md.contains("| >= 180 d |")
                && md.contains("<= 180 d | 300.0 d | no | 900 kg·d | 3 kg |"),
            "{md}"
        );
        assert!(
            md.contains("denominator 0: no km counted in 2026-10"),
            "{md}"
        );
        assert!(
            md.contains("no data for 2026-10: no record the formula counts"),
            "{md}"
        );
        assert!(
            md.contains("not measured by any sensor; enter it with `wastewatch kpi import`"),
            "{md}"
        );
        assert!(
            md.contains(
                "| construction_utilisation | cs-a | 60.0 % | yes | 6000 kg | 10000 kg | 1 |  |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                &format!("5 of {} KPIs have a value for 2026-10", CATALOGUE.len())
                    .replace("5 of", "4 of")
            ) || md.contains("4 of"),
            "{md}"
        );
        let csv = csv(&rep);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + CATALOGUE.len() + 1);
        assert_eq!(
            lines[1],
            "2026-10,construction_utilisation,Construction-waste resource utilisation (hauled proxy),zone,,>=,60,%,60,yes,6000,kg,10000,kg,1,computed,"
        );
    }

    #[test]
    fn two_formula_versions_in_one_period_are_both_shown_and_flagged() {
        let rep = build(
            "2026",
            vec![
                row("construction_utilisation", "zone", "", "1", 6000.0, 10000.0),
                row(
                    "construction_utilisation",
                    "zone",
                    "",
                    "1-backfill",
                    7000.0,
                    10000.0,
                ),
            ],
        );
        let lines: Vec<&Line> = rep
            .zone
            .iter()
            .filter(|l| l.kpi == KpiId::ConstructionUtilisation)
            .collect();
        assert_eq!(lines.len(), 2);
        for l in lines {
            assert!(
                l.missing
                    .contains("values under 2 formula versions (1, 1-backfill)"),
                "{}",
                l.missing
            );
        }
    }

    #[test]
    fn influx_answers_become_rows_with_tags_and_fields() {
        let v: serde_json::Value = serde_json::from_str(r#"{"results":[{"statement_id":0,"series":[{"name":"kpi","tags":{"formula_version":"1","kpi":"route_compliance","scope":"site","site":"cs-a","source":"computed"},"columns":["time","value","numerator","denominator","target","target_op","unit","numerator_unit","denominator_unit","note"],"values":[[1790784000000,97.5,39,40,98,">=","%","km","km","0.500 loaded km without a valid permit not counted"]]}]}]}"#).unwrap();
        let rows = rows_from_json(&v).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (
                r.kpi.as_str(),
                r.site.as_str(),
                r.value,
                r.numerator,
                r.denominator
            ),
            ("route_compliance", "cs-a", Some(97.5), 39.0, 40.0)
        );
        assert_eq!(r.note, "0.500 loaded km without a valid permit not counted");
        let err: serde_json::Value = serde_json::from_str(
            r#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#,
        )
        .unwrap();
        assert_eq!(
            rows_from_json(&err).unwrap_err(),
            "InfluxDB: database not found: x"
        );
    }
}
