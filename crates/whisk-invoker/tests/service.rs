//! The invoker service end to end over the in-process bus, a real SQLite store and the fake
//! container factory.
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use whisk_bus::InProcessBus;
use whisk_bus::{Bus, BusError, Consumer, News, Subscription};
use whisk_invoker::fake::{FAKE_INIT_FAILURE, FakeFactory};
use whisk_invoker::{INTERRUPTED_BY_SHUTDOWN, Invoker, InvokerConfig, InvokerHandle, PoolConfig};
use whisk_model::activation::{
    ABNORMAL_RUN, ACTION_REMOVED_WHILE_INVOKING, LOG_WARNING_DEVELOPER_ERROR,
    RESOURCE_PROVISION_ERROR,
};
use whisk_model::bus::{
    ActivationMessage, CompletionMessage, HEALTH_TOPIC, HealthBeat, InvokerState, completion_topic,
    invoker_topic,
};
use whisk_model::{
    ActionLimits, ActivationId, EntityName, EntityPath, EntityType, Exec, FullyQualifiedEntityName,
    Identity, SemVer, WhiskAction, WhiskActivation,
};
use whisk_store::{
    ActivationEntry, ActivationQuery, ActivationStore, EntityDocument, EntityQuery, EntityStore,
    Revision, Store, StoreError, StoreResult, StoredEntity,
};

const DEADLINE: Duration = Duration::from_secs(30);

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    bus: Arc<InProcessBus>,
    fake: FakeFactory,
    completions: Box<dyn Consumer>,
    invoker: Option<InvokerHandle>,
}

fn action(name: &str, code: &str, limits: ActionLimits) -> WhiskAction {
    WhiskAction {
        namespace: EntityPath::parse("guest").unwrap(),
        name: EntityName::new(name).unwrap(),
        exec: Exec::Code {
            kind: "nodejs:20".into(),
            code: code.into(),
            main: None,
            binary: false,
        },
        parameters: Default::default(),
        limits,
        version: SemVer::new(0, 0, 2),
        publish: false,
        annotations: Default::default(),
        updated: 1,
    }
}

impl Harness {
    async fn start(pool: PoolConfig) -> Harness {
        Harness::start_with_store(pool, |store| store).await
    }

    /// With the invoker's store wrapped (the harness itself reads the real one).
    async fn start_with_store(pool: PoolConfig, wrap: impl FnOnce(Store) -> Store) -> Harness {
        Harness::start_wrapped(pool, wrap, |bus| bus).await
    }

    /// With the invoker's store and bus wrapped (the harness itself uses the real ones).
    async fn start_wrapped(
        pool: PoolConfig,
        wrap: impl FnOnce(Store) -> Store,
        wrap_bus: impl FnOnce(Arc<dyn Bus>) -> Arc<dyn Bus>,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        let bus = Arc::new(InProcessBus::new());
        let fake = FakeFactory::new();
        let completions = bus.consume(&completion_topic(0)).await.unwrap();
        let mut config = InvokerConfig::new(0);
        config.pool = pool;
        config.api_host = Some("http://127.0.0.1:3233".into());
        config.log_wait = DEADLINE;
        let invoker = Invoker::start(
            config,
            wrap_bus(bus.clone()),
            wrap(store.clone()),
            Arc::new(fake.clone()),
        )
        .await
        .unwrap();
        Harness {
            _dir: dir,
            store,
            bus,
            fake,
            completions,
            invoker: Some(invoker),
        }
    }

    /// Stores an action and returns its revision.
    async fn put(&self, action: &WhiskAction) -> String {
        let document = EntityDocument {
            doc_id: action.doc_id(),
            entity_type: EntityType::Action,
            namespace: action.namespace.to_string(),
            name: action.name.to_string(),
            updated: action.updated,
            publish: false,
            binding: false,
            document: serde_json::to_value(action).unwrap(),
        };
        let existing = self.store.entities.get(&action.doc_id()).await.unwrap();
        self.store
            .entities
            .put(document, existing.map(|e| e.revision))
            .await
            .unwrap()
            .to_string()
    }

