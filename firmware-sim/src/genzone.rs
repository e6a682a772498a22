//! `firmware-sim gen-zone`: a copy of a zone directory with N synthetic
//! devices added, for load tests with 100 000 devices.
//!
//! Scaling a fleet by cloning devices under suffixed ids would publish ids
//! the service's registry does not know (all quarantined as
//! `unknown_device`), so instead the extra devices are written into the
//! zone itself and both the service and the simulator load the generated
//! directory. Extra devices are spread round-robin over existing sites of
//! the right type: bins at residential areas, parks and hospitals (medical
//! there), small storage points at factories, laboratories and collection
//! points, trucks on the existing permits (their plates are added to the
//! permit, so they drive its route) with their home at its origin. Ids are
//! `sim-bin-000001`, `sim-storage-000001`, `sim-truck-000001`; plates are
//! `豫B00001` onwards (`豫A` belongs to the hand-written zone). The result is
//! loaded with [`Registry::load_dir`] before this returns, so a generated
//! zone is always valid.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use super::config::SimError;
use wastewatch_contract::registry::Registry;

/// Relative weights of the synthetic device kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Smart bins.
    pub bin: u32,
    /// Storage points.
    pub storage: u32,
    /// Trucks.
    pub truck: u32,
}

impl Default for Mix {
    /// 6:1:3 — bins dominate a city's device count, trucks its message rate.
    fn default() -> Self {
        Mix {
            bin: 6,
            storage: 1,
            truck: 3,
        }
    }
}

impl Mix {
    /// Parses `bin=6,storage=1,truck=3` (missing kinds are 0).
    pub fn parse(s: &str) -> Result<Mix, String> {
        let mut m = Mix {
            bin: 0,
            storage: 0,
            truck: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} must be kind=weight"))?;
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("mix weight {v:?} of {k} is not a whole number"))?;
            match k.trim() {
                "bin" => m.bin = v,
                "storage" => m.storage = v,
                "truck" => m.truck = v,
                other => return Err(format!("mix kind {other:?} is not bin, storage or truck")),
            }
        }
        if m.bin + m.storage + m.truck == 0 {
            return Err("mix weights are all 0; give at least one kind a weight".to_owned());
        }
        Ok(m)
    }

    /// The kind of synthetic device number `i` (interleaved by weight).
    fn kind_of(&self, i: usize) -> &'static str {
        let total = (self.bin + self.storage + self.truck) as usize;
        let r = i % total;
        if r < self.bin as usize {
            "bin"
        } else if r < (self.bin + self.storage) as usize {
            "storage"
        } else {
            "truck"
        }
    }
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenReport {
    /// Devices in the generated zone.
    pub devices_total: usize,
    /// Synthetic bins added.
    pub bins: usize,
    /// Synthetic storage points added.
    pub storage: usize,
    /// Synthetic trucks added.
    pub trucks: usize,
}

