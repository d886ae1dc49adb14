//! The load balancer (REFERENCE §15.2): which invoker runs an activation, and what each
//! invoker and namespace has in flight.
//!
//! Invokers are known only from their health beats on the bus; one that stops beating for
//! [`BalancerConfig::down_after`] is treated as down and gets no new work. Each activation goes
//! to its *home* invoker, found by hashing the invocation namespace and the action the way
//! OpenWhisk's sharding balancer does, so the same action keeps landing where its containers
//! are warm; when the home invoker is down or its memory is used up, the search steps on by a
//! step coprime to the number of invokers, which visits every invoker once. When every healthy
//! invoker is full, a random healthy one is overloaded rather than refusing the work (its own
//! queue absorbs it), as OpenWhisk does.
//!
//! Memory slots are taken when an activation is published and given back when its completion
//! arrives on this controller's completion topic, or, if the completion never comes (the
//! invoker died), after the activation's longest possible run, so capacity cannot leak.
//!
//! Activations are published under this controller's key ([`publisher_key`]), so that when an
//! invoker goes down [`LoadBalancer::requeue_from`] can take back those it has not claimed
//! (started) yet and send them elsewhere, moving their slots and keeping their waiters. Only
//! the controller that published a message takes it back, so its own bookkeeping is the only
//! one that changes.

mod hashing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use whisk_bus::{Bus, BusError, News};
use whisk_model::ActivationId;
use whisk_model::bus::{
    ActivationMessage, CompletionMessage, HEALTH_TOPIC, HealthBeat, InvokerState, completion_topic,
    invoker_topic,
};

pub use hashing::{home_and_step, java_string_hash, pairwise_coprimes_up_to};

/// How long an invoker may stay silent before it counts as down. Beats come every second, so
/// this tolerates a few lost or late ones without sending work into the void for long.
pub const DEFAULT_DOWN_AFTER: Duration = Duration::from_secs(5);

/// The shortest run the forced release assumes (OpenWhisk: the 60 s blocking wait).
const MIN_FORCED_RELEASE_BASE: Duration = Duration::from_secs(60);
/// Added on top of twice the run time before slots are released without a completion.
const FORCED_RELEASE_GRACE: Duration = Duration::from_secs(60);

/// The key a controller publishes its activations under on the invokers' topics (the same name
/// its pending notes carry as their owner).
pub fn publisher_key(controller: u32) -> String {
    format!("controller{controller}")
}

/// Settings of one controller's balancer.
#[derive(Debug, Clone)]
pub struct BalancerConfig {
    /// This controller's number: completions come back on `completed<controller>`.
    pub controller: u32,
    /// Silence after which an invoker is down.
    pub down_after: Duration,
    /// How many controllers share the invokers (each gets this share of their memory).
    pub controllers: u32,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            controller: 0,
            down_after: DEFAULT_DOWN_AFTER,
            controllers: 1,
        }
    }
}

/// Why an activation could not be handed to an invoker.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    /// No invoker has beaten recently (OpenWhisk answers 503).
    #[error("no invokers available")]
    NoInvokers,
    /// The activation message could not be encoded.
    #[error("activation message does not serialize: {0}")]
    Encode(#[from] serde_json::Error),
    /// The bus refused the message.
    #[error("cannot publish the activation: {0}")]
    Bus(#[from] BusError),
}

/// What the balancer knows about one invoker.
#[derive(Debug, Clone)]
struct InvokerEntry {
    last_beat: Instant,
    state: InvokerState,
    /// This controller's share of the invoker's user memory, in MB.
    capacity_mb: u64,
    /// MB taken by activations this controller sent there and has not seen complete.
    used_mb: u64,
}

/// One activation published and not yet completed.
#[derive(Debug)]
struct InFlight {
    invoker: u32,
    memory_mb: u64,
    namespace_uuid: String,
    waiter: Option<oneshot::Sender<CompletionMessage>>,
    forced_release: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Indexed by invoker number; `None` for numbers never heard of.
    invokers: Vec<Option<InvokerEntry>>,
    in_flight: HashMap<ActivationId, InFlight>,
    per_namespace: HashMap<String, u64>,
}

/// An invoker's state as the balancer sees it (for logs, tests and diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokerStatus {
    pub invoker: u32,
    pub healthy: bool,
    pub capacity_mb: u64,
    pub used_mb: u64,
}

