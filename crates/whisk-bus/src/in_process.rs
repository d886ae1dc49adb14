//! The bus inside one process (`whisk standalone`): no engine, no serialisation beyond the bytes
//! the callers already made.
//!
//! A queue topic is two semaphores and an ordered map:
//! - `space` holds one permit per free slot. A publish takes one (waiting, or failing with
//!   [`BusError::Full`]) and only an ack gives it back, so the bound counts messages that are
//!   waiting *and* messages delivered but not yet acknowledged, as JetStream's work-queue streams do.
//! - `ready` holds one permit per message waiting in `waiting`; a consumer takes one, then the
//!   oldest message. Several consumers of a topic therefore share the work, one message each.
//! - `waiting` is keyed by the publish sequence, so a message handed back by a dropped delivery
//!   goes in front of everything published after it.
//! - `held` lists the deliveries out and not yet acknowledged or claimed. Whoever removes a
//!   message from `held` under the state lock owns it: an ack or claim (the slot goes back to
//!   `space`), a drop (back to `waiting`) or [`Bus::reclaim`], which also empties `waiting` of the
//!   key's messages. A `ready` permit whose message was reclaimed finds nothing and is skipped.
//!
//! Closing the semaphores is how [`Bus::close`] wakes every waiting publisher and consumer at once.
//! Broadcast topics are `tokio::sync::broadcast` channels, whose lag reporting is exactly
//! [`News::Lagged`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Semaphore, TryAcquireError, broadcast};

use crate::{Acker, Bus, BusError, Consumer, Delivery, News, Subscription, validate_topic};

/// Bounds of an [`InProcessBus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InProcessConfig {
    /// Messages a queue topic holds, waiting or delivered and not yet acknowledged.
    pub queue_capacity: usize,
    /// Messages a broadcast subscriber may fall behind by before it is told it lagged.
    pub broadcast_capacity: usize,
}

impl Default for InProcessConfig {
    fn default() -> Self {
        InProcessConfig {
            queue_capacity: 10_000,
            broadcast_capacity: 1_024,
        }
    }
}

/// The in-process bus. Cloning it gives another handle on the same topics.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: InProcessConfig,
    topics: Mutex<Topics>,
}

#[derive(Debug, Default)]
struct Topics {
    closed: bool,
    queues: HashMap<String, Arc<Queue>>,
    broadcasts: HashMap<String, broadcast::Sender<Bytes>>,
}

#[derive(Debug)]
struct Queue {
    name: String,
    space: Semaphore,
    ready: Semaphore,
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    next_sequence: u64,
    /// Messages waiting for a consumer, by publish sequence.
    waiting: BTreeMap<u64, Message>,
    /// Messages delivered and neither acknowledged, claimed, handed back nor reclaimed.
    held: HashMap<u64, Message>,
}

#[derive(Debug, Clone)]
struct Message {
    payload: Bytes,
    /// Earlier deliveries.
    redeliveries: u32,
    /// The key it was published under, if any (what [`Bus::reclaim`] matches).
    key: Option<String>,
}

/// A poisoned lock only means another thread panicked while holding it; every critical section
/// here leaves the data consistent, so carrying on is safe.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InProcessBus {
    /// A bus with the default bounds.
    pub fn new() -> InProcessBus {
        InProcessBus::with_config(InProcessConfig::default())
    }

    /// A bus with the given bounds (each at least 1).
    pub fn with_config(config: InProcessConfig) -> InProcessBus {
        let config = InProcessConfig {
            queue_capacity: config.queue_capacity.clamp(1, Semaphore::MAX_PERMITS),
            broadcast_capacity: config.broadcast_capacity.max(1),
        };
        InProcessBus {
            inner: Arc::new(Inner {
                config,
                topics: Mutex::new(Topics::default()),
            }),
        }
    }

    /// The bounds in force.
    pub fn config(&self) -> InProcessConfig {
        self.inner.config
    }

    fn queue(&self, topic: &str) -> Result<Arc<Queue>, BusError> {
        validate_topic(topic)?;
        let mut topics = lock(&self.inner.topics);
        if topics.closed {
            return Err(BusError::Closed);
        }
        let capacity = self.inner.config.queue_capacity;
        let queue = topics.queues.entry(topic.to_string()).or_insert_with(|| {
            tracing::debug!(topic, capacity, "queue topic created");
            Arc::new(Queue {
                name: topic.to_string(),
                space: Semaphore::new(capacity),
                ready: Semaphore::new(0),
                state: Mutex::new(QueueState::default()),
            })
        });
        Ok(Arc::clone(queue))
    }

    fn broadcast_sender(&self, topic: &str) -> Result<broadcast::Sender<Bytes>, BusError> {
        validate_topic(topic)?;
        let mut topics = lock(&self.inner.topics);
        if topics.closed {
            return Err(BusError::Closed);
        }
        let capacity = self.inner.config.broadcast_capacity;
        let sender = topics
            .broadcasts
            .entry(topic.to_string())
            .or_insert_with(|| broadcast::channel(capacity).0);
        Ok(sender.clone())
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        InProcessBus::new()
    }
}

