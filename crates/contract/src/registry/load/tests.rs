//! Loader tests: one table row per validation error kind (each asserting the
//! message names the file and the entry), the all-at-once and no-cascade
//! behaviour, the queries, and the shipped example zone.

use std::path::Path;

use serde_json::{json, Value};

use crate::geo::{self, LatLon};
use crate::pb::DeviceKind;
use crate::registry::{DataFile, Entry, Problem, Registry, RegistryErrors, SiteType, UnitKind};

/// A small valid zone, as JSON values to mutate per test.
struct Fixture {
    sites: Value,
    devices: Value,
    permits: Value,
}

/// A closed rectangle ring `[lon, lat]`.
fn rect(w: f64, s: f64, e: f64, n: f64) -> Value {
    json!([[[w, s], [e, s], [e, n], [w, n], [w, s]]])
}

fn fixture() -> Fixture {
    Fixture {
        sites: json!([
            {"id": "cs-a", "name": "Site A", "type": "construction_site",
             "geofence": {"type": "Polygon", "coordinates": rect(113.70, 34.70, 113.71, 34.71)}},
            {"id": "rp-b", "name": "Plant B", "type": "recycling_plant",
             "geofence": {"type": "Polygon", "coordinates": rect(113.75, 34.70, 113.76, 34.71)}},
        ]),
        devices: json!([
            {"id": "wb-1", "kind": "weighbridge", "site_id": "rp-b", "expected_interval_s": 3600,
             "weighbridge": {}},
            {"id": "bin-1", "kind": "bin", "site_id": "cs-a", "expected_interval_s": 3600,
             "bin": {"medical": false, "volume_l": 240}},
            {"id": "st-1", "kind": "storage", "site_id": "cs-a", "expected_interval_s": 60,
             "storage": {"capacity_kg": 3000, "small_storage_point": true, "medical": false}},
            {"id": "truck-1", "kind": "truck", "site_id": "cs-a", "expected_interval_s": 10,
             "truck": {"plate": "豫AD1234", "registered_tare_kg": 15000, "axle_count": 4}},
        ]),
        permits: json!([
            {"id": "permit-1", "plates": ["豫AD1234"], "origin_site_id": "cs-a",
             "destination_site_ids": ["rp-b"],
             "route": {"type": "LineString",
                       "coordinates": [[113.705, 34.705], [113.73, 34.705], [113.755, 34.705]]},
             "segments": [{"half_width_m": 50, "speed_limit_kmh": 40}, {"half_width_m": 100}],
             "time_windows": [{"start": "21:00", "end": "06:00"}],
             "valid_from": "2026-01-01", "valid_until": "2027-12-31"},
        ]),
    }
}

impl Fixture {
    fn load(&self) -> Result<Registry, RegistryErrors> {
        Registry::from_json_strs(
            &self.sites.to_string(),
            &self.devices.to_string(),
            &self.permits.to_string(),
        )
    }
}

fn id(s: &str) -> Entry {
    Entry::Id(s.to_owned())
}

