#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::container::ActionCode;
use crate::fake::FakeFactory;

struct Fixture {
    pool: ContainerPool,
    fake: FakeFactory,
    clock: Arc<ManualClock>,
}

fn fixture(config: PoolConfig) -> Fixture {
    let fake = FakeFactory::new();
    let clock = Arc::new(ManualClock::new());
    let pool = ContainerPool::new(config, Arc::new(fake.clone()), clock.clone());
    Fixture { pool, fake, clock }
}

fn budget(user_memory_mb: u64) -> PoolConfig {
    PoolConfig {
        user_memory_mb,
        ..PoolConfig::default()
    }
}

fn request(namespace: &str, action: &str, revision: &str, memory_mb: u64) -> ContainerRequest {
    ContainerRequest {
        key: WarmKey {
            namespace: namespace.into(),
            action: action.into(),
            revision: revision.into(),
        },
        spec: ContainerSpec {
            kind: "nodejs:20".into(),
            image: None,
            memory_mb,
            action: Some(ActionCode {
                name: action.into(),
                code: Some("function main(p) { return p }".into()),
                main: "main".into(),
                binary: false,
            }),
            namespace: Some(namespace.into()),
            env: Default::default(),
        },
        concurrency: 1,
    }
}

fn hello() -> ContainerRequest {
    request("guest", "guest/hello", "1", 256)
}

/// Acquires and initializes, as the service does.
async fn ready(pool: &ContainerPool, request: &ContainerRequest) -> Lease {
    let mut lease = pool.acquire(request).await.unwrap();
    if lease.needs_init() {
        lease.initialized();
    }
    lease
}

#[tokio::test]
async fn a_cold_start_creates_a_container_that_is_then_reused_warm() {
    let f = fixture(PoolConfig::default());
    let lease = f.pool.acquire(&hello()).await.unwrap();
    assert!(lease.needs_init());
    assert_eq!(f.fake.created(), 1);
    assert_eq!(f.fake.containers()[0].spec, hello().spec);
    let first = lease.container().id().to_string();
    let mut lease = lease;
    lease.initialized();
    lease.release(true);

    let lease = f.pool.acquire(&hello()).await.unwrap();
    assert!(
        !lease.needs_init(),
        "a warm container is not initialized again"
    );
    assert_eq!(lease.container().id(), first);
    assert_eq!(f.fake.created(), 1);
}

#[tokio::test]
async fn a_new_revision_or_another_namespace_gets_its_own_container() {
    let f = fixture(PoolConfig::default());
    ready(&f.pool, &hello()).await.release(true);
    let updated = request("guest", "guest/hello", "2", 256);
    let lease = f.pool.acquire(&updated).await.unwrap();
    assert!(lease.needs_init());
    lease.release(true);
    let other_namespace = request("alice", "guest/hello", "1", 256);
    assert!(f.pool.acquire(&other_namespace).await.unwrap().needs_init());
    assert_eq!(f.fake.created(), 3);
}

#[tokio::test]
async fn concurrent_activations_beyond_the_concurrency_limit_get_duplicates() {
    let f = fixture(PoolConfig::default());
    let first = ready(&f.pool, &hello()).await;
    let second = ready(&f.pool, &hello()).await;
    assert_ne!(first.container().id(), second.container().id());
    assert_eq!(f.fake.created(), 2);
}

#[tokio::test]
async fn an_initialized_container_with_free_concurrency_is_shared() {
    let f = fixture(PoolConfig::default());
    let mut shared = hello();
    shared.concurrency = 2;
    let first = ready(&f.pool, &shared).await;
    let second = ready(&f.pool, &shared).await;
    assert_eq!(first.container().id(), second.container().id());
    let third = ready(&f.pool, &shared).await;
    assert_ne!(third.container().id(), first.container().id());
    assert_eq!(f.fake.created(), 2);
}

