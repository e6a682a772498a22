//! Construction-waste trucks: a JT/T 808 style terminal reporting GNSS
//! fixes with the vehicle's load, cover, body-lift and ignition sensors.
//!
//! A truck with an active permit works in cycles: wait at the origin until
//! a whole loaded trip fits the permit's time window (Ministry of Housing
//! order 139), load for 10-15 min, drive the permit route to its end at
//! 65-90 % of each segment's speed limit with short traffic stops, unload
//! inside the destination site (cover open, body lifted), get weighed by
//! the site's weighbridge, and drive back empty. A fix every 5 s while the
//! ignition is on, every `expected_interval_s` when parked. Loads stay under
//! the permit's approved load and the GB 1589 gross limit for the axle
//! count. GNSS error is Gaussian with σ per axis ([`World::gps_sigma_m`]),
//! reported honestly as `accuracy_m`. A truck without an active permit stays
//! parked at its home site.

use std::sync::Arc;

use super::{legal_gross_kg, round1, scale_round, Cross, Reading, StepOut, TicketReq, World};
use crate::rng::{ms_between, normal, uniform, SimRng};
use crate::time::MINUTE_MS;
use wastewatch_contract::geo::{self, LatLon, Polyline};
use wastewatch_contract::pb::{envelope::Body, TruckFix, WasteCategory};
use wastewatch_contract::registry::{Permit, RouteSegment, SiteType};
use wastewatch_contract::topic::Channel;

use rand::Rng;

/// Fix interval with the ignition on, ms.
pub(crate) const MOVING_FIX_MS: i64 = 5_000;
/// Default speed limit when a segment has none, km/h (docs/RULES.md overspeed).
const DEFAULT_LIMIT_KMH: f64 = 40.0;
/// Lateral size of the `route_deviation` detour, metres.
pub(crate) const DETOUR_OFFSET_M: f64 = 300.0;
/// Length along the route of each detour ramp, metres.
const DETOUR_RAMP_M: f64 = 300.0;
/// Duration of the `gps_dropout_burst` uplink loss, ms.
pub(crate) const DROPOUT_MS: i64 = 3 * MINUTE_MS;

/// What a scenario does to this truck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TruckTwist {
    /// Normal operation.
    None,
    /// A ~300 m detour off the corridor on each loaded trip.
    RouteDeviation,
    /// Dumps the load by the road halfway on each loaded trip.
    IllegalDump,
    /// Drives loaded only outside the permit's time window.
    TimeWindow,
    /// Loses the uplink for 3 min on each loaded trip.
    GpsDropout,
    /// Loaded 2.5-5 t above the legal gross weight.
    Overload,
}

/// The trip a permitted truck repeats.
#[derive(Debug)]
pub(crate) struct TripPlan {
    /// The permit, shared by every truck on it (a permit of a generated
    /// zone lists thousands of plates; one copy per truck would not fit in
    /// memory).
    pub permit: Arc<Permit>,
    /// Cumulative distance at the start of each segment, metres.
    pub seg_start_m: Vec<f64>,
    /// Route length, metres.
    pub length_m: f64,
    /// Destination site (the approved site containing the route end, else
    /// the first approved site).
    pub dest_site_id: String,
    /// Waste category this truck hauls (fits the destination type).
    pub category: WasteCategory,
    /// What the destination counts as in the KPIs.
    pub dest_type: Option<wastewatch_contract::pb::DestinationType>,
}

