//! Device-health rules for every kind: silence (no uplink for 2 × the
//! expected interval + a margin) and low battery.
//!
//! Silence is judged on tick against receive times, so it needs no record
//! to fire. The expected interval is learned per device from the gaps it
//! actually shows — the 75th percentile of its last 8 gaps, robust to a
//! burst of event reports (short gaps) and to one outage (a long gap) —
//! with the registry's `expected_interval_s` (and the configured
//! `silent_floor_ms`) as a floor, so a device that
//! chatters more than registered is not held to its chattiest moment. A
//! truck whose last fix had the ignition off is allowed its parked
//! interval. The MQTT last will ("device gone") is not a sign of life: it
//! raises `device_offline` at once, stamped with its receive time (a will
//! registered at connect carries the connect time in its payload), and the
//! next message from the device clears it.

use serde::{Deserialize, Serialize};

use crate::alert::{RuleId, Severity};
use crate::registry::Device;

use super::config::DeviceThresholds;
use super::emit::Alerts;

/// Gaps remembered per device.
const GAPS: usize = 8;

/// What the silence rule remembers about one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SilenceState {
    /// Receive time of the newest record, Unix ms.
    pub last_seen_ms: Option<i64>,
    /// The last gaps between records, ms (a ring of up to 8).
    pub gaps_ms: Vec<i64>,
    /// Next slot of the ring to overwrite once full.
    pub next_gap: u8,
    /// The truck's last fix had the ignition off.
    pub parked: bool,
}

impl SilenceState {
    /// Notes a record received at `received_ms`.
    pub fn observe(&mut self, received_ms: i64) {
        if let Some(last) = self.last_seen_ms {
            let gap = received_ms - last;
            if gap > 0 {
                if self.gaps_ms.len() < GAPS {
                    self.gaps_ms.push(gap);
                } else {
                    let i = usize::from(self.next_gap) % GAPS;
                    self.gaps_ms[i] = gap;
                    self.next_gap = ((i + 1) % GAPS) as u8;
                }
            }
        }
        self.last_seen_ms = Some(
            self.last_seen_ms
                .map_or(received_ms, |l| l.max(received_ms)),
        );
    }

    /// The interval the device is expected to report at, ms: the learned
    /// 75th-percentile gap, at least the registered interval, the configured
    /// floor (`silent_floor_ms`) and, for a parked truck, the parked
    /// interval.
    pub fn expected_ms(&self, device: &Device, th: &DeviceThresholds) -> i64 {
        let registered = i64::from(device.expected_interval_s) * 1000;
        // Sorted on the stack: this runs for every device on every tick.
        let mut buf = [0i64; GAPS];
        let n = self.gaps_ms.len().min(GAPS);
        buf[..n].copy_from_slice(&self.gaps_ms[..n]);
        let gaps = &mut buf[..n];
        gaps.sort_unstable();
        let learned = if n >= 4 {
            gaps[(n * 3).div_ceil(4) - 1]
        } else {
            0
        };
        let parked = if self.parked {
            th.truck_parked_interval_ms
        } else {
            0
        };
        registered.max(learned).max(parked).max(th.silent_floor_ms)
    }

    /// How long the device may stay silent, ms.
    pub fn allowed_ms(&self, device: &Device, th: &DeviceThresholds) -> i64 {
        (self.expected_ms(device, th) as f64 * th.silent_interval_factor) as i64
            + th.silent_margin_ms
    }
}

/// Raises `device_silent` when the device has been silent longer than
/// allowed at `now_ms`.
pub fn check_silence(
    th: &DeviceThresholds,
    device: &Device,
    st: &SilenceState,
    now_ms: i64,
    alerts: &mut Alerts<'_>,
) {
    let Some(last) = st.last_seen_ms else {
        return;
    };
    let allowed = st.allowed_ms(device, th);
    let silent = now_ms - last;
    if silent > allowed {
        let (m, a) = (silent as f64 / 60_000.0, allowed as f64 / 60_000.0);
        alerts.raise(
            RuleId::DeviceSilent,
            None,
            Severity::Warn,
            m,
            a,
            now_ms,
            || format!("no uplink for {m:.0} min (allowed {a:.0} min)"),
        );
    }
}

/// A record arrived: the device is neither silent nor offline.
pub fn heard(alerts: &mut Alerts<'_>, at_ms: i64) {
    alerts.clear(RuleId::DeviceSilent, None, at_ms);
    alerts.clear(RuleId::DeviceOffline, None, at_ms);
}

/// The broker published the device's last will, received at `received_ms`.
pub fn last_will(alerts: &mut Alerts<'_>, received_ms: i64) {
    alerts.raise(
        RuleId::DeviceOffline,
        None,
        Severity::Info,
        0.0,
        0.0,
        received_ms,
        || "the broker published the device's last will: its connection dropped".into(),
    );
}

/// Battery low when the device flag is set or the voltage (mV, 0 = mains /
/// unknown) is under `battery_low_mv`; clears at `battery_clear_mv`.
pub fn battery(th: &DeviceThresholds, flag: bool, mv: u32, at_ms: i64, alerts: &mut Alerts<'_>) {
    let limit = if alerts.current(RuleId::BatteryLow).is_some() {
        th.battery_clear_mv
    } else {
        th.battery_low_mv
    };
    let low = flag || (mv > 0 && mv < limit);
    alerts.set(
        RuleId::BatteryLow,
        low.then_some((Severity::Info, f64::from(mv), f64::from(th.battery_low_mv))),
        at_ms,
        || {
            if mv > 0 {
                format!("battery low: {mv} mV")
            } else {
                "battery low (device flag)".to_owned()
            }
        },
    );
}

