//! Construction-waste truck rules (docs/RULES.md "Construction-waste
//! trucks"): route deviation, driving outside the permit's time window,
//! suspected illegal dumping, body lifted outside a site, cover open while
//! loaded, overspeed and GNSS lost.
//!
//! Called by the engine with each truck's fixes in device-time order: fixes
//! wait in a per-truck reorder buffer ([`TruckState::push`]) for
//! `reorder_window_ms` of device time, so a burst of out-of-order fixes is
//! sorted before any rule sees it. A fix older than one already applied is
//! late: it may only advance an ongoing deviation (count as one more fix
//! outside the corridor); it never clears, resets or starts anything, so
//! late data cannot make an alert flap.
//!
//! The permit a fix is judged against is the one it names, if that permit
//! covers the truck's plate and is valid that day; otherwise the valid
//! permit of the plate whose corridor the truck is deepest in. Permit rules
//! (deviation, time window) use the entity `truck-id/permit-id`, fixed for
//! the episode. A truck with no valid permit is not judged by the route
//! and time-window rules (at a gate, the weighbridge's unapproved-vehicle
//! rule catches it), and for the dumping rule every site counts as
//! approved. Fixes without a GNSS fix, and fixes that jump implausibly far
//! from the last good one, feed the GNSS rule only.

use serde::{Deserialize, Serialize};

use crate::alert::{RuleId, Severity};
use crate::geo::{self, LatLon};
use crate::pb::TruckFix;
use crate::registry::{Device, Permit, Registry};

use super::config::{EngineSettings, RuleConfig, Scope, TransportThresholds};
use super::emit::Alerts;

/// One fix as the rules need it (the plate is the registry's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// Event time, Unix ms.
    pub t_ms: i64,
    /// Device sequence number (orders fixes with equal times).
    pub seq: u64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Ground speed, km/h.
    pub speed_kmh: f64,
    /// Error radius, m.
    pub accuracy_m: f64,
    /// Load sensor says loaded.
    pub loaded: bool,
    /// Cover closed.
    pub cover_closed: bool,
    /// Tipper body raised.
    pub body_lifted: bool,
    /// Ignition on.
    pub ignition_on: bool,
    /// The receiver has a fix (position valid).
    pub gnss_fix: bool,
    /// JT/T 808 alarm bits.
    pub alarm_bits: u32,
    /// On-board load weight, kg, if fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_kg: Option<f64>,
    /// Permit the terminal reports ("" when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub permit_id: String,
}

/// Zero for non-finite numbers (JSON snapshots cannot hold NaN).
fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

impl Fix {
    /// The rules' view of a decoded fix taken at `t_ms` with sequence `seq`.
    /// A position that is not finite counts as no GNSS fix.
    pub fn from_pb(t_ms: i64, seq: u64, f: &TruckFix) -> Self {
        let valid = LatLon::new(f.latitude_deg, f.longitude_deg).is_valid();
        Self {
            t_ms,
            seq,
            lat: finite_or_zero(f.latitude_deg),
            lon: finite_or_zero(f.longitude_deg),
            speed_kmh: finite_or_zero(f.speed_kmh).max(0.0),
            accuracy_m: finite_or_zero(f.accuracy_m).max(0.0),
            loaded: f.loaded,
            cover_closed: f.cover_closed,
            body_lifted: f.body_lifted,
            ignition_on: f.ignition_on,
            gnss_fix: f.gnss_fix && valid,
            alarm_bits: f.terminal_alarm_bits,
            load_kg: f.load_kg.filter(|v| v.is_finite()),
            permit_id: f.permit_id.clone(),
        }
    }

    /// The position.
    pub fn pos(&self) -> LatLon {
        LatLon::new(self.lat, self.lon)
    }
}

/// An ongoing excursion out of the route corridor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    /// Alert entity, `truck-id/permit-id`.
    pub entity: String,
    /// The permit whose corridor was left.
    pub permit_id: String,
    /// Event time of the first fix outside, Unix ms.
    pub started_ms: i64,
    /// Fixes outside so far.
    pub outside_fixes: u32,
    /// Consecutive fixes back inside (while firing).
    pub inside_fixes: u32,
    /// Farthest distance from the centreline less the error radius, m.
    pub max_excess_m: f64,
    /// The alert has been raised.
    pub firing: bool,
}

