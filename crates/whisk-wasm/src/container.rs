//! A container-shaped handle, so that the invoker can treat a WebAssembly action like any other
//! runtime: `/init` with OpenWhisk's init payload, then any number of `/run`s with run payloads.
//!
//! Nothing is started here: "initialising" compiles the module (or finds it in the engine's
//! cache) and remembers the init environment; each run is a fresh instance. So the handle is
//! cheap to keep warm, and after any failure (timeout, trap, exhausted memory) it is as good as
//! new: no state of the failed run survives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use whisk_model::{ActivationResponse, messages};

use crate::engine::{CompiledAction, WasmCompileError, WasmEngine, decode_base64, digest_of};
use crate::run::{RunLimits, RunRequest, WasmOutcome, WasmRunError, env_text};

/// The largest `code` (base64 characters; a module of about 48 KiB) whose cache lookup runs on
/// the async thread calling `/init`: decoding and hashing it takes tens of microseconds (about a
/// hundred on a CPU without SHA instructions). Larger code is looked up on the blocking thread
/// that would compile it.
const INLINE_LOOKUP_MAX_CODE: usize = 64 * 1024;

/// Why `/init` failed. `Display` is the activation's `error` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmInitError {
    #[error(
        "The action's code is missing: a wasm:wasi action's code is a base64 WebAssembly module."
    )]
    MissingCode,
    #[error("Cannot initialize the action more than once.")]
    AlreadyInitialized,
    #[error(transparent)]
    Compile(#[from] WasmCompileError),
    #[error("{}", messages::timed_out_init(*timeout_ms))]
    Timeout { timeout_ms: u64 },
    /// The compilation task died (a bug, not the action's fault).
    #[error("{}", messages::RESOURCE_PROVISION_ERROR)]
    Internal(String),
}

impl WasmInitError {
    /// The activation response of this failed `/init`: a developer error, except for a
    /// platform failure (whisk error).
    pub fn response(&self) -> ActivationResponse {
        let text = Value::String(self.to_string());
        match self {
            WasmInitError::Internal(_) => ActivationResponse::whisk_error(text),
            _ => ActivationResponse::developer_error(text),
        }
    }

    /// The init ran into its time limit (the record's `timeout` annotation).
    pub fn timed_out(&self) -> bool {
        matches!(self, WasmInitError::Timeout { .. })
    }
}

#[derive(Debug)]
struct Initialized {
    action: Arc<CompiledAction>,
    env: BTreeMap<String, String>,
}

/// One WebAssembly "container": an action's compiled module, its environment and memory limit.
#[derive(Debug)]
pub struct WasmContainer {
    engine: WasmEngine,
    memory_mb: u64,
    base_env: BTreeMap<String, String>,
    state: Mutex<Option<Initialized>>,
}

impl WasmContainer {
    /// A container for an action with `memory_mb` of memory; `env` is what every run of the
    /// action sees (the invoker's `ContainerSpec::env`, e.g. `__OW_API_HOST`).
    pub fn new(engine: WasmEngine, memory_mb: u64, env: BTreeMap<String, String>) -> Self {
        WasmContainer {
            engine,
            memory_mb,
            base_env: env,
            state: Mutex::new(None),
        }
    }

    /// Whether `/init` has succeeded.
    pub fn is_initialized(&self) -> bool {
        self.state().is_some()
    }