/// One validation error kind: a mutation of the valid fixture and the single
/// error it must produce.
struct Case {
    name: &'static str,
    mutate: fn(&mut Fixture),
    file: DataFile,
    entry: Entry,
    is_expected: fn(&Problem) -> bool,
    /// The offending value as the message must name it.
    names: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "schema: unknown field",
            mutate: |f| f.sites[0]["colour"] = json!("red"),
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::Schema { .. }),
            names: "colour",
        },
        Case {
            name: "schema: unknown device kind",
            mutate: |f| f.devices[1]["kind"] = json!("lorry"),
            file: DataFile::Devices,
            entry: id("bin-1"),
            is_expected: |p| matches!(p, Problem::Schema { .. }),
            names: "lorry",
        },
        Case {
            name: "schema: unknown site type",
            mutate: |f| f.sites[1]["type"] = json!("scrapyard"),
            file: DataFile::Sites,
            entry: id("rp-b"),
            is_expected: |p| matches!(p, Problem::Schema { .. }),
            names: "scrapyard",
        },
        Case {
            name: "schema: geofence of another geometry type",
            mutate: |f| f.sites[0]["geofence"]["type"] = json!("MultiPolygon"),
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::Schema { .. }),
            names: "MultiPolygon",
        },
        Case {
            name: "schema: entry without an id is located by index",
            mutate: |f| {
                if let Some(o) = f.devices[2].as_object_mut() {
                    o.remove("id");
                }
            },
            file: DataFile::Devices,
            entry: Entry::Index(2),
            is_expected: |p| matches!(p, Problem::Schema { .. }),
            names: "missing field `id`",
        },
        Case {
            name: "bad id",
            mutate: |f| f.devices[0]["id"] = json!("WB/1"),
            file: DataFile::Devices,
            entry: id("WB/1"),
            is_expected: |p| matches!(p, Problem::BadId { id } if id == "WB/1"),
            names: "\"WB/1\"",
        },
        Case {
            name: "duplicate site id",
            mutate: |f| {
                let copy = f.sites[0].clone();
                if let Some(a) = f.sites.as_array_mut() {
                    a.push(copy);
                }
            },
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::DuplicateId { first_index: 0, .. }),
            names: "\"cs-a\"",
        },
        Case {
            name: "duplicate device id",
            mutate: |f| f.devices[2]["id"] = json!("bin-1"),
            file: DataFile::Devices,
            entry: id("bin-1"),
            is_expected: |p| matches!(p, Problem::DuplicateId { first_index: 1, .. }),
            names: "\"bin-1\"",
        },
        Case {
            name: "duplicate permit id",
            mutate: |f| {
                let copy = f.permits[0].clone();
                if let Some(a) = f.permits.as_array_mut() {
                    a.push(copy);
                }
            },
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::DuplicateId { first_index: 0, .. }),
            names: "\"permit-1\"",
        },
        Case {
            name: "device id equal to a site id",
            mutate: |f| f.devices[0]["id"] = json!("rp-b"),
            file: DataFile::Devices,
            entry: id("rp-b"),
            is_expected: |p| matches!(p, Problem::IdCollidesWithSite { .. }),
            names: "\"rp-b\"",
        },
        Case {
            name: "device at an unknown site",
            mutate: |f| f.devices[1]["site_id"] = json!("res-nowhere"),
            file: DataFile::Devices,
            entry: id("bin-1"),
            is_expected: |p| matches!(p, Problem::UnknownSite { field, .. } if field == "site_id"),
            names: "\"res-nowhere\"",
        },
        Case {
            name: "permit from an unknown origin",
            mutate: |f| f.permits[0]["origin_site_id"] = json!("cs-nowhere"),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::UnknownSite { field, .. } if field == "origin_site_id"),
            names: "\"cs-nowhere\"",
        },
        Case {
            name: "permit to an unknown destination",
            mutate: |f| f.permits[0]["destination_site_ids"] = json!(["rp-b", "lf-nowhere"]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::UnknownSite { field, .. } if field == "destination_site_ids[1]"),
            names: "\"lf-nowhere\"",
        },
        Case {
            name: "storage device without a storage spec",
            mutate: |f| {
                if let Some(o) = f.devices[2].as_object_mut() {
                    o.remove("storage");
                }
            },
            file: DataFile::Devices,
            entry: id("st-1"),
            is_expected: |p| matches!(p, Problem::MissingSpec { kind: "storage" }),
            names: "\"storage\"",
        },
        Case {
            name: "bin device carrying a truck spec",
            mutate: |f| {
                f.devices[1]["truck"] =
                    json!({"plate": "豫AD9999", "registered_tare_kg": 15000, "axle_count": 4});
            },
            file: DataFile::Devices,
            entry: id("bin-1"),
            is_expected: |p| {
                matches!(
                    p,
                    Problem::UnexpectedSpec {
                        kind: "bin",
                        spec: "truck"
                    }
                )
            },
            names: "\"truck\"",
        },
        Case {
            name: "storage capacity of zero",
            mutate: |f| f.devices[2]["storage"]["capacity_kg"] = json!(0),
            file: DataFile::Devices,
            entry: id("st-1"),
            is_expected: |p| matches!(p, Problem::NotPositive { field, .. } if field == "storage.capacity_kg"),
            names: "is 0 kg",
        },
        Case {
            name: "small storage point above 3 t",
            mutate: |f| f.devices[2]["storage"]["capacity_kg"] = json!(3500),
            file: DataFile::Devices,
            entry: id("st-1"),
            is_expected: |p| matches!(p, Problem::SmallStoragePointOverLimit { .. }),
            names: "3500 kg",
        },
        Case {
            name: "bin volume of zero",
            mutate: |f| f.devices[1]["bin"]["volume_l"] = json!(0),
            file: DataFile::Devices,
            entry: id("bin-1"),
            is_expected: |p| matches!(p, Problem::NotPositive { field, .. } if field == "bin.volume_l"),
            names: "bin.volume_l is 0 L",
        },
        Case {
            name: "expected interval of zero",
            mutate: |f| f.devices[0]["expected_interval_s"] = json!(0),
            file: DataFile::Devices,
            entry: id("wb-1"),
            is_expected: |p| matches!(p, Problem::NotPositive { field, .. } if field == "expected_interval_s"),
            names: "expected_interval_s is 0 s",
        },
        Case {
            name: "negative truck tare",
            mutate: |f| f.devices[3]["truck"]["registered_tare_kg"] = json!(-1),
            file: DataFile::Devices,
            entry: id("truck-1"),
            is_expected: |p| matches!(p, Problem::NotPositive { field, .. } if field == "truck.registered_tare_kg"),
            names: "-1 kg",
        },
        Case {
            name: "axle count of seven",
            mutate: |f| f.devices[3]["truck"]["axle_count"] = json!(7),
            file: DataFile::Devices,
            entry: id("truck-1"),
            is_expected: |p| matches!(p, Problem::AxleCount { value: 7 }),
            names: "axle_count is 7",
        },
        Case {
            name: "axle count of one",
            mutate: |f| f.devices[3]["truck"]["axle_count"] = json!(1),
            file: DataFile::Devices,
            entry: id("truck-1"),
            is_expected: |p| matches!(p, Problem::AxleCount { value: 1 }),
            names: "axle_count is 1",
        },
        Case {
            name: "blank truck plate",
            mutate: |f| f.devices[3]["truck"]["plate"] = json!(" · "),
            file: DataFile::Devices,
            entry: id("truck-1"),
            is_expected: |p| matches!(p, Problem::BlankPlate { field, .. } if field == "truck.plate"),
            names: "\" · \"",
        },
        Case {
            name: "two trucks with one plate",
            mutate: |f| {
                let mut second = f.devices[3].clone();
                second["id"] = json!("truck-2");
                second["truck"]["plate"] = json!("豫A·D1234");
                if let Some(a) = f.devices.as_array_mut() {
                    a.push(second);
                }
            },
            file: DataFile::Devices,
            entry: id("truck-2"),
            is_expected: |p| matches!(p, Problem::DuplicatePlate { .. }),
            names: "\"truck-1\"",
        },
        Case {
            name: "terminal phone number with a letter",
            mutate: |f| f.devices[3]["truck"]["terminal_phone"] = json!("01391234567X"),
            file: DataFile::Devices,
            entry: id("truck-1"),
            is_expected: |p| matches!(p, Problem::BadTerminalPhone { .. }),
            names: "\"01391234567X\"",
        },
        Case {
            name: "terminal phone number of 21 digits",
            mutate: |f| f.devices[3]["truck"]["terminal_phone"] = json!("123456789012345678901"),
            file: DataFile::Devices,
            entry: id("truck-1"),
            is_expected: |p| matches!(p, Problem::BadTerminalPhone { .. }),
            names: "\"123456789012345678901\"",
        },
        Case {
            name: "two trucks with one terminal phone number, written with other leading zeros",
            mutate: |f| {
                f.devices[3]["truck"]["terminal_phone"] = json!("013912345678");
                let mut second = f.devices[3].clone();
                second["id"] = json!("truck-2");
                second["truck"]["plate"] = json!("豫AD9999");
                second["truck"]["terminal_phone"] = json!("00000000013912345678");
                if let Some(a) = f.devices.as_array_mut() {
                    a.push(second);
                }
            },
            file: DataFile::Devices,
            entry: id("truck-2"),
            is_expected: |p| matches!(p, Problem::DuplicateTerminalPhone { .. }),
            names: "\"truck-1\"",
        },
        Case {
            name: "empty site name",
            mutate: |f| f.sites[0]["name"] = json!("  "),
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::Empty { field: "name" }),
            names: "name is empty",
        },
        Case {
            name: "polygon with two corners",
            mutate: |f| {
                f.sites[0]["geofence"]["coordinates"] =
                    json!([[[113.70, 34.70], [113.71, 34.71], [113.70, 34.70]]]);
            },
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::PolygonTooFewPoints { count: 2 }),
            names: "2 corner(s)",
        },
        Case {
            name: "polygon not closed",
            mutate: |f| {
                f.sites[0]["geofence"]["coordinates"] = json!([[
                    [113.70, 34.70],
                    [113.71, 34.70],
                    [113.71, 34.71],
                    [113.70, 34.71]
                ]]);
            },
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::PolygonNotClosed { .. }),
            names: "[113.7, 34.71]",
        },
        Case {
            name: "polygon with a hole",
            mutate: |f| {
                f.sites[0]["geofence"]["coordinates"] = json!([
                    [
                        [113.70, 34.70],
                        [113.71, 34.70],
                        [113.71, 34.71],
                        [113.70, 34.71],
                        [113.70, 34.70]
                    ],
                    [
                        [113.702, 34.702],
                        [113.703, 34.702],
                        [113.703, 34.703],
                        [113.702, 34.702]
                    ],
                ]);
            },
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::PolygonHoles { holes: 1 }),
            names: "1 inner ring",
        },
        Case {
            name: "polygon of collinear corners",
            mutate: |f| {
                f.sites[0]["geofence"]["coordinates"] = json!([[
                    [113.70, 34.70],
                    [113.71, 34.70],
                    [113.72, 34.70],
                    [113.70, 34.70]
                ]]);
            },
            file: DataFile::Sites,
            entry: id("cs-a"),
            is_expected: |p| matches!(p, Problem::PolygonDegenerate { .. }),
            names: "0.0 m²",
        },
        Case {
            name: "geofence position in [lat, lon] order",
            mutate: |f| f.sites[1]["geofence"]["coordinates"][0][2] = json!([34.71, 113.76]),
            file: DataFile::Sites,
            entry: id("rp-b"),
            is_expected: |p| {
                matches!(
                    p,
                    Problem::CoordinateOutOfRange {
                        field: "geofence",
                        index: 2,
                        ..
                    }
                )
            },
            names: "position 2 [34.71, 113.76]",
        },
        Case {
            name: "route position outside the world",
            mutate: |f| f.permits[0]["route"]["coordinates"][1] = json!([213.73, 34.705]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| {
                matches!(
                    p,
                    Problem::CoordinateOutOfRange {
                        field: "route",
                        index: 1,
                        ..
                    }
                )
            },
            names: "213.73",
        },
        Case {
            name: "position with one number",
            mutate: |f| f.permits[0]["route"]["coordinates"][2] = json!([113.755]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| {
                matches!(
                    p,
                    Problem::BadPosition {
                        field: "route",
                        index: 2,
                        len: 1
                    }
                )
            },
            names: "position 2 has 1 numbers",
        },
        Case {
            name: "route with one position",
            mutate: |f| f.permits[0]["route"]["coordinates"] = json!([[113.705, 34.705]]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::LineStringTooShort { count: 1 }),
            names: "1 position(s)",
        },
        Case {
            name: "segment count not matching the route",
            mutate: |f| f.permits[0]["segments"] = json!([{"half_width_m": 50}]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| {
                matches!(
                    p,
                    Problem::SegmentCountMismatch {
                        segments: 1,
                        points: 3,
                        expected: 2
                    }
                )
            },
            names: "segments has 1 entries",
        },
        Case {
            name: "zero half-width",
            mutate: |f| f.permits[0]["segments"][1]["half_width_m"] = json!(0),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::NotPositive { field, .. } if field == "segments[1].half_width_m"),
            names: "segments[1].half_width_m is 0 m",
        },
        Case {
            name: "negative speed limit",
            mutate: |f| f.permits[0]["segments"][0]["speed_limit_kmh"] = json!(-40),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::NotPositive { field, .. } if field == "segments[0].speed_limit_kmh"),
            names: "-40 km/h",
        },
        Case {
            name: "time 25:00",
            mutate: |f| f.permits[0]["time_windows"][0]["start"] = json!("25:00"),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::BadTime { field, .. } if field == "time_windows[0].start"),
            names: "\"25:00\"",
        },
        Case {
            name: "window of a single minute",
            mutate: |f| f.permits[0]["time_windows"] = json!([{"start": "06:00", "end": "06:00"}]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::SingleMinuteWindow { index: 0, .. }),
            names: "\"06:00-06:00\"",
        },
        Case {
            name: "no time windows",
            mutate: |f| f.permits[0]["time_windows"] = json!([]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::NoTimeWindows),
            names: "time_windows is empty",
        },
        Case {
            name: "impossible date",
            mutate: |f| f.permits[0]["valid_from"] = json!("2026-02-30"),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| {
                matches!(
                    p,
                    Problem::BadDate {
                        field: "valid_from",
                        ..
                    }
                )
            },
            names: "\"2026-02-30\"",
        },
        Case {
            name: "valid_until before valid_from",
            mutate: |f| f.permits[0]["valid_until"] = json!("2025-12-31"),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::DateRangeReversed { .. }),
            names: "valid_until 2025-12-31 is before valid_from 2026-01-01",
        },
        Case {
            name: "utc offset beyond any zone",
            mutate: |f| f.permits[0]["utc_offset_min"] = json!(900),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::BadUtcOffset { value: 900 }),
            names: "utc_offset_min is 900",
        },
        Case {
            name: "no plates",
            mutate: |f| f.permits[0]["plates"] = json!([]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::NoPlates),
            names: "plates is empty",
        },
        Case {
            name: "blank plate",
            mutate: |f| f.permits[0]["plates"] = json!(["豫AD1234", ""]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::BlankPlate { field, .. } if field == "plates[1]"),
            names: "plates[1] \"\"",
        },
        Case {
            name: "plate listed twice",
            mutate: |f| f.permits[0]["plates"] = json!(["豫AD1234", "豫a d1234"]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::DuplicatePlate { .. }),
            names: "\"豫a d1234\"",
        },
        Case {
            name: "no destinations",
            mutate: |f| f.permits[0]["destination_site_ids"] = json!([]),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::NoDestinations),
            names: "destination_site_ids is empty",
        },
        Case {
            name: "non-positive approved load",
            mutate: |f| f.permits[0]["approved_load_kg"] = json!(-5),
            file: DataFile::Permits,
            entry: id("permit-1"),
            is_expected: |p| matches!(p, Problem::NotPositive { field, .. } if field == "approved_load_kg"),
            names: "approved_load_kg is -5 kg",
        },
        Case {
            name: "top level not an array",
            mutate: |f| f.devices = json!({"devices": []}),
            file: DataFile::Devices,
            entry: Entry::File,
            is_expected: |p| matches!(p, Problem::NotAnArray { found: "an object" }),
            names: "an object",
        },
    ]
}

