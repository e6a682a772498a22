//! Sparkplug B mapping (`sparkplug.json`, optional): which wastewatch device
//! each Sparkplug edge node and device is, and which body field each of its
//! metrics fills, in which unit.
//!
//! ```json
//! [ { "group_id": "jingnan-factories",
//!     "edge_node_id": "edge-autoparts-01",
//!     "devices": [
//!       { "sparkplug_device_id": "Scale1",
//!         "device_id": "wb-factory-autoparts-01",
//!         "metrics": [
//!           { "name": "Ticket/Number", "field": "ticket_id" },
//!           { "name": "Ticket/Gross", "field": "gross_weight_kg", "unit": "t" } ] } ] } ]
//! ```
//!
//! `sparkplug_device_id` absent or null maps the edge node's own metrics
//! (NBIRTH/NDATA). An edge node speaks only for the devices listed under
//! it, and a wastewatch device is mapped at most once, so no edge node can
//! speak for another's device. The `edge_node_id` is also the node's broker
//! identity (the ACL lets it publish only under its own id), hence it
//! follows the registry's id rules. Every field of a kind has one canonical
//! unit (the one in its name: `_kg`, `_s`, `_deci_c`, `_mv`, `_pct`); a
//! metric in another unit of the same dimension is scaled (t → kg × 1000,
//! °C → 0.1 °C × 10, min → s × 60, V → mV × 1000).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value as Json;

use super::error::{Entry, Problem};
use super::{Device, IdMap};
use crate::pb::{self, envelope::Body, DeviceKind};
use crate::sparkplug::{valid_id, Value};

/// The key of an edge node in [`super::Registry::sparkplug`].
pub fn node_key(group_id: &str, edge_node_id: &str) -> String {
    format!("{group_id}/{edge_node_id}")
}

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A real number in the field's canonical unit.
    Real,
    /// An unsigned integer (counts, seconds, millivolts).
    Unsigned,
    /// A signed integer (tenths of a degree).
    Signed,
    /// Unix ms (a DateTime metric or an integer).
    Time,
    /// True or false.
    Bool,
    /// A text.
    Text,
    /// `WasteCategory` (code or name).
    Category,
    /// `DestinationType` (code or name).
    Destination,
    /// `Direction` (code or name).
    Direction,
}

/// A body field a metric can fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name in the protobuf body.
    pub name: &'static str,
    /// What it holds.
    pub ty: FieldType,
    /// Its canonical unit (`""` for none).
    pub unit: &'static str,
}

const fn f(name: &'static str, ty: FieldType, unit: &'static str) -> FieldSpec {
    FieldSpec { name, ty, unit }
}

use FieldType as T;

const TICKET: &[FieldSpec] = &[
    f("ticket_id", T::Text, ""),
    f("plate", T::Text, ""),
    f("gross_weight_kg", T::Real, "kg"),
    f("tare_weight_kg", T::Real, "kg"),
    f("net_weight_kg", T::Real, "kg"),
    f("category", T::Category, ""),
    f("hazardous_waste_code", T::Text, ""),
    f("catalogue_edition", T::Text, ""),
    f("origin_site_id", T::Text, ""),
    f("destination_site_id", T::Text, ""),
    f("destination_type", T::Destination, ""),
    f("direction", T::Direction, ""),
    f("weighed_in_at_unix_ms", T::Time, "ms"),
    f("weighed_out_at_unix_ms", T::Time, "ms"),
    f("operator_id", T::Text, ""),
    f("anpr_confirmed", T::Bool, ""),
    f("axle_count", T::Unsigned, ""),
    f("permit_id", T::Text, ""),
    f("manifest_id", T::Text, ""),
    f("source_unit_id", T::Text, ""),
];

