//! Weighbridges (truck scales, accuracy class III, GB/T 7723-2017): one
//! ticket per weighing plus an hourly heartbeat.
//!
//! Tickets come from two sources. Fleet trucks and hazardous-waste
//! collections ask for a weighing when they arrive ([`Inbound::Ticket`],
//! so a ticket's plate, permit and load match the truck's own telemetry).
//! Other vehicles arrive at random during opening hours (07:00-19:00) with
//! loads that fit the site: general industrial waste and retired batteries
//! at a utilisation plant, hazardous, medical and lab waste at a licensed
//! facility, household waste at a transfer station or incinerator.
//! Construction-waste sites are served by the permitted fleet only, so no
//! unpermitted vehicle ever delivers construction waste.
//!
//! [`Inbound::Ticket`]: super::Inbound::Ticket

use super::{legal_gross_kg, scale_round, Reading, StepOut, TicketReq, World};
use crate::rng::{exp_ms, ms_between, uniform, SimRng};
use crate::time::{local_hour, next_local_minute, HOUR_MS};
use wastewatch_contract::pb::{envelope::Body, DestinationType, WasteCategory, WeighbridgeTicket};
use wastewatch_contract::registry::SiteType;
use wastewatch_contract::topic::Channel;

use rand::Rng;

/// Mean time between independent arrivals during opening hours, seconds.
const MEAN_ARRIVAL_S: f64 = 40.0 * 60.0;

/// State of one weighbridge.
#[derive(Debug)]
pub(crate) struct WeighbridgeSim {
    device_id: String,
    site_id: String,
    site_type: Option<SiteType>,
    counter: u64,
    heartbeat_ms: i64,
    interval_ms: i64,
    next_arrival_ms: Option<i64>,
    /// Fallback of the `overload` scenario when no fleet truck delivers
    /// here: one overloaded independent vehicle per hour.
    overload_hourly: bool,
    next_overload_ms: i64,
}

impl WeighbridgeSim {
    /// A weighbridge that starts at `start_ms`.
    pub fn new(
        r: &mut SimRng,
        world: &World,
        device_id: &str,
        site_id: &str,
        interval_s: u32,
        start_ms: i64,
        overload_hourly: bool,
    ) -> Self {
        let interval_ms = i64::from(interval_s.max(60)) * 1000;
        let site_type = world.site_type(site_id);
        let mut w = WeighbridgeSim {
            device_id: device_id.to_owned(),
            site_id: site_id.to_owned(),
            site_type,
            counter: 0,
            heartbeat_ms: start_ms + ms_between(r, 0.0, 0.5 * interval_ms as f64 / 1000.0),
            interval_ms,
            next_arrival_ms: None,
            overload_hourly,
            next_overload_ms: start_ms + ms_between(r, 60.0, 600.0),
        };
        if w.independent_load(r, world, 0).is_some() {
            w.next_arrival_ms = Some(Self::schedule(r, start_ms));
        }
        w
    }

    fn schedule(r: &mut SimRng, t: i64) -> i64 {
        let next = t + exp_ms(r, MEAN_ARRIVAL_S);
        if (7.0..19.0).contains(&local_hour(next)) {
            next
        } else {
            next_local_minute(next, 7 * 60) + exp_ms(r, MEAN_ARRIVAL_S)
        }
    }

    /// Destination type of a load delivered here.
    fn destination_type(&self) -> DestinationType {
        match self.site_type {
            Some(SiteType::RecyclingPlant) => DestinationType::Recycling,
            Some(SiteType::UtilisationPlant) => DestinationType::Utilisation,
            Some(SiteType::Landfill) => DestinationType::Landfill,
            Some(SiteType::Incinerator) => DestinationType::Incineration,
            Some(SiteType::Backfill) => DestinationType::Backfill,
            Some(SiteType::TransferStation) => DestinationType::Transfer,
            Some(SiteType::LicensedHazardousFacility) => DestinationType::LicensedHazardous,
            _ => DestinationType::Unspecified,
        }
    }

