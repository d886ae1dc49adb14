//! The bus over NATS (cluster deployments): JetStream for queue topics, core NATS for broadcasts.
//!
//! Layout on the server, for cluster name `C` (so that several platforms, or several tests, can
//! share one nats-server without ever meeting):
//! - queue topic `T` is the work-queue stream `C_T` on subject `C.q.T`, file-stored, bounded by
//!   `max_messages` with "discard new" (a full stream refuses a publish, which becomes
//!   [`BusError::Full`] or a wait). A work-queue stream drops a message once it is acknowledged,
//!   so the bound counts unacknowledged deliveries too, as the in-process bus does. The cluster
//!   name has no `_`, so `C_T` names one (cluster, topic) pair only.
//! - every consumer of `T`, in any process, pulls from the one durable consumer `whisk` of that
//!   stream, one message per pull, so a message held by one consumer never holds another back.
//!   Acks are explicit and confirmed by the server; a delivery dropped unacknowledged is NAKed at
//!   once (redelivered before newer messages), and one lost with its process comes back after
//!   `ack_wait`.
//! - a message published under key `K` goes on subject `C.q.T.K` of the same stream (which takes
//!   `C.q.T` and `C.q.T.>`), so the one consumer sees it in order with the rest. Claiming a
//!   delivery deletes its message from the stream (one request, answered with whether it was
//!   still there); reclaiming walks the key's subject with direct gets by subject and deletes each
//!   message found. A delete succeeds once, so a claim and a reclaim of one message cannot both
//!   win. A deleted message still held by a delivery is never delivered again.
//! - broadcast topic `T` is the plain subject `C.b.T`: news is not stored.
//!
//! A publish returns once JetStream has stored the message. Publishes carry a `Nats-Msg-Id`, so a
//! retry after a lost acknowledgement (connection loss) is recognised as a duplicate by the
//! server instead of being queued twice. The client reconnects by itself; while it cannot,
//! `publish` retries for `publish_timeout` (counted from its first failed attempt) and then
//! fails with [`BusError::Unavailable`]. Nothing is handed to a disconnected client, so a
//! publish that failed is not sent after all once the connection is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy, RetentionPolicy};
use async_nats::jetstream::{self, AckKind};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::{Acker, Bus, BusError, Consumer, Delivery, News, Subscription, validate_topic};

/// The one durable consumer every process pulls a queue topic from.
const DURABLE_CONSUMER: &str = "whisk";

/// How long one pull waits on the server for a message before the consumer asks again. Short
/// enough that a pull abandoned by a cancelled `next()` does not take a message for long.
const PULL_EXPIRY: Duration = Duration::from_secs(5);

/// Where a waiting publish or a failing consumer starts and stops backing off.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const LAST_BACKOFF: Duration = Duration::from_millis(250);

/// How to reach NATS and how to lay the topics out there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Prefix of every subject and stream, `[A-Za-z0-9-]{1,32}`: platforms (or tests) with
    /// different names never see each other's messages.
    pub cluster: String,
    /// Messages a queue topic holds, waiting or delivered and not yet acknowledged.
    pub queue_capacity: usize,
    /// Messages a broadcast subscriber may fall behind by before it is told it lagged.
    pub broadcast_capacity: usize,
    /// How long the server waits for the ack of a delivery whose consumer vanished before
    /// delivering it again.
    pub ack_wait: Duration,
    /// How long `publish` keeps retrying while the server cannot be reached.
    pub publish_timeout: Duration,
    /// How long connecting (and each request to the server) may take.
    pub connect_timeout: Duration,
}

