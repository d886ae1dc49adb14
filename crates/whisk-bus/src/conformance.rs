//! The behaviour every bus adapter must show, written once against the [`Bus`] trait.
//!
//! Each case takes a fresh bus whose queue topics hold [`QUEUE_CAPACITY`] messages and panics on
//! a violation. No case relies on how fast anything happens: waits are for a state to be reached,
//! bounded by [`PATIENCE`] so that a broken adapter fails instead of hanging. An adapter runs them
//! all with [`bus_conformance_tests!`](crate::bus_conformance_tests), giving it an async
//! constructor:
//!
//! ```ignore
//! async fn make() -> Arc<dyn Bus> { ... }          // or Option<Arc<dyn Bus>>: None skips
//! whisk_bus::bus_conformance_tests!(make);
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{Bus, BusError, Consumer, Delivery, News, Subscription};

/// The queue bound every bus given to the suite must have.
pub const QUEUE_CAPACITY: usize = 32;

/// How long a case waits for something that must happen before calling the adapter broken.
/// Generous on purpose: CI machines are loaded.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Generates one `#[tokio::test]` per conformance case for an adapter.
///
/// `$make` is an async function returning `Arc<dyn Bus>` (or `Option<Arc<dyn Bus>>`, where `None`
/// skips the case, e.g. when the adapter's engine is not configured). Each case closes its bus
/// when done.
#[macro_export]
macro_rules! bus_conformance_tests {
    ($make:expr) => {
        $crate::bus_conformance_tests!(@cases $make;
            queue_keeps_publish_order,
            messages_wait_for_a_consumer,
            acked_messages_are_not_delivered_again,
            dropped_delivery_comes_back_before_newer_messages,
            redeliveries_are_counted,
            delivery_outlives_its_consumer,
            consumers_of_a_topic_share_the_work,
            try_publish_fails_when_full,
            unacked_deliveries_hold_their_slot,
            publish_waits_while_full,
            queue_topics_are_independent,
            broadcast_reaches_every_subscriber,
            broadcast_is_only_for_current_subscribers,
            slow_subscriber_is_told_what_it_missed,
            queues_and_broadcasts_do_not_mix,
            invalid_topics_are_refused,
            close_ends_consumers_and_subscribers,
            close_refuses_new_work,
            ack_after_close_is_refused,
            big_payloads_travel_whole,
            concurrent_publishers_keep_their_own_order,
            reclaim_takes_back_what_nobody_claimed,
            a_claimed_message_cannot_be_reclaimed,
            reclaimed_messages_free_their_slots,
            invalid_keys_are_refused,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(bus) = $crate::conformance::MaybeBus::into_bus(($make)().await) else {
                    return;
                };
                $crate::conformance::$case(::std::sync::Arc::clone(&bus)).await;
                bus.close().await;
            }
        )*
    };
}

/// What a suite constructor may return: a bus, or `None` to skip the case.
pub trait MaybeBus {
    fn into_bus(self) -> Option<Arc<dyn Bus>>;
}

impl MaybeBus for Arc<dyn Bus> {
    fn into_bus(self) -> Option<Arc<dyn Bus>> {
        Some(self)
    }
}

impl MaybeBus for Option<Arc<dyn Bus>> {
    fn into_bus(self) -> Option<Arc<dyn Bus>> {
        self
    }
}

/// Awaits `future`, panicking with `what` if it takes longer than [`PATIENCE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("gave up after {PATIENCE:?} waiting for {what}"),
    }
}

/// The next delivery of a consumer, which must come.
pub async fn next_delivery(consumer: &mut Box<dyn Consumer>) -> Delivery {
    within("a delivery", consumer.next())
        .await
        .expect("the consumer ended although the bus is open")
}

/// The next news of a subscriber, which must come.
pub async fn next_news(subscription: &mut Box<dyn Subscription>) -> News {
    within("news", subscription.next())
        .await
        .expect("the subscription ended although the bus is open")
}

fn text(payload: &Bytes) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

async fn publish_all(bus: &Arc<dyn Bus>, topic: &str, messages: &[&str]) {
    for message in messages {
        within(
            "a publish",
            bus.publish(topic, Bytes::copy_from_slice(message.as_bytes())),
        )
        .await
        .expect("publish succeeds");
    }
}