    /// A random independent delivery fitting the site, or `None` when the
    /// site takes none (construction-waste sites, generators, and licensed
    /// hazardous-waste facilities, whose every load comes from a collection
    /// with its transfer manifest).
    fn independent_load(&self, r: &mut SimRng, world: &World, now: i64) -> Option<TicketReq> {
        use SiteType as S;
        use WasteCategory as C;
        let (category, code, origins, net_lo, net_hi): (C, &'static str, &[S], f64, f64) =
            match self.site_type? {
                S::UtilisationPlant => match r.random_range(0..10) {
                    0..=6 => (C::GeneralIndustrial, "", &[S::Factory], 4000.0, 14000.0),
                    7 | 8 => (
                        C::PowerBattery,
                        "",
                        &[S::Factory, S::SmallBusinessCollectionPoint],
                        1500.0,
                        6000.0,
                    ),
                    _ => (
                        C::ExpressPackaging,
                        "",
                        &[S::TransferStation, S::Residential],
                        800.0,
                        3000.0,
                    ),
                },
                S::TransferStation => match r.random_range(0..3) {
                    0 => (
                        C::HouseholdRecyclable,
                        "",
                        &[S::Residential, S::PublicArea],
                        1500.0,
                        5000.0,
                    ),
                    1 => (C::HouseholdKitchen, "", &[S::Residential], 2000.0, 6000.0),
                    _ => (
                        C::HouseholdOther,
                        "",
                        &[S::Residential, S::PublicArea],
                        2000.0,
                        7000.0,
                    ),
                },
                // Slag and ash from the factories go to landfill too.
                S::Landfill => (C::GeneralIndustrial, "", &[S::Factory], 4000.0, 12000.0),
                S::Incinerator => (
                    C::HouseholdOther,
                    "",
                    &[S::TransferStation, S::Residential],
                    6000.0,
                    14000.0,
                ),
                _ => return None,
            };
        let (axles, tare) = if net_hi > 8000.0 {
            (3, uniform(r, 11000.0, 13500.0))
        } else {
            (2, uniform(r, 4200.0, 7500.0))
        };
        let max_net = legal_gross_kg(axles) - tare - 500.0;
        let net = scale_round(uniform(r, net_lo, net_hi).min(max_net));
        let arrive = now;
        Some(TicketReq::delivery(
            arrive,
            arrive + ms_between(r, 300.0, 900.0),
            world.independent_plate(r),
            axles,
            scale_round(tare),
            net,
            category,
            code,
            world.pick_site(r, origins),
            String::new(),
        ))
    }

    /// Issues the ticket of a weighing.
    pub fn ticket(&mut self, r: &mut SimRng, req: &TicketReq) -> Reading {
        self.counter += 1;
        let at_ms = if req.single_weighing {
            req.weighed_in_ms
        } else {
            req.weighed_out_ms
        };
        let shift = if (8.0..20.0).contains(&local_hour(at_ms)) {
            1
        } else {
            2
        };
        let gross = req.tare_kg + req.net_kg;
        let t = WeighbridgeTicket {
            ticket_id: format!("{}-{:06}", self.device_id, self.counter),
            plate: req.plate.clone(),
            gross_weight_kg: gross,
            tare_weight_kg: req.tare_kg,
            net_weight_kg: gross - req.tare_kg,
            category: req.category as i32,
            hazardous_waste_code: req.hazardous_code.to_owned(),
            catalogue_edition: if req.hazardous_code.is_empty() {
                String::new()
            } else {
                "2025".to_owned()
            },
            origin_site_id: req.origin_site_id.clone(),
            destination_site_id: if req.destination_site_id.is_empty() {
                self.site_id.clone()
            } else {
                req.destination_site_id.clone()
            },
            destination_type: req
                .destination_type
                .unwrap_or_else(|| self.destination_type()) as i32,
            direction: req.direction as i32,
            weighed_in_at_unix_ms: req.weighed_in_ms,
            weighed_out_at_unix_ms: if req.single_weighing {
                0
            } else {
                req.weighed_out_ms
            },
            operator_id: format!("op-{}-{shift}", self.site_id),
            anpr_confirmed: r.random_bool(0.97),
            axle_count: req.axles,
            permit_id: req.permit_id.clone(),
            manifest_id: req.manifest_id.clone(),
            source_unit_id: req.source_unit_id.clone(),
        };
        Reading {
            channel: Channel::Event,
            body: Body::WeighbridgeTicket(t),
            at_ms,
        }
    }

    /// Advances to `now` (independent arrivals and heartbeats; fleet
    /// weighings arrive through [`WeighbridgeSim::ticket`]); returns the
    /// next wake-up.
    pub fn advance(&mut self, r: &mut SimRng, world: &World, now: i64, out: &mut StepOut) -> i64 {
        if self.next_arrival_ms.is_some_and(|t| t <= now) {
            if let Some(mut req) = self.independent_load(r, world, now) {
                // The ticket is issued at the second weighing; record it now
                // with the first weighing as long ago as the visit took.
                let visit = req.weighed_out_ms - req.weighed_in_ms;
                req.weighed_in_ms = now - visit;
                req.weighed_out_ms = now;
                out.readings.push(self.ticket(r, &req));
            }
            self.next_arrival_ms = Some(Self::schedule(r, now));
        }
        if self.overload_hourly && now >= self.next_overload_ms {
            let axles = r.random_range(2..=4u32);
            let tare = scale_round(uniform(r, 9000.0, 14000.0));
            let net = scale_round(legal_gross_kg(axles) - tare + uniform(r, 2500.0, 5000.0));
            let req = TicketReq::delivery(
                now - ms_between(r, 300.0, 900.0),
                now,
                world.independent_plate(r),
                axles,
                tare,
                net,
                WasteCategory::GeneralIndustrial,
                "",
                world.pick_site(r, &[SiteType::Factory]),
                String::new(),
            );
            out.readings.push(self.ticket(r, &req));
            self.next_overload_ms = now + HOUR_MS;
        }
        if now >= self.heartbeat_ms {
            out.heartbeat = true;
            let iv = self.interval_ms as f64 / 1000.0;
            self.heartbeat_ms = now + ms_between(r, 0.45 * iv, 0.5 * iv);
        }
        let mut next = self.heartbeat_ms;
        if let Some(t) = self.next_arrival_ms {
            next = next.min(t);
        }
        if self.overload_hourly {
            next = next.min(self.next_overload_ms);
        }
        next.max(now + 1)
    }
}