const STORAGE: &[FieldSpec] = &[
    f("stock_kg", T::Real, "kg"),
    f("oldest_container_age_s", T::Unsigned, "s"),
    f("temperature_deci_c", T::Signed, "dC"),
    f("combustible_gas_pct_lel", T::Real, "%"),
    f("toxic_gas_pct_of_limit", T::Real, "%"),
    f("oxygen_pct_vol", T::Real, "%"),
    f("leak_detected", T::Bool, ""),
    f("door_open", T::Bool, ""),
    f("container_count", T::Unsigned, ""),
    f("oldest_medical_lot_age_s", T::Unsigned, "s"),
    f("outside_temperature_deci_c", T::Signed, "dC"),
    f("battery_mv", T::Unsigned, "mV"),
];

const BIN: &[FieldSpec] = &[
    f("fill_level_pct", T::Real, "%"),
    f("temperature_deci_c", T::Signed, "dC"),
    f("tilt_deg", T::Real, "deg"),
    f("battery_mv", T::Unsigned, "mV"),
    f("fire_flag", T::Bool, ""),
    f("battery_low_flag", T::Bool, ""),
];

/// The fields metrics can fill for a device kind (empty for trucks, which
/// report over JT/T 808 or the native topics).
pub fn fields(kind: DeviceKind) -> &'static [FieldSpec] {
    match kind {
        DeviceKind::Weighbridge => TICKET,
        DeviceKind::Storage => STORAGE,
        DeviceKind::Bin => BIN,
        _ => &[],
    }
}

/// The factor from `unit` to the canonical unit `canonical`, if the two are
/// of one dimension.
pub fn unit_factor(canonical: &str, unit: &str) -> Option<f64> {
    let table: &[(&str, f64)] = match canonical {
        "kg" => &[("kg", 1.0), ("t", 1000.0), ("g", 0.001)],
        "s" => &[
            ("s", 1.0),
            ("ms", 0.001),
            ("min", 60.0),
            ("h", 3600.0),
            ("d", 86_400.0),
        ],
        "dC" => &[("dC", 1.0), ("°C", 10.0), ("C", 10.0)],
        "mV" => &[("mV", 1.0), ("V", 1000.0)],
        "%" => &[("%", 1.0)],
        "deg" => &[("deg", 1.0)],
        "ms" => &[("ms", 1.0), ("s", 1000.0)],
        "" => &[("", 1.0)],
        _ => &[],
    };
    table.iter().find(|(u, _)| *u == unit).map(|(_, k)| *k)
}

/// One metric → field mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricMap {
    /// The Sparkplug metric name, as in the birth certificate.
    pub name: String,
    /// The body field it fills.
    pub field: FieldSpec,
    /// The unit the metric is in.
    pub unit: String,
    /// Multiply the metric by this to get the field's canonical unit.
    pub factor: f64,
}

/// A Sparkplug device (or the edge node's own metrics) mapped to a
/// wastewatch device.
#[derive(Clone, Debug, PartialEq)]
pub struct SparkplugDevice {
    /// The Sparkplug device id; `None` for the edge node's own metrics.
    pub sparkplug_device_id: Option<String>,
    /// The wastewatch device.
    pub device_id: String,
    /// Its site.
    pub site_id: String,
    /// Its kind.
    pub kind: DeviceKind,
    /// Metric mappings by metric name.
    pub metrics: HashMap<String, MetricMap>,
}

impl SparkplugDevice {
    /// True when a data message carrying `metric` makes a record: any
    /// mapped metric for a reading; for a weighbridge only the one mapped
    /// to `ticket_id` (a ticket is an event; its other metrics may arrive
    /// before it, and are kept).
    pub fn triggers_record(&self, metric: &str) -> bool {
        match self.metrics.get(metric) {
            Some(m) if self.kind == DeviceKind::Weighbridge => m.field.name == "ticket_id",
            Some(_) => true,
            None => false,
        }
    }
}

/// An edge node and the devices it may speak for.
#[derive(Clone, Debug, PartialEq)]
pub struct SparkplugNode {
    /// Group id.
    pub group_id: String,
    /// Edge node id (also its broker identity).
    pub edge_node_id: String,
    /// Mapped devices; the one with `sparkplug_device_id` `None`, if any,
    /// is the node's own metrics.
    pub devices: Vec<SparkplugDevice>,
}

