//! The conformance suite on NATS JetStream (when `WHISK_TEST_NATS_URL` names a server, as
//! `.ci/nats` arranges in CI), plus what only this adapter can show: cluster isolation, sharing
//! across connections, exact lag, unreachable servers and riding out a server restart.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::{NatsBus, NatsConfig};
use crate::conformance::{QUEUE_CAPACITY, next_delivery, next_news, within};
use crate::{Bus, BusError, News};

const URL_VARIABLE: &str = "WHISK_TEST_NATS_URL";

/// A cluster name no other test (in this process, another process or an earlier run against the
/// same server) uses.
fn unique_cluster() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn test_config(url: &str, cluster: &str) -> NatsConfig {
    NatsConfig {
        queue_capacity: QUEUE_CAPACITY,
        broadcast_capacity: 16,
        ..NatsConfig::new(url, cluster)
    }
}

/// Waits until `bus.connected()` says `connected`.
async fn wait_for_connected(bus: &NatsBus, connected: bool) {
    let what = if connected {
        "the bus to reconnect"
    } else {
        "the bus to notice the server is gone"
    };
    within(what, async {
        while bus.connected() != connected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn server_url() -> Option<String> {
    let url = std::env::var(URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty());
    if url.is_none() {
        eprintln!(
            "skipped: set {URL_VARIABLE} to a nats-server with JetStream (.ci/nats start DIR)"
        );
    }
    url
}

async fn make() -> Option<Arc<dyn Bus>> {
    let url = server_url()?;
    let bus = NatsBus::connect(test_config(&url, &unique_cluster()))
        .await
        .unwrap();
    Some(Arc::new(bus))
}

crate::bus_conformance_tests!(make);

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let outcome = NatsBus::connect(NatsConfig::new(
        format!("nats://127.0.0.1:{port}"),
        "nobody",
    ))
    .await;
    assert!(
        matches!(&outcome, Err(BusError::Unavailable(message)) if message.contains("cannot connect")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn cluster_names_are_checked() {
    for bad in ["", "a_b", "a.b", "a b", &"c".repeat(33)] {
        let outcome = NatsBus::connect(NatsConfig::new("nats://127.0.0.1:1", bad)).await;
        assert!(
            matches!(&outcome, Err(BusError::Unavailable(message)) if message.contains("cluster name")),
            "{bad:?}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn clusters_never_meet() {
    let Some(url) = server_url() else { return };
    let first = NatsBus::connect(test_config(&url, &unique_cluster()))
        .await
        .unwrap();
    let second = NatsBus::connect(test_config(&url, &unique_cluster()))
        .await
        .unwrap();
    let mut second_news = second.subscribe("beats").await.unwrap();
    first.publish("work", Bytes::from("first's")).await.unwrap();
    first
        .broadcast("beats", Bytes::from("first's"))
        .await
        .unwrap();
    second
        .publish("work", Bytes::from("second's"))
        .await
        .unwrap();
    second
        .broadcast("beats", Bytes::from("second's"))
        .await
        .unwrap();
    let mut consumer = second.consume("work").await.unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.payload, "second's");
    delivery.ack().await.unwrap();
    assert_eq!(
        next_news(&mut second_news).await,
        News::Message(Bytes::from("second's"))
    );
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn connections_of_one_cluster_share_topics() {
    let Some(url) = server_url() else { return };
    let cluster = unique_cluster();
    let controller = NatsBus::connect(test_config(&url, &cluster)).await.unwrap();
    let invoker = NatsBus::connect(test_config(&url, &cluster)).await.unwrap();
    let mut beats = controller.subscribe("health").await.unwrap();
    let mut work = invoker.consume("invoker0").await.unwrap();
    controller
        .publish("invoker0", Bytes::from("activation"))
        .await
        .unwrap();
    invoker
        .broadcast("health", Bytes::from("beat"))
        .await
        .unwrap();
    let delivery = next_delivery(&mut work).await;
    assert_eq!(delivery.payload, "activation");
    // Dropped by one connection, it comes back to a consumer on another.
    drop(delivery);
    let mut elsewhere = controller.consume("invoker0").await.unwrap();
    drop(work);
    let again = next_delivery(&mut elsewhere).await;
    assert_eq!(
        (again.payload.as_ref(), again.redeliveries),
        (&b"activation"[..], 1)
    );
    again.ack().await.unwrap();
    assert_eq!(
        next_news(&mut beats).await,
        News::Message(Bytes::from("beat"))
    );
    controller.close().await;
    invoker.close().await;
}

/// A delivery whose holder vanished without a word (a crashed process: no ack, no NAK) comes
/// back once `ack_wait` has passed.
#[tokio::test]
async fn a_vanished_delivery_comes_back_after_ack_wait() {
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(NatsConfig {
        ack_wait: Duration::from_secs(1),
        ..test_config(&url, &unique_cluster())
    })
    .await
    .unwrap();
    bus.publish("crash", Bytes::from("orphan")).await.unwrap();
    let mut consumer = bus.consume("crash").await.unwrap();
    let lost = next_delivery(&mut consumer).await;
    std::mem::forget(lost);
    let again = next_delivery(&mut consumer).await;
    assert_eq!(
        (again.payload.as_ref(), again.redeliveries),
        (&b"orphan"[..], 1)
    );
    again.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test]
async fn a_new_queue_bound_applies_to_existing_topics() {
    let Some(url) = server_url() else { return };
    let cluster = unique_cluster();
    let roomy = NatsBus::connect(test_config(&url, &cluster)).await.unwrap();
    roomy.publish("bound", Bytes::from("m0")).await.unwrap();
    let tight = NatsBus::connect(NatsConfig {
        queue_capacity: 3,
        ..test_config(&url, &cluster)
    })
    .await
    .unwrap();
    for message in ["m1", "m2"] {
        tight
            .try_publish("bound", Bytes::from(message))
            .await
            .unwrap();
    }
    let refused = tight.try_publish("bound", Bytes::from("m3")).await;
    assert!(matches!(refused, Err(BusError::Full(_))), "{refused:?}");
    roomy.close().await;
    tight.close().await;
}

#[tokio::test]
async fn lag_is_reported_exactly_once_forwarded() {
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(NatsConfig {
        broadcast_capacity: 8,
        ..test_config(&url, &unique_cluster())
    })
    .await
    .unwrap();
    let subscription = bus.subscribe_forwarded("beats").await.unwrap();
    for index in 0..20u8 {
        bus.broadcast("beats", Bytes::from(vec![index]))
            .await
            .unwrap();
    }
    let forwarded = Arc::clone(&subscription.forwarded);
    within("the forwarder to take all 20", async {
        while forwarded.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut subscription: Box<dyn crate::Subscription> = Box::new(subscription);
    assert_eq!(next_news(&mut subscription).await, News::Lagged(12));
    for index in 12..20u8 {
        assert_eq!(
            next_news(&mut subscription).await,
            News::Message(Bytes::from(vec![index]))
        );
    }
    bus.close().await;
}

#[tokio::test]
async fn oversized_messages_are_refused_without_retrying() {
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(test_config(&url, &unique_cluster()))
        .await
        .unwrap();
    let limit = bus.inner.client.server_info().max_payload;
    let outcome = within(
        "an oversized publish to fail",
        bus.publish("big", Bytes::from(vec![0u8; limit + 1])),
    )
    .await;
    assert!(
        matches!(&outcome, Err(BusError::Unavailable(message)) if message.contains("larger")),
        "{outcome:?}"
    );
    bus.close().await;
}

/// A nats-server of the test's own, so that it can be stopped and started again.
struct OwnServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl OwnServer {
    fn binary() -> Option<&'static str> {
        [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ]
        .into_iter()
        .find(|binary| {
            Command::new(binary)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
    }

    fn start(binary: &str) -> OwnServer {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut server = OwnServer {
            child: None,
            port,
            store: tempfile::tempdir().unwrap(),
        };
        server.restart(binary);
        server
    }

    fn restart(&mut self, binary: &str) {
        let child = Command::new(binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Stops the server the way an operator would (SIGTERM: it flushes its store and closes
    /// client connections), falling back to SIGKILL.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let terminated = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if !terminated {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn connect(&self, cluster: &str) -> NatsBus {
        self.connect_with(test_config(&self.url(), cluster)).await
    }

    /// A bus with `config` (made for this server), once the server accepts it.
    async fn connect_with(&self, config: NatsConfig) -> NatsBus {
        within("the own server to accept a bus", async {
            loop {
                match NatsBus::connect(config.clone()).await {
                    Ok(bus) => return bus,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_nothing_accepted() {
    let Some(binary) = OwnServer::binary() else {
        eprintln!("skipped: no nats-server binary (.ci/nats installs it)");
        return;
    };
    let mut server = OwnServer::start(binary);
    let bus = server.connect("restart").await;
    bus.publish("work", Bytes::from("before")).await.unwrap();
    // A consumer already waiting when the server goes away gets what is published once it is back.
    let mut waiting_consumer = bus.consume("later").await.unwrap();
    let waiting = tokio::spawn(async move {
        let delivery = waiting_consumer.next().await.unwrap();
        let payload = delivery.payload.clone();
        delivery.ack().await.unwrap();
        payload
    });

    server.stop();
    // Published while the server is down: the publish keeps trying until it is back.
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish("work", Bytes::from("during")).await })
    };
    server.restart(binary);
    within("the publish across the restart", publisher)
        .await
        .unwrap()
        .unwrap();

    let mut consumer = bus.consume("work").await.unwrap();
    for expected in ["before", "during"] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.payload, expected);
        delivery.ack().await.unwrap();
    }
    bus.publish("later", Bytes::from("after")).await.unwrap();
    assert_eq!(
        within("the consumer that waited across the restart", waiting)
            .await
            .unwrap(),
        "after"
    );
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_away_makes_the_bus_unavailable() {
    let Some(binary) = OwnServer::binary() else {
        eprintln!("skipped: no nats-server binary (.ci/nats installs it)");
        return;
    };
    let mut server = OwnServer::start(binary);
    let bus = server
        .connect_with(NatsConfig {
            publish_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            ..test_config(&server.url(), "away")
        })
        .await;
    bus.publish("work", Bytes::from("stored")).await.unwrap();
    server.stop();

    let publish = within(
        "publish to give up",
        bus.publish("work", Bytes::from("lost")),
    )
    .await;
    assert!(
        matches!(publish, Err(BusError::Unavailable(_))),
        "{publish:?}"
    );
    let try_publish = within(
        "try_publish to give up",
        bus.try_publish("work", Bytes::from("lost")),
    )
    .await;
    assert!(
        matches!(try_publish, Err(BusError::Unavailable(_))),
        "{try_publish:?}"
    );
    let consume = within("consume to give up", bus.consume("fresh")).await;
    assert!(
        matches!(consume, Err(BusError::Unavailable(_))),
        "{consume:?}"
    );
    let subscribe = within("subscribe to give up", bus.subscribe("news")).await;
    assert!(
        matches!(subscribe, Err(BusError::Unavailable(_))),
        "{subscribe:?}"
    );
    bus.close().await;
}

#[tokio::test]
async fn a_stream_deleted_behind_the_bus_is_made_again() {
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(test_config(&url, &unique_cluster()))
        .await
        .unwrap();
    bus.publish("gone", Bytes::from("first")).await.unwrap();
    bus.inner
        .jetstream
        .delete_stream(bus.stream_name("gone"))
        .await
        .unwrap();
    bus.try_publish("gone", Bytes::from("second"))
        .await
        .unwrap();
    let mut consumer = bus.consume("gone").await.unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.payload, "second");
    delivery.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test]
async fn a_stream_made_before_keyed_publishes_takes_them() {
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(test_config(&url, &unique_cluster()))
        .await
        .unwrap();
    // The layout of earlier versions: the plain subject only.
    bus.inner
        .jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: bus.stream_name("old"),
            subjects: vec![bus.queue_subject("old")],
            retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
            max_messages: i64::try_from(QUEUE_CAPACITY).unwrap(),
            discard: async_nats::jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    bus.inner
        .jetstream
        .publish(bus.queue_subject("old"), Bytes::from("before"))
        .await
        .unwrap()
        .await
        .unwrap();
    bus.publish_keyed("old", "k", Bytes::from("keyed"))
        .await
        .unwrap();
    assert_eq!(bus.reclaim("old", "k").await.unwrap(), ["keyed"]);
    let mut consumer = bus.consume("old").await.unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.payload, "before");
    delivery.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test]
async fn a_delivery_held_past_ack_wait_is_claimed_once() {
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(NatsConfig {
        ack_wait: Duration::from_secs(1),
        ..test_config(&url, &unique_cluster())
    })
    .await
    .unwrap();
    bus.publish_keyed("slow", "k", Bytes::from("once"))
        .await
        .unwrap();
    let mut consumer = bus.consume("slow").await.unwrap();
    // Held unclaimed past ack_wait (waiting for a container, say): JetStream hands it out again.
    let mut first = next_delivery(&mut consumer).await;
    let mut second = next_delivery(&mut consumer).await;
    assert_eq!(
        (second.payload.as_ref(), second.redeliveries),
        (&b"once"[..], 1)
    );
    // Whichever claims first runs it; the other copy is refused, so it never runs twice.
    within("a claim", second.claim()).await.unwrap();
    let refused = within("a claim", first.claim()).await;
    assert!(matches!(refused, Err(BusError::Reclaimed)), "{refused:?}");
    assert!(bus.reclaim("slow", "k").await.unwrap().is_empty());
    bus.close().await;
}

/// The order of magnitude, printed for the record
/// (`cargo test -p whisk-bus nats::tests::throughput -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_publish_consume_ack() {
    const MESSAGES: usize = 2_000;
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(NatsConfig::new(url, unique_cluster()))
        .await
        .unwrap();
    let mut consumer = bus.consume("fast").await.unwrap();
    let started = std::time::Instant::now();
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
        next_delivery(&mut consumer).await.ack().await.unwrap();
    }
    within("the publisher", publisher).await.unwrap();
    let elapsed = started.elapsed();
    println!(
        "NATS bus: {MESSAGES} messages of 256 bytes published, consumed and acked in {elapsed:?} ({:.0} msgs/s)",
        MESSAGES as f64 / elapsed.as_secs_f64()
    );
    bus.close().await;
}

/// A delivery whose holder keeps saying it is in progress stays with it past `ack_wait`; once
/// the reports stop, it comes back as a vanished one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_in_progress_is_not_delivered_again() {
    let Some(url) = server_url() else { return };
    let bus = NatsBus::connect(NatsConfig {
        ack_wait: Duration::from_secs(2),
        ..test_config(&url, &unique_cluster())
    })
    .await
    .unwrap();
    bus.publish("long", Bytes::from("held")).await.unwrap();
    let mut holder = bus.consume("long").await.unwrap();
    let held = next_delivery(&mut holder).await;
    let mut other = bus.consume("long").await.unwrap();
    // Three times `ack_wait`, reporting progress a few times per `ack_wait`.
    {
        let watched = tokio::time::timeout(Duration::from_secs(6), other.next());
        tokio::pin!(watched);
        let mut reports = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                delivered = &mut watched => {
                    assert!(delivered.is_err(), "delivered again while in progress: {delivered:?}");
                    break;
                }
                _ = reports.tick() => held.in_progress().await.unwrap(),
            }
        }
    }
    held.ack().await.unwrap();
    bus.publish("long", Bytes::from("next")).await.unwrap();
    let next = next_delivery(&mut other).await;
    assert_eq!(
        (next.payload.as_ref(), next.redeliveries),
        (&b"next"[..], 0)
    );
    next.ack().await.unwrap();

    // Without reports, the same wait hands a held message to the other consumer.
    bus.publish("long", Bytes::from("silent")).await.unwrap();
    let silent = next_delivery(&mut holder).await;
    let again = next_delivery(&mut other).await;
    assert_eq!(
        (again.payload.as_ref(), again.redeliveries),
        (&b"silent"[..], 1)
    );
    again.ack().await.unwrap();
    std::mem::forget(silent);
    bus.close().await;
}

/// `connected` follows the connection: false while the server is away, true once the client
/// got back to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_says_whether_the_server_is_reachable() {
    let Some(binary) = OwnServer::binary() else {
        eprintln!("skipped: no nats-server binary (.ci/nats installs it)");
        return;
    };
    let mut server = OwnServer::start(binary);
    let bus = server.connect("connected").await;
    assert!(bus.connected());
    server.stop();
    wait_for_connected(&bus, false).await;
    server.restart(binary);
    wait_for_connected(&bus, true).await;
    bus.close().await;
}

/// While the server is away, `publish` gives up `publish_timeout` after it started failing,
/// counting the first attempt's own wait for the server, not after that wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_gives_up_within_its_timeout_of_the_first_failure() {
    let Some(binary) = OwnServer::binary() else {
        eprintln!("skipped: no nats-server binary (.ci/nats installs it)");
        return;
    };
    let mut server = OwnServer::start(binary);
    let bus = server
        .connect_with(NatsConfig {
            publish_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            ..test_config(&server.url(), "bounded")
        })
        .await;
    bus.publish("work", Bytes::from("stored")).await.unwrap();
    server.stop();
    wait_for_connected(&bus, false).await;
    let started = std::time::Instant::now();
    let publish = bus.publish("work", Bytes::from("refused")).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(publish, Err(BusError::Unavailable(_))),
        "{publish:?}"
    );
    // One attempt waits up to 3 s for the server; a second 3 s on top would be 6 s.
    assert!(
        elapsed < Duration::from_millis(5500),
        "gave up after {elapsed:?}"
    );
    bus.close().await;
}

/// A publish refused while the server is away is not sent later behind the caller's back once
/// the connection is back: the caller was told it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_is_not_sent_after_the_reconnection() {
    let Some(binary) = OwnServer::binary() else {
        eprintln!("skipped: no nats-server binary (.ci/nats installs it)");
        return;
    };
    let mut server = OwnServer::start(binary);
    let bus = server
        .connect_with(NatsConfig {
            publish_timeout: Duration::from_millis(500),
            ..test_config(&server.url(), "refused")
        })
        .await;
    bus.publish("work", Bytes::from("stored")).await.unwrap();
    server.stop();
    wait_for_connected(&bus, false).await;
    let refused = bus.publish("work", Bytes::from("refused")).await;
    assert!(
        matches!(refused, Err(BusError::Unavailable(_))),
        "{refused:?}"
    );
    server.restart(binary);
    wait_for_connected(&bus, true).await;
    within("a publish after the reconnection", async {
        while bus.publish("work", Bytes::from("after")).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut consumer = bus.consume("work").await.unwrap();
    for expected in ["stored", "after"] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.payload, expected);
        delivery.ack().await.unwrap();
    }
    bus.close().await;
}
