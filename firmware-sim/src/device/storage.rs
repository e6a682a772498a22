//! Hazardous-waste storage points and stores (GB 18597-2023): a scale
//! platform or container count for the stock, a thermometer, gas sensors,
//! a door contact and a sump leak sensor.
//!
//! Containers are added during working hours (08:00-18:00 local), opening
//! the door for a few minutes each time; stock is collected on the licensed
//! collector's weekly round (the first in the simulation's first day), and
//! sooner once it reaches 60 % of the limit (a small storage point's limit
//! is 3 t, §8.3.5) or the oldest container is 270 days old, well before the
//! 80 % / 335-day warning thresholds. Medical stores are cold stores emptied
//! daily at 10:00, so no lot gets near 36 h; they report the lots they hold
//! at start. A collection becomes a dispatch ticket at the generator's
//! weighbridge, a receipt with the same transfer manifest at a licensed
//! facility's weighbridge, and stock in its store. Reports every
//! `expected_interval_s` less up to 5 %, and at once when the door moves.

use std::collections::VecDeque;

use rand::Rng;

use super::{ambient_c, deci_c, round1, Cross, Reading, StepOut, TicketReq, World};
use crate::rng::{exp_ms, ms_between, normal, uniform, SimRng};
use crate::time::{local_hour, next_local_minute, DAY_MS, HOUR_MS, MINUTE_MS};
use wastewatch_contract::pb::{
    envelope::Body, DestinationType, Direction, MedicalLot, StorageReading, WasteCategory,
};
use wastewatch_contract::registry::{SiteType, SMALL_STORAGE_POINT_LIMIT_KG};
use wastewatch_contract::topic::Channel;

/// Most stock the simulator lets a store hold, kg: the decoder refuses
/// weights above 200 t as implausible.
const MAX_STOCK_KG: f64 = 150_000.0;

/// Local time of the licensed collector's round, minutes after midnight
/// (09:30; the pickup follows within 30 min to 2 h).
const ROUND_MINUTE_OF_DAY: u16 = 9 * 60 + 30;

/// The round comes back weekly.
const ROUND_EVERY_MS: i64 = 7 * DAY_MS;

/// What a scenario does to this store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StorageTwist {
    /// Normal operation.
    None,
    /// Starts at 78 % of the limit, gains ~200 kg/h and is never collected.
    Overfill,
    /// Oldest container 364 d 22 h old at the start, never collected.
    OverdueContainers,
    /// Oldest medical lot 46 h old at the start and left behind by every
    /// daily collection (never collected); the other lots go as usual.
    OverdueMedicalLot,
}

/// State of one store.
#[derive(Debug)]
pub(crate) struct StorageSim {
    site_id: String,
    site_type: SiteType,
    medical: bool,
    licensed: bool,
    limit_kg: f64,
    collect_at_kg: f64,
    /// (filled at, kg), oldest first.
    containers: VecDeque<(i64, f64)>,
    inflow_kg_per_day: f64,
    additions_per_day: f64,
    next_addition_ms: i64,
    collect_ms: Option<i64>,
    /// Next weekly collection round (generators' stores in normal
    /// operation).
    round_ms: Option<i64>,
    door_close_ms: Option<i64>,
    door_open: bool,
    interval_ms: i64,
    next_report_ms: i64,
    temp_offset_c: f64,
    sensors: (bool, bool, bool),
    gas_base: (f64, f64),
    battery_mv: Option<f64>,
    twist: StorageTwist,
    /// Transfer manifests issued.
    manifests: u64,
    /// Next registered unit to deliver (round robin).
    unit_turn: usize,
    /// Lot changes not reported yet (medical stores).
    lot_events: Vec<MedicalLot>,
}

