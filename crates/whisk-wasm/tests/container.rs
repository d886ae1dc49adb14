//! `WasmContainer` driven with OpenWhisk's `/init` and `/run` payloads, as the invoker will.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use whisk_wasm::{
    WasmCompileError, WasmConfig, WasmContainer, WasmEngine, WasmInitError, WasmRunError,
};

fn engine() -> WasmEngine {
    WasmEngine::new(WasmConfig {
        max_instances: 2,
        max_memory_mb: 256,
        ..WasmConfig::default()
    })
    .unwrap()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes its environment (NUL-separated) to stderr and its stdin back to stdout.
fn env_echo() -> Vec<u8> {
    wat::parse_str(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $len i32)
    (drop (call $sizes (i32.const 16) (i32.const 20)))
    (drop (call $environ (i32.const 1024) (i32.const 4096)))
    (call $write (i32.const 2) (i32.const 4096) (i32.load (i32.const 20)))
    (block $done
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 65536) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 131072) (local.get $len)))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
        (br $more)))
    (call $write (i32.const 1) (i32.const 65536) (local.get $len))))"#,
    )
    .unwrap()
}

fn init_payload(code: &str) -> Value {
    json!({"value": {"name": "echo", "main": "main", "binary": true, "code": code,
                     "env": {"__OW_NAMESPACE": "guest", "GREETING": "hi", "COUNT": 2}}})
}

const SECOND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn init_then_runs_see_params_and_the_ow_environment() {
    let container = WasmContainer::new(
        engine(),
        128,
        BTreeMap::from([(
            "__OW_API_HOST".to_string(),
            "http://127.0.0.1:1".to_string(),
        )]),
    );
    assert!(!container.is_initialized());
    container
        .init(&init_payload(&base64(&env_echo())), SECOND)
        .await
        .unwrap();
    assert!(container.is_initialized());
    for id in ["a1", "a2"] {
        let payload = json!({"value": {"n": 1}, "activation_id": id, "namespace": "guest",
                             "deadline": "1700000000000"});
        let outcome = container.run(&payload, SECOND).await;
        assert_eq!(outcome.result, Ok(json!({"n": 1})));
        assert_eq!(
            outcome.stderr_lines,
            [format!(
                "COUNT=2\0GREETING=hi\0__OW_ACTIVATION_ID={id}\0__OW_API_HOST=http://127.0.0.1:1\0\
                 __OW_DEADLINE=1700000000000\0__OW_NAMESPACE=guest\0"
            )]
        );
    }
}

#[tokio::test]
async fn init_failures_are_developer_errors() {
    let engine = engine();
    let container = WasmContainer::new(engine.clone(), 128, BTreeMap::new());
    let missing = container
        .init(&json!({"value": {"name": "x", "main": "main"}}), SECOND)
        .await
        .unwrap_err();
    assert_eq!(missing, WasmInitError::MissingCode);
    let not_base64 = container
        .init(&init_payload("function main() {}"), SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(
            not_base64,
            WasmInitError::Compile(WasmCompileError::Base64(_))
        ),
        "{not_base64:?}"
    );
    let not_wasm = container
        .init(&init_payload(&base64(b"\0asm but not really")), SECOND)
        .await
        .unwrap_err();
    let response = not_wasm.response();
    assert_eq!(response.status_code, 2);
    assert!(
        response.result.unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("The action's code is not a valid WebAssembly module: ")
    );
    assert!(!container.is_initialized());

    let uninitialized = container.run(&json!({"value": {}}), SECOND).await;
    assert_eq!(uninitialized.result, Err(WasmRunError::Uninitialized));
    assert_eq!(
        uninitialized.response().result,
        Some(json!({"error": "Cannot invoke an uninitialized action."}))
    );

    container
        .init(&init_payload(&base64(&env_echo())), SECOND)
        .await
        .unwrap();
    let again = container
        .init(&init_payload(&base64(&env_echo())), SECOND)
        .await
        .unwrap_err();
    assert_eq!(again, WasmInitError::AlreadyInitialized);
    assert_eq!(
        again.response().result,
        Some(json!({"error": "Cannot initialize the action more than once."}))
    );
}

#[tokio::test]
async fn containers_of_the_same_code_share_one_compilation() {
    let engine = engine();
    let code = base64(&env_echo());
    for _ in 0..3 {
        let container = WasmContainer::new(engine.clone(), 128, BTreeMap::new());
        container.init(&init_payload(&code), SECOND).await.unwrap();
    }
    assert_eq!(engine.compilations(), 1);
}