impl TripPlan {
    /// The plan of `permit` in `world`.
    pub fn new(world: &World, permit: Arc<Permit>, r: &mut SimRng) -> Self {
        let route = &permit.route;
        let mut seg_start_m = Vec::with_capacity(route.segment_count());
        let mut acc = 0.0;
        for (a, b) in route.segments() {
            seg_start_m.push(acc);
            acc += geo::haversine_m(a, b);
        }
        let end = route.points()[route.points().len() - 1];
        let dest_site_id = permit
            .destination_site_ids
            .iter()
            .find(|id| world.registry.site(id).is_some_and(|s| s.contains(end)))
            .or_else(|| permit.destination_site_ids.first())
            .cloned()
            .unwrap_or_default();
        let category = match world.site_type(&dest_site_id) {
            Some(SiteType::RecyclingPlant) => match r.random_range(0..3) {
                0 => WasteCategory::ConstructionDemolition,
                1 => WasteCategory::ConstructionDecoration,
                _ => WasteCategory::ConstructionEngineering,
            },
            Some(SiteType::Landfill) => match r.random_range(0..3) {
                0 => WasteCategory::ConstructionMud,
                _ => WasteCategory::ConstructionSpoil,
            },
            _ => WasteCategory::ConstructionSpoil,
        };
        let dest_type = world
            .site_type(&dest_site_id)
            .and_then(SiteType::destination_type);
        TripPlan {
            permit,
            seg_start_m,
            length_m: acc,
            dest_site_id,
            category,
            dest_type,
        }
    }

    fn route(&self) -> &Polyline {
        &self.permit.route
    }

    /// Segment index at distance `d`.
    fn segment_at(&self, d: f64) -> usize {
        self.seg_start_m.iter().rposition(|&s| s <= d).unwrap_or(0)
    }

    /// Speed limit in force at distance `d`: within 150 m of a vertex the
    /// lower of the two segments' limits, so a fix near a corner that a
    /// rule attributes to either segment is within both limits (and trucks
    /// slow down for turns anyway).
    fn limit_at(&self, d: f64) -> f64 {
        let limit = |seg: &RouteSegment| seg.speed_limit_kmh.unwrap_or(DEFAULT_LIMIT_KMH);
        let mut l = f64::INFINITY;
        for (i, seg) in self.permit.segments.iter().enumerate() {
            let start = self.seg_start_m.get(i).copied().unwrap_or(0.0);
            let end = self
                .seg_start_m
                .get(i + 1)
                .copied()
                .unwrap_or(self.length_m);
            if d >= start - 150.0 && d <= end + 150.0 {
                l = l.min(limit(seg));
            }
        }
        if l.is_finite() {
            l
        } else {
            DEFAULT_LIMIT_KMH
        }
    }

    /// The longest segment as (start distance, length).
    pub fn longest_segment(&self) -> (f64, f64) {
        let mut best = (0.0, 0.0);
        for (i, &s) in self.seg_start_m.iter().enumerate() {
            let end = self
                .seg_start_m
                .get(i + 1)
                .copied()
                .unwrap_or(self.length_m);
            if end - s > best.1 {
                best = (s, end - s);
            }
        }
        best
    }

