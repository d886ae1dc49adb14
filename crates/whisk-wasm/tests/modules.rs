//! Modules built at test time from WAT text, run through the public API.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use whisk_wasm::{
    LogStream, RunLimits, RunRequest, WasmCompileError, WasmConfig, WasmEngine, WasmOutcome,
    WasmRunError, WasmValidator,
};

fn engine() -> WasmEngine {
    WasmEngine::new(WasmConfig {
        max_instances: 4,
        max_memory_mb: 256,
        ..WasmConfig::default()
    })
    .unwrap()
}

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

fn limits() -> RunLimits {
    RunLimits {
        memory_mb: 128,
        timeout: Duration::from_secs(60),
    }
}

async fn run(engine: &WasmEngine, module: &[u8], params: Value) -> WasmOutcome {
    run_with(engine, module, params, Vec::new(), limits()).await
}

async fn run_with(
    engine: &WasmEngine,
    module: &[u8],
    params: Value,
    env: Vec<(String, String)>,
    limits: RunLimits,
) -> WasmOutcome {
    let action = engine.compile(module).unwrap();
    engine
        .run(
            &action,
            RunRequest {
                params,
                env,
                limits,
            },
        )
        .await
}

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
"#;

/// Writes `len` bytes at `ptr` to `fd` (iovec at 0, count at 8).
const WRITE: &str = r#"
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
"#;

/// Reads all of stdin to address 1024 and writes it back to stdout.
fn echo() -> Vec<u8> {
    wasm(&format!(
        r#"(module {IMPORTS} {WRITE}
  (memory (export "memory") 2)
  (func (export "_start")
    (local $len i32)
    (block $done
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 130048) (local.get $len)))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
        (br $more)))
    (call $write (i32.const 1) (i32.const 1024) (local.get $len))))"#
    ))
}

/// A module that writes fixed text to stdout and stderr, then exits with `code` when given.
fn writer(stdout: &str, stderr: &str, exit: Option<i32>) -> Vec<u8> {
    let escape = |text: &str| {
        text.bytes()
            .map(|b| format!("\\{b:02x}"))
            .collect::<String>()
    };
    let exit = exit
        .map(|code| format!("(call $proc_exit (i32.const {code}))"))
        .unwrap_or_default();
    wasm(&format!(
        r#"(module {IMPORTS} {WRITE}
  (memory (export "memory") 1)
  (data (i32.const 1024) "{out}")
  (data (i32.const 8192) "{err}")
  (func (export "_start")
    (call $write (i32.const 2) (i32.const 8192) (i32.const {err_len}))
    (call $write (i32.const 1) (i32.const 1024) (i32.const {out_len}))
    {exit}))"#,
        out = escape(stdout),
        err = escape(stderr),
        out_len = stdout.len(),
        err_len = stderr.len(),
    ))
}

#[tokio::test]
async fn echo_returns_the_parameters() {
    let engine = engine();
    let params = json!({"name": "wasm", "nested": {"list": [1, 2, 3]}, "text": "é ✓"});
    let outcome = run(&engine, &echo(), params.clone()).await;
    assert_eq!(outcome.result, Ok(params.clone()));
    assert!(outcome.stdout_lines.is_empty());
    assert!(outcome.stderr_lines.is_empty());
    let response = outcome.response();
    assert_eq!(response.status_code, 0);
    assert_eq!(response.result, Some(params.clone()));
    assert_eq!(
        response.size,
        Some(params.to_string().chars().count() as u64)
    );
}

#[tokio::test]
async fn stderr_and_earlier_stdout_lines_are_logs() {
    let engine = engine();
    let module = writer(
        "stdout log\n{\"ok\":true}\n",
        "first log\nsecond log\n",
        None,
    );
    let outcome = run(&engine, &module, json!({})).await;
    assert_eq!(outcome.result, Ok(json!({"ok": true})));
    assert_eq!(outcome.stdout_lines, ["stdout log"]);
    assert_eq!(outcome.stderr_lines, ["first log", "second log"]);
    assert_eq!(
        log_texts(&outcome),
        [
            (LogStream::Stderr, "first log"),
            (LogStream::Stderr, "second log"),
            (LogStream::Stdout, "stdout log"),
        ]
    );
}