/// An activation handed to an invoker.
#[derive(Debug)]
pub struct Published {
    pub invoker: u32,
    /// Resolves with the completion; closed without one when the slots were released by force
    /// (or the balancer stopped), in which case only the store can tell the outcome.
    pub completion: oneshot::Receiver<CompletionMessage>,
}

/// The balancer of one controller; share it as `Arc<LoadBalancer>`.
#[derive(Debug)]
pub struct LoadBalancer {
    bus: Arc<dyn Bus>,
    config: BalancerConfig,
    inner: Mutex<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl LoadBalancer {
    pub fn new(bus: Arc<dyn Bus>, config: BalancerConfig) -> Arc<Self> {
        Arc::new(Self {
            bus,
            config,
            inner: Mutex::new(Inner::default()),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The bus the balancer publishes on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// This controller's completion topic.
    pub fn completion_topic(&self) -> String {
        completion_topic(self.config.controller)
    }

    /// Subscribes to health beats and consumes this controller's completions, each in a task
    /// of its own. Subscribing happens before this returns, so no beat sent afterwards is missed.
    pub async fn start(self: &Arc<Self>) -> Result<(), BusError> {
        let mut beats = self.bus.subscribe(HEALTH_TOPIC).await?;
        let mut completions = self.bus.consume(&self.completion_topic()).await?;
        // The tasks hold the balancer weakly so dropping the last `Arc` ends them.
        let balancer = Arc::downgrade(self);
        let health = tokio::spawn(async move {
            while let Some(news) = beats.next().await {
                let Some(balancer) = balancer.upgrade() else {
                    break;
                };
                match news {
                    News::Message(payload) => {
                        match serde_json::from_slice::<HealthBeat>(&payload) {
                            Ok(beat) => balancer.record_beat(&beat),
                            Err(error) => {
                                tracing::warn!(%error, "ignoring a malformed health beat")
                            }
                        }
                    }
                    News::Lagged(missed) => {
                        tracing::debug!(missed, "health beats skipped while busy");
                    }
                }
            }
            tracing::info!("health beat subscription ended");
        });
        let balancer = Arc::downgrade(self);
        let completion = tokio::spawn(async move {
            while let Some(delivery) = completions.next().await {
                let Some(balancer) = balancer.upgrade() else {
                    break;
                };
                match serde_json::from_slice::<CompletionMessage>(&delivery.payload) {
                    Ok(message) => balancer.complete(message),
                    Err(error) => tracing::warn!(%error, "dropping a malformed completion"),
                }
                if let Err(error) = delivery.ack().await {
                    tracing::warn!(%error, "cannot acknowledge a completion");
                }
            }
            tracing::info!("completion consumer ended");
        });
        self.lock_tasks().extend([health, completion]);
        Ok(())
    }

    /// Stops the background tasks and fails every waiter (their callers fall back to the store).
    pub fn stop(&self) {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
        let mut inner = self.lock();
        for (_, in_flight) in inner.in_flight.drain() {
            if let Some(timer) = in_flight.forced_release {
                timer.abort();
            }
        }
        inner.per_namespace.clear();
    }

    /// Takes note of a beat: the invoker is up (or draining) as of now.
    pub fn record_beat(&self, beat: &HealthBeat) {
        let Ok(index) = usize::try_from(beat.invoker) else {
            return;
        };
        let controllers = u64::from(self.config.controllers.max(1));
        let capacity_mb = beat.user_memory_mb / controllers;
        let mut inner = self.lock();
        if inner.invokers.len() <= index {
            inner.invokers.resize(index + 1, None);
        }
        let slot = &mut inner.invokers[index];
        match slot {
            Some(entry) => {
                entry.last_beat = Instant::now();
                entry.state = beat.state;
                entry.capacity_mb = capacity_mb;
            }
            None => {
                tracing::info!(invoker = beat.invoker, capacity_mb, "invoker joined");
                *slot = Some(InvokerEntry {
                    last_beat: Instant::now(),
                    state: beat.state,
                    capacity_mb,
                    used_mb: 0,
                });
            }
        }
    }

    /// Every invoker ever heard of, with its health now.
    pub fn invokers(&self) -> Vec<InvokerStatus> {
        let inner = self.lock();
        let now = Instant::now();
        inner
            .invokers
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let entry = entry.as_ref()?;
                Some(InvokerStatus {
                    invoker: u32::try_from(index).ok()?,
                    healthy: self.is_healthy(entry, now),
                    capacity_mb: entry.capacity_mb,
                    used_mb: entry.used_mb,
                })
            })
            .collect()
    }

    /// Activations of this namespace (by uuid) published and not completed: what the
    /// concurrent-invocations throttle counts.
    pub fn in_flight_for(&self, namespace_uuid: &str) -> u64 {
        self.lock()
            .per_namespace
            .get(namespace_uuid)
            .copied()
            .unwrap_or(0)
    }

    /// Activations published and not completed, over all namespaces.
    pub fn total_in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// The activations this controller sent to `invoker` and has not seen complete: what is
    /// lost with it should it die (the cluster controller closes them after a grace).
    pub fn in_flight_on(&self, invoker: u32) -> Vec<ActivationId> {
        self.lock()
            .in_flight
            .iter()
            .filter(|(_, in_flight)| in_flight.invoker == invoker)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Picks an invoker, takes `memory_mb` of its slots and publishes `message` on its topic.
    ///
    /// `max_run` is the action's time limit: if no completion came after twice that (at least
    /// 60 s) plus a minute, the slots are released anyway.
    pub async fn publish(
        self: &Arc<Self>,
        message: &ActivationMessage,
        memory_mb: u64,
        max_run: Duration,
    ) -> Result<Published, BalancerError> {
        let payload = Bytes::from(serde_json::to_vec(message)?);
        let (sender, receiver) = oneshot::channel();
        let invoker = {
            let mut inner = self.lock();
            let invoker = self.choose(&mut inner, message, memory_mb)?;
            inner.in_flight.insert(
                message.activation_id.clone(),
                InFlight {
                    invoker,
                    memory_mb,
                    namespace_uuid: message.user.uuid.clone(),
                    waiter: Some(sender),
                    forced_release: None,
                },
            );
            *inner
                .per_namespace
                .entry(message.user.uuid.clone())
                .or_insert(0) += 1;
            whisk_metrics::global().in_flight(inner.in_flight.len() as u64);
            invoker
        };
        let topic = invoker_topic(invoker);
        let publishing = std::time::Instant::now();
        let published = self
            .bus
            .publish_keyed(&topic, &publisher_key(self.config.controller), payload)
            .await;
        whisk_metrics::global().bus_call("publish", publishing.elapsed());
        if let Err(error) = published {
            self.release(&message.activation_id, "publish failed");
            return Err(error.into());
        }
        let timer = self.forced_release_timer(message.activation_id.clone(), max_run);
        if let Some(in_flight) = self.lock().in_flight.get_mut(&message.activation_id) {
            in_flight.forced_release = Some(timer);
        } else {
            // Completed before the timer existed: nothing left to release.
            timer.abort();
        }
        tracing::debug!(
            activation_id = %message.activation_id,
            invoker,
            memory_mb,
            "activation published"
        );
        Ok(Published {
            invoker,
            completion: receiver,
        })
    }

    /// Takes back the activations this controller published on `invoker`'s topic that it has
    /// not claimed (started) yet and sends each to the invoker the usual choice picks now,
    /// moving its slots there; its waiter keeps waiting for the completion, which the new
    /// invoker sends. Meant for an invoker that is down: what it had claimed stays in flight on
    /// it (lost with it). Does nothing while no invoker is healthy, so the messages are never
    /// out of the bus with nowhere to go. Returns how many moved.
    pub async fn requeue_from(self: &Arc<Self>, invoker: u32) -> Result<usize, BalancerError> {
        if !self.invokers().iter().any(|status| status.healthy) {
            return Ok(0);
        }
        let key = publisher_key(self.config.controller);
        let from = invoker_topic(invoker);
        let taken = self.bus.reclaim(&from, &key).await?;
        let mut moved = 0;
        for payload in taken {
            let message: ActivationMessage = match serde_json::from_slice(&payload) {
                Ok(message) => message,
                Err(error) => {
                    // Only this controller publishes under its key, so this cannot be one of
                    // its messages; giving it back to the topic leaves it as it was.
                    tracing::error!(%error, invoker, "reclaimed a message that does not decode");
                    self.put_back(&from, &key, payload).await;
                    continue;
                }
            };
            let target = self.move_slots(&message, invoker);
            let Some(target) = target else {
                self.put_back(&from, &key, payload).await;
                continue;
            };
            match self
                .bus
                .publish_keyed(&invoker_topic(target), &key, payload.clone())
                .await
            {
                Ok(()) => {
                    moved += 1;
                    tracing::info!(
                        activation_id = %message.activation_id,
                        from = invoker,
                        to = target,
                        "activation moved off a down invoker before it started"
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, activation_id = %message.activation_id, "cannot move the activation; giving it back");
                    self.move_slots_to(&message.activation_id, invoker);
                    self.put_back(&from, &key, payload).await;
                }
            }
        }
        Ok(moved)
    }

    /// Picks a new invoker for a reclaimed activation and moves its slots there from
    /// `invoker`; `None` when no invoker is healthy (nothing changed then).
    fn move_slots(&self, message: &ActivationMessage, invoker: u32) -> Option<u32> {
        let mut inner = self.lock();
        let memory_mb = match inner.in_flight.get(&message.activation_id) {
            Some(in_flight) => in_flight.memory_mb,
            // Released by force already: it runs anyway, but this controller stopped counting it.
            None => 0,
        };
        let target = self.choose(&mut inner, message, memory_mb).ok()?;
        if let Some(in_flight) = inner.in_flight.get_mut(&message.activation_id) {
            in_flight.invoker = target;
            if let Some(Some(entry)) = usize::try_from(invoker)
                .ok()
                .and_then(|index| inner.invokers.get_mut(index))
            {
                entry.used_mb = entry.used_mb.saturating_sub(memory_mb);
            }
        }
        Some(target)
    }

    /// Moves an in-flight activation's slots back to `invoker` (a move that could not publish).
    fn move_slots_to(&self, id: &ActivationId, invoker: u32) {
        let mut inner = self.lock();
        let Some(in_flight) = inner.in_flight.get_mut(id) else {
            return;
        };
        let (from, memory_mb) = (in_flight.invoker, in_flight.memory_mb);
        in_flight.invoker = invoker;
        for (index, delta) in [(from, false), (invoker, true)] {
            if let Some(Some(entry)) = usize::try_from(index)
                .ok()
                .and_then(|index| inner.invokers.get_mut(index))
            {
                entry.used_mb = if delta {
                    entry.used_mb.saturating_add(memory_mb)
                } else {
                    entry.used_mb.saturating_sub(memory_mb)
                };
            }
        }
    }

    /// Publishes a reclaimed message back where it was, so it waits there as before.
    async fn put_back(&self, topic: &str, key: &str, payload: Bytes) {
        if let Err(error) = self.bus.publish_keyed(topic, key, payload).await {
            tracing::error!(%error, topic, "a reclaimed activation could not be put back");
        }
    }

    /// A completion arrived: give the slots back and wake whoever waits for it.
    pub fn complete(&self, message: CompletionMessage) {
        let in_flight = self.remove(&message.activation_id);
        match in_flight {
            Some(mut in_flight) => {
                if let Some(timer) = in_flight.forced_release.take() {
                    timer.abort();
                }
                if message.system_error {
                    tracing::warn!(
                        activation_id = %message.activation_id,
                        invoker = message.invoker,
                        "invoker reported a system error"
                    );
                }
                if let Some(waiter) = in_flight.waiter.take() {
                    // The caller may have stopped waiting (202 already sent): nothing to do then.
                    let _ = waiter.send(message);
                }
            }
            None => tracing::debug!(
                activation_id = %message.activation_id,
                "completion for an activation not in flight (already released)"
            ),
        }
    }

    fn forced_release_timer(
        self: &Arc<Self>,
        id: ActivationId,
        max_run: Duration,
    ) -> JoinHandle<()> {
        let delay = max_run.max(MIN_FORCED_RELEASE_BASE) * 2 + FORCED_RELEASE_GRACE;
        let balancer = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(balancer) = balancer.upgrade() {
                balancer.release(&id, "no completion in time");
            }
        })
    }

    /// Gives back the slots of an activation without a completion; its waiter sees the channel
    /// close.
    fn release(&self, id: &ActivationId, reason: &str) {
        if let Some(in_flight) = self.remove(id) {
            tracing::warn!(activation_id = %id, invoker = in_flight.invoker, reason, "slots released without a completion");
        }
    }

    fn remove(&self, id: &ActivationId) -> Option<InFlight> {
        let mut inner = self.lock();
        let in_flight = inner.in_flight.remove(id)?;
        whisk_metrics::global().in_flight(inner.in_flight.len() as u64);
        if let Some(Some(entry)) = usize::try_from(in_flight.invoker)
            .ok()
            .and_then(|index| inner.invokers.get_mut(index))
        {
            entry.used_mb = entry.used_mb.saturating_sub(in_flight.memory_mb);
        }
        if let Some(count) = inner.per_namespace.get_mut(&in_flight.namespace_uuid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.per_namespace.remove(&in_flight.namespace_uuid);
            }
        }
        Some(in_flight)
    }