/// Time-window rule state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    /// First fix of the current loaded, moving, out-of-window stretch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// While raised: since when the truck has been stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_since_ms: Option<i64>,
    /// While raised: the alert entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

/// Suspected-dumping rule state: the current stop outside approved sites.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DumpState {
    /// First slow fix of the stop (the truck was loaded then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Load weight at the start of the stop, kg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_load_kg: Option<f64>,
    /// The body was lifted during the stop.
    #[serde(default)]
    pub lifted: bool,
    /// The load dropped (sensor says empty, or weight fell past the ratio).
    #[serde(default)]
    pub emptied: bool,
    /// Raised for this stop already.
    #[serde(default)]
    pub fired: bool,
}

/// What the transport rules remember about one truck.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TruckState {
    /// Fixes waiting for the reorder window, sorted by (time, seq).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buffer: Vec<Fix>,
    /// Newest fix time seen (the truck's own watermark), Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_ms: Option<i64>,
    /// Time of the last fix applied, Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_ms: Option<i64>,
    /// Last plausible position: (lat, lon, accuracy m, time ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_good: Option<(f64, f64, f64, i64)>,
    /// A reported permit id already checked to cover the truck's plate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_permit: Option<String>,
    /// Ongoing route deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Deviation>,
    /// Time-window rule.
    pub window: WindowState,
    /// Suspected-dumping rule.
    pub dumping: DumpState,
    /// First fix of the current cover-open stretch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cover_open_since_ms: Option<i64>,
    /// First fix of the current over-the-limit stretch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_since_ms: Option<i64>,
    /// First fix of the current over-120 %-of-the-limit stretch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_since_ms: Option<i64>,
    /// First fix without GNSS with the ignition on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gnss_lost_since_ms: Option<i64>,
}

/// What [`apply`] did with a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Every rule saw it.
    Judged,
    /// No GNSS fix: only the GNSS rule saw it.
    NoPosition,
    /// It jumped implausibly far: only the GNSS rule saw it.
    Implausible,
}

impl TruckState {
    /// Adds a fix to the reorder buffer; `Err` gives it back when it is
    /// late (older than the last fix applied).
    pub fn push(&mut self, fix: Fix) -> Result<(), Fix> {
        if self.applied_ms.is_some_and(|a| fix.t_ms < a) {
            return Err(fix);
        }
        self.newest_ms = Some(self.newest_ms.map_or(fix.t_ms, |n| n.max(fix.t_ms)));
        let key = (fix.t_ms, fix.seq);
        let at = self.buffer.partition_point(|f| (f.t_ms, f.seq) <= key);
        self.buffer.insert(at, fix);
        Ok(())
    }

    /// Takes the oldest fix if it is due for processing: at least
    /// `reorder_window_ms` older than `watermark_ms`, or beyond
    /// `max_buffered_fixes`. Call until `None`.
    pub fn pop_due(&mut self, watermark_ms: i64, s: &EngineSettings) -> Option<Fix> {
        let upto = watermark_ms.saturating_sub(s.reorder_window_ms);
        let first = self.buffer.first()?;
        let due = first.t_ms <= upto || self.buffer.len() > s.max_buffered_fixes.max(1);
        // The buffer holds about one reorder window of fixes, so the shift
        // is cheap.
        due.then(|| self.buffer.remove(0))
    }
}

/// What the transport rules need besides the truck's state.
pub struct TruckCtx<'a> {
    /// Sites and permits.
    pub registry: &'a Registry,
    /// The truck terminal.
    pub device: &'a Device,
    /// Its plate as registered.
    pub plate: &'a str,
    /// Thresholds and overrides.
    pub config: &'a RuleConfig,
}

impl TruckCtx<'_> {
    /// Transport thresholds with the overrides for this truck and `permit`.
    fn thresholds(&self, permit: Option<&str>) -> std::borrow::Cow<'_, TransportThresholds> {
        self.config.overrides.resolve(
            &self.config.thresholds.transport,
            Scope {
                kind: "truck",
                site: &self.device.site_id,
                permit,
                device: &self.device.id,
            },
        )
    }
}