fn log_texts(outcome: &WasmOutcome) -> Vec<(LogStream, &str)> {
    outcome
        .logs
        .iter()
        .map(|line| (line.stream, line.text.as_str()))
        .collect()
}

/// Writes `out 1` (stdout), `err 1` (stderr), `out 2` (stdout) and then the result.
#[tokio::test]
async fn logs_interleave_both_streams_in_write_order() {
    let engine = engine();
    let module = wasm(&format!(
        r#"(module {IMPORTS} {WRITE}
  (memory (export "memory") 1)
  (data (i32.const 1024) "out 1\nerr 1\nout 2\n{{}}\n")
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 1024) (i32.const 6))
    (call $write (i32.const 2) (i32.const 1030) (i32.const 6))
    (call $write (i32.const 1) (i32.const 1036) (i32.const 9))))"#
    ));
    let started = std::time::SystemTime::now();
    let outcome = run(&engine, &module, json!({})).await;
    assert_eq!(outcome.result, Ok(json!({})));
    assert_eq!(
        log_texts(&outcome),
        [
            (LogStream::Stdout, "out 1"),
            (LogStream::Stderr, "err 1"),
            (LogStream::Stdout, "out 2"),
        ]
    );
    assert!(outcome.logs.iter().all(|line| line.time >= started));
    assert!(outcome.logs.windows(2).all(|w| w[0].time <= w[1].time));
}

#[tokio::test]
async fn an_error_field_is_an_application_error() {
    let engine = engine();
    let outcome = run(
        &engine,
        &writer("{\"error\":\"bad input\"}", "", None),
        json!({}),
    )
    .await;
    let response = outcome.response();
    assert_eq!(response.status_code, 1);
    assert_eq!(response.result, Some(json!({"error": "bad input"})));
}

#[tokio::test]
async fn non_json_output_is_a_developer_error_quoting_it() {
    let engine = engine();
    let outcome = run(&engine, &writer("log\nhello world\n", "", None), json!({})).await;
    assert_eq!(
        outcome.result,
        Err(WasmRunError::InvalidOutput("hello world".into()))
    );
    assert_eq!(outcome.stdout_lines, ["log"]);
    assert_eq!(log_texts(&outcome), [(LogStream::Stdout, "log")]);
    let response = outcome.response();
    assert_eq!(response.status_code, 2);
    assert_eq!(
        response.result,
        Some(
            json!({"error": "The action did not produce a valid JSON or JSON Array response: hello world"})
        )
    );
    let nothing = run(&engine, &writer("", "", None), json!({})).await;
    assert_eq!(
        nothing.response().result,
        Some(json!({"error": "The action did not produce a valid JSON or JSON Array response."}))
    );
}

#[tokio::test]
async fn a_scalar_result_is_not_a_dictionary() {
    let engine = engine();
    let outcome = run(&engine, &writer("42\n", "", None), json!({})).await;
    assert_eq!(outcome.result, Err(WasmRunError::NotADictionary));
    assert_eq!(
        outcome.response().result,
        Some(json!({"error": "The action did not return a dictionary."}))
    );
}

#[tokio::test]
async fn exit_zero_keeps_the_result_and_other_codes_fail() {
    let engine = engine();
    let clean = run(&engine, &writer("{\"a\":1}", "", Some(0)), json!({})).await;
    assert_eq!(clean.result, Ok(json!({"a": 1})));
    let failed = run(&engine, &writer("{\"a\":1}", "oops\n", Some(3)), json!({})).await;
    assert_eq!(failed.result, Err(WasmRunError::Exit(3)));
    assert_eq!(failed.stderr_lines, ["oops"]);
    assert_eq!(failed.stdout_lines, ["{\"a\":1}"]);
    assert_eq!(
        failed.response().result,
        Some(
            json!({"error": "The action did not produce a valid response and exited unexpectedly."})
        )
    );
}

