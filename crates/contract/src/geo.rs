//! Geometry for the zone: distances, route polylines and geofences on WGS-84
//! coordinates.
//!
//! Pure functions, no I/O. The registry uses them to check site geofences and
//! permit corridors, the rules use them for route deviation and "inside an
//! approved site", and the firmware simulator drives trucks along routes with
//! [`Polyline::point_at_distance`].
//!
//! Model and error bounds:
//! - Distances between two points are great-circle distances on a sphere of
//!   the WGS-84 mean radius ([`EARTH_MEAN_RADIUS_M`]); against the ellipsoid
//!   this is within 0.5 % (half a metre on a 100 m corridor distance, below
//!   GNSS error); trip lengths are estimates anyway.
//! - Distances to a segment use a local equirectangular projection centred on
//!   the query point (metres east = Δlon·cos φ·R, metres north = Δlat·R). A
//!   straight segment is the straight line in (lat, lon), which is what a
//!   GeoJSON LineString between close vertices means in practice. Against the
//!   great-circle distance the relative error is at most
//!   `tan|φ| · d / (2R) + (d/R)²` for a point `d` metres away (the second
//!   term, under 0.0003 % at 10 km, is what is left at the equator): under
//!   0.06 % within 10 km at the zone's
//!   34.7° N, under 0.15 % within 10 km anywhere with |φ| ≤ 60°. Route
//!   deviation compares distances of tens to hundreds of metres, so the error
//!   is centimetres. Segments should stay under 10 km; split longer ones.
//! - Longitude differences are wrapped into [-180°, 180°), so distances work
//!   across the antimeridian; [`point_in_polygon`] does not (rings are tested
//!   in raw degrees), which is fine for facility geofences.

/// Mean Earth radius of the WGS-84 ellipsoid (IUGG R1), metres.
pub const EARTH_MEAN_RADIUS_M: f64 = 6_371_008.8;

/// Metres per degree of latitude (and of longitude at the equator) on the
/// mean-radius sphere.
const M_PER_DEG: f64 = EARTH_MEAN_RADIUS_M * std::f64::consts::PI / 180.0;

/// A WGS-84 position in decimal degrees.
///
/// Field order is latitude first, as people say it; GeoJSON files store
/// `[lon, lat]`, and the registry converts when it loads them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatLon {
    /// Latitude, degrees north of the equator, -90..=90; negative is south.
    pub lat: f64,
    /// Longitude, degrees east of Greenwich, -180..=180; negative is west.
    pub lon: f64,
}

impl LatLon {
    /// A position from latitude and longitude in degrees (not validated; see
    /// [`LatLon::is_valid`]).
    pub const fn new(lat: f64, lon: f64) -> Self {
        Self { lat, lon }
    }

    /// True when both coordinates are finite and inside the world
    /// (lat -90..=90, lon -180..=180).
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }

    /// The position `north_m` metres north and `east_m` metres east of this
    /// one (negative values go south / west).
    ///
    /// Inverse of the local projection used by [`distance_to_segment_m`], so
    /// offsets and distances agree exactly around `self`; against the
    /// great-circle distance the error is the bound in the module docs. Meant
    /// for offsets up to a few tens of kilometres away from the poles; the
    /// latitude is clamped to ±90° and the longitude wrapped into
    /// [-180°, 180°).
    pub fn offset_m(&self, north_m: f64, east_m: f64) -> LatLon {
        let lat = (self.lat + north_m / M_PER_DEG).clamp(-90.0, 90.0);
        let lon = wrap_deg(self.lon + east_m / (M_PER_DEG * self.lat.to_radians().cos()));
        LatLon { lat, lon }
    }
}

/// Great-circle distance between two positions, metres (haversine formula on
/// the mean-radius sphere).
pub fn haversine_m(a: LatLon, b: LatLon) -> f64 {
    let (phi1, phi2) = (a.lat.to_radians(), b.lat.to_radians());
    let dphi = phi2 - phi1;
    let dlambda = wrap_deg(b.lon - a.lon).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    // Rounding can push h a hair outside [0, 1]; clamp before the sqrt.
    2.0 * EARTH_MEAN_RADIUS_M * h.clamp(0.0, 1.0).sqrt().asin()
}

