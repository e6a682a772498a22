//! Weighbridge rules (DOMAIN.md "Construction-waste transport"): overload
//! against the legal gross vehicle weight (GB 1589-2016 by axle count), and
//! an unapproved vehicle delivering construction waste.
//!
//! Called by the engine with each ticket. Both are event alerts keyed by
//! `weighbridge-id/PLATE` (normalised plate): a later compliant ticket of
//! the same plate at the same weighbridge clears them, otherwise the engine
//! clears them `event_hold_ms` after they were raised.
//!
//! "Unapproved" is judged at gates of construction-waste destinations
//! (recycling plants, landfills, backfill sites) for loads coming in
//! (direction in or unstated) of construction waste or unstated category:
//! the plate must be on a permit valid that day that lists this site among
//! its destinations — a permit to another site does not cover this one.

use crate::alert::{RuleId, Severity};
use crate::pb::{Direction, WasteCategory, WeighbridgeTicket};
use crate::registry::{normalize_plate, Device, Registry, SiteType};

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

/// Evaluates both rules on a ticket weighed at `at_ms` by `wb`.
pub fn evaluate(
    th: &WeighbridgeThresholds,
    registry: &Registry,
    wb: &Device,
    t: &WeighbridgeTicket,
    at_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    let plate = normalize_plate(&t.plate);
    if plate.is_empty() {
        return;
    }
    let entity = format!("{}/{plate}", wb.id);

    let axles = if t.axle_count > 0 {
        Some(t.axle_count)
    } else {
        registry
            .truck_by_plate(&plate)
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
        .active_permits_for_plate(&plate, at_ms)
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

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::alert::{RuleId, Severity};
    use crate::pb::{Direction, WasteCategory, WeighbridgeTicket};

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