#[tokio::test]
async fn a_trap_is_a_developer_error_with_the_trap_in_the_logs() {
    let engine = engine();
    let module = wasm(&format!(
        r#"(module {IMPORTS} {WRITE}
  (memory (export "memory") 1)
  (data (i32.const 1024) "about to fail\n")
  (func (export "_start")
    (call $write (i32.const 2) (i32.const 1024) (i32.const 14))
    unreachable))"#
    ));
    let outcome = run(&engine, &module, json!({})).await;
    match &outcome.result {
        Err(WasmRunError::Trap(detail)) => assert!(detail.contains("unreachable"), "{detail}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(outcome.stderr_lines[0], "about to fail");
    assert!(outcome.stderr_lines[1].starts_with("wasm trap:"));
    assert_eq!(outcome.logs.len(), 2);
    assert_eq!(outcome.logs[1].stream, LogStream::Stderr);
    assert_eq!(outcome.logs[1].text, outcome.stderr_lines[1]);
    let response = outcome.response();
    assert_eq!(response.status_code, 2);
    assert_eq!(
        response.result,
        Some(
            json!({"error": "The action did not produce a valid response and exited unexpectedly."})
        )
    );
    assert!(!outcome.timed_out());
}

#[tokio::test]
async fn a_stack_overflow_traps() {
    let engine = engine();
    let module = wasm(
        r#"(module
  (func $down (param i64) (result i64) (i64.add (call $down (local.get 0)) (i64.const 1)))
  (func (export "_start") (drop (call $down (i64.const 0)))))"#,
    );
    let outcome = run(&engine, &module, json!({})).await;
    assert!(
        matches!(&outcome.result, Err(WasmRunError::Trap(detail)) if detail.contains("stack")),
        "{:?}",
        outcome.result
    );
}

#[tokio::test]
async fn an_endless_loop_stops_at_the_deadline() {
    let engine = engine();
    let module = wasm(r#"(module (func (export "_start") (loop $forever (br $forever))))"#);
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = run_with(
        &engine,
        &module,
        json!({}),
        Vec::new(),
        RunLimits {
            memory_mb: 128,
            timeout,
        },
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        outcome.result,
        Err(WasmRunError::Timeout { timeout_ms: 300 })
    );
    assert!(outcome.timed_out());
    assert!(elapsed >= timeout, "stopped after {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(30),
        "stopped after {elapsed:?}"
    );
    assert_eq!(
        outcome.response().result,
        Some(json!({"error": "The action exceeded its time limits of 300 milliseconds."}))
    );
    // The engine goes on serving other activations.
    assert_eq!(
        run(&engine, &echo(), json!({"x": 1})).await.result,
        Ok(json!({"x": 1}))
    );
}

#[tokio::test]
async fn growing_memory_past_the_limit_exhausts_it() {
    let engine = engine();
    // 64 KiB pages: 1 page to start, then ask for 160 MiB more under a 128 MB limit.
    let module = wasm(
        r#"(module (memory 1)
  (func (export "_start") (drop (memory.grow (i32.const 2560)))))"#,
    );
    let outcome = run(&engine, &module, json!({})).await;
    assert_eq!(
        outcome.result,
        Err(WasmRunError::MemoryExhausted { limit_mb: 128 })
    );
    assert_eq!(
        outcome.response().result,
        Some(json!({"error": "The action exhausted its memory and was aborted."}))
    );
    // The same growth fits under a larger limit.
    let roomy = run_with(
        &engine,
        &module,
        json!({}),
        Vec::new(),
        RunLimits {
            memory_mb: 256,
            timeout: Duration::from_secs(60),
        },
    )
    .await;
    assert_eq!(
        roomy.result,
        Err(WasmRunError::InvalidOutput(String::new())),
        "the module ran to its end (and printed nothing)"
    );
}

