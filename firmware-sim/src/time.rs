//! Simulated and local time helpers.
//!
//! The zone runs on China Standard Time (UTC+8, no daylight saving), which
//! is what bin fill curves, storage working hours and weighbridge opening
//! hours follow; permits carry their own offset and are asked directly.

use std::time::{SystemTime, UNIX_EPOCH};

use wastewatch_contract::registry::{
    local_days_since_epoch, local_minute_of_day, CivilDate, CHINA_STANDARD_TIME_OFFSET_MIN,
};

/// Offset of the zone's local time from UTC, minutes.
pub const CST_OFFSET_MIN: i16 = CHINA_STANDARD_TIME_OFFSET_MIN;

/// Milliseconds per minute / hour / day.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds per hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;

/// Wall-clock now, Unix ms.
pub fn wall_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Local hour of day as a fraction (0.0..24.0).
pub fn local_hour(unix_ms: i64) -> f64 {
    let minute = local_minute_of_day(unix_ms, CST_OFFSET_MIN);
    let sub = (unix_ms.rem_euclid(MINUTE_MS)) as f64 / MINUTE_MS as f64;
    f64::from(minute) / 60.0 + sub / 60.0
}

/// The next instant at or after `from_ms` whose local time of day is
/// `minute_of_day` (0..1440).
pub fn next_local_minute(from_ms: i64, minute_of_day: u16) -> i64 {
    let offset = i64::from(CST_OFFSET_MIN) * MINUTE_MS;
    let day_start = local_days_since_epoch(from_ms, CST_OFFSET_MIN) * DAY_MS - offset;
    let t = day_start + i64::from(minute_of_day) * MINUTE_MS;
    if t >= from_ms {
        t
    } else {
        t + DAY_MS
    }
}

/// The latest instant at or before `now_ms` whose local time is
/// `minute_of_day`: `--start-local 20:45` starts the simulation at the last
/// 20:45 CST.
pub fn last_local_time_before(now_ms: i64, minute_of_day: u16) -> i64 {
    let next = next_local_minute(now_ms, minute_of_day);
    if next == now_ms {
        next
    } else {
        next - DAY_MS
    }
}

/// `YYYY-MM-DDTHH:MM:SS+08:00` for progress lines and summaries.
pub fn format_local(unix_ms: i64) -> String {
    let day = local_days_since_epoch(unix_ms, CST_OFFSET_MIN);
    let date = CivilDate::from_days_since_epoch(day);
    let minute = local_minute_of_day(unix_ms, CST_OFFSET_MIN);
    let second = unix_ms.rem_euclid(MINUTE_MS) / 1000;
    format!(
        "{date}T{:02}:{:02}:{second:02}+08:00",
        minute / 60,
        minute % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-28T12:00:00Z = 20:00 CST.
    const NOON_UTC: i64 = 1_795_867_200_000;

    #[test]
    fn local_hour_is_utc_plus_eight() {
        assert!((local_hour(NOON_UTC) - 20.0).abs() < 1e-9);
        assert_eq!(format_local(NOON_UTC), "2026-11-28T20:00:00+08:00");
    }

    #[test]
    fn next_and_last_local_minute_bracket_now() {
        let t = next_local_minute(NOON_UTC, 21 * 60);
        assert_eq!(t - NOON_UTC, HOUR_MS);
        let l = last_local_time_before(NOON_UTC, 21 * 60);
        assert_eq!(NOON_UTC - l, 23 * HOUR_MS);
        assert_eq!(last_local_time_before(NOON_UTC, 20 * 60), NOON_UTC);
    }
}
