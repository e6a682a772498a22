//! Devices: the weighbridges, smart bins, hazardous-waste storage points and
//! truck terminals that publish telemetry, each registered at one site.
//!
//! The decoder checks a message's `site_id`, `device_id` and kind against this
//! registry (a mismatch is quarantined); the rules read the device's spec for
//! their thresholds (a storage point's permitted capacity, a medical bin's
//! lower fill threshold, a truck's registered tare and axle count); the
//! silence check uses `expected_interval_s`. Each device carries exactly the
//! spec block of its kind. Loaded from `devices.json`; see `zone/README.md`.

use serde::Deserialize;

use super::error::{is_positive, not_positive, Problem};
use super::plate::normalize_plate;
use crate::pb::DeviceKind;

/// The most a small storage point (贮存点) may hold, kg (GB 18597-2023
/// §8.3.5).
pub const SMALL_STORAGE_POINT_LIMIT_KG: f64 = 3000.0;

/// A validated device.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Unique id across the zone (lowercase kebab-case, distinct from every
    /// site id); the MQTT client id and the `{device_id}` topic level.
    pub id: String,
    /// Device family; must match the topic and the envelope of its messages.
    pub kind: DeviceKind,
    /// The site the device is installed at (trucks: their home site); must
    /// match the `{site_id}` topic level.
    pub site_id: String,
    /// How often the device normally reports, seconds; the silence check
    /// alerts after twice this plus a margin (docs/RULES.md "device_silent").
    pub expected_interval_s: u32,
    /// Storage-point settings; `Some` exactly when `kind` is storage.
    pub storage: Option<StorageSpec>,
    /// Smart-bin settings; `Some` exactly when `kind` is bin.
    pub bin: Option<BinSpec>,
    /// Truck settings; `Some` exactly when `kind` is truck.
    pub truck: Option<TruckSpec>,
    /// Weighbridge settings; `Some` exactly when `kind` is weighbridge.
    pub weighbridge: Option<WeighbridgeSpec>,
}

/// A hazardous-waste storage point or store.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    /// Permitted capacity, kg; the stock rule warns at 90 % and is critical
    /// at 100 % of it. For a small storage point at most 3000 kg.
    pub capacity_kg: f64,
    /// True for a small storage point (贮存点), which GB 18597-2023 §8.3.5
    /// limits to 3 t in store whatever the capacity.
    pub small_storage_point: bool,
    /// True for a medical-waste store: adds the 48 h lot-age and the cold
    /// storage rules.
    pub medical: bool,
}

/// A smart bin.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinSpec {
    /// True for a medical-waste bin: "nearly full" at 75 % (the 3/4 rule)
    /// instead of 80 %.
    pub medical: bool,
    /// Usable volume, litres; turns a fill percentage into a volume for
    /// pickup planning.
    pub volume_l: u32,
}

/// A construction-waste truck's terminal and the vehicle it is fitted to.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruckSpec {
    /// Licence plate as written, e.g. "豫AD1234"; links the terminal to
    /// permits and weighbridge tickets (matched in normalised form).
    pub plate: String,
    /// Registered empty weight, kg; weighbridge tares drifting more than
    /// 100 kg from it are flagged.
    pub registered_tare_kg: f64,
    /// Number of axles, 2 to 6; selects the legal gross weight (GB 1589).
    pub axle_count: u8,
    /// Terminal phone number (终端手机号) of a JT/T 808 terminal, 1 to 20
    /// decimal digits as the terminal reports it (12 BCD digits in the 2013
    /// header, 20 in the 2019 one); leading zeros do not count, so
    /// "013912345678" and "00000000013912345678" are the same terminal.
    /// Absent for a truck that does not speak JT/T 808.
    #[serde(default)]
    pub terminal_phone: Option<String>,
}

/// The terminal phone number in the form lookups compare: the digits
/// without leading zeros ("0" for all zeros). `None` when `phone` is not 1
/// to 20 ASCII digits.
pub fn normalize_terminal_phone(phone: &str) -> Option<&str> {
    if phone.is_empty() || phone.len() > 20 || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = phone.trim_start_matches('0');
    Some(if t.is_empty() { "0" } else { t })
}

/// A weighbridge (truck scale). No settings yet; the block exists so that
/// every device states the spec of its kind, and has room for the scale's
/// capacity or accuracy class later.
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeighbridgeSpec {}

/// Device kinds as written in `devices.json` (the MQTT topic names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawKind {
    /// `weighbridge`
    Weighbridge,
    /// `bin`
    Bin,
    /// `storage`
    Storage,
    /// `truck`
    Truck,
}

impl RawKind {
    /// The protobuf kind.
    fn kind(self) -> DeviceKind {
        match self {
            RawKind::Weighbridge => DeviceKind::Weighbridge,
            RawKind::Bin => DeviceKind::Bin,
            RawKind::Storage => DeviceKind::Storage,
            RawKind::Truck => DeviceKind::Truck,
        }
    }

