//! WebAssembly actions (`wasm:wasi`) through the real `whisk standalone` binary over HTTP, and
//! through the `wsk` CLI. The modules are built from WAT text at test time.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use support::{GUEST_AUTH, Platform};

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
"#;

/// Writes `len` bytes at `ptr` to `fd` (iovec at 0, count at 8).
const WRITE: &str = r#"
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
"#;

/// Writes `hello from wasm` on stderr, then echoes stdin (the parameters) on stdout.
fn echo() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {IMPORTS} {WRITE}
  (memory (export "memory") 2)
  (data (i32.const 64) "hello from wasm\0a")
  (func (export "_start")
    (local $len i32)
    (call $write (i32.const 2) (i32.const 64) (i32.const 16))
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
    .expect("valid WAT")
}

/// Never ends.
fn endless() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "_start") (loop $forever (br $forever))))"#)
        .expect("valid WAT")
}

/// Grows its memory by 160 MiB.
fn hungry() -> Vec<u8> {
    wat::parse_str(
        r#"(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 2560)))))"#,
    )
    .expect("valid WAT")
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn put_wasm(platform: &Platform, name: &str, module: &[u8], limits: Value) {
    platform
        .guest(
            Method::PUT,
            &format!("/namespaces/_/actions/{name}?overwrite=true"),
            Some(json!({
                "exec": {"kind": "wasm:wasi", "code": base64(module), "binary": true},
                "limits": limits,
            })),
        )
        .await
        .assert_ok();
}

/// Invokes `name` blocking and returns the HTTP status and the activation record.
async fn invoke(platform: &Platform, name: &str, params: Value) -> (u16, Value) {
    let reply = platform
        .guest(
            Method::POST,
            &format!("/namespaces/_/actions/{name}?blocking=true"),
            Some(params),
        )
        .await;
    (reply.status.as_u16(), reply.body)
}

fn annotation<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record["annotations"]
        .as_array()?
        .iter()
        .find(|pair| pair["key"] == key)
        .map(|pair| &pair["value"])
}

fn log_tails(record: &Value) -> Vec<String> {
    record["logs"]
        .as_array()
        .expect("logs are an array")
        .iter()
        .map(|line| {
            line.as_str()
                .expect("a log line is text")
                .get(31..)
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_wasm_action_runs_blocking_with_its_result_record_and_logs() {
    let Some(platform) = support::platform_with_invoker("echo", "", &[]) else {
        return;
    };
    put_wasm(&platform, "echo", &echo(), json!({})).await;

    let (status, cold) = invoke(&platform, "echo", json!({"name": "wasm"})).await;
    assert_eq!(status, 200, "{cold}");
    assert_eq!(cold["response"]["status"], "success", "{cold}");
    assert_eq!(cold["response"]["result"], json!({"name": "wasm"}));
    assert_eq!(cold["name"], "echo");
    assert_eq!(annotation(&cold, "kind"), Some(&json!("wasm:wasi")));
    assert!(annotation(&cold, "initTime").is_some(), "{cold}");
    assert_eq!(log_tails(&cold), vec!["stderr: hello from wasm"]);

    // The stored record is the one that was answered.
    let id = cold["activationId"].as_str().expect("an activation id");
    let stored = platform
        .guest(
            Method::GET,
            &format!("/namespaces/_/activations/{id}"),
            None,
        )
        .await;
    assert_eq!(
        stored.assert_ok()["response"]["result"],
        json!({"name": "wasm"})
    );

    // The second activation finds the action warm.
    let (status, warm) = invoke(&platform, "echo", json!({"again": true})).await;
    assert_eq!(status, 200, "{warm}");
    assert_eq!(warm["response"]["result"], json!({"again": true}));
    assert_eq!(annotation(&warm, "initTime"), None, "{warm}");
}

/// How many WebAssembly modules the platform has compiled, from its `/metrics`.
async fn compilations(platform: &Platform) -> u64 {
    let text = platform
        .raw()
        .get(format!("{}/metrics", platform.url))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix("whisk_wasm_compile_seconds_count "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no compile count in {text}"))
}

#[tokio::test]
async fn a_module_is_compiled_when_its_action_is_written_not_when_first_invoked() {
    let Some(platform) = support::platform_with_invoker("compile", "", &[]) else {
        return;
    };
    let before = compilations(&platform).await;
    put_wasm(&platform, "ready", &echo(), json!({})).await;
    assert_eq!(compilations(&platform).await, before + 1);

    let (status, cold) = invoke(&platform, "ready", json!({"first": true})).await;
    assert_eq!(status, 200, "{cold}");
    assert_eq!(cold["response"]["result"], json!({"first": true}));
    assert!(
        annotation(&cold, "initTime").is_some(),
        "a cold start: {cold}"
    );
    assert_eq!(compilations(&platform).await, before + 1, "compiled again");
}

#[tokio::test]
async fn a_module_that_cannot_run_is_refused_at_create_and_at_update() {
    let Some(platform) = support::platform_with_invoker("refuse", "", &[]) else {
        return;
    };
    let create = |name: &str, code: String, overwrite: bool| {
        let path = format!("/namespaces/_/actions/{name}?overwrite={overwrite}");
        let body = json!({"exec": {"kind": "wasm:wasi", "code": code, "binary": true}});
        let platform = &platform;
        async move { platform.guest(Method::PUT, &path, Some(body)).await }
    };
    let refused = create("broken", base64(b"\0asm but not really"), false).await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.text);
    let error = refused.body["error"].as_str().expect("an error text");
    assert!(
        error.starts_with("The action's code is not a valid WebAssembly module: "),
        "{error}"
    );
    assert_eq!(
        refused.body["code"].as_str(),
        refused
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
    );
    let missing = platform
        .guest(Method::GET, "/namespaces/_/actions/broken", None)
        .await;
    assert_eq!(missing.status.as_u16(), 404, "{}", missing.text);

    let no_start = wat::parse_str(r#"(module (func (export "main")))"#).expect("valid WAT");
    create("broken", base64(&no_start), false).await.assert_error(
        400,
        "The WebAssembly module is not a WASI command: it must export a function '_start' taking and returning nothing.",
    );

    put_wasm(&platform, "kept", &echo(), json!({})).await;
    let before = platform
        .guest(Method::GET, "/namespaces/_/actions/kept", None)
        .await;
    let before = before.assert_ok().clone();
    let refused = create("kept", "not base64!".to_string(), true).await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.text);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("The action's code is not valid base64: ")),
        "{}",
        refused.text
    );
    let after = platform
        .guest(Method::GET, "/namespaces/_/actions/kept", None)
        .await;
    assert_eq!(
        after.assert_ok(),
        &before,
        "the refused update changed the action"
    );
    let (status, record) = invoke(&platform, "kept", json!({"still": "echo"})).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["response"]["result"], json!({"still": "echo"}));
}