#[test]
fn a_truck_is_found_by_its_terminal_phone_number_in_either_header_width() {
    let mut f = fixture();
    f.devices[3]["truck"]["terminal_phone"] = json!("013912345678");
    let reg = f.load().unwrap();
    for asked in ["013912345678", "00000000013912345678", "13912345678"] {
        assert_eq!(
            reg.truck_by_terminal_phone(asked).map(|d| d.id.as_str()),
            Some("truck-1"),
            "{asked}"
        );
    }
    for unknown in ["013912345679", "", "abc", "0"] {
        assert!(reg.truck_by_terminal_phone(unknown).is_none(), "{unknown}");
    }
}

#[test]
fn the_fixture_is_valid() {
    let reg = fixture().load();
    assert!(
        reg.is_ok(),
        "{}",
        reg.err().map(|e| e.to_string()).unwrap_or_default()
    );
}

#[test]
fn each_validation_error_names_its_file_entry_and_value() {
    for case in cases() {
        let mut f = fixture();
        (case.mutate)(&mut f);
        let errors = match f.load() {
            Ok(_) => panic!("{}: loaded without error", case.name),
            Err(e) => e,
        };
        assert_eq!(
            errors.0.len(),
            1,
            "{}: want one error, got:\n{errors}",
            case.name
        );
        let e = &errors.0[0];
        assert_eq!(e.file, case.file, "{}: {e}", case.name);
        assert_eq!(e.entry, case.entry, "{}: {e}", case.name);
        assert!(
            (case.is_expected)(&e.problem),
            "{}: unexpected problem {:?}",
            case.name,
            e.problem
        );
        let text = e.to_string();
        assert!(
            text.starts_with(case.file.file_name()),
            "{}: {text}",
            case.name
        );
        if case.entry != Entry::File {
            assert!(
                text.contains(&format!(": {}: ", case.entry)),
                "{}: {text}",
                case.name
            );
        }
        assert!(
            text.contains(case.names),
            "{}: {text:?} does not name {:?}",
            case.name,
            case.names
        );
    }
}

