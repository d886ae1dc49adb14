//! Per-namespace invocation throttles (REFERENCE §6.3).
//!
//! The per-minute throttle counts requests per namespace uuid in wall-clock minutes
//! (`epoch ms / 60000`); every check counts first, and a request is allowed while the count is
//! at most the limit, so even refused and failing requests use up quota, as in OpenWhisk. The
//! concurrency throttle compares what the balancer still has in flight for the namespace.
//!
//! whisk-rs standalone has one controller, so it enforces the namespace's limits as they are
//! (OpenWhisk divides them between controllers and adds 20% to make up for uneven spreading).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::http::StatusCode;
use whisk_model::messages;

use crate::error::ApiError;

const MILLIS_PER_MINUTE: u64 = 60_000;

/// Counts of the current minute, per namespace uuid.
#[derive(Debug, Default)]
pub struct RateThrottle {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    minute: u64,
    counts: HashMap<String, u64>,
}

impl RateThrottle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request of `namespace_uuid` at `now_millis`; 429 with OpenWhisk's text when
    /// the namespace went over `limit` this minute.
    pub fn check(&self, namespace_uuid: &str, limit: u64, now_millis: u64) -> Result<(), ApiError> {
        let minute = now_millis / MILLIS_PER_MINUTE;
        let count = {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            if window.minute != minute {
                // Earlier minutes never count again: dropping them keeps the map small.
                window.minute = minute;
                window.counts.clear();
            }
            let count = window.counts.entry(namespace_uuid.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        if count <= limit {
            Ok(())
        } else {
            tracing::info!(
                namespace_uuid,
                count,
                limit,
                "per-minute invocation throttle"
            );
            whisk_metrics::global().throttled(whisk_metrics::Throttle::Rate);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                messages::too_many_requests(count, limit),
            ))
        }
    }
}

/// 429 when `in_flight` activations already reach `limit`.
pub fn check_concurrent(in_flight: u64, limit: u64) -> Result<(), ApiError> {
    if in_flight < limit {
        Ok(())
    } else {
        whisk_metrics::global().throttled(whisk_metrics::Throttle::Concurrency);
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            messages::too_many_concurrent_requests(in_flight, limit),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_per_minute_and_namespace() {
        let throttle = RateThrottle::new();
        let minute = 1_717_000_020_000;
        for _ in 0..3 {
            throttle.check("a", 3, minute).unwrap();
        }
        let refused = throttle.check("a", 3, minute + 1).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.message(),
            "Too many requests in the last minute (count: 4, allowed: 3)."
        );
        // Refused requests count too.
        assert_eq!(
            throttle.check("a", 3, minute + 2).unwrap_err().message(),
            "Too many requests in the last minute (count: 5, allowed: 3)."
        );
        throttle.check("b", 3, minute).unwrap();
        // A new wall-clock minute starts from zero.
        throttle.check("a", 3, minute + MILLIS_PER_MINUTE).unwrap();
    }

    fn throttled_count(throttle: &str) -> f64 {
        let text = whisk_metrics::global().encode().unwrap();
        let series = format!("whisk_throttled_requests_total{{throttle=\"{throttle}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0.0, |value| value.parse().unwrap())
    }

    #[test]
    fn refusals_are_counted_in_the_metrics() {
        let (rate, concurrency) = (throttled_count("rate"), throttled_count("concurrency"));
        let throttle = RateThrottle::new();
        throttle.check("metrics", 0, 0).unwrap_err();
        check_concurrent(1, 1).unwrap_err();
        // Other tests of this process may refuse too, so at least one more each.
        assert!(throttled_count("rate") >= rate + 1.0);
        assert!(throttled_count("concurrency") >= concurrency + 1.0);
    }

    #[test]
    fn concurrency_allows_strictly_below_the_limit() {
        check_concurrent(0, 1).unwrap();
        let refused = check_concurrent(2, 2).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.message(),
            "Too many concurrent requests in flight (count: 2, allowed: 2)."
        );
    }
}
