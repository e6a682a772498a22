//! `GET /api/v1/zone.geojson[?layer=sites|routes|corridors]`: the zone's
//! site geofences, permit routes and route corridors from the registry, as
//! one GeoJSON FeatureCollection (RFC 7946, `[lon, lat]`) for the zone
//! overview map (Grafana's Geomap "GeoJSON" layer fetches it from the
//! browser, hence the `Access-Control-Allow-Origin: *`). Read-only and
//! without device data: the same geometry as `zone/`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::geo::LatLon;
use crate::registry::{Permit, Registry};

/// Metres per degree of latitude (as `geo` uses for local offsets).
const M_PER_DEG: f64 = 111_195.0;

fn pos(p: LatLon) -> Value {
    json!([p.lon, p.lat])
}

/// The corridor of one route segment as a closed ring: the rectangle
/// `half_width_m` either side of the centreline, widened by the same at
/// both ends (the rules measure the distance to the segment, so the
/// corridor's ends are round; the rectangle contains them).
pub fn corridor_ring(a: LatLon, b: LatLon, half_width_m: f64) -> Vec<LatLon> {
    let cos = a.lat.to_radians().cos().max(1e-6);
    let north = (b.lat - a.lat) * M_PER_DEG;
    let east = (b.lon - a.lon) * M_PER_DEG * cos;
    let len = north.hypot(east).max(1e-9);
    let (un, ue) = (north / len, east / len);
    // Perpendicular to the left: rotate (north, east) by 90°.
    let (pn, pe) = (ue, -un);
    let at = |p: LatLon, along: f64, side: f64| {
        let dn = un * along + pn * side;
        let de = ue * along + pe * side;
        LatLon::new(p.lat + dn / M_PER_DEG, p.lon + de / (M_PER_DEG * cos))
    };
    let h = half_width_m;
    let ring = vec![at(a, -h, h), at(b, h, h), at(b, h, -h), at(a, -h, -h)];
    let mut closed = ring.clone();
    closed.push(ring[0]);
    closed
}

fn route_props(p: &Permit) -> Value {
    json!({
        "layer": "routes",
        "id": p.id,
        "origin": p.origin_site_id,
        "destinations": p.destination_site_ids,
        "time_windows": p.time_windows.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// The FeatureCollection of `layer` (`None`: every layer), in id order.
pub fn feature_collection(registry: &Registry, layer: Option<&str>) -> Value {
    let want = |l: &str| layer.is_none_or(|x| x == l);
    let mut features = Vec::new();
    if want("sites") {
        let mut sites: Vec<_> = registry.sites.values().collect();
        sites.sort_by(|a, b| a.id.cmp(&b.id));
        for s in sites {
            let mut ring: Vec<Value> = s.geofence.iter().copied().map(pos).collect();
            if let Some(first) = s.geofence.first() {
                ring.push(pos(*first));
            }
            features.push(json!({
                "type": "Feature",
                "id": s.id,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"layer": "sites", "id": s.id, "name": s.name, "site_type": s.site_type.as_str()},
            }));
        }
    }
    let mut permits: Vec<_> = registry.permits.values().collect();
    permits.sort_by(|a, b| a.id.cmp(&b.id));
    if want("routes") {
        for p in &permits {
            features.push(json!({
                "type": "Feature",
                "id": p.id,
                "geometry": {"type": "LineString", "coordinates": p.route.points().iter().copied().map(pos).collect::<Vec<_>>()},
                "properties": route_props(p),
            }));
        }
    }
    if want("corridors") {
        for p in &permits {
            for (i, ((a, b), seg)) in p.route.segments().zip(&p.segments).enumerate() {
                let ring: Vec<Value> = corridor_ring(a, b, seg.half_width_m)
                    .into_iter()
                    .map(pos)
                    .collect();
                features.push(json!({
                    "type": "Feature",
                    "id": format!("{}#{i}", p.id),
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {"layer": "corridors", "permit": p.id, "segment": i, "half_width_m": seg.half_width_m, "speed_limit_kmh": seg.speed_limit_kmh},
                }));
            }
        }
    }
    json!({"type": "FeatureCollection", "features": features})
}

/// Query of the endpoint.
#[derive(Deserialize)]
struct GeoQuery {
    layer: Option<String>,
}

async fn zone(State(registry): State<Arc<Registry>>, Query(q): Query<GeoQuery>) -> Response {
    let layer = q.layer.as_deref();
    if let Some(l) = layer {
        if !matches!(l, "sites" | "routes" | "corridors") {
            return (
                StatusCode::BAD_REQUEST,
                format!("layer {l:?} must be sites, routes or corridors\n"),
            )
                .into_response();
        }
    }
    let body = feature_collection(&registry, layer).to_string();
    (
        [
            (header::CONTENT_TYPE, "application/geo+json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

/// The route of the zone geometry, to merge into the API router.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/api/v1/zone.geojson", get(zone))
        .with_state(registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::distance_to_segment_m;

    fn shipped() -> Registry {
        Registry::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zone")).unwrap()
    }

    #[test]
    fn the_zone_is_one_feature_per_site_route_and_corridor_segment() {
        let reg = shipped();
        let all = feature_collection(&reg, None);
        let features = all["features"].as_array().unwrap();
        let segments: usize = reg.permits.values().map(|p| p.segments.len()).sum();
        assert_eq!(
            features.len(),
            reg.sites.len() + reg.permits.len() + segments
        );
        let sites = feature_collection(&reg, Some("sites"));
        let first = &sites["features"][0];
        assert_eq!(first["geometry"]["type"], "Polygon");
        let ring = first["geometry"]["coordinates"][0].as_array().unwrap();
        assert_eq!(ring.first(), ring.last(), "rings are closed");
        let site = reg.site(first["id"].as_str().unwrap()).unwrap();
        assert_eq!(ring[0], json!([site.geofence[0].lon, site.geofence[0].lat]));
        let routes = feature_collection(&reg, Some("routes"));
        assert_eq!(routes["features"][0]["id"], "permit-2026-0001");
        assert_eq!(
            routes["features"][0]["geometry"]["coordinates"][0],
            json!([113.7275, 34.7290])
        );
    }

    #[test]
    fn a_corridor_ring_has_its_corners_half_a_width_beside_the_ends_of_its_segment() {
        let a = LatLon::new(34.7250, 113.7400);
        let b = LatLon::new(34.7250, 113.7600);
        let ring = corridor_ring(a, b, 50.0);
        assert_eq!(ring.len(), 5);
        for c in &ring[..4] {
            let d = distance_to_segment_m(*c, a, b);
            // A corner is 50 m beside and 50 m beyond an end: 70.7 m away.
            assert!((d - 50.0 * 2f64.sqrt()).abs() < 0.5, "{d}");
        }
    }
}