impl NatsConfig {
    /// The defaults for a server at `url` and a platform called `cluster`.
    pub fn new(url: impl Into<String>, cluster: impl Into<String>) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            cluster: cluster.into(),
            queue_capacity: 10_000,
            broadcast_capacity: 1_024,
            ack_wait: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The NATS bus. Cloning it gives another handle on the same connection.
#[derive(Debug, Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NatsConfig,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// Streams known to exist, so a publish costs one round trip, not two.
    streams: Mutex<HashSet<String>>,
    /// Unique per bus: with `message_counter`, the `Nats-Msg-Id` of each publish.
    bus_id: String,
    message_counter: AtomicU64,
    closed: watch::Sender<bool>,
    naks: Arc<NakQueue>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// NAKs of dropped deliveries, sent in drop order by one task.
///
/// A NAK must reach the server before this bus asks for the next message, or a newer message
/// could be handed out ahead of the dropped one; consumers wait for `sent` to catch up with
/// `queued` before each pull, and the task waits for the server's confirmation of each NAK.
#[derive(Debug)]
struct NakQueue {
    sender: mpsc::UnboundedSender<jetstream::Message>,
    queued: AtomicU64,
    sent: AtomicU64,
    progress: Notify,
}

impl NakQueue {
    fn start() -> Arc<NakQueue> {
        let (sender, mut receiver) = mpsc::unbounded_channel::<jetstream::Message>();
        let queue = Arc::new(NakQueue {
            sender,
            queued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            progress: Notify::new(),
        });
        let weak = Arc::downgrade(&queue);
        tokio::spawn(async move {
            while let Some(message) = receiver.recv().await {
                if let Err(error) = message.double_ack_with(AckKind::Nak(None)).await {
                    tracing::warn!(%error, "NAK of a dropped delivery failed; it comes back after ack_wait");
                }
                let Some(queue) = weak.upgrade() else { break };
                queue.sent.fetch_add(1, Ordering::SeqCst);
                queue.progress.notify_waiters();
            }
        });
        queue
    }

    fn push(&self, message: jetstream::Message) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.sender.send(message).is_err() {
            // The task is gone (runtime shutting down): nothing will be sent, so nothing to wait for.
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits until every NAK queued before this call has been confirmed by the server.
    async fn settled(&self) {
        let target = self.queued.load(Ordering::SeqCst);
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if self.sent.load(Ordering::SeqCst) >= target {
                return;
            }
            progressed.await;
        }
    }
}

/// Whether a cluster name fits in subjects and stream names without ambiguity.
fn validate_cluster(cluster: &str) -> Result<(), BusError> {
    let valid = !cluster.is_empty()
        && cluster.len() <= 32
        && cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(BusError::Unavailable(format!(
            "invalid NATS cluster name '{cluster}' (expected [A-Za-z0-9-]{{1,32}})"
        )))
    }
}

