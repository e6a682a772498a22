//! Hysteresis for graded threshold rules: a level is entered at its raise
//! condition and kept while its (looser) hold condition is true, so a value
//! wobbling around a threshold raises once, not on every reading.

use crate::alert::Severity;

/// A comparison of a reading with a threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cmp {
    /// `value >= x`.
    AtLeast(f64),
    /// `value > x`.
    Above(f64),
    /// `value < x`.
    Below(f64),
}

impl Cmp {
    /// True when `value` satisfies the comparison (never for NaN).
    pub fn holds(self, value: f64) -> bool {
        match self {
            Cmp::AtLeast(x) => value >= x,
            Cmp::Above(x) => value > x,
            Cmp::Below(x) => value < x,
        }
    }
}

/// One severity level of a graded rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    /// Severity of the level.
    pub severity: Severity,
    /// Enters the level.
    pub raise: Cmp,
    /// Keeps the level once in it (or in a higher one).
    pub hold: Cmp,
    /// The threshold reported with the alert.
    pub threshold: f64,
}

/// The level `value` is at, given the `current` severity of the alert;
/// `levels` in ascending severity. `None` means clear.
///
/// Entering needs the level's raise condition; staying needs only its hold
/// condition, provided the alert is already at that level or higher — so a
/// critical alert falling below the critical hold drops to warn if the warn
/// level still holds, and clears only below the warn hold.
pub fn graded(value: f64, current: Option<Severity>, levels: &[Level]) -> Option<Level> {
    levels.iter().rev().copied().find(|l| {
        l.raise.holds(value) || (current.is_some_and(|c| c >= l.severity) && l.hold.holds(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [Level; 2] = [
        Level {
            severity: Severity::Warn,
            raise: Cmp::AtLeast(40.0),
            hold: Cmp::AtLeast(38.0),
            threshold: 40.0,
        },
        Level {
            severity: Severity::Critical,
            raise: Cmp::AtLeast(50.0),
            hold: Cmp::AtLeast(48.0),
            threshold: 50.0,
        },
    ];

    #[test]
    fn graded_levels_enter_at_raise_and_leave_below_hold() {
        use Severity::*;
        let cases: [(f64, Option<Severity>, Option<Severity>); 10] = [
            (39.9, None, None),
            (40.0, None, Some(Warn)),
            (38.0, Some(Warn), Some(Warn)),
            (37.9, Some(Warn), None),
            (49.9, Some(Warn), Some(Warn)),
            (50.0, Some(Warn), Some(Critical)),
            (48.0, Some(Critical), Some(Critical)),
            (47.9, Some(Critical), Some(Warn)),
            (37.0, Some(Critical), None),
            (f64::NAN, Some(Critical), None),
        ];
        for (value, current, want) in cases {
            let got = graded(value, current, &LEVELS).map(|l| l.severity);
            assert_eq!(got, want, "{value} from {current:?}");
        }
    }

    #[test]
    fn below_comparisons_grade_falling_values() {
        let low = [Level {
            severity: Severity::Major,
            raise: Cmp::Below(19.5),
            hold: Cmp::Below(19.8),
            threshold: 19.5,
        }];
        assert_eq!(graded(19.5, None, &low), None);
        assert!(graded(19.49, None, &low).is_some());
        assert!(graded(19.7, Some(Severity::Major), &low).is_some());
        assert_eq!(graded(19.8, Some(Severity::Major), &low), None);
    }
}
