//! Notifiers: where alert notifications go. Alertmanager is the receiver
//! shipped and tested; it routes on to phone, e-mail and chat.

pub mod alertmanager;

/// RFC 3339 UTC timestamp with milliseconds from Unix ms.
pub fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let d = crate::registry::CivilDate::from_days_since_epoch(days);
    let (h, m, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!(
        "{:04}-{:02}-{:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z",
        d.year, d.month, d.day
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339_ms(1_795_000_000_123),
            "2026-11-18T11:06:40.123Z"
        );
    }
}
