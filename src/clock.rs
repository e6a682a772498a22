//! The one clock of the service's shells. Production reads the wall clock;
//! tests build it on tokio's clock, so `tokio::time::pause` and `advance`
//! drive every timer and every "now" the shells hand to their pure cores.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in Unix milliseconds.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The wall clock.
    System,
    /// `start_ms` at `start` on tokio's (pausable) clock.
    Tokio {
        /// Unix ms at `start`.
        start_ms: i64,
        /// The tokio instant it corresponds to.
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock::System
    }

    /// A clock that reads `start_ms` now and then follows tokio's clock
    /// (paused in tests).
    pub fn tokio_at(start_ms: i64) -> Clock {
        Clock::Tokio {
            start_ms,
            start: tokio::time::Instant::now(),
        }
    }

    /// Now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Tokio { start_ms, start } => start_ms + start.elapsed().as_millis() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let c = Clock::tokio_at(1_000);
        assert_eq!(c.now_ms(), 1_000);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(c.now_ms(), 91_000);
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(Clock::system().now_ms() > 1_577_836_800_000);
    }
}