    async fn send(&self, message: &ActivationMessage) {
        self.bus
            .publish(
                &invoker_topic(0),
                Bytes::from(serde_json::to_vec(message).unwrap()),
            )
            .await
            .unwrap();
    }

    async fn completion(&mut self) -> CompletionMessage {
        let delivery = tokio::time::timeout(DEADLINE, self.completions.next())
            .await
            .expect("a completion within 30 s")
            .unwrap();
        let completion = serde_json::from_slice(&delivery.payload).unwrap();
        delivery.ack().await.unwrap();
        completion
    }

    /// Sends and waits for the record (from the completion of a blocking activation).
    async fn invoke(&mut self, message: &ActivationMessage) -> WhiskActivation {
        self.send(message).await;
        let completion = self.completion().await;
        assert_eq!(completion.activation_id, message.activation_id);
        completion
            .record
            .expect("blocking completions carry the record")
    }

    async fn stored(&self, id: &ActivationId) -> WhiskActivation {
        let document = self
            .store
            .activations
            .get("guest", id.as_str())
            .await
            .unwrap()
            .expect("the record is stored");
        serde_json::from_value(document).unwrap()
    }
}

static NEXT_ID: AtomicU8 = AtomicU8::new(1);

fn message(action: &WhiskAction, revision: &str, content: Value) -> ActivationMessage {
    ActivationMessage {
        transaction_id: "tid-1".into(),
        activation_id: ActivationId::from_bytes([NEXT_ID.fetch_add(1, Ordering::SeqCst); 16]),
        action: FullyQualifiedEntityName::parse(&format!("/{}", action.doc_id())).unwrap(),
        revision: revision.into(),
        user: Identity {
            subject: "guest-subject".into(),
            namespace: "guest".into(),
            uuid: "23bc46b1-71f6-4ed5-8c54-816aa4f8c502".into(),
            limits: Default::default(),
        },
        api_key: Some("uuid:key".into()),
        content: content.as_object().cloned().unwrap_or_default(),
        init_args: Default::default(),
        blocking: true,
        completion_topic: completion_topic(0),
        cause: None,
        caused_by: None,
        binding: None,
        invoked_as: None,
        accepted_at: 1,
    }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_cold_then_a_warm_activation_store_full_records() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action(
        "hello",
        "function main(p) { return p }",
        ActionLimits::default(),
    );
    let revision = h.put(&hello).await;

    let first = message(
        &hello,
        &revision,
        json!({"name": "Ada", "logs": ["hi there"]}),
    );
    let record = h.invoke(&first).await;
    assert_eq!(
        record,
        h.stored(&first.activation_id).await,
        "the completion carries the stored record"
    );
    assert!(record.response.is_success(), "{record:?}");
    let result = record.response.result.clone().unwrap();
    assert_eq!(result["value"]["name"], "Ada");
    assert_eq!(record.namespace.to_string(), "guest");
    assert_eq!(record.subject, "guest-subject");
    assert_eq!(record.version, SemVer::new(0, 0, 2));
    assert_eq!(record.annotations.get_str("path"), Some("guest/hello"));
    assert_eq!(record.annotations.get_str("kind"), Some("nodejs:20"));
    assert_eq!(
        record.annotations.get("limits"),
        Some(&json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}))
    );
    assert_eq!(record.annotations.get("timeout"), Some(&json!(false)));
    assert!(record.annotations.get("waitTime").is_some());
    assert!(
        record.annotations.get("initTime").is_some(),
        "a cold start has initTime"
    );
    assert_eq!(record.logs.len(), 1, "{:?}", record.logs);
    assert!(record.logs[0].ends_with(" stdout: hi there"));

    // What the container was told.
    let container = h.fake.containers()[0].clone();
    let init = &container.inits()[0]["value"];
    assert_eq!(init["name"], "hello");
    assert_eq!(init["main"], "main");
    assert_eq!(init["env"]["__OW_API_HOST"], "http://127.0.0.1:3233");
    assert_eq!(init["env"]["__OW_API_KEY"], "uuid:key");
    assert_eq!(container.spec.env["__OW_API_HOST"], "http://127.0.0.1:3233");
    let run = &container.runs()[0];
    assert_eq!(run["namespace"], "guest");
    assert_eq!(run["action_name"], "/guest/hello");
    assert_eq!(run["action_version"], "0.0.2");
    assert_eq!(run["activation_id"], first.activation_id.as_str());
    assert_eq!(run["transaction_id"], "tid-1");
    assert_eq!(run["api_key"], "uuid:key");
    assert!(run["deadline"].as_str().unwrap().parse::<u64>().is_ok());

    let mut second = message(&hello, &revision, json!({}));
    second.api_key = None;
    let warm = h.invoke(&second).await;
    assert_eq!(
        warm.response.result.as_ref().unwrap()["container"],
        result["container"]
    );
    assert!(
        warm.annotations.get("initTime").is_none(),
        "a warm start has no initTime"
    );
    assert_eq!(h.fake.created(), 1);
    assert!(h.fake.containers()[0].runs()[1].get("api_key").is_none());
    h.invoker.take().unwrap().shutdown().await;
    assert!(
        h.fake.alive().is_empty(),
        "shutdown destroys the containers"
    );
}