#[tokio::test]
async fn an_initial_memory_past_the_limit_exhausts_it() {
    let engine = engine();
    let module = wasm(r#"(module (memory 3000) (func (export "_start")))"#);
    let outcome = run(&engine, &module, json!({})).await;
    assert_eq!(
        outcome.result,
        Err(WasmRunError::MemoryExhausted { limit_mb: 128 })
    );
}

#[tokio::test]
async fn a_memory_limit_above_the_engines_slots_is_capped() {
    let engine = engine();
    let module = wasm(
        r#"(module (memory 1)
  (func (export "_start") (drop (memory.grow (i32.const 4608)))))"#,
    );
    let outcome = run_with(
        &engine,
        &module,
        json!({}),
        Vec::new(),
        RunLimits {
            memory_mb: 4096,
            timeout: Duration::from_secs(60),
        },
    )
    .await;
    assert_eq!(
        outcome.result,
        Err(WasmRunError::MemoryExhausted { limit_mb: 256 })
    );
}

/// Counts activations in a global and in memory, and says whether this is the first one.
#[tokio::test]
async fn no_state_carries_over_between_runs() {
    let engine = engine();
    let module = wasm(&format!(
        r#"(module {IMPORTS} {WRITE}
  (memory (export "memory") 1)
  (global $count (mut i32) (i32.const 0))
  (data (i32.const 1024) "{{\"first\":true}}")
  (data (i32.const 2048) "{{\"first\":false}}")
  (func (export "_start")
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store (i32.const 4096) (i32.add (i32.load (i32.const 4096)) (i32.const 1)))
    (if (i32.and (i32.eq (global.get $count) (i32.const 1))
                 (i32.eq (i32.load (i32.const 4096)) (i32.const 1)))
      (then (call $write (i32.const 1) (i32.const 1024) (i32.const 14)))
      (else (call $write (i32.const 1) (i32.const 2048) (i32.const 15))))))"#
    ));
    let action = engine.compile(&module).unwrap();
    for _ in 0..3 {
        let outcome = engine
            .run(
                &action,
                RunRequest {
                    params: json!({}),
                    env: Vec::new(),
                    limits: limits(),
                },
            )
            .await;
        assert_eq!(outcome.result, Ok(json!({"first": true})));
    }
}

/// Prints `{"preopens":false}` when fd 3 is not a preopened directory, then its environment
/// (NUL-separated `K=V`) on stderr.
#[tokio::test]
async fn no_filesystem_and_only_the_given_environment() {
    let engine = engine();
    let module = wasm(&format!(
        r#"(module {IMPORTS}
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ (param i32 i32) (result i32)))
  {WRITE}
  (memory (export "memory") 1)
  (data (i32.const 1024) "{{\"preopens\":false}}")
  (data (i32.const 2048) "{{\"preopens\":true}}")
  (func (export "_start")
    (drop (call $sizes (i32.const 16) (i32.const 20)))
    (drop (call $environ (i32.const 4096) (i32.const 8192)))
    (call $write (i32.const 2) (i32.const 8192) (i32.load (i32.const 20)))
    (if (call $prestat (i32.const 3) (i32.const 32))
      (then (call $write (i32.const 1) (i32.const 1024) (i32.const 18)))
      (else (call $write (i32.const 1) (i32.const 2048) (i32.const 17))))))"#
    ));
    let env = vec![
        ("__OW_ACTIVATION_ID".to_string(), "abc123".to_string()),
        ("WHISK_TEST".to_string(), "yes".to_string()),
    ];
    let outcome = run_with(&engine, &module, json!({}), env, limits()).await;
    assert_eq!(outcome.result, Ok(json!({"preopens": false})));
    assert_eq!(
        outcome.stderr_lines,
        ["__OW_ACTIVATION_ID=abc123\0WHISK_TEST=yes\0"]
    );
}

#[test]
fn compiling_the_same_bytes_twice_compiles_once() {
    let engine = engine();
    let module = echo();
    let first = engine.compile(&module).unwrap();
    let second = engine.compile(&module).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(engine.compilations(), 1);
    let other = engine.compile(&writer("{}", "", None)).unwrap();
    assert_ne!(other.digest(), first.digest());
    assert_eq!(engine.compilations(), 2);
    assert_eq!(first.digest_hex().len(), 64);
}