impl NatsBus {
    /// Connects to the server. [`BusError::Unavailable`] when it cannot be reached (or the
    /// configuration is unusable); later outages are ridden out by reconnecting.
    pub async fn connect(config: NatsConfig) -> Result<NatsBus, BusError> {
        validate_cluster(&config.cluster)?;
        let cluster = config.cluster.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("whisk-{}", config.cluster))
            .connection_timeout(config.connect_timeout)
            .request_timeout(Some(config.connect_timeout))
            .max_reconnects(None)
            .event_callback(move |event| {
                let cluster = cluster.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!(%cluster, "connected to NATS")
                        }
                        other => tracing::warn!(%cluster, event = %other, "NATS connection event"),
                    }
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|error| {
                BusError::Unavailable(format!("cannot connect to NATS at {}: {error}", config.url))
            })?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(config.connect_timeout);
        let bus_id = client
            .new_inbox()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        tracing::info!(url = %config.url, cluster = %config.cluster, "NATS bus ready");
        Ok(NatsBus {
            inner: Arc::new(Inner {
                config,
                client,
                jetstream,
                streams: Mutex::new(HashSet::new()),
                bus_id,
                message_counter: AtomicU64::new(0),
                closed: watch::channel(false).0,
                naks: NakQueue::start(),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &NatsConfig {
        &self.inner.config
    }

    fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.is_closed() {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    fn stream_name(&self, topic: &str) -> String {
        format!("{}_{topic}", self.inner.config.cluster)
    }

    fn queue_subject(&self, topic: &str) -> String {
        format!("{}.q.{topic}", self.inner.config.cluster)
    }

    fn broadcast_subject(&self, topic: &str) -> String {
        format!("{}.b.{topic}", self.inner.config.cluster)
    }

    /// Creates the topic's stream, or brings an existing one to this bus's bound (an operator
    /// who changes `queue_capacity` expects it to apply to the topics that already exist).
    async fn ensure_stream(&self, topic: &str) -> Result<jetstream::stream::Stream, BusError> {
        let name = self.stream_name(topic);
        let capacity = i64::try_from(self.inner.config.queue_capacity)
            .unwrap_or(i64::MAX)
            .max(1);
        let config = StreamConfig {
            name: name.clone(),
            subjects: vec![
                self.queue_subject(topic),
                format!("{}.>", self.queue_subject(topic)),
            ],
            retention: RetentionPolicy::WorkQueue,
            max_messages: capacity,
            discard: DiscardPolicy::New,
            storage: jetstream::stream::StorageType::File,
            num_replicas: 1,
            ..StreamConfig::default()
        };
        let unavailable = |error: &dyn std::fmt::Display| {
            BusError::Unavailable(format!("cannot set up JetStream stream '{name}': {error}"))
        };
        let stream = self
            .inner
            .jetstream
            .get_or_create_stream(config.clone())
            .await
            .map_err(|error| unavailable(&error))?;
        let found = stream.cached_info().config.max_messages;
        // Streams made before keyed publishes lack the keyed subjects.
        let same_subjects = stream.cached_info().config.subjects == config.subjects;
        let stream = if found == capacity && same_subjects {
            stream
        } else {
            tracing::info!(topic, stream = %name, from = found, to = capacity, "queue settings changed");
            self.inner
                .jetstream
                .update_stream(config)
                .await
                .map_err(|error| unavailable(&error))?;
            self.inner
                .jetstream
                .get_stream(&name)
                .await
                .map_err(|error| unavailable(&error))?
        };
        lock(&self.inner.streams).insert(name);
        Ok(stream)
    }

    fn next_message_id(&self) -> String {
        let counter = self.inner.message_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{counter}", self.inner.bus_id)
    }

    /// One publish attempt (creating the stream when needed), classified.
    async fn publish_once(
        &self,
        topic: &str,
        subject: &str,
        payload: &Bytes,
        message_id: &str,
    ) -> Result<(), Attempt> {
        // Nothing is handed to a client that is not connected: it would hold the message in its
        // buffer and send it once reconnected, after the caller may have given up on it (a
        // controller that answered 503 must not see the activation run anyway).
        if !Bus::connected(self) {
            return Err(Attempt::Transient(BusError::Unavailable(
                "not connected to the NATS server".to_string(),
            )));
        }
        let stream = self.stream_name(topic);
        // The second round is for a stream deleted behind this bus's back: made again, then used.
        for round in 0..2 {
            if !lock(&self.inner.streams).contains(&stream) {
                self.ensure_stream(topic)
                    .await
                    .map_err(Attempt::Transient)?;
            }
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(message_id);
            let outcome = match self
                .inner
                .jetstream
                .send_publish(subject.to_string(), message)
                .await
            {
                Ok(acknowledgement) => acknowledgement.await,
                Err(error) => Err(error),
            };
            let Err(error) = outcome else {
                return Ok(());
            };
            match error.kind() {
                PublishErrorKind::StreamNotFound if round == 0 => {
                    tracing::info!(topic, %stream, "stream gone; making it again");
                    lock(&self.inner.streams).remove(&stream);
                }
                PublishErrorKind::MaxPayloadExceeded => {
                    return Err(Attempt::Fatal(BusError::Unavailable(format!(
                        "a message of {} bytes is larger than the NATS server accepts: {error}",
                        payload.len()
                    ))));
                }
                PublishErrorKind::Other if is_stream_full(&error) => {
                    return Err(Attempt::Full(BusError::Full(topic.to_string())));
                }
                _ => {
                    lock(&self.inner.streams).remove(&stream);
                    return Err(Attempt::Transient(BusError::Unavailable(format!(
                        "publish to '{topic}' failed: {error}"
                    ))));
                }
            }
        }
        Err(Attempt::Transient(BusError::Unavailable(format!(
            "no stream for topic '{topic}'"
        ))))
    }

    /// Runs a client call that may wait for the server, for at most `connect_timeout`: while the
    /// connection is down such calls wait for it to come back, and the bus must not hang with it.
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        let patience = self.inner.config.connect_timeout;
        match tokio::time::timeout(patience, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "no answer from the NATS server within {patience:?}"
            )),
        }
    }

    /// Resolves once [`Bus::close`] was called.
    async fn closing(&self) {
        let mut closed = self.inner.closed.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// A subscription whose forwarding task can be observed (tests provoke lag with it).
    async fn subscribe_forwarded(&self, topic: &str) -> Result<NatsSubscription, BusError> {
        validate_topic(topic)?;
        self.check_open()?;
        let subject = self.broadcast_subject(topic);
        let unavailable = |error: String| {
            BusError::Unavailable(format!("cannot subscribe to '{subject}': {error}"))
        };
        let mut subscriber = self
            .bounded(self.inner.client.subscribe(subject.clone()))
            .await
            .map_err(&unavailable)?;
        // Once the server answered the flush it has the subscription: whatever is broadcast from
        // now on reaches it.
        self.bounded(self.inner.client.flush())
            .await
            .map_err(&unavailable)?;
        let (sender, receiver) = broadcast::channel(self.inner.config.broadcast_capacity.max(1));
        let forwarded = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&forwarded);
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = bus.closing() => break,
                    message = subscriber.next() => {
                        let Some(message) = message else { break };
                        if sender.send(message.payload).is_err() {
                            break; // the subscription was dropped
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            // Dropping `subscriber` unsubscribes; dropping `sender` ends the subscription.
        });
        Ok(NatsSubscription {
            receiver,
            #[cfg(test)]
            forwarded,
        })
    }
}

/// How one publish attempt failed.
enum Attempt {
    Full(BusError),
    Transient(BusError),
    Fatal(BusError),
}

/// JetStream refuses a message over `max_messages` of a discard-new stream with error 10077 and
/// this description.
fn is_stream_full(error: &jetstream::context::PublishError) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .is_some_and(|error| {
            error.error_code() == jetstream::ErrorCode::STREAM_STORE_FAILED
                && error.to_string().contains("maximum messages")
        })
}