#[tokio::test]
async fn an_init_of_code_compiled_ahead_compiles_nothing() {
    let engine = engine();
    let code = base64(&env_echo());
    // What the controller of a standalone platform does when the action is written.
    engine.compile_base64(&code).unwrap();
    assert_eq!(engine.compilations(), 1);
    let container = WasmContainer::new(engine.clone(), 128, BTreeMap::new());
    container.init(&init_payload(&code), SECOND).await.unwrap();
    let outcome = container.run(&json!({"value": {"a": 1}}), SECOND).await;
    assert_eq!(outcome.result, Ok(json!({"a": 1})));
    assert_eq!(engine.compilations(), 1);
    // A failure cached ahead is the init's failure, again without compiling.
    let bad = base64(b"\0asm but not really");
    assert!(engine.compile_base64(&bad).is_err());
    let container = WasmContainer::new(engine.clone(), 128, BTreeMap::new());
    let error = container
        .init(&init_payload(&bad), SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(error, WasmInitError::Compile(WasmCompileError::Invalid(_))),
        "{error:?}"
    );
    assert_eq!(engine.compilations(), 2);
}

#[tokio::test]
async fn a_container_serves_again_after_a_timeout() {
    // Loops forever when the parameters are `{"spin":..}` (stdin starts with `{"s`), else echoes
    // nothing and returns `{}`.
    let module = wat::parse_str(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 2048) "{}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.eq (i32.load8_u (i32.const 1026)) (i32.const 115))
      (then (loop $forever (br $forever))))
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    let container = WasmContainer::new(engine(), 128, BTreeMap::new());
    container
        .init(&init_payload(&base64(&module)), SECOND)
        .await
        .unwrap();
    let spin = container
        .run(
            &json!({"value": {"spin": true}}),
            Duration::from_millis(200),
        )
        .await;
    assert!(spin.timed_out());
    assert_eq!(
        spin.response().result,
        Some(json!({"error": "The action exceeded its time limits of 200 milliseconds."}))
    );
    let next = container.run(&json!({"value": {"x": 1}}), SECOND).await;
    assert_eq!(next.result, Ok(json!({})));
}

/// Cold-start figures for the report (`cargo test -p whisk-wasm --test container -- --nocapture
/// cold_start`): a new container, `/init` of a module already compiled once (the cache hit every
/// cold start after an action's first makes), and one `/run`.
#[tokio::test]
async fn cold_start_figures() {
    let engine = engine();
    let payload = init_payload(&base64(&env_echo()));
    let mut cold = Vec::new();
    for i in 0..300 {
        let started = std::time::Instant::now();
        let container = WasmContainer::new(engine.clone(), 128, BTreeMap::new());
        container.init(&payload, SECOND).await.unwrap();
        let outcome = container
            .run(&json!({"value": {"i": i}, "activation_id": "x"}), SECOND)
            .await;
        cold.push(started.elapsed());
        assert_eq!(outcome.result, Ok(json!({"i": i})));
    }
    assert_eq!(engine.compilations(), 1);
    cold.sort();
    println!(
        "container cold start (new container + cached /init + /run): p50 {:?} p99 {:?} (300 runs, module {} bytes, {} build)",
        cold[cold.len() / 2],
        cold[cold.len() * 99 / 100],
        env_echo().len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

/// A compilation that cannot finish within the init time limit (zero) is an init timeout; the
/// compilation still completes in the background, so the next init finds the module cached.
#[tokio::test]
async fn an_init_past_its_time_limit_times_out() {
    let engine = engine();
    // Many functions, so that compiling surely takes longer than polling a zero timeout once.
    let functions: String = (0..400)
        .map(|i| {
            format!(
                "(func $f{i} (param i32) (result i32) (i32.mul (local.get 0) (i32.const {i})))\n"
            )
        })
        .collect();
    let module =
        wat::parse_str(format!("(module {functions} (func (export \"_start\")))")).unwrap();
    let payload = init_payload(&base64(&module));
    let container = WasmContainer::new(engine.clone(), 128, BTreeMap::new());
    let error = container.init(&payload, Duration::ZERO).await.unwrap_err();
    assert_eq!(error, WasmInitError::Timeout { timeout_ms: 0 });
    assert!(error.timed_out());
    assert_eq!(
        error.response().result,
        Some(
            json!({"error": "The action exceeded its time limits of 0 milliseconds during initialization."})
        )
    );
    assert!(!container.is_initialized());
    container.init(&payload, SECOND).await.unwrap();
    assert_eq!(engine.compilations(), 1);
}