    /// `/init` with `{"value": {"code": <base64 module>, "env": {..}, ..}}`: compiles the module
    /// on a blocking thread (or finds it cached) within `timeout`. Returns how long it took.
    pub async fn init(
        &self,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Duration, WasmInitError> {
        let started = Instant::now();
        if self.is_initialized() {
            return Err(WasmInitError::AlreadyInitialized);
        }
        let value = payload.get("value").unwrap_or(&Value::Null);
        let code = value
            .get("code")
            .and_then(Value::as_str)
            .filter(|code| !code.trim().is_empty())
            .ok_or(WasmInitError::MissingCode)?
            .to_string();
        let mut env = self.base_env.clone();
        if let Some(fields) = value.get("env").and_then(Value::as_object) {
            for (key, value) in fields {
                env.insert(key.clone(), env_text(value));
            }
        }
        let action = match self.cached(&code) {
            Some(cached) => cached?,
            None => self.compile(code, timeout).await?,
        };
        let mut state = self.state();
        if state.is_some() {
            return Err(WasmInitError::AlreadyInitialized);
        }
        *state = Some(Initialized { action, env });
        Ok(started.elapsed())
    }

    /// The compiled module of a small `code` when the engine has it (compiled when the action
    /// was written, or for another container of it), found on the calling thread: decoding and
    /// hashing a small module costs less than handing it to a blocking thread and being woken
    /// again, two thread wake-ups that a cold start would otherwise pay for a cache hit.
    fn cached(&self, code: &str) -> Option<Result<Arc<CompiledAction>, WasmCompileError>> {
        if code.len() > INLINE_LOOKUP_MAX_CODE {
            return None;
        }
        let bytes = match decode_base64(code) {
            Ok(bytes) => bytes,
            Err(error) => return Some(Err(error)),
        };
        self.engine.cached(digest_of(&bytes))
    }

    /// Compiles `code` on a blocking thread (or waits for the compilation another container
    /// started) within `timeout`.
    async fn compile(
        &self,
        code: String,
        timeout: Duration,
    ) -> Result<Arc<CompiledAction>, WasmInitError> {
        let engine = self.engine.clone();
        let compile = tokio::task::spawn_blocking(move || engine.compile_base64(&code));
        match tokio::time::timeout(timeout, compile).await {
            Err(_elapsed) => Err(WasmInitError::Timeout {
                timeout_ms: millis(timeout),
            }),
            Ok(Err(join)) => Err(WasmInitError::Internal(join.to_string())),
            Ok(Ok(compiled)) => Ok(compiled?),
        }
    }

    /// `/run` with an OpenWhisk run payload (see [`RunRequest::from_run_payload`]) under the
    /// action's memory limit and `timeout`.
    pub async fn run(&self, payload: &Value, timeout: Duration) -> WasmOutcome {
        let prepared = self
            .state()
            .as_ref()
            .map(|init| (Arc::clone(&init.action), init.env.clone()));
        let Some((action, env)) = prepared else {
            return WasmOutcome {
                result: Err(WasmRunError::Uninitialized),
                stdout_lines: Vec::new(),
                stderr_lines: Vec::new(),
                logs: Vec::new(),
                init_time: Duration::ZERO,
                run_time: Duration::ZERO,
                size: None,
            };
        };
        let limits = RunLimits {
            memory_mb: self.memory_mb,
            timeout,
        };
        let request = RunRequest::from_run_payload(payload, &env, limits);
        self.engine.run(&action, request).await
    }

    /// The state is only ever replaced whole, so a lock poisoned by a panicking holder still
    /// guards a consistent value.
    fn state(&self) -> MutexGuard<'_, Option<Initialized>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn init_errors_have_openwhisks_text_and_status() {
        let timeout = WasmInitError::Timeout { timeout_ms: 500 };
        assert_eq!(
            timeout.response().result,
            Some(
                json!({"error": "The action exceeded its time limits of 500 milliseconds during initialization."})
            )
        );
        assert!(timeout.timed_out());
        assert_eq!(WasmInitError::AlreadyInitialized.response().status_code, 2);
        assert_eq!(WasmInitError::MissingCode.response().status_code, 2);
        let internal = WasmInitError::Internal("panicked".into()).response();
        assert_eq!(
            (internal.status_code, internal.result),
            (
                3,
                Some(json!({"error": "Failed to provision resources to run the action."}))
            )
        );
        let compile = WasmInitError::from(WasmCompileError::NoStart);
        assert_eq!(compile.to_string(), WasmCompileError::NoStart.to_string());
        assert!(!compile.timed_out());
    }
}