/// The permit `fix` is judged against (see the module docs).
fn select_permit<'r>(ctx: &TruckCtx<'r>, st: &mut TruckState, fix: &Fix) -> Option<&'r Permit> {
    let reg = ctx.registry;
    if !fix.permit_id.is_empty() {
        if let Some(p) = reg.permit(&fix.permit_id) {
            let covers =
                st.verified_permit.as_deref() == Some(p.id.as_str()) || p.covers_plate(ctx.plate);
            if covers {
                if st.verified_permit.as_deref() != Some(p.id.as_str()) {
                    st.verified_permit = Some(p.id.clone());
                }
                if p.is_active_at(fix.t_ms) {
                    return Some(p);
                }
            }
        }
    }
    let pos = fix.pos();
    reg.active_permits_for_plate(ctx.plate, fix.t_ms)
        .into_iter()
        .map(|p| {
            let (d, hw, _) = p.corridor_distance(pos);
            (d - hw, p)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)))
        .map(|(_, p)| p)
}

/// True when `p` is inside the permit's origin or one of its destinations.
fn in_permit_site(reg: &Registry, permit: &Permit, p: LatLon) -> bool {
    std::iter::once(&permit.origin_site_id)
        .chain(&permit.destination_site_ids)
        .filter_map(|id| reg.site(id))
        .any(|s| s.contains(p))
}

/// True when `p`, or any point within `accuracy_m` of it, is inside a site.
fn near_any_site(reg: &Registry, p: LatLon, accuracy_m: f64) -> bool {
    reg.sites.values().any(|s| {
        s.contains(p)
            || (accuracy_m > 0.0
                && s.geofence
                    .iter()
                    .zip(s.geofence.iter().cycle().skip(1))
                    .any(|(a, b)| geo::distance_to_segment_m(p, *a, *b) <= accuracy_m))
    })
}

/// Applies every transport rule to one fix, in device-time order.
pub fn apply(
    ctx: &TruckCtx<'_>,
    st: &mut TruckState,
    fix: &Fix,
    alerts: &mut Alerts<'_>,
) -> Applied {
    st.applied_ms = Some(st.applied_ms.map_or(fix.t_ms, |a| a.max(fix.t_ms)));
    let permit = select_permit(ctx, st, fix);
    let th = ctx.thresholds(permit.map(|p| p.id.as_str()));
    let at = fix.t_ms;

    if fix.gnss_fix || !fix.ignition_on {
        st.gnss_lost_since_ms = None;
    } else {
        st.gnss_lost_since_ms.get_or_insert(at);
    }
    gnss(&th, st.gnss_lost_since_ms, fix.alarm_bits, at, alerts);
    if !fix.gnss_fix {
        return Applied::NoPosition;
    }
    if let Some((lat, lon, acc, t0)) = st.last_good {
        let dt_s = (at - t0) as f64 / 1000.0;
        let jump_m = geo::haversine_m(LatLon::new(lat, lon), fix.pos()) - acc - fix.accuracy_m;
        if dt_s > 0.0 && jump_m > 0.0 && jump_m / dt_s * 3.6 > th.max_plausible_speed_kmh {
            return Applied::Implausible;
        }
    }
    st.last_good = Some((fix.lat, fix.lon, fix.accuracy_m, at));

    let pos = fix.pos();
    let corridor = permit.map(|p| (p, p.corridor_distance(pos)));
    deviation(ctx, &th, st, permit, corridor.map(|c| c.1), fix, alerts);
    time_window(ctx, &th, st, permit, fix, alerts);
    dumping(ctx, &th, st, permit, fix, alerts);
    body_lifted(ctx, fix, alerts);
    cover(&th, st, fix, alerts);
    let limit = corridor
        .and_then(|(p, (d, hw, seg))| {
            (d - fix.accuracy_m <= hw)
                .then(|| p.segments.get(seg).and_then(|s| s.speed_limit_kmh))
                .flatten()
        })
        .unwrap_or(th.default_speed_limit_kmh);
    overspeed(&th, st, limit, fix, alerts);
    Applied::Judged
}

/// A late fix (older than one already applied): it may only count as one
/// more fix outside the corridor of an ongoing deviation that started
/// before it. Returns true when it did.
pub fn apply_late(ctx: &TruckCtx<'_>, st: &mut TruckState, fix: &Fix) -> bool {
    let Some(ep) = st.deviation.as_mut() else {
        return false;
    };
    if !fix.gnss_fix || fix.t_ms < ep.started_ms {
        return false;
    }
    let Some(permit) = ctx.registry.permit(&ep.permit_id) else {
        return false;
    };
    let (d, hw, _) = permit.corridor_distance(fix.pos());
    let excess = d - fix.accuracy_m;
    if excess > hw && !in_permit_site(ctx.registry, permit, fix.pos()) {
        ep.outside_fixes = ep.outside_fixes.saturating_add(1);
        ep.max_excess_m = ep.max_excess_m.max(excess);
        return true;
    }
    false
}