    /// Minutes of a day the permit's windows allow.
    pub fn window_minutes_per_day(&self) -> usize {
        (0..1440u16)
            .filter(|m| {
                self.permit
                    .time_windows
                    .iter()
                    .any(|w| w.contains_minute(*m))
            })
            .count()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Parked,
    Loading { until_ms: i64 },
    Outbound,
    Unloading { since_ms: i64 },
    Dumping { since_ms: i64 },
    Return,
}

/// State of one truck.
#[derive(Debug)]
pub(crate) struct TruckSim {
    plate: String,
    tare_kg: f64,
    axles: u32,
    plan: Option<TripPlan>,
    home: LatLon,
    interval_ms: i64,
    twist: TruckTwist,
    phase: Phase,
    d_m: f64,
    speed_kmh: f64,
    seg_factor: f64,
    seg_idx: usize,
    stop_until_ms: i64,
    load_kg: f64,
    target_load_kg: f64,
    loaded: bool,
    cover_closed: bool,
    body_lifted: bool,
    ignition: bool,
    heading_deg: f64,
    last_pos: Option<LatLon>,
    last_ms: i64,
    not_before_ms: i64,
    dump_at_m: Option<f64>,
    detour_m: Option<(f64, f64)>,
    dropout_at_m: Option<f64>,
    dropout_until_ms: Option<i64>,
    arrived_ms: i64,
    loading_since_ms: i64,
    satellites: u32,
}

impl TruckSim {
    /// A truck that starts at `start_ms` (parked, ignition off).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        r: &mut SimRng,
        world: &World,
        plate: &str,
        tare_kg: f64,
        axles: u32,
        home_site_id: &str,
        plan: Option<TripPlan>,
        interval_s: u32,
        start_ms: i64,
        twist: TruckTwist,
    ) -> Self {
        let home = plan
            .as_ref()
            .map(|p| p.route().points()[0])
            .or_else(|| world.registry.site(home_site_id).map(|s| s.centre))
            .unwrap_or(LatLon::new(0.0, 0.0));
        let mut t = TruckSim {
            plate: plate.to_owned(),
            tare_kg,
            axles,
            plan,
            home,
            interval_ms: i64::from(interval_s.max(1)) * 1000,
            twist,
            phase: Phase::Parked,
            d_m: 0.0,
            speed_kmh: 0.0,
            seg_factor: 0.8,
            seg_idx: usize::MAX,
            stop_until_ms: 0,
            load_kg: 0.0,
            target_load_kg: 0.0,
            loaded: false,
            cover_closed: true,
            body_lifted: false,
            ignition: false,
            heading_deg: uniform(r, 0.0, 360.0),
            last_pos: None,
            last_ms: start_ms,
            not_before_ms: start_ms + ms_between(r, 0.0, 1200.0),
            dump_at_m: None,
            detour_m: None,
            dropout_at_m: None,
            dropout_until_ms: None,
            arrived_ms: 0,
            loading_since_ms: 0,
            satellites: r.random_range(9..=16),
        };
        t.set_twist_points(world);
        t
    }

    /// Where along the route the twists take effect.
    fn set_twist_points(&mut self, world: &World) {
        let Some(plan) = &self.plan else { return };
        let len = plan.length_m;
        match self.twist {
            TruckTwist::RouteDeviation => {
                let (s, l) = plan.longest_segment();
                let along = (0.5 * l).clamp(2.0 * DETOUR_RAMP_M + 100.0, 1500.0);
                let a = s + (0.25 * l).min((l - along).max(0.0) / 2.0).max(0.0);
                self.detour_m = Some((a, (a + along).min(s + l)));
            }
            TruckTwist::IllegalDump => {
                // Halfway, moved on until the spot is outside every site.
                let mut d = 0.55 * len;
                while d < 0.9 * len
                    && world
                        .registry
                        .site_containing(plan.route().point_at_distance(d).0)
                        .is_some()
                {
                    d += 100.0;
                }
                self.dump_at_m = Some(d);
            }
            TruckTwist::GpsDropout => self.dropout_at_m = Some(0.3 * len),
            _ => {}
        }
    }

    /// Battery of the terminal, mV (vehicle powered: 0).
    pub fn battery_mv(&self) -> u32 {
        0
    }

    /// Permit id the truck runs under ("" when none).
    pub fn permit_id(&self) -> &str {
        self.plan.as_ref().map_or("", |p| p.permit.id.as_str())
    }

    /// Rough duration of a loaded trip (loading, driving, unloading), ms.
    fn trip_estimate_ms(&self, plan: &TripPlan) -> i64 {
        let avg_mps = 0.7 * DEFAULT_LIMIT_KMH / 3.6;
        15 * MINUTE_MS + (plan.length_m / avg_mps * 1000.0) as i64 + 12 * MINUTE_MS
    }

    /// True when a loaded trip starting now keeps to the rules the truck
    /// follows (inverted for the time-window scenario).
    fn may_start(&self, plan: &TripPlan, now: i64) -> bool {
        if !plan.permit.is_active_at(now) {
            return false;
        }
        let est = self.trip_estimate_ms(plan);
        let probes = [now, now + est / 2, now + est + 5 * MINUTE_MS];
        if self.twist == TruckTwist::TimeWindow {
            probes.iter().all(|&t| !plan.permit.in_time_window(t))
        } else {
            probes.iter().all(|&t| plan.permit.in_time_window(t))
        }
    }