impl NatsBus {
    /// Publishes on `subject` of `topic`'s stream, waiting while the stream is full and retrying
    /// while the server is away (up to `publish_timeout`).
    async fn publish_to(&self, topic: &str, subject: &str, payload: Bytes) -> Result<(), BusError> {
        self.check_open()?;
        let message_id = self.next_message_id();
        let mut backoff = FIRST_BACKOFF;
        let mut unavailable_since: Option<tokio::time::Instant> = None;
        loop {
            // The patience counts from the start of the first failing attempt: an attempt
            // while the connection is down itself waits up to `connect_timeout` for the
            // server's answer, which must not come on top of `publish_timeout`.
            let attempt_started = tokio::time::Instant::now();
            let error = match self
                .publish_once(topic, subject, &payload, &message_id)
                .await
            {
                Ok(()) => return Ok(()),
                Err(Attempt::Fatal(error)) => return Err(error),
                Err(Attempt::Full(_)) => {
                    unavailable_since = None;
                    None
                }
                Err(Attempt::Transient(error)) => Some(error),
            };
            if let Some(error) = error {
                let since = *unavailable_since.get_or_insert(attempt_started);
                if since.elapsed() >= self.inner.config.publish_timeout {
                    return Err(error);
                }
                tracing::debug!(topic, %error, "publish will be retried");
            }
            tokio::select! {
                () = self.closing() => return Err(BusError::Closed),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(LAST_BACKOFF);
        }
    }

    /// Deletes message `sequence` of `stream`: `Ok(true)` when this call removed it, `Ok(false)`
    /// when it was no longer there (claimed, acknowledged or reclaimed by someone else).
    async fn delete_message(&self, stream: &str, sequence: u64) -> Result<bool, BusError> {
        let unavailable = |error: &dyn std::fmt::Display| {
            BusError::Unavailable(format!(
                "cannot delete message {sequence} of stream '{stream}': {error}"
            ))
        };
        let handle = self
            .inner
            .jetstream
            .get_stream_no_info(stream)
            .await
            .map_err(|error| unavailable(&error))?;
        match self.bounded(handle.delete_message(sequence)).await {
            Ok(deleted) => Ok(deleted),
            Err(error) if is_no_message(&error) => Ok(false),
            Err(error) => Err(unavailable(&error)),
        }
    }
}

/// JetStream answers a delete or get of a message that is not (or no longer) in the stream
/// with "no message found" (codes 10037 and 10057 depending on the call).
fn is_no_message(error: &str) -> bool {
    error.contains("no message found") || error.contains("message not found")
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        validate_topic(topic)?;
        self.publish_to(topic, &self.queue_subject(topic), payload)
            .await
    }

    async fn publish_keyed(&self, topic: &str, key: &str, payload: Bytes) -> Result<(), BusError> {
        validate_topic(topic)?;
        validate_topic(key)?;
        let subject = format!("{}.{key}", self.queue_subject(topic));
        self.publish_to(topic, &subject, payload).await
    }

