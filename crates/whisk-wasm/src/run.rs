//! One activation: a fresh instance, parameters on stdin, result from stdout, under limits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};
use whisk_model::{ActivationResponse, ActivationStatus, messages};

use crate::capture::{Capture, LogLine, LogStream};
use crate::engine::{CompiledAction, WasmEngine};
use crate::output::{NOT_A_DICTIONARY, lines, parse_stdout};

const MIB: u64 = 1024 * 1024;

/// How much of an over-long output the error message quotes.
const QUOTED_OUTPUT_CHARS: usize = 1024;

/// The action's limits for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// The action's memory limit: the module's linear memory may not grow past it.
    pub memory_mb: u64,
    /// The action's time limit, counted from the start of instantiation.
    pub timeout: Duration,
}

/// Everything one run needs besides the compiled module.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// The activation's parameters, written to the module's stdin as one JSON document.
    pub params: Value,
    /// The module's whole environment (nothing of the invoker's own environment leaks in).
    pub env: Vec<(String, String)>,
    pub limits: RunLimits,
}

impl RunRequest {
    /// A request from an OpenWhisk `/run` payload (`{"value": params, "activation_id": ..}`),
    /// following the runtimes' convention: `value` is the parameters and every other top-level
    /// field `k` becomes the variable `__OW_K` (upper case; strings as they are, `null` as
    /// empty, anything else as compact JSON). `base_env` (the container's environment, e.g.
    /// `__OW_API_HOST`) comes first, so the payload's fields win over it.
    pub fn from_run_payload(
        payload: &Value,
        base_env: &BTreeMap<String, String>,
        limits: RunLimits,
    ) -> RunRequest {
        let params = payload
            .get("value")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let mut env: BTreeMap<String, String> = base_env.clone();
        if let Some(fields) = payload.as_object() {
            for (key, value) in fields.iter().filter(|(key, _)| *key != "value") {
                env.insert(format!("__OW_{}", key.to_uppercase()), env_text(value));
            }
        }
        RunRequest {
            params,
            env: env.into_iter().collect(),
            limits,
        }
    }
}

/// Why a run produced no result. `Display` is exactly the `error` text of the activation's
/// result, as OpenWhisk words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmRunError {
    /// The time limit passed (the module is stopped at its next epoch yield, or in the WASI
    /// call it is blocked in).
    #[error("{}", messages::timed_out_run(*timeout_ms))]
    Timeout { timeout_ms: u64 },
    /// The module tried to grow its memory past the action's memory limit.
    #[error("{}", messages::MEMORY_EXHAUSTED)]
    MemoryExhausted { limit_mb: u64 },
    /// The module trapped (unreachable, out-of-bounds access, stack overflow, ...); the detail
    /// is also added to the stderr log lines.
    #[error("{}", messages::ABNORMAL_RUN)]
    Trap(String),
    /// The module called `proc_exit` with a non-zero code.
    #[error("{}", messages::ABNORMAL_RUN)]
    Exit(i32),
    /// The result line was not JSON (the text is that line, possibly empty).
    #[error("{}", messages::invalid_run_response(.0))]
    InvalidOutput(String),
    /// The result was JSON but neither an object nor an array.
    #[error("{}", NOT_A_DICTIONARY)]
    NotADictionary,
    /// Stdout was longer than the engine keeps (`WasmConfig::max_output_bytes`); `start` is
    /// its beginning. An application error, as OpenWhisk reports an over-long response.
    #[error("{}", messages::truncated_response(*length, *limit, start))]
    OutputTooLarge {
        length: u64,
        limit: u64,
        start: String,
    },
    /// `/run` before a successful `/init` (see [`crate::WasmContainer`]).
    #[error("Cannot invoke an uninitialized action.")]
    Uninitialized,
    /// No instance slot could be had (all in use) or another platform-side failure.
    #[error("{}", messages::RESOURCE_PROVISION_ERROR)]
    Capacity(String),
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmOutcome {
    /// The result (an object or array) or why there is none.
    pub result: Result<Value, WasmRunError>,
    /// Stdout lines that are not the result (see [`crate::parse_stdout`]).
    pub stdout_lines: Vec<String>,
    /// Everything written on stderr, line by line, then a trap's detail if there was one.
    pub stderr_lines: Vec<String>,
    /// The same log lines of both streams in the order they were written, with the time each
    /// ended: what the activation record's `logs` are made of.
    pub logs: Vec<LogLine>,
    /// Creating the store and the instance (what a cold start costs beyond the run).
    pub init_time: Duration,
    /// Running `_start`.
    pub run_time: Duration,
    /// Characters of the result text, when there was one.
    pub size: Option<u64>,
}