#[tokio::test]
async fn a_request_joins_a_container_still_initializing_and_waits_for_its_init() {
    let f = fixture(PoolConfig::default());
    let mut shared = hello();
    shared.concurrency = 2;
    let mut first = f.pool.acquire(&shared).await.unwrap();
    assert!(first.needs_init());
    let pool = f.pool.clone();
    let request = shared.clone();
    let joined = tokio::spawn(async move {
        let lease = pool.acquire(&request).await.unwrap();
        (lease.container().id().to_string(), lease.needs_init())
    });
    wait_for(|| f.pool.snapshot().slots[0].active == 2).await;
    assert!(!joined.is_finished(), "it waits for /init");
    first.initialized();
    let (container, needs_init) = joined.await.unwrap();
    assert_eq!(container, first.container().id());
    assert!(!needs_init);
    assert_eq!(f.fake.created(), 1);
}

#[tokio::test]
async fn a_request_that_joined_a_failing_init_gets_another_container() {
    let f = fixture(PoolConfig::default());
    let mut shared = hello();
    shared.concurrency = 2;
    let first = f.pool.acquire(&shared).await.unwrap();
    let failed = first.container().id().to_string();
    let pool = f.pool.clone();
    let request = shared.clone();
    let joined = tokio::spawn(async move {
        let lease = pool.acquire(&request).await.unwrap();
        (lease.container().id().to_string(), lease.needs_init())
    });
    wait_for(|| f.pool.snapshot().slots[0].active == 2).await;
    first.release(false);
    let (container, needs_init) = joined.await.unwrap();
    assert_ne!(container, failed);
    assert!(needs_init);
    f.pool.settle().await;
    assert!(f.fake.containers()[0].is_destroyed());
}

#[tokio::test]
async fn concurrency_one_never_joins_an_initializing_container() {
    let f = fixture(PoolConfig::default());
    let first = f.pool.acquire(&hello()).await.unwrap();
    let second = f.pool.acquire(&hello()).await.unwrap();
    assert!(first.needs_init() && second.needs_init());
    assert_ne!(first.container().id(), second.container().id());
}

fn stem_config(count: u32) -> PoolConfig {
    PoolConfig {
        stem_cells: vec![StemCellConfig {
            kind: "nodejs:20".into(),
            memory_mb: 256,
            count,
        }],
        ..PoolConfig::default()
    }
}

#[tokio::test]
async fn a_matching_stem_cell_serves_a_cold_start_and_is_replaced() {
    let f = fixture(stem_config(1));
    f.pool.prewarm().await;
    assert_eq!(f.fake.created(), 1);
    let stem = f.fake.containers()[0].clone();
    assert_eq!(stem.spec.action, None, "stem cells start without code");
    assert_eq!(stem.spec.namespace, None);

    let lease = f.pool.acquire(&hello()).await.unwrap();
    assert!(lease.needs_init(), "a stem cell still needs /init");
    assert_eq!(lease.container().id(), stem.id);
    f.pool.settle().await;
    assert_eq!(f.fake.created(), 2, "a replacement stem cell was started");
    let snapshot = f.pool.snapshot();
    assert_eq!(snapshot.stem_cells(), 1);
    assert_eq!(snapshot.warm(), 1);
}

#[tokio::test]
async fn stem_cells_get_the_containers_environment() {
    let mut config = stem_config(1);
    config
        .container_env
        .insert("__OW_API_HOST".into(), "http://10.0.0.1:3233".into());
    let f = fixture(config);
    f.pool.prewarm().await;
    assert_eq!(
        f.fake.containers()[0].spec.env["__OW_API_HOST"],
        "http://10.0.0.1:3233"
    );
}

#[tokio::test]
async fn a_stem_cell_of_another_memory_size_is_not_used() {
    let f = fixture(stem_config(1));
    f.pool.prewarm().await;
    let lease = f
        .pool
        .acquire(&request("guest", "guest/big", "1", 512))
        .await
        .unwrap();
    assert_ne!(lease.container().id(), f.fake.containers()[0].id);
    assert_eq!(f.pool.snapshot().stem_cells(), 1);
}

#[tokio::test]
async fn stem_cells_are_only_started_while_memory_allows() {
    let f = fixture(PoolConfig {
        user_memory_mb: 600,
        ..stem_config(5)
    });
    f.pool.prewarm().await;
    assert_eq!(f.fake.created(), 2);
    assert_eq!(f.pool.snapshot().used_mb, 512);
}