/// Shortest distance from `p` to the segment `a`–`b`, metres.
///
/// Computed in a local equirectangular projection centred on `p`; see the
/// module docs for the error bound (under 0.06 % within 10 km at the zone's
/// latitude). A zero-length segment gives the distance to its point.
pub fn distance_to_segment_m(p: LatLon, a: LatLon, b: LatLon) -> f64 {
    let around = Around::new(p);
    around.to_segment_m(around.project(a), around.project(b))
}

/// The local projection centred on one point, for measuring from it to many
/// segments (a route): the scale is computed once, and each vertex is
/// projected once however many segments share it.
#[derive(Clone, Copy, Debug)]
pub struct Around {
    origin: LatLon,
    /// Metres per degree of longitude at the origin's latitude.
    m_per_deg_lon: f64,
}

impl Around {
    /// The projection centred on `origin`.
    pub fn new(origin: LatLon) -> Around {
        Around {
            origin,
            m_per_deg_lon: origin.lat.to_radians().cos() * M_PER_DEG,
        }
    }

    /// `q` in metres (east, north) of the origin.
    #[inline]
    pub fn project(&self, q: LatLon) -> (f64, f64) {
        (
            wrap_deg(q.lon - self.origin.lon) * self.m_per_deg_lon,
            (q.lat - self.origin.lat) * M_PER_DEG,
        )
    }