impl SparkplugNode {
    /// The mapping of Sparkplug device `device` (`None`: the node itself).
    pub fn device(&self, device: Option<&str>) -> Option<&SparkplugDevice> {
        self.devices
            .iter()
            .find(|d| d.sparkplug_device_id.as_deref() == device)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    group_id: String,
    edge_node_id: String,
    devices: Vec<RawDevice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    #[serde(default)]
    sparkplug_device_id: Option<String>,
    device_id: String,
    metrics: Vec<RawMetric>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: String,
    field: String,
    #[serde(default)]
    unit: Option<String>,
}

fn kind_name(k: DeviceKind) -> &'static str {
    match k {
        DeviceKind::Weighbridge => "weighbridge",
        DeviceKind::Bin => "bin",
        DeviceKind::Storage => "storage",
        DeviceKind::Truck => "truck",
        DeviceKind::Unspecified => "unspecified",
    }
}

/// Validates the entries of `sparkplug.json` against the valid devices.
pub(super) fn load(
    values: Vec<Json>,
    devices: &IdMap<Device>,
) -> (IdMap<SparkplugNode>, Vec<(Entry, Problem)>) {
    let mut nodes = IdMap::default();
    let mut problems = Vec::new();
    let mut edge_ids: HashSet<String> = HashSet::new();
    // wastewatch device id → the node and Sparkplug device mapping it.
    let mut mapped: HashMap<String, String> = HashMap::new();
    for (index, v) in values.into_iter().enumerate() {
        let entry = v
            .get("edge_node_id")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .map_or(Entry::Index(index), |s| Entry::Id(s.to_owned()));
        let mut p = Vec::new();
        let bad = |message: String| Problem::Sparkplug { message };
        let raw: RawNode = match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                problems.push((
                    entry,
                    Problem::Schema {
                        message: e.to_string(),
                    },
                ));
                continue;
            }
        };
        if !super::load::is_valid_id(&raw.edge_node_id) {
            p.push(bad(format!("edge_node_id {:?} is not a valid id; it is the edge node's broker user name, so use 1 to 64 lowercase ASCII letters, digits and single '-'", raw.edge_node_id)));
        }
        if !edge_ids.insert(raw.edge_node_id.clone()) {
            p.push(bad(format!("edge_node_id {:?} appears twice; an edge node id is its broker identity and must be unique across groups", raw.edge_node_id)));
        }
        if !valid_id(&raw.group_id) {
            p.push(bad(format!(
                "group_id {:?} is empty or contains '/', '+', '#' or NUL",
                raw.group_id
            )));
        }
        if raw.devices.is_empty() {
            p.push(bad("devices is empty; map at least one device".into()));
        }
        let mut sp_ids: HashSet<Option<String>> = HashSet::new();
        let mut out_devices = Vec::new();
        for (di, d) in raw.devices.into_iter().enumerate() {
            let at = format!(
                "devices[{di}] ({})",
                d.sparkplug_device_id
                    .as_deref()
                    .unwrap_or("the edge node itself")
            );
            if let Some(s) = &d.sparkplug_device_id {
                if !valid_id(s) {
                    p.push(bad(format!(
                        "{at}: sparkplug_device_id {s:?} is empty or contains '/', '+', '#' or NUL"
                    )));
                }
            }
            if !sp_ids.insert(d.sparkplug_device_id.clone()) {
                p.push(bad(format!(
                    "{at}: this Sparkplug device is mapped twice under the edge node; map it once"
                )));
            }
            let Some(dev) = devices.get(&d.device_id) else {
                p.push(bad(format!(
                    "{at}: device_id {:?} is not a device in devices.json",
                    d.device_id
                )));
                continue;
            };
            let node_dev = format!(
                "{}/{}",
                raw.edge_node_id,
                d.sparkplug_device_id.as_deref().unwrap_or("")
            );
            match mapped.get(&d.device_id) {
                Some(first) => p.push(bad(format!(
                    "{at}: device {:?} is already mapped to {first}; a device may be spoken for by one edge node only",
                    d.device_id
                ))),
                None => {
                    mapped.insert(d.device_id.clone(), node_dev);
                }
            }
            let table = fields(dev.kind);
            if table.is_empty() {
                p.push(bad(format!(
                    "{at}: device {:?} is a {}; Sparkplug maps weighbridges, storage points and bins (trucks report over JT/T 808 or the native topics)",
                    d.device_id,
                    kind_name(dev.kind)
                )));
                continue;
            }
            let mut metrics = HashMap::new();
            let mut field_seen: HashSet<&str> = HashSet::new();
            for m in d.metrics {
                if m.name.is_empty() {
                    p.push(bad(format!("{at}: a metric has an empty name")));
                    continue;
                }
                let Some(spec) = table.iter().find(|s| s.name == m.field) else {
                    let names: Vec<&str> = table.iter().map(|s| s.name).collect();
                    p.push(bad(format!(
                        "{at}: metric {:?}: field {:?} is not a field of a {} (one of {})",
                        m.name,
                        m.field,
                        kind_name(dev.kind),
                        names.join(", ")
                    )));
                    continue;
                };
                let unit = m.unit.clone().unwrap_or_else(|| spec.unit.to_owned());
                let Some(factor) = unit_factor(spec.unit, &unit) else {
                    p.push(bad(if spec.unit.is_empty() {
                        format!(
                            "{at}: metric {:?}: field {:?} has no unit, but unit {unit:?} is given; remove it",
                            m.name, m.field
                        )
                    } else {
                        format!(
                            "{at}: metric {:?}: unit {unit:?} cannot be converted to {:?} of field {:?}",
                            m.name, spec.unit, m.field
                        )
                    }));
                    continue;
                };
                if !field_seen.insert(spec.name) {
                    p.push(bad(format!(
                        "{at}: field {:?} is filled by two metrics; map it once",
                        spec.name
                    )));
                }
                if metrics.contains_key(&m.name) {
                    p.push(bad(format!(
                        "{at}: metric {:?} is mapped twice; map it once",
                        m.name
                    )));
                    continue;
                }
                metrics.insert(
                    m.name.clone(),
                    MetricMap {
                        name: m.name,
                        field: *spec,
                        unit,
                        factor,
                    },
                );
            }
            if dev.kind == DeviceKind::Weighbridge && !field_seen.contains("ticket_id") {
                p.push(bad(format!(
                    "{at}: a weighbridge needs a metric mapped to ticket_id (its arrival makes the ticket)"
                )));
            }
            out_devices.push(SparkplugDevice {
                sparkplug_device_id: d.sparkplug_device_id,
                device_id: d.device_id,
                site_id: dev.site_id.clone(),
                kind: dev.kind,
                metrics,
            });
        }
        if p.is_empty() {
            nodes.insert(
                node_key(&raw.group_id, &raw.edge_node_id),
                SparkplugNode {
                    group_id: raw.group_id,
                    edge_node_id: raw.edge_node_id,
                    devices: out_devices,
                },
            );
        } else {
            problems.extend(p.into_iter().map(|x| (entry.clone(), x)));
        }
    }
    (nodes, problems)
}