#[test]
fn a_syntax_error_is_located_by_line_and_column() {
    let sites = "[\n  {\"id\": \"cs-a\",}\n]";
    let Err(errors) = Registry::from_json_strs(sites, "[]", "[]") else {
        panic!("loaded broken JSON")
    };
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert!(matches!(e.entry, Entry::Position { line: 2, .. }), "{e}");
    assert!(matches!(e.problem, Problem::Syntax { .. }), "{e}");
    let text = e.to_string();
    assert!(text.starts_with("sites.json: line 2 column "), "{text}");
    assert!(
        !text.contains(" at line "),
        "position printed twice: {text}"
    );
}

#[test]
fn every_error_in_every_file_is_reported_at_once_in_file_order() {
    let mut f = fixture();
    f.permits[0]["valid_from"] = json!("2026-13-01");
    f.permits[0]["time_windows"][0]["end"] = json!("24:00");
    f.devices[3]["truck"]["axle_count"] = json!(9);
    f.devices[2]["storage"]["capacity_kg"] = json!(-3);
    f.sites[1]["name"] = json!("");
    let Err(errors) = f.load() else {
        panic!("loaded a broken zone")
    };
    let files: Vec<DataFile> = errors.0.iter().map(|e| e.file).collect();
    assert_eq!(
        files,
        [
            DataFile::Sites,
            DataFile::Devices,
            DataFile::Devices,
            DataFile::Permits,
            DataFile::Permits
        ],
        "{errors}"
    );
    assert_eq!(errors.to_string().lines().count(), 5, "{errors}");
}