    /// The name in the file, which is also the name of its spec block.
    fn name(self) -> &'static str {
        match self {
            RawKind::Weighbridge => "weighbridge",
            RawKind::Bin => "bin",
            RawKind::Storage => "storage",
            RawKind::Truck => "truck",
        }
    }
}

/// A `devices.json` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "device")]
pub(super) struct RawDevice {
    /// See [`Device::id`].
    pub id: String,
    /// See [`Device::kind`].
    pub kind: RawKind,
    /// See [`Device::site_id`].
    pub site_id: String,
    /// See [`Device::expected_interval_s`].
    pub expected_interval_s: u32,
    /// See [`Device::storage`].
    pub storage: Option<StorageSpec>,
    /// See [`Device::bin`].
    pub bin: Option<BinSpec>,
    /// See [`Device::truck`].
    pub truck: Option<TruckSpec>,
    /// See [`Device::weighbridge`].
    pub weighbridge: Option<WeighbridgeSpec>,
}

/// Validates one entry. Id format and uniqueness, the site reference and
/// duplicate truck plates are checked by the loader, which sees all files.
pub(super) fn build(raw: RawDevice) -> Result<Device, Vec<Problem>> {
    let mut problems = Vec::new();
    let kind = raw.kind.name();
    let present = [
        ("weighbridge", raw.weighbridge.is_some()),
        ("bin", raw.bin.is_some()),
        ("storage", raw.storage.is_some()),
        ("truck", raw.truck.is_some()),
    ];
    for (spec, is_present) in present {
        if spec == kind && !is_present {
            problems.push(Problem::MissingSpec { kind });
        } else if spec != kind && is_present {
            problems.push(Problem::UnexpectedSpec { kind, spec });
        }
    }
    if raw.expected_interval_s == 0 {
        problems.push(Problem::NotPositive {
            field: "expected_interval_s".into(),
            value: 0.0,
            unit: "s",
        });
    }
    if let Some(s) = &raw.storage {
        if !is_positive(s.capacity_kg) {
            problems.push(not_positive("storage.capacity_kg", s.capacity_kg, "kg"));
        } else if s.small_storage_point && s.capacity_kg > SMALL_STORAGE_POINT_LIMIT_KG {
            problems.push(Problem::SmallStoragePointOverLimit {
                value: s.capacity_kg,
            });
        }
    }
    if let Some(b) = &raw.bin {
        if b.volume_l == 0 {
            problems.push(not_positive("bin.volume_l", 0.0, "L"));
        }
    }
    if let Some(t) = &raw.truck {
        if normalize_plate(&t.plate).is_empty() {
            problems.push(Problem::BlankPlate {
                field: "truck.plate".into(),
                value: t.plate.clone(),
            });
        }
        if !is_positive(t.registered_tare_kg) {
            problems.push(not_positive(
                "truck.registered_tare_kg",
                t.registered_tare_kg,
                "kg",
            ));
        }
        if !(2..=6).contains(&t.axle_count) {
            problems.push(Problem::AxleCount {
                value: t.axle_count,
            });
        }
        if let Some(phone) = &t.terminal_phone {
            if normalize_terminal_phone(phone).is_none() {
                problems.push(Problem::BadTerminalPhone {
                    value: phone.clone(),
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Device {
        id: raw.id,
        kind: raw.kind.kind(),
        site_id: raw.site_id,
        expected_interval_s: raw.expected_interval_s,
        storage: raw.storage,
        bin: raw.bin,
        truck: raw.truck,
        weighbridge: raw.weighbridge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(capacity_kg: f64) -> RawDevice {
        RawDevice {
            id: "st-1".into(),
            kind: RawKind::Storage,
            site_id: "fa-1".into(),
            expected_interval_s: 60,
            storage: Some(StorageSpec {
                capacity_kg,
                small_storage_point: false,
                medical: false,
            }),
            bin: None,
            truck: None,
            weighbridge: None,
        }
    }

    // JSON cannot spell NaN or infinity, but the check must not rely on that.
    #[test]
    fn a_capacity_that_is_not_a_finite_positive_number_is_rejected() {
        for bad in [f64::NAN, f64::INFINITY, -0.0, -1.0] {
            let Err(problems) = build(storage(bad)) else {
                panic!("{bad} accepted")
            };
            assert!(
                matches!(&problems[..], [Problem::NotPositive { field, .. }] if field == "storage.capacity_kg"),
                "{bad}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_valid_storage_device_keeps_its_spec_and_maps_its_kind() {
        let Ok(d) = build(storage(500_000.0)) else {
            panic!("valid device rejected")
        };
        assert_eq!(d.kind, DeviceKind::Storage);
        assert_eq!(d.storage.map(|s| s.capacity_kg), Some(500_000.0));
    }
}
