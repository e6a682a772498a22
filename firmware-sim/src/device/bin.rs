//! Smart bins: an ultrasonic fill sensor, a thermistor and a tilt sensor on
//! a battery.
//!
//! Fill grows along a daily curve that depends on where the bin stands
//! (residential peaks at breakfast and dinner, parks by day, hospital wards
//! during working hours) and drops when the collection round empties it: at
//! the site type's scheduled times, and 20-40 min after it passes 65 %
//! (60 % for medical bins), so a well-run bin never reaches the 80 % / 75 %
//! "nearly full" threshold (docs/RULES.md, smart bins). The sensor reports every
//! `expected_interval_s` less up to 15 % jitter, and at once after a pickup,
//! a threshold crossing or a fire.

use super::{ambient_c, deci_c, round1, Reading, StepOut};
use crate::rng::{ms_between, normal, uniform, SimRng};
use crate::time::{local_hour, next_local_minute, MINUTE_MS};
use wastewatch_contract::pb::{envelope::Body, BinReading};
use wastewatch_contract::registry::SiteType;
use wastewatch_contract::topic::Channel;

/// Longest gap between two internal steps (fill integration, checks).
const STEP_MS: i64 = 10 * MINUTE_MS;
/// Report interval while burning.
const FIRE_REPORT_MS: i64 = 2 * MINUTE_MS;

/// What a scenario does to this bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinTwist {
    /// Normal operation.
    None,
    /// Catches fire 10-30 min after the start.
    Fire,
    /// Fills at 8 %/h from 65 % and is never emptied.
    Full,
}

/// State of one bin.
#[derive(Debug)]
pub(crate) struct BinSim {
    site_type: SiteType,
    medical: bool,
    fill_pct: f64,
    rate_factor: f64,
    temp_offset_c: f64,
    tilt_base_deg: f64,
    battery_mv: f64,
    interval_ms: i64,
    last_ms: i64,
    next_report_ms: i64,
    next_pickup_ms: i64,
    on_demand_ms: Option<i64>,
    event_ms: Option<i64>,
    twist: BinTwist,
    fire_start_ms: i64,
    reported_over: [bool; 2],
}

impl BinSim {
    /// A bin that starts reporting at `start_ms`.
    pub fn new(
        r: &mut SimRng,
        site_type: SiteType,
        medical: bool,
        interval_s: u32,
        start_ms: i64,
        twist: BinTwist,
    ) -> Self {
        let interval_ms = i64::from(interval_s.max(1)) * 1000;
        let fill_pct = if twist == BinTwist::Full {
            65.0
        } else {
            uniform(r, 5.0, 40.0)
        };
        let mut b = BinSim {
            site_type,
            medical,
            fill_pct,
            rate_factor: uniform(r, 0.7, 1.3),
            temp_offset_c: uniform(r, -1.0, 1.0),
            tilt_base_deg: uniform(r, 0.5, 6.0),
            battery_mv: uniform(r, 3550.0, 3650.0),
            interval_ms,
            last_ms: start_ms,
            next_report_ms: start_ms + ms_between(r, 0.0, interval_ms as f64 / 1000.0),
            next_pickup_ms: i64::MAX,
            on_demand_ms: None,
            event_ms: None,
            twist,
            fire_start_ms: start_ms + ms_between(r, 600.0, 1800.0),
            reported_over: [false; 2],
        };
        b.next_pickup_ms = b.schedule_pickup(r, start_ms);
        if twist == BinTwist::Full {
            b.next_pickup_ms = i64::MAX;
        }
        b
    }

    /// Battery voltage, mV, for status messages.
    pub fn battery_mv(&self) -> u32 {
        self.battery_mv as u32
    }

