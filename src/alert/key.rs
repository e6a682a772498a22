//! The vocabulary an alert is named in: which rule ([`RuleId`]), about what
//! (the entity), how bad ([`Severity`]).
//!
//! Rules produce it, the alert store keys its alerts by it, notifiers and the
//! InfluxDB `alert` measurement print it. Names are snake_case everywhere
//! (serde, `as_str`, `Display`), so the same string appears in config files,
//! API filters, line protocol and notification texts.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every rule the engine evaluates. One alert exists per (rule, entity); the
/// `///` of each variant says what `value` and `threshold` of its alerts mean.
/// The thresholds and their sources are in `rules::config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    /// Stock at a small storage point (贮存点) near or over 3 t (GB 18597-2023
    /// §8.3.5). value: stock kg; threshold: the level's limit, kg.
    StoragePointOverLimit,
    /// Stock against the permitted capacity. value: stock / capacity (ratio);
    /// threshold: the level's ratio.
    StorageOverCapacity,
    /// Oldest container near or over the one-year storage limit (Solid Waste
    /// Law art. 81). value / threshold: days.
    StorageAge,
    /// Combustible gas (GB/T 50493-2019). value / threshold: % LEL.
    CombustibleGas,
    /// Toxic gas / VOC against its occupational limit. value / threshold: %
    /// of the limit.
    ToxicGas,
    /// Oxygen outside 19.5-23.5 %vol. value: %vol; threshold: the bound
    /// crossed.
    Oxygen,
    /// Store temperature 40 °C warn / 50 °C critical. value / threshold: °C.
    StorageTemperature,
    /// Store temperature rising 10 °C within 10 min. value / threshold: °C of
    /// rise.
    StorageTemperatureRise,
    /// Sump / bund leak sensor wet (GB 18597-2023 §6.2.2). value: 1.
    Leak,
    /// Store door open too long or after hours. value / threshold: minutes
    /// open.
    DoorOpen,
    /// Oldest medical-waste lot held too long (medical waste regulation art.
    /// 17). value / threshold: hours.
    MedicalLotAge,
    /// Medical-waste store at or above 20 °C while it is over 25 °C outside.
    /// value / threshold: store °C.
    MedicalStoreWarm,
    /// Truck outside its permit's route corridor. Entity `truck/permit`.
    /// value: metres from the centreline (less the GPS error radius);
    /// threshold: the corridor half-width, m.
    RouteDeviation,
    /// Loaded truck moving outside the permit's time window. Entity
    /// `truck/permit`. value: km/h; threshold: the moving speed, km/h.
    OutsideTimeWindow,
    /// Loaded truck stopped outside approved sites and unloading. value:
    /// minutes stopped; threshold: minutes required.
    SuspectedDumping,
    /// Tipper body raised outside every site geofence. value: 1.
    BodyLiftedOutsideSite,
    /// Cover open on a loaded, moving truck. value / threshold: seconds.
    CoverOpen,
    /// Over the segment speed limit. value: km/h; threshold: the limit,
    /// km/h.
    Overspeed,
    /// No GNSS fix with ignition on, or a terminal GNSS alarm bit (JT/T 808).
    /// value: minutes without fix, or the alarm bits; threshold: minutes.
    GnssLost,
    /// Gross weight over the legal gross vehicle weight (GB 1589). Entity
    /// `weighbridge/plate`. value / threshold: kg.
    Overload,
    /// Plate not on an active permit for this construction-waste
    /// destination. Entity `weighbridge/plate`. value: 0.
    UnapprovedVehicle,
    /// A permitted truck weighed out at its origin has no ticket in at an
    /// approved destination within 1.5 × the route's ETA (at most 4 h).
    /// value: minutes since weighed out; threshold: minutes allowed.
    TripNotClosed,
    /// A ticket's tare differs from the truck's registered tare by more
    /// than 100 kg. value / threshold: |difference| kg.
    TareDrift,
    /// A second ticket with the same ticket id at the same weighbridge
    /// (different message): double-counted tonnage. value / threshold: 0.
    DuplicateTicket,
    /// Bin fill at or above 80 % (medical 75 %). value / threshold: %.
    BinNearlyFull,
    /// Bin fill at or above 95 %. value / threshold: %.
    BinOverflowing,
    /// Bin temperature, rate of rise or device fire flag. value: °C;
    /// threshold: °C.
    BinFire,
    /// Bin tilted 45° or more. value / threshold: degrees.
    BinTilted,
    /// No uplink for twice the expected interval plus a margin. value:
    /// minutes silent; threshold: minutes allowed.
    DeviceSilent,
    /// The broker published the device's MQTT last will: its connection
    /// died without a DISCONNECT. Raised at once (info), cleared by the next
    /// message; `device_silent` follows if the device stays away. value /
    /// threshold: 0.
    DeviceOffline,
    /// Device battery low (flag or voltage). value / threshold: mV (0 when
    /// only the flag is known).
    BatteryLow,
    /// A reading would have raised an alert but cannot be trusted (stale,
    /// low battery, impossible value). value: 0; the message says why.
    CannotVerify,
}

