//! Registry loading (`Registry::from_json_strs(sites, devices, permits)`,
//! `crates/contract/src/registry/load.rs`: what `load_dir` does after
//! reading the zone's files).
//!
//! Two input modes, chosen by the first byte:
//! - raw (even): the three files' texts, separated by `0xFF` bytes (which
//!   UTF-8 never contains); seeds: the shipped `zone/` files
//!   (`fuzz/seed-corpus.sh`);
//! - structured (odd): the shipped zone parsed as JSON, then edited by the
//!   input — a value anywhere (ids, references, kinds, specs, coordinates,
//!   route segments, time windows, dates, plates) replaced by a boundary or
//!   ill-typed value, a key removed or added, an entry duplicated or removed
//!   — and written back, so every input reaches entry validation.
//!
//! Properties, for every input:
//! - no panic;
//! - `Ok` only when every entry of every file was valid: as many sites,
//!   devices and permits as entries; every id lowercase kebab-case; every
//!   site reference resolved; no device id equal to a site id; no truck plate
//!   on two devices; the plate index sorted, without duplicates, pointing at
//!   permits that list the plate;
//! - otherwise a non-empty list, in file order, each error naming its file
//!   and entry: a file that is not JSON gets exactly one error, at a line and
//!   column inside the text; a file that is not an array exactly one, for the
//!   file; every other error names an entry by an index that has no usable
//!   id or by an id that an entry of that file has; `Display` reads
//!   `<file>: <entry>: <problem>` (`<file>: <problem>` for the whole file).
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use wastewatch::registry::{normalize_plate, DataFile, Entry, Registry, RegistryErrors};
use wastewatch_fuzz::gen::{f64_in, pick, text};
use wastewatch_fuzz::zone;

const FILES: [DataFile; 3] = [DataFile::Sites, DataFile::Devices, DataFile::Permits];

fn shipped() -> &'static [Vec<Value>; 3] {
    static S: OnceLock<[Vec<Value>; 3]> = OnceLock::new();
    S.get_or_init(|| {
        [zone::SITES, zone::DEVICES, zone::PERMITS].map(|t| match serde_json::from_str(t) {
            Ok(Value::Array(a)) => a,
            _ => panic!("a shipped zone file is not a JSON array"),
        })
    })
}

/// Field names of the zone files, for added keys.
const KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "kind",
    "site_id",
    "geofence",
    "coordinates",
    "expected_interval_s",
    "weighbridge",
    "bin",
    "storage",
    "truck",
    "plate",
    "plates",
    "medical",
    "volume_l",
    "capacity_kg",
    "small_storage_point",
    "axle_count",
    "origin_site_id",
    "destination_site_ids",
    "route",
    "segments",
    "half_width_m",
    "speed_limit_kmh",
    "time_windows",
    "start",
    "end",
    "utc_offset_min",
    "valid_from",
    "valid_until",
    "approved_load_kg",
    "colour",
];

const STRS: &[&str] = &[
    "",
    "x",
    "UPPER",
    "a--b",
    "-a",
    "a-",
    "truck",
    "bin",
    "storage",
    "weighbridge",
    "drone",
    "construction_site",
    "landfill",
    "Polygon",
    "LineString",
    "Point",
    "00:00",
    "23:59",
    "24:00",
    "25:00",
    "9:00",
    "21:00",
    "06:00",
    "2026-01-01",
    "2024-02-29",
    "2023-02-29",
    "2027-12-31",
    "0000-01-01",
    "9999-12-31",
    "2026-13-01",
    "2026-1-1",
    "豫AD1234",
    "豫A·D1234",
    "豫ad1234",
    "·",
    "cs-hanghai-east",
    "rp-jingnan-recycle",
    "res-jingbei",
    "truck-d1234",
    "wb-recycle-01",
    "permit-2026-0001",
];