#[test]
fn concurrent_compiles_of_one_module_compile_it_once() {
    let engine = engine();
    let module = Arc::new(echo());
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, module, barrier) = (engine.clone(), module.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                engine.compile(&module).unwrap()
            })
        })
        .collect();
    let compiled: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(compiled.iter().all(|c| Arc::ptr_eq(c, &compiled[0])));
    assert_eq!(engine.compilations(), 1);
}

#[test]
fn a_full_cache_drops_its_oldest_module() {
    let engine = WasmEngine::new(WasmConfig {
        max_instances: 2,
        max_memory_mb: 64,
        cache_capacity: 1,
        ..WasmConfig::default()
    })
    .unwrap();
    let (a, b) = (echo(), writer("{}", "", None));
    engine.compile(&a).unwrap();
    engine.compile(&b).unwrap();
    engine.compile(&b).unwrap();
    assert_eq!(engine.compilations(), 2);
    engine.compile(&a).unwrap();
    assert_eq!(engine.compilations(), 3);
}

#[test]
fn invalid_modules_are_init_failures() {
    let engine = engine();
    let garbage = engine.compile(b"not wasm at all").unwrap_err();
    assert!(
        matches!(garbage, WasmCompileError::Invalid(_)),
        "{garbage:?}"
    );
    assert!(
        garbage
            .to_string()
            .starts_with("The action's code is not a valid WebAssembly module: "),
        "{garbage}"
    );
    let response = garbage.response();
    assert_eq!(response.status_code, 2);
    assert_eq!(response.result, Some(json!({"error": garbage.to_string()})));
    // The failure is cached like a success.
    assert_eq!(engine.compile(b"not wasm at all").unwrap_err(), garbage);
    assert_eq!(engine.compilations(), 1);

    let no_start = engine
        .compile(&wasm("(module (func (export \"main\")))"))
        .unwrap_err();
    assert_eq!(no_start, WasmCompileError::NoStart);
    let wrong_start = wasm("(module (func (export \"_start\") (param i32)))");
    assert_eq!(
        engine.compile(&wrong_start).unwrap_err(),
        WasmCompileError::NoStart
    );

    let foreign = wasm(
        r#"(module (import "env" "open_socket" (func (param i32)))
  (func (export "_start")))"#,
    );
    let error = engine.compile(&foreign).unwrap_err();
    assert!(
        matches!(&error, WasmCompileError::Link(detail) if detail.contains("open_socket")),
        "{error:?}"
    );

    let base64 = engine.compile_base64("not base64!").unwrap_err();
    assert!(matches!(base64, WasmCompileError::Base64(_)), "{base64:?}");
}

#[test]
fn the_validator_refuses_what_the_engine_refuses_and_keeps_nothing() {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let validator = WasmValidator::new().unwrap();
    let engine = engine();
    validator.check_base64(&encode(&echo())).unwrap();
    // Same error as the engine's, for every way a module can be refused.
    let refused = [
        encode(b"not wasm at all"),
        encode(&wasm("(module (func (export \"main\")))")),
        encode(&wasm(
            r#"(module (import "env" "open_socket" (func (param i32))) (func (export "_start")))"#,
        )),
        "not base64!".to_string(),
    ];
    for code in &refused {
        let by_validator = validator.check_base64(code).unwrap_err();
        assert_eq!(by_validator, engine.compile_base64(code).unwrap_err());
    }
    // The validator shares nothing with an engine: the echo module was checked, not cached.
    engine.compile_base64(&encode(&echo())).unwrap();
    // The engine compiled the three refused modules (not the bad base64) and the echo module.
    assert_eq!(engine.compilations(), 4);
}