#[tokio::test]
async fn a_stem_cell_that_fails_to_start_frees_its_memory() {
    let f = fixture(stem_config(1));
    f.fake.fail_creates(true);
    f.pool.prewarm().await;
    assert_eq!(f.pool.snapshot().used_mb, 0);
    assert!(f.pool.snapshot().slots.is_empty());
}

#[tokio::test]
async fn stem_cells_come_from_the_manifest() {
    let manifest = RuntimeManifest::builtin().unwrap();
    let cells = stem_cells_from_manifest(&manifest);
    assert!(
        cells
            .iter()
            .any(|c| c.kind == "nodejs:20" && c.memory_mb == 256 && c.count >= 1),
        "{cells:?}"
    );
}

#[tokio::test]
async fn idle_warm_containers_are_evicted_least_recently_used_first() {
    let f = fixture(budget(512));
    let a = request("guest", "guest/a", "1", 256);
    let b = request("guest", "guest/b", "1", 256);
    ready(&f.pool, &a).await.release(true);
    f.clock.advance(Duration::from_millis(5));
    ready(&f.pool, &b).await.release(true);
    let (container_a, container_b) = (
        f.fake.containers()[0].clone(),
        f.fake.containers()[1].clone(),
    );

    let lease = f
        .pool
        .acquire(&request("guest", "guest/c", "1", 256))
        .await
        .unwrap();
    f.pool.settle().await;
    assert!(
        container_a.is_destroyed(),
        "the least recently used one goes"
    );
    assert!(!container_b.is_destroyed());
    assert_eq!(f.pool.snapshot().used_mb, 512);
    drop(lease);
}

#[tokio::test]
async fn busy_containers_are_never_evicted_and_the_request_waits_in_line() {
    let f = fixture(budget(512));
    let a = ready(&f.pool, &request("guest", "guest/a", "1", 256)).await;
    let b = ready(&f.pool, &request("guest", "guest/b", "1", 256)).await;
    let pool = f.pool.clone();
    let waiting = tokio::spawn(async move {
        pool.acquire(&request("guest", "guest/c", "1", 256))
            .await
            .map(|lease| lease.container().id().to_string())
    });
    wait_for(|| f.pool.snapshot().waiting == 1).await;
    assert!(!waiting.is_finished());
    assert_eq!(f.fake.created(), 2);

    a.release(true);
    let served = waiting.await.unwrap().unwrap();
    f.pool.settle().await;
    assert!(
        f.fake.containers()[0].is_destroyed(),
        "the idle one was evicted for it"
    );
    assert_eq!(served, f.fake.containers()[2].id);
    drop(b);
}

#[tokio::test]
async fn the_line_is_first_in_first_out() {
    let f = fixture(budget(256));
    let holder = ready(&f.pool, &request("guest", "guest/a", "1", 256)).await;
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for name in ["first", "second"] {
        let pool = f.pool.clone();
        let order = order_tx.clone();
        tasks.push(tokio::spawn(async move {
            let lease = pool
                .acquire(&request("guest", &format!("guest/{name}"), "1", 256))
                .await
                .unwrap();
            order.send(name).unwrap();
            lease.release(true);
        }));
        let expected = tasks.len();
        wait_for(|| f.pool.snapshot().waiting == expected).await;
    }
    holder.release(true);
    assert_eq!(order_rx.recv().await, Some("first"));
    assert_eq!(order_rx.recv().await, Some("second"));
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn a_request_larger_than_the_budget_fails_at_once() {
    let f = fixture(budget(256));
    let error = f
        .pool
        .acquire(&request("guest", "guest/a", "1", 512))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        PoolError::TooLarge {
            needed: 512,
            budget: 256
        }
    );
}

#[tokio::test]
async fn a_failed_container_is_destroyed_and_never_reused() {
    let f = fixture(PoolConfig::default());
    let lease = ready(&f.pool, &hello()).await;
    let first = lease.container().id().to_string();
    lease.release(false);
    f.pool.settle().await;
    assert!(f.fake.containers()[0].is_destroyed());
    assert_eq!(f.pool.snapshot().used_mb, 0);
    let lease = f.pool.acquire(&hello()).await.unwrap();
    assert_ne!(lease.container().id(), first);
    assert!(lease.needs_init());
}