/// An empty body of the device kind.
pub fn empty_body(kind: DeviceKind) -> Option<Body> {
    Some(match kind {
        DeviceKind::Weighbridge => Body::WeighbridgeTicket(pb::WeighbridgeTicket::default()),
        DeviceKind::Storage => Body::StorageReading(pb::StorageReading::default()),
        DeviceKind::Bin => Body::BinReading(pb::BinReading::default()),
        _ => return None,
    })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn enum_code(v: &Value, from_name: impl Fn(&str) -> Option<i32>, prefix: &str) -> Option<i32> {
    match v {
        Value::Int(i) => i32::try_from(*i).ok(),
        Value::Text(s) => {
            let up = s.trim().to_ascii_uppercase();
            from_name(&up).or_else(|| from_name(&format!("{prefix}{up}")))
        }
        _ => None,
    }
}

/// Sets field `m.field` of `body` from the metric value `v` (scaled by
/// `m.factor`), or says why the value does not fit.
pub fn set_field(body: &mut Body, m: &MetricMap, v: &Value) -> Result<(), String> {
    let name = m.field.name;
    let null = matches!(v, Value::Null);
    if let Value::Unsupported(what) = v {
        return Err(format!(
            "metric {:?} is a {what}; field {name} needs a {:?} value",
            m.name, m.field.ty
        ));
    }
    let mismatch = || {
        format!(
            "metric {:?} value {v:?} does not fit field {name} ({:?})",
            m.name, m.field.ty
        )
    };
    let real = || -> Result<f64, String> {
        let raw = number(v).ok_or_else(mismatch)?;
        // A scaled value is rounded to a millionth of the field's unit, so
        // 31.52 t is 31 520 kg, not 31 520.000000000004 kg.
        let x = if m.factor == 1.0 {
            raw
        } else {
            (raw * m.factor * 1e6).round() / 1e6
        };
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("metric {:?} is not a finite number", m.name))
        }
    };
    let unsigned = || -> Result<u64, String> {
        let x = real()?.round();
        if (0.0..=u64::MAX as f64).contains(&x) {
            Ok(x as u64)
        } else {
            Err(format!(
                "metric {:?} is {x} {} for {name}, which cannot be negative",
                m.name, m.field.unit
            ))
        }
    };
    let signed = || -> Result<i32, String> {
        let x = real()?.round();
        if (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&x) {
            Ok(x as i32)
        } else {
            Err(format!(
                "metric {:?} is {x} {}, out of range for {name}",
                m.name, m.field.unit
            ))
        }
    };
    let u32_of = |x: u64| {
        u32::try_from(x).map_err(|_| format!("metric {:?} is {x}, out of range for {name}", m.name))
    };
    let text = || -> Result<String, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            _ => Err(mismatch()),
        }
    };
    let boolean = || -> Result<bool, String> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Null => Ok(false),
            _ => Err(mismatch()),
        }
    };
    let time = || -> Result<i64, String> {
        if null {
            return Ok(0);
        }
        let x = real()?.round();
        if (0.0..=9.0e15).contains(&x) {
            Ok(x as i64)
        } else {
            Err(format!("metric {:?} is {x} ms, not a Unix time", m.name))
        }
    };
    match body {
        Body::WeighbridgeTicket(t) => match name {
            "ticket_id" => t.ticket_id = text()?,
            "plate" => t.plate = text()?,
            "gross_weight_kg" => t.gross_weight_kg = real()?,
            "tare_weight_kg" => t.tare_weight_kg = real()?,
            "net_weight_kg" => t.net_weight_kg = real()?,
            "category" => {
                t.category = enum_code(
                    v,
                    |s| pb::WasteCategory::from_str_name(s).map(|e| e as i32),
                    "WASTE_CATEGORY_",
                )
                .ok_or_else(mismatch)?
            }
            "hazardous_waste_code" => t.hazardous_waste_code = text()?,
            "catalogue_edition" => t.catalogue_edition = text()?,
            "origin_site_id" => t.origin_site_id = text()?,
            "destination_site_id" => t.destination_site_id = text()?,
            "destination_type" => {
                t.destination_type = enum_code(
                    v,
                    |s| pb::DestinationType::from_str_name(s).map(|e| e as i32),
                    "DESTINATION_TYPE_",
                )
                .ok_or_else(mismatch)?
            }
            "direction" => {
                t.direction = enum_code(
                    v,
                    |s| pb::Direction::from_str_name(s).map(|e| e as i32),
                    "DIRECTION_",
                )
                .ok_or_else(mismatch)?
            }
            "weighed_in_at_unix_ms" => t.weighed_in_at_unix_ms = time()?,
            "weighed_out_at_unix_ms" => t.weighed_out_at_unix_ms = time()?,
            "operator_id" => t.operator_id = text()?,
            "anpr_confirmed" => t.anpr_confirmed = boolean()?,
            "axle_count" => t.axle_count = u32_of(unsigned()?)?,
            "permit_id" => t.permit_id = text()?,
            "manifest_id" => t.manifest_id = text()?,
            "source_unit_id" => t.source_unit_id = text()?,
            _ => return Err(format!("{name} is not a weighbridge_ticket field")),
        },
        Body::StorageReading(s) => match name {
            "stock_kg" => s.stock_kg = real()?,
            "oldest_container_age_s" => s.oldest_container_age_s = unsigned()?,
            "temperature_deci_c" => s.temperature_deci_c = signed()?,
            "combustible_gas_pct_lel" => {
                s.combustible_gas_pct_lel = if null { None } else { Some(real()?) }
            }
            "toxic_gas_pct_of_limit" => {
                s.toxic_gas_pct_of_limit = if null { None } else { Some(real()?) }
            }
            "oxygen_pct_vol" => s.oxygen_pct_vol = if null { None } else { Some(real()?) },
            "leak_detected" => s.leak_detected = boolean()?,
            "door_open" => s.door_open = boolean()?,
            "container_count" => s.container_count = u32_of(unsigned()?)?,
            "oldest_medical_lot_age_s" => {
                s.oldest_medical_lot_age_s = if null { None } else { Some(unsigned()?) }
            }
            "outside_temperature_deci_c" => {
                s.outside_temperature_deci_c = if null { None } else { Some(signed()?) }
            }
            "battery_mv" => s.battery_mv = u32_of(unsigned()?)?,
            _ => return Err(format!("{name} is not a storage_reading field")),
        },
        Body::BinReading(b) => match name {
            "fill_level_pct" => b.fill_level_pct = real()?,
            "temperature_deci_c" => b.temperature_deci_c = signed()?,
            "tilt_deg" => b.tilt_deg = real()?,
            "battery_mv" => b.battery_mv = u32_of(unsigned()?)?,
            "fire_flag" => b.fire_flag = boolean()?,
            "battery_low_flag" => b.battery_low_flag = boolean()?,
            _ => return Err(format!("{name} is not a bin_reading field")),
        },
        _ => return Err("trucks and status bodies are not mapped from Sparkplug".into()),
    }
    Ok(())
}

