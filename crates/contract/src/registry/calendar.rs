//! Local calendar time for permits: civil dates, times of day and daily time
//! windows, converted from Unix milliseconds with a fixed UTC offset.
//!
//! Permits are written in local time ("valid 2026-01-01 to 2027-12-31",
//! "21:00-06:00") while telemetry carries UTC Unix milliseconds. China has a
//! single zone without daylight saving (UTC+8), so a fixed offset per permit
//! is exact and no time-zone database is needed. Dates use the proleptic
//! Gregorian calendar (Howard Hinnant's `days_from_civil` /
//! `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>),
//! which saves a date-time dependency for two small functions.

use std::fmt;

/// Milliseconds in a day.
const MS_PER_DAY: i64 = 86_400_000;
/// Minutes in a day; times of day are `0..MINUTES_PER_DAY`.
pub const MINUTES_PER_DAY: u16 = 1440;

/// A calendar date (proleptic Gregorian), as written in permits.
///
/// Field order makes the derived ordering chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month, 1 (January) to 12.
    pub month: u8,
    /// Day of the month, 1 to 28..=31 depending on month and leap year.
    pub day: u8,
}

impl CivilDate {
    /// The date, or `None` when month or day are out of range (2026-02-29,
    /// 2026-13-01).
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        valid.then_some(Self { year, month, day })
    }

    /// Parses an ISO 8601 calendar date `YYYY-MM-DD` (exactly four-digit year,
    /// two-digit month and day), e.g. `"2026-01-01"`.
    pub fn parse_iso(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return None;
        }
        let year = s.get(0..4)?.parse().ok()?;
        let month = s.get(5..7)?.parse().ok()?;
        let day = s.get(8..10)?.parse().ok()?;
        Self::new(year, month, day)
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn days_since_epoch(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400; // [0, 399]
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1; // [0, 365]
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01. Valid for years that fit an
    /// `i32` (|days| below about 7·10¹¹).
    pub fn from_days_since_epoch(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097; // [0, 146096]
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
        let mp = (5 * doy + 2) / 153; // [0, 11]
        let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
        let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
        let year = yoe + era * 400 + i64::from(month <= 2);
        // The ranges noted above make the narrowing casts lossless.
        Self {
            year: year as i32,
            month: month as u8,
            day: day as u8,
        }
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// True for a Gregorian leap year.
fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1..=12) of `year`; 0 for a month out of range.
fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A daily window of local time in which a permit allows driving.
///
/// Both ends are whole minutes and both are inclusive: `21:00`–`06:00`
/// allows 21:00:00 through 06:00:59, and `00:00`–`23:59` is the whole day.
/// When `end_min < start_min` the window wraps past midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    /// First allowed minute, minutes after local midnight (0..=1439).
    pub start_min: u16,
    /// Last allowed minute, inclusive, minutes after local midnight
    /// (0..=1439); smaller than `start_min` for an overnight window.
    pub end_min: u16,
}

impl TimeWindow {
    /// True when the window runs past midnight (e.g. 21:00–06:00).
    pub fn wraps_midnight(&self) -> bool {
        self.end_min < self.start_min
    }

    /// True when the local minute of the day `minute` (0..=1439) falls in the
    /// window.
    pub fn contains_minute(&self, minute: u16) -> bool {
        if self.wraps_midnight() {
            minute >= self.start_min || minute <= self.end_min
        } else {
            (self.start_min..=self.end_min).contains(&minute)
        }
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", Hhmm(self.start_min), Hhmm(self.end_min))
    }
}

/// Formats minutes after midnight as `HH:MM`.
struct Hhmm(u16);

impl fmt::Display for Hhmm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// Parses a local time of day `HH:MM` (24-hour, two digits each, 00:00 to
/// 23:59) into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || !(b[..2].iter().chain(&b[3..])).all(u8::is_ascii_digit) {
        return None;
    }
    let h: u16 = s.get(0..2)?.parse().ok()?;
    let m: u16 = s.get(3..5)?.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// The local day number (days since 1970-01-01 in local time) of a UTC
/// instant, for a zone `utc_offset_min` minutes ahead of UTC.
pub fn local_days_since_epoch(unix_ms: i64, utc_offset_min: i16) -> i64 {
    local_ms(unix_ms, utc_offset_min).div_euclid(MS_PER_DAY)
}

/// The local minute of the day (0..=1439) of a UTC instant, for a zone
/// `utc_offset_min` minutes ahead of UTC.
pub fn local_minute_of_day(unix_ms: i64, utc_offset_min: i16) -> u16 {
    let ms_of_day = local_ms(unix_ms, utc_offset_min).rem_euclid(MS_PER_DAY);
    // ms_of_day < 86_400_000, so the quotient is below 1440 and fits a u16.
    (ms_of_day / 60_000) as u16
}