impl Queue {
    /// Appends a message whose slot (`space` permit) the caller already holds.
    fn append(&self, payload: Bytes, key: Option<String>) {
        let mut state = lock(&self.state);
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        state.waiting.insert(
            sequence,
            Message {
                payload,
                redeliveries: 0,
                key,
            },
        );
        drop(state);
        self.ready.add_permits(1);
    }

    /// Puts a delivered message back in its place, ahead of newer ones, unless it was acked,
    /// claimed or reclaimed meanwhile.
    fn hand_back(&self, sequence: u64) {
        if self.ready.is_closed() {
            return;
        }
        let mut state = lock(&self.state);
        let Some(mut message) = state.held.remove(&sequence) else {
            return;
        };
        message.redeliveries = message.redeliveries.saturating_add(1);
        state.waiting.insert(sequence, message);
        drop(state);
        self.ready.add_permits(1);
        tracing::debug!(topic = %self.name, sequence, "unacknowledged delivery handed back");
    }

    /// Settles a held delivery for good (ack or claim): `false` when it was reclaimed.
    fn settle(&self, sequence: u64) -> bool {
        let settled = lock(&self.state).held.remove(&sequence).is_some();
        if settled {
            self.space.add_permits(1);
        }
        settled
    }

    fn close(&self) {
        self.space.close();
        self.ready.close();
        let mut state = lock(&self.state);
        state.waiting.clear();
        state.held.clear();
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        let queue = self.queue(topic)?;
        let permit = queue
            .space
            .acquire()
            .await
            .map_err(|_closed| BusError::Closed)?;
        permit.forget();
        queue.append(payload, None);
        Ok(())
    }

    async fn publish_keyed(&self, topic: &str, key: &str, payload: Bytes) -> Result<(), BusError> {
        validate_topic(key)?;
        let queue = self.queue(topic)?;
        let permit = queue
            .space
            .acquire()
            .await
            .map_err(|_closed| BusError::Closed)?;
        permit.forget();
        queue.append(payload, Some(key.to_string()));
        Ok(())
    }

    async fn reclaim(&self, topic: &str, key: &str) -> Result<Vec<Bytes>, BusError> {
        validate_topic(key)?;
        let queue = self.queue(topic)?;
        let mut state = lock(&queue.state);
        let matches = |message: &Message| message.key.as_deref() == Some(key);
        let waiting: Vec<u64> = state
            .waiting
            .iter()
            .filter(|(_, message)| matches(message))
            .map(|(sequence, _)| *sequence)
            .collect();
        let held: Vec<u64> = state
            .held
            .iter()
            .filter(|(_, message)| matches(message))
            .map(|(sequence, _)| *sequence)
            .collect();
        let mut taken: BTreeMap<u64, Bytes> = BTreeMap::new();
        for sequence in waiting {
            if let Some(message) = state.waiting.remove(&sequence) {
                taken.insert(sequence, message.payload);
            }
        }
        for sequence in held {
            if let Some(message) = state.held.remove(&sequence) {
                taken.insert(sequence, message.payload);
            }
        }
        drop(state);
        queue.space.add_permits(taken.len());
        tracing::debug!(topic, key, reclaimed = taken.len(), "messages reclaimed");
        Ok(taken.into_values().collect())
    }

