//! What can be wrong with a zone's data files, and where.
//!
//! Loading never stops at the first problem: every error of every file is
//! collected into [`RegistryErrors`], so an operator fixes a zone in one pass.
//! Each error names the file, the entry (its id, or its index when it has
//! none, or the line and column of a JSON syntax error) and the offending
//! value, and says what to do; its `Display` is one line
//! `<file>: <entry>: <problem>`.

use std::fmt;

use super::calendar::CivilDate;

/// The data files of a zone directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataFile {
    /// `sites.json`: sites and their geofences.
    Sites,
    /// `devices.json`: weighbridges, bins, storage points and trucks.
    Devices,
    /// `permits.json`: construction-waste transport permits.
    Permits,
    /// `units.json` (optional): registered laboratories, small businesses
    /// and medical institutions.
    Units,
    /// `sparkplug.json` (optional): Sparkplug B edge nodes and devices
    /// mapped to wastewatch devices (docs/PROTOCOLS.md).
    Sparkplug,
}

impl DataFile {
    /// All files, in load order (devices and permits refer to sites).
    pub const ALL: [DataFile; 3] = [DataFile::Sites, DataFile::Devices, DataFile::Permits];

    /// The file name inside the zone directory.
    pub const fn file_name(self) -> &'static str {
        match self {
            DataFile::Sites => "sites.json",
            DataFile::Devices => "devices.json",
            DataFile::Permits => "permits.json",
            DataFile::Units => "units.json",
            DataFile::Sparkplug => "sparkplug.json",
        }
    }
}

impl fmt::Display for DataFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// Which part of a file an error is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// The file as a whole (unreadable, not an array).
    File,
    /// A place in the text, for JSON syntax errors; 1-based like editors.
    Position {
        /// Line, counting from 1.
        line: usize,
        /// Column (character), counting from 1.
        column: usize,
    },
    /// An array entry without a usable `id`, by 0-based index.
    Index(usize),
    /// An entry by its `id`.
    Id(String),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::File => f.write_str("file"),
            Entry::Position { line, column } => write!(f, "line {line} column {column}"),
            Entry::Index(i) => write!(f, "entry at index {i}"),
            Entry::Id(id) => f.write_str(id),
        }
    }
}

