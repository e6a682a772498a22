//! Loading a zone: the three JSON files in, a validated [`Registry`] or every
//! error found out.
//!
//! Each file is a JSON array of entries. A syntax error costs the whole file
//! (reported with its line and column); otherwise every entry is checked on
//! its own, so one bad entry never hides the next: schema (unknown or
//! missing fields, wrong types — serde reports the first per entry), id
//! format and uniqueness, entry-level validation, and references to sites.
//! References are checked against every id declared in `sites.json`, even of
//! sites that are themselves invalid, so one broken site does not cascade
//! into an error per device; when `sites.json` cannot be parsed at all the
//! reference checks are skipped for the same reason.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::device::{self, RawDevice};
use super::error::{DataFile, Entry, Problem, RegistryError, RegistryErrors};
use super::permit::{self, RawPermit};
use super::plate::normalize_plate;
use super::site::{self, RawSite};
use super::unit::{self, RawUnit};
use super::Registry;

/// Longest accepted id, characters.
const MAX_ID_LEN: usize = 64;

impl Registry {
    /// Loads `sites.json`, `devices.json` and `permits.json` from `dir`.
    ///
    /// All three files must exist (an empty one holds `[]`); `units.json`
    /// is optional (no registered units without it). Returns every problem
    /// in every file at once.
    pub fn load_dir(dir: &Path) -> Result<Registry, RegistryErrors> {
        let mut errors = Vec::new();
        let [sites, devices, permits] = DataFile::ALL.map(|file| {
            let path = dir.join(file.file_name());
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    errors.push(RegistryError {
                        file,
                        entry: Entry::File,
                        problem: Problem::Unreadable {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        },
                    });
                })
                .ok()
        });
        let units_path = dir.join(DataFile::Units.file_name());
        let units = if units_path.exists() {
            std::fs::read_to_string(&units_path)
                .map_err(|e| {
                    errors.push(RegistryError {
                        file: DataFile::Units,
                        entry: Entry::File,
                        problem: Problem::Unreadable {
                            path: units_path.display().to_string(),
                            reason: e.to_string(),
                        },
                    });
                })
                .ok()
        } else {
            Some("[]".to_owned())
        };
        let sparkplug_path = dir.join(DataFile::Sparkplug.file_name());
        let sparkplug = if sparkplug_path.exists() {
            std::fs::read_to_string(&sparkplug_path)
                .map_err(|e| {
                    errors.push(RegistryError {
                        file: DataFile::Sparkplug,
                        entry: Entry::File,
                        problem: Problem::Unreadable {
                            path: sparkplug_path.display().to_string(),
                            reason: e.to_string(),
                        },
                    });
                })
                .ok()
        } else {
            Some("[]".to_owned())
        };
        assemble(
            sites.as_deref(),
            devices.as_deref(),
            permits.as_deref(),
            units.as_deref(),
            sparkplug.as_deref(),
            errors,
        )
    }

    /// Parses and validates a zone from the contents of its three files
    /// (pure; what [`Registry::load_dir`] does after reading them).
    pub fn from_json_strs(
        sites: &str,
        devices: &str,
        permits: &str,
    ) -> Result<Registry, RegistryErrors> {
        assemble(
            Some(sites),
            Some(devices),
            Some(permits),
            Some("[]"),
            Some("[]"),
            Vec::new(),
        )
    }

    /// As [`Registry::from_json_strs`], with the contents of `units.json`.
    pub fn from_json_strs_with_units(
        sites: &str,
        devices: &str,
        permits: &str,
        units: &str,
    ) -> Result<Registry, RegistryErrors> {
        assemble(
            Some(sites),
            Some(devices),
            Some(permits),
            Some(units),
            Some("[]"),
            Vec::new(),
        )
    }

    /// As [`Registry::from_json_strs_with_units`], with the contents of
    /// `sparkplug.json`.
    pub fn from_json_strs_with_sparkplug(
        sites: &str,
        devices: &str,
        permits: &str,
        units: &str,
        sparkplug: &str,
    ) -> Result<Registry, RegistryErrors> {
        assemble(
            Some(sites),
            Some(devices),
            Some(permits),
            Some(units),
            Some(sparkplug),
            Vec::new(),
        )
    }
}

