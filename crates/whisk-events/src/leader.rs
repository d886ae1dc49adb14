//! One alarm scheduler per cluster: the controller holding a PostgreSQL session advisory lock
//! runs it, the others wait to take over.
//!
//! The lock lives on a connection of its own, taken out of the store's pool. A session lock
//! is released by the server the moment that session ends, so a leader that dies (killed,
//! host gone, connection cut) frees it without anyone having to notice a timeout; the other
//! controllers try for it every [`RETRY`] and one of them wins. A leader checks its lock
//! connection every [`CHECK`]; when the connection fails it stops its scheduler at once
//! and campaigns again like the others.
//!
//! There can still be a short overlap (the server dropped the session before the old leader
//! noticed), which is why the scheduler claims every occurrence with a compare-and-set
//! (see [`crate::scheduler`]): two schedulers may run for a moment, but an occurrence fires
//! once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::ClientWrapper;
use whisk_store::{PostgresDatabase, StoreError};

use crate::scheduler::Scheduler;

/// How often a controller that does not lead tries for the lock.
pub const RETRY: Duration = Duration::from_secs(1);

/// How often the leader checks that its lock connection is alive.
pub const CHECK: Duration = Duration::from_secs(1);

/// The lock's name; the key is this name and the schema hashed, so clusters sharing one
/// database in different schemas elect their own leaders.
const LOCK_NAME: &str = "whisk-alarm-scheduler";

/// The election of the cluster's scheduler; cheap to clone.
#[derive(Debug, Clone)]
pub struct Election {
    database: PostgresDatabase,
    retry: Duration,
    check: Duration,
    leading: Arc<AtomicBool>,
    terms: Arc<AtomicU64>,
}