    async fn reclaim(&self, topic: &str, key: &str) -> Result<Vec<Bytes>, BusError> {
        validate_topic(topic)?;
        validate_topic(key)?;
        self.check_open()?;
        let stream = self.ensure_stream(topic).await?;
        let subject = format!("{}.{key}", self.queue_subject(topic));
        let mut taken = Vec::new();
        let mut from = 1;
        loop {
            let found = self
                .bounded(stream.get_first_raw_message_by_subject(&subject, from))
                .await;
            let message = match found {
                Ok(message) => message,
                Err(error) if is_no_message(&error) => break,
                Err(error) => {
                    // What was already deleted is this caller's: hand it over; the rest stays
                    // for the next attempt.
                    if taken.is_empty() {
                        return Err(BusError::Unavailable(format!(
                            "cannot read '{subject}': {error}"
                        )));
                    }
                    tracing::warn!(topic, key, %error, "reclaim cut short");
                    break;
                }
            };
            from = message.sequence.saturating_add(1);
            match self
                .delete_message(&self.stream_name(topic), message.sequence)
                .await
            {
                Ok(true) => taken.push(message.payload),
                Ok(false) => {}
                Err(error) if taken.is_empty() => return Err(error),
                Err(error) => {
                    tracing::warn!(topic, key, %error, "reclaim cut short");
                    break;
                }
            }
        }
        tracing::debug!(topic, key, reclaimed = taken.len(), "messages reclaimed");
        Ok(taken)
    }

    async fn try_publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        validate_topic(topic)?;
        self.check_open()?;
        let message_id = self.next_message_id();
        let subject = self.queue_subject(topic);
        match self
            .publish_once(topic, &subject, &payload, &message_id)
            .await
        {
            Ok(()) => Ok(()),
            Err(Attempt::Full(error) | Attempt::Transient(error) | Attempt::Fatal(error)) => {
                Err(error)
            }
        }
    }

    async fn consume(&self, topic: &str) -> Result<Box<dyn Consumer>, BusError> {
        validate_topic(topic)?;
        self.check_open()?;
        let stream = self.ensure_stream(topic).await?;
        let max_ack_pending = i64::try_from(self.inner.config.queue_capacity).unwrap_or(i64::MAX);
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                DURABLE_CONSUMER,
                pull::Config {
                    durable_name: Some(DURABLE_CONSUMER.to_string()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.inner.config.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: max_ack_pending.max(1),
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|error| {
                BusError::Unavailable(format!("cannot create the consumer of '{topic}': {error}"))
            })?;
        Ok(Box::new(NatsConsumer {
            bus: self.clone(),
            topic: topic.to_string(),
            consumer,
            pull: None,
        }))
    }

    async fn broadcast(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        validate_topic(topic)?;
        self.check_open()?;
        self.bounded(
            self.inner
                .client
                .publish(self.broadcast_subject(topic), payload),
        )
        .await
        .map_err(|error| BusError::Unavailable(format!("broadcast on '{topic}' failed: {error}")))
    }

    async fn subscribe(&self, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        Ok(Box::new(self.subscribe_forwarded(topic).await?))
    }

    async fn close(&self) {
        if self.inner.closed.send_replace(true) {
            return;
        }
        // What was published is already stored (JetStream acknowledged it); flushing sends the
        // last broadcasts and acks before the connection goes. A flush waits for the server, so it
        // is bounded: closing must not hang on a server that is away.
        let patience = self.inner.config.connect_timeout;
        match tokio::time::timeout(patience, self.inner.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "flush before closing the NATS bus failed"),
            Err(_) => tracing::warn!(
                ?patience,
                "the NATS server did not answer the closing flush"
            ),
        }
        match tokio::time::timeout(patience, self.inner.client.drain()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "draining the NATS connection failed"),
            Err(_) => tracing::warn!(?patience, "draining the NATS connection timed out"),
        }
        tracing::info!(cluster = %self.inner.config.cluster, "NATS bus closed");
    }

    fn connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// A consumer of one queue topic.
///
/// Its pull runs as a task of its own so that a caller that stops waiting (a `select!` on
/// `next()`) does not strand a message in a pull nobody reads: the next call picks up the same
/// pull and whatever it brought.
#[derive(Debug)]
struct NatsConsumer {
    bus: NatsBus,
    topic: String,
    consumer: PullConsumer,
    pull: Option<JoinHandle<Result<Option<jetstream::Message>, String>>>,
}

