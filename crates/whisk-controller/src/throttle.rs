//! Per-namespace invocation throttles (REFERENCE §6.3).
//!
//! The per-minute throttle counts requests per namespace uuid in wall-clock minutes
//! (`epoch ms / 60000`); every check counts first, and a request is allowed while the count is
//! at most the limit, so even refused and failing requests use up quota, as in OpenWhisk. The
//! concurrency throttle compares the activations the namespace still has open.
//!
//! Standalone has one controller: it counts in memory and takes the open activations from its
//! balancer. The controllers of a cluster count in the shared store instead (an atomic bump per
//! namespace and minute, and the namespace's pending notes, which every controller writes), so
//! a namespace's limits hold for the whole cluster rather than per controller. OpenWhisk
//! instead divides the limits between controllers and adds 20% for uneven spreading; a shared
//! count needs neither.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use whisk_model::messages;
use whisk_store::ActivationStore;

use crate::error::ApiError;

const MILLIS_PER_MINUTE: u64 = 60_000;

/// Counts of the current minute, per namespace uuid: in this process, or in a shared store.
#[derive(Debug, Default)]
pub struct RateThrottle {
    window: Mutex<Window>,
    shared: Option<SharedCounter>,
}

#[derive(Debug, Default)]
struct Window {
    minute: u64,
    counts: HashMap<String, u64>,
}

/// A store's per-minute counters, under keys `<throttle>/<namespace uuid>`.
#[derive(Debug)]
struct SharedCounter {
    store: Arc<dyn ActivationStore>,
    /// Names the throttle, so invocations and fires do not use up each other's quota.
    throttle: &'static str,
}

impl RateThrottle {
    /// Counts in this process only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts in `store`, shared with every process that uses the same store and `throttle`.
    pub fn shared(store: Arc<dyn ActivationStore>, throttle: &'static str) -> Self {
        Self {
            window: Mutex::default(),
            shared: Some(SharedCounter { store, throttle }),
        }
    }

    /// Counts one request of `namespace_uuid` at `now_millis`; 429 with OpenWhisk's text when
    /// the namespace went over `limit` this minute. A shared store that cannot count fails the
    /// request with the store's error: letting it through would lift the limit for the whole
    /// cluster, and the activation could not be noted in that store anyway.
    pub async fn check(
        &self,
        namespace_uuid: &str,
        limit: u64,
        now_millis: u64,
    ) -> Result<(), ApiError> {
        let minute = now_millis / MILLIS_PER_MINUTE;
        let count = match &self.shared {
            Some(shared) => {
                let key = format!("{}/{namespace_uuid}", shared.throttle);
                shared
                    .store
                    .count_in_minute(&key, minute)
                    .await
                    .inspect_err(|error| {
                        tracing::warn!(%error, key, "cannot count a throttled request");
                    })?
            }
            None => self.count_here(namespace_uuid, minute),
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

    fn count_here(&self, namespace_uuid: &str, minute: u64) -> u64 {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.minute != minute {
            // Earlier minutes never count again: dropping them keeps the map small.
            window.minute = minute;
            window.counts.clear();
        }
        let count = window.counts.entry(namespace_uuid.to_owned()).or_insert(0);
        *count += 1;
        *count
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

    #[tokio::test]
    async fn allows_up_to_the_limit_per_minute_and_namespace() {
        let throttle = RateThrottle::new();
        let minute = 1_717_000_020_000;
        for _ in 0..3 {
            throttle.check("a", 3, minute).await.unwrap();
        }
        let refused = throttle.check("a", 3, minute + 1).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.message(),
            "Too many requests in the last minute (count: 4, allowed: 3)."
        );
        // Refused requests count too.
        assert_eq!(
            throttle
                .check("a", 3, minute + 2)
                .await
                .unwrap_err()
                .message(),
            "Too many requests in the last minute (count: 5, allowed: 3)."
        );
        throttle.check("b", 3, minute).await.unwrap();
        // A new wall-clock minute starts from zero.
        throttle
            .check("a", 3, minute + MILLIS_PER_MINUTE)
            .await
            .unwrap();
    }

    fn throttled_count(throttle: &str) -> f64 {
        let text = whisk_metrics::global().encode().unwrap();
        let series = format!("whisk_throttled_requests_total{{throttle=\"{throttle}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0.0, |value| value.parse().unwrap())
    }

    #[tokio::test]
    async fn refusals_are_counted_in_the_metrics() {
        let (rate, concurrency) = (throttled_count("rate"), throttled_count("concurrency"));
        let throttle = RateThrottle::new();
        throttle.check("metrics", 0, 0).await.unwrap_err();
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

    #[tokio::test]
    async fn shared_counts_hold_across_throttles_of_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap().activations;
        let first = RateThrottle::shared(Arc::clone(&store), "invocations");
        let second = RateThrottle::shared(Arc::clone(&store), "invocations");
        let fires = RateThrottle::shared(store, "fires");
        let minute = 1_717_000_020_000;
        first.check("a", 2, minute).await.unwrap();
        second.check("a", 2, minute).await.unwrap();
        let refused = first.check("a", 2, minute).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.message(),
            "Too many requests in the last minute (count: 3, allowed: 2)."
        );
        fires.check("a", 2, minute).await.unwrap();
        second
            .check("a", 2, minute + MILLIS_PER_MINUTE)
            .await
            .unwrap();
    }

    /// A store without counters (the trait's default) cannot count.
    #[derive(Debug)]
    struct NoCounters;

    #[async_trait::async_trait]
    impl ActivationStore for NoCounters {
        async fn put(&self, _: whisk_store::ActivationEntry) -> whisk_store::StoreResult<()> {
            Ok(())
        }
        async fn get(
            &self,
            _: &str,
            _: &str,
        ) -> whisk_store::StoreResult<Option<serde_json::Value>> {
            Ok(None)
        }
        async fn list(
            &self,
            _: &whisk_store::ActivationQuery,
        ) -> whisk_store::StoreResult<Vec<serde_json::Value>> {
            Ok(Vec::new())
        }
        async fn count(&self, _: &whisk_store::ActivationQuery) -> whisk_store::StoreResult<u64> {
            Ok(0)
        }
        async fn delete_older_than(&self, _: u64) -> whisk_store::StoreResult<u64> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn a_store_that_cannot_count_fails_the_request() {
        let throttle = RateThrottle::shared(Arc::new(NoCounters), "invocations");
        let refused = throttle.check("a", 100, 0).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