impl StorageSim {
    /// A store that starts reporting at `start_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        r: &mut SimRng,
        site_id: &str,
        site_type: SiteType,
        capacity_kg: f64,
        small: bool,
        medical: bool,
        interval_s: u32,
        start_ms: i64,
        twist: StorageTwist,
    ) -> Self {
        let limit_kg = if small {
            capacity_kg.min(SMALL_STORAGE_POINT_LIMIT_KG)
        } else {
            capacity_kg
        };
        let licensed = site_type == SiteType::LicensedHazardousFacility;
        let collect_at_kg = (0.6 * limit_kg).min(MAX_STOCK_KG);
        let (inflow_kg_per_day, additions_per_day) = if medical {
            (capacity_kg * uniform(r, 0.08, 0.12), 12.0)
        } else if licensed {
            ((capacity_kg * 0.02).min(MAX_STOCK_KG / 15.0), 10.0)
        } else if site_type == SiteType::SmallBusinessCollectionPoint {
            (capacity_kg * uniform(r, 0.01, 0.03), 6.0)
        } else {
            (capacity_kg * uniform(r, 0.01, 0.03), 2.0)
        };
        let interval_ms = i64::from(interval_s.max(1)) * 1000;
        let sensors = if medical {
            (false, false, false)
        } else if small && site_type != SiteType::Laboratory {
            (true, true, false)
        } else {
            (true, true, true)
        };
        let mut s = StorageSim {
            site_id: site_id.to_owned(),
            site_type,
            medical,
            licensed,
            limit_kg,
            collect_at_kg,
            containers: VecDeque::new(),
            inflow_kg_per_day,
            additions_per_day,
            next_addition_ms: start_ms,
            collect_ms: None,
            round_ms: (twist == StorageTwist::None && !medical && !licensed)
                .then(|| next_local_minute(start_ms, ROUND_MINUTE_OF_DAY)),
            door_close_ms: None,
            door_open: false,
            interval_ms,
            next_report_ms: start_ms + ms_between(r, 0.0, interval_s.max(1) as f64),
            temp_offset_c: uniform(r, -1.0, 1.0),
            sensors,
            gas_base: (uniform(r, 0.2, 2.0), uniform(r, 2.0, 12.0)),
            battery_mv: small.then(|| uniform(r, 3550.0, 3650.0)),
            twist,
            manifests: 0,
            unit_turn: 0,
            lot_events: Vec::new(),
        };
        s.fill_initial(r, start_ms);
        s.next_addition_ms = s.schedule_addition(r, start_ms);
        s
    }

    /// Initial containers, consistent with the inflow (or the twist).
    fn fill_initial(&mut self, r: &mut SimRng, start_ms: i64) {
        let (stock, oldest_age_ms) = match self.twist {
            StorageTwist::Overfill => (0.78 * self.limit_kg.min(MAX_STOCK_KG), 20 * DAY_MS),
            StorageTwist::OverdueContainers => {
                (0.4 * self.collect_at_kg, 364 * DAY_MS + 22 * HOUR_MS)
            }
            StorageTwist::OverdueMedicalLot => (0.4 * self.collect_at_kg, 46 * HOUR_MS),
            StorageTwist::None if self.medical => {
                let age = ms_between(r, 2.0 * 3600.0, 20.0 * 3600.0);
                (self.inflow_kg_per_day * age as f64 / DAY_MS as f64, age)
            }
            StorageTwist::None => {
                let stock = self.collect_at_kg * uniform(r, 0.1, 0.8);
                let days = (stock / self.inflow_kg_per_day.max(1.0)).min(200.0);
                (stock, (days * DAY_MS as f64) as i64)
            }
        };
        let avg = (self.inflow_kg_per_day / self.additions_per_day).max(1.0);
        let n = ((stock / avg).ceil() as usize).clamp(1, 400);
        for i in 0..n {
            let age = oldest_age_ms - (oldest_age_ms as f64 * i as f64 / n as f64) as i64;
            self.containers
                .push_back((start_ms - age, stock / n as f64));
            if self.medical {
                // The cold store's lot register, reported at start.
                self.lot_events.push(MedicalLot {
                    lot_id: (start_ms - age) as u64,
                    sealed_at_unix_ms: start_ms - age,
                    collected_at_unix_ms: 0,
                    weight_kg: round1(stock / n as f64),
                });
            }
        }
    }

    fn stock_kg(&self) -> f64 {
        self.containers.iter().map(|c| c.1).sum()
    }

    /// Battery voltage, mV (0 for mains-powered stores).
    pub fn battery_mv(&self) -> u32 {
        self.battery_mv.map_or(0, |b| b as u32)
    }

    /// Additions happen 08:00-17:30 so the door is shut again by 18:00.
    fn working_hours(t: i64) -> bool {
        (8.0..17.5).contains(&local_hour(t))
    }

    fn schedule_addition(&self, r: &mut SimRng, t: i64) -> i64 {
        if self.twist == StorageTwist::Overfill {
            return t + ms_between(r, 1200.0, 2400.0);
        }
        let mean_s = 10.0 * 3600.0 / self.additions_per_day;
        let next = t + exp_ms(r, mean_s).max(MINUTE_MS);
        if Self::working_hours(next) {
            next
        } else {
            next_local_minute(next, 8 * 60) + ms_between(r, 0.0, 3600.0)
        }
    }

    fn never_collected(&self) -> bool {
        matches!(
            self.twist,
            StorageTwist::Overfill | StorageTwist::OverdueContainers
        )
    }

    fn open_door(&mut self, r: &mut SimRng, now: i64, lo_s: f64, hi_s: f64) -> bool {
        let was = self.door_open;
        self.door_open = true;
        self.door_close_ms = Some(now + ms_between(r, lo_s, hi_s));
        !was
    }

    /// Receives a delivery (a licensed store taking a collected load).
    pub fn deliver(&mut self, now: i64, kg: f64) {
        if self.stock_kg() + kg <= MAX_STOCK_KG {
            self.containers.push_back((now, kg));
        }
    }

    /// The code and category of what this store holds.
    fn waste(&self) -> (WasteCategory, &'static str) {
        if self.medical {
            (WasteCategory::Medical, "841-001-01")
        } else {
            match self.site_type {
                SiteType::Laboratory => (WasteCategory::Laboratory, "900-047-49"),
                SiteType::SmallBusinessCollectionPoint => (WasteCategory::Hazardous, "900-041-49"),
                _ => (WasteCategory::Hazardous, "900-249-08"),
            }
        }
    }

    fn collect(&mut self, r: &mut SimRng, world: &World, now: i64, out: &mut StepOut) {
        if self.licensed {
            // Disposal line: the oldest containers go until 30 % of the
            // limit is left.
            let target = 0.5 * self.collect_at_kg;
            while self.stock_kg() > target && self.containers.pop_front().is_some() {}
            return;
        }
        // The overdue lot stays at the back of the cold store.
        let left_behind = if self.twist == StorageTwist::OverdueMedicalLot {
            self.containers.pop_front()
        } else {
            None
        };
        let mut collected = 0.0;
        while let Some((filled, kg)) = self.containers.pop_front() {
            collected += kg;
            if self.medical {
                self.lot_events.push(MedicalLot {
                    lot_id: filled as u64,
                    sealed_at_unix_ms: filled,
                    collected_at_unix_ms: now,
                    weight_kg: round1(kg),
                });
            }
        }
        if let Some(c) = left_behind {
            self.containers.push_front(c);
        }
        let net = super::scale_round(collected);
        if net < 20.0 {
            return;
        }
        let Some(dest) = world
            .sites_by_type
            .get(&SiteType::LicensedHazardousFacility)
            .and_then(|v| v.iter().find(|s| **s != self.site_id))
            .cloned()
        else {
            return;
        };
        let arrive = now + ms_between(r, 1800.0, 5400.0);
        let out_ms = arrive + ms_between(r, 300.0, 900.0);
        let (axles, tare) = if net > 8000.0 {
            (3, uniform(r, 9000.0, 11000.0))
        } else {
            (2, uniform(r, 4200.0, 5200.0))
        };
        let (category, code) = self.waste();
        self.manifests += 1;
        let manifest = format!("mf-{}-{:05}", self.site_id, self.manifests);
        let plate = world.independent_plate(r);
        let tare = super::scale_round(tare);
        // The generator's dispatch ticket (dropped when the site has no
        // weighbridge) and the licensed facility's receipt carry the same
        // manifest; one load in twenty weighs 60 kg apart at the two scales.
        let mut dispatch = TicketReq::delivery(
            now,
            now + ms_between(r, 300.0, 600.0),
            plate.clone(),
            axles,
            tare,
            net,
            category,
            code,
            self.site_id.clone(),
            String::new(),
        );
        dispatch.direction = Direction::Out;
        dispatch.destination_site_id = dest.clone();
        dispatch.destination_type = Some(DestinationType::LicensedHazardous);
        dispatch.manifest_id = manifest.clone();
        out.cross.push(Cross::Ticket {
            site_id: self.site_id.clone(),
            req: dispatch,
        });
        let received = if net > 200.0 && r.random_bool(0.05) {
            net - 60.0
        } else {
            net
        };
        let mut receipt = TicketReq::delivery(
            arrive,
            out_ms,
            plate,
            axles,
            tare,
            received,
            category,
            code,
            self.site_id.clone(),
            String::new(),
        );
        receipt.manifest_id = manifest;
        out.cross.push(Cross::Ticket {
            site_id: dest.clone(),
            req: receipt,
        });
        out.cross.push(Cross::Delivery {
            site_id: dest,
            kg: net,
            at_ms: out_ms,
        });
    }

    /// Advances to `now`; returns the next wake-up.
    pub fn advance(&mut self, r: &mut SimRng, world: &World, now: i64, out: &mut StepOut) -> i64 {
        let mut door_event = false;
        if self.door_close_ms.is_some_and(|t| t <= now) {
            self.door_close_ms = None;
            self.door_open = false;
            door_event = true;
        }
        if now >= self.next_addition_ms {
            let avg = self.inflow_kg_per_day / self.additions_per_day;
            if self.twist == StorageTwist::Overfill {
                // Weighed in through the hatch of the scale platform: the
                // door stays shut, so only the stock rule is exercised.
                if self.stock_kg() < 1.2 * self.limit_kg.min(MAX_STOCK_KG) {
                    self.containers.push_back((now, uniform(r, 50.0, 150.0)));
                }
            } else if self.stock_kg() < MAX_STOCK_KG {
                let kg = avg * uniform(r, 0.5, 1.5);
                self.containers.push_back((now, kg));
                door_event |= self.open_door(r, now, 120.0, 480.0);
                if self.medical {
                    self.lot_events.push(MedicalLot {
                        lot_id: now as u64,
                        sealed_at_unix_ms: now,
                        collected_at_unix_ms: 0,
                        weight_kg: round1(kg),
                    });
                }
                self.unit_delivery(r, world, now, kg, out);
            }
            self.next_addition_ms = self.schedule_addition(r, now);
        }
        if !self.never_collected() && self.collect_ms.is_none() {
            let oldest_age = self.containers.front().map_or(0, |c| now - c.0);
            if self.medical {
                self.collect_ms =
                    Some(next_local_minute(now, 10 * 60) + ms_between(r, -1800.0, 1800.0));
            } else if self.stock_kg() >= self.collect_at_kg
                || oldest_age >= 270 * DAY_MS
                || self.round_ms.is_some_and(|t| t <= now)
            {
                if let Some(t) = self.round_ms.as_mut() {
                    while *t <= now {
                        *t += ROUND_EVERY_MS;
                    }
                }
                let h = local_hour(now);
                self.collect_ms = Some(if (9.0..14.0).contains(&h) {
                    now + ms_between(r, 1800.0, 7200.0)
                } else {
                    next_local_minute(now, 9 * 60) + ms_between(r, 0.0, 7200.0)
                });
            }
        }
        if self.collect_ms.is_some_and(|t| t <= now) {
            self.collect_ms = None;
            self.collect(r, world, now, out);
            door_event |= self.open_door(r, now, 300.0, 720.0);
        }
        for lot in std::mem::take(&mut self.lot_events) {
            let mut reading = self.reading(r, now);
            reading.lot_change = Some(lot);
            out.readings.push(Reading {
                channel: Channel::Event,
                body: Body::StorageReading(reading),
                at_ms: now,
            });
        }
        let periodic = now >= self.next_report_ms;
        if periodic || door_event {
            let reading = self.reading(r, now);
            let channel = if periodic {
                Channel::Telemetry
            } else {
                Channel::Event
            };
            out.readings.push(Reading {
                channel,
                body: Body::StorageReading(reading),
                at_ms: now,
            });
            if let Some(b) = self.battery_mv.as_mut() {
                *b -= 0.01;
            }
            if periodic {
                let iv = self.interval_ms as f64 / 1000.0;
                self.next_report_ms = now + ms_between(r, 0.95 * iv, iv);
            }
        }
        let mut next = self
            .next_report_ms
            .min(self.next_addition_ms)
            .min(now + HOUR_MS);
        for t in [self.collect_ms, self.door_close_ms, self.round_ms]
            .into_iter()
            .flatten()
        {
            next = next.min(t);
        }
        next.max(now + 1)
    }

    /// A registered unit of this site (laboratory, small business, clinic)
    /// hands in what was just added: a ticket at the site's scale naming
    /// it. Units take turns, so each is covered every few days.
    fn unit_delivery(
        &mut self,
        r: &mut SimRng,
        world: &World,
        now: i64,
        kg: f64,
        out: &mut StepOut,
    ) {
        let Some(units) = world.units_by_site.get(&self.site_id) else {
            return;
        };
        if units.is_empty() {
            return;
        }
        let unit = units[self.unit_turn % units.len()].clone();
        self.unit_turn += 1;
        let (category, code) = self.waste();
        let mut req = TicketReq::delivery(
            now,
            now,
            world.independent_plate(r),
            2,
            super::scale_round(uniform(r, 1500.0, 2500.0)),
            round1(kg),
            category,
            code,
            self.site_id.clone(),
            String::new(),
        );
        req.single_weighing = true;
        req.source_unit_id = unit;
        out.cross.push(Cross::Ticket {
            site_id: self.site_id.clone(),
            req,
        });
    }

    fn reading(&self, r: &mut SimRng, now: i64) -> StorageReading {
        let oldest = self
            .containers
            .front()
            .map_or(0, |c| ((now - c.0).max(0) / 1000) as u64);
        let temp = if self.medical {
            5.0 + normal(r, 0.0, 0.3)
        } else {
            18.0 + 0.6 * (ambient_c(now) - 15.0) + self.temp_offset_c + normal(r, 0.0, 0.2)
        };
        let (comb, toxic, o2) = self.sensors;
        StorageReading {
            stock_kg: round1(self.stock_kg()),
            oldest_container_age_s: oldest,
            temperature_deci_c: deci_c(temp),
            combustible_gas_pct_lel: comb
                .then(|| round1((self.gas_base.0 + normal(r, 0.0, 0.2)).clamp(0.0, 100.0))),
            toxic_gas_pct_of_limit: toxic
                .then(|| round1((self.gas_base.1 + normal(r, 0.0, 1.0)).max(0.0))),
            oxygen_pct_vol: o2.then(|| round1(20.9 + normal(r, 0.0, 0.05))),
            leak_detected: false,
            door_open: self.door_open,
            container_count: self.containers.len() as u32,
            oldest_medical_lot_age_s: self.medical.then_some(oldest),
            outside_temperature_deci_c: self
                .medical
                .then(|| deci_c(ambient_c(now) + normal(r, 0.0, 0.3))),
            battery_mv: self.battery_mv.map_or(0, |b| b as u32),
            lot_change: None,
        }
    }
}
