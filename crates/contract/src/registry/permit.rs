//! Construction-waste transport permits: which vehicles may carry waste from
//! which site to which approved sites, along which route, when.
//!
//! Ministry of Housing order 139 requires such a permit for every load; its
//! route uses the shape of JT/T 808 message 0x8606 (a polyline whose every
//! segment has its own corridor half-width and speed limit), so the same data
//! could be pushed to the trucks' terminals. The route-deviation, overspeed,
//! time-window and unapproved-vehicle rules read it. Loaded from
//! `permits.json`; see `zone/README.md`.

use serde::Deserialize;

use super::calendar::{self, CivilDate, TimeWindow};
use super::error::{is_positive, not_positive, Problem};
use super::geojson::{self, RawLineString};
use super::plate::{normalize_plate, normalized};
use crate::geo::{LatLon, Polyline};

/// China Standard Time, UTC+8, in minutes: the default `utc_offset_min`.
pub const CHINA_STANDARD_TIME_OFFSET_MIN: i16 = 480;

/// A validated permit.
#[derive(Clone, Debug, PartialEq)]
pub struct Permit {
    /// Unique id, e.g. "permit-2026-0001"; trucks report it in each fix and
    /// tickets carry it.
    pub id: String,
    /// Plates of the vehicles the permit covers, as written (matched in
    /// normalised form); a plate not on an active permit at a gate is an
    /// "unapproved vehicle".
    pub plates: Vec<String>,
    /// The same plates in canonical form ([`normalize_plate`]), sorted:
    /// what [`Permit::covers_plate`] searches, per truck fix.
    pub plate_keys: Vec<String>,
    /// The construction site the waste comes from.
    pub origin_site_id: String,
    /// The approved recycling, landfill or backfill sites; unloading
    /// anywhere else is suspected illegal dumping.
    pub destination_site_ids: Vec<String>,
    /// Route centreline from origin to destination, WGS-84.
    pub route: Polyline,
    /// Corridor and speed limit per route segment: `segments[i]` belongs to
    /// the segment from `route.points()[i]` to `route.points()[i + 1]`.
    pub segments: Vec<RouteSegment>,
    /// Daily local-time windows in which loaded driving is allowed (e.g. the
    /// city's 21:00-06:00 rule); at least one.
    pub time_windows: Vec<TimeWindow>,
    /// Offset of the permit's local time from UTC, minutes (480 = UTC+8),
    /// for the time windows and the validity dates.
    pub utc_offset_min: i16,
    /// First local day the permit is valid (inclusive).
    pub valid_from: CivilDate,
    /// Last local day the permit is valid (inclusive).
    pub valid_until: CivilDate,
    /// Largest load approved per trip, kg, if the permit sets one; on-board
    /// load sensors and tickets are compared with it.
    pub approved_load_kg: Option<f64>,
}

/// Attributes of one route segment (JT/T 808 0x8606 segment fields).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSegment {
    /// Half the corridor width, metres: a fix farther than this from the
    /// centreline is outside the route (usually 50 m urban, 100 m suburban;
    /// docs/RULES.md "Construction-waste trucks").
    pub half_width_m: f64,
    /// Speed limit on the segment, km/h; `None` falls back to the rule's
    /// default (40 km/h).
    pub speed_limit_kmh: Option<f64>,
}

impl Permit {
    /// True when the local date of `unix_ms` is within
    /// `valid_from..=valid_until`. Time windows are not considered (see
    /// [`Permit::in_time_window`]); an overnight window that opens on the
    /// last valid day ends at local midnight.
    pub fn is_active_at(&self, unix_ms: i64) -> bool {
        let day = calendar::local_days_since_epoch(unix_ms, self.utc_offset_min);
        (self.valid_from.days_since_epoch()..=self.valid_until.days_since_epoch()).contains(&day)
    }