/// One problem in one entry. Messages are lowercase, name the offending
/// value and unit, and say what to do.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}; every zone needs sites.json, devices.json and permits.json (use [] when empty)")]
    Unreadable {
        /// The path tried.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The file is not valid JSON.
    #[error("invalid JSON: {message}; fix the syntax there")]
    Syntax {
        /// The parser's message, without its position (that is the entry).
        message: String,
    },
    /// The top level is valid JSON but not an array of entries.
    #[error("the top level is {found}; it must be a JSON array of entries, [ {{...}}, ... ]")]
    NotAnArray {
        /// The JSON type found instead ("an object", "a string", ...).
        found: &'static str,
    },
    /// An entry does not match the schema (unknown or missing field, wrong
    /// type, unknown enum value).
    #[error("{message}; see zone/README.md for the format")]
    Schema {
        /// The deserialiser's message, naming the field or value.
        message: String,
    },
    /// An id that is not lowercase kebab-case.
    #[error("id {id:?} is not a valid id; use 1 to 64 lowercase ASCII letters, digits and single '-' (it appears in MQTT topics and InfluxDB tags)")]
    BadId {
        /// The id as written.
        id: String,
    },
    /// An id already used by an earlier entry of the same file.
    #[error("duplicate id {id:?}, first used by the entry at index {first_index}; ids must be unique, rename one")]
    DuplicateId {
        /// The repeated id.
        id: String,
        /// Index of the first entry with this id.
        first_index: usize,
    },
    /// A device id that equals a site id.
    #[error(
        "device id {id:?} is also a site id; device and site ids must differ, rename the device"
    )]
    IdCollidesWithSite {
        /// The shared id.
        id: String,
    },
    /// A field that names a site not in `sites.json`.
    #[error("{field} {site_id:?} is not a site in sites.json; add the site or fix the id")]
    UnknownSite {
        /// The referring field, e.g. `site_id`, `destination_site_ids[1]`.
        field: String,
        /// The unknown site id.
        site_id: String,
    },
    /// A required text field is empty.
    #[error("{field} is empty; give a value")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A device lacks the spec block its kind needs.
    #[error("kind {kind:?} needs a \"{kind}\" spec block; add \"{kind}\": {{...}}")]
    MissingSpec {
        /// The device kind (also the name of the spec block).
        kind: &'static str,
    },
    /// A device carries a spec block of another kind.
    #[error("kind {kind:?} must not carry a \"{spec}\" spec block; remove it or change the kind")]
    UnexpectedSpec {
        /// The device kind.
        kind: &'static str,
        /// The spec block that does not belong.
        spec: &'static str,
    },
    /// A number that must be positive is zero, negative or not finite.
    #[error("{field} is {value} {unit}; it must be a finite number greater than 0")]
    NotPositive {
        /// The field, with its path, e.g. `segments[3].half_width_m`.
        field: String,
        /// The value as given.
        value: f64,
        /// Unit of the field, e.g. "kg".
        unit: &'static str,
    },
    /// A small storage point permitted above the 3 t limit.
    #[error("storage.capacity_kg is {value} kg but a small storage point (贮存点) may hold at most 3000 kg (GB 18597-2023 §8.3.5); lower it or set small_storage_point to false")]
    SmallStoragePointOverLimit {
        /// The capacity given, kg.
        value: f64,
    },
    /// An axle count outside what GB 1589 knows for trucks.
    #[error("truck.axle_count is {value}; it must be 2 to 6 (GB 1589 legal gross weights)")]
    AxleCount {
        /// The axle count given.
        value: u8,
    },
    /// The same plate twice within one permit, or on two truck terminals.
    #[error("plate {plate:?} is {context}; each vehicle must appear once")]
    DuplicatePlate {
        /// The plate as written.
        plate: String,
        /// Where else it appears, e.g. `also the plate of device "truck-d1"`.
        context: String,
    },
    /// A position that is not `[lon, lat]` or `[lon, lat, alt]`.
    #[error("{field} position {index} has {len} numbers; a GeoJSON position is [lon, lat] or [lon, lat, alt]")]
    BadPosition {
        /// The geometry field.
        field: &'static str,
        /// Index of the position in its ring or line.
        index: usize,
        /// How many numbers it has.
        len: usize,
    },
    /// A position outside the world.
    #[error("{field} position {index} [{lon}, {lat}] is outside the world (lon -180..180, lat -90..90); GeoJSON order is [lon, lat]")]
    CoordinateOutOfRange {
        /// The geometry field.
        field: &'static str,
        /// Index of the position in its ring or line.
        index: usize,
        /// Longitude given, degrees.
        lon: f64,
        /// Latitude given, degrees.
        lat: f64,
    },
    /// A polygon with inner rings.
    #[error(
        "geofence has {holes} inner ring(s); holes are not supported, give only the outer ring"
    )]
    PolygonHoles {
        /// Number of inner rings.
        holes: usize,
    },
    /// A polygon ring that does not end where it starts.
    #[error("geofence ring is not closed: first position [{first_lon}, {first_lat}] differs from last [{last_lon}, {last_lat}]; repeat the first position at the end (RFC 7946 §3.1.6)")]
    PolygonNotClosed {
        /// First longitude, degrees.
        first_lon: f64,
        /// First latitude, degrees.
        first_lat: f64,
        /// Last longitude, degrees.
        last_lon: f64,
        /// Last latitude, degrees.
        last_lat: f64,
    },
    /// A polygon with fewer than 3 distinct corners.
    #[error(
        "geofence has {count} corner(s) besides the closing position; a polygon needs at least 3"
    )]
    PolygonTooFewPoints {
        /// Corners given, not counting the closing repeat.
        count: usize,
    },
    /// A polygon that encloses (almost) no area.
    #[error("geofence encloses {area_m2:.1} m²; its corners are collinear or repeated, draw the site outline")]
    PolygonDegenerate {
        /// The area enclosed, m².
        area_m2: f64,
    },
    /// A route with fewer than 2 points.
    #[error("route has {count} position(s); a LineString needs at least 2")]
    LineStringTooShort {
        /// Positions given.
        count: usize,
    },
    /// Segment attributes that do not pair up with the route's segments.
    #[error("segments has {segments} entries but the route has {points} positions; give one entry per segment ({expected})")]
    SegmentCountMismatch {
        /// Entries in `segments`.
        segments: usize,
        /// Positions in `route`.
        points: usize,
        /// Entries expected, `points - 1`.
        expected: usize,
    },
    /// A time of day that is not `HH:MM` within the day.
    #[error("{field} {value:?} is not a time of day HH:MM from 00:00 to 23:59 (for the end of the day write 23:59)")]
    BadTime {
        /// The field, e.g. `time_windows[0].end`.
        field: String,
        /// The value given.
        value: String,
    },
    /// A window whose start and end are the same minute.
    #[error("time_windows[{index}] {value:?} is a single minute; for the whole day write \"00:00\" to \"23:59\"")]
    SingleMinuteWindow {
        /// Index of the window.
        index: usize,
        /// The window as given.
        value: String,
    },
    /// A permit without any time window.
    #[error("time_windows is empty; give at least one window, e.g. {{\"start\": \"00:00\", \"end\": \"23:59\"}} for the whole day")]
    NoTimeWindows,
    /// A date that is not a calendar date `YYYY-MM-DD`.
    #[error("{field} {value:?} is not a calendar date YYYY-MM-DD")]
    BadDate {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A validity period that ends before it starts.
    #[error("valid_until {until} is before valid_from {from}; swap or fix the dates")]
    DateRangeReversed {
        /// First valid day.
        from: CivilDate,
        /// Last valid day.
        until: CivilDate,
    },
    /// A UTC offset no time zone has.
    #[error(
        "utc_offset_min is {value} min; it must be from -720 to 840 (480 for China Standard Time)"
    )]
    BadUtcOffset {
        /// The offset given, minutes.
        value: i16,
    },
    /// A permit without vehicles.
    #[error("plates is empty; list the plates of the vehicles the permit covers")]
    NoPlates,
    /// A plate with nothing left after normalisation.
    #[error("{field} {value:?} is blank; give the plate, e.g. \"豫AD1234\"")]
    BlankPlate {
        /// The field, e.g. `plates[2]` or `truck.plate`.
        field: String,
        /// The value given.
        value: String,
    },
    /// A JT/T 808 terminal phone number that is not 1 to 20 digits.
    #[error("truck.terminal_phone {value:?} is not a JT/T 808 terminal phone number; give 1 to 20 decimal digits as the terminal reports it, e.g. \"013912345678\"")]
    BadTerminalPhone {
        /// The value given.
        value: String,
    },
    /// The same terminal phone number on two trucks.
    #[error("truck.terminal_phone {value:?} is also the terminal phone number of device {other:?} (leading zeros do not count); each terminal must appear once")]
    DuplicateTerminalPhone {
        /// The value given.
        value: String,
        /// The device that has it first.
        other: String,
    },
    /// A permit without approved destinations.
    #[error(
        "destination_site_ids is empty; list the approved recycling, landfill or backfill sites"
    )]
    NoDestinations,

    /// A Sparkplug B mapping problem (`sparkplug.json`); the message names
    /// the node, device, metric or field and says what to do.
    #[error("{message}; see zone/README.md \"sparkplug.json\"")]
    Sparkplug {
        /// What is wrong.
        message: String,
    },
}

/// True for a finite number greater than zero (false for NaN).
pub(super) fn is_positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// A [`Problem::NotPositive`] for `field`.
pub(super) fn not_positive(field: &str, value: f64, unit: &'static str) -> Problem {
    Problem::NotPositive {
        field: field.to_owned(),
        value,
        unit,
    }
}

/// One problem, located.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct RegistryError {
    /// The file the problem is in.
    pub file: DataFile,
    /// The entry (or file position) the problem is about.
    pub entry: Entry,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Entry::File => write!(f, "{}: {}", self.file, self.problem),
            entry => write!(f, "{}: {}: {}", self.file, entry, self.problem),
        }
    }
}

/// Every problem found while loading a zone; never empty when returned as an
/// error. `Display` prints one problem per line.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryErrors(pub Vec<RegistryError>);

impl RegistryErrors {
    /// The individual errors, in file order.
    pub fn errors(&self) -> &[RegistryError] {
        &self.0
    }
}

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryErrors {}