    fn target_load(&self, r: &mut SimRng, plan: &TripPlan) -> f64 {
        let legal_load = legal_gross_kg(self.axles) - self.tare_kg;
        if self.twist == TruckTwist::Overload {
            return scale_round(legal_load + uniform(r, 2500.0, 5000.0));
        }
        let cap = plan
            .permit
            .approved_load_kg
            .unwrap_or(f64::INFINITY)
            .min(legal_load - 300.0)
            .max(1000.0);
        scale_round(cap * uniform(r, 0.82, 0.97))
    }

    /// True position at distance `d` along the route, with the detour's
    /// lateral offset.
    fn position_at(&self, plan: &TripPlan, d: f64, detour: bool) -> LatLon {
        let (p, seg) = plan.route().point_at_distance(d);
        let Some((a, b)) = self.detour_m.filter(|_| detour) else {
            return p;
        };
        let off = if d <= a || d >= b {
            0.0
        } else if d < a + DETOUR_RAMP_M {
            DETOUR_OFFSET_M * (d - a) / DETOUR_RAMP_M
        } else if d > b - DETOUR_RAMP_M {
            DETOUR_OFFSET_M * (b - d) / DETOUR_RAMP_M
        } else {
            DETOUR_OFFSET_M
        };
        if off == 0.0 {
            return p;
        }
        let pts = plan.route().points();
        let (s, e) = (pts[seg], pts[seg + 1]);
        let north = (e.lat - s.lat) * 111_195.0;
        let east = (e.lon - s.lon) * 111_195.0 * s.lat.to_radians().cos();
        let len = north.hypot(east);
        if len == 0.0 {
            return p;
        }
        // Left of the direction of travel: (north, east) rotated by +90°.
        p.offset_m(east / len * off, -north / len * off)
    }

    fn true_position(&self) -> LatLon {
        match &self.plan {
            Some(plan) if self.phase != Phase::Parked || self.d_m > 0.0 => {
                self.position_at(plan, self.d_m, self.phase == Phase::Outbound)
            }
            _ => self.home,
        }
    }

    /// Moves along the route for `dt_s` seconds in direction `dir` (+1 out,
    /// -1 back).
    fn drive(&mut self, r: &mut SimRng, now: i64, dt_s: f64, dir: f64) {
        let Some(plan) = &self.plan else { return };
        let seg = plan.segment_at(self.d_m);
        if seg != self.seg_idx {
            self.seg_idx = seg;
            self.seg_factor = uniform(r, 0.65, 0.9);
        }
        let limit = plan.limit_at(self.d_m);
        if now < self.stop_until_ms {
            self.speed_kmh = 0.0;
            return;
        }
        // A traffic light or junction about every 4 min of driving, but not
        // in the first or last 300 m.
        let inside = self.d_m > 300.0 && self.d_m < plan.length_m - 300.0;
        if inside && r.random_bool((dt_s / 240.0).min(1.0)) {
            self.stop_until_ms = now + ms_between(r, 20.0, 70.0);
            self.speed_kmh = 0.0;
            return;
        }
        self.speed_kmh = limit * self.seg_factor;
        self.d_m = (self.d_m + dir * self.speed_kmh / 3.6 * dt_s).clamp(0.0, plan.length_m);
    }