    /// True when the local time of day of `unix_ms` falls in one of the
    /// permit's daily windows (whatever the date).
    pub fn in_time_window(&self, unix_ms: i64) -> bool {
        let minute = calendar::local_minute_of_day(unix_ms, self.utc_offset_min);
        self.time_windows.iter().any(|w| w.contains_minute(minute))
    }

    /// How `p` relates to the route corridor: `(distance_m, half_width_m,
    /// segment_idx)` for the segment whose corridor `p` is deepest inside (or
    /// least outside), i.e. the one minimising `distance_m - half_width_m`.
    ///
    /// The corridor is the union of the segments' corridors, so `p` is
    /// inside it exactly when `distance_m <= half_width_m`; taking the
    /// nearest segment alone would misjudge a point near a narrow urban
    /// segment but inside an adjoining wide suburban one.
    pub fn corridor_distance(&self, p: LatLon) -> (f64, f64, usize) {
        let mut best = (f64::INFINITY, 0.0, 0);
        let mut best_margin = f64::INFINITY;
        self.route.for_each_segment_distance(p, |i, d| {
            let Some(seg) = self.segments.get(i) else {
                return;
            };
            let margin = d - seg.half_width_m;
            if margin < best_margin {
                best_margin = margin;
                best = (d, seg.half_width_m, i);
            }
        });
        best
    }

    /// True when `plate` (in any written form) is one of the permit's plates.
    pub fn covers_plate(&self, plate: &str) -> bool {
        let wanted = normalized(plate);
        self.plate_keys
            .binary_search_by(|k| k.as_str().cmp(&wanted))
            .is_ok()
    }
}

/// A time window as written: `{"start": "21:00", "end": "06:00"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "time window")]
pub(super) struct RawTimeWindow {
    /// First allowed minute, `HH:MM` local time.
    pub start: String,
    /// Last allowed minute (inclusive), `HH:MM` local time.
    pub end: String,
}

/// A `permits.json` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "permit")]
pub(super) struct RawPermit {
    /// See [`Permit::id`].
    pub id: String,
    /// See [`Permit::plates`].
    pub plates: Vec<String>,
    /// See [`Permit::origin_site_id`].
    pub origin_site_id: String,
    /// See [`Permit::destination_site_ids`].
    pub destination_site_ids: Vec<String>,
    /// GeoJSON LineString, `[lon, lat]` positions.
    pub route: RawLineString,
    /// See [`Permit::segments`].
    pub segments: Vec<RouteSegment>,
    /// See [`Permit::time_windows`].
    pub time_windows: Vec<RawTimeWindow>,
    /// See [`Permit::utc_offset_min`]; defaults to China Standard Time.
    #[serde(default = "default_utc_offset_min")]
    pub utc_offset_min: i16,
    /// `YYYY-MM-DD`; see [`Permit::valid_from`].
    pub valid_from: String,
    /// `YYYY-MM-DD`; see [`Permit::valid_until`].
    pub valid_until: String,
    /// See [`Permit::approved_load_kg`].
    pub approved_load_kg: Option<f64>,
}

/// Serde default for `utc_offset_min`.
fn default_utc_offset_min() -> i16 {
    CHINA_STANDARD_TIME_OFFSET_MIN
}

