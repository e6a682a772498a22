//! Every measurement, tag and field a dashboard query or variable names is
//! one the service writes, and is documented: the names are taken from the
//! service's own encoders (a sample record of every kind, an alert, a KPI
//! and the pipeline point, encoded and parsed back), not from a list kept
//! by hand. The KPI gauges follow the KPI catalogue, and every panel uses
//! the provisioned datasource. No server needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use wastewatch::pb::{self, envelope::Body};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Measurement → (tag keys, field keys), from line protocol whose values
/// hold no character that needs escaping.
type Schema = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

fn parse_into(schema: &mut Schema, lines: &str) {
    for line in lines.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ' ');
        let (head, fields) = (parts.next().unwrap(), parts.next().unwrap());
        let mut head = head.split(',');
        let entry = schema.entry(head.next().unwrap().to_owned()).or_default();
        for t in head {
            entry.0.insert(t.split('=').next().unwrap().to_owned());
        }
        for f in fields.split(',') {
            entry.1.insert(f.split('=').next().unwrap().to_owned());
        }
    }
}

/// What the encoders write, with every optional field present.
fn written() -> Schema {
    let mut buf = String::new();
    let env = |kind: pb::DeviceKind, body: Body| pb::LogRecord {
        envelope: Some(pb::Envelope {
            site_id: "site-a".into(),
            device_id: "dev-1".into(),
            device_kind: kind as i32,
            seq: 1,
            recorded_at_unix_ms: 1_700_000_000_000,
            schema_version: 1,
            body: Some(body),
        }),
        received_at_unix_ms: 1_700_000_000_000,
        time_unix_ms: 1_700_000_000_000,
        clock_check: 0,
        from_json: false,
        alert: None,
        kpi: None,
    };
    let records = [
        env(
            pb::DeviceKind::Weighbridge,
            Body::WeighbridgeTicket(pb::WeighbridgeTicket {
                ticket_id: "T1".into(),
                plate: "P1".into(),
                gross_weight_kg: 2.0,
                tare_weight_kg: 1.0,
                net_weight_kg: 1.0,
                category: pb::WasteCategory::ConstructionSpoil as i32,
                destination_type: pb::DestinationType::Recycling as i32,
                direction: pb::Direction::In as i32,
                operator_id: "op".into(),
                permit_id: "p".into(),
                ..Default::default()
            }),
        ),
        env(
            pb::DeviceKind::Bin,
            Body::BinReading(pb::BinReading {
                fill_level_pct: 1.0,
                ..Default::default()
            }),
        ),
        env(
            pb::DeviceKind::Storage,
            Body::StorageReading(pb::StorageReading {
                stock_kg: 1.0,
                combustible_gas_pct_lel: Some(1.0),
                toxic_gas_pct_of_limit: Some(1.0),
                oxygen_pct_vol: Some(20.9),
                oldest_medical_lot_age_s: Some(3600),
                outside_temperature_deci_c: Some(250),
                ..Default::default()
            }),
        ),
        env(
            pb::DeviceKind::Truck,
            Body::TruckFix(pb::TruckFix {
                latitude_deg: 34.7,
                longitude_deg: 113.7,
                load_kg: Some(1.0),
                plate: "P1".into(),
                permit_id: "p".into(),
                ..Default::default()
            }),
        ),
        env(
            pb::DeviceKind::Bin,
            Body::DeviceStatus(pb::DeviceStatus {
                kind: pb::StatusKind::Heartbeat as i32,
                firmware_version: "1".into(),
                battery_mv: 3600,
                signal_dbm: Some(-70),
                uptime_s: 1,
            }),
        ),
    ];
    for r in &records {
        wastewatch::sink::encode::encode_record(r, &mut buf).unwrap();
    }
    wastewatch::sink::encode::encode_alert(
        &pb::AlertRecord {
            alert_id: 1,
            rule: "leak".into(),
            entity: "dev-1".into(),
            site_id: "site-a".into(),
            severity: "critical".into(),
            state: "firing".into(),
            from_state: "pending".into(),
            reason: "fired".into(),
            value: 1.0,
            threshold: 1.0,
            message: "m".into(),
            acknowledged_by: "ops".into(),
            at_unix_ms: 1_700_000_000_000,
        },
        &mut buf,
    )
    .unwrap();
    wastewatch::kpi::point::encode(
        &pb::KpiRecord {
            kpi: "route_compliance".into(),
            period: "month".into(),
            period_start_unix_ms: 1_700_000_000_000,
            scope: "site".into(),
            site_id: "site-a".into(),
            formula_version: "1".into(),
            source: "computed".into(),
            numerator: 1.0,
            denominator: 2.0,
            value: Some(50.0),
            target: Some(98.0),
            target_op: ">=".into(),
            unit: "%".into(),
            numerator_unit: "km".into(),
            denominator_unit: "km".into(),
            note: "n".into(),
        },
        &mut buf,
    )
    .unwrap();
    let lags = vec![
        (wastewatch::log::CURSOR_TSDB.to_owned(), 0),
        (wastewatch::log::CURSOR_RULES.to_owned(), 0),
    ];
    let values = wastewatch::metrics::Metrics::default().values(
        Some(wastewatch::log::LogStats {
            head: 0,
            depth: 0,
            live_bytes: 0,
            max_bytes: 0,
            quarantined: 0,
            quarantine_bytes: 0,
            segments: 0,
            full: false,
            storage_error: false,
            read_tail: 0,
            read_file: 0,
        }),
        &lags,
    );
    wastewatch::sink::task::pipeline_point("inst", &values, 1_700_000_000_000, &mut buf);
    let mut schema = Schema::new();
    parse_into(&mut schema, &buf);
    schema
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            out.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 8, "{} dashboards", out.len());
    out
}