    /// The home invoker or the first after it (by the step) that is healthy and has room;
    /// else a random healthy one, overloaded.
    fn choose(
        &self,
        inner: &mut Inner,
        message: &ActivationMessage,
        memory_mb: u64,
    ) -> Result<u32, BalancerError> {
        let now = Instant::now();
        let count = inner.invokers.len();
        let healthy: Vec<usize> = (0..count)
            .filter(|&index| {
                inner.invokers[index]
                    .as_ref()
                    .is_some_and(|entry| self.is_healthy(entry, now))
            })
            .collect();
        if healthy.is_empty() {
            tracing::warn!(activation_id = %message.activation_id, "No invokers available");
            return Err(BalancerError::NoInvokers);
        }
        let action = format!("{}/{}", message.action.path, message.action.name);
        let (home, step) = home_and_step(&message.user.namespace, &action, count);
        let mut index = home;
        let mut chosen = None;
        for _ in 0..count {
            if let Some(entry) = inner.invokers[index].as_ref()
                && self.is_healthy(entry, now)
                && entry.used_mb.saturating_add(memory_mb) <= entry.capacity_mb
            {
                chosen = Some(index);
                break;
            }
            index = (index + step) % count;
        }
        let index = match chosen {
            Some(index) => index,
            None => {
                let pick = healthy[rand::rng().random_range(0..healthy.len())];
                tracing::warn!(
                    activation_id = %message.activation_id,
                    invoker = pick,
                    "every healthy invoker is full; overloading one"
                );
                pick
            }
        };
        if let Some(entry) = inner.invokers[index].as_mut() {
            entry.used_mb = entry.used_mb.saturating_add(memory_mb);
        }
        u32::try_from(index).map_err(|_| BalancerError::NoInvokers)
    }