/// Route deviation: outside the corridor (beyond the GPS error radius) for
/// at least `deviation_min_fixes` fixes spanning `deviation_min_duration_ms`;
/// critical past `deviation_critical_distance_m` or after
/// `deviation_critical_duration_ms`; clears after `deviation_clear_fixes`
/// consecutive fixes inside, or at once when the rule stops applying
/// (unloaded, no valid permit).
fn deviation(
    ctx: &TruckCtx<'_>,
    th: &TransportThresholds,
    st: &mut TruckState,
    permit: Option<&Permit>,
    corridor: Option<(f64, f64, usize)>,
    fix: &Fix,
    alerts: &mut Alerts<'_>,
) {
    let at = fix.t_ms;
    let applicable = fix.loaded || !th.deviation_requires_loaded;
    let (Some(permit), Some((d, hw, _)), true) = (permit, corridor, applicable) else {
        if let Some(ep) = st.deviation.take() {
            if ep.firing {
                alerts.clear(RuleId::RouteDeviation, Some(&ep.entity), at);
            }
        }
        return;
    };
    let excess = d - fix.accuracy_m;
    let outside = excess > hw && !in_permit_site(ctx.registry, permit, fix.pos());
    if !outside {
        if let Some(ep) = st.deviation.as_mut() {
            if !ep.firing {
                st.deviation = None;
            } else {
                ep.inside_fixes += 1;
                if ep.inside_fixes >= th.deviation_clear_fixes {
                    alerts.clear(RuleId::RouteDeviation, Some(&ep.entity), at);
                    st.deviation = None;
                }
            }
        }
        return;
    }
    let ep = st.deviation.get_or_insert_with(|| Deviation {
        entity: format!("{}/{}", ctx.device.id, permit.id),
        permit_id: permit.id.clone(),
        started_ms: at,
        outside_fixes: 0,
        inside_fixes: 0,
        max_excess_m: excess,
        firing: false,
    });
    ep.outside_fixes = ep.outside_fixes.saturating_add(1);
    ep.inside_fixes = 0;
    ep.max_excess_m = ep.max_excess_m.max(excess);
    let out_ms = at - ep.started_ms;
    if ep.outside_fixes < th.deviation_min_fixes || out_ms < th.deviation_min_duration_ms {
        return;
    }
    ep.firing = true;
    let severe = ep.max_excess_m > th.deviation_critical_distance_m
        || out_ms >= th.deviation_critical_duration_ms;
    let severity = if severe {
        Severity::Critical
    } else {
        Severity::Warn
    };
    let (entity, max, fixes) = (ep.entity.clone(), ep.max_excess_m, ep.outside_fixes);
    alerts.raise(
        RuleId::RouteDeviation,
        Some(&entity),
        severity,
        excess,
        hw,
        at,
        || {
            format!(
                "off the route of {} for {} s and {fixes} fixes, up to {max:.0} m from the centreline (corridor ±{hw:.0} m)",
                permit.id,
                out_ms / 1000
            )
        },
    );
}

