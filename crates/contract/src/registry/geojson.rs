//! The GeoJSON subset the zone files use (RFC 7946): a `Polygon` for a site's
//! geofence and a `LineString` for a permit's route, both in WGS-84 with
//! positions in `[lon, lat]` order.
//!
//! Only the geometry object is read, not Features, so a geometry drawn in any
//! GeoJSON editor (geojson.io, QGIS) can be pasted into an entry. The raw
//! types here deserialise it; the functions validate it into [`LatLon`]s and
//! report every bad position, not only the first.

use serde::Deserialize;

use super::error::Problem;
use crate::geo::{self, LatLon};

/// Geofences smaller than this are taken as a drawing mistake, m².
const MIN_GEOFENCE_AREA_M2: f64 = 1.0;

/// The only geometry type a geofence may have.
#[derive(Debug, Deserialize)]
pub(super) enum PolygonType {
    /// RFC 7946 §3.1.6.
    Polygon,
}

/// The only geometry type a route may have.
#[derive(Debug, Deserialize)]
pub(super) enum LineStringType {
    /// RFC 7946 §3.1.4.
    LineString,
}

/// A GeoJSON Polygon geometry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Polygon")]
pub(super) struct RawPolygon {
    /// Always "Polygon".
    #[serde(rename = "type")]
    #[allow(dead_code)] // checked by deserialisation, nothing to keep
    pub kind: PolygonType,
    /// Linear rings: the outer ring, then holes; positions `[lon, lat(, alt)]`.
    pub coordinates: Vec<Vec<Vec<f64>>>,
}

/// A GeoJSON LineString geometry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "LineString")]
pub(super) struct RawLineString {
    /// Always "LineString".
    #[serde(rename = "type")]
    #[allow(dead_code)] // checked by deserialisation, nothing to keep
    pub kind: LineStringType,
    /// Positions `[lon, lat(, alt)]` in driving order.
    pub coordinates: Vec<Vec<f64>>,
}

/// The outer ring of a geofence polygon, open (the closing repeat of the
/// first position is dropped, so each corner appears once).
///
/// Rings must be closed as RFC 7946 requires: an unclosed ring is rejected
/// rather than closed silently, because a missing last position is as likely
/// a truncated paste as a forgotten repeat. Holes are rejected (a geofence is
/// one area). Appends every problem found to `problems`.
pub(super) fn geofence_ring(raw: &RawPolygon, problems: &mut Vec<Problem>) -> Option<Vec<LatLon>> {
    let Some((outer, holes)) = raw.coordinates.split_first() else {
        problems.push(Problem::PolygonTooFewPoints { count: 0 });
        return None;
    };
    let before = problems.len();
    if !holes.is_empty() {
        problems.push(Problem::PolygonHoles { holes: holes.len() });
    }
    let positions = positions("geofence", outer, problems)?;
    let mut ring = positions;
    match (ring.first(), ring.last()) {
        (Some(&first), Some(&last)) if ring.len() > 1 && first == last => {
            ring.pop();
        }
        (Some(&first), Some(&last)) => problems.push(Problem::PolygonNotClosed {
            first_lon: first.lon,
            first_lat: first.lat,
            last_lon: last.lon,
            last_lat: last.lat,
        }),
        _ => {}
    }
    if ring.len() < 3 {
        problems.push(Problem::PolygonTooFewPoints { count: ring.len() });
    } else {
        let area_m2 = geo::ring_area_m2(&ring);
        // `is_nan` too: a NaN area must not pass as large enough.
        if area_m2.is_nan() || area_m2 < MIN_GEOFENCE_AREA_M2 {
            problems.push(Problem::PolygonDegenerate { area_m2 });
        }
    }
    (problems.len() == before).then_some(ring)
}

/// The positions of a route LineString, at least two.
pub(super) fn route_points(
    raw: &RawLineString,
    problems: &mut Vec<Problem>,
) -> Option<Vec<LatLon>> {
    let points = positions("route", &raw.coordinates, problems)?;
    if points.len() < 2 {
        problems.push(Problem::LineStringTooShort {
            count: points.len(),
        });
        return None;
    }
    Some(points)
}

/// Converts `[lon, lat(, alt)]` positions, reporting each bad one.
fn positions(
    field: &'static str,
    raw: &[Vec<f64>],
    problems: &mut Vec<Problem>,
) -> Option<Vec<LatLon>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (index, pos) in raw.iter().enumerate() {
        let &[lon, lat, ..] = pos.as_slice() else {
            problems.push(Problem::BadPosition {
                field,
                index,
                len: pos.len(),
            });
            ok = false;
            continue;
        };
        if pos.len() > 3 {
            problems.push(Problem::BadPosition {
                field,
                index,
                len: pos.len(),
            });
            ok = false;
            continue;
        }
        let p = LatLon::new(lat, lon);
        if !p.is_valid() {
            problems.push(Problem::CoordinateOutOfRange {
                field,
                index,
                lon,
                lat,
            });
            ok = false;
            continue;
        }
        out.push(p);
    }
    ok.then_some(out)
}