#[tokio::test]
async fn a_shared_container_that_failed_takes_no_new_work_and_goes_when_idle() {
    let f = fixture(PoolConfig::default());
    let mut shared = hello();
    shared.concurrency = 2;
    let first = ready(&f.pool, &shared).await;
    let second = ready(&f.pool, &shared).await;
    first.release(false);
    let third = ready(&f.pool, &shared).await;
    assert_ne!(third.container().id(), second.container().id());
    assert!(!f.fake.containers()[0].is_destroyed(), "still busy");
    second.release(true);
    f.pool.settle().await;
    assert!(f.fake.containers()[0].is_destroyed());
}

#[tokio::test]
async fn a_dropped_lease_destroys_its_container() {
    let f = fixture(PoolConfig::default());
    drop(ready(&f.pool, &hello()).await);
    f.pool.settle().await;
    assert!(f.fake.containers()[0].is_destroyed());
    assert!(f.pool.snapshot().slots.is_empty());
}

#[tokio::test]
async fn a_failed_creation_is_an_error_and_frees_its_memory() {
    let f = fixture(budget(256));
    f.fake.fail_creates(true);
    let error = f.pool.acquire(&hello()).await.unwrap_err();
    assert!(matches!(
        error,
        PoolError::Container(ContainerError::Create(_))
    ));
    assert_eq!(f.pool.snapshot().used_mb, 0);
    f.fake.fail_creates(false);
    assert!(f.pool.acquire(&hello()).await.is_ok());
}

#[tokio::test]
async fn idle_containers_pause_after_the_grace_and_resume_when_used() {
    let f = fixture(PoolConfig::default());
    ready(&f.pool, &hello()).await.release(true);
    let container = f.fake.containers()[0].clone();

    f.clock
        .advance(DEFAULT_PAUSE_GRACE - Duration::from_millis(1));
    f.pool.tick();
    f.pool.settle().await;
    assert!(!container.is_paused(), "not before the grace");

    f.clock.advance(Duration::from_millis(1));
    f.pool.tick();
    f.pool.settle().await;
    assert!(container.is_paused());
    f.pool.tick();
    f.pool.settle().await;
    assert_eq!(container.pause_count(), 1, "paused once");

    let lease = f.pool.acquire(&hello()).await.unwrap();
    assert_eq!(lease.container().id(), container.id);
    assert!(!container.is_paused());
    assert_eq!(container.resume_count(), 1);
}

#[tokio::test]
async fn busy_containers_are_not_paused() {
    let f = fixture(PoolConfig::default());
    let lease = ready(&f.pool, &hello()).await;
    f.clock.advance(DEFAULT_IDLE_TIMEOUT * 2);
    f.pool.tick();
    f.pool.settle().await;
    let container = f.fake.containers()[0].clone();
    assert!(!container.is_paused() && !container.is_destroyed());
    drop(lease);
}

#[tokio::test]
async fn idle_containers_are_destroyed_after_the_idle_timeout() {
    let f = fixture(PoolConfig {
        pause_grace: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        ..PoolConfig::default()
    });
    ready(&f.pool, &hello()).await.release(true);
    f.clock.advance(Duration::from_secs(2));
    f.pool.tick();
    f.clock.advance(Duration::from_secs(58));
    f.pool.tick();
    f.pool.settle().await;
    let container = f.fake.containers()[0].clone();
    assert!(container.is_destroyed());
    assert!(f.pool.snapshot().slots.is_empty());
}

#[tokio::test]
async fn a_container_that_does_not_resume_is_replaced() {
    let f = fixture(PoolConfig::default());
    ready(&f.pool, &hello()).await.release(true);
    f.clock.advance(DEFAULT_PAUSE_GRACE);
    f.pool.tick();
    f.pool.settle().await;
    f.fake.fail_resumes(true);
    let lease = f.pool.acquire(&hello()).await.unwrap();
    f.pool.settle().await;
    assert!(f.fake.containers()[0].is_destroyed());
    assert_eq!(lease.container().id(), f.fake.containers()[1].id);
    assert!(lease.needs_init());
}