/// A replacement value: a number at some edge, a string from the zone's
/// vocabulary, another type, or a geometry-like array.
fn value(u: &mut Unstructured<'_>) -> Value {
    match u.int_in_range(0u8..=11).unwrap_or(0) {
        0..=2 => {
            let x = *pick(
                u,
                &[
                    0.0,
                    -0.0,
                    1.0,
                    -1.0,
                    2.0,
                    6.0,
                    7.0,
                    12.0,
                    2999.0,
                    3000.0,
                    3000.0001,
                    1e-300,
                    1e308,
                    -1e308,
                    90.0,
                    90.000001,
                    -90.0,
                    180.0,
                    180.000001,
                    -180.0,
                    480.0,
                    840.0,
                    841.0,
                    -720.0,
                    -721.0,
                    65535.0,
                    4294967296.0,
                ],
            );
            serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
        }
        3 => Value::from(u.arbitrary::<i64>().unwrap_or(0)),
        4 => Value::from(u.arbitrary::<u64>().unwrap_or(0)),
        5 => {
            let x = f64_in(u, -200.0, 200.0);
            serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
        }
        6..=7 => Value::String((*pick(u, STRS)).to_owned()),
        8 => Value::String(text(u)),
        9 => (*pick(
            u,
            &[
                Value::Null,
                Value::Bool(true),
                Value::Bool(false),
                Value::Array(Vec::new()),
                Value::Object(Map::new()),
            ],
        ))
        .clone(),
        _ => {
            // Positions: [lon, lat], sometimes with too few or many numbers.
            let n = u.int_in_range(0u8..=6).unwrap_or(0);
            Value::Array(
                (0..n)
                    .map(|_| {
                        let k = *pick(u, &[2usize, 2, 2, 3, 1, 0]);
                        Value::Array(
                            (0..k)
                                .map(|i| {
                                    let x = if i == 0 {
                                        f64_in(u, 113.7, 113.9)
                                    } else {
                                        f64_in(u, 34.6, 34.8)
                                    };
                                    serde_json::Number::from_f64(x)
                                        .map_or(Value::Null, Value::Number)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            )
        }
    }
}

/// One edit somewhere inside `v`: walk down by the input's choices, then
/// replace, remove or add at the place reached.
fn edit(u: &mut Unstructured<'_>, v: &mut Value, depth: u8) {
    let descend = depth < 6 && u.ratio(3u8, 4).unwrap_or(false);
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let i = u.choose_index(m.len()).unwrap_or(0);
            let k = m.keys().nth(i).cloned().unwrap_or_default();
            match u.int_in_range(0u8..=5).unwrap_or(0) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert((*pick(u, KEYS)).to_owned(), value(u));
                }
                _ => {
                    if let Some(child) = m.get_mut(&k) {
                        edit(u, child, depth + 1);
                    }
                }
            }
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = u.choose_index(a.len()).unwrap_or(0);
            match u.int_in_range(0u8..=6).unwrap_or(0) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let dup = a[i].clone();
                    a.push(dup);
                }
                2 => a.truncate(i),
                _ => edit(u, &mut a[i], depth + 1),
            }
        }
        _ => *v = value(u),
    }
}

fn structured(u: &mut Unstructured<'_>) -> [String; 3] {
    let mut files = shipped().clone();
    for _ in 0..u.int_in_range(1u8..=6).unwrap_or(1) {
        let f = u.choose_index(3).unwrap_or(0);
        let entries = &mut files[f];
        match u.int_in_range(0u8..=11).unwrap_or(0) {
            0 if !entries.is_empty() => {
                let i = u.choose_index(entries.len()).unwrap_or(0);
                entries.remove(i);
            }
            1 if !entries.is_empty() => {
                // An entry copied, from this file or another one.
                let g = u.choose_index(3).unwrap_or(f);
                let src = &shipped()[g];
                if !src.is_empty() {
                    let i = u.choose_index(src.len()).unwrap_or(0);
                    entries.push(src[i].clone());
                }
            }
            _ if !entries.is_empty() => {
                let i = u.choose_index(entries.len()).unwrap_or(0);
                edit(u, &mut entries[i], 0);
            }
            _ => entries.push(value(u)),
        }
    }
    files.map(|a| {
        let v = Value::Array(a);
        if u.arbitrary().unwrap_or(false) {
            serde_json::to_string_pretty(&v).unwrap_or_default()
        } else {
            v.to_string()
        }
    })
}