#[test]
fn a_broken_sites_file_does_not_cascade_into_unknown_site_errors() {
    let f = fixture();
    let result = Registry::from_json_strs("[", &f.devices.to_string(), &f.permits.to_string());
    let Err(errors) = result else {
        panic!("loaded broken JSON")
    };
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].file, DataFile::Sites);
}

#[test]
fn an_invalid_site_still_resolves_references_to_it() {
    let mut f = fixture();
    f.sites[1]["geofence"]["coordinates"] =
        json!([[[113.75, 34.70], [113.76, 34.70], [113.75, 34.70]]]);
    let Err(errors) = f.load() else {
        panic!("loaded a broken site")
    };
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].entry, id("rp-b"));
}

#[test]
fn an_error_reads_as_file_entry_and_problem_on_one_line() {
    let mut f = fixture();
    f.devices[1]["truck"] =
        json!({"plate": "豫AD9999", "registered_tare_kg": 15000, "axle_count": 4});
    let Err(errors) = f.load() else {
        panic!("loaded a mismatched spec")
    };
    assert_eq!(
        errors.to_string(),
        "devices.json: bin-1: kind \"bin\" must not carry a \"truck\" spec block; remove it or change the kind"
    );
}

#[test]
fn a_missing_directory_reports_each_file_by_path() {
    let dir = Path::new("/nonexistent/wastewatch-zone");
    let Err(errors) = Registry::load_dir(dir) else {
        panic!("loaded a missing zone")
    };
    assert_eq!(errors.0.len(), 3, "{errors}");
    for (e, file) in errors.0.iter().zip(DataFile::ALL) {
        assert_eq!(e.file, file);
        assert_eq!(e.entry, Entry::File);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "{file}: cannot read /nonexistent/wastewatch-zone/{file}"
            )),
            "{text}"
        );
    }
}

