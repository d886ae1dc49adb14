//! Time as the invoker sees it, behind a trait so pool rules (pause grace, idle timeout) and
//! record times can be tested without sleeping.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time for the pool's timers and wall-clock time for records.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic now (pool timers).
    fn now(&self) -> Instant;
    /// Milliseconds since the epoch (record `start`/`end`, deadlines).
    fn epoch_ms(&self) -> u64;
}

/// The real clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn epoch_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

/// A clock that only moves when told to; both readings advance together.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    base_epoch_ms: u64,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// Starts at the real current time.
    pub fn new() -> ManualClock {
        ManualClock {
            base: Instant::now(),
            base_epoch_ms: SystemClock.epoch_ms(),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *offset += by;
    }

    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }

    fn epoch_ms(&self) -> u64 {
        let offset = u64::try_from(self.offset().as_millis()).unwrap_or(u64::MAX);
        self.base_epoch_ms.saturating_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_both_readings_together() {
        let clock = ManualClock::new();
        let (instant, epoch) = (clock.now(), clock.epoch_ms());
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - instant, Duration::from_millis(1500));
        assert_eq!(clock.epoch_ms() - epoch, 1500);
    }
}