#[test]
fn base64_code_compiles_like_its_bytes() {
    use base64::Engine as _;
    let engine = engine();
    let module = echo();
    let code = format!(
        "  {}\n",
        base64::engine::general_purpose::STANDARD.encode(&module)
    );
    let from_code = engine.compile_base64(&code).unwrap();
    let from_bytes = engine.compile(&module).unwrap();
    assert!(Arc::ptr_eq(&from_code, &from_bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_each_get_their_own_instance() {
    let engine = engine();
    let action = engine.compile(&echo()).unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|n| {
            let (engine, action) = (engine.clone(), action.clone());
            tokio::spawn(async move {
                for i in 0..20 {
                    let params = json!({"task": n, "i": i});
                    let request = RunRequest {
                        params: params.clone(),
                        env: Vec::new(),
                        limits: limits(),
                    };
                    assert_eq!(engine.run(&action, request).await.result, Ok(params));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// A module asleep in `poll_oneoff` (10 s) is stopped at its 300 ms deadline, not when it wakes.
#[tokio::test]
async fn a_sleeping_module_is_stopped_at_the_deadline() {
    let engine = engine();
    let module = wasm(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 128) (i64.const 7))
    (i32.store8 (i32.const 136) (i32.const 0))
    (i32.store (i32.const 144) (i32.const 1))
    (i64.store (i32.const 152) (i64.const 10000000000))
    (i64.store (i32.const 160) (i64.const 0))
    (i32.store16 (i32.const 168) (i32.const 0))
    (drop (call $poll (i32.const 128) (i32.const 256) (i32.const 1) (i32.const 512)))))"#,
    );
    let started = Instant::now();
    let outcome = run_with(
        &engine,
        &module,
        json!({}),
        Vec::new(),
        RunLimits {
            memory_mb: 128,
            timeout: Duration::from_millis(300),
        },
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        outcome.result,
        Err(WasmRunError::Timeout { timeout_ms: 300 })
    );
    assert!(
        elapsed < Duration::from_secs(9),
        "stopped after {elapsed:?}"
    );
    // A short sleep within the limit simply returns.
    let short = module_sleeping_ms(20);
    let outcome = run(&engine, &short, json!({})).await;
    assert_eq!(
        outcome.result,
        Err(WasmRunError::InvalidOutput(String::new()))
    );
}

fn module_sleeping_ms(ms: u64) -> Vec<u8> {
    wasm(&format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 136) (i32.const 0))
    (i32.store (i32.const 144) (i32.const 1))
    (i64.store (i32.const 152) (i64.const {ns}))
    (if (call $poll (i32.const 128) (i32.const 256) (i32.const 1) (i32.const 512))
      (then unreachable))))"#,
        ns = ms * 1_000_000
    ))
}