#[test]
fn load_dir_reads_the_three_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    for (name, v) in [
        ("sites.json", &f.sites),
        ("devices.json", &f.devices),
        ("permits.json", &f.permits),
    ] {
        std::fs::write(dir.path().join(name), v.to_string()).unwrap();
    }
    let reg = Registry::load_dir(dir.path()).unwrap();
    assert_eq!(
        (reg.sites.len(), reg.devices.len(), reg.permits.len()),
        (2, 4, 1)
    );
}

/// 2026-06-01 00:00 China Standard Time (2026-05-31T16:00Z), Unix ms.
const JUNE_1_2026_CST_MS: i64 = 1_780_243_200_000;

#[test]
fn active_permits_are_found_by_any_written_form_of_the_plate() {
    let reg = fixture().load().unwrap();
    for plate in ["豫AD1234", "豫A·D1234", "豫a d1234"] {
        let ids: Vec<&str> = reg
            .active_permits_for_plate(plate, JUNE_1_2026_CST_MS)
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(ids, ["permit-1"], "{plate}");
    }
    assert!(reg
        .active_permits_for_plate("豫AD0000", JUNE_1_2026_CST_MS)
        .is_empty());
    assert!(reg
        .truck_by_plate("豫A·D1234")
        .is_some_and(|d| d.id == "truck-1"));
    let permit = reg.permit("permit-1").unwrap();
    for plate in &permit.plates {
        for written in [plate.clone(), plate.to_lowercase(), format!(" {plate} ")] {
            assert!(permit.covers_plate(&written), "{written}");
        }
    }
    assert!(!permit.covers_plate("豫AD0000"));
    assert!(!permit.covers_plate(""));
}

#[test]
fn a_permit_is_active_from_local_midnight_of_its_first_day_to_the_end_of_its_last() {
    let reg = fixture().load().unwrap();
    let p = reg.permit("permit-1").unwrap();
    // 2026-01-01 00:00 CST is 2025-12-31T16:00Z.
    let start_ms = 1_767_225_600_000 - 8 * 3_600_000;
    assert!(!p.is_active_at(start_ms - 1));
    assert!(p.is_active_at(start_ms));
    // 2028-01-01 00:00 CST.
    let end_ms = 1_830_297_600_000 - 8 * 3_600_000;
    assert!(p.is_active_at(end_ms - 1));
    assert!(!p.is_active_at(end_ms));
}