/// The value of `series` (name and labels as encoded) in the process's metrics; 0 when absent.
fn metric(series: &str) -> f64 {
    let text = whisk_metrics::global().encode().unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test]
async fn activations_are_counted_and_timed_in_the_metrics() {
    let done = r#"whisk_activations_total{kind="nodejs:20",status="success"}"#;
    let puts = r#"whisk_store_call_seconds_count{operation="activation_put"}"#;
    let inits = r#"whisk_activation_init_seconds_count{kind="nodejs:20"}"#;
    // Other tests of this process run activations too: each count grows by at least one.
    let (done_before, puts_before, inits_before) = (metric(done), metric(puts), metric(inits));
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let record = h.invoke(&message(&hello, &revision, json!({}))).await;
    assert!(record.response.is_success(), "{record:?}");
    // Counted once the message is acknowledged, just after the completion went out.
    wait_until("the activation is counted", || {
        metric(done) >= done_before + 1.0
    })
    .await;
    assert!(metric(puts) >= puts_before + 1.0);
    assert!(
        metric(inits) >= inits_before + 1.0,
        "a cold start initializes"
    );
}

#[tokio::test]
async fn a_non_blocking_completion_has_no_record_but_the_store_does() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let mut message = message(&hello, &revision, json!({}));
    message.blocking = false;
    h.send(&message).await;
    let completion = h.completion().await;
    assert!(completion.record.is_none());
    assert!(!completion.system_error);
    assert!(h.stored(&message.activation_id).await.response.is_success());
}

#[tokio::test]
async fn an_updated_or_deleted_action_is_an_application_error() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action("hello", "x", ActionLimits::default());
    let old = h.put(&hello).await;
    h.put(&hello).await;
    let record = h.invoke(&message(&hello, &old, json!({}))).await;
    assert_eq!(
        record.response.result,
        Some(json!({"error": ACTION_REMOVED_WHILE_INVOKING}))
    );
    assert_eq!(record.response.status_code, 1);
    assert_eq!(record.annotations.get_str("path"), Some("guest/hello"));
    assert_eq!(record.effective_duration(), Some(0));
    assert_eq!(h.fake.created(), 0);
}

