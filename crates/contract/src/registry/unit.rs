//! Registered generator units: the laboratories, small businesses and
//! medical institutions whose hazardous waste the zone collects, each
//! attached to the site that collects it.
//!
//! The collection-coverage KPIs count them: a unit is covered in a period
//! when at least one weighbridge ticket names it (`source_unit_id`). They
//! are not sites (a small business has no geofence and no device of its
//! own). Loaded from the optional `units.json`; see `zone/README.md`.

use serde::Deserialize;

use super::error::Problem;

/// What kind of generator a unit is; selects its coverage KPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A laboratory (university, research or testing lab).
    Laboratory,
    /// A small business whose hazardous waste goes to a collection point.
    SmallBusiness,
    /// A hospital or clinic (medical waste).
    Medical,
}

impl UnitKind {
    /// The name used in `units.json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            UnitKind::Laboratory => "laboratory",
            UnitKind::SmallBusiness => "small_business",
            UnitKind::Medical => "medical",
        }
    }
}

/// A validated unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// Unique id (lowercase kebab-case); what tickets name in
    /// `source_unit_id`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// What the unit is.
    pub kind: UnitKind,
    /// The site that collects its waste (its lab building's store, the
    /// collection point, the hospital); the KPIs' per-site scope.
    pub site_id: String,
}

/// A `units.json` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "unit")]
pub(super) struct RawUnit {
    /// See [`Unit::id`].
    pub id: String,
    /// See [`Unit::name`].
    pub name: String,
    /// See [`Unit::kind`].
    pub kind: UnitKind,
    /// See [`Unit::site_id`].
    pub site_id: String,
}

/// Validates one entry (id format, uniqueness and the site reference are
/// checked by the loader).
pub(super) fn build(raw: RawUnit) -> Result<Unit, Vec<Problem>> {
    if raw.name.trim().is_empty() {
        return Err(vec![Problem::Empty { field: "name" }]);
    }
    Ok(Unit {
        id: raw.id,
        name: raw.name,
        kind: raw.kind,
        site_id: raw.site_id,
    })
}