    fn is_healthy(&self, entry: &InvokerEntry, now: Instant) -> bool {
        entry.state == InvokerState::Healthy
            && now.saturating_duration_since(entry.last_beat) < self.config.down_after
    }

    /// The state is plain bookkeeping that every method leaves consistent before it can panic,
    /// so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use whisk_bus::InProcessBus;
    use whisk_model::Identity;
    use whisk_model::names::FullyQualifiedEntityName;

    use super::*;

    fn balancer() -> Arc<LoadBalancer> {
        LoadBalancer::new(Arc::new(InProcessBus::new()), BalancerConfig::default())
    }

    fn beat(invoker: u32, memory_mb: u64, state: InvokerState) -> HealthBeat {
        HealthBeat {
            invoker,
            state,
            user_memory_mb: memory_mb,
            sent_at: 0,
        }
    }

    fn message(id: u8, namespace: &str) -> ActivationMessage {
        ActivationMessage {
            transaction_id: "tid".into(),
            activation_id: ActivationId::from_bytes([id; 16]),
            action: FullyQualifiedEntityName::parse("/guest/hello").unwrap(),
            revision: "1".into(),
            user: Identity {
                subject: namespace.into(),
                namespace: namespace.into(),
                uuid: format!("uuid-{namespace}"),
                limits: Default::default(),
            },
            api_key: None,
            content: serde_json::Map::new(),
            init_args: serde_json::Map::new(),
            blocking: false,
            completion_topic: completion_topic(0),
            cause: None,
            caused_by: None,
            binding: None,
            invoked_as: None,
            accepted_at: 0,
        }
    }