    /// Shortest distance from the origin to the segment between two
    /// projected points, metres.
    #[inline]
    pub fn to_segment_m(&self, (ax, ay): (f64, f64), (bx, by): (f64, f64)) -> f64 {
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        // Parameter of the foot of the perpendicular from the origin,
        // clamped to the segment.
        let t = if len2 > 0.0 {
            (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (x, y) = (ax + t * dx, ay + t * dy);
        // Metres within a zone: no overflow for `hypot` to guard against.
        (x * x + y * y).sqrt()
    }
}

/// True when `p` lies inside the polygon `ring` (ray casting, even-odd rule).
///
/// The ring may be given closed (last point repeating the first) or open.
/// Points exactly on an edge may fall either way. Works in raw degrees, so a
/// ring must not cross the antimeridian; fewer than 3 points contain nothing.
pub fn point_in_polygon(p: LatLon, ring: &[LatLon]) -> bool {
    if ring.len() < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = ring.len() - 1;
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[j]);
        if (a.lat > p.lat) != (b.lat > p.lat) {
            // The edge straddles the horizontal line through p, so b.lat != a.lat.
            let lon_at = a.lon + (p.lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon);
            if p.lon < lon_at {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// Area of the polygon `ring`, square metres (shoelace formula in a local
/// projection around the first point; closed or open rings; no holes).
pub fn ring_area_m2(ring: &[LatLon]) -> f64 {
    let Some(&origin) = ring.first() else {
        return 0.0;
    };
    let around = Around::new(origin);
    let pts: Vec<(f64, f64)> = ring.iter().map(|&q| around.project(q)).collect();
    (shoelace(&pts) / 2.0).abs()
}

/// Centroid of the polygon `ring` (area-weighted; closed or open rings).
///
/// Falls back to the mean of the vertices when the ring encloses no area
/// (collinear points); `None` for an empty ring.
pub fn ring_centroid(ring: &[LatLon]) -> Option<LatLon> {
    let &origin = ring.first()?;
    // Work in degrees relative to the first point: the centroid is invariant
    // under the affine local projection, and small numbers keep precision.
    let pts: Vec<(f64, f64)> = ring
        .iter()
        .map(|q| (wrap_deg(q.lon - origin.lon), q.lat - origin.lat))
        .collect();
    let twice_area = shoelace(&pts);
    let (cx, cy) = if twice_area.abs() > 1e-18 {
        let (mut sx, mut sy) = (0.0, 0.0);
        for (i, &(x0, y0)) in pts.iter().enumerate() {
            let (x1, y1) = pts[(i + 1) % pts.len()];
            let cross = x0 * y1 - x1 * y0;
            sx += (x0 + x1) * cross;
            sy += (y0 + y1) * cross;
        }
        (sx / (3.0 * twice_area), sy / (3.0 * twice_area))
    } else {
        let n = pts.len() as f64;
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x, sy + y));
        (sx / n, sy / n)
    };
    Some(LatLon {
        lat: origin.lat + cy,
        lon: wrap_deg(origin.lon + cx),
    })
}

/// A route centreline: at least two points joined by straight segments.
///
/// Segment `i` joins `points[i]` and `points[i + 1]`; permits attach a width
/// and speed limit to each segment by that index (JT/T 808 message 0x8606).
#[derive(Clone, Debug, PartialEq)]
pub struct Polyline {
    /// The vertices in driving order; never fewer than two.
    points: Vec<LatLon>,
}

impl Polyline {
    /// A polyline through `points`; `None` when there are fewer than two.
    /// Coordinates are not checked; the registry validates them first.
    pub fn new(points: Vec<LatLon>) -> Option<Self> {
        (points.len() >= 2).then_some(Self { points })
    }

    /// The vertices in driving order.
    pub fn points(&self) -> &[LatLon] {
        &self.points
    }

    /// Number of segments, one less than the number of points.
    pub fn segment_count(&self) -> usize {
        self.points.len() - 1
    }

    /// The segments as `(start, end)` pairs, in driving order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = (LatLon, LatLon)> + '_ {
        self.points.windows(2).map(|w| (w[0], w[1]))
    }

    /// Distance from `p` to the nearest point of the line, metres, and the
    /// index of the segment it lies on (the first one on a tie).
    pub fn distance_m(&self, p: LatLon) -> (f64, usize) {
        let mut best = (f64::INFINITY, 0);
        self.for_each_segment_distance(p, |i, d| {
            if d < best.0 {
                best = (d, i);
            }
        });
        best
    }

    /// Calls `f(i, d)` with the distance `d` from `p` to each segment `i`,
    /// in order (each vertex projected once).
    pub fn for_each_segment_distance(&self, p: LatLon, mut f: impl FnMut(usize, f64)) {
        let around = Around::new(p);
        let mut pts = self.points.iter();
        let Some(first) = pts.next() else {
            return;
        };
        let mut prev = around.project(*first);
        for (i, q) in pts.enumerate() {
            let next = around.project(*q);
            f(i, around.to_segment_m(prev, next));
            prev = next;
        }
    }

    /// Total length along the line, metres (sum of great-circle segment
    /// lengths).
    pub fn length_m(&self) -> f64 {
        self.segments().map(|(a, b)| haversine_m(a, b)).sum()
    }

    /// The point `d_m` metres along the line from its start, and the index of
    /// its segment.
    ///
    /// `d_m` is clamped to `0..=length_m()` (NaN counts as 0), so the
    /// simulator can step past the end and stop at the last point. Within a
    /// segment the point is interpolated linearly in (lat, lon), so it lies on
    /// the segment as [`distance_to_segment_m`] sees it.
    pub fn point_at_distance(&self, d_m: f64) -> (LatLon, usize) {
        // f64::max returns the non-NaN operand, so NaN becomes 0.
        let mut remaining = d_m.max(0.0);
        let last = self.segment_count() - 1;
        for (i, (a, b)) in self.segments().enumerate() {
            let len = haversine_m(a, b);
            if remaining <= len || i == last {
                let t = if len > 0.0 {
                    (remaining / len).min(1.0)
                } else {
                    0.0
                };
                let point = LatLon {
                    lat: a.lat + t * (b.lat - a.lat),
                    lon: wrap_deg(a.lon + t * wrap_deg(b.lon - a.lon)),
                };
                return (point, i);
            }
            remaining -= len;
        }
        // Unreachable: the loop returns on the last segment at the latest, and
        // a Polyline always has one. Answer the end point anyway.
        (self.points[self.points.len() - 1], last)
    }
}

/// Twice the signed area of a planar polygon (open or closed vertex list).
fn shoelace(pts: &[(f64, f64)]) -> f64 {
    pts.iter()
        .enumerate()
        .map(|(i, &(x0, y0))| {
            let (x1, y1) = pts[(i + 1) % pts.len()];
            x0 * y1 - x1 * y0
        })
        .sum()
}

/// An angle in degrees wrapped into [-180, 180).
fn wrap_deg(deg: f64) -> f64 {
    if (-180.0..180.0).contains(&deg) {
        deg
    } else {
        // rem_euclid rounds a tiny negative up to 360.0: keep it in range.
        let r = (deg + 180.0).rem_euclid(360.0);
        if r >= 360.0 {
            -180.0
        } else {
            r - 180.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The zone's reference point (Zhengzhou ETDZ, 航海东路).
    const ZONE: LatLon = LatLon::new(34.725, 113.76);

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn haversine_of_one_degree_of_latitude_is_about_111_km() {
        let d = haversine_m(LatLon::new(0.0, 0.0), LatLon::new(1.0, 0.0));
        assert!(close(d, 111_195.08, 0.1), "{d}");
    }

    #[test]
    fn haversine_of_a_point_to_itself_is_zero() {
        assert_eq!(haversine_m(ZONE, ZONE), 0.0);
    }

    #[test]
    fn haversine_works_across_the_antimeridian() {
        let d = haversine_m(LatLon::new(0.0, 179.999), LatLon::new(0.0, -179.999));
        assert!(close(d, 222.39, 0.01), "{d}");
    }

    #[test]
    fn offset_of_one_km_north_is_one_km_away() {
        let q = ZONE.offset_m(1000.0, 0.0);
        assert!(close(haversine_m(ZONE, q), 1000.0, 1e-6));
        assert_eq!(q.lon, ZONE.lon);
    }

    #[test]
    fn distance_to_segment_is_perpendicular_when_the_foot_is_inside() {
        let a = ZONE.offset_m(0.0, -500.0);
        let b = ZONE.offset_m(0.0, 500.0);
        let p = ZONE.offset_m(80.0, 0.0);
        assert!(close(distance_to_segment_m(p, a, b), 80.0, 0.01));
    }

    #[test]
    fn distance_to_segment_is_to_the_endpoint_beyond_its_end() {
        let a = ZONE;
        let b = ZONE.offset_m(0.0, 500.0);
        let p = ZONE.offset_m(300.0, 900.0);
        assert!(close(distance_to_segment_m(p, a, b), 500.0, 0.5));
    }

    #[test]
    fn distance_to_a_zero_length_segment_is_the_distance_to_its_point() {
        let p = ZONE.offset_m(30.0, 40.0);
        assert!(close(distance_to_segment_m(p, ZONE, ZONE), 50.0, 0.01));
    }

    #[test]
    fn polyline_needs_two_points() {
        assert!(Polyline::new(vec![]).is_none());
        assert!(Polyline::new(vec![ZONE]).is_none());
        assert!(Polyline::new(vec![ZONE, ZONE.offset_m(1.0, 0.0)]).is_some());
    }

    #[test]
    fn polyline_reports_the_nearest_segment() {
        // An L: east 1 km, then north 1 km.
        let corner = ZONE.offset_m(0.0, 1000.0);
        let line = Polyline::new(vec![ZONE, corner, corner.offset_m(1000.0, 0.0)]);
        let Some(line) = line else {
            panic!("two or more points")
        };
        let (d, seg) = line.distance_m(corner.offset_m(500.0, 40.0));
        assert_eq!(seg, 1);
        assert!(close(d, 40.0, 0.05), "{d}");
        let (d, seg) = line.distance_m(ZONE.offset_m(-20.0, 300.0));
        assert_eq!(seg, 0);
        assert!(close(d, 20.0, 0.05), "{d}");
    }

    #[test]
    fn polyline_length_is_the_sum_of_its_segments() {
        let corner = ZONE.offset_m(0.0, 1000.0);
        let line = Polyline::new(vec![ZONE, corner, corner.offset_m(1000.0, 0.0)]);
        let Some(line) = line else {
            panic!("two or more points")
        };
        assert!(close(line.length_m(), 2000.0, 2.0), "{}", line.length_m());
    }

    #[test]
    fn point_at_distance_clamps_to_the_ends() {
        let end = ZONE.offset_m(0.0, 1000.0);
        let Some(line) = Polyline::new(vec![ZONE, end]) else {
            panic!("two points")
        };
        assert_eq!(line.point_at_distance(-5.0), (ZONE, 0));
        assert_eq!(line.point_at_distance(f64::NAN), (ZONE, 0));
        let (p, seg) = line.point_at_distance(1e9);
        assert_eq!(seg, 0);
        assert!(close(haversine_m(p, end), 0.0, 1e-6));
    }

    #[test]
    fn point_at_distance_walks_into_the_second_segment() {
        let corner = ZONE.offset_m(0.0, 1000.0);
        let end = corner.offset_m(1000.0, 0.0);
        let Some(line) = Polyline::new(vec![ZONE, corner, end]) else {
            panic!("three points")
        };
        let first = haversine_m(ZONE, corner);
        let (p, seg) = line.point_at_distance(first + 250.0);
        assert_eq!(seg, 1);
        assert!(close(haversine_m(corner, p), 250.0, 0.5));
    }

    #[test]
    fn point_in_polygon_finds_inside_and_outside_of_a_square() {
        let sq = [
            ZONE,
            ZONE.offset_m(0.0, 100.0),
            ZONE.offset_m(100.0, 100.0),
            ZONE.offset_m(100.0, 0.0),
        ];
        assert!(point_in_polygon(ZONE.offset_m(50.0, 50.0), &sq));
        assert!(!point_in_polygon(ZONE.offset_m(150.0, 50.0), &sq));
        assert!(!point_in_polygon(ZONE.offset_m(50.0, -1.0), &sq));
    }

    #[test]
    fn point_in_polygon_handles_a_concave_ring_and_a_closed_ring() {
        // A U open to the north: the notch is outside.
        let u = [
            ZONE,
            ZONE.offset_m(0.0, 300.0),
            ZONE.offset_m(300.0, 300.0),
            ZONE.offset_m(300.0, 200.0),
            ZONE.offset_m(100.0, 200.0),
            ZONE.offset_m(100.0, 100.0),
            ZONE.offset_m(300.0, 100.0),
            ZONE.offset_m(300.0, 0.0),
            ZONE,
        ];
        assert!(!point_in_polygon(ZONE.offset_m(200.0, 150.0), &u));
        assert!(point_in_polygon(ZONE.offset_m(200.0, 50.0), &u));
        assert!(point_in_polygon(ZONE.offset_m(50.0, 150.0), &u));
    }

    #[test]
    fn a_ring_with_fewer_than_three_points_contains_nothing() {
        assert!(!point_in_polygon(ZONE, &[ZONE, ZONE.offset_m(1.0, 1.0)]));
    }

    #[test]
    fn ring_area_and_centroid_of_a_square() {
        let sq = [
            ZONE,
            ZONE.offset_m(0.0, 200.0),
            ZONE.offset_m(100.0, 200.0),
            ZONE.offset_m(100.0, 0.0),
            ZONE,
        ];
        assert!(
            close(ring_area_m2(&sq), 20_000.0, 20.0),
            "{}",
            ring_area_m2(&sq)
        );
        let Some(c) = ring_centroid(&sq) else {
            panic!("non-empty ring")
        };
        assert!(haversine_m(c, ZONE.offset_m(50.0, 100.0)) < 0.1);
    }

    #[test]
    fn centroid_of_collinear_points_is_their_mean() {
        let ring = [ZONE, ZONE.offset_m(0.0, 100.0), ZONE.offset_m(0.0, 200.0)];
        let Some(c) = ring_centroid(&ring) else {
            panic!("non-empty ring")
        };
        assert!(haversine_m(c, ZONE.offset_m(0.0, 100.0)) < 0.01);
        assert!(ring_centroid(&[]).is_none());
    }

    #[test]
    fn wrap_deg_maps_into_the_half_open_range() {
        assert_eq!(wrap_deg(180.0), -180.0);
        assert_eq!(wrap_deg(-180.0), -180.0);
        assert_eq!(wrap_deg(190.0), -170.0);
        assert_eq!(wrap_deg(-190.0), 170.0);
        assert_eq!(wrap_deg(12.5), 12.5);
    }

    fn any_point() -> impl Strategy<Value = LatLon> {
        (-90.0..=90.0f64, -180.0..=180.0f64).prop_map(|(lat, lon)| LatLon::new(lat, lon))
    }

    /// A point away from the poles, where the local projection is meant to
    /// be used.
    fn mid_latitude_point() -> impl Strategy<Value = LatLon> {
        (-60.0..=60.0f64, -180.0..=180.0f64).prop_map(|(lat, lon)| LatLon::new(lat, lon))
    }

    /// The error bound of the local projection from the module docs, metres,
    /// for a point `d` metres from `p`.
    fn documented_bound_m(p: LatLon, d: f64) -> f64 {
        let r = EARTH_MEAN_RADIUS_M;
        p.lat.to_radians().tan().abs() * d / (2.0 * r) * d + d * (d / r) * (d / r) + 1e-6
    }

    /// An offset up to 10 km in each direction.
    fn near() -> impl Strategy<Value = (f64, f64)> {
        (-10_000.0..=10_000.0f64, -10_000.0..=10_000.0f64)
    }

    proptest! {
        #[test]
        fn haversine_is_symmetric_and_non_negative(a in any_point(), b in any_point()) {
            let (ab, ba) = (haversine_m(a, b), haversine_m(b, a));
            prop_assert!(ab >= 0.0);
            prop_assert!((ab - ba).abs() <= 1e-6, "{ab} vs {ba}");
            prop_assert!(ab <= std::f64::consts::PI * EARTH_MEAN_RADIUS_M + 1e-6);
        }

        #[test]
        fn haversine_obeys_the_triangle_inequality(a in any_point(), b in any_point(), c in any_point()) {
            prop_assert!(haversine_m(a, c) <= haversine_m(a, b) + haversine_m(b, c) + 1e-6);
        }

        #[test]
        fn a_routes_segment_distances_are_the_per_segment_distances(
            p in mid_latitude_point(),
            offsets in proptest::collection::vec(near(), 2..10),
        ) {
            let route = Polyline::new(offsets.iter().map(|o| p.offset_m(o.0 + 20_000.0, o.1)).collect())
                .expect("two or more points");
            let mut seen = Vec::new();
            route.for_each_segment_distance(p, |i, d| seen.push((i, d)));
            prop_assert_eq!(seen.len(), route.segment_count());
            for ((i, d), (a, b)) in seen.into_iter().zip(route.segments()) {
                // The single-segment function, and the projection written out
                // once more with `hypot`: the same to a nanometre.
                prop_assert!((d - distance_to_segment_m(p, a, b)).abs() <= 1e-9, "segment {}", i);
                let proj = |q: LatLon| {
                    let x = wrap_deg(q.lon - p.lon) * p.lat.to_radians().cos() * M_PER_DEG;
                    (x, (q.lat - p.lat) * M_PER_DEG)
                };
                let ((ax, ay), (bx, by)) = (proj(a), proj(b));
                let (dx, dy) = (bx - ax, by - ay);
                let len2 = dx * dx + dy * dy;
                let t = if len2 > 0.0 { (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let reference = (ax + t * dx).hypot(ay + t * dy);
                prop_assert!((d - reference).abs() <= 1e-6, "segment {}: {} vs {}", i, d, reference);
            }
            let (best, at) = route.distance_m(p);
            prop_assert!((best - distance_to_segment_m(p, route.points()[at], route.points()[at + 1])).abs() <= 1e-9);
        }

        #[test]
        fn distance_to_segment_is_at_most_the_distance_to_either_endpoint(
            p in mid_latitude_point(), oa in near(), ob in near(),
        ) {
            let a = p.offset_m(oa.0, oa.1);
            let b = p.offset_m(ob.0, ob.1);
            let d = distance_to_segment_m(p, a, b);
            prop_assert!(d >= 0.0);
            // Exactly, in the projection the function uses...
            prop_assert!(d <= distance_to_segment_m(p, a, a) + 1e-9);
            prop_assert!(d <= distance_to_segment_m(p, b, b) + 1e-9);
            // ...and within the documented bound against great circles.
            let (da, db) = (haversine_m(p, a), haversine_m(p, b));
            prop_assert!(d <= da + documented_bound_m(p, da));
            prop_assert!(d <= db + documented_bound_m(p, db));
        }

        #[test]
        fn distance_to_a_point_matches_haversine_within_the_documented_bound(
            p in mid_latitude_point(), o in near(),
        ) {
            let q = p.offset_m(o.0, o.1);
            let flat = distance_to_segment_m(p, q, q);
            let round = haversine_m(p, q);
            prop_assert!((flat - round).abs() <= documented_bound_m(p, round), "{flat} vs {round}");
        }

        #[test]
        fn distance_to_segment_does_not_depend_on_its_direction(
            p in mid_latitude_point(), oa in near(), ob in near(),
        ) {
            let a = p.offset_m(oa.0, oa.1);
            let b = p.offset_m(ob.0, ob.1);
            let (ab, ba) = (distance_to_segment_m(p, a, b), distance_to_segment_m(p, b, a));
            prop_assert!((ab - ba).abs() <= 1e-6, "{ab} vs {ba}");
        }

        #[test]
        fn point_at_distance_lies_on_the_line(
            start in mid_latitude_point(),
            steps in prop::collection::vec(near(), 1..10),
            fraction in 0.0..=1.0f64,
        ) {
            let mut points = vec![start];
            for (n, e) in steps {
                let last = points[points.len() - 1];
                points.push(last.offset_m(n / 2.0, e / 2.0));
            }
            let Some(line) = Polyline::new(points) else {
                return Err(TestCaseError::fail("two or more points"));
            };
            let (p, seg) = line.point_at_distance(line.length_m() * fraction);
            prop_assert!(seg < line.segment_count());
            prop_assert!(line.distance_m(p).0 <= 1e-3, "{:?}", line.distance_m(p));
            let (a, b) = (line.points()[seg], line.points()[seg + 1]);
            prop_assert!(distance_to_segment_m(p, a, b) <= 1e-3);
        }

        #[test]
        fn offset_moves_by_the_requested_distance(p in mid_latitude_point(), o in near()) {
            let q = p.offset_m(o.0, o.1);
            let want = o.0.hypot(o.1);
            prop_assert!((haversine_m(p, q) - want).abs() <= documented_bound_m(p, want));
        }

        #[test]
        fn a_rectangle_contains_its_centroid_and_not_points_beyond_it(
            corner in mid_latitude_point(),
            h in 10.0..5_000.0f64,
            w in 10.0..5_000.0f64,
        ) {
            let ring = [
                corner,
                corner.offset_m(0.0, w),
                corner.offset_m(h, w),
                corner.offset_m(h, 0.0),
            ];
            // Skip rings that straddle the antimeridian (documented limit).
            prop_assume!(ring.iter().all(|q| (q.lon - corner.lon).abs() < 90.0));
            let Some(c) = ring_centroid(&ring) else {
                return Err(TestCaseError::fail("non-empty ring"));
            };
            prop_assert!(point_in_polygon(c, &ring));
            prop_assert!(!point_in_polygon(corner.offset_m(h / 2.0, -5.0), &ring));
            prop_assert!(!point_in_polygon(corner.offset_m(h + 5.0, w / 2.0), &ring));
        }
    }
}
