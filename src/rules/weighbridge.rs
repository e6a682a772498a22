//! Weighbridge rules (docs/RULES.md "Weighbridges"): overload
//! against the legal gross vehicle weight (GB 1589-2016 by axle count), and
//! an unapproved vehicle delivering construction waste.
//!
//! Called by the engine with each ticket. Both are event alerts keyed by
//! `weighbridge-id/PLATE` (normalised plate): a later compliant ticket of
//! the same plate at the same weighbridge clears them, otherwise the engine
//! clears them `event_hold_ms` after they were raised.
//!
//! Ticket data quality (docs/RULES.md "Weighbridges"): a tare more than 100 kg
//! from the truck's registered tare, and a second ticket with the same id
//! at the same weighbridge — both event alerts like overload.
//!
//! Trip not closed: a permitted truck weighed out at its permit's origin
//! opens a trip on the truck (`OpenTrip`) — when at least one of the
//! permit's destinations has a weighbridge, the only thing that can close
//! it; a ticket in at one of the permit's destinations closes it. Still open 1.5 × the route's ETA after
//! weighing out (at most 4 h), it raises `trip_not_closed` (major) on tick,
//! keyed `truck/permit`; the closing ticket clears it, however late.
//!
//! "Unapproved" is judged at gates of construction-waste destinations
//! (recycling plants, landfills, backfill sites) for loads coming in
//! (direction in or unstated) of construction waste or unstated category:
//! the plate must be on a permit valid that day that lists this site among
//! its destinations — a permit to another site does not cover this one.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::alert::{RuleId, Severity};
use crate::pb::{Direction, WasteCategory, WeighbridgeTicket};
use crate::registry::{normalize_plate, Device, Permit, Registry, SiteType};

use super::config::WeighbridgeThresholds;
use super::emit::Alerts;

impl WeighbridgeThresholds {
    /// Legal gross vehicle weight for `axles`, kg; `None` outside 2..=6.
    pub fn legal_gross_kg(&self, axles: u32) -> Option<f64> {
        match axles {
            2 => Some(self.legal_gross_2_axles_kg),
            3 => Some(self.legal_gross_3_axles_kg),
            4 => Some(self.legal_gross_4_axles_kg),
            5 => Some(self.legal_gross_5_axles_kg),
            6 => Some(self.legal_gross_6_axles_kg),
            _ => None,
        }
    }
}

/// True for the construction-waste categories of GB 55012-2021, and for an
/// unstated category (a gate must not be passed by leaving it blank).
fn construction_or_unstated(category: i32) -> bool {
    use WasteCategory::*;
    matches!(
        WasteCategory::try_from(category),
        Ok(Unspecified
            | ConstructionSpoil
            | ConstructionMud
            | ConstructionEngineering
            | ConstructionDemolition
            | ConstructionDecoration)
    )
}

/// A ticket with its plate normalised and the registered truck of that
/// plate, looked up once for all the weighbridge checks.
pub struct Weighing<'a> {
    /// The ticket.
    pub t: &'a WeighbridgeTicket,
    /// Its plate, normalised ([`normalize_plate`]).
    pub plate: String,
    /// The registered truck with that plate, if any.
    pub truck: Option<&'a Device>,
}

impl<'a> Weighing<'a> {
    /// Normalises the plate of `t` and finds its truck in `registry`.
    pub fn new(registry: &'a Registry, t: &'a WeighbridgeTicket) -> Self {
        let plate = normalize_plate(&t.plate);
        let truck = registry.truck_by_plate(&plate);
        Weighing { t, plate, truck }
    }
}