/// Builds the registry from the files' texts (`None`: unreadable, already
/// reported in `errors`).
fn assemble(
    sites: Option<&str>,
    devices: Option<&str>,
    permits: Option<&str>,
    units: Option<&str>,
    sparkplug: Option<&str>,
    mut errors: Vec<RegistryError>,
) -> Result<Registry, RegistryErrors> {
    let site_values = sites.and_then(|t| parse_array(DataFile::Sites, t, &mut errors));
    let device_values = devices.and_then(|t| parse_array(DataFile::Devices, t, &mut errors));
    let permit_values = permits.and_then(|t| parse_array(DataFile::Permits, t, &mut errors));
    let unit_values = units.and_then(|t| parse_array(DataFile::Units, t, &mut errors));
    let sparkplug_values = sparkplug.and_then(|t| parse_array(DataFile::Sparkplug, t, &mut errors));

    // Every site id the file declares, valid entry or not; `None` when the
    // file is unusable, which turns the reference checks off.
    let known_sites: Option<HashSet<String>> = site_values.as_ref().map(|values| {
        values
            .iter()
            .filter_map(|v| value_id(v).map(str::to_owned))
            .collect()
    });
    let site_known = |field: String, site_id: &str, problems: &mut Vec<Problem>| {
        if known_sites
            .as_ref()
            .is_some_and(|known| !known.contains(site_id))
        {
            problems.push(Problem::UnknownSite {
                field,
                site_id: site_id.to_owned(),
            });
        }
    };

    let mut registry = Registry::empty();

    if let Some(values) = site_values {
        let sites = load_entries(
            DataFile::Sites,
            values,
            &mut errors,
            |r: &RawSite| &r.id,
            |_, _| {},
            site::build,
        );
        registry.sites = sites.into_iter().collect();
    }

    if let Some(values) = device_values {
        // Normalised truck plate → the first device carrying it.
        let mut truck_plates: HashMap<String, String> = HashMap::new();
        // Normalised terminal phone number → the first device carrying it.
        let mut phones: HashMap<String, String> = HashMap::new();
        let check = |raw: &RawDevice, problems: &mut Vec<Problem>| {
            site_known("site_id".to_owned(), &raw.site_id, problems);
            if known_sites
                .as_ref()
                .is_some_and(|known| known.contains(&raw.id))
            {
                problems.push(Problem::IdCollidesWithSite { id: raw.id.clone() });
            }
            if let Some(truck) = &raw.truck {
                let norm = normalize_plate(&truck.plate);
                if !norm.is_empty() {
                    match truck_plates.entry(norm) {
                        MapEntry::Occupied(first) => problems.push(Problem::DuplicatePlate {
                            plate: truck.plate.clone(),
                            context: format!("also the plate of device {:?}", first.get()),
                        }),
                        MapEntry::Vacant(slot) => {
                            slot.insert(raw.id.clone());
                        }
                    }
                }
                if let Some(norm) = truck
                    .terminal_phone
                    .as_deref()
                    .and_then(device::normalize_terminal_phone)
                {
                    match phones.entry(norm.to_owned()) {
                        MapEntry::Occupied(first) => {
                            problems.push(Problem::DuplicateTerminalPhone {
                                value: truck.terminal_phone.clone().unwrap_or_default(),
                                other: first.get().clone(),
                            })
                        }
                        MapEntry::Vacant(slot) => {
                            slot.insert(raw.id.clone());
                        }
                    }
                }
            }
        };
        let devices = load_entries(
            DataFile::Devices,
            values,
            &mut errors,
            |r: &RawDevice| &r.id,
            check,
            device::build,
        );
        registry.devices = devices.into_iter().collect();
    }

    if let Some(values) = permit_values {
        let check = |raw: &RawPermit, problems: &mut Vec<Problem>| {
            site_known("origin_site_id".to_owned(), &raw.origin_site_id, problems);
            for (i, dest) in raw.destination_site_ids.iter().enumerate() {
                site_known(format!("destination_site_ids[{i}]"), dest, problems);
            }
        };
        let permits = load_entries(
            DataFile::Permits,
            values,
            &mut errors,
            |r: &RawPermit| &r.id,
            check,
            permit::build,
        );
        for (id, permit) in &permits {
            for plate in &permit.plates {
                registry
                    .permits_by_plate
                    .entry(normalize_plate(plate))
                    .or_default()
                    .push(id.clone());
            }
        }
        for ids in registry.permits_by_plate.values_mut() {
            ids.sort();
            ids.dedup();
        }
        registry.permits = permits.into_iter().collect();
    }

    if let Some(values) = unit_values {
        let check = |raw: &RawUnit, problems: &mut Vec<Problem>| {
            site_known("site_id".to_owned(), &raw.site_id, problems);
        };
        let units = load_entries(
            DataFile::Units,
            values,
            &mut errors,
            |r: &RawUnit| &r.id,
            check,
            unit::build,
        );
        registry.units = units.into_iter().collect();
    }

    if let Some(values) = sparkplug_values {
        // Checked against the valid devices only: a device that failed its
        // own checks is reported in devices.json already.
        let (nodes, problems) = super::sparkplug::load(values, device_values_known(&registry));
        errors.extend(problems.into_iter().map(|(entry, problem)| RegistryError {
            file: DataFile::Sparkplug,
            entry,
            problem,
        }));
        registry.sparkplug = nodes;
    }

    if errors.is_empty() {
        Ok(registry)
    } else {
        // Unreadable files were reported first; put everything in file order
        // (the sort is stable, so entries keep their order within a file).
        errors.sort_by_key(|e| {
            DataFile::ALL
                .iter()
                .position(|f| *f == e.file)
                .unwrap_or(match e.file {
                    DataFile::Units => DataFile::ALL.len(),
                    _ => DataFile::ALL.len() + 1,
                })
        });
        Err(RegistryErrors(errors))
    }
}