    fn completion(id: u8) -> CompletionMessage {
        CompletionMessage {
            transaction_id: "tid".into(),
            activation_id: ActivationId::from_bytes([id; 16]),
            invoker: 0,
            record: None,
            system_error: false,
        }
    }

    const RUN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn no_invoker_heard_of_is_no_invokers() {
        let balancer = balancer();
        let refused = balancer.publish(&message(1, "guest"), 256, RUN).await;
        assert!(matches!(refused, Err(BalancerError::NoInvokers)));
        assert_eq!(balancer.total_in_flight(), 0);
    }

    /// The count of bus publishes timed in the process's metrics.
    fn publishes_timed() -> f64 {
        let text = whisk_metrics::global().encode().unwrap();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(r#"whisk_bus_call_seconds_count{operation="publish"} "#)
            })
            .map_or(0.0, |value| value.parse().unwrap())
    }

    #[tokio::test]
    async fn publishes_are_timed_and_in_flight_is_reported() {
        let before = publishes_timed();
        let balancer = balancer();
        balancer.record_beat(&beat(0, 512, InvokerState::Healthy));
        balancer
            .publish(&message(1, "guest"), 256, RUN)
            .await
            .unwrap();
        // Other tests of this process publish too, so at least one more.
        assert!(publishes_timed() >= before + 1.0);
        let text = whisk_metrics::global().encode().unwrap();
        assert!(
            text.contains("whisk_controller_in_flight_activations "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn draining_invokers_take_no_work() {
        let balancer = balancer();
        balancer.record_beat(&beat(0, 1024, InvokerState::Draining));
        let refused = balancer.publish(&message(1, "guest"), 256, RUN).await;
        assert!(matches!(refused, Err(BalancerError::NoInvokers)));
        assert!(!balancer.invokers()[0].healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_invokers_are_down_after_the_configured_time() {
        let balancer = balancer();
        balancer.record_beat(&beat(0, 1024, InvokerState::Healthy));
        tokio::time::advance(DEFAULT_DOWN_AFTER - Duration::from_millis(1)).await;
        assert!(balancer.invokers()[0].healthy);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!balancer.invokers()[0].healthy);
        balancer.record_beat(&beat(0, 1024, InvokerState::Healthy));
        assert!(balancer.invokers()[0].healthy);
    }

    #[tokio::test]
    async fn slots_are_taken_per_activation_and_given_back_on_completion() {
        let balancer = balancer();
        balancer.record_beat(&beat(0, 512, InvokerState::Healthy));
        let first = balancer
            .publish(&message(1, "guest"), 256, RUN)
            .await
            .unwrap();
        balancer
            .publish(&message(2, "other"), 256, RUN)
            .await
            .unwrap();
        assert_eq!(balancer.invokers()[0].used_mb, 512);
        assert_eq!(balancer.in_flight_for("uuid-guest"), 1);
        assert_eq!(balancer.in_flight_for("uuid-other"), 1);

        // Full: the third overloads the only healthy invoker instead of failing.
        balancer
            .publish(&message(3, "guest"), 256, RUN)
            .await
            .unwrap();
        assert_eq!(balancer.invokers()[0].used_mb, 768);
        assert_eq!(balancer.in_flight_for("uuid-guest"), 2);
        let mut on_zero = balancer.in_flight_on(0);
        on_zero.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(
            on_zero,
            [1, 2, 3].map(|id| ActivationId::from_bytes([id; 16]))
        );
        assert!(balancer.in_flight_on(1).is_empty());

        balancer.complete(completion(1));
        assert_eq!(balancer.in_flight_on(0).len(), 2);
        assert_eq!(
            first.completion.await.unwrap().activation_id,
            ActivationId::from_bytes([1; 16])
        );
        assert_eq!(balancer.invokers()[0].used_mb, 512);
        assert_eq!(balancer.in_flight_for("uuid-guest"), 1);
        // A duplicate completion changes nothing.
        balancer.complete(completion(1));
        assert_eq!(balancer.invokers()[0].used_mb, 512);
        assert_eq!(balancer.total_in_flight(), 2);
    }

    #[tokio::test]
    async fn a_full_home_invoker_is_stepped_over() {
        let balancer = balancer();
        for invoker in 0..4 {
            balancer.record_beat(&beat(invoker, 256, InvokerState::Healthy));
        }
        let (home, step) = home_and_step("guest", "guest/hello", 4);
        let first = balancer
            .publish(&message(1, "guest"), 256, RUN)
            .await
            .unwrap();
        assert_eq!(usize::try_from(first.invoker).unwrap(), home);
        let second = balancer
            .publish(&message(2, "guest"), 256, RUN)
            .await
            .unwrap();
        assert_eq!(usize::try_from(second.invoker).unwrap(), (home + step) % 4);
        // A down home invoker is stepped over too.
        balancer.complete(completion(1));
        balancer.record_beat(&beat(
            u32::try_from(home).unwrap(),
            256,
            InvokerState::Draining,
        ));
        let third = balancer
            .publish(&message(3, "guest"), 256, RUN)
            .await
            .unwrap();
        assert_ne!(usize::try_from(third.invoker).unwrap(), home);
    }

    #[tokio::test]
    async fn a_refused_publish_gives_the_slots_back() {
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let balancer = LoadBalancer::new(Arc::clone(&bus), BalancerConfig::default());
        balancer.record_beat(&beat(0, 1024, InvokerState::Healthy));
        bus.close().await;
        let refused = balancer.publish(&message(1, "guest"), 256, RUN).await;
        assert!(matches!(refused, Err(BalancerError::Bus(BusError::Closed))));
        assert_eq!(balancer.total_in_flight(), 0);
        assert_eq!(balancer.in_flight_for("uuid-guest"), 0);
        assert_eq!(balancer.invokers()[0].used_mb, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_released_by_force_when_no_completion_comes() {
        let balancer = balancer();
        balancer.record_beat(&beat(0, 1024, InvokerState::Healthy));
        let published = balancer
            .publish(&message(1, "guest"), 256, Duration::from_secs(10))
            .await
            .unwrap();
        // max(10 s, 60 s) * 2 + 60 s = 180 s.
        tokio::time::sleep(Duration::from_secs(179)).await;
        assert_eq!(balancer.in_flight_for("uuid-guest"), 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(balancer.in_flight_for("uuid-guest"), 0);
        assert_eq!(balancer.invokers()[0].used_mb, 0);
        assert!(
            published.completion.await.is_err(),
            "the waiter sees no completion"
        );
    }

    #[tokio::test]
    async fn completions_and_beats_arrive_over_the_bus() {
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let balancer = LoadBalancer::new(Arc::clone(&bus), BalancerConfig::default());
        balancer.start().await.unwrap();
        let payload =
            Bytes::from(serde_json::to_vec(&beat(0, 1024, InvokerState::Healthy)).unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while balancer.invokers().is_empty() {
            bus.broadcast(HEALTH_TOPIC, payload.clone()).await.unwrap();
            assert!(Instant::now() < deadline, "beat never seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut work = bus.consume(&invoker_topic(0)).await.unwrap();
        let published = balancer
            .publish(&message(1, "guest"), 256, RUN)
            .await
            .unwrap();
        let delivery = work.next().await.unwrap();
        let sent: ActivationMessage = serde_json::from_slice(&delivery.payload).unwrap();
        assert_eq!(sent, message(1, "guest"));
        delivery.ack().await.unwrap();

        bus.publish("completed0", Bytes::from_static(b"not json"))
            .await
            .unwrap();
        let done = Bytes::from(serde_json::to_vec(&completion(1)).unwrap());
        bus.publish("completed0", done).await.unwrap();
        let completed = tokio::time::timeout(Duration::from_secs(30), published.completion)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(completed, completion(1));
        assert_eq!(balancer.total_in_flight(), 0);
        balancer.stop();
    }

    #[tokio::test]
    async fn unstarted_activations_move_off_a_down_invoker_with_their_slots_and_waiters() {
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let balancer = LoadBalancer::new(Arc::clone(&bus), BalancerConfig::default());
        balancer.record_beat(&beat(0, 1024, InvokerState::Healthy));
        let mut on_zero = bus.consume(&invoker_topic(0)).await.unwrap();
        let started = balancer
            .publish(&message(1, "guest"), 256, RUN)
            .await
            .unwrap();
        let queued = balancer
            .publish(&message(2, "guest"), 256, RUN)
            .await
            .unwrap();
        assert_eq!((started.invoker, queued.invoker), (0, 0));
        // Invoker 0 starts the first (claims it) and holds the second without starting it.
        let mut first = on_zero.next().await.unwrap();
        first.claim().await.unwrap();
        let held = on_zero.next().await.unwrap();

        // While no other invoker is healthy, nothing is taken back.
        balancer.record_beat(&beat(0, 1024, InvokerState::Draining));
        assert_eq!(balancer.requeue_from(0).await.unwrap(), 0);

        balancer.record_beat(&beat(1, 1024, InvokerState::Healthy));
        assert_eq!(balancer.requeue_from(0).await.unwrap(), 1);
        assert_eq!(
            balancer.in_flight_on(0),
            [ActivationId::from_bytes([1; 16])],
            "the started one stays, lost with its invoker"
        );
        assert_eq!(
            balancer.in_flight_on(1),
            [ActivationId::from_bytes([2; 16])]
        );
        let used: Vec<u64> = balancer.invokers().iter().map(|s| s.used_mb).collect();
        assert_eq!(used, [256, 256]);
        assert_eq!(balancer.in_flight_for("uuid-guest"), 2);
        let mut held = held;
        assert!(matches!(held.claim().await, Err(BusError::Reclaimed)));

        // The moved message reaches invoker 1 unchanged; its completion wakes the waiter.
        let mut on_one = bus.consume(&invoker_topic(1)).await.unwrap();
        let moved = on_one.next().await.unwrap();
        let sent: ActivationMessage = serde_json::from_slice(&moved.payload).unwrap();
        assert_eq!(sent, message(2, "guest"));
        let mut done = completion(2);
        done.invoker = 1;
        balancer.complete(done.clone());
        assert_eq!(queued.completion.await.unwrap(), done);
        let used: Vec<u64> = balancer.invokers().iter().map(|s| s.used_mb).collect();
        assert_eq!(used, [256, 0]);
        // Nothing more to take back.
        assert_eq!(balancer.requeue_from(0).await.unwrap(), 0);
    }
}