/// Evaluates both rules on a ticket weighed at `at_ms` by `wb`.
pub fn evaluate(
    th: &WeighbridgeThresholds,
    registry: &Registry,
    wb: &Device,
    w: &Weighing<'_>,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    let (t, plate) = (w.t, &w.plate);
    if plate.is_empty() {
        return;
    }
    let entity = format!("{}/{plate}", wb.id);

    let axles = if t.axle_count > 0 {
        Some(t.axle_count)
    } else {
        w.truck
            .and_then(|d| d.truck.as_ref())
            .map(|s| u32::from(s.axle_count))
    };
    if let Some(legal) = axles.and_then(|a| th.legal_gross_kg(a)) {
        let gross = t.gross_weight_kg;
        if gross > legal + th.overload_tolerance_kg {
            alerts.raise(
                RuleId::Overload,
                Some(&entity),
                Severity::Critical,
                gross,
                legal,
                at_ms,
                || {
                    format!(
                        "{} weighed {gross:.0} kg gross, over the legal {legal:.0} kg for {} axles (GB 1589-2016); ticket {}",
                        t.plate,
                        axles.unwrap_or(0),
                        t.ticket_id
                    )
                },
            );
        } else {
            alerts.clear(RuleId::Overload, Some(&entity), at_ms);
        }
    }

    let Some(site) = registry.site(&wb.site_id) else {
        return;
    };
    let gate = matches!(
        site.site_type,
        SiteType::RecyclingPlant | SiteType::Landfill | SiteType::Backfill
    );
    let incoming = t.direction != Direction::Out as i32;
    if !(gate && incoming && construction_or_unstated(t.category)) {
        return;
    }
    let approved = registry
        .active_permits_for_plate(plate, at_ms)
        .iter()
        .any(|p| p.destination_site_ids.contains(&site.id));
    if approved {
        alerts.clear(RuleId::UnapprovedVehicle, Some(&entity), at_ms);
    } else {
        alerts.raise(
            RuleId::UnapprovedVehicle,
            Some(&entity),
            Severity::Major,
            0.0,
            0.0,
            at_ms,
            || {
                format!(
                    "{} delivered construction waste to {} without an active permit for it; ticket {}",
                    t.plate, site.name, t.ticket_id
                )
            },
        );
    }
}

/// Ticket ids a weighbridge issued recently (the duplicate check).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketMemory {
    /// Newest last.
    ids: VecDeque<String>,
}

/// Ticket data quality at weighbridge `wb`: tare drift against the
/// registered tare of the plate's truck, and a ticket id seen before.
pub fn ticket_quality(
    th: &WeighbridgeThresholds,
    wb: &Device,
    memory: &mut TicketMemory,
    w: &Weighing<'_>,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    let t = w.t;
    if !t.ticket_id.is_empty() {
        if memory.ids.contains(&t.ticket_id) {
            let entity = format!("{}/{}", wb.id, t.ticket_id);
            alerts.raise(
                RuleId::DuplicateTicket,
                Some(&entity),
                Severity::Warn,
                0.0,
                0.0,
                at_ms,
                || {
                    format!(
                        "ticket {} issued twice by {} (plate {}, net {:.0} kg): its tonnage would count twice",
                        t.ticket_id, wb.id, t.plate, t.net_weight_kg
                    )
                },
            );
        } else {
            memory.ids.push_back(t.ticket_id.clone());
            while memory.ids.len() > th.duplicate_ticket_memory as usize {
                memory.ids.pop_front();
            }
        }
    }
    let plate = &w.plate;
    let Some(spec) = w.truck.and_then(|d| d.truck.as_ref()) else {
        return;
    };
    if t.tare_weight_kg <= 0.0 || spec.registered_tare_kg <= 0.0 {
        return;
    }
    let entity = format!("{}/{plate}", wb.id);
    let drift = (t.tare_weight_kg - spec.registered_tare_kg).abs();
    if drift > th.tare_drift_kg {
        alerts.raise(
            RuleId::TareDrift,
            Some(&entity),
            Severity::Warn,
            drift,
            th.tare_drift_kg,
            at_ms,
            || {
                format!(
                    "{} weighed with tare {:.0} kg, registered {:.0} kg ({drift:.0} kg off); ticket {}",
                    t.plate, t.tare_weight_kg, spec.registered_tare_kg, t.ticket_id
                )
            },
        );
    } else {
        alerts.clear(RuleId::TareDrift, Some(&entity), at_ms);
    }
}

/// A trip a truck is on: weighed out at its permit's origin, not yet
/// weighed in at a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenTrip {
    /// The permit it drives under.
    pub permit_id: String,
    /// The ticket that opened it.
    pub ticket_id: String,
    /// When it weighed out, Unix ms.
    pub out_ms: i64,
    /// When it must have closed, Unix ms.
    pub deadline_ms: i64,
}

/// What a ticket means for the trip of the plate's truck.
#[derive(Debug, PartialEq)]
pub enum TripEvent {
    /// Weighed out at the permit's origin: a trip opens.
    Open(OpenTrip),
    /// Weighed in at `site_id`: closes a trip whose permit lists it.
    Arrive {
        /// The destination site.
        site_id: String,
    },
}