#[tokio::test]
async fn a_crash_destroys_the_container_and_warns_in_the_logs() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let record = h
        .invoke(&message(&hello, &revision, json!({"fake": "crash"})))
        .await;
    assert_eq!(record.response.status_code, 2);
    assert_eq!(record.response.result, Some(json!({"error": ABNORMAL_RUN})));
    assert!(
        record
            .logs
            .last()
            .unwrap()
            .ends_with(LOG_WARNING_DEVELOPER_ERROR),
        "{:?}",
        record.logs
    );
    let crashed = h.fake.containers()[0].clone();
    wait_until("the crashed container is destroyed", || {
        crashed.is_destroyed()
    })
    .await;
    h.invoke(&message(&hello, &revision, json!({}))).await;
    assert_eq!(h.fake.created(), 2, "never reused");
}

#[tokio::test]
async fn a_timeout_is_annotated() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let limits = ActionLimits {
        timeout: 100,
        ..ActionLimits::default()
    };
    let hello = action("hello", "x", limits);
    let revision = h.put(&hello).await;
    let record = h
        .invoke(&message(&hello, &revision, json!({"fake": "timeout"})))
        .await;
    assert_eq!(record.response.status_code, 2);
    assert_eq!(
        record.response.result,
        Some(json!({"error": "The action exceeded its time limits of 100 milliseconds."}))
    );
    assert_eq!(record.annotations.get("timeout"), Some(&json!(true)));
}

#[tokio::test]
async fn a_failed_init_is_a_developer_error_with_init_time() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let broken = action("broken", FAKE_INIT_FAILURE, ActionLimits::default());
    let revision = h.put(&broken).await;
    let record = h.invoke(&message(&broken, &revision, json!({}))).await;
    assert_eq!(record.response.status_code, 2);
    assert_eq!(
        record.response.result,
        Some(json!({"error": "init failed"}))
    );
    assert!(record.annotations.get("initTime").is_some());
    assert!(
        h.fake.containers()[0].runs().is_empty(),
        "no /run after a failed /init"
    );
    let container = h.fake.containers()[0].clone();
    wait_until("the container is destroyed", || container.is_destroyed()).await;
}

#[tokio::test]
async fn a_container_that_cannot_be_created_is_a_whisk_error() {
    let mut h = Harness::start(PoolConfig::default()).await;
    h.fake.fail_creates(true);
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    h.send(&message(&hello, &revision, json!({}))).await;
    let completion = h.completion().await;
    assert!(completion.system_error);
    let record = completion.record.unwrap();
    assert_eq!(record.response.status_code, 3);
    assert_eq!(
        record.response.result,
        Some(json!({"error": RESOURCE_PROVISION_ERROR}))
    );
    assert_eq!(record.annotations.get_str("kind"), Some("nodejs:20"));
}

#[tokio::test]
async fn shutdown_ends_running_activations_with_a_record() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let held = message(&hello, &revision, json!({"fake": "hold"}));
    h.send(&held).await;
    let fake = h.fake.clone();
    wait_until("the run started", || {
        fake.containers()
            .first()
            .is_some_and(|c| !c.runs().is_empty())
    })
    .await;
    h.invoker.take().unwrap().shutdown().await;
    let completion = h.completion().await;
    assert!(completion.system_error);
    let record = completion.record.unwrap();
    assert_eq!(
        record.response.result,
        Some(json!({"error": INTERRUPTED_BY_SHUTDOWN}))
    );
    assert_eq!(record.annotations.get_str("kind"), Some("nodejs:20"));
    assert_eq!(h.stored(&held.activation_id).await, record);
    assert!(h.fake.alive().is_empty());
}

#[tokio::test]
async fn the_invoker_beats_and_says_when_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let store = whisk_store::open_sqlite(dir.path()).unwrap();
    let bus = Arc::new(InProcessBus::new());
    let mut beats: Box<dyn Subscription> = bus.subscribe(HEALTH_TOPIC).await.unwrap();
    let mut config = InvokerConfig::new(7);
    config.pool.user_memory_mb = 1024;
    let invoker = Invoker::start(config, bus.clone(), store, Arc::new(FakeFactory::new()))
        .await
        .unwrap();
    let beat = next_beat(beats.as_mut()).await;
    assert_eq!(beat.invoker, 7);
    assert_eq!(beat.state, InvokerState::Healthy);
    assert_eq!(beat.user_memory_mb, 1024);
    invoker.shutdown().await;
    loop {
        if next_beat(beats.as_mut()).await.state == InvokerState::Draining {
            break;
        }
    }
}