    /// Local times of the collection rounds, minutes after midnight.
    fn rounds(&self) -> &'static [u16] {
        match self.site_type {
            SiteType::Residential => &[7 * 60, 19 * 60],
            SiteType::PublicArea => &[6 * 60, 14 * 60],
            SiteType::Hospital => &[12 * 60, 18 * 60 + 30],
            _ => &[8 * 60, 20 * 60],
        }
    }

    /// Fill rate at `t`, percent per hour.
    fn rate_pct_per_h(&self, t: i64) -> f64 {
        if self.twist == BinTwist::Full {
            return 8.0;
        }
        let h = local_hour(t);
        let base = match self.site_type {
            SiteType::Residential => match h {
                h if h < 6.0 => 0.5,
                h if h < 9.0 => 6.0,
                h if h < 17.0 => 3.0,
                h if h < 22.0 => 6.0,
                _ => 2.0,
            },
            SiteType::PublicArea => {
                if (7.0..21.0).contains(&h) {
                    4.0
                } else {
                    0.2
                }
            }
            SiteType::Hospital => {
                if (8.0..18.0).contains(&h) {
                    4.0
                } else {
                    0.3
                }
            }
            _ => 2.0,
        };
        base * self.rate_factor
    }

    /// The next collection round after `t`, ±20 min.
    fn schedule_pickup(&self, r: &mut SimRng, t: i64) -> i64 {
        let next = self
            .rounds()
            .iter()
            .map(|&m| next_local_minute(t + 30 * MINUTE_MS, m))
            .min()
            .unwrap_or(i64::MAX);
        next.saturating_add(ms_between(r, -1200.0, 1200.0))
            .max(t + MINUTE_MS)
    }

    fn on_demand_threshold(&self) -> f64 {
        if self.medical {
            60.0
        } else {
            65.0
        }
    }

    fn thresholds(&self) -> [f64; 2] {
        [if self.medical { 75.0 } else { 80.0 }, 95.0]
    }

    fn burning(&self, t: i64) -> bool {
        self.twist == BinTwist::Fire && t >= self.fire_start_ms
    }

    fn temperature_c(&self, r: &mut SimRng, t: i64) -> f64 {
        let normal_c =
            ambient_c(t) + self.temp_offset_c + self.fill_pct * 0.03 + normal(r, 0.0, 0.3);
        if self.burning(t) {
            let minutes = (t - self.fire_start_ms) as f64 / MINUTE_MS as f64;
            (normal_c + 2.5 * minutes).min(180.0)
        } else {
            normal_c
        }
    }

    /// Advances to `now`; returns the next wake-up.
    pub fn advance(&mut self, r: &mut SimRng, now: i64, out: &mut StepOut) -> i64 {
        // Integrate fill in steps no longer than STEP_MS.
        let mut t = self.last_ms;
        while t < now {
            let dt = (now - t).min(STEP_MS);
            self.fill_pct =
                (self.fill_pct + self.rate_pct_per_h(t) * dt as f64 / 3_600_000.0).min(100.0);
            t += dt;
        }
        self.last_ms = now;

        let mut event = false;
        let pickup_due = self.next_pickup_ms <= now || self.on_demand_ms.is_some_and(|p| p <= now);
        if pickup_due && self.twist != BinTwist::Full {
            self.fill_pct = uniform(r, 1.0, 4.0);
            self.on_demand_ms = None;
            self.next_pickup_ms = self.schedule_pickup(r, now);
            self.reported_over = [false; 2];
            self.event_ms = Some(now + ms_between(r, 60.0, 180.0));
        }
        if self.twist != BinTwist::Full
            && self.on_demand_ms.is_none()
            && self.fill_pct >= self.on_demand_threshold()
        {
            self.on_demand_ms = Some(now + ms_between(r, 1200.0, 2400.0));
        }
        for (i, th) in self.thresholds().into_iter().enumerate() {
            if self.fill_pct >= th && !self.reported_over[i] {
                self.reported_over[i] = true;
                event = true;
            }
        }
        if self.event_ms.is_some_and(|e| e <= now) {
            self.event_ms = None;
            event = true;
        }
        let burning = self.burning(now);
        if burning && now >= self.fire_start_ms {
            event = true;
        }
        let periodic = now >= self.next_report_ms;
        if periodic || event {
            let temp = self.temperature_c(r, now);
            let reading = BinReading {
                fill_level_pct: round1((self.fill_pct + normal(r, 0.0, 1.0)).clamp(0.0, 100.0)),
                temperature_deci_c: deci_c(temp),
                tilt_deg: round1(
                    (self.tilt_base_deg + normal(r, 0.0, 0.4).abs()).clamp(0.0, 180.0),
                ),
                battery_mv: self.battery_mv as u32,
                fire_flag: burning && temp >= 55.0,
                battery_low_flag: self.battery_mv < 3300.0,
            };
            self.battery_mv -= 0.01;
            let channel = if periodic {
                Channel::Telemetry
            } else {
                Channel::Event
            };
            out.readings.push(Reading {
                channel,
                body: Body::BinReading(reading),
                at_ms: now,
            });
            if periodic {
                self.next_report_ms = now
                    + ms_between(
                        r,
                        0.85 * self.interval_ms as f64 / 1000.0,
                        self.interval_ms as f64 / 1000.0,
                    );
            }
        }
        let mut next = self
            .next_report_ms
            .min(now + STEP_MS)
            .min(self.next_pickup_ms);
        if let Some(p) = self.on_demand_ms {
            next = next.min(p);
        }
        if let Some(e) = self.event_ms {
            next = next.min(e);
        }
        if self.twist == BinTwist::Fire {
            next = next.min(if burning {
                now + FIRE_REPORT_MS
            } else {
                self.fire_start_ms
            });
        }
        next.max(now + 1)
    }
}