fn read_array(dir: &Path, name: &str) -> Result<Vec<Value>, SimError> {
    let path = dir.join(name);
    let text = fs::read_to_string(&path).map_err(|source| SimError::Io {
        path: path.display().to_string(),
        source,
    })?;
    match serde_json::from_str(&text) {
        Ok(Value::Array(v)) => Ok(v),
        Ok(_) => Err(SimError::ZoneFormat {
            path: path.display().to_string(),
            message: "top level must be a JSON array".to_owned(),
        }),
        Err(e) => Err(SimError::ZoneFormat {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn write_json(dir: &Path, name: &str, v: &Value) -> Result<(), SimError> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(v).map_err(|e| SimError::ZoneFormat {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    fs::write(&path, text + "\n").map_err(|source| SimError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Plate of synthetic truck `i`: `豫B00000`..`豫B99999`, then `豫C…`.
fn plate(i: usize) -> String {
    const LETTERS: &[u8] = b"BCDEFGHJKLMNPQRSTUVWXYZ";
    let letter = LETTERS[(i / 100_000) % LETTERS.len()] as char;
    format!("豫{letter}{:05}", i % 100_000)
}

/// Writes `src` plus `devices` synthetic devices to `out` and checks that
/// the result loads.
pub fn generate_zone(
    src: &Path,
    out: &Path,
    devices: usize,
    mix: Mix,
) -> Result<GenReport, SimError> {
    if devices > 23 * 100_000 {
        return Err(SimError::Config(vec![format!(
            "devices is {devices}; at most 2300000 synthetic devices are supported"
        )]));
    }
    let sites = read_array(src, "sites.json")?;
    let mut devs = read_array(src, "devices.json")?;
    let mut permits = read_array(src, "permits.json")?;
    fs::create_dir_all(out).map_err(|source| SimError::Io {
        path: out.display().to_string(),
        source,
    })?;
    // Copy everything else (README, GeoJSON previews) unchanged.
    let entries = fs::read_dir(src).map_err(|source| SimError::Io {
        path: src.display().to_string(),
        source,
    })?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_file() {
            if let Some(name) = p.file_name() {
                if !matches!(name.to_str(), Some("devices.json" | "permits.json")) {
                    fs::copy(&p, out.join(name)).map_err(|source| SimError::Io {
                        path: p.display().to_string(),
                        source,
                    })?;
                }
            }
        }
    }

    let sites_of = |types: &[&str]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = sites
            .iter()
            .filter_map(|s| {
                let t = s.get("type")?.as_str()?;
                let id = s.get("id")?.as_str()?;
                types.contains(&t).then(|| (id.to_owned(), t.to_owned()))
            })
            .collect();
        v.sort();
        v
    };
    let bin_sites = sites_of(&["residential", "public_area", "hospital"]);
    let storage_sites = sites_of(&["factory", "laboratory", "small_business_collection_point"]);
    let any_site = sites_of(&[
        "residential",
        "public_area",
        "hospital",
        "factory",
        "laboratory",
        "small_business_collection_point",
        "construction_site",
        "recycling_plant",
        "utilisation_plant",
        "landfill",
        "incinerator",
        "backfill",
        "transfer_station",
        "licensed_hazardous_facility",
    ]);
    let Some(fallback) = any_site.first().cloned() else {
        return Err(SimError::ZoneFormat {
            path: src.join("sites.json").display().to_string(),
            message: "the zone has no sites to place devices at".to_owned(),
        });
    };
    let construction = sites_of(&["construction_site"]);

    let mut report = GenReport::default();
    let mut permit_plates: Vec<Vec<Value>> = permits
        .iter()
        .map(|p| {
            p.get("plates")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    for i in 0..devices {
        let kind = mix.kind_of(i);
        let dev = match kind {
            "bin" => {
                report.bins += 1;
                let (site, t) = bin_sites
                    .get(report.bins % bin_sites.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| fallback.clone());
                let volume_l = [120, 240, 660, 1100][report.bins % 4];
                json!({
                    "id": format!("sim-bin-{:06}", report.bins),
                    "kind": "bin",
                    "site_id": site,
                    "expected_interval_s": 3600,
                    "bin": { "medical": t == "hospital", "volume_l": volume_l }
                })
            }
            "storage" => {
                report.storage += 1;
                let (site, _) = storage_sites
                    .get(report.storage % storage_sites.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| fallback.clone());
                json!({
                    "id": format!("sim-storage-{:06}", report.storage),
                    "kind": "storage",
                    "site_id": site,
                    "expected_interval_s": 300,
                    "storage": { "capacity_kg": 3000, "small_storage_point": true, "medical": false }
                })
            }
            _ => {
                report.trucks += 1;
                let n = report.trucks;
                let plate = plate(n);
                let home = if permits.is_empty() {
                    construction
                        .get(n % construction.len().max(1))
                        .map_or_else(|| fallback.0.clone(), |c| c.0.clone())
                } else {
                    let k = n % permits.len();
                    permit_plates[k].push(Value::String(plate.clone()));
                    permits[k]
                        .get("origin_site_id")
                        .and_then(Value::as_str)
                        .unwrap_or(&fallback.0)
                        .to_owned()
                };
                let axles = [2u8, 3, 4, 4][n % 4];
                let tare = match axles {
                    2 => 11_800 + (n % 7) * 100,
                    3 => 13_800 + (n % 7) * 100,
                    _ => 15_400 + (n % 7) * 100,
                };
                json!({
                    "id": format!("sim-truck-{n:06}"),
                    "kind": "truck",
                    "site_id": home,
                    "expected_interval_s": 10,
                    "truck": { "plate": plate, "registered_tare_kg": tare, "axle_count": axles }
                })
            }
        };
        devs.push(dev);
    }
    for (p, plates) in permits.iter_mut().zip(permit_plates) {
        if let Some(obj) = p.as_object_mut() {
            obj.insert("plates".to_owned(), Value::Array(plates));
        }
    }
    report.devices_total = devs.len();
    write_json(out, "devices.json", &Value::Array(devs))?;
    write_json(out, "permits.json", &Value::Array(permits))?;
    Registry::load_dir(out).map_err(|e| SimError::Registry(e.to_string()))?;
    Ok(report)
}
