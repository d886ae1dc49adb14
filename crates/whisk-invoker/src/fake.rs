//! An in-memory [`ContainerFactory`] for tests: no processes, scripted outcomes, everything
//! counted, so pool and service rules are tested fast and without root.
//!
//! The behaviour is scripted through what the action receives, so the same fake serves tests
//! that go through the whole service:
//! - `/init` fails (developer error, container not reusable) when the action code contains
//!   [`FAKE_INIT_FAILURE`];
//! - `/run` looks at the string field `fake` of the run's `value`: `timeout`, `crash`, `oom`,
//!   `error` (application error), `reschedule` (the runtime is shutting down) and `hold` (waits
//!   until [`FakeFactory::release_runs`]);
//!   anything else succeeds with the result `{"container": <id>, "run": <n>, "value": <value>}`;
//! - the run's `value.logs` (an array of strings) become stdout lines, followed by the sentinels.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use whisk_model::ActivationResponse;
use whisk_model::activation::{ABNORMAL_RUN, MEMORY_EXHAUSTED, timed_out_run};

use crate::container::{
    ActionContainer, CallOutcome, ContainerError, ContainerFactory, ContainerSpec, LogRequest,
};
use crate::logs::{self, LogRecord, SENTINEL, Stream, VecLogSource};

/// Action code containing this text makes the fake's `/init` fail.
pub const FAKE_INIT_FAILURE: &str = "FAKE_INIT_FAILURE";

/// What a test can see of one fake container.
#[derive(Debug)]
pub struct FakeContainerState {
    pub id: String,
    pub spec: ContainerSpec,
    inits: Mutex<Vec<Value>>,
    runs: Mutex<Vec<Value>>,
    paused: AtomicBool,
    destroyed: AtomicBool,
    pauses: AtomicU64,
    resumes: AtomicU64,
    logs: Mutex<VecDeque<LogRecord>>,
}

impl FakeContainerState {
    /// The `/init` payloads received.
    pub fn inits(&self) -> Vec<Value> {
        lock(&self.inits).clone()
    }

