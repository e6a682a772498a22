//! Range checks and normalisation of a decoded envelope body.
//!
//! Pure functions: they take the body by `&mut`, refuse it with a precise
//! [`DecodeError`] or leave it in canonical form (normalised plate, heading
//! in 0..360, trimmed codes). Units stay those of the field names.

use super::error::{DecodeError, ErrorKind};
use crate::pb;
// The registry's normaliser, so plates in records and in permits compare equal.
use crate::registry::normalize_plate;

/// Longest free-text field accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 128;

/// Tunables of validation, with their sources.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationLimits {
    /// Allowed |net − (gross − tare)|, kg. Default 20 kg: one verification
    /// interval `e` of a class III truck scale (GB/T 7723-2017) [S].
    pub net_tolerance_kg: f64,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            net_tolerance_kg: 20.0,
        }
    }
}

fn finite(field: &str, v: f64, unit: &str) -> Result<f64, DecodeError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(DecodeError::new(
            ErrorKind::NonFiniteValue,
            format!("{field} is {v} {unit}; a finite number is required"),
        ))
    }
}

fn in_range(
    field: &str,
    v: f64,
    lo: f64,
    hi: f64,
    unit: &str,
    kind: ErrorKind,
) -> Result<(), DecodeError> {
    finite(field, v, unit)?;
    if v < lo || v > hi {
        return Err(DecodeError::new(
            kind,
            format!("{field} is {v} {unit}, outside {lo}..={hi} {unit}"),
        ));
    }
    Ok(())
}

fn weight(field: &str, v: f64) -> Result<(), DecodeError> {
    finite(field, v, "kg")?;
    if v < 0.0 {
        return Err(DecodeError::new(
            ErrorKind::NegativeWeight,
            format!("{field} is {v} kg; weights cannot be negative"),
        ));
    }
    if v > 200_000.0 {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!("{field} is {v} kg, above the 200000 kg plausibility limit"),
        ));
    }
    Ok(())
}

/// Bytes that may start or be a control character (Unicode `Cc`:
/// U+0000..U+001F, U+007F, and U+0080..U+009F, which UTF-8 encodes as `0xC2`
/// followed by `0x80..=0x9F`).
const MAYBE_CONTROL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[0x7f] = true;
    t[0xc2] = true;
    t
};

/// True when `v` contains a control character. A table scan of the bytes
/// rules out almost every text without decoding UTF-8; only a text with a
/// candidate byte is decoded.
fn has_control(v: &str) -> bool {
    v.bytes().any(|b| MAYBE_CONTROL[usize::from(b)]) && v.chars().any(char::is_control)
}

/// Bytes of a plate the normaliser certainly leaves alone: ASCII upper-case
/// letters and digits, UTF-8 lead bytes `0xE4..=0xE9` (code points
/// U+4000..U+9FFF: CJK ideographs, the province characters) and continuation
/// bytes. In valid UTF-8 a continuation byte only follows a lead byte, so a
/// plate of these bytes has only such characters, none of which is
/// whitespace, a separator or a full-width letter.
const PLATE_CANONICAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] =
            b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, 0x80..=0xbf | 0xe4..=0xe9);
        c += 1;
    }
    t
};

/// True when `plate` is certainly already canonical, so normalising it can
/// be skipped without allocating. `false` only means "normalise to find
/// out".
fn plate_is_canonical(plate: &str) -> bool {
    plate.bytes().all(|b| PLATE_CANONICAL[usize::from(b)])
}

/// Normalises a plate in place, allocating only when it changes.
fn normalise_plate_in_place(plate: &mut String) {
    if !plate_is_canonical(plate) {
        *plate = normalize_plate(plate);
    }
}