/// Validates one entry. Id format and uniqueness and the site references are
/// checked by the loader, which sees all files.
pub(super) fn build(raw: RawPermit) -> Result<Permit, Vec<Problem>> {
    let mut problems = Vec::new();

    check_plates(&raw.plates, &mut problems);
    if raw.destination_site_ids.is_empty() {
        problems.push(Problem::NoDestinations);
    }

    let route = geojson::route_points(&raw.route, &mut problems).and_then(Polyline::new);
    if let Some(route) = &route {
        let points = route.points().len();
        if raw.segments.len() != route.segment_count() {
            problems.push(Problem::SegmentCountMismatch {
                segments: raw.segments.len(),
                points,
                expected: route.segment_count(),
            });
        }
    }
    for (i, seg) in raw.segments.iter().enumerate() {
        if !is_positive(seg.half_width_m) {
            problems.push(not_positive(
                &format!("segments[{i}].half_width_m"),
                seg.half_width_m,
                "m",
            ));
        }
        if let Some(v) = seg.speed_limit_kmh.filter(|&v| !is_positive(v)) {
            problems.push(not_positive(
                &format!("segments[{i}].speed_limit_kmh"),
                v,
                "km/h",
            ));
        }
    }

    let time_windows = time_windows(&raw.time_windows, &mut problems);
    if !(-720..=840).contains(&raw.utc_offset_min) {
        problems.push(Problem::BadUtcOffset {
            value: raw.utc_offset_min,
        });
    }
    let valid_from = date("valid_from", &raw.valid_from, &mut problems);
    let valid_until = date("valid_until", &raw.valid_until, &mut problems);
    if let (Some(from), Some(until)) = (valid_from, valid_until) {
        if until < from {
            problems.push(Problem::DateRangeReversed { from, until });
        }
    }
    if let Some(v) = raw.approved_load_kg.filter(|&v| !is_positive(v)) {
        problems.push(not_positive("approved_load_kg", v, "kg"));
    }

    match (route, valid_from, valid_until) {
        (Some(route), Some(valid_from), Some(valid_until)) if problems.is_empty() => Ok(Permit {
            id: raw.id,
            plate_keys: {
                let mut keys: Vec<String> = raw.plates.iter().map(|p| normalize_plate(p)).collect();
                keys.sort_unstable();
                keys
            },
            plates: raw.plates,
            origin_site_id: raw.origin_site_id,
            destination_site_ids: raw.destination_site_ids,
            route,
            segments: raw.segments,
            time_windows,
            utc_offset_min: raw.utc_offset_min,
            valid_from,
            valid_until,
            approved_load_kg: raw.approved_load_kg,
        }),
        _ => Err(problems),
    }
}

/// Plates: at least one, none blank, none twice (in normalised form).
fn check_plates(plates: &[String], problems: &mut Vec<Problem>) {
    if plates.is_empty() {
        problems.push(Problem::NoPlates);
    }
    let mut seen: Vec<String> = Vec::with_capacity(plates.len());
    for (i, plate) in plates.iter().enumerate() {
        let norm = normalize_plate(plate);
        if norm.is_empty() {
            problems.push(Problem::BlankPlate {
                field: format!("plates[{i}]"),
                value: plate.clone(),
            });
        } else if let Some(first) = seen.iter().position(|s| *s == norm) {
            problems.push(Problem::DuplicatePlate {
                plate: plate.clone(),
                context: format!("listed twice in plates (indexes {first} and {i})"),
            });
        }
        seen.push(norm);
    }
}

/// Parses the windows, reporting every bad time; at least one window.
fn time_windows(raw: &[RawTimeWindow], problems: &mut Vec<Problem>) -> Vec<TimeWindow> {
    if raw.is_empty() {
        problems.push(Problem::NoTimeWindows);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (index, w) in raw.iter().enumerate() {
        let mut time = |field: &str, value: &str| {
            let t = calendar::parse_hhmm(value);
            if t.is_none() {
                problems.push(Problem::BadTime {
                    field: format!("time_windows[{index}].{field}"),
                    value: value.to_owned(),
                });
            }
            t
        };
        let (start, end) = (time("start", &w.start), time("end", &w.end));
        let (Some(start_min), Some(end_min)) = (start, end) else {
            continue;
        };
        if start_min == end_min {
            problems.push(Problem::SingleMinuteWindow {
                index,
                value: format!("{}-{}", w.start, w.end),
            });
        }
        out.push(TimeWindow { start_min, end_min });
    }
    out
}

/// Parses a `YYYY-MM-DD` date field, reporting it when bad.
fn date(field: &'static str, value: &str, problems: &mut Vec<Problem>) -> Option<CivilDate> {
    let d = CivilDate::parse_iso(value);
    if d.is_none() {
        problems.push(Problem::BadDate {
            field,
            value: value.to_owned(),
        });
    }
    d
}