    /// The `/run` payloads received.
    pub fn runs(&self) -> Vec<Value> {
        lock(&self.runs).clone()
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::SeqCst)
    }

    pub fn pause_count(&self) -> u64 {
        self.pauses.load(Ordering::SeqCst)
    }

    pub fn resume_count(&self) -> u64 {
        self.resumes.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct Shared {
    containers: Mutex<Vec<Arc<FakeContainerState>>>,
    fail_creates: AtomicBool,
    fail_resumes: AtomicBool,
    fail_pauses: AtomicBool,
    run_gate: Semaphore,
    next: AtomicU64,
}

/// The fake factory; clones share their containers and switches.
#[derive(Debug, Clone)]
pub struct FakeFactory {
    shared: Arc<Shared>,
}

impl Default for FakeFactory {
    fn default() -> FakeFactory {
        FakeFactory::new()
    }
}

impl FakeFactory {
    pub fn new() -> FakeFactory {
        FakeFactory {
            shared: Arc::new(Shared {
                containers: Mutex::new(Vec::new()),
                fail_creates: AtomicBool::new(false),
                fail_resumes: AtomicBool::new(false),
                fail_pauses: AtomicBool::new(false),
                run_gate: Semaphore::new(0),
                next: AtomicU64::new(0),
            }),
        }
    }

    /// Every container created so far, in creation order.
    pub fn containers(&self) -> Vec<Arc<FakeContainerState>> {
        lock(&self.shared.containers).clone()
    }

    /// How many containers were created.
    pub fn created(&self) -> usize {
        lock(&self.shared.containers).len()
    }

    /// Containers created and not destroyed.
    pub fn alive(&self) -> Vec<Arc<FakeContainerState>> {
        self.containers()
            .into_iter()
            .filter(|c| !c.is_destroyed())
            .collect()
    }

    /// Makes `create` fail (or succeed again).
    pub fn fail_creates(&self, fail: bool) {
        self.shared.fail_creates.store(fail, Ordering::SeqCst);
    }

    /// Makes `resume` fail (or succeed again).
    pub fn fail_resumes(&self, fail: bool) {
        self.shared.fail_resumes.store(fail, Ordering::SeqCst);
    }

    /// Makes `pause` fail (or succeed again).
    pub fn fail_pauses(&self, fail: bool) {
        self.shared.fail_pauses.store(fail, Ordering::SeqCst);
    }

    /// Lets `count` held runs (`value.fake == "hold"`) finish.
    pub fn release_runs(&self, count: usize) {
        self.shared.run_gate.add_permits(count);
    }
}

#[async_trait]
impl ContainerFactory for FakeFactory {
    async fn create(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ActionContainer>, ContainerError> {
        if self.shared.fail_creates.load(Ordering::SeqCst) {
            return Err(ContainerError::Create("the fake refuses".into()));
        }
        let number = self.shared.next.fetch_add(1, Ordering::SeqCst);
        let state = Arc::new(FakeContainerState {
            id: format!("fake{number}"),
            spec: spec.clone(),
            inits: Mutex::new(Vec::new()),
            runs: Mutex::new(Vec::new()),
            paused: AtomicBool::new(false),
            destroyed: AtomicBool::new(false),
            pauses: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            logs: Mutex::new(VecDeque::new()),
        });
        lock(&self.shared.containers).push(state.clone());
        Ok(Box::new(FakeContainer {
            state,
            shared: self.shared.clone(),
        }))
    }
}

#[derive(Debug)]
struct FakeContainer {
    state: Arc<FakeContainerState>,
    shared: Arc<Shared>,
}

impl FakeContainer {
    fn write_logs(&self, lines: &[&str]) {
        let now = SystemTime::now();
        let mut logs = lock(&self.state.logs);
        for line in lines {
            logs.push_back(LogRecord::new(now, Stream::Stdout, format!("{line}\n")));
        }
        logs.push_back(LogRecord::new(now, Stream::Stdout, format!("{SENTINEL}\n")));
        logs.push_back(LogRecord::new(now, Stream::Stderr, format!("{SENTINEL}\n")));
    }
}

#[async_trait]
impl ActionContainer for FakeContainer {
    fn id(&self) -> &str {
        &self.state.id
    }

    async fn init(&self, payload: &Value, _timeout: Duration) -> CallOutcome {
        lock(&self.state.inits).push(payload.clone());
        let code = payload["value"]["code"].as_str().unwrap_or_default();
        if code.contains(FAKE_INIT_FAILURE) {
            self.write_logs(&["init failing"]);
            return CallOutcome::failed(
                ActivationResponse::developer_error(json!("init failed")),
                false,
                Duration::from_millis(1),
            );
        }
        CallOutcome::ready(Duration::from_millis(1))
    }

    async fn run(&self, payload: &Value, timeout: Duration) -> CallOutcome {
        let run = {
            let mut runs = lock(&self.state.runs);
            runs.push(payload.clone());
            runs.len()
        };
        let value = &payload["value"];
        let lines: Vec<&str> = value["logs"]
            .as_array()
            .map(|lines| lines.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let elapsed = Duration::from_millis(2);
        let outcome = match value["fake"].as_str() {
            Some("timeout") => CallOutcome::failed(
                ActivationResponse::developer_error(json!(timed_out_run(
                    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
                ))),
                true,
                timeout,
            ),
            Some("crash") => CallOutcome::failed(
                ActivationResponse::developer_error(json!(ABNORMAL_RUN)),
                false,
                elapsed,
            ),
            Some("oom") => CallOutcome::failed(
                ActivationResponse::developer_error(json!(MEMORY_EXHAUSTED)),
                false,
                elapsed,
            ),
            Some("reschedule") => CallOutcome {
                reschedule: true,
                ..CallOutcome::failed(
                    ActivationResponse::whisk_error(json!("shutting down")),
                    false,
                    elapsed,
                )
            },
            Some("error") => CallOutcome::answered(
                ActivationResponse::application_error(json!("scripted")),
                elapsed,
            ),
            other => {
                if other == Some("hold")
                    && let Ok(permit) = self.shared.run_gate.acquire().await
                {
                    permit.forget();
                }
                CallOutcome::answered(
                    ActivationResponse::success(
                        json!({"container": self.state.id, "run": run, "value": value}),
                        Some(10),
                    ),
                    elapsed,
                )
            }
        };
        self.write_logs(&lines);
        outcome
    }

    async fn pause(&self) -> Result<(), ContainerError> {
        if self.shared.fail_pauses.load(Ordering::SeqCst) {
            return Err(ContainerError::Freeze("the fake refuses to freeze".into()));
        }
        self.state.pauses.fetch_add(1, Ordering::SeqCst);
        self.state.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn resume(&self) -> Result<(), ContainerError> {
        if self.shared.fail_resumes.load(Ordering::SeqCst) {
            return Err(ContainerError::Freeze("the fake refuses to thaw".into()));
        }
        self.state.resumes.fetch_add(1, Ordering::SeqCst);
        self.state.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    async fn destroy(&self) -> Result<(), ContainerError> {
        self.state.destroyed.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn logs(&self, request: LogRequest) -> Vec<String> {
        let records: Vec<LogRecord> = lock(&self.state.logs).drain(..).collect();
        let mut source = VecLogSource::ended(records);
        logs::collect(&mut source, request).await
    }
}