impl RuleId {
    /// Every rule, in declaration order.
    pub const ALL: [RuleId; 32] = [
        RuleId::StoragePointOverLimit,
        RuleId::StorageOverCapacity,
        RuleId::StorageAge,
        RuleId::CombustibleGas,
        RuleId::ToxicGas,
        RuleId::Oxygen,
        RuleId::StorageTemperature,
        RuleId::StorageTemperatureRise,
        RuleId::Leak,
        RuleId::DoorOpen,
        RuleId::MedicalLotAge,
        RuleId::MedicalStoreWarm,
        RuleId::RouteDeviation,
        RuleId::OutsideTimeWindow,
        RuleId::SuspectedDumping,
        RuleId::BodyLiftedOutsideSite,
        RuleId::CoverOpen,
        RuleId::Overspeed,
        RuleId::GnssLost,
        RuleId::Overload,
        RuleId::UnapprovedVehicle,
        RuleId::TripNotClosed,
        RuleId::TareDrift,
        RuleId::DuplicateTicket,
        RuleId::BinNearlyFull,
        RuleId::BinOverflowing,
        RuleId::BinFire,
        RuleId::BinTilted,
        RuleId::DeviceSilent,
        RuleId::DeviceOffline,
        RuleId::BatteryLow,
        RuleId::CannotVerify,
    ];

    /// The snake_case name (as in serde, config and the API).
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleId::StoragePointOverLimit => "storage_point_over_limit",
            RuleId::StorageOverCapacity => "storage_over_capacity",
            RuleId::StorageAge => "storage_age",
            RuleId::CombustibleGas => "combustible_gas",
            RuleId::ToxicGas => "toxic_gas",
            RuleId::Oxygen => "oxygen",
            RuleId::StorageTemperature => "storage_temperature",
            RuleId::StorageTemperatureRise => "storage_temperature_rise",
            RuleId::Leak => "leak",
            RuleId::DoorOpen => "door_open",
            RuleId::MedicalLotAge => "medical_lot_age",
            RuleId::MedicalStoreWarm => "medical_store_warm",
            RuleId::RouteDeviation => "route_deviation",
            RuleId::OutsideTimeWindow => "outside_time_window",
            RuleId::SuspectedDumping => "suspected_dumping",
            RuleId::BodyLiftedOutsideSite => "body_lifted_outside_site",
            RuleId::CoverOpen => "cover_open",
            RuleId::Overspeed => "overspeed",
            RuleId::GnssLost => "gnss_lost",
            RuleId::Overload => "overload",
            RuleId::UnapprovedVehicle => "unapproved_vehicle",
            RuleId::TripNotClosed => "trip_not_closed",
            RuleId::TareDrift => "tare_drift",
            RuleId::DuplicateTicket => "duplicate_ticket",
            RuleId::BinNearlyFull => "bin_nearly_full",
            RuleId::BinOverflowing => "bin_overflowing",
            RuleId::BinFire => "bin_fire",
            RuleId::BinTilted => "bin_tilted",
            RuleId::DeviceSilent => "device_silent",
            RuleId::DeviceOffline => "device_offline",
            RuleId::BatteryLow => "battery_low",
            RuleId::CannotVerify => "cannot_verify",
        }
    }

    /// The rule with this snake_case name.
    pub fn parse(name: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// True for rules about a one-off event rather than a lasting condition
    /// (a weighing, a dump): nothing later says "it stopped", so the engine
    /// clears them after `event_hold_ms` (or on the next compliant ticket).
    pub const fn is_event(self) -> bool {
        matches!(
            self,
            RuleId::SuspectedDumping
                | RuleId::Overload
                | RuleId::UnapprovedVehicle
                | RuleId::TareDrift
                | RuleId::DuplicateTicket
        )
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad an alert is; ordered, so `Critical > Major > Warn > Info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, no action now (e.g. schedule a pickup).
    Info,
    /// Needs attention during working hours.
    Warn,
    /// Needs action soon; notify the on-call person.
    Major,
    /// Needs action now (fire, leak, overload, dumping).
    Critical,
}

impl Severity {
    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alert is about: at most one alert per key is active.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertKey {
    /// The rule that raised it.
    pub rule: RuleId,
    /// The thing it is about: a device id, `truck-id/permit-id` for permit
    /// rules, `weighbridge-id/PLATE` for weighbridge rules.
    pub entity: String,
}

impl AlertKey {
    /// A key for `rule` about `entity`.
    pub fn new(rule: RuleId, entity: impl Into<String>) -> Self {
        Self {
            rule,
            entity: entity.into(),
        }
    }
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.rule, self.entity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_name_parses_back_and_matches_serde() {
        for r in RuleId::ALL {
            assert_eq!(RuleId::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(RuleId::parse("no_such_rule"), None);
    }

    #[test]
    fn severities_are_ordered_from_info_to_critical() {
        assert!(Severity::Info < Severity::Warn);
        assert!(Severity::Warn < Severity::Major);
        assert!(Severity::Major < Severity::Critical);
    }
}
