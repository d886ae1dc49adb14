//! WebAssembly actions behind the container seam: a [`WasmFactory`] makes in-process
//! [`ActionContainer`]s from [`whisk_wasm::WasmContainer`], and a [`KindRouter`] sends `wasm:*`
//! kinds to it and every other kind to the factory of real containers.
//!
//! Why a container shape at all: the pool, the activation logic, the records and the log
//! collector then treat a WebAssembly action exactly like any other kind (warm reuse, memory
//! budget, limits, notices), and nothing in them needs to know that "creating" one costs no
//! process. A WebAssembly container buffers each run's output lines and ends them with the same
//! sentinels a runtime proxy writes, so [`logs::collect`] applies the log limit, the truncation
//! notice and the developer-error warning as it does for a real container.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};
use tracing::debug;
use whisk_model::ActivationStatus;
use whisk_model::limits::LimitBounds;
use whisk_wasm::{LogLine, LogStream, WASM_KIND, WasmConfig, WasmContainer, WasmEngine};

use crate::container::{
    ActionContainer, CallOutcome, ContainerError, ContainerFactory, ContainerSpec, LogRequest,
};
use crate::logs::{self, LogReadError, LogRecord, LogSource, SENTINEL, Stream};

/// The prefix of the kinds the [`KindRouter`] sends to the WebAssembly factory.
pub const WASM_KIND_PREFIX: &str = "wasm:";

/// The engine configuration for an invoker with `user_memory_mb` of action memory.
///
/// Each memory slot is as large as the largest action memory limit (never more than the
/// invoker has), and there are at least as many instance slots as the smallest actions that fit
/// in the pool's budget, so the pool runs out of memory before the engine runs out of slots
/// (apart from intra-container concurrency, which needs a slot per concurrent run).
pub fn engine_config_for(user_memory_mb: u64) -> WasmConfig {
    let bounds = LimitBounds::default();
    let defaults = WasmConfig::default();
    let smallest_fitting = user_memory_mb / bounds.min_memory.max(1);
    let max_instances = u32::try_from(smallest_fitting)
        .unwrap_or(u32::MAX)
        .clamp(defaults.max_instances, 1024);
    WasmConfig {
        max_instances,
        max_memory_mb: bounds.max_memory.min(user_memory_mb.max(bounds.min_memory)),
        ..defaults
    }
}

/// Makes WebAssembly "containers": nothing is started, each one is a compiled module (shared
/// through the engine's cache) plus its environment.
#[derive(Debug, Clone)]
pub struct WasmFactory {
    engine: WasmEngine,
    id_prefix: String,
    next: Arc<AtomicU64>,
}