/// The devices a Sparkplug mapping may name.
fn device_values_known(r: &Registry) -> &super::IdMap<super::Device> {
    &r.devices
}

/// Parses a file's text as a JSON array, reporting a syntax error with its
/// position or a top level of the wrong type.
fn parse_array(file: DataFile, text: &str, errors: &mut Vec<RegistryError>) -> Option<Vec<Value>> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = (e.line(), e.column());
            let full = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            errors.push(RegistryError {
                file,
                entry: Entry::Position { line, column },
                problem: Problem::Syntax { message },
            });
            return None;
        }
    };
    let found = match value {
        Value::Array(values) => return Some(values),
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Object(_) => "an object",
    };
    errors.push(RegistryError {
        file,
        entry: Entry::File,
        problem: Problem::NotAnArray { found },
    });
    None
}

/// The `id` of a raw entry, if it has a non-empty string one.
fn value_id(v: &Value) -> Option<&str> {
    v.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Deserialises and validates each entry of a file. Returns the valid ones
/// by id (first occurrence of an id only) and appends every problem, located
/// by the entry's id or, without one, its index.
///
/// `check` runs on the raw entry before `build` and adds cross-file problems
/// (site references), so they are reported even when `build` fails.
fn load_entries<R, T>(
    file: DataFile,
    values: Vec<Value>,
    errors: &mut Vec<RegistryError>,
    id_of: impl Fn(&R) -> &String,
    mut check: impl FnMut(&R, &mut Vec<Problem>),
    build: impl Fn(R) -> Result<T, Vec<Problem>>,
) -> Vec<(String, T)>
where
    R: DeserializeOwned,
{
    let mut first_index: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let entry = value_id(&value).map_or(Entry::Index(index), |id| Entry::Id(id.to_owned()));
        let mut problems = Vec::new();
        match serde_json::from_value::<R>(value) {
            Err(e) => problems.push(Problem::Schema {
                message: e.to_string(),
            }),
            Ok(raw) => {
                let id = id_of(&raw).clone();
                if !is_valid_id(&id) {
                    problems.push(Problem::BadId { id: id.clone() });
                }
                match first_index.entry(id.clone()) {
                    MapEntry::Occupied(first) => problems.push(Problem::DuplicateId {
                        id: id.clone(),
                        first_index: *first.get(),
                    }),
                    MapEntry::Vacant(slot) => {
                        slot.insert(index);
                    }
                }
                check(&raw, &mut problems);
                match build(raw) {
                    Ok(item) if problems.is_empty() => out.push((id, item)),
                    Ok(_) => {}
                    Err(more) => problems.extend(more),
                }
            }
        }
        errors.extend(problems.into_iter().map(|problem| RegistryError {
            file,
            entry: entry.clone(),
            problem,
        }));
    }
    out
}

/// Ids are lowercase kebab-case: 1 to 64 ASCII lowercase letters and digits
/// in groups joined by single '-'. They appear as MQTT topic levels and
/// InfluxDB tag values, where `/`, `+`, `#`, spaces and case variants would
/// cause trouble.
pub(super) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests;