#[tokio::test]
async fn an_undecodable_message_is_dropped_and_the_invoker_goes_on() {
    let mut h = Harness::start(PoolConfig::default()).await;
    h.bus
        .publish(&invoker_topic(0), Bytes::from_static(b"not json"))
        .await
        .unwrap();
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    assert!(
        h.invoke(&message(&hello, &revision, json!({})))
            .await
            .response
            .is_success()
    );
}

async fn next_beat(beats: &mut dyn Subscription) -> HealthBeat {
    loop {
        match tokio::time::timeout(DEADLINE, beats.next()).await.unwrap() {
            Some(News::Message(bytes)) => {
                return serde_json::from_slice::<HealthBeat>(&bytes).unwrap();
            }
            Some(News::Lagged(_)) => continue,
            None => panic!("bus closed"),
        }
    }
}

#[tokio::test]
async fn a_redelivered_activation_with_a_stored_record_is_completed_not_rerun() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    // A first run stores the record.
    let first = message(&hello, &revision, json!({}));
    let record = h.invoke(&first).await;
    assert_eq!(h.fake.containers()[0].runs().len(), 1);

    // The same message again, as the bus redelivers it after a crash before the ack: taken
    // and dropped here once, so the invoker sees it as a redelivery.
    h.invoker.take().unwrap().shutdown().await;
    h.send(&first).await;
    let mut stolen = h.bus.consume(&invoker_topic(0)).await.unwrap();
    let delivery = tokio::time::timeout(DEADLINE, stolen.next())
        .await
        .unwrap()
        .unwrap();
    drop(delivery);
    drop(stolen);
    let mut config = InvokerConfig::new(0);
    config.log_wait = DEADLINE;
    h.invoker = Some(
        Invoker::start(
            config,
            h.bus.clone(),
            h.store.clone(),
            Arc::new(h.fake.clone()),
        )
        .await
        .unwrap(),
    );
    let completion = h.completion().await;
    assert_eq!(completion.record, Some(record));
    assert_eq!(h.fake.created(), 1, "not run again");
}

#[tokio::test]
async fn a_runtime_that_shuts_down_sends_the_activation_elsewhere_a_few_times() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let record = h
        .invoke(&message(&hello, &revision, json!({"fake": "reschedule"})))
        .await;
    assert_eq!(record.response.status_code, 3);
    assert_eq!(h.fake.created(), 3, "tried on three containers");
}

#[tokio::test]
async fn an_action_larger_than_the_invoker_is_a_whisk_error() {
    let mut h = Harness::start(PoolConfig {
        user_memory_mb: 256,
        ..PoolConfig::default()
    })
    .await;
    let big = action(
        "big",
        "x",
        ActionLimits {
            memory: 512,
            ..ActionLimits::default()
        },
    );
    let revision = h.put(&big).await;
    let record = h.invoke(&message(&big, &revision, json!({}))).await;
    assert_eq!(
        record.response.result,
        Some(json!({"error": RESOURCE_PROVISION_ERROR}))
    );
    assert_eq!(h.fake.created(), 0);
}

#[tokio::test]
async fn an_action_that_does_not_decode_is_a_whisk_error() {
    let mut h = Harness::start(PoolConfig::default()).await;
    let document = EntityDocument {
        doc_id: "guest/broken".into(),
        entity_type: EntityType::Action,
        namespace: "guest".into(),
        name: "broken".into(),
        updated: 1,
        publish: false,
        binding: false,
        document: json!({"exec": "not an exec"}),
    };
    let revision = h.store.entities.put(document, None).await.unwrap();
    let broken = action("broken", "x", ActionLimits::default());
    let record = h
        .invoke(&message(&broken, &revision.to_string(), json!({})))
        .await;
    assert_eq!(record.response.status_code, 3);
    assert_eq!(
        record.response.result,
        Some(json!({"error": whisk_invoker::service::ACTION_FETCH_ERROR}))
    );
}

