//! A scripted stand-in for an invoker, speaking the real bus protocol: it beats on the health
//! topic, consumes `invoker<N>`, and answers each activation as its script says (store the
//! record and complete, complete without a record, or hold it until told). Controller tests
//! use it instead of running containers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use whisk_bus::Bus;
use whisk_controller::api::activations::activation_entry;
use whisk_controller::{ControllerConfig, LoadBalancer};
use whisk_model::bus::{
    ActivationMessage, CompletionMessage, HEALTH_TOPIC, HealthBeat, InvokerState, invoker_topic,
};
use whisk_model::{ActivationResponse, EntityName, EntityPath, WhiskActivation};
use whisk_store::Store;

/// A controller whose balancer runs over an in-process bus, with one stand-in invoker (invoker 0,
/// 2 GB) answering as `script` says; returned once the balancer counts the invoker healthy.
pub async fn app_with_stand_in(
    config: ControllerConfig,
    script: Box<Script>,
) -> (super::TestApp, Arc<LoadBalancer>, StandIn) {
    let (app, balancer) = super::TestApp::with_balancer(config).await;
    let stand_in = StandIn::start(
        Arc::clone(balancer.bus()),
        app.store.clone(),
        0,
        2048,
        script,
    )
    .await;
    wait_healthy(&balancer, 1).await;
    (app, balancer, stand_in)
}

/// Waits (up to 30 s) until the balancer counts exactly `invokers` healthy invokers (0 waits for
/// silent ones to be marked down).
pub async fn wait_healthy(balancer: &LoadBalancer, invokers: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while balancer.invokers().iter().filter(|i| i.healthy).count() != invokers {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {invokers} healthy invoker(s)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the stand-in does with one activation.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Store a record with this response and send the completion (with the record when the
    /// activation is blocking).
    Finish(ActivationResponse),
    /// Send a completion that carries no record, and store the record a bit later.
    FinishLate(ActivationResponse),
    /// Keep it until [`StandIn::release`].
    Hold,
}

pub type Script = dyn Fn(&ActivationMessage) -> Reply + Send + Sync;

/// A running stand-in; stops beating and consuming when dropped.
pub struct StandIn {
    pub invoker: u32,
    /// Every activation message received, in order.
    pub received: Arc<Mutex<Vec<ActivationMessage>>>,
    held: Arc<Mutex<Vec<ActivationMessage>>>,
    bus: Arc<dyn Bus>,
    store: Store,
    beating: Arc<Mutex<bool>>,
    tasks: Vec<JoinHandle<()>>,
    arrivals: mpsc::UnboundedReceiver<ActivationMessage>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A plain success with the activation's input as result.
pub fn echo() -> Box<Script> {
    Box::new(|message| Reply::Finish(ActivationResponse::success(json!(message.content), Some(2))))
}

impl StandIn {
    /// Starts beating (every 50 ms, `memory_mb` of user memory) and consuming `invoker<N>`.
    pub async fn start(
        bus: Arc<dyn Bus>,
        store: Store,
        invoker: u32,
        memory_mb: u64,
        script: Box<Script>,
    ) -> StandIn {
        let mut consumer = bus.consume(&invoker_topic(invoker)).await.unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let beating = Arc::new(Mutex::new(true));
        let (arrived, arrivals) = mpsc::unbounded_channel();

        let beat_bus = Arc::clone(&bus);
        let beat_flag = Arc::clone(&beating);
        let beats = tokio::spawn(async move {
            loop {
                if *beat_flag.lock().unwrap() {
                    let beat = HealthBeat {
                        invoker,
                        state: InvokerState::Healthy,
                        user_memory_mb: memory_mb,
                        sent_at: 0,
                    };
                    let payload = Bytes::from(serde_json::to_vec(&beat).unwrap());
                    let _ = beat_bus.broadcast(HEALTH_TOPIC, payload).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });

        let work_bus = Arc::clone(&bus);
        let work_store = store.clone();
        let work_received = Arc::clone(&received);
        let work_held = Arc::clone(&held);
        let work = tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let message: ActivationMessage = serde_json::from_slice(&delivery.payload).unwrap();
                delivery.ack().await.unwrap();
                work_received.lock().unwrap().push(message.clone());
                let reply = script(&message);
                match reply {
                    Reply::Hold => work_held.lock().unwrap().push(message.clone()),
                    Reply::Finish(response) => {
                        finish(&work_bus, &work_store, invoker, &message, response, true).await;
                    }
                    Reply::FinishLate(response) => {
                        finish(&work_bus, &work_store, invoker, &message, response, false).await;
                    }
                }
                let _ = arrived.send(message);
            }
        });

        StandIn {
            invoker,
            received,
            held,
            bus,
            store,
            beating,
            tasks: vec![beats, work],
            arrivals,
        }
    }

    /// Waits (up to 30 s) for the next activation to reach the stand-in.
    pub async fn next_arrival(&mut self) -> ActivationMessage {
        tokio::time::timeout(Duration::from_secs(30), self.arrivals.recv())
            .await
            .expect("an activation reaches the stand-in within 30 s")
            .expect("stand-in running")
    }

    /// Stops (or resumes) the health beats, as a dead (or revived) invoker would.
    pub fn set_beating(&self, beating: bool) {
        *self.beating.lock().unwrap() = beating;
    }

    /// Finishes every held activation with `response`.
    pub async fn release(&self, response: ActivationResponse) {
        let held: Vec<_> = self.held.lock().unwrap().drain(..).collect();
        for message in held {
            finish(
                &self.bus,
                &self.store,
                self.invoker,
                &message,
                response.clone(),
                true,
            )
            .await;
        }
    }

    pub fn held_count(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// The record an invoker would write for `message`.
pub fn record_for(message: &ActivationMessage, response: ActivationResponse) -> WhiskActivation {
    let namespace =
        EntityPath::namespace(EntityName::namespace(message.user.namespace.clone()).unwrap());
    serde_json::from_value(json!({
        "namespace": namespace,
        "name": message.action.name,
        "subject": message.user.subject,
        "activationId": message.activation_id,
        "start": message.accepted_at,
        "end": message.accepted_at + 5,
        "response": response,
        "logs": ["2024-05-29T16:26:40.123456789Z stdout: stand-in"],
        "version": "0.0.1",
        "publish": false,
        "annotations": [
            {"key": "path", "value": format!("{}/{}", message.action.path, message.action.name)},
            {"key": "waitTime", "value": 1}
        ]
    }))
    .unwrap()
}

async fn finish(
    bus: &Arc<dyn Bus>,
    store: &Store,
    invoker: u32,
    message: &ActivationMessage,
    response: ActivationResponse,
    with_record: bool,
) {
    let record = record_for(message, response);
    if with_record {
        store
            .activations
            .put(activation_entry(&record).unwrap())
            .await
            .unwrap();
    }
    let completion = CompletionMessage {
        transaction_id: message.transaction_id.clone(),
        activation_id: message.activation_id.clone(),
        invoker,
        record: (with_record && message.blocking).then(|| record.clone()),
        system_error: false,
    };
    bus.publish(
        &message.completion_topic,
        Bytes::from(serde_json::to_vec(&completion).unwrap()),
    )
    .await
    .unwrap();
    if !with_record {
        // The record lands after the completion, as when a slow store write races the ack.
        tokio::time::sleep(Duration::from_millis(300)).await;
        store
            .activations
            .put(activation_entry(&record).unwrap())
            .await
            .unwrap();
    }
}

/// `{"error": ..}` results are what the status texts are checked against.
pub fn error_of(body: &Value) -> &Value {
    &body["response"]["result"]["error"]
}