impl WasmOutcome {
    /// The run hit its time limit (the activation record's `timeout` annotation).
    pub fn timed_out(&self) -> bool {
        matches!(self.result, Err(WasmRunError::Timeout { .. }))
    }

    /// The activation response: an object with a top-level `error` is an application error, any
    /// other object or array a success; an over-long output is an application error, a
    /// platform failure a whisk error, everything else a developer error carrying
    /// [`WasmRunError`]'s text.
    pub fn response(&self) -> ActivationResponse {
        match &self.result {
            Ok(value) => {
                let status = if value.get("error").is_some() {
                    ActivationStatus::ApplicationError
                } else {
                    ActivationStatus::Success
                };
                ActivationResponse::new(status, Some(value.clone()), self.size)
            }
            Err(error @ WasmRunError::OutputTooLarge { .. }) => ActivationResponse::error(
                ActivationStatus::ApplicationError,
                Value::String(error.to_string()),
                self.size,
            ),
            Err(WasmRunError::Capacity(_)) => ActivationResponse::whisk_error(Value::String(
                messages::RESOURCE_PROVISION_ERROR.into(),
            )),
            Err(error) => ActivationResponse::error(
                ActivationStatus::DeveloperError,
                Value::String(error.to_string()),
                self.size,
            ),
        }
    }
}

