//! The bus between controllers and invokers.
//!
//! Two kinds of topic, because the platform has two kinds of traffic:
//! - **queue topics** carry work that must not be lost (activations to an invoker, completions
//!   back to the controller that asked): each message goes to one consumer, at least once, and
//!   is delivered again until the consumer acknowledges it. Queues are bounded: a full queue makes
//!   [`Bus::publish`] wait (backpressure) and [`Bus::try_publish`] fail with [`BusError::Full`].
//! - **broadcast topics** carry news that is only worth having while it is fresh (health beats):
//!   every subscriber gets every message published after it subscribed; a subscriber that falls
//!   behind is told how many it missed rather than slowing the publisher.
//!
//! A queue message may be published under a **key** (the publisher's name): consumers see it
//! like any other, but until a consumer *claims* it ([`Delivery::claim`]) its publisher can take
//! it back with [`Bus::reclaim`], e.g. to send it elsewhere when the consumer it waits for died.
//! Claim and reclaim exclude each other: exactly one of them gets the message.
//!
//! Payloads are bytes: the bus knows nothing of what the messages mean (their types live in
//! `whisk-model::bus`). The same controller and invoker code runs over every adapter:
//! [`InProcessBus`] for one process (`whisk standalone`), [`NatsBus`] (NATS JetStream) for a
//! cluster. Both pass the suite in `conformance` (feature `conformance`), which any new adapter
//! must pass too.

use async_trait::async_trait;
/// The payload type, re-exported so callers need no `bytes` dependency of their own.
pub use bytes::Bytes;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod in_process;
mod nats;