/// A scripted outage: while `away`, the wrapped calls fail as a service that cannot be reached
/// does, and count their attempts.
#[derive(Debug, Default)]
struct Outage {
    away: AtomicBool,
    attempts: AtomicU32,
}

impl Outage {
    fn away() -> Arc<Outage> {
        let outage = Arc::new(Outage::default());
        outage.away.store(true, Ordering::SeqCst);
        outage
    }

    fn back(&self) {
        self.away.store(false, Ordering::SeqCst);
    }

    fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }

    fn check(&self) -> StoreResult<()> {
        if self.away.load(Ordering::SeqCst) {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("scripted outage".into()));
        }
        Ok(())
    }
}

/// Activations whose `put` and `get` fail during the outage.
#[derive(Debug)]
struct AwayActivations {
    inner: Arc<dyn ActivationStore>,
    outage: Arc<Outage>,
}

#[async_trait::async_trait]
impl ActivationStore for AwayActivations {
    async fn put(&self, entry: ActivationEntry) -> StoreResult<()> {
        self.outage.check()?;
        self.inner.put(entry).await
    }

    async fn get(&self, namespace: &str, id: &str) -> StoreResult<Option<Value>> {
        self.outage.check()?;
        self.inner.get(namespace, id).await
    }

    async fn list(&self, query: &ActivationQuery) -> StoreResult<Vec<Value>> {
        self.inner.list(query).await
    }

    async fn count(&self, query: &ActivationQuery) -> StoreResult<u64> {
        self.inner.count(query).await
    }

    async fn delete_older_than(&self, epoch_ms: u64) -> StoreResult<u64> {
        self.inner.delete_older_than(epoch_ms).await
    }
}

/// Entities whose `get` fails during the outage.
#[derive(Debug)]
struct AwayEntities {
    inner: Arc<dyn EntityStore>,
    outage: Arc<Outage>,
}

#[async_trait::async_trait]
impl EntityStore for AwayEntities {
    async fn get(&self, doc_id: &str) -> StoreResult<Option<StoredEntity>> {
        self.outage.check()?;
        self.inner.get(doc_id).await
    }

    async fn put(
        &self,
        entity: EntityDocument,
        expected: Option<Revision>,
    ) -> StoreResult<Revision> {
        self.inner.put(entity, expected).await
    }

    async fn delete(&self, doc_id: &str, expected: Revision) -> StoreResult<()> {
        self.inner.delete(doc_id, expected).await
    }

    async fn list(&self, query: &EntityQuery) -> StoreResult<Vec<StoredEntity>> {
        self.inner.list(query).await
    }

    async fn count(&self, query: &EntityQuery) -> StoreResult<u64> {
        self.inner.count(query).await
    }
}

/// A bus whose publishes on completion topics fail during the outage.
#[derive(Debug)]
struct AwayBus {
    inner: Arc<dyn Bus>,
    outage: Arc<Outage>,
}

#[async_trait::async_trait]
impl Bus for AwayBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        if topic == completion_topic(0) && self.outage.check().is_err() {
            return Err(BusError::Unavailable("scripted outage".into()));
        }
        self.inner.publish(topic, payload).await
    }

    async fn try_publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        self.inner.try_publish(topic, payload).await
    }

    async fn publish_keyed(&self, topic: &str, key: &str, payload: Bytes) -> Result<(), BusError> {
        self.inner.publish_keyed(topic, key, payload).await
    }

    async fn reclaim(&self, topic: &str, key: &str) -> Result<Vec<Bytes>, BusError> {
        self.inner.reclaim(topic, key).await
    }

    async fn consume(&self, topic: &str) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.consume(topic).await
    }

    async fn broadcast(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        self.inner.broadcast(topic, payload).await
    }

    async fn subscribe(&self, topic: &str) -> Result<Box<dyn Subscription>, BusError> {
        self.inner.subscribe(topic).await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}