/// Checks a device-supplied text: no control characters, bounded length.
pub fn text(field: &str, v: &str) -> Result<(), DecodeError> {
    if v.len() > MAX_TEXT_LEN {
        return Err(DecodeError::new(
            ErrorKind::InvalidText,
            format!(
                "{field} is {} bytes long, the limit is {MAX_TEXT_LEN}",
                v.len()
            ),
        ));
    }
    if !has_control(v) {
        return Ok(());
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(DecodeError::new(
            ErrorKind::InvalidText,
            format!("{field} contains control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

fn deci_c(field: &str, v: i32) -> Result<(), DecodeError> {
    // -60.0 °C .. 300.0 °C covers winter outdoors and a bin on fire.
    if !(-600..=3000).contains(&v) {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!(
                "{field} is {v} deci-°C ({} °C), outside -60..=300 °C",
                f64::from(v) / 10.0
            ),
        ));
    }
    Ok(())
}

/// True for a national hazardous-waste catalogue code `NNN-NNN-NN`.
pub fn is_waste_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, &c)| {
            if i == 3 || i == 7 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Validates and normalises a weighbridge ticket.
pub fn ticket(t: &mut pb::WeighbridgeTicket, limits: &ValidationLimits) -> Result<(), DecodeError> {
    for (field, v) in [
        ("weighbridge_ticket.ticket_id", &t.ticket_id),
        ("weighbridge_ticket.plate", &t.plate),
        ("weighbridge_ticket.catalogue_edition", &t.catalogue_edition),
        ("weighbridge_ticket.origin_site_id", &t.origin_site_id),
        (
            "weighbridge_ticket.destination_site_id",
            &t.destination_site_id,
        ),
        ("weighbridge_ticket.operator_id", &t.operator_id),
        ("weighbridge_ticket.permit_id", &t.permit_id),
        ("weighbridge_ticket.manifest_id", &t.manifest_id),
        ("weighbridge_ticket.source_unit_id", &t.source_unit_id),
        (
            "weighbridge_ticket.hazardous_waste_code",
            &t.hazardous_waste_code,
        ),
    ] {
        text(field, v)?;
    }
    if t.ticket_id.is_empty() {
        return Err(DecodeError::new(
            ErrorKind::InvalidText,
            "weighbridge_ticket.ticket_id is empty",
        ));
    }
    weight("weighbridge_ticket.gross_weight_kg", t.gross_weight_kg)?;
    weight("weighbridge_ticket.tare_weight_kg", t.tare_weight_kg)?;
    weight("weighbridge_ticket.net_weight_kg", t.net_weight_kg)?;
    let expected = t.gross_weight_kg - t.tare_weight_kg;
    if (t.net_weight_kg - expected).abs() > limits.net_tolerance_kg {
        return Err(DecodeError::new(
            ErrorKind::NetWeightMismatch,
            format!(
                "net_weight_kg {} differs from gross {} - tare {} = {} kg by more than {} kg",
                t.net_weight_kg,
                t.gross_weight_kg,
                t.tare_weight_kg,
                expected,
                limits.net_tolerance_kg
            ),
        ));
    }
    if pb::WasteCategory::try_from(t.category).is_err() {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!(
                "weighbridge_ticket.category {} is not a known waste category",
                t.category
            ),
        ));
    }
    if pb::DestinationType::try_from(t.destination_type).is_err() {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!(
                "weighbridge_ticket.destination_type {} is not a known destination type",
                t.destination_type
            ),
        ));
    }
    if pb::Direction::try_from(t.direction).is_err() {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!(
                "weighbridge_ticket.direction {} is not in (0 unspecified, 1 in, 2 out)",
                t.direction
            ),
        ));
    }
    if t.axle_count > 12 {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!(
                "weighbridge_ticket.axle_count is {}, outside 0..=12",
                t.axle_count
            ),
        ));
    }
    let code = t.hazardous_waste_code.trim();
    if t.category == pb::WasteCategory::Hazardous as i32 || !code.is_empty() {
        if !is_waste_code(code) {
            return Err(DecodeError::new(
                ErrorKind::InvalidWasteCode,
                format!("hazardous_waste_code {code:?} must be NNN-NNN-NN (e.g. 900-249-08) for hazardous loads"),
            ));
        }
        if code.len() != t.hazardous_waste_code.len() {
            t.hazardous_waste_code = code.to_owned();
        }
    }
    normalise_plate_in_place(&mut t.plate);
    Ok(())
}

/// Validates a smart-bin reading.
pub fn bin(b: &pb::BinReading) -> Result<(), DecodeError> {
    in_range(
        "bin_reading.fill_level_pct",
        b.fill_level_pct,
        0.0,
        100.0,
        "%",
        ErrorKind::FillOutOfRange,
    )?;
    deci_c("bin_reading.temperature_deci_c", b.temperature_deci_c)?;
    in_range(
        "bin_reading.tilt_deg",
        b.tilt_deg,
        0.0,
        180.0,
        "deg",
        ErrorKind::ValueOutOfRange,
    )?;
    battery("bin_reading.battery_mv", b.battery_mv)
}

fn battery(field: &str, mv: u32) -> Result<(), DecodeError> {
    if mv > 60_000 {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!("{field} is {mv} mV, above 60000 mV"),
        ));
    }
    Ok(())
}