/// The Sparkplug data type a metric mapped with `m` is sent as (what an
/// edge node puts in its birth certificate).
pub fn metric_datatype(m: &MetricMap) -> u32 {
    use crate::sparkplug::datatype as dt;
    match m.field.ty {
        T::Real => dt::DOUBLE,
        T::Unsigned | T::Signed if m.factor != 1.0 => dt::DOUBLE,
        T::Unsigned => dt::UINT64,
        T::Signed => dt::INT64,
        T::Time => dt::DATETIME,
        T::Bool => dt::BOOLEAN,
        T::Text | T::Category | T::Destination | T::Direction => dt::STRING,
    }
}

/// The metric value of field `m.field` of `body`, in the metric's unit
/// (the inverse of [`set_field`], for edge nodes); `Null` for an absent
/// optional field, `None` when the body has no such field.
pub fn field_value(body: &Body, m: &MetricMap) -> Option<Value> {
    let real = |x: f64| Value::Float(if m.factor == 1.0 { x } else { x / m.factor });
    let int = |x: i128| {
        if m.factor == 1.0 {
            Value::Int(x)
        } else {
            Value::Float(x as f64 / m.factor)
        }
    };
    let text = |s: &str| Value::Text(s.to_owned());
    let name_of =
        |n: &str, prefix: &str| Value::Text(n.strip_prefix(prefix).unwrap_or(n).to_owned());
    Some(match body {
        Body::WeighbridgeTicket(t) => match m.field.name {
            "ticket_id" => text(&t.ticket_id),
            "plate" => text(&t.plate),
            "gross_weight_kg" => real(t.gross_weight_kg),
            "tare_weight_kg" => real(t.tare_weight_kg),
            "net_weight_kg" => real(t.net_weight_kg),
            "category" => name_of(
                pb::WasteCategory::try_from(t.category).ok()?.as_str_name(),
                "WASTE_CATEGORY_",
            ),
            "hazardous_waste_code" => text(&t.hazardous_waste_code),
            "catalogue_edition" => text(&t.catalogue_edition),
            "origin_site_id" => text(&t.origin_site_id),
            "destination_site_id" => text(&t.destination_site_id),
            "destination_type" => name_of(
                pb::DestinationType::try_from(t.destination_type)
                    .ok()?
                    .as_str_name(),
                "DESTINATION_TYPE_",
            ),
            "direction" => name_of(
                pb::Direction::try_from(t.direction).ok()?.as_str_name(),
                "DIRECTION_",
            ),
            "weighed_in_at_unix_ms" => int(i128::from(t.weighed_in_at_unix_ms)),
            "weighed_out_at_unix_ms" => int(i128::from(t.weighed_out_at_unix_ms)),
            "operator_id" => text(&t.operator_id),
            "anpr_confirmed" => Value::Bool(t.anpr_confirmed),
            "axle_count" => int(i128::from(t.axle_count)),
            "permit_id" => text(&t.permit_id),
            "manifest_id" => text(&t.manifest_id),
            "source_unit_id" => text(&t.source_unit_id),
            _ => return None,
        },
        Body::StorageReading(s) => match m.field.name {
            "stock_kg" => real(s.stock_kg),
            "oldest_container_age_s" => int(i128::from(s.oldest_container_age_s)),
            "temperature_deci_c" => int(i128::from(s.temperature_deci_c)),
            "combustible_gas_pct_lel" => s.combustible_gas_pct_lel.map_or(Value::Null, real),
            "toxic_gas_pct_of_limit" => s.toxic_gas_pct_of_limit.map_or(Value::Null, real),
            "oxygen_pct_vol" => s.oxygen_pct_vol.map_or(Value::Null, real),
            "leak_detected" => Value::Bool(s.leak_detected),
            "door_open" => Value::Bool(s.door_open),
            "container_count" => int(i128::from(s.container_count)),
            "oldest_medical_lot_age_s" => s
                .oldest_medical_lot_age_s
                .map_or(Value::Null, |x| int(i128::from(x))),
            "outside_temperature_deci_c" => s
                .outside_temperature_deci_c
                .map_or(Value::Null, |x| int(i128::from(x))),
            "battery_mv" => int(i128::from(s.battery_mv)),
            _ => return None,
        },
        Body::BinReading(b) => match m.field.name {
            "fill_level_pct" => real(b.fill_level_pct),
            "temperature_deci_c" => int(i128::from(b.temperature_deci_c)),
            "tilt_deg" => real(b.tilt_deg),
            "battery_mv" => int(i128::from(b.battery_mv)),
            "fire_flag" => Value::Bool(b.fire_flag),
            "battery_low_flag" => Value::Bool(b.battery_low_flag),
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    const SITES: &str = r#"[{"id":"fa-1","name":"F","type":"factory","geofence":{"type":"Polygon","coordinates":[[[113.7,34.7],[113.71,34.7],[113.71,34.71],[113.7,34.71],[113.7,34.7]]]}}]"#;
    const DEVICES: &str = r#"[
      {"id":"wb-1","kind":"weighbridge","site_id":"fa-1","expected_interval_s":3600,"weighbridge":{}},
      {"id":"st-1","kind":"storage","site_id":"fa-1","expected_interval_s":60,"storage":{"capacity_kg":3000,"small_storage_point":true,"medical":false}},
      {"id":"tr-1","kind":"truck","site_id":"fa-1","expected_interval_s":30,"truck":{"plate":"豫AD1234","registered_tare_kg":15000,"axle_count":3}}
    ]"#;

    fn load(sp: &str) -> Result<Registry, crate::registry::RegistryErrors> {
        Registry::from_json_strs_with_sparkplug(SITES, DEVICES, "[]", "[]", sp)
    }

    #[test]
    fn a_valid_mapping_loads_with_its_scales() {
        let r = load(
            r#"[{"group_id":"g","edge_node_id":"edge-1","devices":[
              {"sparkplug_device_id":"Scale1","device_id":"wb-1","metrics":[
                {"name":"Ticket/Number","field":"ticket_id"},
                {"name":"Gross","field":"gross_weight_kg","unit":"t"}]},
              {"sparkplug_device_id":"Store","device_id":"st-1","metrics":[
                {"name":"Temp","field":"temperature_deci_c","unit":"°C"}]}]}]"#,
        )
        .unwrap();
        let n = r.sparkplug_node("g", "edge-1").unwrap();
        let wb = n.device(Some("Scale1")).unwrap();
        assert_eq!(wb.metrics["Gross"].factor, 1000.0);
        assert!(wb.triggers_record("Ticket/Number"));
        assert!(!wb.triggers_record("Gross"));
        let st = n.device(Some("Store")).unwrap();
        let mut body = empty_body(st.kind).unwrap();
        set_field(&mut body, &st.metrics["Temp"], &Value::Float(21.5)).unwrap();
        assert!(matches!(body, Body::StorageReading(s) if s.temperature_deci_c == 215));
        assert!(r.sparkplug_node("g", "edge-2").is_none());
    }

    #[test]
    fn every_mapping_problem_is_reported_with_where_and_what() {
        let e = load(
            r#"[{"group_id":"g","edge_node_id":"Edge_1","devices":[
              {"sparkplug_device_id":"A","device_id":"wb-1","metrics":[
                {"name":"Gross","field":"gross_weight_kg","unit":"lb"},
                {"name":"X","field":"no_such_field"}]},
              {"sparkplug_device_id":"B","device_id":"tr-1","metrics":[]},
              {"sparkplug_device_id":"C","device_id":"ghost","metrics":[]}]},
             {"group_id":"g","edge_node_id":"edge-2","devices":[
              {"sparkplug_device_id":"A","device_id":"wb-1","metrics":[{"name":"T","field":"ticket_id"}]}]}]"#,
        )
        .unwrap_err()
        .to_string();
        for want in [
            "sparkplug.json: Edge_1: edge_node_id \"Edge_1\" is not a valid id",
            "unit \"lb\" cannot be converted to \"kg\"",
            "field \"no_such_field\" is not a field of a weighbridge",
            "is a truck; Sparkplug maps",
            "device_id \"ghost\" is not a device",
            "a weighbridge needs a metric mapped to ticket_id",
            "sparkplug.json: edge-2: devices[0] (A): device \"wb-1\" is already mapped to Edge_1/A",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn values_that_do_not_fit_their_field_are_refused_with_a_reason() {
        let m = MetricMap {
            name: "Count".into(),
            field: f("container_count", T::Unsigned, ""),
            unit: String::new(),
            factor: 1.0,
        };
        let mut body = empty_body(DeviceKind::Storage).unwrap();
        assert!(set_field(&mut body, &m, &Value::Int(-3))
            .unwrap_err()
            .contains("cannot be negative"));
        assert!(set_field(&mut body, &m, &Value::Text("x".into())).is_err());
        let cat = MetricMap {
            name: "Cat".into(),
            field: f("category", T::Category, ""),
            unit: String::new(),
            factor: 1.0,
        };
        let mut t = empty_body(DeviceKind::Weighbridge).unwrap();
        set_field(&mut t, &cat, &Value::Text("hazardous".into())).unwrap();
        assert!(
            matches!(&t, Body::WeighbridgeTicket(t) if t.category == pb::WasteCategory::Hazardous as i32)
        );
    }
}