/// The route's ETA, ms: each segment at `trip_eta_speed_share` of its
/// limit (of `default_kmh` without one).
pub fn eta_ms(th: &WeighbridgeThresholds, p: &Permit, default_kmh: f64) -> i64 {
    let mut s = 0.0;
    for (i, (a, b)) in p.route.segments().enumerate() {
        let limit = p
            .segments
            .get(i)
            .and_then(|g| g.speed_limit_kmh)
            .unwrap_or(default_kmh);
        let kmh = (limit * th.trip_eta_speed_share).max(1.0);
        s += crate::geo::haversine_m(a, b) / (kmh / 3.6);
    }
    (s * 1000.0) as i64
}

/// The trip event of ticket `t` at weighbridge `wb`, and the truck it is
/// about; `None` for tickets of unregistered plates or other sites.
pub fn trip_event<'a>(
    th: &WeighbridgeThresholds,
    registry: &Registry,
    wb: &Device,
    w: &Weighing<'a>,
    at_ms: i64,
    default_kmh: f64,
) -> Option<(&'a Device, TripEvent)> {
    let (t, truck) = (w.t, w.truck?);
    if t.direction == Direction::Out as i32 {
        let permits = registry.active_permits_for_plate(&w.plate, at_ms);
        let p = permits
            .iter()
            .find(|p| p.id == t.permit_id && p.origin_site_id == wb.site_id)
            .or_else(|| permits.iter().find(|p| p.origin_site_id == wb.site_id))?;
        // Only a weighbridge at a destination can close the trip: without
        // one, no ticket in will ever come, so no trip is tracked.
        let closable = registry.devices.values().any(|d| {
            d.kind == crate::pb::DeviceKind::Weighbridge
                && p.destination_site_ids.contains(&d.site_id)
        });
        if !closable {
            return None;
        }
        let allowed =
            ((eta_ms(th, p, default_kmh) as f64 * th.trip_eta_factor) as i64).min(th.trip_max_ms);
        Some((
            truck,
            TripEvent::Open(OpenTrip {
                permit_id: p.id.clone(),
                ticket_id: t.ticket_id.clone(),
                out_ms: at_ms,
                deadline_ms: at_ms + allowed,
            }),
        ))
    } else {
        Some((
            truck,
            TripEvent::Arrive {
                site_id: wb.site_id.clone(),
            },
        ))
    }
}

/// Applies a trip event to the truck's `trip` (alerts on the truck).
pub fn apply_trip(
    registry: &Registry,
    trip: &mut Option<Box<OpenTrip>>,
    truck_id: &str,
    ev: TripEvent,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    match ev {
        TripEvent::Open(new) => {
            // An earlier trip still open keeps its alert (its load is still
            // unaccounted for); the new one is tracked from now.
            *trip = Some(Box::new(new));
        }
        TripEvent::Arrive { site_id } => {
            let Some(open) = trip.as_ref() else {
                return;
            };
            let closes = registry
                .permit(&open.permit_id)
                .is_some_and(|p| p.destination_site_ids.contains(&site_id));
            if closes {
                let entity = format!("{truck_id}/{}", open.permit_id);
                alerts.clear(RuleId::TripNotClosed, Some(&entity), at_ms);
                *trip = None;
            }
        }
    }
}