/// Loaded and moving outside the permit's daily window, for at least
/// `time_window_min_duration_ms`; clears when the window opens, the truck
/// is unloaded, or it has stood still for `time_window_clear_ms`.
fn time_window(
    ctx: &TruckCtx<'_>,
    th: &TransportThresholds,
    st: &mut TruckState,
    permit: Option<&Permit>,
    fix: &Fix,
    alerts: &mut Alerts<'_>,
) {
    let at = fix.t_ms;
    let moving = fix.speed_kmh >= th.moving_kmh;
    let outside = permit.is_some_and(|p| !p.in_time_window(at));
    let w = &mut st.window;
    if let Some(entity) = w.entity.clone() {
        let stopped_long = if moving {
            w.stopped_since_ms = None;
            false
        } else {
            at - *w.stopped_since_ms.get_or_insert(at) >= th.time_window_clear_ms
        };
        if !outside || !fix.loaded || stopped_long {
            alerts.clear(RuleId::OutsideTimeWindow, Some(&entity), at);
            *w = WindowState::default();
        }
        return;
    }
    let (Some(p), true) = (permit, fix.loaded && moving && outside) else {
        w.since_ms = None;
        return;
    };
    let since = *w.since_ms.get_or_insert(at);
    if at - since >= th.time_window_min_duration_ms {
        let entity = format!("{}/{}", ctx.device.id, p.id);
        let windows: Vec<String> = p.time_windows.iter().map(ToString::to_string).collect();
        let speed = fix.speed_kmh;
        alerts.raise(
            RuleId::OutsideTimeWindow,
            Some(&entity),
            Severity::Major,
            speed,
            th.moving_kmh,
            at,
            || {
                format!(
                    "loaded and moving at {speed:.0} km/h outside the hours of {} ({})",
                    p.id,
                    windows.join(", ")
                )
            },
        );
        w.entity = Some(entity);
        w.stopped_since_ms = None;
    }
}

/// Loaded, stopped (under `moving_kmh`) outside approved sites (the
/// permit's origin and destinations; any site for a truck without a valid
/// permit) for `dumping_still_ms`, and the body lifted or the load dropped.
/// Raised once per stop; cleared by the engine after `event_hold_ms`.
fn dumping(
    ctx: &TruckCtx<'_>,
    th: &TransportThresholds,
    st: &mut TruckState,
    permit: Option<&Permit>,
    fix: &Fix,
    alerts: &mut Alerts<'_>,
) {
    let at = fix.t_ms;
    let d = &mut st.dumping;
    if fix.speed_kmh >= th.moving_kmh {
        *d = DumpState::default();
        return;
    }
    if d.since_ms.is_none() && !fix.loaded {
        return;
    }
    let pos = fix.pos();
    let approved = match permit {
        Some(p) => in_permit_site(ctx.registry, p, pos),
        None => ctx.registry.site_containing(pos).is_some(),
    };
    if approved {
        *d = DumpState::default();
        return;
    }
    let since = *d.since_ms.get_or_insert(at);
    if d.start_load_kg.is_none() && fix.loaded {
        d.start_load_kg = fix.load_kg;
    }
    d.lifted |= fix.body_lifted;
    d.emptied |= !fix.loaded;
    if let (Some(start), Some(now)) = (d.start_load_kg, fix.load_kg) {
        d.emptied |= start > 0.0 && (start - now) / start > th.dumping_load_drop_ratio;
    }
    let still_ms = at - since;
    if !d.fired && still_ms >= th.dumping_still_ms && (d.lifted || d.emptied) {
        d.fired = true;
        let (lifted, mins) = (d.lifted, still_ms as f64 / 60_000.0);
        alerts.raise(
            RuleId::SuspectedDumping,
            None,
            Severity::Critical,
            mins,
            th.dumping_still_ms as f64 / 60_000.0,
            at,
            || {
                let how = if lifted {
                    "body lifted"
                } else {
                    "load dropped"
                };
                format!(
                    "suspected illegal dumping at {:.5},{:.5}: stopped {mins:.0} min outside approved sites, {how}",
                    pos.lat, pos.lon
                )
            },
        );
    }
}

/// Body lifted while no site geofence is within the fix's error radius.
fn body_lifted(ctx: &TruckCtx<'_>, fix: &Fix, alerts: &mut Alerts<'_>) {
    let outside = fix.body_lifted && !near_any_site(ctx.registry, fix.pos(), fix.accuracy_m);
    alerts.set(
        RuleId::BodyLiftedOutsideSite,
        outside.then_some((Severity::Critical, 1.0, 1.0)),
        fix.t_ms,
        || {
            format!(
                "tipper body lifted outside any site at {:.5},{:.5}",
                fix.lat, fix.lon
            )
        },
    );
}