/// Validates a hazardous-storage reading.
pub fn storage(s: &pb::StorageReading) -> Result<(), DecodeError> {
    weight("storage_reading.stock_kg", s.stock_kg)?;
    deci_c("storage_reading.temperature_deci_c", s.temperature_deci_c)?;
    if let Some(v) = s.combustible_gas_pct_lel {
        in_range(
            "storage_reading.combustible_gas_pct_lel",
            v,
            0.0,
            100.0,
            "%LEL",
            ErrorKind::ValueOutOfRange,
        )?;
    }
    if let Some(v) = s.toxic_gas_pct_of_limit {
        in_range(
            "storage_reading.toxic_gas_pct_of_limit",
            v,
            0.0,
            100_000.0,
            "%",
            ErrorKind::ValueOutOfRange,
        )?;
    }
    if let Some(v) = s.oxygen_pct_vol {
        in_range(
            "storage_reading.oxygen_pct_vol",
            v,
            0.0,
            100.0,
            "%vol",
            ErrorKind::ValueOutOfRange,
        )?;
    }
    if let Some(v) = s.outside_temperature_deci_c {
        deci_c("storage_reading.outside_temperature_deci_c", v)?;
    }
    // Ten years: older than any legal storage period by far.
    const MAX_AGE_S: u64 = 10 * 366 * 86_400;
    for (field, v) in [
        (
            "storage_reading.oldest_container_age_s",
            Some(s.oldest_container_age_s),
        ),
        (
            "storage_reading.oldest_medical_lot_age_s",
            s.oldest_medical_lot_age_s,
        ),
    ] {
        if let Some(v) = v {
            if v > MAX_AGE_S {
                return Err(DecodeError::new(
                    ErrorKind::ValueOutOfRange,
                    format!(
                        "{field} is {v} s, above the ten-year plausibility limit {MAX_AGE_S} s"
                    ),
                ));
            }
        }
    }
    if let Some(lot) = &s.lot_change {
        weight("storage_reading.lot_change.weight_kg", lot.weight_kg)?;
        if lot.sealed_at_unix_ms <= 0 || lot.collected_at_unix_ms < 0 {
            return Err(DecodeError::new(
                ErrorKind::ValueOutOfRange,
                format!(
                    "storage_reading.lot_change: lot {} needs a sealing time (sealed_at_unix_ms {}, collected_at_unix_ms {})",
                    lot.lot_id, lot.sealed_at_unix_ms, lot.collected_at_unix_ms
                ),
            ));
        }
    }
    battery("storage_reading.battery_mv", s.battery_mv)
}

/// Validates and normalises a truck fix.
pub fn truck(t: &mut pb::TruckFix) -> Result<(), DecodeError> {
    finite("truck_fix.latitude_deg", t.latitude_deg, "deg")?;
    finite("truck_fix.longitude_deg", t.longitude_deg, "deg")?;
    if !(-90.0..=90.0).contains(&t.latitude_deg) || !(-180.0..=180.0).contains(&t.longitude_deg) {
        return Err(DecodeError::new(
            ErrorKind::InvalidCoordinate,
            format!(
                "truck_fix position ({}, {}) is outside the world (lat -90..=90, lon -180..=180)",
                t.latitude_deg, t.longitude_deg
            ),
        ));
    }
    in_range(
        "truck_fix.speed_kmh",
        t.speed_kmh,
        0.0,
        250.0,
        "km/h",
        ErrorKind::ValueOutOfRange,
    )?;
    finite("truck_fix.heading_deg", t.heading_deg, "deg")?;
    in_range(
        "truck_fix.heading_deg",
        t.heading_deg,
        -360.0,
        720.0,
        "deg",
        ErrorKind::ValueOutOfRange,
    )?;
    t.heading_deg = wrap_heading(t.heading_deg);
    in_range(
        "truck_fix.accuracy_m",
        t.accuracy_m,
        0.0,
        100_000.0,
        "m",
        ErrorKind::ValueOutOfRange,
    )?;
    if let Some(v) = t.load_kg {
        weight("truck_fix.load_kg", v)?;
    }
    if t.satellites > 200 {
        return Err(DecodeError::new(
            ErrorKind::ValueOutOfRange,
            format!("truck_fix.satellites is {}, above 200", t.satellites),
        ));
    }
    if let Some(v) = t.altitude_m {
        // The Dead Sea shore to above Everest: a JT/T 808 altitude is a
        // 16-bit count of metres, so anything up to 65535 can arrive.
        in_range(
            "truck_fix.altitude_m",
            v,
            -500.0,
            9_000.0,
            "m",
            ErrorKind::ValueOutOfRange,
        )?;
    }
    if let Some(v) = t.odometer_km {
        in_range(
            "truck_fix.odometer_km",
            v,
            0.0,
            10_000_000.0,
            "km",
            ErrorKind::ValueOutOfRange,
        )?;
    }
    text("truck_fix.plate", &t.plate)?;
    text("truck_fix.permit_id", &t.permit_id)?;
    normalise_plate_in_place(&mut t.plate);
    Ok(())
}