impl Election {
    pub fn new(database: PostgresDatabase) -> Self {
        Self {
            database,
            retry: RETRY,
            check: CHECK,
            leading: Arc::new(AtomicBool::new(false)),
            terms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same election with other retry and check intervals (tests).
    pub fn with_intervals(mut self, retry: Duration, check: Duration) -> Self {
        self.retry = retry;
        self.check = check;
        self
    }

    /// Whether this process runs the scheduler now.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// How many times this process has won the lock.
    pub fn terms(&self) -> u64 {
        self.terms.load(Ordering::SeqCst)
    }

    /// Campaigns until `shutdown` resolves; whenever this process holds the lock, `scheduler`
    /// runs, and it stops as soon as the lock connection fails.
    pub async fn run(self, scheduler: Scheduler, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut candidate: Option<ClientWrapper> = None;
        loop {
            let lock = tokio::select! {
                () = &mut shutdown => return,
                won = self.campaign(&mut candidate) => won,
            };
            self.leading.store(true, Ordering::SeqCst);
            let term = self.terms.fetch_add(1, Ordering::SeqCst) + 1;
            tracing::info!(term, "elected to run the alarm scheduler");
            tokio::select! {
                () = &mut shutdown => {
                    self.leading.store(false, Ordering::SeqCst);
                    return;
                }
                () = scheduler.clone().run(std::future::pending()) => {}
                error = self.hold(&lock) => {
                    tracing::warn!(%error, "lost the alarm scheduler lock; scheduling stopped");
                }
            }
            self.leading.store(false, Ordering::SeqCst);
            // Dropping the connection ends the session, and with it the lock if the server
            // still thought it held.
            drop(lock);
        }
    }

    /// Tries for the lock every `retry` until it is won; the connection holding it.
    async fn campaign(&self, candidate: &mut Option<ClientWrapper>) -> ClientWrapper {
        loop {
            match self.try_lock(candidate).await {
                Ok(true) => {
                    if let Some(lock) = candidate.take() {
                        return lock;
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot try for the alarm scheduler lock");
                    *candidate = None;
                }
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    /// One attempt, on the candidate connection (opened if there is none).
    async fn try_lock(&self, candidate: &mut Option<ClientWrapper>) -> Result<bool, StoreError> {
        let client = match candidate {
            Some(client) if !client.is_closed() => client,
            _ => candidate.insert(self.database.dedicated_client().await?),
        };
        let won: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1 || ':' || coalesce(current_schema(), '')))",
                &[&LOCK_NAME],
            )
            .await?
            .try_get(0)?;
        if won {
            // Operators see in pg_stat_activity which session leads.
            client
                .execute(
                    "SELECT set_config('application_name', $1 || ':' || coalesce(current_schema(), ''), false)",
                    &[&LOCK_NAME],
                )
                .await?;
        }
        Ok(won)
    }

    /// Returns when the lock connection fails (or stops answering within a few checks).
    async fn hold(&self, lock: &ClientWrapper) -> StoreError {
        loop {
            tokio::time::sleep(self.check).await;
            let answer = tokio::time::timeout(self.check * 5, lock.simple_query("SELECT 1")).await;
            match answer {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return error.into(),
                Err(_) => {
                    return StoreError::Unavailable("the lock connection stopped answering".into());
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use async_trait::async_trait;
    use serde_json::{Map, Value};
    use whisk_controller::{Clock, SystemClock};

    use super::*;
    use crate::FeedStore;
    use crate::scheduler::{FireOutcome, Triggers};
    use crate::testing;

    const DEADLINE: Duration = Duration::from_secs(30);
    const FAST: Duration = Duration::from_millis(100);

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    #[async_trait]
    impl Triggers for Recorder {
        async fn fire(
            &self,
            namespace: &str,
            name: &str,
            _: &str,
            _: Map<String, Value>,
        ) -> FireOutcome {
            self.0.lock().unwrap().push(format!("{namespace}/{name}"));
            FireOutcome::Fired
        }
        async fn delete(&self, _: &str, _: &str, _: bool) -> Result<(), String> {
            Ok(())
        }
    }

    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn scheduler(feeds: &FeedStore, recorder: &Arc<Recorder>) -> Scheduler {
        Scheduler::new(feeds.clone(), recorder.clone(), Arc::new(SystemClock)).with_max_idle(FAST)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_controller_leads_and_another_takes_over_when_it_dies() {
        let Some(test) = testing::database().await else {
            return;
        };
        let feeds = FeedStore::postgres(&test.database).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let first = Election::new(test.database.clone()).with_intervals(FAST, FAST);
        let second = Election::new(test.database.clone()).with_intervals(FAST, FAST);
        let first_task = tokio::spawn(
            first
                .clone()
                .run(scheduler(&feeds, &recorder), std::future::pending()),
        );
        let second_task = tokio::spawn(
            second
                .clone()
                .run(scheduler(&feeds, &recorder), std::future::pending()),
        );
        until("one leads", || first.is_leading() || second.is_leading()).await;
        // Give the other every chance to (wrongly) win too.
        tokio::time::sleep(FAST * 5).await;
        assert!(
            first.is_leading() != second.is_leading(),
            "exactly one leads"
        );
        let (leader, leader_task, follower, follower_task) = if first.is_leading() {
            (first, first_task, second, second_task)
        } else {
            (second, second_task, first, first_task)
        };
        // The leader's process dies: its lock connection goes with it.
        leader_task.abort();
        assert!(leader_task.await.unwrap_err().is_cancelled());
        until("the other takes over", || follower.is_leading()).await;
        assert_eq!(follower.terms(), 1);
        assert_eq!(leader.terms(), 1);
        follower_task.abort();
        let _ = follower_task.await;
        drop(test);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_whose_session_ends_stops_scheduling_and_campaigns_again() {
        let Some(test) = testing::database().await else {
            return;
        };
        let feeds = FeedStore::postgres(&test.database).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let election = Election::new(test.database.clone()).with_intervals(FAST, FAST);
        let task = tokio::spawn(
            election
                .clone()
                .run(scheduler(&feeds, &recorder), std::future::pending()),
        );
        until("it leads", || election.is_leading()).await;
        // The server ends the leader's session (an administrator, a failover, a cut network).
        let client = test.database.client().await.unwrap();
        let ended: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'whisk-alarm-scheduler:' || current_schema()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(ended, 1);
        // It notices, stops, and (alone in the cluster) wins a second term on a new session.
        until("a second term", || election.terms() == 2).await;
        assert!(election.is_leading());
        task.abort();
        let _ = task.await;
        drop(client);
        drop(test);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_whose_session_ends_campaigns_on_a_new_one_and_still_takes_over() {
        let Some(test) = testing::database().await else {
            return;
        };
        let feeds = FeedStore::postgres(&test.database).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let leader = Election::new(test.database.clone()).with_intervals(FAST, FAST);
        let leader_task = tokio::spawn(
            leader
                .clone()
                .run(scheduler(&feeds, &recorder), std::future::pending()),
        );
        until("it leads", || leader.is_leading()).await;
        let follower = Election::new(test.database.clone()).with_intervals(FAST, FAST);
        let follower_task = tokio::spawn(
            follower
                .clone()
                .run(scheduler(&feeds, &recorder), std::future::pending()),
        );
        // The follower's candidate session tries for the lock and fails.
        let client = test.database.client().await.unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let waiting: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()
                       AND query LIKE '%pg_try_advisory_lock%'",
                    &[&test.schema],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the follower never campaigned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every session but the leader's ends (the pool's and the follower's candidate).
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&test.schema],
            )
            .await
            .unwrap();
        drop(client);
        assert!(leader.is_leading());
        // Then the leader dies: the follower, on a new session, takes over.
        leader_task.abort();
        let _ = leader_task.await;
        until("the follower takes over", || follower.is_leading()).await;
        follower_task.abort();
        let _ = follower_task.await;
        drop(test);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clusters_in_different_schemas_elect_their_own_leaders() {
        let (Some(one), Some(two)) = (testing::database().await, testing::database().await) else {
            return;
        };
        let recorder = Arc::new(Recorder::default());
        let mut elections = Vec::new();
        let mut tasks = Vec::new();
        for test in [&one, &two] {
            let feeds = FeedStore::postgres(&test.database).await.unwrap();
            let election = Election::new(test.database.clone()).with_intervals(FAST, FAST);
            tasks.push(tokio::spawn(
                election
                    .clone()
                    .run(scheduler(&feeds, &recorder), std::future::pending()),
            ));
            elections.push(election);
        }
        until("both lead", || elections.iter().all(Election::is_leading)).await;
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        drop(one);
        drop(two);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_leader_fires_due_alarms_and_the_follower_does_not() {
        let Some(test) = testing::database().await else {
            return;
        };
        let feeds = FeedStore::postgres(&test.database).await.unwrap();
        let mut alarm = crate::store::conformance::registration("guest/t", Some(0));
        alarm.next_fire = Some(SystemClock.now_millis());
        feeds.put_alarm(&alarm).await.unwrap();
        let leader_fires = Arc::new(Recorder::default());
        let follower_fires = Arc::new(Recorder::default());
        let leader = Election::new(test.database.clone()).with_intervals(FAST, FAST);
        let leader_task = tokio::spawn(
            leader
                .clone()
                .run(scheduler(&feeds, &leader_fires), std::future::pending()),
        );
        until("it leads", || leader.is_leading()).await;
        let follower = Election::new(test.database.clone()).with_intervals(FAST, FAST);
        let follower_task = tokio::spawn(
            follower
                .clone()
                .run(scheduler(&feeds, &follower_fires), std::future::pending()),
        );
        until("three fires", || leader_fires.0.lock().unwrap().len() >= 3).await;
        assert!(follower_fires.0.lock().unwrap().is_empty());
        assert!(!follower.is_leading());
        for task in [leader_task, follower_task] {
            task.abort();
            let _ = task.await;
        }
        drop(test);
    }
}