/// Local wall-clock milliseconds; saturates instead of overflowing at the
/// ends of the i64 range.
fn local_ms(unix_ms: i64, utc_offset_min: i16) -> i64 {
    unix_ms.saturating_add(i64::from(utc_offset_min) * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_epoch_is_day_zero() {
        assert_eq!(
            CivilDate::new(1970, 1, 1).map(CivilDate::days_since_epoch),
            Some(0)
        );
        assert_eq!(
            CivilDate::from_days_since_epoch(0),
            CivilDate {
                year: 1970,
                month: 1,
                day: 1
            }
        );
    }

    #[test]
    fn known_dates_have_known_day_numbers() {
        // 2026-01-01T00:00Z is Unix 1_767_225_600 s.
        let d = CivilDate::parse_iso("2026-01-01");
        assert_eq!(
            d.map(CivilDate::days_since_epoch),
            Some(1_767_225_600 / 86_400)
        );
        let leap = CivilDate::parse_iso("2000-02-29");
        assert_eq!(leap.map(CivilDate::days_since_epoch), Some(11_016));
        assert_eq!(
            CivilDate::parse_iso("1969-12-31").map(CivilDate::days_since_epoch),
            Some(-1)
        );
    }

    #[test]
    fn parse_iso_rejects_impossible_and_malformed_dates() {
        for bad in [
            "2026-02-29",
            "2100-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-01T00:00",
            "",
            "+026-01-01",
            "２０２６-01-01",
        ] {
            assert_eq!(CivilDate::parse_iso(bad), None, "{bad}");
        }
        assert!(CivilDate::parse_iso("2024-02-29").is_some());
    }

    #[test]
    fn dates_display_as_iso() {
        assert_eq!(
            CivilDate::parse_iso("2027-12-31").map(|d| d.to_string()),
            Some("2027-12-31".to_owned())
        );
    }

    #[test]
    fn parse_hhmm_accepts_the_day_and_rejects_the_rest() {
        assert_eq!(parse_hhmm("00:00"), Some(0));
        assert_eq!(parse_hhmm("21:00"), Some(1260));
        assert_eq!(parse_hhmm("23:59"), Some(1439));
        for bad in [
            "24:00", "25:00", "12:60", "9:00", "09:0", "0900", "09:00:00", "", "-1:00", "ab:cd",
        ] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_overnight_window_covers_both_sides_of_midnight() {
        let w = TimeWindow {
            start_min: 21 * 60,
            end_min: 6 * 60,
        };
        assert!(w.wraps_midnight());
        for ok in [21 * 60, 23 * 60 + 59, 0, 6 * 60] {
            assert!(w.contains_minute(ok), "{ok}");
        }
        for no in [6 * 60 + 1, 12 * 60, 20 * 60 + 59] {
            assert!(!w.contains_minute(no), "{no}");
        }
        assert_eq!(w.to_string(), "21:00-06:00");
    }

    #[test]
    fn the_all_day_window_covers_every_minute() {
        let w = TimeWindow {
            start_min: 0,
            end_min: 1439,
        };
        assert!((0..MINUTES_PER_DAY).all(|m| w.contains_minute(m)));
    }

    #[test]
    fn local_time_applies_the_offset() {
        // 2026-01-01T13:30Z is 21:30 on the same day in China (UTC+8).
        let ms = (1_767_225_600 + 13 * 3600 + 30 * 60) * 1000;
        assert_eq!(local_minute_of_day(ms, 480), 21 * 60 + 30);
        // 2026-01-01T17:00Z is already 01:00 on 2 January locally.
        let ms = (1_767_225_600 + 17 * 3600) * 1000;
        assert_eq!(local_minute_of_day(ms, 480), 60);
        assert_eq!(local_days_since_epoch(ms, 480), 1_767_225_600 / 86_400 + 1);
        assert_eq!(local_days_since_epoch(ms, 0), 1_767_225_600 / 86_400);
        // Before the epoch the day rounds down, not towards zero.
        assert_eq!(local_days_since_epoch(-1, 0), -1);
        assert_eq!(local_minute_of_day(-1, 0), 1439);
    }

    proptest! {
        #[test]
        fn day_numbers_round_trip(days in -1_000_000i64..1_000_000) {
            let d = CivilDate::from_days_since_epoch(days);
            prop_assert_eq!(CivilDate::new(d.year, d.month, d.day), Some(d));
            prop_assert_eq!(d.days_since_epoch(), days);
            prop_assert_eq!(CivilDate::parse_iso(&d.to_string()).filter(|_| (0..=9999).contains(&d.year)), (0..=9999).contains(&d.year).then_some(d));
        }

        #[test]
        fn consecutive_days_are_ordered(days in -1_000_000i64..1_000_000) {
            prop_assert!(CivilDate::from_days_since_epoch(days) < CivilDate::from_days_since_epoch(days + 1));
        }

        #[test]
        fn local_minute_is_always_within_the_day(ms in any::<i64>(), off in -720i16..=840) {
            prop_assert!(local_minute_of_day(ms, off) < MINUTES_PER_DAY);
        }
    }
}