    /// Advances to `now`; returns the next wake-up.
    pub fn advance(&mut self, r: &mut SimRng, world: &World, now: i64, out: &mut StepOut) -> i64 {
        let dt_s = ((now - self.last_ms).max(0)) as f64 / 1000.0;
        self.last_ms = now;
        let Some(len) = self.plan.as_ref().map(|p| p.length_m) else {
            self.emit(r, world, now, out);
            return now + self.interval_ms;
        };
        match self.phase {
            Phase::Parked => {
                self.speed_kmh = 0.0;
                let can = now >= self.not_before_ms
                    && self.plan.as_ref().is_some_and(|p| self.may_start(p, now));
                if can {
                    let target = self.plan.as_ref().map_or(0.0, |p| self.target_load(r, p));
                    self.target_load_kg = target;
                    self.ignition = true;
                    self.cover_closed = false;
                    self.loading_since_ms = now;
                    self.phase = Phase::Loading {
                        until_ms: now + ms_between(r, 600.0, 900.0),
                    };
                } else {
                    self.ignition = false;
                }
            }
            Phase::Loading { until_ms } => {
                self.speed_kmh = 0.0;
                let frac =
                    1.0 - ((until_ms - now).max(0) as f64 / (12.5 * MINUTE_MS as f64)).min(1.0);
                self.load_kg = scale_round(self.target_load_kg * frac);
                self.loaded = self.load_kg > 0.3 * self.target_load_kg;
                if now >= until_ms {
                    self.load_kg = self.target_load_kg;
                    self.loaded = true;
                    self.cover_closed = true;
                    self.dispatch(r, now, out);
                    self.phase = Phase::Outbound;
                }
            }
            Phase::Outbound => {
                let before = self.d_m;
                self.drive(r, now, dt_s, 1.0);
                if let Some(at) = self.dump_at_m.filter(|&at| before < at && self.d_m >= at) {
                    self.d_m = at;
                    self.speed_kmh = 0.0;
                    self.phase = Phase::Dumping { since_ms: now };
                }
                if self
                    .dropout_at_m
                    .is_some_and(|at| before < at && self.d_m >= at)
                {
                    self.dropout_until_ms = Some(now + DROPOUT_MS);
                    out.link_up = Some(false);
                }
                if self.d_m >= len {
                    self.speed_kmh = 0.0;
                    self.arrived_ms = now;
                    self.weigh(r, now, out);
                    self.phase = Phase::Unloading { since_ms: now };
                }
            }
            Phase::Unloading { since_ms } | Phase::Dumping { since_ms } => {
                self.speed_kmh = 0.0;
                let e = now - since_ms;
                let dumping = matches!(self.phase, Phase::Dumping { .. });
                // Timeline: stop, open the cover at 1 min, lift the body at
                // 2 min (dumping: 3 min, after a suspicious wait), empty over
                // 3 min, lower, close the cover, leave.
                let lift_at = if dumping { 3 } else { 2 } * MINUTE_MS;
                self.cover_closed = e < MINUTE_MS || e >= lift_at + 4 * MINUTE_MS;
                self.body_lifted = e >= lift_at && e < lift_at + 3 * MINUTE_MS;
                if e >= lift_at {
                    let frac = ((e - lift_at) as f64 / (3 * MINUTE_MS) as f64).min(1.0);
                    self.load_kg = scale_round(self.target_load_kg * (1.0 - frac));
                    self.loaded = frac < 0.7;
                }
                let leave_at = lift_at + if dumping { 6 } else { 5 } * MINUTE_MS;
                if e >= leave_at {
                    self.load_kg = 0.0;
                    self.loaded = false;
                    self.body_lifted = false;
                    self.cover_closed = true;
                    self.phase = Phase::Return;
                }
            }
            Phase::Return => {
                self.drive(r, now, dt_s, -1.0);
                if self.d_m <= 0.0 {
                    self.speed_kmh = 0.0;
                    self.phase = Phase::Parked;
                    self.not_before_ms = now + ms_between(r, 120.0, 900.0);
                }
            }
        }
        if self.dropout_until_ms.is_some_and(|t| now >= t) {
            self.dropout_until_ms = None;
            out.link_up = Some(true);
        }
        self.emit(r, world, now, out);
        if self.ignition {
            now + MOVING_FIX_MS
        } else {
            now + self.interval_ms
        }
    }

