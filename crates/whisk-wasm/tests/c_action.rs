//! A C action compiled at test time with clang and wasi-libc (Debian's `clang`, `lld`,
//! `wasi-libc` and `libclang-rt-dev-wasm32`), run like any other module. Skipped, with the reason
//! printed, where that toolchain is not installed.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use whisk_wasm::{RunLimits, RunRequest, WasmConfig, WasmEngine, WasmRunError};

const ACTION: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char input[65536];

int main(void) {
    size_t n = fread(input, 1, sizeof input - 1, stdin);
    while (n > 0 && (input[n - 1] == '\n' || input[n - 1] == ' ')) n--;
    input[n] = 0;
    fprintf(stderr, "read %zu bytes of parameters\n", n);
    if (strstr(input, "\"hog\"")) {
        /* Touch far more memory than the action may have, in a way the compiler keeps. */
        static char *blocks[64];
        long total = 0;
        for (int i = 0; i < 64; i++) {
            blocks[i] = malloc(8 * 1024 * 1024);
            if (!blocks[i]) { fprintf(stderr, "malloc failed\n"); return 2; }
            memset(blocks[i], i, 8 * 1024 * 1024);
        }
        for (int i = 0; i < 64; i++) total += blocks[i][i * 1000];
        fprintf(stderr, "touched %ld\n", total);
    }
    const char *who = getenv("__OW_ACTIVATION_ID");
    FILE *secret = fopen("/etc/passwd", "r");
    printf("computing\n");
    printf("{\"params\":%s,\"activation\":\"%s\",\"file\":%s,\"path\":%s}\n",
           n ? input : "null", who ? who : "", secret ? "true" : "false",
           getenv("PATH") ? "true" : "false");
    return 0;
}
"#;

/// Why the toolchain is unusable here, if it is.
fn missing_toolchain() -> Option<String> {
    if Command::new("clang").arg("--version").output().is_err() {
        return Some("clang is not installed".into());
    }
    if !Path::new("/usr/lib/wasm32-wasi/libc.a").exists() {
        return Some("wasi-libc is not installed (/usr/lib/wasm32-wasi/libc.a)".into());
    }
    None
}

fn compile_c() -> Option<Vec<u8>> {
    if let Some(reason) = missing_toolchain() {
        println!("SKIPPED: the C action test needs clang, lld, wasi-libc: {reason}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("action.c");
    let module = dir.path().join("action.wasm");
    std::fs::write(&source, ACTION).unwrap();
    let output = Command::new("clang")
        .args(["--target=wasm32-wasi", "-O2", "-o"])
        .arg(&module)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "clang failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(std::fs::read(&module).unwrap())
}

fn request(params: serde_json::Value) -> RunRequest {
    RunRequest {
        params,
        env: vec![("__OW_ACTIVATION_ID".into(), "c0ffee".into())],
        limits: RunLimits {
            memory_mb: 128,
            timeout: Duration::from_secs(60),
        },
    }
}

#[tokio::test]
async fn a_c_action_runs_with_libc_and_nothing_of_the_host() {
    let Some(module) = compile_c() else { return };
    let engine = WasmEngine::new(WasmConfig {
        max_instances: 2,
        max_memory_mb: 256,
        ..WasmConfig::default()
    })
    .unwrap();
    let action = engine.compile(&module).unwrap();

    let outcome = engine
        .run(&action, request(json!({"name": "C", "n": [1, 2]})))
        .await;
    assert_eq!(
        outcome.result,
        Ok(
            json!({"params": {"name": "C", "n": [1, 2]}, "activation": "c0ffee",
                  "file": false, "path": false})
        )
    );
    assert_eq!(outcome.stdout_lines, ["computing"]);
    assert_eq!(outcome.stderr_lines.len(), 1);
    assert!(
        outcome.stderr_lines[0].starts_with("read "),
        "{:?}",
        outcome.stderr_lines
    );

    let hog = engine.run(&action, request(json!({"hog": true}))).await;
    assert_eq!(
        hog.result,
        Err(WasmRunError::MemoryExhausted { limit_mb: 128 })
    );
    assert_eq!(
        hog.response().result,
        Some(json!({"error": "The action exhausted its memory and was aborted."}))
    );
}