/// The harness with the activation store away.
async fn with_activations_away() -> (Harness, Arc<Outage>) {
    let outage = Outage::away();
    let scripted = outage.clone();
    let h = Harness::start_with_store(PoolConfig::default(), move |store| Store {
        activations: Arc::new(AwayActivations {
            inner: store.activations.clone(),
            outage: scripted,
        }),
        ..store
    })
    .await;
    (h, outage)
}

#[tokio::test]
async fn a_record_is_kept_while_the_store_is_away_and_stored_once_it_is_back() {
    let (mut h, outage) = with_activations_away().await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let message = message(&hello, &revision, json!({}));
    h.send(&message).await;
    // Ran, and the record is being retried rather than dropped or run again.
    let retried = outage.clone();
    wait_until("the record retried", move || retried.attempts() >= 3).await;
    assert_eq!(h.fake.containers()[0].runs().len(), 1);
    assert!(
        h.store
            .activations
            .get("guest", message.activation_id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    outage.back();
    let completion = h.completion().await;
    let record = completion.record.unwrap();
    assert!(record.response.is_success());
    assert_eq!(h.stored(&message.activation_id).await, record);
    assert_eq!(h.fake.containers()[0].runs().len(), 1, "run once");
}

/// The message was claimed when the run started, so the bus cannot run it a second time: an
/// invoker that stops before the store is back gives the record up, and the activation's
/// controller closes it as lost (`whisk internal error`) once the invoker is silent.
#[tokio::test]
async fn an_invoker_stopping_with_the_store_away_does_not_leave_a_claimed_activation_to_run_again()
{
    let (mut h, outage) = with_activations_away().await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let message = message(&hello, &revision, json!({}));
    h.send(&message).await;
    let retried = outage.clone();
    wait_until("the record retried", move || retried.attempts() >= 1).await;
    h.invoker.take().unwrap().shutdown().await;
    assert_eq!(h.fake.containers()[0].runs().len(), 1, "ran once");
    let mut queue = h.bus.consume(&invoker_topic(0)).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(2), queue.next()).await;
    assert!(again.is_err(), "a claimed activation came back: {again:?}");
    outage.back();
    assert!(
        h.store
            .activations
            .get("guest", message.activation_id.as_str())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_redelivery_waits_for_the_store_to_say_whether_it_ran() {
    let (mut h, outage) = with_activations_away().await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let first = message(&hello, &revision, json!({}));
    // Its record is there, but the invoker cannot see it yet.
    outage.back();
    let record = h.invoke(&first).await;
    outage.away.store(true, Ordering::SeqCst);
    let before = outage.attempts();
    h.invoker.take().unwrap().shutdown().await;
    h.send(&first).await;
    let mut stolen = h.bus.consume(&invoker_topic(0)).await.unwrap();
    drop(
        tokio::time::timeout(DEADLINE, stolen.next())
            .await
            .unwrap()
            .unwrap(),
    );
    drop(stolen);
    let outage_store = outage.clone();
    let mut config = InvokerConfig::new(0);
    config.log_wait = DEADLINE;
    h.invoker = Some(
        Invoker::start(
            config,
            h.bus.clone(),
            Store {
                activations: Arc::new(AwayActivations {
                    inner: h.store.activations.clone(),
                    outage: outage_store,
                }),
                ..h.store.clone()
            },
            Arc::new(h.fake.clone()),
        )
        .await
        .unwrap(),
    );
    let retried = outage.clone();
    wait_until("the lookup retried", move || {
        retried.attempts() >= before + 3
    })
    .await;
    outage.back();
    let completion = h.completion().await;
    assert_eq!(completion.record, Some(record));
    assert_eq!(h.fake.created(), 1, "not run again");
}

#[tokio::test]
async fn an_action_is_loaded_once_the_store_is_back() {
    let outage = Outage::away();
    let scripted = outage.clone();
    let mut h = Harness::start_with_store(PoolConfig::default(), move |store| Store {
        entities: Arc::new(AwayEntities {
            inner: store.entities.clone(),
            outage: scripted,
        }),
        ..store
    })
    .await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let message = message(&hello, &revision, json!({}));
    h.send(&message).await;
    let retried = outage.clone();
    wait_until("the load retried", move || retried.attempts() >= 3).await;
    outage.back();
    let record = h.completion().await.record.unwrap();
    assert!(record.response.is_success(), "{:?}", record.response);
    assert_eq!(h.fake.containers()[0].runs().len(), 1);
}

#[tokio::test]
async fn a_completion_is_published_once_the_bus_is_back() {
    let outage = Outage::away();
    let scripted = outage.clone();
    let mut h = Harness::start_wrapped(
        PoolConfig::default(),
        |store| store,
        move |bus| {
            Arc::new(AwayBus {
                inner: bus,
                outage: scripted,
            })
        },
    )
    .await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let message = message(&hello, &revision, json!({}));
    h.send(&message).await;
    let retried = outage.clone();
    wait_until("the completion retried", move || retried.attempts() >= 3).await;
    // The record is stored before the completion is tried.
    let stored = h.stored(&message.activation_id).await;
    outage.back();
    let completion = h.completion().await;
    assert_eq!(completion.record, Some(stored));
}

#[tokio::test]
async fn a_message_taken_back_before_it_started_is_not_run() {
    let pool = PoolConfig {
        user_memory_mb: 256,
        stem_cells: Vec::new(),
        ..PoolConfig::default()
    };
    let mut h = Harness::start(pool).await;
    let hello = action("hello", "x", ActionLimits::default());
    let revision = h.put(&hello).await;
    let running = message(&hello, &revision, json!({"fake": "hold"}));
    let queued = message(&hello, &revision, json!({"n": 2}));
    for message in [&running, &queued] {
        h.bus
            .publish_keyed(
                &invoker_topic(0),
                "controller0",
                Bytes::from(serde_json::to_vec(message).unwrap()),
            )
            .await
            .unwrap();
    }
    // The first runs (claimed); the second waits in the pool for the only container's memory.
    let fake = h.fake.clone();
    wait_until("the first run started", || {
        fake.containers()
            .first()
            .is_some_and(|c| !c.runs().is_empty())
    })
    .await;
    let pool = h.invoker.as_ref().unwrap().pool().clone();
    wait_until("the second waits for a container", || {
        pool.snapshot().waiting == 1
    })
    .await;
    let taken = h
        .bus
        .reclaim(&invoker_topic(0), "controller0")
        .await
        .unwrap();
    let taken: Vec<ActivationMessage> = taken
        .iter()
        .map(|payload| serde_json::from_slice(payload).unwrap())
        .collect();
    assert_eq!(taken.len(), 1, "only the unstarted one comes back");
    assert_eq!(taken[0], queued);
    h.fake.release_runs(1);
    let completion = h.completion().await;
    assert_eq!(completion.activation_id, running.activation_id);
    // The waiting one gets its container, finds it taken back and gives the container up.
    wait_until("nothing waits", || pool.snapshot().waiting == 0).await;
    wait_until("the container is free", || {
        pool.snapshot().slots.iter().all(|slot| slot.active == 0)
    })
    .await;
    let runs: usize = h.fake.containers().iter().map(|c| c.runs().len()).sum();
    assert_eq!(runs, 1, "the taken-back activation did not run here");
    assert!(
        h.store
            .activations
            .get("guest", queued.activation_id.as_str())
            .await
            .unwrap()
            .is_none()
    );
}