#[tokio::test]
async fn stem_cells_are_evicted_when_nothing_else_makes_room() {
    let f = fixture(PoolConfig {
        user_memory_mb: 512,
        ..stem_config(1)
    });
    f.pool.prewarm().await;
    let stem = f.fake.containers()[0].clone();
    let lease = ready(&f.pool, &request("guest", "guest/big", "1", 512)).await;
    f.pool.settle().await;
    assert!(stem.is_destroyed());
    assert_eq!(
        f.pool.snapshot().stem_cells(),
        0,
        "no room for a replacement"
    );
    drop(lease);
}

#[tokio::test]
async fn shutdown_fails_the_line_and_destroys_every_container() {
    let f = fixture(PoolConfig {
        user_memory_mb: 512,
        ..stem_config(1)
    });
    f.pool.prewarm().await;
    let busy = ready(&f.pool, &request("guest", "guest/a", "1", 256)).await;
    ready(&f.pool, &request("guest", "guest/b", "1", 256))
        .await
        .release(true);
    let pool = f.pool.clone();
    let waiting = tokio::spawn(async move {
        pool.acquire(&request("guest", "guest/c", "1", 512))
            .await
            .map(|_| ())
    });
    wait_for(|| f.pool.snapshot().waiting == 1).await;
    f.pool.shutdown().await;
    assert_eq!(waiting.await.unwrap(), Err(PoolError::Closed));
    assert_eq!(
        f.pool.acquire(&hello()).await.unwrap_err(),
        PoolError::Closed
    );
    assert_eq!(f.fake.alive().len(), 1, "only the busy one is left");
    busy.release(true);
    f.pool.settle().await;
    assert!(f.fake.alive().is_empty(), "{:?}", f.fake.alive());
}

#[tokio::test]
async fn a_container_that_does_not_pause_is_destroyed() {
    let f = fixture(PoolConfig::default());
    ready(&f.pool, &hello()).await.release(true);
    f.fake.fail_pauses(true);
    f.clock.advance(DEFAULT_PAUSE_GRACE);
    f.pool.tick();
    f.pool.settle().await;
    assert!(f.fake.containers()[0].is_destroyed());
    assert!(f.pool.snapshot().slots.is_empty());
}

#[tokio::test]
async fn a_request_that_gives_up_waiting_leaves_nothing_behind() {
    let f = fixture(budget(256));
    let holder = ready(&f.pool, &request("guest", "guest/a", "1", 256)).await;
    let pool = f.pool.clone();
    let waiting = tokio::spawn(async move {
        pool.acquire(&request("guest", "guest/b", "1", 256))
            .await
            .map(|_| ())
    });
    wait_for(|| f.pool.snapshot().waiting == 1).await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    assert_eq!(f.pool.snapshot().waiting, 0);
    holder.release(true);
    f.pool.settle().await;
    let snapshot = f.pool.snapshot();
    assert_eq!(
        snapshot.used_mb, 256,
        "no container was made for the abandoned request"
    );
    assert_eq!(f.fake.created(), 1);
}

/// Polls a condition that background tasks make true (no fixed sleeps).
async fn wait_for(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in 30 s"
        );
        tokio::task::yield_now().await;
    }
}

/// The count of `start` in the process's `whisk_container_starts_total`.
fn starts(start: &str) -> f64 {
    let text = whisk_metrics::global().encode().unwrap();
    let series = format!("whisk_container_starts_total{{start=\"{start}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test]
async fn cold_and_warm_starts_are_counted_in_the_metrics() {
    let (cold, warm) = (starts("cold"), starts("warm"));
    let f = fixture(PoolConfig::default());
    ready(&f.pool, &hello()).await.release(true);
    ready(&f.pool, &hello()).await.release(true);
    // Other tests of this process take containers too, so at least one more each.
    assert!(starts("cold") >= cold + 1.0);
    assert!(starts("warm") >= warm + 1.0);
}
