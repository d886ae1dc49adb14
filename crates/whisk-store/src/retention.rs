//! Periodic deletion of old activation records, for any adapter.
//!
//! Activations are written on every invocation and never updated, so without
//! a purge the table only grows. OpenWhisk leaves this to CouchDB views and
//! operators; here the binary runs one small task per process instead.
//! Several processes purging the same database is harmless: the delete is
//! idempotent and the later one finds nothing.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::activation::ActivationStore;

/// The running purge task; dropping it (or [`RetentionTask::stop`]) ends it.
#[derive(Debug)]
pub struct RetentionTask {
    handle: JoinHandle<()>,
}

impl RetentionTask {
    /// Ends the task and waits until it is gone, so no purge runs after this returns.
    pub async fn stop(mut self) {
        self.handle.abort();
        // The task can only end by being aborted; the result says nothing more.
        let _ = (&mut self.handle).await;
    }
}

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Deletes, now and then every `every`, the activations that started more than
/// `ttl` ago. Must be called inside a tokio runtime.
///
/// A failed purge is logged and retried at the next tick: the store being
/// briefly unreachable must not stop retention for the life of the process.
/// An `every` of zero is taken as one millisecond (tokio refuses a zero period).
pub fn spawn_retention(
    activations: Arc<dyn ActivationStore>,
    ttl: Duration,
    every: Duration,
) -> RetentionTask {
    let period = every.max(Duration::from_millis(1));
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let handle = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let cutoff = now_epoch_ms().saturating_sub(ttl_ms);
            match activations.delete_older_than(cutoff).await {
                Ok(deleted) => {
                    tracing::debug!(cutoff_epoch_ms = cutoff, deleted, "retention purge done");
                }
                Err(error) => {
                    tracing::warn!(cutoff_epoch_ms = cutoff, %error, "retention purge failed; retrying at the next tick");
                }
            }
        }
    });
    tracing::info!(
        ttl_secs = ttl.as_secs(),
        every_secs = period.as_secs(),
        "started activation retention"
    );
    RetentionTask { handle }
}

/// Milliseconds since the epoch; a clock before 1970 counts as the epoch,
/// which makes the purge delete nothing rather than everything.
fn now_epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    use async_trait::async_trait;

    use super::*;
    use crate::activation::{ActivationEntry, ActivationQuery};
    use crate::conformance::test_activation;
    use crate::error::{StoreError, StoreResult};
    use crate::open_sqlite;

    const DEADLINE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn purges_only_records_older_than_the_ttl() {
        let directory = tempfile::tempdir().unwrap();
        let store = open_sqlite(directory.path()).unwrap();
        let now = now_epoch_ms();
        let hour = 3_600_000;
        for (id, start) in [
            ("ancient", now - 3 * hour),
            ("old", now - 2 * hour),
            ("fresh", now),
        ] {
            store
                .activations
                .put(test_activation("guest", id, "hello", None, start))
                .await
                .unwrap();
        }
        let task = spawn_retention(
            Arc::clone(&store.activations),
            Duration::from_secs(3600),
            Duration::from_millis(20),
        );
        let query = ActivationQuery::new("guest");
        let started = Instant::now();
        while store.activations.count(&query).await.unwrap() != 1 {
            assert!(started.elapsed() < DEADLINE, "the purge never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.stop().await;
        assert!(
            store
                .activations
                .get("guest", "fresh")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .activations
                .get("guest", "old")
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Fails every purge and counts the attempts.
    #[derive(Debug, Default)]
    struct FailingStore {
        attempts: AtomicU64,
        last_cutoff: AtomicU64,
    }

    #[async_trait]
    impl ActivationStore for FailingStore {
        async fn put(&self, _entry: ActivationEntry) -> StoreResult<()> {
            Err(StoreError::Unavailable("test".to_string()))
        }
        async fn get(&self, _: &str, _: &str) -> StoreResult<Option<serde_json::Value>> {
            Err(StoreError::Unavailable("test".to_string()))
        }
        async fn list(&self, _: &ActivationQuery) -> StoreResult<Vec<serde_json::Value>> {
            Err(StoreError::Unavailable("test".to_string()))
        }
        async fn count(&self, _: &ActivationQuery) -> StoreResult<u64> {
            Err(StoreError::Unavailable("test".to_string()))
        }
        async fn delete_older_than(&self, epoch_ms: u64) -> StoreResult<u64> {
            self.last_cutoff.store(epoch_ms, Ordering::SeqCst);
            self.attempts.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Unavailable("database down".to_string()))
        }
    }

    #[tokio::test]
    async fn keeps_purging_after_failures_and_stops_when_asked() {
        let store = Arc::new(FailingStore::default());
        let before = now_epoch_ms();
        let task = spawn_retention(
            Arc::clone(&store) as Arc<dyn ActivationStore>,
            Duration::from_secs(60),
            Duration::ZERO,
        );
        let started = Instant::now();
        while store.attempts.load(Ordering::SeqCst) < 3 {
            assert!(
                started.elapsed() < DEADLINE,
                "the purge stopped after a failure"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cutoff = store.last_cutoff.load(Ordering::SeqCst);
        assert!(cutoff >= before - 60_000 && cutoff <= now_epoch_ms() - 60_000);

        task.stop().await;
        let after_stop = store.attempts.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(store.attempts.load(Ordering::SeqCst), after_stop);
    }

    #[tokio::test]
    async fn dropping_the_task_ends_it() {
        let store = Arc::new(FailingStore::default());
        let task = spawn_retention(
            Arc::clone(&store) as Arc<dyn ActivationStore>,
            Duration::from_secs(60),
            Duration::from_millis(1),
        );
        drop(task);
        // The aborted task lets go of its store handle once it is gone.
        let started = Instant::now();
        while Arc::strong_count(&store) > 1 {
            assert!(started.elapsed() < DEADLINE, "the task outlived its handle");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