#[test]
fn the_time_window_is_applied_in_local_time() {
    let reg = fixture().load().unwrap();
    let p = reg.permit("permit-1").unwrap();
    let at = |h: i64, m: i64| JUNE_1_2026_CST_MS + (h * 60 + m) * 60_000;
    assert!(p.in_time_window(at(21, 0)));
    assert!(p.in_time_window(at(2, 30)));
    assert!(p.in_time_window(at(6, 0)));
    assert!(!p.in_time_window(at(6, 1)));
    assert!(!p.in_time_window(at(12, 0)));
    assert!(!p.in_time_window(at(20, 59)));
}

#[test]
fn corridor_distance_uses_the_segment_the_point_is_deepest_in() {
    let reg = fixture().load().unwrap();
    let p = reg.permit("permit-1").unwrap();
    let (corner, end) = (p.route.points()[1], p.route.points()[2]);
    // 70 m south of the 50 m segment's end but only 75 m from the 100 m
    // segment's start: inside the corridor via segment 1.
    let q = corner.offset_m(-70.0, 25.0);
    let (d, half_width, seg) = p.corridor_distance(q);
    assert_eq!(seg, 1);
    assert_eq!(half_width, 100.0);
    assert!(d <= half_width);
    // Far off the first segment: outside, attributed to it.
    let q = p.route.points()[0].offset_m(400.0, 500.0);
    let (d, half_width, seg) = p.corridor_distance(q);
    assert_eq!((seg, half_width), (0, 50.0));
    assert!((d - 400.0).abs() < 1.0, "{d}");
    assert!(p.corridor_distance(end).0 < 1e-6);
}

#[test]
fn site_containing_prefers_the_smallest_overlapping_site() {
    let mut f = fixture();
    if let Some(a) = f.sites.as_array_mut() {
        a.push(json!({"id": "cp-inner", "name": "Point inside A", "type": "small_business_collection_point",
                      "geofence": {"type": "Polygon", "coordinates": rect(113.704, 34.704, 113.706, 34.706)}}));
    }
    let reg = f.load().unwrap();
    let id_at = |lat, lon| {
        reg.site_containing(LatLon::new(lat, lon))
            .map(|s| s.id.as_str())
    };
    assert_eq!(id_at(34.705, 113.705), Some("cp-inner"));
    assert_eq!(id_at(34.702, 113.702), Some("cs-a"));
    assert_eq!(id_at(34.705, 113.755), Some("rp-b"));
    assert_eq!(id_at(34.705, 113.730), None);
    assert!(Registry::empty()
        .site_containing(LatLon::new(34.705, 113.705))
        .is_none());
}

#[test]
fn a_site_centre_is_the_middle_of_its_geofence() {
    let reg = fixture().load().unwrap();
    let site = reg.site("cs-a").unwrap();
    assert_eq!(site.geofence.len(), 4, "closing position dropped");
    assert!(geo::haversine_m(site.centre, LatLon::new(34.705, 113.705)) < 1.0);
}

// ---- the shipped example zone ----

fn shipped_zone() -> Registry {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zone");
    match Registry::load_dir(&dir) {
        Ok(reg) => reg,
        Err(errors) => panic!("zone/ has errors:\n{errors}"),
    }
}

#[test]
fn the_shipped_zone_loads_without_errors_and_with_the_expected_counts() {
    let reg = shipped_zone();
    assert_eq!(reg.sites.len(), 16);
    assert_eq!(reg.devices.len(), 37);
    assert_eq!(reg.permits.len(), 5);
    let count = |kind| reg.devices.values().filter(|d| d.kind == kind).count();
    assert_eq!(count(DeviceKind::Weighbridge), 11);
    assert_eq!(count(DeviceKind::Bin), 12);
    assert_eq!(count(DeviceKind::Storage), 6);
    assert_eq!(count(DeviceKind::Truck), 8);
    let sites_of = |t| reg.sites.values().filter(|s| s.site_type == t).count();
    assert_eq!(sites_of(SiteType::ConstructionSite), 2);
    assert_eq!(sites_of(SiteType::Factory), 2);
    assert_eq!(sites_of(SiteType::Residential), 2);
    let units_of = |k| reg.units.values().filter(|u| u.kind == k).count();
    assert_eq!(units_of(UnitKind::Laboratory), 5);
    assert_eq!(units_of(UnitKind::SmallBusiness), 6);
    assert_eq!(units_of(UnitKind::Medical), 3);
}