/// True when the battery counts as low for data quality (same test as the
/// rule's raise condition).
pub fn battery_is_low(th: &DeviceThresholds, flag: bool, mv: u32) -> bool {
    flag || (mv > 0 && mv < th.battery_low_mv)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::pb::{self, StatusKind};

    const BIN: &str = "bin-res-jingbei-01"; // registered every 3600 s
    const HOUR: i64 = 60 * MIN;

    #[test]
    fn a_device_is_silent_after_twice_its_interval_plus_five_minutes() {
        let mut h = Harness::zone();
        h.bin(BIN, DAY_T0, bin_ok());
        let allowed = 2 * HOUR + 5 * MIN;
        h.tick(DAY_T0 + allowed);
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), None);
        h.tick(DAY_T0 + allowed + 1);
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), Some(Severity::Warn));
        h.bin(BIN, DAY_T0 + allowed + 2, bin_ok());
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), None);
    }

    #[test]
    fn a_device_reporting_slower_than_registered_gets_its_learned_interval() {
        let mut h = Harness::zone();
        // Reports every 6 h although registered at 1 h.
        for i in 0..6 {
            h.bin(BIN, DAY_T0 + i * 6 * HOUR, bin_ok());
        }
        let last = DAY_T0 + 5 * 6 * HOUR;
        h.tick(last + 3 * HOUR);
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), None);
        h.tick(last + 12 * HOUR + 5 * MIN + 1);
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), Some(Severity::Warn));
    }

    #[test]
    fn a_chattier_device_is_still_allowed_its_registered_interval() {
        let mut h = Harness::zone();
        for i in 0..10 {
            h.bin(BIN, DAY_T0 + i * MIN, bin_ok());
        }
        h.tick(DAY_T0 + 9 * MIN + 2 * HOUR);
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), None);
    }

    #[test]
    fn silence_is_not_judged_while_replaying_a_backlog() {
        let mut h = Harness::zone();
        // Received long ago, processed now: a replay.
        h.record_at(bin_record(BIN, 1, DAY_T0, bin_ok()), DAY_T0 + 24 * HOUR);
        h.tick(DAY_T0 + 24 * HOUR);
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), None);
    }

    #[test]
    fn the_expected_interval_is_never_below_the_configured_floor() {
        let reg = zone();
        // A truck registered at 10 s, chattering every 2 s.
        let truck = reg.device("truck-d1234").unwrap();
        let mut st = SilenceState::default();
        for i in 0..9 {
            st.observe(i * 2_000);
        }
        let th = DeviceThresholds::default();
        assert_eq!(st.expected_ms(truck, &th), 60_000);
        let low = DeviceThresholds {
            silent_floor_ms: 0,
            ..Default::default()
        };
        assert_eq!(st.expected_ms(truck, &low), 10_000);
    }

    #[test]
    fn a_last_will_is_not_a_sign_of_life() {
        let mut h = Harness::zone();
        h.bin(BIN, DAY_T0, bin_ok());
        let will = pb::DeviceStatus {
            kind: StatusKind::LastWill as i32,
            ..Default::default()
        };
        h.status(BIN, DAY_T0 + 2 * HOUR, will);
        h.tick(DAY_T0 + 2 * HOUR + 5 * MIN + 1);
        assert_eq!(h.current(RuleId::DeviceSilent, BIN), Some(Severity::Warn));
    }

    #[test]
    fn a_last_will_raises_device_offline_at_once_and_the_next_message_clears_it() {
        let mut h = Harness::zone();
        h.bin(BIN, DAY_T0, bin_ok());
        assert_eq!(h.current(RuleId::DeviceOffline, BIN), None);
        let will = pb::DeviceStatus {
            kind: StatusKind::LastWill as i32,
            ..Default::default()
        };
        h.status(BIN, DAY_T0 + 10 * MIN, will);
        assert_eq!(h.current(RuleId::DeviceOffline, BIN), Some(Severity::Info));
        // A birth or any reading: back online.
        h.bin(BIN, DAY_T0 + 20 * MIN, bin_ok());
        assert_eq!(h.current(RuleId::DeviceOffline, BIN), None);
        assert_eq!(h.raises(RuleId::DeviceOffline), 1);
    }

    #[test]
    fn battery_low_by_flag_or_voltage_clears_at_the_clear_voltage() {
        let th = DeviceThresholds::default();
        let cases: [(bool, u32, Option<Severity>); 6] = [
            (false, 3300, None),
            (false, 3299, Some(Severity::Info)),
            (false, 3399, Some(Severity::Info)),
            (false, 3400, None),
            (true, 0, Some(Severity::Info)),
            (false, 0, None),
        ];
        let (mut marks, mut out) = (Vec::new(), Vec::new());
        let mut a = Alerts::new(BIN, &mut marks, &mut out);
        for (i, (flag, mv, want)) in cases.into_iter().enumerate() {
            battery(&th, flag, mv, i as i64, &mut a);
            assert_eq!(a.current(RuleId::BatteryLow), want, "{flag} {mv}");
        }
    }

    #[test]
    fn a_heartbeat_with_a_low_battery_raises_battery_low() {
        let mut h = Harness::zone();
        let beat = pb::DeviceStatus {
            kind: StatusKind::Heartbeat as i32,
            battery_mv: 3000,
            ..Default::default()
        };
        h.status(BIN, DAY_T0, beat);
        assert_eq!(h.current(RuleId::BatteryLow, BIN), Some(Severity::Info));
    }
}