impl WasmFactory {
    /// A factory running every module on `engine`; container ids are `<id_prefix>-wasm-<n>`.
    pub fn new(engine: WasmEngine, id_prefix: impl Into<String>) -> WasmFactory {
        WasmFactory {
            engine,
            id_prefix: id_prefix.into(),
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The engine the containers run on.
    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }
}

#[async_trait]
impl ContainerFactory for WasmFactory {
    async fn create(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ActionContainer>, ContainerError> {
        if spec.kind != WASM_KIND {
            return Err(ContainerError::Create(format!(
                "kind {} is not a WebAssembly kind this invoker runs (only {WASM_KIND})",
                spec.kind
            )));
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-wasm-{number}", self.id_prefix);
        let (sender, receiver) = mpsc::unbounded_channel();
        debug!(container = %id, memory_mb = spec.memory_mb, "WebAssembly container created");
        Ok(Box::new(WasmActionContainer {
            id,
            container: WasmContainer::new(self.engine.clone(), spec.memory_mb, spec.env.clone()),
            output: StdMutex::new(sender),
            logs: Mutex::new(BufferedLogs { receiver }),
        }))
    }
}

/// One WebAssembly action container.
#[derive(Debug)]
struct WasmActionContainer {
    id: String,
    container: WasmContainer,
    /// Where each call puts its log lines and the sentinels. Behind a lock so that the lines of
    /// concurrent runs are not interleaved with each other.
    output: StdMutex<mpsc::UnboundedSender<LogRecord>>,
    logs: Mutex<BufferedLogs>,
}

impl WasmActionContainer {
    /// Queues one call's lines followed by a sentinel on each stream, as a runtime proxy ends
    /// an activation's output.
    fn emit(&self, lines: &[LogLine]) {
        let sender = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = SystemTime::now();
        let records = lines
            .iter()
            .map(|line| LogRecord::new(line.time, stream_of(line.stream), line.text.clone()))
            .chain([
                LogRecord::new(now, Stream::Stdout, SENTINEL),
                LogRecord::new(now, Stream::Stderr, SENTINEL),
            ]);
        for record in records {
            // The receiver lives as long as the container, which owns this sender too.
            if sender.send(record).is_err() {
                return;
            }
        }
    }
}

fn stream_of(stream: LogStream) -> Stream {
    match stream {
        LogStream::Stdout => Stream::Stdout,
        LogStream::Stderr => Stream::Stderr,
    }
}

#[async_trait]
impl ActionContainer for WasmActionContainer {
    fn id(&self) -> &str {
        &self.id
    }

    async fn init(&self, payload: &Value, timeout: std::time::Duration) -> CallOutcome {
        let started = Instant::now();
        let result = self.container.init(payload, timeout).await;
        let elapsed = started.elapsed();
        match result {
            Ok(_) => CallOutcome::ready(elapsed),
            Err(error) => {
                debug!(container = %self.id, %error, "WebAssembly init failed");
                // An init writes no output, and its logs are only collected when it failed:
                // only then are sentinels due (after a success they would end the next run's
                // collection before its lines).
                self.emit(&[]);
                CallOutcome::failed(error.response(), error.timed_out(), elapsed)
            }
        }
    }

    async fn run(&self, payload: &Value, timeout: std::time::Duration) -> CallOutcome {
        let started = Instant::now();
        let outcome = self.container.run(payload, timeout).await;
        let elapsed = started.elapsed();
        self.emit(&outcome.logs);
        let response = outcome.response();
        // Nothing of a failed run survives in a WebAssembly container, but the container is
        // given up all the same after a developer or platform error, so that the next
        // activation is a cold start (with its `initTime`) exactly as for the other kinds.
        match response.status() {
            ActivationStatus::Success | ActivationStatus::ApplicationError => {
                CallOutcome::answered(response, elapsed)
            }
            ActivationStatus::DeveloperError | ActivationStatus::WhiskInternalError => {
                CallOutcome::failed(response, outcome.timed_out(), elapsed)
            }
        }
    }

    /// Nothing runs between activations, so there is nothing to freeze.
    async fn pause(&self) -> Result<(), ContainerError> {
        Ok(())
    }

    async fn resume(&self) -> Result<(), ContainerError> {
        Ok(())
    }

    /// The compiled module stays in the engine's cache for the next container of the action;
    /// everything else is freed when the pool drops this handle.
    async fn destroy(&self) -> Result<(), ContainerError> {
        Ok(())
    }

    async fn logs(&self, request: LogRequest) -> Vec<String> {
        let mut buffered = self.logs.lock().await;
        logs::collect(&mut *buffered, request).await
    }
}

/// The lines calls have queued and no collector has read yet.
#[derive(Debug)]
struct BufferedLogs {
    receiver: mpsc::UnboundedReceiver<LogRecord>,
}

#[async_trait]
impl LogSource for BufferedLogs {
    async fn next_record(&mut self) -> Result<Option<LogRecord>, LogReadError> {
        Ok(self.receiver.recv().await)
    }
}

/// Sends `wasm:*` kinds to the WebAssembly factory and every other kind to the factory of real
/// containers.
///
/// The container side is optional: an invoker that cannot start containers (no privileges for
/// namespaces and cgroups) still runs WebAssembly actions, and answers other kinds with a
/// creation error (which the activation reports as `Failed to provision resources to run the
/// action.`).
#[derive(Debug)]
pub struct KindRouter {
    wasm: Arc<dyn ContainerFactory>,
    containers: Option<Arc<dyn ContainerFactory>>,
}

impl KindRouter {
    /// Routes `wasm:*` to `wasm` and the rest to `containers`, or refuses the rest when there is
    /// no container factory.
    pub fn new(
        wasm: Arc<dyn ContainerFactory>,
        containers: Option<Arc<dyn ContainerFactory>>,
    ) -> KindRouter {
        KindRouter { wasm, containers }
    }

    /// Whether `kind` runs as WebAssembly.
    pub fn is_wasm(kind: &str) -> bool {
        kind.starts_with(WASM_KIND_PREFIX)
    }
}

#[async_trait]
impl ContainerFactory for KindRouter {
    async fn create(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ActionContainer>, ContainerError> {
        if KindRouter::is_wasm(&spec.kind) {
            return self.wasm.create(spec).await;
        }
        match &self.containers {
            Some(containers) => containers.create(spec).await,
            None => Err(ContainerError::Create(format!(
                "kind {} needs containers, which this invoker cannot start",
                spec.kind
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use base64::Engine as _;
    use serde_json::json;
    use whisk_model::activation::{LOG_WARNING_DEVELOPER_ERROR, logs_truncated};

    use super::*;
    use crate::fake::FakeFactory;

    const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
"#;

    /// A module writing `stderr` then `stdout` (whole, as given).
    fn writer(stdout: &str, stderr: &str) -> String {
        let escape = |text: &str| {
            text.bytes()
                .map(|b| format!("\\{b:02x}"))
                .collect::<String>()
        };
        module(&format!(
            r#"(module {IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 1024) "{out}")
  (data (i32.const 8192) "{err}")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $write (i32.const 2) (i32.const 8192) (i32.const {err_len}))
    (call $write (i32.const 1) (i32.const 1024) (i32.const {out_len}))))"#,
            out = escape(stdout),
            err = escape(stderr),
            out_len = stdout.len(),
            err_len = stderr.len(),
        ))
    }

    fn module(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(wat::parse_str(text).unwrap())
    }

    fn factory() -> WasmFactory {
        let engine = WasmEngine::new(WasmConfig {
            max_instances: 4,
            max_memory_mb: 256,
            ..WasmConfig::default()
        })
        .unwrap();
        WasmFactory::new(engine, "test")
    }

    fn spec(kind: &str) -> ContainerSpec {
        ContainerSpec {
            kind: kind.into(),
            image: None,
            memory_mb: 128,
            action: None,
            namespace: None,
            env: BTreeMap::new(),
        }
    }

    fn init_payload(code: &str) -> Value {
        json!({"value": {"name": "a", "main": "main", "binary": true, "code": code, "env": {}}})
    }

    fn run_payload(params: Value) -> Value {
        json!({"value": params, "namespace": "guest", "action_name": "/guest/a"})
    }

    fn logs(limit_bytes: u64, developer_error: bool) -> LogRequest {
        LogRequest {
            limit_bytes,
            developer_error,
            wait: Duration::from_secs(30),
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    /// The text of a formatted log line after its timestamp.
    fn tail(line: &str) -> &str {
        &line[31..]
    }

    #[test]
    fn the_engine_is_sized_to_the_invokers_memory() {
        let small = engine_config_for(512);
        assert_eq!(small.max_memory_mb, 512);
        assert_eq!(small.max_instances, WasmConfig::default().max_instances);
        let large = engine_config_for(64 * 1024);
        assert_eq!(large.max_instances, 512, "one slot per 128 MB");
        assert_eq!(
            large.max_memory_mb, 512,
            "never above the largest action limit"
        );
        let tiny = engine_config_for(256);
        assert_eq!(tiny.max_memory_mb, 256, "never above what the invoker has");
        assert_eq!(engine_config_for(u64::MAX).max_instances, 1024);
    }

    #[tokio::test]
    async fn a_run_answers_with_its_result_and_its_logs_are_collected_to_the_sentinels() {
        let factory = factory();
        let container = factory.create(&spec(WASM_KIND)).await.unwrap();
        assert!(container.id().starts_with("test-wasm-"));
        let code = writer("early\n{\"ok\":true}\n", "to stderr\n");
        let ready = container.init(&init_payload(&code), MINUTE).await;
        assert_eq!(ready.response, None);
        assert!(ready.reusable);

        let outcome = container.run(&run_payload(json!({})), MINUTE).await;
        let response = outcome.response.unwrap();
        assert_eq!(response.status(), ActivationStatus::Success);
        assert_eq!(response.result, Some(json!({"ok": true})));
        assert!(outcome.reusable && !outcome.timed_out && !outcome.reschedule);
        let lines = container.logs(logs(1024, false)).await;
        let tails: Vec<&str> = lines.iter().map(|line| tail(line)).collect();
        assert_eq!(tails, vec!["stderr: to stderr", "stdout: early"]);

        // A second run's lines are its own.
        container.run(&run_payload(json!({})), MINUTE).await;
        assert_eq!(container.logs(logs(1024, false)).await.len(), 2);
    }

    #[tokio::test]
    async fn the_log_limit_cuts_with_the_notice_and_the_next_run_starts_clean() {
        let factory = factory();
        let container = factory.create(&spec(WASM_KIND)).await.unwrap();
        let code = writer("{}\n", "one\ntwo\nthree\n");
        container.init(&init_payload(&code), MINUTE).await;
        container.run(&run_payload(json!({})), MINUTE).await;
        let lines = container.logs(logs(7, false)).await;
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(tail(&lines[1]), "stderr: two");
        assert_eq!(tail(&lines[2]), format!("stderr: {}", logs_truncated(7)));
        container.run(&run_payload(json!({})), MINUTE).await;
        assert_eq!(container.logs(logs(1024, false)).await.len(), 3);
    }

    #[tokio::test]
    async fn a_bad_module_fails_init_as_a_developer_error_with_the_warning() {
        let factory = factory();
        let container = factory.create(&spec(WASM_KIND)).await.unwrap();
        let code = base64::engine::general_purpose::STANDARD.encode(b"not a module");
        let outcome = container.init(&init_payload(&code), MINUTE).await;
        let response = outcome.response.unwrap();
        assert_eq!(response.status(), ActivationStatus::DeveloperError);
        assert!(!outcome.reusable && !outcome.timed_out);
        let lines = container.logs(logs(1024, true)).await;
        assert_eq!(lines.len(), 1);
        assert_eq!(
            tail(&lines[0]),
            format!("stderr: {LOG_WARNING_DEVELOPER_ERROR}")
        );
    }

    #[tokio::test]
    async fn a_run_past_its_time_limit_times_out_and_the_container_is_given_up() {
        let factory = factory();
        let container = factory.create(&spec(WASM_KIND)).await.unwrap();
        let code = module(r#"(module (func (export "_start") (loop $forever (br $forever))))"#);
        assert_eq!(
            container.init(&init_payload(&code), MINUTE).await.response,
            None
        );
        let outcome = container
            .run(&run_payload(json!({})), Duration::from_millis(200))
            .await;
        assert!(outcome.timed_out && !outcome.reusable);
        let response = outcome.response.unwrap();
        assert_eq!(response.status(), ActivationStatus::DeveloperError);
        assert_eq!(
            response.result,
            Some(json!({"error": "The action exceeded its time limits of 200 milliseconds."}))
        );
    }

    #[tokio::test]
    async fn a_run_before_init_is_a_developer_error() {
        let factory = factory();
        let container = factory.create(&spec(WASM_KIND)).await.unwrap();
        let outcome = container.run(&run_payload(json!({})), MINUTE).await;
        assert_eq!(
            outcome.response.unwrap().status(),
            ActivationStatus::DeveloperError
        );
        assert!(!outcome.reusable);
    }

    #[tokio::test]
    async fn pause_resume_and_destroy_do_nothing_and_succeed() {
        let factory = factory();
        let container = factory.create(&spec(WASM_KIND)).await.unwrap();
        container.pause().await.unwrap();
        container.resume().await.unwrap();
        container.destroy().await.unwrap();
    }

    #[tokio::test]
    async fn an_unknown_wasm_kind_is_refused() {
        let error = factory().create(&spec("wasm:other")).await.unwrap_err();
        assert!(matches!(error, ContainerError::Create(ref text) if text.contains("wasm:other")));
    }

    #[tokio::test]
    async fn the_router_sends_wasm_kinds_to_wasm_and_the_rest_to_containers() {
        let containers = FakeFactory::new();
        let router = KindRouter::new(Arc::new(factory()), Some(Arc::new(containers.clone())));
        let wasm = router.create(&spec(WASM_KIND)).await.unwrap();
        assert!(wasm.id().contains("-wasm-"));
        assert_eq!(containers.created(), 0);
        let node = router.create(&spec("nodejs:20")).await.unwrap();
        assert!(node.id().starts_with("fake"));
        assert_eq!(containers.created(), 1);
        // A wasm kind the factory does not know is its error, not the containers'.
        assert!(router.create(&spec("wasm:other")).await.is_err());
        assert_eq!(containers.created(), 1);
    }

    #[tokio::test]
    async fn without_containers_only_wasm_kinds_are_created() {
        let router = KindRouter::new(Arc::new(factory()), None);
        assert!(router.create(&spec(WASM_KIND)).await.is_ok());
        let error = router.create(&spec("python:3")).await.unwrap_err();
        assert!(matches!(error, ContainerError::Create(ref text) if text.contains("python:3")));
    }
}
