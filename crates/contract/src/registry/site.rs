//! Sites: the places devices are installed at and trucks drive between, each
//! with a geofence.
//!
//! A site's id appears in MQTT topics and in weighbridge tickets (origin and
//! destination); its type says what a load delivered there counts as in the
//! KPIs; its geofence answers "is this truck inside an approved site" for the
//! transport rules. Loaded from `sites.json`; see `zone/README.md`.

use serde::Deserialize;

use super::error::Problem;
use super::geojson::{self, RawPolygon};
use crate::geo::{self, LatLon};
use crate::pb::DestinationType;

/// What kind of place a site is; drives which rules and KPIs apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteType {
    /// Construction-waste recycling plant (counts toward resource utilisation).
    RecyclingPlant,
    /// General industrial solid-waste comprehensive-utilisation plant.
    UtilisationPlant,
    /// Sanitary or construction-waste landfill.
    Landfill,
    /// Waste-to-energy incinerator.
    Incinerator,
    /// Approved backfill site (pits, quarries, site levelling).
    Backfill,
    /// Transfer station.
    TransferStation,
    /// Facility licensed to collect, store or dispose of hazardous waste.
    LicensedHazardousFacility,
    /// Construction site producing construction waste (permit origins).
    ConstructionSite,
    /// Factory (generator of industrial and hazardous waste).
    Factory,
    /// Hospital or clinic (medical waste).
    Hospital,
    /// University or research laboratory (lab waste).
    Laboratory,
    /// Residential area (household-waste bins).
    Residential,
    /// Park, square or street (public bins).
    PublicArea,
    /// Collection point for the hazardous waste of small businesses.
    SmallBusinessCollectionPoint,
}

impl SiteType {
    /// The name used in `sites.json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SiteType::RecyclingPlant => "recycling_plant",
            SiteType::UtilisationPlant => "utilisation_plant",
            SiteType::Landfill => "landfill",
            SiteType::Incinerator => "incinerator",
            SiteType::Backfill => "backfill",
            SiteType::TransferStation => "transfer_station",
            SiteType::LicensedHazardousFacility => "licensed_hazardous_facility",
            SiteType::ConstructionSite => "construction_site",
            SiteType::Factory => "factory",
            SiteType::Hospital => "hospital",
            SiteType::Laboratory => "laboratory",
            SiteType::Residential => "residential",
            SiteType::PublicArea => "public_area",
            SiteType::SmallBusinessCollectionPoint => "small_business_collection_point",
        }
    }

    /// The weighbridge destination type a delivery to this site counts as in
    /// the KPI formulas; `None` for sites that are not disposal or recycling
    /// destinations.
    pub const fn destination_type(self) -> Option<DestinationType> {
        match self {
            SiteType::RecyclingPlant => Some(DestinationType::Recycling),
            SiteType::UtilisationPlant => Some(DestinationType::Utilisation),
            SiteType::Landfill => Some(DestinationType::Landfill),
            SiteType::Incinerator => Some(DestinationType::Incineration),
            SiteType::Backfill => Some(DestinationType::Backfill),
            SiteType::TransferStation => Some(DestinationType::Transfer),
            SiteType::LicensedHazardousFacility => Some(DestinationType::LicensedHazardous),
            SiteType::ConstructionSite
            | SiteType::Factory
            | SiteType::Hospital
            | SiteType::Laboratory
            | SiteType::Residential
            | SiteType::PublicArea
            | SiteType::SmallBusinessCollectionPoint => None,
        }
    }
}

/// A validated site.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// Unique id (lowercase kebab-case); the `{site_id}` level of MQTT topics
    /// and the origin/destination of weighbridge tickets and permits.
    pub id: String,
    /// Human-readable name for dashboards and alert texts.
    pub name: String,
    /// What the site is; selects rules and the KPI destination type.
    pub site_type: SiteType,
    /// Outer boundary, WGS-84, open ring (each corner once, at least 3);
    /// decides whether a truck is inside the site.
    pub geofence: Vec<LatLon>,
    /// Area-weighted centroid of the geofence; where maps put the site's
    /// marker and where the simulator places its devices.
    pub centre: LatLon,
}

impl Site {
    /// True when `p` lies inside the geofence.
    pub fn contains(&self, p: LatLon) -> bool {
        geo::point_in_polygon(p, &self.geofence)
    }

    /// Area enclosed by the geofence, m².
    pub fn area_m2(&self) -> f64 {
        geo::ring_area_m2(&self.geofence)
    }
}

/// A `sites.json` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "site")]
pub(super) struct RawSite {
    /// See [`Site::id`].
    pub id: String,
    /// See [`Site::name`].
    pub name: String,
    /// See [`Site::site_type`].
    #[serde(rename = "type")]
    pub site_type: SiteType,
    /// GeoJSON Polygon, `[lon, lat]` positions.
    pub geofence: RawPolygon,
}

/// Validates one entry (the id format and uniqueness are checked by the
/// loader, which sees all entries).
pub(super) fn build(raw: RawSite) -> Result<Site, Vec<Problem>> {
    let mut problems = Vec::new();
    if raw.name.trim().is_empty() {
        problems.push(Problem::Empty { field: "name" });
    }
    let ring = geojson::geofence_ring(&raw.geofence, &mut problems);
    // A ring that passed validation has at least 3 corners, so it has a
    // centroid; the `else` arm only guards that invariant.
    let Some((geofence, centre)) = ring.and_then(|r| geo::ring_centroid(&r).map(|c| (r, c))) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Site {
        id: raw.id,
        name: raw.name,
        site_type: raw.site_type,
        geofence,
        centre,
    })
}