#[tokio::test]
async fn time_and_memory_limits_end_in_developer_errors() {
    let Some(platform) = support::platform_with_invoker("limits", "", &[]) else {
        return;
    };
    put_wasm(&platform, "endless", &endless(), json!({"timeout": 1000})).await;
    put_wasm(&platform, "hungry", &hungry(), json!({"memory": 128})).await;

    let (status, timed_out) = invoke(&platform, "endless", json!({})).await;
    assert_eq!(status, 502, "{timed_out}");
    assert_eq!(timed_out["response"]["status"], "action developer error");
    assert_eq!(
        timed_out["response"]["result"],
        json!({"error": "The action exceeded its time limits of 1000 milliseconds."})
    );
    assert_eq!(annotation(&timed_out, "timeout"), Some(&json!(true)));

    let (status, exhausted) = invoke(&platform, "hungry", json!({})).await;
    assert_eq!(status, 502, "{exhausted}");
    assert_eq!(exhausted["response"]["status"], "action developer error");
    assert_eq!(
        exhausted["response"]["result"],
        json!({"error": "The action exhausted its memory and was aborted."})
    );
}

/// The `wsk` binary of this target directory (a bin of another crate cannot be a
/// dev-dependency, so it is built once when missing).
fn wsk_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let whisk = PathBuf::from(env!("CARGO_BIN_EXE_whisk"));
        let profile_dir = whisk.parent().expect("whisk has a parent dir");
        let binary = profile_dir.join(format!("wsk{}", std::env::consts::EXE_SUFFIX));
        if !binary.exists() {
            let target_dir = profile_dir.parent().expect("profile dir has a parent");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let status = Command::new(cargo)
                .args(["build", "-p", "whisk-cli", "--bin", "wsk"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .status()
                .expect("run cargo build for wsk");
            assert!(status.success(), "building wsk failed");
        }
        binary
    })
}

#[tokio::test]
async fn wsk_creates_a_wasm_action_from_a_wasm_file_and_invokes_it() {
    let Some(platform) = support::platform_with_invoker("wsk", "", &[]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let module = dir.path().join("echo.wasm");
    std::fs::write(&module, echo()).expect("write the module");
    let wsk = |args: &[&str]| {
        let output = Command::new(wsk_binary())
            .args(["--apihost", platform.url.as_str(), "-u", GUEST_AUTH])
            .args(args)
            .env("WSK_CONFIG_FILE", dir.path().join("wskprops"))
            .env_remove("WHISK_APIHOST")
            .env_remove("WHISK_AUTH")
            .output()
            .expect("run wsk");
        assert!(
            output.status.success(),
            "wsk {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    };
    let module_path = module.to_str().expect("a utf-8 path");
    wsk(&["action", "create", "wecho", module_path]);

    let stored = platform
        .guest(Method::GET, "/namespaces/_/actions/wecho", None)
        .await;
    let exec = &stored.assert_ok()["exec"];
    assert_eq!(exec["kind"], "wasm:wasi", "wasm:default resolved: {exec}");
    assert_eq!(exec["binary"], true);

    let printed = wsk(&["action", "invoke", "wecho", "-b", "-r", "-p", "from", "wsk"]);
    let result: Value = serde_json::from_str(&printed).expect("the result is JSON");
    assert_eq!(result, json!({"from": "wsk"}));
}