/// One pull of one message: `Ok(None)` when none came before the pull expired.
async fn pull_one(consumer: PullConsumer) -> Result<Option<jetstream::Message>, String> {
    let mut batch = consumer
        .batch()
        .max_messages(1)
        .expires(PULL_EXPIRY)
        .messages()
        .await
        .map_err(|error| error.to_string())?;
    match batch.next().await {
        None => Ok(None),
        Some(Ok(message)) => Ok(Some(message)),
        Some(Err(error)) => Err(error.to_string()),
    }
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.bus.is_closed() {
                return None;
            }
            let pull = self.pull.get_or_insert_with(|| {
                let consumer = self.consumer.clone();
                let naks = Arc::clone(&self.bus.inner.naks);
                tokio::spawn(async move {
                    naks.settled().await;
                    pull_one(consumer).await
                })
            });
            let pulled = tokio::select! {
                () = self.bus.closing() => return None,
                pulled = pull => pulled,
            };
            self.pull = None;
            let message = match pulled {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => continue,
                Ok(Err(error)) => {
                    tracing::warn!(topic = %self.topic, %error, "pulling from NATS failed; retrying");
                    tokio::select! {
                        () = self.bus.closing() => return None,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(LAST_BACKOFF);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(topic = %self.topic, %error, "the pull task failed; retrying");
                    continue;
                }
            };
            let redeliveries = message
                .info()
                .map(|info| u32::try_from(info.delivered.saturating_sub(1)).unwrap_or(u32::MAX))
                .unwrap_or(0);
            let payload = message.payload.clone();
            let acker = NatsAcker {
                message: Some(message),
                reclaimed: false,
                naks: Arc::clone(&self.bus.inner.naks),
                bus: self.bus.clone(),
            };
            return Some(Delivery::new(payload, redeliveries, Box::new(acker)));
        }
    }
}

impl Drop for NatsConsumer {
    fn drop(&mut self) {
        if let Some(pull) = self.pull.take() {
            pull.abort();
        }
    }
}

/// Acknowledges one JetStream message, or NAKs it when dropped unacknowledged.
#[derive(Debug)]
struct NatsAcker {
    /// `None` once acknowledged or claimed (or found reclaimed).
    message: Option<jetstream::Message>,
    reclaimed: bool,
    naks: Arc<NakQueue>,
    bus: NatsBus,
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        let Some(message) = self.message.take() else {
            return if self.reclaimed {
                Err(BusError::Reclaimed)
            } else {
                Ok(())
            };
        };
        if self.bus.is_closed() {
            return Err(BusError::Closed);
        }
        message.double_ack().await.map_err(|error| {
            if self.bus.is_closed() {
                BusError::Closed
            } else {
                BusError::Unavailable(format!("ack failed: {error}"))
            }
        })
    }

    /// A JetStream "working" acknowledgement, which restarts the consumer's `ack_wait` for this
    /// message. Not confirmed by the server (a lost one is made up by the next), but bounded, so
    /// a holder never hangs on a server that is away.
    async fn progress(&self) -> Result<(), BusError> {
        let Some(message) = &self.message else {
            return Ok(());
        };
        if self.bus.is_closed() {
            return Err(BusError::Closed);
        }
        self.bus
            .bounded(message.ack_with(AckKind::Progress))
            .await
            .map_err(|error| BusError::Unavailable(format!("progress report failed: {error}")))
    }

    async fn claim(&mut self) -> Result<(), BusError> {
        self.claim_message().await
    }
}

impl NatsAcker {
    async fn claim_message(&mut self) -> Result<(), BusError> {
        let Some(message) = &self.message else {
            return if self.reclaimed {
                Err(BusError::Reclaimed)
            } else {
                Ok(())
            };
        };
        if self.bus.is_closed() {
            return Err(BusError::Closed);
        }
        let info = message.info().map_err(|error| {
            BusError::Unavailable(format!("delivery without its place: {error}"))
        })?;
        let (stream, sequence) = (info.stream.to_string(), info.stream_sequence);
        // Deleting it is the claim: the server does it once, and drops the consumer's pending
        // delivery with it, so it is neither delivered again nor reclaimable.
        let deleted = self.bus.delete_message(&stream, sequence).await?;
        self.message = None;
        if deleted {
            Ok(())
        } else {
            self.reclaimed = true;
            Err(BusError::Reclaimed)
        }
    }
}

impl Drop for NatsAcker {
    fn drop(&mut self) {
        if let Some(message) = self.message.take()
            && !self.bus.is_closed()
        {
            self.naks.push(message);
        }
    }
}

/// A broadcast subscription: a task forwards the subject's messages into a bounded channel, whose
/// overflow is what this subscriber is told it missed.
#[derive(Debug)]
struct NatsSubscription {
    receiver: broadcast::Receiver<Bytes>,
    /// Messages the task has forwarded so far (tests wait for it to provoke an exact lag).
    #[cfg(test)]
    forwarded: Arc<AtomicU64>,
}

#[async_trait]
impl Subscription for NatsSubscription {
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
