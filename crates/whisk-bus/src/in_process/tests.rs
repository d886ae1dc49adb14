//! The conformance suite on the in-process bus, plus what only it can show: exact lag counts,
//! redelivery order whatever the drop order, and its throughput.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{InProcessBus, InProcessConfig};
use crate::conformance::{QUEUE_CAPACITY, next_delivery, next_news};
use crate::{Bus, News};

async fn make() -> Arc<dyn Bus> {
    Arc::new(InProcessBus::with_config(InProcessConfig {
        queue_capacity: QUEUE_CAPACITY,
        broadcast_capacity: 16,
    }))
}

crate::bus_conformance_tests!(make);

#[tokio::test]
async fn lag_is_reported_exactly() {
    let bus = InProcessBus::with_config(InProcessConfig {
        queue_capacity: 4,
        broadcast_capacity: 8,
    });
    let mut subscription = bus.subscribe("beats").await.unwrap();
    for index in 0..20u8 {
        bus.broadcast("beats", Bytes::from(vec![index]))
            .await
            .unwrap();
    }
    assert_eq!(next_news(&mut subscription).await, News::Lagged(12));
    for index in 12..20u8 {
        assert_eq!(
            next_news(&mut subscription).await,
            News::Message(Bytes::from(vec![index]))
        );
    }
}

#[tokio::test]
async fn redelivery_follows_publish_order_whatever_the_drop_order() {
    let bus = InProcessBus::new();
    for message in ["a", "b", "c", "d"] {
        bus.publish("t", Bytes::from(message)).await.unwrap();
    }
    let mut consumer = bus.consume("t").await.unwrap();
    let a = next_delivery(&mut consumer).await;
    let b = next_delivery(&mut consumer).await;
    let c = next_delivery(&mut consumer).await;
    drop(c);
    drop(a);
    drop(b);
    let mut order = Vec::new();
    for _ in 0..4 {
        let delivery = next_delivery(&mut consumer).await;
        order.push(delivery.payload.clone());
        delivery.ack().await.unwrap();
    }
    assert_eq!(order, ["a", "b", "c", "d"]);
}

#[test]
fn bounds_are_at_least_one() {
    let bus = InProcessBus::with_config(InProcessConfig {
        queue_capacity: 0,
        broadcast_capacity: 0,
    });
    assert_eq!(
        bus.config(),
        InProcessConfig {
            queue_capacity: 1,
            broadcast_capacity: 1
        }
    );
    assert_eq!(InProcessBus::default().config(), InProcessConfig::default());
}

/// Not a benchmark with statistics, just the order of magnitude, printed for the record
/// (`cargo test -p whisk-bus throughput -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_publish_consume_ack() {
    const MESSAGES: usize = 200_000;
    let bus = InProcessBus::new();
    let mut consumer = bus.consume("fast").await.unwrap();
    let started = Instant::now();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let payload = Bytes::from(vec![7u8; 256]);
            for _ in 0..MESSAGES {
                bus.publish("fast", payload.clone()).await.unwrap();
            }
        })
    };
    for _ in 0..MESSAGES {
        consumer.next().await.unwrap().ack().await.unwrap();
    }
    publisher.await.unwrap();
    let elapsed = started.elapsed();
    println!(
        "in-process bus: {MESSAGES} messages of 256 bytes published, consumed and acked in {elapsed:?} ({:.0} msgs/s)",
        MESSAGES as f64 / elapsed.as_secs_f64()
    );
}