/// Cover open on a loaded truck moving faster than `moving_kmh` for longer
/// than `cover_open_max_ms`; clears when closed or unloaded (a stop holds
/// it).
fn cover(th: &TransportThresholds, st: &mut TruckState, fix: &Fix, alerts: &mut Alerts<'_>) {
    let at = fix.t_ms;
    if alerts.current(RuleId::CoverOpen).is_some() {
        if fix.cover_closed || !fix.loaded {
            alerts.clear(RuleId::CoverOpen, None, at);
            st.cover_open_since_ms = None;
        }
        return;
    }
    if fix.cover_closed || !fix.loaded || fix.speed_kmh <= th.moving_kmh {
        st.cover_open_since_ms = None;
        return;
    }
    let since = *st.cover_open_since_ms.get_or_insert(at);
    let open_ms = at - since;
    if open_ms > th.cover_open_max_ms {
        let s = open_ms as f64 / 1000.0;
        alerts.raise(
            RuleId::CoverOpen,
            None,
            Severity::Major,
            s,
            th.cover_open_max_ms as f64 / 1000.0,
            at,
            || {
                format!(
                    "cover open on a loaded truck moving at {:.0} km/h for {s:.0} s",
                    fix.speed_kmh
                )
            },
        );
    }
}

/// Over `limit` for `overspeed_min_duration_ms` (warn), over
/// `overspeed_major_ratio` × limit as long (major); holds until
/// `overspeed_clear_margin_kmh` under the level's limit.
fn overspeed(
    th: &TransportThresholds,
    st: &mut TruckState,
    limit: f64,
    fix: &Fix,
    alerts: &mut Alerts<'_>,
) {
    let (at, v) = (fix.t_ms, fix.speed_kmh);
    let major_limit = limit * th.overspeed_major_ratio;
    if v > limit {
        st.over_since_ms.get_or_insert(at);
    } else {
        st.over_since_ms = None;
    }
    if v > major_limit {
        st.major_since_ms.get_or_insert(at);
    } else {
        st.major_since_ms = None;
    }
    let lasted = |since: Option<i64>| since.is_some_and(|s| at - s >= th.overspeed_min_duration_ms);
    let cur = alerts.current(RuleId::Overspeed);
    let margin = th.overspeed_clear_margin_kmh;
    let severity = if lasted(st.major_since_ms)
        || (cur == Some(Severity::Major) && v > major_limit - margin)
    {
        Some(Severity::Major)
    } else if lasted(st.over_since_ms) || (cur.is_some() && v > limit - margin) {
        Some(Severity::Warn)
    } else {
        None
    };
    alerts.set(
        RuleId::Overspeed,
        severity.map(|s| (s, v, limit)),
        at,
        || format!("{v:.0} km/h in a {limit:.0} km/h zone"),
    );
}

/// GNSS lost (no fix with ignition on for over `gnss_lost_ms`, as of
/// `at_ms`) or a terminal GNSS alarm bit; clears when neither holds.
pub fn gnss(
    th: &TransportThresholds,
    lost_since_ms: Option<i64>,
    alarm_bits: u32,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    let alarm = alarm_bits & th.gnss_alarm_mask;
    let lost_ms = lost_since_ms.map_or(0, |s| at_ms - s);
    let lost = lost_ms > th.gnss_lost_ms;
    let verdict = if alarm != 0 {
        Some((Severity::Major, f64::from(alarm), 0.0))
    } else if lost {
        Some((
            Severity::Major,
            lost_ms as f64 / 60_000.0,
            th.gnss_lost_ms as f64 / 60_000.0,
        ))
    } else {
        None
    };
    alerts.set(RuleId::GnssLost, verdict, at_ms, || {
        if alarm != 0 {
            format!("terminal reports a GNSS alarm (JT/T 808 alarm bits {alarm:#b})")
        } else {
            format!(
                "no GNSS fix for {:.0} min with the ignition on",
                lost_ms as f64 / 60_000.0
            )
        }
    });
}

/// On tick: raises `gnss_lost` when the truck's last fixes had no GNSS
/// with the ignition on for over `gnss_lost_ms` as of `now_ms` (no fix has
/// arrived since to say otherwise). Never clears: only a fix can.
pub fn gnss_on_tick(
    th: &TransportThresholds,
    st: &TruckState,
    now_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    if let Some(since) = st.gnss_lost_since_ms {
        let lost_ms = now_ms - since;
        if lost_ms > th.gnss_lost_ms {
            let m = lost_ms as f64 / 60_000.0;
            alerts.raise(
                RuleId::GnssLost,
                None,
                Severity::Major,
                m,
                th.gnss_lost_ms as f64 / 60_000.0,
                now_ms,
                || format!("no GNSS fix for {m:.0} min with the ignition on"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