/// Validates a device status.
pub fn status(s: &pb::DeviceStatus) -> Result<(), DecodeError> {
    match pb::StatusKind::try_from(s.kind) {
        Ok(pb::StatusKind::Unspecified) | Err(_) => {
            return Err(DecodeError::new(
                ErrorKind::ValueOutOfRange,
                format!(
                    "device_status.kind {} is not birth (1), heartbeat (2) or last_will (3)",
                    s.kind
                ),
            ))
        }
        Ok(_) => {}
    }
    text("device_status.firmware_version", &s.firmware_version)?;
    battery("device_status.battery_mv", s.battery_mv)?;
    if let Some(dbm) = s.signal_dbm {
        if !(-150..=0).contains(&dbm) {
            return Err(DecodeError::new(
                ErrorKind::ValueOutOfRange,
                format!("device_status.signal_dbm is {dbm} dBm, outside -150..=0 dBm"),
            ));
        }
    }
    Ok(())
}

/// `deg` wrapped into [0, 360). `rem_euclid` alone rounds a tiny negative
/// angle up to 360.0, which a second pass would turn into 0.0: a normalised
/// record must normalise to itself (found by the protobuf fuzz target).
fn wrap_heading(deg: f64) -> f64 {
    let h = deg.rem_euclid(360.0);
    if h >= 360.0 {
        0.0
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_heading_is_wrapped_into_0_to_360_and_wrapping_is_idempotent() {
        for (deg, want) in [
            (-1e-20, 0.0),
            (-1e-13, 360.0 - 1e-13),
            (-360.0, 0.0),
            (0.0, 0.0),
            (359.999, 359.999),
            (360.0, 0.0),
            (719.5, 359.5),
        ] {
            let h = super::wrap_heading(deg);
            assert!((0.0..360.0).contains(&h), "{deg} -> {h}");
            assert!((h - want).abs() < 1e-9, "{deg} -> {h}, want {want}");
            assert_eq!(super::wrap_heading(h), h, "{deg}: not idempotent");
        }
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_plates_are_recognised_and_others_normalised() {
        let cases = [
            ("豫AD1234", true, "豫AD1234"),
            ("AB123", true, "AB123"),
            ("", true, ""),
            ("豫A·D1234", false, "豫AD1234"),
            ("豫ad1234", false, "豫AD1234"),
            ("豫A D1234", false, "豫AD1234"),
            ("豫Ａ１２", false, "豫A12"),
            ("豫A-D_1.2", false, "豫AD12"),
        ];
        for (plate, canonical, want) in cases {
            assert_eq!(plate_is_canonical(plate), canonical, "{plate:?}");
            let mut p = plate.to_owned();
            normalise_plate_in_place(&mut p);
            assert_eq!(p, want, "{plate:?}");
        }
    }

    #[test]
    fn control_characters_are_found_in_every_range() {
        for (s, want) in [
            ("plain", false),
            ("豫AD1234", false),
            ("é·ÿ\u{a0}", false),
            ("a\u{0}b", true),
            ("tab\t", true),
            ("\u{7f}", true),
            ("x\u{80}", true),
            ("\u{9f}y", true),
            ("\u{85}", true),
        ] {
            assert_eq!(has_control(s), want, "{s:?}");
        }
    }

    fn plate_like() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(vec![
                    'A', 'z', '0', '9', '豫', '京', '·', '•', '・', '.', '-', '_', ' ',
                    '\u{3000}', 'Ａ', 'ｚ', '１', 'é', '\u{85}', '\u{4e00}', '\u{9fff}',
                    '\u{4000}', '\u{3fff}', '\u{a000}', '\u{2022}', '\u{30fb}', '\u{b7}',
                ]),
                1 => any::<char>(),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        #[test]
        fn a_plate_judged_canonical_is_one_the_normaliser_leaves_unchanged(p in plate_like()) {
            if plate_is_canonical(&p) {
                prop_assert_eq!(normalize_plate(&p), p.clone());
            }
            let mut q = p.clone();
            normalise_plate_in_place(&mut q);
            prop_assert_eq!(q, normalize_plate(&p));
        }

        #[test]
        fn the_byte_wise_control_check_agrees_with_char_is_control(s in plate_like()) {
            prop_assert_eq!(has_control(&s), s.chars().any(|c| c.is_control()));
        }
    }
}