/// On tick: raises `trip_not_closed` for an open trip past its deadline.
pub fn trip_overdue(trip: &OpenTrip, truck_id: &str, now_ms: i64, alerts: &mut Alerts<'_>) {
    if now_ms <= trip.deadline_ms {
        return;
    }
    let entity = format!("{truck_id}/{}", trip.permit_id);
    let (m, allowed) = (
        (now_ms - trip.out_ms) as f64 / 60_000.0,
        (trip.deadline_ms - trip.out_ms) as f64 / 60_000.0,
    );
    alerts.raise(
        RuleId::TripNotClosed,
        Some(&entity),
        Severity::Major,
        m,
        allowed,
        now_ms,
        || {
            format!(
                "weighed out on ticket {} {m:.0} min ago under {}, no ticket in at an approved destination (allowed {allowed:.0} min)",
                trip.ticket_id, trip.permit_id
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::alert::{RuleId, Severity};
    use crate::pb::{envelope::Body, Direction, WasteCategory, WeighbridgeTicket};

    const WB: &str = "wb-recycle-01"; // at rp-jingnan-recycle
    const WB_UTIL: &str = "wb-utilise-01"; // a utilisation plant: no permit check

    fn ticket(plate: &str, gross_kg: f64, axles: u32) -> WeighbridgeTicket {
        WeighbridgeTicket {
            ticket_id: "RC-1".into(),
            plate: plate.into(),
            gross_weight_kg: gross_kg,
            tare_weight_kg: 14_000.0,
            net_weight_kg: gross_kg - 14_000.0,
            category: WasteCategory::ConstructionDemolition as i32,
            direction: Direction::In as i32,
            axle_count: axles,
            ..Default::default()
        }
    }

    #[test]
    fn a_tare_over_100_kg_from_the_registered_tare_is_a_warning() {
        // 豫AD1234 is registered with a 15 800 kg tare.
        let key = "wb-recycle-01/豫AD1234";
        let cases: [(f64, Option<Severity>); 4] = [
            (15_900.0, None),
            (15_900.1, Some(Severity::Warn)),
            (15_699.9, Some(Severity::Warn)),
            (15_750.0, None),
        ];
        let mut h = Harness::zone();
        for (i, (tare, want)) in cases.into_iter().enumerate() {
            let mut t = ticket("豫AD1234", tare + 10_000.0, 4);
            t.ticket_id = format!("RC-{i}");
            t.tare_weight_kg = tare;
            t.net_weight_kg = 10_000.0;
            h.ticket(WB, DAY_T0 + i as i64 * MIN, t);
            assert_eq!(h.current(RuleId::TareDrift, key), want, "tare {tare}");
        }
        // An unregistered plate has no registered tare to drift from.
        let mut t = ticket("豫A00000", 30_000.0, 4);
        t.ticket_id = "RC-X".into();
        h.ticket(WB, DAY_T0 + 10 * MIN, t);
        // One episode (warn, still warn, cleared).
        assert_eq!(h.raises(RuleId::TareDrift), 1);
    }

    #[test]
    fn the_same_ticket_id_twice_is_a_duplicate_but_a_redelivery_is_not() {
        let mut h = Harness::zone();
        let t = ticket("豫AD1234", 25_000.0, 4);
        let env = envelope(WB, 7, DAY_T0, Body::WeighbridgeTicket(t.clone()));
        h.record_at(record(env.clone(), DAY_T0), DAY_T0);
        // The same message again (same seq): deduplicated, no alert.
        h.record_at(record(env, DAY_T0), DAY_T0 + MIN);
        assert_eq!(h.raises(RuleId::DuplicateTicket), 0);
        // A new message re-using the ticket id: tonnage would count twice.
        let env = envelope(WB, 8, DAY_T0 + 2 * MIN, Body::WeighbridgeTicket(t));
        h.record_at(record(env, DAY_T0 + 2 * MIN), DAY_T0 + 2 * MIN);
        assert_eq!(
            h.current(RuleId::DuplicateTicket, "wb-recycle-01/RC-1"),
            Some(Severity::Warn)
        );
    }

    /// The shipped zone plus a weighbridge at permit-2026-0001's origin
    /// (the shipped construction sites have none).
    fn with_origin_weighbridge() -> (Harness, &'static str) {
        let mut reg = (*zone()).clone();
        let mut wb = reg.device(WB).unwrap().clone();
        wb.id = "wb-origin-01".into();
        wb.site_id = "cs-hanghai-east".into();
        reg.devices.insert(wb.id.clone(), wb);
        let mut h = Harness::zone();
        h.engine = crate::rules::RuleEngine::new(
            std::sync::Arc::new(reg),
            crate::rules::RuleConfig::default(),
        );
        (h, "wb-origin-01")
    }

    fn at(h: &mut Harness, device: &str, seq: u64, t_ms: i64, t: WeighbridgeTicket) {
        let reg_site = if device == "wb-origin-01" {
            "cs-hanghai-east"
        } else {
            "rp-jingnan-recycle"
        };
        let env = crate::pb::Envelope {
            site_id: reg_site.into(),
            device_id: device.into(),
            device_kind: crate::pb::DeviceKind::Weighbridge as i32,
            seq,
            recorded_at_unix_ms: t_ms,
            schema_version: 1,
            body: Some(Body::WeighbridgeTicket(t)),
        };
        h.record_at(record(env, t_ms), t_ms);
    }

    #[test]
    fn a_trip_weighed_out_and_never_in_is_not_closed_after_1_5_times_its_eta() {
        let (mut h, origin) = with_origin_weighbridge();
        let reg = zone();
        let permit = reg.permit("permit-2026-0001").unwrap();
        let th = crate::rules::config::WeighbridgeThresholds::default();
        let allowed = (super::eta_ms(&th, permit, 40.0) as f64 * 1.5) as i64;
        assert!(allowed > 5 * MIN && allowed < 4 * 60 * MIN, "{allowed}");
        let key = "truck-d1234/permit-2026-0001";
        let mut out = ticket("豫AD1234", 25_800.0, 4);
        out.ticket_id = "OUT-1".into();
        out.tare_weight_kg = 15_800.0;
        out.direction = Direction::Out as i32;
        out.permit_id = "permit-2026-0001".into();
        at(&mut h, origin, 1, NIGHT_T0, out.clone());
        h.tick(NIGHT_T0 + allowed);
        assert_eq!(h.current(RuleId::TripNotClosed, key), None);
        h.tick(NIGHT_T0 + allowed + 1000);
        assert_eq!(h.current(RuleId::TripNotClosed, key), Some(Severity::Major));
        // The ticket in at the destination closes the trip and the alert.
        let mut inn = out.clone();
        inn.ticket_id = "IN-1".into();
        inn.direction = Direction::In as i32;
        at(&mut h, WB, 1, NIGHT_T0 + allowed + 2 * MIN, inn.clone());
        assert_eq!(h.current(RuleId::TripNotClosed, key), None);

        // A trip that closes in time raises nothing.
        out.ticket_id = "OUT-2".into();
        at(&mut h, origin, 2, NIGHT_T0 + 3 * 60 * MIN, out);
        inn.ticket_id = "IN-2".into();
        at(&mut h, WB, 2, NIGHT_T0 + 3 * 60 * MIN + allowed / 2, inn);
        h.tick(NIGHT_T0 + 8 * 60 * MIN);
        assert_eq!(h.raises(RuleId::TripNotClosed), 1);
    }

    #[test]
    fn a_trip_is_never_allowed_more_than_4_hours() {
        let reg = zone();
        let permit = reg.permit("permit-2026-0001").unwrap();
        let th = crate::rules::config::WeighbridgeThresholds {
            trip_eta_factor: 1000.0,
            ..Default::default()
        };
        let t = ticket("豫AD1234", 25_000.0, 4);
        let wb = {
            let mut d = reg.device(WB).unwrap().clone();
            d.site_id = "cs-hanghai-east".into();
            d
        };
        let mut out = t;
        out.direction = Direction::Out as i32;
        let Some((truck, super::TripEvent::Open(trip))) = super::trip_event(
            &th,
            &reg,
            &wb,
            &super::Weighing::new(&reg, &out),
            NIGHT_T0,
            40.0,
        ) else {
            panic!("no trip opened")
        };
        assert_eq!(truck.id, "truck-d1234");
        assert_eq!(trip.permit_id, permit.id);
        assert_eq!(trip.deadline_ms, NIGHT_T0 + 4 * 60 * MIN);
    }

    #[test]
    fn no_trip_is_tracked_when_no_destination_has_a_weighbridge() {
        let reg = zone();
        let th = crate::rules::config::WeighbridgeThresholds::default();
        // permit-2026-0004 goes to bf-quarry-east, which has no weighbridge;
        // permit-2026-0001's destination has one.
        let p4 = reg.permit("permit-2026-0004").unwrap();
        assert!(!reg
            .devices
            .values()
            .any(|d| d.kind == crate::pb::DeviceKind::Weighbridge
                && p4.destination_site_ids.contains(&d.site_id)));
        let wb = {
            let mut d = reg.device(WB).unwrap().clone();
            d.site_id = p4.origin_site_id.clone();
            d
        };
        let mut out = ticket("豫AF6630", 25_000.0, 4);
        out.direction = Direction::Out as i32;
        out.permit_id = p4.id.clone();
        let ev = super::trip_event(
            &th,
            &reg,
            &wb,
            &super::Weighing::new(&reg, &out),
            NIGHT_T0,
            40.0,
        );
        assert!(ev.is_none(), "{ev:?}");
        // The same ticket under a permit whose destination has a
        // weighbridge opens a trip (the check above is not vacuous).
        out.plate = "豫AD1234".into();
        out.permit_id = "permit-2026-0001".into();
        let ev = super::trip_event(
            &th,
            &reg,
            &wb,
            &super::Weighing::new(&reg, &out),
            NIGHT_T0,
            40.0,
        );
        assert!(
            matches!(ev, Some((_, super::TripEvent::Open(ref t))) if t.permit_id == "permit-2026-0001"),
            "{ev:?}"
        );
    }

    #[test]
    fn overload_is_critical_above_the_legal_weight_for_the_axle_count() {
        let cases: [(u32, f64, bool); 10] = [
            (2, 18_000.0, false),
            (2, 18_000.1, true),
            (3, 25_000.0, false),
            (3, 25_001.0, true),
            (4, 31_000.0, false),
            (4, 31_001.0, true),
            (5, 43_000.0, false),
            (5, 43_001.0, true),
            (6, 49_000.0, false),
            (6, 49_001.0, true),
        ];
        for (axles, gross, over) in cases {
            let mut h = Harness::zone();
            h.ticket(WB, DAY_T0, ticket("豫AD1234", gross, axles));
            let want = over.then_some(Severity::Critical);
            assert_eq!(
                h.current(RuleId::Overload, "wb-recycle-01/豫AD1234"),
                want,
                "{axles} axles {gross} kg"
            );
        }
    }

    #[test]
    fn the_axle_count_comes_from_the_registry_when_the_ticket_has_none() {
        let mut h = Harness::zone();
        // 豫AD1234 is registered with 4 axles: 31 t.
        h.ticket(WB, DAY_T0, ticket("豫A·D1234", 31_500.0, 0));
        let key = "wb-recycle-01/豫AD1234";
        assert_eq!(h.current(RuleId::Overload, key), Some(Severity::Critical));
        // The next compliant ticket of the plate there clears it.
        h.ticket(WB, DAY_T0 + MIN, ticket("豫AD1234", 30_000.0, 0));
        assert_eq!(h.current(RuleId::Overload, key), None);
    }

    #[test]
    fn an_overload_alert_clears_after_the_event_hold() {
        let mut h = Harness::zone();
        h.ticket(WB, DAY_T0, ticket("豫AD1234", 40_000.0, 4));
        let key = "wb-recycle-01/豫AD1234";
        h.tick(DAY_T0 + 59 * MIN);
        assert_eq!(h.current(RuleId::Overload, key), Some(Severity::Critical));
        h.tick(DAY_T0 + 60 * MIN);
        assert_eq!(h.current(RuleId::Overload, key), None);
    }

    #[test]
    fn unapproved_vehicles_are_judged_at_construction_waste_gates() {
        // (weighbridge, plate, direction, category, expected)
        let cases = [
            (
                WB,
                "豫AD1234",
                Direction::In,
                WasteCategory::ConstructionSpoil,
                None,
            ),
            (
                WB,
                "豫AD1357",
                Direction::In,
                WasteCategory::ConstructionSpoil,
                None,
            ),
            // On a permit, but to the backfill site only.
            (
                WB,
                "豫AF6630",
                Direction::In,
                WasteCategory::ConstructionSpoil,
                Some(Severity::Major),
            ),
            (
                WB,
                "豫AZ9999",
                Direction::In,
                WasteCategory::Unspecified,
                Some(Severity::Major),
            ),
            (
                WB,
                "豫AZ9999",
                Direction::Out,
                WasteCategory::ConstructionSpoil,
                None,
            ),
            (
                WB,
                "豫AZ9999",
                Direction::In,
                WasteCategory::HouseholdRecyclable,
                None,
            ),
            (
                WB_UTIL,
                "豫AZ9999",
                Direction::In,
                WasteCategory::ConstructionSpoil,
                None,
            ),
        ];
        for (wb, plate, dir, cat, want) in cases {
            let mut h = Harness::zone();
            let mut t = ticket(plate, 20_000.0, 4);
            t.direction = dir as i32;
            t.category = cat as i32;
            h.ticket(wb, DAY_T0, t);
            let key = format!("{wb}/{plate}");
            assert_eq!(
                h.current(RuleId::UnapprovedVehicle, &key),
                want,
                "{wb} {plate} {dir:?} {cat:?}"
            );
        }
    }

    #[test]
    fn a_permit_outside_its_validity_dates_does_not_approve() {
        let mut h = Harness::zone();
        // The zone's permits are valid 2026-01-01..2027-12-31.
        let in_2028 = DAY_T0 + 700 * 24 * 60 * MIN;
        h.ticket(WB, in_2028, ticket("豫AD1234", 20_000.0, 4));
        assert_eq!(
            h.current(RuleId::UnapprovedVehicle, "wb-recycle-01/豫AD1234"),
            Some(Severity::Major)
        );
    }
}
