//! Reporting periods in local time: a day, a calendar month, a calendar
//! year, each starting at local midnight. KPI points are stamped with the
//! period's start, so recomputing a period rewrites the same point.

use serde::{Deserialize, Serialize};

use crate::registry::{local_days_since_epoch, CivilDate};

const MS_PER_DAY: i64 = 86_400_000;

/// The length of a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// A local calendar day.
    Day,
    /// A local calendar month.
    Month,
    /// A local calendar year.
    Year,
}

impl PeriodKind {
    /// All three, shortest first.
    pub const ALL: [PeriodKind; 3] = [PeriodKind::Day, PeriodKind::Month, PeriodKind::Year];

    /// Tag value of the `kpi` measurement.
    pub const fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Day => "day",
            PeriodKind::Month => "month",
            PeriodKind::Year => "year",
        }
    }
}

/// One period: its kind and its start, Unix ms of local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    /// Day, month or year.
    pub kind: PeriodKind,
    /// Start, Unix ms (local midnight of its first day).
    pub start_ms: i64,
}

/// Unix ms of local midnight starting `date`.
pub fn local_midnight_ms(date: CivilDate, utc_offset_min: i16) -> i64 {
    date.days_since_epoch() * MS_PER_DAY - i64::from(utc_offset_min) * 60_000
}

impl Period {
    /// The period of `kind` containing `unix_ms`.
    pub fn containing(kind: PeriodKind, unix_ms: i64, utc_offset_min: i16) -> Period {
        let [day, month, year] = Period::all_containing(unix_ms, utc_offset_min);
        match kind {
            PeriodKind::Day => day,
            PeriodKind::Month => month,
            PeriodKind::Year => year,
        }
    }

    /// The day, month and year containing `unix_ms`, in the order of
    /// [`PeriodKind::ALL`] (the calendar date computed once).
    pub fn all_containing(unix_ms: i64, utc_offset_min: i16) -> [Period; 3] {
        let day = CivilDate::from_days_since_epoch(local_days_since_epoch(unix_ms, utc_offset_min));
        PeriodKind::ALL.map(|kind| {
            let first = match kind {
                PeriodKind::Day => day,
                PeriodKind::Month => CivilDate { day: 1, ..day },
                PeriodKind::Year => CivilDate {
                    month: 1,
                    day: 1,
                    ..day
                },
            };
            Period {
                kind,
                start_ms: local_midnight_ms(first, utc_offset_min),
            }
        })
    }

    /// Its first local day.
    pub fn first_day(&self, utc_offset_min: i16) -> CivilDate {
        CivilDate::from_days_since_epoch(local_days_since_epoch(self.start_ms, utc_offset_min))
    }

    /// How it is written: `2026-10-07`, `2026-10` or `2026`.
    pub fn label(&self, utc_offset_min: i16) -> String {
        let d = self.first_day(utc_offset_min);
        match self.kind {
            PeriodKind::Day => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
            PeriodKind::Month => format!("{:04}-{:02}", d.year, d.month),
            PeriodKind::Year => format!("{:04}", d.year),
        }
    }

    /// Parses `2026-10-07` (day), `2026-10` (month) or `2026` (year).
    pub fn parse(s: &str, utc_offset_min: i16) -> Option<Period> {
        let s = s.trim();
        let (kind, date) = match s.len() {
            4 => (PeriodKind::Year, CivilDate::new(s.parse().ok()?, 1, 1)?),
            7 if s.as_bytes()[4] == b'-' => (
                PeriodKind::Month,
                CivilDate::new(s.get(0..4)?.parse().ok()?, s.get(5..7)?.parse().ok()?, 1)?,
            ),
            10 => (PeriodKind::Day, CivilDate::parse_iso(s)?),
            _ => return None,
        };
        if !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        Some(Period {
            kind,
            start_ms: local_midnight_ms(date, utc_offset_min),
        })
    }

    /// Start of the next period of the same kind, Unix ms.
    pub fn end_ms(&self, utc_offset_min: i16) -> i64 {
        let d = self.first_day(utc_offset_min);
        let next = match self.kind {
            PeriodKind::Day => {
                return self.start_ms + MS_PER_DAY;
            }
            PeriodKind::Month if d.month == 12 => CivilDate {
                year: d.year + 1,
                month: 1,
                day: 1,
            },
            PeriodKind::Month => CivilDate {
                month: d.month + 1,
                ..d
            },
            PeriodKind::Year => CivilDate {
                year: d.year + 1,
                month: 1,
                day: 1,
            },
        };
        local_midnight_ms(next, utc_offset_min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CST: i16 = 480;

    #[test]
    fn periods_start_at_local_midnight_and_labels_round_trip() {
        // 2026-10-31 23:30 CST = 2026-10-31 15:30 UTC.
        let t = 1_793_460_600_000;
        let day = Period::containing(PeriodKind::Day, t, CST);
        assert_eq!(day.label(CST), "2026-10-31");
        let month = Period::containing(PeriodKind::Month, t, CST);
        assert_eq!(month.label(CST), "2026-10");
        // 2026-10-01 00:00 CST = 2026-09-30 16:00 UTC.
        assert_eq!(month.start_ms, 1_790_784_000_000);
        assert_eq!(month.end_ms(CST), 1_793_462_400_000);
        assert!(t < month.end_ms(CST));
        // Half an hour later it is November in Zhengzhou.
        let later = Period::containing(PeriodKind::Month, t + 1_800_000, CST);
        assert_eq!(later.label(CST), "2026-11");
        let year = Period::containing(PeriodKind::Year, t, CST);
        assert_eq!(year.label(CST), "2026");
        assert_eq!(
            year.end_ms(CST),
            Period::parse("2027", CST).unwrap().start_ms
        );
        for p in [day, month, year] {
            assert_eq!(Period::parse(&p.label(CST), CST), Some(p));
        }
        for bad in ["2026-13", "26-10", "2026-1", "2026/10", "2026-02-30", ""] {
            assert_eq!(Period::parse(bad, CST), None, "{bad}");
        }
    }
}
