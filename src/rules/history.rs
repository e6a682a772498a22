//! Recent temperatures of one sensor, for rate-of-rise rules ("+10 °C in
//! 10 min") and the data-quality jump check.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Most readings kept, whatever the window (bounds memory for chatty
/// sensors).
const MAX_POINTS: usize = 32;

/// Trusted temperature readings, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TempHistory {
    /// `(event time ms, °C)`, oldest first.
    points: VecDeque<(i64, f64)>,
}

impl TempHistory {
    /// The rise of `c` at `t_ms` over the lowest reading in the `window_ms`
    /// before it; 0 without earlier readings in the window.
    pub fn rise(&self, t_ms: i64, c: f64, window_ms: i64) -> f64 {
        self.points
            .iter()
            .filter(|(t, _)| t_ms - t <= window_ms && *t <= t_ms)
            .map(|(_, v)| c - v)
            .fold(0.0, f64::max)
    }

    /// The newest reading.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.points.back().copied()
    }

    /// Adds a reading and forgets those older than `keep_ms` before it.
    pub fn push(&mut self, t_ms: i64, c: f64, keep_ms: i64) {
        if !c.is_finite() {
            return;
        }
        self.points.push_back((t_ms, c));
        while self.points.front().is_some_and(|(t, _)| t_ms - t > keep_ms)
            || self.points.len() > MAX_POINTS
        {
            self.points.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_is_measured_from_the_lowest_reading_within_the_window() {
        let mut h = TempHistory::default();
        for (t, c) in [(0, 30.0), (60_000, 25.0), (300_000, 28.0)] {
            h.push(t, c, 600_000);
        }
        assert_eq!(h.rise(600_000, 35.0, 600_000), 10.0);
        // At 11 min the 25 °C reading at 1 min is still in; the 30 °C at 0 is not.
        assert_eq!(h.rise(660_000, 35.0, 600_000), 10.0);
        assert_eq!(h.rise(900_000, 35.0, 600_000), 7.0);
        assert_eq!(TempHistory::default().rise(0, 99.0, 600_000), 0.0);
    }
}