pub use in_process::{InProcessBus, InProcessConfig};
pub use nats::{NatsBus, NatsConfig};

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A topic name outside `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid topic name '{0}'")]
    InvalidTopic(String),
    /// The queue is at its bound (only from [`Bus::try_publish`]).
    #[error("topic '{0}' is full")]
    Full(String),
    /// The bus was closed (shutdown) or its connection is gone for good.
    #[error("the bus is closed")]
    Closed,
    /// The adapter could not reach its engine (e.g. NATS unavailable); worth retrying later.
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    /// The message was taken back by [`Bus::reclaim`] before this delivery claimed it: whoever
    /// reclaimed it handles it now, so the holder of the delivery must not.
    #[error("the message was reclaimed by its publisher")]
    Reclaimed,
}

/// One message taken from a queue topic. Drop it without [`Delivery::ack`] and it is delivered
/// again (to this or another consumer of the topic).
#[derive(Debug)]
pub struct Delivery {
    pub payload: Bytes,
    /// How many times this message was delivered before (0 on the first delivery).
    pub redeliveries: u32,
    acker: Box<dyn Acker>,
}

impl Delivery {
    /// Builds a delivery; adapters call this.
    pub fn new(payload: Bytes, redeliveries: u32, acker: Box<dyn Acker>) -> Delivery {
        Delivery {
            payload,
            redeliveries,
            acker,
        }
    }

    /// Confirms the message was taken care of: it will not be delivered again. After a
    /// successful [`Delivery::claim`] there is nothing left to confirm and this is `Ok`.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Says the message is still being worked on. An adapter that delivers a message again when
    /// its holder is silent for a while (NATS: `ack_wait`) restarts that wait, so a holder that
    /// takes long (a long action, a record kept until the store is back) is not mistaken for a
    /// dead one and the message is not handed to a second worker meanwhile. Call it more often
    /// than [`PROGRESS_INTERVAL`] allows to lapse.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.acker.progress().await
    }

    /// Takes the message for good before acting on it, so that [`Bus::reclaim`] can no longer
    /// take it back: `Ok` when it is this holder's (it will not be delivered again, as after an
    /// ack), [`BusError::Reclaimed`] when its publisher took it back first (do not act on it).
    /// Any other error leaves the delivery as it was: dropped, it is delivered again.
    pub async fn claim(&mut self) -> Result<(), BusError> {
        self.acker.claim().await
    }
}

/// How often a holder of a delivery should call [`Delivery::in_progress`]: a third of the
/// shortest wait an adapter uses before delivering an unacknowledged message again (the NATS
/// adapter's default `ack_wait` is 30 s), so one lost call does not lapse it.
pub const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The adapter's way of confirming one delivery.
#[async_trait]
pub trait Acker: Send + Sync + std::fmt::Debug {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;

    /// Restarts the adapter's wait before delivering the message again; nothing to do for an
    /// adapter that never delivers a held message again (the in-process bus).
    async fn progress(&self) -> Result<(), BusError> {
        Ok(())
    }

    /// See [`Delivery::claim`]. After a successful claim `ack` is `Ok` and dropping hands
    /// nothing back; after [`BusError::Reclaimed`] dropping hands nothing back either.
    async fn claim(&mut self) -> Result<(), BusError>;
}

/// A consumer of one queue topic.
#[async_trait]
pub trait Consumer: Send + std::fmt::Debug {
    /// The next message; `None` once the bus is closed.
    async fn next(&mut self) -> Option<Delivery>;
}

/// What a broadcast subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum News {
    Message(Bytes),
    /// The subscriber fell behind and this many messages were skipped.
    Lagged(u64),
}

/// A subscriber of one broadcast topic.
#[async_trait]
pub trait Subscription: Send + std::fmt::Debug {
    /// The next message; `None` once the bus is closed.
    async fn next(&mut self) -> Option<News>;
}

/// The bus. Implementations are cheap to share (`Arc<dyn Bus>`).
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Appends to a queue topic, waiting while it is full.
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError>;
    /// Appends to a queue topic, or fails at once with [`BusError::Full`].
    async fn try_publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError>;
    /// [`Bus::publish`] under `key` (a name following the topic rule): consumers get it like any
    /// other message, and [`Bus::reclaim`] with the same key can take it back until it is claimed.
    async fn publish_keyed(&self, topic: &str, key: &str, payload: Bytes) -> Result<(), BusError>;
    /// Takes back, oldest first, every message published on `topic` under `key` that no
    /// delivery has claimed (or acknowledged) yet, whether still waiting or delivered and held.
    /// A holder of such a delivery then gets [`BusError::Reclaimed`] from its claim. Used by a
    /// publisher to move work away from a consumer that died.
    async fn reclaim(&self, topic: &str, key: &str) -> Result<Vec<Bytes>, BusError>;
    /// Starts consuming a queue topic (creating it when needed).
    async fn consume(&self, topic: &str) -> Result<Box<dyn Consumer>, BusError>;
    /// Sends to every current subscriber of a broadcast topic; never waits for slow ones.
    async fn broadcast(&self, topic: &str, payload: Bytes) -> Result<(), BusError>;
    /// Subscribes to a broadcast topic from now on.
    async fn subscribe(&self, topic: &str) -> Result<Box<dyn Subscription>, BusError>;
    /// Closes the bus: consumers and subscribers end, publishers get [`BusError::Closed`].
    async fn close(&self);

    /// Whether the bus reaches its engine now. A controller uses it to tell invokers that went
    /// silent from a bus it cannot hear anyone on; an adapter without a connection is always
    /// connected.
    fn connected(&self) -> bool {
        true
    }
}

/// Checks a topic name against the rule every adapter shares (NATS subjects included).
pub fn validate_topic(topic: &str) -> Result<(), BusError> {
    let valid = !topic.is_empty()
        && topic.len() <= 64
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(BusError::InvalidTopic(topic.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_checked() {
        assert!(validate_topic("invoker0").is_ok());
        assert!(validate_topic("completed-1_a").is_ok());
        for bad in ["", "a.b", "a b", "héllo", &"x".repeat(65)] {
            assert!(
                matches!(validate_topic(bad), Err(BusError::InvalidTopic(_))),
                "{bad}"
            );
        }
    }
}