    /// Asks the destination weighbridge for the ticket of this delivery:
    /// one weighing on arrival against the stored tare.
    fn weigh(&mut self, r: &mut SimRng, now: i64, out: &mut StepOut) {
        let Some(plan) = &self.plan else { return };
        // Tare on the scale drifts a little from the registered tare
        // (fuel, mud), within the 100 kg data-quality tolerance.
        let tare = scale_round(self.tare_kg + uniform(r, -60.0, 60.0));
        let mut req = TicketReq::delivery(
            self.arrived_ms,
            now,
            self.plate.clone(),
            self.axles,
            tare,
            self.target_load_kg,
            plan.category,
            "",
            plan.permit.origin_site_id.clone(),
            plan.permit.id.clone(),
        );
        req.single_weighing = true;
        out.cross.push(Cross::Ticket {
            site_id: plan.dest_site_id.clone(),
            req,
        });
    }

    /// Asks the origin's weighbridge (if it has one) for the out-ticket of
    /// the load leaving: tare on arrival, gross on leaving.
    fn dispatch(&mut self, r: &mut SimRng, now: i64, out: &mut StepOut) {
        let Some(plan) = &self.plan else { return };
        let tare = scale_round(self.tare_kg + uniform(r, -60.0, 60.0));
        let mut req = TicketReq::delivery(
            self.loading_since_ms,
            now,
            self.plate.clone(),
            self.axles,
            tare,
            self.target_load_kg,
            plan.category,
            "",
            plan.permit.origin_site_id.clone(),
            plan.permit.id.clone(),
        );
        req.direction = wastewatch_contract::pb::Direction::Out;
        req.destination_site_id = plan.dest_site_id.clone();
        req.destination_type = plan.dest_type;
        out.cross.push(Cross::Ticket {
            site_id: plan.permit.origin_site_id.clone(),
            req,
        });
    }

    /// Records one fix.
    fn emit(&mut self, r: &mut SimRng, world: &World, now: i64, out: &mut StepOut) {
        let pos = self.true_position();
        if let Some(prev) = self.last_pos {
            let north = (pos.lat - prev.lat) * 111_195.0;
            let east = (pos.lon - prev.lon) * 111_195.0 * prev.lat.to_radians().cos();
            if north.hypot(east) > 1.0 {
                self.heading_deg = east.atan2(north).to_degrees().rem_euclid(360.0);
            }
        }
        self.last_pos = Some(pos);
        let sigma = world.gps_sigma_m;
        let noisy = pos.offset_m(normal(r, 0.0, sigma), normal(r, 0.0, sigma));
        let moving = self.speed_kmh > 0.0;
        let speed = if moving {
            (self.speed_kmh + normal(r, 0.0, 0.5)).max(0.0)
        } else {
            0.0
        };
        let satellites = if sigma >= 15.0 {
            r.random_range(5..=8)
        } else {
            self.satellites
        };
        let fix = TruckFix {
            latitude_deg: (noisy.lat * 1e6).round() / 1e6,
            longitude_deg: (noisy.lon * 1e6).round() / 1e6,
            speed_kmh: round1(speed),
            heading_deg: round1(self.heading_deg) % 360.0,
            accuracy_m: round1((sigma * uniform(r, 0.8, 1.3)).max(1.0)),
            loaded: self.loaded,
            cover_closed: self.cover_closed,
            body_lifted: self.body_lifted,
            ignition_on: self.ignition,
            plate: self.plate.clone(),
            permit_id: self.permit_id().to_owned(),
            load_kg: Some(self.load_kg),
            terminal_alarm_bits: 0,
            gnss_fix: true,
            satellites,
            altitude_m: None,
            odometer_km: None,
        };
        out.readings.push(Reading {
            channel: Channel::Telemetry,
            body: Body::TruckFix(fix),
            at_ms: now,
        });
    }
}
