//! The invoker service: consumes `invoker<N>`, runs each activation, stores its record,
//! publishes its completion, and beats every second.
//!
//! A message is *claimed* on the bus ([`Delivery::claim`]) just before its action starts (once a
//! container is leased), or before a record is written for it without running. Until then its
//! controller may take it back ([`Bus::reclaim`]) to run it elsewhere, e.g. when this invoker
//! looks dead; a claim that finds it taken back drops it unrun. So a message this invoker held
//! without starting it is never lost with it: the bus delivers it again, to this invoker or,
//! through its controller, to another. One claimed and then lost with this invoker ends in the
//! controller's `whisk internal error` record. A redelivered message whose record already exists
//! is not run twice; its completion is simply sent again.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{Instrument, debug, error, info, info_span, warn};
use whisk_bus::{Bus, BusError, Delivery};
use whisk_model::activation::{
    ACTION_REMOVED_WHILE_INVOKING, ActivationStatus, RESOURCE_PROVISION_ERROR, image_pull_error,
};
use whisk_model::bus::{
    ActivationMessage, CompletionMessage, HEALTH_TOPIC, HealthBeat, InvokerState, invoker_topic,
};
use whisk_model::{ActivationResponse, Exec, WhiskAction, WhiskActivation};
use whisk_store::{Store, StoreError};

use crate::actions::{ActionCache, DEFAULT_ACTION_CACHE_ENTRIES, LoadError};
use crate::clock::{Clock, SystemClock};
use crate::container::{ContainerError, ContainerFactory, ContainerSpec, LogRequest};
use crate::payload::{RunContext, action_code, init_payload, run_payload};
use crate::pool::{ContainerPool, ContainerRequest, PoolConfig, PoolError, WarmKey};
use crate::record::{Execution, RecordError, activation_entry, execution_record, fallback_record};

/// The error of an activation cut short by the invoker's shutdown.
pub const INTERRUPTED_BY_SHUTDOWN: &str =
    "The activation was interrupted because its invoker stopped.";
/// The error of an activation whose action could not be read.
pub const ACTION_FETCH_ERROR: &str = "Action could not be fetched.";

/// How often a runtime's "shutting down" answer sends an activation to another container.
const RESCHEDULE_ATTEMPTS: usize = 3;

/// Where waiting for the store or the bus to come back starts and stops backing off: quick
/// enough to catch a short outage early, slow enough not to hammer a server that restarts.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// The invoker's settings.
#[derive(Debug, Clone)]
pub struct InvokerConfig {
    /// This invoker's number: it consumes `invoker<N>` and says so in its beats.
    pub invoker: u32,
    pub pool: PoolConfig,
    /// `__OW_API_HOST` for actions (how they reach the platform's API), if any: in every
    /// container's environment and in each `/init`'s.
    pub api_host: Option<String>,
    pub health_interval: Duration,
    /// How often the pool's idle rules are applied.
    pub tick_interval: Duration,
    /// How long to wait for an activation's log sentinels.
    pub log_wait: Duration,
    /// Activations taken from the bus and not finished, at most (OpenWhisk: one per 128 MB).
    pub max_in_flight: usize,
    pub action_cache_entries: usize,
}

impl InvokerConfig {
    /// Defaults for invoker `invoker` with the pool's defaults.
    pub fn new(invoker: u32) -> InvokerConfig {
        let pool = PoolConfig::default();
        InvokerConfig {
            invoker,
            max_in_flight: in_flight_for(pool.user_memory_mb),
            pool,
            api_host: None,
            health_interval: Duration::from_secs(1),
            tick_interval: Duration::from_secs(1),
            log_wait: Duration::from_secs(10),
            action_cache_entries: DEFAULT_ACTION_CACHE_ENTRIES,
        }
    }
}

/// OpenWhisk peeks one message per 128 MB of container memory; at least one, and twice that so
/// the next activation is ready when a container frees up.
pub fn in_flight_for(user_memory_mb: u64) -> usize {
    usize::try_from((user_memory_mb / 128).max(1) * 2).unwrap_or(usize::MAX)
}

/// Why the invoker could not start.
#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    #[error("cannot consume the invoker's topic: {0}")]
    Bus(#[from] BusError),
}

struct Shared {
    config: InvokerConfig,
    bus: Arc<dyn Bus>,
    store: Store,
    pool: ContainerPool,
    actions: ActionCache,
    clock: Arc<dyn Clock>,
    stopping: watch::Receiver<bool>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invoker")
            .field("invoker", &self.config.invoker)
            .finish_non_exhaustive()
    }
}