fn raw(data: &[u8]) -> [String; 3] {
    let mut parts = data.splitn(3, |&b| b == 0xFF);
    [(); 3].map(|()| String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.split('-').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn check_ok(reg: &Registry, texts: &[String; 3]) {
    let arrays: Vec<usize> = texts
        .iter()
        .map(|t| match serde_json::from_str::<Value>(t) {
            Ok(Value::Array(a)) => a.len(),
            other => panic!("accepted a file that is not a JSON array: {other:?}"),
        })
        .collect();
    assert_eq!(
        reg.sites.len(),
        arrays[0],
        "a site entry was dropped silently"
    );
    assert_eq!(
        reg.devices.len(),
        arrays[1],
        "a device entry was dropped silently"
    );
    assert_eq!(
        reg.permits.len(),
        arrays[2],
        "a permit entry was dropped silently"
    );
    let mut plates = HashSet::new();
    for (id, s) in &reg.sites {
        assert!(valid_id(id) && *id == s.id, "site id {id:?}");
    }
    for (id, d) in &reg.devices {
        assert!(valid_id(id) && *id == d.id, "device id {id:?}");
        assert!(
            reg.sites.contains_key(&d.site_id),
            "device {id} at unknown site"
        );
        assert!(!reg.sites.contains_key(id), "device id {id} is a site id");
        if let Some(t) = &d.truck {
            let p = normalize_plate(&t.plate);
            if !p.is_empty() {
                assert!(plates.insert(p), "plate {:?} on two trucks", t.plate);
            }
        }
    }
    for (id, p) in &reg.permits {
        assert!(valid_id(id) && *id == p.id, "permit id {id:?}");
        assert!(
            reg.sites.contains_key(&p.origin_site_id),
            "permit {id} origin"
        );
        for s in &p.destination_site_ids {
            assert!(reg.sites.contains_key(s), "permit {id} destination {s}");
        }
        for plate in &p.plates {
            let ids = reg
                .permits_by_plate
                .get(&normalize_plate(plate))
                .unwrap_or_else(|| panic!("plate {plate:?} of {id} not indexed"));
            assert!(ids.contains(id), "plate {plate:?} does not lead to {id}");
        }
    }
    for (plate, ids) in &reg.permits_by_plate {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "plate {plate:?}: {ids:?}"
        );
        for id in ids {
            let p = reg.permits.get(id).expect("indexed permit exists");
            assert!(p.plates.iter().any(|q| normalize_plate(q) == *plate));
        }
    }
}

fn check_err(errs: &RegistryErrors, texts: &[String; 3]) {
    assert!(!errs.0.is_empty(), "Err without errors");
    let order = |f: DataFile| FILES.iter().position(|g| *g == f).unwrap_or(FILES.len());
    assert!(
        errs.0
            .windows(2)
            .all(|w| order(w[0].file) <= order(w[1].file)),
        "errors out of file order: {errs}"
    );
    for (k, file) in FILES.iter().enumerate() {
        let text = &texts[k];
        let mine: Vec<_> = errs.0.iter().filter(|e| e.file == *file).collect();
        match serde_json::from_str::<Value>(text) {
            Err(_) => {
                assert_eq!(mine.len(), 1, "{file}: not JSON, yet {} errors", mine.len());
                let Entry::Position { line, column } = mine[0].entry else {
                    panic!("{file}: a syntax error without its position: {}", mine[0]);
                };
                let lines = text.split('\n').count();
                assert!(
                    (1..=lines).contains(&line),
                    "{file}: line {line} of {lines}"
                );
                // serde_json counts the column in bytes (a CJK character
                // is three), so does the error.
                let width = text.split('\n').nth(line - 1).map_or(0, str::len);
                assert!(column <= width + 1, "{file}: column {column} of {width}");
            }
            Ok(Value::Array(entries)) => {
                for e in &mine {
                    match &e.entry {
                        Entry::Index(i) => {
                            let entry = entries.get(*i).unwrap_or_else(|| {
                                panic!("{file}: index {i} of {} entries: {e}", entries.len())
                            });
                            let id = entry.get("id").and_then(Value::as_str).unwrap_or("");
                            assert!(
                                id.is_empty(),
                                "{file}: entry {i} has id {id:?}, named by index: {e}"
                            );
                        }
                        Entry::Id(id) => assert!(
                            entries
                                .iter()
                                .any(|v| v.get("id").and_then(Value::as_str) == Some(id.as_str())),
                            "{file}: no entry has id {id:?}: {e}"
                        ),
                        other => panic!("{file}: an array file's error located at {other:?}: {e}"),
                    }
                }
            }
            Ok(_) => {
                assert_eq!(
                    mine.len(),
                    1,
                    "{file}: not an array, yet {} errors",
                    mine.len()
                );
                assert_eq!(mine[0].entry, Entry::File, "{}", mine[0]);
            }
        }
        for e in mine {
            let shown = e.to_string();
            // A whole-file problem reads `<file>: <problem>`; an entry's
            // `<file>: <entry>: <problem>`.
            let head = match e.entry {
                Entry::File => format!("{}: ", file.file_name()),
                _ => format!("{}: {}: ", file.file_name(), e.entry),
            };
            assert!(
                shown.starts_with(&head),
                "{shown:?} does not start with {head:?}"
            );
            assert!(shown.len() > head.len(), "{shown:?} says nothing");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let texts = if mode & 1 == 1 {
        structured(&mut Unstructured::new(rest))
    } else {
        raw(rest)
    };
    match Registry::from_json_strs(&texts[0], &texts[1], &texts[2]) {
        Ok(reg) => check_ok(&reg, &texts),
        Err(errs) => check_err(&errs, &texts),
    }
});
