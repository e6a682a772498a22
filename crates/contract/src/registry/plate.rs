//! Vehicle licence plates: one canonical form, so that a plate typed by a
//! weighbridge operator, read by an ANPR camera, reported by a truck terminal
//! and listed in a permit all match.
//!
//! The same vehicle shows up as "豫A·D1234", "豫A D1234", "豫ad1234" or
//! "豫AD1234" depending on the source. The canonical form drops spaces and
//! the separators people put after the region code, and upper-cases Latin
//! letters; Chinese characters pass unchanged. The registry stores plates as
//! written and keys its plate index by the canonical form.

/// Separators that appear inside written plates and carry no meaning.
const SEPARATORS: [char; 6] = ['·', '•', '・', '.', '-', '_'];

/// The canonical form of a plate: whitespace and separators (`·`, `•`, `・`,
/// `.`, `-`, `_`) removed, ASCII letters upper-cased, full-width ASCII
/// letters and digits folded to ASCII. `"豫a·d 1234"` becomes `"豫AD1234"`.
pub fn normalize_plate(plate: &str) -> String {
    normalized(plate).into_owned()
}

/// [`normalize_plate`] without an allocation when the plate is already in
/// canonical form (every plate a truck reports after ingest, every key of
/// the registry's plate index): the hot paths compare plates per fix.
pub fn normalized(plate: &str) -> std::borrow::Cow<'_, str> {
    if plate.chars().all(is_canonical) {
        return std::borrow::Cow::Borrowed(plate);
    }
    std::borrow::Cow::Owned(
        plate
            .chars()
            .filter(|c| !c.is_whitespace() && !SEPARATORS.contains(c))
            .map(fold_full_width)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

/// True when [`normalize_plate`] keeps `c` as it is.
fn is_canonical(c: char) -> bool {
    !c.is_whitespace()
        && !SEPARATORS.contains(&c)
        && !c.is_ascii_lowercase()
        && fold_full_width(c) == c
}

/// Full-width Latin letters and digits (U+FF10..U+FF5A, typed by Chinese IMEs)
/// to their ASCII forms; other characters unchanged.
fn fold_full_width(c: char) -> char {
    match c {
        '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' => {
            char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c)
        }
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_variants_of_a_plate_normalise_to_one_form() {
        for written in [
            "豫AD1234",
            "豫A·D1234",
            "豫a d1234",
            "豫A-D1234",
            " 豫ＡＤ１２３４ ",
            "豫A.D1234",
        ] {
            assert_eq!(normalize_plate(written), "豫AD1234", "{written}");
        }
    }

    /// The definition, written out once more without the borrowed path.
    fn reference(plate: &str) -> String {
        plate
            .chars()
            .filter(|c| !c.is_whitespace() && !SEPARATORS.contains(c))
            .map(fold_full_width)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn normalized_borrows_exactly_the_canonical_plates(
            plate in "[ a-zA-Z0-9·•・._\\-豫京ＡａＺｚ０９\t\u{3000}]{0,12}"
        ) {
            let want = reference(&plate);
            let got = normalized(&plate);
            proptest::prop_assert_eq!(got.as_ref(), want.as_str());
            let borrowed = matches!(got, std::borrow::Cow::Borrowed(_));
            proptest::prop_assert_eq!(borrowed, want == plate);
        }
    }

    #[test]
    fn a_blank_plate_normalises_to_empty() {
        assert_eq!(normalize_plate(" · "), "");
    }
}
