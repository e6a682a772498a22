//! The named scenarios: each one perturbs a few devices (or the transport)
//! in a documented way, so the pipeline and the rules can be checked against
//! a known expectation. They compose (`--scenario a,b`); each picks its own
//! devices, never one already taken by another scenario.
//!
//! `firmware-sim/SCENARIOS.md` lists, per scenario, the alerts it must and
//! must not produce; keep the two in step.

use std::fmt;
use std::str::FromStr;

/// A named, composable perturbation of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// Well-behaved zone: no alert should fire.
    Normal,
    /// A small storage point's stock climbs past 80 % and then 100 % of the
    /// 3 t limit and is never collected.
    StorageOverfill,
    /// The oldest container of a store is past 335 d and reaches 365 d; a
    /// medical store's oldest lot passes 36 h and reaches 48 h.
    StorageOverdue,
    /// A loaded truck takes a ~300 m detour off its permit corridor for a few
    /// minutes on every trip.
    RouteDeviation,
    /// A loaded truck stops on the road, lifts its body and dumps the load.
    IllegalDump,
    /// A truck drives loaded only outside its permit's time window.
    TimeWindow,
    /// A bin's temperature climbs past 60 °C and its fire flag is set.
    BinFire,
    /// A bin fills past 80 % and 95 % and is never emptied.
    BinFull,
    /// A storage point and a bin go silent for good after a last will.
    DeviceOffline,
    /// GNSS noise of 20 m per axis on every truck: must not alert.
    GpsJitter,
    /// A truck loses its uplink for 3 min while driving; the buffered fixes
    /// arrive late and out of order.
    GpsDropoutBurst,
    /// Bad payloads: garbage bytes, NaN, negative weight, topic/payload id
    /// mismatch, unknown device. All must be quarantined.
    Malformed,
    /// About 2 % of messages are published twice with the same (device, seq).
    DuplicateRedelivery,
    /// A storage point's and a truck's clocks run 2 h fast.
    ClockSkew,
    /// A truck is loaded above the legal gross weight for its axle count.
    Overload,
}

impl Scenario {
    /// Every scenario, in documentation order.
    pub const ALL: [Scenario; 15] = [
        Scenario::Normal,
        Scenario::StorageOverfill,
        Scenario::StorageOverdue,
        Scenario::RouteDeviation,
        Scenario::IllegalDump,
        Scenario::TimeWindow,
        Scenario::BinFire,
        Scenario::BinFull,
        Scenario::DeviceOffline,
        Scenario::GpsJitter,
        Scenario::GpsDropoutBurst,
        Scenario::Malformed,
        Scenario::DuplicateRedelivery,
        Scenario::ClockSkew,
        Scenario::Overload,
    ];

    /// The name used on the command line and in SCENARIOS.md.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::StorageOverfill => "storage_overfill",
            Scenario::StorageOverdue => "storage_overdue",
            Scenario::RouteDeviation => "route_deviation",
            Scenario::IllegalDump => "illegal_dump",
            Scenario::TimeWindow => "time_window",
            Scenario::BinFire => "bin_fire",
            Scenario::BinFull => "bin_full",
            Scenario::DeviceOffline => "device_offline",
            Scenario::GpsJitter => "gps_jitter",
            Scenario::GpsDropoutBurst => "gps_dropout_burst",
            Scenario::Malformed => "malformed",
            Scenario::DuplicateRedelivery => "duplicate_redelivery",
            Scenario::ClockSkew => "clock_skew",
            Scenario::Overload => "overload",
        }
    }

    /// One line on what the scenario does.
    pub const fn summary(self) -> &'static str {
        match self {
            Scenario::Normal => "well-behaved zone; no alert",
            Scenario::StorageOverfill => {
                "small storage point climbs past 80 % then 100 % of the 3 t limit"
            }
            Scenario::StorageOverdue => {
                "oldest container past 335 d reaching 365 d; medical lot past 36 h reaching 48 h"
            }
            Scenario::RouteDeviation => {
                "loaded truck leaves its corridor by ~300 m for ~3 min on each trip"
            }
            Scenario::IllegalDump => "loaded truck stops on the road, lifts its body and dumps",
            Scenario::TimeWindow => "truck drives loaded only outside its permit time window",
            Scenario::BinFire => "bin temperature climbs past 60 C with the fire flag",
            Scenario::BinFull => "bin fills past 80 % and 95 % and is not emptied",
            Scenario::DeviceOffline => {
                "a storage point and a bin publish a last will and go silent"
            }
            Scenario::GpsJitter => "20 m GNSS noise on all trucks; no alert",
            Scenario::GpsDropoutBurst => {
                "truck uplink lost for 3 min; buffered fixes arrive late, out of order"
            }
            Scenario::Malformed => {
                "garbage, NaN, negative weight, id mismatch, unknown device; all quarantined"
            }
            Scenario::DuplicateRedelivery => {
                "~2 % of messages published twice with the same (device, seq)"
            }
            Scenario::ClockSkew => "a storage point's and a truck's clocks run 2 h fast",
            Scenario::Overload => "truck gross weight above the GB 1589 limit for its axles",
        }
    }

    /// Parses a comma-separated list (`"normal,bin_fire"`), reporting every
    /// unknown name at once.
    pub fn parse_list(s: &str) -> Result<Vec<Scenario>, String> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.parse() {
                Ok(sc) => out.push(sc),
                Err(_) => bad.push(name.to_owned()),
            }
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(format!(
                "unknown scenario(s) {}; known: {}",
                bad.join(", "),
                Scenario::ALL.map(Scenario::as_str).join(", ")
            ))
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('-', "_").to_ascii_lowercase();
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str() == wanted)
            .ok_or_else(|| format!("unknown scenario {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_name_parses_back_to_itself() {
        for sc in Scenario::ALL {
            assert_eq!(sc.as_str().parse::<Scenario>(), Ok(sc));
        }
    }

    #[test]
    fn a_list_with_unknown_names_reports_all_of_them() {
        let err = Scenario::parse_list("normal,nope,bin_fire,also-nope").unwrap_err();
        assert!(err.contains("nope") && err.contains("also-nope"), "{err}");
        assert_eq!(
            Scenario::parse_list("bin-fire, normal").unwrap(),
            vec![Scenario::BinFire, Scenario::Normal]
        );
    }
}