/// Every query text of a dashboard: panel targets and variable queries.
fn queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                p["title"].as_str().unwrap().to_owned(),
                t["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push((
                format!("variable {}", v["name"]),
                v["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// The double-quoted identifiers of an InfluxQL statement, in order.
fn identifiers(q: &str) -> Vec<String> {
    q.split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// Names given with `AS "…"`: columns of a subquery, not stored keys.
fn aliases(q: &str) -> BTreeSet<String> {
    q.split("AS \"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

/// Measurements after FROM (outside subqueries' parentheses too).
fn measurements(q: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in q.split("FROM ").skip(1) {
        for m in part.split(',') {
            let m = m.trim_start();
            if let Some(rest) = m.strip_prefix('"') {
                out.insert(rest.split('"').next().unwrap().to_owned());
            } else {
                break;
            }
            if !m.split('"').nth(2).unwrap_or("").trim().is_empty() {
                break;
            }
        }
    }
    out
}

#[test]
fn every_measurement_tag_and_field_a_dashboard_names_is_written_by_the_encoders() {
    let schema = written();
    for m in [
        "weighbridge_ticket",
        "bin_reading",
        "storage_reading",
        "truck_fix",
        "device_status",
        "alert",
        "kpi",
        "wastewatch_pipeline",
    ] {
        assert!(
            schema.contains_key(m),
            "the encoders wrote no {m}: {schema:?}"
        );
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for (title, q) in queries(&d) {
            let from = measurements(&q);
            assert!(!from.is_empty(), "{file} / {title}: no measurement in {q}");
            let mut keys: BTreeSet<String> = BTreeSet::new();
            for m in &from {
                match schema.get(m) {
                    Some((tags, fields)) => {
                        keys.extend(tags.iter().cloned());
                        keys.extend(fields.iter().cloned());
                    }
                    None => problems.push(format!(
                        "{file} / {title}: measurement {m:?} is not written"
                    )),
                }
            }
            let own = aliases(&q);
            for id in identifiers(&q) {
                if from.contains(&id) || own.contains(&id) {
                    continue;
                }
                checked += 1;
                if !keys.contains(&id) {
                    problems.push(format!(
                        "{file} / {title}: {id:?} is neither a tag nor a field of {from:?}"
                    ));
                }
            }
            // SHOW TAG VALUES … WITH KEY = "k": k must be a tag, not a field.
            if let Some(k) = q.split("WITH KEY = \"").nth(1) {
                let k = k.split('"').next().unwrap();
                for m in &from {
                    if !schema[m].0.contains(k) {
                        problems.push(format!("{file} / {title}: {k:?} is not a tag of {m}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 200, "only {checked} names checked");
}

#[test]
fn every_tag_and_field_a_dashboard_names_is_documented() {
    let schema = written();
    let docs: String = [
        "docs/SCHEMA.md",
        "docs/OPERATIONS.md",
        "docs/KPIS.md",
        "docs/DASHBOARDS.md",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(repo().join(p)).unwrap())
    .collect();
    let documented: BTreeSet<&str> = docs
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let mut missing = BTreeSet::new();
    for (_, d) in dashboards() {
        for (_, q) in queries(&d) {
            let from = measurements(&q);
            let own = aliases(&q);
            for id in identifiers(&q) {
                if own.contains(&id) {
                    continue;
                }
                let stored = from.contains(&id)
                    || from.iter().any(|m| {
                        schema
                            .get(m)
                            .is_some_and(|(t, f)| t.contains(&id) || f.contains(&id))
                    });
                if stored && !documented.contains(id.as_str()) {
                    missing.insert(id);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named by a dashboard but not documented in backticks in docs/: {missing:?}"
    );
}

#[test]
fn every_kpi_of_the_catalogue_has_a_gauge_with_its_target_as_threshold() {
    let (_, d) = dashboards()
        .into_iter()
        .find(|(f, _)| f == "kpis.json")
        .expect("dashboards/kpis.json");
    let gauges: Vec<&Value> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "gauge")
        .collect();
    assert_eq!(gauges.len(), wastewatch::kpi::CATALOGUE.len());
    for spec in wastewatch::kpi::CATALOGUE.iter() {
        let id = spec.id.as_str();
        let g = gauges
            .iter()
            .find(|p| {
                p["targets"][0]["query"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("\"kpi\" = '{id}'"))
            })
            .unwrap_or_else(|| panic!("no gauge queries {id}"));
        let title = g["title"].as_str().unwrap();
        assert!(
            title.ends_with(&format!(" · {}", spec.name_zh)),
            "{id}: title {title:?} has the catalogue's Chinese name {}",
            spec.name_zh
        );
        let steps = g["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .unwrap();
        assert_eq!(steps.len(), 2, "{id}: base and target");
        assert_eq!(steps[1]["value"].as_f64(), Some(spec.target), "{id}");
        // Reaching a ">=" target turns the gauge green; passing a "<=" one red.
        let (base, at) = if spec.target_op == ">=" {
            ("red", "green")
        } else {
            ("green", "red")
        };
        assert_eq!(steps[0]["color"], base, "{id}");
        assert_eq!(steps[1]["color"], at, "{id}");
        let unit = g["fieldConfig"]["defaults"]["unit"].as_str().unwrap();
        assert_eq!(unit == "percent", spec.unit == "%", "{id}: unit {unit}");
    }
}

#[test]
fn every_panel_and_variable_uses_the_provisioned_datasource() {
    let uid_of = |file: &str| {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("uid:"))
            .unwrap_or_else(|| panic!("{file} has a uid"))
            .trim()
            .to_owned()
    };
    let uid = uid_of("dashboards/provisioning/datasources/wastewatch.yaml");
    assert_eq!(
        uid,
        uid_of("dashboards/provisioning/influxdb2/datasource.yaml"),
        "the InfluxDB 2.x datasource takes the same uid, so the dashboards serve both"
    );
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_owned()),
            "{file}: uid twice"
        );
        for p in d["panels"].as_array().unwrap() {
            assert_eq!(
                p["datasource"]["uid"],
                uid.as_str(),
                "{file} / {}",
                p["title"]
            );
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(
                    t["datasource"]["uid"],
                    uid.as_str(),
                    "{file} / {}",
                    p["title"]
                );
                assert_eq!(t["rawQuery"], true, "{file} / {}", p["title"]);
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                assert_eq!(
                    v["datasource"]["uid"],
                    uid.as_str(),
                    "{file} / {}",
                    v["name"]
                );
            }
        }
    }
}

#[test]
fn every_title_and_unit_a_person_reads_is_in_english_and_chinese() {
    let chinese = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    for (file, d) in dashboards() {
        let title = d["title"].as_str().unwrap();
        assert!(chinese(title) && title.contains(" · "), "{file}: {title}");
        for p in d["panels"].as_array().unwrap() {
            let t = p["title"].as_str().unwrap();
            let (en, zh) = t
                .split_once(" · ")
                .unwrap_or_else(|| panic!("{file}: {t:?} is 'English · 中文'"));
            assert!(!chinese(en) && chinese(zh), "{file}: {t:?}");
            // Units: an SI or symbol unit of Grafana, or a custom suffix
            // that gives the word in both languages.
            let mut units = vec![p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .map(str::to_owned)];
            for o in p["fieldConfig"]["overrides"].as_array().unwrap() {
                for prop in o["properties"].as_array().unwrap() {
                    if prop["id"] == "unit" {
                        units.push(prop["value"].as_str().map(str::to_owned));
                    }
                }
            }
            for u in units.into_iter().flatten() {
                let symbol = [
                    "percent",
                    "masskg",
                    "masst",
                    "celsius",
                    "velocitykmh",
                    "volt",
                    "bytes",
                    "s",
                    "dateTimeAsLocal",
                    "suffix: % LEL",
                ];
                assert!(
                    symbol.contains(&u.as_str()) || (u.starts_with("suffix:") && chinese(&u)),
                    "{file} / {t}: unit {u:?} is a symbol or says its word in both languages"
                );
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            let label = v["label"].as_str().unwrap_or_default();
            assert!(
                chinese(label),
                "{file}: variable {} label {label:?}",
                v["name"]
            );
        }
    }
}

#[test]
fn every_geojson_layer_of_the_zone_map_asks_the_service_for_a_layer_it_serves() {
    let (_, d) = dashboards()
        .into_iter()
        .find(|(f, _)| f == "zone-overview.json")
        .expect("dashboards/zone-overview.json");
    let registry =
        wastewatch::registry::Registry::load_dir(&repo().join("zone")).expect("the shipped zone");
    let mut layers = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        for l in p["options"]["layers"].as_array().into_iter().flatten() {
            if l["type"] != "geojson" {
                continue;
            }
            let src = l["config"]["src"].as_str().unwrap();
            let (path, layer) = src
                .split_once("?layer=")
                .unwrap_or_else(|| panic!("{src} names its layer"));
            assert!(
                path.ends_with("/api/v1/zone.geojson"),
                "{src} is the service's GeoJSON endpoint (behind the proxy path of docs/DASHBOARDS.md)"
            );
            let fc = wastewatch::api::geo::feature_collection(&registry, Some(layer));
            let features = fc["features"].as_array().unwrap();
            assert!(!features.is_empty(), "layer {layer} has features");
            let want = if layer == "routes" {
                "LineString"
            } else {
                "Polygon"
            };
            assert!(
                features.iter().all(|f| f["geometry"]["type"] == want),
                "{layer}: {want}s"
            );
            layers.insert(layer.to_owned());
        }
    }
    assert_eq!(
        layers,
        ["corridors", "routes", "sites"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
}