/// The store's data: the WASI context of this run and its memory limiter.
pub(crate) struct RunState {
    pub(crate) wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// Caps linear memory at the action's limit and remembers that the cap was hit, so that the
/// resulting trap is reported as memory exhaustion rather than as a crash.
struct MemoryLimiter {
    limit_bytes: usize,
    exhausted: bool,
}

/// The error the limiter raises; it turns the `memory.grow` (or the instantiation) into a trap.
#[derive(Debug, thiserror::Error)]
#[error("linear memory would grow to {desired} bytes, past the action's limit of {limit} bytes")]
struct MemoryLimitExceeded {
    desired: usize,
    limit: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.exhausted = true;
            return Err(MemoryLimitExceeded {
                desired,
                limit: self.limit_bytes,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pooling allocator's slot size.
        Ok(true)
    }
}

impl WasmEngine {
    /// Runs one activation of `action` in a fresh instance (so no state survives between
    /// activations).
    ///
    /// The module runs on the calling task, but never holds it for long: the epoch ticker makes
    /// it yield to the executor every tick, and the time limit is a timer around the whole
    /// instantiation and run. A module blocked in a WASI call (say `poll_oneoff` sleeping past
    /// its deadline) is therefore stopped at the deadline too, which a trap on the epoch alone
    /// could not do: epochs are only checked while wasm code runs.
    pub async fn run(&self, action: &CompiledAction, request: RunRequest) -> WasmOutcome {
        let started = Instant::now();
        let config = &self.inner.config;
        let memory_mb = request.limits.memory_mb.min(config.max_memory_mb);
        let limit_bytes = usize::try_from(memory_mb.saturating_mul(MIB)).unwrap_or(usize::MAX);
        let timeout_ms = u64::try_from(request.limits.timeout.as_millis()).unwrap_or(u64::MAX);

        let (stdout, stderr) = Capture::pair(config.max_output_bytes);
        let mut stdin = request.params.to_string().into_bytes();
        stdin.push(b'\n');
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&request.env)
            .arg("action")
            .build_p1();
        let mut store = Store::new(
            &self.inner.engine,
            RunState {
                wasi,
                limiter: MemoryLimiter {
                    limit_bytes,
                    exhausted: false,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_async_yield_and_update(1);

        let mut init_time = None;
        let call = tokio::time::timeout(request.limits.timeout, async {
            let instance = action.pre.instantiate_async(&mut store).await;
            init_time = Some(started.elapsed());
            let start = instance?.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        })
        .await;
        let elapsed = started.elapsed();
        let init_time = init_time.unwrap_or(elapsed);
        let run_time = elapsed.saturating_sub(init_time);

        let journal = stdout.finish();
        let (stdout, stdout_total) = stdout.contents();
        let (stderr, _) = stderr.contents();
        let mut stderr_lines = lines(&stderr);
        let failure = match call {
            Err(_elapsed) => Some(WasmRunError::Timeout { timeout_ms }),
            Ok(Ok(())) => None,
            Ok(Err(error)) => classify(&error, store.data().limiter.exhausted, memory_mb),
        };
        if let Some(WasmRunError::Capacity(detail)) = &failure {
            tracing::warn!(digest = %action.digest_hex(), %detail, "WebAssembly instance could not be created");
        }
        let (result, stdout_lines, size) = match failure {
            Some(error) => {
                if let WasmRunError::Trap(detail) = &error {
                    stderr_lines.push(detail.clone());
                }
                (Err(error), lines(&stdout), None)
            }
            None if stdout_total > stdout.len() as u64 => {
                let start: String = String::from_utf8_lossy(&stdout)
                    .chars()
                    .take(QUOTED_OUTPUT_CHARS)
                    .collect();
                let error = WasmRunError::OutputTooLarge {
                    length: stdout_total,
                    limit: stdout.len() as u64,
                    start,
                };
                (Err(error), Vec::new(), Some(stdout_total))
            }
            None => {
                let parsed = parse_stdout(&stdout);
                (parsed.result, parsed.log_lines, Some(parsed.size))
            }
        };
        // Stdout lines are logs except those that made the result (see `parse_stdout`): the
        // log lines it returns are always the first ones.
        let stdout_logs = stdout_lines.len();
        let mut logs: Vec<LogLine> = journal
            .into_iter()
            .filter(|j| j.line.stream == LogStream::Stderr || j.number < stdout_logs)
            .map(|j| j.line)
            .collect();
        if let Err(WasmRunError::Trap(detail)) = &result {
            logs.push(LogLine {
                time: SystemTime::now(),
                stream: LogStream::Stderr,
                text: detail.clone(),
            });
        }
        tracing::debug!(
            digest = %action.digest_hex(),
            memory_mb,
            timeout_ms,
            init_us = init_time.as_micros() as u64,
            run_us = run_time.as_micros() as u64,
            ok = result.is_ok(),
            "WebAssembly activation ran"
        );
        WasmOutcome {
            result,
            stdout_lines,
            stderr_lines,
            logs,
            init_time,
            run_time,
            size,
        }
    }
}

/// A JSON value as an environment variable: strings as they are, `null` as empty, anything else
/// as compact JSON (the rule of the other runtimes' proxies).
pub(crate) fn env_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What an error out of instantiation or `_start` means; `None` for a clean `proc_exit(0)`.
fn classify(
    error: &wasmtime::Error,
    memory_exhausted: bool,
    memory_mb: u64,
) -> Option<WasmRunError> {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return (exit.0 != 0).then_some(WasmRunError::Exit(exit.0));
    }
    if memory_exhausted || error.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return Some(WasmRunError::MemoryExhausted {
            limit_mb: memory_mb,
        });
    }
    match error.downcast_ref::<Trap>() {
        Some(trap) => Some(WasmRunError::Trap(format!("wasm trap: {trap}"))),
        None if error.downcast_ref::<wasmtime::WasmBacktrace>().is_some() => {
            // A host function (WASI) failed the call; the module cannot go on.
            Some(WasmRunError::Trap(format!("wasm trap: {error:#}")))
        }
        None => Some(WasmRunError::Capacity(format!("{error:#}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn run_payload_fields_become_ow_variables() {
        let base = BTreeMap::from([
            ("__OW_API_HOST".to_string(), "http://h".to_string()),
            ("__OW_NAMESPACE".to_string(), "stale".to_string()),
        ]);
        let limits = RunLimits {
            memory_mb: 128,
            timeout: Duration::from_secs(1),
        };
        let request = RunRequest::from_run_payload(
            &json!({"value": {"a": 1}, "namespace": "guest", "activation_id": "abc",
                    "deadline": 123, "api_key": null}),
            &base,
            limits,
        );
        assert_eq!(request.params, json!({"a": 1}));
        assert_eq!(
            request.env,
            [
                ("__OW_ACTIVATION_ID", "abc"),
                ("__OW_API_HOST", "http://h"),
                ("__OW_API_KEY", ""),
                ("__OW_DEADLINE", "123"),
                ("__OW_NAMESPACE", "guest"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let empty = RunRequest::from_run_payload(&json!({}), &BTreeMap::new(), limits);
        assert_eq!(empty.params, json!({}));
        assert!(empty.env.is_empty());
    }

    #[test]
    fn each_error_has_openwhisks_text_and_status() {
        let outcome = |result| WasmOutcome {
            result,
            stdout_lines: Vec::new(),
            stderr_lines: Vec::new(),
            logs: Vec::new(),
            init_time: Duration::ZERO,
            run_time: Duration::ZERO,
            size: None,
        };
        let cases = [
            (
                WasmRunError::Timeout { timeout_ms: 250 },
                "The action exceeded its time limits of 250 milliseconds.",
                2,
            ),
            (
                WasmRunError::MemoryExhausted { limit_mb: 128 },
                "The action exhausted its memory and was aborted.",
                2,
            ),
            (
                WasmRunError::Trap("wasm trap: unreachable".into()),
                "The action did not produce a valid response and exited unexpectedly.",
                2,
            ),
            (
                WasmRunError::Exit(3),
                "The action did not produce a valid response and exited unexpectedly.",
                2,
            ),
            (
                WasmRunError::InvalidOutput("hi".into()),
                "The action did not produce a valid JSON or JSON Array response: hi",
                2,
            ),
            (
                WasmRunError::NotADictionary,
                "The action did not return a dictionary.",
                2,
            ),
            (
                WasmRunError::Uninitialized,
                "Cannot invoke an uninitialized action.",
                2,
            ),
            (
                WasmRunError::Capacity("pool".into()),
                "Failed to provision resources to run the action.",
                3,
            ),
        ];
        let too_long = WasmRunError::OutputTooLarge {
            length: 20,
            limit: 10,
            start: "{\"a\":\"xxxx".into(),
        };
        let response = outcome(Err(too_long)).response();
        assert_eq!(response.status_code, 1);
        assert_eq!(
            response.result,
            Some(
                json!({"error": "The action produced a response that exceeded the allowed length: 20 > 10 bytes. The truncated response was: {\"a\":\"xxxx"})
            )
        );
        for (error, text, status) in cases {
            let timed_out = matches!(error, WasmRunError::Timeout { .. });
            let outcome = outcome(Err(error));
            let response = outcome.response();
            assert_eq!(response.status_code, status, "{text}");
            assert_eq!(response.result, Some(json!({ "error": text })));
            assert_eq!(outcome.timed_out(), timed_out);
        }
        let ok = outcome(Ok(json!({"x": 1}))).response();
        assert_eq!((ok.status_code, ok.result), (0, Some(json!({"x": 1}))));
        let array = outcome(Ok(json!([1]))).response();
        assert_eq!(array.status_code, 0);
        let app = outcome(Ok(json!({"error": "nope"}))).response();
        assert_eq!(
            (app.status_code, app.result),
            (1, Some(json!({"error": "nope"})))
        );
    }
}