    async fn try_publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        let queue = self.queue(topic)?;
        match queue.space.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => return Err(BusError::Full(topic.to_string())),
            Err(TryAcquireError::Closed) => return Err(BusError::Closed),
        }
        queue.append(payload, None);
        Ok(())
    }

    async fn consume(&self, topic: &str) -> Result<Box<dyn Consumer>, BusError> {
        let queue = self.queue(topic)?;
        Ok(Box::new(InProcessConsumer { queue }))
    }

    async fn broadcast(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        let sender = self.broadcast_sender(topic)?;
        // An error only means nobody is subscribed now, and news nobody hears is simply gone.
        let receivers = sender.send(payload).unwrap_or(0);
        tracing::trace!(topic, receivers, "broadcast");
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        let receiver = self.broadcast_sender(topic)?.subscribe();
        Ok(Box::new(InProcessSubscription { receiver }))
    }

    async fn close(&self) {
        let (queues, broadcasts) = {
            let mut topics = lock(&self.inner.topics);
            topics.closed = true;
            (
                std::mem::take(&mut topics.queues),
                std::mem::take(&mut topics.broadcasts),
            )
        };
        for queue in queues.values() {
            queue.close();
        }
        // Dropping the senders is what ends the subscribers (after what they already have).
        drop(broadcasts);
        tracing::debug!(queues = queues.len(), "in-process bus closed");
    }
}

#[derive(Debug)]
struct InProcessConsumer {
    queue: Arc<Queue>,
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let permit = self.queue.ready.acquire().await.ok()?;
            permit.forget();
            let first = {
                let mut state = lock(&self.queue.state);
                let first = state.waiting.pop_first();
                if let Some((sequence, message)) = &first {
                    state.held.insert(*sequence, message.clone());
                }
                first
            };
            // A permit without a message: close() cleared the map, or reclaim() took it.
            let Some((sequence, message)) = first else {
                if self.queue.ready.is_closed() {
                    return None;
                }
                continue;
            };
            let acker = InProcessAcker {
                queue: Arc::clone(&self.queue),
                sequence,
                state: AckerState::Held,
            };
            return Some(Delivery::new(
                message.payload,
                message.redeliveries,
                Box::new(acker),
            ));
        }
    }
}

/// Holds a delivered message until it is acknowledged or claimed; dropped before, it hands the
/// message back to its queue (unless it was reclaimed meanwhile).
#[derive(Debug)]
struct InProcessAcker {
    queue: Arc<Queue>,
    sequence: u64,
    state: AckerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckerState {
    Held,
    Claimed,
    Reclaimed,
}

#[async_trait]
impl Acker for InProcessAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        let state = std::mem::replace(&mut self.state, AckerState::Claimed);
        if self.queue.space.is_closed() {
            return Err(BusError::Closed);
        }
        match state {
            AckerState::Claimed => Ok(()),
            AckerState::Reclaimed => Err(BusError::Reclaimed),
            AckerState::Held if self.queue.settle(self.sequence) => Ok(()),
            AckerState::Held => Err(BusError::Reclaimed),
        }
    }

    async fn claim(&mut self) -> Result<(), BusError> {
        if self.queue.space.is_closed() {
            return Err(BusError::Closed);
        }
        match self.state {
            AckerState::Claimed => Ok(()),
            AckerState::Reclaimed => Err(BusError::Reclaimed),
            AckerState::Held if self.queue.settle(self.sequence) => {
                self.state = AckerState::Claimed;
                Ok(())
            }
            AckerState::Held => {
                self.state = AckerState::Reclaimed;
                Err(BusError::Reclaimed)
            }
        }
    }
}

impl Drop for InProcessAcker {
    fn drop(&mut self) {
        if self.state == AckerState::Held {
            self.queue.hand_back(self.sequence);
        }
    }
}

#[derive(Debug)]
struct InProcessSubscription {
    receiver: broadcast::Receiver<Bytes>,
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self) -> Option<News> {
        match self.receiver.recv().await {
            Ok(payload) => Some(News::Message(payload)),
            Err(broadcast::error::RecvError::Lagged(skipped)) => Some(News::Lagged(skipped)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests;