/// Starts invokers.
#[derive(Debug)]
pub struct Invoker;

/// A running invoker; [`InvokerHandle::shutdown`] stops it. Dropping the handle leaves the
/// invoker running until the bus closes.
#[derive(Debug)]
pub struct InvokerHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    consumer: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Invoker {
    /// Starts consuming `invoker<N>`, beating on [`HEALTH_TOPIC`] and starting stem cells.
    pub async fn start(
        config: InvokerConfig,
        bus: Arc<dyn Bus>,
        store: Store,
        factory: Arc<dyn ContainerFactory>,
    ) -> Result<InvokerHandle, InvokerError> {
        Invoker::start_with_clock(config, bus, store, factory, Arc::new(SystemClock)).await
    }

    /// [`Invoker::start`] with a given clock (tests).
    pub async fn start_with_clock(
        config: InvokerConfig,
        bus: Arc<dyn Bus>,
        store: Store,
        factory: Arc<dyn ContainerFactory>,
        clock: Arc<dyn Clock>,
    ) -> Result<InvokerHandle, InvokerError> {
        let mut config = config;
        if let Some(api_host) = &config.api_host {
            config
                .pool
                .container_env
                .insert("__OW_API_HOST".to_string(), api_host.clone());
        }
        let consumer = bus.consume(&invoker_topic(config.invoker)).await?;
        let (stop, stopping) = watch::channel(false);
        let shared = Arc::new(Shared {
            pool: ContainerPool::new(config.pool.clone(), factory, clock.clone()),
            actions: ActionCache::new(store.entities.clone(), config.action_cache_entries),
            config,
            bus,
            store,
            clock,
            stopping,
        });
        info!(
            invoker = shared.config.invoker,
            user_memory_mb = shared.config.pool.user_memory_mb,
            "invoker starting"
        );
        let background = vec![
            tokio::spawn(beat(shared.clone())),
            tokio::spawn(tick(shared.clone())),
            tokio::spawn({
                let pool = shared.pool.clone();
                async move { pool.prewarm().await }
            }),
        ];
        let consumer = tokio::spawn(consume(shared.clone(), consumer));
        Ok(InvokerHandle {
            shared,
            stop,
            consumer,
            background,
        })
    }
}

impl InvokerHandle {
    /// The container pool (for diagnostics and tests).
    pub fn pool(&self) -> &ContainerPool {
        &self.shared.pool
    }

    /// Stops taking work, ends running activations with a whisk internal error record (each
    /// stored, completed and acknowledged), says `draining` on the health topic and destroys
    /// every container.
    pub async fn shutdown(self) {
        info!(invoker = self.shared.config.invoker, "invoker stopping");
        for task in &self.background {
            task.abort();
        }
        for task in self.background {
            // Aborted tasks end with a cancellation error; there is nothing else to report.
            let _ = task.await;
        }
        // Said first, so balancers stop sending work while the running activations end.
        send_beat(&self.shared, InvokerState::Draining).await;
        // Ignored: every receiver lives in `shared`, which this handle keeps alive.
        let _ = self.stop.send(true);
        if let Err(error) = self.consumer.await {
            error!(%error, "the invoker's consumer task failed");
        }
        self.shared.pool.shutdown().await;
        info!(invoker = self.shared.config.invoker, "invoker stopped");
    }
}

async fn send_beat(shared: &Shared, state: InvokerState) {
    let beat = HealthBeat {
        invoker: shared.config.invoker,
        state,
        user_memory_mb: shared.config.pool.user_memory_mb,
        sent_at: shared.clock.epoch_ms(),
    };
    match serde_json::to_vec(&beat) {
        Ok(bytes) => {
            if let Err(error) = shared.bus.broadcast(HEALTH_TOPIC, Bytes::from(bytes)).await {
                warn!(%error, "health beat not sent");
            }
        }
        Err(error) => error!(%error, "health beat does not serialize"),
    }
}

async fn beat(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(shared.config.health_interval);
    loop {
        interval.tick().await;
        send_beat(&shared, InvokerState::Healthy).await;
    }
}

async fn tick(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(shared.config.tick_interval);
    loop {
        interval.tick().await;
        shared.pool.tick();
        whisk_metrics::global().pool_sizes(pool_sizes(&shared.pool.snapshot()));
    }
}