async fn take_and_ack(consumer: &mut Box<dyn Consumer>) -> String {
    let delivery = next_delivery(consumer).await;
    let payload = text(&delivery.payload);
    within("an ack", delivery.ack())
        .await
        .expect("ack succeeds");
    payload
}

pub async fn queue_keeps_publish_order(bus: Arc<dyn Bus>) {
    let mut consumer = bus.consume("orders").await.expect("consume");
    publish_all(&bus, "orders", &["one", "two", "", "four"]).await;
    for expected in ["one", "two", "", "four"] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(text(&delivery.payload), expected);
        assert_eq!(delivery.redeliveries, 0, "first delivery of {expected:?}");
        delivery.ack().await.expect("ack");
    }
}

pub async fn messages_wait_for_a_consumer(bus: Arc<dyn Bus>) {
    publish_all(&bus, "early", &["before", "anyone"]).await;
    let mut consumer = bus.consume("early").await.expect("consume");
    assert_eq!(take_and_ack(&mut consumer).await, "before");
    assert_eq!(take_and_ack(&mut consumer).await, "anyone");
}

pub async fn acked_messages_are_not_delivered_again(bus: Arc<dyn Bus>) {
    publish_all(&bus, "acked", &["a", "b"]).await;
    let mut consumer = bus.consume("acked").await.expect("consume");
    assert_eq!(take_and_ack(&mut consumer).await, "a");
    drop(consumer);
    let mut again = bus.consume("acked").await.expect("consume again");
    let delivery = next_delivery(&mut again).await;
    assert_eq!(text(&delivery.payload), "b", "an acked message came back");
    assert_eq!(delivery.redeliveries, 0);
}

pub async fn dropped_delivery_comes_back_before_newer_messages(bus: Arc<dyn Bus>) {
    publish_all(&bus, "dropped", &["a", "b", "c"]).await;
    let mut consumer = bus.consume("dropped").await.expect("consume");
    let a = next_delivery(&mut consumer).await;
    let b = next_delivery(&mut consumer).await;
    assert_eq!(
        (text(&a.payload).as_str(), text(&b.payload).as_str()),
        ("a", "b")
    );
    drop(a);
    drop(b);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let delivery = next_delivery(&mut consumer).await;
        seen.push((text(&delivery.payload), delivery.redeliveries));
        delivery.ack().await.expect("ack");
    }
    assert_eq!(
        seen,
        [("a".into(), 1), ("b".into(), 1), ("c".into(), 0)],
        "dropped deliveries come back, in publish order, before newer messages"
    );
}

pub async fn redeliveries_are_counted(bus: Arc<dyn Bus>) {
    publish_all(&bus, "counted", &["again"]).await;
    let mut consumer = bus.consume("counted").await.expect("consume");
    for expected in 0..3 {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.redeliveries, expected);
        drop(delivery);
    }
    let last = next_delivery(&mut consumer).await;
    assert_eq!(
        (text(&last.payload).as_str(), last.redeliveries),
        ("again", 3)
    );
    last.ack().await.expect("ack");
}

pub async fn delivery_outlives_its_consumer(bus: Arc<dyn Bus>) {
    publish_all(&bus, "outlive", &["kept", "next"]).await;
    let mut consumer = bus.consume("outlive").await.expect("consume");
    let kept = next_delivery(&mut consumer).await;
    drop(consumer);
    kept.ack()
        .await
        .expect("a delivery can be acked after its consumer is gone");
    let mut other = bus.consume("outlive").await.expect("consume again");
    assert_eq!(take_and_ack(&mut other).await, "next");
}

pub async fn consumers_of_a_topic_share_the_work(bus: Arc<dyn Bus>) {
    let mut first = bus.consume("shared").await.expect("consume");
    let mut second = bus.consume("shared").await.expect("consume");
    publish_all(&bus, "shared", &["m0", "m1"]).await;
    // A message held by one consumer does not hold the other back.
    let held = next_delivery(&mut first).await;
    let other = next_delivery(&mut second).await;
    assert_eq!(text(&held.payload), "m0");
    assert_eq!(text(&other.payload), "m1");
    held.ack().await.expect("ack");
    other.ack().await.expect("ack");

    // Both draining at once: every message exactly once between them.
    let total = 3 * QUEUE_CAPACITY;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for mut consumer in [first, second] {
        let sender = sender.clone();
        workers.push(tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let payload = text(&delivery.payload);
                delivery.ack().await.expect("ack");
                if sender.send(payload).is_err() {
                    break;
                }
            }
        }));
    }
    for index in 0..total {
        within(
            "a publish",
            bus.publish("shared", Bytes::from(format!("w{index}"))),
        )
        .await
        .expect("publish");
    }
    let mut seen = HashSet::new();
    for _ in 0..total {
        let payload = within("a shared delivery", received.recv())
            .await
            .expect("workers run");
        assert!(seen.insert(payload.clone()), "{payload} delivered twice");
    }
    for worker in workers {
        worker.abort();
    }
    assert_eq!(seen.len(), total);
}