/// Cold-start figures for the report (`cargo test -p whisk-wasm --test modules -- --nocapture
/// cold_start`): instantiate only, and a whole run of the echo module, from a compiled module.
#[tokio::test]
async fn cold_start_figures() {
    let engine = engine();
    let action = engine.compile(&echo()).unwrap();
    println!("compile (echo module): {:?}", action.compile_time());
    let mut instantiate = Vec::new();
    let mut whole = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        let outcome = engine
            .run(
                &action,
                RunRequest {
                    params: json!({"i": i}),
                    env: Vec::new(),
                    limits: limits(),
                },
            )
            .await;
        whole.push(started.elapsed());
        instantiate.push(outcome.init_time);
        assert_eq!(outcome.result, Ok(json!({"i": i})));
    }
    instantiate.sort();
    whole.sort();
    let pick = |v: &[Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    println!(
        "instantiate: p50 {:?} p99 {:?}; whole run: p50 {:?} p99 {:?} (300 runs, {} build)",
        pick(&instantiate, 50),
        pick(&instantiate, 99),
        pick(&whole, 50),
        pick(&whole, 99),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
}

#[tokio::test]
async fn stdout_past_the_cap_is_an_over_long_response_and_stderr_is_cut() {
    let engine = WasmEngine::new(WasmConfig {
        max_instances: 2,
        max_memory_mb: 64,
        max_output_bytes: 16,
        ..WasmConfig::default()
    })
    .unwrap();
    let result = "{\"a\":\"0123456789012345678901234567890\"}";
    let log = "0123456789012345678901234567890123456789\n";
    let outcome = run(&engine, &writer(result, log, None), json!({})).await;
    assert_eq!(
        outcome.result,
        Err(WasmRunError::OutputTooLarge {
            length: result.len() as u64,
            limit: 16,
            start: result[..16].to_string(),
        })
    );
    assert_eq!(outcome.stderr_lines, [&log[..16]]);
    let response = outcome.response();
    assert_eq!(response.status_code, 1);
    assert_eq!(
        response.result,
        Some(json!({"error": format!(
            "The action produced a response that exceeded the allowed length: {} > 16 bytes. The truncated response was: {}",
            result.len(),
            &result[..16]
        )}))
    );
    // Exactly at the cap is fine.
    let fits = run(
        &engine,
        &writer("{\"a\":\"12345678\"}", "", None),
        json!({}),
    )
    .await;
    assert_eq!(fits.result, Ok(json!({"a": "12345678"})));
}

/// With one slot taken by a module that spins until its (long) deadline, another run gets no
/// instance: a platform error, not the action's. Polled until it happens, as the spinning run
/// starts on another task (and retries while a probe holds the slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_is_a_platform_error() {
    let engine = WasmEngine::new(WasmConfig {
        max_instances: 1,
        max_memory_mb: 64,
        ..WasmConfig::default()
    })
    .unwrap();
    let spin = engine
        .compile(&wasm(
            r#"(module (func (export "_start") (loop $forever (br $forever))))"#,
        ))
        .unwrap();
    let echo = engine.compile(&echo()).unwrap();
    let spinning = {
        let engine = engine.clone();
        tokio::spawn(async move {
            // The probing runs below may hold the slot when this one starts: try again then.
            loop {
                let request = RunRequest {
                    params: json!({}),
                    env: Vec::new(),
                    limits: RunLimits {
                        memory_mb: 64,
                        timeout: Duration::from_secs(120),
                    },
                };
                let outcome = engine.run(&spin, request).await;
                if !matches!(outcome.result, Err(WasmRunError::Capacity(_))) {
                    return outcome;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let request = RunRequest {
            params: json!({}),
            env: Vec::new(),
            limits: limits(),
        };
        let outcome = engine.run(&echo, request).await;
        if matches!(outcome.result, Err(WasmRunError::Capacity(_))) {
            break outcome;
        }
        assert!(Instant::now() < deadline, "the pool never filled up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    spinning.abort();
    let response = refused.response();
    assert_eq!(response.status_code, 3);
    assert_eq!(
        response.result,
        Some(json!({"error": "Failed to provision resources to run the action."}))
    );
    // Once the spinning run is gone, its slot serves again.
    let _ = spinning.await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = RunRequest {
            params: json!({"back": true}),
            env: Vec::new(),
            limits: limits(),
        };
        if engine.run(&echo, request).await.result == Ok(json!({"back": true})) {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn an_engine_wasmtime_refuses_is_a_config_error() {
    // Memory slots cannot be larger than the 4 GiB each one reserves.
    let error = WasmEngine::new(WasmConfig {
        max_instances: 1,
        max_memory_mb: 8192,
        ..WasmConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(error, whisk_wasm::WasmEngineError::Config(_)),
        "{error:?}"
    );
}

/// A module whose start function (run while instantiating) traps fails like any other trap.
#[tokio::test]
async fn a_trap_while_instantiating_is_a_trap() {
    let engine = engine();
    let module =
        wasm(r#"(module (func $boom unreachable) (start $boom) (func (export "_start")))"#);
    let outcome = run(&engine, &module, json!({})).await;
    assert!(
        matches!(&outcome.result, Err(WasmRunError::Trap(detail)) if detail.contains("unreachable")),
        "{:?}",
        outcome.result
    );
    assert_eq!(outcome.response().status_code, 2);
}