/// The pool's gauges: containers by what they are doing, and the activations waiting.
fn pool_sizes(snapshot: &crate::pool::PoolSnapshot) -> whisk_metrics::PoolSizes {
    let bound = |busy: bool| {
        snapshot
            .slots
            .iter()
            .filter(|slot| slot.key.is_some() && (slot.active > 0) == busy)
            .count() as u64
    };
    whisk_metrics::PoolSizes {
        busy: bound(true),
        idle: bound(false),
        prewarm: snapshot.stem_cells() as u64,
        waiting: snapshot.waiting as u64,
    }
}

/// Takes messages while there is room, one task per activation; on shutdown waits for the
/// running ones (which end themselves).
async fn consume(shared: Arc<Shared>, mut consumer: Box<dyn whisk_bus::Consumer>) {
    let room = Arc::new(Semaphore::new(shared.config.max_in_flight.max(1)));
    let mut stopping = shared.stopping.clone();
    let mut running = JoinSet::new();
    loop {
        let permit = tokio::select! {
            Ok(_) = stopping.wait_for(|stop| *stop) => break,
            permit = room.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let delivery = tokio::select! {
            Ok(_) = stopping.wait_for(|stop| *stop) => break,
            delivery = consumer.next() => match delivery {
                Some(delivery) => delivery,
                None => break,
            },
        };
        let shared = shared.clone();
        running.spawn(async move {
            handle(shared, delivery).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow with the invoker's uptime.
        while let Some(done) = running.try_join_next() {
            if let Err(error) = done {
                error!(%error, "an activation task failed");
            }
        }
    }
    while let Some(done) = running.join_next().await {
        if let Err(error) = done {
            error!(%error, "an activation task failed");
        }
    }
}

/// What is known of an activation so far, so an interruption can still write a full record.
#[derive(Debug, Default)]
struct Progress {
    action: Option<Arc<WhiskAction>>,
    start: Option<u64>,
    init_time: Option<u64>,
}

async fn handle(shared: Arc<Shared>, mut delivery: Delivery) {
    let message: ActivationMessage = match serde_json::from_slice(&delivery.payload) {
        Ok(message) => message,
        Err(error) => {
            // Nothing identifies the activation, so no record can be written; acknowledging
            // keeps the bad message from coming back forever.
            error!(%error, "activation message does not decode; dropped");
            if let Err(error) = delivery.ack().await {
                warn!(%error, "ack failed");
            }
            return;
        }
    };
    let span = info_span!(
        "activation",
        tid = %message.transaction_id,
        activation_id = %message.activation_id,
        action = %message.action,
    );
    async move {
        if delivery.redeliveries > 0 {
            info!(
                redeliveries = delivery.redeliveries,
                "activation delivered again"
            );
        }
        if delivery.redeliveries > 0 && resend_existing(&shared, &message).await {
            if let Err(error) = delivery.ack().await {
                warn!(%error, "ack failed");
            }
            return;
        }
        let progress = Mutex::new(Progress::default());
        let mut stopping = shared.stopping.clone();
        let outcome = tokio::select! {
            executed = execute(&shared, &message, &progress, &mut delivery) => Some(executed),
            Ok(_) = stopping.wait_for(|stop| *stop) => None,
        };
        let record = match outcome {
            Some(Executed::Record(record)) => *record,
            Some(Executed::NotClaimed) => return,
            None => {
                info!("activation interrupted by shutdown");
                let progress = progress.into_inner().unwrap_or_else(|p| p.into_inner());
                interrupted(&shared, &message, progress)
            }
        };
        match record {
            Ok(record) => finish(&shared, &message, record, delivery).await,
            Err(error) => {
                error!(%error, "no record can be made for this activation; dropped");
                if let Err(error) = delivery.ack().await {
                    warn!(%error, "ack failed");
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// Calls `call` until it succeeds or fails with an error `transient` does not accept, backing
/// off between attempts; a service that is away is waited for rather than given up on, since
/// giving up would lose a record or a completion. Stops early, with the last error, when the
/// invoker stops. `what` names the call in the logs.
async fn retry<T, E, F>(
    shared: &Shared,
    what: &'static str,
    transient: impl Fn(&E) -> bool,
    mut call: impl FnMut() -> F,
) -> Result<T, E>
where
    E: fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut stopping = shared.stopping.clone();
    let mut backoff = FIRST_RETRY;
    let mut failures: u32 = 0;
    let first_failure = std::time::Instant::now();
    loop {
        let error = match call().await {
            Ok(value) => {
                if failures > 0 {
                    info!(
                        what,
                        attempts = failures + 1,
                        waited_ms =
                            u64::try_from(first_failure.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "succeeded after retrying"
                    );
                }
                return Ok(value);
            }
            Err(error) if transient(&error) => error,
            Err(error) => return Err(error),
        };
        if failures == 0 {
            warn!(what, %error, "service unavailable; retrying until it is back");
        } else {
            debug!(what, %error, attempt = failures + 1, "still unavailable");
        }
        failures += 1;
        tokio::select! {
            Ok(_) = stopping.wait_for(|stop| *stop) => return Err(error),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(LAST_RETRY);
    }
}

/// A store failure that waiting may cure.
fn store_away(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_))
}

/// For a redelivered message: if its record was stored before, publish the completion again
/// instead of running the action twice.
async fn resend_existing(shared: &Shared, message: &ActivationMessage) -> bool {
    // Running the action again because the store cannot say whether it ran would run it
    // twice; waiting for the store costs only time.
    let stored = retry(
        shared,
        "look up the record of a redelivery",
        store_away,
        || {
            shared
                .store
                .activations
                .get(&message.user.namespace, message.activation_id.as_str())
        },
    )
    .await;
    let record = match stored {
        Ok(Some(document)) => match serde_json::from_value::<WhiskActivation>(document) {
            Ok(record) => record,
            Err(error) => {
                warn!(%error, "stored record of a redelivered activation does not decode");
                return false;
            }
        },
        Ok(None) => return false,
        Err(error) => {
            warn!(%error, "cannot check for the record of a redelivered activation");
            return false;
        }
    };
    debug!("redelivered activation already has a record; completing again");
    publish_completion(shared, message, &record).await;
    true
}

/// Claims `delivery` for this invoker. `false` when it is not this invoker's to act on: its
/// controller took it back (it runs elsewhere), or the bus could not be asked (the dropped
/// delivery comes again later).
async fn claim(delivery: &mut Delivery) -> bool {
    match delivery.claim().await {
        Ok(()) => true,
        Err(BusError::Reclaimed) => {
            info!("activation taken back by its controller before it started; not run here");
            false
        }
        Err(error) => {
            warn!(%error, "cannot claim the activation; leaving it for redelivery");
            false
        }
    }
}

/// Claims the message, stores the record, publishes the completion, then acknowledges (which
/// after the claim only confirms).
async fn finish(
    shared: &Shared,
    message: &ActivationMessage,
    record: WhiskActivation,
    mut delivery: Delivery,
) {
    if !claim(&mut delivery).await {
        return;
    }
    let entry = match activation_entry(&record) {
        Ok(entry) => entry,
        Err(error) => {
            error!(%error, "activation record does not encode; dropped");
            if let Err(error) = delivery.ack().await {
                warn!(%error, "ack failed");
            }
            return;
        }
    };
    // Claimed, so the bus will not deliver it again: keep trying while the store is away,
    // until the record is stored or this invoker stops (then the controller closes the
    // activation as lost).
    let stored = retry(shared, "store the activation record", store_away, || {
        let entry = entry.clone();
        async move {
            let storing = std::time::Instant::now();
            let stored = shared.store.activations.put(entry).await;
            whisk_metrics::global().store_call("activation_put", storing.elapsed());
            stored
        }
    })
    .await;
    match stored {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(error) => {
            error!(%error, "activation record not stored; its controller closes it as lost");
            return;
        }
    }
    publish_completion(shared, message, &record).await;
    if let Err(error) = delivery.ack().await {
        warn!(%error, "ack failed");
    }
    whisk_metrics::global().activation_record(&record);
    info!(status = %record.response.status(), duration = record.effective_duration(), "activation done");
}

async fn publish_completion(
    shared: &Shared,
    message: &ActivationMessage,
    record: &WhiskActivation,
) {
    let completion = CompletionMessage {
        transaction_id: message.transaction_id.clone(),
        activation_id: message.activation_id.clone(),
        invoker: shared.config.invoker,
        record: message.blocking.then(|| record.clone()),
        system_error: record.response.status() == ActivationStatus::WhiskInternalError,
    };
    match serde_json::to_vec(&completion) {
        Ok(bytes) => {
            let payload = Bytes::from(bytes);
            // The controller's balancer holds the activation's slots until its completion
            // comes, so a bus that is away is waited for.
            let published = retry(
                shared,
                "publish the completion",
                |error: &BusError| matches!(error, BusError::Unavailable(_)),
                || async {
                    let publishing = std::time::Instant::now();
                    let published = shared
                        .bus
                        .publish(&message.completion_topic, payload.clone())
                        .await;
                    whisk_metrics::global().bus_call("publish", publishing.elapsed());
                    published
                },
            )
            .await;
            if let Err(error) = published {
                // Stopping, or the bus is closed: the record is stored, and a waiting
                // controller finds it in the store.
                warn!(%error, topic = %message.completion_topic, "completion not published");
            }
        }
        Err(error) => error!(%error, "completion does not serialize"),
    }
}

fn interrupted(
    shared: &Shared,
    message: &ActivationMessage,
    progress: Progress,
) -> Result<WhiskActivation, RecordError> {
    let now = shared.clock.epoch_ms();
    let response = ActivationResponse::whisk_error(json!(INTERRUPTED_BY_SHUTDOWN));
    match progress.action {
        Some(action) => execution_record(
            message,
            &action,
            Execution {
                start: progress.start.unwrap_or(now),
                end: now,
                response,
                logs: Vec::new(),
                init_time: progress.init_time,
                timed_out: false,
            },
        ),
        None => fallback_record(message, response, now),
    }
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(|p| p.into_inner())
}

/// How [`execute`] ended.
enum Executed {
    /// The activation's record (or why none can be made).
    Record(Box<Result<WhiskActivation, RecordError>>),
    /// The message could not be claimed before starting: not this invoker's to run now.
    NotClaimed,
}

impl From<Result<WhiskActivation, RecordError>> for Executed {
    fn from(record: Result<WhiskActivation, RecordError>) -> Self {
        Executed::Record(Box::new(record))
    }
}

/// Runs one activation to its record, claiming its message once a container is ready.
async fn execute(
    shared: &Shared,
    message: &ActivationMessage,
    progress: &Mutex<Progress>,
    delivery: &mut Delivery,
) -> Executed {
    let doc_id = message.action.doc_id();
    let loaded = retry(
        shared,
        "load the action",
        |error: &LoadError| matches!(error, LoadError::Store(StoreError::Unavailable(_))),
        || shared.actions.get(&doc_id, &message.revision),
    )
    .await;
    let action = match loaded {
        Ok(action) => action,
        Err(LoadError::Gone { .. }) => {
            info!("action gone before it could run");
            return fallback_record(
                message,
                ActivationResponse::application_error(json!(ACTION_REMOVED_WHILE_INVOKING)),
                shared.clock.epoch_ms(),
            )
            .into();
        }
        Err(error) => {
            error!(%error, "action could not be loaded");
            return fallback_record(
                message,
                ActivationResponse::whisk_error(json!(ACTION_FETCH_ERROR)),
                shared.clock.epoch_ms(),
            )
            .into();
        }
    };
    lock(progress).action = Some(action.clone());
    let Some(code) = action_code(&action) else {
        error!("a sequence was sent to an invoker");
        return fallback_record(
            message,
            ActivationResponse::whisk_error(json!(ACTION_FETCH_ERROR)),
            shared.clock.epoch_ms(),
        )
        .into();
    };
    let image = match &action.exec {
        Exec::Blackbox { image, .. } => Some(image.clone()),
        _ => None,
    };
    let env = shared.config.pool.container_env.clone();
    let request = ContainerRequest {
        key: WarmKey {
            namespace: message.user.namespace.clone(),
            action: doc_id,
            revision: message.revision.clone(),
        },
        spec: ContainerSpec {
            kind: action.exec.kind().to_string(),
            image,
            memory_mb: action.limits.memory,
            action: Some(code.clone()),
            namespace: Some(message.user.namespace.clone()),
            env,
        },
        concurrency: u32::try_from(action.limits.concurrency).unwrap_or(u32::MAX),
    };
    let timeout = Duration::from_millis(action.limits.timeout);
    let action_name = format!("/{}", message.action.doc_id());

    let mut attempt = 0;
    loop {
        attempt += 1;
        let failed_start = |shared: &Shared, error: &PoolError| {
            let now = shared.clock.epoch_ms();
            let response = match error {
                // The developer named an image the platform cannot get: their error, not ours.
                PoolError::Container(ContainerError::ImagePull { image, .. }) => {
                    ActivationResponse::developer_error(json!(image_pull_error(image)))
                }
                _ => ActivationResponse::whisk_error(json!(RESOURCE_PROVISION_ERROR)),
            };
            execution_record(
                message,
                &action,
                Execution {
                    start: now,
                    end: now,
                    response,
                    logs: Vec::new(),
                    init_time: None,
                    timed_out: false,
                },
            )
        };
        let mut lease = match shared.pool.acquire(&request).await {
            Ok(lease) => lease,
            Err(error) => {
                error!(%error, "no container for the activation");
                return failed_start(shared, &error).into();
            }
        };
        // The last moment its controller could take it back: from here it runs here.
        if !claim(delivery).await {
            let reusable = !lease.needs_init();
            lease.release(reusable);
            return Executed::NotClaimed;
        }
        if attempt == 1 {
            info!("activation claimed; starting");
        }
        let start = shared.clock.epoch_ms();
        lock(progress).start = Some(start);
        let context = RunContext {
            namespace: message.user.namespace.clone(),
            action_name: action_name.clone(),
            action_version: action.version.to_string(),
            activation_id: message.activation_id.to_string(),
            transaction_id: message.transaction_id.clone(),
            deadline_ms: start + action.limits.timeout,
            api_key: message.api_key.clone(),
            api_host: shared.config.api_host.clone(),
        };
        let mut init_time = None;
        if lease.needs_init() {
            let payload = init_payload(&code, &message.init_args, &context);
            let outcome = lease.container().init(&payload, timeout).await;
            let elapsed = u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX);
            init_time = Some(elapsed);
            lock(progress).init_time = init_time;
            if let Some(response) = outcome.response {
                let end = shared.clock.epoch_ms();
                debug!(container = lease.container().id(), "init failed");
                let logs = lease
                    .container()
                    .logs(log_request(shared, &action, &response))
                    .await;
                lease.release(false);
                return execution_record(
                    message,
                    &action,
                    Execution {
                        start,
                        end,
                        response,
                        logs,
                        init_time,
                        timed_out: outcome.timed_out,
                    },
                )
                .into();
            }
            lease.initialized();
        }
        let payload = run_payload(message.content.clone(), &context);
        let outcome = lease.container().run(&payload, timeout).await;
        let end = shared.clock.epoch_ms();
        if outcome.reschedule && attempt < RESCHEDULE_ATTEMPTS {
            info!(
                container = lease.container().id(),
                "runtime is shutting down; running elsewhere"
            );
            lease.release(false);
            continue;
        }
        let response = outcome.response.unwrap_or_else(|| {
            ActivationResponse::developer_error(json!(whisk_model::activation::ABNORMAL_RUN))
        });
        let logs = lease
            .container()
            .logs(log_request(shared, &action, &response))
            .await;
        lease.release(outcome.reusable);
        return execution_record(
            message,
            &action,
            Execution {
                start,
                end,
                response,
                logs,
                init_time,
                timed_out: outcome.timed_out,
            },
        )
        .into();
    }
}

fn log_request(shared: &Shared, action: &WhiskAction, response: &ActivationResponse) -> LogRequest {
    LogRequest {
        limit_bytes: action.limits.logs_bytes(),
        developer_error: response.status() == ActivationStatus::DeveloperError,
        wait: shared.config.log_wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{PoolSnapshot, SlotView, WarmKey};

    fn slot(bound: bool, active: u32) -> SlotView {
        SlotView {
            container: Some("c".into()),
            key: bound.then(|| WarmKey {
                namespace: "guest".into(),
                action: "guest/hello".into(),
                revision: "1".into(),
            }),
            kind: "nodejs:20".into(),
            memory_mb: 256,
            active,
            initialized: bound,
            paused: false,
            doomed: false,
        }
    }

    #[test]
    fn pool_sizes_tell_busy_idle_and_stem_cells_apart() {
        let snapshot = PoolSnapshot {
            slots: vec![slot(true, 2), slot(true, 0), slot(true, 0), slot(false, 0)],
            used_mb: 1024,
            waiting: 3,
        };
        assert_eq!(
            pool_sizes(&snapshot),
            whisk_metrics::PoolSizes {
                busy: 1,
                idle: 2,
                prewarm: 1,
                waiting: 3,
            }
        );
    }
}