pub async fn try_publish_fails_when_full(bus: Arc<dyn Bus>) {
    for index in 0..QUEUE_CAPACITY {
        bus.try_publish("full", Bytes::from(format!("f{index}")))
            .await
            .expect("room left");
    }
    let refused = bus.try_publish("full", Bytes::from_static(b"extra")).await;
    assert!(
        matches!(&refused, Err(BusError::Full(topic)) if topic == "full"),
        "got {refused:?}"
    );
    let mut consumer = bus.consume("full").await.expect("consume");
    assert_eq!(take_and_ack(&mut consumer).await, "f0");
    try_publish_until_accepted(&bus, "full", "extra").await;
    for index in 1..QUEUE_CAPACITY {
        assert_eq!(take_and_ack(&mut consumer).await, format!("f{index}"));
    }
    assert_eq!(take_and_ack(&mut consumer).await, "extra");
}

/// An ack frees its slot; an adapter whose engine applies acks asynchronously may take a moment.
async fn try_publish_until_accepted(bus: &Arc<dyn Bus>, topic: &str, message: &str) {
    within("a freed slot", async {
        loop {
            match bus
                .try_publish(topic, Bytes::copy_from_slice(message.as_bytes()))
                .await
            {
                Ok(()) => return,
                Err(BusError::Full(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(other) => panic!("try_publish failed: {other}"),
            }
        }
    })
    .await;
}

pub async fn unacked_deliveries_hold_their_slot(bus: Arc<dyn Bus>) {
    for index in 0..QUEUE_CAPACITY {
        bus.try_publish("held", Bytes::from(format!("h{index}")))
            .await
            .expect("room left");
    }
    let mut consumer = bus.consume("held").await.expect("consume");
    let delivery = next_delivery(&mut consumer).await;
    let refused = bus.try_publish("held", Bytes::from_static(b"extra")).await;
    assert!(
        matches!(refused, Err(BusError::Full(_))),
        "a delivered but unacked message still counts, got {refused:?}"
    );
    delivery.ack().await.expect("ack");
    try_publish_until_accepted(&bus, "held", "extra").await;
}

pub async fn publish_waits_while_full(bus: Arc<dyn Bus>) {
    for index in 0..QUEUE_CAPACITY {
        bus.try_publish("wait", Bytes::from(format!("p{index}")))
            .await
            .expect("room left");
    }
    let publisher = {
        let bus = Arc::clone(&bus);
        tokio::spawn(async move { bus.publish("wait", Bytes::from_static(b"late")).await })
    };
    // Whatever the scheduling, a publish into a full queue cannot have finished.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!publisher.is_finished(), "publish did not wait for room");
    let mut consumer = bus.consume("wait").await.expect("consume");
    assert_eq!(take_and_ack(&mut consumer).await, "p0");
    within("the waiting publish", publisher)
        .await
        .expect("publisher task")
        .expect("the waiting publish succeeds once there is room");
    for index in 1..QUEUE_CAPACITY {
        assert_eq!(take_and_ack(&mut consumer).await, format!("p{index}"));
    }
    assert_eq!(take_and_ack(&mut consumer).await, "late");
}

pub async fn queue_topics_are_independent(bus: Arc<dyn Bus>) {
    publish_all(&bus, "left", &["l"]).await;
    publish_all(&bus, "right", &["r"]).await;
    let mut right = bus.consume("right").await.expect("consume");
    assert_eq!(take_and_ack(&mut right).await, "r");
    let mut left = bus.consume("left").await.expect("consume");
    assert_eq!(take_and_ack(&mut left).await, "l");
}

pub async fn broadcast_reaches_every_subscriber(bus: Arc<dyn Bus>) {
    let mut first = bus.subscribe("beats").await.expect("subscribe");
    let mut second = bus.subscribe("beats").await.expect("subscribe");
    for beat in ["b1", "b2", "b3"] {
        bus.broadcast("beats", Bytes::copy_from_slice(beat.as_bytes()))
            .await
            .expect("broadcast");
    }
    for subscription in [&mut first, &mut second] {
        for beat in ["b1", "b2", "b3"] {
            assert_eq!(
                next_news(subscription).await,
                News::Message(Bytes::copy_from_slice(beat.as_bytes()))
            );
        }
    }
}

pub async fn broadcast_is_only_for_current_subscribers(bus: Arc<dyn Bus>) {
    bus.broadcast("fresh", Bytes::from_static(b"unheard"))
        .await
        .expect("broadcast with nobody listening is fine");
    let mut subscription = bus.subscribe("fresh").await.expect("subscribe");
    bus.broadcast("fresh", Bytes::from_static(b"heard"))
        .await
        .expect("broadcast");
    assert_eq!(
        next_news(&mut subscription).await,
        News::Message(Bytes::from_static(b"heard"))
    );
}

/// A subscriber that does not read while many messages go by either gets them all or is told how
/// many it missed; it never sees them out of order, and it is never silently short.
pub async fn slow_subscriber_is_told_what_it_missed(bus: Arc<dyn Bus>) {
    const SENT: u64 = 5_000;
    let mut slow = bus.subscribe("flood").await.expect("subscribe");
    for index in 0..SENT {
        bus.broadcast("flood", Bytes::from(index.to_string()))
            .await
            .expect("broadcast never waits for subscribers");
    }
    let mut accounted = 0;
    let mut last: Option<u64> = None;
    while last != Some(SENT - 1) {
        match next_news(&mut slow).await {
            News::Message(payload) => {
                let index: u64 = text(&payload).parse().expect("a number");
                assert!(
                    last.is_none_or(|last| index > last),
                    "{index} after {last:?}"
                );
                last = Some(index);
                accounted += 1;
            }
            News::Lagged(missed) => {
                assert!(missed > 0, "a lag of nothing");
                accounted += missed;
            }
        }
    }
    assert_eq!(
        accounted, SENT,
        "messages received plus messages reported missed"
    );
}

pub async fn queues_and_broadcasts_do_not_mix(bus: Arc<dyn Bus>) {
    let mut subscription = bus.subscribe("both").await.expect("subscribe");
    let mut consumer = bus.consume("both").await.expect("consume");
    publish_all(&bus, "both", &["queued"]).await;
    bus.broadcast("both", Bytes::from_static(b"broadcast"))
        .await
        .expect("broadcast");
    assert_eq!(take_and_ack(&mut consumer).await, "queued");
    assert_eq!(
        next_news(&mut subscription).await,
        News::Message(Bytes::from_static(b"broadcast"))
    );
}

pub async fn invalid_topics_are_refused(bus: Arc<dyn Bus>) {
    for bad in ["", "a.b", "a*", "a>", "a b", "ü", &"t".repeat(65)] {
        let payload = Bytes::from_static(b"x");
        let outcomes = [
            bus.publish(bad, payload.clone()).await.err(),
            bus.try_publish(bad, payload.clone()).await.err(),
            bus.consume(bad).await.err(),
            bus.broadcast(bad, payload).await.err(),
            bus.subscribe(bad).await.err(),
        ];
        for outcome in outcomes {
            assert!(
                matches!(&outcome, Some(BusError::InvalidTopic(topic)) if topic == bad),
                "{bad:?}: {outcome:?}"
            );
        }
    }
}

pub async fn close_ends_consumers_and_subscribers(bus: Arc<dyn Bus>) {
    let mut consumer = bus.consume("ending").await.expect("consume");
    let mut subscription = bus.subscribe("ending").await.expect("subscribe");
    let waiting_consumer = tokio::spawn(async move { consumer.next().await.is_none() });
    let waiting_subscriber = tokio::spawn(async move { subscription.next().await.is_none() });
    bus.close().await;
    assert!(
        within("the consumer to end", waiting_consumer)
            .await
            .expect("consumer task"),
        "a consumer got a message from an empty topic"
    );
    assert!(
        within("the subscriber to end", waiting_subscriber)
            .await
            .expect("subscriber task"),
        "a subscriber got news nobody sent"
    );
}

pub async fn close_refuses_new_work(bus: Arc<dyn Bus>) {
    for index in 0..QUEUE_CAPACITY {
        bus.try_publish("closing", Bytes::from(format!("c{index}")))
            .await
            .expect("room left");
    }
    let blocked = {
        let bus = Arc::clone(&bus);
        tokio::spawn(async move { bus.publish("closing", Bytes::from_static(b"blocked")).await })
    };
    bus.close().await;
    let blocked = within("the blocked publish to end", blocked)
        .await
        .expect("publisher task");
    assert!(matches!(blocked, Err(BusError::Closed)), "got {blocked:?}");
    let payload = Bytes::from_static(b"x");
    assert!(matches!(
        bus.publish("closing", payload.clone()).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.try_publish("other", payload.clone()).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.broadcast("closing", payload).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.consume("closing").await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.subscribe("closing").await,
        Err(BusError::Closed)
    ));
    bus.close().await;
}

pub async fn ack_after_close_is_refused(bus: Arc<dyn Bus>) {
    publish_all(&bus, "late-ack", &["a", "b"]).await;
    let mut consumer = bus.consume("late-ack").await.expect("consume");
    let acked_late = next_delivery(&mut consumer).await;
    let dropped_late = next_delivery(&mut consumer).await;
    bus.close().await;
    let outcome = acked_late.ack().await;
    assert!(matches!(outcome, Err(BusError::Closed)), "got {outcome:?}");
    drop(dropped_late);
    assert!(
        within("the consumer to end", consumer.next())
            .await
            .is_none(),
        "a closed bus still delivers"
    );
}

pub async fn big_payloads_travel_whole(bus: Arc<dyn Bus>) {
    let big: Bytes = (0..1_500_000u32)
        .map(|index| (index % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let mut subscription = bus.subscribe("big").await.expect("subscribe");
    bus.publish("big", big.clone()).await.expect("publish");
    bus.broadcast("big", big.clone()).await.expect("broadcast");
    let mut consumer = bus.consume("big").await.expect("consume");
    let delivery = next_delivery(&mut consumer).await;
    assert!(delivery.payload == big, "queued payload changed");
    delivery.ack().await.expect("ack");
    assert!(
        next_news(&mut subscription).await == News::Message(big),
        "broadcast payload changed"
    );
}

pub async fn concurrent_publishers_keep_their_own_order(bus: Arc<dyn Bus>) {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 2 * QUEUE_CAPACITY;
    let mut publishers = Vec::new();
    for publisher in 0..PUBLISHERS {
        let bus = Arc::clone(&bus);
        publishers.push(tokio::spawn(async move {
            for index in 0..EACH {
                bus.publish("crowd", Bytes::from(format!("{publisher}:{index}")))
                    .await
                    .expect("publish");
            }
        }));
    }
    let mut consumer = bus.consume("crowd").await.expect("consume");
    let mut next_index = [0usize; PUBLISHERS];
    for _ in 0..PUBLISHERS * EACH {
        let payload = take_and_ack(&mut consumer).await;
        let (publisher, index) = payload.split_once(':').expect("publisher:index");
        let publisher: usize = publisher.parse().expect("publisher number");
        let index: usize = index.parse().expect("index");
        assert_eq!(
            index, next_index[publisher],
            "publisher {publisher} out of order"
        );
        next_index[publisher] += 1;
    }
    for publisher in publishers {
        within("a publisher to finish", publisher)
            .await
            .expect("publisher task");
    }
    assert_eq!(next_index, [EACH; PUBLISHERS]);
}

async fn publish_keyed_all(bus: &Arc<dyn Bus>, topic: &str, key: &str, messages: &[&str]) {
    for message in messages {
        within(
            "a keyed publish",
            bus.publish_keyed(topic, key, Bytes::copy_from_slice(message.as_bytes())),
        )
        .await
        .expect("keyed publish succeeds");
    }
}

async fn reclaimed(bus: &Arc<dyn Bus>, topic: &str, key: &str) -> Vec<String> {
    within("a reclaim", bus.reclaim(topic, key))
        .await
        .expect("reclaim succeeds")
        .iter()
        .map(text)
        .collect()
}

pub async fn reclaim_takes_back_what_nobody_claimed(bus: Arc<dyn Bus>) {
    publish_keyed_all(&bus, "moved", "k1", &["a1"]).await;
    publish_keyed_all(&bus, "moved", "k2", &["b1"]).await;
    publish_all(&bus, "moved", &["plain"]).await;
    publish_keyed_all(&bus, "moved", "k1", &["a2"]).await;
    let mut consumer = bus.consume("moved").await.expect("consume");
    // Keyed messages reach the consumer like any other, in publish order.
    let mut held = next_delivery(&mut consumer).await;
    assert_eq!(text(&held.payload), "a1");
    // Held but not claimed: taken back with the waiting one, oldest first; other keys and
    // unkeyed messages stay.
    assert_eq!(reclaimed(&bus, "moved", "k1").await, ["a1", "a2"]);
    let refused = within("a claim", held.claim()).await;
    assert!(
        matches!(refused, Err(BusError::Reclaimed)),
        "got {refused:?}"
    );
    // Dropping the reclaimed delivery hands nothing back.
    drop(held);
    assert_eq!(take_and_ack(&mut consumer).await, "b1");
    assert_eq!(take_and_ack(&mut consumer).await, "plain");
    assert!(reclaimed(&bus, "moved", "k1").await.is_empty());
    assert!(reclaimed(&bus, "moved", "k2").await.is_empty());
    // Nothing else comes: a marker published now is next.
    publish_all(&bus, "moved", &["marker"]).await;
    let marker = next_delivery(&mut consumer).await;
    assert_eq!(
        (text(&marker.payload).as_str(), marker.redeliveries),
        ("marker", 0)
    );
    marker.ack().await.expect("ack");
}

pub async fn a_claimed_message_cannot_be_reclaimed(bus: Arc<dyn Bus>) {
    publish_keyed_all(&bus, "claimed", "k", &["x", "y"]).await;
    let mut consumer = bus.consume("claimed").await.expect("consume");
    let mut x = next_delivery(&mut consumer).await;
    assert_eq!(text(&x.payload), "x");
    within("a claim", x.claim())
        .await
        .expect("an unreclaimed message is claimed");
    within("a second claim", x.claim())
        .await
        .expect("claiming again changes nothing");
    assert_eq!(reclaimed(&bus, "claimed", "k").await, ["y"]);
    // A claimed delivery needs no ack, and dropped it is not delivered again.
    drop(x);
    publish_all(&bus, "claimed", &["after"]).await;
    let mut after = next_delivery(&mut consumer).await;
    assert_eq!(
        (text(&after.payload).as_str(), after.redeliveries),
        ("after", 0)
    );
    // Claiming works on unkeyed messages too, and an ack after it is fine.
    within("a claim", after.claim()).await.expect("claim");
    within("an ack", after.ack())
        .await
        .expect("ack after claim");
    drop(consumer);
    let mut again = bus.consume("claimed").await.expect("consume again");
    publish_all(&bus, "claimed", &["last"]).await;
    assert_eq!(take_and_ack(&mut again).await, "last");
}

pub async fn reclaimed_messages_free_their_slots(bus: Arc<dyn Bus>) {
    let messages: Vec<String> = (0..QUEUE_CAPACITY).map(|n| format!("m{n}")).collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    publish_keyed_all(&bus, "reslot", "k", &refs).await;
    assert!(matches!(
        bus.try_publish("reslot", Bytes::from_static(b"over")).await,
        Err(BusError::Full(_))
    ));
    assert_eq!(reclaimed(&bus, "reslot", "k").await, messages);
    try_publish_until_accepted(&bus, "reslot", "room").await;
    let mut consumer = bus.consume("reslot").await.expect("consume");
    assert_eq!(take_and_ack(&mut consumer).await, "room");
}

pub async fn invalid_keys_are_refused(bus: Arc<dyn Bus>) {
    for bad in ["", "a.b", "a>", "*"] {
        assert!(
            matches!(
                bus.publish_keyed("keys", bad, Bytes::from_static(b"x"))
                    .await,
                Err(BusError::InvalidTopic(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(
                bus.reclaim("keys", bad).await,
                Err(BusError::InvalidTopic(_))
            ),
            "{bad:?}"
        );
    }
}