#[test]
fn a_unit_at_an_unknown_site_or_without_a_name_is_reported_and_a_zone_without_units_has_none() {
    let sites = r#"[{"id":"s","name":"s","type":"laboratory","geofence":{"type":"Polygon","coordinates":[[[113.7,34.7],[113.71,34.7],[113.71,34.71],[113.7,34.7]]]}}]"#;
    let reg = Registry::from_json_strs(sites, "[]", "[]").unwrap();
    assert!(reg.units.is_empty());
    let err = Registry::from_json_strs_with_units(
        sites,
        "[]",
        "[]",
        r#"[{"id":"u-1","name":"lab","kind":"laboratory","site_id":"nowhere"},{"id":"u-2","name":" ","kind":"small_business","site_id":"s"},{"id":"u-3","name":"x","kind":"shop","site_id":"s"}]"#,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("units.json: u-1: site_id \"nowhere\""),
        "{text}"
    );
    assert!(text.contains("units.json: u-2:"), "{text}");
    assert!(text.contains("units.json: u-3:"), "{text}");
}

#[test]
fn the_shipped_zone_lies_in_the_zhengzhou_etdz() {
    let reg = shipped_zone();
    let in_zone =
        |p: LatLon| (34.68..=34.78).contains(&p.lat) && (113.68..=113.85).contains(&p.lon);
    for site in reg.sites.values() {
        assert!(site.geofence.iter().all(|&p| in_zone(p)), "{}", site.id);
        assert!(site.contains(site.centre), "{}", site.id);
    }
    for permit in reg.permits.values() {
        assert!(
            permit.route.points().iter().all(|&p| in_zone(p)),
            "{}",
            permit.id
        );
    }
}

#[test]
fn the_shipped_zone_has_no_overlapping_sites() {
    let reg = shipped_zone();
    for a in reg.sites.values() {
        for b in reg.sites.values().filter(|b| b.id != a.id) {
            assert!(
                !a.geofence.iter().any(|&p| b.contains(p)),
                "{} overlaps {}",
                a.id,
                b.id
            );
        }
    }
}

#[test]
fn each_shipped_route_runs_from_its_origin_into_an_approved_destination() {
    let reg = shipped_zone();
    for p in reg.permits.values() {
        let (points, n) = (p.route.points(), p.route.points().len());
        assert!((8..=20).contains(&n), "{}: {n} vertices", p.id);
        assert!(
            reg.site(&p.origin_site_id)
                .is_some_and(|s| s.contains(points[0])),
            "{}",
            p.id
        );
        let last = points[n - 1];
        assert!(
            p.destination_site_ids
                .iter()
                .any(|d| reg.site(d).is_some_and(|s| s.contains(last))),
            "{}",
            p.id
        );
        // Every segment under 10 km (the projection's validity), and the road
        // grid turns at right angles: each segment runs north-south or east-west.
        for (a, b) in p.route.segments() {
            assert!(geo::haversine_m(a, b) < 10_000.0, "{}", p.id);
            assert!(
                a.lat == b.lat || a.lon == b.lon,
                "{}: diagonal segment {a:?}-{b:?}",
                p.id
            );
        }
        assert_eq!(
            reg.site(&p.origin_site_id).map(|s| s.site_type),
            Some(SiteType::ConstructionSite)
        );
        for d in &p.destination_site_ids {
            let t = reg.site(d).map(|s| s.site_type);
            assert!(
                matches!(
                    t,
                    Some(SiteType::RecyclingPlant | SiteType::Landfill | SiteType::Backfill)
                ),
                "{}: {d} is {t:?}",
                p.id
            );
        }
    }
}

#[test]
fn every_shipped_truck_is_on_an_active_permit_and_sits_at_its_origin() {
    let reg = shipped_zone();
    for truck in reg.devices.values().filter(|d| d.kind == DeviceKind::Truck) {
        let plate = &truck.truck.as_ref().unwrap().plate;
        let permits = reg.active_permits_for_plate(plate, JUNE_1_2026_CST_MS);
        assert!(!permits.is_empty(), "{} ({plate}) has no permit", truck.id);
        assert!(
            permits.iter().all(|p| p.origin_site_id == truck.site_id),
            "{}",
            truck.id
        );
    }
}

#[test]
fn shipped_medical_devices_are_at_the_hospital_and_only_there() {
    let reg = shipped_zone();
    for d in reg.devices.values() {
        let medical = d.bin.as_ref().is_some_and(|b| b.medical)
            || d.storage.as_ref().is_some_and(|s| s.medical);
        let at_hospital = reg.site(&d.site_id).map(|s| s.site_type) == Some(SiteType::Hospital);
        if d.kind == DeviceKind::Bin || d.kind == DeviceKind::Storage {
            assert_eq!(medical, at_hospital, "{}", d.id);
        }
    }
}
